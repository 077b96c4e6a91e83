//! The `Function` trait: what the gateway, its scheduler and the Lambda entry need to know about
//! one function, and the shared context every function is built from.

use crate::config::{ConfigError, HubConfig, Source};
use crate::routes::Routes;
use crate::runs::{Outcome, Report, RunError, Runs, Trigger};
use crate::store::{Store, WriterConfig};
use futures::future::BoxFuture;
use std::sync::{Arc, OnceLock};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How the gateway and a Lambda binary find one function. Each function crate exports one as
/// `REGISTRATION`; the gateway's list holds one line per function, and everything else (routes,
/// `/api/functions`, `--help`, the scheduler, Lambda packaging) is derived from it.
#[derive(Debug, Clone, Copy)]
pub struct Registration {
    /// Stable name, as [`Function::name`] returns it.
    pub name: &'static str,
    /// The function's settings for `hub-gateway --help`: lines of `  VARIABLE   what (default)`.
    pub env_help: &'static str,
    /// Builds the function from the shared context (reads its typed config once).
    pub build: fn(Context) -> Result<Arc<dyn Function>, ConfigError>,
}

/// `Err("<setting> is not set")` when a required setting is missing: the usual body of
/// [`Function::configured`].
pub fn require<T>(value: &Option<T>, setting: &str) -> Result<(), String> {
    match value {
        Some(_) => Ok(()),
        None => Err(format!("{setting} is not set")),
    }
}

/// Why a direct invocation (CLI, schedule) failed before or while doing its work.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("not configured: {0}")]
    NotConfigured(String),
    #[error("invalid input: {0}")]
    BadInput(String),
    #[error("{0}")]
    Failed(String),
    /// The run stopped because the process is shutting down: recorded as `interrupted`, as the
    /// scheduler records a run it stops itself, not as a failure (which of the two notices the
    /// shutdown first is a race).
    #[error("{0}")]
    Interrupted(String),
}

impl RunError for InvokeError {
    fn outcome(&self) -> Outcome {
        match self {
            InvokeError::Interrupted(_) => Outcome::Interrupted,
            _ => Outcome::Failure,
        }
    }
}

/// The gateway's own readiness, as [`Edge::ready`] reports it: `Err(reason)` when not ready.
pub type ReadyCheck = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// What the gateway knows of its public edge only after it has built every function and bound
/// its public listener, so no function can be handed it at build time: [`Context::edge`] is
/// filled once then, and read by functions that expose the edge (gate-check) at each use.
#[derive(Clone)]
pub struct Edge {
    /// The bound port of the public listener (what `HUB_PUBLIC_PORT=0` became).
    pub public_port: u16,
    /// Every path a function serves as public, each once: what Funnel must forward.
    pub public_paths: Vec<String>,
    /// The gateway's readiness (store and functions), without the function that asks.
    pub ready: ReadyCheck,
}

impl std::fmt::Debug for Edge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Edge")
            .field("public_port", &self.public_port)
            .field("public_paths", &self.public_paths)
            .finish_non_exhaustive()
    }
}

/// Everything a function is built from. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Context {
    /// Raw settings, for the function's own typed config.
    pub source: Arc<Source>,
    pub hub: HubConfig,
    pub store: Store,
    pub runs: Runs,
    /// Background work started by requests (e.g. a sync after a webhook answered 202); the
    /// gateway waits on it at shutdown so no work is cut off half way.
    pub tasks: TaskTracker,
    /// How HTTP invocations are labelled: `http` behind the gateway, `lambda` on Lambda.
    pub http_trigger: Trigger,
    /// Cancelled when a shutdown's grace period is nearly over: long work checks it between
    /// steps (and around calls that may hang), stops, and records how far it got.
    pub shutdown: CancellationToken,
    /// Empty until the gateway has bound its public listener (never filled on Lambda or by
    /// `invoke`): a reader must treat an empty slot as "no public edge yet".
    pub edge: Arc<OnceLock<Edge>>,
}

impl Context {
    pub fn new(source: Source, hub: HubConfig, store: Store, http_trigger: Trigger) -> Self {
        // Lambda may freeze the process once an invocation answers: its run rows are
        // committed before that, not queued.
        let runs = Runs::with_writer(
            store.clone(),
            WriterConfig::from_hub(&hub),
            http_trigger == Trigger::Lambda,
        );
        Self {
            source: Arc::new(source),
            hub,
            runs,
            store,
            tasks: TaskTracker::new(),
            http_trigger,
            shutdown: CancellationToken::new(),
            edge: Arc::new(OnceLock::new()),
        }
    }
}

/// Runs `work` as a task of `tasks` (a function's [`Context::tasks`]) and waits for its result:
/// a client that disconnects or times out does not cut the work off half way, and the gateway
/// waits for it at shutdown. A panic in `work` goes on in the caller, as if it had run there.
pub async fn run_tracked<T, F>(tasks: &TaskTracker, work: F) -> T
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    match tasks.spawn(work).await {
        Ok(done) => done,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// A function of the hub. Kept small on purpose: the gateway walks a plain list of these.
pub trait Function: Send + Sync {
    /// Stable name: used in URLs, run history, metrics, `hub-gateway invoke NAME`.
    fn name(&self) -> &'static str;

    /// The function's HTTP surface (full paths, state applied), declared once with
    /// [`crate::routes::RouteTable`].
    fn routes(&self) -> Routes;

    /// Default cron schedule (seconds field first), if the function runs on one.
    fn schedule(&self) -> Option<&str> {
        None
    }

    /// `Err(reason)` when a required setting is missing: the function still mounts, reports the
    /// reason in `/readyz` and `/api/functions`, and refuses work with 503. Use [`require`] for
    /// each required setting; a function that needs none keeps this default.
    fn configured(&self) -> Result<(), String> {
        Ok(())
    }

    /// Checks the dependencies of a configured function (directories, databases, tools).
    /// Nothing to check by default.
    fn ready(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }

    /// Called once when the gateway starts serving, for a configured function: resume work
    /// accepted before a restart, tidy its tables. Not called by `invoke` or on Lambda. Nothing
    /// by default; long work belongs in [`Context::tasks`], not in the returned future.
    fn start(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// Called once when the gateway begins to shut down (on SIGTERM, before its listeners stop),
    /// for a configured function: undo what must not outlive the process, such as a Funnel
    /// pointing at it. Not called by `invoke` or on Lambda. Nothing by default; the gateway
    /// bounds how long it waits.
    fn stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// An optional panel for the gateway's status page: an HTML fragment (the function escapes
    /// what it embeds). A `<div class="chart" data-unit="…">` holding a
    /// `<script type="application/json">` with `[{"name", "points": [[unix_ms, value, ok]]}]`
    /// is drawn as a chart by the page.
    fn status_panel(&self) -> BoxFuture<'_, Option<String>> {
        Box::pin(async { None })
    }

    /// One direct invocation (CLI `invoke`, scheduler) with a JSON input.
    fn invoke(
        &self,
        trigger: Trigger,
        input: serde_json::Value,
    ) -> BoxFuture<'_, Result<Report, InvokeError>>;
}
