//! reading-sync against a real MongoDB-protocol server (PoloDB, one per test) and a real
//! PostgreSQL database per test (one test on the embedded SQLite store).

mod common;

use common::{Env, article, hex_ids};
use futures::FutureExt;
use hub_runtime::Trigger;
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{Bson, Decimal128, Document, doc};
use reading_sync::{ReadingSync, Step, SyncError};
use serde_json::{Value, json};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::Notify;

#[tokio::test]
async fn syncs_every_ingested_document_exactly_once_in_batches() {
    let env = Env::postgres().await.set("BATCH_SIZE", 100);
    let docs: Vec<Document> = (0..1234).map(article).collect();
    let ids = hex_ids(&docs);
    env.insert(docs).await;
    // Not ingested: never touched.
    env.insert(vec![
        doc! {"_id": ObjectId::new(), "status": "draft", "timestamp": "2024-01-01T00:00:00Z"},
        doc! {"_id": ObjectId::new(), "status": "processed", "timestamp": "2024-01-01T00:00:00Z"},
    ])
    .await;

    let f = env.function().await;
    let report = f.sync(Trigger::Cli).await;
    assert!(report.error.is_none(), "{:?}", report.error);
    assert_eq!((report.synced.processed, report.synced.failed), (1234, 0));
    assert_eq!(env.count(doc! {"status": "draft"}).await, 1);
    assert_eq!(env.count(doc! {"status": "processed"}).await, 1235);
    let counts = env.row_counts().await;
    assert_eq!(counts.len(), 1234);
    assert!(ids.iter().all(|id| counts.get(id) == Some(&1)));

    // The mapping, read back from JSONB.
    let (source, event_type, ts, payload, meta): (
        String,
        String,
        chrono::DateTime<chrono::Utc>,
        Value,
        Value,
    ) = hub_runtime::on_pool!(&env.store().await, |p| sqlx::query_as(
        "SELECT source, event_type, event_timestamp, payload, meta FROM reading_analytics \
             WHERE mongo_id = $1"
    )
    .bind(&ids[7])
    .fetch_one(p)
    .await
    .expect("row"));
    assert_eq!((source.as_str(), event_type.as_str()), ("web", "highlight"));
    assert_eq!(ts.timestamp_millis(), 1_700_000_007_000);
    assert_eq!(payload, json!({"n": 7, "text": "passage 7"}));
    assert_eq!(meta, json!({"tags": ["a", "b"]}));

    // A second run finds nothing; history has both.
    let again = f.sync(Trigger::Cli).await;
    assert_eq!((again.synced.processed, again.error.is_none()), (0, true));
    let history = env.history().await;
    assert_eq!(
        history,
        vec![
            ("success".to_owned(), 1234, 0, None),
            ("success".to_owned(), 0, 0, None)
        ]
    );
}

#[tokio::test]
async fn bson_types_arrive_as_documented_json() {
    let env = Env::postgres().await;
    let id = ObjectId::from_str("65f1c0ffee0000000000abcd").expect("oid");
    env.insert(vec![doc! {
        "_id": id,
        "timestamp": "2024-05-01T14:00:00+02:00",
        "source": "api",
        "payload": {
            "price": Bson::Decimal128(Decimal128::from_str("19.990").expect("dec")),
            "ref": id,
            "at": mongodb::bson::DateTime::from_millis(1_714_564_800_123),
            "blob": Bson::Binary(mongodb::bson::Binary {
                subtype: mongodb::bson::spec::BinarySubtype::Generic,
                bytes: b"hi!".to_vec(),
            }),
            "big": 9_007_199_254_740_993_i64,
            "nested": [{"a": [1, 2.5, null, true]}],
        },
        "status": "ingested",
    }])
    .await;
    let report = env.function().await.sync(Trigger::Cli).await;
    assert_eq!(report.synced.processed, 1, "{:?}", report.error);
    let (payload, meta, event_type): (Value, Option<Value>, Option<String>) =
        hub_runtime::on_pool!(&env.store().await, |p| sqlx::query_as(
            "SELECT payload, meta, event_type FROM reading_analytics WHERE mongo_id = $1"
        )
        .bind(id.to_hex())
        .fetch_one(p)
        .await
        .expect("row"));
    assert_eq!(
        payload,
        json!({
            "price": "19.990",
            "ref": "65f1c0ffee0000000000abcd",
            "at": "2024-05-01T12:00:00.123Z",
            "blob": "aGkh",
            "big": 9_007_199_254_740_993_i64,
            "nested": [{"a": [1, 2.5, null, true]}],
        })
    );
    assert_eq!((meta, event_type), (None, None), "absent fields are NULL");
}

