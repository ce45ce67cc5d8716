//! Kubernetes manifests under `k8s/`: writing their spin.toml files from the built modules,
//! validating every kustomization offline, and playing the deployment story against the host.
//!
//! * [`manifests`] (`cargo xtask k8s-manifests --registry HOST[:PORT]/NAMESPACE`): hashes the
//!   built modules (`target/wasm32-wasip2/release/{pi_picrunch,pi_chudnovsky,iris}.wasm`),
//!   copies the iris models (`models/iris/v{1,2}/model.json`) into `k8s/base/models/`, writes
//!   the spin.toml of the base and of every overlay step with registry sources pinned by
//!   digest, `{ url = "oci://HOST/NAMESPACE/<name>:<16 hex>", digest = "sha256:…" }`, and
//!   with `--push` pushes the modules there (`fnhost push`).
//! * [`validate`] (`cargo xtask k8s`): for the base and every overlay, `kubectl kustomize`,
//!   `kubernetes-validate --strict` (Kubernetes 1.30 and the validator's newest), `checkov`,
//!   then `k8s/checks.py` (cross-checks, spin.toml against Spin's JSON schema). Needs no
//!   cluster and no build.
//! * [`flows`] (`cargo xtask k8s-flows`): runs the release `fnhost` on the steps' spin.toml
//!   files in the README's order, each delivered as kubelet delivers a ConfigMap update, with
//!   the modules pushed to and pulled from a registry on loopback, and checks what serves.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use devkit::cmd::{capture, run};
use devkit::http::{Client, Response};
use devkit::install::{find_tool, pip_install, PipPackage};
use devkit::process::Server;
use devkit::registry::Registry;

use crate::answers::{check_pi, check_setosa, SETOSA_QUERY};
use crate::fleet::manifest::Status;
use crate::image::{kubelet_write, sha256_file, sha256_hex};
use crate::workspace::{target_dir, wasm_dir, SPIN_SCHEMA};

/// Every kustomization, relative to `k8s/`; the first is the base.
pub const KUSTOMIZATIONS: &[&str] = &[
    "base",
    "overlays/canary",
    "overlays/canary/promote",
    "overlays/blue-green",
    "overlays/blue-green/switch",
];

/// Kubernetes versions the rendered objects are validated against ("" = the validator's newest).
const KUBE_VERSIONS: &[&str] = &["1.30.0", ""];

/// The modules the manifests name, by the stem of their file in the wasm directory, which is
/// also their repository's last name in the registry.
const MODULE_STEMS: [&str; 3] = ["pi_picrunch", "pi_chudnovsky", "iris"];

/// `cargo xtask k8s-manifests`: where the pods pull modules from.
#[derive(clap::Args)]
pub struct ManifestOptions {
    /// The registry and namespace the pods pull modules from, as the pods reach it:
    /// HOST[:PORT]/NAMESPACE. Each module is NAMESPACE/<name>:<first 16 hex of its sha256>.
    #[arg(long, value_name = "HOST[:PORT]/NAMESPACE")]
    registry: String,
    /// The registry speaks plain HTTP (it is listed in spin.toml's `insecure_registries`).
    #[arg(long)]
    insecure: bool,
    /// Also push the modules with the release fnhost: to the registry above, or to HOST[:PORT]
    /// when this machine reaches it under another name (kind's local registry: localhost:5001).
    #[arg(long, value_name = "HOST[:PORT]", num_args = 0..=1, default_missing_value = "")]
    push: Option<String>,
}

