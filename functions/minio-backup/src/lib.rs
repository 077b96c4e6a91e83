//! # minio-backup
//!
//! Streams backups to the platform's MinIO (any S3-compatible store) while everything keeps
//! running, proves each one is whole, keeps a retention policy and restores on command.
//! Replaces a nightly script that stopped containers, tarred volumes into dated local folders
//! with no checksum and no off-host copy.
//!
//! **Sets** (each named; see [`config`]): `postgres` — `pg_dump --format=custom` of a database,
//! streamed; `dir` — a directory tree as a zstd tar stream (files that change while read are
//! noted, not fatal); `hub` — the hub's own store (the default when nothing is declared).
//!
//! **Per set and run:** the stream goes up (multipart to S3, or a temp file renamed into place
//! locally) while it is produced; the producer's exit decides — a failed or killed `pg_dump`
//! aborts the upload; then `HEAD` checks the size and, unless `BACKUP_VERIFY=false`, the object
//! is read back and its SHA-256 compared; only then is the manifest written (a backup is good
//! only with one), and the set's retention applied (restic's keep-last/daily/weekly/monthly
//! over good backups; the newest is never deleted). Incomplete uploads older than a day are
//! removed.
//!
//! **Routes:** `POST /api/backup/run` (`{"set": NAME}` for one set, else all) answers
//! `{"status", "sets": [...]}`; `GET /api/backup` lists the sets and their good backups.
//! **Schedule:** `0 0 1 * * *` (daily at 01:00, like the old timer).
//! **CLI:** `hub-gateway backup list|verify|restore` (see `hub-gateway backup --help`).
//!
//! **Environment:** `BACKUP_DATABASE_URL` / `_FILE` (a `postgres` set named `postgres`),
//! `BACKUP_DIRS` (`name=/path,…`: a `dir` set each), `BACKUP_S3_ENDPOINT`, `BACKUP_S3_BUCKET`,
//! `BACKUP_S3_PREFIX`, `BACKUP_S3_REGION` (`us-east-1`), `BACKUP_S3_ACCESS_KEY_ID`,
//! `BACKUP_S3_SECRET_ACCESS_KEY` / `_FILE`, `BACKUP_LOCAL_DIR` (without S3; default
//! `HUB_DATA_DIR/backups`), `BACKUP_KEEP_LAST` (7 when no `BACKUP_KEEP_*` is set),
//! `BACKUP_KEEP_DAILY`, `BACKUP_KEEP_WEEKLY`, `BACKUP_KEEP_MONTHLY`, `BACKUP_VERIFY` (true),
//! `BACKUP_PG_DUMP` / `BACKUP_PG_RESTORE` (the tools; default from `PATH`).
//! `BACKUP_AGE_RECIPIENTS` (`age1…,…`: encrypt every backup to these age keys; a set may name its
//! own `age_recipients`), `BACKUP_AGE_IDENTITY_FILE` (the age identity file a restore of an
//! encrypted backup decrypts with), `BACKUP_DRILL` (see below).
//! `hub.toml` declares more sets under `[minio_backup.sets.NAME]` (`kind`, `url`/`path`,
//! `keep_*`).
//!
//! **Restore drill:** `BACKUP_DRILL=true` ends each scheduled run by restoring every database
//! set's new backup into a scratch database on its server, counting every table's rows and
//! dropping it; a failed drill fails the run. `{"drill": true}` (or `hub-gateway backup drill`)
//! runs one on its own against the newest stored backup. See [`drill`].
//!
//! **Lambda:** the same code; sets that need this host's files (a directory, the embedded
//! store) or a local target are refused there with a clear message.

pub mod config;
pub mod drill;
pub mod encrypt;
pub mod manifest;
mod panel;
pub mod restore;
pub mod retention;
mod routes;
mod run;
pub mod source;
pub mod target;

pub use config::BackupConfig;
pub use run::{Good, SetDone};

use axum::http::StatusCode;
use futures::FutureExt;
use futures::future::BoxFuture;
use hub_runtime::error::PublicError;
use hub_runtime::{
    ConfigError, Context, Function, InvokeError, Registration, Report, Routes, Store, Trigger,
};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use target::{Target, TargetError};
use tokio_util::sync::CancellationToken;

pub const NAME: &str = "minio-backup";
pub const RUN_PATH: &str = "/api/backup/run";
pub const LIST_PATH: &str = "/api/backup";
pub const DEFAULT_SCHEDULE: &str = "0 0 1 * * *";

