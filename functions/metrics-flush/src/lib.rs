//! # metrics-flush
//!
//! Receives batches of host samples from `hub-collector` and writes them into
//! `system_metrics (time, host, os, metric_type, payload)` — the seed's table, so existing Grafana
//! dashboards keep working — with one statement per batch, never a round trip per metric.
//!
//! **Routes:** `POST /api/metrics` (a batch, `Authorization: Bearer <HUB_COLLECTOR_TOKEN>`),
//! answering `{"inserted", "duplicates", "samples"}`; `GET /api/metrics/latest?host=H` (the
//! newest sample per metric type of a host).
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

mod write;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use futures::FutureExt;
use futures::future::BoxFuture;
use hub_runtime::error::{PublicError, respond};
use hub_runtime::http::reply;
use hub_runtime::store::StoreError;
use hub_runtime::{
    ConfigError, Context, Function, InvokeError, Report, RouteInfo, Source, Store, Trigger,
};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;

pub const NAME: &str = "metrics-flush";
pub const PUSH_PATH: &str = "/api/metrics";
pub const LATEST_PATH: &str = "/api/metrics/latest";

/// Settings (`[metrics_flush]` in `hub.toml`, or the environment).
#[derive(Debug, Clone)]
pub struct FlushConfig {
    pub token: Option<SecretString>,
    pub max_samples: usize,
    pub max_future: Duration,
}

impl FlushConfig {
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        Ok(Self {
            token: src.secret("metrics_flush.token", "HUB_COLLECTOR_TOKEN")?,
            max_samples: src.get_or("metrics_flush.max_samples", "METRICS_MAX_SAMPLES", 10_000)?,
            max_future: src.seconds_or(
                "metrics_flush.max_future_secs",
                "METRICS_MAX_FUTURE_SECS",
                300,
            )?,
        })
    }
}

/// One sample as the collector sends it.
#[derive(Debug, Clone, Deserialize)]
pub struct Sample {
    pub time: DateTime<Utc>,
    pub host: String,
    #[serde(default)]
    pub os: String,
    /// Kept as raw JSON text: the gateway only validates and forwards payloads, and parsing
    /// them into trees cost most of its CPU and ~25× the body size in memory per request.
    pub metrics: BTreeMap<String, Box<RawValue>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Batch {
    pub samples: Vec<Sample>,
}

/// One row of `system_metrics`.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub time: DateTime<Utc>,
    pub host: String,
    pub os: String,
    pub metric_type: String,
    /// The metric's JSON, as text.
    pub payload: String,
}

