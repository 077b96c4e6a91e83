//! The per-repository sync queue: coalesces bursts of pushes, and settles the deliveries each
//! sync stands for.
//!
//! A delivery is claimed in the store (`pending`) before it is answered 202, so the work it
//! promises survives a crash: at start every repository with pending deliveries is synced.
//! A sync settles exactly the deliveries that were pending when it began: `done` when it
//! succeeded or skipped on purpose (a replay is then a duplicate), `failed` otherwise (a
//! redelivery runs it again).

use crate::config::GitopsConfig;
use crate::sync::sync_repo;
use hub_runtime::{Runs, Trigger};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio_util::task::TaskTracker;

/// Scope of this function's delivery keys in the store.
pub const SCOPE: &str = "webhook-gitops";

/// Whether a request started a sync or joined the one already running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    Started,
    Coalesced,
}

/// At most one sync per repository at a time; requests arriving while one runs set a flag that
/// causes exactly one follow-up sync, so a burst of N pushes costs two syncs, not N. The
/// follow-up starts no sooner than `sync_interval` after the sync before it started.
#[derive(Debug)]
pub struct SyncQueue {
    cfg: Arc<GitopsConfig>,
    runs: Runs,
    tasks: TaskTracker,
    /// repository → "another sync was requested while this one ran"
    running: Mutex<HashMap<String, bool>>,
}

impl SyncQueue {
    pub fn new(cfg: Arc<GitopsConfig>, runs: Runs, tasks: TaskTracker) -> Arc<Self> {
        Arc::new(Self {
            cfg,
            runs,
            tasks,
            running: Mutex::new(HashMap::new()),
        })
    }

    /// Syncs every repository that has deliveries accepted but not yet settled (a previous
    /// process was killed, or could not record how a sync ended).
    pub async fn resume(self: &Arc<Self>) {
        match self.runs.store().pending_subjects(SCOPE).await {
            Ok(repos) => {
                for repo in repos {
                    tracing::info!(repository = %repo, "resuming accepted deliveries");
                    self.request(&repo, Trigger::Http);
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot list accepted deliveries to resume"),
        }
    }

    /// Syncs `repository` soon; call after its delivery was claimed in the store.
    pub fn request(self: &Arc<Self>, repository: &str, trigger: Trigger) -> Queued {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(again) = running.get_mut(repository) {
            *again = true;
            return Queued::Coalesced;
        }
        running.insert(repository.to_owned(), false);
        drop(running);
        let this = Arc::clone(self);
        let repository = repository.to_owned();
        // The sync continues the trace of the delivery that started it.
        self.tasks
            .spawn(tracing::Instrument::in_current_span(async move {
                this.worker(repository, trigger).await
            }));
        Queued::Started
    }

    async fn worker(self: Arc<Self>, repository: String, trigger: Trigger) {
        // If a sync panics, the repository must not stay marked as running forever.
        let mut release = Release {
            queue: &self,
            repository: &repository,
            armed: true,
        };
        let store = self.runs.store();
        loop {
            let started = tokio::time::Instant::now();
            // Deliveries claimed after this read set the follow-up flag, so none is missed.
            let keys = store
                .pending_keys(SCOPE, &repository)
                .await
                .unwrap_or_else(|e| {
                    tracing::error!(error = %e, repository, "cannot read accepted deliveries");
                    Vec::new()
                });
            let result = self
                .runs
                .track(crate::NAME, trigger, sync_repo(&self.cfg, &repository))
                .await;
            if !keys.is_empty() {
                let settled = self.runs.writer().settle_keys(SCOPE, &keys, result.is_ok());
                if let Err(e) = settled.await {
                    // They stay pending and are synced again at the next start.
                    tracing::error!(error = %e, repository, "cannot settle deliveries");
                }
            }
            {
                let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
                if running.get(&repository) != Some(&true) {
                    running.remove(&repository);
                    release.armed = false;
                    return;
                }
            }
            // The flag stays set while waiting, so requests meanwhile join this follow-up;
            // it is cleared just before the pending keys are read again.
            tokio::time::sleep_until(started + self.cfg.sync_interval).await;
            if let Some(again) = self
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_mut(&repository)
            {
                *again = false;
            }
        }
    }
}

struct Release<'a> {
    queue: &'a SyncQueue,
    repository: &'a str,
    armed: bool,
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        if self.armed {
            let mut running = self.queue.running.lock().unwrap_or_else(|p| p.into_inner());
            running.remove(self.repository);
        }
    }
}
