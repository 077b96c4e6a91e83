//! The HTTP stack shared by the gateway and the Lambda entry points, so a request is handled by
//! one code path wherever it arrives.
//!
//! Order, outermost first: request id (set + echoed), trace span with the matched path, panic
//! catcher, a backstop timeout. Per function, inside that, in the admission order the design
//! asks for: the route's header guard (credentials), the body size limit (413) and the body
//! itself, read within `HUB_BODY_TIMEOUT_SECS` (408), then the concurrency limit (429 when full),
//! then the run recorder and, inside it, the request timeout (504, recorded as a failed run).
//! So a request without credentials never has its body read, holds a slot or writes a run row.

use crate::config::HubConfig;
use crate::error::{RunSummary, error_response, scope_request_id};
use crate::metrics::Metrics;
use crate::routes::{GuardedRoute, Routes};
use crate::runs::{Outcome, Runs, Trigger};
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::decompression::RequestDecompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

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

/// Wraps `router` in the shared middleware stack.
pub fn standard_layers(router: Router, limits: Limits, metrics: Metrics) -> Router {
    let timeout = limits.request_timeout + OUTER_TIMEOUT_MARGIN;
    router
        // Innermost first: axum applies `.layer` calls outside the previous ones.
        .layer(middleware::from_fn(json_bare_refusals))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            timeout_request(timeout, req, next)
        }))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            count_request(metrics.clone(), req, next)
        }))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let route = req
                .extensions()
                .get::<MatchedPath>()
                .map(MatchedPath::as_str)
                .unwrap_or("unmatched");
            let span = tracing::info_span!(
                "http",
                method = %req.method(),
                route,
                request_id = req
                    .headers()
                    .get(&REQUEST_ID_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or(""),
            );
            crate::telemetry::continue_trace(&span, req.headers());
            span
        }))
        .layer(middleware::from_fn(request_id))
}

async fn count_request(metrics: Metrics, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let resp = next.run(req).await;
    metrics.http_request(&route, resp.status().as_u16());
    resp
}

fn panic_response(_panic: Box<dyn std::any::Any + Send>) -> Response {
    // The payload may hold request data; the panic hook already printed it to stderr.
    tracing::error!("handler panicked");
    error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

/// Sets `x-request-id` (keeping a sane incoming one, so ids propagate across hops), makes it the
/// task's current id for error bodies, and echoes it on the response.
async fn request_id(mut req: Request, next: Next) -> Response {
    let incoming = req
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_owned);
    let id = incoming.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let value = HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    req.headers_mut()
        .insert(REQUEST_ID_HEADER.clone(), value.clone());
    let mut resp = scope_request_id(id, next.run(req)).await;
    resp.headers_mut().insert(REQUEST_ID_HEADER.clone(), value);
    resp
}

async fn timeout_request(timeout: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            tracing::warn!(?timeout, "request timed out");
            error_response(StatusCode::GATEWAY_TIMEOUT, "request timed out")
        }
    }
}

/// axum answers a known path with an unknown method with a bare 405, and the decompression
/// layer an unknown `Content-Encoding` with a bare 415; give them the JSON error body every
/// other refusal has (their `Allow` / `Accept-Encoding` headers kept).
async fn json_bare_refusals(req: Request, next: Next) -> Response {
    use axum::http::header::{ACCEPT_ENCODING, ALLOW};
    let resp = next.run(req).await;
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

/// Answers 413 with a JSON body up front when the declared length is over the limit; bodies
/// without a length are cut by `RequestBodyLimitLayer` / `DefaultBodyLimit` while being read.
async fn reject_oversized(limit: usize, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return error_response(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
    }
    let resp = next.run(req).await;
    if resp.status() == StatusCode::PAYLOAD_TOO_LARGE
        && resp.extensions().get::<RunSummary>().is_none()
    {
        return error_response(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
    }
    resp
}

/// Bounds request bodies at `max` bytes with a JSON 413: up front from `Content-Length`, and
/// while reading for bodies sent without one. `Content-Encoding: gzip` bodies are inflated on
/// the fly and the bound applies to the inflated bytes (a zip bomb stops at `max`); other
/// encodings answer 415.
pub fn body_limit(router: Router, max: usize) -> Router {
    router
        .layer(DefaultBodyLimit::max(max))
        .layer(RequestBodyLimitLayer::new(max))
        .layer(RequestDecompressionLayer::new())
        // Outside the limit layers, so their plain-text 413s become JSON error bodies.
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            reject_oversized(max, req, next)
        }))
}

/// Wraps one function's routes with its admission checks (header guard, body limit and body
/// deadline, concurrency limit), the run recorder and the request timeout.
pub fn function_layers(
    routes: Routes,
    runs: Runs,
    function: &'static str,
    trigger: Trigger,
    limits: Limits,
) -> Router {
    let (router, guards) = routes.into_parts();
    let ctx = RunCtx {
        runs,
        function,
        trigger,
    };
    let permits = Arc::new(Semaphore::new(limits.max_concurrency));
    admit(router, Arc::new(guards), permits, ctx, limits)
}

/// One function's routes for the gateway's two listeners, each wrapped like
/// [`function_layers`] does.
#[derive(Debug)]
pub struct FunctionEdges {
    /// Every route, for the operator listener.
    pub all: Router,
    /// The public routes alone, for the public listener.
    pub public: Router,
}

