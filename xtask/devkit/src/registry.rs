//! An OCI registry on loopback: Distribution (Debian's `docker-registry`, 2.8) on a free
//! 127.0.0.1 port, with its own config file and storage directory. It can be stopped (by PID)
//! and started again on the same port with the same storage, as often as a test needs: the
//! registry tests (`tests/tests/registry.rs`) and the fleet rig (`cargo xtask fleet`) share
//! this launcher.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Result};

use crate::http::Client;
use crate::process::Server;

/// Where Debian's `docker-registry` package puts Distribution.
pub const BINARY: &str = "/usr/bin/docker-registry";

/// A Distribution process with its config and storage under one directory; stopped by PID
/// when dropped.
pub struct Registry {
    server: Option<Server>,
    /// How many times the process was started (each run logs to a file of its own).
    runs: usize,
    port: u16,
    dir: PathBuf,
    probe: Client,
}

impl Registry {
    /// Writes `dir/config.yml` (storage in `dir/storage`, `extra_config` appended: an `auth:`
    /// section, say), starts the registry and waits until it answers.
    pub fn start(dir: &Path, extra_config: &str) -> Result<Registry> {
        ensure!(
            Path::new(BINARY).is_file(),
            "{BINARY} is missing: apt-get install docker-registry (.ci/run does)"
        );
        let port = crate::net::free_port();
        std::fs::create_dir_all(dir)?;
        std::fs::write(
            dir.join("config.yml"),
            format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: fnhost-test-registry\n{extra_config}",
                dir.join("storage").display()
            ),
        )?;
        let mut registry = Registry {
            server: None,
            runs: 0,
            port,
            dir: dir.to_path_buf(),
            probe: Client::new(Duration::from_secs(5)),
        };
        registry.run()?;
        Ok(registry)
    }

    /// Starts the process (again: same port, same storage) and waits until `/v2/` answers
    /// (200, or 401 when it has basic auth).
    pub fn run(&mut self) -> Result<()> {
        ensure!(self.server.is_none(), "registry already running");
        self.runs += 1;
        let log = self.dir.join(format!("registry-{}.log", self.runs));
        let mut cmd = Command::new(BINARY);
        cmd.arg("serve").arg(self.dir.join("config.yml"));
        let mut server = Server::spawn("docker-registry", &mut cmd, &log)?;
        let url = self.url("/v2/");
        server.wait_ready(
            "an answer on /v2/",
            Duration::from_secs(20),
            Duration::from_millis(50),
            || {
                self.probe
                    .get(&url)
                    .is_ok_and(|r| r.status == 200 || r.status == 401)
            },
        )?;
        self.server = Some(server);
        Ok(())
    }

    /// Stops the process by its PID (SIGTERM, then SIGKILL) and reaps it.
    pub fn stop(&mut self) -> Result<()> {
        if let Some(server) = self.server.take() {
            server.terminate(Duration::from_secs(10))?;
        }
        Ok(())
    }

    pub fn is_running(&self) -> bool {
        self.server.is_some()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, as a `registry = …` source or a reference names it.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}
