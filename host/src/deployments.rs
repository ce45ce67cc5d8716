//! Versions of every component and how traffic is split between them.
//!
//! Each component has a current version, may have a candidate (canary with a weight, optional
//! stickiness and an error-rate guard; weight 0 = staged for blue/green) and keeps the previous
//! version loaded for instant rollback. The state of a component is one immutable value behind
//! an `ArcSwap`: the request path loads it without locks and picks a version; every operation
//! (deploy, canary, stage, switch, promote, rollback) prepares the new version first, off the
//! request path, and ends in one atomic swap. Requests already running keep their `Arc<Version>`
//! and finish on it. Operations on one component are serialised by an async mutex.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail, Context, Result};
use arc_swap::ArcSwap;
use http::HeaderMap;
use serde_json::{json, Value};

use crate::engine::{self, InstancePolicy, Runtime, VersionHandler, World};
use crate::manifest::{AppSettings, ComponentSpec, FileMount, GuardSpec, Source, Stickiness};
use crate::metrics::Metrics;
use crate::sources::Sources;

/// The request header testers use to force a version: `candidate`, `current`, or a version's
/// short sha256 or label.
pub const PIN_HEADER: &str = "fnhost-version-pin";

/// What a version is made of, besides its module bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionSpec {
    pub source: Source,
    pub files: Vec<FileMount>,
    pub environment: BTreeMap<String, String>,
    pub allowed_outbound_hosts: Vec<String>,
    pub label: Option<String>,
}

impl VersionSpec {
    pub fn current_of(spec: &ComponentSpec) -> VersionSpec {
        VersionSpec {
            source: spec.source.clone(),
            files: spec.files.clone(),
            environment: spec.environment.clone(),
            allowed_outbound_hosts: spec.allowed_outbound_hosts.clone(),
            label: spec.label.clone(),
        }
    }

    /// The manifest's candidate, inheriting files and environment from the component.
    pub fn candidate_of(spec: &ComponentSpec) -> Option<VersionSpec> {
        let c = spec.candidate.as_ref()?;
        Some(VersionSpec {
            source: c.source.clone(),
            files: c.files.clone().unwrap_or_else(|| spec.files.clone()),
            environment: c
                .environment
                .clone()
                .unwrap_or_else(|| spec.environment.clone()),
            allowed_outbound_hosts: spec.allowed_outbound_hosts.clone(),
            label: c.label.clone(),
        })
    }
}

/// One loaded, ready-to-serve version of a component.
pub struct Version {
    pub component: String,
    pub sha256: String,
    pub world: World,
    pub spec: VersionSpec,
    pub handler: VersionHandler,
    pub loaded_at: SystemTime,
    /// `pi@1a2b3c4d`: what the `fnhost-version` response header says.
    pub name: String,
}

impl Version {
    fn matches_pin(&self, pin: &str) -> bool {
        pin == engine::short(&self.sha256)
            || pin == self.sha256
            || self.spec.label.as_deref() == Some(pin)
    }

    fn status(&self) -> Value {
        json!({
            "version": self.name,
            "sha256": self.sha256,
            "label": self.spec.label,
            "world": self.world.as_str(),
            "source": self.spec.source.to_string(),
            "files": self.spec.files.iter().map(|f| json!({"source": f.source, "destination": f.destination})).collect::<Vec<_>>(),
            "loaded_at_unix": self.loaded_at.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        })
    }
}

/// Traffic policy of a candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct CanaryPolicy {
    /// Percent of requests, 0–100 with one decimal; 0 = staged (only pinned requests).
    pub weight: f64,
    pub sticky: Option<Stickiness>,
    pub guard: Option<GuardSpec>,
}

pub struct Candidate {
    pub version: Arc<Version>,
    pub policy: CanaryPolicy,
    /// Recent outcomes (true = 5xx) for the guard; a new candidate or policy starts afresh.
    outcomes: Mutex<VecDeque<bool>>,
}

