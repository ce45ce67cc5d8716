//! The Spin manifest (v2) as fnhost reads it: `spin.toml` → a validated [`spec::App`].
//!
//! Three steps, each in one place. `schema` says what may be written (serde types). Reading
//! (`parse`) deserialises the text, collecting every key no type declares with its key path
//! (`serde_ignored`) and naming the key of any type error (`serde_path_to_error`). Converting
//! (`Convert`) resolves paths against the manifest's directory and builds the domain types
//! through their constructors in `spec`, so an error names the file, the key and the rule.
//!
//! **One policy for keys fnhost does not read** ([`judge`]): inside fnhost's own `tool.fnhost`
//! tables an unknown key is an error (a typo there would silently leave a limit at its
//! default); a key Spin defines that fnhost does not implement is a warning saying so; any other
//! unknown key is a warning too (Spin adds keys over time; the file should still load).
//! Warnings are returned as values; the caller logs each once.

mod schema;
mod units;

use anyhow::{anyhow, bail, Result};
use std::collections::BTreeMap;
use std::path::Path;

use crate::router::Router;
use crate::spec::{
    App, AppLimits, AppVariable, CanaryPolicy, CandidateSpec, CapabilityGrants, ComponentId,
    ComponentSpec, ComponentVariables, FileMount, GuardSpec, KeyValueStoreLabel, Label,
    OciReference, OciSource, OutboundHost, PinKey, Sha256, Source, SpecError, Stickiness, Template,
    VariableName, VersionSpec, Weight,
};
use schema::{ManifestFile, StringOr};
use std::sync::Arc;

/// The result of reading a manifest: the app plus warnings to log once.
#[derive(Debug)]
pub struct Loaded {
    pub app: App,
    pub warnings: Vec<String>,
}

/// Bounds of the settings, refused at load when a value falls outside (see `units`).
mod bounds {
    use std::ops::RangeInclusive;
    use std::time::Duration;

    pub const REQUEST_TIMEOUT: RangeInclusive<Duration> =
        Duration::from_millis(1)..=Duration::from_secs(24 * 3600);
    pub const HEADER_READ_TIMEOUT: RangeInclusive<Duration> =
        Duration::from_millis(1)..=Duration::from_secs(3600);
    pub const BODY_READ_TIMEOUT: RangeInclusive<Duration> =
        Duration::from_millis(1)..=Duration::from_secs(3600);
    /// A wasm32 linear memory addresses at most 4 GiB; below one 64 KiB page nothing runs.
    pub const MEMORY: RangeInclusive<u64> = 64 << 10..=4 << 30;
    /// Request bodies are buffered before the guest runs.
    pub const REQUEST_BODY: RangeInclusive<u64> = 0..=1 << 30;
    pub const RESPONSE_BODY: RangeInclusive<u64> = 0..=16 << 30;
    pub const HEADER_BYTES: RangeInclusive<u64> = 1 << 10..=1 << 20;
    pub const CONCURRENT: RangeInclusive<i64> = 1..=100_000;
    pub const QUEUED: RangeInclusive<i64> = 0..=1_000_000;
    pub const HEADERS: RangeInclusive<i64> = 1..=10_000;
    pub const CONNECTIONS: RangeInclusive<i64> = 1..=1_000_000;
    pub const INSTANCE_REUSE: RangeInclusive<i64> = 1..=100_000;
    pub const MODULE_SIZE: RangeInclusive<u64> = 1 << 10..=4 << 30;
}

pub fn load(path: &Path) -> Result<Loaded> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow!("{}: cannot read manifest: {e}", path.display()))?;
    // Absolute but with symlinks kept: a Kubernetes ConfigMap mount swaps a `..data` symlink,
    // and paths must keep resolving through it after the swap.
    let manifest_path = std::path::absolute(path)
        .map_err(|e| anyhow!("{}: cannot resolve manifest path: {e}", path.display()))?;
    parse(&text, &manifest_path)
}

