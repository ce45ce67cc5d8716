//! Development support shared by `xtask` and the end-to-end tests (`tests/`, crate `e2e`):
//! everything that starts, talks to or stops something on this machine, written once.
//!
//! * [`cmd`]: run a command, echoed first, failing on a non-zero exit (or capture its output).
//! * [`install`]: install missing Debian and Python packages.
//! * [`http`]: one blocking HTTP client (ureq) and its response type.
//! * [`process`]: a server process with its log in a file, ready when an HTTP path answers,
//!   stopped by PID on drop; its memory and CPU time from `/proc`.
//! * [`python`]: virtual environments from pinned requirements; Python components built with
//!   componentize-py and Spin's Python SDK.
//! * [`static_server`]: a file server on 127.0.0.1 that counts requests; [`registry`]: an OCI
//!   registry (Distribution) on 127.0.0.1, stopped and started again at will.
//! * [`spin_build`]: a Spin manifest's component build commands, run as `spin build` does.
//! * [`net`]: free loopback ports; [`scratch`]: temporary directories (tempfile);
//!   [`workspace`]: where the workspace and its target directory are.
//!
//! Traffic goes only to loopback addresses; every wait is bounded in time.

pub mod cmd;
pub mod http;
pub mod install;
pub mod net;
pub mod process;
pub mod python;
pub mod registry;
pub mod scratch;
pub mod spin_build;
pub mod static_server;
pub mod workspace;

pub use process::wait_until;
pub use scratch::TempDir;
