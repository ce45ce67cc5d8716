//! Kubernetes manifests under `k8s/`: writing their spin.toml files from the built modules, and
//! validating every kustomization offline.
//!
//! * [`manifests`] (`cargo xtask k8s-manifests --modules-url URL`): hashes the built modules
//!   (`target/wasm32-wasip2/release/{pi_picrunch,pi_chudnovsky,iris}.wasm`), stages them for
//!   upload under content-addressed names (`target/k8s-modules/<name>-<16 hex>.wasm`), copies
//!   the iris models (`models/iris/v{1,2}/model.json`) into `k8s/base/models/`, and writes the
//!   spin.toml of the base and of every overlay step with `source = { url, digest }` sources.
//! * [`validate`] (`cargo xtask k8s-validate`): for the base and every overlay, `kubectl
//!   kustomize`, `kubernetes-validate --strict` (Kubernetes 1.30 and the validator's newest),
//!   `checkov`, then `k8s/checks.py` (cross-checks, spin.toml against Spin's JSON schema).
//!   Needs no cluster.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

use crate::image::{capture, on_path, run, sha256_file, target_dir};

/// Every kustomization, relative to `k8s/`; the first is the base.
pub const KUSTOMIZATIONS: &[&str] = &[
    "base",
    "overlays/canary",
    "overlays/canary/promote",
    "overlays/blue-green",
    "overlays/blue-green/switch",
];

/// Spin's manifest schema, beside the repository (`../shared/spec/` from its root).
const SCHEMA: &str = "../shared/spec/spin-manifest-v2.schema.json";
/// Kubernetes versions the rendered objects are validated against ("" = the validator's newest).
const KUBE_VERSIONS: &[&str] = &["1.30.0", ""];

/// Writes every kustomization's spin.toml with modules served from `modules_url`.
pub fn manifests(root: &Path, modules_url: &str) -> Result<()> {
    let base_url = modules_url.trim_end_matches('/');
    ensure!(
        base_url.starts_with("https://") || base_url.starts_with("http://"),
        "--modules-url must be an http(s) URL, got {modules_url:?}"
    );
    if base_url.starts_with("http://") {
        println!("k8s-manifests: warning: {base_url} is plain http; k8s/base/networkpolicy.yaml allows egress on 443 only");
    }
    let wasm = target_dir(root).join("wasm32-wasip2/release");
    let staged = target_dir(root).join("k8s-modules");
    if staged.exists() {
        fs::remove_dir_all(&staged)?;
    }
    fs::create_dir_all(&staged)?;
    let module = |stem: &str| -> Result<Module> {
        let file = wasm.join(format!("{stem}.wasm"));
        ensure!(
            file.is_file(),
            "{} is missing: build the modules first (`cargo xtask build`)",
            file.display()
        );
        let sha256 = sha256_file(&file)?;
        let name = format!("{stem}-{}.wasm", &sha256[..16]);
        fs::copy(&file, staged.join(&name))?;
        println!("k8s-manifests: {} sha256:{sha256}", file.display());
        Ok(Module {
            url: format!("{base_url}/{name}"),
            sha256,
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

    for step in STEPS {
        let path = k8s.join(step.dir).join("spin.toml");
        fs::write(&path, render(step, &modules, modules_url))
            .with_context(|| format!("writing {}", path.display()))?;
        println!("k8s-manifests: wrote {}", path.display());
    }
    println!(
        "k8s-manifests: upload the files in {} to {base_url}/ (same names; they are content-addressed, never overwrite one), then `kubectl apply -k k8s/...`",
        staged.display()
    );
    Ok(())
}

struct Module {
    url: String,
    sha256: String,
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

fn render(step: &Step, m: &Modules, modules_url: &str) -> String {
    let mut s = format!(
        "# Generated by `cargo xtask k8s-manifests --modules-url {modules_url}` from the\n\
         # modules built in target/wasm32-wasip2/release (digests are their sha256). Rerun it\n\
         # instead of editing; `cargo xtask k8s-validate` checks the result.\n\
         # State: {}.\n\
         spin_manifest_version = 2\n\n\
         [application]\n\
         name = \"fnhost-functions\"\n\
         version = \"0.1.0\"\n\
         description = \"pi digits and iris classification, served by fnhost on Kubernetes\"\n\n\
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
        "[component.pi]\nsource = {}\n\n[component.pi.tool.fnhost]\nlabel = \"{pi_label}\"\n\n",
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
        on_path("kubectl"),
        "kubectl is not on PATH (it renders the kustomizations: `kubectl kustomize`)"
    );
    ensure!(on_path("python3"), "python3 is not on PATH");
    let schema = root.join(SCHEMA);
    ensure!(
        schema.is_file(),
        "Spin's manifest schema {} is missing ({SCHEMA} from the repository root)",
        schema.display()
    );
    ensure_python_tools()?;

    let out = std::env::temp_dir().join(format!("fnhost-k8s-validate-{}", std::process::id()));
    if out.exists() {
        fs::remove_dir_all(&out)?;
    }
    fs::create_dir_all(&out)?;
    let result = validate_into(root, &schema, &out);
    match &result {
        Ok(()) => fs::remove_dir_all(&out)?,
        Err(_) => println!("k8s-validate: rendered manifests kept in {}", out.display()),
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
        println!("k8s-validate: k8s/{dir} -> {}", file.display());
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

    if !failures.is_empty() {
        bail!("k8s-validate failed:\n  {}", failures.join("\n  "));
    }
    println!("k8s-validate: {} kustomizations rendered and passed kubernetes-validate, checkov and the cross-checks", rendered.len());
    Ok(())
}

/// The model copies in k8s/base/models must be the repository's models (when those exist).
fn check_models(root: &Path, failures: &mut Vec<String>) {
    for v in ["v1", "v2"] {
        let repo = root.join(format!("models/iris/{v}/model.json"));
        let copy = root.join(format!("k8s/base/models/iris/{v}/model.json"));
        match (fs::read(&repo), fs::read(&copy)) {
            (Ok(a), Ok(b)) if a != b => failures.push(format!(
                "{} differs from {}: rerun `cargo xtask k8s-manifests --modules-url URL`",
                copy.display(),
                repo.display()
            )),
            (_, Err(e)) => failures.push(format!("{}: {e}", copy.display())),
            _ => {}
        }
    }
}

/// `pip install`s what is missing of kubernetes-validate, checkov, jsonschema and PyYAML.
fn ensure_python_tools() -> Result<()> {
    let mut missing = Vec::new();
    for (tool, pkg) in [
        ("kubernetes-validate", "kubernetes-validate"),
        ("checkov", "checkov"),
    ] {
        if !on_path(tool) {
            missing.push(pkg);
        }
    }
    for (module, pkg) in [("jsonschema", "jsonschema"), ("yaml", "pyyaml")] {
        let ok = Command::new("python3")
            .args(["-c", &format!("import {module}")])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            missing.push(pkg);
        }
    }
    if !missing.is_empty() {
        run(Command::new("python3")
            .args(["-m", "pip", "install", "--quiet"])
            .args(&missing))?;
    }
    for tool in ["kubernetes-validate", "checkov"] {
        ensure!(
            on_path(tool),
            "`{tool}` is not on PATH after `pip install`; add pip's script directory to PATH"
        );
    }
    Ok(())
}
