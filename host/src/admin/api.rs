//! The admin API's vocabulary, shared by the server (`server.rs`) and the CLI (`client.rs`):
//! the operations, their parameters as typed values, and the one query-string format both
//! sides speak. A parameter is validated by the same `spec` constructor on both sides, so the
//! CLI refuses a bad weight before sending it and the server refuses it from any client.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::deployments::ComponentStatus;
use crate::spec::{GuardSpec, Label, OciReference, SpecError, Stickiness, Weight};

/// An operation on one component: `POST /v1/components/{component}/{op}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Replace the current version (rolling swap).
    Deploy,
    /// A candidate that takes a share of traffic.
    Canary,
    /// A candidate at 0 % (pinned requests only).
    Stage,
    /// Blue/green: candidate ↔ current.
    Switch,
    Promote,
    Rollback,
    /// Change the candidate's share (and optionally stickiness or guard).
    Weight,
    /// Set or rotate (body: the key) or remove (empty body) the component's pin key.
    PinKey,
}

impl Op {
    pub const ALL: [Op; 8] = [
        Op::Deploy,
        Op::Canary,
        Op::Stage,
        Op::Switch,
        Op::Promote,
        Op::Rollback,
        Op::Weight,
        Op::PinKey,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Deploy => "deploy",
            Op::Canary => "canary",
            Op::Stage => "stage",
            Op::Switch => "switch",
            Op::Promote => "promote",
            Op::Rollback => "rollback",
            Op::Weight => "weight",
            Op::PinKey => "pin-key",
        }
    }

    pub fn parse(s: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.as_str() == s)
    }

    /// Whether the operation loads a new version (a module in the body, `path=` or `oci=`).
    pub fn takes_module(self) -> bool {
        matches!(self, Op::Deploy | Op::Canary | Op::Stage)
    }

    /// The API path of this operation on `component`.
    pub fn path(self, component: &str, params: &OpParams) -> String {
        let query = params.to_query();
        if query.is_empty() {
            format!("/v1/components/{component}/{}", self.as_str())
        } else {
            format!("/v1/components/{component}/{}?{query}", self.as_str())
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `HOST_DIR:GUEST_PATH`: a host directory to grant a new version (checked on the host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountParam {
    pub host: PathBuf,
    pub guest: String,
}

impl MountParam {
    pub fn parse(v: &str) -> Result<MountParam, SpecError> {
        let (host, guest) = v
            .rsplit_once(':')
            .filter(|(h, g)| !h.is_empty() && g.starts_with('/'))
            .ok_or_else(|| {
                SpecError(format!(
                    "mount must be HOST_DIR:GUEST_PATH with an absolute guest path, got \"{v}\""
                ))
            })?;
        Ok(MountParam {
            host: PathBuf::from(host),
            guest: guest.to_string(),
        })
    }
}

impl fmt::Display for MountParam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host.display(), self.guest)
    }
}

/// The parameters an operation may take, as typed values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OpParams {
    /// A module file on the host (instead of uploading its bytes).
    pub path: Option<PathBuf>,
    /// A module in an OCI registry, pulled by the host (instead of uploading its bytes).
    pub oci: Option<OciReference>,
    /// Plain HTTP to that registry although it is not on loopback.
    pub insecure: bool,
    pub label: Option<Label>,
    pub weight: Option<Weight>,
    pub sticky: Option<Stickiness>,
    pub guard: Option<GuardSpec>,
    /// Host directories for the new version (replacing the inherited files).
    pub mounts: Vec<MountParam>,
    /// Refuse the change unless a GET of this path answers below 500.
    pub smoke: Option<String>,
}

/// The query parameter names, once.
mod name {
    pub const PATH: &str = "path";
    pub const OCI: &str = "oci";
    pub const INSECURE: &str = "insecure";
    pub const LABEL: &str = "label";
    pub const WEIGHT: &str = "weight";
    pub const STICKY_HEADER: &str = "sticky_header";
    pub const STICKY_COOKIE: &str = "sticky_cookie";
    pub const MAX_ERROR_RATE: &str = "max_error_rate";
    pub const GUARD_WINDOW: &str = "guard_window";
    pub const MOUNT: &str = "mount";
    pub const SMOKE: &str = "smoke";
}

impl OpParams {
    /// The smoke path must be a path (and query) on the component.
    pub fn smoke(v: &str) -> Result<String, SpecError> {
        if !v.starts_with('/') {
            return Err(SpecError(format!(
                "smoke must be a path like /api/v0/pi?ndigits=5, got \"{v}\""
            )));
        }
        Ok(v.to_string())
    }

