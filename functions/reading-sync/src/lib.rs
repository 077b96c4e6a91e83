//! # reading-sync
//!
//! ETL from MongoDB into `reading_analytics`: documents with `status: "ingested"` are copied, as
//! JSONB, exactly once, and marked `processed`. Replaces the seed's proxy endpoint, which
//! inserted one row and updated one document per round trip and could lose or repeat work if it
//! died in between.
//!
//! **Routes:** `POST /api/sync/reading` (and `GET`, as the seed allowed) runs one sync and answers
//! `{service, status, processed_count, failed_count, duration_ms}` (503 with `error` when MongoDB
//! or the database is unavailable); `GET /api/reading?limit=50&offset=0&source=&event_type=`
//! pages through stored rows, newest event first.
//!
//! **Schedule:** `0 0 0,12 * * *` (twice a day, like the seed's timer); override with
//! `HUB_SCHEDULE_READING_SYNC` or `[schedule] reading_sync`. On Lambda, an EventBridge scheduled
//! event runs one sync.
//!
//! **One run:** releases claims older than `CLAIM_TIMEOUT_SECS`, then takes batches of
//! `BATCH_SIZE` oldest-first (by `_id`) until none is left or `SYNC_MAX_DOCS` is reached. Per
//! batch: claim the documents in MongoDB (`status: "processing"` + a claim id, read back what
//! this claim owns) → map them → write the batch to the database in one transaction (upsert on
//! `mongo_id`, dead letters alongside) → commit → mark exactly the documents of this claim
//! `processed` with one `update_many` (the dead-lettered ones `failed` with another). A crash
//! after the commit leaves the documents
//! claimed; once the claim times out they are read again and the upsert replaces the same rows:
//! a harmless re-read, never a loss or a duplicate row. Two runners (gateway + Lambda, or two
//! replicas) never own the same document at once.
//!
//! **Mapping:** `_id` (ObjectId hex, or a string id as is) → `mongo_id`; `timestamp` (BSON date
//! or ISO-8601 string) → `event_timestamp`; `source`, `event_type` (strings) → columns;
//! `payload`, `meta` (any BSON) → JSONB as documented in [`transform`]. A document that cannot
//! be mapped goes to `reading_sync_dead_letters (mongo_id, error, document, failed_at)` with the
//! whole document as Extended JSON, is marked `failed`, and never blocks its batch.
//!
//! **History:** each run is a row of `reading_sync_history (start_time, end_time, status,
//! processed_count, error_message)` — the seed's table, plus `failed_count` and `trigger` — with
//! status `running`, then `success` or `failed`; and a run in the hub's history. A row left
//! `running` by a runner that died is closed as `failed` ("abandoned: …") by the first run that
//! starts more than `CLAIM_TIMEOUT_SECS` after it.
//!
//! **Storage:** the hub's store (`DATABASE_URL`; the embedded SQLite file without it, JSON kept
//! as text there). Tables are created on first use.
//!
//! **MongoDB operations relied on:** see [`mongo`] (find with filter/sort/limit, `update_many`
//! with `$set`/`$unset`; no `findAndModify`, `update_one` or aggregation).
//!
//! **Environment:** `MONGO_URI` / `_FILE` (required), `MONGO_DB` (`reading-analytics`),
//! `MONGO_COLLECTION` (`articles`), `BATCH_SIZE` (500), `SYNC_MAX_DOCS` (no cap),
//! `CLAIM_TIMEOUT_SECS` (600), `MONGO_TIMEOUT_SECS` (10: how long to wait for an unreachable
//! server before the run fails).
//!
//! **Readiness:** only the database side is checked; MongoDB being down fails runs (recorded
//! with the reason), not the gateway's `/readyz`.

