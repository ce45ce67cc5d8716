//! The six rollouts, each under constant load through the load balancer, in order (each starts
//! from the state the previous one left):
//!
//! 1. `rolling-update`: pi v1 → v2, a new registry version in the ConfigMap.
//! 2. `canary`: iris model v2 as a sticky canary (`x-user`) at 10%, then 50%, then promoted;
//!    the share of answers from model v2 is measured at each weight.
//! 3. `blue-green`: pi v1 staged at 0% (pinned requests reach it), switched to, and switched
//!    straight back.
//! 4. `guard-rollback`: the test-faults component as a guarded 5% pi candidate; the load asks
//!    for `/api/v0/pi/trap`, which pi answers and the candidate traps on; every replica's guard
//!    must set its weight to 0 by itself; then the candidate is removed.
//! 5. `replica-killed`: pi v2 → v1 with one replica SIGKILLed right after the ConfigMap write
//!    and started again a second later.
//! 6. `registry-down`: the registry stopped, pi v1 → v2 written, every replica keeps serving v1
//!    (checked, and no v2 answer seen) until the registry is started again and they finish.

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};

use super::haproxy::Stats;
use super::load::{combine, LoadResult};
use super::manifest::{self, Candidate, Component, Desired, IRIS_V2, PI_FAULTY, PI_V1, PI_V2};
use super::{under_load, Rig, ScenarioResult, CONVERGE_TIMEOUT, READY_TIMEOUT};
use crate::answers::SETOSA_QUERY;

const PI_PATH: &str = "/api/v0/pi?ndigits=50";
/// Under pi's wildcard route: pi answers it like `PI_PATH`, the test-faults component traps.
const PI_TRAP_PATH: &str = "/api/v0/pi/trap?ndigits=50";

fn classify_path() -> String {
    format!("/api/v01/classify?{SETOSA_QUERY}")
}

/// One scenario: drives the rig and records what it measured.
type Scenario = fn(&mut Rig, &mut Tally) -> Result<()>;

pub fn run_all(rig: &mut Rig) -> Result<Vec<ScenarioResult>> {
    let scenarios: [(&str, Scenario); 6] = [
        ("rolling-update", rolling_update),
        ("canary", canary),
        ("blue-green", blue_green),
        ("guard-rollback", guard_rollback),
        ("replica-killed", replica_killed),
        ("registry-down", registry_down),
    ];
    let mut results = Vec::new();
    for (name, scenario) in scenarios {
        println!("fleet: scenario {name}");
        let mut tally = Tally::begin(rig, name)?;
        scenario(rig, &mut tally)?;
        results.push(tally.end(rig)?);
    }
    println!("fleet: summary");
    for r in &results {
        println!("{r}");
    }
    Ok(results)
}

/// What one scenario has seen so far.
pub struct Tally {
    name: &'static str,
    before: Stats,
    loads: Vec<LoadResult>,
    canary: Vec<(f64, f64)>,
    converged: Vec<Duration>,
}

impl Tally {
    fn begin(rig: &mut Rig, name: &'static str) -> Result<Tally> {
        Ok(Tally {
            name,
            before: rig.stats()?,
            loads: Vec::new(),
            canary: Vec::new(),
            converged: Vec::new(),
        })
    }

    /// The scenario's line; fails if any client request failed (wrk's or HAProxy's count).
    fn end(self, rig: &mut Rig) -> Result<ScenarioResult> {
        let counters = rig.stats()?.since(&self.before);
        let all = combine(&self.loads);
        let result = ScenarioResult {
            name: self.name.to_string(),
            requests: all.requests(),
            failed: all.failed(),
            p99_ms: all.p99_ms(),
            canary: self.canary,
            converged_in_s: self.converged.iter().map(Duration::as_secs_f64).collect(),
            replica_failures: counters.replica_failures,
            retries: counters.retries,
            lb_client_failures: counters.client_failures,
        };
        println!("{result}");
        ensure!(
            result.failed == 0 && result.lb_client_failures == 0,
            "scenario {}: {} requests failed at the client (wrk), HAProxy answered {} failures",
            self.name,
            result.failed,
            result.lb_client_failures
        );
        ensure!(result.requests > 0, "scenario {}: no load ran", self.name);
        Ok(result)
    }
}

/// Under load on `path`: writes `desired`, waits until every replica reports it, holds it.
fn step(rig: &mut Rig, tally: &mut Tally, path: &str, desired: Desired) -> Result<()> {
    converge_under_load(rig, tally, path, CONVERGE_TIMEOUT, |rig| rig.apply(desired))
}

