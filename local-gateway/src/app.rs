//! The gateway: the list of functions, the router that mounts them, and serving with graceful
//! shutdown.

use crate::pages;
use crate::scheduler::{self, Plan, Scheduler};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::future::join_all;
use hub_runtime::error::error_response;
use hub_runtime::http::{Limits, function_layers, standard_layers};
use hub_runtime::store::{RunQuery, StoreError};
use hub_runtime::{ConfigError, Context, Function, HubConfig, Source, Trigger};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

pub const SERVICE: &str = "hub-gateway";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Serve(std::io::Error),
    #[error("cannot start the scheduler: {0}")]
    Scheduler(#[from] tokio_cron_scheduler::JobSchedulerError),
}

/// Settings of the gateway process itself.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// `HUB_BIND` (default 127.0.0.1: the gateway is reached through Tailscale Funnel or a
    /// local reverse proxy, never exposed directly).
    pub bind: IpAddr,
    /// `PORT` (default 8085).
    pub port: u16,
    /// `HUB_SHUTDOWN_GRACE_SECS` (default 30): how long shutdown waits for background work.
    pub shutdown_grace: Duration,
    /// `HUB_CATCHUP_DELAY_SECS` (default 5): pause between start and a catch-up run, so a
    /// gateway in a restart loop does not hammer its dependencies.
    pub catch_up_delay: Duration,
}

impl GatewayConfig {
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        Ok(Self {
            bind: src.get_or("gateway.bind", "HUB_BIND", IpAddr::from([127, 0, 0, 1]))?,
            port: src.get_or("gateway.port", "PORT", 8085)?,
            shutdown_grace: src.seconds_or(
                "gateway.shutdown_grace_secs",
                "HUB_SHUTDOWN_GRACE_SECS",
                30,
            )?,
            catch_up_delay: src.seconds_or(
                "gateway.catch_up_delay_secs",
                "HUB_CATCHUP_DELAY_SECS",
                5,
            )?,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind, self.port)
    }
}

/// Every function the hub ships, built from one context. Adding a function is one line here.
pub fn functions(ctx: &Context) -> Result<Vec<Arc<dyn Function>>, ConfigError> {
    Ok(vec![
        Arc::new(webhook_gitops::WebhookGitops::from_context(ctx.clone())?),
        Arc::new(metrics_flush::MetricsFlush::from_context(ctx.clone())?),
        Arc::new(reading_sync::ReadingSync::from_context(ctx.clone())?),
    ])
}

