//! Which version answers one request, and what its answer teaches the canary guard.
//!
//! [`pick`] is lock-free: one atomic load of the state plus, for a canary, a hash of the sticky
//! key or a random draw in 0..1000 against the weight in tenths of a percent. A request may pin
//! a version (`fnhost-version-pin`) only when it also presents the component's pin key
//! (`fnhost-pin-key`); otherwise the pin header is ignored, so an outsider can neither reach a
//! staged version nor steer traffic. [`Slot::record`] feeds a candidate's status codes to its
//! guard — never a pinned request's — and trips it (weight → 0) through the same transition as
//! every other change.

use std::sync::Arc;
use std::time::SystemTime;

use http::HeaderMap;

use super::state::{ComponentState, GuardTrip};
use super::{Slot, Version, PIN_HEADER, PIN_KEY_HEADER};
use crate::metrics::Metrics;
use crate::spec::{CanaryPolicy, Stickiness};

/// Which role the picked version plays for this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Current,
    Candidate,
    /// Pinned by a request that presented the pin key: never counted by the guard.
    Pinned,
}

/// Picks the version for one request from a component's state.
pub fn pick(state: &ComponentState<Version>, headers: &HeaderMap) -> Option<(Arc<Version>, Role)> {
    let current = state.current.as_ref();
    if let Some(pinned) = pinned(state, headers) {
        return Some((pinned.clone(), Role::Pinned));
    }
    if let Some(c) = &state.candidate {
        if !c.policy.weight.is_zero() && takes_candidate(&c.policy, headers) {
            return Some((c.version.clone(), Role::Candidate));
        }
    }
    current.map(|v| (v.clone(), Role::Current))
}

/// The version a request pins: `candidate`, `current`, a short or full sha256, or a label —
/// only with the right pin key.
fn pinned<'s>(state: &'s ComponentState<Version>, headers: &HeaderMap) -> Option<&'s Arc<Version>> {
    let pin = headers.get(PIN_HEADER)?.to_str().ok()?;
    let key = state.pin_key.as_ref()?;
    if !key.matches(headers.get(PIN_KEY_HEADER)?.as_bytes()) {
        return None;
    }
    let current = state.current.as_ref();
    let candidate = state.candidate.as_ref().map(|c| &c.version);
    match pin {
        "candidate" => candidate,
        "current" => current,
        pin => candidate
            .filter(|v| v.matches_pin(pin))
            .or_else(|| current.filter(|v| v.matches_pin(pin))),
    }
}

/// True when this request goes to the candidate.
fn takes_candidate(policy: &CanaryPolicy, headers: &HeaderMap) -> bool {
    let key = match &policy.sticky {
        Some(Stickiness::Header(h)) => headers.get(h.as_str()).map(|v| v.as_bytes()),
        Some(Stickiness::Cookie(name)) => cookie(headers, name),
        None => None,
    };
    let draw = match key {
        Some(key) => sticky_bucket(key),
        None => rand::random_range(0..1000u64),
    };
    draw < u64::from(policy.weight.per_mille())
}

/// A key's bucket in 0..1000: stable across requests, processes, replicas and releases (a
/// sha256 prefix, not the std hasher), so a user sees the same version while the weight is
/// unchanged.
pub fn sticky_bucket(key: &[u8]) -> u64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(key);
    u64::from_le_bytes(digest[..8].try_into().expect("sha256 has 32 bytes")) % 1000
}

fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h [u8]> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|line| {
            line.split(';').find_map(|pair| {
                let (k, v) = pair.trim().split_once('=')?;
                (k == name).then_some(v.as_bytes())
            })
        })
}

impl Slot {
    /// Picks the version for one request.
    pub fn pick(&self, headers: &HeaderMap) -> Option<(Arc<Version>, Role)> {
        pick(&self.state.load(), headers)
    }

