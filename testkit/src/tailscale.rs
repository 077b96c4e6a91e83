//! A stand-in for tailscaled's LocalAPI on a unix socket, for gate-check's tests: tailscaled
//! cannot run on these machines (it needs a tailnet and a TUN device), so this is the one fake
//! the architecture allows, and it records everything it is asked.
//!
//! It behaves like tailscaled's `serve-config` and `status` endpoints as of Tailscale v1.88
//! (`ipn/localapi/serve.go`, `ipn/ipnlocal/serve.go`):
//! - `GET /localapi/v0/serve-config` answers the JSON of the current ServeConfig (`null` before
//!   anything was set) with `Etag` = the hex SHA-256 of exactly those bytes (unquoted, as
//!   tailscaled sends it);
//! - `POST` stores the body; a non-empty `If-Match` that is not the current ETag is refused
//!   with 412 and nothing changes (an empty one overwrites, as tailscaled allows);
//! - `GET /localapi/v0/status` answers `{"BackendState": "Running", "Self": {"DNSName": …}}`;
//! - a request whose `Host` is not `local-tailscaled.sock` gets 403, as from tailscaled.
//!
//! Faults: [`LocalApi::fail`] (every call answers 500), [`LocalApi::hang`] (calls never answer),
//! [`LocalApi::set_config`] (someone edits behind the gate's back) and
//! [`LocalApi::edit_before_next_post`] (someone edits between the gate's read and its write).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use tempfile::TempDir;

/// The MagicDNS name the stand-in's node has (with the trailing dot tailscaled reports).
pub const DNS_NAME: &str = "hub.tail1234.ts.net.";

/// What the stand-in does with each call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Answers 500 with a message, as tailscaled does when the backend fails.
    Fail,
    /// Never answers (a wedged daemon).
    Hang,
}

/// One call the stand-in received, in order.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    /// Path and query, e.g. `/localapi/v0/status?peers=false`.
    pub target: String,
    pub host: Option<String>,
    pub if_match: Option<String>,
    /// The POSTed JSON, if any.
    pub body: Option<Value>,
    /// What the stand-in answered (0 for a call left hanging).
    pub status: u16,
}

#[derive(Debug)]
struct Inner {
    config: Value,
    dns_name: String,
    fault: Fault,
    calls: Vec<Call>,
    /// Applied to the config when the next POST arrives, before its If-Match is checked.
    edit_before_post: Option<Value>,
}

#[derive(Debug)]
pub struct LocalApi {
    _dir: TempDir,
    socket: PathBuf,
    inner: Arc<Mutex<Inner>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LocalApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The body tailscaled would send for `config`, and its ETag.
pub fn body_and_etag(config: &Value) -> (Vec<u8>, String) {
    let body = serde_json::to_vec(config).expect("a JSON value serialises");
    let etag = hex::encode(Sha256::digest(&body));
    (body, etag)
}

impl LocalApi {
    /// Serves on a fresh socket, with no serve config (`null`).
    pub async fn start() -> Self {
        let dir = TempDir::new().expect("socket dir");
        let socket = dir.path().join("tailscaled.sock");
        let listener = tokio::net::UnixListener::bind(&socket).expect("bind the stand-in socket");
        let inner = Arc::new(Mutex::new(Inner {
            config: Value::Null,
            dns_name: DNS_NAME.to_owned(),
            fault: Fault::None,
            calls: Vec::new(),
            edit_before_post: None,
        }));
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(inner.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            _dir: dir,
            socket,
            inner,
            task,
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The stored serve config (`null` when none was ever set).
    pub fn config(&self) -> Value {
        self.lock().config.clone()
    }

    /// Replaces the config, as another tool would (`tailscale funnel reset`, an operator).
    pub fn set_config(&self, config: Value) {
        self.lock().config = config;
    }

    /// The next POST finds the config replaced by `config` first, so its If-Match is stale.
    pub fn edit_before_next_post(&self, config: Value) {
        self.lock().edit_before_post = Some(config);
    }

    pub fn set_fault(&self, fault: Fault) {
        self.lock().fault = fault;
    }

    pub fn fail(&self) {
        self.set_fault(Fault::Fail);
    }

    pub fn hang(&self) {
        self.set_fault(Fault::Hang);
    }

    pub fn heal(&self) {
        self.set_fault(Fault::None);
    }

    /// Every call so far, oldest first.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The POSTs to serve-config so far, with their outcome.
    pub fn posts(&self) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == "POST")
            .collect()
    }

    /// Forgets the calls so far, so a test can count what one step did.
    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut call = Call {
        method: method.to_string(),
        target: uri
            .path_and_query()
            .map_or_else(|| uri.path().to_owned(), |p| p.to_string()),
        host: header("host"),
        if_match: header("if-match"),
        body: serde_json::from_slice(&body).ok(),
        status: 0,
    };
    let fault = inner.lock().unwrap_or_else(|p| p.into_inner()).fault;
    if fault == Fault::Hang {
        inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .calls
            .push(call);
        return std::future::pending().await;
    }
    let mut state = inner.lock().unwrap_or_else(|p| p.into_inner());
    let response = if fault == Fault::Fail {
        text(StatusCode::INTERNAL_SERVER_ERROR, "stand-in told to fail")
    } else if call.host.as_deref() != Some("local-tailscaled.sock") {
        text(StatusCode::FORBIDDEN, "invalid localapi request")
    } else {
        answer(&mut state, &method, uri.path(), &call, &body)
    };
    call.status = response.status().as_u16();
    state.calls.push(call);
    response
}

fn text(status: StatusCode, message: &str) -> Response {
    (status, format!("{message}\n")).into_response()
}

fn answer(state: &mut Inner, method: &Method, path: &str, call: &Call, body: &[u8]) -> Response {
    match (method.as_str(), path) {
        ("GET", "/localapi/v0/status") => axum::Json(json!({
            "Version": "1.88.3-stand-in",
            "BackendState": "Running",
            "Self": {"DNSName": state.dns_name, "HostName": "hub", "Online": true},
        }))
        .into_response(),
        ("GET", "/localapi/v0/serve-config") => {
            let (bytes, etag) = body_and_etag(&state.config);
            (
                StatusCode::OK,
                [("Etag", etag), ("Content-Type", "application/json".into())],
                bytes,
            )
                .into_response()
        }
        ("POST", "/localapi/v0/serve-config") => {
            if let Some(edit) = state.edit_before_post.take() {
                state.config = edit;
            }
            let Ok(new) = serde_json::from_slice::<Value>(body) else {
                return text(StatusCode::INTERNAL_SERVER_ERROR, "decoding config");
            };
            let (_, current) = body_and_etag(&state.config);
            match call.if_match.as_deref() {
                Some(tag) if !tag.is_empty() && tag != current => {
                    text(StatusCode::PRECONDITION_FAILED, "etag mismatch")
                }
                _ => {
                    state.config = new;
                    StatusCode::OK.into_response()
                }
            }
        }
        (_, "/localapi/v0/serve-config") => {
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => text(StatusCode::NOT_FOUND, "404 page not found"),
    }
}
