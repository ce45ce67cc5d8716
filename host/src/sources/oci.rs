//! Wasm OCI artifacts in a registry (the CNCF TAG Runtime "Wasm OCI Artifact" layout): resolve
//! a reference to its manifest, pull its one wasm layer bounded in size, push a component.
//!
//! An artifact is an OCI image manifest with exactly one wasm layer, of type `application/wasm`
//! (the CNCF layout) or `application/vnd.wasm.content.layer.v1+wasm` (Spin's); its digest is the
//! module's sha256. `push` writes the CNCF layout: config `application/vnd.wasm.config.v0+json`
//! holding the architecture, os, layer digests and the component's imports and exports.
//! The transport is oci-client (reqwest on the host's hyper and rustls, ring as the crypto
//! provider, the trust roots of URL sources): HTTPS, or plain HTTP when the source allows it
//! (a loopback registry or one marked insecure). Credentials come from `FNHOST_REGISTRY_USERNAME` and
//! `FNHOST_REGISTRY_PASSWORD`, else the Docker config file (`$DOCKER_CONFIG/config.json` or
//! `~/.docker/config.json`: `auths` entries and credential helpers), else none. Every failure
//! says what went wrong in the words a user searches for: unreachable, unauthorized, not found,
//! digest mismatch, wrong media type, too large. A pulled layer is checked against the digest
//! its manifest names; the check against a digest `spin.toml` names, and caching, are the
//! caller's (`mod.rs`).

use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail, Context, Result};
use futures::StreamExt;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::{
    OciDescriptor, OciImageManifest, OciManifest, OCI_IMAGE_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE,
};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::Serialize;

use crate::spec::{OciReference, Sha256};

/// The CNCF layout's config and layer media types.
const CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
const LAYER_MEDIA_TYPE: &str = "application/wasm";
/// The layer types accepted as the module: the CNCF one and Spin's.
const MODULE_LAYER_TYPES: [&str; 2] = [LAYER_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE];

const USERNAME_VAR: &str = "FNHOST_REGISTRY_USERNAME";
const PASSWORD_VAR: &str = "FNHOST_REGISTRY_PASSWORD";

/// One registry repository, connected with its credentials.
pub struct Registry {
    client: Client,
    auth: RegistryAuth,
    /// Where the credentials came from, for an "unauthorized" message.
    credentials: &'static str,
    target: Reference,
    shown: OciReference,
}

/// What a reference names now: its manifest's digest and its one wasm layer.
pub struct Artifact {
    pub manifest_digest: Sha256,
    pub module_digest: Sha256,
    layer: OciDescriptor,
}

/// A module pulled by `fnhost pull`.
pub struct Pulled {
    pub bytes: Vec<u8>,
    pub manifest_digest: Sha256,
    pub module_digest: Sha256,
}

impl Registry {
    pub fn connect(reference: &OciReference, plain_http: bool) -> Result<Registry> {
        let (auth, credentials) = credentials(&reference.registry)?;
        let target = match (&reference.manifest_digest, &reference.tag) {
            (Some(digest), _) => Reference::with_digest(
                reference.registry.clone(),
                reference.repository.clone(),
                format!("sha256:{digest}"),
            ),
            (None, tag) => Reference::with_tag(
                reference.registry.clone(),
                reference.repository.clone(),
                tag.clone().unwrap_or_else(|| "latest".into()),
            ),
        };
        Ok(Registry {
            client: client(plain_http)?,
            auth,
            credentials,
            target,
            shown: reference.clone(),
        })
    }

