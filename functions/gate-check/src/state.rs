//! The gate's state, kept in the store so it survives restarts: one row of
//! `gate_check_state`, its state as JSON text (the same column type in SQLite and PostgreSQL).
//! The hysteresis itself is [`GateState::observe`], pure.

use crate::serve_config::Plan;
use chrono::{DateTime, Utc};
use hub_runtime::Store;
use hub_runtime::store::StoreError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Changes kept in the state (the run history keeps the rest).
const KEEP_CHANGES: usize = 20;
const ROW: &str = "gate";

const PG_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS gate_check_state (
    id         TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
)";
const SQLITE_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS gate_check_state (
    id         TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    updated_at TEXT NOT NULL
)";

pub async fn ensure_schema(store: &Store) -> Result<(), StoreError> {
    match store {
        Store::Postgres(p) => sqlx::query(PG_SCHEMA).execute(p).await.map(|_| ())?,
        Store::Sqlite(p) => sqlx::query(SQLITE_SCHEMA).execute(p).await.map(|_| ())?,
    }
    Ok(())
}

/// One change the gate made to the serve config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub at: DateTime<Utc>,
    /// `opened`, `closed`, `repaired` (drift put back to what the state says).
    pub action: String,
    pub reason: String,
    pub before: Value,
    pub after: Value,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GateState {
    pub open: bool,
    pub healthy_streak: u32,
    pub unhealthy_streak: u32,
    /// When `open` last changed (`None`: closed since the gate first ran).
    pub since: Option<DateTime<Utc>>,
    /// What the gate last published, so it can remove exactly that later (after the public
    /// port or the host name changed, say).
    pub applied: Option<Plan>,
    /// Newest last.
    pub changes: Vec<Change>,
}

/// What one observation decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Stay,
    Open,
    Close,
}

impl GateState {
    /// Counts one probe and says whether the gate must change: open after `open_after`
    /// consecutive healthy probes, close after `close_after` unhealthy ones.
    pub fn observe(&mut self, healthy: bool, open_after: u32, close_after: u32) -> Verdict {
        if healthy {
            self.healthy_streak = self.healthy_streak.saturating_add(1);
            self.unhealthy_streak = 0;
            if !self.open && self.healthy_streak >= open_after {
                return Verdict::Open;
            }
        } else {
            self.unhealthy_streak = self.unhealthy_streak.saturating_add(1);
            self.healthy_streak = 0;
            if self.open && self.unhealthy_streak >= close_after {
                return Verdict::Close;
            }
        }
        Verdict::Stay
    }

    pub fn set_open(&mut self, open: bool, at: DateTime<Utc>) {
        if self.open != open || self.since.is_none() {
            self.since = Some(at);
        }
        self.open = open;
    }

    pub fn record(&mut self, change: Change) {
        self.changes.push(change);
        let extra = self.changes.len().saturating_sub(KEEP_CHANGES);
        self.changes.drain(..extra);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read or write the gate state: {0}")]
    Store(#[from] StoreError),
    #[error("the stored gate state is unreadable: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StateError {
    fn from(e: sqlx::Error) -> Self {
        StateError::Store(StoreError::Query(e))
    }
}

/// The stored state; the default (closed, no streaks) before the first check.
pub async fn load(store: &Store) -> Result<GateState, StateError> {
    const SQL: &str = "SELECT state FROM gate_check_state WHERE id = $1";
    let row: Option<(String,)> = hub_runtime::on_pool!(store, |p| sqlx::query_as(SQL)
        .bind(ROW)
        .fetch_optional(p)
        .await)?;
    match row {
        None => Ok(GateState::default()),
        Some((text,)) => {
            serde_json::from_str(&text).map_err(|e| StateError::Corrupt(e.to_string()))
        }
    }
}

pub async fn save(store: &Store, state: &GateState) -> Result<(), StateError> {
    const SQL: &str = "INSERT INTO gate_check_state (id, state, updated_at) VALUES ($1, $2, $3) \
        ON CONFLICT (id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at";
    let text = serde_json::to_string(state).map_err(|e| StateError::Corrupt(e.to_string()))?;
    hub_runtime::on_pool!(store, |p| sqlx::query(SQL)
        .bind(ROW)
        .bind(&text)
        .bind(Utc::now())
        .execute(p)
        .await
        .map(|_| ()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `probes` through the hysteresis; the open/closed state after each.
    fn run(probes: &str, open_after: u32, close_after: u32) -> String {
        let mut s = GateState::default();
        probes
            .chars()
            .map(|c| {
                match s.observe(c == '+', open_after, close_after) {
                    Verdict::Open => s.open = true,
                    Verdict::Close => s.open = false,
                    Verdict::Stay => {}
                }
                if s.open { 'O' } else { '.' }
            })
            .collect()
    }

    #[test]
    fn opens_after_n_healthy_and_closes_on_the_first_failure_by_default() {
        assert_eq!(run("+++-++", 2, 1), ".OO..O");
    }

    #[test]
    fn flapping_health_never_reaches_the_open_threshold() {
        assert_eq!(run("+-+-+-+-", 2, 1), "........");
    }

    #[test]
    fn close_after_tolerates_isolated_failures_once_open() {
        assert_eq!(run("++-+-+--", 2, 2), ".OOOOOO.");
    }

    #[test]
    fn streaks_saturate_instead_of_overflowing() {
        let mut s = GateState {
            healthy_streak: u32::MAX,
            open: true,
            ..GateState::default()
        };
        assert_eq!(s.observe(true, 2, 1), Verdict::Stay);
        assert_eq!(s.healthy_streak, u32::MAX);
    }

    #[test]
    fn only_the_newest_changes_are_kept() {
        let mut s = GateState::default();
        for i in 0..25 {
            s.record(Change {
                at: Utc::now(),
                action: format!("c{i}"),
                reason: String::new(),
                before: Value::Null,
                after: Value::Null,
            });
        }
        assert_eq!(s.changes.len(), KEEP_CHANGES);
        assert_eq!(s.changes[0].action, "c5");
    }
}
