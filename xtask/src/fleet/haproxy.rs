//! The load balancer in front of the replicas: Debian's HAProxy with a config file written
//! here, run in the foreground and stopped by PID, and its statistics (the CSV of its stats
//! page) read into counters.
//!
//! Routing: round robin over the replicas, health-checked on `/readyz` every 200 ms (down
//! after 2 failures, up after 2 successes). Retries: up to 3, each on another replica
//! (`option redispatch 1`), on a failed connection, an empty response (a replica killed
//! mid-request) and a 5xx, for GET and HEAD only (idempotent; `disable-l7-retry` for every
//! other method).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use devkit::http::Client;
use devkit::install::ensure_tool;
use devkit::process::Server;

/// A running HAProxy.
pub struct Haproxy {
    server: Server,
    /// Where clients connect: `127.0.0.1:port`.
    pub port: u16,
    stats_port: u16,
    http: Client,
}

/// The config file for `backends` (`127.0.0.1` ports), listening on `port`, stats on
/// `stats_port`.
fn config(port: u16, stats_port: u16, backends: &[u16]) -> String {
    let mut servers = String::new();
    for (i, b) in backends.iter().enumerate() {
        servers.push_str(&format!(
            "    server replica{} 127.0.0.1:{b} check\n",
            i + 1
        ));
    }
    format!(
        "# Written by `cargo xtask fleet`.
global
    maxconn 4096
    # To standard output (the log file): only what went wrong (dontlog-normal), with the
    # termination state that says who cut a request.
    log stdout format raw local0 info

defaults
    mode http
    log global
    option httplog
    option dontlog-normal
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 5s
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response 500 502 503 504

frontend fleet
    bind 127.0.0.1:{port}
    default_backend replicas

backend replicas
    balance roundrobin
    http-request disable-l7-retry unless METH_GET || METH_HEAD
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 200ms fall 2 rise 2
{servers}
listen stats
    bind 127.0.0.1:{stats_port}
    stats enable
    stats uri /stats
"
    )
}

impl Haproxy {
    /// Writes `dir/haproxy.cfg`, checks it (`haproxy -c`), starts HAProxy and waits until its
    /// stats page answers.
    pub fn start(dir: &Path, backends: &[u16]) -> Result<Haproxy> {
        let binary = ensure_tool("haproxy", &["haproxy"])?;
        let [port, stats_port] = devkit::net::free_ports();
        let cfg = dir.join("haproxy.cfg");
        std::fs::write(&cfg, config(port, stats_port, backends))?;
        devkit::cmd::run(Command::new(&binary).arg("-c").arg("-f").arg(&cfg))?;
        // -db: foreground, no daemon (the PID is the process this code started).
        let mut cmd = Command::new(&binary);
        cmd.arg("-db").arg("-f").arg(&cfg);
        let mut server = Server::spawn("haproxy", &mut cmd, &dir.join("haproxy.log"))?;
        server.wait_http_ok(
            &format!("127.0.0.1:{stats_port}"),
            "/stats",
            Duration::from_secs(20),
        )?;
        println!("fleet: haproxy pid {} on 127.0.0.1:{port}", server.pid());
        Ok(Haproxy {
            server,
            port,
            stats_port,
            http: Client::new(Duration::from_secs(5)),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The counters of the stats page, by `(proxy, server)` (`FRONTEND`, `BACKEND` or a
    /// server's name).
    pub fn stats(&mut self) -> Result<Stats> {
        self.server.check_alive()?;
        let url = format!("http://127.0.0.1:{}/stats;csv", self.stats_port);
        let r = self.http.get(&url)?;
        anyhow::ensure!(r.status == 200, "{url}: HTTP {}", r.status);
        let mut stats = parse_csv(&r.text())?;
        // The request log goes to standard output (`log stdout`), which Server keeps in `.out`.
        let request_log = self.server.log_path().with_extension("out");
        stats.client_aborts =
            client_aborts(&std::fs::read_to_string(request_log).unwrap_or_default());
        Ok(stats)
    }

    /// How many servers the health checks see as UP.
    pub fn servers_up(&mut self) -> Result<usize> {
        Ok(self
            .stats()?
            .rows
            .iter()
            .filter(|((px, sv), row)| {
                px == "replicas" && sv != "BACKEND" && row.get("status").is_some_and(|s| s == "UP")
            })
            .count())
    }
}

/// HAProxy's statistics at one moment.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    rows: BTreeMap<(String, String), BTreeMap<String, String>>,
    /// Client aborts logged so far (see [`client_aborts`]).
    client_aborts: u64,
}

/// Log lines (`option httplog`) of requests the client abandoned before anything was sent
/// back: termination state `C…` (the client aborted) and 0 bytes sent. HAProxy counts these
/// as 400 answers (`<BADREQ>` when wrk closes a connection in the middle of a request as it
/// stops), yet no client received one.
fn client_aborts(log: &str) -> u64 {
    log.lines()
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // client, [date], frontend, backend/server, timers, status, bytes, cookie, cookie,
            // termination state, …
            fields.len() > 9
                && fields[6] == "0"
                && fields[9].len() == 4
                && fields[9].starts_with('C')
        })
        .count() as u64
}

/// Counters of one scenario: the difference of two [`Stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counters {
    /// Answers to clients that were not 2xx/3xx (frontend `hrsp_4xx` + `hrsp_5xx` +
    /// `hrsp_other`), less the requests their client abandoned with nothing sent back (the
    /// log's `C…` lines, see [`client_aborts`]). Not `ereq`: besides malformed requests it
    /// counts clients that close a connection, which wrk does to every connection when it
    /// stops (the log file shows each with its termination state).
    pub client_failures: u64,
    /// Failures at the replicas: failed connections and broken or empty responses (servers'
    /// `econ` + `eresp`) and 5xx answers (servers' `hrsp_5xx`).
    pub replica_failures: u64,
    /// Retries and redispatches HAProxy made (backend `wretr` + `wredis`).
    pub retries: u64,
}

