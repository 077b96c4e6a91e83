//! # metrics-flush
//!
//! Receives batches of host samples from `hub-collector` and writes them into
//! `system_metrics (time, host, os, metric_type, payload)` — the seed's table, so existing Grafana
//! dashboards keep working — with one statement per batch, never a round trip per metric.
//!
//! **Routes:** `POST /api/metrics` (a batch, `Authorization: Bearer <HUB_COLLECTOR_TOKEN>`),
//! answering `{"inserted", "duplicates", "samples"}`; `GET /api/metrics/latest?host=H` (the
//! newest sample per metric type of a host). `POST /api/metrics` is a *public* route (served on
//! the gateway's public listener, the one Funnel points at) when `HUB_COLLECTOR_TOKEN` is set;
//! `GET /api/metrics/latest` is an operator route.
//!
//! **Batch:** `{"samples": [{"time": RFC 3339, "host": "...", "os": "...", "metrics":
//! {"cpu": {...}, "memory": {...}, ...}}]}`; each metric becomes one row with its JSON as
//! `payload`. The whole batch is checked before anything is written: one bad sample rejects it
//! (400) and nothing is stored.
//!
//! **Idempotent:** rows are unique on (host, time, metric_type) and inserted with
//! `ON CONFLICT DO NOTHING`, so an agent replaying its spool never creates duplicates; the
//! response counts them.
//!
//! **Storage:** the hub's store (`DATABASE_URL`: PostgreSQL, a TimescaleDB hypertable when the
//! extension is installed; otherwise the embedded SQLite file). The table and its unique index
//! are created on first use.
//!
//! **Environment:** `HUB_COLLECTOR_TOKEN` / `_FILE` (required; without it every push is
//! refused with 503), `METRICS_MAX_SAMPLES` (10000 per batch), `METRICS_MAX_FUTURE_SECS` (300:
//! how far ahead of this host's clock a sample may be).
//!
//! **Direct invocation:** `hub-gateway invoke metrics-flush --data '<batch>'` writes one batch.

mod batch;
mod config;
mod panel;
pub mod payload;
pub mod testing;
mod write;

