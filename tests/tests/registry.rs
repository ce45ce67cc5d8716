//! Modules from an OCI registry, against a real one: Distribution (Debian's `docker-registry`,
//! 2.8) started by each test on a free 127.0.0.1 port with its own config file and storage
//! directory, and stopped by PID. `fnhost push` / `fnhost pull`; Spin's registry source and the
//! pinned `oci://` form served; a moved tag changing nothing until the manifest changes; every
//! registry error a clear load error with the old version still serving; basic auth with
//! credentials from a Docker config file; the registry stopped during a load.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use e2e::{fnhost_bin, send, wait_until, wasm, Client, Host, Reply, Start, TempDir, TOKEN};
use sha2::{Digest, Sha256};

/// The registry launcher: one Distribution process with its own config and storage.
mod registry {
    use super::*;

    const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

    /// devkit's launcher (config, storage, start and stop by PID), with the registry API
    /// calls the tests make.
    pub struct Registry {
        process: devkit::registry::Registry,
        /// Holds the config, the storage and the logs; removed last.
        _dir: TempDir,
        agent: Client,
        /// `user:password` for the registry's own API calls, when it has basic auth.
        basic: Option<String>,
    }

    impl Registry {
        /// A registry with anonymous access.
        pub fn start() -> Registry {
            Registry::launch(None)
        }

        /// A registry with htpasswd (bcrypt) basic auth for one user.
        pub fn start_with_user(user: &str, password: &str) -> Registry {
            Registry::launch(Some((user, password)))
        }

        fn launch(user: Option<(&str, &str)>) -> Registry {
            let dir = TempDir::new("registry");
            let auth = match user {
                Some((u, p)) => {
                    let hash = bcrypt::hash(p, 5).unwrap();
                    let htpasswd = dir.write("htpasswd", format!("{u}:{hash}\n"));
                    format!(
                        "auth:\n  htpasswd:\n    realm: fnhost-test\n    path: {}\n",
                        htpasswd.display()
                    )
                }
                None => String::new(),
            };
            let process = devkit::registry::Registry::start(dir.path(), &auth)
                .unwrap_or_else(|e| panic!("{e:#}"));
            Registry {
                process,
                _dir: dir,
                agent: Client::new(Duration::from_secs(30)),
                basic: user.map(|(u, p)| format!("{u}:{p}")),
            }
        }

        /// Starts the process again (same port, same storage) and waits until it answers.
        pub fn run(&mut self) {
            self.process.run().unwrap_or_else(|e| panic!("{e:#}"));
        }

        /// Stops the process by its PID (SIGTERM, then SIGKILL) and reaps it.
        pub fn stop(&mut self) {
            self.process.stop().unwrap_or_else(|e| panic!("{e:#}"));
        }

        pub fn host(&self) -> String {
            self.process.host()
        }

        pub fn url(&self, path: &str) -> String {
            self.process.url(path)
        }

        fn call(
            &self,
            method: &str,
            url: &str,
            headers: &[(&str, &str)],
            body: Option<&[u8]>,
        ) -> Reply {
            let auth = self
                .basic
                .as_ref()
                .map(|b| format!("Basic {}", base64_encode(b.as_bytes())));
            let mut all: Vec<(&str, &str)> = headers.to_vec();
            if let Some(a) = &auth {
                all.push(("authorization", a.as_str()));
            }
            send(&self.agent, method, url, &all, body)
        }

        /// The registry's digest of a manifest (`Docker-Content-Digest`).
        pub fn manifest_digest(&self, repo: &str, reference: &str) -> String {
            let r = self.call(
                "HEAD",
                &self.url(&format!("/v2/{repo}/manifests/{reference}")),
                &[("accept", OCI_MANIFEST)],
                None,
            );
            assert_eq!(r.status, 200, "HEAD manifest {repo}:{reference}");
            r.header("docker-content-digest").unwrap().to_string()
        }

        pub fn manifest(&self, repo: &str, reference: &str) -> serde_json::Value {
            let r = self.call(
                "GET",
                &self.url(&format!("/v2/{repo}/manifests/{reference}")),
                &[("accept", OCI_MANIFEST)],
                None,
            );
            assert_eq!(
                r.status,
                200,
                "GET manifest {repo}:{reference}: {}",
                r.text()
            );
            r.json()
        }