/// The last automatic rollback, with the numbers that tripped it.
#[derive(Debug, Clone)]
pub struct GuardTrip {
    pub version: String,
    pub errors: usize,
    pub window: usize,
    pub max_error_rate: f64,
    pub at: SystemTime,
}

#[derive(Clone, Default)]
pub struct ComponentState {
    pub current: Option<Arc<Version>>,
    pub candidate: Option<Arc<Candidate>>,
    pub previous: Option<Arc<Version>>,
    pub last_trip: Option<GuardTrip>,
    /// Why the component is not serving (start-up load failed), if it is not.
    pub load_error: Option<String>,
}

/// Which role the picked version plays for this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Current,
    Candidate,
}

pub struct Slot {
    pub name: String,
    state: ArcSwap<ComponentState>,
    ops: tokio::sync::Mutex<()>,
    /// Limits and instance policy from the manifest, applied to every version of this component.
    limits: Mutex<ComponentLimits>,
}

#[derive(Debug, Clone)]
struct ComponentLimits {
    memory_limit_bytes: u64,
    request_timeout: Duration,
    instance_reuse: u32,
}

impl Slot {
    pub fn state(&self) -> arc_swap::Guard<Arc<ComponentState>> {
        self.state.load()
    }

    /// Picks the version for one request. Lock-free: one atomic load plus, for a canary, a hash
    /// or a random draw.
    pub fn pick(&self, headers: &HeaderMap) -> Option<(Arc<Version>, Role)> {
        let state = self.state.load();
        let current = state.current.as_ref();
        if let Some(pin) = headers.get(PIN_HEADER).and_then(|v| v.to_str().ok()) {
            let cand = state.candidate.as_ref().map(|c| &c.version);
            let pinned = match pin {
                "candidate" => cand.map(|v| (v, Role::Candidate)),
                "current" => current.map(|v| (v, Role::Current)),
                pin => cand
                    .filter(|v| v.matches_pin(pin))
                    .map(|v| (v, Role::Candidate))
                    .or_else(|| {
                        current
                            .filter(|v| v.matches_pin(pin))
                            .map(|v| (v, Role::Current))
                    }),
            };
            if let Some((v, role)) = pinned {
                return Some((v.clone(), role));
            }
        }
        if let Some(c) = &state.candidate {
            if c.policy.weight > 0.0 && takes_candidate(&c.policy, headers) {
                return Some((c.version.clone(), Role::Candidate));
            }
        }
        current.map(|v| (v.clone(), Role::Current))
    }

    /// Feeds a candidate's response status to its guard; trips it (weight → 0) when the error
    /// rate over the window exceeds the limit.
    pub fn record(&self, version: &Arc<Version>, role: Role, status: u16, metrics: &Metrics) {
        if role != Role::Candidate {
            return;
        }
        let state = self.state.load();
        let Some(cand) = &state.candidate else { return };
        let Some(guard) = &cand.policy.guard else {
            return;
        };
        if !Arc::ptr_eq(&cand.version, version) || cand.policy.weight == 0.0 {
            return;
        }
        let (errors, window) = {
            let mut outcomes = cand.outcomes.lock().unwrap();
            outcomes.push_back(status >= 500);
            while outcomes.len() > guard.window as usize {
                outcomes.pop_front();
            }
            (outcomes.iter().filter(|e| **e).count(), outcomes.len())
        };
        if window < guard.window as usize || errors as f64 / window as f64 <= guard.max_error_rate {
            return;
        }
        // Trip: swap in a state whose candidate has weight 0, unless someone changed it already.
        let trip = GuardTrip {
            version: cand.version.name.clone(),
            errors,
            window,
            max_error_rate: guard.max_error_rate,
            at: SystemTime::now(),
        };
        let mut tripped = false;
        self.state.rcu(|old| {
            let mut new = ComponentState::clone(old);
            tripped = false;
            if let Some(c) = &old.candidate {
                if Arc::ptr_eq(&c.version, version) && c.policy.weight > 0.0 {
                    let mut policy = c.policy.clone();
                    policy.weight = 0.0;
                    new.candidate = Some(Arc::new(Candidate {
                        version: c.version.clone(),
                        policy,
                        outcomes: Mutex::default(),
                    }));
                    new.last_trip = Some(trip.clone());
                    tripped = true;
                }
            }
            new
        });
        if tripped {
            metrics.guard_trip(&self.name);
            tracing::warn!(
                component = %self.name, version = %trip.version, errors, window, max_error_rate = trip.max_error_rate,
                "canary guard tripped: {errors} of the last {window} responses were 5xx (limit {:.1}%); candidate weight set to 0",
                trip.max_error_rate * 100.0
            );
        }
    }

