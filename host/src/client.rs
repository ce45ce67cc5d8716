//! The admin CLI: `fnhost status | deploy | canary | stage | switch | promote | rollback | weight`.
//!
//! Each command is one HTTP call to a running host's admin API (`--admin`, or `FNHOST_ADMIN`),
//! with the bearer token from `FNHOST_ADMIN_TOKEN` or the token file `fnhost up` wrote. Modules
//! are uploaded as bytes by default (works against a remote host); `--host-path` sends the path
//! instead, for a module already on the host's disk.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

#[derive(Args, Debug)]
pub struct Target {
    /// Admin address of the running host.
    #[arg(long, env = "FNHOST_ADMIN", default_value = "127.0.0.1:3001")]
    admin: String,
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
    /// The module (.wasm component).
    file: PathBuf,
    /// Human label for the version (e.g. v2).
    #[arg(long)]
    label: Option<String>,
    /// Send FILE as a path on the host instead of uploading its bytes.
    #[arg(long)]
    host_path: bool,
    /// Grant a host directory to this version as HOST_DIR:GUEST_PATH (replaces the inherited files).
    #[arg(long = "mount")]
    mounts: Vec<String>,
    /// Refuse the change unless a GET of this path (e.g. /api/v0/pi?ndigits=5) answers below 500.
    #[arg(long)]
    smoke: Option<String>,
}

#[derive(Args, Debug)]
pub struct CanaryArgs {
    #[command(flatten)]
    version: VersionArgs,
    /// Percent of requests for the candidate (0–100, one decimal).
    #[arg(long)]
    weight: f64,
    /// Hash this request header so a user always sees the same version.
    #[arg(long, conflicts_with = "sticky_cookie")]
    sticky_header: Option<String>,
    /// Hash this cookie so a user always sees the same version.
    #[arg(long)]
    sticky_cookie: Option<String>,
    /// Roll back automatically when the 5xx rate over the guard window exceeds this (0–1).
    #[arg(long)]
    max_error_rate: Option<f64>,
    /// Requests in the guard window (≥ 20).
    #[arg(long, requires = "max_error_rate")]
    guard_window: Option<u32>,
}

#[derive(Args, Debug)]
pub struct WeightArgs {
    #[command(flatten)]
    component: ComponentArgs,
    /// New percent of requests for the candidate.
    #[arg(long)]
    weight: f64,
}

pub fn status(t: Target) -> Result<()> {
    print(call(&t, "GET", "/v1/status", None)?)
}

pub fn simple_op(op: &str, a: ComponentArgs) -> Result<()> {
    print(call(
        &a.target,
        "POST",
        &format!("/v1/components/{}/{op}", a.component),
        None,
    )?)
}

pub fn weight(a: WeightArgs) -> Result<()> {
    let path = format!(
        "/v1/components/{}/weight?weight={}",
        a.component.component, a.weight
    );
    print(call(&a.component.target, "POST", &path, None)?)
}

pub fn canary(a: CanaryArgs) -> Result<()> {
    let mut extra = vec![("weight", a.weight.to_string())];
    if let Some(h) = a.sticky_header {
        extra.push(("sticky_header", h));
    }
    if let Some(c) = a.sticky_cookie {
        extra.push(("sticky_cookie", c));
    }
    if let Some(r) = a.max_error_rate {
        extra.push(("max_error_rate", r.to_string()));
    }
    if let Some(w) = a.guard_window {
        extra.push(("guard_window", w.to_string()));
    }
    version_op("canary", a.version, Some(extra))
}

pub fn version_op(op: &str, a: VersionArgs, extra: Option<Vec<(&str, String)>>) -> Result<()> {
    let mut query = form_urlencoded::Serializer::new(String::new());
    if let Some(l) = &a.label {
        query.append_pair("label", l);
    }
    for m in &a.mounts {
        query.append_pair("mount", m);
    }
    if let Some(s) = &a.smoke {
        query.append_pair("smoke", s);
    }
    for (k, v) in extra.unwrap_or_default() {
        query.append_pair(k, &v);
    }
    let body = if a.host_path {
        let abs = std::path::absolute(&a.file)?;
        query.append_pair("path", &abs.to_string_lossy());
        None
    } else {
        Some(std::fs::read(&a.file).with_context(|| format!("reading {}", a.file.display()))?)
    };
    let path = format!("/v1/components/{}/{op}?{}", a.component, query.finish());
    print(call(&a.target, "POST", &path, body)?)
}

fn print(v: serde_json::Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(&v)?);
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

fn call(t: &Target, method: &str, path: &str, body: Option<Vec<u8>>) -> Result<serde_json::Value> {
    let token = token(t)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let stream = tokio::net::TcpStream::connect(&t.admin)
            .await
            .with_context(|| format!("connecting to the admin API at {}", t.admin))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, &t.admin)
            .header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        if body.is_some() {
            req = req.header(http::header::CONTENT_TYPE, "application/wasm");
        }
        let req = req.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| serde_json::json!({ "error": String::from_utf8_lossy(&bytes) }));
        if !status.is_success() {
            bail!(
                "{status}: {}",
                value["error"].as_str().unwrap_or(&value.to_string())
            );
        }
        Ok(value)
    })
}
