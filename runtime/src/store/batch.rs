//! How the writer ([`super::Writer`]) writes one batch: every write in one transaction.
//! Claims and settlements run in queue order (a later claim sees an earlier one), run rows
//! after them (nothing in the batch reads them).
//!
//! The statements differ by backend because their costs do: PostgreSQL answers each statement
//! over a round trip and plans it, so a claim, a settlement and all of a batch's run rows are
//! one statement each, keys and rows bound as arrays; SQLite runs in-process, where a cached
//! statement per key or row costs microseconds.

use super::keys::{CLAIM_SQL, SETTLE_SQL};
use super::{INSERT_RUN_SQL, RunRow, Store, StoreError, bind_run};
use chrono::{DateTime, Utc};
use sqlx::{Postgres, Sqlite, Transaction};

/// One write the writer was asked for.
pub(super) enum Op {
    Run(RunRow),
    /// `keys` deduplicated: a claim of the same key twice is a claim of it once.
    Claim {
        scope: &'static str,
        subject: String,
        keys: Vec<String>,
        at: DateTime<Utc>,
    },
    Settle {
        scope: &'static str,
        keys: Vec<String>,
        done: bool,
    },
    /// Writes nothing: answered once everything queued before it is committed.
    Flush,
}

fn settled_state(done: bool) -> &'static str {
    if done { "done" } else { "failed" }
}

/// Writes `ops` in one transaction; per op, whether a claim claimed (`true` for the rest).
pub(super) async fn apply(store: &Store, ops: &[&Op]) -> Result<Vec<bool>, StoreError> {
    if ops.iter().all(|op| matches!(op, Op::Flush)) {
        return Ok(vec![true; ops.len()]);
    }
    let runs: Vec<&RunRow> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Run(row) => Some(row),
            _ => None,
        })
        .collect();
    let mut claimed = Vec::with_capacity(ops.len());
    match store {
        Store::Postgres(p) => {
            let mut tx = p.begin().await?;
            for op in ops {
                claimed.push(keys_pg(&mut tx, op).await?);
            }
            insert_runs_pg(&mut tx, &runs).await?;
            tx.commit().await?;
        }
        Store::Sqlite(p) => {
            let mut tx = p.begin().await?;
            for op in ops {
                claimed.push(keys_sqlite(&mut tx, op).await?);
            }
            for row in runs {
                bind_run!(sqlx::query(INSERT_RUN_SQL), row)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        }
    }
    Ok(claimed)
}

/// A claim's keys in one statement; the keys it took are handed back. When some key was
/// pending or done, the keys this claim took are marked `failed` again, which is what a claim
/// looks for: claimable, as they were (absent or failed) before it.
async fn keys_pg(tx: &mut Transaction<'_, Postgres>, op: &Op) -> Result<bool, StoreError> {
    const CLAIM: &str = "INSERT INTO hub_seen_keys (scope, key, seen_at, subject, state) \
        SELECT $1, k, $3, $4, 'pending' FROM UNNEST($2::text[]) AS k \
        ON CONFLICT (scope, key) DO UPDATE \
        SET state = 'pending', seen_at = excluded.seen_at, subject = excluded.subject \
        WHERE hub_seen_keys.state = 'failed' RETURNING key";
    const SETTLE: &str = "UPDATE hub_seen_keys SET state = $3 \
        WHERE scope = $1 AND key = ANY($2) AND state = 'pending'";
    match op {
        Op::Claim {
            scope,
            subject,
            keys,
            at,
        } => {
            let took: Vec<String> = sqlx::query_scalar(CLAIM)
                .bind(*scope)
                .bind(keys)
                .bind(*at)
                .bind(subject)
                .fetch_all(&mut **tx)
                .await?;
            if took.len() == keys.len() {
                return Ok(true);
            }
            if !took.is_empty() {
                sqlx::query(SETTLE)
                    .bind(*scope)
                    .bind(&took)
                    .bind(settled_state(false))
                    .execute(&mut **tx)
                    .await?;
            }
            Ok(false)
        }
        Op::Settle { scope, keys, done } => {
            sqlx::query(SETTLE)
                .bind(*scope)
                .bind(keys)
                .bind(settled_state(*done))
                .execute(&mut **tx)
                .await?;
            Ok(true)
        }
        Op::Run(_) | Op::Flush => Ok(true),
    }
}

/// A claim key by key inside a savepoint, so a claim refused at its second key leaves its first
/// untouched while the rest of the batch commits.
async fn keys_sqlite(tx: &mut Transaction<'_, Sqlite>, op: &Op) -> Result<bool, StoreError> {
    match op {
        Op::Claim {
            scope,
            subject,
            keys,
            at,
        } => {
            let unit = keys.len() > 1;
            if unit {
                sqlx::query("SAVEPOINT claim").execute(&mut **tx).await?;
            }
            let mut all = true;
            for key in keys {
                let n = sqlx::query(CLAIM_SQL)
                    .bind(*scope)
                    .bind(key)
                    .bind(*at)
                    .bind(subject)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected();
                if n != 1 {
                    all = false;
                    break;
                }
            }
            if unit && !all {
                sqlx::query("ROLLBACK TO SAVEPOINT claim")
                    .execute(&mut **tx)
                    .await?;
            }
            if unit {
                sqlx::query("RELEASE SAVEPOINT claim")
                    .execute(&mut **tx)
                    .await?;
            }
            Ok(all)
        }
        Op::Settle { scope, keys, done } => {
            for key in keys {
                sqlx::query(SETTLE_SQL)
                    .bind(*scope)
                    .bind(key)
                    .bind(settled_state(*done))
                    .execute(&mut **tx)
                    .await?;
            }
            Ok(true)
        }
        Op::Run(_) | Op::Flush => Ok(true),
    }
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
