//! The store's writer (group commit) on both stores: batched claims keep their one-by-one
//! meaning, a row the database refuses costs only itself, queued rows wait for their batch
//! until a flush or an awaited write, a full queue holds senders back without losing rows, and
//! reads of run history see every run recorded before them.
//!
//! These run on Tokio's current-thread runtime: the writer task runs only when the test awaits,
//! so writes queued together in one poll land in one batch.

use chrono::Utc;
use futures::future::join_all;
use hub_runtime::store::{RunQuery, RunRow, Writer, WriterConfig};
use hub_runtime::{HubConfig, InvokeError, Report, Runs, Source, Store, Trigger};
use hub_testkit::{Backend, TestDb};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const SCOPE: &str = "writer-test";
/// Longer than any test: rows that wait for it are committed only by something else.
const FOREVER: Duration = Duration::from_secs(3600);

macro_rules! on_both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name(super::Backend::Sqlite).await;
            }
            #[tokio::test]
            async fn postgres() {
                super::$name(super::Backend::Postgres).await;
            }
        }
    };
}

/// A fresh store of `backend`; the guards keep its directory and database alive.
struct Fixture {
    store: Store,
    dir: tempfile::TempDir,
    _db: Option<TestDb>,
}

async fn fixture(backend: Backend) -> Fixture {
    let dir = tempfile::TempDir::new().expect("dir");
    let mut env = HashMap::from([
        ("HUB_DATA_DIR".to_owned(), dir.path().display().to_string()),
        ("HUB_CONFIG".to_owned(), "/dev/null".to_owned()),
    ]);
    let db = backend.database().await;
    if let Some(db) = &db {
        env.insert("DATABASE_URL".to_owned(), db.url.clone());
    }
    let hub = HubConfig::from_source(&Source::from_parts(None, env).expect("source")).expect("hub");
    let store = Store::connect(&hub).await.expect("store");
    Fixture {
        store,
        dir,
        _db: db,
    }
}

fn row(id: &str) -> RunRow {
    RunRow {
        id: id.to_owned(),
        function: "demo".to_owned(),
        trigger: "http".to_owned(),
        started_at: Utc::now(),
        duration_ms: 1,
        outcome: "success".to_owned(),
        summary: format!("run {id}"),
    }
}

/// Run ids in the store, read straight from it (not through a writer).
async fn stored_ids(store: &Store) -> BTreeSet<String> {
    let q = RunQuery {
        limit: 10_000,
        ..RunQuery::default()
    };
    let rows = store.list_runs(&q).await.expect("list runs");
    rows.into_iter().map(|r| r.id).collect()
}