/// Parses manifest text; `manifest_path` names the file in errors and anchors relative paths.
pub fn parse(text: &str, manifest_path: &Path) -> Result<Loaded> {
    let file = manifest_path.display().to_string();
    let doc: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| anyhow!("{file}: invalid TOML: {}", e.message()))?;
    match doc.get("spin_manifest_version") {
        Some(toml::Value::Integer(2)) => {}
        Some(v) => bail!("{file}: spin_manifest_version: must be 2, got {v}"),
        None => bail!("{file}: spin_manifest_version: missing (fnhost reads Spin manifest v2)"),
    }

    let mut ignored = Vec::new();
    let mut track = serde_path_to_error::Track::new();
    let manifest: ManifestFile = serde_ignored::deserialize(
        serde_path_to_error::Deserializer::new(toml::Deserializer::new(text), &mut track),
        |path| ignored.push(key_path(&path)),
    )
    .map_err(|e: toml::de::Error| {
        let at = track.path().to_string();
        let line = e
            .span()
            .map(|s| format!(" (line {})", 1 + text[..s.start].matches('\n').count()))
            .unwrap_or_default();
        if at == "." || at.is_empty() {
            anyhow!("{file}: {}{line}", e.message())
        } else {
            anyhow!("{file}: {at}: {}{line}", e.message())
        }
    })?;

    let mut warnings = Vec::new();
    for key in ignored {
        match judge(&key) {
            Judgement::Error(why) => bail!("{file}: {key}: {why}"),
            Judgement::Warning(why) => warnings.push(format!("{file}: {key}: {why}")),
        }
    }
    let base = manifest_path.parent().unwrap_or(Path::new("/"));
    let mut convert = Convert {
        file: &file,
        base,
        warnings,
        insecure_registries: Vec::new(),
    };
    let app = convert.app(manifest, manifest_path)?;
    Ok(Loaded {
        app,
        warnings: convert.warnings,
    })
}

/// A key path as users write it: `component.a.files[0].source` (serde_ignored's own display
/// marks options with `?` and indexes with dots).
fn key_path(path: &serde_ignored::Path) -> String {
    use serde_ignored::Path as P;
    match path {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", key_path(parent)),
        P::Map { parent, key } => match key_path(parent) {
            p if p.is_empty() => key.clone(),
            p => format!("{p}.{key}"),
        },
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            key_path(parent)
        }
    }
}

enum Judgement {
    Error(&'static str),
    Warning(String),
}

/// Keys Spin defines that fnhost does not implement (`*` is one key or index), and what to say.
const SPIN_UNSUPPORTED: &[(&str, &str)] = &[
    (
        "application.trigger",
        "trigger-wide settings (base) are not supported; ignored",
    ),
    (
        "trigger.http[*].executor",
        "not supported by fnhost; ignored",
    ),
    (
        "trigger.http[*].static_response",
        "not supported by fnhost; ignored",
    ),
    (
        "trigger.http[*].components",
        "not supported by fnhost; ignored",
    ),
    (
        "component.*.sqlite_databases",
        "not supported by fnhost; ignored",
    ),
    ("component.*.ai_models", "not supported by fnhost; ignored"),
    (
        "component.*.dependencies",
        "not supported by fnhost; ignored",
    ),
    (
        "component.*.dependencies_inherit_configuration",
        "not supported by fnhost; ignored",
    ),
    (
        "component.*.allowed_http_hosts",
        "not supported by fnhost (deprecated by Spin: use allowed_outbound_hosts); ignored",
    ),
];

/// The one policy for keys no schema type declares (see the module docs).
fn judge(key: &str) -> Judgement {
    let segments: Vec<&str> = key.split('.').collect();
    if segments.windows(2).any(|w| w == ["tool", "fnhost"]) {
        return Judgement::Error("unknown key in fnhost's settings");
    }
    if let [trigger, kind] = segments.as_slice() {
        if *trigger == "trigger" && *kind != "http" {
            return Judgement::Warning("only HTTP triggers are supported; ignored".into());
        }
    }
    let matches = |pattern: &str| {
        let p: Vec<&str> = pattern.split('.').collect();
        p.len() == segments.len()
            && p.iter().zip(&segments).all(|(p, s)| {
                *p == "*"
                    || p == s
                    || p.strip_suffix("[*]").is_some_and(|name| {
                        s.strip_prefix(name)
                            .is_some_and(|rest| rest.starts_with('[') && rest.ends_with(']'))
                    })
            })
    };
    match SPIN_UNSUPPORTED
        .iter()
        .find(|(pattern, _)| matches(pattern))
    {
        Some((_, why)) => Judgement::Warning(why.to_string()),
        None => Judgement::Warning("unknown key; ignored".into()),
    }
}

/// Turns the file's values into domain types; owns the error prefixes and the warnings.
struct Convert<'a> {
    file: &'a str,
    base: &'a Path,
    warnings: Vec<String>,
    /// `[application.tool.fnhost] insecure_registries`: registries reached over plain HTTP.
    insecure_registries: Vec<String>,
}

