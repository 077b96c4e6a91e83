//! OTLP traces leave the real binary: an OTLP/HTTP receiver in the test process decodes what
//! `hub-gateway` exports when `OTEL_EXPORTER_OTLP_ENDPOINT` points at it.

mod common;

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use common::{Backend, GitFixture, Setup};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;
use std::sync::{Arc, Mutex};

/// A test gateway's settings, with webhook-gitops configured.
async fn hub_setup(backend: Backend) -> Setup {
    Setup::new(backend)
        .await
        .with(webhook_gitops::testing::env())
}

type Received = Arc<Mutex<Vec<ExportTraceServiceRequest>>>;

async fn receiver() -> (String, Received) {
    let received: Received = Arc::default();
    let sink = received.clone();
    let app = Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let sink = sink.clone();
            async move {
                let req = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                sink.lock().expect("lock").push(req);
                // An empty ExportTraceServiceResponse.
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), received)
}

fn string_attr(
    attrs: &[opentelemetry_proto::tonic::common::v1::KeyValue],
    key: &str,
) -> Option<String> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.clone()),
            _ => None,
        }
    })
}

#[tokio::test]
async fn traces_continue_through_runs_and_steps_to_an_otlp_receiver() {
    let (endpoint, received) = receiver().await;
    let fx = GitFixture::new("infra", "main", Some(""));
    let setup = hub_setup(Backend::Sqlite)
        .await
        .set("GITOPS_BASE_DIR", fx.base.display());
    let setup = setup.set("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint);
    let (mut child, addr) = common::spawn_server(&setup);

    // A signed push carrying a W3C traceparent from an upstream caller.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_id = "00f067aa0ba902b7";
    let new = fx.push_commit("app.yaml", "v2");
    let body = fx.push_event(&new);
    let resp = common::signed_push(&reqwest::Client::new(), &addr, body)
        .header("x-request-id", "trace-me-1")
        .header("traceparent", format!("00-{trace_id}-{parent_id}-01"))
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 202);

    // Shutdown flushes the batch exporter.
    common::terminate(&mut child).await;
    assert_eq!(fx.deployed_head(), new);

    let batches = received.lock().expect("lock").clone();
    assert!(!batches.is_empty(), "no OTLP export arrived");
    let mut spans = Vec::new();
    for rs in batches.iter().flat_map(|b| &b.resource_spans) {
        let resource = rs.resource.as_ref().expect("resource");
        assert_eq!(
            string_attr(&resource.attributes, "service.name").as_deref(),
            Some("hub-gateway")
        );
        spans.extend(rs.scope_spans.iter().flat_map(|s| s.spans.clone()));
    }
    let trace = hex::decode(trace_id).expect("hex");
    let in_trace: Vec<_> = spans.iter().filter(|s| s.trace_id == trace).collect();
    let names: Vec<_> = in_trace.iter().map(|s| s.name.as_str()).collect();

    let http = in_trace
        .iter()
        .find(|s| s.name == "http")
        .unwrap_or_else(|| panic!("http span continues the caller's trace; in trace: {names:?}"));
    assert_eq!(http.parent_span_id, hex::decode(parent_id).expect("hex"));
    assert_eq!(
        string_attr(&http.attributes, "route").as_deref(),
        Some("/api/webhook/gitops")
    );
    assert_eq!(
        string_attr(&http.attributes, "request_id").as_deref(),
        Some("trace-me-1")
    );

    let runs: Vec<_> = in_trace.iter().filter(|s| s.name == "run").collect();
    assert_eq!(
        runs.len(),
        2,
        "the delivery and the sync it started: {names:?}"
    );
    for run in &runs {
        assert_eq!(
            string_attr(&run.attributes, "function").as_deref(),
            Some("webhook-gitops")
        );
        assert_eq!(
            string_attr(&run.attributes, "trigger").as_deref(),
            Some("http")
        );
        assert_eq!(
            string_attr(&run.attributes, "outcome").as_deref(),
            Some("success")
        );
    }
    let delivery = runs
        .iter()
        .find(|r| r.parent_span_id == http.span_id)
        .expect("the delivery's run is a child of the request span");
    let sync = runs
        .iter()
        .find(|r| r.span_id != delivery.span_id)
        .expect("sync run");
    let steps: Vec<_> = in_trace
        .iter()
        .filter(|s| s.name == "step" && s.parent_span_id == sync.span_id)
        .filter_map(|s| string_attr(&s.attributes, "command"))
        .collect();
    assert!(
        steps
            .iter()
            .any(|c| c.ends_with("merge --ff-only --quiet FETCH_HEAD")),
        "git steps are children of the sync run: {steps:?}"
    );
}
