//! The hub's own store: run history and replay keys.
//!
//! `DATABASE_URL=postgres://…` selects PostgreSQL; without it an embedded SQLite file `hub.db`
//! under `HUB_DATA_DIR` is created on first start, so the gateway runs on a bare machine. Queries
//! are written once in the dialect both accept (`$N` parameters, `ON CONFLICT DO NOTHING`) and
//! run against whichever pool is live; migrations differ only in column types, and in
//! PostgreSQL's byte-wise collation of the hub's names and keys (SQLite's own default).

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

mod batch;
mod claims;
mod keys;
mod ledger;
mod stats;
pub use stats::OutcomeCount;
mod tables;
pub use tables::{CreateTables, Tables};
mod writer;
pub use writer::{SETTLE_CHUNK, Writer, WriterConfig};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("DATABASE_URL is not a valid PostgreSQL URL: {0}")]
    BadUrl(#[source] sqlx::Error),
    /// Only the scheme is named: the rest of the URL may hold a password.
    #[error(
        "DATABASE_URL must start with postgres://, postgresql:// or sqlite: (got {scheme:?}); unset it for the embedded store"
    )]
    UnknownScheme { scheme: String },
    #[error("cannot open the SQLite store {path}: {source}")]
    SqliteOpen { path: PathBuf, source: sqlx::Error },
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
    /// A batched write failed for a reason every write in it shares (the database is down):
    /// each caller of the batch gets this, around the one error.
    #[error("store write failed: {0}")]
    Batch(std::sync::Arc<StoreError>),
    /// The store's writer task is gone: the runtime is shutting down.
    #[error("the store writer has stopped")]
    WriterStopped,
}

impl StoreError {
    /// Whether the database refused a statement for the values in it — a constraint, a value
    /// it cannot store, a size limit — rather than because it is unreachable, overloaded or
    /// the schema is wrong. Sending the same values again fails the same way; other rows would
    /// go through, so the caller should set the offending row aside instead of failing.
    pub fn is_data_error(&self) -> bool {
        let StoreError::Query(e) = self else {
            return false;
        };
        match e {
            sqlx::Error::Encode(_) => true,
            sqlx::Error::Database(db) => {
                if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                    // SQLSTATE classes 22 (data exception), 23 (integrity constraint
                    // violation), 54 (program limit exceeded: index row size, nesting depth).
                    matches!(pg.code().get(..2), Some("22" | "23" | "54"))
                } else {
                    // SQLite's extended result codes keep the primary code in the low byte:
                    // 18 SQLITE_TOOBIG, 19 SQLITE_CONSTRAINT, 20 SQLITE_MISMATCH.
                    db.code()
                        .and_then(|c| c.parse::<i32>().ok())
                        .is_some_and(|c| matches!(c & 0xff, 18..=20))
                }
            }
            _ => false,
        }
    }
}

/// A connection pool to one of the two supported backends.
#[derive(Debug, Clone)]
pub enum Store {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// Runs the same expression against whichever pool is live; `$pool` is bound to it. For
/// queries written once in the dialect both backends accept (functions use it for their own
/// tables too).
#[macro_export]
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match $store {
            $crate::store::Store::Postgres($pool) => $body,
            $crate::store::Store::Sqlite($pool) => $body,
        }
    };
}

/// A held run lock; see [`Store::try_run_lock`].
#[derive(Debug)]
pub struct RunLock {
    conn: Option<sqlx::pool::PoolConnection<sqlx::Postgres>>,
    key: i64,
}

impl RunLock {
    pub async fn release(mut self) {
        if let Some(mut conn) = self.conn.take() {
            let res = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(self.key)
                .execute(&mut *conn)
                .await;
            if let Err(e) = res {
                // Closing the connection releases the lock too.
                tracing::warn!(error = %e, "cannot release run lock; closing its connection");
                let _ = conn.detach();
            }
        }
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Not released (a panic, a cancelled task): close the session rather than return a
        // connection that still holds the lock to the pool.
        if let Some(conn) = self.conn.take() {
            drop(conn.detach());
        }
    }
}