/// How the gateway and the Lambda binary build this function.
pub const REGISTRATION: Registration = Registration {
    name: NAME,
    env_help: ENV_HELP,
    build: |ctx| Ok(Arc::new(Backup::from_context(&ctx)?)),
};

const ENV_HELP: &str = "\
minio-backup (schedule 0 0 1 * * *):
  BACKUP_DATABASE_URL(_FILE)  postgres://… to back up with pg_dump (set \"postgres\")
  BACKUP_DIRS                 name=/path,… directories to back up as tar.zst (a set each)
  BACKUP_S3_ENDPOINT          http(s)://… of MinIO or any S3 server; unset: a local directory
  BACKUP_S3_BUCKET, BACKUP_S3_PREFIX, BACKUP_S3_REGION (default us-east-1)
  BACKUP_S3_ACCESS_KEY_ID, BACKUP_S3_SECRET_ACCESS_KEY(_FILE)
  BACKUP_LOCAL_DIR            the local target (default HUB_DATA_DIR/backups)
  BACKUP_KEEP_LAST, BACKUP_KEEP_DAILY, BACKUP_KEEP_WEEKLY, BACKUP_KEEP_MONTHLY
                              retention, restic's semantics (default: keep the last 7)
  BACKUP_VERIFY               read each backup back and compare its SHA-256 (default true)
  BACKUP_PG_DUMP, BACKUP_PG_RESTORE  the client tools (default pg_dump, pg_restore on PATH)
  BACKUP_AGE_RECIPIENTS       age1…,… encrypt each backup to these age public keys (for
                              off-site buckets); a hub.toml set may name its own age_recipients
  BACKUP_AGE_IDENTITY_FILE    age identity file (age-keygen) a restore decrypts with
  BACKUP_DRILL                after each scheduled run, restore every database set's new
                              backup into a scratch database, count each table's rows, drop
                              it (default false; {\"drill\": true} runs a drill on its own)
  Without sets, the hub's own store is backed up (set \"hub\").";

/// Why a backup (or a listing, a restore) failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("no backup set named {0:?}")]
    UnknownSet(String),
    #[error("the source failed: {0}")]
    Source(String),
    #[error("the target failed: {0}")]
    Target(#[from] TargetError),
    #[error("the stored backup does not check out: {0}")]
    Verify(String),
    #[error("{0}")]
    NotHere(String),
    #[error("restore: {0}")]
    Restore(String),
    #[error("interrupted by shutdown; nothing was kept of this backup")]
    Interrupted,
}

impl PublicError for BackupError {
    fn status(&self) -> StatusCode {
        match self {
            BackupError::UnknownSet(_) => StatusCode::NOT_FOUND,
            BackupError::NotHere(_) => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The kind of failure only: commands' and servers' own text goes to the log and the run.
    fn public_message(&self) -> String {
        match self {
            BackupError::UnknownSet(_) | BackupError::NotHere(_) => self.to_string(),
            BackupError::Source(_) => "the backup source failed".into(),
            BackupError::Target(_) => "the backup target failed".into(),
            BackupError::Verify(_) => "the stored backup did not check out".into(),
            BackupError::Restore(_) => "the restore failed".into(),
            BackupError::Interrupted => self.to_string(),
        }
    }
}

/// The function.
#[derive(Clone)]
pub struct Backup {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: BackupConfig,
    target: Target,
    store: Store,
    hub_url: Option<SecretString>,
    data_dir: PathBuf,
    shutdown: CancellationToken,
    on_lambda: bool,
    tasks: tokio_util::task::TaskTracker,
    metrics: hub_runtime::metrics::Metrics,
    /// `BACKUP_DRILL`: each scheduled run ends with a restore drill of its database backups.
    drill_after_schedule: bool,
}

impl std::fmt::Debug for Backup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backup")
            .field("sets", &self.set_names())
            .field("target", &self.inner.target.describe())
            .finish_non_exhaustive()
    }
}

impl Backup {
    pub fn from_context(ctx: &Context) -> Result<Self, ConfigError> {
        let cfg = BackupConfig::from_source(&ctx.source, &ctx.hub.data_dir)?;
        let drill_after_schedule =
            ctx.source
                .get_or("minio_backup.drill", "BACKUP_DRILL", false)?;
        Ok(Self {
            inner: Arc::new(Inner {
                target: Target::new(&cfg.target),
                cfg,
                store: ctx.store.clone(),
                hub_url: ctx.hub.database_url.clone(),
                data_dir: ctx.hub.data_dir.clone(),
                shutdown: ctx.shutdown.clone(),
                on_lambda: ctx.http_trigger == Trigger::Lambda,
                tasks: ctx.tasks.clone(),
                metrics: ctx.runs.metrics().clone(),
                drill_after_schedule,
            }),
        })
    }

    pub fn target(&self) -> &Target {
        &self.inner.target
    }

    pub fn config(&self) -> &BackupConfig {
        &self.inner.cfg
    }

    pub fn set_names(&self) -> Vec<String> {
        self.inner.cfg.sets.iter().map(|s| s.name.clone()).collect()
    }

    fn set(&self, name: &str) -> Result<&config::SetConfig, BackupError> {
        self.inner
            .cfg
            .sets
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| BackupError::UnknownSet(name.to_owned()))
    }

    /// Backs up `only` (or every set), one after the other; a failed set does not stop the
    /// others. Also removes uploads left incomplete for more than a day.
    pub async fn run_sets(
        &self,
        only: Option<&str>,
        progress: &(dyn Fn(&str, u64) + Send + Sync),
    ) -> Result<Vec<(String, Result<SetDone, BackupError>)>, BackupError> {
        let sets: Vec<&config::SetConfig> = match only {
            Some(name) => vec![self.set(name)?],
            None => self.inner.cfg.sets.iter().collect(),
        };
        let mut results = Vec::new();
        for set in sets {
            let name = set.name.clone();
            let result = self.backup_set(set, &|bytes| progress(&name, bytes)).await;
            match &result {
                Ok(done) => {
                    tracing::info!(set = %name, key = %done.key, bytes = done.size, "backup stored")
                }
                Err(e) => tracing::error!(set = %name, error = %e, "backup failed"),
            }
            let stop = matches!(result, Err(BackupError::Interrupted));
            results.push((name, result));
            if stop {
                break;
            }
        }
        let cutoff = chrono::Utc::now() - chrono::Duration::days(1);
        match self.inner.target.clean_incomplete(cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(uploads = n, "removed incomplete uploads older than a day"),
            Err(e) => tracing::warn!(error = %e, "cannot clean up incomplete uploads"),
        }
        Ok(results)
    }

    /// [`Backup::run_sets`] as a run's report: success only when every set succeeded. With
    /// `drill`, each database set backed up is then restored by [`Backup::drill`].
    pub async fn run_report(
        &self,
        only: Option<&str>,
        drill: bool,
        progress: &(dyn Fn(&str, u64) + Send + Sync),
    ) -> Result<Report, InvokeError> {
        let results = self.run_sets(only, progress).await.map_err(|e| match e {
            BackupError::UnknownSet(_) => InvokeError::BadInput(e.to_string()),
            other => InvokeError::Failed(other.to_string()),
        })?;
        let (mut ok, _, mut summary) = outcome(&results);
        let interrupted = stopped_by_shutdown(&results);
        if drill {
            let backed_up: Vec<&str> = results
                .iter()
                .filter(|(_, r)| r.is_ok())
                .map(|(name, _)| name.as_str())
                .collect();
            let drillable = self.drill_sets();
            let sets: Vec<String> = drillable
                .into_iter()
                .filter(|s| backed_up.contains(&s.as_str()))
                .collect();
            let (drilled, text) = self.drill_report(&sets).await;
            ok &= drilled;
            summary = format!("{summary}; {text}");
        }
        if ok {
            Ok(Report::success(summary))
        } else if interrupted {
            Err(InvokeError::Interrupted(summary))
        } else {
            Err(InvokeError::Failed(summary))
        }
    }

    /// Drills `sets`; whether all passed, and one line about each.
    pub async fn drill_report(&self, sets: &[String]) -> (bool, String) {
        let mut ok = true;
        let mut lines = Vec::new();
        for set in sets {
            match self.drill(set).await {
                Ok(d) => {
                    tracing::info!(set = %set, key = %d.key, tables = d.tables.len(), rows = d.rows(), "restore drill passed");
                    let n = d.tables.len();
                    lines.push(format!(
                        "drill {set}: {} restored, {n} table{}, {} rows",
                        d.key,
                        if n == 1 { "" } else { "s" },
                        d.rows()
                    ));
                }
                Err(e) => {
                    tracing::error!(set = %set, error = %e, "restore drill failed");
                    ok = false;
                    lines.push(format!("drill {set}: {e}"));
                }
            }
        }
        if lines.is_empty() {
            return (true, "drill: no database set to restore".into());
        }
        (ok, lines.join("; "))
    }
}

/// The set an invocation or a request asks for: `{"set": NAME}`, or every set.
pub(crate) fn requested_set(input: &Value) -> Result<Option<String>, &'static str> {
    match input {
        Value::Object(o) => match o.get("set") {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err("\"set\" must be a string"),
        },
        _ => Err("the input must be a JSON object, e.g. {\"set\": \"postgres\"}"),
    }
}