/// Under load on `path`: `act` (which answers when the change began), then waits until every
/// replica reports the desired state and the load balancer sees them all, and holds it.
fn converge_under_load(
    rig: &mut Rig,
    tally: &mut Tally,
    path: &str,
    timeout: Duration,
    act: impl FnOnce(&mut Rig) -> Result<Instant>,
) -> Result<()> {
    let load = rig.load(tally.name, path)?;
    let hold = rig.timing.hold;
    let (seen, took) = under_load(load, || {
        let since = act(rig)?;
        let took = rig.wait_converged(since, timeout)?;
        rig.wait_lb_sees(rig.replicas.len())?;
        std::thread::sleep(hold);
        Ok(took)
    })?;
    println!(
        "fleet: {}: converged in {:.2} s; answers by version {:?}",
        tally.name,
        took.as_secs_f64(),
        seen.by_version
    );
    tally.loads.push(seen);
    tally.converged.push(took);
    Ok(())
}

/// Load on `path` until at least `share_requests` answers; the share answered by `label`
/// must be within ±2 points of `weight`.
fn measure_share(
    rig: &mut Rig,
    tally: &mut Tally,
    path: &str,
    label: &str,
    weight: f64,
) -> Result<()> {
    let mut runs = Vec::new();
    for _ in 0..30 {
        let load = rig.load(tally.name, path)?;
        std::thread::sleep(rig.timing.share_slice);
        runs.push(load.finish()?);
        if combine(&runs).answered() >= rig.timing.share_requests {
            break;
        }
    }
    let all = combine(&runs);
    ensure!(
        all.answered() >= rig.timing.share_requests,
        "only {} answers in 30 measuring runs",
        all.answered()
    );
    let share = 100.0 * all.answered_by(label) as f64 / all.answered() as f64;
    println!(
        "fleet: {}: {label} answered {share:.2}% of {} requests at weight {weight}%",
        tally.name,
        all.answered()
    );
    ensure!(
        (share - weight).abs() <= 2.0,
        "{label} answered {share:.2}% of {} requests, set {weight}% (±2 points allowed)",
        all.answered()
    );
    tally.canary.push((share, weight));
    tally.loads.extend(runs);
    Ok(())
}

fn rolling_update(rig: &mut Rig, t: &mut Tally) -> Result<()> {
    let desired = Desired {
        pi: Component::only(PI_V2),
        ..rig.desired
    };
    step(rig, t, PI_PATH, desired)?;
    let last = t.loads.last().expect("one load");
    ensure!(
        last.answered_by("v1") > 0 && last.answered_by("v2") > 0,
        "the load should see v1 before and v2 after the update: {:?}",
        last.by_version
    );
    Ok(())
}

fn canary(rig: &mut Rig, t: &mut Tally) -> Result<()> {
    let path = classify_path();
    let current = rig.desired.iris.current;
    for weight in [10.0, 50.0] {
        let desired = Desired {
            iris: Component {
                current,
                candidate: Some(Candidate {
                    release: IRIS_V2,
                    weight,
                    sticky: true,
                    guarded: false,
                }),
            },
            ..rig.desired
        };
        step(rig, t, &path, desired)?;
        measure_share(rig, t, &path, IRIS_V2.label, weight)?;
    }
    let promoted = Desired {
        iris: Component::only(IRIS_V2),
        ..rig.desired
    };
    step(rig, t, &path, promoted)
}

fn blue_green(rig: &mut Rig, t: &mut Tally) -> Result<()> {
    let (blue, green) = (rig.desired.pi.current, PI_V1);
    let staged = |current, other| Desired {
        pi: Component {
            current,
            candidate: Some(Candidate::staged(other)),
        },
        ..rig.desired
    };
    let (stage, switch, back) = (
        staged(blue, green),
        staged(green, blue),
        staged(blue, green),
    );
    step(rig, t, PI_PATH, stage)?;
    // Staged: testers reach green by pinning, everyone else still gets blue.
    let pinned = rig.admin.request(
        "GET",
        &rig.haproxy.url(PI_PATH),
        &[
            ("fnhost-version-pin", "candidate"),
            ("fnhost-pin-key", manifest::PIN_KEY),
        ],
        None,
    )?;
    ensure!(
        pinned.status == 200 && pinned.header("fnhost-version-label") == Some(green.label),
        "a pinned request got HTTP {} from {:?}, not {}",
        pinned.status,
        pinned.header("fnhost-version-label"),
        green.label
    );
    ensure!(
        t.loads.last().expect("one load").answered_by(green.label) == 0,
        "unpinned requests reached the staged version"
    );
    step(rig, t, PI_PATH, switch)?;
    step(rig, t, PI_PATH, back)
}

