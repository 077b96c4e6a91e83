//! Run history: every invocation of a function is a run with an id, trigger, start, duration,
//! outcome and a short summary, stored and traced.

use crate::metrics::Metrics;
use crate::store::{RunQuery, RunRow, Store, StoreError, Writer, WriterConfig};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::fmt;
use std::time::{Duration, Instant};
use tokio_util::task::TaskTracker;
use tokio_util::task::task_tracker::TaskTrackerToken;

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Http,
    Schedule,
    Cli,
    Lambda,
    /// Work a function does as the gateway shuts down ([`crate::Function::stop`]).
    Shutdown,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Http => "http",
            Trigger::Schedule => "schedule",
            Trigger::Cli => "cli",
            Trigger::Lambda => "lambda",
            Trigger::Shutdown => "shutdown",
        }
    }
}

/// How a run ended. `Rejected` is bad input (a 4xx), which is not a failure of the function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Rejected,
    Failure,
    Skipped,
    Interrupted,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Rejected => "rejected",
            Outcome::Failure => "failure",
            Outcome::Skipped => "skipped",
            Outcome::Interrupted => "interrupted",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a run reports when it finishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub outcome: Outcome,
    pub summary: String,
}

impl Report {
    pub fn success(summary: impl Into<String>) -> Self {
        Self {
            outcome: Outcome::Success,
            summary: summary.into(),
        }
    }
    pub fn skipped(summary: impl Into<String>) -> Self {
        Self {
            outcome: Outcome::Skipped,
            summary: summary.into(),
        }
    }
}

/// An error a run can end with ([`Runs::track`]), and the outcome it is recorded with.
pub trait RunError: fmt::Display {
    /// A failure, unless the error says otherwise (a run stopped by shutdown is `interrupted`).
    fn outcome(&self) -> Outcome {
        Outcome::Failure
    }
}

/// The span of one run: a child of whatever span is current (the HTTP request, or nothing for
/// a scheduled tick), with the outcome recorded when the run ends. Its children are the run's
/// steps.
pub fn run_span(function: &str, trigger: Trigger) -> tracing::Span {
    tracing::info_span!(
        "run",
        function,
        trigger = trigger.as_str(),
        outcome = tracing::field::Empty
    )
}

/// Longest summary kept; summaries are for people scanning a table, not for logs.
const MAX_SUMMARY: usize = 500;

/// Records runs into the store, through its [`Writer`] (group commit).
#[derive(Debug, Clone)]
pub struct Runs {
    store: Store,
    writer: Writer,
    metrics: Metrics,
    /// Each run row committed before [`Runs::record`] returns, instead of queued: for Lambda,
    /// which may freeze the process as soon as an invocation answers.
    durable: bool,
    /// Runs started and not yet queued for the store, waited for by [`Runs::settled`].
    started: TaskTracker,
}

impl Runs {
    /// Runs on `store` with the default batching, rows queued. Starts the store's writer task:
    /// call inside a Tokio runtime.
    pub fn new(store: Store) -> Self {
        Self::with_writer(store, WriterConfig::default(), false)
    }

    /// Runs on `store` with its writer batching as `cfg` says; with `durable`, every
    /// [`Runs::record`] awaits its commit.
    pub fn with_writer(store: Store, cfg: WriterConfig, durable: bool) -> Self {
        Self {
            writer: Writer::start(store.clone(), cfg),
            store,
            metrics: Metrics::default(),
            durable,
            started: TaskTracker::new(),
        }
    }

    /// Counts a run as started until the token drops, after its row is recorded.
    pub(crate) fn start(&self) -> TaskTrackerToken {
        self.started.token()
    }

    /// Resolves once no run is going on: each one started, before or during the wait, has
    /// recorded its row. At shutdown, the gateway's listeners stop before the work they started
    /// is cancelled, so a request whose work that cancel stops (a sync started over HTTP)
    /// answers and records its run only after the listeners are gone: without this wait, the
    /// final [`Runs::flush`] could come first and the process exit without its row.
    pub async fn settled(&self) {
        self.started.close();
        self.started.wait().await;
    }