/// Writes every kustomization's spin.toml with modules from `options.registry`, pinned by
/// their sha256, and pushes them if asked.
pub fn manifests(root: &Path, options: &ManifestOptions) -> Result<()> {
    let (host, namespace) = split_registry(&options.registry)?;
    let wasm = wasm_dir();
    let module = |stem: &'static str| -> Result<Module> {
        let file = wasm.join(format!("{stem}.wasm"));
        ensure!(
            file.is_file(),
            "{} is missing: build the modules first (`cargo xtask build`)",
            file.display()
        );
        let sha256 = sha256_file(&file)?;
        println!("k8s-manifests: {} sha256:{sha256}", file.display());
        Ok(Module {
            url: format!("oci://{host}/{namespace}/{stem}:{}", &sha256[..16]),
            repository: format!("{namespace}/{stem}"),
            tag: sha256[..16].to_string(),
            sha256,
            file,
        })
    };
    let modules = Modules {
        picrunch: module("pi_picrunch")?,
        chudnovsky: module("pi_chudnovsky")?,
        iris: module("iris")?,
    };

    let k8s = root.join("k8s");
    for v in ["v1", "v2"] {
        let from = root.join(format!("models/iris/{v}/model.json"));
        let to = k8s.join(format!("base/models/iris/{v}/model.json"));
        ensure!(
            from.is_file(),
            "{} is missing: train the models first (`cargo xtask train-iris`)",
            from.display()
        );
        fs::create_dir_all(to.parent().unwrap())?;
        fs::copy(&from, &to)
            .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
        println!("k8s-manifests: {} -> {}", from.display(), to.display());
    }

    let command = format!(
        "cargo xtask k8s-manifests --registry {}{}",
        options.registry,
        if options.insecure { " --insecure" } else { "" }
    );
    for step in STEPS {
        let path = k8s.join(step.dir).join("spin.toml");
        let text = render(step, &modules, &command, options.insecure.then_some(host));
        fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        println!("k8s-manifests: wrote {}", path.display());
    }

    let all = [&modules.picrunch, &modules.chudnovsky, &modules.iris];
    match options.push.as_deref() {
        Some(via) => {
            let fnhost = release_fnhost()?;
            let host = if via.is_empty() { host } else { via };
            for m in all {
                let reference = format!("{host}/{}:{}", m.repository, m.tag);
                let digest = push_module(&fnhost, &m.file, &reference, options.insecure)?;
                println!("k8s-manifests: pushed {reference} (manifest {digest})");
            }
        }
        None => {
            println!("k8s-manifests: push the modules before `kubectl apply -k k8s/...` (tags are content-addressed: never move one):");
            for m in all {
                println!(
                    "  fnhost push {} {host}/{}:{}{}",
                    m.file.display(),
                    m.repository,
                    m.tag,
                    if options.insecure { " --insecure" } else { "" }
                );
            }
        }
    }
    Ok(())
}

/// `HOST[:PORT]/NAMESPACE` → (host, namespace), refusing what is not a registry and a path.
fn split_registry(registry: &str) -> Result<(&str, &str)> {
    let shape =
        "--registry must be HOST[:PORT]/NAMESPACE (no scheme), e.g. ghcr.io/your-org/fnhost";
    ensure!(!registry.contains("://"), "{shape}, got {registry:?}");
    let (host, namespace) = registry
        .trim_end_matches('/')
        .split_once('/')
        .with_context(|| format!("{shape}, got {registry:?}"))?;
    ensure!(
        !host.is_empty() && !namespace.is_empty(),
        "{shape}, got {registry:?}"
    );
    // OCI repository names: lowercase path components of [a-z0-9] joined by . _ -
    ensure!(
        namespace.split('/').all(|c| !c.is_empty()
            && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))),
        "--registry: namespace {namespace:?} must be lowercase letters, digits, '.', '_', '-' and '/'"
    );
    Ok((host, namespace))
}

/// The release host binary, which pushes modules.
fn release_fnhost() -> Result<std::path::PathBuf> {
    let fnhost = target_dir().join("release/fnhost");
    ensure!(
        fnhost.is_file(),
        "{} is missing: build it first (`cargo xtask build`)",
        fnhost.display()
    );
    Ok(fnhost)
}

/// `fnhost push FILE REFERENCE`; returns the manifest digest it prints.
fn push_module(fnhost: &Path, file: &Path, reference: &str, insecure: bool) -> Result<String> {
    let mut cmd = Command::new(fnhost);
    cmd.arg("push")
        .arg(file)
        .arg(reference)
        .env_remove("RUST_BACKTRACE");
    if insecure {
        cmd.arg("--insecure");
    }
    let out = capture(&mut cmd).with_context(|| format!("fnhost push {reference}"))?;
    let digest = out.trim().to_string();
    ensure!(
        digest.starts_with("sha256:"),
        "fnhost push {reference} printed {out:?}, not a manifest digest"
    );
    Ok(digest)
}

