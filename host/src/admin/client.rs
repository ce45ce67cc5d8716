//! The admin CLI: `fnhost status | deploy | canary | stage | switch | promote | rollback |
//! weight`.
//!
//! Each command is one HTTP call to a running host's admin API (`--admin`, or `FNHOST_ADMIN`),
//! with the bearer token from `FNHOST_ADMIN_TOKEN` or the token file `fnhost up` wrote. The
//! arguments become `api::OpParams` through the same constructors the server uses, so a bad
//! value is refused before anything is sent. Modules are uploaded as bytes by default (works
//! against a remote host); `--host-path` sends the path instead, for a module already on the
//! host's disk, and an `oci://` reference is sent for the host to pull from its registry.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::api::{MountParam, Op, OpParams, StatusResponse};
use crate::deployments::ComponentStatus;
use crate::spec::{GuardSpec, Label, OciReference, Stickiness, Weight};

#[derive(Args, Debug)]
pub struct Target {
    /// Admin address of the running host: HOST:PORT (plain HTTP, loopback) or
    /// https://HOST:PORT (an admin listener with TLS).
    #[arg(long, env = "FNHOST_ADMIN", default_value = "127.0.0.1:3001")]
    admin: String,
    /// PEM certificate(s) to trust for an https:// admin address (default: the system's).
    #[arg(long, env = "FNHOST_ADMIN_CA")]
    admin_ca: Option<PathBuf>,
    /// Bearer token (default: FNHOST_ADMIN_TOKEN, else the token file).
    #[arg(long, env = "FNHOST_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Token file written by `fnhost up`.
    #[arg(long, default_value = ".fnhost/admin-token")]
    token_file: PathBuf,
}

#[derive(Args, Debug)]
pub struct ComponentArgs {
    #[command(flatten)]
    target: Target,
    /// Component id, as in the manifest.
    component: String,
}

#[derive(Args, Debug)]
pub struct VersionArgs {
    #[command(flatten)]
    target: Target,
    /// Component id, as in the manifest.
    component: String,
    /// The module (.wasm component), or oci://HOST[:PORT]/REPOSITORY[:TAG][@sha256:…] for the
    /// host to pull from a registry.
    file: PathBuf,
    /// Human label for the version (e.g. v2).
    #[arg(long, value_parser = |s: &str| Label::new(s))]
    label: Option<Label>,
    /// Send FILE as a path on the host instead of uploading its bytes.
    #[arg(long)]
    host_path: bool,
    /// With an oci:// module: plain HTTP to a registry that is not on loopback.
    #[arg(long)]
    insecure: bool,
    /// Grant a host directory to this version as HOST_DIR:GUEST_PATH (replaces the inherited files).
    #[arg(long = "mount", value_parser = |s: &str| MountParam::parse(s))]
    mounts: Vec<MountParam>,
    /// Refuse the change unless a GET of this path (e.g. /api/v0/pi?ndigits=5) answers below 500.
    #[arg(long, value_parser = |s: &str| OpParams::smoke(s))]
    smoke: Option<String>,
}

#[derive(Args, Debug)]
pub struct CanaryArgs {
    #[command(flatten)]
    version: VersionArgs,
    /// Percent of requests for the candidate (0–100, one decimal).
    #[arg(long, value_parser = parse_weight)]
    weight: Weight,
    /// Hash this request header so a user always sees the same version.
    #[arg(long, conflicts_with = "sticky_cookie", value_parser = |s: &str| Stickiness::header(s))]
    sticky_header: Option<Stickiness>,
    /// Hash this cookie so a user always sees the same version.
    #[arg(long, value_parser = |s: &str| Stickiness::cookie(s))]
    sticky_cookie: Option<Stickiness>,
    /// Roll back automatically when the 5xx rate over the guard window exceeds this (0–1).
    #[arg(long)]
    max_error_rate: Option<f64>,
    /// Requests in the guard window (≥ 20).
    #[arg(long, requires = "max_error_rate")]
    guard_window: Option<i64>,
}

#[derive(Args, Debug)]
pub struct WeightArgs {
    #[command(flatten)]
    component: ComponentArgs,
    /// New percent of requests for the candidate.
    #[arg(long, value_parser = parse_weight)]
    weight: Weight,
}

fn parse_weight(s: &str) -> Result<Weight, String> {
    let w: f64 = s
        .parse()
        .map_err(|_| format!("must be a number from 0 to 100, got \"{s}\""))?;
    Weight::from_percent(w).map_err(|e| e.0)
}

pub fn status(t: Target) -> Result<()> {
    let status: StatusResponse = call(&t, "GET", "/v1/status", None)?;
    print(&status)
}

/// An operation that names only the component (switch, promote, rollback).
pub fn component_op(op: Op, a: ComponentArgs) -> Result<()> {
    operate(&a.target, op, &a.component, &OpParams::default(), None)
}

#[derive(Args, Debug)]
pub struct PinKeyArgs {
    #[command(flatten)]
    component: ComponentArgs,
    /// A file holding the new pin key (16–256 visible characters).
    #[arg(long, conflicts_with = "remove", required_unless_present = "remove")]
    key_file: Option<PathBuf>,
    /// Turn pinning off for the component.
    #[arg(long)]
    remove: bool,
}