/// Whether shutdown stopped one of the sets (the run is then `interrupted`, not failed).
pub(crate) fn stopped_by_shutdown(results: &[(String, Result<SetDone, BackupError>)]) -> bool {
    results
        .iter()
        .any(|(_, r)| matches!(r, Err(BackupError::Interrupted)))
}

/// A run's answer and summary from each set's result.
pub(crate) fn outcome(results: &[(String, Result<SetDone, BackupError>)]) -> (bool, Value, String) {
    let ok = results.iter().all(|(_, r)| r.is_ok());
    let sets: Vec<Value> = results
        .iter()
        .map(|(name, r)| match r {
            Ok(d) => json!({"set": name, "status": "success", "key": d.key, "bytes": d.size,
                            "sha256": d.sha256, "duration_ms": d.duration_ms,
                            "changed_while_read": d.changed_while_read, "skipped": d.skipped,
                            "deleted": d.deleted}),
            Err(e) => json!({"set": name, "status": "failure", "error": e.public_message()}),
        })
        .collect();
    let summary = results
        .iter()
        .map(|(name, r)| match r {
            Ok(d) => format!("{name}: {} bytes", d.size),
            Err(e) => format!("{name}: {e}"),
        })
        .collect::<Vec<_>>()
        .join("; ");
    let body =
        json!({"service": NAME, "status": if ok { "success" } else { "failure" }, "sets": sets});
    (ok, body, summary)
}

