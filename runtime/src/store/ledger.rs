//! SQLite's replay-key claims, through an in-memory index of `hub_seen_keys`.
//!
//! The keys a webhook delivery claims are random (its delivery UUID, its body's hash). Under a
//! unique index on (scope, key) every claim dirtied a random B-tree page, written to the WAL
//! and again at the checkpoint: that index cost nearly half the deliveries per second. So the
//! SQLite table has no such index (migration 0005); rows are appended in claim order, and the
//! writer finds a key's row through [`KeyIndex`], a map from a 64-bit hash of (scope, key) to
//! its rowid.
//!
//! - **The index is a hint, the table is the truth.** A key the index knows is read back by
//!   rowid and compared before it counts: an entry whose row the clean-up deleted, or that a
//!   rolled-back insert left, means "new", as the table says.
//! - **Complete by construction.** The index is filled from the table on the writer's first
//!   batch and, at the start of every batch (inside its `BEGIN IMMEDIATE`, so nothing can be
//!   added meanwhile), from the rows any other connection or process appended since: rowids
//!   are never reused (AUTOINCREMENT), so those are the rows above the highest it knows.
//! - **Rebuilt after a failed batch** (see `batch.rs`): its rolled-back rowids are handed out
//!   again, and the index must not count them as read.
//! - **Memory:** an entry is 16 bytes in a hash map, about 40 with the map's slack: two keys
//!   per delivery, kept as long as the table keeps them (30 days for webhook deliveries).
//!
//! PostgreSQL keeps its unique index: several gateways may share it, and its claims are one
//! round trip each batch either way (see `batch.rs`).

use super::StoreError;
use super::batch::json_arg;
use super::claims::{KeysTx, Row};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use sqlx::{Sqlite, Transaction};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

/// Where each (scope, key) of `hub_seen_keys` is, by hash; owned by the writer's connection.
#[derive(Debug, Default)]
pub(super) struct KeyIndex {
    rows: HashMap<u64, i64>,
    /// The highest rowid read into the index: rows above it were appended elsewhere.
    seen: i64,
}

fn hash(scope: &str, key: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (scope, key).hash(&mut h);
    h.finish()
}

impl KeyIndex {
    /// Reads the rows appended since the last call (all of them, the first time).
    pub(super) async fn catch_up(
        &mut self,
        tx: &mut Transaction<'_, Sqlite>,
    ) -> Result<(), StoreError> {
        const SQL: &str =
            "SELECT rowid, scope, key FROM hub_seen_keys WHERE rowid > $1 ORDER BY rowid";
        let (first, clock) = (self.seen == 0, std::time::Instant::now());
        let mut rows = sqlx::query_as::<_, (i64, String, String)>(SQL)
            .bind(self.seen)
            .fetch(&mut **tx);
        while let Some((rowid, scope, key)) = rows.try_next().await? {
            self.set(hash(&scope, &key), rowid);
        }
        if first && !self.rows.is_empty() {
            // Its time and memory grow with the table: worth seeing in the log.
            let ms = clock.elapsed().as_millis();
            tracing::info!(keys = self.rows.len(), ms, "replay keys read into memory");
        }
        Ok(())
    }

    fn set(&mut self, h: u64, rowid: i64) {
        self.rows.insert(h, rowid);
        self.seen = self.seen.max(rowid);
    }
}

/// The batch's transaction with the writer's index.
pub(super) struct SqliteKeys<'a, 'c> {
    pub(super) tx: &'a mut Transaction<'c, Sqlite>,
    pub(super) index: &'a mut KeyIndex,
}

/// Failed keys taken again, by rowid: `$1` is `[[rowid, subject], …]`.
const RETAKE: &str = "UPDATE hub_seen_keys SET state = 'pending', seen_at = $2, \
    subject = s.value ->> 1 FROM json_each($1) AS s \
    WHERE hub_seen_keys.rowid = s.value ->> 0 AND +hub_seen_keys.state = 'failed' \
    RETURNING hub_seen_keys.scope, hub_seen_keys.key";

/// Pending keys settled, by rowid, each row checked to hold its key in the update itself:
/// `$1` is `[[rowid, key], …]`. The unary `+` keeps SQLite from the (scope, state) index: with
/// it, the planner walked every pending row and scanned the list for each (seen: seconds per
/// settlement after a few thousand deliveries), instead of looking each listed row up.
const SETTLE: &str = "UPDATE hub_seen_keys SET state = $2 FROM json_each($1) AS s \
    WHERE hub_seen_keys.rowid = s.value ->> 0 AND hub_seen_keys.key = s.value ->> 1 \
    AND +hub_seen_keys.scope = $3 AND +hub_seen_keys.state = 'pending'";

/// A key's row as the table holds it.
struct Found {
    rowid: i64,
    failed: bool,
}