/// Sets, rotates or removes the pin key (sent as the body, never in the URL).
pub fn pin_key(a: PinKeyArgs) -> Result<()> {
    let key = match &a.key_file {
        Some(f) => {
            let key =
                std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
            crate::spec::PinKey::new(key.trim())?;
            key.trim().as_bytes().to_vec()
        }
        None => Vec::new(),
    };
    let path = Op::PinKey.path(&a.component.component, &OpParams::default());
    let status: ComponentStatus = call(
        &a.component.target,
        "POST",
        &path,
        Some((key, "text/plain")),
    )?;
    print(&status)
}

pub fn weight(a: WeightArgs) -> Result<()> {
    let params = OpParams {
        weight: Some(a.weight),
        ..OpParams::default()
    };
    operate(
        &a.component.target,
        Op::Weight,
        &a.component.component,
        &params,
        None,
    )
}

pub fn canary(a: CanaryArgs) -> Result<()> {
    let guard = a
        .max_error_rate
        .map(|rate| GuardSpec::new(rate, a.guard_window))
        .transpose()?;
    version_op(
        Op::Canary,
        a.version,
        OpParams {
            weight: Some(a.weight),
            sticky: a.sticky_header.or(a.sticky_cookie),
            guard,
            ..OpParams::default()
        },
    )
}

/// An operation that loads a new version (deploy, stage; canary with its policy).
pub fn version_op(op: Op, a: VersionArgs, mut params: OpParams) -> Result<()> {
    params.label = a.label;
    params.mounts = a.mounts;
    params.smoke = a.smoke;
    let module = a.file.to_string_lossy();
    let body = if module.starts_with(OciReference::SCHEME) {
        params.oci = Some(OciReference::parse(&module)?);
        params.insecure = a.insecure;
        None
    } else if a.host_path {
        params.path = Some(std::path::absolute(&a.file)?);
        None
    } else {
        let bytes =
            std::fs::read(&a.file).with_context(|| format!("reading {}", a.file.display()))?;
        Some((bytes, "application/wasm"))
    };
    operate(&a.target, op, &a.component, &params, body)
}

fn operate(
    target: &Target,
    op: Op,
    component: &str,
    params: &OpParams,
    body: Option<(Vec<u8>, &str)>,
) -> Result<()> {
    let status: ComponentStatus = call(target, "POST", &op.path(component, params), body)?;
    print(&status)
}

fn print(v: &impl Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn token(t: &Target) -> Result<String> {
    if let Some(tok) = &t.token {
        return Ok(tok.trim().to_string());
    }
    let tok = std::fs::read_to_string(&t.token_file).with_context(|| {
        format!(
            "no admin token: set FNHOST_ADMIN_TOKEN or run where `fnhost up` wrote {}",
            t.token_file.display()
        )
    })?;
    Ok(tok.trim().to_string())
}

/// The admin API's error body.
#[derive(serde::Deserialize)]
struct ErrorBody {
    error: String,
}

fn call<T: DeserializeOwned>(
    t: &Target,
    method: &str,
    path: &str,
    body: Option<(Vec<u8>, &str)>,
) -> Result<T> {
    let token = token(t)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (https, authority) = match t.admin.strip_prefix("https://") {
            Some(rest) => (true, rest.trim_end_matches('/')),
            None => (
                false,
                t.admin.trim_start_matches("http://").trim_end_matches('/'),
            ),
        };
        let stream = tokio::net::TcpStream::connect(authority)
            .await
            .with_context(|| format!("connecting to the admin API at {}", t.admin))?;
        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, authority)
            .header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        let bytes = match body {
            Some((bytes, content_type)) => {
                req = req.header(http::header::CONTENT_TYPE, content_type);
                bytes
            }
            None => Vec::new(),
        };
        let req = req.body(Full::new(Bytes::from(bytes)))?;
        let (status, bytes) = if https {
            let tls = tls_connector(t.admin_ca.as_deref())?;
            let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
            let name =
                rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_string())
                    .with_context(|| format!("{host} is not a valid TLS server name"))?;
            let stream = tls
                .connect(name, stream)
                .await
                .with_context(|| format!("TLS with the admin API at {}", t.admin))?;
            exchange(stream, req).await?
        } else {
            exchange(stream, req).await?
        };
        if !status.is_success() {
            let msg = serde_json::from_slice::<ErrorBody>(&bytes)
                .map(|e| e.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
            bail!("{status}: {msg}");
        }
        serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "the admin API answered something unexpected: {}",
                String::from_utf8_lossy(&bytes)
            )
        })
    })
}

async fn exchange<I>(io: I, req: http::Request<Full<Bytes>>) -> Result<(http::StatusCode, Bytes)>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(conn);
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    Ok((status, resp.into_body().collect().await?.to_bytes()))
}

/// Trusts the given PEM certificates, or the system's.
fn tls_connector(ca: Option<&std::path::Path>) -> Result<tokio_rustls::TlsConnector> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            for cert in rustls::pki_types::CertificateDer::pem_file_iter(path)
                .with_context(|| format!("reading {}", path.display()))?
            {
                roots.add(cert.with_context(|| format!("parsing {}", path.display()))?)?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(std::sync::Arc::new(
        config,
    )))
}
