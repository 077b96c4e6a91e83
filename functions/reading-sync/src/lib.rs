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
//! **Mapping:** `_id` → `mongo_id` (ObjectId hex as the old hub wrote it; other types keyed so
//! that distinct ids never share a row: [`transform::key_of`]); `timestamp` (BSON date or
//! ISO-8601 string) → `event_timestamp`; `source`, `event_type` (strings) → columns;
//! `payload`, `meta` (any BSON) → JSONB as documented in [`transform`]. A document that cannot
//! be mapped goes to `reading_sync_dead_letters (mongo_id, error, document, failed_at)` with the
//! whole document as Extended JSON, is marked `failed`, and never blocks its batch; nor does a
//! row the database refuses for its values (the batch is split until that row is found and
//! dead-lettered with the database's reason). Batches are bounded by `BATCH_MAX_BYTES` too.
//!
//! **History:** each run is a row of `reading_sync_history (start_time, end_time, status,
//! processed_count, error_message)` — the seed's table, plus `failed_count` and `trigger` — with
//! status `running`, then `success`, `failure` (the old hub's words) or `interrupted`; and a run
//! in the hub's history. A row left `running` by a runner that died is closed as `failure`
//! ("abandoned: …") by the first run that starts more than `CLAIM_TIMEOUT_SECS` after it. The
//! old hub's tables are adopted as they are (a 32-bit `SERIAL` id, `end_time` and
//! `processed_count` NOT NULL): a running row carries its start as `end_time` until it closes.
//!
//! **Storage:** the hub's store (`DATABASE_URL`; the embedded SQLite file without it, JSON kept
//! as text there). Tables are created on first use.
//!
//! **MongoDB operations relied on:** see [`mongo`] (find with filter/sort/limit, `update_many`
//! with `$set`/`$unset`; no `findAndModify`, `update_one` or aggregation).
//!
//! **Environment:** `MONGO_URI` / `_FILE` (required), `MONGO_DB` (`reading-analytics`),
//! `MONGO_COLLECTION` (`articles`), `BATCH_SIZE` (500), `BATCH_MAX_BYTES` (8 MiB: a batch
//! stops reading once it holds this many bytes of documents), `SYNC_MAX_DOCS` (no cap),
//! `CLAIM_TIMEOUT_SECS` (600), `MONGO_TIMEOUT_SECS` (10: how long to wait for an unreachable
//! server before the run fails).
//!
//! **Readiness:** only the database side is checked; MongoDB being down fails runs (recorded
//! with the reason), not the gateway's `/readyz`.

pub mod mongo;
pub mod sink;
pub mod transform;

mod batch;
mod config;
mod routes;
mod run;

pub use config::SyncConfig;
pub use run::{Step, StepHook, SyncReport, Synced};

use axum::http::StatusCode;
use futures::FutureExt;
use futures::future::BoxFuture;
use hub_runtime::error::PublicError;
use hub_runtime::store::{StoreError, Tables};
use hub_runtime::{
    ConfigError, Context, Function, InvokeError, Registration, Report, Routes, Store, Trigger,
    require,
};
use mongo::Inbox;
use mongodb::options::ConnectionString;
use secrecy::ExposeSecret;
use serde_json::Value;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub const NAME: &str = "reading-sync";
pub const SYNC_PATH: &str = "/api/sync/reading";
pub const READING_PATH: &str = "/api/reading";
pub const DEFAULT_SCHEDULE: &str = "0 0 0,12 * * *";

/// How the gateway and the Lambda binary build this function.
pub const REGISTRATION: Registration = Registration {
    name: NAME,
    env_help: ENV_HELP,
    build: |ctx| Ok(Arc::new(ReadingSync::from_context(ctx)?)),
};

const ENV_HELP: &str = "\
reading-sync (schedule 0 0 0,12 * * *):
  MONGO_URI(_FILE)            mongodb://… source of the documents (required to sync)
  MONGO_DB                    database (default reading-analytics)
  MONGO_COLLECTION            collection (default articles)
  BATCH_SIZE                  documents per batch (default 500, at most 10000)
  BATCH_MAX_BYTES             bytes of documents per batch, about (default 8388608: 8 MiB)
  SYNC_MAX_DOCS               cap on documents per run (default: none)
  CLAIM_TIMEOUT_SECS          claims older than this are released to the next run (default 600, 1 to 604800)
  MONGO_TIMEOUT_SECS          how long to wait for an unreachable MongoDB (default 10)";

/// Why a sync stopped.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("MONGO_URI is not set")]
    NotConfigured,
    #[error("MongoDB: {0}")]
    Mongo(#[from] mongodb::error::Error),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("interrupted by shutdown")]
    Interrupted,
}

impl PublicError for SyncError {
    fn status(&self) -> StatusCode {
        StatusCode::SERVICE_UNAVAILABLE
    }

    /// What a client is told; the driver's and the database's own text goes to the log only.
    fn public_message(&self) -> String {
        match self {
            SyncError::NotConfigured => "reading-sync is not configured: MONGO_URI is not set",
            SyncError::Mongo(_) => "MongoDB unavailable",
            SyncError::Store(_) => "database unavailable",
            SyncError::Interrupted => "interrupted by shutdown; the rest is synced by the next run",
        }
        .into()
    }
}

/// The function.
#[derive(Clone)]
pub struct ReadingSync {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: SyncConfig,
    tasks: TaskTracker,
    http_trigger: Trigger,
    shutdown: CancellationToken,
    tables: Tables,
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
                tasks: ctx.tasks.clone(),
                http_trigger: ctx.http_trigger,
                shutdown: ctx.shutdown.clone(),
                tables: Tables::new(ctx.store.clone(), "reading_analytics", |s| {
                    Box::pin(sink::ensure_schema(s))
                }),
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
        self.inner.tables.store().await
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
}

impl Function for ReadingSync {
    fn name(&self) -> &'static str {
        NAME
    }

    fn routes(&self) -> Routes {
        routes::table(self)
    }

    fn schedule(&self) -> Option<&str> {
        Some(DEFAULT_SCHEDULE)
    }

    fn configured(&self) -> Result<(), String> {
        require(&self.inner.cfg.mongo_uri, "MONGO_URI")
    }

    fn ready(&self) -> BoxFuture<'_, Result<(), String>> {
        self.inner.tables.ready().boxed()
    }

    fn invoke(
        &self,
        trigger: Trigger,
        _input: Value,
    ) -> BoxFuture<'_, Result<Report, InvokeError>> {
        async move {
            let report = routes::sync_tracked(self, trigger).await;
            match report.error {
                None => Ok(Report::success(report.summary())),
                Some(SyncError::NotConfigured) => {
                    Err(InvokeError::NotConfigured("MONGO_URI is not set".into()))
                }
                Some(SyncError::Interrupted) => Err(InvokeError::Interrupted(report.summary())),
                Some(_) => Err(InvokeError::Failed(report.summary())),
            }
        }
        .boxed()
    }
}
