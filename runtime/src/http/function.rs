//! One function's routes inside its admission checks, in the order the design asks for:
//!
//! 1. [`admit_headers`], on the headers alone: the route's guard (credentials; 401 before
//!    anything else), then a declared `Content-Length` over the limit (413);
//! 2. the body-limit layers (gzip inflated on the fly, the bound on the inflated bytes);
//! 3. [`invoke`]: the body read within `HUB_BODY_TIMEOUT_SECS` (408), still outside the
//!    concurrency slot; then the slot (429 when none is free); then the run recorder around
//!    the request timeout (504, recorded as a failed run) and a panic catcher (500, recorded).
//!
//! So a request without credentials never has its body read, holds a slot or writes a run row,
//! and a refusal (401, 403, 404, 405, 413, 415, 429) is never stored as a run.

use super::{
    Limits, declared_too_large, json_413, limit_layers, panic_response, run_outcome,
    too_large_response,
};
use crate::error::{RunSummary, error_response};
use crate::routes::{GuardedRoute, Routes};
use crate::runs::{Runs, Trigger};
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tracing::Instrument;

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
    let (admission, invocation) = contexts(guards, runs, function, trigger, limits);
    admit(router, admission, invocation)
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
    let (admission, invocation) = contexts(guards, runs, function, trigger, limits);
    FunctionEdges {
        all: admit(all, admission.clone(), invocation.clone()),
        public: admit(public, admission, invocation),
    }
}

/// What [`admit_headers`] needs.
struct Admission {
    guards: Vec<GuardedRoute>,
    max_body: usize,
}

/// What [`invoke`] needs: one per function, shared by its listeners.
struct Invocation {
    permits: Semaphore,
    body_timeout: Duration,
    request_timeout: Duration,
    runs: Runs,
    function: &'static str,
    trigger: Trigger,
}

fn contexts(
    guards: Vec<GuardedRoute>,
    runs: Runs,
    function: &'static str,
    trigger: Trigger,
    limits: Limits,
) -> (Arc<Admission>, Arc<Invocation>) {
    let admission = Admission {
        guards,
        max_body: limits.max_body_bytes,
    };
    let invocation = Invocation {
        permits: Semaphore::new(limits.max_concurrency),
        body_timeout: limits.body_timeout,
        request_timeout: limits.request_timeout,
        runs,
        function,
        trigger,
    };
    (Arc::new(admission), Arc::new(invocation))
}

fn admit(router: Router, admission: Arc<Admission>, invocation: Arc<Invocation>) -> Router {
    let router = router.layer(middleware::from_fn_with_state(invocation, invoke));
    let max = admission.max_body;
    limit_layers(router, max).layer(middleware::from_fn_with_state(admission, admit_headers))
}

/// The route's guard, then the declared body length, on the headers alone; outside the limit
/// layers, so their plain-text 413s become JSON error bodies on the way out.
async fn admit_headers(State(a): State<Arc<Admission>>, req: Request, next: Next) -> Response {
    if let Some(refused) = guard(&a.guards, &req) {
        return refused;
    }
    if declared_too_large(&req, a.max_body) {
        return too_large_response();
    }
    json_413(next.run(req).await)
}

/// The refusal of the matched route's guard, if it has one and it refuses.
fn guard(guards: &[GuardedRoute], req: &Request) -> Option<Response> {
    if guards.is_empty() {
        return None;
    }
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    guards
        .iter()
        .find(|g| Some(g.route.path) == path && g.route.method == req.method().as_str())
        .and_then(|g| (g.guard)(req.headers()))
}

/// The body (within its deadline), then a slot, then the recorded run.
async fn invoke(State(ctx): State<Arc<Invocation>>, req: Request, next: Next) -> Response {
    let req = match read_body(ctx.body_timeout, req).await {
        Ok(req) => req,
        Err(refused) => return refused,
    };
    let Ok(_permit) = ctx.permits.try_acquire() else {
        let mut resp = error_response(
            StatusCode::TOO_MANY_REQUESTS,
            "function is busy, retry later",
        );
        resp.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            HeaderValue::from_static("1"),
        );
        return resp;
    };
    record_run(&ctx, req, next).await
}

/// Reads the whole body (already bounded by the limit layers) within `deadline`, before the
/// request may take a concurrency slot: a client that sends headers and then trickles its body
/// holds a connection, never a function's slot. 408 when the body does not arrive in time.
async fn read_body(deadline: Duration, req: Request) -> Result<Request, Response> {
    let (parts, body) = req.into_parts();
    let bytes = match tokio::time::timeout(deadline, axum::body::to_bytes(body, usize::MAX)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) if too_large(&e) => return Err(too_large_response()),
        Ok(Err(e)) => {
            tracing::info!(error = %e, "cannot read request body");
            return Err(error_response(
                StatusCode::BAD_REQUEST,
                "cannot read request body",
            ));
        }
        Err(_) => {
            return Err(error_response(
                StatusCode::REQUEST_TIMEOUT,
                "request body not received in time",
            ));
        }
    };
    Ok(Request::from_parts(parts, axum::body::Body::from(bytes)))
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

/// Runs the handler as one run: inside it the request timeout and a panic catcher, so a request
/// that times out or panics is a failed run, not a lost one.
async fn record_run(ctx: &Invocation, req: Request, next: Next) -> Response {
    let _started = ctx.runs.start();
    let started = chrono::Utc::now();
    let clock = Instant::now();
    let in_flight = ctx.runs.metrics().in_flight(ctx.function);
    let span = crate::runs::run_span(ctx.function, ctx.trigger);
    let timeout = ctx.request_timeout;
    let handled = AssertUnwindSafe(tokio::time::timeout(timeout, next.run(req))).catch_unwind();
    let resp = match handled.instrument(span.clone()).await {
        Ok(Ok(resp)) => resp,
        Ok(Err(_)) => {
            tracing::warn!(?timeout, "request timed out");
            error_response(StatusCode::GATEWAY_TIMEOUT, "request timed out")
        }
        Err(panic) => panic_response(panic),
    };
    drop(in_flight);
    let status = resp.status();
    if REFUSED.contains(&status) {
        return resp;
    }
    let outcome = run_outcome(&resp);
    let summary = resp
        .extensions()
        .get::<RunSummary>()
        .map_or_else(|| status.canonical_reason().unwrap_or(""), |s| s.0.as_str());
    let summary = format!("{} {summary}", status.as_u16());
    span.record("outcome", outcome.as_str());
    ctx.runs
        .record(
            ctx.function,
            ctx.trigger,
            started,
            clock.elapsed(),
            outcome,
            &summary,
        )
        .await;
    resp.into_response()
}