#[derive(Debug, thiserror::Error)]
pub enum FlushError {
    #[error("collector token is not configured")]
    NotConfigured,
    #[error("missing bearer token")]
    MissingToken,
    #[error("wrong token")]
    WrongToken,
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
            FlushError::NotConfigured | FlushError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            FlushError::MissingToken | FlushError::WrongToken => StatusCode::UNAUTHORIZED,
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

fn valid_metric_type(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 64
        && t.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Checks every sample and flattens the batch into rows; any bad sample rejects the batch.
pub fn rows(batch: Batch, cfg: &FlushConfig, now: DateTime<Utc>) -> Result<Vec<Row>, FlushError> {
    if batch.samples.len() > cfg.max_samples {
        return Err(FlushError::TooMany(batch.samples.len(), cfg.max_samples));
    }
    let latest = now + chrono::Duration::from_std(cfg.max_future).unwrap_or_default();
    let mut rows = Vec::new();
    for (i, s) in batch.samples.into_iter().enumerate() {
        if s.host.is_empty() || s.host.len() > 253 || s.host.chars().any(char::is_control) {
            return Err(FlushError::Invalid(format!(
                "sample {i}: host must be 1–253 printable characters"
            )));
        }
        if s.time > latest {
            return Err(FlushError::Invalid(format!(
                "sample {i}: time {} is in the future (now {})",
                s.time.to_rfc3339(),
                now.to_rfc3339()
            )));
        }
        if s.metrics.is_empty() {
            return Err(FlushError::Invalid(format!("sample {i}: no metrics")));
        }
        for (metric_type, payload) in s.metrics {
            if !valid_metric_type(&metric_type) {
                return Err(FlushError::Invalid(format!(
                    "sample {i}: metric type {metric_type:?} is not [a-z0-9_]{{1,64}}"
                )));
            }
            rows.push(Row {
                time: s.time,
                host: s.host.clone(),
                os: s.os.clone(),
                metric_type,
                payload: payload.get().to_owned(),
            });
        }
    }
    Ok(rows)
}

/// The function: config and the store it writes to.
#[derive(Debug, Clone)]
pub struct MetricsFlush {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cfg: FlushConfig,
    store: Store,
    schema: tokio::sync::OnceCell<()>,
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
                store: ctx.store.clone(),
                schema: tokio::sync::OnceCell::new(),
            }),
        })
    }

    async fn store(&self) -> Result<&Store, StoreError> {
        let inner = &self.inner;
        inner
            .schema
            .get_or_try_init(|| write::ensure_schema(&inner.store))
            .await?;
        Ok(&inner.store)
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

    fn check_token(&self, headers: &HeaderMap) -> Result<(), FlushError> {
        let token = self
            .inner
            .cfg
            .token
            .as_ref()
            .ok_or(FlushError::NotConfigured)?;
        let given = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(FlushError::MissingToken)?;
        if bool::from(given.as_bytes().ct_eq(token.expose_secret().as_bytes())) {
            Ok(())
        } else {
            Err(FlushError::WrongToken)
        }
    }
}

async fn push(
    State(f): State<MetricsFlush>,
    headers: HeaderMap,
    batch: Result<Json<Batch>, JsonRejection>,
) -> Result<Response, FlushError> {
    // The token is checked before the body is looked at.
    f.check_token(&headers)?;
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
            json!({"time": r.time, "os": r.os, "payload": parse_payload(&r.payload)}),
        );
    }
    Ok(Json(json!({"host": host, "metrics": metrics})).into_response())
}

impl Function for MetricsFlush {
    fn name(&self) -> &'static str {
        NAME
    }

    fn routes(&self) -> Vec<RouteInfo> {
        vec![
            RouteInfo {
                method: "POST",
                path: PUSH_PATH,
            },
            RouteInfo {
                method: "GET",
                path: LATEST_PATH,
            },
        ]
    }

    fn router(&self) -> Router {
        Router::new()
            .route(PUSH_PATH, post(push))
            .route(LATEST_PATH, get(latest))
            .with_state(self.clone())
    }

    fn configured(&self) -> Result<(), String> {
        match self.inner.cfg.token {
            Some(_) => Ok(()),
            None => Err("HUB_COLLECTOR_TOKEN is not set".into()),
        }
    }

    fn ready(&self) -> BoxFuture<'_, Result<(), String>> {
        async move {
            self.store()
                .await
                .map(|_| ())
                .map_err(|e| format!("cannot prepare system_metrics: {e}"))
        }
        .boxed()
    }

    fn status_panel(&self) -> BoxFuture<'_, Option<String>> {
        async move {
            let store = self.store().await.ok()?;
            let since = Utc::now() - chrono::Duration::hours(24);
            let rows = match write::since(store, since, &["cpu", "memory"], PANEL_ROWS).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read samples for the status page");
                    return None;
                }
            };
            host_panel(&rows)
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