/// The module a committed registry source names: (file stem, tag) of
/// `oci://HOST[:PORT]/NAMESPACE/<stem>:<tag>`.
fn pinned_module(url: &str) -> Option<(&str, &str)> {
    let name = url.strip_prefix("oci://")?.rsplit('/').next()?;
    name.split_once(':')
}

struct Module {
    /// `oci://HOST[:PORT]/NAMESPACE/<stem>:<tag>`, as the pods reach the registry.
    url: String,
    /// `NAMESPACE/<stem>` in the registry.
    repository: String,
    /// The first 16 hex digits of the sha256: a tag per content, never moved.
    tag: String,
    sha256: String,
    file: std::path::PathBuf,
}

struct Modules {
    picrunch: Module,
    chudnovsky: Module,
    iris: Module,
}

/// The state of the pi component in one step.
#[derive(Clone, Copy)]
enum Pi {
    /// v1 (picrunch) serves everything.
    V1,
    /// v1 serves, v2 (chudnovsky) is a canary at this percentage.
    Canary(u32),
    /// v2 serves everything.
    V2,
}

/// The state of the iris component (same module, model files differ) in one step.
#[derive(Clone, Copy)]
enum Iris {
    /// Model v1 serves.
    V1,
    /// Model v1 serves; model v2 is loaded beside it at 0% (blue/green "staged").
    V2Staged,
    /// Model v2 serves; model v1 stays loaded at 0% for an instant switch back.
    V2Switched,
}

struct Step {
    dir: &'static str,
    what: &'static str,
    pi: Pi,
    iris: Iris,
}

const STEPS: &[Step] = &[
    Step {
        dir: "base",
        what: "the starting point: pi v1 (picrunch), iris with model v1",
        pi: Pi::V1,
        iris: Iris::V1,
    },
    Step {
        dir: "overlays/canary",
        what: "canary: pi v2 (chudnovsky) takes 10% of requests, guarded",
        pi: Pi::Canary(10),
        iris: Iris::V1,
    },
    Step {
        dir: "overlays/canary/promote",
        what: "canary promoted: pi v2 serves everything",
        pi: Pi::V2,
        iris: Iris::V1,
    },
    Step {
        dir: "overlays/blue-green",
        what:
            "blue/green staged: iris model v2 loaded at 0% (header `fnhost-version-pin: candidate`)",
        pi: Pi::V2,
        iris: Iris::V2Staged,
    },
    Step {
        dir: "overlays/blue-green/switch",
        what: "blue/green switched: iris model v2 serves, model v1 stays staged",
        pi: Pi::V2,
        iris: Iris::V2Switched,
    },
];

fn source(m: &Module) -> String {
    format!(
        "{{ url = \"{}\", digest = \"sha256:{}\" }}",
        m.url, m.sha256
    )
}

