//! The container image, and an end-to-end test of it under a private Docker daemon.
//!
//! * [`build_image`] (`cargo xtask image`): compiles `fnhost` for
//!   `x86_64-unknown-linux-musl`, checks the binary is statically linked, stages a build
//!   context (binary + the build machine's CA bundle) and runs `docker build` with the
//!   repository's `Dockerfile` (`FROM scratch`: nothing is pulled). Tags `fnhost:dev` and
//!   `fnhost:<host crate version>` (the pinned tag the Kubernetes manifests use).
//! * [`docker_e2e`] (`cargo xtask docker-e2e`): starts its own `dockerd` ([`crate::docker`]:
//!   no bridge, no iptables), builds the image with it and runs it `--read-only` as
//!   65532:65532 with 512 MiB and tmpfs on /cache and /state, with `--network host` and the
//!   listeners on 127.0.0.1 (no published port, no bridge). Mounted read-only: `/modules` (the
//!   built pi_chudnovsky.wasm as pi.wasm, iris.wasm) and `/app` (spin.toml and the iris
//!   models, laid out the way kubelet lays out a ConfigMap volume). Then:
//!   1. `/readyz`, `/api/v0/pi?ndigits=99` (exact digits, `fnhost-version` = pi@<sha8>) and
//!      `/api/v01/classify` (Iris setosa);
//!   2. pi.wasm is replaced by pi_picrunch.wasm (temp file + rename) and the `fnhost-version`
//!      header must follow within 30 s;
//!   3. /app gets a kubelet-style ConfigMap update (new timestamped directory, atomic `..data`
//!      symlink swap, old directory removed) that stages iris model v2 at 0%: within 30 s a
//!      request pinned with `fnhost-version-pin: candidate` must be served by `model-v2`, and
//!      unpinned ones still by `model-v1`.
//!
//!   The container and the daemon are always stopped (daemon by PID), on success and failure.
//!   [`docker_e2e_in`] runs the same checks in a daemon the caller started (`cargo xtask test`
//!   shares one daemon and one image build with the fleet rig).
//!
//! Every command is printed before it runs.

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use devkit::cmd::run;
use devkit::http::{Client, Response};
use devkit::install::{ensure_file, ensure_tool};
use sha2::{Digest, Sha256};

use crate::answers::{check_pi, check_setosa, SETOSA_QUERY};
use crate::docker::{docker, Container, Dockerd, FnhostRun};
use crate::workspace::{cargo, target_dir, wasm_dir};

/// The development tag `build_image` always sets.
pub const IMAGE: &str = "fnhost:dev";
const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Builds the static binary and the `fnhost:dev` image with the Docker daemon the environment
/// points at (`DOCKER_HOST` or the default socket).
pub fn build_image(root: &Path) -> Result<()> {
    build_image_with(root, None)
}

/// Runs the image end to end under a private `dockerd`; see the module docs.
pub fn docker_e2e(root: &Path) -> Result<()> {
    let scratch = devkit::TempDir::new("docker-e2e");
    let daemon = Dockerd::with_image(root, scratch.path())?;
    let result = docker_e2e_in(root, &daemon);
    if result.is_err() {
        scratch.keep();
        println!("docker-e2e: dockerd log: {}", daemon.log_path().display());
    }
    let stopped = daemon.stop();
    result.and(stopped)
}

/// The end-to-end checks in `daemon`, which already has the image.
pub fn docker_e2e_in(root: &Path, daemon: &Dockerd) -> Result<()> {
    let wasm = wasm_dir();
    let files = E2eFiles {
        chudnovsky: wasm.join("pi_chudnovsky.wasm"),
        picrunch: wasm.join("pi_picrunch.wasm"),
        iris: wasm.join("iris.wasm"),
        model_v1: root.join("models/iris/v1/model.json"),
        model_v2: root.join("models/iris/v2/model.json"),
    };
    for f in [
        &files.chudnovsky,
        &files.picrunch,
        &files.iris,
        &files.model_v1,
        &files.model_v2,
    ] {
        ensure!(
            f.is_file(),
            "{} is missing: build the modules and train the models first",
            f.display()
        );
    }

    let scratch = devkit::TempDir::new("docker-e2e");
    let work = scratch.path();
    println!("docker-e2e: working directory {}", work.display());

    // /modules: the module files (in Kubernetes they come by URL instead).
    let modules = work.join("modules");
    fs::create_dir_all(&modules)?;
    fs::copy(&files.chudnovsky, modules.join("pi.wasm"))?;
    fs::copy(&files.iris, modules.join("iris.wasm"))?;
    make_world_readable(&modules)?;
    // /app: spin.toml and the models, laid out exactly as kubelet lays out a ConfigMap volume.
    let app = work.join("app");
    fs::create_dir_all(&app)?;
    fs::set_permissions(&app, fs::Permissions::from_mode(0o755))?;
    let models = [
        ("models/iris/v1/model.json", fs::read(&files.model_v1)?),
        ("models/iris/v2/model.json", fs::read(&files.model_v2)?),
    ];
    kubelet_write(&app, 1, &e2e_manifest(false), &models)?;

    let [port, admin_port] = devkit::net::free_ports();
    let container = daemon.run_fnhost(&FnhostRun {
        name: format!("fnhost-e2e-{}", std::process::id()),
        port,
        admin_port,
        mounts: vec![
            (app.clone(), "/app".into()),
            (modules.clone(), "/modules".into()),
        ],
        env: vec![],
    })?;
    let outcome = exercise(root, &container, port, &app, &modules, &files, &models);
    if outcome.is_err() {
        scratch.keep();
        println!("docker-e2e: FAILED; container logs:");
        container.print_logs(200);
    } else {
        println!("docker-e2e: passed");
    }
    let removed = container.remove();
    outcome.and(removed)
}