/// A configured gateway, ready to serve or to invoke a function.
#[derive(Clone)]
pub struct Gateway {
    pub config: GatewayConfig,
    pub ctx: Context,
    pub functions: Arc<Vec<Arc<dyn Function>>>,
    /// Effective schedules (after overrides), validated at start.
    pub plans: Arc<Vec<Plan>>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("config", &self.config)
            .field(
                "functions",
                &self.functions.iter().map(|f| f.name()).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Loads config, opens (and migrates) the store and builds every function.
    pub async fn new(source: Source) -> Result<Self, StartError> {
        Self::with_functions(source, functions).await
    }

    /// Like [`Gateway::new`] with another list of functions (tests, embedding).
    pub async fn with_functions(
        source: Source,
        build: impl FnOnce(&Context) -> Result<Vec<Arc<dyn Function>>, ConfigError>,
    ) -> Result<Self, StartError> {
        let config = GatewayConfig::from_source(&source)?;
        let hub = HubConfig::from_source(&source)?;
        let store = hub_runtime::Store::connect(&hub).await?;
        let ctx = Context::new(source, hub, store, Trigger::Http);
        let functions = build(&ctx)?;
        let plans = scheduler::plans(&ctx.source, &functions)?;
        Ok(Self {
            config,
            ctx,
            functions: Arc::new(functions),
            plans: Arc::new(plans),
        })
    }

    pub fn function(&self, name: &str) -> Option<&Arc<dyn Function>> {
        self.functions.iter().find(|f| f.name() == name)
    }

    /// The whole HTTP surface: every function's router plus the gateway's own routes, inside the
    /// shared middleware stack.
    pub fn router(&self) -> Router {
        let hub = &self.ctx.hub;
        let mut router = Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/api/health", get(api_health))
            .route("/", get(pages::index))
            .route("/api/functions", get(api_functions))
            .route("/api/runs", get(api_runs))
            .route("/metrics", get(metrics))
            .fallback(not_found)
            .with_state(self.clone());
        for f in self.functions.iter() {
            router = router.merge(function_layers(
                f.router(),
                self.ctx.runs.clone(),
                f.name(),
                Trigger::Http,
                hub.max_concurrency,
            ));
        }
        standard_layers(
            router,
            Limits {
                request_timeout: hub.request_timeout,
                max_body_bytes: hub.max_body_bytes,
            },
            self.ctx.runs.metrics().clone(),
        )
    }

    /// Serves on `listener` until `shutdown` resolves, then finishes in-flight requests and waits
    /// (up to the grace period) for background work such as running syncs.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let addr = listener.local_addr().map_err(StartError::Serve)?;
        let scheduler = if self.plans.is_empty() {
            None
        } else {
            Some(
                Scheduler::start(
                    &self.ctx,
                    &self.functions,
                    &self.plans,
                    self.config.catch_up_delay,
                )
                .await?,
            )
        };
        tracing::info!(%addr, version = VERSION, store = self.ctx.store.backend(), "hub-gateway listening");
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(StartError::Serve)?;
        if let Some(s) = scheduler {
            s.shutdown(self.config.shutdown_grace).await;
        }
        let tasks = &self.ctx.tasks;
        tasks.close();
        if !tasks.is_empty() {
            tracing::info!(pending = tasks.len(), "waiting for background work");
        }
        if tokio::time::timeout(self.config.shutdown_grace, tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                pending = tasks.len(),
                grace = ?self.config.shutdown_grace,
                "background work still running at shutdown; abandoning it"
            );
        }
        tracing::info!("hub-gateway stopped");
        Ok(())
    }

    /// Binds the configured address.
    pub async fn bind(&self) -> Result<TcpListener, StartError> {
        let addr = self.config.addr();
        TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })
    }
}

/// Resolves on SIGTERM (systemd, Kubernetes) or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = term => tracing::info!("SIGTERM received, shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, shutting down"),
    }
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

async fn api_health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "healthy", "service": SERVICE, "version": VERSION}))
}

async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "no such route")
}

/// One function as `/api/functions` and the index page describe it.
#[derive(Debug, Serialize)]
pub struct FunctionInfo {
    pub name: &'static str,
    pub routes: Vec<hub_runtime::RouteInfo>,
    /// Effective cron schedule (after overrides); `null` when none or `off`.
    pub schedule: Option<String>,
    pub next_due: Option<chrono::DateTime<chrono::Utc>>,
    pub configured: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Gateway {
    pub fn function_infos(&self) -> Vec<FunctionInfo> {
        self.functions
            .iter()
            .map(|f| {
                let configured = f.configured();
                let plan = self.plans.iter().find(|p| p.function == f.name());
                FunctionInfo {
                    name: f.name(),
                    routes: f.routes(),
                    schedule: plan.map(|p| p.expr.clone()),
                    next_due: plan.and_then(|p| scheduler::next_due(p, chrono::Utc::now())),
                    configured: configured.is_ok(),
                    reason: configured.err(),
                }
            })
            .collect()
    }
}

async fn api_functions(State(gw): State<Gateway>) -> Json<Vec<FunctionInfo>> {
    Json(gw.function_infos())
}

/// Bound on each readiness check, so one hung dependency cannot hang `/readyz`.
const READY_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

async fn readyz(State(gw): State<Gateway>) -> Response {
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

async fn metrics(State(gw): State<Gateway>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        gw.ctx.runs.metrics().encode(),
    )
        .into_response()
}

async fn api_runs(State(gw): State<Gateway>, Query(params): Query<RunsParams>) -> Response {
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
