//! The gateway's cron scheduler (tokio-cron-scheduler), with the guarantees an operator expects
//! from systemd timers:
//!
//! - **Schedules**: a function's default cron expression (seconds field first), overridden per
//!   function by `HUB_SCHEDULE_<NAME>` (e.g. `HUB_SCHEDULE_READING_SYNC="0 0 0,12 * * *"`) or
//!   `[schedule] reading_sync = "…"` in `hub.toml`; `off` disables. An invalid expression fails
//!   start-up naming the function and the expression.
//! - **No overlap**: a tick that finds the previous run of the function still going records a
//!   `skipped` run instead (cluster-wide with PostgreSQL, through an advisory lock).
//! - **Jitter**: `HUB_JITTER_<NAME>` / `[jitter] name = secs` delays each tick by a random
//!   0..N seconds, like `RandomizedDelaySec`.
//! - **Catch-up**: like `Persistent=true`, if a tick was missed while the gateway was down (per
//!   the run history), one catch-up run starts shortly after start, not one per missed tick.
//! - **One run per tick across replicas**: every tick is claimed in the store
//!   (`hub_schedule_ticks`); with several gateways on one PostgreSQL exactly one runs it.
//! - Runs go through `Runs::track` like every other invocation (trigger `schedule`). At shutdown
//!   running jobs get the grace period, then are cancelled and recorded as `interrupted`.

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use hub_runtime::{ConfigError, Context, Function, Outcome, Runs, Source, Store, Trigger};
use rand::Rng;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A function's effective schedule.
#[derive(Debug, Clone)]
pub struct Plan {
    pub function: &'static str,
    pub expr: String,
    pub cron: Cron,
    pub jitter: Duration,
}

/// Parses a cron expression the way tokio-cron-scheduler does (seconds required).
pub fn parse_cron(expr: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(expr)
        .map_err(|e| e.to_string())
}

fn env_suffix(function: &str) -> String {
    function.to_uppercase().replace('-', "_")
}

/// The schedules of `functions` after overrides; functions without one (or `off`) are absent.
pub fn plans(src: &Source, functions: &[Arc<dyn Function>]) -> Result<Vec<Plan>, ConfigError> {
    let mut plans = Vec::new();
    for f in functions {
        let name = f.name();
        let env = format!("HUB_SCHEDULE_{}", env_suffix(name));
        let key = format!("schedule.{}", name.replace('-', "_"));
        let expr = src
            .raw(&key, &env)
            .or_else(|| f.schedule().map(str::to_owned));
        let Some(expr) = expr.map(|e| e.trim().to_owned()) else {
            continue;
        };
        if expr.eq_ignore_ascii_case("off") {
            continue;
        }
        // A run of a function missing its settings could only fail, twice a day forever.
        if let Err(reason) = f.configured() {
            tracing::info!(function = name, %reason, "not scheduled: function is not configured");
            continue;
        }
        let cron = parse_cron(&expr).map_err(|e| ConfigError::Invalid {
            setting: env.clone(),
            message: format!("function {name}: invalid cron expression {expr:?}: {e}"),
        })?;
        let jitter = src.seconds_or(
            &format!("jitter.{}", name.replace('-', "_")),
            &format!("HUB_JITTER_{}", env_suffix(name)),
            0,
        )?;
        plans.push(Plan {
            function: name,
            expr,
            cron,
            jitter,
        });
    }
    Ok(plans)
}

/// The next time `plan` is due after `after`.
pub fn next_due(plan: &Plan, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    plan.cron
        .find_next_occurrence(&whole_second(after), false)
        .ok()
}

fn whole_second(t: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::SubsecRound;
    t.trunc_subsecs(0)
}

struct Shared {
    functions: HashMap<&'static str, (Arc<dyn Function>, Plan)>,
    runs: Runs,
    store: Store,
    node: String,
    tasks: TaskTracker,
    cancel: CancellationToken,
    stopping: AtomicBool,
    /// Functions with a scheduled run going on in this process.
    running: Mutex<HashMap<&'static str, DateTime<Utc>>>,
    catch_up_delay: Duration,
}

/// The running scheduler; [`Scheduler::shutdown`] stops it.
pub struct Scheduler {
    jobs: JobScheduler,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("node", &self.shared.node)
            .finish_non_exhaustive()
    }
}

impl Scheduler {
    /// Starts ticking every plan and schedules the catch-up runs that are due.
    pub async fn start(
        ctx: &Context,
        functions: &[Arc<dyn Function>],
        plans: &[Plan],
        catch_up_delay: Duration,
    ) -> Result<Self, JobSchedulerError> {
        let by_name = plans
            .iter()
            .filter_map(|p| {
                let f = functions.iter().find(|f| f.name() == p.function)?;
                Some((p.function, (f.clone(), p.clone())))
            })
            .collect();
        let shared = Arc::new(Shared {
            functions: by_name,
            runs: ctx.runs.clone(),
            store: ctx.store.clone(),
            node: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
            tasks: TaskTracker::new(),
            cancel: ctx.shutdown.clone(),
            stopping: AtomicBool::new(false),
            running: Mutex::new(HashMap::new()),
            catch_up_delay,
        });
        let jobs = JobScheduler::new().await?;
        for plan in plans {
            let name = plan.function;
            let tick_shared = shared.clone();
            let job = Job::new_async(plan.expr.as_str(), move |_id, _scheduler| {
                let shared = tick_shared.clone();
                Box::pin(async move { shared.on_tick(name, Utc::now()) })
            })?;
            jobs.add(job).await?;
            tracing::info!(function = name, schedule = %plan.expr, jitter = ?plan.jitter, "scheduled");
        }
        jobs.start().await?;
        for plan in plans {
            let shared2 = shared.clone();
            let name = plan.function;
            shared
                .tasks
                .spawn(async move { shared2.catch_up(name).await });
        }
        Ok(Self { jobs, shared })
    }

