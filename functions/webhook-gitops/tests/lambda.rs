//! The Lambda binary end to end. The testkit's Lambda Runtime API hands the real `webhook-gitops`
//! binary the API Gateway v2 events in `tests/fixtures/`, and collects what it posts back. Each
//! answer must match, status and body, what the same request gets as plain HTTP from the
//! in-process router built the way the Lambda entry builds it. A schedule event runs a resync.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hub_runtime::http::REQUEST_ID_HEADER;
use hub_runtime::store::RunQuery;
use hub_runtime::{HubConfig, Source, Store};
use hub_testkit::lambda::{LambdaProcess, schedule_event};
use serde_json::{Value, json};
use std::path::PathBuf;
use tempfile::TempDir;
use tower::ServiceExt;

/// The secret the JSON fixtures are signed with (tests/fixtures/README.md).
const SECRET: &str = "test-secret";

/// One fixture and what both code paths must answer for it.
struct Case {
    fixture: &'static str,
    /// The key the fixture's `x-hub-signature-256` was computed with.
    signed_with: &'static str,
    status: u16,
    check: fn(&Value),
}

const CASES: &[Case] = &[
    Case {
        fixture: "apigw-v2-ping.json",
        signed_with: SECRET,
        status: 200,
        check: |body| assert_eq!(body, &json!({"status": "pong"})),
    },
    Case {
        fixture: "apigw-v2-ping-base64.json",
        signed_with: SECRET,
        status: 200,
        check: |body| assert_eq!(body, &json!({"status": "pong"})),
    },
    Case {
        fixture: "apigw-v2-ping-bad-signature.json",
        signed_with: "not-the-secret",
        status: 401,
        check: |body| {
            assert_eq!(body["error"], "signature does not match", "{body}");
            assert!(
                body["request_id"].is_string(),
                "error bodies carry the request id: {body}"
            );
        },
    },
    Case {
        fixture: "apigw-v2-push-dev.json",
        signed_with: SECRET,
        status: 200,
        check: |body| {
            assert_eq!(body["status"], "ignored", "{body}");
            assert_eq!(
                body["message"],
                "ignored: push to refs/heads/dev, not refs/heads/main"
            );
        },
    },
];

