//! The validated domain: what an application, its components and their versions are, once read.
//!
//! Every value here has passed exactly one constructor that checks its rule: a [`ComponentId`]
//! follows Spin's id syntax, a [`Weight`] is 0–100 % in tenths, a [`GuardSpec`] has a rate in
//! 0–1 and a window of 20–100,000 responses, a [`Stickiness`] names a valid header (lower-cased)
//! or cookie, a [`Label`] can be sent as a header value, an [`OutboundHost`] pattern is parsed
//! once at load, a [`VariableName`] is Spin's `lower_snake_case`, a [`Template`] refers only to
//! declared application variables ([`ComponentVariables`]), a [`KeyValueStoreLabel`] is
//! `default`. The manifest (`manifest/`) and the admin API (`admin/`) build these with the
//! same constructors, so each rule lives here and nowhere else. Constructors return a
//! [`SpecError`] that states the rule; callers prefix the key or parameter it came from.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::router::Router;

/// A broken rule, stated for a user ("must be from 0 to 100, got 101").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError(pub String);

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SpecError {}

fn rule(msg: impl Into<String>) -> SpecError {
    SpecError(msg.into())
}

/// A whole application: its routes, its components and the server's limits.
#[derive(Debug, Clone)]
pub struct App {
    pub name: String,
    /// The manifest file this was read from (absolute, symlinks kept).
    pub manifest_path: PathBuf,
    /// Route → component, built once at load.
    pub router: Router<ComponentId>,
    pub components: BTreeMap<ComponentId, ComponentSpec>,
    pub limits: AppLimits,
}

/// A component id with Spin's syntax: words of ASCII letters and digits, each starting with a
/// letter and all lower- or all upper-case, joined by `-` (`pi`, `iris`, `test-faults`). Cheap
/// to clone: ids travel with every request (metrics, logs).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ComponentId(Arc<str>);

impl ComponentId {
    pub fn new(id: &str) -> Result<ComponentId, SpecError> {
        let word_ok = |w: &str| {
            let mut chars = w.chars();
            chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && (w
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                    || w.bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()))
        };
        if id.is_empty() || !id.split('-').all(word_ok) {
            return Err(rule(format!(
                "\"{id}\" is not a component id: use words of ASCII letters and digits, each starting with a letter, joined by '-' (e.g. \"pi\", \"iris-v2\")"
            )));
        }
        Ok(ComponentId(id.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for ComponentId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ComponentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for ComponentId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ComponentId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ComponentId::new(&s).map_err(serde::de::Error::custom)
    }
}

/// Everything fnhost needs to run a component: its current version, limits and candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentSpec {
    pub id: ComponentId,
    /// The version the manifest names as current.
    pub version: VersionSpec,
    pub limits: ComponentLimits,
    /// A declared candidate (canary / blue-green), from `[component.NAME.tool.fnhost.candidate]`.
    pub candidate: Option<CandidateSpec>,
    /// The key a request must present to pin a version (`tool.fnhost.pin_key`); without one,
    /// no request can pin.
    pub pin_key: Option<PinKey>,
}

impl ComponentSpec {
    /// The sources the manifest names for this component: its version's and its candidate's.
    pub fn sources(&self) -> impl Iterator<Item = &Source> {
        std::iter::once(&self.version.source)
            .chain(self.candidate.as_ref().map(|c| &c.version.source))
    }
}

/// A candidate version declared in the manifest, with its traffic policy.
#[derive(Debug, Clone, PartialEq)]
pub struct CandidateSpec {
    /// Files, environment and outbound hosts already inherited from the component where the
    /// candidate table does not set them.
    pub version: VersionSpec,
    pub policy: CanaryPolicy,
}

/// What one version is made of, besides its module bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionSpec {
    pub source: Source,
    pub files: Vec<FileMount>,
    pub environment: BTreeMap<String, String>,
    pub allowed_outbound_hosts: Vec<OutboundHost>,
    pub grants: CapabilityGrants,
    pub label: Option<Label>,
}

/// Limits and instance policy that apply to every version of one component (the component's
/// `tool.fnhost` values, else the application's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentLimits {
    pub memory_limit_bytes: u64,
    pub request_timeout: Duration,
    /// Requests one WASIp3 instance may serve (1 = a fresh instance per request).
    pub instance_reuse: u32,
}

