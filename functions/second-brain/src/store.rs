//! The SQL side, in either store: `second_brain`, `second_brain_sync_history` and the view
//! `second_brain_stats`. The old job's tables are adopted as they are: every statement here is
//! `IF NOT EXISTS`, columns it may lack are added in place, and columns the hub does not know
//! (the old `embedding vector(1536)`) are never named, so they stay as they were.

use crate::parse::Entry;
use chrono::{DateTime, NaiveDate, Utc};
use hub_runtime::Store;
use hub_runtime::store::StoreError;
use serde::Serialize;
use sqlx::Row;

const PG_SCHEMA: &str = "
BEGIN;
-- Two replicas starting together must not race on CREATE TABLE.
SELECT pg_advisory_xact_lock(495622254446);
CREATE TABLE IF NOT EXISTS second_brain (
    id             BIGSERIAL PRIMARY KEY,
    entry_date     DATE NOT NULL,
    content        TEXT NOT NULL,
    category       TEXT,
    source_repo    TEXT,
    origin_type    TEXT DEFAULT 'journal',
    tags           TEXT[],
    context_string TEXT,
    checksum       TEXT UNIQUE,
    token_count    INTEGER,
    created_at     TIMESTAMPTZ DEFAULT NOW()
);
ALTER TABLE second_brain ADD COLUMN IF NOT EXISTS source_repo TEXT;
ALTER TABLE second_brain ADD COLUMN IF NOT EXISTS origin_type TEXT DEFAULT 'journal';
ALTER TABLE second_brain ADD COLUMN IF NOT EXISTS context_string TEXT;
ALTER TABLE second_brain ADD COLUMN IF NOT EXISTS token_count INTEGER;
-- ON CONFLICT (checksum) needs a unique index; the old table's UNIQUE constraint made one of
-- this name, so this is a no-op there.
CREATE UNIQUE INDEX IF NOT EXISTS second_brain_checksum_key ON second_brain (checksum);
CREATE INDEX IF NOT EXISTS second_brain_entry_date ON second_brain (entry_date DESC);
CREATE INDEX IF NOT EXISTS second_brain_fts
    ON second_brain USING GIN (to_tsvector('english', content));
CREATE TABLE IF NOT EXISTS second_brain_sync_history (
    id              BIGSERIAL PRIMARY KEY,
    start_time      TIMESTAMPTZ NOT NULL,
    end_time        TIMESTAMPTZ,
    status          TEXT NOT NULL,
    processed_count INTEGER NOT NULL DEFAULT 0,
    error_message   TEXT
);
-- An existing view (the old job's) is left as it is: it may feed dashboards.
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_views WHERE viewname = 'second_brain_stats'
                   AND schemaname = current_schema()) THEN
        CREATE VIEW second_brain_stats AS
            SELECT category, COUNT(*) AS entry_count, MIN(entry_date) AS first_entry,
                   MAX(entry_date) AS last_entry, SUM(token_count) AS total_tokens
            FROM second_brain GROUP BY category;
    END IF;
END $$;
COMMIT;
";

const SQLITE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS second_brain (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    entry_date     TEXT NOT NULL,
    content        TEXT NOT NULL,
    category       TEXT,
    source_repo    TEXT,
    origin_type    TEXT DEFAULT 'journal',
    tags           TEXT,
    context_string TEXT,
    checksum       TEXT UNIQUE,
    token_count    INTEGER,
    created_at     TEXT
);
CREATE INDEX IF NOT EXISTS second_brain_entry_date ON second_brain (entry_date DESC);
CREATE TABLE IF NOT EXISTS second_brain_sync_history (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    start_time      TEXT NOT NULL,
    end_time        TEXT,
    status          TEXT NOT NULL,
    processed_count INTEGER NOT NULL DEFAULT 0,
    error_message   TEXT
);
CREATE VIEW IF NOT EXISTS second_brain_stats AS
    SELECT category, COUNT(*) AS entry_count, MIN(entry_date) AS first_entry,
           MAX(entry_date) AS last_entry, SUM(token_count) AS total_tokens
    FROM second_brain GROUP BY category;
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