/// A stored payload as JSON; text edited by hand into non-JSON is shown as a string.
fn parse_payload(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// Most rows the host panel reads (two types × 1440 per-minute samples × a few hosts).
const PANEL_ROWS: i64 = 20_000;

/// The status-page panel: per host, CPU and memory use (%) over the last 24 h.
fn host_panel(rows: &[Row]) -> Option<String> {
    let mut hosts: Vec<(&str, Vec<Value>, Vec<Value>)> = Vec::new();
    for r in rows {
        let payload = parse_payload(&r.payload);
        let value = match r.metric_type.as_str() {
            "cpu" => payload["total"].as_f64(),
            "memory" => {
                let total = payload["total"].as_f64().filter(|t| *t > 0.0);
                total.and_then(|t| Some(payload["used"].as_f64()? / t * 100.0))
            }
            _ => None,
        };
        let Some(value) = value else { continue };
        let i = match hosts.iter().position(|(h, ..)| *h == r.host) {
            Some(i) => i,
            None => {
                hosts.push((r.host.as_str(), Vec::new(), Vec::new()));
                hosts.len() - 1
            }
        };
        let point = json!([r.time.timestamp_millis(), (value * 10.0).round() / 10.0]);
        if r.metric_type == "cpu" {
            hosts[i].1.push(point);
        } else {
            hosts[i].2.push(point);
        }
    }
    if hosts.is_empty() {
        return None;
    }
    let mut html = String::from("<h2>Hosts, last 24 h</h2>");
    for (host, cpu, memory) in hosts {
        let series =
            json!([{"name": "cpu %", "points": cpu}, {"name": "memory %", "points": memory}]);
        html.push_str(&format!(
            "<h3 class=\"host\">{}</h3><div class=\"chart host-chart\" data-unit=\"%\" data-max=\"100\">\
             <script type=\"application/json\">{}</script></div>",
            hub_runtime::html::escape(host),
            hub_runtime::html::script_json(&series)
        ));
    }
    Some(html)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> FlushConfig {
        FlushConfig {
            token: None,
            max_samples: 3,
            max_future: Duration::from_secs(300),
        }
    }

    fn batch(v: Value) -> Batch {
        serde_json::from_str(&v.to_string()).expect("batch")
    }

    #[test]
    fn samples_flatten_to_one_row_per_metric() {
        let now = Utc::now();
        let b = batch(json!({"samples": [{
            "time": now, "host": "h1", "os": "Debian 12",
            "metrics": {"cpu": {"total": 12.5}, "memory": {"used": 1}}
        }]}));
        let rows = rows(b, &cfg(), now).expect("valid");
        let types: Vec<_> = rows.iter().map(|r| r.metric_type.as_str()).collect();
        assert_eq!(types, ["cpu", "memory"]);
        assert!(
            rows.iter()
                .all(|r| r.host == "h1" && r.os == "Debian 12" && r.time == now)
        );
        assert_eq!(rows[0].payload, r#"{"total":12.5}"#);
    }

    #[test]
    fn bad_samples_reject_the_batch() {
        let now = Utc::now();
        let cases = [
            (
                json!({"time": now + chrono::Duration::hours(1), "host": "h", "metrics": {"cpu": 1}}),
                "is in the future",
            ),
            (
                json!({"time": now, "host": "", "metrics": {"cpu": 1}}),
                "host must be",
            ),
            (
                json!({"time": now, "host": "h\n", "metrics": {"cpu": 1}}),
                "host must be",
            ),
            (
                json!({"time": now, "host": "h", "metrics": {}}),
                "no metrics",
            ),
            (
                json!({"time": now, "host": "h", "metrics": {"CPU Load": 1}}),
                "is not [a-z0-9_]",
            ),
        ];
        for (sample, want) in cases {
            let good = json!({"time": now, "host": "ok", "metrics": {"cpu": 1}});
            let err = rows(batch(json!({"samples": [good, sample]})), &cfg(), now)
                .expect_err("must be rejected");
            assert!(
                err.to_string().contains("sample 1") && err.to_string().contains(want),
                "{err}"
            );
        }
        let four = json!({"samples": [
            {"time": now, "host": "h", "metrics": {"cpu": 1}},
            {"time": now, "host": "h", "metrics": {"cpu": 1}},
            {"time": now, "host": "h", "metrics": {"cpu": 1}},
            {"time": now, "host": "h", "metrics": {"cpu": 1}}]});
        assert!(matches!(
            rows(batch(four), &cfg(), now),
            Err(FlushError::TooMany(4, 3))
        ));
    }
}
