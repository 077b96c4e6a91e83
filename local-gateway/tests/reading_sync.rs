//! reading-sync through a running gateway: the seed's routes, the schedule, and a `kill -9` of
//! the gateway process in the middle of a sync.

#[macro_use]
mod common;

use common::{Backend, MongoServer, Setup, TestApp, spawn_server, stored_runs};
use hub_runtime::Trigger;
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{Document, doc};
use serde_json::Value;
use std::time::{Duration, Instant};

fn article(n: usize) -> Document {
    doc! {
        "_id": ObjectId::new(),
        "source": "kindle",
        "event_type": if n % 3 == 0 { "note" } else { "highlight" },
        "timestamp": mongodb::bson::DateTime::from_millis(1_700_000_000_000 + n as i64 * 1000),
        "payload": {"n": n as i64},
        "status": "ingested",
    }
}

/// Seeds `n` articles and returns the setup pointing at them.
async fn setup_with(backend: Backend, mongo: &MongoServer, n: usize) -> Setup {
    let db = format!("reading_{}", ObjectId::new().to_hex());
    mongo
        .seed(&db, "articles", (0..n).map(article).collect())
        .await;
    Setup::new(backend)
        .await
        .set("MONGO_URI", mongo.uri())
        .set("MONGO_DB", db)
}

/// Waits (at most 60 s) until a running sync has stored `n` rows.
async fn wait_rows(pool: &sqlx::PgPool, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows: Result<(i64,), _> = sqlx::query_as("SELECT COUNT(*) FROM reading_analytics")
            .fetch_one(pool)
            .await;
        if matches!(rows, Ok((stored,)) if stored >= n) {
            return;
        }
        assert!(Instant::now() < deadline, "the sync never got going");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn processed(mongo: &MongoServer, setup: &Setup) -> u64 {
    mongo
        .count(
            &setup.env["MONGO_DB"],
            "articles",
            doc! {"status": "processed"},
        )
        .await
}

async fn sync_routes(backend: Backend) {
    let mongo = MongoServer::start();
    let setup = setup_with(backend, &mongo, 120).await.set("BATCH_SIZE", 50);
    let app = TestApp::spawn(&setup).await;

    let resp = app
        .client
        .post(app.url("/api/sync/reading"))
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["service"], "reading-sync");
    assert_eq!(body["status"], "success");
    assert_eq!(body["processed_count"], 120);
    assert_eq!(body["failed_count"], 0);
    assert!(body["duration_ms"].is_u64(), "{body}");
    assert_eq!(processed(&mongo, &setup).await, 120);

    // GET works too (the seed's timer used it); nothing is left.
    let (status, body) = app.get_json("/api/sync/reading").await;
    assert_eq!((status, body["processed_count"].as_u64()), (200, Some(0)));

    // Pages, newest event first, with filters.
    let (status, page) = app.get_json("/api/reading?limit=50").await;
    assert_eq!(status, 200, "{page}");
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 50);
    assert_eq!(items[0]["payload"]["n"], 119);
    assert_eq!(page["next_offset"], 50);
    let (_, last) = app.get_json("/api/reading?limit=50&offset=100").await;
    assert_eq!(last["items"].as_array().map(Vec::len), Some(20));
    assert_eq!(last["next_offset"], Value::Null);
    let (_, notes) = app.get_json("/api/reading?limit=500&event_type=note").await;
    assert_eq!(notes["items"].as_array().map(Vec::len), Some(40));
    for bad in [
        "/api/reading?limit=0",
        "/api/reading?limit=501",
        "/api/reading?offset=-1",
    ] {
        let (status, body) = app.get_json(bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"].is_string(), "{bad}: {body}");
    }

    let runs = app.runs("reading-sync").await;
    let summaries: Vec<&str> = runs.iter().filter_map(|r| r["summary"].as_str()).collect();
    assert!(
        summaries.contains(&"200 120 processed, 0 failed"),
        "{summaries:?}"
    );
}
on_both_backends!(sync_routes);

