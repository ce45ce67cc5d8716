//! Declarative updates: watch the manifest and the module files it names, and apply changes.
//!
//! A changed `source` (or a module file replaced in place) is a rolling swap; a changed
//! `[component.NAME.tool.fnhost.candidate]` table canaries, stages, re-weights or removes the
//! candidate. The same operations as the admin API are used, so a change that fails (bad
//! manifest, half-written or broken module) is logged and the serving version stays. Events are
//! debounced, and Kubernetes ConfigMap updates (an atomic `..data` symlink swap in the mounted
//! directory) are seen because the manifest's directory is watched, not the file's inode.
//! Only what changed since the last applied manifest (or module file) is acted on, so an admin
//! API change is not undone by an unrelated event, and a registry tag is resolved only when its
//! component's entry changes. A change whose module is remote and could not be fetched (a
//! registry or server down) is retried with a growing pause until it applies.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::RwLock;
use std::time::Duration;

use anyhow::Result;
use notify::{RecursiveMode, Watcher};

use crate::deployments::Deployments;
use crate::manifest;
use crate::spec::{
    App, CandidateSpec, ComponentId, ComponentSpec, PinKey, Sha256, Source, VersionSpec,
};

const DEBOUNCE: Duration = Duration::from_millis(400);
const MAX_DEBOUNCE: Duration = Duration::from_secs(3);

/// What was last applied for one component: its manifest entry and the module digests.
/// What was last applied for one component, part by part (a module file is known by its
/// digest), so that a change whose current part applied and whose candidate part failed is not
/// applied twice: the next event redeploys nothing and retries only the candidate.
#[derive(Clone, PartialEq)]
struct Applied {
    current: (VersionSpec, Option<Sha256>),
    candidate: Option<(CandidateSpec, Option<Sha256>)>,
    pin_key: Option<PinKey>,
}

pub fn spawn(manifest_path: PathBuf, app: &App, deployments: Arc<Deployments>) -> Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(64);
    let retry_tx = tx.clone();
    // Only events on the files that matter count (other files in the same directories, such as
    // a log file, must not keep the debounce open).
    let relevant = Arc::new(RwLock::new(relevant_names(&manifest_path, app)));
    let filter = relevant.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(e) = event else { return };
        if matches!(e.kind, notify::EventKind::Access(_)) {
            return;
        }
        let names = filter.read().unwrap();
        let hit = e.paths.iter().any(|p| {
            p.file_name()
                .is_some_and(|n| names.contains(n) || n.to_string_lossy().starts_with(".."))
        });
        if hit {
            let _ = tx.try_send(());
        }
    })?;
    let mut watched = BTreeSet::new();
    watch_dirs(&mut watcher, &mut watched, &manifest_path, app);
    let mut applied: HashMap<ComponentId, Applied> = app
        .components
        .iter()
        .map(|(id, spec)| (id.clone(), applied_now(spec)))
        .collect();
    let router = app.router.clone();
    let limits = app.limits.clone();
    tokio::spawn(async move {
        let mut retry = Retry::default();
        while rx.recv().await.is_some() {
            // Debounce: wait until events stop for a moment (an editor or kubelet writes several),
            // but never longer than MAX_DEBOUNCE.
            let first = tokio::time::Instant::now();
            while first.elapsed() < MAX_DEBOUNCE {
                match tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            let loaded = match manifest::load(&manifest_path) {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "manifest change not applied; still serving the previous configuration");
                    continue;
                }
            };
            let app = loaded.app;
            if app.router != router
                || app.components.keys().any(|id| !applied.contains_key(id))
                || applied.len() != app.components.len()
            {
                tracing::warn!("routes or the set of components changed in the manifest: they need a restart of fnhost to apply; applying version changes to existing components");
            }
            if app.limits != limits {
                tracing::warn!("[application.tool.fnhost] changed in the manifest: it needs a restart of fnhost to apply; applying version changes to existing components");
            }
            watch_dirs(&mut watcher, &mut watched, &manifest_path, &app);
            *relevant.write().unwrap() = relevant_names(&manifest_path, &app);
            let mut remote_failed = false;
            for (id, spec) in &app.components {
                let Some(record) = applied.get_mut(id) else {
                    continue;
                };
                if applied_now(spec) == *record {
                    continue;
                }
                deployments.set_manifest(spec);
                // Each part that applies is recorded at once; a part that fails is retried by
                // the next event (e.g. the rest of a write) and nothing else is redone.
                if let Err(e) = apply_component(&deployments, spec, record).await {
                    remote_failed |= spec.sources().any(Source::is_remote);
                    tracing::warn!(component = %id, error = %format!("{e:#}"), "module change not applied; the serving version stays");
                }
            }
            // A download or pull may fail only for now (a registry restarting): try again later
            // without waiting for another event.
            retry.schedule(remote_failed, &retry_tx);
        }
        drop(watcher);
    });
    Ok(())
}

