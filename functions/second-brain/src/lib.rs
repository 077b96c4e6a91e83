//! # second-brain
//!
//! The owner's journal, written as GitHub issues (one a day, titled `YYYY-MM-DD`, labelled
//! `journal`), split into atomic tagged entries in `second_brain` for search and dashboards.
//! Replaces the old hub's CronJob of the same name, made safe: paginated, rate-limit aware,
//! time-bounded, idempotent.
//!
//! **Routes** (operator): `POST /api/sync/brain` runs one sync and answers
//! `{service, status, processed_count, issues, skipped, duration_ms}` (503 with `error` when
//! GitHub or the database fails); `GET /api/brain?category=&tag=&q=&limit=50&offset=0` pages
//! through entries, newest first (`q`: full-text search via `to_tsvector` on PostgreSQL,
//! `LIKE` on SQLite).
//!
//! **Schedule:** `0 0 2 * * *` (daily at 02:00, like the old CronJob); override with
//! `HUB_SCHEDULE_SECOND_BRAIN`. On Lambda an EventBridge scheduled event runs one sync.
//!
//! **One run** ([`SecondBrain::run_once`]): list the journal issues ([`github`]), keep those
//! whose title is a date after the newest `entry_date` stored from `JOURNAL_REPO` (a title that
//! is not a date is skipped with a warning), and store them oldest first, each issue's entries
//! in one transaction ([`parse`] has the rules), `ON CONFLICT (checksum) DO NOTHING`: a bullet
//! already stored, from any issue, is not stored again. Each run adds a row to
//! `second_brain_sync_history (start_time, end_time, status, processed_count, error_message)`
//! with status `success` or `failure` (the old job's words) and is a run in the hub's history.
//! Issue titles and bodies are data: never logged, never in run summaries (issue numbers are).
//!
//! **Storage:** the hub's store (`DATABASE_URL`, else the embedded SQLite file; tags are a
//! `TEXT[]` on PostgreSQL, a JSON array on SQLite). The old job's tables are adopted as they
//! are, an `embedding vector(1536)` column included (never touched); the view
//! `second_brain_stats` (entries, first and last date, tokens per category) is created when
//! absent.
//!
//! **Environment:** `JOURNAL_REPO` (`owner/name`; required), `JOURNAL_LABEL` (`journal`),
//! `GITHUB_API_URL` (`https://api.github.com`), `GITHUB_TOKEN` / `_FILE` (optional for a public
//! repository), `GITHUB_TIMEOUT_SECS` (10, per request), `GITHUB_MAX_WAIT_SECS` (60: the
//! longest rate-limit wait before a run stops instead); `hub.toml` keys under
//! `[second_brain]`.
//!
//! **Readiness:** only the database side; GitHub being down fails runs, not `/readyz`.

pub mod config;
pub mod github;
mod panel;
pub mod parse;
mod routes;
mod run;
pub mod store;

pub use config::BrainConfig;
pub use run::Synced;

use axum::http::StatusCode;
use futures::FutureExt;
use futures::future::BoxFuture;
use github::{Github, GithubError};
use hub_runtime::error::PublicError;
use hub_runtime::store::{StoreError, Tables};
use hub_runtime::{
    ConfigError, Context, Function, InvokeError, Registration, Report, Routes, Store, Trigger,
    require,
};
use serde_json::Value;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub const NAME: &str = "second-brain";
pub const SYNC_PATH: &str = "/api/sync/brain";
pub const BRAIN_PATH: &str = "/api/brain";
pub const DEFAULT_SCHEDULE: &str = "0 0 2 * * *";

/// How the gateway and the Lambda binary build this function.
pub const REGISTRATION: Registration = Registration {
    name: NAME,
    env_help: ENV_HELP,
    build: |ctx| Ok(Arc::new(SecondBrain::from_context(&ctx)?)),
};