fn render(step: &Step, m: &Modules, command: &str, insecure: Option<&str>) -> String {
    let insecure = insecure
        .map(|host| {
            format!(
                "# This registry speaks plain HTTP (`k8s-manifests --insecure`).\n\
                 insecure_registries = [\"{host}\"]\n"
            )
        })
        .unwrap_or_default();
    let mut s = format!(
        "# Generated by `{command}` from the\n\
         # modules built in target/wasm32-wasip2/release (digests are their sha256). Rerun it\n\
         # instead of editing; `cargo xtask k8s` checks the result.\n\
         # State: {}.\n\
         spin_manifest_version = 2\n\n\
         [application]\n\
         name = \"fnhost-functions\"\n\
         version = \"0.1.0\"\n\
         description = \"pi digits and iris classification, served by fnhost on Kubernetes\"\n\n\
         # The same limits as the repository's spin.toml; the per-pod concurrency is explicit\n\
         # so that 6 x 128 MiB of guest memory plus the host's own fits the pod's 1 GiB.\n\
         [application.tool.fnhost]\n\
         request_timeout = \"30s\"\n\
         memory_limit = \"128MiB\"\n\
         max_concurrent_requests = 6\n\
         {insecure}\n\
         [[trigger.http]]\n\
         route = \"/api/v0/pi\"\n\
         component = \"pi\"\n\n\
         [[trigger.http]]\n\
         route = \"/api/v01/classify\"\n\
         component = \"iris\"\n\n",
        step.what
    );
    let (pi_current, pi_label) = match step.pi {
        Pi::V1 | Pi::Canary(_) => (&m.picrunch, "v1"),
        Pi::V2 => (&m.chudnovsky, "v2"),
    };
    s += &format!(
        "[component.pi]\nsource = {}\nvariables = {{ max_ndigits = \"1000000\" }}\n\n\
         [component.pi.tool.fnhost]\nlabel = \"{pi_label}\"\n\n",
        source(pi_current)
    );
    if let Pi::Canary(weight) = step.pi {
        s += &format!(
            "[component.pi.tool.fnhost.candidate]\n\
             source = {}\n\
             label = \"v2\"\n\
             weight = {weight}\n\
             # The same client (by this header) keeps seeing the same version.\n\
             sticky_header = \"x-user\"\n\
             # Back to v1 automatically if more than 5% of the last 20 v2 responses are 5xx.\n\
             max_error_rate = 0.05\n\n",
            source(&m.chudnovsky)
        );
    }
    let model = |v: &str| {
        format!("files = [{{ source = \"models/iris/{v}\", destination = \"/model\" }}]\n")
    };
    let (current, staged) = match step.iris {
        Iris::V1 => ("v1", None),
        Iris::V2Staged => ("v1", Some("v2")),
        Iris::V2Switched => ("v2", Some("v1")),
    };
    s += &format!(
        "[component.iris]\nsource = {}\n{}\n[component.iris.tool.fnhost]\nlabel = \"model-{current}\"\n",
        source(&m.iris),
        model(current)
    );
    if let Some(v) = staged {
        s += &format!(
            "\n[component.iris.tool.fnhost.candidate]\n\
             source = {}\n\
             {}\
             label = \"model-{v}\"\n\
             # 0% = staged: loaded and reachable only with `fnhost-version-pin: candidate`.\n\
             weight = 0\n",
            source(&m.iris),
            model(v)
        );
    }
    s
}

/// Renders and checks every kustomization; fails with every problem found.
pub fn validate(root: &Path) -> Result<()> {
    ensure!(
        find_tool("kubectl").is_some(),
        "kubectl is not on PATH (it renders the kustomizations: `kubectl kustomize`)"
    );
    ensure!(find_tool("python3").is_some(), "python3 is not on PATH");
    let schema = root.join(SPIN_SCHEMA);
    ensure!(
        schema.is_file(),
        "Spin's manifest schema {} is missing",
        schema.display()
    );
    ensure_python_tools()?;

    let out = devkit::TempDir::new("k8s-validate");
    let result = validate_into(root, &schema, out.path());
    if result.is_err() {
        println!("k8s: rendered manifests kept in {}", out.keep().display());
    }
    result
}