struct E2eFiles {
    chudnovsky: PathBuf,
    picrunch: PathBuf,
    iris: PathBuf,
    model_v1: PathBuf,
    model_v2: PathBuf,
}

/// The served manifest; `staged` adds iris model v2 as a blue/green candidate at 0%.
fn e2e_manifest(staged: bool) -> String {
    let mut s = String::from(
        r#"# Written by `cargo xtask docker-e2e`.
spin_manifest_version = 2

[application]
name = "fnhost-docker-e2e"
version = "0.1.0"

[[trigger.http]]
route = "/api/v0/pi"
component = "pi"

[[trigger.http]]
route = "/api/v01/classify"
component = "iris"

[component.pi]
source = "/modules/pi.wasm"

[component.iris]
source = "/modules/iris.wasm"
files = [{ source = "models/iris/v1", destination = "/model" }]

[component.iris.tool.fnhost]
label = "model-v1"
# Pinning needs this key (fnhost-pin-key); a test-only value.
pin_key = "docker-e2e-testers-pin-key"
"#,
    );
    if staged {
        s.push_str(
            r#"
[component.iris.tool.fnhost.candidate]
source = "/modules/iris.wasm"
files = [{ source = "models/iris/v2", destination = "/model" }]
label = "model-v2"
weight = 0
"#,
        );
    }
    s
}

/// Writes `spin.toml` and `files` into `dir` the way kubelet updates a ConfigMap volume: a new
/// `..<timestamp>` directory, an atomic rename of the `..data` symlink onto it, top-level
/// symlinks through `..data`, then removal of the previous timestamped directory.
pub(crate) fn kubelet_write(
    dir: &Path,
    generation: u32,
    spin_toml: &str,
    files: &[(&str, Vec<u8>)],
) -> Result<()> {
    let ts = format!("..2026_01_01_00_00_{generation:02}.000000000");
    let data = dir.join(&ts);
    let mut all: Vec<(&str, &[u8])> = vec![("spin.toml", spin_toml.as_bytes())];
    all.extend(files.iter().map(|(p, b)| (*p, b.as_slice())));
    for (rel, bytes) in &all {
        let path = data.join(rel);
        fs::create_dir_all(path.parent().unwrap())?;
        fs::write(&path, bytes)?;
    }
    make_world_readable(&data)?;
    let old = fs::read_link(dir.join("..data")).ok();
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(&ts, &tmp)?;
    fs::rename(&tmp, dir.join("..data"))?;
    for (rel, _) in &all {
        let top = rel.split('/').next().unwrap();
        if fs::symlink_metadata(dir.join(top)).is_err() {
            std::os::unix::fs::symlink(format!("..data/{top}"), dir.join(top))?;
        }
    }
    if let Some(old) = old {
        fs::remove_dir_all(dir.join(old))?;
    }
    println!(
        "kubelet-style ConfigMap update of {}: ..data -> {ts}",
        dir.display()
    );
    Ok(())
}