impl Convert<'_> {
    fn err(&self, at: &str, msg: impl std::fmt::Display) -> anyhow::Error {
        anyhow!("{}: {at}: {msg}", self.file)
    }

    fn warn(&mut self, at: &str, msg: &str) {
        self.warnings.push(format!("{}: {at}: {msg}", self.file));
    }

    fn app(&mut self, m: ManifestFile, manifest_path: &Path) -> Result<App> {
        if m.application.name.is_empty() {
            return Err(self.err("application.name", "must be a non-empty string"));
        }
        let mut tool = m.application.tool.fnhost.unwrap_or_default();
        self.insecure_registries = tool.insecure_registries.take().unwrap_or_default();
        let limits = self.limits(tool)?;
        let variables = Arc::new(self.app_variables(m.variables)?);
        let mut components = BTreeMap::new();
        for (id, c) in m.component {
            let at = format!("component.{id}");
            let id = ComponentId::new(&id).map_err(|e| self.err(&at, e))?;
            let spec = self.component(&at, id.clone(), c, &limits, &variables)?;
            components.insert(id, spec);
        }
        let router = self.router(m.trigger.http, &components)?;
        Ok(App {
            name: m.application.name,
            manifest_path: manifest_path.to_path_buf(),
            router,
            components,
            limits,
        })
    }

    fn limits(&self, t: schema::AppTool) -> Result<AppLimits> {
        let at = |key: &str| format!("application.tool.fnhost.{key}");
        let mut l = AppLimits::default();
        if let Some(v) = t.request_timeout {
            l.request_timeout = units::duration(&v, bounds::REQUEST_TIMEOUT)
                .map_err(|e| self.err(&at("request_timeout"), e))?;
        }
        if let Some(v) = t.header_read_timeout {
            l.header_read_timeout = units::duration(&v, bounds::HEADER_READ_TIMEOUT)
                .map_err(|e| self.err(&at("header_read_timeout"), e))?;
        }
        if let Some(v) = t.body_read_timeout {
            l.body_read_timeout = units::duration(&v, bounds::BODY_READ_TIMEOUT)
                .map_err(|e| self.err(&at("body_read_timeout"), e))?;
        }
        if let Some(v) = t.memory_limit {
            l.memory_limit_bytes =
                units::size(&v, bounds::MEMORY).map_err(|e| self.err(&at("memory_limit"), e))?;
        }
        if let Some(v) = t.max_request_body {
            l.max_request_body_bytes = units::size(&v, bounds::REQUEST_BODY)
                .map_err(|e| self.err(&at("max_request_body"), e))?;
        }
        if let Some(v) = t.max_response_body {
            l.max_response_body_bytes = units::size(&v, bounds::RESPONSE_BODY)
                .map_err(|e| self.err(&at("max_response_body"), e))?;
        }
        if let Some(v) = t.max_header_bytes {
            l.max_header_bytes = units::size(&v, bounds::HEADER_BYTES)
                .map_err(|e| self.err(&at("max_header_bytes"), e))?
                as usize;
        }
        if let Some(n) = t.max_concurrent_requests {
            l.max_concurrent_requests = units::count(n, bounds::CONCURRENT)
                .map_err(|e| self.err(&at("max_concurrent_requests"), e))?;
        }
        if let Some(n) = t.max_queued_requests {
            l.max_queued_requests = units::count(n, bounds::QUEUED)
                .map_err(|e| self.err(&at("max_queued_requests"), e))?;
        }
        if let Some(n) = t.max_headers {
            l.max_headers =
                units::count(n, bounds::HEADERS).map_err(|e| self.err(&at("max_headers"), e))?;
        }
        if let Some(v) = t.max_module_size {
            l.max_module_bytes = units::size(&v, bounds::MODULE_SIZE)
                .map_err(|e| self.err(&at("max_module_size"), e))?;
        }
        if let Some(n) = t.max_connections {
            l.max_connections = units::count(n, bounds::CONNECTIONS)
                .map_err(|e| self.err(&at("max_connections"), e))?;
        }
        Ok(l)
    }

    fn app_variables(
        &self,
        vars: BTreeMap<String, schema::Variable>,
    ) -> Result<BTreeMap<VariableName, AppVariable>> {
        vars.into_iter()
            .map(|(name, v)| {
                let at = format!("variables.{name}");
                let name = VariableName::new(&name).map_err(|e| self.err(&at, e))?;
                let var = AppVariable::new(v.default, v.required, v.secret)
                    .map_err(|e| self.err(&at, e))?;
                Ok((name, var))
            })
            .collect()
    }

    /// `variables` and `key_value_stores` of one component.
    fn grants(
        &self,
        at: &str,
        c: &mut schema::Component,
        app_variables: &Arc<BTreeMap<VariableName, AppVariable>>,
    ) -> Result<CapabilityGrants> {
        let vat = format!("{at}.variables");
        let component = c
            .variables
            .take()
            .unwrap_or_default()
            .into_iter()
            .map(|(name, text)| {
                let at = format!("{vat}.{name}");
                let name = VariableName::new(&name).map_err(|e| self.err(&at, e))?;
                Ok((name, Template::parse(&text).map_err(|e| self.err(&at, e))?))
            })
            .collect::<Result<_>>()?;
        let variables = ComponentVariables::new(app_variables.clone(), component)
            .map_err(|e| self.err(&vat, e))?;
        let key_value_stores = c
            .key_value_stores
            .take()
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(i, label)| {
                KeyValueStoreLabel::new(label)
                    .map_err(|e| self.err(&format!("{at}.key_value_stores[{i}]"), e))
            })
            .collect::<Result<_>>()?;
        Ok(CapabilityGrants {
            variables,
            key_value_stores,
        })
    }

    fn component(
        &mut self,
        at: &str,
        id: ComponentId,
        mut c: schema::Component,
        app: &AppLimits,
        app_variables: &Arc<BTreeMap<VariableName, AppVariable>>,
    ) -> Result<ComponentSpec> {
        let grants = self.grants(at, &mut c, app_variables)?;
        let tool = c.tool.fnhost.unwrap_or_default();
        let tat = format!("{at}.tool.fnhost");
        let request_timeout = tool
            .request_timeout
            .map(|v| units::duration(&v, bounds::REQUEST_TIMEOUT))
            .transpose()
            .map_err(|e| self.err(&format!("{tat}.request_timeout"), e))?;
        let memory_limit = tool
            .memory_limit
            .map(|v| units::size(&v, bounds::MEMORY))
            .transpose()
            .map_err(|e| self.err(&format!("{tat}.memory_limit"), e))?;
        let instance_reuse = tool
            .instance_reuse
            .map(|n| units::count(n, bounds::INSTANCE_REUSE))
            .transpose()
            .map_err(|e| {
                self.err(
                    &format!("{tat}.instance_reuse"),
                    format!("{e} (1 = a fresh instance per request)"),
                )
            })?;
        let version = VersionSpec {
            source: self.source(&format!("{at}.source"), c.source)?,
            files: self.files(&format!("{at}.files"), c.files.unwrap_or_default())?,
            environment: c.environment.unwrap_or_default(),
            allowed_outbound_hosts: self.outbound(
                &format!("{at}.allowed_outbound_hosts"),
                c.allowed_outbound_hosts.unwrap_or_default(),
            )?,
            grants,
            label: self.label(&format!("{tat}.label"), tool.label)?,
        };
        let pin_key = tool
            .pin_key
            .map(|k| PinKey::new(&k).map_err(|e| self.err(&format!("{tat}.pin_key"), e)))
            .transpose()?;
        let candidate = tool
            .candidate
            .map(|t| self.candidate(&format!("{tat}.candidate"), t, &version))
            .transpose()?;
        Ok(ComponentSpec {
            id,
            version,
            limits: app.for_component(
                memory_limit,
                request_timeout,
                instance_reuse.map(|n| n as u32),
            ),
            candidate,
            pin_key,
        })
    }

    fn candidate(
        &mut self,
        at: &str,
        t: schema::CandidateTool,
        component: &VersionSpec,
    ) -> Result<CandidateSpec> {
        let version = VersionSpec {
            source: self.source(&format!("{at}.source"), t.source)?,
            files: match t.files {
                Some(f) => self.files(&format!("{at}.files"), f)?,
                None => component.files.clone(),
            },
            environment: t
                .environment
                .unwrap_or_else(|| component.environment.clone()),
            allowed_outbound_hosts: component.allowed_outbound_hosts.clone(),
            grants: component.grants.clone(),
            label: self.label(&format!("{at}.label"), t.label)?,
        };
        let weight = Weight::from_percent(t.weight.unwrap_or(0.0))
            .map_err(|e| self.err(&format!("{at}.weight"), e))?;
        let sticky = match (t.sticky_header, t.sticky_cookie) {
            (Some(_), Some(_)) => {
                return Err(self.err(at, "set sticky_header or sticky_cookie, not both"))
            }
            (Some(h), None) => Some(
                Stickiness::header(&h).map_err(|e| self.err(&format!("{at}.sticky_header"), e))?,
            ),
            (None, Some(c)) => Some(
                Stickiness::cookie(&c).map_err(|e| self.err(&format!("{at}.sticky_cookie"), e))?,
            ),
            (None, None) => None,
        };
        let guard = match (t.max_error_rate, t.guard_window) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(self.err(&format!("{at}.guard_window"), "needs max_error_rate"))
            }
            (Some(rate), window) => {
                Some(GuardSpec::new(rate, window).map_err(|e| self.guard_err(at, e))?)
            }
        };
        Ok(CandidateSpec {
            version,
            policy: CanaryPolicy {
                weight,
                sticky,
                guard,
            },
        })
    }

    /// GuardSpec's messages name their parameter; put it into the key path.
    fn guard_err(&self, at: &str, e: SpecError) -> anyhow::Error {
        let key = if e.0.starts_with("guard_window") {
            "guard_window"
        } else {
            "max_error_rate"
        };
        self.err(&format!("{at}.{key}"), e)
    }

    fn label(&self, at: &str, label: Option<String>) -> Result<Option<Label>> {
        label
            .map(|l| Label::new(&l).map_err(|e| self.err(at, e)))
            .transpose()
    }

    fn source(&self, at: &str, v: StringOr<schema::SourceTable>) -> Result<Source> {
        match v {
            StringOr::Str(p) => {
                let path = self.base.join(&p);
                if !path.is_file() {
                    return Err(self.err(
                        at,
                        format!("file \"{p}\" not found (resolved to {})", path.display()),
                    ));
                }
                Ok(Source::Path(path))
            }
            StringOr::Table(t) if t.url.is_none() && t.digest.is_none() => {
                // Spin's registry source: { registry, package, version }.
                let missing = |key: &str, what: &str| self.err(&format!("{at}.{key}"), what);
                let registry = t.registry.ok_or_else(|| {
                    missing(
                        "registry",
                        "missing (fnhost has no default registry: name one, e.g. \"ghcr.io\")",
                    )
                })?;
                let package = t
                    .package
                    .ok_or_else(|| missing("package", "missing (\"NAMESPACE:NAME\")"))?;
                let version = t
                    .version
                    .ok_or_else(|| missing("version", "missing (\"X.Y.Z\")"))?;
                let reference = OciReference::package(&registry, &package, &version)
                    .map_err(|e| self.err(at, e))?;
                Ok(self.oci(reference, None))
            }
            StringOr::Table(t) => {
                if t.registry.is_some() || t.package.is_some() || t.version.is_some() {
                    return Err(self.err(
                        at,
                        "use either { url, digest } or { registry, package, version }, not both",
                    ));
                }
                let url = t
                    .url
                    .ok_or_else(|| self.err(&format!("{at}.url"), "missing"))?;
                let digest = t.digest.ok_or_else(|| {
                    self.err(
                        &format!("{at}.digest"),
                        "missing (\"sha256:<64 hex digits>\")",
                    )
                })?;
                let digest = Sha256::parse_prefixed(&digest)
                    .map_err(|e| self.err(&format!("{at}.digest"), e))?;
                if url.starts_with(OciReference::SCHEME) {
                    let reference =
                        OciReference::parse(&url).map_err(|e| self.err(&format!("{at}.url"), e))?;
                    return Ok(self.oci(reference, Some(digest)));
                }
                Source::url(&url, digest).map_err(|e| self.err(&format!("{at}.url"), e))
            }
        }
    }

    /// A registry source, over plain HTTP when the manifest marks its registry insecure.
    fn oci(&self, reference: OciReference, digest: Option<Sha256>) -> Source {
        let insecure = self.insecure_registries.contains(&reference.registry);
        Source::Oci(OciSource::new(reference, digest, insecure))
    }

    fn files(&self, at: &str, list: Vec<StringOr<schema::FilesMount>>) -> Result<Vec<FileMount>> {
        list.into_iter()
            .enumerate()
            .map(|(i, entry)| {
                let eat = format!("{at}[{i}]");
                let StringOr::Table(m) = entry else {
                    return Err(self.err(&eat, "only { source = \"dir\", destination = \"/path\" } directory mounts are supported (not glob patterns)"));
                };
                if !m.destination.starts_with('/') {
                    return Err(self.err(
                        &format!("{eat}.destination"),
                        format!("must be an absolute guest path, got \"{}\"", m.destination),
                    ));
                }
                let path = self.base.join(&m.source);
                if !path.is_dir() {
                    return Err(self.err(
                        &format!("{eat}.source"),
                        format!(
                            "directory \"{}\" not found (resolved to {})",
                            m.source,
                            path.display()
                        ),
                    ));
                }
                FileMount::new(path, &m.destination).map_err(|e| self.err(&eat, e))
            })
            .collect()
    }

    fn outbound(&self, at: &str, hosts: Vec<String>) -> Result<Vec<OutboundHost>> {
        hosts
            .iter()
            .enumerate()
            .map(|(i, h)| OutboundHost::parse(h).map_err(|e| self.err(&format!("{at}[{i}]"), e)))
            .collect()
    }

    fn router(
        &mut self,
        triggers: Vec<schema::HttpTrigger>,
        components: &BTreeMap<ComponentId, ComponentSpec>,
    ) -> Result<Router<ComponentId>> {
        let mut routes = Vec::new();
        for (i, t) in triggers.into_iter().enumerate() {
            let at = format!("trigger.http[{i}]");
            let route = match t.route {
                StringOr::Str(r) => r,
                StringOr::Table(_) => {
                    return Err(self.err(
                        &format!("{at}.route"),
                        "private routes are not supported by fnhost",
                    ))
                }
            };
            let component = match t.component {
                Some(StringOr::Str(c)) => c,
                Some(StringOr::Table(_)) => {
                    return Err(self.err(
                        &format!("{at}.component"),
                        "inline components are not supported; use [component.NAME]",
                    ))
                }
                None => return Err(self.err(&format!("{at}.component"), "missing")),
            };
            let Some((id, _)) = components.get_key_value(component.as_str()) else {
                return Err(self.err(
                    &format!("{at}.component"),
                    format!("unknown component \"{component}\" (no [component.{component}] table)"),
                ));
            };
            routes.push((route, id.clone()));
        }
        if routes.is_empty() {
            return Err(self.err(
                "trigger.http",
                "no routes ([[trigger.http]] with route and component)",
            ));
        }
        let router = Router::new(routes).map_err(|e| self.err("trigger.http", e))?;
        for id in components.keys() {
            if !router.routes().any(|(_, c)| c == id) {
                self.warn(
                    &format!("component.{id}"),
                    "no route leads to this component",
                );
            }
        }
        Ok(router)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn fixture() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a.wasm"), b"\0asm").unwrap();
        std::fs::create_dir(d.path().join("models")).unwrap();
        d
    }

    fn parse_in(d: &tempfile::TempDir, text: &str) -> Result<Loaded> {
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
        assert_eq!(app.limits.request_timeout, Duration::from_secs(5));
        assert_eq!(app.limits.memory_limit_bytes, 64 << 20);
        let a = &app.components["a"];
        assert_eq!(a.version.files[0].destination, "/model");
        assert_eq!(a.version.environment["K"], "v");
        assert_eq!(a.limits.instance_reuse, 8);
        assert_eq!(a.limits.memory_limit_bytes, 64 << 20);
        let c = a.candidate.as_ref().unwrap();
        assert_eq!(c.policy.weight, Weight::from_percent(12.5).unwrap());
        assert_eq!(c.policy.sticky, Some(Stickiness::Header("x-user".into())));
        assert_eq!(
            c.policy.guard,
            Some(GuardSpec {
                max_error_rate: 0.05,
                window: 20
            })
        );
        // The candidate inherits what its table does not set.
        assert_eq!(c.version.files, a.version.files);
        assert_eq!(c.version.environment, a.version.environment);
        let (id, route) = app.router.route("/api/x").unwrap();
        assert_eq!((id.as_str(), &**route), ("a", "/api/..."));
    }

    /// `[variables]`, a component's `variables` and `key_value_stores`, with Spin's rules.
    #[test]
    fn variables_and_key_value_stores() {
        let d = fixture();
        let with = |component: &str, app: &str| {
            GOOD.replace(
                "environment = { K = \"v\" }",
                &format!("environment = {{ K = \"v\" }}\n{component}"),
            ) + app
        };
        let text = with(
            "key_value_stores = [\"default\"]\n[component.a.variables]\nurl = \"https://{{ host }}/x\"\nplain = \"p\"",
            "[variables]\nhost = { default = \"example.com\" }\ntoken = { required = true, secret = true }\n",
        );
        let loaded = parse_in(&d, &text).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let grants = &loaded.app.components["a"].version.grants;
        assert_eq!(grants.key_value_stores[0].as_str(), "default");
        let host = VariableName::new("host").unwrap();
        assert_eq!(
            grants.variables.app[&host].default.as_deref(),
            Some("example.com")
        );
        assert!(grants.variables.app[&VariableName::new("token").unwrap()].secret);
        assert_eq!(grants.variables.component.len(), 2);
        // The candidate has the component's grants.
        let candidate = loaded.app.components["a"].candidate.as_ref().unwrap();
        assert_eq!(&candidate.version.grants, grants);

        let cases: &[(String, &str, &str)] = &[
            (
                with("[component.a.variables]\nurl = \"{{ nope }}\"", ""),
                "component.a.variables",
                "\"nope\", which is not declared",
            ),
            (
                with("[component.a.variables]\nURL = \"x\"", ""),
                "component.a.variables.URL",
                "lower_snake_case",
            ),
            (
                with(
                    "",
                    "[variables]\nx = { default = \"1\", required = true }\n",
                ),
                "variables.x",
                "not both",
            ),
            (
                with("", "[variables]\nx = { secret = true }\n"),
                "variables.x",
                "needs a default or required",
            ),
            (
                with("key_value_stores = [\"default\", \"customer\"]", ""),
                "component.a.key_value_stores[1]",
                "only the \"default\" store",
            ),
        ];
        for (text, key, problem) in cases {
            let err = format!("{:#}", parse_in(&d, text).unwrap_err());
            assert!(
                err.contains(&format!("spin.toml: {key}: ")),
                "no key {key} in {err}"
            );
            assert!(err.contains(problem), "no problem {problem} in {err}");
        }
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
            // Type errors name the key.
            (
                &GOOD.replace("weight = 12.5", "weight = \"lots\""),
                "component.a.tool.fnhost.candidate.weight",
                "invalid type",
            ),
            // Absurd values are refused, not clamped or overflowed.
            (
                &GOOD.replace("\"5s\"", "\"300000000000h\""),
                "application.tool.fnhost.request_timeout",
                "",
            ),
            (
                &GOOD.replace("\"64MiB\"", "\"64GiB\""),
                "application.tool.fnhost.memory_limit",
                "out of range",
            ),
            (
                &GOOD.replace("instance_reuse = 8", "instance_reuse = 0"),
                "component.a.tool.fnhost.instance_reuse",
                "from 1 to 100000",
            ),
            // One policy: an unknown key in fnhost's own tables is an error, at any level.
            (
                &GOOD.replace(
                    "instance_reuse = 8",
                    "instance_reuse = 8\nrequest_timout = \"1s\"",
                ),
                "component.a.tool.fnhost.request_timout",
                "unknown key",
            ),
            (
                &GOOD.replace("memory_limit = \"64MiB\"", "idle_timeout = \"60s\""),
                "application.tool.fnhost.idle_timeout",
                "unknown key",
            ),
            (
                &GOOD.replace("weight = 12.5", "weight = 12.5\nwieght = 1"),
                "candidate.wieght",
                "unknown key",
            ),
            // Ids that could not be sent in a header are refused.
            (
                &GOOD
                    .replace("[component.a", "[component.\"ä\"")
                    .replace("component = \"a\"", "component = \"ä\""),
                "component.ä",
                "not a component id",
            ),
            (
                &GOOD.replace("sticky_header = \"X-User\"", "sticky_header = \"X User\""),
                "candidate.sticky_header",
                "not a valid HTTP header name",
            ),
            (
                &GOOD.replace(
                    "environment = { K = \"v\" }",
                    "allowed_outbound_hosts = [\"api.example.com\"]",
                ),
                "component.a.allowed_outbound_hosts[0]",
                "no scheme",
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
    fn registry_sources() {
        let d = fixture();
        let digest = "b".repeat(64);
        let with_source = |source: &str| {
            GOOD.replace(
                "source = \"a.wasm\"\nfiles",
                &format!("source = {source}\nfiles"),
            )
        };
        let oci = |text: &str| match parse_in(&d, text).unwrap().app.components["a"]
            .version
            .source
            .clone()
        {
            Source::Oci(o) => o,
            other => panic!("not a registry source: {other:?}"),
        };
        let spin = oci(&with_source(
            r#"{ registry = "ghcr.io", package = "fnhost:pi", version = "1.0.0" }"#,
        ));
        assert_eq!(spin.reference.to_string(), "oci://ghcr.io/fnhost/pi:1.0.0");
        assert_eq!((spin.digest, spin.plain_http), (None, false));
        let pinned = oci(&with_source(&format!(
            r#"{{ url = "oci://127.0.0.1:5000/fnhost/pi@sha256:{digest}", digest = "sha256:{digest}" }}"#
        )));
        assert_eq!(pinned.digest.map(|d| d.hex()), Some(digest.clone()));
        assert!(pinned.plain_http, "a loopback registry");
        // Plain HTTP elsewhere only where the manifest says so.
        let marked = oci(&with_source(
            r#"{ registry = "registry.internal:5000", package = "fnhost:pi", version = "1.0.0" }"#,
        )
        .replace(
            "memory_limit = \"64MiB\"",
            "memory_limit = \"64MiB\"\ninsecure_registries = [\"registry.internal:5000\"]",
        ));
        assert!(marked.plain_http);

        for (source, key, problem) in [
            (
                r#"{ package = "fnhost:pi", version = "1.0.0" }"#.to_string(),
                "component.a.source.registry",
                "no default registry",
            ),
            (
                r#"{ registry = "ghcr.io", version = "1.0.0" }"#.to_string(),
                "component.a.source.package",
                "missing",
            ),
            (
                r#"{ registry = "ghcr.io", package = "fnhost:pi", version = "one" }"#.to_string(),
                "component.a.source",
                "semantic version",
            ),
            (
                format!(r#"{{ url = "oci://fnhost/pi:1", digest = "sha256:{digest}" }}"#),
                "component.a.source.url",
                "must name its registry",
            ),
            (
                format!(
                    r#"{{ url = "https://x.example/a.wasm", digest = "sha256:{digest}", registry = "ghcr.io" }}"#
                ),
                "component.a.source",
                "not both",
            ),
        ] {
            let err = format!("{:#}", parse_in(&d, &with_source(&source)).unwrap_err());
            assert!(
                err.contains(key) && err.contains(problem),
                "{source}: {err}"
            );
        }
        let too_small = GOOD.replace(
            "memory_limit = \"64MiB\"",
            "memory_limit = \"64MiB\"\nmax_module_size = 100",
        );
        let err = format!("{:#}", parse_in(&d, &too_small).unwrap_err());
        assert!(
            err.contains("application.tool.fnhost.max_module_size"),
            "{err}"
        );
    }

    #[test]
    fn unsupported_and_unknown_keys_are_warnings() {
        let d = fixture();
        let text = GOOD.replace(
            "environment = { K = \"v\" }",
            "environment = { K = \"v\" }\nsqlite_databases = [\"default\"]\nsourc = \"typo\"",
        ) + "[[trigger.redis]]\nchannel = \"c\"\ncomponent = \"a\"\n[component.a.tool.other-tool]\nanything = 1\n";
        let loaded = parse_in(&d, &text).unwrap();
        let has = |key: &str, why: &str| {
            loaded
                .warnings
                .iter()
                .any(|w| w.contains(&format!("spin.toml: {key}: ")) && w.contains(why))
        };
        assert_eq!(loaded.warnings.len(), 3, "{:?}", loaded.warnings);
        assert!(has("component.a.sqlite_databases", "not supported"));
        assert!(has("component.a.sourc", "unknown key"));
        assert!(has("trigger.redis", "only HTTP triggers"));
    }

    #[test]
    fn key_patterns() {
        assert!(
            matches!(judge("trigger.http[3].executor"), Judgement::Warning(w) if w.contains("not supported"))
        );
        assert!(
            matches!(judge("trigger.http[3].exekutor"), Judgement::Warning(w) if w.contains("unknown key"))
        );
        assert!(matches!(
            judge("component.a.tool.fnhost.candidate.x"),
            Judgement::Error(_)
        ));
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
}
