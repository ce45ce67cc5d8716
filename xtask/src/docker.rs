//! A private Docker daemon and the fnhost containers run in it, shared by the container
//! end-to-end test (`image`) and the fleet rig (`fleet`).
//!
//! [`Dockerd`] is a `dockerd` with its own data root, exec root, pid file and socket under a
//! work directory, started with `--bridge=none --iptables=false --ip6tables=false`: it creates
//! no bridge and leaves the machine's firewall and forwarding alone, so a container can only
//! use the host's network. [`Dockerd::run_fnhost`] starts the fnhost image the way the
//! Kubernetes manifests do (read-only root, non-root 65532, no capabilities, tmpfs on /cache
//! and /state, a memory limit) with `--network host` and every listener on a loopback
//! address: all test traffic stays on 127.0.0.1. The daemon is stopped by PID and every
//! [`Container`] is removed by name when dropped, on success and on failure.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use devkit::cmd::{capture, run, succeeds};
use devkit::install::ensure_tool;
use devkit::process::Server;

use crate::image::{docker_build, stage_context, IMAGE};

/// `docker`, talking to the daemon at `host` (else the one the environment points at).
pub fn docker(host: Option<&str>) -> Command {
    let mut c = Command::new("docker");
    if let Some(h) = host {
        c.env("DOCKER_HOST", h);
    }
    c
}

/// A private Docker daemon under `<work>/docker`, stopped by PID (also when dropped).
pub struct Dockerd {
    server: Option<Server>,
    host: String,
    dir: PathBuf,
}

impl Dockerd {
    /// Starts the daemon and waits (bounded) until it answers `docker version`.
    pub fn start(work: &Path) -> Result<Dockerd> {
        let dockerd = ensure_tool("dockerd", &["docker.io"])?;
        let dir = work.join("docker");
        fs::create_dir_all(&dir)?;
        let sock = dir.join("docker.sock");
        let host = format!("unix://{}", sock.display());
        let mut cmd = Command::new(dockerd);
        cmd.arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .arg("--host")
            .arg(&host)
            // No bridge, no firewall rules, no forwarding: containers get the host's network
            // (`--network host`) or none, and the machine's settings stay as they were.
            .args([
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                "--ip-forward=false",
                "--ip-masq=false",
            ]);
        let server = Server::spawn("dockerd", &mut cmd, &dir.join("dockerd.log"))?;
        println!("docker: dockerd pid {}", server.pid());
        let mut d = Dockerd {
            server: Some(server),
            host,
            dir,
        };
        let probe = d.host.clone();
        let up = d.server.as_mut().expect("just started").wait_ready(
            "answering `docker version`",
            Duration::from_secs(60),
            Duration::from_millis(250),
            || succeeds(docker(Some(&probe)).args(["version", "--format", "{{.Server.Version}}"])),
        );
        if let Err(e) = up {
            let _ = d.stop();
            return Err(e.context("dockerd cannot run on this machine"));
        }
        println!("docker: dockerd is up at {}", d.host);
        Ok(d)
    }

    /// Starts a daemon and builds the fnhost image in it (the static binary first, so a build
    /// failure leaves no daemon to stop).
    pub fn with_image(root: &Path, work: &Path) -> Result<Dockerd> {
        let context = stage_context()?;
        let daemon = Dockerd::start(work)?;
        docker_build(root, &context, Some(&daemon.host))?;
        Ok(daemon)
    }

    pub fn docker(&self) -> Command {
        docker(Some(&self.host))
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("dockerd.log")
    }

