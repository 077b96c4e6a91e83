//! Telemetry the old hub's OpenTelemetry collector accepts: the real binary exports traces and
//! its own metrics over OTLP gRPC (to an endpoint without a scheme, as the old `.env` has it) and
//! over OTLP HTTP/protobuf, to receivers in the test (tonic for gRPC, axum for HTTP); the
//! service is named by `OTEL_SERVICE_NAME`; `/api/trace/synthetic/{id}` gives every request a
//! span with a simulated step.

mod common;

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use common::{Backend, Setup};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a receiver was sent.
#[derive(Clone, Default)]
struct Received {
    traces: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    metrics: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
}

impl Received {
    /// (service.name, span name) of every span.
    fn spans(&self) -> Vec<(String, String)> {
        let traces = self.traces.lock().expect("lock");
        let mut out = Vec::new();
        for rs in traces.iter().flat_map(|t| &t.resource_spans) {
            let service = rs
                .resource
                .as_ref()
                .and_then(|r| string_attr(&r.attributes, "service.name"))
                .unwrap_or_default();
            for span in rs.scope_spans.iter().flat_map(|s| &s.spans) {
                out.push((service.clone(), span.name.clone()));
            }
        }
        out
    }

    /// Names of every metric, with the service that sent it.
    fn metric_names(&self) -> BTreeSet<(String, String)> {
        let metrics = self.metrics.lock().expect("lock");
        let mut out = BTreeSet::new();
        for rm in metrics.iter().flat_map(|m| &m.resource_metrics) {
            let service = rm
                .resource
                .as_ref()
                .and_then(|r| string_attr(&r.attributes, "service.name"))
                .unwrap_or_default();
            for m in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
                out.insert((service.clone(), m.name.clone()));
            }
        }
        out
    }
}

fn string_attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.clone()),
            _ => None,
        }
    })
}

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.traces.lock().expect("lock").push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.metrics
            .lock()
            .expect("lock")
            .push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// An OTLP gRPC receiver; returns `host:port` (no scheme) and what it receives.
async fn grpc_receiver() -> (String, Received) {
    let received = Received::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(received.clone()))
        .add_service(MetricsServiceServer::new(received.clone()))
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
    tokio::spawn(server);
    (addr.to_string(), received)
}

/// An OTLP HTTP/protobuf receiver; returns its base URL and what it receives.
async fn http_receiver() -> (String, Received) {
    let received = Received::default();
    let (traces, metrics) = (received.traces.clone(), received.metrics.clone());
    let app = Router::new()
        .route(
            "/v1/traces",
            post(move |body: Bytes| async move {
                let req = ExportTraceServiceRequest::decode(body).expect("OTLP traces");
                traces.lock().expect("lock").push(req);
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }),
        )
        .route(
            "/v1/metrics",
            post(move |body: Bytes| async move {
                let req = ExportMetricsServiceRequest::decode(body).expect("OTLP metrics");
                metrics.lock().expect("lock").push(req);
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), received)
}

/// Runs the binary against `endpoint`, asks for synthetic traces, waits for a metric export,
/// stops it, and checks what arrived.
async fn exports_to(endpoint: &str, protocol: Option<&str>, received: &Received) {
    let mut setup = Setup::new(Backend::Sqlite)
        .await
        .set("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .set("OTEL_SERVICE_NAME", "observability-hub")
        .set("OTEL_METRIC_EXPORT_INTERVAL", "300");
    if let Some(p) = protocol {
        setup = setup.set("OTEL_EXPORTER_OTLP_PROTOCOL", p);
    }
    let (mut child, addr) = common::spawn_server(&setup);
    let client = reqwest::Client::new();
    for id in ["7", "8"] {
        let started = Instant::now();
        let body: serde_json::Value = client
            .get(format!("http://{addr}/api/trace/synthetic/{id}"))
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("JSON");
        assert_eq!(body["status"], "success", "{body}");
        assert_eq!(body["synthetic_id"], id);
        let ms = body["latency_ms"].as_u64().expect("latency_ms");
        assert!((5..=50).contains(&ms), "{ms}");
        assert!(
            started.elapsed() >= Duration::from_millis(ms),
            "the step took its time"
        );
    }
    // Metrics go out every 300 ms; wait for the request counter to arrive.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !received
        .metric_names()
        .iter()
        .any(|(_, name)| name == "hub_http_requests")
    {
        assert!(
            Instant::now() < deadline,
            "no metric export arrived: {:?}",
            received.metric_names()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Shutdown flushes the spans.
    assert!(common::terminate(&mut child).await.success());

    let spans = received.spans();
    let steps = spans.iter().filter(|(_, n)| n == "synthetic step").count();
    assert_eq!(steps, 2, "a step span per request: {spans:?}");
    assert!(
        spans.iter().any(|(_, n)| n == "http"),
        "the request spans: {spans:?}"
    );
    assert!(
        spans
            .iter()
            .all(|(service, _)| service == "observability-hub"),
        "OTEL_SERVICE_NAME names the service: {spans:?}"
    );
    let metrics = received.metric_names();
    for name in ["hub_http_requests", "hub_http_connections_open"] {
        assert!(
            metrics.contains(&("observability-hub".to_owned(), name.to_owned())),
            "{name} in {metrics:?}"
        );
    }
}

#[tokio::test]
async fn grpc_to_an_endpoint_without_a_scheme_as_the_old_env_has_it() {
    let (endpoint, received) = grpc_receiver().await;
    assert!(!endpoint.contains("://"));
    exports_to(&endpoint, None, &received).await;
}

#[tokio::test]
async fn grpc_when_the_protocol_says_so() {
    let (endpoint, received) = grpc_receiver().await;
    exports_to(&format!("http://{endpoint}"), Some("grpc"), &received).await;
}

#[tokio::test]
async fn http_protobuf_traces_and_metrics() {
    let (endpoint, received) = http_receiver().await;
    exports_to(&endpoint, Some("http/protobuf"), &received).await;
}