/// Application-wide limits (`[application.tool.fnhost]`).
#[derive(Debug, Clone, PartialEq)]
pub struct AppLimits {
    pub request_timeout: Duration,
    pub memory_limit_bytes: u64,
    pub max_request_body_bytes: u64,
    pub max_response_body_bytes: u64,
    /// Requests executing at once; beyond it requests queue.
    pub max_concurrent_requests: usize,
    /// Requests waiting for a slot; beyond it → 503.
    pub max_queued_requests: usize,
    /// How long a client may take to send a request head; it also closes idle keep-alive
    /// connections (hyper starts the timer when it waits for the next head).
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request body (→ 408); no execution slot is held
    /// while it does.
    pub body_read_timeout: Duration,
    pub max_headers: usize,
    pub max_header_bytes: usize,
    /// Open connections per listener; beyond it new connections wait in the kernel backlog,
    /// so the host's memory stays bounded whatever the number of clients.
    pub max_connections: usize,
    /// The largest module a URL download or registry pull may bring.
    pub max_module_bytes: u64,
}

impl Default for AppLimits {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        AppLimits {
            request_timeout: Duration::from_secs(30),
            memory_limit_bytes: 128 << 20,
            max_request_body_bytes: 10 << 20,
            max_response_body_bytes: 64 << 20,
            max_concurrent_requests: 4 * cores,
            max_queued_requests: 256,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            max_headers: 100,
            max_header_bytes: 16 << 10,
            max_connections: 10_000,
            max_module_bytes: 256 << 20,
        }
    }
}

impl AppLimits {
    /// A component's limits: its own settings where it has them, else the application's.
    pub fn for_component(
        &self,
        memory_limit_bytes: Option<u64>,
        request_timeout: Option<Duration>,
        instance_reuse: Option<u32>,
    ) -> ComponentLimits {
        ComponentLimits {
            memory_limit_bytes: memory_limit_bytes.unwrap_or(self.memory_limit_bytes),
            request_timeout: request_timeout.unwrap_or(self.request_timeout),
            instance_reuse: instance_reuse.unwrap_or(1),
        }
    }
}

/// A module's sha256, the name of a version everywhere (status, headers, caches).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256([u8; 32]);

impl Sha256 {
    pub fn of(bytes: &[u8]) -> Sha256 {
        Sha256(sha2::Sha256::digest(bytes).into())
    }

    /// `sha256:<64 hex digits>` (Spin's digest syntax; upper-case hex accepted).
    pub fn parse_prefixed(s: &str) -> Result<Sha256, SpecError> {
        s.strip_prefix("sha256:")
            .and_then(Sha256::parse_hex)
            .ok_or_else(|| rule(format!("must be \"sha256:<64 hex digits>\", got \"{s}\"")))
    }

    pub fn parse_hex(hex_digits: &str) -> Option<Sha256> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_digits, &mut out).ok()?;
        Some(Sha256(out))
    }

    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 8 hex digits: how versions are named (`pi@1a2b3c4d`).
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl Serialize for Sha256 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.hex())
    }
}

impl<'de> Deserialize<'de> for Sha256 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Sha256::parse_hex(&s).ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
    }
}

/// Where a module's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// A local file (absolute path, resolved against the manifest's directory).
    Path(PathBuf),
    /// Spin's `{ url = "...", digest = "sha256:..." }`: downloaded, verified, cached by digest.
    Url { url: String, digest: Sha256 },
    /// Bytes uploaded through the admin API (never in a manifest).
    Uploaded { digest: Sha256 },
    /// A Wasm OCI artifact in a registry: pulled, verified, cached by digest.
    Oci(OciSource),
}

impl Source {
    /// A URL source; only http:// and https:// URLs.
    pub fn url(url: &str, digest: Sha256) -> Result<Source, SpecError> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(rule(format!(
                "must be an http:// or https:// URL, got \"{url}\""
            )));
        }
        url.parse::<http::Uri>()
            .map_err(|e| rule(format!("\"{url}\" is not a valid URL: {e}")))?;
        Ok(Source::Url {
            url: url.to_string(),
            digest,
        })
    }

    /// The digest a source names by itself (URL, uploaded and pinned OCI sources), if any.
    pub fn pinned_digest(&self) -> Option<&Sha256> {
        match self {
            Source::Path(_) => None,
            Source::Url { digest, .. } | Source::Uploaded { digest } => Some(digest),
            Source::Oci(oci) => oci.digest.as_ref(),
        }
    }

    /// Whether the bytes come over the network, so a failure may pass (the start-up retries it).
    pub fn is_remote(&self) -> bool {
        matches!(self, Source::Url { .. } | Source::Oci(_))
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Path(p) => write!(f, "{}", p.display()),
            Source::Url { url, digest } => write!(f, "{url} (sha256:{digest})"),
            Source::Uploaded { digest } => write!(f, "uploaded (sha256:{digest})"),
            Source::Oci(oci) => match &oci.digest {
                Some(digest) => write!(f, "{} (sha256:{digest})", oci.reference),
                None => write!(f, "{}", oci.reference),
            },
        }
    }
}

