//! Section 5, per-instance cost, with the pooling allocator and with `--no-pooling`: the mean
//! instantiation time from fnhost's metrics histogram during a wrk run, and the RSS each
//! concurrent instance adds (sleeping requests to the test-faults component).

use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Result};
use serde::{Deserialize, Serialize};

use super::servers::{check_route, get, write_manifest, Fnhost, IRIS_PATH, PI_PATH, ROOT_SHOWN};
use super::wrk;
use super::Ctx;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PerInstance {
    /// The manifest served (repository root as `$ROOT`).
    pub manifest: String,
    /// Requests in flight at once for the memory measurement, and how long each sleeps.
    pub concurrent: usize,
    pub sleep_ms: u64,
    /// Length of the wrk run per route for the instantiation time.
    pub load_seconds: u32,
    pub runs: Vec<AllocatorRun>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AllocatorRun {
    /// `pooling` or `no-pooling`.
    pub allocator: String,
    pub instantiation: Instantiation,
    pub idle_rss_kib: u64,
    /// Highest RSS sampled while the sleeping requests were in flight.
    pub loaded_rss_kib: u64,
    pub rss_after_kib: u64,
    /// Highest `fnhost_requests_in_flight` sampled meanwhile.
    pub max_in_flight_seen: u64,
    pub per_instance_kib: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Instantiation {
    pub iris: MeanInstantiation,
    pub pi: MeanInstantiation,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MeanInstantiation {
    pub mean_us: f64,
    pub count: u64,
    pub req_per_s: f64,
}

/// Sum and count of a histogram over all label sets whose labels contain `filter`.
pub fn histogram_sum_count(metrics: &str, name: &str, filter: &str) -> (f64, f64) {
    let (mut sum, mut count) = (0.0, 0.0);
    for line in metrics.lines() {
        let Some((key, val)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = val.parse::<f64>() else { continue };
        if !key.contains(filter) {
            continue;
        }
        if key.starts_with(&format!("{name}_sum")) {
            sum += v;
        } else if key.starts_with(&format!("{name}_count")) {
            count += v;
        }
    }
    (sum, count)
}

/// The memory measurement's host returns freed pages to the system at once: by default its
/// allocator (mimalloc) keeps them for reuse, and what start-up freed then holds the
/// instances' memory without a change in RSS (bench/analysis.md).
pub const MEMORY_HOST_ENV: (&str, &str) = ("MIMALLOC_PURGE_DELAY", "0");

pub fn run(ctx: &Ctx) -> Result<PerInstance> {
    let (k, sleep_ms, load_secs) = if ctx.quick {
        (16usize, 1500u64, 2u32)
    } else {
        (64, 4000, 5)
    };
    let root = ctx.root.display().to_string();
    let manifest_text = format!(
        r#"spin_manifest_version = 2
[application]
name = "bench-instances"
[application.tool.fnhost]
request_timeout = "30s"
memory_limit = "128MiB"
max_concurrent_requests = {max_conc}
[[trigger.http]]
route = "/api/v0/pi"
component = "pi"
[[trigger.http]]
route = "/api/v01/classify"
component = "iris"
[[trigger.http]]
route = "/faults/..."
component = "faults"
[component.pi]
source = "{root}/target/wasm32-wasip2/release/pi_chudnovsky.wasm"
[component.iris]
source = "{root}/target/wasm32-wasip2/release/iris.wasm"
files = [{{ source = "{root}/models/iris/v1", destination = "/model" }}]
[component.faults]
source = "{root}/target/wasm32-wasip2/release/test_faults.wasm"
"#,
        max_conc = 2 * k
    );
    let manifest = write_manifest(ctx, "instances.toml", &manifest_text)?;
    let cache = ctx.work.join("cache-instances");
    let mut runs = Vec::new();
    for pooling in [true, false] {
        let name = if pooling { "pooling" } else { "no-pooling" };
        let extra: &[&str] = if pooling { &[] } else { &["--no-pooling"] };
        // Memory per concurrent instance first, in a fresh process of its own: K requests that
        // sleep in the guest.
        let host = Fnhost::spawn_with_env(
            ctx,
            &format!("fnhost-inst-{name}-memory"),
            &manifest,
            &cache,
            extra,
            &[MEMORY_HOST_ENV],
        )?
        .ready()?;
        let ok = get(&host.addr, "/faults/sleep?ms=1", Duration::from_secs(30))?;
        ensure!(
            ok.status == 200,
            "faults sleep: {} {}",
            ok.status,
            ok.text()
        );
        std::thread::sleep(Duration::from_millis(500));
        let idle = host.server.rss_kib()?;
        let handles: Vec<_> = (0..k)
            .map(|_| {
                let addr = host.addr.clone();
                std::thread::spawn(move || {
                    get(
                        &addr,
                        &format!("/faults/sleep?ms={sleep_ms}"),
                        Duration::from_secs(60),
                    )
                    .map(|r| r.status)
                })
            })
            .collect();
        // Sample RSS and the in-flight gauge while the requests sleep.
        std::thread::sleep(Duration::from_millis(sleep_ms / 4));
        let mut loaded = 0;
        let mut in_flight = 0.0f64;
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(sleep_ms / 2) {
            loaded = loaded.max(host.server.rss_kib()?);
            let m = host.metrics()?;
            let f: f64 = m
                .lines()
                .filter(|l| l.starts_with("fnhost_requests_in_flight"))
                .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
                .sum();
            in_flight = in_flight.max(f);
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut statuses = Vec::new();
        for h in handles {
            statuses.push(h.join().map_err(|_| anyhow!("client thread panicked"))??);
        }
        ensure!(
            statuses.iter().all(|&s| s == 200),
            "{name}: sleeping requests answered {statuses:?}"
        );
        let after = host.server.rss_kib()?;
        drop(host);
        // Instantiation times from a host with the defaults.
        let host = Fnhost::start(
            ctx,
            &format!("fnhost-inst-{name}"),
            &manifest,
            &cache,
            extra,
        )?;
        let mut means = Vec::new();
        for (label, path) in [("iris", IRIS_PATH), ("pi", PI_PATH)] {
            check_route(ctx, &host.addr, path)?;
            let before = host.metrics()?;
            let w = wrk::run(&format!("http://{}{path}", host.addr), 16, load_secs)?;
            ensure!(
                w.non2xx == 0 && w.socket_errors == 0,
                "{name} {label}: {} non-2xx, {} socket errors",
                w.non2xx,
                w.socket_errors
            );
            let after = host.metrics()?;
            // The histogram has no component label: each delta covers one route's run only.
            let filter = "";
            let (s0, c0) =
                histogram_sum_count(&before, "fnhost_instantiation_duration_seconds", filter);
            let (s1, c1) =
                histogram_sum_count(&after, "fnhost_instantiation_duration_seconds", filter);
            ensure!(
                c1 > c0,
                "{name}: no instantiations of {label} counted in /metrics:\n{}",
                after
                    .lines()
                    .filter(|l| l.contains("instantiation"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            means.push(MeanInstantiation {
                mean_us: (s1 - s0) / (c1 - c0) * 1e6,
                count: (c1 - c0) as u64,
                req_per_s: w.rps,
            });
        }
        let [iris, pi]: [MeanInstantiation; 2] = means.try_into().expect("two routes");
        runs.push(AllocatorRun {
            allocator: name.to_string(),
            instantiation: Instantiation { iris, pi },
            idle_rss_kib: idle,
            loaded_rss_kib: loaded,
            rss_after_kib: after,
            max_in_flight_seen: in_flight as u64,
            per_instance_kib: (loaded as f64 - idle as f64) / k as f64,
        });
    }
    Ok(PerInstance {
        manifest: manifest_text.replace(&root, ROOT_SHOWN),
        concurrent: k,
        sleep_ms,
        load_seconds: load_secs,
        runs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_sums_and_counts_add_up_over_label_sets() {
        let m = "# TYPE fnhost_instantiation_duration_seconds histogram
fnhost_instantiation_duration_seconds_sum{kind=\"p3\"} 0.5
fnhost_instantiation_duration_seconds_count{kind=\"p3\"} 10
fnhost_instantiation_duration_seconds_bucket{kind=\"p3\",le=\"0.1\"} 10
fnhost_instantiation_duration_seconds_sum{kind=\"p2\"} 0.25
fnhost_instantiation_duration_seconds_count{kind=\"p2\"} 5
";
        let name = "fnhost_instantiation_duration_seconds";
        assert_eq!(histogram_sum_count(m, name, ""), (0.75, 15.0));
        assert_eq!(histogram_sum_count(m, name, "p2"), (0.25, 5.0));
    }
}