#[tokio::test]
async fn sync_max_docs_caps_one_run() {
    let env = Env::postgres()
        .await
        .set("BATCH_SIZE", 100)
        .set("SYNC_MAX_DOCS", 250);
    let docs: Vec<Document> = (0..400).map(article).collect();
    let ids = hex_ids(&docs);
    env.insert(docs).await;
    let f = env.function().await;
    assert_eq!(f.sync(Trigger::Cli).await.synced.processed, 250);
    assert_eq!(env.count(doc! {"status": "ingested"}).await, 150);
    // Oldest first: the first 250 inserted went first.
    let counts = env.row_counts().await;
    assert!(ids[..250].iter().all(|id| counts.contains_key(id)));
    assert_eq!(f.sync(Trigger::Cli).await.synced.processed, 150);
    env.assert_exactly_once(&ids).await;
}

/// A hook that parks the run forever at the `nth` time it reaches `step`, after telling the
/// test it got there.
fn park_at(step: Step, nth: usize, reached: Arc<Notify>) -> reading_sync::StepHook {
    let seen = Arc::new(AtomicUsize::new(0));
    Arc::new(move |s| {
        let park = s == step && seen.fetch_add(1, Ordering::SeqCst) + 1 == nth;
        let reached = reached.clone();
        async move {
            if park {
                reached.notify_one();
                std::future::pending::<()>().await;
            }
        }
        .boxed()
    })
}

#[tokio::test]
async fn a_run_killed_at_any_step_loses_nothing_and_duplicates_nothing() {
    for step in [Step::Claimed, Step::Committed, Step::Marked] {
        let env = Env::postgres().await.set("BATCH_SIZE", 100);
        let docs: Vec<Document> = (0..350).map(article).collect();
        let ids = hex_ids(&docs);
        env.insert(docs).await;

        let reached = Arc::new(Notify::new());
        let f = ReadingSync::with_step_hook(env.context().await, park_at(step, 2, reached.clone()))
            .expect("config");
        let run = tokio::spawn(async move { f.sync(Trigger::Cli).await });
        tokio::time::timeout(std::time::Duration::from_secs(30), reached.notified())
            .await
            .unwrap_or_else(|_| panic!("{step:?}: the run never reached the step"));
        run.abort();
        assert!(run.await.expect_err("aborted").is_cancelled());

        // What the crash left: the second batch is claimed; after the commit its rows exist.
        assert_eq!(
            env.count(doc! {"status": "processing"}).await,
            if step == Step::Marked { 0 } else { 100 },
            "{step:?}"
        );
        let stored = env.row_counts().await.len();
        let want = if step == Step::Claimed { 100 } else { 200 };
        assert_eq!(stored, want, "{step:?}: rows after the crash");

        // The next run, once the claims have timed out, finishes the job.
        let env = env.set("CLAIM_TIMEOUT_SECS", 1);
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let report = env.function().await.sync(Trigger::Cli).await;
        assert!(report.error.is_none(), "{step:?}: {:?}", report.error);
        env.assert_exactly_once(&ids).await;
        // ... and closes the dead run's history row instead of leaving it `running` forever.
        let history = env.history().await;
        assert_eq!(history.len(), 2, "{step:?}: {history:?}");
        assert_eq!(history[0].0, "failure", "{step:?}: {history:?}");
        assert!(
            history[0]
                .3
                .as_deref()
                .is_some_and(|m| m.starts_with("abandoned")),
            "{step:?}: {history:?}"
        );
        assert_eq!(history[1].0, "success", "{step:?}: {history:?}");
    }
}