fn exercise(
    root: &Path,
    c: &Container,
    port: u16,
    app: &Path,
    modules: &Path,
    files: &E2eFiles,
    models: &[(&str, Vec<u8>)],
) -> Result<()> {
    let base = format!("http://127.0.0.1:{port}");
    let pi_url = format!("{base}/api/v0/pi?ndigits=99");
    let classify_url = format!("{base}/api/v01/classify?{SETOSA_QUERY}");
    let http = Client::new(Duration::from_secs(10));
    let get = |url: &str, headers: &[(&str, &str)]| http.request("GET", url, headers, None);

    // Ready: every component loaded (bounded; a dead container fails at once).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(r) = get(&format!("{base}/readyz"), &[]) {
            if r.status == 200 {
                println!("docker-e2e: /readyz is 200");
                break;
            }
        }
        c.ensure_running().context("before becoming ready")?;
        ensure!(
            Instant::now() < deadline,
            "/readyz did not return 200 within 120 s"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // 1. Both functions answer correctly.
    let r = get(&pi_url, &[])?;
    check_pi(root, &r, 99)?;
    let before = r.header("fnhost-version").unwrap_or_default().to_string();
    let want_before = format!("pi@{}", &sha256_file(&files.chudnovsky)?[..8]);
    ensure!(
        before.starts_with(&want_before),
        "fnhost-version is {before:?}, expected {want_before} (the mounted pi_chudnovsky.wasm)"
    );
    println!("docker-e2e: pi: 99 digits correct, fnhost-version {before}");
    check_classify(&get(&classify_url, &[])?, "model-v1")?;
    println!("docker-e2e: classify: Iris setosa (model-v1)");

    // 2. Live module swap: write the new module beside the old one, then rename over it.
    let want_after = format!("pi@{}", &sha256_file(&files.picrunch)?[..8]);
    ensure!(
        want_after != want_before,
        "pi_picrunch.wasm and pi_chudnovsky.wasm are identical"
    );
    let tmp = modules.join(".pi.wasm.new");
    println!(
        "docker-e2e: cp {} {} && mv {} {}",
        files.picrunch.display(),
        tmp.display(),
        tmp.display(),
        modules.join("pi.wasm").display()
    );
    fs::copy(&files.picrunch, &tmp)?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644))?;
    fs::rename(&tmp, modules.join("pi.wasm"))?;
    let swapped = Instant::now();
    let deadline = swapped + Duration::from_secs(30);
    loop {
        let r = get(&pi_url, &[])?;
        let v = r.header("fnhost-version").unwrap_or_default().to_string();
        if v.starts_with(&want_after) {
            check_pi(root, &r, 99).context("after the swap")?;
            println!(
                "docker-e2e: fnhost-version {before} -> {v} after {} ms; digits still correct",
                swapped.elapsed().as_millis()
            );
            break;
        }
        ensure!(
            r.status == 200,
            "during the swap: HTTP {} (version {v}): {}",
            r.status,
            r.text()
        );
        ensure!(
            Instant::now() < deadline,
            "fnhost-version still {v:?} 30 s after replacing pi.wasm (expected {want_after})"
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // 3. A Kubernetes ConfigMap update (atomic ..data swap, old directory removed): stage iris
    //    model v2 at 0%, reachable only with `fnhost-version-pin: candidate`.
    kubelet_write(app, 2, &e2e_manifest(true), models)?;
    let updated = Instant::now();
    let deadline = updated + Duration::from_secs(30);
    loop {
        let r = get(
            &classify_url,
            &[
                ("fnhost-version-pin", "candidate"),
                ("fnhost-pin-key", "docker-e2e-testers-pin-key"),
            ],
        )?;
        if r.header("fnhost-version-label") == Some("model-v2") {
            check_classify(&r, "model-v2")?;
            println!(
                "docker-e2e: ConfigMap-style update applied after {} ms: model-v2 staged",
                updated.elapsed().as_millis()
            );
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "30 s after a ConfigMap-style update of /app (..data symlink swap, old directory removed) \
             a pinned request still gets {:?} (HTTP {}), not model-v2: the update was not applied",
            r.header("fnhost-version-label"),
            r.status
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    check_classify(&get(&classify_url, &[])?, "model-v1")?;
    let r = get(&pi_url, &[])?;
    ensure!(
        r.status == 200
            && r.header("fnhost-version")
                .is_some_and(|v| v.starts_with(&want_after)),
        "pi changed by the iris update: {:?}",
        r.header("fnhost-version")
    );
    check_pi(root, &r, 99)?;
    println!("docker-e2e: unpinned classify still model-v1, pi unchanged");
    Ok(())
}

fn check_classify(r: &Response, label: &str) -> Result<()> {
    check_setosa(r)?;
    let got = r.header("fnhost-version-label");
    ensure!(
        got == Some(label),
        "classify was served by {got:?}, expected {label}"
    );
    Ok(())
}

fn build_image_with(root: &Path, docker_host: Option<&str>) -> Result<()> {
    let context = stage_context()?;
    docker_build(root, &context, docker_host)
}

/// Builds the static binary and stages the Docker build context; returns its directory.
pub(crate) fn stage_context() -> Result<PathBuf> {
    ensure_tool("musl-gcc", &["musl-tools"])?;
    run(Command::new("rustup").args(["target", "add", MUSL_TARGET]))?;
    run(cargo()
        .env("CC_x86_64_unknown_linux_musl", "musl-gcc")
        .args([
            "build",
            "--release",
            "--target",
            MUSL_TARGET,
            "-p",
            "fnhost",
            // The server only: no `fnhost new` (and so no tract) in the image.
            "--no-default-features",
        ]))?;
    let binary = target_dir().join(MUSL_TARGET).join("release/fnhost");
    check_static(&binary)?;
    println!("image: {} is statically linked", binary.display());

    let ca = Path::new(CA_BUNDLE);
    ensure_file(ca, &["ca-certificates"])?;
    let context = target_dir().join("docker-context");
    if context.exists() {
        fs::remove_dir_all(&context)?;
    }
    fs::create_dir_all(context.join("dirs/cache"))?;
    fs::create_dir_all(context.join("dirs/state"))?;
    fs::copy(&binary, context.join("fnhost"))?;
    fs::set_permissions(context.join("fnhost"), fs::Permissions::from_mode(0o755))?;
    fs::copy(ca, context.join("ca-certificates.crt"))?;
    fs::set_permissions(
        context.join("ca-certificates.crt"),
        fs::Permissions::from_mode(0o644),
    )?;
    for d in ["dirs", "dirs/cache", "dirs/state"] {
        fs::set_permissions(context.join(d), fs::Permissions::from_mode(0o755))?;
    }
    Ok(context)
}

/// `docker build` of the staged context with the repository's Dockerfile.
pub(crate) fn docker_build(root: &Path, context: &Path, docker_host: Option<&str>) -> Result<()> {
    let pinned = format!("fnhost:{}", host_version(root)?);
    let mut build = docker(docker_host);
    build
        .args(["build", "--tag", IMAGE, "--tag", &pinned, "--file"])
        .arg(root.join("Dockerfile"))
        .arg(context);
    run(&mut build)?;
    run(docker(docker_host).args(["image", "ls", "fnhost"]))?;
    println!("image: built {IMAGE} and {pinned}");
    Ok(())
}

/// `version` of the fnhost crate: the image's pinned tag.
pub(crate) fn host_version(root: &Path) -> Result<String> {
    let manifest = root.join("host/Cargo.toml");
    let text =
        fs::read_to_string(&manifest).with_context(|| format!("reading {}", manifest.display()))?;
    let mut in_package = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package {
            if let Some(v) = line
                .strip_prefix("version")
                .map(str::trim_start)
                .and_then(|l| l.strip_prefix('='))
            {
                let v = v.trim().trim_matches('"');
                ensure!(
                    !v.is_empty() && !v.contains('{'),
                    "{}: [package] version must be a literal",
                    manifest.display()
                );
                return Ok(v.to_string());
            }
        }
    }
    bail!("{}: no version in [package]", manifest.display())
}

/// Fails unless `path` is an x86-64 ELF executable without an interpreter or needed libraries.
fn check_static(path: &Path) -> Result<()> {
    let elf = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        elf.get(o..o + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    };
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    };
    ensure!(
        elf.starts_with(b"\x7fELF\x02\x01"),
        "{}: not a 64-bit little-endian ELF file",
        path.display()
    );
    ensure!(
        u16_at(0x12) == Some(0x3e),
        "{}: not an x86-64 binary",
        path.display()
    );
    let phoff = u64_at(0x20).context("truncated ELF header")? as usize;
    let phentsize = u16_at(0x36).context("truncated ELF header")? as usize;
    let phnum = u16_at(0x38).context("truncated ELF header")? as usize;
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        let p_type = u32_at(ph).context("truncated program header")?;
        const PT_DYNAMIC: u32 = 2;
        const PT_INTERP: u32 = 3;
        if p_type == PT_INTERP {
            bail!(
                "{} is dynamically linked (it has an ELF interpreter); the image has no libc",
                path.display()
            );
        }
        if p_type == PT_DYNAMIC {
            // A static-pie binary has a dynamic section for self-relocation, but no DT_NEEDED.
            let off = u64_at(ph + 8).context("truncated program header")? as usize;
            let size = u64_at(ph + 32).context("truncated program header")? as usize;
            for e in (off..off + size).step_by(16) {
                match u64_at(e).context("truncated dynamic section")? {
                    0 => break,
                    1 => bail!(
                        "{} needs shared libraries (DT_NEEDED); the image has none",
                        path.display()
                    ),
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

pub(crate) fn sha256_file(path: &Path) -> Result<String> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(sha256_hex(&bytes))
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

pub(crate) fn make_world_readable(dir: &Path) -> Result<()> {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            make_world_readable(&path)?;
        } else {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644))?;
        }
    }
    Ok(())
}