    pub fn status(&self) -> Value {
        let s = self.state.load();
        json!({
            "component": self.name,
            "ready": s.current.is_some(),
            "load_error": s.load_error,
            "current": s.current.as_ref().map(|v| v.status()),
            "candidate": s.candidate.as_ref().map(|c| {
                let outcomes = c.outcomes.lock().unwrap();
                let mut v = c.version.status();
                v["weight"] = json!(c.policy.weight);
                v["sticky"] = match &c.policy.sticky {
                    Some(Stickiness::Header(h)) => json!({"header": h}),
                    Some(Stickiness::Cookie(k)) => json!({"cookie": k}),
                    None => Value::Null,
                };
                v["guard"] = c.policy.guard.as_ref().map(|g| json!({
                    "max_error_rate": g.max_error_rate,
                    "window": g.window,
                    "recent_responses": outcomes.len(),
                    "recent_errors": outcomes.iter().filter(|e| **e).count(),
                })).unwrap_or(Value::Null);
                v
            }),
            "previous": s.previous.as_ref().map(|v| v.status()),
            "last_guard_trip": s.last_trip.as_ref().map(|t| json!({
                "version": t.version,
                "errors": t.errors,
                "window": t.window,
                "error_rate": t.errors as f64 / t.window as f64,
                "max_error_rate": t.max_error_rate,
                "at_unix": t.at.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            })),
        })
    }
}

/// True when this request goes to the candidate.
fn takes_candidate(policy: &CanaryPolicy, headers: &HeaderMap) -> bool {
    let threshold = (policy.weight * 10.0).round() as u64; // per mille
    let key = match &policy.sticky {
        Some(Stickiness::Header(h)) => headers.get(h.as_str()).map(|v| v.as_bytes().to_vec()),
        Some(Stickiness::Cookie(name)) => cookie(headers, name).map(|v| v.into_bytes()),
        None => None,
    };
    let draw = match key {
        Some(key) => sticky_bucket(&key),
        None => rand::random_range(0..1000u64),
    };
    draw < threshold
}

/// A key's bucket in 0..1000: stable across requests, processes, replicas and releases (a
/// sha256 prefix, not the std hasher), so a user sees the same version while the weight is
/// unchanged.
pub fn sticky_bucket(key: &[u8]) -> u64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(key);
    u64::from_le_bytes(digest[..8].try_into().expect("sha256 has 32 bytes")) % 1000
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|line| {
            line.split(';').find_map(|pair| {
                let (k, v) = pair.trim().split_once('=')?;
                (k == name).then(|| v.to_string())
            })
        })
}

/// All components of the app.
pub struct Deployments {
    slots: HashMap<String, Arc<Slot>>,
    runtime: Arc<Runtime>,
    sources: Sources,
    metrics: Arc<Metrics>,
}

impl Deployments {
    pub fn new(
        components: &BTreeMap<String, ComponentSpec>,
        app: &AppSettings,
        runtime: Arc<Runtime>,
        sources: Sources,
        metrics: Arc<Metrics>,
    ) -> Deployments {
        let slots = components
            .iter()
            .map(|(name, spec)| {
                let slot = Slot {
                    name: name.clone(),
                    state: ArcSwap::from_pointee(ComponentState::default()),
                    ops: tokio::sync::Mutex::new(()),
                    limits: Mutex::new(limits_of(spec, app)),
                };
                (name.clone(), Arc::new(slot))
            })
            .collect();
        Deployments {
            slots,
            runtime,
            sources,
            metrics,
        }
    }

