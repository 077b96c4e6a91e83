//! A minimal AWS Lambda Runtime API on 127.0.0.1 (port 0), and a function's Lambda binary driven
//! by it: events go in, whatever the binary posts back comes out.
//!
//! Runtime API protocol (as `lambda_runtime` 1.x speaks it): `GET
//! /2018-06-01/runtime/invocation/next` long-polls for the next event, which comes with the
//! `Lambda-Runtime-Aws-Request-Id`, `-Deadline-Ms`, `-Invoked-Function-Arn` and `-Trace-Id`
//! headers; the result goes to `POST .../invocation/{id}/response` (or `/error`), and a failed
//! start-up to `POST /2018-06-01/runtime/init/error`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Bound on one invocation round trip, the binary's cold start (migrations) included.
pub const INVOKE_TIMEOUT: Duration = Duration::from_secs(30);

/// What the binary posted to the Runtime API.
#[derive(Debug)]
pub enum Posted {
    Response { request_id: String, body: Value },
    Error { request_id: String, body: Value },
    InitError { body: Value },
    Unexpected { method: Method, uri: Uri },
}

/// The environment of a Lambda binary under test: its state in `dir` (`HUB_DATA_DIR`), an empty
/// `hub.toml` there (so none from the working directory leaks in), then `extra`.
pub fn function_env(dir: &FsPath, extra: &[(&str, String)]) -> Vec<(String, String)> {
    let config = dir.join("empty-hub.toml");
    std::fs::write(&config, "").expect("write an empty hub.toml");
    [
        ("HUB_CONFIG".to_owned(), config.display().to_string()),
        ("HUB_DATA_DIR".to_owned(), dir.display().to_string()),
    ]
    .into_iter()
    .chain(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())))
    .collect()
}

/// An event fixture: `<manifest_dir>/tests/fixtures/<name>`, parsed as JSON. Pass
/// `env!("CARGO_MANIFEST_DIR")` of the crate whose test it is.
pub fn fixture(manifest_dir: &str, name: &str) -> Value {
    read_json(&FsPath::new(manifest_dir).join("tests/fixtures").join(name))
}

/// A schedule event every function's Lambda test sends, from `testkit/fixtures/` (its README
/// says what each is): the adapter, not the function, tells them apart from other events.
pub fn schedule_event(name: &str) -> Value {
    read_json(
        &FsPath::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(name),
    )
}

fn read_json(path: &FsPath) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("fixture {} is not JSON: {e}", path.display()))
}

/// The binary a Lambda test drives for `function`: `$HUB_LAMBDA_DIR/<function>/bootstrap` when
/// that is set (the release package `make lambda-build` made; `make check-lambda` sets it), else
/// `built`, the test's own debug build: pass `env!("CARGO_BIN_EXE_<function>")`.
pub fn bootstrap(function: &str, built: &str) -> PathBuf {
    let Some(dir) = &crate::config::settings().lambda_dir else {
        return PathBuf::from(built);
    };
    // Tests run in their crate's folder, where a relative path would name something else.
    assert!(
        dir.is_absolute(),
        "HUB_LAMBDA_DIR must be absolute, not {}",
        dir.display()
    );
    let path = dir.join(function).join("bootstrap");
    // No fallback to the debug build: that would pass without testing the package.
    assert!(
        path.is_file(),
        "HUB_LAMBDA_DIR is set but there is no {}: run make lambda-build",
        path.display()
    );
    path
}

