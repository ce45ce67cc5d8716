//! The Spin manifest (v2) as fnhost understands it: `spin.toml` → a typed [`App`].
//!
//! This module owns parsing and validation only. It reads the file, checks every key it knows,
//! resolves paths relative to the manifest, and turns mistakes into errors that name the file,
//! the key and the problem. Keys that Spin defines but fnhost does not implement are returned
//! as warnings (the caller logs each once); keys that neither knows are warnings too, so a typo
//! is never silently ignored. fnhost's own settings live in the `tool.fnhost` tables, which
//! Spin ignores, so the same file stays valid for Spin.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use toml::Value;

/// A whole application: routes and the components they lead to.
#[derive(Debug, Clone, PartialEq)]
pub struct App {
    pub name: String,
    /// The manifest file this was read from (absolute).
    pub manifest_path: PathBuf,
    pub routes: Vec<HttpRoute>,
    pub components: BTreeMap<String, ComponentSpec>,
    pub settings: AppSettings,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpRoute {
    pub route: String,
    pub component: String,
}

/// Everything fnhost needs to run one version of a component.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentSpec {
    pub id: String,
    pub source: Source,
    pub files: Vec<FileMount>,
    pub environment: BTreeMap<String, String>,
    pub allowed_outbound_hosts: Vec<String>,
    pub settings: ComponentSettings,
    /// A declared candidate (canary / blue-green), from `[component.NAME.tool.fnhost.candidate]`.
    pub candidate: Option<CandidateSpec>,
    /// Human label of the current version (`tool.fnhost.label`).
    pub label: Option<String>,
}

/// Where a module's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// A local file (absolute path, resolved against the manifest's directory).
    Path(PathBuf),
    /// Spin's `{ url = "...", digest = "sha256:..." }`: downloaded, verified, cached by digest.
    Url { url: String, sha256: String },
    /// Bytes uploaded through the admin API (never in a manifest).
    Uploaded { sha256: String },
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Path(p) => write!(f, "{}", p.display()),
            Source::Url { url, sha256 } => write!(f, "{url} (sha256:{sha256})"),
            Source::Uploaded { sha256 } => write!(f, "uploaded (sha256:{sha256})"),
        }
    }
}

/// A read-only directory granted to the guest (`files = [{ source, destination }]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMount {
    pub source: PathBuf,
    pub destination: String,
}

/// Per-component limits and instance policy (`[component.NAME.tool.fnhost]`); `None` means
/// "use the application-wide value".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ComponentSettings {
    pub request_timeout: Option<Duration>,
    pub memory_limit_bytes: Option<u64>,
    /// Reuse one WASIp3 instance for up to this many requests (1 = fresh instance per request).
    pub instance_reuse: Option<u32>,
}

/// Application-wide limits (`[application.tool.fnhost]`).
#[derive(Debug, Clone, PartialEq)]
pub struct AppSettings {
    pub request_timeout: Duration,
    pub memory_limit_bytes: u64,
    pub max_request_body_bytes: u64,
    pub max_response_body_bytes: u64,
    /// Requests executing at once; beyond it requests queue.
    pub max_concurrent_requests: usize,
    /// Requests waiting for a slot; beyond it → 503.
    pub max_queued_requests: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_headers: usize,
    pub max_header_bytes: usize,
    /// Open connections per listener; beyond it new connections wait in the kernel backlog,
    /// so the host's memory stays bounded whatever the number of clients.
    pub max_connections: usize,
}

impl Default for AppSettings {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        AppSettings {
            request_timeout: Duration::from_secs(30),
            memory_limit_bytes: 128 << 20,
            max_request_body_bytes: 10 << 20,
            max_response_body_bytes: 64 << 20,
            max_concurrent_requests: 4 * cores,
            max_queued_requests: 256,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_headers: 100,
            max_header_bytes: 16 << 10,
            max_connections: 10_000,
        }
    }
}

/// A candidate version declared in the manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct CandidateSpec {
    pub source: Source,
    pub files: Option<Vec<FileMount>>,
    pub environment: Option<BTreeMap<String, String>>,
    pub label: Option<String>,
    /// Percent of traffic, 0.0–100.0 (one decimal).
    pub weight: f64,
    pub sticky: Option<Stickiness>,
    pub guard: Option<GuardSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stickiness {
    Header(String),
    Cookie(String),
}