    pub fn slot(&self, component: &str) -> Option<&Arc<Slot>> {
        self.slots.get(component)
    }

    pub fn slots(&self) -> impl Iterator<Item = &Arc<Slot>> {
        let mut v: Vec<_> = self.slots.values().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v.into_iter()
    }

    pub fn all_ready(&self) -> bool {
        self.slots
            .values()
            .all(|s| s.state.load().current.is_some())
    }

    pub fn status(&self) -> Value {
        Value::Array(self.slots().map(|s| s.status()).collect())
    }

    fn slot_or_err(&self, component: &str) -> Result<&Arc<Slot>> {
        self.slots.get(component).ok_or_else(|| {
            let mut names: Vec<_> = self.slots.keys().cloned().collect();
            names.sort();
            anyhow!(
                "unknown component \"{component}\" (components: {})",
                names.join(", ")
            )
        })
    }

    /// Updates limits when the manifest changes (applies to versions loaded afterwards).
    pub fn set_limits(&self, component: &str, spec: &ComponentSpec, app: &AppSettings) {
        if let Some(slot) = self.slots.get(component) {
            *slot.limits.lock().unwrap() = limits_of(spec, app);
        }
    }

    /// Reads, compiles (or loads from cache), links and checks a version. Nothing changes if
    /// this fails.
    pub async fn load(
        &self,
        component: &str,
        spec: VersionSpec,
        bytes: Option<Vec<u8>>,
    ) -> Result<Arc<Version>> {
        let slot = self.slot_or_err(component)?;
        let result = async {
            let bytes = match bytes {
                Some(b) => b,
                None => self.sources.read(&spec.source).await?,
            };
            let runtime = self.runtime.clone();
            let prepared = tokio::task::spawn_blocking(move || runtime.prepare(&bytes)).await??;
            let limits = slot.limits.lock().unwrap().clone();
            let reuse = if prepared.world == World::P3 { limits.instance_reuse } else { 1 };
            let policy = InstancePolicy {
                files: spec.files.clone(),
                environment: spec.environment.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                allowed_outbound_hosts: spec.allowed_outbound_hosts.clone(),
                memory_limit_bytes: limits.memory_limit_bytes,
                request_timeout: limits.request_timeout,
                instance_reuse: reuse,
            };
            let handler = engine::version_handler(&self.runtime, prepared.pre, policy);
            let name = format!("{component}@{}", engine::short(&prepared.sha256));
            tracing::info!(component, version = %name, world = prepared.world.as_str(), from_cache = prepared.from_cache, label = spec.label.as_deref().unwrap_or(""), source = %spec.source, "version loaded");
            anyhow::Ok(Arc::new(Version {
                component: component.to_string(),
                sha256: prepared.sha256,
                world: prepared.world,
                spec,
                handler,
                loaded_at: SystemTime::now(),
                name,
            }))
        }
        .await;
        self.metrics.module_load(result.is_ok());
        result.with_context(|| format!("loading a new version of component \"{component}\""))
    }

    /// Start-up: load the current version; on failure the component stays not ready with the
    /// reason in its status.
    pub async fn load_initial(&self, component: &str, spec: VersionSpec) -> Result<()> {
        let slot = self.slot_or_err(component)?;
        match self.load(component, spec, None).await {
            Ok(v) => {
                slot.state.store(Arc::new(ComponentState {
                    current: Some(v),
                    ..Default::default()
                }));
                Ok(())
            }
            Err(e) => {
                let msg = format!("{e:#}");
                slot.state.rcu(|old| ComponentState {
                    load_error: Some(msg.clone()),
                    ..ComponentState::clone(old)
                });
                Err(e)
            }
        }
    }