fn validate_into(root: &Path, schema: &Path, out: &Path) -> Result<()> {
    let k8s = root.join("k8s");
    let mut rendered = Vec::new();
    for dir in KUSTOMIZATIONS {
        let yaml = capture(Command::new("kubectl").arg("kustomize").arg(k8s.join(dir)))
            .with_context(|| format!("k8s/{dir}: kubectl kustomize failed"))?;
        let file = out.join(format!("{}.yaml", dir.replace('/', "_")));
        fs::write(&file, yaml)?;
        println!("k8s: k8s/{dir} -> {}", file.display());
        rendered.push((dir, file));
    }

    let mut failures = Vec::new();
    for version in KUBE_VERSIONS {
        let mut cmd = Command::new("kubernetes-validate");
        cmd.args(["--strict", "--quiet"]);
        if !version.is_empty() {
            cmd.args(["--kubernetes-version", version]);
        }
        cmd.args(rendered.iter().map(|(_, f)| f));
        if let Err(e) = run(&mut cmd) {
            failures.push(format!(
                "kubernetes-validate{}: {e:#}",
                if version.is_empty() {
                    String::new()
                } else {
                    format!(" ({version})")
                }
            ));
        }
    }

    let mut cmd = Command::new("checkov");
    cmd.args([
        "--framework",
        "kubernetes",
        "--compact",
        "--quiet",
        "--skip-download",
    ]);
    for (_, f) in &rendered {
        cmd.arg("--file").arg(f);
    }
    if let Err(e) = run(&mut cmd) {
        failures.push(format!("checkov: {e:#}"));
    }

    let mut cmd = Command::new("python3");
    cmd.arg(k8s.join("checks.py")).arg("--schema").arg(schema);
    for (i, (dir, f)) in rendered.iter().enumerate() {
        if i == 0 {
            cmd.arg("--base");
        }
        cmd.arg(format!("{dir}={}", f.display()));
    }
    if let Err(e) = run(&mut cmd) {
        failures.push(format!("cross-checks: {e:#}"));
    }

    check_models(root, &mut failures);
    note_stale_digests(root);

    if !failures.is_empty() {
        bail!("k8s validation failed:\n  {}", failures.join("\n  "));
    }
    println!("k8s: {} kustomizations rendered and passed kubernetes-validate, checkov and the cross-checks", rendered.len());
    Ok(())
}

/// The model copies in k8s/base/models must be the repository's models (when those exist).
fn check_models(root: &Path, failures: &mut Vec<String>) {
    for v in ["v1", "v2"] {
        let repo = root.join(format!("models/iris/{v}/model.json"));
        let copy = root.join(format!("k8s/base/models/iris/{v}/model.json"));
        match (fs::read(&repo), fs::read(&copy)) {
            (Ok(a), Ok(b)) if a != b => failures.push(format!(
                "{} differs from {}: rerun `cargo xtask k8s-manifests --registry …`",
                copy.display(),
                repo.display()
            )),
            (_, Err(e)) => failures.push(format!("{}: {e}", copy.display())),
            _ => {}
        }
    }
}

/// Points out (without failing: the manifests pin what was published, not what was built last)
/// modules built since the manifests were written.
fn note_stale_digests(root: &Path) {
    let wasm = wasm_dir();
    let mut pinned = std::collections::BTreeSet::new();
    for dir in KUSTOMIZATIONS {
        let Ok(text) = fs::read_to_string(root.join("k8s").join(dir).join("spin.toml")) else {
            continue;
        };
        for part in text.split("url = \"").skip(1) {
            let url = &part[..part.find('"').unwrap_or(0)];
            if let Some((stem, tag)) = pinned_module(url) {
                pinned.insert((stem.to_string(), tag.to_string()));
            }
        }
    }
    for (stem, tag) in &pinned {
        let built = wasm.join(format!("{stem}.wasm"));
        if let Ok(sha) = sha256_file(&built) {
            if !sha.starts_with(tag.as_str()) {
                println!(
                    "k8s: note: {} (sha256:{}) is not the {stem} module the manifests pin ({tag}…); \
                     to deploy it, rerun `cargo xtask k8s-manifests --registry … --push`",
                    built.display(),
                    &sha[..16]
                );
            }
        }
    }
}

/// `pip install`s what is missing of kubernetes-validate, checkov, jsonschema and PyYAML.
fn ensure_python_tools() -> Result<()> {
    pip_install(&[
        PipPackage::named("kubernetes-validate"),
        PipPackage::named("checkov"),
        PipPackage::named("jsonschema"),
        PipPackage {
            package: "pyyaml",
            module: "yaml",
        },
    ])?;
    for tool in ["kubernetes-validate", "checkov"] {
        ensure!(
            find_tool(tool).is_some(),
            "`{tool}` is not on PATH after `pip install`; add pip's script directory to PATH"
        );
    }
    Ok(())
}