pub use batch::{Batch, Row, Sample, rows};
pub use config::FlushConfig;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use futures::FutureExt;
use futures::future::BoxFuture;
use hub_runtime::auth::bearer_guard;
use hub_runtime::error::{PublicError, respond};
use hub_runtime::http::reply;
use hub_runtime::store::{StoreError, Tables};
use hub_runtime::{
    ConfigError, Context, Function, InvokeError, Registration, Report, RouteTable, Routes, Store,
    Trigger, require,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::sync::Arc;

pub const NAME: &str = "metrics-flush";
pub const PUSH_PATH: &str = "/api/metrics";
pub const LATEST_PATH: &str = "/api/metrics/latest";

/// How the gateway and the Lambda binary build this function.
pub const REGISTRATION: Registration = Registration {
    name: NAME,
    env_help: ENV_HELP,
    build: |ctx| Ok(Arc::new(MetricsFlush::from_context(ctx)?)),
};

const ENV_HELP: &str = "\
metrics-flush:
  HUB_COLLECTOR_TOKEN(_FILE)  bearer token hub-collector pushes with (required to accept pushes)
  METRICS_MAX_SAMPLES         samples per batch (default 10000)
  METRICS_MAX_FUTURE_SECS     how far ahead of this clock a sample may be (default 300)";

#[derive(Debug, thiserror::Error)]
pub enum FlushError {
    #[error("invalid batch: {0}")]
    Json(#[from] JsonRejection),
    #[error("invalid batch: {0}")]
    Invalid(String),
    #[error("batch of {0} samples is over the limit of {1}")]
    TooMany(usize, usize),
    #[error("query parameter host is required")]
    MissingHost,
    #[error("metrics store unavailable")]
    Store(#[from] StoreError),
}

impl PublicError for FlushError {
    fn status(&self) -> StatusCode {
        match self {
            FlushError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            // A batch of the wrong shape is as much bad input as one that is not JSON: 400,
            // not axum's 422, so the agent treats both alike.
            FlushError::Json(r) if r.status() == StatusCode::UNPROCESSABLE_ENTITY => {
                StatusCode::BAD_REQUEST
            }
            FlushError::Json(r) => r.status(),
            FlushError::TooMany(..) => StatusCode::PAYLOAD_TOO_LARGE,
            FlushError::Invalid(_) | FlushError::MissingHost => StatusCode::BAD_REQUEST,
        }
    }

    fn public_message(&self) -> String {
        match self {
            FlushError::Json(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                "request body too large".into()
            }
            FlushError::Json(r) => format!("invalid batch: {}", r.body_text()),
            other => other.to_string(),
        }
    }
}

impl IntoResponse for FlushError {
    fn into_response(self) -> Response {
        respond(&self)
    }
}

/// The function: config and the store it writes to.
#[derive(Debug, Clone)]
pub struct MetricsFlush {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cfg: FlushConfig,
    tables: Tables,
}

/// What one write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub samples: usize,
    pub inserted: u64,
    pub duplicates: u64,
}

impl Written {
    fn summary(&self) -> String {
        format!(
            "{} samples: inserted {} rows, {} duplicates",
            self.samples, self.inserted, self.duplicates
        )
    }
}

impl MetricsFlush {
    pub fn from_context(ctx: Context) -> Result<Self, ConfigError> {
        Ok(Self {
            inner: Arc::new(Inner {
                cfg: FlushConfig::from_source(&ctx.source)?,
                tables: Tables::new(ctx.store.clone(), "system_metrics", |s| {
                    Box::pin(write::ensure_schema(s))
                }),
            }),
        })
    }

    async fn store(&self) -> Result<&Store, StoreError> {
        self.inner.tables.store().await
    }

    /// Validates and writes one batch.
    pub async fn write(&self, batch: Batch) -> Result<Written, FlushError> {
        let samples = batch.samples.len();
        let rows = rows(batch, &self.inner.cfg, Utc::now())?;
        let total = rows.len() as u64;
        let inserted = write::insert(self.store().await?, &rows).await?;
        Ok(Written {
            samples,
            inserted,
            duplicates: total - inserted,
        })
    }
}

async fn push(
    State(f): State<MetricsFlush>,
    batch: Result<Json<Batch>, JsonRejection>,
) -> Result<Response, FlushError> {
    // The route's guard checked the token before the body was read.
    let Json(batch) = batch?;
    let written = f.write(batch).await?;
    Ok(reply(
        StatusCode::OK,
        json!({
            "service": NAME,
            "samples": written.samples,
            "inserted": written.inserted,
            "duplicates": written.duplicates,
        }),
        written.summary(),
    ))
}

#[derive(Debug, Deserialize)]
struct LatestParams {
    host: Option<String>,
}

async fn latest(
    State(f): State<MetricsFlush>,
    Query(params): Query<LatestParams>,
) -> Result<Response, FlushError> {
    let host = params
        .host
        .filter(|h| !h.is_empty())
        .ok_or(FlushError::MissingHost)?;
    let rows = write::latest(f.store().await?, &host).await?;
    let mut metrics = Map::new();
    for r in rows {
        metrics.insert(
            r.metric_type,
            json!({"time": r.time, "os": r.os, "payload": panel::parse_payload(&r.payload)}),
        );
    }
    Ok(Json(json!({"host": host, "metrics": metrics})).into_response())
}

impl Function for MetricsFlush {
    fn name(&self) -> &'static str {
        NAME
    }

    fn routes(&self) -> Routes {
        // Pushes are public (collectors on other hosts reach them through Funnel) exactly when
        // a collector token is set: there is no separate "remote collectors" setting, and
        // without a token the route refuses every push anyway, so nothing would be gained by
        // publishing it. Reads of stored samples are operator routes.
        let remote_collectors = self.inner.cfg.token.is_some();
        RouteTable::new()
            .post(PUSH_PATH, push)
            .guarded(bearer_guard(
                self.inner.cfg.token.clone(),
                "collector token",
            ))
            .public_if(remote_collectors)
            .get(LATEST_PATH, latest)
            .with_state(self.clone())
    }

    fn configured(&self) -> Result<(), String> {
        require(&self.inner.cfg.token, "HUB_COLLECTOR_TOKEN")
    }

    fn ready(&self) -> BoxFuture<'_, Result<(), String>> {
        self.inner.tables.ready().boxed()
    }

    fn status_panel(&self) -> BoxFuture<'_, Option<String>> {
        async move {
            let store = self.store().await.ok()?;
            let since = Utc::now() - chrono::Duration::hours(24);
            let rows = match write::since(store, since, &["cpu", "memory"], panel::PANEL_ROWS).await
            {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read samples for the status page");
                    return None;
                }
            };
            panel::host_panel(&rows)
        }
        .boxed()
    }

    fn invoke(
        &self,
        _trigger: Trigger,
        input: Value,
    ) -> BoxFuture<'_, Result<Report, InvokeError>> {
        async move {
            // Raw payloads need a text deserializer, not a Value one.
            let batch: Batch = serde_json::from_str(&input.to_string()).map_err(|e| {
                InvokeError::BadInput(format!("expected a batch {{\"samples\": [...]}}: {e}"))
            })?;
            match self.write(batch).await {
                Ok(w) => Ok(Report::success(w.summary())),
                Err(e @ (FlushError::Invalid(_) | FlushError::TooMany(..))) => {
                    Err(InvokeError::BadInput(e.to_string()))
                }
                Err(e) => Err(InvokeError::Failed(e.to_string())),
            }
        }
        .boxed()
    }
}