/// Pages of big rows stop at the byte cap and say where to go on; deep payloads come back as
/// JSON, not as a string of it.
async fn reading_pages_are_bounded_by_bytes(backend: Backend) {
    let mongo = MongoServer::start();
    let setup = setup_with(backend, &mongo, 0).await;
    let db = &setup.env["MONGO_DB"];
    // Five rows of 1.5 MB: two fit under the 4 MiB cap, the third would not.
    for n in 0..5 {
        let mut d = article(n);
        d.insert(
            "payload",
            doc! {"n": n as i64, "text": "y".repeat(1_500_000)},
        );
        mongo.seed(db, "articles", vec![d]).await;
    }
    let mut deep = doc! {"leaf": true};
    for _ in 0..200 {
        deep = doc! {"d": deep};
    }
    let mut nested = article(100);
    nested.insert("payload", deep);
    mongo.seed(db, "articles", vec![nested]).await;
    let app = TestApp::spawn(&setup).await;
    let resp = app
        .client
        .post(app.url("/api/sync/reading"))
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["processed_count"], 6, "{body}");

    // Newest first: the nested one, then n = 4, 3, ...
    let mut seen = Vec::new();
    let mut offset = 0;
    let mut pages = 0;
    loop {
        let resp = app
            .client
            .get(app.url(&format!("/api/reading?limit=50&offset={offset}")))
            .send()
            .await
            .expect("GET");
        assert_eq!(resp.status(), 200);
        let text = resp.text().await.expect("body");
        assert!(
            text.len() < 4 * 1024 * 1024 + 64 * 1024,
            "{} bytes",
            text.len()
        );
        let mut de = serde_json::Deserializer::from_str(&text);
        de.disable_recursion_limit();
        let page = serde::Deserialize::deserialize(&mut de).map(|v: Value| v);
        let page = page.expect("JSON page");
        pages += 1;
        let items = page["items"].as_array().expect("items");
        for item in items {
            seen.push(item["payload"]["n"].as_i64());
            if item["payload"]["n"].is_null() {
                let mut v = &item["payload"];
                let mut depth = 0;
                while let Some(inner) = v.get("d") {
                    v = inner;
                    depth += 1;
                }
                assert_eq!(
                    (depth, &v["leaf"]),
                    (200, &Value::Bool(true)),
                    "as an object"
                );
            }
        }
        match page["next_offset"].as_i64() {
            Some(next) => {
                assert_eq!(page["truncated"], true, "{}", page["next_offset"]);
                assert_eq!(next, offset + items.len() as i64);
                offset = next;
            }
            None => break,
        }
        assert!(pages < 10, "pages never end");
    }
    assert_eq!(seen, [None, Some(4), Some(3), Some(2), Some(1), Some(0)]);
    assert_eq!(pages, 3, "[nested, 4, 3] then [2, 1] then [0]");
}
on_both_backends!(reading_pages_are_bounded_by_bytes);

#[tokio::test]
async fn mongodb_down_answers_503_and_records_the_failure() {
    let mut mongo = MongoServer::start();
    let setup = setup_with(Backend::Postgres, &mongo, 0)
        .await
        .set("MONGO_TIMEOUT_SECS", 1);
    mongo.stop();
    let app = TestApp::spawn(&setup).await;
    let resp = app
        .client
        .post(app.url("/api/sync/reading"))
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["status"], "error");
    assert_eq!(
        body["error"], "MongoDB unavailable",
        "no driver detail leaks: {body}"
    );
    assert!(body["request_id"].is_string());
    let runs = app.runs("reading-sync").await;
    assert_eq!(runs[0]["outcome"], "failure", "{runs:?}");
    // MongoDB is not a readiness dependency: a down source fails runs, not the gateway.
    let (_, ready) = app.get_json("/readyz").await;
    assert_eq!(ready["checks"]["reading-sync"], "ok", "{ready}");
    assert!(
        !ready["failing"]
            .as_array()
            .expect("failing list")
            .contains(&"reading-sync".into()),
        "{ready}"
    );
}

#[tokio::test]
async fn without_mongo_uri_the_function_reports_itself_not_configured() {
    let setup = Setup::new(Backend::Sqlite).await;
    let app = TestApp::spawn(&setup).await;
    let resp = app
        .client
        .post(app.url("/api/sync/reading"))
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.expect("json");
    assert!(
        body["error"].as_str().unwrap_or("").contains("MONGO_URI"),
        "{body}"
    );
    let (_, ready) = app.get_json("/readyz").await;
    assert_eq!(
        ready["checks"]["reading-sync"],
        "not configured: MONGO_URI is not set"
    );
}