/// A Wasm OCI artifact: where it is, and what pins it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OciSource {
    pub reference: OciReference,
    /// The module's sha256 (the artifact's wasm layer): given by the manifest's `digest`, or
    /// resolved when the version loads. A loaded version's source always has it.
    pub digest: Option<Sha256>,
    /// Plain HTTP instead of HTTPS: only for a loopback registry or one marked insecure.
    pub plain_http: bool,
}

impl OciSource {
    /// `marked_insecure`: the registry is in `insecure_registries` (or `--insecure` was given).
    pub fn new(
        reference: OciReference,
        digest: Option<Sha256>,
        marked_insecure: bool,
    ) -> OciSource {
        let plain_http = marked_insecure || reference.is_loopback();
        OciSource {
            reference,
            digest,
            plain_http,
        }
    }
}

/// An OCI artifact reference that names its registry: `HOST[:PORT]/REPOSITORY[:TAG][@sha256:…]`,
/// shown as `oci://…`. A reference with a manifest digest is pinned; a tag alone is resolved
/// when a version loads, and the version keeps the digest it resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OciReference {
    /// `host[:port]`, as written.
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    /// The artifact manifest's digest.
    pub manifest_digest: Option<Sha256>,
}

impl OciReference {
    pub const SCHEME: &'static str = "oci://";

    /// `oci://HOST[:PORT]/REPOSITORY[:TAG][@sha256:…]` (the `oci://` prefix is optional). The
    /// grammar is the OCI distribution reference's; a tag defaults to `latest`.
    pub fn parse(text: &str) -> Result<OciReference, SpecError> {
        let bare = text.strip_prefix(Self::SCHEME).unwrap_or(text);
        let parsed: oci_client::Reference = bare
            .parse()
            .map_err(|e| rule(format!("\"{text}\" is not an OCI reference: {e}")))?;
        // Without a host the grammar means Docker Hub; fnhost has no default registry.
        if !bare.starts_with(&format!("{}/", parsed.registry())) {
            return Err(rule(format!(
                "\"{text}\" must name its registry: oci://HOST[:PORT]/REPOSITORY[:TAG][@sha256:…]"
            )));
        }
        let manifest_digest = parsed
            .digest()
            .map(|d| {
                Sha256::parse_prefixed(d)
                    .map_err(|e| rule(format!("\"{text}\": the manifest digest {e}")))
            })
            .transpose()?;
        Ok(OciReference {
            registry: parsed.registry().to_string(),
            repository: parsed.repository().to_string(),
            tag: parsed.tag().map(str::to_string),
            manifest_digest,
        })
    }

    /// Spin's `{ registry, package = "NS:NAME", version = "X.Y.Z" }`, mapped as wasm-pkg-client
    /// maps a package onto an OCI registry: `REGISTRY/NS/NAME:X.Y.Z`.
    pub fn package(
        registry: &str,
        package: &str,
        version: &str,
    ) -> Result<OciReference, SpecError> {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.split('-').all(|w| {
                    w.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                        && w.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                })
        };
        let (namespace, name) = package
            .split_once(':')
            .filter(|(ns, n)| label_ok(ns) && label_ok(n))
            .ok_or_else(|| {
                rule(format!(
                    "package must be \"NAMESPACE:NAME\" in lower-case kebab-case (e.g. \"fnhost:pi\"), got \"{package}\""
                ))
            })?;
        let version = semver::Version::parse(version).map_err(|e| {
            rule(format!(
                "version must be a semantic version like \"1.0.0\", got \"{version}\": {e}"
            ))
        })?;
        OciReference::parse(&format!("{registry}/{namespace}/{name}:{version}"))
    }

    /// This reference pinned to the manifest it resolved to (the tag kept as a name).
    pub fn pinned(&self, manifest_digest: Sha256) -> OciReference {
        OciReference {
            manifest_digest: Some(manifest_digest),
            ..self.clone()
        }
    }

    /// Whether the registry is on this machine (`localhost`, 127.0.0.0/8, `[::1]`).
    pub fn is_loopback(&self) -> bool {
        let host = match self.registry.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => &self.registry,
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

impl fmt::Display for OciReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}/{}", Self::SCHEME, self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.manifest_digest {
            write!(f, "@sha256:{digest}")?;
        }
        Ok(())
    }
}