fn guard_rollback(rig: &mut Rig, t: &mut Tally) -> Result<()> {
    let current = rig.desired.pi.current;
    let failing = Desired {
        pi: Component {
            current,
            candidate: Some(Candidate {
                release: PI_FAULTY,
                weight: 5.0,
                sticky: false,
                guarded: true,
            }),
        },
        ..rig.desired
    };
    let load = rig.load(t.name, PI_TRAP_PATH)?;
    let hold = rig.timing.hold;
    let (seen, took) = under_load(load, || {
        let since = rig.apply(failing)?;
        let took = rig.wait_all(
            "every replica's guard tripped",
            since,
            CONVERGE_TIMEOUT,
            |s| {
                s.component("pi")
                    .is_some_and(|pi| match (&pi.candidate, &pi.last_guard_trip) {
                        (Some(c), Some(trip)) => {
                            c.version.label.as_deref() == Some(PI_FAULTY.label)
                                && c.weight == 0.0
                                && trip.version == c.version.version
                        }
                        _ => false,
                    })
            },
        )?;
        for i in 0..rig.replicas.len() {
            if let Some(trip) = rig
                .status(i)?
                .component("pi")
                .and_then(|pi| pi.last_guard_trip.as_ref())
            {
                println!(
                    "fleet: replica {}: guard tripped on {}: {} of {} responses 5xx",
                    i + 1,
                    trip.version,
                    trip.errors,
                    trip.window
                );
            }
        }
        std::thread::sleep(hold);
        Ok(took)
    })?;
    println!(
        "fleet: {}: every guard tripped {:.2} s after the write; answers by version {:?}",
        t.name,
        took.as_secs_f64(),
        seen.by_version
    );
    ensure!(
        seen.answered_by(PI_FAULTY.label) == 0,
        "a failing candidate's answer reached a client"
    );
    t.loads.push(seen);
    t.converged.push(took);
    // The operator removes the rolled-back candidate.
    let cleaned = Desired {
        pi: Component::only(current),
        ..rig.desired
    };
    step(rig, t, PI_PATH, cleaned)
}

fn replica_killed(rig: &mut Rig, t: &mut Tally) -> Result<()> {
    let desired = Desired {
        pi: Component::only(PI_V1),
        ..rig.desired
    };
    converge_under_load(rig, t, PI_PATH, READY_TIMEOUT, |rig| {
        let since = rig.apply(desired)?;
        let victim = &rig.replicas[1].container;
        victim.kill()?;
        std::thread::sleep(Duration::from_secs(1));
        victim.restart()?;
        Ok(since)
    })
}

fn registry_down(rig: &mut Rig, t: &mut Tally) -> Result<()> {
    let old = rig.desired.pi.current;
    let desired = Desired {
        pi: Component::only(PI_V2),
        ..rig.desired
    };
    rig.registry.stop()?;
    println!("fleet: {}: registry stopped", t.name);
    let outage = rig.timing.outage;
    let load = rig.load(t.name, PI_PATH)?;
    let (during, (since, errors)) = under_load(load, || {
        let since = rig.apply(desired)?;
        let end = Instant::now() + outage;
        let mut errors = Vec::new();
        while Instant::now() < end {
            for i in 0..rig.replicas.len() {
                let s = rig.status(i)?;
                let pi = s.component("pi");
                let serving = pi
                    .and_then(|pi| pi.current.as_ref())
                    .and_then(|v| v.label.as_deref());
                ensure!(
                    serving == Some(old.label),
                    "replica {} serves {serving:?} while the registry is down",
                    i + 1
                );
                if let Some(e) = pi.and_then(|pi| pi.load_error.clone()) {
                    errors.push(e);
                }
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Ok((since, errors))
    })?;
    println!(
        "fleet: {}: registry down {:.0} s: answers by version {:?}; {} load errors reported, e.g. {:?}",
        t.name,
        outage.as_secs_f64(),
        during.by_version,
        errors.len(),
        errors.first()
    );
    ensure!(
        during.answered_by(desired.pi.current.label) == 0 && during.answered_by(old.label) > 0,
        "while the registry was down the fleet should serve only {}: {:?}",
        old.label,
        during.by_version
    );
    t.loads.push(during);
    converge_under_load(rig, t, PI_PATH, CONVERGE_TIMEOUT, |rig| {
        rig.registry.run()?;
        println!("fleet: registry-down: registry started again");
        Ok(since)
    })
}