pub mod mongo;
pub mod sink;
pub mod transform;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use futures::FutureExt;
use futures::future::BoxFuture;
use hub_runtime::error::{PublicError, respond};
use hub_runtime::http::reply;
use hub_runtime::store::StoreError;
use hub_runtime::{
    ConfigError, Context, Function, InvokeError, Report, RouteInfo, Source, Store, Trigger,
};
use mongo::Inbox;
use mongodb::bson::{Bson, Document};
use mongodb::options::ConnectionString;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::task::TaskTracker;

pub const NAME: &str = "reading-sync";
pub const SYNC_PATH: &str = "/api/sync/reading";
pub const READING_PATH: &str = "/api/reading";
pub const DEFAULT_SCHEDULE: &str = "0 0 0,12 * * *";

/// Settings (`[reading_sync]` in `hub.toml`, or the environment).
#[derive(Debug, Clone)]
pub struct SyncConfig {
    pub mongo_uri: Option<SecretString>,
    pub mongo_db: String,
    pub mongo_collection: String,
    pub batch_size: usize,
    pub max_docs: Option<u64>,
    pub claim_timeout: Duration,
    pub mongo_timeout: Duration,
}

/// A week: the largest `CLAIM_TIMEOUT_SECS` accepted.
const MAX_CLAIM_TIMEOUT_SECS: u64 = 7 * 24 * 3600;

impl SyncConfig {
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let invalid = |setting: &str, message: String| ConfigError::Invalid {
            setting: setting.into(),
            message,
        };
        let mongo_uri = src.secret("reading_sync.mongo_uri", "MONGO_URI")?;
        if let Some(uri) = &mongo_uri {
            // The driver's own message can echo the URI, password included: keep only its kind.
            ConnectionString::parse(uri.expose_secret()).map_err(|_| {
                invalid(
                    "MONGO_URI",
                    "not a MongoDB connection string (mongodb://host:port/…)".into(),
                )
            })?;
        }
        let batch_size = src.get_or("reading_sync.batch_size", "BATCH_SIZE", 500usize)?;
        if !(1..=10_000).contains(&batch_size) {
            return Err(invalid(
                "BATCH_SIZE",
                format!("{batch_size} is not 1–10000"),
            ));
        }
        let claim_timeout =
            src.seconds_or("reading_sync.claim_timeout_secs", "CLAIM_TIMEOUT_SECS", 600)?;
        // 0 would release the claims of a runner still working; a week is beyond any sane run.
        if !(1..=MAX_CLAIM_TIMEOUT_SECS).contains(&claim_timeout.as_secs()) {
            return Err(invalid(
                "CLAIM_TIMEOUT_SECS",
                format!(
                    "{} is not 1–{MAX_CLAIM_TIMEOUT_SECS} seconds",
                    claim_timeout.as_secs()
                ),
            ));
        }
        let max_docs = src
            .get::<u64>("reading_sync.max_docs", "SYNC_MAX_DOCS")?
            .filter(|n| *n > 0);
        Ok(Self {
            mongo_uri,
            mongo_db: src.get_or(
                "reading_sync.mongo_db",
                "MONGO_DB",
                "reading-analytics".to_owned(),
            )?,
            mongo_collection: src.get_or(
                "reading_sync.mongo_collection",
                "MONGO_COLLECTION",
                "articles".to_owned(),
            )?,
            batch_size,
            max_docs,
            claim_timeout,
            mongo_timeout: src.seconds_or(
                "reading_sync.mongo_timeout_secs",
                "MONGO_TIMEOUT_SECS",
                10,
            )?,
        })
    }
}

/// Why a sync stopped.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("MONGO_URI is not set")]
    NotConfigured,
    #[error("MongoDB: {0}")]
    Mongo(#[from] mongodb::error::Error),
    #[error("database: {0}")]
    Store(#[from] StoreError),
}

impl SyncError {
    fn status(&self) -> StatusCode {
        StatusCode::SERVICE_UNAVAILABLE
    }

    /// What a client is told; the driver's and the database's own text goes to the log only.
    fn public_message(&self) -> &'static str {
        match self {
            SyncError::NotConfigured => "reading-sync is not configured: MONGO_URI is not set",
            SyncError::Mongo(_) => "MongoDB unavailable",
            SyncError::Store(_) => "database unavailable",
        }
    }
}

