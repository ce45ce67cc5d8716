//! fnhost's own clock for a fixed-rate run: the `ms` of its access lines (handler start →
//! response head), read from the log the benchmark's host writes. Beside the client's p99 it
//! splits a tail into what fnhost's handler took and what came before or after it (the socket,
//! waiting for a core, the load generator on the same two cores).

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use devkit::process::Server;
use serde::{Deserialize, Serialize};

use super::stats::percentile;

/// p50 and p99 of the handler times fnhost logged for one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HandlerLatency {
    pub requests: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Where a run starts in a host's log: the access lines written before it.
pub struct Mark(usize);

impl Mark {
    pub fn now(host: &Server) -> Mark {
        Mark(handler_ms(&host.log_text()).len())
    }

    /// The handler times of the access lines written since the mark, once at least `responses`
    /// are in the log (lines are flushed within 50 ms; bounded wait of 5 s).
    pub fn handler_latency(&self, host: &Server, responses: u64) -> Result<HandlerLatency> {
        let wanted = self.0 + usize::try_from(responses)?;
        let started = Instant::now();
        let mut times = handler_ms(&host.log_text());
        while times.len() < wanted && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
            times = handler_ms(&host.log_text());
        }
        ensure!(
            times.len() >= wanted && responses > 0,
            "{}: {} access lines since the run started, the client counted {responses} answers",
            host.name(),
            times.len().saturating_sub(self.0)
        );
        let run = &times[self.0..];
        Ok(HandlerLatency {
            requests: run.len() as u64,
            p50_ms: percentile(run, 0.5),
            p99_ms: percentile(run, 0.99),
        })
    }
}

/// The `ms` of every access line (`… INFO request request_id=… status=200 ms=0.42`), in order.
fn handler_ms(log: &str) -> Vec<f64> {
    log.lines()
        .filter(|l| l.contains("  INFO request request_id="))
        .filter_map(|l| l.rsplit_once(" ms=")?.1.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_access_lines_count() {
        let log = "\
2026-12-02T14:09:31.100000Z  INFO fnhost::up: serving listen=127.0.0.1:3000
2026-12-02T14:09:31.607631Z  INFO request request_id=f0006033-1 method=POST path=/v2/models/m/infer component=\"model\" version=\"model@dafad05e\" status=200 ms=0.64
2026-12-02T14:09:31.607655Z  INFO fnhost::deployments: version loaded component=\"model\" ms=35.20
2026-12-02T14:09:31.609031Z  INFO request request_id=f0006033-2 method=GET path=/api/v0/pi component=\"pi\" version=\"pi@0123abcd\" status=400 ms=12.5
";
        assert_eq!(handler_ms(log), vec![0.64, 12.5]);
    }
}