fn ids(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn config(window: Duration) -> WriterConfig {
    WriterConfig {
        window,
        ..WriterConfig::default()
    }
}

async fn a_refused_claim_in_a_batch_changes_nothing_and_spares_the_rest(backend: Backend) {
    let fx = fixture(backend).await;
    let writer = Writer::start(fx.store.clone(), config(FOREVER));
    // Queued in this order in one poll, so written in this order in one transaction.
    let results = join_all([
        writer.claim_keys(SCOPE, "repo", &["delivery:1", "body:1"]),
        // Refused at its second key: its first key must not stay claimed...
        writer.claim_keys(SCOPE, "repo", &["delivery:2", "body:1"]),
        // ...or this claim of it would be refused too.
        writer.claim_keys(SCOPE, "repo", &["delivery:2", "body:2"]),
        writer.claim_keys(SCOPE, "repo", &["delivery:1"]),
    ])
    .await;
    let claimed: Vec<bool> = results.into_iter().map(|r| r.expect("claim")).collect();
    assert_eq!(claimed, [true, false, true, false]);
    let pending: BTreeSet<String> = fx
        .store
        .pending_keys(SCOPE, "repo")
        .await
        .expect("pending")
        .into_iter()
        .collect();
    assert_eq!(
        pending,
        ids(&["body:1", "body:2", "delivery:1", "delivery:2"])
    );
}

on_both_backends!(a_refused_claim_in_a_batch_changes_nothing_and_spares_the_rest);

async fn a_claim_after_a_settlement_in_its_batch_sees_it(backend: Backend) {
    let fx = fixture(backend).await;
    let writer = Writer::start(fx.store.clone(), config(FOREVER));
    assert!(
        writer
            .claim_keys(SCOPE, "repo", &["delivery:1"])
            .await
            .expect("claim")
    );
    let failed = vec!["delivery:1".to_owned()];
    // One batch: the sync failed, and GitHub's redelivery claims the delivery again.
    let (settled, redelivered, replayed) = tokio::join!(
        writer.settle_keys(SCOPE, &failed, false),
        writer.claim_keys(SCOPE, "repo", &["delivery:1"]),
        writer.claim_keys(SCOPE, "repo", &["delivery:1"]),
    );
    settled.expect("settle");
    assert!(
        redelivered.expect("claim"),
        "a failed delivery is claimable again"
    );
    assert!(!replayed.expect("claim"), "and then pending");
}

on_both_backends!(a_claim_after_a_settlement_in_its_batch_sees_it);

async fn a_row_the_database_refuses_costs_only_itself(backend: Backend) {
    let fx = fixture(backend).await;
    let writer = Writer::start(fx.store.clone(), config(FOREVER));
    let (first, twin, last, claim) = tokio::join!(
        writer.queue_run(row("run-1")),
        // Same primary key as the first: the database refuses the batch holding both.
        writer.queue_run(row("run-1")),
        writer.queue_run(row("run-2")),
        writer.claim_keys(SCOPE, "repo", &["delivery:1", "body:1"]),
    );
    for queued in [first, twin, last] {
        queued.expect("queued");
    }
    assert!(claim.expect("the claim is not lost with the bad row"));
    writer.flush().await.expect("flush");
    assert_eq!(stored_ids(&fx.store).await, ids(&["run-1", "run-2"]));
}

on_both_backends!(a_row_the_database_refuses_costs_only_itself);

async fn queued_rows_wait_for_their_batch_until_flushed_or_joined_by_an_awaited_write(
    backend: Backend,
) {
    let fx = fixture(backend).await;
    let writer = Writer::start(fx.store.clone(), config(FOREVER));
    for i in 0..10 {
        writer
            .queue_run(row(&format!("a-{i}")))
            .await
            .expect("queue");
    }
    // Let the writer take them; with the window still open nothing is committed.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(
        stored_ids(&fx.store).await.is_empty(),
        "rows committed before their batch closed"
    );
    writer.flush().await.expect("flush");
    assert_eq!(stored_ids(&fx.store).await.len(), 10);

    // An awaited write does not wait for the window: it commits the rows queued with it.
    for i in 0..5 {
        writer
            .queue_run(row(&format!("b-{i}")))
            .await
            .expect("queue");
    }
    let claimed = tokio::time::timeout(
        Duration::from_secs(60),
        writer.claim_keys(SCOPE, "repo", &["delivery:1"]),
    )
    .await
    .expect("the claim waited for the batch window");
    assert!(claimed.expect("claim"));
    assert_eq!(stored_ids(&fx.store).await.len(), 15);
}

on_both_backends!(queued_rows_wait_for_their_batch_until_flushed_or_joined_by_an_awaited_write);

/// Holds the store's write lock from another connection until dropped or released.
enum WriteLock {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl WriteLock {
    async fn take(fx: &Fixture) -> Self {
        use sqlx::Connection;
        match &fx.store {
            Store::Sqlite(_) => {
                let path = fx.dir.path().join("hub.db");
                let mut conn =
                    sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                        .await
                        .expect("second connection");
                sqlx::query("BEGIN IMMEDIATE")
                    .execute(&mut conn)
                    .await
                    .expect("write lock");
                WriteLock::Sqlite(conn)
            }
            Store::Postgres(p) => {
                let opts = p.connect_options();
                let mut conn = sqlx::PgConnection::connect_with(&opts)
                    .await
                    .expect("second connection");
                sqlx::raw_sql("BEGIN; LOCK TABLE hub_runs IN ACCESS EXCLUSIVE MODE")
                    .execute(&mut conn)
                    .await
                    .expect("table lock");
                WriteLock::Postgres(conn)
            }
        }
    }