    pub fn to_query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        if let Some(p) = &self.path {
            q.append_pair(name::PATH, &p.to_string_lossy());
        }
        if let Some(r) = &self.oci {
            q.append_pair(name::OCI, &r.to_string());
        }
        if self.insecure {
            q.append_pair(name::INSECURE, "true");
        }
        if let Some(l) = &self.label {
            q.append_pair(name::LABEL, l.as_str());
        }
        if let Some(w) = self.weight {
            q.append_pair(name::WEIGHT, &w.to_string());
        }
        match &self.sticky {
            Some(Stickiness::Header(h)) => {
                q.append_pair(name::STICKY_HEADER, h);
            }
            Some(Stickiness::Cookie(c)) => {
                q.append_pair(name::STICKY_COOKIE, c);
            }
            None => {}
        }
        if let Some(g) = &self.guard {
            q.append_pair(name::MAX_ERROR_RATE, &g.max_error_rate.to_string());
            q.append_pair(name::GUARD_WINDOW, &g.window.to_string());
        }
        for m in &self.mounts {
            q.append_pair(name::MOUNT, &m.to_string());
        }
        if let Some(s) = &self.smoke {
            q.append_pair(name::SMOKE, s);
        }
        q.finish()
    }

    /// Parses and validates a query string; the error names the parameter and its rule.
    pub fn from_query(query: &str) -> Result<OpParams, SpecError> {
        let mut p = OpParams::default();
        let mut max_error_rate = None;
        let mut window = None;
        let at = |key: &str, e: SpecError| SpecError(format!("{key} {e}"));
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                name::PATH => p.path = Some(PathBuf::from(v.as_ref())),
                name::OCI => p.oci = Some(OciReference::parse(&v).map_err(|e| at(name::OCI, e))?),
                name::INSECURE => {
                    p.insecure = v.parse().map_err(|_| {
                        SpecError(format!("insecure must be true or false, got \"{v}\""))
                    })?
                }
                name::LABEL => p.label = Some(Label::new(&v).map_err(|e| at(name::LABEL, e))?),
                name::WEIGHT => {
                    let w: f64 = v.parse().map_err(|_| {
                        SpecError(format!(
                            "weight must be a number from 0 to 100, got \"{v}\""
                        ))
                    })?;
                    p.weight = Some(Weight::from_percent(w).map_err(|e| at(name::WEIGHT, e))?);
                }
                name::STICKY_HEADER => {
                    p.sticky = Some(Stickiness::header(&v).map_err(|e| at(name::STICKY_HEADER, e))?)
                }
                name::STICKY_COOKIE => {
                    p.sticky = Some(Stickiness::cookie(&v).map_err(|e| at(name::STICKY_COOKIE, e))?)
                }
                name::MAX_ERROR_RATE => {
                    max_error_rate = Some(v.parse::<f64>().map_err(|_| {
                        SpecError(format!(
                            "max_error_rate must be a number from 0 to 1, got \"{v}\""
                        ))
                    })?)
                }
                name::GUARD_WINDOW => {
                    window = Some(v.parse::<i64>().map_err(|_| {
                        SpecError(format!(
                            "guard_window must be an integer from 20 to 100000, got \"{v}\""
                        ))
                    })?)
                }
                name::MOUNT => p.mounts.push(MountParam::parse(&v)?),
                name::SMOKE => p.smoke = Some(OpParams::smoke(&v)?),
                other => return Err(SpecError(format!("unknown parameter \"{other}\""))),
            }
        }
        p.guard = match (max_error_rate, window) {
            (Some(rate), window) => Some(GuardSpec::new(rate, window)?),
            (None, Some(_)) => return Err(SpecError("guard_window needs max_error_rate".into())),
            (None, None) => None,
        };
        Ok(p)
    }
}

/// `GET /v1/status`.
#[derive(Debug, Serialize, Deserialize)]
pub struct StatusResponse {
    pub components: Vec<ComponentStatus>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_parse_and_reject() {
        let p = OpParams::from_query(
            "weight=12.5&sticky_header=X-User&max_error_rate=0.05&guard_window=50&label=v2",
        )
        .unwrap();
        assert_eq!(p.weight, Some(Weight::from_percent(12.5).unwrap()));
        assert_eq!(p.sticky, Some(Stickiness::Header("x-user".into())));
        assert_eq!(
            p.guard,
            Some(GuardSpec {
                max_error_rate: 0.05,
                window: 50
            })
        );
        assert_eq!(p.label, Some(Label::new("v2").unwrap()));
        for (q, want) in [
            ("weight=101", "weight"),
            ("weight=abc", "weight"),
            ("weight=1.25", "one decimal"),
            ("max_error_rate=2", "max_error_rate"),
            ("max_error_rate=0.1&guard_window=5", "guard_window"),
            ("guard_window=30", "needs max_error_rate"),
            ("bogus=1", "unknown parameter"),
            ("smoke=api", "smoke"),
            ("mount=/data", "HOST_DIR:GUEST_PATH"),
            ("label=two%20words", "label"),
            ("oci=fnhost/pi:1.0.0", "must name its registry"),
            ("insecure=yes", "insecure"),
        ] {
            let e = OpParams::from_query(q)
                .err()
                .unwrap_or_else(|| panic!("{q} accepted"));
            assert!(e.0.contains(want), "{q}: {e}");
        }
    }

    #[test]
    fn the_query_round_trips() {
        let p = OpParams {
            path: Some(PathBuf::from("/srv/m v2.wasm")),
            oci: Some(OciReference::parse("oci://registry.example:5000/fnhost/pi:1.0.0").unwrap()),
            insecure: true,
            label: Some(Label::new("v2").unwrap()),
            weight: Some(Weight::from_percent(7.5).unwrap()),
            sticky: Some(Stickiness::cookie("uid").unwrap()),
            guard: Some(GuardSpec::new(0.2, Some(40)).unwrap()),
            mounts: vec![MountParam::parse("/srv/models:/model").unwrap()],
            smoke: Some("/api/v0/pi?ndigits=5&x=1".into()),
        };
        assert_eq!(OpParams::from_query(&p.to_query()), Ok(p));
        assert_eq!(OpParams::from_query(""), Ok(OpParams::default()));
    }

    #[test]
    fn operations_by_name() {
        for op in Op::ALL {
            assert_eq!(Op::parse(op.as_str()), Some(op));
        }
        assert_eq!(Op::parse("canary-ish"), None);
    }
}
