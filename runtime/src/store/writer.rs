//! Group commit for the store's small writes: run rows, replay-key claims and settlements.
//!
//! A commit costs far more than the row it carries (a WAL append and lock hand-over in SQLite, a
//! round trip and a WAL flush in PostgreSQL), so one writer task per store takes the writes
//! from a bounded queue and commits everything queued, up to `max_batch`, in one transaction.
//! Callers that promise durability — a webhook delivery's replay keys before its 202 — await
//! their batch's commit; run rows are queued and the caller goes on. A batch holding only such
//! rows waits up to `window` for company; a write someone awaits ends that wait at once, so the
//! window never adds to an answer's latency.
//!
//! - **Back-pressure, not loss:** when the queue is full, senders wait for room, so memory stays
//!   bounded and no row is dropped.
//! - **Failures:** a batch the database refuses for what it holds (a value it cannot store, a
//!   duplicate id, a deadlock with another replica) is written again item by item, so a bad row
//!   costs only itself. Any other failure (the database is down) fails every item of the batch:
//!   awaiting callers get the error, a queued run row is logged as lost, as before.
//! - **Crashes:** whatever a caller awaited is committed; a `kill -9` loses at most the run rows
//!   still queued. [`Writer::flush`] commits everything queued before it: the gateway calls it
//!   at shutdown and before reading run history.

use super::batch::{Conn, Op, refused_for_contents};
use super::{RunRow, Store, StoreError};
use crate::config::HubConfig;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How the writer batches; from `HUB_STORE_BATCH_WINDOW_MS`, `HUB_STORE_BATCH_MAX` and
/// `HUB_STORE_QUEUE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterConfig {
    pub window: Duration,
    pub max_batch: usize,
    pub queue: usize,
}

impl WriterConfig {
    pub fn from_hub(hub: &HubConfig) -> Self {
        Self {
            window: hub.store_batch_window,
            max_batch: hub.store_batch_max.max(1),
            queue: hub.store_queue.max(1),
        }
    }
}

impl Default for WriterConfig {
    /// The defaults `HubConfig` has without settings.
    fn default() -> Self {
        Self {
            window: Duration::from_millis(2),
            max_batch: 512,
            queue: 8192,
        }
    }
}

/// Keys per settlement write (see [`Writer::settle_keys`]).
pub const SETTLE_CHUNK: usize = 256;

struct Job {
    op: Op,
    /// The caller awaiting the commit; `None` for a queued run row. For a claim, `true` when it
    /// claimed its keys.
    reply: Option<oneshot::Sender<Result<bool, StoreError>>>,
}

/// Handle to a store's writer task. Cheap to clone; the task ends when the last handle is
/// dropped, after committing what was queued.
#[derive(Debug, Clone)]
pub struct Writer {
    queue: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer task of `store` on the current Tokio runtime.
    pub fn start(store: Store, cfg: WriterConfig) -> Self {
        let (queue, rx) = mpsc::channel(cfg.queue.max(1));
        tokio::spawn(run(store, rx, cfg));
        Self { queue }
    }

    async fn send(&self, op: Op) -> Result<(), StoreError> {
        let job = Job { op, reply: None };
        self.queue
            .send(job)
            .await
            .map_err(|_| StoreError::WriterStopped)
    }

    async fn commit(&self, op: Op) -> Result<bool, StoreError> {
        let (tx, rx) = oneshot::channel();
        let job = Job {
            op,
            reply: Some(tx),
        };
        self.queue
            .send(job)
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        rx.await.map_err(|_| StoreError::WriterStopped)?
    }

    /// Queues a run row (waiting only for room in the queue). A row that cannot be written is
    /// logged by the writer.
    pub async fn queue_run(&self, row: RunRow) -> Result<(), StoreError> {
        self.send(Op::Run(row)).await
    }

    /// Writes a run row and returns once it is committed.
    pub async fn commit_run(&self, row: RunRow) -> Result<(), StoreError> {
        self.commit(Op::Run(row)).await.map(|_| ())
    }

