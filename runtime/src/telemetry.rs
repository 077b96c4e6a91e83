//! Logs, traces and OTLP metrics.
//!
//! Logs are JSON, one object a line on stdout (`hub_core::logs`). With
//! `OTEL_EXPORTER_OTLP_ENDPOINT` set, traces and the hub's own metrics (the instruments of
//! `/metrics`, see [`crate::metrics`]) go to an OpenTelemetry collector over
//! `OTEL_EXPORTER_OTLP_PROTOCOL`: `grpc` or `http/protobuf`. Unset, the protocol follows the
//! endpoint: one without a scheme (`localhost:30317`, as the old hub's `.env` has it) is gRPC,
//! a URL (`http://127.0.0.1:4318`) is HTTP. gRPC is plaintext, as the old hub spoke it.
//! `OTEL_SERVICE_NAME` names the service (default: the binary's name);
//! `OTEL_METRIC_EXPORT_INTERVAL` (ms, default 60000) paces metric export. Nothing is exported
//! without an endpoint.
//!
//! Export runs as tasks on the process's Tokio runtime (the SDK's async-runtime batch span
//! processor and periodic reader): tonic's gRPC client needs a Tokio reactor, which the SDK's
//! own background threads do not have. So [`init`] must be called inside the runtime, and the
//! returned [`Telemetry`] dropped while the runtime still runs, to flush what is pending.
//! `RUST_LOG` sets the log filter (default `info`).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::runtime::Tokio;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::time::Duration;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub const OTLP_PROTOCOL_ENV: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";

/// Flushes and stops trace and metric export when dropped.
#[derive(Debug)]
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
    metrics: Option<SdkMeterProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.traces.take() {
            if let Err(e) = p.shutdown() {
                eprintln!("telemetry: trace export did not shut down cleanly: {e}");
            }
        }
        if let Some(p) = self.metrics.take() {
            if let Err(e) = p.shutdown() {
                eprintln!("telemetry: metric export did not shut down cleanly: {e}");
            }
        }
    }
}

/// How OTLP leaves the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Otlp {
    /// gRPC to this `http://host:port`.
    Grpc(String),
    /// HTTP/protobuf to this base URL (`/v1/traces` and `/v1/metrics` are added).
    Http(String),
}

impl Otlp {
    /// The export settings of `endpoint` and `protocol` (the two environment variables), or why
    /// they cannot be used.
    pub fn from_settings(endpoint: &str, protocol: Option<&str>) -> Result<Self, String> {
        let endpoint = endpoint.trim().trim_end_matches('/');
        let has_scheme = endpoint.contains("://");
        let with_scheme = if has_scheme {
            endpoint.to_owned()
        } else {
            format!("http://{endpoint}")
        };
        match protocol.map(str::trim).filter(|p| !p.is_empty()) {
            Some("grpc") => Self::grpc(with_scheme),
            Some("http/protobuf") => Ok(Otlp::Http(with_scheme)),
            Some(other) => Err(format!(
                "{OTLP_PROTOCOL_ENV}={other:?} is not supported; use grpc or http/protobuf"
            )),
            None if !has_scheme => Self::grpc(with_scheme),
            None => Ok(Otlp::Http(with_scheme)),
        }
    }

    fn grpc(url: String) -> Result<Self, String> {
        if url.starts_with("https://") {
            return Err(
                "gRPC is exported in plaintext (as the old hub did); for TLS use \
                 http/protobuf with an https:// endpoint"
                    .into(),
            );
        }
        Ok(Otlp::Grpc(url))
    }
}

/// Reads W3C `traceparent`/`tracestate` from incoming headers.
struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl opentelemetry::propagation::Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Makes `span` a child of the trace named by the request's `traceparent`, if any, so a trace
/// started by a caller (Grafana, a load balancer, another service) continues through the hub.
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    if !headers.contains_key("traceparent") {
        return;
    }
    let parent =
        opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
    let _ = span.set_parent(parent);
}

pub use hub_core::logs::LogOutput;

