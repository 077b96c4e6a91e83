//! One check of the gate: probe, count, decide, and make the live serve config say what the
//! decision says — writing only on a transition or when the live config drifted.

use crate::health::{self, Health};
use crate::localapi::ApiError;
use crate::serve_config::{self, Conflict, Plan};
use crate::state::{self, Change, GateState, StateError, Verdict};
use crate::{Gate, NAME};
use chrono::Utc;
use serde_json::Value;

/// Read-merge-write rounds before giving up when others keep editing the config.
const MAX_ATTEMPTS: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("{0}")]
    Api(#[from] ApiError),
    #[error("{0}")]
    Conflict(#[from] Conflict),
    #[error("{0}")]
    State(#[from] StateError),
    #[error("the serve config kept changing under the gate ({MAX_ATTEMPTS} attempts, 412 each)")]
    Contended,
    #[error("{what}; and then: {then}")]
    Both { what: String, then: String },
}

/// Closing the funnel at shutdown is the shutdown's own work: its errors are failures.
impl hub_runtime::RunError for GateError {}

/// What a check did, for the run's summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub open: bool,
    pub health: Health,
    /// Whether the gate opened, closed or repaired drift.
    pub changed: bool,
    pub summary: String,
}

/// The outcome of making the live config match one desired state.
struct Applied {
    before: Value,
    after: Value,
    written: bool,
}

impl Gate {
    /// The plan for now: the edge the gateway published and the funnel host. `None` without an
    /// edge (nothing to open; closing then uses what the state says was applied).
    async fn plan(&self) -> Result<Option<Plan>, ApiError> {
        let Some(edge) = self.inner.edge.get() else {
            return Ok(None);
        };
        let host = match &self.inner.cfg.funnel_host {
            Some(h) => h.clone(),
            None => self.inner.api.status().await?.dns_name,
        };
        Ok(Some(Plan::new(
            &host,
            self.inner.cfg.funnel_port,
            edge.public_port,
            &edge.public_paths,
        )))
    }

    /// Makes the live config open per `open` or, without it, free of every plan in `hub`;
    /// retries on 412 with a fresh read each time, so a concurrent edit is merged, never
    /// overwritten. Writes nothing when the live config already says the right thing.
    async fn apply(&self, open: Option<&Plan>, hub: &[&Plan]) -> Result<Applied, GateError> {
        let api = &self.inner.api;
        for _ in 0..MAX_ATTEMPTS {
            let live = api.serve_config().await?;
            let target = match open {
                Some(plan) => {
                    let previous = hub.iter().copied().find(|p| *p != plan);
                    serve_config::open(&live.config, plan, previous)?
                }
                None => serve_config::close(&live.config, hub),
            };
            if target == live.config {
                return Ok(Applied {
                    before: live.config.clone(),
                    after: live.config,
                    written: false,
                });
            }
            match api.set_serve_config(&target, &live.etag).await {
                Ok(()) => {
                    return Ok(Applied {
                        before: live.config,
                        after: target,
                        written: true,
                    });
                }
                Err(ApiError::Stale) => {
                    tracing::info!(
                        function = NAME,
                        "serve config changed under the gate; re-reading"
                    );
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(GateError::Contended)
    }

    /// One scheduled (or requested) check. Serialised with [`Gate::close_now`].
    pub async fn check(&self) -> Result<Checked, GateError> {
        let _turn = self.inner.turn.lock().await;
        let store = self.inner.tables.store().await.map_err(StateError::from)?;
        let loaded = state::load(store).await;
        let edge = self.inner.edge.get();
        let probed = health::probe(&self.inner.cfg, edge, &self.inner.http).await;
        let (mut st, health, force_close) = match loaded {
            Ok(st) => (st, probed, false),
            // An unreadable state cannot say the gate may stay open: start over, closing
            // whatever the hub may have published.
            Err(e) => (
                GateState {
                    open: true,
                    ..GateState::default()
                },
                Health {
                    healthy: false,
                    reason: e.to_string(),
                },
                true,
            ),
        };
        let verdict = st.observe(
            health.healthy,
            self.inner.cfg.open_after,
            self.inner.cfg.close_after,
        );
        let want_open = !force_close
            && match verdict {
                Verdict::Open => true,
                Verdict::Close => false,
                Verdict::Stay => st.open,
            };
        let result = self.reconcile(&mut st, want_open, &health.reason).await;
        // Saved whatever happened: the streaks count, and a failed close still means closed.
        let saved = state::save(store, &st).await;
        self.inner.metrics.gate_state(st.open);
        let changed = match (result, saved) {
            (Ok(changed), Ok(())) => changed,
            (Err(e), Ok(())) => return Err(e),
            (Ok(_), Err(e)) => return Err(e.into()),
            (Err(e), Err(then)) => {
                return Err(GateError::Both {
                    what: e.to_string(),
                    then: then.to_string(),
                });
            }
        };
        let streak = if health.healthy {
            format!(
                "{}/{} healthy",
                st.healthy_streak, self.inner.cfg.open_after
            )
        } else {
            format!(
                "{}/{} unhealthy",
                st.unhealthy_streak, self.inner.cfg.close_after
            )
        };
        let word = if st.open { "open" } else { "closed" };
        Ok(Checked {
            open: st.open,
            changed: changed.is_some(),
            summary: changed.unwrap_or_else(|| format!("{word} ({streak}): {}", health.reason)),
            health,
        })
    }

    /// Makes the live config match `want_open`, updating `st` and the metrics. Returns the
    /// summary line of a transition or a repair.
    async fn reconcile(
        &self,
        st: &mut GateState,
        want_open: bool,
        reason: &str,
    ) -> Result<Option<String>, GateError> {
        let was_open = st.open;
        let now = Utc::now();
        let plan = match self.plan().await {
            Ok(plan) => plan,
            // Cannot open without the host name; the state stays as it was.
            Err(e) if want_open => return Err(e.into()),
            // No host name (tailscaled down?): close what the state says was applied.
            Err(e) => {
                tracing::warn!(function = NAME, error = %e, "cannot resolve the funnel host");
                None
            }
        };
        // Open with no edge to publish is not open: fail closed.
        let open_plan = plan.as_ref().filter(|_| want_open);
        let mut reason = reason.to_owned();
        if want_open && open_plan.is_none() {
            reason.push_str("; but the gateway has not published its public listener");
        }
        if open_plan.is_none() {
            // Closed in the state before the write: a close that fails is retried by every
            // later check, as the hub's entries left in the live config are drift.
            st.set_open(false, now);
        }
        let previous = st.applied.clone();
        let mut hub: Vec<&Plan> = plan.iter().collect();
        hub.extend(previous.iter().filter(|a| Some(*a) != plan.as_ref()));
        let applied = if hub.is_empty() {
            // Nothing the hub could have published, nothing to look for.
            None
        } else {
            Some(self.apply(open_plan, &hub).await?)
        };
        let now_open = open_plan.is_some();
        st.set_open(now_open, now);
        st.applied = open_plan.cloned();
        let written = applied.as_ref().is_some_and(|a| a.written);
        let action = match (was_open, now_open) {
            (false, true) => "opened",
            (true, false) => "closed",
            _ if written => "repaired",
            _ => return Ok(None),
        };
        if action != "repaired" {
            self.inner
                .metrics
                .gate_transition(if now_open { "open" } else { "closed" });
        }
        let (before, after) = applied.map_or((Value::Null, Value::Null), |a| (a.before, a.after));
        let line = match hub.first() {
            Some(p) => format!(
                "{action} ({reason}); before: {}; after: {}",
                serve_config::describe(&before, p),
                serve_config::describe(&after, p)
            ),
            None => format!("{action} ({reason}); nothing of the hub was published"),
        };
        st.record(Change {
            at: now,
            action: action.into(),
            reason,
            before,
            after,
        });
        tracing::info!(function = NAME, action, summary = %line, "gate changed");
        Ok(Some(line))
    }

    /// Closes the funnel now (gateway shutdown): the state goes closed, the streaks restart,
    /// and the hub's entries leave the live config.
    pub async fn close_now(&self, reason: &str) -> Result<String, GateError> {
        let _turn = self.inner.turn.lock().await;
        let store = self.inner.tables.store().await.map_err(StateError::from)?;
        let mut st = state::load(store).await.unwrap_or_else(|e| {
            tracing::warn!(function = NAME, error = %e, "closing without a readable state");
            GateState {
                open: true,
                ..GateState::default()
            }
        });
        st.healthy_streak = 0;
        let result = self.reconcile(&mut st, false, reason).await;
        let saved = state::save(store, &st).await;
        self.inner.metrics.gate_state(st.open);
        let line = result?;
        saved?;
        Ok(line.unwrap_or_else(|| format!("already closed ({reason})")))
    }
}
