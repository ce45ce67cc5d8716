//! The Prometheus registry and the few counters, gauges and histograms fnhost exports.
//!
//! Served as text on the admin listener's `/metrics` (and the optional metrics listener). Every
//! other module records through the small methods here, so metric names and labels are defined
//! in one place. Labels are enums or shared strings (`Arc<str>`, [`ComponentId`]): recording a
//! request allocates nothing.

use std::sync::atomic::AtomicI64;
use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::spec::ComponentId;

impl EncodeLabelValue for ComponentId {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

/// Label values written as in the exposition (`queue_full`, `2xx`, …).
macro_rules! label_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
        pub enum $name { $($variant),+ }
        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }
        impl EncodeLabelValue for $name {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
                EncodeLabelValue::encode(&self.as_str(), encoder)
            }
        }
    };
}

label_enum!(
    /// The class of a response status.
    StatusClass { Informational => "1xx", Success => "2xx", Redirect => "3xx", ClientError => "4xx", ServerError => "5xx" }
);

impl StatusClass {
    pub fn of(status: u16) -> StatusClass {
        match status / 100 {
            1 => StatusClass::Informational,
            2 => StatusClass::Success,
            3 => StatusClass::Redirect,
            4 => StatusClass::ClientError,
            _ => StatusClass::ServerError,
        }
    }
}

label_enum!(
    /// Why the host answered instead of a component.
    RejectReason {
        NoRoute => "no_route",
        NotLoaded => "not_loaded",
        BodyTooLarge => "body_too_large",
        BadBody => "bad_body",
        BodyTimeout => "body_timeout",
        QueueFull => "queue_full",
        QueueTimeout => "queue_timeout",
    }
);

label_enum!(LoadResult { Ok => "ok", Error => "error" });
label_enum!(SwapResult { Applied => "applied", Refused => "refused" });
label_enum!(CacheResult { Hit => "hit", Miss => "miss", Rejected => "rejected" });

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: SharedLabel,
    pub component: ComponentId,
    pub version: SharedLabel,
    pub status_class: StatusClass,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ComponentLabel {
    pub component: ComponentId,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: RejectReason,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// A label value shared by every request that carries it (a route, a version name).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct SharedLabel(Arc<str>);

impl EncodeLabelValue for SharedLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&&*self.0, encoder)
    }
}

pub type GaugeI64 = Gauge<i64, AtomicI64>;

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<ComponentLabel, Histogram>,
    instantiation: Histogram,
    in_flight: GaugeI64,
    queued: GaugeI64,
    rejected: Family<ReasonLabel, Counter>,
    module_loads: Family<ResultLabel, Counter>,
    swaps: Family<ResultLabel, Counter>,
    compiled_cache: Family<ResultLabel, Counter>,
    guard_trips: Family<ComponentLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("fnhost");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "HTTP requests answered by a component, by route, component, version and status class",
            requests.clone(),
        );
        let latency = Family::<ComponentLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.5, 16))
        });
        registry.register(
            "request_duration_seconds",
            "Time from request received to response headers, per component",
            latency.clone(),
        );
        let instantiation = Histogram::new(exponential_buckets(0.000005, 2.0, 18));
        registry.register(
            "instantiation_duration_seconds",
            "Time to create a store and instantiate a pre-instantiated component",
            instantiation.clone(),
        );
        let in_flight = GaugeI64::default();
        registry.register(
            "requests_in_flight",
            "Requests executing in a component now",
            in_flight.clone(),
        );
        let queued = GaugeI64::default();
        registry.register(
            "requests_queued",
            "Requests waiting for an execution slot now",
            queued.clone(),
        );
        let rejected = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "requests_rejected",
            "Requests rejected by the host before or instead of a component answer, by reason",
            rejected.clone(),
        );
        let module_loads = Family::default();
        registry.register(
            "module_loads",
            "Modules compiled or loaded and checked, by result",
            Family::clone(&module_loads),
        );
        let swaps = Family::default();
        registry.register(
            "swaps",
            "Version changes (deploy, canary, stage, switch, promote, rollback), applied or refused",
            Family::clone(&swaps),
        );
        let compiled_cache = Family::default();
        registry.register(
            "compiled_cache",
            "Compiled-module cache lookups, by result (hit, miss, or rejected: an entry that failed verification)",
            Family::clone(&compiled_cache),
        );
        let guard_trips = Family::<ComponentLabel, Counter>::default();
        registry.register(
            "guard_trips",
            "Canaries rolled back automatically by their error-rate guard",
            guard_trips.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            instantiation,
            in_flight,
            queued,
            rejected,
            module_loads,
            swaps,
            compiled_cache,
            guard_trips,
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// One answered request (clones of shared labels only; nothing is allocated).
    pub fn request(
        &self,
        route: &Arc<str>,
        component: &ComponentId,
        version: &Arc<str>,
        status: u16,
        seconds: f64,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                route: SharedLabel(route.clone()),
                component: component.clone(),
                version: SharedLabel(version.clone()),
                status_class: StatusClass::of(status),
            })
            .inc();
        self.latency
            .get_or_create(&ComponentLabel {
                component: component.clone(),
            })
            .observe(seconds);
    }

    pub fn instantiated(&self, seconds: f64) {
        self.instantiation.observe(seconds);
    }

    pub fn in_flight(&self) -> &GaugeI64 {
        &self.in_flight
    }

    pub fn queued(&self) -> &GaugeI64 {
        &self.queued
    }

    pub fn rejected(&self, reason: RejectReason) {
        self.rejected.get_or_create(&ReasonLabel { reason }).inc();
    }

    pub fn module_load(&self, result: LoadResult) {
        self.module_loads
            .get_or_create(&ResultLabel {
                result: result.as_str(),
            })
            .inc();
    }

    pub fn swap(&self, result: SwapResult) {
        self.swaps
            .get_or_create(&ResultLabel {
                result: result.as_str(),
            })
            .inc();
    }

    pub fn compiled_cache(&self, result: CacheResult) {
        self.compiled_cache
            .get_or_create(&ResultLabel {
                result: result.as_str(),
            })
            .inc();
    }

    pub fn guard_trip(&self, component: &ComponentId) {
        self.guard_trips
            .get_or_create(&ComponentLabel {
                component: component.clone(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_written_as_before() {
        let m = Metrics::new();
        let id = ComponentId::new("pi").unwrap();
        m.request(
            &Arc::from("/api/v0/pi"),
            &id,
            &Arc::from("pi@1a2b3c4d"),
            204,
            0.001,
        );
        m.rejected(RejectReason::QueueFull);
        m.swap(SwapResult::Refused);
        m.compiled_cache(CacheResult::Hit);
        m.module_load(LoadResult::Ok);
        let text = m.encode();
        for want in [
            r#"fnhost_requests_total{route="/api/v0/pi",component="pi",version="pi@1a2b3c4d",status_class="2xx"} 1"#,
            r#"fnhost_requests_rejected_total{reason="queue_full"} 1"#,
            r#"fnhost_swaps_total{result="refused"} 1"#,
            r#"fnhost_compiled_cache_total{result="hit"} 1"#,
            r#"fnhost_module_loads_total{result="ok"} 1"#,
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
    }
}
