//! `system_metrics` in either store. PostgreSQL gets the whole batch in one binary `COPY`, its
//! fastest way in (an `INSERT ... ON CONFLICT` of the same rows cost it ~1.4× the CPU). `COPY`
//! cannot skip rows that are already there, so a batch holding one — a replay — is refused whole
//! and goes again as one insert that skips them (arrays unnested server-side). SQLite gets
//! multi-row inserts inside one transaction, chunked under its bind-variable limit.

use crate::Row;
use chrono::{DateTime, Utc};
use hub_runtime::Store;
use hub_runtime::store::StoreError;

const PG_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS system_metrics (
    time        TIMESTAMPTZ NOT NULL,
    host        TEXT NOT NULL,
    os          TEXT NOT NULL DEFAULT '',
    metric_type TEXT NOT NULL,
    payload     JSONB NOT NULL
)";
const SQLITE_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS system_metrics (
    time        TEXT NOT NULL,
    host        TEXT NOT NULL,
    os          TEXT NOT NULL DEFAULT '',
    metric_type TEXT NOT NULL,
    payload     TEXT NOT NULL
)";
/// The replay key. It leads with (host, time), so it also serves per-host time-range queries,
/// and includes `time`, which TimescaleDB requires of unique indexes on a hypertable.
const UNIQUE_INDEX: &str = "CREATE UNIQUE INDEX IF NOT EXISTS system_metrics_host_time_type \
    ON system_metrics (host, time, metric_type)";

/// Moves every row of `system_metrics` that repeats an earlier row's (host, time, metric_type)
/// to `system_metrics_duplicates`, returning how many moved. Rows are named by `tableoid` and
/// `ctid` together, which is unique on a hypertable's chunks too.
const PG_MOVE_DUPLICATES: &str = "
WITH ranked AS (
    SELECT tableoid AS tid, ctid AS rid, ROW_NUMBER() OVER
        (PARTITION BY host, time, metric_type ORDER BY tableoid, ctid) AS n
    FROM system_metrics
), moved AS (
    DELETE FROM system_metrics s USING ranked r
    WHERE s.tableoid = r.tid AND s.ctid = r.rid AND r.n > 1
    RETURNING s.time, s.host, s.os, s.metric_type, s.payload
), kept AS (
    INSERT INTO system_metrics_duplicates (time, host, os, metric_type, payload)
    SELECT time, host, os, metric_type, payload FROM moved RETURNING 1
)
SELECT COUNT(*) FROM kept";

/// Adopts a `system_metrics` the old hub created, as it is: its collector had no unique key, so
/// the table may hold several rows for one (host, time, metric_type). Before the key can be
/// created, every such row but the first is moved — not deleted — to
/// `system_metrics_duplicates` (the table's columns plus `moved_at`). Done once: when the key
/// exists there is nothing to look for.
async fn adopt(tx: &mut sqlx::PgConnection) -> Result<i64, StoreError> {
    let (has_key,): (bool,) =
        sqlx::query_as("SELECT to_regclass('system_metrics_host_time_type') IS NOT NULL")
            .fetch_one(&mut *tx)
            .await?;
    if has_key {
        return Ok(0);
    }
    let (repeated,): (bool,) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM system_metrics \
         GROUP BY host, time, metric_type HAVING COUNT(*) > 1)",
    )
    .fetch_one(&mut *tx)
    .await?;
    if !repeated {
        return Ok(0);
    }
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS system_metrics_duplicates \
         (LIKE system_metrics, moved_at TIMESTAMPTZ NOT NULL DEFAULT NOW())",
    )
    .execute(&mut *tx)
    .await?;
    let (moved,): (i64,) = sqlx::query_as(PG_MOVE_DUPLICATES)
        .fetch_one(&mut *tx)
        .await?;
    Ok(moved)
}

