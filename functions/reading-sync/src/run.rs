//! One sync run: history row, stale claims, then claimed batches until none is left.

use crate::batch::Batch;
use crate::config::MAX_CLAIM_TIMEOUT_SECS;
use crate::{NAME, ReadingSync, SyncError, sink};
use chrono::Utc;
use futures::future::BoxFuture;
use hub_runtime::Trigger;
use hub_runtime::error::PublicError;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Points of a batch a test can stop at (see [`ReadingSync::with_step_hook`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Documents claimed in MongoDB, nothing written yet.
    Claimed,
    /// The batch is committed to the database, not yet marked in MongoDB.
    Committed,
    /// The batch is marked in MongoDB.
    Marked,
}

pub type StepHook = Arc<dyn Fn(Step) -> BoxFuture<'static, ()> + Send + Sync>;

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Synced {
    /// Documents now in `reading_analytics` and marked `processed`.
    pub processed: u64,
    /// Documents dead-lettered and marked `failed`.
    pub failed: u64,
    /// Stale claims given back before the run.
    pub released: u64,
}

/// A finished run: its counts, and the error that stopped it, if any.
#[derive(Debug)]
pub struct SyncReport {
    pub synced: Synced,
    pub duration: Duration,
    pub error: Option<SyncError>,
}

impl SyncReport {
    pub(crate) fn summary(&self) -> String {
        let s = &self.synced;
        let mut text = format!("{} processed, {} failed", s.processed, s.failed);
        if s.released > 0 {
            text.push_str(&format!(", {} stale claims released", s.released));
        }
        if let Some(e) = &self.error {
            text.push_str(&format!("; stopped: {e}"));
        }
        text
    }

    pub(crate) fn body(&self) -> Value {
        let mut body = json!({
            "service": NAME,
            "status": if self.error.is_none() { "success" } else { "error" },
            "processed_count": self.synced.processed,
            "failed_count": self.synced.failed,
            "duration_ms": u64::try_from(self.duration.as_millis()).unwrap_or(u64::MAX),
        });
        if let Some(e) = &self.error {
            body["error"] = e.public_message().into();
            if let Some(id) = hub_runtime::error::current_request_id() {
                body["request_id"] = id.into();
            }
        }
        body
    }
}

impl ReadingSync {
    /// How long a claim (and a `running` history row) may go untouched before the runner that
    /// holds it is taken for dead.
    pub(crate) fn claim_timeout(&self) -> chrono::Duration {
        // Checked at load; the cap keeps a hand-built config from overflowing date arithmetic.
        let secs = self
            .inner
            .cfg
            .claim_timeout
            .as_secs()
            .min(MAX_CLAIM_TIMEOUT_SECS);
        chrono::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX))
    }

    async fn step(&self, step: Step) {
        if let Some(hook) = &self.inner.hook {
            hook(step).await;
        }
    }

    /// One run, recorded in `reading_sync_history`. Never panics on a dependency failing: the
    /// error is in the report.
    pub async fn sync(&self, trigger: Trigger) -> SyncReport {
        let started = Utc::now();
        let clock = Instant::now();
        let mut synced = Synced::default();
        let result = async {
            let store = self.store().await?;
            let history = match sink::history_start(store, started, trigger.as_str()).await {
                Ok(id) => {
                    let cutoff = started - self.claim_timeout();
                    match sink::history_close_abandoned(store, cutoff, id).await {
                        Ok(0) => {}
                        Ok(n) => tracing::warn!(
                            rows = n,
                            "closed reading_sync_history rows of runs that never finished"
                        ),
                        Err(e) => tracing::warn!(error = %e, "cannot close abandoned history rows"),
                    }
                    Some(id)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot open a reading_sync_history row");
                    None
                }
            };
            let result = self.run_batches(&mut synced).await;
            if let Some(id) = history {
                let (status, error) = match &result {
                    Ok(()) => ("success", None),
                    Err(SyncError::Interrupted) => ("interrupted", None),
                    // The old hub's word, which its dashboards and alerts filter on.
                    Err(e) => ("failure", Some(e.to_string())),
                };
                if let Err(e) = sink::history_finish(
                    store,
                    id,
                    status,
                    synced.processed,
                    synced.failed,
                    error.as_deref(),
                )
                .await
                {
                    tracing::warn!(error = %e, "cannot close the reading_sync_history row");
                }
            }
            result
        }
        .await;
        let report = SyncReport {
            synced,
            duration: clock.elapsed(),
            error: result.err(),
        };
        match &report.error {
            None => tracing::info!(summary = %report.summary(), "reading sync finished"),
            Some(e) => {
                tracing::error!(error = %e, summary = %report.summary(), "reading sync failed")
            }
        }
        report
    }

    /// `work`, unless shutdown interrupts it first (a hung MongoDB must not hold the process
    /// past its grace).
    async fn unless_stopped<T, E>(
        &self,
        work: impl Future<Output = Result<T, E>>,
    ) -> Result<T, SyncError>
    where
        SyncError: From<E>,
    {
        tokio::select! {
            biased;
            () = self.inner.shutdown.cancelled() => Err(SyncError::Interrupted),
            done = work => done.map_err(SyncError::from),
        }
    }

    async fn run_batches(&self, synced: &mut Synced) -> Result<(), SyncError> {
        let cfg = &self.inner.cfg;
        let store = self.store().await?;
        let inbox = self.inbox().await?;
        let cutoff = Utc::now() - self.claim_timeout();
        synced.released = self.unless_stopped(inbox.release_stale(cutoff)).await?;
        // Lost every candidate to another runner this many times in a row: let it finish.
        let mut lost = 0;
        loop {
            let done = synced.processed + synced.failed;
            let take = match cfg.max_docs {
                Some(max) if done >= max => return Ok(()),
                Some(max) => cfg
                    .batch_size
                    .min(usize::try_from(max - done).unwrap_or(usize::MAX)),
                None => cfg.batch_size,
            };
            // Between batches: stop here when shutdown says so; what is committed stays.
            let Some(claimed) = self
                .unless_stopped(inbox.claim(take, cfg.batch_max_bytes))
                .await?
            else {
                return Ok(());
            };
            if claimed.docs.is_empty() {
                // Every candidate went to another runner between the read and the claim.
                lost += 1;
                if lost > 10 || !inbox.any_waiting().await? {
                    return Ok(());
                }
                continue;
            }
            lost = 0;
            self.step(Step::Claimed).await;
            let mut batch = Batch::map(&claimed.docs);
            if let Err(e) = self.unless_stopped(batch.write(store)).await {
                // Give the documents back now rather than after the claim timeout (an
                // interrupted write was rolled back).
                if let Err(me) = inbox.release(&claimed).await {
                    tracing::warn!(error = %me, "cannot release claimed documents; they are released after the claim timeout");
                }
                return Err(e);
            }
            self.step(Step::Committed).await;
            // Not interrupted: the batch is committed, and marking it (one short update) keeps
            // MongoDB, the counts and the history row in step.
            inbox.mark(&claimed, batch.bad_ids).await?;
            synced.processed += batch.readings.len() as u64;
            synced.failed += batch.dead.len() as u64;
            self.step(Step::Marked).await;
        }
    }
}
