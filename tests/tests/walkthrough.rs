//! README.md's "From a notebook to an endpoint", run as written: the first `sh` block of that
//! section is read from the README (so the two cannot drift) and run by `sh -e` against the
//! real host serving the repository's `spin.toml`, with the admin CLI of the built binary.
//!
//! What differs from a terminal is only where things are: the block runs in a scratch copy of
//! the repository's `spin.toml` and `models/` (step 1 rewrites `models/iris/onnx`), with
//! `target/` and `functions/` linked in; the host listens on a free loopback port, which
//! replaces `localhost:3000` in the commands; the CLI finds the admin address and token in
//! `FNHOST_ADMIN` and `FNHOST_ADMIN_TOKEN`, as documented.

use std::path::Path;
use std::process::Command;

use e2e::{onnx_compiled_cache, root, Host, Start, TempDir, TOKEN};

const SECTION: &str = "## From a notebook to an endpoint";

/// The first ```sh block after the section heading.
fn walkthrough_commands(readme: &str) -> String {
    let section = readme
        .split_once(SECTION)
        .unwrap_or_else(|| panic!("README.md has no section `{SECTION}`"))
        .1;
    let block = section
        .split_once("```sh\n")
        .expect("the section has a ```sh block")
        .1;
    block
        .split_once("```")
        .expect("the block is closed")
        .0
        .to_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let dest = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &dest);
        } else {
            std::fs::copy(&path, &dest).unwrap();
        }
    }
}

#[test]
fn the_notebook_to_endpoint_walkthrough_runs_as_written() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let commands = walkthrough_commands(&readme);
    assert!(commands.contains("localhost:3000"), "{commands}");
    // The Python environment the README names.
    let python = onnx_venv::ensure(&root(), &devkit::workspace::target_dir())
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(python.ends_with("target/venv-sklearn/bin/python"));

    let dir = TempDir::new("walkthrough");
    dir.write(
        "spin.toml",
        std::fs::read_to_string(root().join("spin.toml")).unwrap(),
    );
    copy_dir(&root().join("models"), &dir.join("models"));
    // The model step 1 must produce: moved away, so the test sees it written anew.
    let shipped = std::fs::read(dir.join("models/iris/onnx/model.onnx")).unwrap();
    std::fs::remove_dir_all(dir.join("models/iris/onnx")).unwrap();
    for linked in ["target", "functions"] {
        std::os::unix::fs::symlink(root().join(linked), dir.join(linked)).unwrap();
    }

    let mut opts = Start::new(dir.path());
    opts.cache_dir = Some(onnx_compiled_cache());
    let host = Host::try_start(opts).unwrap_or_else(|e| panic!("{e}"));
    let before = host.get("/api/v01/classify?sl=5.9&sw=3&pl=5.1&pw=1.8");
    assert_eq!(
        before.json()["model"],
        "iris-logreg@1",
        "linfa serves first"
    );

    let script = commands.replace("localhost:3000", &host.addr.to_string());
    let out = Command::new("sh")
        .args(["-e", "-c", &script])
        .current_dir(dir.path())
        .env("FNHOST_ADMIN", host.admin.to_string())
        .env("FNHOST_ADMIN_TOKEN", TOKEN)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the walkthrough failed:\n{stdout}\n{}\n--- host log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        host.log_text()
    );

    // Step 1 trained and exported the very model the repository ships (deterministic export).
    assert_eq!(
        std::fs::read(dir.join("models/iris/onnx/model.onnx")).unwrap(),
        shipped
    );
    // Step 3: during the canary both models answered, the linfa one for most users.
    let count = |model: &str| -> u32 {
        stdout
            .lines()
            .find(|l| l.trim_end().ends_with(&format!("\"model\":\"{model}\"")))
            .and_then(|l| l.split_whitespace().next())
            .map_or(0, |n| n.parse().unwrap())
    };
    let (linfa, sklearn) = (count("iris-logreg@1"), count("iris-logistic-regression@1"));
    assert_eq!(linfa + sklearn, 60, "{stdout}");
    assert!(
        sklearn >= 1 && linfa > sklearn,
        "canary split {linfa}/{sklearn}:\n{stdout}"
    );
    // Step 4: promoted, the scikit-learn model answers everyone, with the iris contract.
    let last = stdout.lines().last().unwrap();
    let answer: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(answer["model"], "iris-logistic-regression@1", "{stdout}");
    assert_eq!(answer["species"], "Iris virginica");
    for i in 0..20 {
        let r = host.request(
            "GET",
            "/api/v01/classify?sl=5.9&sw=3&pl=5.1&pw=1.8",
            &[("x-user", &format!("u{i}"))],
            None,
        );
        assert_eq!(r.json()["model"], "iris-logistic-regression@1");
    }
}
