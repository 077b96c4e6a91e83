//! Aggregates over the run history, for summaries that must not list runs one by one (the
//! public page's 30-day success rates: a per-minute function has 43,200 runs in 30 days).

use super::{Store, StoreError};
use crate::on_pool;
use chrono::{DateTime, Utc};

/// How many runs of `function` ended with `outcome` in a window.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OutcomeCount {
    pub function: String,
    pub outcome: String,
    pub runs: i64,
}

impl Store {
    /// Runs per function and outcome started at or after `since`, ordered by function and
    /// outcome. One grouped scan of the `(function, started_at)` index.
    pub async fn outcome_counts(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<OutcomeCount>, StoreError> {
        const SQL: &str = "SELECT function, outcome, COUNT(*) AS runs FROM hub_runs \
            WHERE started_at >= $1 GROUP BY function, outcome ORDER BY function, outcome";
        let rows = on_pool!(self, |p| sqlx::query_as::<_, OutcomeCount>(SQL)
            .bind(since)
            .fetch_all(p)
            .await)?;
        Ok(rows)
    }
}
