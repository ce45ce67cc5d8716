//! The state of one component as one immutable value, and every change to it as a pure
//! transition from the old value to a new one.
//!
//! A component has a current version, may have a candidate (with its [`CanaryPolicy`] and the
//! guard's recent outcomes) and keeps the previous version for instant rollback. Transitions
//! never mutate: `Deployments::apply` stores the value a transition returns in one atomic swap,
//! or nothing when it returns a [`Conflict`]. The state is generic over the version type only so
//! that the table tests below need no compiled module.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::spec::{CanaryPolicy, PinKey};

/// A transition the state does not allow (no candidate to promote, no previous version…).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict(pub String);

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Conflict {}

fn conflict<T>(msg: &str) -> Result<T, Conflict> {
    Err(Conflict(msg.to_string()))
}

pub struct Candidate<V> {
    pub version: Arc<V>,
    pub policy: CanaryPolicy,
    /// Recent outcomes (true = 5xx) for the guard; a new candidate or policy starts afresh.
    pub(super) outcomes: Mutex<VecDeque<bool>>,
}

impl<V> Candidate<V> {
    pub fn new(version: Arc<V>, policy: CanaryPolicy) -> Arc<Candidate<V>> {
        Arc::new(Candidate {
            version,
            policy,
            outcomes: Mutex::default(),
        })
    }

    /// (responses, of which 5xx) in the guard's window now.
    pub fn recent(&self) -> (usize, usize) {
        let o = self.outcomes.lock().unwrap();
        (o.len(), o.iter().filter(|e| **e).count())
    }
}

/// The last automatic rollback, with the numbers that tripped it.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardTrip {
    pub version: String,
    pub errors: usize,
    pub window: usize,
    pub max_error_rate: f64,
    pub at: SystemTime,
}

pub struct ComponentState<V> {
    pub current: Option<Arc<V>>,
    pub candidate: Option<Arc<Candidate<V>>>,
    pub previous: Option<Arc<V>>,
    pub last_trip: Option<GuardTrip>,
    /// Why the component is not serving (its start-up load failed), if it is not.
    pub load_error: Option<String>,
    /// What a request must present to pin a version; none = pinning is off.
    pub pin_key: Option<PinKey>,
}

impl<V> Default for ComponentState<V> {
    fn default() -> Self {
        ComponentState {
            current: None,
            candidate: None,
            previous: None,
            last_trip: None,
            load_error: None,
            pin_key: None,
        }
    }
}

impl<V> Clone for ComponentState<V> {
    fn clone(&self) -> Self {
        ComponentState {
            current: self.current.clone(),
            candidate: self.candidate.clone(),
            previous: self.previous.clone(),
            last_trip: self.last_trip.clone(),
            load_error: self.load_error.clone(),
            pin_key: self.pin_key.clone(),
        }
    }
}

pub type Transition<V> = Result<ComponentState<V>, Conflict>;

impl<V> ComponentState<V> {
    /// The first version of a component (start-up, or a repair of one that never loaded).
    pub fn loaded(&self, version: Arc<V>) -> Transition<V> {
        Ok(ComponentState {
            current: Some(version),
            load_error: None,
            ..self.clone()
        })
    }

    /// A start-up load failed: not ready, with the reason.
    pub fn load_failed(&self, reason: String) -> Transition<V> {
        Ok(ComponentState {
            load_error: Some(reason),
            ..self.clone()
        })
    }

    /// Rolling swap: the new version becomes current; the old one is kept as previous.
    pub fn deploy(&self, version: Arc<V>) -> Transition<V> {
        Ok(ComponentState {
            previous: self.current.clone().or_else(|| self.previous.clone()),
            current: Some(version),
            load_error: None,
            ..self.clone()
        })
    }

    /// Canary (weight > 0) or stage (weight 0) a candidate.
    pub fn set_candidate(&self, version: Arc<V>, policy: CanaryPolicy) -> Transition<V> {
        if self.current.is_none() {
            return conflict("component has no current version to canary against");
        }
        Ok(ComponentState {
            candidate: Some(Candidate::new(version, policy)),
            ..self.clone()
        })
    }

    /// Changes the candidate's policy (weight, stickiness, guard) without reloading it; the
    /// new policy is computed from the one in force, inside the operation.
    pub fn set_policy(&self, change: impl FnOnce(&CanaryPolicy) -> CanaryPolicy) -> Transition<V> {
        let Some(c) = &self.candidate else {
            return conflict("no candidate to change; canary or stage one first");
        };
        Ok(ComponentState {
            candidate: Some(Candidate::new(c.version.clone(), change(&c.policy))),
            ..self.clone()
        })
    }