    /// Claims `keys` under `scope` for work on `subject`, as one unit: each key is new, or its
    /// earlier work failed (a redelivery runs again). Returns `true` when all were claimed and
    /// are now `pending`; `false`, changing nothing, when any is pending or done (a replay).
    /// Committed before it returns, so accepted work survives a crash.
    pub async fn claim_keys(
        &self,
        scope: &'static str,
        subject: &str,
        keys: &[&str],
    ) -> Result<bool, StoreError> {
        self.commit(Op::Claim {
            scope,
            subject: subject.to_owned(),
            keys: {
                let mut keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
                keys.sort_unstable();
                keys.dedup();
                keys
            },
        })
        .await
    }

    /// Settles pending `keys`: `done` (a replay is a duplicate from now on) or `failed` (a
    /// redelivery claims them again). Committed before it returns.
    ///
    /// A sync settles every delivery accepted since the last one: thousands of keys under
    /// load, which as one write held the claims of the batch behind it (new deliveries waiting
    /// for their 202) for tens of milliseconds. So they go [`SETTLE_CHUNK`] at a time, each
    /// chunk awaited before the next is queued, and claims arriving meanwhile share those
    /// batches instead of waiting for all. A crash between chunks leaves the rest pending:
    /// synced again at the next start, as any pending delivery is.
    pub async fn settle_keys(
        &self,
        scope: &'static str,
        keys: &[String],
        done: bool,
    ) -> Result<(), StoreError> {
        for chunk in keys.chunks(SETTLE_CHUNK) {
            self.commit(Op::Settle {
                scope,
                keys: chunk.to_vec(),
                done,
            })
            .await?;
        }
        Ok(())
    }

    /// Returns once everything queued before the call is committed (or failed and logged).
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.commit(Op::Flush).await.map(|_| ())
    }

    /// On SQLite, reads the replay keys into the writer's index now, so that the first claim
    /// does not wait for it (a million keys took seconds); nothing on PostgreSQL. The gateway
    /// calls it at start, in the background: writes queued meanwhile wait for it.
    pub async fn load_keys(&self) -> Result<(), StoreError> {
        self.commit(Op::LoadKeys).await.map(|_| ())
    }
}

/// The writer task: takes what is queued, lingers up to the window while nobody waits, commits.
async fn run(store: Store, mut rx: mpsc::Receiver<Job>, cfg: WriterConfig) {
    let mut conn = Conn::new(store);
    let mut batch = Vec::with_capacity(cfg.max_batch);
    while rx.recv_many(&mut batch, cfg.max_batch).await > 0 {
        let deadline = tokio::time::Instant::now() + cfg.window;
        let mut awaited = batch.iter().any(|j| j.reply.is_some());
        while !awaited && batch.len() < cfg.max_batch && !cfg.window.is_zero() {
            let (before, room) = (batch.len(), cfg.max_batch - batch.len());
            match tokio::time::timeout_at(deadline, rx.recv_many(&mut batch, room)).await {
                // Closed: commit what there is, then the outer loop ends.
                Ok(0) | Err(_) => break,
                Ok(_) => awaited = batch[before..].iter().any(|j| j.reply.is_some()),
            }
        }
        commit(&mut conn, &mut batch).await;
    }
}

/// Commits `batch` (emptying it) and answers each job.
async fn commit(conn: &mut Conn, batch: &mut Vec<Job>) {
    let ops: Vec<&Op> = batch.iter().map(|j| &j.op).collect();
    let result = conn.apply(&ops).await;
    drop(ops);
    match result {
        Ok(claimed) => {
            for (job, claimed) in batch.drain(..).zip(claimed) {
                finish(job, Ok(claimed));
            }
        }
        Err(e) if batch.len() > 1 && refused_for_contents(&e) => {
            tracing::warn!(error = %e, writes = batch.len(), "a batch of store writes was refused; writing them one by one");
            for job in batch.drain(..) {
                let result = conn.apply(&[&job.op]).await.map(|c| c[0]);
                finish(job, result);
            }
        }
        Err(e) => {
            let e = Arc::new(e);
            for job in batch.drain(..) {
                finish(job, Err(StoreError::Batch(e.clone())));
            }
        }
    }
}

fn finish(job: Job, result: Result<bool, StoreError>) {
    match job.reply {
        Some(tx) => {
            // The caller may have given up (its request was cancelled); the write stands.
            let _ = tx.send(result);
        }
        None => {
            if let (Err(e), Op::Run(row)) = (result, &job.op) {
                tracing::error!(run_id = %row.id, error = %e, "cannot record run");
            }
        }
    }
}