/// Automatic rollback: trip when more than `max_error_rate` of the last `window` candidate
/// responses were 5xx.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardSpec {
    pub max_error_rate: f64,
    pub window: u32,
}

/// The result of reading a manifest: the app plus warnings to log once.
#[derive(Debug)]
pub struct Loaded {
    pub app: App,
    pub warnings: Vec<String>,
}

/// Keys Spin defines on a component that fnhost does not implement.
const SPIN_COMPONENT_UNSUPPORTED: &[&str] = &[
    "key_value_stores",
    "sqlite_databases",
    "ai_models",
    "variables",
    "dependencies",
    "dependencies_inherit_configuration",
    "allowed_http_hosts",
];
/// Keys Spin defines on a component that have no effect on serving (build-time metadata).
const SPIN_COMPONENT_INERT: &[&str] = &["description", "build", "exclude_files"];

pub fn load(path: &Path) -> Result<Loaded> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read manifest", path.display()))?;
    // Absolute but with symlinks kept: a Kubernetes ConfigMap mount swaps a `..data` symlink,
    // and paths must keep resolving through it after the swap.
    let manifest_path = std::path::absolute(path)
        .with_context(|| format!("{}: cannot resolve manifest path", path.display()))?;
    parse(&text, &manifest_path)
}

/// Parses manifest text; `manifest_path` names the file in errors and anchors relative paths.
pub fn parse(text: &str, manifest_path: &Path) -> Result<Loaded> {
    let file = manifest_path.display().to_string();
    let base = manifest_path
        .parent()
        .unwrap_or(Path::new("/"))
        .to_path_buf();
    let doc: toml::Table =
        toml::from_str(text).map_err(|e| anyhow::anyhow!("{file}: invalid TOML: {e}"))?;
    let mut cx = Cx {
        file: &file,
        base: &base,
        warnings: Vec::new(),
    };

    match doc.get("spin_manifest_version") {
        Some(Value::Integer(2)) => {}
        Some(v) => bail!("{file}: spin_manifest_version: must be 2, got {v}"),
        None => bail!("{file}: spin_manifest_version: missing (fnhost reads Spin manifest v2)"),
    }
    for key in doc.keys() {
        match key.as_str() {
            "spin_manifest_version" | "application" | "trigger" | "component" => {}
            "variables" => cx.warn(format!(
                "{key}: application variables are not supported by fnhost; ignored"
            )),
            other => cx.warn(format!("{other}: unknown top-level key; ignored")),
        }
    }

    let application = table(doc.get("application"), "application", &cx)?
        .ok_or_else(|| anyhow::anyhow!("{file}: [application]: missing"))?;
    let name = match application.get("name") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(_) => bail!("{file}: application.name: must be a non-empty string"),
        None => bail!("{file}: application.name: missing"),
    };
    let mut settings = AppSettings::default();
    for (key, value) in application {
        match key.as_str() {
            "name" | "version" | "description" | "authors" | "targets" => {}
            "trigger" => cx.warn(
                "application.trigger: trigger-wide settings (base) are not supported; ignored"
                    .into(),
            ),
            "tool" => {
                if let Some(fnhost) = value.get("fnhost") {
                    cx.app_settings(fnhost, &mut settings)?;
                }
            }
            other => cx.warn(format!("application.{other}: unknown key; ignored")),
        }
    }

    let components_table = table(doc.get("component"), "component", &cx)?
        .cloned()
        .unwrap_or_default();
    let mut components = BTreeMap::new();
    for (id, value) in &components_table {
        let spec = cx.component(id, value)?;
        components.insert(id.clone(), spec);
    }

    let mut routes = Vec::new();
    let triggers = table(doc.get("trigger"), "trigger", &cx)?
        .cloned()
        .unwrap_or_default();
    for (kind, list) in &triggers {
        if kind != "http" {
            cx.warn(format!(
                "trigger.{kind}: only HTTP triggers are supported; ignored"
            ));
            continue;
        }
        let Value::Array(list) = list else {
            bail!("{file}: trigger.http: must be an array of tables ([[trigger.http]])");
        };
        for (i, t) in list.iter().enumerate() {
            let at = format!("trigger.http[{i}]");
            let Value::Table(t) = t else {
                bail!("{file}: {at}: must be a table")
            };
            let route = match t.get("route") {
                Some(Value::String(r)) => r.clone(),
                Some(Value::Table(_)) => {
                    bail!("{file}: {at}.route: private routes are not supported by fnhost")
                }
                _ => bail!("{file}: {at}.route: missing or not a string"),
            };
            let component = match t.get("component") {
                Some(Value::String(c)) => c.clone(),
                Some(Value::Table(_)) => bail!("{file}: {at}.component: inline components are not supported; use [component.NAME]"),
                _ => bail!("{file}: {at}.component: missing or not a string"),
            };
            if !components.contains_key(&component) {
                bail!("{file}: {at}.component: unknown component \"{component}\" (no [component.{component}] table)");
            }
            for key in t.keys() {
                match key.as_str() {
                    "route" | "component" | "id" => {}
                    "executor" | "static_response" => {
                        cx.warn(format!("{at}.{key}: not supported by fnhost; ignored"))
                    }
                    other => cx.warn(format!("{at}.{other}: unknown key; ignored")),
                }
            }
            routes.push(HttpRoute { route, component });
        }
    }
    if routes.is_empty() {
        bail!("{file}: trigger.http: no routes ([[trigger.http]] with route and component)");
    }
    // Route syntax and duplicates are the router's rules; check them here so start-up fails
    // with the manifest's name.
    crate::router::Router::new(
        routes
            .iter()
            .map(|r| (r.route.clone(), r.component.clone())),
    )
    .map_err(|e| anyhow::anyhow!("{file}: trigger.http: {e}"))?;
    for id in components.keys() {
        if !routes.iter().any(|r| &r.component == id) {
            cx.warn(format!("component.{id}: no route leads to this component"));
        }
    }

    let app = App {
        name,
        manifest_path: manifest_path.to_path_buf(),
        routes,
        components,
        settings,
    };
    Ok(Loaded {
        app,
        warnings: cx.warnings,
    })
}

