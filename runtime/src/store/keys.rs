//! Keys a function has acted on or promised to act on (webhook deliveries, ...): replays are
//! recognised across restarts, and work answered "accepted" survives a crash. A key is
//! `pending` from its claim until the work ran, then `done`, or `failed` so that a retry may
//! claim it again. Claims and settlements go through the store's writer
//! ([`super::Writer::claim_keys`], [`super::Writer::settle_keys`]), which commits them with
//! whatever else is being written. On SQLite the writer finds a key's row through an index it
//! keeps in memory ([`super::ledger`]); the reads here go by state and need none.

use super::{Store, StoreError};
use crate::on_pool;
use chrono::Utc;
use std::time::Duration;

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
