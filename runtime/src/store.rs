//! The hub's own store: run history and replay keys.
//!
//! `DATABASE_URL=postgres://…` selects PostgreSQL; without it an embedded SQLite file `hub.db`
//! under `HUB_DATA_DIR` is created on first start, so the gateway runs on a bare machine. Queries
//! are written once in the dialect both accept (`$N` parameters, `ON CONFLICT DO NOTHING`) and
//! run against whichever pool is live; migrations differ only in column types.

use crate::config::HubConfig;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("DATABASE_URL is not a valid PostgreSQL URL: {0}")]
    BadUrl(#[source] sqlx::Error),
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot connect to the {backend} store: {source}")]
    Connect {
        backend: &'static str,
        source: sqlx::Error,
    },
    #[error("cannot migrate the {backend} store: {source}")]
    Migrate {
        backend: &'static str,
        source: sqlx::migrate::MigrateError,
    },
    #[error("store query failed: {0}")]
    Query(#[from] sqlx::Error),
}

/// A connection pool to one of the two supported backends.
#[derive(Debug, Clone)]
pub enum Store {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// Runs the same expression against whichever pool is live; `$pool` is bound to it.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match $store {
            Store::Postgres($pool) => $body,
            Store::Sqlite($pool) => $body,
        }
    };
}

/// One stored run, as returned by `/api/runs`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct RunRow {
    pub id: String,
    pub function: String,
    pub trigger: String,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i64,
    pub outcome: String,
    pub summary: String,
}

/// Which runs to list.
#[derive(Debug, Clone, Default)]
pub struct RunQuery {
    pub function: Option<String>,
    pub limit: i64,
}

impl Store {
    /// Connects (creating the SQLite file if needed) and applies migrations.
    pub async fn connect(cfg: &HubConfig) -> Result<Self, StoreError> {
        let store = match &cfg.database_url {
            Some(url) => {
                let opts =
                    PgConnectOptions::from_str(url.expose_secret()).map_err(StoreError::BadUrl)?;
                let pool = PgPoolOptions::new()
                    .max_connections(10)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect_with(opts)
                    .await
                    .map_err(|source| StoreError::Connect {
                        backend: "postgres",
                        source,
                    })?;
                Store::Postgres(pool)
            }
            None => {
                std::fs::create_dir_all(&cfg.data_dir).map_err(|source| StoreError::DataDir {
                    path: cfg.data_dir.clone(),
                    source,
                })?;
                let opts = SqliteConnectOptions::new()
                    .filename(cfg.data_dir.join("hub.db"))
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    // WAL + NORMAL survives a killed process; only an OS crash can lose the
                    // last commits (run rows, replay keys), and it saves an fsync per request.
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(5));
                let pool = SqlitePoolOptions::new()
                    .max_connections(4)
                    .connect_with(opts)
                    .await
                    .map_err(|source| StoreError::Connect {
                        backend: "sqlite",
                        source,
                    })?;
                Store::Sqlite(pool)
            }
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let backend = self.backend();
        match self {
            Store::Postgres(p) => sqlx::migrate!("./migrations/postgres").run(p).await,
            Store::Sqlite(p) => sqlx::migrate!("./migrations/sqlite").run(p).await,
        }
        .map_err(|source| StoreError::Migrate { backend, source })
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Store::Postgres(_) => "postgres",
            Store::Sqlite(_) => "sqlite",
        }
    }

    /// Answers when the database does (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, |p| sqlx::query("SELECT 1")
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    pub async fn insert_run(&self, run: &RunRow) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO hub_runs \
            (id, function, trigger, started_at, duration_ms, outcome, summary) \
            VALUES ($1, $2, $3, $4, $5, $6, $7)";
        on_pool!(self, |p| sqlx::query(SQL)
            .bind(&run.id)
            .bind(&run.function)
            .bind(&run.trigger)
            .bind(run.started_at)
            .bind(run.duration_ms)
            .bind(&run.outcome)
            .bind(&run.summary)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Runs newest first.
    pub async fn list_runs(&self, q: &RunQuery) -> Result<Vec<RunRow>, StoreError> {
        const SQL: &str = "SELECT id, function, trigger, started_at, duration_ms, outcome, summary \
            FROM hub_runs WHERE (CAST($1 AS TEXT) IS NULL OR function = $1) \
            ORDER BY started_at DESC, id DESC LIMIT $2";
        let rows = on_pool!(self, |p| sqlx::query_as::<_, RunRow>(SQL)
            .bind(q.function.as_deref())
            .bind(q.limit)
            .fetch_all(p)
            .await)?;
        Ok(rows)
    }

    /// Remembers every key of `keys` under `scope`. Returns `true` only if none had been seen:
    /// a request matching any earlier key is a replay.
    pub async fn remember_keys(&self, scope: &str, keys: &[&str]) -> Result<bool, StoreError> {
        const SQL: &str = "INSERT INTO hub_seen_keys (scope, key, seen_at) VALUES ($1, $2, $3) \
            ON CONFLICT DO NOTHING";
        let mut all_new = true;
        for key in keys {
            let done = on_pool!(self, |p| sqlx::query(SQL)
                .bind(scope)
                .bind(*key)
                .bind(Utc::now())
                .execute(p)
                .await
                .map(|r| r.rows_affected()))?;
            all_new &= done == 1;
        }
        Ok(all_new)
    }

    /// Forgets keys older than `age`, so the table stays small.
    pub async fn forget_keys_older_than(
        &self,
        scope: &str,
        age: Duration,
    ) -> Result<u64, StoreError> {
        const SQL: &str = "DELETE FROM hub_seen_keys WHERE scope = $1 AND seen_at < $2";
        let cutoff = Utc::now() - chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
        let done = on_pool!(self, |p| sqlx::query(SQL)
            .bind(scope)
            .bind(cutoff)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(done)
    }
}
