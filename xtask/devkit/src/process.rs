//! Server processes started by the workflows and tests: spawned with stderr (their log) in a
//! file and stdout in another beside it, ready when an HTTP path answers 200 (bounded wait, failing at once if the process
//! exits), stopped by PID when dropped: SIGTERM, then SIGKILL if it has not exited within the
//! grace period, then reaped. Nothing is ever stopped by name.
//!
//! Also the process's resident memory and CPU time, read from `/proc/PID`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
pub use rustix::process::Signal;

use crate::http::Client;

/// How long a dropped [`Server`] gets between SIGTERM and SIGKILL.
const DROP_GRACE: Duration = Duration::from_secs(10);

/// A process this code started; stopped by PID when dropped.
pub struct Server {
    child: Option<Child>,
    name: String,
    log: PathBuf,
    cmdline: String,
    started: Instant,
}

impl Server {
    /// Spawns `cmd` with stdin closed, stderr written to `log` and stdout to `log` with the
    /// extension `out` (kept apart: a log in JSON lines stays JSON lines); prints it first.
    pub fn spawn(name: &str, cmd: &mut Command, log: &Path) -> Result<Server> {
        let create =
            |p: &Path| File::create(p).with_context(|| format!("creating {}", p.display()));
        let stdout = log.with_extension("out");
        cmd.stdin(Stdio::null())
            .stdout(create(&stdout)?)
            .stderr(create(log)?);
        let cmdline = crate::cmd::shown(cmd);
        println!("$ {cmdline} > {} 2> {} &", stdout.display(), log.display());
        let started = Instant::now();
        let child = cmd.spawn().with_context(|| format!("starting {cmdline}"))?;
        Ok(Server {
            child: Some(child),
            name: name.to_string(),
            log: log.to_path_buf(),
            cmdline,
            started,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// When the process was spawned.
    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// What the process wrote to stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.log_text();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// An error naming the process and its log if it has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        let child = self.child.as_mut().context("process already stopped")?;
        if let Some(status) = child.try_wait()? {
            self.child = None;
            bail!(
                "{} (`{}`) exited with {status}; log {}:\n{}",
                self.name,
                self.cmdline,
                self.log.display(),
                self.log_tail(60)
            );
        }
        Ok(())
    }

    /// Polls `ready` every `every` until it returns true (then the time since spawn), the
    /// process exits, or `timeout` passes (both errors carry the log's tail).
    pub fn wait_ready(
        &mut self,
        what: &str,
        timeout: Duration,
        every: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Result<Duration> {
        let deadline = Instant::now() + timeout;
        loop {
            if ready() {
                return Ok(self.started.elapsed());
            }
            self.check_alive()
                .with_context(|| format!("before {what}"))?;
            if Instant::now() > deadline {
                bail!(
                    "{} did not reach {what} within {timeout:?}; log {}:\n{}",
                    self.name,
                    self.log.display(),
                    self.log_tail(60)
                );
            }
            std::thread::sleep(every);
        }
    }

    /// Waits until `GET http://addr/path` answers 200 (polled every 2 ms on a new connection);
    /// returns the time since spawn.
    pub fn wait_http_ok(&mut self, addr: &str, path: &str, timeout: Duration) -> Result<Duration> {
        let client = Client::fresh_connections(Duration::from_secs(30));
        let url = format!("http://{addr}{path}");
        self.wait_ready(
            &format!("200 on {path}"),
            timeout,
            Duration::from_millis(2),
            || client.get(&url).is_ok_and(|r| r.status == 200),
        )
    }

    /// SIGTERM, then waits up to `grace` for the exit (SIGKILL after it); returns the status.
    pub fn terminate(self, grace: Duration) -> Result<ExitStatus> {
        self.stop_with(Signal::TERM, grace)
    }

    /// `sig` (SIGINT makes wrk print its summary), then waits up to `grace` for the exit
    /// (SIGKILL after it); returns the status.
    pub fn stop_with(mut self, sig: Signal, grace: Duration) -> Result<ExitStatus> {
        let mut child = self.child.take().context("process already stopped")?;
        let status = stop(&mut child, sig, grace)?;
        status.with_context(|| {
            format!(
                "{} did not exit within {grace:?} of {sig:?} and was killed",
                self.name
            )
        })
    }

    /// A `/proc/PID/status` field in KiB (`VmRSS`, `VmHWM`).
    pub fn status_kib(&self, field: &str) -> Result<u64> {
        status_kib(self.pid(), field)
    }

    /// Resident memory in KiB.
    pub fn rss_kib(&self) -> Result<u64> {
        self.status_kib("VmRSS")
    }

    /// CPU time used so far (all threads, user + system).
    pub fn cpu_time(&self) -> Result<Duration> {
        cpu_time(self.pid())
    }

    /// Minor page faults taken so far (all threads).
    pub fn minor_faults(&self) -> Result<u64> {
        minor_faults(self.pid())
    }

    /// CPU time used so far by the threads named `name`.
    pub fn thread_cpu_time(&self, name: &str) -> Result<Duration> {
        thread_cpu_time(self.pid(), name)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = stop(&mut child, Signal::TERM, DROP_GRACE);
        }
    }
}

/// `sig` to `child`, reaped within `grace`; otherwise SIGKILL and reaped: `Ok(None)`.
fn stop(child: &mut Child, sig: Signal, grace: Duration) -> Result<Option<ExitStatus>> {
    if let Some(status) = child.try_wait()? {
        return Ok(Some(status));
    }
    let _ = signal(child.id(), sig);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait()?;
    Ok(None)
}

/// Sends `sig` to the process `pid` (one this code started, or one such a process started).
pub fn signal(pid: u32, sig: Signal) -> Result<()> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| anyhow!("not a process id: {pid}"))?;
    rustix::process::kill_process(pid, sig).with_context(|| format!("kill -{sig:?} {pid:?}"))
}