impl Function for Backup {
    fn name(&self) -> &'static str {
        NAME
    }

    fn routes(&self) -> Routes {
        routes::table(self)
    }

    fn schedule(&self) -> Option<&str> {
        Some(DEFAULT_SCHEDULE)
    }

    /// The backup gauges from what is stored, so they say the truth from the first scrape
    /// after a restart (0 for a set without a good backup yet).
    fn start(&self) -> BoxFuture<'_, ()> {
        async move {
            for set in self.set_names() {
                match self.good_backups(&set).await {
                    Ok(good) => {
                        let (bytes, at) = good.last().map_or((0, 0.0), |g| {
                            (g.manifest.size, g.manifest.finished_at.timestamp() as f64)
                        });
                        self.inner.metrics.backup_stored(&set, bytes, at);
                    }
                    Err(e) => tracing::warn!(set = %set, error = %e, "cannot list stored backups"),
                }
            }
        }
        .boxed()
    }

    fn status_panel(&self) -> BoxFuture<'_, Option<String>> {
        async move { Some(panel::render(self).await) }.boxed()
    }

    fn ready(&self) -> BoxFuture<'_, Result<(), String>> {
        async move {
            // Listing nothing in particular proves the target answers and the keys work.
            self.inner
                .target
                .list("readiness-probe/")
                .await
                .map(|_| ())
                .map_err(|e| format!("backup target {}: {e}", self.inner.target.describe()))
        }
        .boxed()
    }

    fn invoke(&self, trigger: Trigger, input: Value) -> BoxFuture<'_, Result<Report, InvokeError>> {
        async move {
            let only = requested_set(&input).map_err(|e| InvokeError::BadInput(e.into()))?;
            match input.get("drill") {
                None | Some(Value::Bool(false)) => {}
                // A drill on its own: no new backup, the newest stored one is restored.
                Some(Value::Bool(true)) => {
                    let sets = match only {
                        Some(set) => {
                            self.set(&set)
                                .map_err(|e| InvokeError::BadInput(e.to_string()))?;
                            vec![set]
                        }
                        None => self.drill_sets(),
                    };
                    let (ok, summary) = self.drill_report(&sets).await;
                    return if ok {
                        Ok(Report::success(summary))
                    } else {
                        Err(InvokeError::Failed(summary))
                    };
                }
                Some(_) => {
                    return Err(InvokeError::BadInput(
                        "\"drill\" must be true or false".into(),
                    ));
                }
            }
            let drill = trigger == Trigger::Schedule && self.inner.drill_after_schedule;
            self.run_report(only.as_deref(), drill, &|_, _| {}).await
        }
        .boxed()
    }
}