    /// Blue/green: the candidate becomes current at once and the old current becomes the
    /// staged candidate (weight 0), so switching back is the same instant operation.
    pub fn switch(&self) -> Transition<V> {
        let Some(c) = &self.candidate else {
            return conflict("no candidate to switch to; stage one first");
        };
        let Some(current) = &self.current else {
            return conflict("no current version");
        };
        Ok(ComponentState {
            current: Some(c.version.clone()),
            candidate: Some(Candidate::new(current.clone(), CanaryPolicy::staged())),
            previous: Some(current.clone()),
            last_trip: self.last_trip.clone(),
            load_error: None,
            pin_key: self.pin_key.clone(),
        })
    }

    /// The candidate becomes current; the old current is kept as previous.
    pub fn promote(&self) -> Transition<V> {
        let Some(c) = &self.candidate else {
            return conflict("no candidate to promote");
        };
        Ok(ComponentState {
            current: Some(c.version.clone()),
            previous: self.current.clone(),
            candidate: None,
            last_trip: self.last_trip.clone(),
            load_error: None,
            pin_key: self.pin_key.clone(),
        })
    }

    /// With a candidate: drop it (all traffic back on current). Without: go back to the
    /// previous version, which is still loaded, so this is instant.
    pub fn rollback(&self) -> Transition<V> {
        if self.candidate.is_some() {
            return self.clear_candidate();
        }
        let Some(previous) = &self.previous else {
            return conflict("nothing to roll back to: no candidate and no previous version");
        };
        Ok(ComponentState {
            current: Some(previous.clone()),
            previous: self.current.clone(),
            candidate: None,
            last_trip: self.last_trip.clone(),
            load_error: None,
            pin_key: self.pin_key.clone(),
        })
    }

    /// Sets, replaces or (with `None`) removes the pin key.
    pub fn set_pin_key(&self, key: Option<PinKey>) -> Transition<V> {
        Ok(ComponentState {
            pin_key: key,
            ..self.clone()
        })
    }

    /// Removes the candidate, if any (a manifest dropped its candidate table).
    pub fn clear_candidate(&self) -> Transition<V> {
        Ok(ComponentState {
            candidate: None,
            ..self.clone()
        })
    }

