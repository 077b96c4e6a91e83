//! Logs and traces.
//!
//! Logs are JSON, one object a line on stdout (`hub_core::logs`). Traces go to an OTLP collector over HTTP/protobuf when `OTEL_EXPORTER_OTLP_ENDPOINT` is
//! set (e.g. `http://127.0.0.1:4318`), and nowhere otherwise. The exporter uses a blocking HTTP
//! client on the SDK's own batch thread, because the async clients need a Tokio reactor that
//! thread does not have; call [`init`] before starting the Tokio runtime.
//! `RUST_LOG` sets the filter (default `info`).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub const OTLP_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// Flushes and stops trace export when dropped.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            if let Err(e) = p.shutdown() {
                eprintln!("telemetry: trace export did not shut down cleanly: {e}");
            }
        }
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

/// Installs the global subscriber. `service` becomes the OTLP `service.name`.
pub fn init(service: &'static str, output: LogOutput) -> Telemetry {
    let endpoint_set = std::env::var_os(OTLP_ENDPOINT_ENV).is_some_and(|v| !v.is_empty());
    let (provider, otlp_error) = if endpoint_set {
        match opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
        {
            Ok(exporter) => (
                Some(
                    SdkTracerProvider::builder()
                        .with_batch_exporter(exporter)
                        .with_resource(Resource::builder().with_service_name(service).build())
                        .build(),
                ),
                None,
            ),
            Err(e) => (None, Some(e.to_string())),
        }
    } else {
        (None, None)
    };
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(service)));

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
        tracing::warn!(error = %e, "OTLP trace export disabled: exporter could not be built");
    }
    Telemetry { provider }
}
