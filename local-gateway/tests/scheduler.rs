//! The cron scheduler: schedules and overrides, no overlap, jitter, catch-up, one run per tick
//! across replicas, interruption at shutdown, and the metrics it feeds. Second-level cron
//! expressions keep these fast.

#[macro_use]
mod common;

use common::{Backend, Setup, TestApp};
use futures::FutureExt;
use futures::future::BoxFuture;
use hub_runtime::{Function, InvokeError, Report, RouteTable, Routes, Trigger};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A function that counts its invocations and takes `work` to finish.
struct Probe {
    schedule: Option<&'static str>,
    work: Duration,
    calls: Arc<AtomicUsize>,
}

impl Probe {
    fn spawn(schedule: &'static str, work: Duration) -> (Arc<dyn Function>, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let probe = Probe {
            schedule: Some(schedule),
            work,
            calls: calls.clone(),
        };
        (Arc::new(probe), calls)
    }
}

impl Function for Probe {
    fn name(&self) -> &'static str {
        "probe"
    }
    fn routes(&self) -> Routes {
        RouteTable::<()>::new().with_state(())
    }
    fn schedule(&self) -> Option<&str> {
        self.schedule
    }
    fn invoke(
        &self,
        _: Trigger,
        _: serde_json::Value,
    ) -> BoxFuture<'_, Result<Report, InvokeError>> {
        async move {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(self.work).await;
            Ok(Report::success(format!("call {n}")))
        }
        .boxed()
    }
}

const EVERY_SECOND: &str = "* * * * * *";

fn probe_info(gw: &local_gateway::Gateway) -> local_gateway::app::FunctionInfo {
    gw.function_infos()
        .into_iter()
        .find(|f| f.name == "probe")
        .expect("probe listed")
}

fn with_trigger<'a>(runs: &'a [serde_json::Value], outcome: &str) -> Vec<&'a serde_json::Value> {
    runs.iter()
        .filter(|r| r["trigger"] == "schedule" && r["outcome"] == outcome)
        .collect()
}

#[tokio::test]
async fn scheduled_runs_are_recorded_listed_and_counted() {
    let setup = Setup::new(Backend::Sqlite).await;
    let (probe, _) = Probe::spawn(EVERY_SECOND, Duration::ZERO);
    let app = TestApp::spawn_with(&setup, vec![probe]).await;
    let runs = app
        .wait_runs("probe", "two scheduled runs", |r| {
            with_trigger(r, "success").len() >= 2
        })
        .await;
    assert!(runs.iter().all(|r| r["trigger"] == "schedule"));

    let (_, functions) = app.get_json("/api/functions").await;
    let probe = common::function_entry(&functions, "probe");
    assert_eq!(probe["schedule"], EVERY_SECOND);
    assert!(probe["next_due"].is_string(), "{functions}");

    let text = app.metrics_text().await;
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text format parses");
    let value = |name: &str, labels: &[(&str, &str)]| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
    };
    let ok = value(
        "hub_runs_total",
        &[("function", "probe"), ("outcome", "success")],
    )
    .expect("runs counter");
    assert!(ok >= 2.0, "{text}");
    let last = value(
        "hub_last_success_timestamp_seconds",
        &[("function", "probe")],
    )
    .expect("gauge");
    assert!(last > 1.7e9, "a Unix time: {last}");
    assert!(text.contains("hub_run_duration_seconds_bucket{"), "{text}");
    assert!(
        text.contains("hub_runs_in_flight{function=\"probe\"}"),
        "{text}"
    );
    // The scrape itself is counted by route and status.
    let resp = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("GET");
    let text = resp.text().await.expect("text");
    assert!(
        text.contains(r#"hub_http_requests_total{route="/metrics",status="200"}"#),
        "{text}"
    );
    app.stop().await;
}

