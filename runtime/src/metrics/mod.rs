//! Prometheus metrics of the hub itself, served as text on the gateway's `/metrics`, and the
//! same instruments through OpenTelemetry's global meter, which [`crate::telemetry`] exports
//! over OTLP when an endpoint is set (without one the meter is a no-op). OTLP names are the
//! Prometheus names without the `_total` suffix Prometheus adds to counters.
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

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SetLabels {
    set: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GateLabels {
    to: String,
}

const FUNNEL_REFUSED_HELP: &str =
    "Requests through Tailscale Funnel refused because they reached an operator route";

const GATE_OPEN_HELP: &str = "1 while gate-check keeps Tailscale Funnel open, else 0";
const GATE_TRANSITIONS_HELP: &str = "gate-check's Funnel openings and closings, by new state";

type HistogramFamily = Family<FunctionLabels, Histogram, fn() -> Histogram>;

mod function;
mod http;
mod otel;
use otel::{Otel, kv};

#[derive(Debug)]
struct Inner {
    otel: Otel,
    registry: Registry,
    runs: Family<RunLabels, Counter>,
    duration: HistogramFamily,
    in_flight: Family<FunctionLabels, Gauge>,
    http: Family<HttpLabels, Counter>,
    http_series: http::HttpSeries,
    function_series: function::FunctionSeries,
    last_success: Family<FunctionLabels, Gauge<f64, AtomicU64>>,
    skips: Family<SkipLabels, Counter>,
    /// minio-backup's: per backup set, the time and size of the newest good backup.
    backup_last_success: Family<SetLabels, Gauge<f64, AtomicU64>>,
    backup_bytes: Family<SetLabels, Gauge>,
    /// gate-check's: whether the funnel is open, and its transitions.
    gate_open: Gauge,
    gate_transitions: Family<GateLabels, Counter>,
    connections_open: Gauge,
    connections_refused: Counter,
    funnel_refused: Counter,
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
        let backup_last_success = Family::<SetLabels, Gauge<f64, AtomicU64>>::default();
        let backup_bytes = Family::<SetLabels, Gauge>::default();
        registry.register(
            "backup_last_success_timestamp_seconds",
            "Unix time of the newest good backup, by backup set",
            backup_last_success.clone(),
        );
        registry.register(
            "backup_bytes",
            "Size of the newest good backup, by backup set",
            backup_bytes.clone(),
        );
        let gate_open = Gauge::default();
        let gate_transitions = Family::<GateLabels, Counter>::default();
        registry.register("gate_open", GATE_OPEN_HELP, gate_open.clone());
        registry.register(
            "gate_transitions",
            GATE_TRANSITIONS_HELP,
            gate_transitions.clone(),
        );
        let connections_open = Gauge::default();
        let connections_refused = Counter::default();
        let funnel_refused = Counter::default();
        registry.register(
            "funnel_refused",
            FUNNEL_REFUSED_HELP,
            funnel_refused.clone(),
        );
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
        registry.register(
            "http_connections_open",
            "HTTP connections being served now",
            connections_open.clone(),
        );
        registry.register(
            "http_connections_refused",
            "HTTP connections refused because the connection cap was reached",
            connections_refused.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                otel: Otel::new(),
                registry,
                runs,
                duration,
                in_flight,
                http,
                http_series: http::HttpSeries::default(),
                function_series: function::FunctionSeries::default(),
                last_success,
                skips,
                backup_last_success,
                backup_bytes,
                gate_open,
                gate_transitions,
                connections_open,
                connections_refused,
                funnel_refused,
            }),
        }
    }
}

/// Every outcome a run can have (`Outcome::as_str`), so each gets a series from the start.
const OUTCOMES: [&str; 5] = ["success", "rejected", "failure", "skipped", "interrupted"];