#[tokio::test]
async fn claims_younger_than_the_timeout_are_left_alone() {
    let env = Env::postgres().await.set("BATCH_SIZE", 10);
    let docs: Vec<Document> = (0..30).map(article).collect();
    env.insert(docs).await;
    let reached = Arc::new(Notify::new());
    let f = ReadingSync::with_step_hook(
        env.context().await,
        park_at(Step::Claimed, 1, reached.clone()),
    )
    .expect("config");
    let run = tokio::spawn(async move { f.sync(Trigger::Cli).await });
    reached.notified().await;
    // Another runner with the default 600 s timeout takes only what nobody holds.
    let other = env.function().await.sync(Trigger::Cli).await;
    assert_eq!(other.synced.processed, 20);
    assert_eq!(env.count(doc! {"status": "processing"}).await, 10);
    // Nor is the history row of the run still working.
    let statuses: Vec<String> = env.history().await.into_iter().map(|h| h.0).collect();
    assert_eq!(statuses, ["running", "success"]);
    run.abort();
}

#[tokio::test]
async fn two_runners_at_once_never_process_a_document_twice() {
    let env = Env::postgres().await.set("BATCH_SIZE", 50);
    let docs: Vec<Document> = (0..2000).map(article).collect();
    let ids = hex_ids(&docs);
    env.insert(docs).await;
    let (a, b) = (env.function().await, env.function().await);
    let (ra, rb) = tokio::join!(a.sync(Trigger::Cli), b.sync(Trigger::Lambda));
    assert!(ra.error.is_none() && rb.error.is_none(), "{ra:?} {rb:?}");
    assert_eq!(
        ra.synced.processed + rb.synced.processed,
        2000,
        "each document processed by exactly one runner ({} + {})",
        ra.synced.processed,
        rb.synced.processed
    );
    env.assert_exactly_once(&ids).await;
}

#[tokio::test]
async fn malformed_documents_are_dead_lettered_without_blocking_the_batch() {
    let env = Env::postgres().await;
    let good: Vec<Document> = (0..5).map(article).collect();
    let good_ids = hex_ids(&good);
    let no_ts = ObjectId::new();
    let bad = vec![
        doc! {"_id": no_ts, "status": "ingested", "source": "web"},
        doc! {"_id": ObjectId::new(), "status": "ingested", "timestamp": "last tuesday"},
        doc! {"_id": ObjectId::new(), "status": "ingested", "timestamp": "2024-01-01T00:00:00Z", "source": 42},
        doc! {"_id": ObjectId::new(), "status": "ingested", "timestamp": "2024-01-01T00:00:00Z", "payload": {"t": "nul\0byte"}},
        doc! {"_id": "x".repeat(2000), "status": "ingested", "timestamp": "2024-01-01T00:00:00Z"},
    ];
    let mut all = good.clone();
    all.splice(2..2, bad);
    env.insert(all).await;

    let report = env.function().await.sync(Trigger::Cli).await;
    assert!(report.error.is_none(), "{:?}", report.error);
    assert_eq!((report.synced.processed, report.synced.failed), (5, 5));
    let counts = env.row_counts().await;
    assert_eq!(counts.len(), 5);
    assert!(good_ids.iter().all(|id| counts.contains_key(id)));
    assert_eq!(env.count(doc! {"status": "failed"}).await, 5);
    assert_eq!(env.count(doc! {"status": "processed"}).await, 5);

    let dead: Vec<(String, String, String)> = hub_runtime::on_pool!(&env.store().await, |p| {
        sqlx::query_as(
            "SELECT mongo_id, error, document FROM reading_sync_dead_letters ORDER BY error",
        )
        .fetch_all(p)
        .await
        .expect("dead letters")
    });
    let errors: Vec<&str> = dead.iter().map(|d| d.1.as_str()).collect();
    assert_eq!(dead.len(), 5, "{errors:?}");
    for want in [
        "bytes long as a key",
        "no timestamp",
        "not an ISO-8601",
        "source must be a string",
        "NUL",
    ] {
        assert!(
            errors.iter().any(|e| e.contains(want)),
            "{want} in {errors:?}"
        );
    }
    let long_id = dead
        .iter()
        .find(|d| d.1.contains("bytes long"))
        .expect("over-long id");
    assert!(long_id.0.starts_with("sha256:"), "{}", long_id.0);
    let raw: Value = serde_json::from_str(
        &dead
            .iter()
            .find(|d| d.0 == no_ts.to_hex())
            .expect("no ts")
            .2,
    )
    .expect("document is JSON");
    assert_eq!(raw["source"], "web", "the raw document is kept: {raw}");

    // Fixed at the source and set back to ingested: synced, and its dead letter cleared.
    env.collection()
        .await
        .update_many(
            doc! {"_id": no_ts},
            doc! {"$set": {"status": "ingested", "timestamp": "2024-02-02T00:00:00Z"}},
        )
        .await
        .expect("fix document");
    let report = env.function().await.sync(Trigger::Cli).await;
    assert_eq!((report.synced.processed, report.synced.failed), (1, 0));
    assert_eq!(env.row_counts().await.get(&no_ts.to_hex()), Some(&1));
    let left: (i64,) = hub_runtime::on_pool!(&env.store().await, |p| {
        sqlx::query_as("SELECT COUNT(*) FROM reading_sync_dead_letters")
            .fetch_one(p)
            .await
            .expect("count")
    });
    assert_eq!(left.0, 4);
}