async fn apply_component(
    deployments: &Deployments,
    spec: &ComponentSpec,
    record: &mut Applied,
) -> Result<()> {
    let id = spec.id.as_str();
    let now = applied_now(spec);
    if now.current != record.current {
        let version = deployments.load(id, spec.version.clone(), None).await?;
        deployments.deploy(version).await?;
        record.current = now.current;
    }
    if now.pin_key != record.pin_key {
        deployments.set_pin_key(id, now.pin_key.clone()).await?;
        record.pin_key = now.pin_key;
    }
    if now.candidate != record.candidate {
        match (&now.candidate, &record.candidate) {
            (Some((c, sha)), Some((before, before_sha)))
                if c.version == before.version && sha == before_sha =>
            {
                let policy = c.policy.clone();
                deployments.set_policy(id, move |_| policy).await?;
            }
            (Some((c, _)), _) => {
                let version = deployments.load(id, c.version.clone(), None).await?;
                deployments.set_candidate(version, c.policy.clone()).await?;
            }
            (None, _) => {
                deployments.clear_candidate(id).await?;
            }
        }
        record.candidate = now.candidate;
    }
    Ok(())
}

/// Retries of changes whose module is remote, with a growing pause (5 s, 10 s, … up to a
/// minute); one pending at a time, and none once a pass applies everything.
#[derive(Default)]
struct Retry {
    attempt: u32,
    pending: Option<tokio::task::JoinHandle<()>>,
}

impl Retry {
    fn schedule(&mut self, needed: bool, tx: &tokio::sync::mpsc::Sender<()>) {
        if !needed {
            self.attempt = 0;
            return;
        }
        if self.pending.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        self.attempt += 1;
        let pause = Duration::from_secs(5 * u64::from(self.attempt.min(12)));
        tracing::info!(
            in_seconds = pause.as_secs(),
            "retrying the module change later"
        );
        let tx = tx.clone();
        self.pending = Some(tokio::spawn(async move {
            tokio::time::sleep(pause).await;
            let _ = tx.send(()).await;
        }));
    }
}

fn applied_now(spec: &ComponentSpec) -> Applied {
    Applied {
        current: (spec.version.clone(), source_sha(&spec.version.source)),
        candidate: spec
            .candidate
            .as_ref()
            .map(|c| (c.clone(), source_sha(&c.version.source))),
        pin_key: spec.pin_key.clone(),
    }
}

/// The digest of what a source names now: a file is hashed, a URL or pinned registry source
/// carries its digest. A registry tag is not resolved here: what it names is fixed when the
/// version loads, and only a change of the manifest loads it again.
fn source_sha(source: &Source) -> Option<Sha256> {
    match source {
        Source::Path(p) => std::fs::read(p).ok().map(|b| Sha256::of(&b)),
        other => other.pinned_digest().cloned(),
    }
}

/// File names whose changes matter: the manifest and every module it names.
fn relevant_names(manifest: &Path, app: &App) -> HashSet<OsString> {
    let mut names: HashSet<OsString> = manifest
        .file_name()
        .map(|n| n.to_os_string())
        .into_iter()
        .collect();
    for spec in app.components.values() {
        for source in spec.sources() {
            if let Source::Path(p) = source {
                names.extend(p.file_name().map(|n| n.to_os_string()));
            }
        }
    }
    names
}

fn watch_dirs(
    watcher: &mut notify::RecommendedWatcher,
    watched: &mut BTreeSet<PathBuf>,
    manifest: &Path,
    app: &App,
) {
    let mut dirs = BTreeSet::new();
    if let Some(d) = manifest.parent() {
        dirs.insert(d.to_path_buf());
    }
    for spec in app.components.values() {
        for source in spec.sources() {
            if let Source::Path(p) = source {
                if let Some(d) = p.parent() {
                    dirs.insert(d.to_path_buf());
                }
            }
        }
    }
    for d in dirs {
        if watched.contains(&d) {
            continue;
        }
        match watcher.watch(&d, RecursiveMode::NonRecursive) {
            Ok(()) => {
                tracing::debug!(dir = %d.display(), "watching for changes");
                watched.insert(d);
            }
            Err(e) => {
                tracing::warn!(dir = %d.display(), error = %e, "cannot watch directory; changes there will not be applied")
            }
        }
    }
}