/// A stable 64-bit advisory lock key per function name (FNV-1a: std's hasher is not stable
/// across releases, and every replica must agree).
fn advisory_key(function: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in b"hub-run:".iter().chain(function.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(h.to_ne_bytes())
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

const INSERT_RUN_SQL: &str = "INSERT INTO hub_runs \
    (id, function, trigger, started_at, duration_ms, outcome, summary) \
    VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// Binds `$run`'s columns to `$query` (`$1`…`$7` of [`INSERT_RUN_SQL`]), for either backend.
macro_rules! bind_run {
    ($query:expr, $run:expr) => {
        $query
            .bind(&$run.id)
            .bind(&$run.function)
            .bind(&$run.trigger)
            .bind($run.started_at)
            .bind($run.duration_ms)
            .bind(&$run.outcome)
            .bind(&$run.summary)
    };
}

/// Which runs to list: filters, then a page of `limit` rows after skipping `offset`.
#[derive(Debug, Clone, Default)]
pub struct RunQuery {
    pub function: Option<String>,
    pub outcome: Option<String>,
    /// Only runs started at or after this instant.
    pub since: Option<DateTime<Utc>>,
    pub limit: i64,
    pub offset: i64,
}

/// The query [`Store::list_runs`] runs for `q`: only the filters `q` sets, so each shape
/// walks an index in order (`(started_at, id)`, or `(function, started_at, id)`) and stops
/// after `limit` rows, however long the history; a catch-all `($1 IS NULL OR …)` would scan it.
pub fn list_runs_sql(q: &RunQuery) -> String {
    let mut filters = Vec::new();
    for (set, column, op) in [
        (q.function.is_some(), "function", "="),
        (q.outcome.is_some(), "outcome", "="),
        (q.since.is_some(), "started_at", ">="),
    ] {
        if set {
            filters.push(format!("{column} {op} ${}", filters.len() + 1));
        }
    }
    let n = filters.len();
    let filter = if filters.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", filters.join(" AND "))
    };
    format!(
        "SELECT id, function, trigger, started_at, duration_ms, outcome, summary FROM hub_runs\
         {filter} ORDER BY started_at DESC, id DESC LIMIT ${} OFFSET ${}",
        n + 1,
        n + 2
    )
}

/// Which store the settings select.
enum Target<'a> {
    Sqlite(PathBuf),
    Postgres(&'a str),
}

/// No `DATABASE_URL`: the embedded file under `HUB_DATA_DIR`. `postgres://` / `postgresql://`:
/// PostgreSQL. `sqlite:///abs/path`, `sqlite://rel/path` or `sqlite:path`: that SQLite file. Any
/// other scheme is an error naming only the scheme (the rest may hold a password).
fn target(cfg: &HubConfig) -> Result<Target<'_>, StoreError> {
    let Some(url) = cfg.database_url.as_ref().map(|u| u.expose_secret()) else {
        return Ok(Target::Sqlite(cfg.data_dir.join("hub.db")));
    };
    let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or("");
    match scheme.to_ascii_lowercase().as_str() {
        "postgres" | "postgresql" => Ok(Target::Postgres(url)),
        "sqlite" => {
            let rest = &url[scheme.len() + 1..];
            let path = rest.strip_prefix("//").unwrap_or(rest);
            let path = path.split('?').next().unwrap_or(path);
            Ok(Target::Sqlite(PathBuf::from(path)))
        }
        _ => Err(StoreError::UnknownScheme {
            scheme: scheme.chars().take(20).collect(),
        }),
    }
}

/// Opens (creating if needed) the SQLite store at `path`; errors name the path.
async fn open_sqlite(path: &std::path::Path) -> Result<SqlitePool, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // WAL + NORMAL survives a killed process; only an OS crash can lose the
        // last commits (run rows, replay keys), and it saves an fsync per request.
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5))
        // A statement that may need undoing (an upsert in a batch) keeps a journal; on disk
        // that was a temporary file created, written and deleted per statement.
        .pragma("temp_store", "memory");
    SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(opts)
        .await
        .map_err(|source| StoreError::SqliteOpen {
            path: path.to_path_buf(),
            source,
        })
}