    /// Reads the manifest (by digest if the reference has one, else by tag) and finds the
    /// module layer; refuses anything that is not a single-component Wasm artifact or whose
    /// module is over `max_bytes`.
    pub async fn resolve(&self, max_bytes: u64) -> Result<Artifact> {
        let (manifest, digest) = self
            .client
            .pull_manifest(&self.target, &self.auth)
            .await
            .map_err(|e| self.explain(e))?;
        let manifest_digest = Sha256::parse_prefixed(&digest)
            .map_err(|e| anyhow!("the registry's manifest digest {e}"))?;
        let manifest = match manifest {
            OciManifest::Image(m) => m,
            OciManifest::ImageIndex(_) => bail!(
                "wrong media type: {} is an image index (a multi-platform image), not a Wasm artifact",
                self.shown
            ),
        };
        let mut modules = manifest
            .layers
            .iter()
            .filter(|l| MODULE_LAYER_TYPES.contains(&l.media_type.as_str()));
        let layer = match (modules.next(), modules.next()) {
            (Some(layer), None) => layer.clone(),
            (None, _) => {
                let types: Vec<&str> = manifest
                    .layers
                    .iter()
                    .map(|l| l.media_type.as_str())
                    .collect();
                bail!(
                    "wrong media type: {} has no wasm layer ({} expected; its config is {} and its layers are [{}])",
                    self.shown,
                    MODULE_LAYER_TYPES.join(" or "),
                    manifest.config.media_type,
                    types.join(", ")
                )
            }
            (Some(_), Some(_)) => bail!(
                "{} has more than one wasm layer; fnhost serves an artifact of one component",
                self.shown
            ),
        };
        let size = u64::try_from(layer.size).unwrap_or(u64::MAX);
        if size > max_bytes {
            return Err(super::too_large(
                format_args!("the wasm layer of {} is {size} bytes", self.shown),
                max_bytes,
            ));
        }
        let module_digest = Sha256::parse_prefixed(&layer.digest)
            .map_err(|e| anyhow!("the wasm layer's digest {e}"))?;
        Ok(Artifact {
            manifest_digest,
            module_digest,
            layer,
        })
    }