/// Plays the whole Kubernetes story against the release host binary, without a cluster:
/// every kustomization's spin.toml in the README's order (base → canary → promote →
/// blue-green → switch → back to base), each delivered the way kubelet updates a ConfigMap
/// volume (new timestamped directory, atomic `..data` swap, old directory removed), with the
/// modules pushed (`fnhost push`, as k8s/README.md says) to a registry on loopback (Debian's
/// `docker-registry`) and pulled from it by digest. After each update it waits (≤ 30 s) for
/// the new state and checks which version serves: labels, canary share (10% ±), stickiness,
/// pinned blue/green access, and pi's digits.
///
/// The committed spin.toml files pin the modules that were published; this points each
/// registry source at the loopback registry and at the module built now (same name, its
/// digest as the tag's), so it tests the manifests' behaviour, not the pins.
pub fn flows(root: &Path) -> Result<()> {
    let fnhost = release_fnhost()?;
    let scratch = devkit::TempDir::new("k8s-flows");
    let work = scratch.path();
    let registry = Registry::start(&work.join("registry"), "")?;
    let wasm = wasm_dir();
    let mut built = Vec::new();
    for stem in MODULE_STEMS {
        let file = wasm.join(format!("{stem}.wasm"));
        ensure!(
            file.is_file(),
            "{} is missing: build the modules first (`cargo xtask build`)",
            file.display()
        );
        let sha = sha256_file(&file)?;
        let reference = format!("{}/fnhost/{stem}:{}", registry.host(), &sha[..16]);
        let manifest = push_module(&fnhost, &file, &reference, false)?;
        println!("k8s flows: pushed {reference} (manifest {manifest})");
        built.push(Pushed {
            stem,
            reference,
            sha256: sha,
            manifest,
        });
    }
    let localize = |dir: &str| -> Result<String> {
        let path = root.join("k8s").join(dir).join("spin.toml");
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let mut out = String::new();
        for line in text.lines() {
            match line.split_once("source = { url = \"") {
                Some((indent, rest)) => {
                    let url = &rest[..rest.find('"').context("unterminated url")?];
                    let stem = pinned_module(url).map(|(stem, _)| stem);
                    let m = built
                        .iter()
                        .find(|b| Some(b.stem) == stem)
                        .with_context(|| {
                            format!("{}: no built module for {url}", path.display())
                        })?;
                    out += &format!(
                        "{indent}source = {{ url = \"oci://{}\", digest = \"sha256:{}\" }}\n",
                        m.reference, m.sha256
                    );
                }
                None => {
                    out += line;
                    out.push('\n');
                }
            }
        }
        Ok(out)
    };
    let models: Vec<(&str, Vec<u8>)> = ["models/iris/v1/model.json", "models/iris/v2/model.json"]
        .into_iter()
        .map(|m| Ok((m, fs::read(root.join("k8s/base").join(m))?)))
        .collect::<Result<_>>()?;

    let app = work.join("app");
    fs::create_dir_all(&app)?;
    kubelet_write(&app, 1, &localize("base")?, &models)?;
    let [addr, admin] = devkit::net::free_addrs::<2>().map(|a| a.to_string());
    let log = work.join("fnhost.log");
    let mut cmd = Command::new(&fnhost);
    cmd.arg("up")
        .arg("--manifest")
        .arg(app.join("spin.toml"))
        .args(["--listen", &addr, "--admin-listen", &admin])
        .arg("--cache-dir")
        .arg(work.join("cache"))
        .arg("--state-dir")
        .arg(work.join("state"))
        .env_remove("RUST_BACKTRACE");
    let mut host = Server::spawn("fnhost", &mut cmd, &log)?;
    let result = host
        .wait_http_ok(&addr, "/readyz", Duration::from_secs(120))
        .and_then(|_| {
            play(
                root,
                &app,
                &addr,
                &admin,
                &work.join("state"),
                &localize,
                &models,
                &built,
                &log,
            )
        });
    drop(host);
    drop(registry);
    match &result {
        Ok(()) => println!("k8s flows: passed"),
        Err(_) => {
            scratch.keep();
            println!("k8s flows: FAILED; fnhost's log: {}", log.display());
        }
    }
    result
}

/// A module the flows pushed to the loopback registry.
struct Pushed {
    stem: &'static str,
    /// `127.0.0.1:PORT/fnhost/<stem>:<16 hex>`.
    reference: String,
    sha256: String,
    /// The manifest digest `fnhost push` printed (`sha256:…`).
    manifest: String,
}

