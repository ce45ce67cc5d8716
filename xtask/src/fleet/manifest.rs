//! What the fleet should serve and what a replica says it serves: the desired state the rig
//! writes into the ConfigMap as `spin.toml` (modules from the registry, Spin's registry
//! source), and the part of `GET /v1/status` convergence is judged on.

use std::fmt::Write as _;

use serde::Deserialize;

/// One version of a component: a package version in the registry, a label, and for iris the
/// model directory (in the ConfigMap) it is granted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Release {
    /// `fnhost:<package>` in the registry (`127.0.0.1:PORT/fnhost/<package>:<version>`).
    pub package: &'static str,
    pub version: &'static str,
    pub label: &'static str,
    pub model: Option<&'static str>,
}

pub const PI_V1: Release = Release {
    package: "pi",
    version: "1.0.0",
    label: "v1",
    model: None,
};
pub const PI_V2: Release = Release {
    package: "pi",
    version: "2.0.0",
    label: "v2",
    model: None,
};
/// The test-faults component as a pi candidate: the load of the guard scenario asks for
/// `/api/v0/pi/trap`, which pi answers and this one traps on.
pub const PI_FAULTY: Release = Release {
    package: "faults",
    version: "1.0.0",
    label: "faulty",
    model: None,
};
pub const IRIS_V1: Release = Release {
    package: "iris",
    version: "1.0.0",
    label: "model-v1",
    model: Some("models/iris/v1"),
};
pub const IRIS_V2: Release = Release {
    package: "iris",
    version: "1.0.0",
    label: "model-v2",
    model: Some("models/iris/v2"),
};

/// A candidate version beside the current one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    pub release: Release,
    /// Percent of traffic; 0 = staged (reachable only with `fnhost-version-pin: candidate`).
    pub weight: f64,
    /// Users stick to a version by their `x-user` header.
    pub sticky: bool,
    /// The guard: weight → 0 when more than 5% of the last 20 responses are 5xx.
    pub guarded: bool,
}

impl Candidate {
    pub fn staged(release: Release) -> Candidate {
        Candidate {
            release,
            weight: 0.0,
            sticky: false,
            guarded: false,
        }
    }
}

/// One component's desired state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Component {
    pub current: Release,
    pub candidate: Option<Candidate>,
}

impl Component {
    pub fn only(current: Release) -> Component {
        Component {
            current,
            candidate: None,
        }
    }
}

/// The fleet's desired state: what the ConfigMap's spin.toml says.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Desired {
    pub pi: Component,
    pub iris: Component,
}

/// The guard every guarded candidate gets.
/// The key pinned requests carry (`fnhost-pin-key`): pinning needs one; a rehearsal value.
pub const PIN_KEY: &str = "fleet-rehearsal-testers-pin-key";
pub const GUARD_MAX_ERROR_RATE: f64 = 0.05;
pub const GUARD_WINDOW: u32 = 20;

impl Desired {
    /// `spin.toml` with every module from `registry` (`HOST:PORT`).
    pub fn render(&self, registry: &str) -> String {
        let mut s = String::from(
            r#"# Written by `cargo xtask fleet`: the ConfigMap every replica mounts at /app.
spin_manifest_version = 2

[application]
name = "fnhost-fleet"
version = "0.1.0"

# A wildcard, so that the guard scenario can ask the test-faults candidate to trap
# (/api/v0/pi/trap); pi answers every path under it alike.
[[trigger.http]]
route = "/api/v0/pi/..."
component = "pi"

[[trigger.http]]
route = "/api/v01/classify"
component = "iris"
"#,
        );
        for (name, c) in [("pi", &self.pi), ("iris", &self.iris)] {
            let _ = write!(s, "\n[component.{name}]\n");
            release_keys(&mut s, &c.current, registry);
            let _ = write!(
                s,
                "\n[component.{name}.tool.fnhost]\nlabel = \"{}\"\npin_key = \"{PIN_KEY}\"\n",
                c.current.label
            );
            if let Some(cand) = &c.candidate {
                let _ = write!(s, "\n[component.{name}.tool.fnhost.candidate]\n");
                release_keys(&mut s, &cand.release, registry);
                let _ = writeln!(s, "label = \"{}\"", cand.release.label);
                let _ = writeln!(s, "weight = {:.1}", cand.weight);
                if cand.sticky {
                    s.push_str("sticky_header = \"x-user\"\n");
                }
                if cand.guarded {
                    let _ = writeln!(s, "max_error_rate = {GUARD_MAX_ERROR_RATE}");
                    let _ = writeln!(s, "guard_window = {GUARD_WINDOW}");
                }
            }
        }
        s
    }

