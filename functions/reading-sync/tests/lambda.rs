//! The `reading-sync` Lambda binary end to end, driven by the testkit's Lambda Runtime API with
//! the events in `tests/fixtures/` and the testkit's schedule events: a scheduled event runs one
//! sync against real PoloDB and PostgreSQL, a Function URL request pages through the rows, and
//! what cannot succeed fails the invocation.

use hub_runtime::store::RunQuery;
use hub_runtime::{HubConfig, Source, Store};
use hub_testkit::lambda::{LambdaProcess, Posted, function_env, http_answer, schedule_event};
use hub_testkit::{MongoServer, TestDb};
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{Document, doc};
use serde_json::Value;
use tempfile::TempDir;

fn fixture(name: &str) -> Value {
    hub_testkit::lambda::fixture(env!("CARGO_MANIFEST_DIR"), name)
}

#[tokio::test]
async fn scheduled_events_run_a_sync_and_failures_fail_the_invocation() {
    let mut mongo = MongoServer::start();
    let db = TestDb::create().await;
    let dir = TempDir::new().expect("scratch");
    let mongo_db = format!("reading_{}", ObjectId::new().to_hex());
    let docs: Vec<Document> = (0..75)
        .map(|n| {
            doc! {
                "_id": ObjectId::new(), "source": "web",
                "event_type": if n < 7 { "note" } else { "highlight" },
                "timestamp": mongodb::bson::DateTime::from_millis(1_700_000_000_000 + n * 1000),
                "payload": {"n": n}, "status": "ingested",
            }
        })
        .collect();
    mongo.seed(&mongo_db, "articles", docs).await;
    let env = function_env(
        dir.path(),
        &[
            ("DATABASE_URL", db.url.clone()),
            ("MONGO_URI", mongo.uri()),
            ("MONGO_DB", mongo_db.clone()),
            ("BATCH_SIZE", "20".to_owned()),
            ("MONGO_TIMEOUT_SECS", "1".to_owned()),
        ],
    );

    let (mut runtime, mut lambda) = LambdaProcess::start(
        reading_sync::NAME,
        env!("CARGO_BIN_EXE_reading-sync"),
        &env,
        dir.path(),
    )
    .await;

    // The twice-daily rule fires: one sync, answered with the run's report.
    let scheduled = schedule_event("eventbridge-scheduled.json");
    let answer = lambda.invoke(&mut runtime, "req-1", &scheduled).await;
    assert_eq!(answer["function"], "reading-sync", "{answer}");
    assert_eq!(answer["outcome"], "success", "{answer}");
    assert_eq!(answer["summary"], "75 processed, 0 failed", "{answer}");
    // What template.yaml's schedule sends: a sync too, with nothing left to copy.
    let v2 = schedule_event("scheduler-v2.json");
    let answer = lambda.invoke(&mut runtime, "req-1b", &v2).await;
    assert_eq!(
        (&answer["outcome"], &answer["summary"]),
        (&"success".into(), &"0 processed, 0 failed".into()),
        "{answer}"
    );

    // A Function URL request: the rows, through the same router.
    let page = lambda
        .invoke(&mut runtime, "req-2", &fixture("apigw-v2-get-reading.json"))
        .await;
    let (status, body) = http_answer(&page);
    assert_eq!(status, 200, "{body}");
    let items = body["items"].as_array().expect("items");
    assert_eq!(items.len(), 5);
    assert_eq!(items[0]["payload"]["n"], 6, "newest note first: {body}");
    assert!(items.iter().all(|i| i["event_type"] == "note"));

    // Not a schedule: refused, naming what came.
    match lambda
        .invoke_raw(&mut runtime, "req-3", &fixture("s3-object-created.json"))
        .await
    {
        Posted::Error { body, .. } => assert!(
            body.to_string().contains("Object Created"),
            "names the event: {body}"
        ),
        other => panic!("an S3 event must fail the invocation, got {other}"),
    }

    // MongoDB gone: the scheduled run fails, and so does the invocation.
    mongo.stop();
    match lambda.invoke_raw(&mut runtime, "req-4", &scheduled).await {
        Posted::Error { body, .. } => {
            assert!(body.to_string().contains("MongoDB"), "says why: {body}")
        }
        other => panic!("a failed sync must fail the invocation, got {other}"),
    }
    runtime.assert_nothing_else_posted(&lambda);
    lambda.stop().await;

    // Both scheduled runs are in the hub's history as such (the HTTP request as lambda).
    let source = Source::from_parts(None, env.into_iter().collect()).expect("source");
    let store = Store::connect(&HubConfig::from_source(&source).expect("hub"))
        .await
        .expect("store");
    let runs = store
        .list_runs(&RunQuery {
            function: Some(reading_sync::NAME.into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("runs");
    let mut seen: Vec<(String, String)> = runs
        .iter()
        .map(|r| (r.trigger.clone(), r.outcome.clone()))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("lambda".to_owned(), "success".to_owned()),
            ("schedule".to_owned(), "failure".to_owned()),
            ("schedule".to_owned(), "success".to_owned()),
            ("schedule".to_owned(), "success".to_owned()),
        ]
    );
}
