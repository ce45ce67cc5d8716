//! `fnhost push FILE REF` and `fnhost pull REF [-o FILE]`: the registry client's command line.
//!
//! Push writes a component as a CNCF Wasm OCI artifact and prints the manifest digest the
//! registry names it by; pull writes the module a reference names, verified by digest. Both
//! speak HTTPS unless the registry is on loopback or `--insecure` is given, with the same
//! credentials `fnhost up` uses (see `oci.rs`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use crate::spec::{AppLimits, OciReference, OciSource};

#[derive(Args, Debug)]
pub struct PushArgs {
    /// The component (.wasm) to push.
    file: PathBuf,
    /// Where: [oci://]HOST[:PORT]/REPOSITORY[:TAG].
    #[arg(value_parser = |s: &str| OciReference::parse(s))]
    reference: OciReference,
    /// Plain HTTP to a registry that is not on loopback.
    #[arg(long)]
    insecure: bool,
}

#[derive(Args, Debug)]
pub struct PullArgs {
    /// What: [oci://]HOST[:PORT]/REPOSITORY[:TAG][@sha256:…].
    #[arg(value_parser = |s: &str| OciReference::parse(s))]
    reference: OciReference,
    /// The file to write (default: the repository's last name + .wasm, here).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Plain HTTP to a registry that is not on loopback.
    #[arg(long)]
    insecure: bool,
}

/// Prints `sha256:<manifest digest>`.
pub fn push(a: PushArgs) -> Result<()> {
    let module = std::fs::read(&a.file).with_context(|| format!("reading {}", a.file.display()))?;
    let source = OciSource::new(a.reference, None, a.insecure);
    let digest = runtime()?
        .block_on(super::push_artifact(
            module,
            &source.reference,
            source.plain_http,
        ))
        .with_context(|| format!("pushing {} to {}", a.file.display(), source.reference))?;
    println!("sha256:{digest}");
    Ok(())
}

pub fn pull(a: PullArgs) -> Result<()> {
    let source = OciSource::new(a.reference, None, a.insecure);
    let max = AppLimits::default().max_module_bytes;
    let pulled = runtime()?
        .block_on(super::pull_artifact(
            &source.reference,
            source.plain_http,
            max,
        ))
        .with_context(|| format!("pulling {}", source.reference))?;
    let output = a.output.unwrap_or_else(|| {
        let name = source
            .reference
            .repository
            .rsplit('/')
            .next()
            .unwrap_or("module");
        PathBuf::from(format!("{name}.wasm"))
    });
    crate::fsutil::write_atomically(&output, &pulled.bytes)
        .with_context(|| format!("writing {}", output.display()))?;
    println!(
        "{} → {} ({} bytes, module sha256:{})",
        source.reference.pinned(pulled.manifest_digest),
        output.display(),
        pulled.bytes.len(),
        pulled.module_digest
    );
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}
