//! The Lambda binary end to end. A minimal AWS Lambda Runtime API on 127.0.0.1 (port 0) hands the
//! real `webhook-gitops` binary the API Gateway v2 events in `tests/fixtures/`, and collects what
//! it posts back. Each answer must match, status and body, what the same request gets as plain
//! HTTP from the in-process router wrapped the way the gateway wraps it.
//!
//! Runtime API protocol (as `lambda_runtime` 1.x speaks it): `GET
//! /2018-06-01/runtime/invocation/next` long-polls for the next event, which comes with the
//! `Lambda-Runtime-Aws-Request-Id`, `-Deadline-Ms`, `-Invoked-Function-Arn` and `-Trace-Id`
//! headers; the result goes to `POST .../invocation/{id}/response` (or `/error`), and a failed
//! start-up to `POST /2018-06-01/runtime/init/error`.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{Method, Request, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hub_runtime::http::{Limits, REQUEST_ID_HEADER, function_layers, standard_layers};
use hub_runtime::store::RunQuery;
use hub_runtime::{Context, Function, HubConfig, Source, Store, Trigger};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tower::ServiceExt;
use webhook_gitops::WebhookGitops;

const SECRET: &str = "test-secret";
const FUNCTION_ARN: &str = "arn:aws:lambda:eu-central-1:123456789012:function:webhook-gitops";
/// Bound on one invocation round trip, the binary's cold start (SQLite migrations) included.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(30);

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
    let mut runtime = RuntimeApi::start().await;
    let mut lambda = LambdaProcess::spawn(runtime.addr, &lambda_dirs);
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
    let mut expected: Vec<String> = CASES.iter().map(|c| c.status.to_string()).collect();
    expected.sort();
    assert_eq!(
        statuses,
        expected,
        "one run per invocation in {}",
        lambda_dirs.data.path().display()
    );

    runtime.assert_nothing_else_posted(&lambda);
    lambda.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Fixtures

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn fixture(name: &str) -> Value {
    let path = fixture_path(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("fixture {} is not JSON: {e}", path.display()))
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
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("HUB_CONFIG", self.empty_config().display().to_string()),
            ("HUB_DATA_DIR", self.data.path().display().to_string()),
            ("GITHUB_WEBHOOK_SECRET", SECRET.to_owned()),
            ("GITOPS_BASE_DIR", self.base.path().display().to_string()),
            ("GITOPS_BRANCH", "main".to_owned()),
        ]
    }

    fn source(&self) -> Source {
        let env: HashMap<String, String> = self
            .env()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        Source::from_parts(None, env).expect("config source")
    }

    async fn store(&self) -> Store {
        let hub = HubConfig::from_source(&self.source()).expect("hub config");
        Store::connect(&hub)
            .await
            .unwrap_or_else(|e| panic!("SQLite store in {}: {e}", hub.data_dir.display()))
    }
}

/// The function's router with its own layers and the shared stack, as the gateway mounts it
/// (and as `hub_runtime::lambda::app` builds it for Lambda).
async fn gateway_router(dirs: &Dirs) -> Router {
    let source = dirs.source();
    let hub = HubConfig::from_source(&source).expect("hub config");
    let store = dirs.store().await;
    let limits = Limits {
        request_timeout: hub.request_timeout,
        max_body_bytes: hub.max_body_bytes,
    };
    let max_concurrency = hub.max_concurrency;
    let ctx = Context::new(source, hub, store, Trigger::Http);
    let runs = ctx.runs.clone();
    let function = WebhookGitops::from_context(ctx).expect("webhook-gitops config");
    assert_eq!(function.configured(), Ok(()), "secret is set");
    let metrics = runs.metrics().clone();
    let router = function_layers(
        function.router(),
        runs,
        function.name(),
        Trigger::Http,
        max_concurrency,
    );
    standard_layers(router, limits, metrics)
}

// ---------------------------------------------------------------------------------------------
// A minimal Lambda Runtime API

/// What the binary posted to the Runtime API.
#[derive(Debug)]
enum Posted {
    Response { request_id: String, body: Value },
    Error { request_id: String, body: Value },
    InitError { body: Value },
    Unexpected { method: Method, uri: Uri },
}

impl std::fmt::Display for Posted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Posted::Response { request_id, body } => write!(f, "response to {request_id}: {body}"),
            Posted::Error { request_id, body } => {
                write!(f, "invocation error for {request_id}: {body}")
            }
            Posted::InitError { body } => write!(f, "init error: {body}"),
            Posted::Unexpected { method, uri } => write!(f, "unexpected request {method} {uri}"),
        }
    }
}

#[derive(Clone)]
struct ApiState {
    /// Events waiting for `GET .../invocation/next`: (request id, event).
    events: Arc<Mutex<mpsc::UnboundedReceiver<(String, Value)>>>,
    posted: mpsc::UnboundedSender<Posted>,
}

struct RuntimeApi {
    addr: SocketAddr,
    events: mpsc::UnboundedSender<(String, Value)>,
    posted: mpsc::UnboundedReceiver<Posted>,
}

impl RuntimeApi {
    async fn start() -> Self {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (posted_tx, posted_rx) = mpsc::unbounded_channel();
        let state = ApiState {
            events: Arc::new(Mutex::new(events_rx)),
            posted: posted_tx,
        };
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(invocation_response),
            )
            .route(
                "/2018-06-01/runtime/invocation/{id}/error",
                post(invocation_error),
            )
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .fallback(unexpected)
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Runtime API on 127.0.0.1:0");
        let addr = listener.local_addr().expect("Runtime API address");
        tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("Runtime API server");
        });
        Self {
            addr,
            events: events_tx,
            posted: posted_rx,
        }
    }

    /// Fails if the binary posted anything besides the answers already taken.
    fn assert_nothing_else_posted(&mut self, lambda: &LambdaProcess) {
        if let Ok(extra) = self.posted.try_recv() {
            panic!(
                "unexpected post to the Runtime API: {extra}\n{}",
                lambda.logs()
            );
        }
    }
}

