//! What `GET /v1/status` answers and `fnhost status` prints: the state of every component as
//! plain serde types, shared by the admin server (serialises) and the CLI (deserialises).

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::state::{Candidate, ComponentState, GuardTrip};
use super::{Slot, Version};
use crate::spec::{GuardSpec, Stickiness, Weight};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentStatus {
    pub component: String,
    pub ready: bool,
    pub load_error: Option<String>,
    pub current: Option<VersionStatus>,
    pub candidate: Option<CandidateStatus>,
    pub previous: Option<VersionStatus>,
    pub last_guard_trip: Option<GuardTripStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionStatus {
    /// `pi@1a2b3c4d`, as in the `fnhost-version` header.
    pub version: String,
    pub sha256: String,
    pub label: Option<String>,
    pub world: String,
    pub source: String,
    pub files: Vec<FileStatus>,
    pub loaded_at_unix: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileStatus {
    pub source: String,
    pub destination: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateStatus {
    #[serde(flatten)]
    pub version: VersionStatus,
    pub weight: Weight,
    pub sticky: Option<Stickiness>,
    pub guard: Option<GuardStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardStatus {
    #[serde(flatten)]
    pub spec: GuardSpec,
    pub recent_responses: usize,
    pub recent_errors: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardTripStatus {
    pub version: String,
    pub errors: usize,
    pub window: usize,
    pub error_rate: f64,
    pub max_error_rate: f64,
    pub at_unix: u64,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl From<&Version> for VersionStatus {
    fn from(v: &Version) -> VersionStatus {
        VersionStatus {
            version: v.name.to_string(),
            sha256: v.sha256.hex(),
            label: v.spec.label.as_ref().map(|l| l.to_string()),
            world: v.world.as_str().to_string(),
            source: v.spec.source.to_string(),
            files: v
                .spec
                .files
                .iter()
                .map(|f| FileStatus {
                    source: f.source.display().to_string(),
                    destination: f.destination.clone(),
                })
                .collect(),
            loaded_at_unix: unix(v.loaded_at),
        }
    }
}

impl From<&Candidate<Version>> for CandidateStatus {
    fn from(c: &Candidate<Version>) -> CandidateStatus {
        let (recent_responses, recent_errors) = c.recent();
        CandidateStatus {
            version: VersionStatus::from(&*c.version),
            weight: c.policy.weight,
            sticky: c.policy.sticky.clone(),
            guard: c.policy.guard.clone().map(|spec| GuardStatus {
                spec,
                recent_responses,
                recent_errors,
            }),
        }
    }
}

impl From<&GuardTrip> for GuardTripStatus {
    fn from(t: &GuardTrip) -> GuardTripStatus {
        GuardTripStatus {
            version: t.version.clone(),
            errors: t.errors,
            window: t.window,
            error_rate: t.errors as f64 / t.window as f64,
            max_error_rate: t.max_error_rate,
            at_unix: unix(t.at),
        }
    }
}

impl ComponentStatus {
    pub fn of(component: &str, s: &ComponentState<Version>) -> ComponentStatus {
        ComponentStatus {
            component: component.to_string(),
            ready: s.current.is_some(),
            load_error: s.load_error.clone(),
            current: s.current.as_deref().map(VersionStatus::from),
            candidate: s.candidate.as_deref().map(CandidateStatus::from),
            previous: s.previous.as_deref().map(VersionStatus::from),
            last_guard_trip: s.last_trip.as_ref().map(GuardTripStatus::from),
        }
    }
}

impl Slot {
    pub fn status(&self) -> ComponentStatus {
        ComponentStatus::of(self.id.as_str(), &self.state.load())
    }
}
