//! Versions of every component and how traffic is split between them.
//!
//! Each component is a [`Slot`]: its state (`state.rs`: current, candidate with its policy,
//! previous) is one immutable value behind an `ArcSwap`. The request path loads it without
//! locks and picks a version (`pick.rs`). Every operation (deploy, canary, stage, switch,
//! promote, rollback, reweigh) prepares what it needs first, off the request path, then goes
//! through [`Deployments::apply`]: under the component's operations lock, one pure transition
//! from the old state to the new one and one atomic swap, or nothing and a [`Conflict`].
//! Requests already running keep their `Arc<Version>` and finish on it. `status.rs` turns the
//! state into what the admin API answers.

mod pick;
mod state;
mod status;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail, Context};
use arc_swap::ArcSwap;
use http::HeaderValue;

pub use pick::{sticky_bucket, Role};
pub use state::{Conflict, GuardTrip};
pub use status::{CandidateStatus, ComponentStatus, GuardStatus, VersionStatus};

use crate::engine::{InstancePolicy, RequestTrace, Runtime, VersionHandler, World};
use crate::metrics::{LoadResult, Metrics, SwapResult};
use crate::sources::Sources;
use crate::spec::{
    CanaryPolicy, ComponentId, ComponentLimits, ComponentSpec, PinKey, Sha256, VersionSpec,
};

/// The request header testers use to force a version: `candidate`, `current`, or a version's
/// short sha256 or label. Honoured only with the component's pin key in [`PIN_KEY_HEADER`].
pub const PIN_HEADER: &str = "fnhost-version-pin";
/// The pin key (`tool.fnhost.pin_key`, or set through the admin API).
pub const PIN_KEY_HEADER: &str = "fnhost-pin-key";

pub type ComponentState = state::ComponentState<Version>;
pub type Candidate = state::Candidate<Version>;

/// One loaded, ready-to-serve version of a component.
pub struct Version {
    pub component: ComponentId,
    pub sha256: Sha256,
    pub world: World,
    pub spec: VersionSpec,
    pub handler: VersionHandler,
    pub loaded_at: SystemTime,
    /// `pi@1a2b3c4d`: the `fnhost-version` header and the metrics label.
    pub name: Arc<str>,
    /// `name` as a header value, built once.
    pub name_header: HeaderValue,
    /// The label as a header value, built once.
    pub label_header: Option<HeaderValue>,
}

impl Version {
    fn matches_pin(&self, pin: &str) -> bool {
        pin == self.sha256.short()
            || pin == self.sha256.hex()
            || self.spec.label.as_ref().is_some_and(|l| l.as_str() == pin)
    }
}

/// Why an operation did not happen.
#[derive(Debug)]
pub enum OpError {
    /// No component of that name (→ 404).
    UnknownComponent(String),
    /// The component's state does not allow it (→ 409).
    Conflict(Conflict),
    /// The new version was refused: it did not load, compile, link or pass its smoke request
    /// (→ 422).
    Refused(anyhow::Error),
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpError::UnknownComponent(msg) => f.write_str(msg),
            OpError::Conflict(c) => write!(f, "{c}"),
            OpError::Refused(e) => write!(f, "{e:#}"),
        }
    }
}

impl std::error::Error for OpError {}

/// One component: its state, the lock that serialises its operations, and its limits.
pub struct Slot {
    pub id: ComponentId,
    state: ArcSwap<ComponentState>,
    ops: tokio::sync::Mutex<()>,
    /// Limits and instance policy from the manifest, applied to every version loaded.
    limits: Mutex<ComponentLimits>,
    /// The manifest's version of this component: what a new version inherits (files,
    /// environment, outbound hosts) when the component has no current version to inherit from.
    manifest_version: Mutex<VersionSpec>,
}

impl Slot {
    pub fn state(&self) -> arc_swap::Guard<Arc<ComponentState>> {
        self.state.load()
    }

    pub fn is_ready(&self) -> bool {
        self.state.load().current.is_some()
    }

    /// What a new version inherits unless told otherwise: the current version's spec, or the
    /// manifest's when nothing is current (a component that never loaded can be repaired).
    pub fn inherited_spec(&self) -> VersionSpec {
        match &self.state.load().current {
            Some(v) => v.spec.clone(),
            None => self.manifest_version.lock().unwrap().clone(),
        }
    }
}

/// All components of the app.
pub struct Deployments {
    slots: HashMap<ComponentId, Arc<Slot>>,
    runtime: Arc<Runtime>,
    sources: Sources,
    metrics: Arc<Metrics>,
}