/// Installs the global subscriber and, with an OTLP endpoint, the trace and meter providers.
/// `service` becomes the OTLP `service.name` unless `OTEL_SERVICE_NAME` says otherwise. Call
/// it inside the Tokio runtime (see the module docs).
pub fn init(service: &'static str, output: LogOutput) -> Telemetry {
    let env = hub_core::config::OtelEnv::from_env();
    let otlp = env
        .endpoint
        .map(|e| Otlp::from_settings(&e, env.protocol.as_deref()));
    let name = env.service_name.unwrap_or_else(|| service.to_owned());
    let resource = Resource::builder().with_service_name(name.clone()).build();
    let interval = env
        .metric_export_interval
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map_or(Duration::from_secs(60), Duration::from_millis);
    let (mut traces, mut metrics, mut otlp_error) = (None, None, None);
    match otlp {
        None => {}
        Some(Err(e)) => otlp_error = Some(e),
        Some(Ok(otlp)) => match providers(&otlp, resource, interval) {
            Ok((t, m)) => {
                opentelemetry::global::set_meter_provider(m.clone());
                (traces, metrics) = (Some(t), Some(m));
            }
            Err(e) => otlp_error = Some(e),
        },
    }
    let otel = traces
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(name)));

    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    // A second init (tests building several apps in one process) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(hub_core::logs::filter())
        .with(hub_core::logs::json_layer(output))
        .with(otel)
        .try_init();
    if let Some(e) = otlp_error {
        tracing::warn!(error = %e, "OTLP export disabled");
    }
    Telemetry { traces, metrics }
}

/// The trace and meter providers exporting to `otlp`, their batches sent from Tokio tasks.
fn providers(
    otlp: &Otlp,
    resource: Resource,
    interval: Duration,
) -> Result<(SdkTracerProvider, SdkMeterProvider), String> {
    use opentelemetry_otlp::{MetricExporter, SpanExporter};
    let built = |e: opentelemetry_otlp::ExporterBuildError| e.to_string();
    let (spans, metrics) = match otlp {
        Otlp::Grpc(url) => (
            SpanExporter::builder()
                .with_tonic()
                .with_endpoint(url)
                .build()
                .map_err(built)?,
            MetricExporter::builder()
                .with_tonic()
                .with_endpoint(url)
                .build()
                .map_err(built)?,
        ),
        Otlp::Http(base) => (
            SpanExporter::builder()
                .with_http()
                .with_endpoint(format!("{base}/v1/traces"))
                .build()
                .map_err(built)?,
            MetricExporter::builder()
                .with_http()
                .with_endpoint(format!("{base}/v1/metrics"))
                .build()
                .map_err(built)?,
        ),
    };
    let processor =
        opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
            spans, Tokio,
        )
        .build();
    let traces = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource.clone())
        .build();
    let reader =
        opentelemetry_sdk::metrics::periodic_reader_with_async_runtime::PeriodicReader::builder(
            metrics, Tokio,
        )
        .with_interval(interval)
        .build();
    let metrics = SdkMeterProvider::builder()
        .with_reader(reader)
        .with_resource(resource)
        .build();
    Ok((traces, metrics))
}

#[cfg(test)]
mod tests {
    use super::Otlp;

    #[test]
    fn the_protocol_follows_the_setting_or_else_the_endpoint() {
        let cases = [
            (
                "localhost:30317",
                None,
                Ok(Otlp::Grpc("http://localhost:30317".into())),
            ),
            (
                "http://127.0.0.1:4318/",
                None,
                Ok(Otlp::Http("http://127.0.0.1:4318".into())),
            ),
            (
                "localhost:30318",
                Some("http/protobuf"),
                Ok(Otlp::Http("http://localhost:30318".into())),
            ),
            (
                "http://otel:4317",
                Some("grpc"),
                Ok(Otlp::Grpc("http://otel:4317".into())),
            ),
        ];
        for (endpoint, protocol, want) in cases {
            assert_eq!(
                Otlp::from_settings(endpoint, protocol),
                want,
                "{endpoint} {protocol:?}"
            );
        }
        for (endpoint, protocol) in [
            ("h:1", Some("http/json")),
            ("https://otel:4317", Some("grpc")),
        ] {
            assert!(
                Otlp::from_settings(endpoint, protocol).is_err(),
                "{endpoint} {protocol:?}"
            );
        }
    }
}
