//! The HTTP stack shared by the gateway and the Lambda entry points, so a request is handled by
//! one code path wherever it arrives.
//!
//! Order, outermost first: request id (set + echoed), trace span with the matched path, panic
//! catcher, a backstop timeout, the listener's [`Admission`] check (the gateway's operator
//! gate). Per function, inside that, in the admission order the design
//! asks for (see [`function`]): the route's header guard (credentials), the body size limit
//! (413) and the body itself, read within `HUB_BODY_TIMEOUT_SECS` (408), then the concurrency
//! limit (429 when full), then the run recorder and, inside it, the request timeout (504,
//! recorded as a failed run). So a request without credentials never has its body read, holds
//! a slot or writes a run row.
//!
//! Each step is a plain function inside as few layers as the order allows (one for the shared
//! stack, two per function around the body-limit layers): every `from_fn` layer boxes the rest
//! of the stack and its future on each request, and six of them cost a trivial request most of
//! its time.

use crate::config::HubConfig;
use crate::error::{RunSummary, error_response, scope_request_id};
use crate::metrics::Metrics;
use crate::runs::Outcome;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tower_http::decompression::RequestDecompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tracing::Instrument;

mod function;
pub use function::{FunctionEdges, function_edges, function_layers};

pub static REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Limits applied to every request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub request_timeout: Duration,
    /// How long a body may take to arrive (read before a concurrency slot is taken).
    pub body_timeout: Duration,
    pub max_body_bytes: usize,
    /// Requests one function serves at once.
    pub max_concurrency: usize,
}

impl Limits {
    pub fn from_hub(hub: &HubConfig) -> Self {
        Self {
            request_timeout: hub.request_timeout,
            body_timeout: hub.body_timeout,
            max_body_bytes: hub.max_body_bytes,
            max_concurrency: hub.max_concurrency,
        }
    }
}

/// How much longer than `HUB_REQUEST_TIMEOUT_SECS` the outer stack waits: a function's own
/// timeout (inside its run recorder, so the timed-out run is recorded) fires first.
const OUTER_TIMEOUT_MARGIN: Duration = Duration::from_secs(1);

/// A listener's admission check on a request's method, matched route and headers. It runs inside
/// the shared stack, so a refusal still gets its request id, span and count, and before any
/// route's own layers, so a refused request has nothing read and holds no slot. Synchronous on
/// purpose: a header check needs no await, and a `from_fn` layer of its own boxed every
/// request's future once more.
pub trait Admission: Send + Sync + std::fmt::Debug + 'static {
    /// The answer to send instead of serving the request, or `None` to serve it; `route` is
    /// the matched path, `None` when no route matched.
    fn refusal(&self, req: &Request, route: Option<&str>) -> Option<Response>;
}

/// Wraps `router` in the shared middleware stack: one middleware doing, outermost first, the
/// request id, the trace span, the request count, the panic catcher, the backstop timeout, the
/// listener's `admission` check (if any) and the JSON body of bare refusals. One layer instead
/// of six: each layer boxes the rest of the stack and its future per request, which cost a
/// trivial request most of its time.
pub fn standard_layers(
    router: Router,
    limits: Limits,
    metrics: Metrics,
    admission: Option<Arc<dyn Admission>>,
) -> Router {
    let ctx = Arc::new(EdgeCtx {
        timeout: limits.request_timeout + OUTER_TIMEOUT_MARGIN,
        metrics,
        admission,
    });
    router.layer(middleware::from_fn_with_state(ctx, edge))
}

#[derive(Debug)]
struct EdgeCtx {
    timeout: Duration,
    metrics: Metrics,
    admission: Option<Arc<dyn Admission>>,
}

async fn edge(State(ctx): State<Arc<EdgeCtx>>, mut req: Request, next: Next) -> Response {
    let id = request_id(&req);
    req.headers_mut()
        .insert(REQUEST_ID_HEADER.clone(), id.clone());
    // An `Arc<str>` inside: cloning it allocates nothing.
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let matched = matched.as_ref().map(MatchedPath::as_str);
    let route = matched.unwrap_or("unmatched");
    let span = tracing::info_span!(
        "http",
        method = %req.method(),
        route,
        request_id = id.to_str().unwrap_or(""),
    );
    crate::telemetry::continue_trace(&span, req.headers());
    let timeout = ctx.timeout;
    let admission = ctx.admission.as_deref();
    let served = async move {
        if let Some(refusal) = admission.and_then(|a| a.refusal(&req, matched)) {
            return refusal;
        }
        let inner = AssertUnwindSafe(tokio::time::timeout(timeout, next.run(req)));
        match inner.catch_unwind().await {
            Ok(Ok(resp)) => json_bare_refusal(resp),
            Ok(Err(_)) => {
                tracing::warn!(?timeout, "request timed out");
                error_response(StatusCode::GATEWAY_TIMEOUT, "request timed out")
            }
            Err(panic) => panic_response(panic),
        }
    };
    let mut resp = scope_request_id(id.clone(), served.instrument(span)).await;
    ctx.metrics.http_request(route, resp.status().as_u16());
    resp.headers_mut().insert(REQUEST_ID_HEADER.clone(), id);
    resp
}

