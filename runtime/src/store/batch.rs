//! How the writer ([`super::Writer`]) writes one batch: every write in one transaction.
//! Claims and settlements keep their queue order (a later claim sees an earlier one), run rows
//! come after them (nothing in the batch reads them).
//!
//! Every statement costs a hand-over — a round trip to PostgreSQL, a trip to the connection's
//! own thread and back for SQLite — that dwarfs the rows it writes, so a batch is a handful of
//! statements whatever its size: its claims one (see [`super::claims`]), each settlement one,
//! its run rows one (PostgreSQL: arrays; SQLite, which has none: one JSON array). SQLite's
//! claims go through the writer's index of the keys ([`super::ledger`]), which adds one
//! statement: the catch-up on keys appended by other connections.

use super::claims::{Claim, KeysTx, Row, claim_all};
use super::ledger::{KeyIndex, SqliteKeys};
use super::{RunRow, Store, StoreError};
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::pool::PoolConnection;
use sqlx::{Connection, Postgres, Sqlite, Transaction};

/// One write the writer was asked for.
pub(super) enum Op {
    Run(RunRow),
    /// `keys` deduplicated: a claim of the same key twice is a claim of it once.
    Claim {
        scope: &'static str,
        subject: String,
        keys: Vec<String>,
    },
    Settle {
        scope: &'static str,
        keys: Vec<String>,
        done: bool,
    },
    /// Writes nothing: answered once everything queued before it is committed.
    Flush,
    /// Writes nothing; on SQLite, reads the replay keys into the writer's index.
    LoadKeys,
}

/// The writer's connection, kept from one batch to the next: taking one from the pool for
/// every batch cost a liveness ping — one more hand-over — each time. Dropped (back to the
/// pool, which tests it) after any failure but a refusal of the batch's contents.
pub(super) struct Conn {
    store: Store,
    held: Option<Held>,
}

enum Held {
    Postgres(PoolConnection<Postgres>),
    /// With the index of its replay keys ([`KeyIndex`]): dropped with the connection, rebuilt
    /// from the table by the next.
    Sqlite(PoolConnection<Sqlite>, KeyIndex),
}

impl Conn {
    pub(super) fn new(store: Store) -> Self {
        Self { store, held: None }
    }

    /// Writes `ops` in one transaction; per op, whether a claim claimed (`true` for the rest).
    /// Claims queued one after another go in one statement ([`claim_all`]); a settlement
    /// between them is written in its place, so a claim after it sees it.
    pub(super) async fn apply(&mut self, ops: &[&Op]) -> Result<Vec<bool>, StoreError> {
        let nothing = |op: &&Op| match op {
            Op::Flush => true,
            Op::LoadKeys => matches!(self.store, Store::Postgres(_)),
            _ => false,
        };
        if ops.iter().all(nothing) {
            return Ok(vec![true; ops.len()]);
        }
        let held = match &mut self.held {
            Some(held) => held,
            None => self.held.insert(match &self.store {
                Store::Postgres(p) => Held::Postgres(p.acquire().await?),
                Store::Sqlite(p) => Held::Sqlite(p.acquire().await?, KeyIndex::default()),
            }),
        };
        let result = write(held, ops).await;
        if result.as_ref().is_err_and(|e| !refused_for_contents(e)) {
            self.held = None;
        }
        result
    }
}

/// A data error, or a PostgreSQL deadlock / serialization failure with another writer: the
/// same writes may go through on their own.
pub(super) fn refused_for_contents(e: &StoreError) -> bool {
    if e.is_data_error() {
        return true;
    }
    let StoreError::Query(sqlx::Error::Database(db)) = e else {
        return false;
    };
    matches!(db.code().as_deref(), Some("40P01" | "40001"))
}

async fn write(held: &mut Held, ops: &[&Op]) -> Result<Vec<bool>, StoreError> {
    let runs: Vec<&RunRow> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Run(row) => Some(row),
            _ => None,
        })
        .collect();
    let at = Utc::now();
    match held {
        Held::Postgres(c) => {
            let mut tx = c.begin().await?;
            let claimed = keys(&mut tx, ops, at).await?;
            insert_runs_pg(&mut tx, &runs).await?;
            tx.commit().await?;
            Ok(claimed)
        }
        Held::Sqlite(c, index) => {
            // IMMEDIATE: the write lock first, so that no other connection appends keys between
            // the index's catch-up and this batch's claims.
            let mut tx = c.begin_with("BEGIN IMMEDIATE").await?;
            let result = async {
                let uses_keys =
                    |op: &&Op| matches!(op, Op::Claim { .. } | Op::Settle { .. } | Op::LoadKeys);
                if ops.iter().any(uses_keys) {
                    index.catch_up(&mut tx).await?;
                }
                let claimed = keys(&mut SqliteKeys { tx: &mut tx, index }, ops, at).await?;
                insert_runs_sqlite(&mut tx, &runs).await?;
                tx.commit().await?;
                Ok(claimed)
            }
            .await;
            if result.is_err() {
                // Rolled back: rebuilt from the table by the next batch.
                *index = KeyIndex::default();
            }
            result
        }
    }
}