        pub fn blob(&self, repo: &str, digest: &str) -> Vec<u8> {
            let r = self.call(
                "GET",
                &self.url(&format!("/v2/{repo}/blobs/{digest}")),
                &[],
                None,
            );
            assert_eq!(r.status, 200, "GET blob {digest}");
            r.body.clone()
        }

        /// Uploads a blob (monolithic) and returns its digest.
        fn put_blob(&self, repo: &str, bytes: &[u8]) -> String {
            let digest = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
            let r = self.call(
                "POST",
                &self.url(&format!("/v2/{repo}/blobs/uploads/")),
                &[],
                Some(b""),
            );
            assert_eq!(r.status, 202, "start upload: {}", r.text());
            let location = r.header("location").unwrap().to_string();
            let location = if location.starts_with('/') {
                self.url(&location)
            } else {
                location
            };
            let sep = if location.contains('?') { '&' } else { '?' };
            let r = self.call(
                "PUT",
                &format!("{location}{sep}digest={digest}"),
                &[("content-type", "application/octet-stream")],
                Some(bytes),
            );
            assert_eq!(r.status, 201, "finish upload: {}", r.text());
            digest
        }

        /// Writes an artifact by hand, `(media type, bytes)` for its config and its one layer,
        /// under `repo:tag`: for layouts `fnhost push` does not write.
        pub fn put_artifact(&self, tagged: &str, config: (&str, &[u8]), layer: (&str, &[u8])) {
            let (repo, tag) = tagged.rsplit_once(':').expect("repo:tag");
            let descriptor = |(media_type, bytes): (&str, &[u8])| {
                serde_json::json!({
                    "mediaType": media_type,
                    "digest": self.put_blob(repo, bytes),
                    "size": bytes.len(),
                })
            };
            let manifest = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": descriptor(config),
                "layers": [descriptor(layer)],
            });
            self.put_manifest(repo, tag, &manifest);
        }

        /// Writes an OCI image manifest under `tag`.
        fn put_manifest(&self, repo: &str, tag: &str, manifest: &serde_json::Value) {
            let body = serde_json::to_vec(manifest).unwrap();
            let r = self.call(
                "PUT",
                &self.url(&format!("/v2/{repo}/manifests/{tag}")),
                &[("content-type", OCI_MANIFEST)],
                Some(&body),
            );
            assert_eq!(r.status, 201, "PUT manifest: {}", r.text());
        }
    }

    /// Standard base64 (with padding), for Basic credentials and the Docker config's `auth`.
    pub fn base64_encode(bytes: &[u8]) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }
}

use registry::Registry;

fn sha_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn module(name: &str) -> (PathBuf, Vec<u8>) {
    let path = wasm(name);
    let bytes = std::fs::read(&path).unwrap();
    (path, bytes)
}

