//! The Prometheus registry and the few counters, gauges and histograms fnhost exports.
//!
//! Served as text on the admin listener's `/metrics` (and the optional metrics listener). Every
//! other module records through the small methods here, so metric names and labels are defined
//! in one place.

use std::sync::atomic::AtomicI64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub component: String,
    pub version: String,
    pub status_class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ComponentLabel {
    pub component: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<ComponentLabel, Histogram>,
    instantiation: Histogram,
    in_flight: Gauge<i64, AtomicI64>,
    queued: Gauge<i64, AtomicI64>,
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
        let in_flight = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "requests_in_flight",
            "Requests executing in a component now",
            in_flight.clone(),
        );
        let queued = Gauge::<i64, AtomicI64>::default();
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
        let module_loads = Family::<ResultLabel, Counter>::default();
        registry.register(
            "module_loads",
            "Modules compiled or loaded and checked, by result",
            module_loads.clone(),
        );
        let swaps = Family::<ResultLabel, Counter>::default();
        registry.register("swaps", "Version changes (deploy, canary, stage, switch, promote, rollback), applied or refused", swaps.clone());
        let compiled_cache = Family::<ResultLabel, Counter>::default();
        registry.register(
            "compiled_cache",
            "Compiled-module cache lookups, by result (hit or miss)",
            compiled_cache.clone(),
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

    pub fn request(&self, route: &str, component: &str, version: &str, status: u16, seconds: f64) {
        let status_class = format!("{}xx", status / 100);
        self.requests
            .get_or_create(&RequestLabels {
                route: route.into(),
                component: component.into(),
                version: version.into(),
                status_class,
            })
            .inc();
        self.latency
            .get_or_create(&ComponentLabel {
                component: component.into(),
            })
            .observe(seconds);
    }

    pub fn instantiated(&self, seconds: f64) {
        self.instantiation.observe(seconds);
    }

    pub fn in_flight(&self) -> &Gauge<i64, AtomicI64> {
        &self.in_flight
    }

    pub fn queued(&self) -> &Gauge<i64, AtomicI64> {
        &self.queued
    }

    pub fn rejected(&self, reason: &str) {
        self.rejected
            .get_or_create(&ReasonLabel {
                reason: reason.into(),
            })
            .inc();
    }

    pub fn module_load(&self, ok: bool) {
        self.module_loads
            .get_or_create(&ResultLabel {
                result: if ok { "ok" } else { "error" }.into(),
            })
            .inc();
    }

    pub fn swap(&self, applied: bool) {
        self.swaps
            .get_or_create(&ResultLabel {
                result: if applied { "applied" } else { "refused" }.into(),
            })
            .inc();
    }

    pub fn cache_hit(&self) {
        self.compiled_cache
            .get_or_create(&ResultLabel {
                result: "hit".into(),
            })
            .inc();
    }

    pub fn cache_miss(&self) {
        self.compiled_cache
            .get_or_create(&ResultLabel {
                result: "miss".into(),
            })
            .inc();
    }

    pub fn guard_trip(&self, component: &str) {
        self.guard_trips
            .get_or_create(&ComponentLabel {
                component: component.into(),
            })
            .inc();
    }
}