impl Metrics {
    fn function_series(&self, function: &str) -> Arc<function::Series> {
        let i = &self.inner;
        let families = function::Families {
            runs: &i.runs,
            duration: &i.duration,
            in_flight: &i.in_flight,
            last_success: &i.last_success,
        };
        i.function_series.get(&families, function)
    }

    /// Creates `function`'s series at 0 (runs by outcome, duration, in flight, last success at
    /// 0 = never), so a fresh gateway already exposes them: `rate()` and `absent()` alerts can
    /// tell "no runs yet" from "no hub".
    pub fn register_function(&self, function: &str) {
        self.function_series(function);
        // `get_or_create` is what creates a series; the read guard it returns is not needed.
        let _ = self.inner.skips.get_or_create(&SkipLabels {
            function: function.to_owned(),
            reason: "overlap".to_owned(),
        });
    }

    pub fn run_finished(&self, function: &str, outcome: &str, seconds: f64, success: bool) {
        let i = &self.inner;
        let series = self.function_series(function);
        match series.runs(outcome) {
            Some((counter, attributes)) => {
                counter.inc();
                i.otel.runs.add(1, attributes);
            }
            // Not an outcome runs have: counted all the same, the slow way.
            None => {
                i.runs
                    .get_or_create(&RunLabels {
                        function: function.to_owned(),
                        outcome: outcome.to_owned(),
                    })
                    .inc();
                i.otel
                    .runs
                    .add(1, &[kv("function", function), kv("outcome", outcome)]);
            }
        }
        series.duration.observe(seconds);
        i.otel.duration.record(seconds, &series.attributes);
        if success {
            let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
            series.last_success.set(now);
            i.otel.last_success.record(now, &series.attributes);
        }
    }

    /// Counts a run as in flight until the guard drops.
    pub fn in_flight(&self, function: &str) -> InFlight {
        let series = self.function_series(function);
        InFlight::start(
            series.in_flight.clone(),
            self.inner.otel.in_flight.clone(),
            series.attributes.clone(),
        )
    }

    pub fn http_request(&self, route: &str, status: u16) {
        let i = &self.inner;
        i.http_series.count(&i.http, &i.otel.http, route, status);
    }

    /// Creates the `status="200"` series of `route` at 0, so request rates exist from the
    /// start rather than from a route's first request.
    pub fn register_route(&self, route: &str) {
        let _ = self.inner.http.get_or_create(&HttpLabels {
            route: route.to_owned(),
            status: "200".to_owned(),
        });
    }

    /// Counts an open connection until the guard drops.
    pub fn connection_opened(&self) -> InFlight {
        InFlight::start(
            self.inner.connections_open.clone(),
            self.inner.otel.connections_open.clone(),
            Arc::from([]),
        )
    }

    pub fn connection_refused(&self) {
        self.inner.connections_refused.inc();
        self.inner.otel.connections_refused.add(1, &[]);
    }

    /// A request that came through Tailscale Funnel reached an operator route and was refused:
    /// Funnel points at the wrong listener, or something forwards funnelled traffic to it.
    pub fn funnel_refused(&self) {
        self.inner.funnel_refused.inc();
        self.inner.otel.funnel_refused.add(1, &[]);
    }

    /// The newest good backup of `set` (minio-backup), finished at `at` (Unix seconds).
    pub fn backup_stored(&self, set: &str, bytes: u64, at: f64) {
        let l = SetLabels {
            set: set.to_owned(),
        };
        self.inner.backup_last_success.get_or_create(&l).set(at);
        self.inner
            .backup_bytes
            .get_or_create(&l)
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        let f = [kv("set", set)];
        self.inner.otel.backup_last_success.record(at, &f);
        self.inner
            .otel
            .backup_bytes
            .record(i64::try_from(bytes).unwrap_or(i64::MAX), &f);
    }

    /// gate-check's funnel state now (also at start, from its stored state). Creates both
    /// transition series at 0, so an alert on their rate works before the first transition.
    pub fn gate_state(&self, open: bool) {
        let v = i64::from(open);
        self.inner.gate_open.set(v);
        self.inner.otel.gate_open.record(v, &[]);
        for to in ["open", "closed"] {
            let _ = self
                .inner
                .gate_transitions
                .get_or_create(&GateLabels { to: to.into() });
        }
    }