    async fn apply<F>(&self, component: &str, what: &str, change: F) -> Result<Value>
    where
        F: FnOnce(&ComponentState) -> Result<ComponentState>,
    {
        let slot = self.slot_or_err(component)?;
        let _op = slot.ops.lock().await;
        let old = slot.state.load_full();
        match change(&old) {
            Ok(new) => {
                slot.state.store(Arc::new(new));
                self.metrics.swap(true);
                let status = slot.status();
                tracing::info!(component, operation = what, current = %status["current"]["version"], candidate = %status["candidate"]["version"], "applied");
                Ok(status)
            }
            Err(e) => {
                self.metrics.swap(false);
                tracing::warn!(component, operation = what, error = %e, "refused");
                Err(e)
            }
        }
    }

    /// Rolling swap: the new version becomes current; the old one is kept as previous.
    pub async fn deploy(&self, version: Arc<Version>) -> Result<Value> {
        let component = version.component.clone();
        self.apply(&component, "deploy", move |old| {
            Ok(ComponentState {
                previous: old.current.clone().or_else(|| old.previous.clone()),
                current: Some(version),
                candidate: old.candidate.clone(),
                last_trip: old.last_trip.clone(),
                load_error: None,
            })
        })
        .await
    }

    /// Canary (weight > 0) or stage (weight 0) a candidate.
    pub async fn set_candidate(
        &self,
        version: Arc<Version>,
        policy: CanaryPolicy,
    ) -> Result<Value> {
        let component = version.component.clone();
        let what = if policy.weight == 0.0 {
            "stage"
        } else {
            "canary"
        };
        self.apply(&component, what, move |old| {
            if old.current.is_none() {
                bail!("component has no current version to canary against");
            }
            Ok(ComponentState {
                candidate: Some(Arc::new(Candidate {
                    version,
                    policy,
                    outcomes: Mutex::default(),
                })),
                ..old.clone()
            })
        })
        .await
    }

    /// Changes a candidate's weight (and guard/stickiness) without reloading it.
    pub async fn set_policy(&self, component: &str, policy: CanaryPolicy) -> Result<Value> {
        self.apply(component, "weight", move |old| {
            let c = old
                .candidate
                .as_ref()
                .ok_or_else(|| anyhow!("no candidate to change; canary or stage one first"))?;
            Ok(ComponentState {
                candidate: Some(Arc::new(Candidate {
                    version: c.version.clone(),
                    policy,
                    outcomes: Mutex::default(),
                })),
                ..old.clone()
            })
        })
        .await
    }

    /// Blue/green: the candidate becomes current at once and the old current becomes the staged
    /// candidate (weight 0), so switching back is the same instant operation.
    pub async fn switch(&self, component: &str) -> Result<Value> {
        self.apply(component, "switch", |old| {
            let c = old
                .candidate
                .as_ref()
                .ok_or_else(|| anyhow!("no candidate to switch to; stage one first"))?;
            let current = old
                .current
                .clone()
                .ok_or_else(|| anyhow!("no current version"))?;
            Ok(ComponentState {
                current: Some(c.version.clone()),
                candidate: Some(Arc::new(Candidate {
                    version: current.clone(),
                    policy: CanaryPolicy {
                        weight: 0.0,
                        sticky: None,
                        guard: None,
                    },
                    outcomes: Mutex::default(),
                })),
                previous: Some(current),
                last_trip: old.last_trip.clone(),
                load_error: None,
            })
        })
        .await
    }

    /// The candidate becomes current; the old current is kept as previous.
    pub async fn promote(&self, component: &str) -> Result<Value> {
        self.apply(component, "promote", |old| {
            let c = old
                .candidate
                .as_ref()
                .ok_or_else(|| anyhow!("no candidate to promote"))?;
            Ok(ComponentState {
                current: Some(c.version.clone()),
                previous: old.current.clone(),
                candidate: None,
                last_trip: old.last_trip.clone(),
                load_error: None,
            })
        })
        .await
    }