/// Creates the table (a hypertable when TimescaleDB is installed) and its unique index, or
/// adopts the old hub's table. In one transaction under a lock, so replicas starting together
/// do it once, and a failure leaves the table as it was.
pub async fn ensure_schema(store: &Store) -> Result<(), StoreError> {
    match store {
        Store::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock(7265616470)")
                .execute(&mut *tx)
                .await?;
            sqlx::query(PG_SCHEMA).execute(&mut *tx).await?;
            let (timescale,): (bool,) = sqlx::query_as(
                "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')",
            )
            .fetch_one(&mut *tx)
            .await?;
            if timescale {
                // Before the unique index: on a hypertable every unique index must include the
                // time column, and one made on the plain table first would have to be checked
                // and carried over to each chunk. `migrate_data` moves rows of a table that is
                // not a hypertable yet; an existing hypertable is left as it is.
                sqlx::query(
                    "SELECT create_hypertable('system_metrics', 'time', \
                     if_not_exists => TRUE, migrate_data => TRUE)",
                )
                .execute(&mut *tx)
                .await?;
            }
            let moved = adopt(&mut tx).await?;
            sqlx::query(UNIQUE_INDEX).execute(&mut *tx).await?;
            tx.commit().await?;
            if moved > 0 {
                tracing::warn!(
                    rows = moved,
                    "system_metrics had duplicate rows (host, time, metric_type); all but the first of each are kept in system_metrics_duplicates"
                );
            }
            tracing::info!(timescale, "system_metrics ready");
        }
        Store::Sqlite(pool) => {
            sqlx::query(SQLITE_SCHEMA).execute(pool).await?;
            sqlx::query(UNIQUE_INDEX).execute(pool).await?;
        }
    }
    Ok(())
}

/// Rows per SQLite statement: 5 variables each, well under SQLite's limit of 32766.
const SQLITE_CHUNK: usize = 1000;

/// Inserts `rows`, skipping those already present; returns how many were new.
pub async fn insert(store: &Store, rows: &[Row]) -> Result<u64, StoreError> {
    if rows.is_empty() {
        return Ok(0);
    }
    match store {
        Store::Postgres(pool) => {
            let mut conn = pool.acquire().await?;
            let Some(data) = copy_binary(rows) else {
                // A time beyond what COPY's encoding holds: the insert refuses it by name.
                return insert_skipping(&mut conn, rows).await;
            };
            match copy(&mut conn, data).await {
                Ok(n) => Ok(n),
                // A row already there (a replay) or twice in the batch: the COPY wrote nothing.
                Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                    insert_skipping(&mut conn, rows).await
                }
                Err(e) => Err(e.into()),
            }
        }
        Store::Sqlite(pool) => {
            let mut tx = pool.begin().await?;
            let mut inserted = 0;
            for chunk in rows.chunks(SQLITE_CHUNK) {
                let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                    "INSERT INTO system_metrics (time, host, os, metric_type, payload) ",
                );
                q.push_values(chunk, |mut b, r| {
                    b.push_bind(r.time)
                        .push_bind(&r.host)
                        .push_bind(&r.os)
                        .push_bind(&r.metric_type)
                        .push_bind(&r.payload);
                });
                q.push(" ON CONFLICT DO NOTHING");
                inserted += q.build().execute(&mut *tx).await?.rows_affected();
            }
            tx.commit().await?;
            Ok(inserted)
        }
    }
}

/// Writes `data` ([`copy_binary`]'s rows) with one `COPY`; all or nothing.
async fn copy(conn: &mut sqlx::PgConnection, data: Vec<u8>) -> Result<u64, sqlx::Error> {
    let mut copy = conn
        .copy_in_raw(
            "COPY system_metrics (time, host, os, metric_type, payload) \
             FROM STDIN (FORMAT binary)",
        )
        .await?;
    if let Err(e) = copy.send(data).await {
        // Leaves the connection usable (or reports why it is not).
        let _ = copy.abort("sending the rows failed").await;
        return Err(e);
    }
    copy.finish().await
}

/// `rows` in COPY's binary format: nothing to escape on this side or to parse but the JSON on
/// PostgreSQL's (text and CSV cost it a timestamp parse and an unescaping pass per row). `None`
/// when a time is out of PostgreSQL's range.
fn copy_binary(rows: &[Row]) -> Option<Vec<u8>> {
    let epoch = chrono::NaiveDate::from_ymd_opt(2000, 1, 1)?.and_hms_opt(0, 0, 0)?;
    let size: usize = rows
        .iter()
        .map(|r| {
            2 + 4 * 5 + 8 + r.host.len() + r.os.len() + r.metric_type.len() + 1 + r.payload.len()
        })
        .sum();
    let mut out = Vec::with_capacity(19 + size + 2);
    // Signature, flags (no OIDs), header extension length.
    out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    let field = |out: &mut Vec<u8>, parts: &[&[u8]]| {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        out.extend_from_slice(&i32::try_from(len).unwrap_or(i32::MAX).to_be_bytes());
        for p in parts {
            out.extend_from_slice(p);
        }
    };
    for r in rows {
        out.extend_from_slice(&5i16.to_be_bytes());
        // Microseconds since 2000, computed as the insert below binds them (cut, not rounded),
        // so that a replay of this row meets it under the unique key.
        let micros = (r.time.naive_utc() - epoch).num_microseconds()?;
        field(&mut out, &[&micros.to_be_bytes()]);
        field(&mut out, &[r.host.as_bytes()]);
        field(&mut out, &[r.os.as_bytes()]);
        field(&mut out, &[r.metric_type.as_bytes()]);
        // jsonb: its format version, then the JSON text.
        field(&mut out, &[&[1], r.payload.as_bytes()]);
    }
    out.extend_from_slice(&(-1i16).to_be_bytes());
    Some(out)
}