    /// gate-check opened (`to = "open"`) or closed (`"closed"`) the funnel.
    pub fn gate_transition(&self, to: &str) {
        self.inner
            .gate_transitions
            .get_or_create(&GateLabels { to: to.to_owned() })
            .inc();
        self.inner.otel.gate_transitions.add(1, &[kv("to", to)]);
    }

    pub fn scheduler_skip(&self, function: &str, reason: &str) {
        self.inner
            .skips
            .get_or_create(&SkipLabels {
                function: function.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
        self.inner
            .otel
            .skips
            .add(1, &[kv("function", function), kv("reason", reason)]);
    }

    /// The OpenMetrics text format (for scrapers that ask for it in `Accept`).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.inner.registry);
        out
    }

    /// The Prometheus text format 0.0.4, what `promtool check metrics` and most scrapers
    /// expect by default.
    pub fn encode_prometheus(&self) -> String {
        openmetrics_to_prometheus(&self.encode())
    }
}

/// `Content-Type` of [`Metrics::encode`].
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// `Content-Type` of [`Metrics::encode_prometheus`].
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Rewrites the OpenMetrics text prometheus-client writes into Prometheus text 0.0.4: a
/// counter family `x` is named by its sample `x_total` in HELP and TYPE, `# UNIT` and the
/// closing `# EOF` go. Samples are the same in both.
fn openmetrics_to_prometheus(text: &str) -> String {
    let counters: std::collections::HashSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                out.push_str(prefix);
                out.push_str(name);
                if counters.contains(name) {
                    out.push_str("_total");
                }
                out.push(' ');
                out.push_str(tail);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_names_counters_by_their_samples() {
        let m = Metrics::default();
        m.register_function("demo");
        let text = m.encode_prometheus();
        assert!(text.contains("# TYPE hub_runs_total counter\n"), "{text}");
        assert!(
            text.contains("# HELP hub_runs_total Finished runs"),
            "{text}"
        );
        assert!(
            text.contains("hub_runs_total{function=\"demo\",outcome=\"failure\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE hub_runs_in_flight gauge\n"), "{text}");
        assert!(!text.contains("# EOF"), "{text}");
        assert!(m.encode().ends_with("# EOF\n"));
    }

    #[test]
    fn gate_series_exist_from_the_first_state_and_count_transitions() {
        let m = Metrics::default();
        m.gate_state(false);
        let text = m.encode_prometheus();
        assert!(text.contains("hub_gate_open 0\n"), "{text}");
        assert!(
            text.contains("hub_gate_transitions_total{to=\"open\"} 0\n"),
            "{text}"
        );
        m.gate_transition("open");
        m.gate_state(true);
        let text = m.encode_prometheus();
        assert!(text.contains("hub_gate_open 1\n"), "{text}");
        assert!(
            text.contains("hub_gate_transitions_total{to=\"open\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("hub_gate_transitions_total{to=\"closed\"} 0\n"),
            "{text}"
        );
    }
}

/// A gauge raised while the guard lives: see [`Metrics::in_flight`] and
/// [`Metrics::connection_opened`].
#[derive(Debug)]
pub struct InFlight {
    gauge: Gauge,
    otel: opentelemetry::metrics::UpDownCounter<i64>,
    labels: Arc<[opentelemetry::KeyValue]>,
}

impl InFlight {
    fn start(
        gauge: Gauge,
        otel: opentelemetry::metrics::UpDownCounter<i64>,
        labels: Arc<[opentelemetry::KeyValue]>,
    ) -> Self {
        gauge.inc();
        otel.add(1, &labels);
        InFlight {
            gauge,
            otel,
            labels,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.gauge.dec();
        self.otel.add(-1, &self.labels);
    }
}
