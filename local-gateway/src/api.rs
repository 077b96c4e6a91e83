//! The gateway's HTTP surface: every function's routes and the gateway's own (`/healthz`,
//! `/readyz`, `/api/health`, `/api/functions`, `/api/runs`, `/metrics`, the status page, the
//! old proxy's `/api/trace/synthetic/{id}`), inside the shared middleware stack — all of it on
//! the operator listener, the functions' public routes alone on the public one (see
//! [`crate::edge`]). The gateway's own routes are all operator routes.

use crate::app::{FunctionInfo, Gateway, SERVICE, VERSION};
use crate::edge::OperatorGate;
use crate::pages;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use axum::{Json, Router};
use futures::future::join_all;
use hub_runtime::error::error_response;
use hub_runtime::http::{Admission, Limits, function_edges, standard_layers};
use hub_runtime::store::RunQuery;
use hub_runtime::{RouteInfo, Trigger};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// The gateway's own routes (operator routes, all of them).
fn own_routes() -> [(RouteInfo, MethodRouter<Arc<Gateway>>); 8] {
    let route = |path| RouteInfo {
        method: "GET",
        path,
        public: false,
    };
    [
        (route("/healthz"), get(healthz)),
        (route("/readyz"), get(readyz)),
        (route("/api/health"), get(api_health)),
        (route("/"), get(pages::index)),
        (route("/api/functions"), get(api_functions)),
        (route("/api/runs"), get(api_runs)),
        (route("/metrics"), get(metrics)),
        (route("/api/trace/synthetic/{id}"), get(synthetic_trace)),
    ]
}

/// The gateway's own routes as they are mounted, for the route audit (each function's are in
/// `/api/functions`).
pub fn gateway_routes() -> Vec<RouteInfo> {
    own_routes().into_iter().map(|(info, _)| info).collect()
}

/// The routers of the two listeners.
#[derive(Debug)]
pub struct Edges {
    /// Every route, operator routes behind the operator gate.
    pub operator: Router,
    /// The functions' public routes and nothing else.
    pub public: Router,
}

impl Gateway {
    /// The whole HTTP surface: every function's router plus the gateway's own routes for the
    /// operator listener, the public routes alone for the public one, each inside the shared
    /// middleware stack.
    pub fn routers(&self) -> Edges {
        let counters = self.ctx.runs.metrics();
        let mut operator = Router::new();
        for (info, handler) in own_routes() {
            counters.register_route(info.path);
            operator = operator.route(info.path, handler);
        }
        for info in self.route_infos.iter().flatten() {
            counters.register_route(info.path);
        }
        // Behind an `Arc`: axum clones the state for every request, and a `Gateway` is a dozen
        // fields (settings with secrets among them) whose clone allocated on each `/healthz`.
        let mut operator = operator
            .fallback(not_found)
            .with_state(Arc::new(self.clone()));
        let mut public = Router::new().fallback(not_found);
        let limits = Limits::from_hub(&self.ctx.hub);
        for f in self.functions.iter() {
            let edges = function_edges(
                f.routes(),
                self.ctx.runs.clone(),
                f.name(),
                Trigger::Http,
                limits,
            );
            operator = operator.merge(edges.all);
            public = public.merge(edges.public);
        }
        // Checked in the shared stack, before every function's layers, so its guard, body read
        // and concurrency slot come only after the operator's credentials were checked.
        let gate: Arc<dyn Admission> = OperatorGate::new(
            self.route_infos.iter().flatten(),
            self.config.operator.token.clone(),
            counters.clone(),
        );
        Edges {
            operator: standard_layers(operator, limits, counters.clone(), Some(gate)),
            public: standard_layers(public, limits, counters.clone(), None),
        }
    }
}

/// A constant answer: a liveness probe should cost the gateway next to nothing.
async fn healthz() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        r#"{"status":"ok"}"#,
    )
}

async fn api_health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "healthy", "service": SERVICE, "version": VERSION}))
}

/// The old proxy's trace demo, kept so existing trace dashboards have data: a span per request
/// (the request span, continuing a caller's `traceparent`) with a child for a simulated step of
/// 5–50 ms.
async fn synthetic_trace(
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Json<serde_json::Value> {
    use rand::Rng;
    use tracing::Instrument;
    let latency_ms: u64 = rand::rng().random_range(5..=50);
    let step = tracing::info_span!("synthetic step", synthetic_id = %id, latency_ms);
    tokio::time::sleep(Duration::from_millis(latency_ms))
        .instrument(step)
        .await;
    Json(serde_json::json!({"status": "success", "synthetic_id": id, "latency_ms": latency_ms}))
}

async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "no such route")
}

async fn api_functions(State(gw): State<Arc<Gateway>>) -> Json<Vec<FunctionInfo>> {
    Json(gw.function_infos())
}