async fn next_invocation(State(api): State<ApiState>) -> Response {
    // Long poll, as the real API does: the runtime waits here between invocations.
    let Some((request_id, event)) = api.events.lock().await.recv().await else {
        return StatusCode::GONE.into_response();
    };
    let deadline = SystemTime::now() + INVOKE_TIMEOUT;
    let deadline_ms = deadline
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis();
    (
        [
            ("lambda-runtime-aws-request-id", request_id),
            ("lambda-runtime-deadline-ms", deadline_ms.to_string()),
            (
                "lambda-runtime-invoked-function-arn",
                FUNCTION_ARN.to_owned(),
            ),
            (
                "lambda-runtime-trace-id",
                "Root=1-66a0f1c2-3b1e5f7a9c0d2e4f6a8b0c1d;Parent=53995c3f42cd8ad8;Sampled=0"
                    .to_owned(),
            ),
            ("content-type", "application/json".to_owned()),
        ],
        event.to_string(),
    )
        .into_response()
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, axum::Json(json!({"status": "OK"}))).into_response()
}

fn lenient_json(bytes: &Bytes) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

async fn invocation_response(
    State(api): State<ApiState>,
    Path(request_id): Path<String>,
    body: Bytes,
) -> Response {
    let _ = api.posted.send(Posted::Response {
        request_id,
        body: lenient_json(&body),
    });
    accepted()
}

async fn invocation_error(
    State(api): State<ApiState>,
    Path(request_id): Path<String>,
    body: Bytes,
) -> Response {
    let _ = api.posted.send(Posted::Error {
        request_id,
        body: lenient_json(&body),
    });
    accepted()
}

async fn init_error(State(api): State<ApiState>, body: Bytes) -> Response {
    let _ = api.posted.send(Posted::InitError {
        body: lenient_json(&body),
    });
    accepted()
}

async fn unexpected(State(api): State<ApiState>, method: Method, uri: Uri) -> Response {
    let _ = api.posted.send(Posted::Unexpected { method, uri });
    StatusCode::NOT_FOUND.into_response()
}

// ---------------------------------------------------------------------------------------------
// The binary under test

struct LambdaProcess {
    child: Child,
    /// stdout and stderr of the binary, for failure messages.
    output: Arc<std::sync::Mutex<String>>,
    /// The tasks copying stdout and stderr into `output`.
    readers: Vec<JoinHandle<()>>,
}

impl LambdaProcess {
    fn spawn(runtime_api: SocketAddr, dirs: &Dirs) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_webhook-gitops"));
        cmd.env_clear()
            .envs(dirs.env())
            .env("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", webhook_gitops::NAME)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env(
                "AWS_LAMBDA_LOG_STREAM_NAME",
                "2024/07/24/[$LATEST]0123456789abcdef0123456789abcdef",
            )
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/webhook-gitops")
            .env("HOME", dirs.scratch.path())
            .current_dir(dirs.scratch.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        let mut child = cmd.spawn().expect("spawn the webhook-gitops binary");
        let output = Arc::new(std::sync::Mutex::new(String::new()));
        let mut readers = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            readers.push(collect(stdout, output.clone()));
        }
        if let Some(stderr) = child.stderr.take() {
            readers.push(collect(stderr, output.clone()));
        }
        Self {
            child,
            output,
            readers,
        }
    }

    fn logs(&self) -> String {
        let out = self
            .output
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|e| e.into_inner().clone());
        format!("--- webhook-gitops output ---\n{out}--- end of output ---")
    }

    /// Queues `event` under `request_id` and waits for the binary's answer to it.
    async fn invoke(&mut self, runtime: &mut RuntimeApi, request_id: &str, event: &Value) -> Value {
        runtime
            .events
            .send((request_id.to_owned(), event.clone()))
            .expect("Runtime API is running");
        let deadline = Instant::now() + INVOKE_TIMEOUT;
        tokio::select! {
            posted = runtime.posted.recv() => match posted {
                Some(Posted::Response { request_id: id, body }) if id == request_id => body,
                Some(other) => panic!(
                    "invocation {request_id}: expected its response, got {other}\n{}",
                    self.logs()
                ),
                None => unreachable!("the Runtime API state holds the sender"),
            },
            status = self.child.wait() => {
                let status: std::io::Result<ExitStatus> = status;
                // The pipes close with the process; let the readers catch its last words.
                let readers = futures::future::join_all(self.readers.drain(..));
                let _ = tokio::time::timeout(Duration::from_secs(2), readers).await;
                panic!(
                    "webhook-gitops exited ({status:?}) before answering {request_id}\n{}",
                    self.logs()
                )
            }
            () = tokio::time::sleep_until(deadline) => panic!(
                "no answer to {request_id} within {INVOKE_TIMEOUT:?}\n{}",
                self.logs()
            ),
        }
    }

    async fn stop(mut self) {
        self.child.start_kill().expect("kill webhook-gitops");
        self.child.wait().await.expect("reap webhook-gitops");
    }
}

fn collect(
    stream: impl AsyncRead + Unpin + Send + 'static,
    into: Arc<std::sync::Mutex<String>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(mut out) = into.lock() {
                out.push_str(&line);
                out.push('\n');
            }
        }
    })
}