/// A read-only host directory granted to the guest at an absolute guest path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMount {
    pub source: PathBuf,
    pub destination: String,
}

impl FileMount {
    /// `source` must be an existing directory (absolute); `destination` an absolute guest path.
    pub fn new(source: PathBuf, destination: &str) -> Result<FileMount, SpecError> {
        if !destination.starts_with('/') {
            return Err(rule(format!(
                "the guest path must be absolute, got \"{destination}\""
            )));
        }
        if !source.is_dir() {
            return Err(rule(format!(
                "the host directory {} does not exist",
                source.display()
            )));
        }
        Ok(FileMount {
            source,
            destination: destination.to_string(),
        })
    }
}

/// A human label for a version (`v2`): shown in status and sent in the
/// `fnhost-version-label` header, so it is 1–64 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Label(Arc<str>);

impl Label {
    pub fn new(label: &str) -> Result<Label, SpecError> {
        if label.is_empty() || label.len() > 64 || !label.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(rule(format!(
                "must be 1 to 64 visible ASCII characters (no spaces), got \"{label}\""
            )));
        }
        Ok(Label(label.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Label {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Label {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Label::new(&s).map_err(serde::de::Error::custom)
    }
}

/// The secret that lets a request pin a version with `fnhost-version-pin` (sent in the
/// `fnhost-pin-key` header). Only its sha256 is kept; it is compared in constant time and never
/// shown.
#[derive(Clone, PartialEq, Eq)]
pub struct PinKey([u8; 32]);

impl PinKey {
    pub fn new(key: &str) -> Result<PinKey, SpecError> {
        if key.len() < 16 || key.len() > 256 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(rule(
                "a pin key must be 16 to 256 visible ASCII characters (no spaces)",
            ));
        }
        Ok(PinKey(sha2::Sha256::digest(key.as_bytes()).into()))
    }

    /// Whether `given` is this key (constant time in the key's content).
    pub fn matches(&self, given: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        let given: [u8; 32] = sha2::Sha256::digest(given).into();
        given.ct_eq(&self.0).into()
    }
}

impl fmt::Debug for PinKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PinKey(…)")
    }
}

/// A candidate's share of traffic: 0–100 % with at most one decimal, kept in tenths of a
/// percent (per mille) so a draw in 0..1000 decides exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Weight(u16);

impl Weight {
    pub const ZERO: Weight = Weight(0);

    pub fn from_percent(w: f64) -> Result<Weight, SpecError> {
        if !w.is_finite() || !(0.0..=100.0).contains(&w) {
            return Err(rule(format!("must be from 0 to 100, got {w}")));
        }
        let tenths = w * 10.0;
        if (tenths.round() - tenths).abs() > 1e-9 {
            return Err(rule(format!("must have at most one decimal, got {w}")));
        }
        Ok(Weight(tenths.round() as u16))
    }

    pub fn per_mille(self) -> u16 {
        self.0
    }

    pub fn percent(self) -> f64 {
        f64::from(self.0) / 10.0
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Weight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.percent())
    }
}

impl Serialize for Weight {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.percent())
    }
}

impl<'de> Deserialize<'de> for Weight {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Weight::from_percent(f64::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// What keeps one user on one version while a canary runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stickiness {
    /// The value of this request header (stored lower-case, as HTTP header names compare).
    Header(String),
    /// The value of this cookie.
    Cookie(String),
}

impl Stickiness {
    pub fn header(name: &str) -> Result<Stickiness, SpecError> {
        http::HeaderName::from_bytes(name.as_bytes())
            .map(|h| Stickiness::Header(h.as_str().to_string()))
            .map_err(|_| rule(format!("\"{name}\" is not a valid HTTP header name")))
    }

    pub fn cookie(name: &str) -> Result<Stickiness, SpecError> {
        // RFC 6265: a cookie name is an HTTP token.
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if name.is_empty() || !name.bytes().all(token) {
            return Err(rule(format!("\"{name}\" is not a valid cookie name")));
        }
        Ok(Stickiness::Cookie(name.to_string()))
    }
}

/// Automatic rollback: trip when more than `max_error_rate` of the last `window` candidate
/// responses were 5xx.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardSpec {
    pub max_error_rate: f64,
    pub window: u32,
}

impl GuardSpec {
    pub const DEFAULT_WINDOW: u32 = 20;
    const WINDOWS: std::ops::RangeInclusive<i64> = 20..=100_000;