/// Bound on each readiness check, so one hung dependency cannot hang `/readyz`.
const READY_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

async fn readyz(State(gw): State<Arc<Gateway>>) -> Response {
    let store = async {
        let res = tokio::time::timeout(READY_CHECK_TIMEOUT, gw.ctx.store.ping()).await;
        match res {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "readiness: store failing");
                Err(format!("{} store unreachable", gw.ctx.store.backend()))
            }
            Err(_) => Err(format!("{} store timed out", gw.ctx.store.backend())),
        }
    };
    let functions = join_all(gw.functions.iter().map(|f| async move {
        let state = match f.configured() {
            Err(reason) => Check::NotConfigured(reason),
            Ok(()) => match tokio::time::timeout(READY_CHECK_TIMEOUT, f.ready()).await {
                Ok(Ok(())) => Check::Ok,
                Ok(Err(reason)) => Check::Failing(reason),
                Err(_) => Check::Failing("readiness check timed out".into()),
            },
        };
        (f.name(), state)
    }));
    let (store, functions) = tokio::join!(store, functions);

    let mut checks = serde_json::Map::new();
    let mut failing = Vec::new();
    match store {
        Ok(()) => {
            checks.insert("store".into(), "ok".into());
        }
        Err(reason) => {
            checks.insert("store".into(), format!("failing: {reason}").into());
            failing.push("store".to_owned());
        }
    }
    for (name, state) in functions {
        let text = match state {
            Check::Ok => "ok".to_owned(),
            Check::NotConfigured(r) => format!("not configured: {r}"),
            Check::Failing(r) => {
                failing.push(name.to_owned());
                format!("failing: {r}")
            }
        };
        checks.insert(name.into(), text.into());
    }
    let (status, word) = if failing.is_empty() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    (
        status,
        Json(serde_json::json!({"status": word, "failing": failing, "checks": checks})),
    )
        .into_response()
}

enum Check {
    Ok,
    NotConfigured(String),
    Failing(String),
}

/// Largest page of `/api/runs`.
const MAX_RUNS_LIMIT: i64 = 500;

#[derive(Debug, Deserialize)]
struct RunsParams {
    function: Option<String>,
    outcome: Option<String>,
    since: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

/// Prometheus text 0.0.4 by default; OpenMetrics when the scraper asks for it in `Accept`
/// (Prometheus does, so it gets OpenMetrics; `curl` and `promtool` get the classic format).
async fn metrics(State(gw): State<Arc<Gateway>>, headers: axum::http::HeaderMap) -> Response {
    use hub_runtime::metrics::{OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE};
    let m = gw.ctx.runs.metrics();
    let openmetrics = headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let (content_type, body) = if openmetrics {
        (OPENMETRICS_CONTENT_TYPE, m.encode())
    } else {
        (PROMETHEUS_CONTENT_TYPE, m.encode_prometheus())
    };
    ([(axum::http::header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn api_runs(State(gw): State<Arc<Gateway>>, Query(params): Query<RunsParams>) -> Response {
    let limit = match params.limit.as_deref().map(str::parse::<i64>) {
        None => 50,
        Some(Ok(n)) if (1..=MAX_RUNS_LIMIT).contains(&n) => n,
        Some(_) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                format!("limit must be a whole number from 1 to {MAX_RUNS_LIMIT}"),
            );
        }
    };
    let offset = match params.offset.as_deref().map(str::parse::<i64>) {
        None => 0,
        Some(Ok(n)) if n >= 0 => n,
        Some(_) => {
            return error_response(StatusCode::BAD_REQUEST, "offset must be a whole number ≥ 0");
        }
    };
    let since = match params.since.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match chrono::DateTime::parse_from_rfc3339(s) {
            Ok(t) => Some(t.with_timezone(&chrono::Utc)),
            Err(_) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    "since must be an RFC 3339 time, e.g. 2026-01-31T12:00:00Z",
                );
            }
        },
    };
    const OUTCOMES: [&str; 5] = ["success", "rejected", "failure", "skipped", "interrupted"];
    let outcome = params.outcome.filter(|o| !o.is_empty());
    if let Some(o) = &outcome {
        if !OUTCOMES.contains(&o.as_str()) {
            return error_response(
                StatusCode::BAD_REQUEST,
                format!("outcome must be one of {}", OUTCOMES.join(", ")),
            );
        }
    }
    let query = RunQuery {
        function: params.function.filter(|f| !f.is_empty()),
        outcome,
        since,
        limit,
        offset,
    };
    match gw.ctx.runs.list(&query).await {
        Ok(runs) => Json(runs).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot list runs");
            error_response(StatusCode::SERVICE_UNAVAILABLE, "store unavailable")
        }
    }
}