/// [`function_layers`] for both listeners. They share one concurrency limit: a function busy
/// with public requests is busy for operator ones too, as it is one function.
pub fn function_edges(
    routes: Routes,
    runs: Runs,
    function: &'static str,
    trigger: Trigger,
    limits: Limits,
) -> FunctionEdges {
    let (all, public, guards) = routes.into_edges();
    let guards = Arc::new(guards);
    let ctx = RunCtx {
        runs,
        function,
        trigger,
    };
    let permits = Arc::new(Semaphore::new(limits.max_concurrency));
    FunctionEdges {
        all: admit(all, guards.clone(), permits.clone(), ctx.clone(), limits),
        public: admit(public, guards, permits, ctx, limits),
    }
}

fn admit(
    router: Router,
    guards: Arc<Vec<GuardedRoute>>,
    permits: Arc<Semaphore>,
    ctx: RunCtx,
    limits: Limits,
) -> Router {
    let timeout = limits.request_timeout;
    let router = router
        // Caught here as well as in the outer stack, so a panicking invocation is still
        // recorded as a failed run.
        .layer(CatchPanicLayer::custom(panic_response))
        // Inside the recorder, so a request that times out is a failed run, not a lost one.
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            timeout_request(timeout, req, next)
        }))
        .layer(middleware::from_fn_with_state(ctx, record_run));
    let body_timeout = limits.body_timeout;
    let router = router
        .layer(middleware::from_fn_with_state(permits, limit_concurrency))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            read_body(body_timeout, req, next)
        }));
    body_limit(router, limits.max_body_bytes).layer(middleware::from_fn_with_state(guards, guard))
}

/// Reads the whole body (already bounded by [`body_limit`]) within `deadline`, before the
/// request may take a concurrency slot: a client that sends headers and then trickles its body
/// holds a connection, never a function's slot. 408 when the body does not arrive in time.
async fn read_body(deadline: Duration, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = match tokio::time::timeout(deadline, axum::body::to_bytes(body, usize::MAX)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) if too_large(&e) => {
            return error_response(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
        }
        Ok(Err(e)) => {
            tracing::info!(error = %e, "cannot read request body");
            return error_response(StatusCode::BAD_REQUEST, "cannot read request body");
        }
        Err(_) => {
            return error_response(
                StatusCode::REQUEST_TIMEOUT,
                "request body not received in time",
            );
        }
    };
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

/// Whether reading a body failed on the size limit (somewhere in its error's source chain).
fn too_large(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// Runs the guard of the matched route, if it has one, on the headers alone.
async fn guard(State(guards): State<Arc<Vec<GuardedRoute>>>, req: Request, next: Next) -> Response {
    if !guards.is_empty() {
        let path = req
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str);
        let found = guards
            .iter()
            .find(|g| Some(g.route.path) == path && g.route.method == req.method().as_str());
        if let Some(g) = found {
            if let Some(refused) = (g.guard)(req.headers()) {
                return refused;
            }
        }
    }
    next.run(req).await
}

async fn limit_concurrency(
    State(permits): State<Arc<Semaphore>>,
    req: Request,
    next: Next,
) -> Response {
    match permits.try_acquire() {
        Ok(_permit) => next.run(req).await,
        Err(_) => {
            let mut resp = error_response(
                StatusCode::TOO_MANY_REQUESTS,
                "function is busy, retry later",
            );
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                HeaderValue::from_static("1"),
            );
            resp
        }
    }
}

#[derive(Clone)]
struct RunCtx {
    runs: Runs,
    function: &'static str,
    trigger: Trigger,
}

/// Statuses that mean the request was refused before the function did any work: counted in
/// `/metrics` (`hub_http_requests_total`), never stored as runs, so junk cannot fill the store.
const REFUSED: [StatusCode; 7] = [
    StatusCode::UNAUTHORIZED,
    StatusCode::FORBIDDEN,
    StatusCode::NOT_FOUND,
    StatusCode::METHOD_NOT_ALLOWED,
    StatusCode::PAYLOAD_TOO_LARGE,
    StatusCode::UNSUPPORTED_MEDIA_TYPE,
    StatusCode::TOO_MANY_REQUESTS,
];

async fn record_run(State(ctx): State<RunCtx>, req: Request, next: Next) -> Response {
    let started = chrono::Utc::now();
    let clock = Instant::now();
    let in_flight = ctx.runs.metrics().in_flight(ctx.function);
    let span = crate::runs::run_span(ctx.function, ctx.trigger);
    let resp = tracing::Instrument::instrument(next.run(req), span.clone()).await;
    drop(in_flight);
    let status = resp.status();
    if REFUSED.contains(&status) {
        return resp;
    }
    let outcome = if status.is_success() {
        Outcome::Success
    } else if status.is_client_error() {
        Outcome::Rejected
    } else {
        Outcome::Failure
    };
    let summary = resp
        .extensions()
        .get::<RunSummary>()
        .map(|s| s.0.clone())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("").to_owned());
    span.record("outcome", outcome.as_str());
    ctx.runs
        .record(
            ctx.function,
            ctx.trigger,
            started,
            clock.elapsed(),
            outcome,
            &format!("{} {summary}", status.as_u16()),
        )
        .await;
    resp.into_response()
}

/// A JSON success response carrying a run summary for the recorder.
pub fn reply(status: StatusCode, body: serde_json::Value, summary: impl Into<String>) -> Response {
    let mut resp = (status, axum::Json(body)).into_response();
    resp.extensions_mut().insert(RunSummary(summary.into()));
    resp
}