#[tokio::test]
async fn overrides_off_and_invalid_expressions() {
    let setup = Setup::new(Backend::Sqlite)
        .await
        .set("HUB_SCHEDULE_PROBE", "*/7 * * * * *");
    let (probe, _) = Probe::spawn(EVERY_SECOND, Duration::ZERO);
    let gw = local_gateway::Gateway::with_functions(setup.source(), |_| Ok(vec![probe]))
        .await
        .expect("gateway");
    assert_eq!(probe_info(&gw).schedule.as_deref(), Some("*/7 * * * * *"));

    let setup = Setup::new(Backend::Sqlite)
        .await
        .set("HUB_SCHEDULE_PROBE", "off");
    let (probe, _) = Probe::spawn(EVERY_SECOND, Duration::ZERO);
    let gw = local_gateway::Gateway::with_functions(setup.source(), |_| Ok(vec![probe]))
        .await
        .expect("gateway");
    assert!(gw.plans.is_empty(), "off disables the schedule");
    assert_eq!(probe_info(&gw).schedule, None);

    let setup = Setup::new(Backend::Sqlite)
        .await
        .set("HUB_SCHEDULE_PROBE", "every tuesday");
    let (probe, _) = Probe::spawn(EVERY_SECOND, Duration::ZERO);
    let err = local_gateway::Gateway::with_functions(setup.source(), |_| Ok(vec![probe]))
        .await
        .expect_err("invalid cron fails start-up");
    let text = err.to_string();
    assert!(
        text.contains("HUB_SCHEDULE_PROBE")
            && text.contains("function probe")
            && text.contains("\"every tuesday\""),
        "{text}"
    );
}

#[tokio::test]
async fn a_tick_during_a_running_run_is_skipped_not_overlapped() {
    let setup = Setup::new(Backend::Sqlite).await;
    let (probe, calls) = Probe::spawn(EVERY_SECOND, Duration::from_millis(2500));
    let app = TestApp::spawn_with(&setup, vec![probe]).await;
    let runs = app
        .wait_runs("probe", "a success after skips", |r| {
            !with_trigger(r, "success").is_empty() && with_trigger(r, "skipped").len() >= 2
        })
        .await;
    let skipped = with_trigger(&runs, "skipped");
    assert!(
        skipped[0]["summary"]
            .as_str()
            .expect("summary")
            .ends_with("skipped: previous run still going"),
        "{skipped:?}"
    );
    // Every invocation that started is one success (or still running); skips never invoke.
    let successes = with_trigger(&runs, "success").len();
    assert!(calls.load(Ordering::SeqCst) <= successes + 1);
    let text = app.metrics_text().await;
    assert!(
        text.contains(r#"hub_scheduler_skips_total{function="probe",reason="overlap"}"#),
        "{text}"
    );
    app.stop().await;
}

#[tokio::test]
async fn jitter_delays_each_tick_within_its_bound() {
    // Jitter of 3 s dwarfs the scheduler's own firing delay (< 0.6 s), so a claim made more
    // than 0.7 s after its tick can only come from jitter.
    let setup = Setup::new(Backend::Sqlite).await.set("HUB_JITTER_PROBE", 3);
    let (probe, _) = Probe::spawn(EVERY_SECOND, Duration::ZERO);
    let app = TestApp::spawn_with(&setup, vec![probe]).await;
    let db = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        setup.data_dir.path().join("hub.db").display()
    ))
    .await
    .expect("open store");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let delays = loop {
        let rows: Vec<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)> =
            sqlx::query_as(
                "SELECT tick, claimed_at FROM hub_schedule_ticks WHERE function = 'probe'",
            )
            .fetch_all(&db)
            .await
            .expect("claims");
        if rows.len() >= 6 {
            break rows
                .iter()
                .map(|(tick, claimed)| (*claimed - *tick).num_milliseconds())
                .collect::<Vec<_>>();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "too few claims: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        delays.iter().all(|&d| (0..3700).contains(&d)),
        "within the bound: {delays:?}"
    );
    assert!(
        delays.iter().any(|&d| d > 700),
        "actually delayed: {delays:?}"
    );
    app.stop().await;
}

async fn seeded_app(last_run_ago: Option<chrono::Duration>) -> (Setup, TestApp) {
    let setup = Setup::new(Backend::Sqlite)
        .await
        .set("HUB_CATCHUP_DELAY_SECS", 0);
    if let Some(ago) = last_run_ago {
        let (probe, _) = Probe::spawn(EVERY_SECOND, Duration::ZERO);
        let gw = local_gateway::Gateway::with_functions(setup.source(), |_| Ok(vec![probe]))
            .await
            .expect("gateway");
        gw.ctx
            .runs
            .record(
                "probe",
                Trigger::Schedule,
                chrono::Utc::now() - ago,
                Duration::ZERO,
                hub_runtime::Outcome::Success,
                "seeded",
            )
            .await;
        // Run rows are queued for the store's writer: the seed must be committed before the
        // next gateway decides, at start, whether a tick was missed.
        gw.ctx.runs.flush().await;
    }
    // Hourly at minute 0: the previous tick is within the last hour, the next one far away.
    let (probe, _) = Probe::spawn("0 0 * * * *", Duration::ZERO);
    let app = TestApp::spawn_with(&setup, vec![probe]).await;
    (setup, app)
}