/// The testers' pin key the flows set through the admin API (any 16+ visible characters).
const FLOWS_PIN_KEY: &str = "k8s-flows-testers-pin-key";

#[allow(clippy::too_many_arguments)]
fn play(
    root: &Path,
    app: &Path,
    addr: &str,
    admin: &str,
    state_dir: &Path,
    localize: &dyn Fn(&str) -> Result<String>,
    models: &[(&str, Vec<u8>)],
    pushed: &[Pushed],
    log: &Path,
) -> Result<()> {
    let module = |stem: &str| pushed.iter().find(|p| p.stem == stem).unwrap();
    let sha = |stem: &str| module(stem).sha256.clone();
    let base = format!("http://{addr}");
    let pi = format!("{base}/api/v0/pi?ndigits=99");
    let iris = format!("{base}/api/v01/classify?{SETOSA_QUERY}");
    let http = Client::new(Duration::from_secs(10));
    let get = |url: &str, headers: &[(&str, &str)]| -> Result<Response> {
        http.request("GET", url, headers, None)
    };
    println!("k8s flows: base is served");
    // Pinning needs the component's pin key; an operator sets it with `fnhost pin-key` through
    // the port-forwarded admin API (k8s/README.md), as done here with the pod's admin token.
    let token = fs::read_to_string(state_dir.join("admin-token"))
        .context("reading the admin token fnhost wrote")?;
    let r = http.request(
        "POST",
        &format!("http://{admin}/v1/components/iris/pin-key"),
        &[("authorization", &format!("Bearer {}", token.trim()))],
        Some(FLOWS_PIN_KEY.as_bytes()),
    )?;
    ensure!(
        r.status == 200,
        "setting iris's pin key: HTTP {}: {}",
        r.status,
        r.text()
    );
    let pin: &[(&str, &str)] = &[
        ("fnhost-version-pin", "candidate"),
        ("fnhost-pin-key", FLOWS_PIN_KEY),
    ];

    // Every label of `n` requests must be `want`.
    let all = |url: &str, headers: &[(&str, &str)], n: usize, want: &str| -> Result<bool> {
        for _ in 0..n {
            let r = get(url, headers)?;
            ensure!(
                r.status == 200,
                "GET {url}: HTTP {}: {}",
                r.status,
                r.text()
            );
            if r.header("fnhost-version-label") != Some(want) {
                return Ok(false);
            }
        }
        Ok(true)
    };
    // Polls (≤ 30 s) until `state` holds, after a ConfigMap update.
    let settle = |what: &str, state: &dyn Fn() -> Result<bool>| -> Result<()> {
        let t = Instant::now();
        while !state()? {
            ensure!(
                t.elapsed() < Duration::from_secs(30),
                "{what}: not in effect 30 s after the ConfigMap update"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        println!(
            "k8s flows: {what}: in effect after {} ms",
            t.elapsed().as_millis()
        );
        Ok(())
    };

    settle("base (pi v1, iris model-v1)", &|| {
        Ok(all(&pi, &[], 20, "v1")? && all(&iris, &[], 20, "model-v1")?)
    })?;
    let r = get(&pi, &[])?;
    check_pi(root, &r, 99)?;
    ensure!(
        r.header("fnhost-version") == Some(&format!("pi@{}", &sha("pi_picrunch")[..8])),
        "pi v1 is {:?}, expected pi@{} (pi_picrunch)",
        r.header("fnhost-version"),
        &sha("pi_picrunch")[..8]
    );
    // The tag was resolved once, at load, to the manifest `fnhost push` printed: status shows
    // the pinned reference, so a tag moved later changes nothing until spin.toml changes.
    let r = http.request(
        "GET",
        &format!("http://{admin}/v1/status"),
        &[("authorization", &format!("Bearer {}", token.trim()))],
        None,
    )?;
    ensure!(r.status == 200, "GET /v1/status: HTTP {}", r.status);
    let status: Status = serde_json::from_slice(&r.body).context("GET /v1/status")?;
    let shown = status
        .component("pi")
        .and_then(|c| c.current.as_ref())
        .map(|v| v.source.as_str());
    let picrunch = module("pi_picrunch");
    let want = format!(
        "oci://{}@{} (sha256:{})",
        picrunch.reference, picrunch.manifest, picrunch.sha256
    );
    ensure!(
        shown == Some(want.as_str()),
        "status shows pi's source as {shown:?}, expected the pushed manifest {want}"
    );
    println!(
        "k8s flows: status pins pi's tag to the pushed manifest {}",
        picrunch.manifest
    );

    kubelet_write(app, 2, &localize("overlays/canary")?, models)?;
    settle("canary (pi v2 loaded as candidate)", &|| {
        all(&pi, pin, 1, "v2")
    })?;
    let mut v2 = 0;
    for _ in 0..400 {
        let r = get(&pi, &[])?;
        check_pi(root, &r, 99).context("canary")?;
        match r.header("fnhost-version-label") {
            Some("v2") => v2 += 1,
            Some("v1") => {}
            other => bail!("canary: served by {other:?}"),
        }
    }
    // 10% of 400 = 40; the bounds are more than 4 standard deviations (6) away.
    ensure!(
        (15..=65).contains(&v2),
        "canary: {v2} of 400 requests went to v2, expected about 40 (10%)"
    );
    println!("k8s flows: canary: {v2} of 400 requests served by v2");
    for user in 0..20 {
        let h = [("x-user", format!("user-{user}"))];
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let first = get(&pi, &h)?
            .header("fnhost-version-label")
            .map(str::to_string);
        for _ in 0..4 {
            let again = get(&pi, &h)?
                .header("fnhost-version-label")
                .map(str::to_string);
            ensure!(
                again == first,
                "canary: x-user user-{user} got {first:?} then {again:?} (not sticky)"
            );
        }
    }
    println!("k8s flows: canary: sticky per x-user");

    kubelet_write(app, 3, &localize("overlays/canary/promote")?, models)?;
    settle("promote (pi v2 only)", &|| all(&pi, &[], 40, "v2"))?;
    check_pi(root, &get(&pi, &[])?, 99)?;

    // A broken update (the digest does not match the module at the URL, nor anything cached)
    // is refused and the serving configuration stays.
    let wrong = sha256_hex(b"fnhost k8s flows: not the module");
    let broken = localize("overlays/canary/promote")?.replace(&sha("pi_chudnovsky"), &wrong);
    kubelet_write(app, 4, &broken, models)?;
    let t = Instant::now();
    while !fs::read_to_string(log)?.contains("digest mismatch") {
        ensure!(
            t.elapsed() < Duration::from_secs(30),
            "a spin.toml whose digest does not match the module was not reported as a digest mismatch"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    ensure!(
        all(&pi, &[], 40, "v2")?,
        "after a refused update pi is no longer v2"
    );
    println!("k8s flows: a digest mismatch is refused; pi v2 keeps serving");

    kubelet_write(app, 5, &localize("overlays/blue-green")?, models)?;
    settle("blue-green (iris model-v2 staged)", &|| {
        all(&iris, pin, 1, "model-v2")
    })?;
    ensure!(
        all(&iris, &[], 40, "model-v1")?,
        "blue-green: unpinned requests reached the staged model-v2"
    );
    ensure!(all(&pi, &[], 20, "v2")?, "blue-green: pi is no longer v2");
    check_setosa(&get(&iris, pin)?).context("model-v2")?;

    kubelet_write(app, 6, &localize("overlays/blue-green/switch")?, models)?;
    settle("switch (iris model-v2 serves, model-v1 staged)", &|| {
        Ok(all(&iris, &[], 40, "model-v2")? && all(&iris, pin, 1, "model-v1")?)
    })?;

    kubelet_write(app, 7, &localize("base")?, models)?;
    settle(
        "roll back to base (pi v1, iris model-v1, no candidates)",
        &|| {
            Ok(all(&pi, &[], 20, "v1")?
                && all(&pi, pin, 1, "v1")?
                && all(&iris, &[], 20, "model-v1")?
                && all(&iris, pin, 1, "model-v1")?)
        },
    )?;
    check_pi(root, &get(&pi, &[])?, 99)?;
    Ok(())
}