    /// Feeds a candidate's response status to its guard; trips it (weight → 0) when the error
    /// rate over the window exceeds the limit.
    pub fn record(&self, version: &Arc<Version>, role: Role, status: u16, metrics: &Metrics) {
        if role != Role::Candidate {
            return;
        }
        let state = self.state.load();
        let Some(cand) = &state.candidate else { return };
        let Some(guard) = &cand.policy.guard else {
            return;
        };
        if !Arc::ptr_eq(&cand.version, version) || cand.policy.weight.is_zero() {
            return;
        }
        let (errors, window) = {
            let mut outcomes = cand.outcomes.lock().unwrap();
            outcomes.push_back(status >= 500);
            while outcomes.len() > guard.window as usize {
                outcomes.pop_front();
            }
            (outcomes.iter().filter(|e| **e).count(), outcomes.len())
        };
        if window < guard.window as usize || errors as f64 / window as f64 <= guard.max_error_rate {
            return;
        }
        let trip = GuardTrip {
            version: cand.version.name.to_string(),
            errors,
            window,
            max_error_rate: guard.max_error_rate,
            at: SystemTime::now(),
        };
        // Not through the operations lock: a trip must not wait behind a slow load. Swap only
        // if the state is still the one the trip was computed from; `trip_guard` refuses when
        // the candidate changed meanwhile, and then nothing is stored.
        let mut seen = self.state.load_full();
        let tripped = loop {
            let Ok(new) = seen.trip_guard(version, trip.clone()) else {
                break false;
            };
            let before = self.state.compare_and_swap(&seen, Arc::new(new));
            if Arc::ptr_eq(&before, &seen) {
                break true;
            }
            seen = arc_swap::Guard::into_inner(before);
        };
        if tripped {
            metrics.guard_trip(&self.id);
            tracing::warn!(
                component = %self.id, version = %trip.version, errors, window, max_error_rate = trip.max_error_rate,
                "canary guard tripped: {errors} of the last {window} responses were 5xx (limit {:.1}%); candidate weight set to 0",
                trip.max_error_rate * 100.0
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Weight;

    fn policy(weight: f64, sticky: Option<Stickiness>) -> CanaryPolicy {
        CanaryPolicy {
            weight: Weight::from_percent(weight).unwrap(),
            sticky,
            guard: None,
        }
    }

    #[test]
    fn sticky_buckets_are_stable_and_spread() {
        assert_eq!(sticky_bucket(b"user-1"), sticky_bucket(b"user-1"));
        let under_100 = (0..10_000)
            .filter(|i| sticky_bucket(format!("user-{i}").as_bytes()) < 100)
            .count();
        assert!(
            (800..1200).contains(&under_100),
            "{under_100} of 10000 keys under 10%"
        );
    }

    #[test]
    fn weights_pick_the_candidate_in_proportion() {
        let headers = HeaderMap::new();
        let ten = policy(10.0, None);
        let n = (0..20_000)
            .filter(|_| takes_candidate(&ten, &headers))
            .count();
        assert!((1700..2300).contains(&n), "{n} of 20000");
        let zero = policy(0.0, None);
        assert_eq!(
            (0..1000)
                .filter(|_| takes_candidate(&zero, &headers))
                .count(),
            0
        );
        let all = policy(100.0, None);
        assert_eq!(
            (0..1000)
                .filter(|_| takes_candidate(&all, &headers))
                .count(),
            1000
        );
    }

    #[test]
    fn sticky_cookie_and_header_keys() {
        let by_cookie = policy(50.0, Some(Stickiness::cookie("uid").unwrap()));
        let by_header = policy(50.0, Some(Stickiness::header("X-User").unwrap()));
        for i in 0..200 {
            let mut h = HeaderMap::new();
            h.insert(
                http::header::COOKIE,
                format!("a=b; uid=u{i}; c=d").parse().unwrap(),
            );
            h.insert("x-user", format!("u{i}").parse().unwrap());
            let want = sticky_bucket(format!("u{i}").as_bytes()) < 500;
            for p in [&by_cookie, &by_header] {
                assert!((0..20).all(|_| takes_candidate(p, &h) == want));
            }
        }
    }
}