    pub fn new(max_error_rate: f64, window: Option<i64>) -> Result<GuardSpec, SpecError> {
        if !(0.0..=1.0).contains(&max_error_rate) {
            // (NaN is not contained either.)
            return Err(rule(format!(
                "max_error_rate must be a number from 0 to 1, got {max_error_rate}"
            )));
        }
        let window = window.unwrap_or(Self::DEFAULT_WINDOW.into());
        if !Self::WINDOWS.contains(&window) {
            return Err(rule(format!(
                "guard_window must be an integer from 20 to 100000, got {window}"
            )));
        }
        Ok(GuardSpec {
            max_error_rate,
            window: window as u32,
        })
    }
}

/// The traffic policy of a candidate.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CanaryPolicy {
    /// 0 = staged: reached only by pinned requests.
    pub weight: Weight,
    pub sticky: Option<Stickiness>,
    pub guard: Option<GuardSpec>,
}

impl CanaryPolicy {
    /// Staged at 0 % with no stickiness or guard (blue/green's standby).
    pub fn staged() -> CanaryPolicy {
        CanaryPolicy::default()
    }

    /// This policy with a new weight, and stickiness or guard replaced where given.
    pub fn reweighted(
        &self,
        weight: Weight,
        sticky: Option<Stickiness>,
        guard: Option<GuardSpec>,
    ) -> CanaryPolicy {
        CanaryPolicy {
            weight,
            sticky: sticky.or_else(|| self.sticky.clone()),
            guard: guard.or_else(|| self.guard.clone()),
        }
    }
}

/// One entry of `allowed_outbound_hosts`: `scheme://host[:port]`, parsed once at load. `*` may
/// stand for the scheme, the whole host, a leading host label (`*.example.com`) or the port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundHost {
    scheme: Option<String>,
    host: HostPattern,
    port: PortPattern,
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    Exact(String),
    /// `*.suffix`: any host with at least one label before `.suffix`.
    Subdomain(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortPattern {
    Any,
    Exact(u16),
}

/// The port a scheme uses when none is written (Spin's rule: a pattern without a port means
/// the scheme's default port; a scheme without one needs an explicit port or `:*`).
fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        "postgres" => Some(5432),
        "mysql" => Some(3306),
        "redis" => Some(6379),
        "mqtt" => Some(1883),
        _ => None,
    }
}

impl OutboundHost {
    pub fn parse(pattern: &str) -> Result<OutboundHost, SpecError> {
        let bad = |why: &str| {
            rule(format!(
                "\"{pattern}\": {why} (expected \"scheme://host[:port]\", e.g. \"https://api.example.com\")"
            ))
        };
        if pattern.contains("{{") {
            return Err(bad(
                "variables in host patterns are not supported by fnhost",
            ));
        }
        let (scheme, rest) = pattern.split_once("://").ok_or_else(|| bad("no scheme"))?;
        if scheme.is_empty() {
            return Err(bad("empty scheme"));
        }
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        };
        if host.is_empty() || host.contains('/') {
            return Err(bad("no host"));
        }
        let port = match port {
            None => PortPattern::Exact(default_port(&scheme.to_ascii_lowercase()).ok_or_else(|| {
                bad(&format!(
                    "no port, and the scheme \"{scheme}\" has no default port: write one (\":8080\") or \":*\" for any"
                ))
            })?),
            Some("*") => PortPattern::Any,
            Some(p) => PortPattern::Exact(p.parse().map_err(|_| bad("the port is not a number"))?),
        };
        let host = if host == "*" {
            HostPattern::Any
        } else if let Some(suffix) = host.strip_prefix("*.") {
            HostPattern::Subdomain(suffix.to_ascii_lowercase())
        } else if host.contains('*') {
            return Err(bad("'*' may only be the whole host or its first label"));
        } else {
            HostPattern::Exact(host.to_ascii_lowercase())
        };
        Ok(OutboundHost {
            scheme: (scheme != "*").then(|| scheme.to_ascii_lowercase()),
            host,
            port,
            text: pattern.to_string(),
        })
    }

    /// Whether a request to `scheme://host:port` is allowed by this pattern.
    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let scheme_ok = self
            .scheme
            .as_deref()
            .is_none_or(|s| s.eq_ignore_ascii_case(scheme));
        let port_ok = match self.port {
            PortPattern::Any => true,
            PortPattern::Exact(p) => p == port,
        };
        let host_ok = match &self.host {
            HostPattern::Any => true,
            HostPattern::Exact(h) => h.eq_ignore_ascii_case(host),
            HostPattern::Subdomain(suffix) => {
                host.len() > suffix.len() + 1
                    && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            }
        };
        scheme_ok && port_ok && host_ok
    }
}