    async fn release(self) {
        let res = match self {
            WriteLock::Sqlite(mut c) => sqlx::query("ROLLBACK").execute(&mut c).await.map(|_| ()),
            WriteLock::Postgres(mut c) => sqlx::query("ROLLBACK").execute(&mut c).await.map(|_| ()),
        };
        res.expect("release lock");
    }
}

async fn a_full_queue_holds_senders_back_and_loses_nothing(backend: Backend) {
    let fx = fixture(backend).await;
    let cfg = WriterConfig {
        window: Duration::ZERO,
        max_batch: 1,
        queue: 4,
    };
    let writer = Writer::start(fx.store.clone(), cfg);
    // The writer's first commit blocks on the lock (SQLite waits up to its 5 s busy timeout,
    // far longer than the lock is held here).
    let lock = WriteLock::take(&fx).await;
    let sent = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..20)
        .map(|i| {
            let (writer, sent) = (writer.clone(), sent.clone());
            tokio::spawn(async move {
                writer
                    .queue_run(row(&format!("r-{i}")))
                    .await
                    .expect("queue");
                sent.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // One row in the writer's hands, four in the queue: everyone else waits for room.
    let before = sent.load(Ordering::SeqCst);
    assert!(
        before <= cfg.queue + cfg.max_batch,
        "{before} rows were queued past the bound"
    );
    lock.release().await;
    for s in senders {
        s.await.expect("sender");
    }
    writer.flush().await.expect("flush");
    assert_eq!(stored_ids(&fx.store).await.len(), 20, "rows were lost");
}

on_both_backends!(a_full_queue_holds_senders_back_and_loses_nothing);

async fn listing_runs_sees_every_run_recorded_before(backend: Backend) {
    let fx = fixture(backend).await;
    let runs = Runs::with_writer(fx.store.clone(), config(FOREVER), false);
    for _ in 0..3 {
        record(&runs).await;
    }
    let q = RunQuery {
        limit: 50,
        ..RunQuery::default()
    };
    assert_eq!(runs.list(&q).await.expect("list").len(), 3);
}

on_both_backends!(listing_runs_sees_every_run_recorded_before);

/// A batch writes its rows in one statement of its own (SQLite: a JSON array); what it stores
/// must read back, and sort, exactly as a row inserted on its own.
async fn batched_rows_read_back_as_single_inserts_do(backend: Backend) {
    use chrono::TimeZone;
    let fx = fixture(backend).await;
    let writer = Writer::start(fx.store.clone(), config(FOREVER));
    let at = |secs: i64, nanos| {
        Utc.timestamp_opt(1_765_000_000 + secs, nanos)
            .single()
            .expect("a valid time")
    };
    let shaped = |id: &str, started_at, summary: &str| RunRow {
        started_at,
        duration_ms: 12_345_678_901,
        summary: summary.to_owned(),
        ..row(id)
    };
    // Whole seconds, milliseconds and microseconds (PostgreSQL keeps no finer); quotes, a
    // newline, a backslash and
    // non-ASCII text in the summary.
    let pairs = [
        (at(0, 0), "plain"),
        (at(1, 250_000_000), "quote \" and 'apostrophe'\nsecond line"),
        (
            at(2, 123_456_000),
            "back\\slash, ünïcødé ✓, {\"json\": [1]}",
        ),
    ];
    for (i, (started_at, summary)) in pairs.iter().enumerate() {
        let single = shaped(&format!("single-{i}"), *started_at, summary);
        fx.store.insert_run(&single).await.expect("single insert");
        writer
            .queue_run(shaped(&format!("batched-{i}"), *started_at, summary))
            .await
            .expect("queued");
    }
    writer.flush().await.expect("flush");
    let q = RunQuery {
        limit: 50,
        ..RunQuery::default()
    };
    let listed = fx.store.list_runs(&q).await.expect("list");
    assert_eq!(listed.len(), 6);
    for (i, (started_at, summary)) in pairs.iter().enumerate() {
        for id in [format!("single-{i}"), format!("batched-{i}")] {
            let got = listed.iter().find(|r| r.id == id).expect(&id);
            assert_eq!(
                (
                    got.started_at,
                    got.summary.as_str(),
                    got.duration_ms,
                    got.function.as_str(),
                    got.trigger.as_str(),
                    got.outcome.as_str()
                ),
                (
                    *started_at,
                    *summary,
                    12_345_678_901,
                    "demo",
                    "http",
                    "success"
                ),
                "{id}"
            );
        }
    }
    // Newest first, each batched row beside the single row of the same time.
    let order: Vec<&str> = listed.iter().map(|r| &r.id[r.id.len() - 1..]).collect();
    assert_eq!(order, ["2", "2", "1", "1", "0", "0"]);
}

on_both_backends!(batched_rows_read_back_as_single_inserts_do);

async fn durable_runs_are_committed_before_record_returns(backend: Backend) {
    let fx = fixture(backend).await;
    let runs = Runs::with_writer(fx.store.clone(), config(FOREVER), true);
    let id = record(&runs).await;
    assert_eq!(stored_ids(&fx.store).await, ids(&[&id]));
}

on_both_backends!(durable_runs_are_committed_before_record_returns);

/// Run ids are time-ordered, so each new run appends to the primary-key index rather than
/// rewriting a random page of the history: ids recorded one after another sort in that order.
#[tokio::test]
async fn run_ids_sort_in_the_order_runs_were_recorded() {
    let fx = fixture(Backend::Sqlite).await;
    let runs = Runs::with_writer(fx.store.clone(), config(FOREVER), false);
    let mut ids = Vec::new();
    for _ in 0..50 {
        ids.push(record(&runs).await);
    }
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
}

/// A function that stops because the process is shutting down is recorded `interrupted`, as the
/// scheduler records a run it stops itself (which of the two notices the shutdown first is a
/// race); any other error is a failure.
#[tokio::test]
async fn an_invocation_stopped_by_shutdown_is_recorded_as_interrupted() {
    let fx = fixture(Backend::Sqlite).await;
    let runs = Runs::with_writer(fx.store.clone(), config(FOREVER), true);
    for error in [
        InvokeError::Interrupted("12 processed; stopped: interrupted by shutdown".into()),
        InvokeError::Failed("MongoDB unavailable".into()),
    ] {
        let ran = runs
            .track("demo", Trigger::Schedule, async { Err::<Report, _>(error) })
            .await;
        assert!(ran.is_err(), "the caller still sees the error");
    }
    let q = RunQuery {
        limit: 10,
        ..RunQuery::default()
    };
    let mut recorded: Vec<(String, String)> = (fx.store.list_runs(&q).await.expect("list"))
        .into_iter()
        .map(|r| (r.summary, r.outcome))
        .collect();
    recorded.sort();
    assert_eq!(
        recorded,
        [
            (
                "12 processed; stopped: interrupted by shutdown".to_owned(),
                "interrupted".to_owned()
            ),
            ("MongoDB unavailable".to_owned(), "failure".to_owned()),
        ]
    );
}

async fn record(runs: &Runs) -> String {
    runs.record(
        "demo",
        Trigger::Http,
        Utc::now(),
        Duration::from_millis(3),
        hub_runtime::Outcome::Success,
        "done",
    )
    .await
}

async fn a_settlement_longer_than_a_chunk_settles_every_key(backend: Backend) {
    let fx = fixture(backend).await;
    let writer = Writer::start(fx.store.clone(), config(Duration::ZERO));
    let keys: Vec<String> = (0..2 * hub_runtime::store::SETTLE_CHUNK + 1)
        .map(|i| format!("delivery:{i}"))
        .collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    assert!(
        writer
            .claim_keys(SCOPE, "repo", &refs)
            .await
            .expect("claim")
    );
    writer
        .settle_keys(SCOPE, &keys, true)
        .await
        .expect("settle");
    let pending = fx.store.pending_keys(SCOPE, "repo").await.expect("pending");
    assert!(pending.is_empty(), "still pending: {pending:?}");
    let last = keys.last().expect("keys").as_str();
    assert!(
        !writer
            .claim_keys(SCOPE, "repo", &[last])
            .await
            .expect("claim")
    );
}

on_both_backends!(a_settlement_longer_than_a_chunk_settles_every_key);