#[tokio::test]
async fn a_missed_tick_is_caught_up_once_after_start() {
    let (_setup, app) = seeded_app(Some(chrono::Duration::hours(3))).await;
    let runs = app
        .wait_runs("probe", "the catch-up run", |r| {
            r.iter().any(|x| x["summary"] == "call 1")
        })
        .await;
    assert_eq!(
        runs.iter().filter(|r| r["summary"] != "seeded").count(),
        1,
        "one catch-up, not three: {runs:#?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn no_catch_up_when_nothing_was_missed_or_it_never_ran() {
    // The last run is newer than the previous tick: nothing missed.
    let (_setup, app) = seeded_app(Some(chrono::Duration::zero())).await;
    // The catch-up decision is made right after start; once the scheduler's start-up tasks are
    // done, no catch-up can follow.
    app.stop().await;
    let (_setup2, app2) = seeded_app(None).await;
    app2.stop().await;
    for setup in [&_setup, &_setup2] {
        let runs = common::stored_runs(setup).await;
        assert!(runs.iter().all(|r| r.summary == "seeded"), "{runs:#?}");
    }
}

async fn interrupted_runs_are_recorded_at_shutdown(backend: Backend) {
    let setup = Setup::new(backend).await.set("HUB_SHUTDOWN_GRACE_SECS", 1);
    let (probe, calls) = Probe::spawn(EVERY_SECOND, Duration::from_secs(60));
    let app = TestApp::spawn_with(&setup, vec![probe]).await;
    while calls.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.stop().await;
    let runs = common::stored_runs(&setup).await;
    let interrupted: Vec<_> = runs.iter().filter(|r| r.outcome == "interrupted").collect();
    assert_eq!(interrupted.len(), 1, "{runs:#?}");
    assert_eq!(interrupted[0].summary, "interrupted by shutdown");
    // The grace (1 s) less its wind-down (a quarter), in which the interrupted run is recorded.
    assert!(
        (700..1000).contains(&interrupted[0].duration_ms),
        "got the grace period less the wind-down first: {} ms",
        interrupted[0].duration_ms
    );
}

on_both_backends!(interrupted_runs_are_recorded_at_shutdown);

#[tokio::test]
async fn shutdown_lets_a_job_finish_within_the_grace_period() {
    let setup = Setup::new(Backend::Sqlite)
        .await
        .set("HUB_SHUTDOWN_GRACE_SECS", 10);
    let (probe, calls) = Probe::spawn(EVERY_SECOND, Duration::from_millis(800));
    let app = TestApp::spawn_with(&setup, vec![probe]).await;
    while calls.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.stop().await;
    let runs = common::stored_runs(&setup).await;
    assert!(runs.iter().all(|r| r.outcome != "interrupted"), "{runs:#?}");
    assert!(
        runs.iter()
            .any(|r| r.outcome == "success" && r.summary == "call 1"),
        "the running job finished and was recorded: {runs:#?}"
    );
}

#[tokio::test]
async fn three_replicas_on_one_database_run_each_tick_once() {
    let setup = Setup::new(Backend::Postgres).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let mut apps = Vec::new();
    for _ in 0..3 {
        let probe = Probe {
            schedule: Some(EVERY_SECOND),
            work: Duration::ZERO,
            calls: calls.clone(),
        };
        apps.push(TestApp::spawn_with(&setup, vec![Arc::new(probe)]).await);
    }
    apps[0]
        .wait_runs("probe", "seven runs", |r| {
            with_trigger(r, "success").len() >= 7
        })
        .await;
    for app in apps {
        app.stop().await;
    }
    let runs = common::stored_runs(&setup).await;
    let runs: Vec<_> = runs.iter().filter(|r| r.trigger == "schedule").collect();
    assert!(runs.len() >= 7);
    assert_eq!(
        runs.len(),
        calls.load(Ordering::SeqCst),
        "every invocation is one run: {runs:#?}"
    );
    // Ticks are whole seconds; each second has exactly one run among the three replicas.
    let mut per_second = std::collections::BTreeMap::<i64, usize>::new();
    for r in &runs {
        *per_second.entry(r.started_at.timestamp()).or_default() += 1;
    }
    assert!(per_second.len() >= 5, "{per_second:?}");
    assert!(
        per_second.values().all(|&n| n == 1),
        "one run per tick: {per_second:?}"
    );
}
