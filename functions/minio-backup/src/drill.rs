//! The restore drill: proof that the newest backup of a database restores, not only that its
//! bytes are intact. The newest good `pg_dump` of a set is restored into a scratch database on
//! the set's own server, every table is counted, and the scratch database is dropped — also
//! when the restore or a count fails, so a drill never leaves a copy of the data behind.

use crate::config::SetKind;
use crate::restore::RestoreTo;
use crate::target::Progress;
use crate::{Backup, BackupError};
use serde::Serialize;
use sqlx::Connection;
use std::sync::Arc;
use std::time::Instant;

/// What one drill found.
#[derive(Debug, Clone, Serialize)]
pub struct Drilled {
    pub set: String,
    /// The backup restored.
    pub key: String,
    /// The scratch database it was restored into (dropped since).
    pub database: String,
    /// Row count of each restored table, `schema.table`, in name order.
    pub tables: Vec<(String, i64)>,
    pub duration_ms: u64,
}

impl Drilled {
    pub fn rows(&self) -> i64 {
        self.tables.iter().map(|(_, n)| n).sum()
    }
}

fn failed(what: impl std::fmt::Display) -> BackupError {
    BackupError::Restore(format!("drill: {what}"))
}

fn quiet() -> Progress {
    Arc::new(|_| {})
}

impl Backup {
    /// The sets a drill can restore: those backed up with `pg_dump`.
    pub fn drill_sets(&self) -> Vec<String> {
        self.inner
            .cfg
            .sets
            .iter()
            .filter(|s| match s.kind {
                SetKind::Postgres { .. } => true,
                SetKind::HubStore => self.inner.hub_url.is_some(),
                SetKind::Dir { .. } => false,
            })
            .map(|s| s.name.clone())
            .collect()
    }

    /// Restores the newest good backup of `set` into a scratch database, counts the rows of
    /// every table and drops the scratch database.
    pub async fn drill(&self, set: &str) -> Result<Drilled, BackupError> {
        if !self.drill_sets().iter().any(|s| s == set) {
            self.set(set)?;
            return Err(failed(format!(
                "{set} is not a database backup; a drill restores pg_dump backups only"
            )));
        }
        let clock = Instant::now();
        let good = self.pick(set, None).await?;
        let scratch = format!(
            "hub_drill_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let restored = self
            .restore(
                &good,
                &RestoreTo::Database(scratch.clone()),
                quiet(),
                quiet(),
            )
            .await;
        let server = self.server_url(set)?;
        let counted = match restored {
            Ok(_) => count_tables(&server, &scratch).await,
            Err(e) => Err(failed(format!(
                "restoring {} into {scratch}: {e}",
                good.manifest.key
            ))),
        };
        let dropped = crate::restore::drop_database(&server, &scratch)
            .await
            .map_err(|e| {
                failed(format!(
                    "the scratch database {scratch} is left behind: {e}"
                ))
            });
        let tables = counted?;
        dropped?;
        Ok(Drilled {
            set: set.to_owned(),
            key: good.manifest.key,
            database: scratch,
            tables,
            duration_ms: u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX),
        })
    }
}

/// `SELECT count(*)` of every table outside PostgreSQL's own schemas: each table must be
/// readable, not only present in the catalogue.
async fn count_tables(server: &str, name: &str) -> Result<Vec<(String, i64)>, BackupError> {
    let url = crate::source::with_database(server, name).map_err(failed)?;
    let mut conn = sqlx::PgConnection::connect(&url)
        .await
        .map_err(|e| failed(format!("cannot connect to the scratch database: {e}")))?;
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables \
         WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(failed)?;
    let mut counts = Vec::with_capacity(tables.len());
    for (table,) in tables {
        // `table` comes from quote_ident, so it is safe to splice.
        let (n,): (i64,) = sqlx::query_as(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&mut conn)
            .await
            .map_err(|e| failed(format!("counting {table}: {e}")))?;
        counts.push((table, n));
    }
    let _ = conn.close().await;
    Ok(counts)
}