/// Status and JSON body of an API Gateway v2 / Function URL response, as lambda_http shapes it.
pub fn http_answer(resp: &Value) -> (u64, Value) {
    assert_ne!(
        resp["isBase64Encoded"], true,
        "a JSON answer comes as text: {resp}"
    );
    let body = resp["body"]
        .as_str()
        .unwrap_or_else(|| panic!("no body: {resp}"));
    (
        resp["statusCode"]
            .as_u64()
            .unwrap_or_else(|| panic!("no statusCode: {resp}")),
        serde_json::from_str(body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {body}")),
    )
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
    function_arn: Arc<str>,
}

#[derive(Debug)]
pub struct RuntimeApi {
    pub addr: SocketAddr,
    events: mpsc::UnboundedSender<(String, Value)>,
    posted: mpsc::UnboundedReceiver<Posted>,
}

impl RuntimeApi {
    pub async fn start(function: &str) -> Self {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (posted_tx, posted_rx) = mpsc::unbounded_channel();
        let state = ApiState {
            events: Arc::new(Mutex::new(events_rx)),
            posted: posted_tx,
            function_arn: format!("arn:aws:lambda:eu-central-1:123456789012:function:{function}")
                .into(),
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
    pub fn assert_nothing_else_posted(&mut self, lambda: &LambdaProcess) {
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
                api.function_arn.to_string(),
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

/// A function's Lambda binary, running against a [`RuntimeApi`].
#[derive(Debug)]
pub struct LambdaProcess {
    name: String,
    child: Child,
    /// stdout and stderr of the binary, for failure messages.
    output: Arc<std::sync::Mutex<String>>,
    /// The tasks copying stdout and stderr into `output`.
    readers: Vec<JoinHandle<()>>,
}

impl LambdaProcess {
    /// Starts `binary` with exactly `env` (plus `PATH` and the variables Lambda sets), in `dir`,
    /// which is also its `HOME`.
    pub fn spawn(
        binary: &FsPath,
        function: &str,
        runtime_api: SocketAddr,
        env: &[(String, String)],
        dir: &FsPath,
    ) -> Self {
        let mut cmd = Command::new(binary);
        cmd.env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", function)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env(
                "AWS_LAMBDA_LOG_STREAM_NAME",
                "2024/07/24/[$LATEST]0123456789abcdef0123456789abcdef",
            )
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{function}"),
            )
            .env("HOME", dir)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(path) = &crate::config::settings().path {
            cmd.env("PATH", path);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
        let output = Arc::new(std::sync::Mutex::new(String::new()));
        let mut readers = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            readers.push(collect(stdout, output.clone()));
        }
        if let Some(stderr) = child.stderr.take() {
            readers.push(collect(stderr, output.clone()));
        }
        Self {
            name: function.to_owned(),
            child,
            output,
            readers,
        }
    }

    /// A Runtime API for `function`, and its binary ([`bootstrap`] of `built`) started against
    /// it as [`spawn`](Self::spawn) does.
    pub async fn start(
        function: &str,
        built: &str,
        env: &[(String, String)],
        dir: &FsPath,
    ) -> (RuntimeApi, Self) {
        let runtime = RuntimeApi::start(function).await;
        let binary = bootstrap(function, built);
        let lambda = Self::spawn(&binary, function, runtime.addr, env, dir);
        (runtime, lambda)
    }

    pub fn logs(&self) -> String {
        let out = self
            .output
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|e| e.into_inner().clone());
        format!("--- {} output ---\n{out}--- end of output ---", self.name)
    }

    /// Queues `event` under `request_id` and returns what the binary posted for it (a response
    /// or an invocation error).
    pub async fn invoke_raw(
        &mut self,
        runtime: &mut RuntimeApi,
        request_id: &str,
        event: &Value,
    ) -> Posted {
        runtime
            .events
            .send((request_id.to_owned(), event.clone()))
            .expect("Runtime API is running");
        let deadline = Instant::now() + INVOKE_TIMEOUT;
        tokio::select! {
            posted = runtime.posted.recv() => match posted {
                Some(p) => match &p {
                    Posted::Response { request_id: id, .. } | Posted::Error { request_id: id, .. }
                        if id == request_id => p,
                    _ => panic!(
                        "invocation {request_id}: expected its answer, got {p}\n{}",
                        self.logs()
                    ),
                },
                None => unreachable!("the Runtime API state holds the sender"),
            },
            status = self.child.wait() => {
                let status: std::io::Result<ExitStatus> = status;
                // The pipes close with the process; let the readers catch its last words.
                let readers = futures::future::join_all(self.readers.drain(..));
                let _ = tokio::time::timeout(Duration::from_secs(2), readers).await;
                panic!(
                    "{} exited ({status:?}) before answering {request_id}\n{}",
                    self.name,
                    self.logs()
                )
            }
            () = tokio::time::sleep_until(deadline) => panic!(
                "no answer to {request_id} within {INVOKE_TIMEOUT:?}\n{}",
                self.logs()
            ),
        }
    }

    /// Like [`invoke_raw`](Self::invoke_raw), for an invocation that must succeed: its response.
    pub async fn invoke(
        &mut self,
        runtime: &mut RuntimeApi,
        request_id: &str,
        event: &Value,
    ) -> Value {
        match self.invoke_raw(runtime, request_id, event).await {
            Posted::Response { body, .. } => body,
            other => panic!("invocation {request_id} failed: {other}\n{}", self.logs()),
        }
    }

    pub async fn stop(mut self) {
        self.child.start_kill().expect("kill the Lambda binary");
        self.child.wait().await.expect("reap the Lambda binary");
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