    /// What every replica's status must show once it has applied this state.
    pub fn expected(&self) -> Vec<Observed> {
        [("pi", &self.pi), ("iris", &self.iris)]
            .into_iter()
            .map(|(name, c)| Observed {
                component: name.to_string(),
                current: Some(c.current.label.to_string()),
                candidate: c
                    .candidate
                    .map(|cand| (cand.release.label.to_string(), cand.weight)),
            })
            .collect()
    }
}

/// `source = …` (Spin's registry source) and `files = …`.
fn release_keys(s: &mut String, r: &Release, registry: &str) {
    let _ = writeln!(
        s,
        "source = {{ registry = \"{registry}\", package = \"fnhost:{}\", version = \"{}\" }}",
        r.package, r.version
    );
    if let Some(model) = r.model {
        let _ = writeln!(
            s,
            "files = [{{ source = \"{model}\", destination = \"/model\" }}]"
        );
    }
}

/// `GET /v1/status`, the fields the rig reads: a mirror of part of fnhost's
/// `deployments::status` types (xtask does not link the host and its wasmtime just to read them).
#[derive(Debug, Deserialize)]
pub struct Status {
    pub components: Vec<ComponentStatus>,
}

#[derive(Debug, Deserialize)]
pub struct ComponentStatus {
    pub component: String,
    pub ready: bool,
    pub load_error: Option<String>,
    pub current: Option<VersionStatus>,
    pub candidate: Option<CandidateStatus>,
    pub last_guard_trip: Option<GuardTripStatus>,
}

#[derive(Debug, Deserialize)]
pub struct VersionStatus {
    /// `pi@1a2b3c4d`, as in the `fnhost-version` header.
    pub version: String,
    pub label: Option<String>,
    /// Where it came from; a registry source with the manifest digest it resolved to
    /// (`oci://HOST/REPOSITORY:TAG@sha256:…`).
    pub source: String,
}

#[derive(Debug, Deserialize)]
pub struct CandidateStatus {
    #[serde(flatten)]
    pub version: VersionStatus,
    pub weight: f64,
}

#[derive(Debug, Deserialize)]
pub struct GuardTripStatus {
    pub version: String,
    pub errors: usize,
    pub window: usize,
}

/// One component as a replica reports it: current label, candidate label and weight.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    pub component: String,
    pub current: Option<String>,
    pub candidate: Option<(String, f64)>,
}

impl Status {
    /// The components in the order of `Desired::expected`.
    pub fn observed(&self) -> Vec<Observed> {
        ["pi", "iris"]
            .iter()
            .map(|name| {
                let c = self.components.iter().find(|c| c.component == *name);
                Observed {
                    component: name.to_string(),
                    current: c
                        .and_then(|c| c.current.as_ref())
                        .and_then(|v| v.label.clone()),
                    candidate: c
                        .and_then(|c| c.candidate.as_ref())
                        .map(|cand| (cand.version.label.clone().unwrap_or_default(), cand.weight)),
                }
            })
            .collect()
    }

    pub fn component(&self, name: &str) -> Option<&ComponentStatus> {
        self.components.iter().find(|c| c.component == name)
    }

    /// Every component ready and without a load error.
    pub fn healthy(&self) -> bool {
        self.components
            .iter()
            .all(|c| c.ready && c.load_error.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_canary_renders_spins_registry_source_and_the_candidate_table() {
        let d = Desired {
            pi: Component {
                current: PI_V1,
                candidate: Some(Candidate {
                    release: PI_V2,
                    weight: 10.0,
                    sticky: true,
                    guarded: false,
                }),
            },
            iris: Component::only(IRIS_V1),
        };
        let toml = d.render("127.0.0.1:5000");
        assert!(toml.contains(
            "[component.pi]\nsource = { registry = \"127.0.0.1:5000\", package = \"fnhost:pi\", version = \"1.0.0\" }"
        ));
        assert!(toml.contains("[component.pi.tool.fnhost.candidate]\nsource = { registry = \"127.0.0.1:5000\", package = \"fnhost:pi\", version = \"2.0.0\" }\nlabel = \"v2\"\nweight = 10.0\nsticky_header = \"x-user\"\n"));
        assert!(
            toml.contains("files = [{ source = \"models/iris/v1\", destination = \"/model\" }]")
        );
        assert_eq!(d.expected()[0].candidate, Some(("v2".to_string(), 10.0)));
    }
}
