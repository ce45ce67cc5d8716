//! The load generator: wrk's command line (as run and as shown in the report) and its
//! output, parsed into a typed result.

use std::process::{Child, Command, Stdio};

use anyhow::{anyhow, ensure, Context, Result};
use serde::{Deserialize, Serialize};

/// One wrk run's numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WrkResult {
    #[serde(rename = "req_per_s")]
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub requests: u64,
    #[serde(rename = "non_2xx_3xx")]
    pub non2xx: u64,
    pub socket_errors: u64,
}

impl WrkResult {
    /// Every request answered 2xx/3xx, none failed on the socket, and there were some.
    pub fn clean(&self) -> bool {
        self.non2xx == 0 && self.socket_errors == 0 && self.requests > 0
    }
}

fn command(url: &str, conns: u32, secs: u32) -> Command {
    let mut c = Command::new("wrk");
    c.args([
        format!("-t{}", conns.min(2)),
        format!("-c{conns}"),
        format!("-d{secs}s"),
        "--timeout".into(),
        "30s".into(),
        "--latency".into(),
        url.to_string(),
    ]);
    c
}

/// A cell measured in rounds: the req/s of every round, in order, and the round with the median
/// req/s (the higher middle one of an even number), which stands for the cell, latencies
/// included.
pub fn median_round(mut rounds: Vec<WrkResult>) -> (Vec<f64>, WrkResult) {
    let req_per_s = rounds.iter().map(|w| w.rps).collect();
    rounds.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    let median = rounds.swap_remove(rounds.len() / 2);
    (req_per_s, median)
}

/// The wrk command as shown in the report (address replaced by `$ADDR`).
pub fn shown(path: &str, conns: u32, secs: u32) -> String {
    format!(
        "wrk -t{} -c{conns} -d{secs}s --timeout 30s --latency 'http://$ADDR{path}'",
        conns.min(2)
    )
}

/// Runs wrk against `url` for `secs` seconds with `conns` connections.
pub fn run(url: &str, conns: u32, secs: u32) -> Result<WrkResult> {
    let text = devkit::cmd::capture(&mut command(url, conns, secs)).context("running wrk")?;
    parse(&text).with_context(|| format!("parsing wrk output:\n{text}"))
}

/// Runs wrk with a Lua `script` (a POST body, say) against `url`.
pub fn run_script(url: &str, script: &std::path::Path, conns: u32, secs: u32) -> Result<WrkResult> {
    let mut c = command(url, conns, secs);
    c.arg("-s").arg(script);
    let text = devkit::cmd::capture(&mut c).context("running wrk")?;
    parse(&text).with_context(|| format!("parsing wrk output:\n{text}"))
}

/// wrk started in the background (its output read by [`Background::finish`]).
pub struct Background(Child);

pub fn start(url: &str, conns: u32, secs: u32) -> Result<Background> {
    let mut c = command(url, conns, secs);
    println!("$ {} &", devkit::cmd::shown(&c));
    Ok(Background(
        c.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting wrk")?,
    ))
}

impl Background {
    pub fn finish(self) -> Result<WrkResult> {
        let out = self.0.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        ensure!(
            out.status.success(),
            "wrk failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        parse(&text).with_context(|| format!("parsing wrk output:\n{text}"))
    }
}

pub fn parse(text: &str) -> Result<WrkResult> {
    let mut rps = None;
    let mut p50 = None;
    let mut p99 = None;
    let mut requests = None;
    let mut non2xx = 0;
    let mut socket_errors = 0;
    for line in text.lines() {
        let l = line.trim();
        if let Some(v) = l.strip_prefix("Requests/sec:") {
            rps = v.trim().parse::<f64>().ok();
        } else if let Some(v) = l.strip_prefix("50%") {
            p50 = parse_duration_ms(v.trim());
        } else if let Some(v) = l.strip_prefix("99%") {
            p99 = parse_duration_ms(v.trim());
        } else if let Some(v) = l.strip_prefix("Non-2xx or 3xx responses:") {
            non2xx = v.trim().parse()?;
        } else if let Some(v) = l.strip_prefix("Socket errors:") {
            for part in v.split(',') {
                if let Some(n) = part.split_whitespace().nth(1) {
                    socket_errors += n.parse::<u64>()?;
                }
            }
        } else if l.contains(" requests in ") {
            requests = l.split_whitespace().next().and_then(|n| n.parse().ok());
        }
    }
    Ok(WrkResult {
        rps: rps.ok_or_else(|| anyhow!("no Requests/sec"))?,
        p50_ms: p50.ok_or_else(|| anyhow!("no 50% latency"))?,
        p99_ms: p99.ok_or_else(|| anyhow!("no 99% latency"))?,
        requests: requests.ok_or_else(|| anyhow!("no request count"))?,
        non2xx,
        socket_errors,
    })
}

fn parse_duration_ms(s: &str) -> Option<f64> {
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = s.split_at(split);
    let n: f64 = n.trim().parse().ok()?;
    Some(match unit.trim() {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        "h" => n * 3_600_000.0,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "Running 2s test @ http://127.0.0.1:4000/api/v0/pi?ndigits=100
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.20ms    0.50ms  10.00ms   90.00%
  Latency Distribution
     50%  410.00us
     75%    1.50ms
     90%    2.00ms
     99%    4.30ms
  25000 requests in 2.00s, 5.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:  12500.50
Transfer/sec:      2.50MB
";

    #[test]
    fn parses_rate_latencies_counts_and_errors() {
        let w = parse(OUTPUT).unwrap();
        assert_eq!(
            w,
            WrkResult {
                rps: 12500.5,
                p50_ms: 0.41,
                p99_ms: 4.3,
                requests: 25000,
                non2xx: 5,
                socket_errors: 3,
            }
        );
        assert!(!w.clean());
        assert!(parse("Requests/sec: 1\n").is_err());
    }

    /// A cell is the round with the median req/s, its own latencies with it; the rounds' req/s
    /// stay in the order measured.
    #[test]
    fn a_cell_is_its_median_round() {
        let round = |rps: f64, p99_ms: f64| WrkResult {
            rps,
            p50_ms: 1.0,
            p99_ms,
            requests: 10,
            non2xx: 0,
            socket_errors: 0,
        };
        let (rounds, cell) = median_round(vec![
            round(300.0, 9.0),
            round(100.0, 1.0),
            round(200.0, 5.0),
        ]);
        assert_eq!(rounds, [300.0, 100.0, 200.0]);
        assert_eq!(cell, round(200.0, 5.0));
        let (_, cell) = median_round(vec![
            round(4.0, 4.0),
            round(1.0, 1.0),
            round(3.0, 3.0),
            round(2.0, 2.0),
        ]);
        assert_eq!(cell, round(3.0, 3.0));
        let (rounds, cell) = median_round(vec![round(7.0, 7.0)]);
        assert_eq!((rounds, cell), (vec![7.0], round(7.0, 7.0)));
    }
}