const ENV_HELP: &str = "\
second-brain (schedule 0 0 2 * * *):
  JOURNAL_REPO                owner/name of the journal repository (required to sync)
  JOURNAL_LABEL               label of journal issues (default journal)
  GITHUB_API_URL              GitHub's REST API (default https://api.github.com)
  GITHUB_TOKEN(_FILE)         token for a private journal (optional for a public one)
  GITHUB_TIMEOUT_SECS         bound on each GitHub request (default 10, 1 to 300)
  GITHUB_MAX_WAIT_SECS        longest rate-limit wait before a run stops instead (default 60)";

/// Why a sync stopped.
#[derive(Debug, thiserror::Error)]
pub enum BrainError {
    #[error("JOURNAL_REPO is not set")]
    NotConfigured,
    #[error(transparent)]
    Github(#[from] GithubError),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("interrupted by shutdown")]
    Interrupted,
}

impl PublicError for BrainError {
    fn status(&self) -> StatusCode {
        StatusCode::SERVICE_UNAVAILABLE
    }

    /// The kind of failure; GitHub's and the database's own text goes to the log and the run.
    fn public_message(&self) -> String {
        match self {
            BrainError::NotConfigured => "second-brain is not configured: JOURNAL_REPO is not set",
            BrainError::Github(
                GithubError::RateLimited { .. } | GithubError::RateLimitPersists,
            ) => "GitHub rate limit reached; the next run goes on",
            BrainError::Github(GithubError::Timeout(_)) => "GitHub timed out",
            BrainError::Github(_) => "GitHub unavailable",
            BrainError::Store(_) => "database unavailable",
            BrainError::Interrupted => "interrupted by shutdown; the next run goes on",
        }
        .into()
    }
}

/// The function.
#[derive(Clone)]
pub struct SecondBrain {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: BrainConfig,
    github: Github,
    tables: Tables,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for SecondBrain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecondBrain")
            .field("cfg", &self.inner.cfg)
            .finish_non_exhaustive()
    }
}

impl SecondBrain {
    pub fn from_context(ctx: &Context) -> Result<Self, ConfigError> {
        let cfg = BrainConfig::from_source(&ctx.source)?;
        Ok(Self {
            inner: Arc::new(Inner {
                github: Github::new(cfg.clone()),
                cfg,
                tables: Tables::new(ctx.store.clone(), "second_brain", |s| {
                    Box::pin(store::ensure_schema(s))
                }),
                tasks: ctx.tasks.clone(),
                shutdown: ctx.shutdown.clone(),
            }),
        })
    }

    pub fn config(&self) -> &BrainConfig {
        &self.inner.cfg
    }

    /// The store, once the tables exist.
    pub async fn store(&self) -> Result<&Store, StoreError> {
        self.inner.tables.store().await
    }
}

impl Function for SecondBrain {
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
        require(&self.inner.cfg.repo, "JOURNAL_REPO")
    }

    fn ready(&self) -> BoxFuture<'_, Result<(), String>> {
        self.inner.tables.ready().boxed()
    }

    fn status_panel(&self) -> BoxFuture<'_, Option<String>> {
        async move { Some(panel::render(self).await) }.boxed()
    }

    fn invoke(
        &self,
        _trigger: Trigger,
        input: Value,
    ) -> BoxFuture<'_, Result<Report, InvokeError>> {
        async move {
            match &input {
                Value::Null => {}
                Value::Object(o) if o.is_empty() => {}
                _ => {
                    return Err(InvokeError::BadInput(
                        "second-brain takes no input: {}".into(),
                    ));
                }
            }
            let report = routes::sync_tracked(self).await;
            match report.error {
                None => Ok(Report::success(report.summary())),
                Some(BrainError::NotConfigured) => {
                    Err(InvokeError::NotConfigured("JOURNAL_REPO is not set".into()))
                }
                Some(BrainError::Interrupted) => Err(InvokeError::Interrupted(report.summary())),
                Some(_) => Err(InvokeError::Failed(report.summary())),
            }
        }
        .boxed()
    }
}
