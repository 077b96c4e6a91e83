//! The OpenTelemetry side of the hub's instruments: the same names as the Prometheus registry
//! (without the `_total` Prometheus adds to counters), on OpenTelemetry's global meter.

use super::{FUNNEL_REFUSED_HELP, GATE_OPEN_HELP, GATE_TRANSITIONS_HELP};

/// The OpenTelemetry side of each instrument.
#[derive(Debug)]
pub(super) struct Otel {
    pub(super) runs: opentelemetry::metrics::Counter<u64>,
    pub(super) duration: opentelemetry::metrics::Histogram<f64>,
    pub(super) in_flight: opentelemetry::metrics::UpDownCounter<i64>,
    pub(super) http: opentelemetry::metrics::Counter<u64>,
    pub(super) last_success: opentelemetry::metrics::Gauge<f64>,
    pub(super) skips: opentelemetry::metrics::Counter<u64>,
    pub(super) connections_open: opentelemetry::metrics::UpDownCounter<i64>,
    pub(super) connections_refused: opentelemetry::metrics::Counter<u64>,
    pub(super) funnel_refused: opentelemetry::metrics::Counter<u64>,
    pub(super) backup_last_success: opentelemetry::metrics::Gauge<f64>,
    pub(super) backup_bytes: opentelemetry::metrics::Gauge<i64>,
    pub(super) gate_open: opentelemetry::metrics::Gauge<i64>,
    pub(super) gate_transitions: opentelemetry::metrics::Counter<u64>,
}

impl Otel {
    pub(super) fn new() -> Self {
        let m = opentelemetry::global::meter("hub");
        Otel {
            runs: m
                .u64_counter("hub_runs")
                .with_description("Finished runs by function and outcome")
                .build(),
            duration: m
                .f64_histogram("hub_run_duration_seconds")
                .with_unit("s")
                .with_description("Run duration by function")
                .with_boundaries((0..18).map(|i| 0.005 * 2f64.powi(i)).collect())
                .build(),
            in_flight: m
                .i64_up_down_counter("hub_runs_in_flight")
                .with_description("Runs going on now")
                .build(),
            http: m
                .u64_counter("hub_http_requests")
                .with_description("HTTP requests by matched route and status")
                .build(),
            last_success: m
                .f64_gauge("hub_last_success_timestamp_seconds")
                .with_description("Unix time of the last successful run by function")
                .build(),
            skips: m
                .u64_counter("hub_scheduler_skips")
                .with_description("Scheduled ticks skipped, by function and reason")
                .build(),
            connections_open: m
                .i64_up_down_counter("hub_http_connections_open")
                .with_description("HTTP connections being served now")
                .build(),
            connections_refused: m
                .u64_counter("hub_http_connections_refused")
                .with_description("HTTP connections refused because the connection cap was reached")
                .build(),
            funnel_refused: m
                .u64_counter("hub_funnel_refused")
                .with_description(FUNNEL_REFUSED_HELP)
                .build(),
            backup_last_success: m
                .f64_gauge("hub_backup_last_success_timestamp_seconds")
                .with_description("Unix time of the newest good backup, by backup set")
                .build(),
            backup_bytes: m
                .i64_gauge("hub_backup_bytes")
                .with_description("Size of the newest good backup, by backup set")
                .build(),
            gate_open: m
                .i64_gauge("hub_gate_open")
                .with_description(GATE_OPEN_HELP)
                .build(),
            gate_transitions: m
                .u64_counter("hub_gate_transitions")
                .with_description(GATE_TRANSITIONS_HELP)
                .build(),
        }
    }
}

pub(super) fn kv(key: &'static str, value: &str) -> opentelemetry::KeyValue {
    opentelemetry::KeyValue::new(key, value.to_owned())
}