impl SqliteKeys<'_, '_> {
    /// The row of each of `rows`, in order: looked up by the rowid the index gives, and
    /// counted only when it holds that key. An entry whose row is gone, or holds another key
    /// (a hash collision: odds of about 3 in 10^8 with a million keys), gives `None`: new, as
    /// the table says. Keys the index does not know cost no query.
    async fn find(&mut self, rows: &[Row<'_>]) -> Result<Vec<Option<Found>>, StoreError> {
        const BY_ROWID: &str = "SELECT rowid, scope, key, state = 'failed' FROM hub_seen_keys \
            WHERE rowid IN (SELECT value FROM json_each($1))";
        let rowids: Vec<Option<i64>> = rows
            .iter()
            .map(|r| self.index.rows.get(&hash(r.0, r.1)).copied())
            .collect();
        let known: Vec<i64> = rowids.iter().flatten().copied().collect();
        if known.is_empty() {
            return Ok(rows.iter().map(|_| None).collect());
        }
        let stored: Vec<(i64, String, String, bool)> = sqlx::query_as(BY_ROWID)
            .bind(json_arg(&known)?)
            .fetch_all(&mut **self.tx)
            .await?;
        let stored: HashMap<i64, (String, String, bool)> = stored
            .into_iter()
            .map(|(rowid, scope, key, failed)| (rowid, (scope, key, failed)))
            .collect();
        Ok(rows
            .iter()
            .zip(rowids)
            .map(|(r, rowid)| {
                let rowid = rowid?;
                let (scope, key, failed) = stored.get(&rowid)?;
                (scope == r.0 && key == r.1).then_some(Found {
                    rowid,
                    failed: *failed,
                })
            })
            .collect())
    }
}

impl KeysTx for SqliteKeys<'_, '_> {
    async fn take(
        &mut self,
        rows: &[Row<'_>],
        at: DateTime<Utc>,
    ) -> Result<Vec<(String, String)>, StoreError> {
        const INSERT: &str = "INSERT INTO hub_seen_keys (scope, key, seen_at, subject, state) \
            SELECT value ->> 0, value ->> 1, $2, value ->> 2, 'pending' FROM json_each($1) \
            RETURNING rowid, scope, key";
        let found = self.find(rows).await?;
        let (mut new, mut retake) = (Vec::new(), Vec::new());
        for (row, found) in rows.iter().zip(found) {
            match found {
                None => new.push(*row),
                Some(f) if f.failed => retake.push((f.rowid, row.2)),
                Some(_) => {}
            }
        }
        let mut took: Vec<(String, String)> = Vec::with_capacity(new.len() + retake.len());
        if !new.is_empty() {
            let inserted: Vec<(i64, String, String)> = sqlx::query_as(INSERT)
                .bind(json_arg(&new)?)
                .bind(at)
                .fetch_all(&mut **self.tx)
                .await?;
            for (rowid, scope, key) in inserted {
                self.index.set(hash(&scope, &key), rowid);
                took.push((scope, key));
            }
        }
        if !retake.is_empty() {
            let retaken: Vec<(String, String)> = sqlx::query_as(RETAKE)
                .bind(json_arg(&retake)?)
                .bind(at)
                .fetch_all(&mut **self.tx)
                .await?;
            took.extend(retaken);
        }
        Ok(took)
    }

    async fn settle(
        &mut self,
        scope: &str,
        keys: &[String],
        state: &str,
    ) -> Result<(), StoreError> {
        let rowids: Vec<(i64, &str)> = keys
            .iter()
            .filter_map(|k| {
                self.index
                    .rows
                    .get(&hash(scope, k))
                    .map(|r| (*r, k.as_str()))
            })
            .collect();
        if rowids.is_empty() {
            return Ok(());
        }
        sqlx::query(SETTLE)
            .bind(json_arg(&rowids)?)
            .bind(state)
            .bind(scope)
            .execute(&mut **self.tx)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{RETAKE, SETTLE};
    use sqlx::sqlite::SqlitePool;

    /// How SQLite runs `sql` on the store's schema: the lines of `EXPLAIN QUERY PLAN`.
    async fn plan(sql: &str) -> Vec<String> {
        let pool = SqlitePool::connect("sqlite::memory:")
            .await
            .expect("sqlite");
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .expect("migrate");
        let rows: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(&format!("EXPLAIN QUERY PLAN {sql}"))
                .bind("[]")
                .bind("x")
                .bind("x")
                .fetch_all(&pool)
                .await
                .expect("plan");
        rows.into_iter().map(|r| r.3).collect()
    }

    /// The list drives, each row is found by rowid: a settlement costs its own keys, not a
    /// walk over every pending one.
    #[tokio::test]
    async fn settling_and_retaking_look_each_listed_row_up_by_rowid() {
        for sql in [SETTLE, RETAKE] {
            let plan = plan(sql).await;
            assert_eq!(plan.len(), 2, "{plan:?}");
            assert!(plan[0].starts_with("SCAN s"), "{plan:?}");
            assert!(
                plan[1].contains("USING INTEGER PRIMARY KEY (rowid=?)"),
                "{plan:?}"
            );
        }
    }
}