/// Points of a batch a test can stop at (see [`ReadingSync::with_step_hook`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Documents claimed in MongoDB, nothing written yet.
    Claimed,
    /// The batch is committed to the database, not yet marked in MongoDB.
    Committed,
    /// The batch is marked in MongoDB.
    Marked,
}

pub type StepHook = Arc<dyn Fn(Step) -> BoxFuture<'static, ()> + Send + Sync>;

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Synced {
    /// Documents now in `reading_analytics` and marked `processed`.
    pub processed: u64,
    /// Documents dead-lettered and marked `failed`.
    pub failed: u64,
    /// Stale claims given back before the run.
    pub released: u64,
}

/// A finished run: its counts, and the error that stopped it, if any.
#[derive(Debug)]
pub struct SyncReport {
    pub synced: Synced,
    pub duration: Duration,
    pub error: Option<SyncError>,
}

impl SyncReport {
    fn summary(&self) -> String {
        let s = &self.synced;
        let mut text = format!("{} processed, {} failed", s.processed, s.failed);
        if s.released > 0 {
            text.push_str(&format!(", {} stale claims released", s.released));
        }
        if let Some(e) = &self.error {
            text.push_str(&format!("; stopped: {e}"));
        }
        text
    }

    fn body(&self) -> Value {
        let mut body = json!({
            "service": NAME,
            "status": if self.error.is_none() { "success" } else { "error" },
            "processed_count": self.synced.processed,
            "failed_count": self.synced.failed,
            "duration_ms": u64::try_from(self.duration.as_millis()).unwrap_or(u64::MAX),
        });
        if let Some(e) = &self.error {
            body["error"] = e.public_message().into();
            if let Some(id) = hub_runtime::error::current_request_id() {
                body["request_id"] = id.into();
            }
        }
        body
    }
}

/// The function.
#[derive(Clone)]
pub struct ReadingSync {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: SyncConfig,
    store: Store,
    tasks: TaskTracker,
    http_trigger: Trigger,
    schema: tokio::sync::OnceCell<()>,
    inbox: tokio::sync::OnceCell<Inbox>,
    hook: Option<StepHook>,
}

impl std::fmt::Debug for ReadingSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadingSync")
            .field("cfg", &self.inner.cfg)
            .finish_non_exhaustive()
    }
}

impl ReadingSync {
    pub fn from_context(ctx: Context) -> Result<Self, ConfigError> {
        Ok(Self {
            inner: Arc::new(Inner {
                cfg: SyncConfig::from_source(&ctx.source)?,
                store: ctx.store.clone(),
                tasks: ctx.tasks.clone(),
                http_trigger: ctx.http_trigger,
                schema: tokio::sync::OnceCell::new(),
                inbox: tokio::sync::OnceCell::new(),
                hook: None,
            }),
        })
    }

    /// Calls `hook` at each [`Step`] of every batch and waits for it: lets a test stop a run at
    /// an exact point (by never returning, then aborting the task).
    pub fn with_step_hook(ctx: Context, hook: StepHook) -> Result<Self, ConfigError> {
        let mut f = Self::from_context(ctx)?;
        if let Some(inner) = Arc::get_mut(&mut f.inner) {
            inner.hook = Some(hook);
        }
        Ok(f)
    }

    async fn store(&self) -> Result<&Store, StoreError> {
        let inner = &self.inner;
        inner
            .schema
            .get_or_try_init(|| sink::ensure_schema(&inner.store))
            .await?;
        Ok(&inner.store)
    }