impl Stats {
    fn counter(&self, proxy: &str, server: &str, field: &str) -> u64 {
        self.rows
            .get(&(proxy.to_string(), server.to_string()))
            .and_then(|r| r.get(field))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    fn servers(&self) -> impl Iterator<Item = &str> {
        self.rows
            .keys()
            .filter(|(px, sv)| px == "replicas" && sv != "BACKEND")
            .map(|(_, sv)| sv.as_str())
    }

    fn totals(&self) -> Counters {
        let fe = |f| self.counter("fleet", "FRONTEND", f);
        let be = |f| self.counter("replicas", "BACKEND", f);
        let replica_failures = self
            .servers()
            .map(|s| {
                ["econ", "eresp", "hrsp_5xx"]
                    .iter()
                    .map(|f| self.counter("replicas", s, f))
                    .sum::<u64>()
            })
            .sum();
        Counters {
            client_failures: fe("hrsp_4xx") + fe("hrsp_5xx") + fe("hrsp_other"),
            replica_failures,
            retries: be("wretr") + be("wredis"),
        }
    }

    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &Stats) -> Counters {
        let (a, b) = (earlier.totals(), self.totals());
        let aborted = self.client_aborts - earlier.client_aborts;
        Counters {
            client_failures: (b.client_failures - a.client_failures).saturating_sub(aborted),
            replica_failures: b.replica_failures - a.replica_failures,
            retries: b.retries - a.retries,
        }
    }
}

fn parse_csv(text: &str) -> Result<Stats> {
    let mut lines = text.lines();
    let header = lines
        .next()
        .and_then(|h| h.strip_prefix("# "))
        .context("no CSV header on the stats page")?;
    let names: Vec<&str> = header.split(',').collect();
    let mut rows = BTreeMap::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let row: BTreeMap<String, String> = names
            .iter()
            .zip(line.split(','))
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        let key = (
            row.get("pxname").cloned().unwrap_or_default(),
            row.get("svname").cloned().unwrap_or_default(),
        );
        rows.insert(key, row);
    }
    Ok(Stats {
        rows,
        client_aborts: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_differences_of_the_csv() {
        let csv = |fe5: u64, econ: u64, wretr: u64| {
            format!(
                "# pxname,svname,ereq,econ,eresp,wretr,wredis,status,hrsp_4xx,hrsp_5xx,hrsp_other,\n\
                 fleet,FRONTEND,0,,,,,OPEN,0,{fe5},0,\n\
                 replicas,replica1,,{econ},1,0,0,UP,0,2,0,\n\
                 replicas,replica2,,0,0,0,0,DOWN,0,0,0,\n\
                 replicas,BACKEND,,{econ},1,{wretr},1,UP,0,2,0,\n"
            )
        };
        let before = parse_csv(&csv(0, 0, 0)).unwrap();
        let after = parse_csv(&csv(1, 4, 5)).unwrap();
        assert_eq!(
            after.since(&before),
            Counters {
                client_failures: 1,
                replica_failures: 4,
                retries: 5
            }
        );
        assert_eq!(after.servers().count(), 2);
    }

    #[test]
    fn abandoned_requests_are_not_failures_a_client_saw() {
        let log = "\
127.0.0.1:56676 [30/Nov/2026:21:15:16.544] fleet fleet/<NOSRV> -1/-1/-1/-1/0 400 0 - - CR-- 2/1/0/0/0 0/0 \"<BADREQ>\"
127.0.0.1:56680 [30/Nov/2026:21:15:16.601] fleet replicas/replica2 0/0/0/-1/3 502 209 - - SH-- 3/3/2/1/0 0/0 \"GET /api/v0/pi HTTP/1.1\"
127.0.0.1:56690 [30/Nov/2026:21:15:16.700] fleet replicas/replica1 0/0/0/1/1 200 93 - - CD-- 3/3/2/1/0 0/0 \"GET /api/v0/pi HTTP/1.1\"
Server replicas/replica1 is DOWN, reason: Layer4 connection problem, info: \"Connection refused\", check duration: 0ms. 2 active and 0 backup servers left.
";
        assert_eq!(client_aborts(log), 1);
        let mut before = Stats::default();
        before.rows.insert(
            ("fleet".into(), "FRONTEND".into()),
            [("hrsp_4xx".to_string(), "0".to_string())].into(),
        );
        let mut after = before.clone();
        after.rows.insert(
            ("fleet".into(), "FRONTEND".into()),
            [
                ("hrsp_4xx".to_string(), "1".to_string()),
                ("hrsp_5xx".to_string(), "1".to_string()),
            ]
            .into(),
        );
        after.client_aborts = client_aborts(log);
        assert_eq!(
            after.since(&before).client_failures,
            1,
            "the 502 counts, the abort not"
        );
    }
}