    /// The store's writer: replay keys are claimed and settled through it.
    pub fn writer(&self) -> &Writer {
        &self.writer
    }

    /// Commits every run row queued so far (at shutdown, before a process exits). A failure
    /// is logged: the rows are lost, as a failed insert always was.
    pub async fn flush(&self) {
        if let Err(e) = self.writer.flush().await {
            tracing::error!(error = %e, "cannot commit queued run rows");
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Stores one finished run: queued for the writer's next batch (or, `durable`, committed).
    /// A store failure is logged, never propagated: losing a history row must not fail the
    /// work it describes.
    pub async fn record(
        &self,
        function: &str,
        trigger: Trigger,
        started_at: DateTime<Utc>,
        elapsed: Duration,
        outcome: Outcome,
        summary: &str,
    ) -> String {
        // Time-ordered (UUIDv7): each new id lands at the end of the primary-key index, as its
        // row does in the time indexes, so recording a run rewrites one edge page of each tree
        // instead of a random page of a history that outgrows the store's page cache.
        let id = uuid::Uuid::now_v7().to_string();
        // Summaries can carry text the hub does not control (hook output, pushed files).
        let mut summary = hub_core::redact::redact(summary).into_owned();
        if summary.len() > MAX_SUMMARY {
            let mut cut = MAX_SUMMARY;
            while !summary.is_char_boundary(cut) {
                cut -= 1;
            }
            summary.truncate(cut);
            summary.push('…');
        }
        let row = RunRow {
            id: id.clone(),
            function: function.to_owned(),
            trigger: trigger.as_str().to_owned(),
            started_at,
            duration_ms: i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX),
            outcome: outcome.as_str().to_owned(),
            summary,
        };
        tracing::info!(
            run_id = %row.id,
            function,
            trigger = trigger.as_str(),
            outcome = outcome.as_str(),
            duration_ms = row.duration_ms,
            summary = %row.summary,
            "run finished"
        );
        self.metrics.run_finished(
            function,
            outcome.as_str(),
            elapsed.as_secs_f64(),
            outcome == Outcome::Success,
        );
        let written = if self.durable {
            self.writer.commit_run(row).await
        } else {
            // Waits only while the queue is full; the writer logs a row it cannot write.
            self.writer.queue_run(row).await
        };
        if let Err(e) = written {
            tracing::error!(run_id = %id, error = %e, "cannot record run");
        }
        id
    }

    /// Runs `work` as one run of `function`, inside a span, and records how it ended.
    pub async fn track<F, E>(&self, function: &str, trigger: Trigger, work: F) -> Result<Report, E>
    where
        F: Future<Output = Result<Report, E>>,
        E: RunError,
    {
        use tracing::Instrument;
        let span = run_span(function, trigger);
        let _started = self.start();
        let started_at = Utc::now();
        let clock = Instant::now();
        let in_flight = self.metrics.in_flight(function);
        let result = work.instrument(span.clone()).await;
        drop(in_flight);
        let (outcome, summary) = match &result {
            Ok(report) => (report.outcome, report.summary.clone()),
            Err(e) => (e.outcome(), e.to_string()),
        };
        span.record("outcome", outcome.as_str());
        self.record(
            function,
            trigger,
            started_at,
            clock.elapsed(),
            outcome,
            &summary,
        )
        .await;
        result
    }

    /// Runs newest first, including every run recorded before the call (its queued rows are
    /// committed first).
    pub async fn list(&self, q: &RunQuery) -> Result<Vec<RunRow>, StoreError> {
        self.writer.flush().await?;
        self.store.list_runs(q).await
    }

    /// Runs per function and outcome started at or after `since` (queued rows committed first).
    pub async fn outcome_counts(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<crate::store::OutcomeCount>, StoreError> {
        self.writer.flush().await?;
        self.store.outcome_counts(since).await
    }
}