    async fn inbox(&self) -> Result<&Inbox, SyncError> {
        let cfg = &self.inner.cfg;
        let uri = cfg.mongo_uri.as_ref().ok_or(SyncError::NotConfigured)?;
        let inbox = self
            .inner
            .inbox
            .get_or_try_init(|| async {
                // Checked when the config was loaded.
                let cs = ConnectionString::parse(uri.expose_secret())?;
                Inbox::connect(cs, &cfg.mongo_db, &cfg.mongo_collection, cfg.mongo_timeout).await
            })
            .await?;
        Ok(inbox)
    }

    /// How long a claim (and a `running` history row) may go untouched before the runner that
    /// holds it is taken for dead.
    fn claim_timeout(&self) -> chrono::Duration {
        // Checked at load; the cap keeps a hand-built config from overflowing date arithmetic.
        let secs = self
            .inner
            .cfg
            .claim_timeout
            .as_secs()
            .min(MAX_CLAIM_TIMEOUT_SECS);
        chrono::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX))
    }

    async fn step(&self, step: Step) {
        if let Some(hook) = &self.inner.hook {
            hook(step).await;
        }
    }

    /// One run, recorded in `reading_sync_history`. Never panics on a dependency failing: the
    /// error is in the report.
    pub async fn sync(&self, trigger: Trigger) -> SyncReport {
        let started = Utc::now();
        let clock = Instant::now();
        let mut synced = Synced::default();
        let result = async {
            let store = self.store().await?;
            let history = match sink::history_start(store, started, trigger.as_str()).await {
                Ok(id) => {
                    let cutoff = started - self.claim_timeout();
                    match sink::history_close_abandoned(store, cutoff, id).await {
                        Ok(0) => {}
                        Ok(n) => tracing::warn!(
                            rows = n,
                            "closed reading_sync_history rows of runs that never finished"
                        ),
                        Err(e) => tracing::warn!(error = %e, "cannot close abandoned history rows"),
                    }
                    Some(id)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot open a reading_sync_history row");
                    None
                }
            };
            let result = self.run_batches(&mut synced).await;
            if let Some(id) = history {
                let (status, error) = match &result {
                    Ok(()) => ("success", None),
                    Err(e) => ("failed", Some(e.to_string())),
                };
                if let Err(e) = sink::history_finish(
                    store,
                    id,
                    status,
                    synced.processed,
                    synced.failed,
                    error.as_deref(),
                )
                .await
                {
                    tracing::warn!(error = %e, "cannot close the reading_sync_history row");
                }
            }
            result
        }
        .await;
        let report = SyncReport {
            synced,
            duration: clock.elapsed(),
            error: result.err(),
        };
        match &report.error {
            None => tracing::info!(summary = %report.summary(), "reading sync finished"),
            Some(e) => {
                tracing::error!(error = %e, summary = %report.summary(), "reading sync failed")
            }
        }
        report
    }

    async fn run_batches(&self, synced: &mut Synced) -> Result<(), SyncError> {
        let cfg = &self.inner.cfg;
        let store = self.store().await?;
        let inbox = self.inbox().await?;
        let cutoff = Utc::now() - self.claim_timeout();
        synced.released = inbox.release_stale(cutoff).await?;
        // Lost every candidate to another runner this many times in a row: let it finish.
        let mut lost = 0;
        loop {
            let done = synced.processed + synced.failed;
            let take = match cfg.max_docs {
                Some(max) if done >= max => return Ok(()),
                Some(max) => cfg
                    .batch_size
                    .min(usize::try_from(max - done).unwrap_or(usize::MAX)),
                None => cfg.batch_size,
            };
            let Some(claimed) = inbox.claim(take).await? else {
                return Ok(());
            };
            if claimed.docs.is_empty() {
                // Every candidate went to another runner between the read and the claim.
                lost += 1;
                if lost > 10 || !inbox.any_waiting().await? {
                    return Ok(());
                }
                continue;
            }
            lost = 0;
            self.step(Step::Claimed).await;
            let batch = Batch::map(&claimed.docs);
            if let Err(e) = sink::write_batch(store, &batch.readings, &batch.dead).await {
                // Give the documents back now rather than after the claim timeout.
                if let Err(me) = inbox.release(&claimed).await {
                    tracing::warn!(error = %me, "cannot release claimed documents; they are released after the claim timeout");
                }
                return Err(e.into());
            }
            self.step(Step::Committed).await;
            inbox.mark(&claimed, batch.bad_ids).await?;
            synced.processed += batch.readings.len() as u64;
            synced.failed += batch.dead.len() as u64;
            self.step(Step::Marked).await;
        }
    }
}