struct Cx<'a> {
    file: &'a str,
    base: &'a Path,
    warnings: Vec<String>,
}

fn table<'v>(v: Option<&'v Value>, key: &str, cx: &Cx) -> Result<Option<&'v toml::Table>> {
    match v {
        None => Ok(None),
        Some(Value::Table(t)) => Ok(Some(t)),
        Some(_) => bail!("{}: {key}: must be a table", cx.file),
    }
}

/// Limits as written in `tool.fnhost` tables. Durations are strings like "30s" or "250ms",
/// sizes are integers of bytes or strings like "128MiB".
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    request_timeout: Option<String>,
    memory_limit: Option<SizeValue>,
    max_request_body: Option<SizeValue>,
    max_response_body: Option<SizeValue>,
    max_concurrent_requests: Option<usize>,
    max_queued_requests: Option<usize>,
    header_read_timeout: Option<String>,
    idle_timeout: Option<String>,
    max_headers: Option<usize>,
    max_header_bytes: Option<SizeValue>,
    max_connections: Option<usize>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SizeValue {
    Bytes(u64),
    Text(String),
}

impl Cx<'_> {
    fn warn(&mut self, msg: String) {
        self.warnings.push(format!("{}: {msg}", self.file));
    }

    fn err(&self, at: &str, msg: impl std::fmt::Display) -> anyhow::Error {
        anyhow::anyhow!("{}: {at}: {msg}", self.file)
    }

    fn app_settings(&mut self, v: &Value, s: &mut AppSettings) -> Result<()> {
        let at = "application.tool.fnhost";
        let raw: RawLimits = v.clone().try_into().map_err(|e| self.err(at, e))?;
        if let Some(t) = raw.request_timeout {
            s.request_timeout =
                parse_duration(&t).map_err(|e| self.err(&format!("{at}.request_timeout"), e))?;
        }
        if let Some(m) = raw.memory_limit {
            s.memory_limit_bytes = self.size(&format!("{at}.memory_limit"), m)?;
        }
        if let Some(m) = raw.max_request_body {
            s.max_request_body_bytes = self.size(&format!("{at}.max_request_body"), m)?;
        }
        if let Some(m) = raw.max_response_body {
            s.max_response_body_bytes = self.size(&format!("{at}.max_response_body"), m)?;
        }
        if let Some(n) = raw.max_concurrent_requests {
            if n == 0 {
                return Err(self.err(
                    &format!("{at}.max_concurrent_requests"),
                    "must be at least 1",
                ));
            }
            s.max_concurrent_requests = n;
        }
        if let Some(n) = raw.max_queued_requests {
            s.max_queued_requests = n;
        }
        if let Some(t) = raw.header_read_timeout {
            s.header_read_timeout = parse_duration(&t)
                .map_err(|e| self.err(&format!("{at}.header_read_timeout"), e))?;
        }
        if let Some(t) = raw.idle_timeout {
            s.idle_timeout =
                parse_duration(&t).map_err(|e| self.err(&format!("{at}.idle_timeout"), e))?;
        }
        if let Some(n) = raw.max_headers {
            s.max_headers = n;
        }
        if let Some(n) = raw.max_connections {
            if n == 0 {
                return Err(self.err(&format!("{at}.max_connections"), "must be at least 1"));
            }
            s.max_connections = n;
        }
        if let Some(m) = raw.max_header_bytes {
            s.max_header_bytes = self.size(&format!("{at}.max_header_bytes"), m)? as usize;
        }
        Ok(())
    }

    fn size(&self, at: &str, v: SizeValue) -> Result<u64> {
        match v {
            SizeValue::Bytes(b) => Ok(b),
            SizeValue::Text(t) => parse_size(&t).map_err(|e| self.err(at, e)),
        }
    }

    fn component(&mut self, id: &str, value: &Value) -> Result<ComponentSpec> {
        let at = format!("component.{id}");
        let Value::Table(t) = value else {
            return Err(self.err(&at, "must be a table"));
        };
        let source = match t.get("source") {
            Some(v) => self.source(&format!("{at}.source"), v)?,
            None => return Err(self.err(&format!("{at}.source"), "missing")),
        };
        let files = match t.get("files") {
            Some(v) => self.files(&format!("{at}.files"), v)?,
            None => Vec::new(),
        };
        let environment = match t.get("environment") {
            Some(v) => self.environment(&format!("{at}.environment"), v)?,
            None => BTreeMap::new(),
        };
        let allowed_outbound_hosts = match t.get("allowed_outbound_hosts") {
            Some(Value::Array(a)) => a
                .iter()
                .map(|h| match h {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(self.err(
                        &format!("{at}.allowed_outbound_hosts"),
                        "entries must be strings",
                    )),
                })
                .collect::<Result<Vec<_>>>()?,
            Some(_) => {
                return Err(self.err(
                    &format!("{at}.allowed_outbound_hosts"),
                    "must be an array of strings",
                ))
            }
            None => Vec::new(),
        };
        let mut settings = ComponentSettings::default();
        let mut candidate = None;
        let mut label = None;
        for (key, v) in t {
            match key.as_str() {
                "source" | "files" | "environment" | "allowed_outbound_hosts" => {}
                "tool" => {
                    if let Some(fnhost) = v.get("fnhost") {
                        let at = format!("{at}.tool.fnhost");
                        let Value::Table(ft) = fnhost else {
                            return Err(self.err(&at, "must be a table"));
                        };
                        for (k, fv) in ft {
                            let kat = format!("{at}.{k}");
                            match k.as_str() {
                                "request_timeout" => {
                                    let s = fv.as_str().ok_or_else(|| {
                                        self.err(&kat, "must be a duration string like \"30s\"")
                                    })?;
                                    settings.request_timeout =
                                        Some(parse_duration(s).map_err(|e| self.err(&kat, e))?);
                                }
                                "memory_limit" => {
                                    let sv: SizeValue =
                                        fv.clone().try_into().map_err(|e| self.err(&kat, e))?;
                                    settings.memory_limit_bytes = Some(self.size(&kat, sv)?);
                                }
                                "instance_reuse" => {
                                    let n = fv.as_integer().filter(|n| (1..=100_000).contains(n)).ok_or_else(|| {
                                        self.err(&kat, "must be an integer from 1 (fresh instance per request) to 100000")
                                    })?;
                                    settings.instance_reuse = Some(n as u32);
                                }
                                "label" => {
                                    label = Some(
                                        fv.as_str()
                                            .ok_or_else(|| self.err(&kat, "must be a string"))?
                                            .to_string(),
                                    );
                                }
                                "candidate" => candidate = Some(self.candidate(&kat, fv)?),
                                other => self.warn(format!("{at}.{other}: unknown key; ignored")),
                            }
                        }
                    }
                }
                k if SPIN_COMPONENT_INERT.contains(&k) => {}
                k if SPIN_COMPONENT_UNSUPPORTED.contains(&k) => {
                    self.warn(format!("{at}.{k}: not supported by fnhost; ignored"))
                }
                other => self.warn(format!("{at}.{other}: unknown key; ignored")),
            }
        }
        Ok(ComponentSpec {
            id: id.to_string(),
            source,
            files,
            environment,
            allowed_outbound_hosts,
            settings,
            candidate,
            label,
        })
    }

    fn candidate(&mut self, at: &str, v: &Value) -> Result<CandidateSpec> {
        let Value::Table(t) = v else {
            return Err(self.err(at, "must be a table"));
        };
        let source = self.source(
            &format!("{at}.source"),
            t.get("source")
                .ok_or_else(|| self.err(&format!("{at}.source"), "missing"))?,
        )?;
        let files = t
            .get("files")
            .map(|v| self.files(&format!("{at}.files"), v))
            .transpose()?;
        let environment = t
            .get("environment")
            .map(|v| self.environment(&format!("{at}.environment"), v))
            .transpose()?;
        let label = match t.get("label") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(self.err(&format!("{at}.label"), "must be a string")),
            None => None,
        };
        let weight = match t.get("weight") {
            Some(Value::Integer(i)) => *i as f64,
            Some(Value::Float(f)) => *f,
            Some(_) => {
                return Err(self.err(&format!("{at}.weight"), "must be a number from 0 to 100"))
            }
            None => 0.0,
        };
        let weight = check_weight(weight).map_err(|e| self.err(&format!("{at}.weight"), e))?;
        let sticky = match (t.get("sticky_header"), t.get("sticky_cookie")) {
            (Some(_), Some(_)) => {
                return Err(self.err(at, "set sticky_header or sticky_cookie, not both"))
            }
            (Some(Value::String(h)), None) => Some(Stickiness::Header(h.to_ascii_lowercase())),
            (None, Some(Value::String(c))) => Some(Stickiness::Cookie(c.clone())),
            (None, None) => None,
            _ => return Err(self.err(at, "sticky_header / sticky_cookie must be strings")),
        };
        let guard = match t.get("max_error_rate") {
            None => None,
            Some(v) => {
                let rate = v
                    .as_float()
                    .or_else(|| v.as_integer().map(|i| i as f64))
                    .filter(|r| (0.0..=1.0).contains(r))
                    .ok_or_else(|| {
                        self.err(
                            &format!("{at}.max_error_rate"),
                            "must be a number from 0 to 1",
                        )
                    })?;
                let window = match t.get("guard_window") {
                    None => 20,
                    Some(Value::Integer(n)) if (20..=100_000).contains(n) => *n as u32,
                    Some(_) => {
                        return Err(self.err(
                            &format!("{at}.guard_window"),
                            "must be an integer from 20 to 100000",
                        ))
                    }
                };
                Some(GuardSpec {
                    max_error_rate: rate,
                    window,
                })
            }
        };
        for k in t.keys() {
            if ![
                "source",
                "files",
                "environment",
                "label",
                "weight",
                "sticky_header",
                "sticky_cookie",
                "max_error_rate",
                "guard_window",
            ]
            .contains(&k.as_str())
            {
                self.warn(format!("{at}.{k}: unknown key; ignored"));
            }
        }
        Ok(CandidateSpec {
            source,
            files,
            environment,
            label,
            weight,
            sticky,
            guard,
        })
    }

    fn source(&self, at: &str, v: &Value) -> Result<Source> {
        match v {
            Value::String(p) => {
                let path = self.base.join(p);
                if !path.is_file() {
                    return Err(self.err(
                        at,
                        format!("file \"{p}\" not found (resolved to {})", path.display()),
                    ));
                }
                Ok(Source::Path(path))
            }
            Value::Table(t) => {
                if t.contains_key("registry") || t.contains_key("package") {
                    return Err(self.err(
                        at,
                        "registry sources are not supported; use a path or { url, digest }",
                    ));
                }
                let url = t
                    .get("url")
                    .and_then(Value::as_str)
                    .ok_or_else(|| self.err(&format!("{at}.url"), "missing or not a string"))?;
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(self.err(
                        &format!("{at}.url"),
                        format!("must be an http:// or https:// URL, got \"{url}\""),
                    ));
                }
                let digest = t.get("digest").and_then(Value::as_str).ok_or_else(|| {
                    self.err(
                        &format!("{at}.digest"),
                        "missing (\"sha256:<64 hex digits>\")",
                    )
                })?;
                let hex = digest
                    .strip_prefix("sha256:")
                    .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
                    .ok_or_else(|| {
                        self.err(
                            &format!("{at}.digest"),
                            format!("must be \"sha256:<64 hex digits>\", got \"{digest}\""),
                        )
                    })?;
                Ok(Source::Url {
                    url: url.to_string(),
                    sha256: hex.to_ascii_lowercase(),
                })
            }
            _ => Err(self.err(at, "must be a path string or { url, digest }")),
        }
    }

    fn files(&self, at: &str, v: &Value) -> Result<Vec<FileMount>> {
        let Value::Array(list) = v else {
            return Err(self.err(at, "must be an array"));
        };
        let mut mounts = Vec::new();
        for (i, entry) in list.iter().enumerate() {
            let eat = format!("{at}[{i}]");
            let Value::Table(t) = entry else {
                return Err(self.err(&eat, "only { source = \"dir\", destination = \"/path\" } directory mounts are supported (not glob patterns)"));
            };
            let src = t
                .get("source")
                .and_then(Value::as_str)
                .ok_or_else(|| self.err(&format!("{eat}.source"), "missing or not a string"))?;
            let dst = t
                .get("destination")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    self.err(&format!("{eat}.destination"), "missing or not a string")
                })?;
            if !dst.starts_with('/') {
                return Err(self.err(
                    &format!("{eat}.destination"),
                    format!("must be an absolute guest path, got \"{dst}\""),
                ));
            }
            let path = self.base.join(src);
            if !path.is_dir() {
                return Err(self.err(
                    &format!("{eat}.source"),
                    format!(
                        "directory \"{src}\" not found (resolved to {})",
                        path.display()
                    ),
                ));
            }
            mounts.push(FileMount {
                source: path,
                destination: dst.to_string(),
            });
        }
        Ok(mounts)
    }

    fn environment(&self, at: &str, v: &Value) -> Result<BTreeMap<String, String>> {
        let Value::Table(t) = v else {
            return Err(self.err(at, "must be a table of strings"));
        };
        t.iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(self.err(&format!("{at}.{k}"), "must be a string")),
            })
            .collect()
    }
}