#[tokio::test]
async fn the_schedule_runs_the_sync() {
    let mongo = MongoServer::start();
    let setup = setup_with(Backend::Sqlite, &mongo, 30)
        .await
        .set("HUB_SCHEDULE_READING_SYNC", "*/1 * * * * *");
    let app = TestApp::spawn(&setup).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while processed(&mongo, &setup).await < 30 {
        assert!(
            Instant::now() < deadline,
            "scheduled sync did not process the documents"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let runs = app.runs("reading-sync").await;
    assert!(
        runs.iter()
            .any(|r| r["trigger"] == "schedule" && r["outcome"] == "success"),
        "{runs:?}"
    );
}

/// `kill -9` of the gateway while a sync is writing: the restarted gateway's next sync leaves
/// every document stored exactly once and marked processed.
#[tokio::test]
async fn kill_9_of_the_gateway_mid_sync_loses_nothing_and_duplicates_nothing() {
    const N: usize = 5_000;
    let mongo = MongoServer::start();
    let setup = setup_with(Backend::Postgres, &mongo, N)
        .await
        .set("BATCH_SIZE", 100)
        // The whole sync answers one request; a debug build against PoloDB takes a while.
        .set("HUB_REQUEST_TIMEOUT_SECS", 600);
    let db_url = setup.env["DATABASE_URL"].clone();
    let pool = sqlx::PgPool::connect(&db_url).await.expect("pg");

    let (mut child, addr) = spawn_server(&setup);
    let trigger = tokio::spawn(async move {
        // Cut off by the kill; its answer does not matter.
        let _ = reqwest::Client::new()
            .post(format!("http://{addr}/api/sync/reading"))
            .send()
            .await;
    });
    wait_rows(&pool, 1000).await;
    child.kill().expect("kill -9");
    child.wait().expect("reap");
    let _ = trigger.await;
    let (rows_at_kill,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM reading_analytics")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert!(
        (rows_at_kill as usize) < N,
        "killed before the end ({rows_at_kill} rows)"
    );

    // Restarted; claims of the dead process time out after a second.
    let setup = setup.set("CLAIM_TIMEOUT_SECS", 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let app = TestApp::spawn(&setup).await;
    let resp = app
        .client
        .post(app.url("/api/sync/reading"))
        .send()
        .await
        .expect("POST");
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["status"], "success", "{body}");

    let (rows, distinct): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), COUNT(DISTINCT mongo_id) FROM reading_analytics")
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(
        (rows, distinct),
        (N as i64, N as i64),
        "every document exactly once"
    );
    assert_eq!(processed(&mongo, &setup).await, N as u64);
    // The killed run never learnt how it ended; the next run, started after the claim timeout,
    // closes its history row as abandoned.
    let history: Vec<(String, Option<String>, bool)> = sqlx::query_as(
        "SELECT status, error_message, end_time > start_time FROM reading_sync_history ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .expect("history");
    assert_eq!(history.len(), 2, "{history:?}");
    let (status, error, ended) = &history[0];
    assert_eq!(status, "failure", "{history:?}");
    assert!(*ended, "{history:?}");
    assert!(
        error.as_deref().is_some_and(|e| e.starts_with("abandoned")),
        "{history:?}"
    );
    assert_eq!(history[1].0, "success", "{history:?}");
    assert!(
        stored_runs(&setup)
            .await
            .iter()
            .any(|r| r.function == "reading-sync")
    );
}

/// SIGTERM during a long scheduled sync: the sync stops between batches within the grace, its
/// history row is closed `interrupted` with the count so far, and the process exits in time.
#[tokio::test]
async fn sigterm_interrupts_a_long_sync_within_the_grace() {
    sigterm_during_a_long_sync(Trigger::Schedule).await;
}

/// The same with the sync started by `POST /api/sync/reading`: the listener stops while the
/// request waits, the cancel then stops the sync, and the client is answered 503 (the error
/// says it was interrupted).
/// The run is recorded `interrupted` like a scheduled one, not as a failure, although it
/// records after the listeners have gone.
#[tokio::test]
async fn sigterm_interrupts_a_long_sync_started_over_http_and_records_it_interrupted() {
    sigterm_during_a_long_sync(Trigger::Http).await;
}

async fn sigterm_during_a_long_sync(trigger: Trigger) {
    const N: usize = 5_000;
    const GRACE_SECS: u64 = 4;
    let mongo = MongoServer::start();
    let mut setup = setup_with(Backend::Postgres, &mongo, N)
        .await
        .set("BATCH_SIZE", 10)
        .set("HUB_SHUTDOWN_GRACE_SECS", GRACE_SECS);
    if trigger == Trigger::Schedule {
        setup = setup.set("HUB_SCHEDULE_READING_SYNC", "* * * * * *");
    }
    let pool = sqlx::PgPool::connect(&setup.env["DATABASE_URL"])
        .await
        .expect("pg");
    let (mut child, addr) = spawn_server(&setup);
    let answer = (trigger == Trigger::Http)
        .then(|| common::post_in_background(addr, "/api/sync/reading", None));
    wait_rows(&pool, 200).await;
    let signalled = Instant::now();
    let status = common::terminate(&mut child).await;
    let took = signalled.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        took < Duration::from_millis(GRACE_SECS * 1000 + 500),
        "exited {took:?} after SIGTERM, grace {GRACE_SECS} s"
    );
    if let Some(answer) = answer {
        let (status, body) = answer.await.expect("client task");
        assert_eq!(status, 503, "{body}");
        assert_eq!(
            body["error"], "interrupted by shutdown; the rest is synced by the next run",
            "{body}"
        );
    }

    let (rows,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM reading_analytics")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert!(
        (rows as usize) < N,
        "interrupted before the end ({rows} rows)"
    );
    let history: Vec<(String, i64, bool)> = sqlx::query_as(
        "SELECT status, processed_count::BIGINT, end_time > start_time FROM reading_sync_history \
         ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .expect("history");
    assert_eq!(
        history,
        [("interrupted".to_owned(), rows, true)],
        "one run, closed with the count so far"
    );
    assert_eq!(
        processed(&mongo, &setup).await,
        rows as u64,
        "marked as stored"
    );
    let runs: Vec<(String, String)> = stored_runs(&setup)
        .await
        .into_iter()
        // Every-second ticks that found the sync still going are recorded `skipped`.
        .filter(|r| r.function == "reading-sync" && r.outcome != "skipped")
        .map(|r| (r.trigger, r.outcome))
        .collect();
    assert_eq!(
        runs,
        [(trigger.as_str().to_owned(), "interrupted".to_owned())],
        "the one run, recorded as interrupted"
    );
}