    /// The guard tripped on `version`: its weight drops to 0 (it stays staged for inspection),
    /// unless the candidate changed meanwhile.
    pub fn trip_guard(&self, version: &Arc<V>, trip: GuardTrip) -> Transition<V> {
        match &self.candidate {
            Some(c) if Arc::ptr_eq(&c.version, version) && !c.policy.weight.is_zero() => {
                let mut policy = c.policy.clone();
                policy.weight = crate::spec::Weight::ZERO;
                Ok(ComponentState {
                    candidate: Some(Candidate::new(c.version.clone(), policy)),
                    last_trip: Some(trip),
                    ..self.clone()
                })
            }
            _ => conflict("the candidate changed before its guard tripped"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Weight;

    type S = ComponentState<String>;
    /// current, candidate, previous (`-` for none) and the candidate's weight; or an error text.
    type Want = Result<(&'static str, &'static str, &'static str, f64), &'static str>;

    fn v(name: &str) -> Arc<String> {
        Arc::new(name.to_string())
    }

    /// Current, candidate and previous by name (`-` for none) and the candidate's weight.
    fn shape(s: &S) -> (String, String, String, f64) {
        let name = |v: Option<&Arc<String>>| v.map_or("-".to_string(), |v| v.to_string());
        (
            name(s.current.as_ref()),
            name(s.candidate.as_ref().map(|c| &c.version)),
            name(s.previous.as_ref()),
            s.candidate
                .as_ref()
                .map_or(0.0, |c| c.policy.weight.percent()),
        )
    }

    fn canary(weight: f64) -> CanaryPolicy {
        CanaryPolicy {
            weight: Weight::from_percent(weight).unwrap(),
            ..CanaryPolicy::default()
        }
    }

    /// a current, b candidate at 10 %, p previous.
    fn busy() -> S {
        S::default()
            .loaded(v("p"))
            .unwrap()
            .deploy(v("a"))
            .unwrap()
            .set_candidate(v("b"), canary(10.0))
            .unwrap()
    }

    #[test]
    fn transitions() {
        let empty = S::default();
        let only_a = empty.loaded(v("a")).unwrap();
        type Step = fn(&S) -> Transition<String>;
        let cases: Vec<(&str, S, Step, Want)> = vec![
            (
                "deploy keeps the old current",
                only_a.clone(),
                |s| s.deploy(v("n")),
                Ok(("n", "-", "a", 0.0)),
            ),
            (
                "deploy keeps the candidate",
                busy(),
                |s| s.deploy(v("n")),
                Ok(("n", "b", "a", 10.0)),
            ),
            (
                "deploy on nothing",
                empty.clone(),
                |s| s.deploy(v("n")),
                Ok(("n", "-", "-", 0.0)),
            ),
            (
                "canary",
                only_a.clone(),
                |s| s.set_candidate(v("c"), canary(25.0)),
                Ok(("a", "c", "-", 25.0)),
            ),
            (
                "canary needs a current",
                empty.clone(),
                |s| s.set_candidate(v("c"), canary(25.0)),
                Err("no current version"),
            ),
            (
                "reweigh",
                busy(),
                |s| s.set_policy(|p| p.reweighted(Weight::from_percent(50.0).unwrap(), None, None)),
                Ok(("a", "b", "p", 50.0)),
            ),
            (
                "reweigh needs a candidate",
                only_a.clone(),
                |s| s.set_policy(|p| p.clone()),
                Err("no candidate to change"),
            ),
            ("switch", busy(), |s| s.switch(), Ok(("b", "a", "a", 0.0))),
            (
                "switch back",
                busy().switch().unwrap(),
                |s| s.switch(),
                Ok(("a", "b", "b", 0.0)),
            ),
            (
                "switch needs a candidate",
                only_a.clone(),
                |s| s.switch(),
                Err("no candidate to switch to"),
            ),
            ("promote", busy(), |s| s.promote(), Ok(("b", "-", "a", 0.0))),
            (
                "promote needs a candidate",
                only_a.clone(),
                |s| s.promote(),
                Err("no candidate to promote"),
            ),
            (
                "rollback drops the candidate",
                busy(),
                |s| s.rollback(),
                Ok(("a", "-", "p", 0.0)),
            ),
            (
                "rollback to previous",
                busy().rollback().unwrap(),
                |s| s.rollback(),
                Ok(("p", "-", "a", 0.0)),
            ),
            (
                "rollback needs something",
                only_a.clone(),
                |s| s.rollback(),
                Err("nothing to roll back to"),
            ),
            (
                "clear",
                busy(),
                |s| s.clear_candidate(),
                Ok(("a", "-", "p", 0.0)),
            ),
            (
                "clear nothing",
                only_a.clone(),
                |s| s.clear_candidate(),
                Ok(("a", "-", "-", 0.0)),
            ),
        ];
        for (what, before, step, want) in cases {
            match (step(&before), want) {
                (Ok(after), Ok(w)) => {
                    let got = shape(&after);
                    assert_eq!(
                        (got.0.as_str(), got.1.as_str(), got.2.as_str(), got.3),
                        w,
                        "{what}"
                    );
                }
                (Err(e), Err(text)) => assert!(e.0.contains(text), "{what}: {e}"),
                (got, want) => panic!("{what}: got {:?}, want {want:?}", got.map(|s| shape(&s))),
            }
        }
    }

    #[test]
    fn reweigh_keeps_stickiness_and_guard_unless_replaced() {
        let sticky = crate::spec::Stickiness::header("x-user").unwrap();
        let guard = crate::spec::GuardSpec::new(0.1, None).unwrap();
        let s = S::default()
            .loaded(v("a"))
            .unwrap()
            .set_candidate(
                v("b"),
                CanaryPolicy {
                    weight: Weight::from_percent(5.0).unwrap(),
                    sticky: Some(sticky.clone()),
                    guard: Some(guard.clone()),
                },
            )
            .unwrap();
        let w = Weight::from_percent(20.0).unwrap();
        let kept = s.set_policy(|p| p.reweighted(w, None, None)).unwrap();
        let p = &kept.candidate.as_ref().unwrap().policy;
        assert_eq!(
            (p.weight, &p.sticky, &p.guard),
            (w, &Some(sticky), &Some(guard))
        );
        let cookie = crate::spec::Stickiness::cookie("uid").unwrap();
        let replaced = s
            .set_policy(|p| p.reweighted(w, Some(cookie.clone()), None))
            .unwrap();
        assert_eq!(
            replaced.candidate.as_ref().unwrap().policy.sticky,
            Some(cookie)
        );
    }

    #[test]
    fn guard_trips_only_the_candidate_it_watched() {
        let s = busy();
        let b = s.candidate.as_ref().unwrap().version.clone();
        let trip = GuardTrip {
            version: "b".into(),
            errors: 5,
            window: 20,
            max_error_rate: 0.1,
            at: SystemTime::UNIX_EPOCH,
        };
        let tripped = s.trip_guard(&b, trip.clone()).unwrap();
        assert_eq!(shape(&tripped), ("a".into(), "b".into(), "p".into(), 0.0));
        assert_eq!(tripped.last_trip, Some(trip.clone()));
        // Already at 0, or another candidate now: nothing to trip.
        assert!(tripped.trip_guard(&b, trip.clone()).is_err());
        assert!(s.trip_guard(&v("b"), trip).is_err());
    }

    #[test]
    fn a_failed_load_is_repaired_by_the_next_load() {
        let failed = S::default().load_failed("download failed".into()).unwrap();
        assert!(failed.current.is_none());
        let repaired = failed.loaded(v("a")).unwrap();
        assert_eq!(repaired.load_error, None);
        assert_eq!(shape(&repaired).0, "a");
    }
}