fn panic_response(_panic: Box<dyn std::any::Any + Send>) -> Response {
    // The payload may hold request data; the panic hook already printed it to stderr.
    tracing::error!("handler panicked");
    error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

/// The request's `x-request-id`: a sane incoming one is kept, so ids propagate across hops;
/// otherwise a new UUID.
fn request_id(req: &Request) -> HeaderValue {
    let incoming = req.headers().get(&REQUEST_ID_HEADER).filter(|v| {
        let v = v.as_bytes();
        !v.is_empty()
            && v.len() <= 128
            && v.iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
    });
    if let Some(id) = incoming {
        return id.clone();
    }
    let mut buf = uuid::Uuid::encode_buffer();
    let id = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(id).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// axum answers a known path with an unknown method with a bare 405, and the decompression
/// layer an unknown `Content-Encoding` with a bare 415; give them the JSON error body every
/// other refusal has (their `Allow` / `Accept-Encoding` headers kept).
fn json_bare_refusal(resp: Response) -> Response {
    use axum::http::header::{ACCEPT_ENCODING, ALLOW};
    let (message, keep) = match resp.status() {
        StatusCode::METHOD_NOT_ALLOWED => ("method not allowed", ALLOW),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported Content-Encoding: send gzip or no encoding",
            ACCEPT_ENCODING,
        ),
        _ => return resp,
    };
    if resp.extensions().get::<RunSummary>().is_some() {
        return resp;
    }
    let kept = resp.headers().get(&keep).cloned();
    let mut json = error_response(resp.status(), message);
    if let Some(value) = kept {
        json.headers_mut().insert(keep, value);
    }
    json
}

/// Whether the request declares a body longer than `limit` in `Content-Length`.
fn declared_too_large(req: &Request, limit: usize) -> bool {
    req.headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|len| len > limit)
}

fn too_large_response() -> Response {
    error_response(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
}

/// The limit layers answer a body cut while read with a plain-text 413: the JSON one instead.
fn json_413(resp: Response) -> Response {
    if resp.status() == StatusCode::PAYLOAD_TOO_LARGE
        && resp.extensions().get::<RunSummary>().is_none()
    {
        return too_large_response();
    }
    resp
}

/// Answers 413 with a JSON body up front when the declared length is over the limit; bodies
/// without a length are cut by `RequestBodyLimitLayer` / `DefaultBodyLimit` while being read.
async fn reject_oversized(limit: usize, req: Request, next: Next) -> Response {
    if declared_too_large(&req, limit) {
        return too_large_response();
    }
    json_413(next.run(req).await)
}

/// Bounds request bodies at `max` bytes with a JSON 413: up front from `Content-Length`, and
/// while reading for bodies sent without one. `Content-Encoding: gzip` bodies are inflated on
/// the fly and the bound applies to the inflated bytes (a zip bomb stops at `max`); other
/// encodings answer 415.
pub fn body_limit(router: Router, max: usize) -> Router {
    limit_layers(router, max)
        // Outside the limit layers, so their plain-text 413s become JSON error bodies.
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            reject_oversized(max, req, next)
        }))
}

/// [`body_limit`] without its JSON 413s, for stacks that give them in a layer of their own.
fn limit_layers(router: Router, max: usize) -> Router {
    router
        .layer(DefaultBodyLimit::max(max))
        .layer(RequestBodyLimitLayer::new(max))
        .layer(RequestDecompressionLayer::new())
}

/// A JSON success response carrying a run summary for the recorder.
pub fn reply(status: StatusCode, body: serde_json::Value, summary: impl Into<String>) -> Response {
    let mut resp = (status, axum::Json(body)).into_response();
    resp.extensions_mut().insert(RunSummary(summary.into()));
    resp
}

/// The outcome a response's run is recorded with where its status alone would say otherwise.
#[derive(Debug, Clone, Copy)]
struct RunOutcome(Outcome);

/// [`reply`] for a run that shutdown stopped: 503 tells the client to come back, and the run is
/// recorded `interrupted`, as a scheduled run stopped the same way is, not as a failure (the
/// public page counts failures against the success rate).
pub fn reply_interrupted(body: serde_json::Value, summary: impl Into<String>) -> Response {
    let mut resp = reply(StatusCode::SERVICE_UNAVAILABLE, body, summary);
    resp.extensions_mut()
        .insert(RunOutcome(Outcome::Interrupted));
    resp
}

/// How the recorder stores a response's run: as its handler marked it, else by its status.
fn run_outcome(resp: &Response) -> Outcome {
    let status = resp.status();
    match resp.extensions().get::<RunOutcome>() {
        Some(marked) => marked.0,
        None if status.is_success() => Outcome::Success,
        None if status.is_client_error() => Outcome::Rejected,
        None => Outcome::Failure,
    }
}