/// A `/proc/PID/status` field in KiB (`VmRSS`, `VmHWM`).
pub fn status_kib(pid: u32, field: &str) -> Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    s.lines()
        .find_map(|l| l.strip_prefix(field).and_then(|r| r.strip_prefix(':')))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow!("no {field} in /proc/{pid}/status"))
}

/// CPU time process `pid` has used so far (all threads, user + system).
pub fn cpu_time(pid: u32) -> Result<Duration> {
    // utime and stime, in clock ticks of 10 ms (USER_HZ, fixed at 100 by the kernel ABI).
    let [utime, stime] = stat_fields(pid, [14, 15])?;
    Ok(Duration::from_millis((utime + stime) * 10))
}

/// CPU time the threads of process `pid` named `name` (their `comm`, at most 15 bytes) have
/// run so far, to the nanosecond (the scheduler's own count, `/proc/PID/task/TID/schedstat`,
/// where `stat` rounds down to 10 ms ticks); an error if it has no such thread.
pub fn thread_cpu_time(pid: u32, name: &str) -> Result<Duration> {
    let mut total = None;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let task = task?.path();
        // A thread may end between the listing and the reads: skip it.
        let (Ok(comm), Ok(schedstat)) = (
            std::fs::read_to_string(task.join("comm")),
            std::fs::read_to_string(task.join("schedstat")),
        ) else {
            continue;
        };
        if comm.trim_end_matches('\n') == name {
            let ns: u64 = schedstat
                .split_whitespace()
                .next()
                .and_then(|ns| ns.parse().ok())
                .ok_or_else(|| anyhow!("odd {}: {schedstat:?}", task.display()))?;
            total = Some(total.unwrap_or(Duration::ZERO) + Duration::from_nanos(ns));
        }
    }
    total.ok_or_else(|| anyhow!("process {pid} has no thread named {name:?}"))
}

/// Minor page faults process `pid` has taken so far (all threads): each one a page the kernel
/// had to map, zero or copy.
pub fn minor_faults(pid: u32) -> Result<u64> {
    let [minflt] = stat_fields(pid, [10])?;
    Ok(minflt)
}

/// Numeric fields of `/proc/PID/stat`, numbered as in proc(5) (from 1, the pid).
fn stat_fields<const N: usize>(pid: u32, numbers: [usize; N]) -> Result<[u64; N]> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is parenthesised and may hold spaces: count from after it,
    // where field 3 starts.
    let rest = stat
        .rsplit_once(')')
        .ok_or_else(|| anyhow!("odd /proc/{pid}/stat"))?
        .1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let mut values = [0; N];
    for (value, number) in values.iter_mut().zip(numbers) {
        *value = fields
            .get(number - 3)
            .ok_or_else(|| anyhow!("short /proc/{pid}/stat"))?
            .parse::<u64>()?;
    }
    Ok(values)
}