    /// Stops ticking, lets running jobs finish until `until`, then cancels them (through the
    /// context's shutdown token, which long work watches too); cancelled runs are recorded as
    /// `interrupted`.
    pub async fn shutdown(mut self, until: tokio::time::Instant) {
        let shared = &self.shared;
        shared.stopping.store(true, Ordering::SeqCst);
        if let Err(e) = self.jobs.shutdown().await {
            tracing::warn!(error = %e, "scheduler did not stop cleanly");
        }
        shared.tasks.close();
        if tokio::time::timeout_at(until, shared.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("scheduled runs still going at the end of the grace; interrupting them");
            shared.cancel.cancel();
            shared.tasks.wait().await;
        }
    }
}

impl Shared {
    fn on_tick(self: Arc<Self>, name: &'static str, fired: DateTime<Utc>) {
        let Some((_, plan)) = self.functions.get(name) else {
            return;
        };
        // The instant the tick was due: the key every replica must compute alike when claiming
        // it. The job fires up to ~0.5 s late and croner keeps sub-seconds of its input, so
        // search from the whole second (cron's resolution).
        let fired = whole_second(fired);
        let due = plan
            .cron
            .find_previous_occurrence(&fired, true)
            .unwrap_or(fired);
        let this = self.clone();
        self.tasks
            .spawn(async move { this.run_tick(name, due).await });
    }

    async fn catch_up(self: Arc<Self>, name: &'static str) {
        let Some((_, plan)) = self.functions.get(name) else {
            return;
        };
        let now = whole_second(Utc::now());
        let Ok(due) = plan.cron.find_previous_occurrence(&now, true) else {
            return;
        };
        let last = match self
            .runs
            .store()
            .last_run_started(name, Trigger::Schedule.as_str())
            .await
        {
            Ok(last) => last,
            Err(e) => {
                tracing::warn!(function = name, error = %e, "cannot read run history; no catch-up");
                return;
            }
        };
        // Never run before: nothing was missed (systemd's Persistent= behaves the same way).
        let Some(last) = last else { return };
        if last >= due {
            return;
        }
        tracing::info!(function = name, missed = %due, last_run = %last, "catching up a missed tick");
        tokio::select! {
            _ = tokio::time::sleep(self.catch_up_delay) => {}
            _ = self.cancel.cancelled() => return,
        }
        self.run_tick(name, due).await;
    }

    async fn run_tick(&self, name: &'static str, due: DateTime<Utc>) {
        let Some((function, plan)) = self.functions.get(name) else {
            return;
        };
        if !plan.jitter.is_zero() {
            let delay = rand::rng().random_range(Duration::ZERO..plan.jitter);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.cancel.cancelled() => return,
            }
        }
        if self.stopping.load(Ordering::SeqCst) {
            return;
        }
        match self.store.claim_tick(name, due, &self.node).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!(function = name, %due, "tick claimed by another gateway");
                return;
            }
            Err(e) => {
                tracing::error!(function = name, %due, error = %e, "cannot claim tick; not running it");
                self.runs.metrics().scheduler_skip(name, "store");
                return;
            }
        }

        let started_at = Utc::now();
        let local_busy = {
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            if running.contains_key(name) {
                true
            } else {
                running.insert(name, started_at);
                false
            }
        };
        let lock = if local_busy {
            None
        } else {
            match self.store.try_run_lock(name).await {
                Ok(lock) => lock,
                Err(e) => {
                    tracing::error!(function = name, error = %e, "cannot take run lock");
                    None
                }
            }
        };
        let Some(lock) = lock else {
            if !local_busy {
                self.release(name);
            }
            self.runs.metrics().scheduler_skip(name, "overlap");
            self.runs
                .record(
                    name,
                    Trigger::Schedule,
                    started_at,
                    Duration::ZERO,
                    Outcome::Skipped,
                    &format!("tick {due} skipped: previous run still going"),
                )
                .await;
            return;
        };

        let clock = Instant::now();
        let work = self.runs.track(
            name,
            Trigger::Schedule,
            function.invoke(Trigger::Schedule, serde_json::json!({})),
        );
        tokio::select! {
            _ = work => {}
            _ = self.cancel.cancelled() => {
                self.runs
                    .record(name, Trigger::Schedule, started_at, clock.elapsed(), Outcome::Interrupted,
                        "interrupted by shutdown")
                    .await;
            }
        }
        lock.release().await;
        self.release(name);
    }

    fn release(&self, name: &'static str) {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }
}