/// The claims and settlements of `ops`, in order.
async fn keys<T: KeysTx>(
    tx: &mut T,
    ops: &[&Op],
    at: DateTime<Utc>,
) -> Result<Vec<bool>, StoreError> {
    let mut claimed = vec![true; ops.len()];
    // Indexes (into `ops`) of the claims waiting to be written together.
    let mut group: Vec<usize> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        match op {
            Op::Claim { .. } => group.push(i),
            Op::Settle { scope, keys, done } => {
                claim_group(tx, ops, &mut group, &mut claimed, at).await?;
                let state = if *done { "done" } else { "failed" };
                tx.settle(scope, keys, state).await?;
            }
            Op::Run(_) | Op::Flush | Op::LoadKeys => {}
        }
    }
    claim_group(tx, ops, &mut group, &mut claimed, at).await?;
    Ok(claimed)
}

async fn claim_group<T: KeysTx>(
    tx: &mut T,
    ops: &[&Op],
    group: &mut Vec<usize>,
    claimed: &mut [bool],
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    if group.is_empty() {
        return Ok(());
    }
    let claims: Vec<Claim<'_>> = group
        .iter()
        .filter_map(|i| match ops[*i] {
            Op::Claim {
                scope,
                subject,
                keys,
            } => Some(Claim {
                scope,
                subject,
                keys,
            }),
            _ => None,
        })
        .collect();
    for (i, got) in group.drain(..).zip(claim_all(tx, &claims, at).await?) {
        claimed[i] = got;
    }
    Ok(())
}

/// Keys bound as `text[]`.
impl KeysTx for Transaction<'_, Postgres> {
    async fn take(
        &mut self,
        rows: &[Row<'_>],
        at: DateTime<Utc>,
    ) -> Result<Vec<(String, String)>, StoreError> {
        const SQL: &str = "INSERT INTO hub_seen_keys (scope, key, seen_at, subject, state) \
            SELECT scope, key, $4, subject, 'pending' \
            FROM UNNEST($1::text[], $2::text[], $3::text[]) AS r(scope, key, subject) \
            ON CONFLICT (scope, key) DO UPDATE \
            SET state = 'pending', seen_at = excluded.seen_at, subject = excluded.subject \
            WHERE hub_seen_keys.state = 'failed' RETURNING scope, key";
        let scopes: Vec<&str> = rows.iter().map(|r| r.0).collect();
        let keys: Vec<&str> = rows.iter().map(|r| r.1).collect();
        let subjects: Vec<&str> = rows.iter().map(|r| r.2).collect();
        let took = sqlx::query_as(SQL)
            .bind(scopes)
            .bind(keys)
            .bind(subjects)
            .bind(at)
            .fetch_all(&mut **self)
            .await?;
        Ok(took)
    }

    async fn settle(
        &mut self,
        scope: &str,
        keys: &[String],
        state: &str,
    ) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE hub_seen_keys SET state = $3 \
            WHERE scope = $1 AND key = ANY($2) AND state = 'pending'";
        sqlx::query(SQL)
            .bind(scope)
            .bind(keys)
            .bind(state)
            .execute(&mut **self)
            .await?;
        Ok(())
    }
}

/// A list bound as one JSON text parameter, for SQLite's `json_each`.
pub(super) fn json_arg<T: serde::Serialize + ?Sized>(list: &T) -> Result<String, sqlx::Error> {
    serde_json::to_string(list).map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

/// All of a batch's run rows in one statement, bound as one JSON array (SQLite has no arrays):
/// SQLite splits it in C on the connection's own thread. Binding seven values per row instead
/// (statements of 64, 16, 4 and 1 rows, tried before) cost the writer more than the rows did.
/// `started_at` is the text sqlx itself binds a timestamp as, so rows read back the same
/// whichever path wrote them.
async fn insert_runs_sqlite(
    tx: &mut Transaction<'_, Sqlite>,
    runs: &[&RunRow],
) -> Result<(), StoreError> {
    if runs.is_empty() {
        return Ok(());
    }
    const SQL: &str = "INSERT INTO hub_runs \
        (id, function, trigger, started_at, duration_ms, outcome, summary) \
        SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, \
        value ->> 6 FROM json_each($1)";
    let rows: Vec<_> = runs
        .iter()
        .map(|r| {
            let at = r.started_at.to_rfc3339_opts(SecondsFormat::AutoSi, false);
            (
                &r.id,
                &r.function,
                &r.trigger,
                at,
                r.duration_ms,
                &r.outcome,
                &r.summary,
            )
        })
        .collect();
    let rows = json_arg(&rows)?;
    sqlx::query(SQL).bind(rows).execute(&mut **tx).await?;
    Ok(())
}

/// All of a batch's run rows in one statement: arrays bound once, so the statement is prepared
/// once whatever the batch size.
async fn insert_runs_pg(
    tx: &mut Transaction<'_, Postgres>,
    runs: &[&RunRow],
) -> Result<(), StoreError> {
    if runs.is_empty() {
        return Ok(());
    }
    const SQL: &str = "INSERT INTO hub_runs \
        (id, function, trigger, started_at, duration_ms, outcome, summary) \
        SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::timestamptz[], \
        $5::int8[], $6::text[], $7::text[])";
    let col = |f: fn(&RunRow) -> &str| runs.iter().map(|r| f(r)).collect::<Vec<&str>>();
    sqlx::query(SQL)
        .bind(col(|r| &r.id))
        .bind(col(|r| &r.function))
        .bind(col(|r| &r.trigger))
        .bind(runs.iter().map(|r| r.started_at).collect::<Vec<_>>())
        .bind(runs.iter().map(|r| r.duration_ms).collect::<Vec<_>>())
        .bind(col(|r| &r.outcome))
        .bind(col(|r| &r.summary))
        .execute(&mut **tx)
        .await?;
    Ok(())
}