/// One claimed batch, mapped.
struct Batch {
    readings: Vec<transform::Reading>,
    dead: Vec<sink::DeadLetter>,
    /// The `_id` values of the dead letters as stored, to mark them `failed`.
    bad_ids: Vec<Bson>,
}

impl Batch {
    fn map(docs: &[Document]) -> Self {
        let mut b = Batch {
            readings: Vec::with_capacity(docs.len()),
            dead: Vec::new(),
            bad_ids: Vec::new(),
        };
        let mut seen = HashSet::new();
        for doc in docs {
            let id = doc.get("_id").cloned().unwrap_or(Bson::Null);
            let mapped = transform::reading(doc).and_then(|r| {
                // A string `_id` equal to another document's ObjectId hex would make one
                // statement update the same row twice.
                if seen.insert(r.mongo_id.clone()) {
                    Ok(r)
                } else {
                    Err(format!(
                        "mongo_id {} appears twice in one batch",
                        r.mongo_id
                    ))
                }
            });
            match mapped {
                Ok(r) => b.readings.push(r),
                Err(error) => {
                    let mongo_id = transform::mongo_id(doc)
                        .unwrap_or_else(|_| id.clone().into_relaxed_extjson().to_string());
                    tracing::warn!(%mongo_id, %error, "document dead-lettered");
                    b.dead.push(sink::DeadLetter {
                        mongo_id,
                        error,
                        document: transform::raw_json(doc),
                    });
                    b.bad_ids.push(id);
                }
            }
        }
        b
    }
}