impl Deployments {
    pub fn new(
        components: &BTreeMap<ComponentId, ComponentSpec>,
        runtime: Arc<Runtime>,
        sources: Sources,
        metrics: Arc<Metrics>,
    ) -> Deployments {
        let slots = components
            .iter()
            .map(|(id, spec)| {
                let slot = Slot {
                    id: id.clone(),
                    state: ArcSwap::from_pointee(ComponentState::default()),
                    ops: tokio::sync::Mutex::new(()),
                    limits: Mutex::new(spec.limits.clone()),
                    manifest_version: Mutex::new(spec.version.clone()),
                };
                (id.clone(), Arc::new(slot))
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

    /// Every slot, sorted by component id.
    pub fn slots(&self) -> impl Iterator<Item = &Arc<Slot>> {
        let mut v: Vec<_> = self.slots.values().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v.into_iter()
    }

    pub fn all_ready(&self) -> bool {
        self.slots.values().all(|s| s.is_ready())
    }

    pub fn status(&self) -> Vec<ComponentStatus> {
        self.slots().map(|s| s.status()).collect()
    }

    fn slot_or_err(&self, component: &str) -> Result<&Arc<Slot>, OpError> {
        self.slots.get(component).ok_or_else(|| {
            let mut names: Vec<_> = self.slots.keys().map(|k| k.as_str()).collect();
            names.sort();
            OpError::UnknownComponent(format!(
                "unknown component \"{component}\" (components: {})",
                names.join(", ")
            ))
        })
    }

    /// Takes a changed manifest entry's limits and defaults (they apply to versions loaded
    /// afterwards).
    pub fn set_manifest(&self, spec: &ComponentSpec) {
        if let Some(slot) = self.slots.get(spec.id.as_str()) {
            *slot.limits.lock().unwrap() = spec.limits.clone();
            *slot.manifest_version.lock().unwrap() = spec.version.clone();
        }
    }

    /// Reads, compiles (or loads from cache), links and checks a version. Nothing changes if
    /// this fails.
    pub async fn load(
        &self,
        component: &str,
        spec: VersionSpec,
        bytes: Option<Vec<u8>>,
    ) -> Result<Arc<Version>, OpError> {
        let slot = self.slot_or_err(component)?;
        let result = self.load_in(slot, spec, bytes).await;
        self.metrics.module_load(match result {
            Ok(_) => LoadResult::Ok,
            Err(_) => LoadResult::Error,
        });
        result
            .with_context(|| format!("loading a new version of component \"{component}\""))
            .map_err(OpError::Refused)
    }

    async fn load_in(
        &self,
        slot: &Slot,
        spec: VersionSpec,
        bytes: Option<Vec<u8>>,
    ) -> anyhow::Result<Arc<Version>> {
        // Reading pins the source to what it resolved to (a registry tag → its digests).
        let (bytes, spec) = match bytes {
            Some(b) => (b, spec),
            None => {
                let module = self.sources.read(&spec.source).await?;
                let spec = VersionSpec {
                    source: module.source,
                    ..spec
                };
                (module.bytes, spec)
            }
        };
        let runtime = self.runtime.clone();
        let prepared = tokio::task::spawn_blocking(move || runtime.prepare(&bytes)).await??;
        let limits = slot.limits.lock().unwrap().clone();
        if !prepared.unsupported_imports.is_empty() {
            tracing::warn!(component = %slot.id, module = %prepared.sha256.short(), interfaces = %prepared.unsupported_imports.join(", "), "the component imports interfaces fnhost does not implement; calling them fails");
        }
        let policy = InstancePolicy {
            component: slot.id.clone(),
            files: spec.files.clone(),
            environment: spec
                .environment
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            allowed_outbound_hosts: spec.allowed_outbound_hosts.clone(),
            memory_limit_bytes: limits.memory_limit_bytes,
            request_timeout: limits.request_timeout,
            instance_reuse: limits.instance_reuse,
            grants: self.runtime.grant(&spec.grants)?,
        };
        let handler = self.runtime.version_handler(prepared.pre, policy);
        let name: Arc<str> = format!("{}@{}", slot.id, prepared.sha256.short()).into();
        tracing::info!(component = %slot.id, version = %name, world = prepared.world.as_str(), from_cache = prepared.from_cache, label = spec.label.as_ref().map_or("", |l| l.as_str()), source = %spec.source, "version loaded");
        Ok(Arc::new(Version {
            component: slot.id.clone(),
            sha256: prepared.sha256,
            world: prepared.world,
            name_header: HeaderValue::from_str(&name)
                .context("a version name is a component id and hex digits")?,
            label_header: spec
                .label
                .as_ref()
                .map(|l| HeaderValue::from_str(l.as_str()))
                .transpose()
                .context("labels are visible ASCII")?,
            spec,
            handler,
            loaded_at: SystemTime::now(),
            name,
        }))
    }

    /// Start-up: load the current version; on failure the component stays not ready with the
    /// reason in its status.
    pub async fn load_initial(&self, component: &str, spec: VersionSpec) -> Result<(), OpError> {
        match self.load(component, spec, None).await {
            Ok(v) => self
                .apply(component, "load", |s| s.loaded(v))
                .await
                .map(drop),
            Err(e) => {
                let reason = e.to_string();
                let _ = self
                    .apply(component, "load-failed", |s| s.load_failed(reason))
                    .await;
                Err(e)
            }
        }
    }

    /// Runs one transition under the component's operations lock and stores its result.
    async fn apply(
        &self,
        component: &str,
        what: &'static str,
        change: impl FnOnce(&ComponentState) -> state::Transition<Version>,
    ) -> Result<ComponentStatus, OpError> {
        let slot = self.slot_or_err(component)?;
        let _op = slot.ops.lock().await;
        match change(&slot.state.load()) {
            Ok(new) => {
                slot.state.store(Arc::new(new));
                self.metrics.swap(SwapResult::Applied);
                let status = slot.status();
                tracing::info!(
                    component,
                    operation = what,
                    current = status.current.as_ref().map_or("-", |v| v.version.as_str()),
                    candidate = status
                        .candidate
                        .as_ref()
                        .map_or("-", |c| c.version.version.as_str()),
                    "applied"
                );
                Ok(status)
            }
            Err(e) => {
                self.metrics.swap(SwapResult::Refused);
                tracing::warn!(component, operation = what, error = %e, "refused");
                Err(OpError::Conflict(e))
            }
        }
    }

    /// Rolling swap: the new version becomes current; the old one is kept as previous.
    pub async fn deploy(&self, version: Arc<Version>) -> Result<ComponentStatus, OpError> {
        let component = version.component.clone();
        self.apply(component.as_str(), "deploy", |s| s.deploy(version))
            .await
    }

    /// Canary (weight > 0) or stage (weight 0) a candidate.
    pub async fn set_candidate(
        &self,
        version: Arc<Version>,
        policy: CanaryPolicy,
    ) -> Result<ComponentStatus, OpError> {
        let component = version.component.clone();
        let what = if policy.weight.is_zero() {
            "stage"
        } else {
            "canary"
        };
        self.apply(component.as_str(), what, |s| {
            s.set_candidate(version, policy)
        })
        .await
    }

    /// Changes the candidate's policy without reloading it; `change` sees the policy in force.
    pub async fn set_policy(
        &self,
        component: &str,
        change: impl FnOnce(&CanaryPolicy) -> CanaryPolicy,
    ) -> Result<ComponentStatus, OpError> {
        self.apply(component, "weight", |s| s.set_policy(change))
            .await
    }

    /// Blue/green switch (see `ComponentState::switch`).
    pub async fn switch(&self, component: &str) -> Result<ComponentStatus, OpError> {
        self.apply(component, "switch", |s| s.switch()).await
    }

    pub async fn promote(&self, component: &str) -> Result<ComponentStatus, OpError> {
        self.apply(component, "promote", |s| s.promote()).await
    }

    pub async fn rollback(&self, component: &str) -> Result<ComponentStatus, OpError> {
        self.apply(component, "rollback", |s| s.rollback()).await
    }

    /// Sets, rotates or (with `None`) removes the component's pin key.
    pub async fn set_pin_key(
        &self,
        component: &str,
        key: Option<PinKey>,
    ) -> Result<ComponentStatus, OpError> {
        self.apply(component, "pin-key", |s| s.set_pin_key(key))
            .await
    }

    pub async fn clear_candidate(&self, component: &str) -> Result<ComponentStatus, OpError> {
        self.apply(component, "clear-candidate", |s| s.clear_candidate())
            .await
    }

    /// Sends one GET through a version's handler, off the request path, and requires a non-5xx
    /// answer: the smoke test a swap may demand.
    pub async fn smoke(&self, version: &Version, path_and_query: &str) -> Result<(), OpError> {
        self.smoke_in(version, path_and_query).await.map_err(|e| {
            self.metrics.swap(SwapResult::Refused);
            OpError::Refused(anyhow!("refused: {e:#}"))
        })
    }

    async fn smoke_in(&self, version: &Version, path_and_query: &str) -> anyhow::Result<()> {
        use http_body_util::{BodyExt, Empty};
        let req = http::Request::get(format!("http://localhost{path_and_query}"))
            .body(Empty::new().map_err(|never| match never {}).boxed_unsync())?;
        let resp = tokio::time::timeout(
            Duration::from_secs(60),
            version
                .handler
                .handle(RequestTrace::new("smoke", None), req),
        )
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