impl fmt::Display for OutboundHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// What a version may use besides files, environment and the network: Spin variables and
/// key-value stores (`host/src/capabilities/` implements them).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CapabilityGrants {
    pub variables: ComponentVariables,
    pub key_value_stores: Vec<KeyValueStoreLabel>,
}

/// A Spin variable name, application or component: `lower_snake_case` (a lower-case letter,
/// then lower-case letters, digits and underscores). The environment provider reads an
/// application variable `api_key` from `SPIN_VARIABLE_API_KEY`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VariableName(Arc<str>);

impl VariableName {
    pub fn new(name: &str) -> Result<VariableName, SpecError> {
        let mut bytes = name.bytes();
        let ok = bytes.next().is_some_and(|b| b.is_ascii_lowercase())
            && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !ok {
            return Err(rule(format!(
                "\"{name}\" is not a variable name: use lower_snake_case (a lower-case letter, then lower-case letters, digits and '_')"
            )));
        }
        Ok(VariableName(name.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for VariableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An application variable (`[variables]`): a default, or required (a provider must give a
/// value), never both; a secret one is never logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppVariable {
    pub default: Option<String>,
    pub required: bool,
    pub secret: bool,
}

impl AppVariable {
    pub fn new(
        default: Option<String>,
        required: bool,
        secret: bool,
    ) -> Result<AppVariable, SpecError> {
        match (&default, required) {
            (Some(_), true) => Err(rule(
                "a variable is either required or has a default, not both",
            )),
            (None, false) => Err(rule("needs a default or required = true")),
            _ => Ok(AppVariable {
                default,
                required,
                secret,
            }),
        }
    }
}

/// A component variable's value as written: text with `{{ app_variable }}` references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<TemplatePart>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    Text(String),
    Variable(VariableName),
}

impl Template {
    /// Parses `{{ name }}` references (spaces inside the braces are optional); any other text,
    /// single braces included, is literal.
    pub fn parse(text: &str) -> Result<Template, SpecError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(TemplatePart::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| rule(format!("\"{text}\": '{{{{' without a closing '}}}}'")))?;
            let name = VariableName::new(after[..close].trim())
                .map_err(|e| rule(format!("\"{text}\": {e}")))?;
            parts.push(TemplatePart::Variable(name));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(TemplatePart::Text(rest.to_string()));
        }
        Ok(Template(parts))
    }

    pub fn parts(&self) -> &[TemplatePart] {
        &self.0
    }

    /// The application variables it refers to.
    pub fn references(&self) -> impl Iterator<Item = &VariableName> {
        self.0.iter().filter_map(|p| match p {
            TemplatePart::Variable(v) => Some(v),
            TemplatePart::Text(_) => None,
        })
    }
}

/// The variables one component sees (`[component.NAME.variables]`), with the application's
/// declarations their templates refer to (every reference is declared: checked at load).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ComponentVariables {
    pub app: Arc<BTreeMap<VariableName, AppVariable>>,
    pub component: BTreeMap<VariableName, Template>,
}

impl ComponentVariables {
    pub fn new(
        app: Arc<BTreeMap<VariableName, AppVariable>>,
        component: BTreeMap<VariableName, Template>,
    ) -> Result<ComponentVariables, SpecError> {
        for (name, template) in &component {
            if let Some(unknown) = template.references().find(|r| !app.contains_key(*r)) {
                return Err(rule(format!(
                    "{name}: refers to \"{unknown}\", which is not declared in [variables]"
                )));
            }
        }
        Ok(ComponentVariables { app, component })
    }
}

/// A key-value store label in `key_value_stores`. fnhost has no runtime configuration, so the
/// one store is Spin's `default`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyValueStoreLabel(Arc<str>);

impl KeyValueStoreLabel {
    pub const DEFAULT: &'static str = "default";

