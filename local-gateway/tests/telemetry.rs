//! OTLP traces leave the real binary: an OTLP/HTTP receiver in the test process decodes what
//! `hub-gateway` exports when `OTEL_EXPORTER_OTLP_ENDPOINT` points at it.

mod common;

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use common::{Backend, Setup};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
async fn request_spans_reach_an_otlp_receiver() {
    let (endpoint, received) = receiver().await;
    let setup = Setup::new(Backend::Sqlite).await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_hub-gateway"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", setup.data_dir.path())
        .current_dir(setup.data_dir.path())
        .envs(&setup.env)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .args(["serve", "--port", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let addr = loop {
        let line = lines.next().expect("gateway exited").expect("read");
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
        assert_ne!(v["level"], "WARN", "no exporter warning expected: {line}");
        if v["message"] == "hub-gateway listening" {
            break v["addr"].as_str().expect("addr").to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});

    let resp = reqwest::Client::new()
        .post(format!("http://{addr}/api/webhook/gitops"))
        .header("x-request-id", "trace-me-1")
        .body("{}")
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 401);

    // Shutdown flushes the batch exporter.
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill")
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "gateway did not exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let batches = received.lock().expect("lock").clone();
    assert!(!batches.is_empty(), "no OTLP export arrived");
    let mut found = false;
    for rs in batches.iter().flat_map(|b| &b.resource_spans) {
        let resource = rs.resource.as_ref().expect("resource");
        assert_eq!(
            string_attr(&resource.attributes, "service.name").as_deref(),
            Some("hub-gateway")
        );
        for span in rs.scope_spans.iter().flat_map(|s| &s.spans) {
            if span.name == "http"
                && string_attr(&span.attributes, "route").as_deref() == Some("/api/webhook/gitops")
            {
                assert_eq!(
                    string_attr(&span.attributes, "request_id").as_deref(),
                    Some("trace-me-1")
                );
                assert_eq!(
                    string_attr(&span.attributes, "method").as_deref(),
                    Some("POST")
                );
                found = true;
            }
        }
    }
    assert!(found, "no http span for the webhook route in {batches:#?}");
}