/// Polls `f` every 50 ms until it returns true (then true) or `timeout` passes (then false).
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }

    #[test]
    fn a_server_that_exits_fails_the_wait_with_its_log() {
        let dir = crate::TempDir::new("devkit-process");
        let mut s = Server::spawn(
            "early",
            &mut sh("echo broken config >&2; exit 3"),
            &dir.join("log"),
        )
        .unwrap();
        let err = s
            .wait_ready(
                "ready",
                Duration::from_secs(10),
                Duration::from_millis(10),
                || false,
            )
            .unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("exited") && text.contains("broken config"),
            "{text}"
        );
    }

    #[test]
    fn terminate_uses_sigterm_and_a_process_ignoring_it_is_killed_on_drop() {
        let dir = crate::TempDir::new("devkit-process");
        let s = Server::spawn("sleeper", &mut sh("exec sleep 30"), &dir.join("a")).unwrap();
        let t = Instant::now();
        let status = s.terminate(Duration::from_secs(10)).unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(15)
        );
        assert!(t.elapsed() < Duration::from_secs(5));

        let mut stubborn = Server::spawn(
            "stubborn",
            &mut sh("trap '' TERM; echo up >&2; while true; do sleep 0.05; done"),
            &dir.join("b"),
        )
        .unwrap();
        stubborn
            .wait_ready(
                "up",
                Duration::from_secs(10),
                Duration::from_millis(10),
                || {
                    std::fs::read_to_string(dir.join("b"))
                        .unwrap_or_default()
                        .contains("up")
                },
            )
            .unwrap();
        let pid = stubborn.pid();
        assert!(stubborn.rss_kib().unwrap() > 0);
        let err = stubborn.terminate(Duration::from_millis(300)).unwrap_err();
        assert!(format!("{err}").contains("killed"));
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "not reaped");
    }

    #[test]
    fn dropping_a_server_stops_and_reaps_it() {
        let dir = crate::TempDir::new("devkit-process");
        let s = Server::spawn("sleeper", &mut sh("exec sleep 30"), &dir.join("log")).unwrap();
        let pid = s.pid();
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        let t = Instant::now();
        drop(s);
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "SIGTERM, not the grace period"
        );
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "not reaped");
    }

    #[test]
    fn cpu_time_of_this_process_grows() {
        let me = std::process::id();
        let before = cpu_time(me).unwrap();
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(60) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0 && cpu_time(me).unwrap() > before);
    }

    #[test]
    fn thread_cpu_time_counts_the_named_threads_only() {
        let me = std::process::id();
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let (spun, spinning) = std::sync::mpsc::channel::<()>();
        let spinner = std::thread::Builder::new()
            .name("devkit-spinner".into())
            .spawn(move || {
                let t = Instant::now();
                let mut x = 0u64;
                while t.elapsed() < Duration::from_millis(80) {
                    x = x.wrapping_add(std::hint::black_box(1));
                }
                spun.send(()).unwrap();
                let _ = wait.recv();
                x
            })
            .unwrap();
        spinning.recv().unwrap();
        let spinner_time = thread_cpu_time(me, "devkit-spinner").unwrap();
        let err = thread_cpu_time(me, "devkit-nobody").unwrap_err();
        done.send(()).unwrap();
        assert!(spinner.join().unwrap() > 0);
        assert!(
            spinner_time >= Duration::from_millis(30),
            "{spinner_time:?}"
        );
        assert!(spinner_time < cpu_time(me).unwrap() + Duration::from_millis(10));
        assert!(format!("{err:#}").contains("no thread named"), "{err:#}");
    }

    #[test]
    fn minor_faults_count_pages_first_touched() {
        use rustix::mm::{mmap_anonymous, munmap, MapFlags, ProtFlags};
        let me = std::process::id();
        // 256 pages of a new anonymous mapping (not the C allocator's, which may hand out
        // pages already touched), each written once: one fault each.
        let len = 256 << 12;
        let before = minor_faults(me).unwrap();
        // SAFETY: a new private mapping of `len` bytes, written only within it, unmapped once.
        unsafe {
            let pages = mmap_anonymous(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE,
            )
            .unwrap()
            .cast::<u8>();
            for page in 0..256 {
                pages.add(page << 12).write_volatile(1);
            }
            let after = minor_faults(me).unwrap();
            munmap(pages.cast(), len).unwrap();
            assert!(after >= before + 256, "{before} → {after}");
        }
    }
}