/// Runs a sync as a tracked task, so a client that disconnects or times out does not cut it
/// off half way (the gateway waits for tracked tasks at shutdown).
async fn sync_tracked(f: &ReadingSync, trigger: Trigger) -> SyncReport {
    let task = f.clone();
    let handle = f.inner.tasks.spawn(async move { task.sync(trigger).await });
    match handle.await {
        Ok(report) => report,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

async fn sync_route(State(f): State<ReadingSync>) -> Response {
    let report = sync_tracked(&f, f.inner.http_trigger).await;
    let status = report
        .error
        .as_ref()
        .map(SyncError::status)
        .unwrap_or(StatusCode::OK);
    reply(status, report.body(), report.summary())
}

#[derive(Debug, thiserror::Error)]
enum ListError {
    #[error("invalid query: {0}")]
    Query(#[from] QueryRejection),
    #[error("limit must be 1–500")]
    Limit,
    #[error("database unavailable")]
    Store(#[from] StoreError),
}

impl PublicError for ListError {
    fn status(&self) -> StatusCode {
        match self {
            ListError::Query(_) | ListError::Limit => StatusCode::BAD_REQUEST,
            ListError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn public_message(&self) -> String {
        match self {
            ListError::Query(r) => format!("invalid query: {}", r.body_text()),
            other => other.to_string(),
        }
    }
}

impl IntoResponse for ListError {
    fn into_response(self) -> Response {
        respond(&self)
    }
}

#[derive(Debug, Deserialize)]
struct ListParams {
    limit: Option<i64>,
    offset: Option<u32>,
    source: Option<String>,
    event_type: Option<String>,
}

const MAX_PAGE: i64 = 500;

async fn list_route(
    State(f): State<ReadingSync>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, ListError> {
    let Query(p) = params?;
    let limit = p.limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ListError::Limit);
    }
    let offset = i64::from(p.offset.unwrap_or(0));
    let q = sink::ListQuery {
        source: p.source.filter(|s| !s.is_empty()),
        event_type: p.event_type.filter(|s| !s.is_empty()),
        limit,
        offset,
    };
    let items = sink::list(f.store().await?, &q).await?;
    let next_offset = (items.len() as i64 == limit).then_some(offset + limit);
    Ok(Json(json!({
        "items": items,
        "limit": limit,
        "offset": offset,
        "next_offset": next_offset,
    }))
    .into_response())
}

impl Function for ReadingSync {
    fn name(&self) -> &'static str {
        NAME
    }

    fn routes(&self) -> Vec<RouteInfo> {
        vec![
            RouteInfo {
                method: "POST",
                path: SYNC_PATH,
            },
            RouteInfo {
                method: "GET",
                path: SYNC_PATH,
            },
            RouteInfo {
                method: "GET",
                path: READING_PATH,
            },
        ]
    }

    fn router(&self) -> Router {
        Router::new()
            .route(SYNC_PATH, get(sync_route).post(sync_route))
            .route(READING_PATH, get(list_route))
            .with_state(self.clone())
    }

    fn schedule(&self) -> Option<&str> {
        Some(DEFAULT_SCHEDULE)
    }

    fn configured(&self) -> Result<(), String> {
        match self.inner.cfg.mongo_uri {
            Some(_) => Ok(()),
            None => Err("MONGO_URI is not set".into()),
        }
    }

    fn ready(&self) -> BoxFuture<'_, Result<(), String>> {
        async move {
            self.store()
                .await
                .map(|_| ())
                .map_err(|e| format!("cannot prepare reading_analytics: {e}"))
        }
        .boxed()
    }

    fn invoke(
        &self,
        trigger: Trigger,
        _input: Value,
    ) -> BoxFuture<'_, Result<Report, InvokeError>> {
        async move {
            let report = sync_tracked(self, trigger).await;
            match report.error {
                None => Ok(Report::success(report.summary())),
                Some(SyncError::NotConfigured) => {
                    Err(InvokeError::NotConfigured("MONGO_URI is not set".into()))
                }
                Some(_) => Err(InvokeError::Failed(report.summary())),
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(env: &[(&str, &str)]) -> Result<SyncConfig, ConfigError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        SyncConfig::from_source(&Source::from_parts(None, env).expect("source"))
    }

    #[test]
    fn defaults_match_the_seed() {
        let cfg = config(&[("MONGO_URI", "mongodb://127.0.0.1:27017/")]).expect("valid");
        assert_eq!(cfg.mongo_db, "reading-analytics");
        assert_eq!(cfg.mongo_collection, "articles");
        assert_eq!(cfg.batch_size, 500);
        assert_eq!(cfg.max_docs, None);
        assert_eq!(cfg.claim_timeout, Duration::from_secs(600));
        assert!(config(&[]).expect("valid").mongo_uri.is_none());
    }

    #[test]
    fn bad_settings_fail_start_naming_the_setting_without_echoing_secrets() {
        let err = config(&[("MONGO_URI", "http://reader:s3cret@db:27017")]).expect_err("bad uri");
        let text = err.to_string();
        assert!(
            text.contains("MONGO_URI") && !text.contains("s3cret"),
            "{text}"
        );
        for size in ["0", "10001", "many"] {
            let err = config(&[("BATCH_SIZE", size)]).expect_err("bad batch size");
            assert!(err.to_string().contains("BATCH_SIZE"), "{err}");
        }
        for secs in ["0", "604801", "18446744073709551615"] {
            let err = config(&[("CLAIM_TIMEOUT_SECS", secs)]).expect_err("bad claim timeout");
            assert!(err.to_string().contains("CLAIM_TIMEOUT_SECS"), "{err}");
        }
    }
}
