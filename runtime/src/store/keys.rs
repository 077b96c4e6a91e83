//! Keys a function has acted on or promised to act on (webhook deliveries, ...): replays are
//! recognised across restarts, and work answered "accepted" survives a crash. A key is
//! `pending` from its claim until the work ran, then `done`, or `failed` so that a retry may
//! claim it again.

use super::{Store, StoreError};
use crate::on_pool;
use chrono::Utc;
use std::time::Duration;

/// Claims one key (`$1` scope, `$2` key, `$3` time, `$4` subject): affects one row when the key
/// is new or its earlier work failed, none when it is pending or done. A claim of several keys
/// is one unit: the writer ([`super::Writer::claim_keys`]) undoes the ones it made when a later
/// key affects none.
pub(super) const CLAIM_SQL: &str = "INSERT INTO hub_seen_keys (scope, key, seen_at, subject, state) \
    VALUES ($1, $2, $3, $4, 'pending') ON CONFLICT (scope, key) DO UPDATE \
    SET state = 'pending', seen_at = excluded.seen_at, subject = excluded.subject \
    WHERE hub_seen_keys.state = 'failed'";

/// Settles one pending key (`$1` scope, `$2` key) into `$3`: `done` (a replay is a duplicate
/// from now on) or `failed` (a redelivery claims it again).
pub(super) const SETTLE_SQL: &str = "UPDATE hub_seen_keys SET state = $3 \
    WHERE scope = $1 AND key = $2 AND state = 'pending'";

impl Store {
    /// The pending keys of `subject` under `scope`.
    pub async fn pending_keys(
        &self,
        scope: &str,
        subject: &str,
    ) -> Result<Vec<String>, StoreError> {
        const SQL: &str = "SELECT key FROM hub_seen_keys \
            WHERE scope = $1 AND state = 'pending' AND subject = $2";
        let rows: Vec<(String,)> = on_pool!(self, |p| sqlx::query_as(SQL)
            .bind(scope)
            .bind(subject)
            .fetch_all(p)
            .await)?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Every subject with pending keys under `scope` (work to resume after a restart), sorted.
    pub async fn pending_subjects(&self, scope: &str) -> Result<Vec<String>, StoreError> {
        const SQL: &str = "SELECT DISTINCT subject FROM hub_seen_keys \
            WHERE scope = $1 AND state = 'pending' ORDER BY subject";
        let rows: Vec<(String,)> =
            on_pool!(self, |p| sqlx::query_as(SQL).bind(scope).fetch_all(p).await)?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Forgets settled keys older than `age`, so the table stays small; pending ones stay
    /// until their work ran.
    pub async fn forget_keys_older_than(
        &self,
        scope: &str,
        age: Duration,
    ) -> Result<u64, StoreError> {
        const SQL: &str = "DELETE FROM hub_seen_keys \
            WHERE scope = $1 AND seen_at < $2 AND state <> 'pending'";
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