#[tokio::test]
async fn lambda_binary_answers_api_gateway_v2_events_like_the_router() {
    let lambda_dirs = Dirs::new();
    let router_dirs = Dirs::new();
    let (mut runtime, mut lambda) = LambdaProcess::start(
        webhook_gitops::NAME,
        env!("CARGO_BIN_EXE_webhook-gitops"),
        &lambda_dirs.env(),
        lambda_dirs.scratch.path(),
    )
    .await;
    let router = gateway_router(&router_dirs).await;

    for (n, case) in CASES.iter().enumerate() {
        let event = fixture(case.fixture);
        check_fixture_signature(case, &event);

        let request_id = format!("00000000-0000-4000-8000-{n:012}");
        let raw = lambda.invoke(&mut runtime, &request_id, &event).await;
        let via_lambda = Answer::from_lambda(case.fixture, &raw);
        let via_router = Answer::from_router(router.clone(), http_request(&event)).await;

        assert_eq!(
            via_lambda.status, case.status,
            "{}: Lambda statusCode (response: {raw})",
            case.fixture
        );
        assert_eq!(
            via_lambda.status, via_router.status,
            "{}: Lambda and router status differ (router body: {})",
            case.fixture, via_router.body
        );
        assert_eq!(
            via_lambda.content_type, via_router.content_type,
            "{}: content-type",
            case.fixture
        );
        for answer in [&via_lambda, &via_router] {
            if let Some(id) = answer.body.get("request_id") {
                assert_eq!(
                    id.as_str(),
                    answer.request_id.as_deref(),
                    "{}: body request_id matches the x-request-id header",
                    case.fixture
                );
            }
        }
        assert_eq!(
            without_request_id(&via_lambda.body),
            without_request_id(&via_router.body),
            "{}: Lambda and router bodies differ (request ids aside)",
            case.fixture
        );
        (case.check)(&via_lambda.body);
    }

    // The binary kept its run history in the embedded SQLite store under HUB_DATA_DIR.
    let runs = lambda_dirs.store().await;
    let runs = runs
        .list_runs(&RunQuery {
            function: Some(webhook_gitops::NAME.to_owned()),
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("list runs recorded by the Lambda binary");
    let mut statuses: Vec<String> = runs
        .iter()
        .map(|r| {
            assert_eq!(r.trigger, "lambda", "run recorded by the binary: {r:?}");
            r.summary.split(' ').next().unwrap_or("").to_owned()
        })
        .collect();
    statuses.sort();
    // Refusals (the bad signature's 401) are counted in /metrics, not stored as runs.
    let mut expected: Vec<String> = CASES
        .iter()
        .filter(|c| c.status != 401)
        .map(|c| c.status.to_string())
        .collect();
    expected.sort();
    assert_eq!(
        statuses,
        expected,
        "one run per invocation that was not refused, in {}",
        lambda_dirs.data.path().display()
    );

    runtime.assert_nothing_else_posted(&lambda);
    lambda.stop().await;
}

/// A schedule (one an operator may attach; template.yaml has none for this function) resyncs
/// every opted-in checkout, as `hub-gateway invoke webhook-gitops` does: with none under the
/// base directory the run is skipped, saying where it looked.
#[tokio::test]
async fn a_schedule_event_resyncs_opted_in_checkouts() {
    let dirs = Dirs::new();
    let (mut runtime, mut lambda) = LambdaProcess::start(
        webhook_gitops::NAME,
        env!("CARGO_BIN_EXE_webhook-gitops"),
        &dirs.env(),
        dirs.scratch.path(),
    )
    .await;
    let event = schedule_event("eventbridge-scheduled.json");
    let answer = lambda.invoke(&mut runtime, "req-1", &event).await;
    assert_eq!(
        answer,
        json!({
            "function": webhook_gitops::NAME,
            "outcome": "skipped",
            "summary": format!("no opted-in checkouts under {}", dirs.base.path().display()),
        })
    );
    runtime.assert_nothing_else_posted(&lambda);
    lambda.stop().await;

    let runs = dirs
        .store()
        .await
        .list_runs(&RunQuery {
            function: Some(webhook_gitops::NAME.to_owned()),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("runs");
    let seen: Vec<(&str, &str)> = runs
        .iter()
        .map(|r| (r.trigger.as_str(), r.outcome.as_str()))
        .collect();
    assert_eq!(seen, [("schedule", "skipped")]);
}

// ---------------------------------------------------------------------------------------------
// Fixtures

fn fixture(name: &str) -> Value {
    hub_testkit::lambda::fixture(env!("CARGO_MANIFEST_DIR"), name)
}

/// The raw request body an event carries (base64-decoded when `isBase64Encoded`).
fn event_body(event: &Value) -> Vec<u8> {
    let body = event["body"].as_str().unwrap_or("");
    if event["isBase64Encoded"].as_bool().unwrap_or(false) {
        BASE64
            .decode(body)
            .expect("isBase64Encoded event has a base64 body")
    } else {
        body.as_bytes().to_vec()
    }
}

/// The hard-coded signature must be the one its case claims, so an edited body cannot silently
/// turn a "good signature" case into a 401 (or the other way round).
fn check_fixture_signature(case: &Case, event: &Value) {
    let header = event["headers"]["x-hub-signature-256"]
        .as_str()
        .unwrap_or_else(|| panic!("{}: no x-hub-signature-256 header", case.fixture));
    let body = event_body(event);
    assert_eq!(
        header,
        webhook_gitops::signature::sign(case.signed_with.as_bytes(), &body),
        "{}: signature is not HMAC-SHA256 of the body under {:?} (see tests/fixtures/README.md)",
        case.fixture,
        case.signed_with
    );
    let declared = event["headers"]["content-length"].as_str();
    assert_eq!(
        declared,
        Some(body.len().to_string().as_str()),
        "{}: content-length header",
        case.fixture
    );
}

/// The same request as plain HTTP, the way it would reach the gateway.
fn http_request(event: &Value) -> Request<Body> {
    let method = event
        .pointer("/requestContext/http/method")
        .and_then(Value::as_str)
        .expect("requestContext.http.method");
    let mut uri = event["rawPath"].as_str().expect("rawPath").to_owned();
    if let Some(query) = event["rawQueryString"].as_str().filter(|q| !q.is_empty()) {
        uri.push('?');
        uri.push_str(query);
    }
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in event["headers"].as_object().expect("headers object") {
        builder = builder.header(name.as_str(), value.as_str().expect("header value string"));
    }
    builder
        .body(Body::from(event_body(event)))
        .expect("valid HTTP request from fixture")
}

// ---------------------------------------------------------------------------------------------
// Answers from both paths

#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: Option<String>,
    request_id: Option<String>,
    body: Value,
}

impl Answer {
    fn from_lambda(fixture: &str, resp: &Value) -> Self {
        // `cookies` exists only in the API Gateway v2 response shape: lambda_http took the
        // event for what it is (not a REST API event or a pass-through payload).
        assert!(
            resp.get("cookies").is_some(),
            "{fixture}: expected an API Gateway v2 (HTTP API) response, got {resp}"
        );
        let status = resp["statusCode"]
            .as_u64()
            .and_then(|s| u16::try_from(s).ok())
            .unwrap_or_else(|| panic!("{fixture}: no statusCode in {resp}"));
        let header = |name: &str| {
            resp["headers"]
                .as_object()
                .and_then(|h| h.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
                .and_then(|(_, v)| v.as_str())
                .map(str::to_owned)
        };
        let text = resp["body"].as_str().unwrap_or("");
        let bytes = if resp["isBase64Encoded"].as_bool().unwrap_or(false) {
            BASE64
                .decode(text)
                .unwrap_or_else(|e| panic!("{fixture}: response body is not base64: {e}"))
        } else {
            text.as_bytes().to_vec()
        };
        Self {
            status,
            content_type: header("content-type"),
            request_id: header(REQUEST_ID_HEADER.as_str()),
            body: json_body(&format!("{fixture}: Lambda"), &bytes),
        }
    }

    async fn from_router(router: Router, req: Request<Body>) -> Self {
        let resp = router.oneshot(req).await.expect("router is infallible");
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header(header::CONTENT_TYPE.as_str());
        let request_id = header(REQUEST_ID_HEADER.as_str());
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("router response body");
        Self {
            status,
            content_type,
            request_id,
            body: json_body("router", &bytes),
        }
    }
}

fn json_body(what: &str, bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| {
        panic!(
            "{what} response body is not JSON ({e}): {:?}",
            String::from_utf8_lossy(bytes)
        )
    })
}

/// Request ids are fresh per request, so they are compared separately.
fn without_request_id(body: &Value) -> Value {
    let mut body = body.clone();
    if let Some(obj) = body.as_object_mut() {
        obj.remove("request_id");
    }
    body
}

// ---------------------------------------------------------------------------------------------
// Settings, stores and the in-process router

/// Scratch directories for one side of the comparison.
struct Dirs {
    data: TempDir,
    base: TempDir,
    /// The binary's working directory and HOME, holding the empty `hub.toml` that `HUB_CONFIG`
    /// names, so neither a `./hub.toml` nor the developer's settings can leak in.
    scratch: TempDir,
}

impl Dirs {
    fn new() -> Self {
        let dirs = Self {
            data: TempDir::new().expect("data tempdir"),
            base: TempDir::new().expect("gitops base tempdir"),
            scratch: TempDir::new().expect("scratch tempdir"),
        };
        std::fs::write(dirs.empty_config(), "").expect("write empty hub.toml");
        dirs
    }

    fn empty_config(&self) -> PathBuf {
        self.scratch.path().join("empty-hub.toml")
    }

    /// The function's settings, shared by the binary's environment and the router's `Source`.
    fn env(&self) -> Vec<(String, String)> {
        [
            ("HUB_CONFIG", self.empty_config().display().to_string()),
            ("HUB_DATA_DIR", self.data.path().display().to_string()),
            ("GITHUB_WEBHOOK_SECRET", SECRET.to_owned()),
            ("GITOPS_BASE_DIR", self.base.path().display().to_string()),
            ("GITOPS_BRANCH", "main".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    fn source(&self) -> Source {
        Source::from_parts(None, self.env().into_iter().collect()).expect("config source")
    }

    async fn store(&self) -> Store {
        let hub = HubConfig::from_source(&self.source()).expect("hub config");
        Store::connect(&hub)
            .await
            .unwrap_or_else(|e| panic!("SQLite store in {}: {e}", hub.data_dir.display()))
    }
}

/// The function's app as `hub_runtime::lambda::app` builds it for the binary, in process.
async fn gateway_router(dirs: &Dirs) -> Router {
    hub_runtime::lambda::app_from_source(dirs.source(), webhook_gitops::REGISTRATION)
        .await
        .expect("webhook-gitops app")
}