    /// The module layer's bytes, stopped past the size its manifest declares, and verified.
    pub async fn pull_layer(&self, artifact: &Artifact) -> Result<Vec<u8>> {
        let declared = usize::try_from(artifact.layer.size).unwrap_or(0);
        let mut stream = self
            .client
            .pull_blob_stream(&self.target, &artifact.layer)
            .await
            .map_err(|e| self.explain(e))?;
        let mut bytes = Vec::with_capacity(declared);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.context("reading the wasm layer")?;
            if bytes.len() + chunk.len() > declared {
                bail!("the registry sent more than the {declared} bytes the manifest declares for the wasm layer");
            }
            bytes.extend_from_slice(&chunk);
        }
        let got = Sha256::of(&bytes);
        if got != artifact.module_digest {
            bail!(
                "digest mismatch: the manifest names sha256:{}, the layer is sha256:{got}",
                artifact.module_digest
            );
        }
        Ok(bytes)
    }

    /// Pushes `module` as a CNCF Wasm artifact under this reference; answers the manifest's
    /// digest, as the registry names it.
    async fn push(&self, module: Vec<u8>) -> Result<Sha256> {
        let world = ComponentWorld::of(&module)?;
        let layer_digest = format!("sha256:{}", Sha256::of(&module));
        let config = serde_json::to_vec(&WasmConfig {
            created: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            architecture: "wasm",
            os: "wasip2",
            layer_digests: vec![layer_digest.clone()],
            component: world,
        })?;
        let config_digest = format!("sha256:{}", Sha256::of(&config));
        let manifest = OciImageManifest {
            schema_version: 2,
            media_type: Some(OCI_IMAGE_MEDIA_TYPE.to_string()),
            config: OciDescriptor {
                media_type: CONFIG_MEDIA_TYPE.to_string(),
                digest: config_digest.clone(),
                size: config.len() as i64,
                ..Default::default()
            },
            layers: vec![OciDescriptor {
                media_type: LAYER_MEDIA_TYPE.to_string(),
                digest: layer_digest.clone(),
                size: module.len() as i64,
                ..Default::default()
            }],
            ..Default::default()
        };
        // The exact bytes sent are what the registry names by digest.
        let body = serde_json::to_vec(&OciManifest::Image(manifest))?;
        let manifest_digest = Sha256::of(&body);
        self.client
            .store_auth_if_needed(self.target.resolve_registry(), &self.auth)
            .await;
        for (data, digest) in [(module, layer_digest), (config, config_digest)] {
            self.client
                .push_blob(&self.target, data, &digest)
                .await
                .map_err(|e| self.explain(e))?;
        }
        self.client
            .push_manifest_raw(
                &self.target,
                body,
                http::HeaderValue::from_static(OCI_IMAGE_MEDIA_TYPE),
            )
            .await
            .map_err(|e| self.explain(e))?;
        Ok(manifest_digest)
    }

    /// A registry error as a user reads it; the caller adds the reference.
    fn explain(&self, e: OciDistributionError) -> anyhow::Error {
        let registry = &self.shown.registry;
        let unauthorized = || {
            anyhow!(
                "unauthorized: {registry} refused access to {} ({})",
                self.target.repository(),
                self.credentials
            )
        };
        let not_found = || anyhow!("not found: {registry} has no manifest with this tag or digest");
        match e {
            OciDistributionError::RequestError(e) if e.is_connect() => {
                anyhow::Error::from(e).context(format!("registry {registry} unreachable"))
            }
            OciDistributionError::RequestError(e) if e.is_timeout() => {
                anyhow::Error::from(e).context(format!("registry {registry} timed out"))
            }
            OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::AuthenticationFailure(_)
            | OciDistributionError::ServerError {
                code: 401 | 403, ..
            } => unauthorized(),
            OciDistributionError::ImageManifestNotFoundError(_) => not_found(),
            OciDistributionError::ServerError { code: 404, .. } => not_found(),
            OciDistributionError::RegistryError { envelope, url } => {
                let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
                if codes
                    .iter()
                    .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
                {
                    unauthorized()
                } else if codes.iter().any(|c| {
                    matches!(
                        c,
                        OciErrorCode::ManifestUnknown
                            | OciErrorCode::NameUnknown
                            | OciErrorCode::NotFound
                    )
                }) {
                    not_found()
                } else {
                    anyhow!("the registry refused {url}: {envelope}")
                }
            }
            OciDistributionError::UnsupportedMediaTypeError(t) => {
                anyhow!(
                    "wrong media type: {} is a {t}, not an OCI image manifest",
                    self.shown
                )
            }
            OciDistributionError::DigestError(e) => anyhow!("digest mismatch: {e}"),
            other => anyhow::Error::from(other),
        }
    }
}

/// `fnhost pull`: the module a reference names, verified.
pub async fn pull(reference: &OciReference, plain_http: bool, max_bytes: u64) -> Result<Pulled> {
    let registry = Registry::connect(reference, plain_http)?;
    let artifact = registry.resolve(max_bytes).await?;
    let bytes = registry.pull_layer(&artifact).await?;
    Ok(Pulled {
        bytes,
        manifest_digest: artifact.manifest_digest,
        module_digest: artifact.module_digest,
    })
}

/// `fnhost push`: the manifest digest of the pushed artifact.
pub async fn push(module: Vec<u8>, reference: &OciReference, plain_http: bool) -> Result<Sha256> {
    Registry::connect(reference, plain_http)?.push(module).await
}