#[tokio::test]
async fn mongodb_unreachable_fails_the_run_clearly_and_marks_nothing() {
    let mut env = Env::postgres().await.set("MONGO_TIMEOUT_SECS", 1);
    env.mongo.stop();
    let report = env.function().await.sync(Trigger::Schedule).await;
    let err = report.error.expect("the run fails");
    assert!(matches!(err, SyncError::Mongo(_)), "{err}");
    let history = env.history().await;
    assert_eq!(history.len(), 1);
    let (status, processed, _, message) = &history[0];
    assert_eq!((status.as_str(), *processed), ("failure", 0));
    assert!(
        message.as_deref().unwrap_or("").starts_with("MongoDB: "),
        "history says why: {message:?}"
    );
    assert!(env.row_counts().await.is_empty());
}

#[tokio::test]
async fn database_unreachable_marks_nothing() {
    let env = Env::postgres().await;
    env.insert((0..3).map(article).collect()).await;
    let f = env.function().await;
    assert_eq!(f.sync(Trigger::Cli).await.synced.processed, 3);

    // The database goes away between runs; new documents arrive.
    env.insert((3..53).map(article).collect()).await;
    env.db.as_ref().expect("postgres").drop_now().await;
    let report = f.sync(Trigger::Cli).await;
    let err = report.error.expect("the run fails");
    assert!(matches!(err, SyncError::Store(_)), "{err}");
    assert_eq!(report.synced.processed, 0);
    // Claimed, not written, given back at once: nothing processed, nothing left claimed.
    assert_eq!(env.count(doc! {"status": "ingested"}).await, 50);
    assert_eq!(env.count(doc! {"status": "processing"}).await, 0);
    assert_eq!(env.count(doc! {"status": "processed"}).await, 3);
}

#[tokio::test]
async fn works_on_the_embedded_sqlite_store() {
    let env = Env::sqlite().set("BATCH_SIZE", 40);
    assert!(env.db.is_none() && env.data.path().exists());
    let docs: Vec<Document> = (0..100).map(article).collect();
    let ids = hex_ids(&docs);
    env.insert(docs).await;
    env.insert(vec![doc! {"_id": "bad", "status": "ingested"}])
        .await;
    let f = env.function().await;
    let report = f.sync(Trigger::Cli).await;
    assert!(report.error.is_none(), "{:?}", report.error);
    assert_eq!((report.synced.processed, report.synced.failed), (100, 1));
    let counts = env.row_counts().await;
    assert_eq!(counts.len(), 100);
    assert!(ids.iter().all(|id| counts.get(id) == Some(&1)));
    let payload: (String,) = hub_runtime::on_pool!(&env.store().await, |p| sqlx::query_as(
        "SELECT payload FROM reading_analytics WHERE mongo_id = $1"
    )
    .bind(&ids[3])
    .fetch_one(p)
    .await
    .expect("row"));
    assert_eq!(
        serde_json::from_str::<Value>(&payload.0).expect("json text"),
        json!({"n": 3, "text": "passage 3"})
    );
    assert_eq!(env.history().await[0].0, "success");
}