    /// Runs the fnhost image as `name` on the host's network; see the module docs.
    pub fn run_fnhost(&self, run_spec: &FnhostRun) -> Result<Container> {
        let mut cmd = self.docker();
        cmd.args(["run", "--detach", "--name", &run_spec.name])
            .args(["--network", "host"])
            .args(["--read-only", "--user", "65532:65532", "--memory", "512m"])
            .args(["--cap-drop", "ALL", "--security-opt", "no-new-privileges"])
            .args([
                "--tmpfs",
                "/cache:rw,noexec,nosuid,size=256m,uid=65532,gid=65532,mode=0700",
            ])
            .args([
                "--tmpfs",
                "/state:rw,noexec,nosuid,size=1m,uid=65532,gid=65532,mode=0700",
            ]);
        for (host_dir, target) in &run_spec.mounts {
            cmd.arg("--volume")
                .arg(format!("{}:{target}:ro", host_dir.display()));
        }
        for (k, v) in &run_spec.env {
            cmd.arg("--env").arg(format!("{k}={v}"));
        }
        cmd.arg(IMAGE)
            .args([
                "up",
                "--manifest",
                "/app/spin.toml",
                "--cache-dir",
                "/cache",
            ])
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", run_spec.port))
            .arg("--admin-listen")
            .arg(format!("127.0.0.1:{}", run_spec.admin_port));
        run(&mut cmd)?;
        Ok(Container {
            name: run_spec.name.clone(),
            host: self.host.clone(),
            removed: false,
        })
    }

    /// SIGTERM by PID, then SIGKILL after 20 s; then the containerd it started and its data
    /// root.
    pub fn stop(mut self) -> Result<()> {
        self.shut_down()
    }

    fn shut_down(&mut self) -> Result<()> {
        let Some(server) = self.server.take() else {
            return Ok(());
        };
        let containerd_pid = fs::read_to_string(self.dir.join("exec/containerd/containerd.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        if server.terminate(Duration::from_secs(20)).is_err() {
            println!("docker: dockerd did not stop within 20 s of SIGTERM and was killed");
        }
        // dockerd stops its containerd on SIGTERM; after a SIGKILL it may be left behind.
        if let Some(pid) = containerd_pid {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let exec_root = self.dir.join("exec");
            if String::from_utf8_lossy(&cmdline).contains(&*exec_root.to_string_lossy()) {
                println!("docker: killing the containerd dockerd left behind (pid {pid})");
                let _ = devkit::process::signal(pid, devkit::process::Signal::KILL);
            }
        }
        let data = self.dir.join("data");
        if data.exists() {
            // Overlay mounts are gone once the daemon has exited; a leftover one is reported.
            fs::remove_dir_all(&data).with_context(|| format!("removing {}", data.display()))?;
        }
        Ok(())
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let _ = self.shut_down();
    }
}

/// How [`Dockerd::run_fnhost`] runs one fnhost container.
pub struct FnhostRun {
    pub name: String,
    /// Public listener, `127.0.0.1:port`.
    pub port: u16,
    /// Admin listener, `127.0.0.1:admin_port`.
    pub admin_port: u16,
    /// Host directories mounted read-only: `(host dir, container path)`.
    pub mounts: Vec<(PathBuf, String)>,
    pub env: Vec<(String, String)>,
}

/// A container, removed (`docker rm -f`) when done, also on an early return.
pub struct Container {
    pub name: String,
    host: String,
    removed: bool,
}

impl Container {
    /// `docker inspect`'s state: `running`, `exited`, ….
    pub fn state(&self) -> Result<String> {
        Ok(capture(docker(Some(&self.host)).args([
            "inspect",
            "--format",
            "{{.State.Status}}",
            &self.name,
        ]))?
        .trim()
        .to_string())
    }

    /// Fails unless the container is running.
    pub fn ensure_running(&self) -> Result<()> {
        let state = self.state()?;
        ensure!(
            state == "running",
            "container {} is {state:?}, not running",
            self.name
        );
        Ok(())
    }

    /// SIGKILL to the container's process (`docker kill`), as a node failure would.
    pub fn kill(&self) -> Result<()> {
        run(docker(Some(&self.host)).args(["kill", "--signal", "KILL", &self.name]))
    }

    /// Starts the stopped container again, as the kubelet restarts a failed container.
    pub fn restart(&self) -> Result<()> {
        run(docker(Some(&self.host)).args(["start", &self.name]))
    }

    /// Prints the last lines of the container's log.
    pub fn print_logs(&self, lines: u32) {
        let _ =
            run(docker(Some(&self.host)).args(["logs", "--tail", &lines.to_string(), &self.name]));
    }

    pub fn remove(mut self) -> Result<()> {
        self.removed = true;
        run(docker(Some(&self.host)).args(["rm", "--force", &self.name]))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if !self.removed {
            let _ = docker(Some(&self.host))
                .args(["rm", "--force", &self.name])
                .status();
        }
    }
}
