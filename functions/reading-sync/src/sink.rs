//! The SQL side, in either store: `reading_analytics` (the seed's schema), the dead-letter table
//! and `reading_sync_history`. PostgreSQL gets each batch as one transaction of array-unnesting
//! statements; SQLite gets chunked multi-row statements in one transaction.

use crate::transform::Reading;
use chrono::{DateTime, Utc};
use hub_runtime::Store;
use hub_runtime::store::StoreError;
use serde::Serialize;
use serde_json::value::RawValue;

const PG_SCHEMA: &str = "
BEGIN;
-- Two replicas starting together must not race on CREATE TABLE.
SELECT pg_advisory_xact_lock(7265616469);
CREATE TABLE IF NOT EXISTS reading_analytics (
    id              BIGSERIAL PRIMARY KEY,
    mongo_id        TEXT NOT NULL UNIQUE,
    event_timestamp TIMESTAMPTZ,
    source          TEXT,
    event_type      TEXT,
    payload         JSONB,
    meta            JSONB,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS reading_analytics_event_timestamp
    ON reading_analytics (event_timestamp DESC);
CREATE TABLE IF NOT EXISTS reading_sync_history (
    id              BIGSERIAL PRIMARY KEY,
    start_time      TIMESTAMPTZ NOT NULL,
    end_time        TIMESTAMPTZ,
    status          TEXT NOT NULL,
    processed_count INTEGER NOT NULL DEFAULT 0,
    error_message   TEXT
);
-- Columns the seed's table lacks; added in place so an existing table keeps its rows.
ALTER TABLE reading_sync_history ADD COLUMN IF NOT EXISTS failed_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE reading_sync_history ADD COLUMN IF NOT EXISTS trigger TEXT;
CREATE TABLE IF NOT EXISTS reading_sync_dead_letters (
    mongo_id  TEXT PRIMARY KEY,
    error     TEXT NOT NULL,
    document  TEXT NOT NULL,
    failed_at TIMESTAMPTZ NOT NULL
);
COMMIT;
";

const SQLITE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS reading_analytics (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    mongo_id        TEXT NOT NULL UNIQUE,
    event_timestamp TEXT,
    source          TEXT,
    event_type      TEXT,
    payload         TEXT,
    meta            TEXT,
    created_at      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS reading_analytics_event_timestamp
    ON reading_analytics (event_timestamp DESC);
CREATE TABLE IF NOT EXISTS reading_sync_history (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    start_time      TEXT NOT NULL,
    end_time        TEXT,
    status          TEXT NOT NULL,
    processed_count INTEGER NOT NULL DEFAULT 0,
    error_message   TEXT,
    failed_count    INTEGER NOT NULL DEFAULT 0,
    trigger         TEXT
);
CREATE TABLE IF NOT EXISTS reading_sync_dead_letters (
    mongo_id  TEXT PRIMARY KEY,
    error     TEXT NOT NULL,
    document  TEXT NOT NULL,
    failed_at TEXT NOT NULL
);
";

pub async fn ensure_schema(store: &Store) -> Result<(), StoreError> {
    match store {
        Store::Postgres(pool) => sqlx::raw_sql(PG_SCHEMA).execute(pool).await.map(|_| ())?,
        Store::Sqlite(pool) => sqlx::raw_sql(SQLITE_SCHEMA)
            .execute(pool)
            .await
            .map(|_| ())?,
    }
    Ok(())
}

/// A document that could not be mapped.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub mongo_id: String,
    pub error: String,
    /// The whole document as relaxed Extended JSON.
    pub document: String,
}

/// Rows per SQLite statement: 7 variables each, under SQLite's limit of 32766.
const SQLITE_CHUNK: usize = 1000;

const UPSERT_SET: &str = " ON CONFLICT (mongo_id) DO UPDATE SET \
    event_timestamp = excluded.event_timestamp, source = excluded.source, \
    event_type = excluded.event_type, payload = excluded.payload, meta = excluded.meta";
const DEAD_SET: &str = " ON CONFLICT (mongo_id) DO UPDATE SET \
    error = excluded.error, document = excluded.document, failed_at = excluded.failed_at";

/// Writes one batch in one transaction: upserts the readings (a re-read document replaces its
/// row, never adds one), records the dead letters, and clears dead letters of documents that
/// now went through (fixed at the source and set back to `ingested`).
pub async fn write_batch(
    store: &Store,
    readings: &[Reading],
    dead: &[DeadLetter],
) -> Result<(), StoreError> {
    let now = Utc::now();
    let ids: Vec<&str> = readings.iter().map(|r| r.mongo_id.as_str()).collect();
    let json = |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string());
    match store {
        Store::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            if !readings.is_empty() {
                let ts: Vec<DateTime<Utc>> = readings.iter().map(|r| r.event_timestamp).collect();
                let sources: Vec<Option<&str>> =
                    readings.iter().map(|r| r.source.as_deref()).collect();
                let types: Vec<Option<&str>> =
                    readings.iter().map(|r| r.event_type.as_deref()).collect();
                let payloads: Vec<Option<String>> =
                    readings.iter().map(|r| json(&r.payload)).collect();
                let metas: Vec<Option<String>> = readings.iter().map(|r| json(&r.meta)).collect();
                sqlx::query(&format!(
                    "INSERT INTO reading_analytics \
                     (mongo_id, event_timestamp, source, event_type, payload, meta, created_at) \
                     SELECT i, t, s, e, p::jsonb, m::jsonb, $7 FROM UNNEST($1::text[], \
                     $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[]) \
                     AS u(i, t, s, e, p, m){UPSERT_SET}"
                ))
                .bind(&ids)
                .bind(&ts)
                .bind(&sources)
                .bind(&types)
                .bind(&payloads)
                .bind(&metas)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM reading_sync_dead_letters WHERE mongo_id = ANY($1)")
                    .bind(&ids)
                    .execute(&mut *tx)
                    .await?;
            }
            if !dead.is_empty() {
                let dids: Vec<&str> = dead.iter().map(|d| d.mongo_id.as_str()).collect();
                let errors: Vec<&str> = dead.iter().map(|d| d.error.as_str()).collect();
                let docs: Vec<&str> = dead.iter().map(|d| d.document.as_str()).collect();
                sqlx::query(&format!(
                    "INSERT INTO reading_sync_dead_letters (mongo_id, error, document, failed_at) \
                     SELECT i, e, d, $4 FROM UNNEST($1::text[], $2::text[], $3::text[]) \
                     AS u(i, e, d){DEAD_SET}"
                ))
                .bind(&dids)
                .bind(&errors)
                .bind(&docs)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        }
        Store::Sqlite(pool) => {
            let mut tx = pool.begin().await?;
            for chunk in readings.chunks(SQLITE_CHUNK) {
                let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                    "INSERT INTO reading_analytics \
                     (mongo_id, event_timestamp, source, event_type, payload, meta, created_at) ",
                );
                q.push_values(chunk, |mut b, r| {
                    b.push_bind(&r.mongo_id)
                        .push_bind(r.event_timestamp)
                        .push_bind(&r.source)
                        .push_bind(&r.event_type)
                        .push_bind(json(&r.payload))
                        .push_bind(json(&r.meta))
                        .push_bind(now);
                });
                q.push(UPSERT_SET);
                q.build().execute(&mut *tx).await?;
                let mut del = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                    "DELETE FROM reading_sync_dead_letters WHERE mongo_id IN (",
                );
                let mut list = del.separated(", ");
                for r in chunk {
                    list.push_bind(&r.mongo_id);
                }
                del.push(")");
                del.build().execute(&mut *tx).await?;
            }
            for chunk in dead.chunks(SQLITE_CHUNK) {
                let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                    "INSERT INTO reading_sync_dead_letters (mongo_id, error, document, failed_at) ",
                );
                q.push_values(chunk, |mut b, d| {
                    b.push_bind(&d.mongo_id)
                        .push_bind(&d.error)
                        .push_bind(&d.document)
                        .push_bind(now);
                });
                q.push(DEAD_SET);
                q.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
        }
    }
    Ok(())
}