/// The newest `entry_date` stored from `repo`: issues dated after it are new.
pub async fn latest_date(store: &Store, repo: &str) -> Result<Option<NaiveDate>, StoreError> {
    let date = match store {
        Store::Postgres(pool) => {
            sqlx::query_scalar::<_, Option<NaiveDate>>(
                "SELECT MAX(entry_date) FROM second_brain WHERE source_repo = $1",
            )
            .bind(repo)
            .fetch_one(pool)
            .await?
        }
        Store::Sqlite(pool) => {
            sqlx::query_scalar::<_, Option<NaiveDate>>(
                "SELECT MAX(entry_date) FROM second_brain WHERE source_repo = ?1",
            )
            .bind(repo)
            .fetch_one(pool)
            .await?
        }
    };
    Ok(date)
}

/// Stores one issue's entries in one transaction; an entry whose checksum is stored already
/// (the same bullet in another issue) is left out. Returns how many rows were added.
pub async fn insert(store: &Store, repo: &str, entries: &[Entry]) -> Result<u64, StoreError> {
    if entries.is_empty() {
        return Ok(0);
    }
    let now = Utc::now();
    let mut added = 0;
    match store {
        Store::Postgres(pool) => {
            let dates: Vec<NaiveDate> = entries.iter().map(|e| e.entry_date).collect();
            let contents: Vec<&str> = entries.iter().map(|e| e.content.as_str()).collect();
            let categories: Vec<&str> = entries.iter().map(|e| e.category).collect();
            // Arrays of arrays must be rectangular in PostgreSQL: tags travel as JSON.
            let tags: Vec<String> = entries
                .iter()
                .map(|e| serde_json::to_string(&e.tags).unwrap_or_default())
                .collect();
            let contexts: Vec<&str> = entries.iter().map(|e| e.context_string.as_str()).collect();
            let sums: Vec<&str> = entries.iter().map(|e| e.checksum.as_str()).collect();
            let tokens: Vec<i32> = entries.iter().map(|e| e.token_count).collect();
            added = sqlx::query(
                "INSERT INTO second_brain (entry_date, content, category, source_repo, \
                 origin_type, tags, context_string, checksum, token_count, created_at) \
                 SELECT d, c, k, $8, 'journal', \
                   ARRAY(SELECT jsonb_array_elements_text(t::jsonb)), x, s, n, $9 \
                 FROM UNNEST($1::date[], $2::text[], $3::text[], $4::text[], $5::text[], \
                   $6::text[], $7::int4[]) AS u(d, c, k, t, x, s, n) \
                 ON CONFLICT (checksum) DO NOTHING",
            )
            .bind(&dates)
            .bind(&contents)
            .bind(&categories)
            .bind(&tags)
            .bind(&contexts)
            .bind(&sums)
            .bind(&tokens)
            .bind(repo)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected();
        }
        Store::Sqlite(pool) => {
            let mut tx = pool.begin().await?;
            for e in entries {
                added += sqlx::query(
                    "INSERT INTO second_brain (entry_date, content, category, source_repo, \
                     origin_type, tags, context_string, checksum, token_count, created_at) \
                     VALUES (?1, ?2, ?3, ?4, 'journal', ?5, ?6, ?7, ?8, ?9) \
                     ON CONFLICT (checksum) DO NOTHING",
                )
                .bind(e.entry_date)
                .bind(&e.content)
                .bind(e.category)
                .bind(repo)
                .bind(serde_json::to_string(&e.tags).unwrap_or_default())
                .bind(&e.context_string)
                .bind(&e.checksum)
                .bind(e.token_count)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            tx.commit().await?;
        }
    }
    Ok(added)
}

/// One row of `second_brain_sync_history`, written when a run ends.
pub async fn history(
    store: &Store,
    start: DateTime<Utc>,
    status: &str,
    processed: u64,
    error: Option<&str>,
) -> Result<(), StoreError> {
    let end = Utc::now();
    let processed = i32::try_from(processed).unwrap_or(i32::MAX);
    hub_runtime::on_pool!(store, |pool| {
        sqlx::query(
            "INSERT INTO second_brain_sync_history \
             (start_time, end_time, status, processed_count, error_message) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(start)
        .bind(end)
        .bind(status)
        .bind(processed)
        .bind(error)
        .execute(pool)
        .await
        .map(|_| ())
    })?;
    Ok(())
}

/// One stored entry, as `GET /api/brain` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct StoredEntry {
    pub id: i64,
    pub entry_date: NaiveDate,
    pub content: String,
    pub category: Option<String>,
    pub tags: Vec<String>,
    pub checksum: Option<String>,
    pub token_count: Option<i32>,
}

/// Filters and page of `GET /api/brain`.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub category: Option<String>,
    pub tag: Option<String>,
    pub q: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

/// `%`, `_` and the escape itself taken literally in a `LIKE … ESCAPE '\'` pattern.
fn like_pattern(q: &str) -> String {
    let mut p = String::from("%");
    for c in q.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// A page of entries, newest first.
pub async fn list(store: &Store, q: &ListQuery) -> Result<Vec<StoredEntry>, StoreError> {
    let items = match store {
        Store::Postgres(pool) => sqlx::query(
            "SELECT id::int8 AS id, entry_date, content, category, \
             COALESCE(tags, '{}') AS tags, checksum, token_count FROM second_brain \
             WHERE ($1::text IS NULL OR category = $1) AND ($2::text IS NULL OR $2 = ANY(tags)) \
             AND ($3::text IS NULL OR to_tsvector('english', content) @@ \
                  plainto_tsquery('english', $3)) \
             ORDER BY entry_date DESC, id DESC LIMIT $4 OFFSET $5",
        )
        .bind(&q.category)
        .bind(&q.tag)
        .bind(&q.q)
        .bind(q.limit)
        .bind(q.offset)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| {
            Ok(StoredEntry {
                id: r.try_get("id")?,
                entry_date: r.try_get("entry_date")?,
                content: r.try_get("content")?,
                category: r.try_get("category")?,
                tags: r.try_get("tags")?,
                checksum: r.try_get("checksum")?,
                token_count: r.try_get("token_count")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?,
        Store::Sqlite(pool) => sqlx::query(
            "SELECT id, entry_date, content, category, tags, checksum, token_count \
             FROM second_brain \
             WHERE (?1 IS NULL OR category = ?1) \
             AND (?2 IS NULL OR EXISTS (SELECT 1 FROM json_each(second_brain.tags) \
                                        WHERE json_each.value = ?2)) \
             AND (?3 IS NULL OR content LIKE ?3 ESCAPE '\\') \
             ORDER BY entry_date DESC, id DESC LIMIT ?4 OFFSET ?5",
        )
        .bind(&q.category)
        .bind(&q.tag)
        .bind(q.q.as_deref().map(like_pattern))
        .bind(q.limit)
        .bind(q.offset)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| {
            let tags: Option<String> = r.try_get("tags")?;
            Ok(StoredEntry {
                id: r.try_get("id")?,
                entry_date: r.try_get("entry_date")?,
                content: r.try_get("content")?,
                category: r.try_get("category")?,
                tags: tags
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .unwrap_or_default(),
                checksum: r.try_get("checksum")?,
                token_count: r.try_get("token_count")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?,
    };
    Ok(items)
}

/// The panel's figures: entries per day since `since`, and the most used tags then.
#[derive(Debug, Default)]
pub struct Recent {
    pub per_day: Vec<(NaiveDate, i64)>,
    pub top_tags: Vec<(String, i64)>,
}

pub async fn recent(store: &Store, since: NaiveDate) -> Result<Recent, StoreError> {
    let (per_day, top_tags) = match store {
        Store::Postgres(pool) => (
            sqlx::query_as::<_, (NaiveDate, i64)>(
                "SELECT entry_date, COUNT(*) FROM second_brain WHERE entry_date >= $1 \
                 GROUP BY entry_date ORDER BY entry_date",
            )
            .bind(since)
            .fetch_all(pool)
            .await?,
            sqlx::query_as::<_, (String, i64)>(
                "SELECT t, COUNT(*) FROM second_brain, UNNEST(tags) AS t \
                 WHERE entry_date >= $1 GROUP BY t ORDER BY 2 DESC, 1 LIMIT 10",
            )
            .bind(since)
            .fetch_all(pool)
            .await?,
        ),
        Store::Sqlite(pool) => (
            sqlx::query_as::<_, (NaiveDate, i64)>(
                "SELECT entry_date, COUNT(*) FROM second_brain WHERE entry_date >= ?1 \
                 GROUP BY entry_date ORDER BY entry_date",
            )
            .bind(since)
            .fetch_all(pool)
            .await?,
            sqlx::query_as::<_, (String, i64)>(
                "SELECT j.value, COUNT(*) FROM second_brain, json_each(second_brain.tags) AS j \
                 WHERE entry_date >= ?1 GROUP BY j.value ORDER BY 2 DESC, 1 LIMIT 10",
            )
            .bind(since)
            .fetch_all(pool)
            .await?,
        ),
    };
    Ok(Recent { per_day, top_tags })
}