/// An oci-client for HTTPS or plain HTTP.
fn client(plain_http: bool) -> Result<Client> {
    // The host's one crypto provider; a second install (already done) is not an error.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let roots = trust_roots()
        .into_iter()
        .map(|data| Certificate {
            encoding: CertificateEncoding::Der,
            data,
        })
        .collect();
    let config = ClientConfig {
        protocol: if plain_http {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        tls_certs_only: roots,
        connect_timeout: Some(Duration::from_secs(10)),
        read_timeout: Some(Duration::from_secs(30)),
        // An image index is refused, not resolved to a platform.
        platform_resolver: None,
        user_agent: concat!("fnhost/", env!("CARGO_PKG_VERSION")),
        ..ClientConfig::default()
    };
    Client::try_from(config).context("building the registry client")
}

/// The roots `url.rs` trusts too: the system's trust store (`SSL_CERT_FILE` / `SSL_CERT_DIR`
/// honoured, which is how the FROM-scratch image points at its bundle), else Mozilla's roots.
fn trust_roots() -> Vec<Vec<u8>> {
    let system = rustls_native_certs::load_native_certs().certs;
    if system.is_empty() {
        tracing::info!("no system trust store; using the webpki roots for registries");
        return webpki_root_certs::TLS_SERVER_ROOT_CERTS
            .iter()
            .map(|der| der.to_vec())
            .collect();
    }
    system.into_iter().map(|der| der.to_vec()).collect()
}

/// The registry credentials and where they came from.
fn credentials(registry: &str) -> Result<(RegistryAuth, &'static str)> {
    if let (Ok(user), Ok(password)) = (std::env::var(USERNAME_VAR), std::env::var(PASSWORD_VAR)) {
        return Ok((
            RegistryAuth::Basic(user, password),
            "credentials from FNHOST_REGISTRY_USERNAME and FNHOST_REGISTRY_PASSWORD",
        ));
    }
    use docker_credential::{CredentialRetrievalError as E, DockerCredential};
    match docker_credential::get_credential(registry) {
        Ok(DockerCredential::UsernamePassword(user, password)) => Ok((
            RegistryAuth::Basic(user, password),
            "credentials from the Docker config file",
        )),
        Ok(DockerCredential::IdentityToken(_)) => bail!(
            "the Docker config file has an identity token for {registry}; fnhost needs a username and password"
        ),
        // (A config file that is missing or cannot be read is `ConfigReadError`.)
        Err(E::ConfigNotFound | E::ConfigReadError | E::NoCredentialConfigured) => Ok((
            RegistryAuth::Anonymous,
            "no credentials: none in the environment or a readable Docker config file",
        )),
        Err(e) => Err(anyhow!("{e}")).context(format!(
            "reading the credentials for {registry} from the Docker config file"
        )),
    }
}

/// The config blob of the CNCF Wasm OCI Artifact layout.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WasmConfig {
    created: String,
    architecture: &'static str,
    os: &'static str,
    layer_digests: Vec<String>,
    component: ComponentWorld,
}

/// A component's top-level imports and exports (`wasi:http/handler@0.3.0`, …).
#[derive(Serialize, Debug, PartialEq)]
struct ComponentWorld {
    exports: Vec<String>,
    imports: Vec<String>,
    target: Option<String>,
}

impl ComponentWorld {
    fn of(bytes: &[u8]) -> Result<ComponentWorld> {
        use wasmparser::{Parser, Payload};
        if !Parser::is_component(bytes) {
            bail!("not a WebAssembly component (a core module or another file); build it for wasm32-wasip2");
        }
        let mut world = ComponentWorld {
            exports: vec![],
            imports: vec![],
            target: None,
        };
        // Nested modules and components have imports and exports of their own: only depth 0
        // is the component's world.
        let mut depth = 0usize;
        for payload in Parser::new(0).parse_all(bytes) {
            match payload.context("reading the component")? {
                Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
                Payload::End(_) if depth == 0 => break,
                Payload::End(_) => depth -= 1,
                Payload::ComponentImportSection(section) if depth == 0 => {
                    for import in section {
                        world.imports.push(import?.name.name.to_string());
                    }
                }
                Payload::ComponentExportSection(section) if depth == 0 => {
                    for export in section {
                        world.exports.push(export?.name.name.to_string());
                    }
                }
                _ => {}
            }
        }
        Ok(world)
    }
}