/// Inserts `rows`, skipping those already present; returns how many were new.
async fn insert_skipping(conn: &mut sqlx::PgConnection, rows: &[Row]) -> Result<u64, StoreError> {
    let mut times = Vec::with_capacity(rows.len());
    let mut hosts = Vec::with_capacity(rows.len());
    let mut oses = Vec::with_capacity(rows.len());
    let mut types = Vec::with_capacity(rows.len());
    let mut payloads = Vec::with_capacity(rows.len());
    for r in rows {
        times.push(r.time);
        hosts.push(r.host.as_str());
        oses.push(r.os.as_str());
        types.push(r.metric_type.as_str());
        payloads.push(r.payload.as_str());
    }
    let done = sqlx::query(
        "INSERT INTO system_metrics (time, host, os, metric_type, payload) \
         SELECT t, h, o, m, p::jsonb FROM UNNEST($1::timestamptz[], $2::text[], \
         $3::text[], $4::text[], $5::text[]) AS u(t, h, o, m, p) \
         ON CONFLICT DO NOTHING",
    )
    .bind(&times)
    .bind(&hosts)
    .bind(&oses)
    .bind(&types)
    .bind(&payloads)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// The newest row of each metric type for `host`.
pub async fn latest(store: &Store, host: &str) -> Result<Vec<Row>, StoreError> {
    const SQL: &str = "SELECT s.time, s.os, s.metric_type, CAST(s.payload AS TEXT) \
        FROM system_metrics s WHERE s.host = $1 AND s.time = (SELECT MAX(t.time) \
        FROM system_metrics t WHERE t.host = s.host AND t.metric_type = s.metric_type) \
        ORDER BY s.metric_type";
    let raw: Vec<(DateTime<Utc>, String, String, String)> =
        hub_runtime::on_pool!(store, |p| sqlx::query_as(SQL).bind(host).fetch_all(p).await)?;
    Ok(raw
        .into_iter()
        .map(|(time, os, metric_type, payload)| Row {
            time,
            host: host.to_owned(),
            os,
            metric_type,
            payload,
        })
        .collect())
}

/// Rows of the given metric types since `since`, oldest first, at most `limit`.
pub async fn since(
    store: &Store,
    since: DateTime<Utc>,
    types: &[&str],
    limit: i64,
) -> Result<Vec<Row>, StoreError> {
    const SQL: &str = "SELECT time, host, os, metric_type, CAST(payload AS TEXT) \
        FROM system_metrics WHERE time >= $1 AND metric_type IN ($2, $3) \
        ORDER BY time DESC LIMIT $4";
    let (a, b) = (
        types.first().copied().unwrap_or(""),
        types.get(1).copied().unwrap_or(""),
    );
    let raw: Vec<(DateTime<Utc>, String, String, String, String)> =
        hub_runtime::on_pool!(store, |p| sqlx::query_as(SQL)
            .bind(since)
            .bind(a)
            .bind(b)
            .bind(limit)
            .fetch_all(p)
            .await)?;
    let mut rows: Vec<Row> = raw
        .into_iter()
        .map(|(time, host, os, metric_type, payload)| Row {
            time,
            host,
            os,
            metric_type,
            payload,
        })
        .collect();
    rows.reverse();
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_rows_are_pg_binary_tuples() {
        let row = Row {
            // 789 ns past the microsecond: cut, as the insert's binding does.
            time: "2000-01-01T00:00:01.000002789Z".parse().expect("time"),
            host: "h\t1".into(),
            os: String::new(),
            metric_type: "cpu".into(),
            payload: "{\"a\":\"x\\\\y\"}".into(),
        };
        let data = copy_binary(&[row]).expect("in range");
        let mut want = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0".to_vec();
        want.extend_from_slice(&[0, 5]);
        want.extend_from_slice(&[0, 0, 0, 8]);
        want.extend_from_slice(&1_000_002i64.to_be_bytes());
        want.extend_from_slice(b"\0\0\0\x03h\t1");
        want.extend_from_slice(b"\0\0\0\0");
        want.extend_from_slice(b"\0\0\0\x03cpu");
        want.extend_from_slice(b"\0\0\0\x0d\x01{\"a\":\"x\\\\y\"}");
        want.extend_from_slice(&[0xff, 0xff]);
        assert_eq!(data, want);
    }
}
