//! How the writer ([`super::Writer`]) writes one batch: every write in one transaction.
//! Claims and settlements run in queue order (a later claim sees an earlier one), run rows
//! after them (nothing in the batch reads them).
//!
//! Every statement costs a hand-over — a round trip to PostgreSQL, a trip to the connection's
//! own thread and back for SQLite — that dwarfs the row it writes, so a claim and a settlement
//! are one statement each whatever their keys (bound as an array, or a JSON array on SQLite),
//! and a batch's run rows one statement (PostgreSQL, arrays) or a few (SQLite, multi-row
//! `VALUES`).

use super::{RunRow, Store, StoreError, bind_run};
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
            insert_runs_sqlite(&mut tx, &runs).await?;
            tx.commit().await?;
        }
    }
    Ok(claimed)
}

/// A claim's or a settlement's keys in one statement each, on either backend: `$claim` and
/// `$settle` are its SQL, taking the scope as `$1` and the keys as `$2`, bound as `$keys(&keys)`
/// makes them. A claim hands back the keys it took; when some other key was pending or done,
/// the ones it took are marked `failed` again, which is what a claim looks for: claimable, as
/// they were (absent or failed) before it.
macro_rules! keys_op {
    ($tx:expr, $op:expr, $claim:expr, $settle:expr, $keys:expr) => {{
        let bind_keys = $keys;
        match $op {
            Op::Claim {
                scope,
                subject,
                keys,
                at,
            } => {
                let took: Vec<String> = sqlx::query_scalar($claim)
                    .bind(*scope)
                    .bind(bind_keys(keys))
                    .bind(*at)
                    .bind(subject)
                    .fetch_all(&mut **$tx)
                    .await?;
                if took.len() == keys.len() {
                    return Ok(true);
                }
                if !took.is_empty() {
                    sqlx::query($settle)
                        .bind(*scope)
                        .bind(bind_keys(&took))
                        .bind(settled_state(false))
                        .execute(&mut **$tx)
                        .await?;
                }
                Ok(false)
            }
            Op::Settle { scope, keys, done } => {
                sqlx::query($settle)
                    .bind(*scope)
                    .bind(bind_keys(keys))
                    .bind(settled_state(*done))
                    .execute(&mut **$tx)
                    .await?;
                Ok(true)
            }
            Op::Run(_) | Op::Flush => Ok(true),
        }
    }};
}

/// Keys bound as a `text[]`.
async fn keys_pg(tx: &mut Transaction<'_, Postgres>, op: &Op) -> Result<bool, StoreError> {
    const CLAIM: &str = "INSERT INTO hub_seen_keys (scope, key, seen_at, subject, state) \
        SELECT $1, k, $3, $4, 'pending' FROM UNNEST($2::text[]) AS k \
        ON CONFLICT (scope, key) DO UPDATE \
        SET state = 'pending', seen_at = excluded.seen_at, subject = excluded.subject \
        WHERE hub_seen_keys.state = 'failed' RETURNING key";
    const SETTLE: &str = "UPDATE hub_seen_keys SET state = $3 \
        WHERE scope = $1 AND key = ANY($2) AND state = 'pending'";
    keys_op!(
        tx,
        op,
        CLAIM,
        SETTLE,
        std::convert::identity::<&Vec<String>>
    )
}

/// Keys bound as a JSON array (SQLite has no arrays); `WHERE true` tells SQLite's parser that
/// `ON CONFLICT` belongs to the insert, not to a join.
async fn keys_sqlite(tx: &mut Transaction<'_, Sqlite>, op: &Op) -> Result<bool, StoreError> {
    const CLAIM: &str = "INSERT INTO hub_seen_keys (scope, key, seen_at, subject, state) \
        SELECT $1, value, $3, $4, 'pending' FROM json_each($2) WHERE true \
        ON CONFLICT (scope, key) DO UPDATE \
        SET state = 'pending', seen_at = excluded.seen_at, subject = excluded.subject \
        WHERE hub_seen_keys.state = 'failed' RETURNING key";
    const SETTLE: &str = "UPDATE hub_seen_keys SET state = $3 \
        WHERE scope = $1 AND key IN (SELECT value FROM json_each($2)) AND state = 'pending'";
    keys_op!(tx, op, CLAIM, SETTLE, |keys: &Vec<String>| {
        serde_json::Value::from(keys.as_slice()).to_string()
    })
}

/// Run rows in as few statements as the cached shapes allow: SQLite answers each statement on
/// the connection's own thread, a hand-over each way, so one statement per row cost more in
/// hand-overs than in SQLite. Rows go in statements of 64, 16, 4 and 1 rows (four statements,
/// prepared once each).
async fn insert_runs_sqlite(
    tx: &mut Transaction<'_, Sqlite>,
    runs: &[&RunRow],
) -> Result<(), StoreError> {
    static SHAPES: std::sync::LazyLock<[(usize, String); 4]> = std::sync::LazyLock::new(|| {
        [64, 16, 4, 1].map(|n| {
            let rows: Vec<String> = (0..n)
                .map(|r| {
                    let p: Vec<String> = (1..=7).map(|c| format!("${}", r * 7 + c)).collect();
                    format!("({})", p.join(", "))
                })
                .collect();
            let sql = format!(
                "INSERT INTO hub_runs (id, function, trigger, started_at, duration_ms, outcome, \
                 summary) VALUES {}",
                rows.join(", ")
            );
            (n, sql)
        })
    });
    let mut rest = runs;
    for (n, sql) in SHAPES.iter() {
        while rest.len() >= *n {
            let (chunk, tail) = rest.split_at(*n);
            let mut query = sqlx::query(sql);
            for run in chunk {
                query = bind_run!(query, run);
            }
            query.execute(&mut **tx).await?;
            rest = tail;
        }
    }
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