/// A canary weight: 0–100 with at most one decimal.
pub fn check_weight(w: f64) -> std::result::Result<f64, String> {
    if !(0.0..=100.0).contains(&w) || !w.is_finite() {
        return Err(format!("must be from 0 to 100, got {w}"));
    }
    if ((w * 10.0).round() - w * 10.0).abs() > 1e-9 {
        return Err(format!("must have at most one decimal, got {w}"));
    }
    Ok(w)
}

/// "30s", "250ms", "2m", "1h".
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("\"{s}\" is not a duration like \"30s\" or \"250ms\""))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return Err(format!("\"{s}\" has no unit; use ms, s, m or h")),
    };
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}

/// "128MiB", "10MB", "512KiB", "1GiB" or a plain number of bytes.
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("\"{s}\" is not a size like \"128MiB\""))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => {
            return Err(format!(
                "unknown size unit \"{other}\"; use B, KiB, MiB, GiB, KB, MB or GB"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("\"{s}\" is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> tempdir::Dir {
        let d = tempdir::Dir::new();
        std::fs::write(d.path().join("a.wasm"), b"\0asm").unwrap();
        std::fs::create_dir(d.path().join("models")).unwrap();
        d
    }

    /// A throwaway directory for manifest tests (removed on drop).
    mod tempdir {
        pub struct Dir(std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let p = std::env::temp_dir().join(format!(
                    "fnhost-manifest-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
            pub fn path(&self) -> &std::path::Path {
                &self.0
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    fn parse_in(d: &tempdir::Dir, text: &str) -> Result<Loaded> {
        parse(text, &d.path().join("spin.toml"))
    }

    const GOOD: &str = r#"
spin_manifest_version = 2
[application]
name = "demo"
[application.tool.fnhost]
request_timeout = "5s"
memory_limit = "64MiB"
[[trigger.http]]
route = "/api/..."
component = "a"
[component.a]
source = "a.wasm"
files = [{ source = "models", destination = "/model" }]
environment = { K = "v" }
[component.a.tool.fnhost]
instance_reuse = 8
[component.a.tool.fnhost.candidate]
source = "a.wasm"
weight = 12.5
sticky_header = "X-User"
max_error_rate = 0.05
"#;

    #[test]
    fn reads_a_full_manifest() {
        let d = fixture();
        let loaded = parse_in(&d, GOOD).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let app = loaded.app;
        assert_eq!(app.settings.request_timeout, Duration::from_secs(5));
        assert_eq!(app.settings.memory_limit_bytes, 64 << 20);
        let a = &app.components["a"];
        assert_eq!(a.files[0].destination, "/model");
        assert_eq!(a.environment["K"], "v");
        assert_eq!(a.settings.instance_reuse, Some(8));
        let c = a.candidate.as_ref().unwrap();
        assert_eq!(c.weight, 12.5);
        assert_eq!(c.sticky, Some(Stickiness::Header("x-user".into())));
        assert_eq!(
            c.guard,
            Some(GuardSpec {
                max_error_rate: 0.05,
                window: 20
            })
        );
    }

    #[test]
    fn errors_name_file_key_and_problem() {
        let d = fixture();
        let cases: &[(&str, &str, &str)] = &[
            (
                "spin_manifest_version = 2\n[application\n",
                "invalid TOML",
                "",
            ),
            (
                "spin_manifest_version = 1\n",
                "spin_manifest_version",
                "must be 2",
            ),
            (
                &GOOD.replace("component = \"a\"", "component = \"b\""),
                "trigger.http[0].component",
                "unknown component \"b\"",
            ),
            (
                &GOOD.replace(
                    "source = \"a.wasm\"\nfiles",
                    "source = \"missing.wasm\"\nfiles",
                ),
                "component.a.source",
                "not found",
            ),
            (
                &GOOD.replace("\"models\"", "\"nodir\""),
                "component.a.files[0].source",
                "not found",
            ),
            (
                &GOOD.replace("weight = 12.5", "weight = 101"),
                "candidate.weight",
                "from 0 to 100",
            ),
            (
                &GOOD.replace("\"5s\"", "\"5\""),
                "request_timeout",
                "no unit",
            ),
            (
                &format!("{GOOD}\n[[trigger.http]]\nroute = \"/api/...\"\ncomponent = \"a\"\n"),
                "trigger.http",
                "duplicate route",
            ),
            (
                &GOOD.replace("max_error_rate = 0.05", "max_error_rate = 2"),
                "max_error_rate",
                "from 0 to 1",
            ),
        ];
        for (text, key, problem) in cases {
            let err = format!("{:#}", parse_in(&d, text).unwrap_err());
            assert!(err.contains("spin.toml"), "no file name in {err}");
            assert!(err.contains(key), "no key {key} in {err}");
            assert!(err.contains(problem), "no problem {problem} in {err}");
        }
    }

    #[test]
    fn unsupported_and_unknown_keys_are_warnings() {
        let d = fixture();
        let text = GOOD.replace(
            "environment = { K = \"v\" }",
            "environment = { K = \"v\" }\nkey_value_stores = [\"default\"]\nsourc = \"typo\"",
        );
        let loaded = parse_in(&d, &text).unwrap();
        assert_eq!(loaded.warnings.len(), 2, "{:?}", loaded.warnings);
        assert!(loaded
            .warnings
            .iter()
            .any(|w| w.contains("key_value_stores") && w.contains("not supported")));
        assert!(loaded
            .warnings
            .iter()
            .any(|w| w.contains("sourc") && w.contains("unknown key")));
    }

    proptest::proptest! {
        /// Arbitrary text, and arbitrary edits of a valid manifest, give Ok or an error that
        /// names the file, never a panic.
        #[test]
        fn arbitrary_manifests_never_panic(text in "\\PC{0,400}", cut in 0usize..GOOD.len(), insert in "[\\[\\]=\"a-z0-9./ \n{},]{0,20}") {
            let d = fixture();
            if let Err(e) = parse_in(&d, &text) {
                let msg = format!("{e:#}");
                proptest::prop_assert!(msg.contains("spin.toml"), "{}", msg);
            }
            let mut edited = GOOD.to_string();
            let cut = (0..=cut).rev().find(|i| edited.is_char_boundary(*i)).unwrap_or(0);
            edited.insert_str(cut, &insert);
            if let Err(e) = parse_in(&d, &edited) {
                let msg = format!("{e:#}");
                proptest::prop_assert!(msg.contains("spin.toml"), "{}", msg);
            }
        }
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("128MiB"), Ok(128 << 20));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert!(parse_size("12 parsecs").is_err());
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("0s").is_err());
        assert_eq!(check_weight(10.5), Ok(10.5));
        assert!(check_weight(10.25).is_err());
    }
}