impl Store {
    /// Connects (creating the SQLite file if needed) and applies migrations.
    pub async fn connect(cfg: &HubConfig) -> Result<Self, StoreError> {
        let store = match target(cfg)? {
            Target::Sqlite(path) => Store::Sqlite(open_sqlite(&path).await?),
            Target::Postgres(url) => {
                let opts = PgConnectOptions::from_str(url).map_err(StoreError::BadUrl)?;
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
    /// Proves the store takes writes, not only connections: a row written into the replay-key
    /// table inside a transaction that is rolled back. Fails when the tables are gone, the
    /// database is read-only or the SQLite file cannot be written.
    pub async fn ping(&self) -> Result<(), StoreError> {
        const PROBE: &str = "INSERT INTO hub_seen_keys (scope, key, seen_at) \
            VALUES ('readyz', 'write-probe', $1) ON CONFLICT DO NOTHING";
        on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            sqlx::query(PROBE)
                .bind(Utc::now())
                .execute(&mut *tx)
                .await?;
            tx.rollback().await
        })?;
        Ok(())
    }

    /// Writes one run row in a transaction of its own. The gateway records runs through
    /// [`Writer`], which commits many per transaction; this is the one-row baseline.
    pub async fn insert_run(&self, run: &RunRow) -> Result<(), StoreError> {
        on_pool!(self, |p| bind_run!(sqlx::query(INSERT_RUN_SQL), run)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Runs newest first.
    pub async fn list_runs(&self, q: &RunQuery) -> Result<Vec<RunRow>, StoreError> {
        let sql = list_runs_sql(q);
        let rows = on_pool!(self, |p| {
            let mut query = sqlx::query_as::<_, RunRow>(&sql);
            if let Some(function) = &q.function {
                query = query.bind(function);
            }
            if let Some(outcome) = &q.outcome {
                query = query.bind(outcome);
            }
            if let Some(since) = q.since {
                query = query.bind(since);
            }
            query.bind(q.limit).bind(q.offset).fetch_all(p).await
        })?;
        Ok(rows)
    }

    /// Start of the latest run of `function` with `trigger`, if any.
    pub async fn last_run_started(
        &self,
        function: &str,
        trigger: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        const SQL: &str = "SELECT started_at FROM hub_runs WHERE function = $1 AND trigger = $2 \
            ORDER BY started_at DESC LIMIT 1";
        let row: Option<(DateTime<Utc>,)> = on_pool!(self, |p| sqlx::query_as(SQL)
            .bind(function)
            .bind(trigger)
            .fetch_optional(p)
            .await)?;
        Ok(row.map(|r| r.0))
    }

    /// Claims the scheduled `tick` of `function` for `node`; `true` for exactly one claimant.
    pub async fn claim_tick(
        &self,
        function: &str,
        tick: DateTime<Utc>,
        node: &str,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "INSERT INTO hub_schedule_ticks (function, tick, node, claimed_at) \
            VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";
        let done = on_pool!(self, |p| sqlx::query(SQL)
            .bind(function)
            .bind(tick)
            .bind(node)
            .bind(Utc::now())
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    /// Takes the cluster-wide "running" lock of `function` if it is free. With PostgreSQL this
    /// is a session advisory lock, released when the guard is released or its connection dies
    /// with the process; the embedded store is single-node, so the caller's own flag suffices.
    pub async fn try_run_lock(&self, function: &str) -> Result<Option<RunLock>, StoreError> {
        match self {
            Store::Sqlite(_) => Ok(Some(RunLock { conn: None, key: 0 })),
            Store::Postgres(p) => {
                let key = advisory_key(function);
                let mut conn = p.acquire().await?;
                let (got,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_lock($1)")
                    .bind(key)
                    .fetch_one(&mut *conn)
                    .await?;
                Ok(got.then_some(RunLock {
                    conn: Some(conn),
                    key,
                }))
            }
        }
    }

    /// Deletes what the hub's own history tables (runs, claimed schedule ticks) hold from
    /// before `cutoff`, `batch` rows per statement so a large backlog never holds a long lock.
    /// Returns the rows deleted.
    pub async fn prune_history(
        &self,
        cutoff: DateTime<Utc>,
        batch: i64,
    ) -> Result<u64, StoreError> {
        const STATEMENTS: [&str; 2] = [
            "DELETE FROM hub_runs WHERE id IN \
             (SELECT id FROM hub_runs WHERE started_at < $1 LIMIT $2)",
            "DELETE FROM hub_schedule_ticks WHERE (function, tick) IN \
             (SELECT function, tick FROM hub_schedule_ticks WHERE tick < $1 LIMIT $2)",
        ];
        let mut total = 0;
        for sql in STATEMENTS {
            loop {
                let n = on_pool!(self, |p| sqlx::query(sql)
                    .bind(cutoff)
                    .bind(batch)
                    .execute(p)
                    .await
                    .map(|r| r.rows_affected()))?;
                total += n;
                if n < u64::try_from(batch).unwrap_or(0) {
                    break;
                }
            }
        }
        Ok(total)
    }
}