/// Opens a `reading_sync_history` row (`running`); returns its id.
pub async fn history_start(
    store: &Store,
    started: DateTime<Utc>,
    trigger: &str,
) -> Result<i64, StoreError> {
    // The old hub's table has `end_time` and `processed_count` NOT NULL without defaults, and
    // a 32-bit SERIAL id: a running row carries its start as end and a count of 0 until
    // it is closed, and the id is read as 64 bits either way.
    const SQL: &str = "INSERT INTO reading_sync_history \
        (start_time, end_time, status, processed_count, trigger) \
        VALUES ($1, $1, 'running', 0, $2) RETURNING CAST(id AS BIGINT)";
    let (id,): (i64,) = hub_runtime::on_pool!(store, |p| sqlx::query_as(SQL)
        .bind(started)
        .bind(trigger)
        .fetch_one(p)
        .await)?;
    Ok(id)
}

/// Closes the `running` rows, other than `mine`, of runs started before `cutoff`: their runner
/// died (`kill -9`, a lost Lambda) without saying how they ended. A run that is merely slow
/// overwrites this when it finishes. Returns how many rows were closed.
pub async fn history_close_abandoned(
    store: &Store,
    cutoff: DateTime<Utc>,
    mine: i64,
) -> Result<u64, StoreError> {
    const SQL: &str = "UPDATE reading_sync_history SET end_time = $1, status = 'failure', \
        error_message = $2 WHERE status = 'running' AND start_time < $3 AND id <> $4";
    let reason = format!(
        "abandoned: still running at {}, when a later run started; its runner stopped \
         before the run finished",
        Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    let done = hub_runtime::on_pool!(store, |p| sqlx::query(SQL)
        .bind(Utc::now())
        .bind(&reason)
        .bind(cutoff)
        .bind(mine)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(done)
}

/// Closes a history row with the run's result.
pub async fn history_finish(
    store: &Store,
    id: i64,
    status: &str,
    processed: u64,
    failed: u64,
    error: Option<&str>,
) -> Result<(), StoreError> {
    const SQL: &str = "UPDATE reading_sync_history SET end_time = $1, status = $2, \
        processed_count = $3, failed_count = $4, error_message = $5 WHERE id = $6";
    let (processed, failed) = (
        i32::try_from(processed).unwrap_or(i32::MAX),
        i32::try_from(failed).unwrap_or(i32::MAX),
    );
    hub_runtime::on_pool!(store, |p| sqlx::query(SQL)
        .bind(Utc::now())
        .bind(status)
        .bind(processed)
        .bind(failed)
        .bind(error)
        .bind(id)
        .execute(p)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// One stored reading, as `GET /api/reading` returns it. `payload` and `meta` are passed
/// through as the JSON text the database holds: never re-parsed into a tree, so any nesting
/// depth comes back as it went in.
#[derive(Debug, Clone, Serialize)]
pub struct StoredReading {
    pub id: i64,
    pub mongo_id: String,
    pub event_timestamp: Option<DateTime<Utc>>,
    pub source: Option<String>,
    pub event_type: Option<String>,
    pub payload: Option<Box<RawValue>>,
    pub meta: Option<Box<RawValue>>,
    /// NULL only in rows of the old hub's table, where the column has a default but may be NULL.
    pub created_at: Option<DateTime<Utc>>,
}

/// Filters and page for [`list`].
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub source: Option<String>,
    pub event_type: Option<String>,
    pub limit: i64,
    pub offset: i64,
    /// The page stops before the row that would take `payload` + `meta` past this many bytes
    /// (the first row always comes, whatever its size).
    pub max_bytes: i64,
}

/// One page of [`list`].
#[derive(Debug, Clone)]
pub struct Page {
    pub items: Vec<StoredReading>,
    /// Rows the page would have held without the byte cap.
    pub uncapped: usize,
}

type RawReading = (
    i64,
    String,
    Option<DateTime<Utc>>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<DateTime<Utc>>,
    i64,
);

/// Newest events first. The database measures the rows and sends only those within the byte
/// cap, so a page of huge documents never crosses the wire whole.
pub async fn list(store: &Store, q: &ListQuery) -> Result<Page, StoreError> {
    // `octet_length` counts bytes in both dialects (SQLite has it since 3.43).
    const SQL: &str = "WITH page AS (SELECT CAST(id AS BIGINT) AS id, mongo_id, event_timestamp, source, event_type, \
           CAST(payload AS TEXT) AS p, CAST(meta AS TEXT) AS m, created_at \
         FROM reading_analytics \
         WHERE ($1 IS NULL OR source = $1) AND ($2 IS NULL OR event_type = $2) \
         ORDER BY event_timestamp DESC, id DESC LIMIT $3 OFFSET $4), \
       sized AS (SELECT *, \
         SUM(COALESCE(octet_length(p), 0) + COALESCE(octet_length(m), 0)) OVER w AS upto, \
         ROW_NUMBER() OVER w AS n, COUNT(*) OVER () AS rows_in_page \
         FROM page WINDOW w AS (ORDER BY event_timestamp DESC, id DESC \
           ROWS UNBOUNDED PRECEDING)) \
       SELECT id, mongo_id, event_timestamp, source, event_type, p, m, created_at, \
         rows_in_page FROM sized WHERE upto <= $5 OR n = 1 \
       ORDER BY event_timestamp DESC, id DESC";
    let raw: Vec<RawReading> = hub_runtime::on_pool!(store, |p| sqlx::query_as(SQL)
        .bind(&q.source)
        .bind(&q.event_type)
        .bind(q.limit)
        .bind(q.offset)
        .bind(q.max_bytes)
        .fetch_all(p)
        .await)?;
    let uncapped = raw.first().map_or(0, |r| usize::try_from(r.8).unwrap_or(0));
    let items = raw
        .into_iter()
        .map(
            |(id, mongo_id, event_timestamp, source, event_type, payload, meta, created_at, _)| {
                StoredReading {
                    id,
                    mongo_id,
                    event_timestamp,
                    source,
                    event_type,
                    payload: payload.map(as_json),
                    meta: meta.map(as_json),
                    created_at,
                }
            },
        )
        .collect();
    Ok(Page { items, uncapped })
}

/// Stored JSON text as it is; text that is somehow not JSON (written by hand into the SQLite
/// file) as a JSON string rather than a broken answer.
fn as_json(text: String) -> Box<RawValue> {
    let raw = match serde_json::from_str::<&RawValue>(&text) {
        Ok(_) => RawValue::from_string(text),
        Err(_) => serde_json::value::to_raw_value(&text),
    };
    raw.unwrap_or_else(|_| RawValue::NULL.to_owned())
}
