//! Prometheus metrics of the hub itself, served as text on the gateway's `/metrics`.
//!
//! One registry per process (per `Runs`), so several gateways in one test process never mix
//! their counts.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FunctionLabels {
    function: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    function: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SkipLabels {
    function: String,
    reason: String,
}

type HistogramFamily = Family<FunctionLabels, Histogram, fn() -> Histogram>;

#[derive(Debug)]
struct Inner {
    registry: Registry,
    runs: Family<RunLabels, Counter>,
    duration: HistogramFamily,
    in_flight: Family<FunctionLabels, Gauge>,
    http: Family<HttpLabels, Counter>,
    last_success: Family<FunctionLabels, Gauge<f64, AtomicU64>>,
    skips: Family<SkipLabels, Counter>,
}

/// Handles to the hub's metrics. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

fn duration_histogram() -> Histogram {
    // 5 ms … ~11 min: webhook answers are milliseconds, backups are minutes.
    Histogram::new(exponential_buckets(0.005, 2.0, 18))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("hub");
        let runs = Family::<RunLabels, Counter>::default();
        let duration: HistogramFamily = Family::new_with_constructor(duration_histogram);
        let in_flight = Family::<FunctionLabels, Gauge>::default();
        let http = Family::<HttpLabels, Counter>::default();
        let last_success = Family::<FunctionLabels, Gauge<f64, AtomicU64>>::default();
        let skips = Family::<SkipLabels, Counter>::default();
        registry.register(
            "runs",
            "Finished runs by function and outcome",
            runs.clone(),
        );
        registry.register(
            "run_duration_seconds",
            "Run duration by function",
            duration.clone(),
        );
        registry.register("runs_in_flight", "Runs going on now", in_flight.clone());
        registry.register(
            "http_requests",
            "HTTP requests by matched route and status",
            http.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "Unix time of the last successful run by function",
            last_success.clone(),
        );
        registry.register(
            "scheduler_skips",
            "Scheduled ticks skipped, by function and reason",
            skips.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                registry,
                runs,
                duration,
                in_flight,
                http,
                last_success,
                skips,
            }),
        }
    }
}

fn fl(function: &str) -> FunctionLabels {
    FunctionLabels {
        function: function.to_owned(),
    }
}

impl Metrics {
    pub fn run_finished(&self, function: &str, outcome: &str, seconds: f64, success: bool) {
        let i = &self.inner;
        i.runs
            .get_or_create(&RunLabels {
                function: function.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        i.duration.get_or_create(&fl(function)).observe(seconds);
        if success {
            let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
            i.last_success.get_or_create(&fl(function)).set(now);
        }
    }

    /// Counts a run as in flight until the guard drops.
    pub fn in_flight(&self, function: &str) -> InFlight {
        let gauge = self.inner.in_flight.get_or_create(&fl(function)).clone();
        gauge.inc();
        InFlight { gauge }
    }

    pub fn http_request(&self, route: &str, status: u16) {
        self.inner
            .http
            .get_or_create(&HttpLabels {
                route: route.to_owned(),
                status: status.to_string(),
            })
            .inc();
    }

    pub fn scheduler_skip(&self, function: &str, reason: &str) {
        self.inner
            .skips
            .get_or_create(&SkipLabels {
                function: function.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// The text exposition format (OpenMetrics flavour, which Prometheus scrapes).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.inner.registry);
        out
    }
}

/// See [`Metrics::in_flight`].
#[derive(Debug)]
pub struct InFlight {
    gauge: Gauge,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}