    pub fn new(label: &str) -> Result<KeyValueStoreLabel, SpecError> {
        if label != Self::DEFAULT {
            return Err(rule(format!(
                "only the \"default\" store exists (fnhost has no runtime config to define \"{label}\")"
            )));
        }
        Ok(KeyValueStoreLabel(label.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyValueStoreLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_ids_follow_spins_rule() {
        for ok in ["pi", "iris", "test-faults", "iris-v2", "API", "a1-b2"] {
            assert!(ComponentId::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "Pi", "pi_2", "-pi", "pi-", "2pi", "pi--x", "πi", "pi x", "iris-V2x",
        ] {
            assert!(ComponentId::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn weights_are_percent_in_tenths() {
        let cases: &[(f64, Result<u16, &str>)] = &[
            (0.0, Ok(0)),
            (10.5, Ok(105)),
            (100.0, Ok(1000)),
            (12.5, Ok(125)),
            (10.25, Err("one decimal")),
            (101.0, Err("from 0 to 100")),
            (-1.0, Err("from 0 to 100")),
            (f64::NAN, Err("from 0 to 100")),
            (f64::INFINITY, Err("from 0 to 100")),
        ];
        for (w, want) in cases {
            match (Weight::from_percent(*w), want) {
                (Ok(got), Ok(per_mille)) => assert_eq!(got.per_mille(), *per_mille, "{w}"),
                (Err(e), Err(text)) => assert!(e.0.contains(text), "{w}: {e}"),
                (got, want) => panic!("{w}: got {got:?}, want {want:?}"),
            }
        }
        assert_eq!(Weight::from_percent(12.5).unwrap().percent(), 12.5);
    }

    #[test]
    fn guards_stickiness_and_labels() {
        assert_eq!(
            GuardSpec::new(0.05, None).unwrap(),
            GuardSpec {
                max_error_rate: 0.05,
                window: 20
            }
        );
        assert!(GuardSpec::new(2.0, None)
            .unwrap_err()
            .0
            .contains("from 0 to 1"));
        assert!(GuardSpec::new(0.1, Some(19))
            .unwrap_err()
            .0
            .contains("from 20 to 100000"));
        assert_eq!(
            Stickiness::header("X-User").unwrap(),
            Stickiness::Header("x-user".into())
        );
        assert!(Stickiness::header("bad header").is_err());
        assert!(Stickiness::cookie("uid").is_ok());
        assert!(Stickiness::cookie("a=b").is_err());
        assert!(Label::new("v2").is_ok());
        let key = PinKey::new("a-long-enough-secret").unwrap();
        assert!(key.matches(b"a-long-enough-secret"));
        assert!(!key.matches(b"a-long-enough-secreT"));
        assert!(PinKey::new("short").is_err());
        assert_eq!(format!("{key:?}"), "PinKey(…)");
        for bad in ["", "two words", "ünï", &"x".repeat(65)] {
            assert!(Label::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn digests() {
        let d = Sha256::of(b"abc");
        assert_eq!(
            d.hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(d.short(), "ba7816bf");
        assert_eq!(
            Sha256::parse_prefixed(&format!("sha256:{}", d.hex())),
            Ok(d.clone())
        );
        assert_eq!(
            Sha256::parse_prefixed(&format!("sha256:{}", d.hex().to_uppercase())),
            Ok(d)
        );
        for bad in ["abc", "sha256:12", "md5:ba7816bf"] {
            assert!(Sha256::parse_prefixed(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn oci_references() {
        let d = "a".repeat(64);
        let r = OciReference::parse(&format!("oci://127.0.0.1:5000/fnhost/pi:1.0.0@sha256:{d}"))
            .unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("127.0.0.1:5000", "fnhost/pi", Some("1.0.0"))
        );
        assert_eq!(r.manifest_digest.as_ref().map(Sha256::hex), Some(d.clone()));
        assert_eq!(
            r.to_string(),
            format!("oci://127.0.0.1:5000/fnhost/pi:1.0.0@sha256:{d}")
        );
        // Spin's registry source maps as wasm-pkg-client maps packages.
        let p = OciReference::package("ghcr.io", "fnhost:pi-digits", "1.2.3").unwrap();
        assert_eq!(p.to_string(), "oci://ghcr.io/fnhost/pi-digits:1.2.3");
        assert_eq!(
            p.pinned(Sha256::of(b"m")).manifest_digest,
            Some(Sha256::of(b"m"))
        );
        for (registry, package, version, why) in [
            ("ghcr.io", "pi", "1.0.0", "NAMESPACE:NAME"),
            ("ghcr.io", "Fnhost:pi", "1.0.0", "NAMESPACE:NAME"),
            ("ghcr.io", "fnhost:pi", "1.0", "semantic version"),
            ("ghcr.io", "fnhost:pi", "latest", "semantic version"),
        ] {
            let e = OciReference::package(registry, package, version).unwrap_err();
            assert!(e.0.contains(why), "{package} {version}: {e}");
        }
        for bad in [
            "fnhost/pi:1.0.0",
            "oci://pi",
            "oci://ghcr.io/pi@sha256:12",
            "oci://",
        ] {
            assert!(OciReference::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plain_http_only_for_loopback_or_marked_registries() {
        let source = |r: &str, marked| {
            OciSource::new(OciReference::parse(r).unwrap(), None, marked).plain_http
        };
        for local in [
            "localhost:5000/a/b:1",
            "127.0.0.1:5000/a/b:1",
            "127.0.0.2/a/b:1",
            "LOCALHOST:80/a/b:1",
        ] {
            assert!(source(local, false), "{local}");
        }
        for remote in [
            "ghcr.io/a/b:1",
            "10.0.0.1:5000/a/b:1",
            "localhost.example.com/a/b:1",
            "127.0.0.1.nip.io/a/b:1",
        ] {
            assert!(!source(remote, false), "{remote}");
        }
        assert!(source("registry.internal:5000/a/b:1", true));
    }

    #[test]
    fn outbound_patterns() {
        let cases = [
            (
                "https://api.example.com",
                "https",
                "api.example.com",
                443,
                true,
            ),
            (
                "https://api.example.com",
                "http",
                "api.example.com",
                80,
                false,
            ),
            (
                "https://api.example.com",
                "https",
                "api.example.com",
                8443,
                false,
            ),
            (
                "https://API.example.com",
                "https",
                "api.EXAMPLE.com",
                443,
                true,
            ),
            ("https://*.example.com", "https", "a.example.com", 443, true),
            ("https://*.example.com", "https", "example.com", 443, false),
            ("https://*.example.com", "https", "aexample.com", 443, false),
            ("http://127.0.0.1:8081", "http", "127.0.0.1", 8081, true),
            ("http://127.0.0.1:*", "http", "127.0.0.1", 9, true),
            ("*://*:*", "https", "x.y", 1, true),
            // Spin's rule: no port means the scheme's default port, never any port.
            (
                "http://api.example.com",
                "http",
                "api.example.com",
                80,
                true,
            ),
            (
                "http://api.example.com",
                "http",
                "api.example.com",
                8080,
                false,
            ),
            (
                "*://api.example.com:443",
                "http",
                "api.example.com",
                443,
                true,
            ),
        ];
        for (pattern, scheme, host, port, want) in cases {
            assert_eq!(
                OutboundHost::parse(pattern)
                    .unwrap()
                    .allows(scheme, host, port),
                want,
                "{pattern} {scheme}://{host}:{port}"
            );
        }
        for bad in [
            "api.example.com",
            "https://",
            "https://a*b.example.com",
            "https://x:port",
            "https://{{ host }}",
            "*://api.example.com",
            "ftp://files.example.com",
        ] {
            assert!(OutboundHost::parse(bad).is_err(), "{bad}");
        }
    }
    #[test]
    fn variable_names_are_lower_snake_case() {
        for ok in ["a", "api_key", "max_ndigits2", "x_"] {
            assert!(VariableName::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Api", "_a", "2a", "a-b", "a.b", "API_KEY", "é"] {
            assert!(VariableName::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn app_variables_have_a_default_or_are_required() {
        assert!(AppVariable::new(Some("1".into()), false, false).is_ok());
        assert!(AppVariable::new(None, true, true).is_ok());
        assert!(AppVariable::new(None, false, false).is_err());
        assert!(AppVariable::new(Some("1".into()), true, false).is_err());
    }

    #[test]
    fn templates_reference_declared_variables() {
        let t = Template::parse("https://{{ host }}:{{port}}/x{y}").unwrap();
        let refs: Vec<&str> = t.references().map(|v| v.as_str()).collect();
        assert_eq!(refs, ["host", "port"]);
        assert_eq!(t.parts().last(), Some(&TemplatePart::Text("/x{y}".into())));
        assert!(Template::parse("{{ host").is_err());
        assert!(Template::parse("{{ Host }}").is_err());
        let app: BTreeMap<_, _> = [(
            VariableName::new("host").unwrap(),
            AppVariable::new(Some("h".into()), false, false).unwrap(),
        )]
        .into();
        let component = |text: &str| {
            [(
                VariableName::new("url").unwrap(),
                Template::parse(text).unwrap(),
            )]
            .into()
        };
        assert!(ComponentVariables::new(Arc::new(app.clone()), component("{{ host }}")).is_ok());
        let err = ComponentVariables::new(Arc::new(app), component("{{ port }}")).unwrap_err();
        assert!(err.0.contains("\"port\", which is not declared"), "{err}");
    }

    #[test]
    fn key_value_stores_are_the_default_one() {
        assert_eq!(
            KeyValueStoreLabel::new("default").unwrap().as_str(),
            "default"
        );
        assert!(KeyValueStoreLabel::new("customer").is_err());
    }
}