/// `fnhost ARGS` with `env`, and an empty Docker config unless `env` names another (so no
/// credentials of the machine's user leak in).
fn fnhost(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let empty = TempDir::new("docker-config-empty");
    let mut cmd = Command::new(fnhost_bin());
    cmd.args(args)
        .env("DOCKER_CONFIG", empty.path())
        .env_remove("FNHOST_REGISTRY_USERNAME")
        .env_remove("FNHOST_REGISTRY_PASSWORD")
        .env_remove("RUST_BACKTRACE")
        .env("FNHOST_ADMIN_TOKEN", TOKEN)
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running fnhost")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `fnhost push FILE REF`, which must succeed; answers the digest it printed.
fn push(file: &Path, reference: &str) -> String {
    let out = fnhost(&["push", file.to_str().unwrap(), reference], &[]);
    assert!(out.status.success(), "push {reference}: {}", stderr(&out));
    stdout(&out)
}

/// A manifest serving one component `app` on every path from `source`.
fn manifest(source: &str, app_tool: &str) -> String {
    format!(
        "spin_manifest_version = 2\n[application]\nname = \"registry\"\n[application.tool.fnhost]\n{app_tool}\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"app\"\n[component.app]\nsource = {source}\n"
    )
}

/// Spin's registry source for `fnhost:NAME` at `version`.
fn package(registry: &Registry, name: &str, version: &str) -> String {
    format!(
        "{{ registry = \"{}\", package = \"fnhost:{name}\", version = \"{version}\" }}",
        registry.host()
    )
}

/// fnhost serving `dir/spin.toml` with an empty Docker config (or `docker_config`).
fn start_host(dir: &TempDir, docker_config: Option<&Path>) -> Host {
    let empty = dir.join("docker-config-empty");
    std::fs::create_dir_all(&empty).unwrap();
    let config = docker_config.unwrap_or(&empty).display().to_string();
    let mut start = Start::new(dir.path());
    start.env = vec![("DOCKER_CONFIG".into(), config)];
    Host::try_start(start).unwrap_or_else(|e| panic!("{e}"))
}

/// `start_host`, once `/readyz` is 200.
fn start_ready(dir: &TempDir, docker_config: Option<&Path>) -> Host {
    let host = start_host(dir, docker_config);
    let ready = wait_until(Duration::from_secs(20), || {
        host.get("/readyz").status == 200
    });
    assert!(ready, "not ready: {}", host.log_text());
    host
}

/// `app@<short sha256>`: how the host names the version of these bytes.
fn version_name(module: &[u8]) -> String {
    format!("app@{}", &sha_hex(module)[..8])
}

fn version_of(host: &Host) -> String {
    let r = host.get("/hello");
    assert_eq!(r.status, 200, "{}", r.text());
    r.header("fnhost-version").unwrap().to_string()
}

fn app_status(host: &Host) -> serde_json::Value {
    let r = host.admin("GET", "/v1/components/app", None);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// Why component `app` did not load, from the admin status.
fn load_error(host: &Host) -> String {
    let status = app_status(host);
    status["load_error"]
        .as_str()
        .unwrap_or_else(|| panic!("no load_error: {status}"))
        .to_string()
}

/// Waits (bounded) until the host's log has `needle`; fails with the log otherwise.
fn wait_for_log(host: &Host, needle: &str) -> String {
    let found = wait_until(Duration::from_secs(30), || host.log_text().contains(needle));
    let log = host.log_text();
    assert!(found, "no {needle:?} in the log:\n{log}");
    log
}

/// The log line (warning) that holds `needle`.
fn log_line(log: &str, needle: &str) -> String {
    log.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn push_and_pull_round_trip_in_the_cncf_layout() {
    let registry = Registry::start();
    let (file, bytes) = module("pi_chudnovsky");
    let reference = format!("oci://{}/fnhost/pi:1.0.0", registry.host());

    let printed = push(&file, &reference);
    assert_eq!(printed, registry.manifest_digest("fnhost/pi", "1.0.0"));

    // The CNCF Wasm OCI Artifact layout: wasm config, one application/wasm layer.
    let m = registry.manifest("fnhost/pi", "1.0.0");
    assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.wasm.config.v0+json"
    );
    let layers = m["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0]["mediaType"], "application/wasm");
    let module_digest = format!("sha256:{}", sha_hex(&bytes));
    assert_eq!(layers[0]["digest"], module_digest.as_str());
    let config: serde_json::Value = serde_json::from_slice(
        &registry.blob("fnhost/pi", m["config"]["digest"].as_str().unwrap()),
    )
    .unwrap();
    assert_eq!(config["architecture"], "wasm");
    assert_eq!(config["os"], "wasip2");
    assert_eq!(config["layerDigests"], serde_json::json!([module_digest]));
    assert!(
        config["created"].as_str().is_some_and(|c| c.ends_with('Z')),
        "{config}"
    );
    let exports: Vec<&str> = config["component"]["exports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(
        exports
            .iter()
            .any(|e| e.starts_with("wasi:http/handler@0.3")),
        "{exports:?}"
    );
    assert!(!config["component"]["imports"]
        .as_array()
        .unwrap()
        .is_empty());

    // Pull by tag and by the printed digest: the same bytes.
    let out_dir = TempDir::new("pulled");
    for (what, source) in [
        ("tag", reference.clone()),
        (
            "digest",
            format!("oci://{}/fnhost/pi@{printed}", registry.host()),
        ),
    ] {
        let file = out_dir.join(format!("by-{what}.wasm"));
        let out = fnhost(&["pull", &source, "-o", file.to_str().unwrap()], &[]);
        assert!(out.status.success(), "pull by {what}: {}", stderr(&out));
        assert!(stdout(&out).contains(&printed), "{}", stdout(&out));
        assert!(
            std::fs::read(&file).unwrap() == bytes,
            "pulled by {what}: bytes differ"
        );
    }

    // Spin's layer type (what `spin registry push` writes for a component) is a module too.
    registry.put_artifact(
        "fnhost/spin-typed:1.0.0",
        ("application/vnd.fermyon.spin.application.v1+config", b"{}"),
        ("application/vnd.wasm.content.layer.v1+wasm", &bytes),
    );
    let file = out_dir.join("spin-typed.wasm");
    let source = format!("oci://{}/fnhost/spin-typed:1.0.0", registry.host());
    let out = fnhost(&["pull", &source, "-o", file.to_str().unwrap()], &[]);
    assert!(
        out.status.success(),
        "pull Spin's layer type: {}",
        stderr(&out)
    );
    assert!(
        std::fs::read(&file).unwrap() == bytes,
        "Spin's layer type: bytes differ"
    );

    // A core module is not a component: refused before anything is sent.
    let core = out_dir.write("core.wasm", b"\0asm\x01\0\0\0");
    let out = fnhost(&["push", core.to_str().unwrap(), &reference], &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not a WebAssembly component"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn registry_and_pinned_sources_are_served_with_their_resolved_digests() {
    let registry = Registry::start();
    let (hello, hello_bytes) = module("test_hello_p2");
    let hello_manifest = push(&hello, &format!("{}/fnhost/hello:1.0.0", registry.host()));
    let hello_sha = sha_hex(&hello_bytes);

    // Spin's registry source.
    let dir = TempDir::new("registry-source");
    dir.write(
        "spin.toml",
        manifest(&package(&registry, "hello", "1.0.0"), ""),
    );
    let host = start_ready(&dir, None);
    assert_eq!(version_of(&host), version_name(&hello_bytes));
    let current = &app_status(&host)["current"];
    assert_eq!(current["sha256"], hello_sha.as_str());
    assert_eq!(
        current["source"],
        format!(
            "oci://{}/fnhost/hello:1.0.0@{hello_manifest} (sha256:{hello_sha})",
            registry.host()
        )
        .as_str()
    );
    // `fnhost status` prints the same.
    let out = fnhost(&["status", "--admin", &host.admin.to_string()], &[]);
    assert!(
        stdout(&out).contains(&format!("fnhost/hello:1.0.0@{hello_manifest}")),
        "{}",
        stdout(&out)
    );
    drop(host);

    // The pinned form: nothing but the manifest digest in the URL, the module digest beside it.
    let pinned = format!(
        "{{ url = \"oci://{}/fnhost/hello@{hello_manifest}\", digest = \"sha256:{hello_sha}\" }}",
        registry.host()
    );
    let dir = TempDir::new("pinned-source");
    dir.write("spin.toml", manifest(&pinned, ""));
    let host = start_ready(&dir, None);
    assert_eq!(version_of(&host), version_name(&hello_bytes));
    assert_eq!(
        app_status(&host)["current"]["source"],
        format!(
            "oci://{}/fnhost/hello@{hello_manifest} (sha256:{hello_sha})",
            registry.host()
        )
        .as_str()
    );

    // The admin API and CLI take a reference instead of a file.
    let (pi, pi_bytes) = module("pi_chudnovsky");
    let pi_manifest = push(&pi, &format!("{}/fnhost/pi:2.0.0", registry.host()));
    let out = fnhost(
        &[
            "deploy",
            "--admin",
            &host.admin.to_string(),
            "app",
            &format!("oci://{}/fnhost/pi:2.0.0", registry.host()),
            "--label",
            "v2",
        ],
        &[],
    );
    assert!(out.status.success(), "deploy oci://: {}", stderr(&out));
    let pi_sha = sha_hex(&pi_bytes);
    let status = app_status(&host);
    assert_eq!(status["current"]["sha256"], pi_sha.as_str());
    assert_eq!(
        status["current"]["source"],
        format!(
            "oci://{}/fnhost/pi:2.0.0@{pi_manifest} (sha256:{pi_sha})",
            registry.host()
        )
        .as_str()
    );
    let r = host.get("/api/v0/pi?ndigits=5");
    assert_eq!((r.status, r.json()["pi"].as_str()), (200, Some("3.14159")));
}

#[test]
fn a_moved_tag_changes_nothing_until_the_manifest_changes() {
    let registry = Registry::start();
    let (v1, v1_bytes) = module("pi_picrunch");
    let (v2, v2_bytes) = module("pi_chudnovsky");
    let tag = format!("{}/fnhost/pi:1.0.0", registry.host());
    push(&v1, &tag);
    let (v1_name, v2_name) = (version_name(&v1_bytes), version_name(&v2_bytes));

    let dir = TempDir::new("moved-tag");
    let text = manifest(
        &package(&registry, "pi", "1.0.0"),
        "request_timeout = \"30s\"",
    );
    dir.write("spin.toml", &text);
    let host = start_ready(&dir, None);
    assert_eq!(version_of(&host), v1_name);

    // The tag moves to v2 in the registry.
    push(&v2, &tag);
    // Manifest changes that leave the component's source alone (an application setting, a
    // comment) do not resolve the tag again: the serving version stays.
    dir.write("spin.toml", text.replace("\"30s\"", "\"20s\""));
    std::thread::sleep(Duration::from_secs(3));
    dir.write(
        "spin.toml",
        text.replace("\"30s\"", "\"25s\"") + "# touched\n",
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        version_of(&host),
        v1_name,
        "a moved tag changed the serving version"
    );
    assert!(
        app_status(&host)["current"]["source"]
            .as_str()
            .unwrap()
            .contains(&sha_hex(&v1_bytes)),
        "the status still names what the tag resolved to at load"
    );

    // A change of the component's entry loads it again, and the tag is resolved anew.
    dir.write(
        "spin.toml",
        text + "[component.app.tool.fnhost]\nlabel = \"retagged\"\n",
    );
    assert!(
        wait_until(Duration::from_secs(20), || version_of(&host) == v2_name),
        "{}",
        host.log_text()
    );
}

#[test]
fn registry_errors_are_clear_load_errors_and_the_serving_version_stays() {
    let registry = Registry::start();
    let (hello, hello_bytes) = module("test_hello_p2");
    let (pi, _) = module("pi_picrunch");
    push(&hello, &format!("{}/fnhost/hello:1.0.0", registry.host()));
    push(&pi, &format!("{}/fnhost/big:1.0.0", registry.host()));
    // An image that is not a Wasm artifact: a tar layer and an image config.
    registry.put_artifact(
        "fnhost/image:1.0.0",
        (
            "application/vnd.oci.image.config.v1+json",
            br#"{"architecture":"amd64","os":"linux"}"#,
        ),
        (
            "application/vnd.oci.image.layer.v1.tar+gzip",
            b"not a tarball, but typed as one",
        ),
    );

    // hello (121 KB) fits in max_module_size; pi (447 KB) does not.
    let app_tool = "max_module_size = \"300KiB\"";
    let dir = TempDir::new("registry-errors");
    dir.write(
        "spin.toml",
        manifest(&package(&registry, "hello", "1.0.0"), app_tool),
    );
    let host = start_ready(&dir, None);
    let v1 = version_name(&hello_bytes);
    assert_eq!(version_of(&host), v1);

    let wrong = "0".repeat(64);
    let host_name = registry.host();
    let cases: [(String, String, &str); 4] = [
        (
            package(&registry, "hello", "9.9.9"),
            format!("oci://{host_name}/fnhost/hello:9.9.9"),
            "not found",
        ),
        (
            format!(
                "{{ url = \"oci://{host_name}/fnhost/hello:1.0.0\", digest = \"sha256:{wrong}\" }}"
            ),
            format!("oci://{host_name}/fnhost/hello:1.0.0"),
            "digest mismatch",
        ),
        (
            package(&registry, "image", "1.0.0"),
            format!("oci://{host_name}/fnhost/image:1.0.0"),
            "wrong media type",
        ),
        (
            package(&registry, "big", "1.0.0"),
            format!("oci://{host_name}/fnhost/big:1.0.0"),
            "too large",
        ),
    ];
    for (source, reference, problem) in &cases {
        dir.write("spin.toml", manifest(source, app_tool));
        let log = wait_for_log(&host, problem);
        let line = log_line(&log, problem);
        assert!(
            line.contains(reference.as_str()),
            "{problem}: the error names no reference: {line}"
        );
        assert!(line.contains("the serving version stays"), "{line}");
        assert_eq!(
            version_of(&host),
            v1,
            "{problem}: the serving version changed"
        );
    }

    // The same errors through the admin API: 422 with the reason, nothing changes.
    let r = host.admin(
        "POST",
        &format!("/v1/components/app/deploy?oci=oci://{host_name}/fnhost/big:1.0.0"),
        None,
    );
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.error().contains("too large"), "{}", r.error());
    assert_eq!(version_of(&host), v1);
}

#[test]
fn basic_auth_with_credentials_from_a_docker_config_file() {
    let registry = Registry::start_with_user("fnhost-ci", "s3cret-pass");
    let (hello, hello_bytes) = module("test_hello_p2");
    let reference = format!("{}/fnhost/hello:1.0.0", registry.host());

    // Without credentials: refused, and said so.
    let out = fnhost(&["push", hello.to_str().unwrap(), &reference], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("unauthorized"), "{}", stderr(&out));

    // With the Docker config file's `auths` entry for this registry.
    let docker = TempDir::new("docker-config");
    docker.write(
        "config.json",
        serde_json::json!({
            "auths": { registry.host(): { "auth": registry::base64_encode(b"fnhost-ci:s3cret-pass") } }
        })
        .to_string(),
    );
    let out = fnhost(
        &["push", hello.to_str().unwrap(), &reference],
        &[("DOCKER_CONFIG", docker.path())],
    );
    assert!(
        out.status.success(),
        "push with credentials: {}",
        stderr(&out)
    );
    assert_eq!(
        stdout(&out),
        registry.manifest_digest("fnhost/hello", "1.0.0")
    );

    // A host without credentials: not ready, with the reason in its admin status (public
    // answers never say why).
    let dir = TempDir::new("auth-host");
    dir.write(
        "spin.toml",
        manifest(&package(&registry, "hello", "1.0.0"), ""),
    );
    let host = start_host(&dir, None);
    assert_eq!(host.get("/readyz").status, 503);
    let error = load_error(&host);
    assert!(error.contains("unauthorized"), "{error}");
    assert!(error.contains(&format!("oci://{reference}")), "{error}");
    drop(host);

    // With the Docker config file: served.
    let host = start_ready(&dir, Some(docker.path()));
    assert_eq!(version_of(&host), version_name(&hello_bytes));

    // Credentials from the environment work as well (pull).
    let out_dir = TempDir::new("auth-pull");
    let file = out_dir.join("hello.wasm");
    let mut cmd = Command::new(fnhost_bin());
    let out = cmd
        .args(["pull", &reference, "-o", file.to_str().unwrap()])
        .env("DOCKER_CONFIG", out_dir.path())
        .env("FNHOST_REGISTRY_USERNAME", "fnhost-ci")
        .env("FNHOST_REGISTRY_PASSWORD", "s3cret-pass")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pull with env credentials: {}",
        stderr(&out)
    );
    assert!(std::fs::read(&file).unwrap() == hello_bytes);
}

#[test]
fn a_registry_stopped_during_a_load_keeps_the_old_version_until_it_is_back() {
    let mut registry = Registry::start();
    let (v1, v1_bytes) = module("pi_picrunch");
    let (v2, v2_bytes) = module("pi_chudnovsky");
    push(&v1, &format!("{}/fnhost/pi:1.0.0", registry.host()));
    push(&v2, &format!("{}/fnhost/pi:1.0.1", registry.host()));
    let (v1_name, v2_name) = (version_name(&v1_bytes), version_name(&v2_bytes));

    let dir = TempDir::new("registry-down");
    dir.write(
        "spin.toml",
        manifest(&package(&registry, "pi", "1.0.0"), ""),
    );
    let host = start_ready(&dir, None);
    assert_eq!(version_of(&host), v1_name);

    // The registry stops; the manifest asks for 1.0.1: refused for now, v1 keeps serving.
    registry.stop();
    dir.write(
        "spin.toml",
        manifest(&package(&registry, "pi", "1.0.1"), ""),
    );
    let log = wait_for_log(&host, "unreachable");
    let line = log_line(&log, "unreachable");
    assert!(
        line.contains(&format!("oci://{}/fnhost/pi:1.0.1", registry.host())),
        "{line}"
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        assert_eq!(version_of(&host), v1_name);
        std::thread::sleep(Duration::from_millis(100));
    }

    // Back: the load is retried by itself and succeeds (no further manifest event).
    registry.run();
    assert!(
        wait_until(Duration::from_secs(40), || version_of(&host) == v2_name),
        "{}",
        host.log_text()
    );
    drop(host);

    // At start-up: not ready while the registry is down, ready once it is back.
    registry.stop();
    let dir = TempDir::new("registry-down-at-start");
    dir.write(
        "spin.toml",
        manifest(&package(&registry, "pi", "1.0.1"), ""),
    );
    let host = start_host(&dir, None);
    assert_eq!(host.get("/readyz").status, 503);
    let error = load_error(&host);
    assert!(error.contains("unreachable"), "{error}");
    registry.run();
    assert!(
        wait_until(Duration::from_secs(40), || host.get("/readyz").status
            == 200),
        "{}",
        host.log_text()
    );
    assert_eq!(version_of(&host), v2_name);
}