    /// With a candidate: drop it (all traffic back on current). Without: go back to the previous
    /// version, which is still loaded, so this is instant.
    pub async fn rollback(&self, component: &str) -> Result<Value> {
        self.apply(component, "rollback", |old| {
            if old.candidate.is_some() {
                return Ok(ComponentState {
                    candidate: None,
                    ..old.clone()
                });
            }
            let previous = old.previous.clone().ok_or_else(|| {
                anyhow!("nothing to roll back to: no candidate and no previous version")
            })?;
            Ok(ComponentState {
                current: Some(previous),
                previous: old.current.clone(),
                candidate: None,
                last_trip: old.last_trip.clone(),
                load_error: None,
            })
        })
        .await
    }

    /// Removes the candidate, if any (used when a manifest drops its candidate table).
    pub async fn clear_candidate(&self, component: &str) -> Result<Value> {
        self.apply(component, "clear-candidate", |old| {
            Ok(ComponentState {
                candidate: None,
                ..old.clone()
            })
        })
        .await
    }

    /// Sends one GET through a version's handler, off the request path, and requires a non-5xx
    /// answer: the smoke test a swap may demand.
    pub async fn smoke(&self, version: &Version, path_and_query: &str) -> Result<()> {
        use http_body_util::{BodyExt, Empty};
        let req = http::Request::get(format!("http://localhost{path_and_query}"))
            .body(Empty::new().map_err(|never| match never {}).boxed_unsync())?;
        let resp = tokio::time::timeout(Duration::from_secs(60), version.handler.handle((), req))
            .await
            .map_err(|_| anyhow!("smoke request {path_and_query} timed out"))?
            .map_err(|e| anyhow!("smoke request {path_and_query} failed: {e:#}"))?;
        let status = resp.status();
        let _ = resp.into_body().collect().await;
        if status.is_server_error() {
            bail!("smoke request {path_and_query} answered {status}");
        }
        Ok(())
    }
}

fn limits_of(spec: &ComponentSpec, app: &AppSettings) -> ComponentLimits {
    ComponentLimits {
        memory_limit_bytes: spec
            .settings
            .memory_limit_bytes
            .unwrap_or(app.memory_limit_bytes),
        request_timeout: spec.settings.request_timeout.unwrap_or(app.request_timeout),
        instance_reuse: spec.settings.instance_reuse.unwrap_or(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sticky_buckets_are_stable_and_spread() {
        assert_eq!(sticky_bucket(b"user-1"), sticky_bucket(b"user-1"));
        let under_100 = (0..10_000)
            .filter(|i| sticky_bucket(format!("user-{i}").as_bytes()) < 100)
            .count();
        assert!(
            (800..1200).contains(&under_100),
            "{under_100} of 10000 keys under 10%"
        );
    }

    #[test]
    fn weights_pick_the_candidate_in_proportion() {
        let policy = CanaryPolicy {
            weight: 10.0,
            sticky: None,
            guard: None,
        };
        let headers = HeaderMap::new();
        let n = (0..20_000)
            .filter(|_| takes_candidate(&policy, &headers))
            .count();
        assert!((1700..2300).contains(&n), "{n} of 20000");
        let zero = CanaryPolicy {
            weight: 0.0,
            ..policy.clone()
        };
        assert_eq!(
            (0..1000)
                .filter(|_| takes_candidate(&zero, &headers))
                .count(),
            0
        );
        let all = CanaryPolicy {
            weight: 100.0,
            ..policy
        };
        assert_eq!(
            (0..1000)
                .filter(|_| takes_candidate(&all, &headers))
                .count(),
            1000
        );
    }

    #[test]
    fn sticky_cookie_and_header_keys() {
        let policy = CanaryPolicy {
            weight: 50.0,
            sticky: Some(Stickiness::Cookie("uid".into())),
            guard: None,
        };
        for i in 0..200 {
            let mut h = HeaderMap::new();
            h.insert(
                http::header::COOKIE,
                format!("a=b; uid=u{i}; c=d").parse().unwrap(),
            );
            let first = takes_candidate(&policy, &h);
            assert!((0..20).all(|_| takes_candidate(&policy, &h) == first));
            assert_eq!(first, sticky_bucket(format!("u{i}").as_bytes()) < 500);
        }
    }
}
