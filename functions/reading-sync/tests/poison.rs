//! Documents that used to stop every sync, or overwrite other documents' rows: ids PostgreSQL
//! cannot index or store, ids of other types that spell the same text, rows the database
//! refuses, and batches too big for one MongoDB reply.

mod common;

use common::{Env, article, hex_ids};
use hub_runtime::Trigger;
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{Document, doc};
use serde_json::Value;
use std::collections::HashMap;

const TS: &str = "2024-05-01T12:00:00Z";

/// `mongo_id` → error, from `reading_sync_dead_letters`.
async fn dead_letters(env: &Env) -> HashMap<String, String> {
    let rows: Vec<(String, String)> = hub_runtime::on_pool!(&env.store().await, |p| {
        sqlx::query_as("SELECT mongo_id, error FROM reading_sync_dead_letters")
            .fetch_all(p)
            .await
            .expect("dead letters")
    });
    rows.into_iter().collect()
}

#[tokio::test]
async fn ids_postgres_cannot_store_are_dead_lettered_and_the_rest_sync() {
    let env = Env::postgres().await.set("BATCH_SIZE", 10);
    let good: Vec<Document> = (0..1000).map(article).collect();
    let ids = hex_ids(&good);
    let long = "x".repeat(3000);
    let mut all = good;
    all.insert(
        3,
        doc! {"_id": "nul\0id", "status": "ingested", "timestamp": TS},
    );
    all.insert(
        500,
        doc! {"_id": &long, "status": "ingested", "timestamp": TS},
    );
    env.insert(all).await;

    let report = env.function().await.sync(Trigger::Cli).await;
    assert!(report.error.is_none(), "{:?}", report.error);
    assert_eq!((report.synced.processed, report.synced.failed), (1000, 2));
    let counts = env.row_counts().await;
    assert_eq!(counts.len(), 1000);
    assert!(ids.iter().all(|id| counts.get(id) == Some(&1)));
    assert_eq!(env.count(doc! {"status": "failed"}).await, 2);
    assert_eq!(env.count(doc! {"status": "ingested"}).await, 0);

    let dead = dead_letters(&env).await;
    assert_eq!(dead.len(), 2, "{dead:?}");
    for (key, error) in &dead {
        assert!(key.starts_with("sha256:") && key.len() == 71, "{key}");
        assert!(
            error.contains("NUL") || error.contains("3000 bytes"),
            "{error}"
        );
    }
    // A second run has nothing left to stumble on.
    let again = env.function().await.sync(Trigger::Cli).await;
    assert!(again.error.is_none(), "{:?}", again.error);
    assert_eq!((again.synced.processed, again.synced.failed), (0, 0));
}

/// A rule of the database's own refuses some rows: those are dead-lettered with the database's
/// reason, every other row of their batches commits, and the run succeeds. On PostgreSQL a
/// CHECK constraint, on SQLite a trigger (SQLite cannot add a constraint to a table).
async fn rows_the_database_refuses_are_isolated(env: Env) {
    let f = env.function().await;
    assert!(
        f.sync(Trigger::Cli).await.error.is_none(),
        "creates the tables"
    );
    let rule = match env.db {
        Some(_) => {
            "ALTER TABLE reading_analytics ADD CONSTRAINT no_poison CHECK (source <> 'poison')"
        }
        None => {
            "CREATE TRIGGER no_poison BEFORE INSERT ON reading_analytics \
             WHEN NEW.source = 'poison' BEGIN SELECT RAISE(ABORT, 'no_poison'); END"
        }
    };
    hub_runtime::on_pool!(&env.store().await, |p| sqlx::query(rule)
        .execute(p)
        .await
        .map(|_| ())
        .expect("add the rule"));
    let mut docs: Vec<Document> = (0..120).map(article).collect();
    let mut poisoned = Vec::new();
    for i in [0, 49, 50, 77, 119] {
        docs[i].insert("source", "poison");
        poisoned.push(docs[i].get_object_id("_id").expect("oid").to_hex());
    }
    let ids = hex_ids(&docs);
    env.insert(docs).await;

    let report = f.sync(Trigger::Cli).await;
    assert!(report.error.is_none(), "{:?}", report.error);
    assert_eq!((report.synced.processed, report.synced.failed), (115, 5));
    let counts = env.row_counts().await;
    assert_eq!(counts.len(), 115);
    for id in &ids {
        let want = if poisoned.contains(id) {
            None
        } else {
            Some(&1)
        };
        assert_eq!(counts.get(id), want, "{id}");
    }
    let dead = dead_letters(&env).await;
    assert_eq!(dead.len(), 5, "{dead:?}");
    for id in &poisoned {
        let error = dead.get(id).expect("dead letter per refused row");
        assert!(
            error.starts_with("the database refused the row: ") && error.contains("no_poison"),
            "{error}"
        );
    }
    assert_eq!(env.count(doc! {"status": "failed"}).await, 5);
    assert_eq!(env.count(doc! {"status": "processed"}).await, 115);
}

#[tokio::test]
async fn rows_postgres_refuses_are_isolated_and_the_rest_commit() {
    rows_the_database_refuses_are_isolated(Env::postgres().await.set("BATCH_SIZE", 50)).await;
}

#[tokio::test]
async fn rows_sqlite_refuses_are_isolated_and_the_rest_commit() {
    rows_the_database_refuses_are_isolated(Env::sqlite().set("BATCH_SIZE", 50)).await;
}

#[tokio::test]
async fn ids_of_other_types_spelling_the_same_text_never_share_a_row_or_dead_letter() {
    let env = Env::postgres().await;
    let oid = ObjectId::new();
    let first = doc! {"_id": oid, "status": "ingested", "timestamp": TS, "payload": {"who": "oid"}};
    env.insert(vec![first]).await;
    let f = env.function().await;
    assert_eq!(f.sync(Trigger::Cli).await.synced.processed, 1);

    // A later run: a string spelling the ObjectId's hex, an integer id that fails, the string
    // spelling that integer, and (same batch) another ObjectId with its string twin.
    let twin = ObjectId::new();
    env.insert(vec![
        doc! {"_id": oid.to_hex(), "status": "ingested", "timestamp": TS, "payload": {"who": "string"}},
        doc! {"_id": 42, "status": "ingested", "timestamp": "not a time"},
        doc! {"_id": "42", "status": "ingested", "timestamp": TS, "payload": {"who": "string 42"}},
        doc! {"_id": twin, "status": "ingested", "timestamp": TS, "payload": {"who": "twin oid"}},
        doc! {"_id": twin.to_hex(), "status": "ingested", "timestamp": TS, "payload": {"who": "twin string"}},
    ])
    .await;
    let report = f.sync(Trigger::Cli).await;
    assert!(report.error.is_none(), "{:?}", report.error);
    assert_eq!((report.synced.processed, report.synced.failed), (4, 1));

    let rows: Vec<(String, Value)> = hub_runtime::on_pool!(&env.store().await, |p| {
        sqlx::query_as("SELECT mongo_id, payload FROM reading_analytics")
            .fetch_all(p)
            .await
            .expect("rows")
    });
    let rows: HashMap<String, String> = rows
        .into_iter()
        .map(|(k, v)| (k, v["who"].as_str().unwrap_or_default().to_owned()))
        .collect();
    let want: HashMap<String, String> = [
        (oid.to_hex(), "oid"),
        (format!("string:{}", oid.to_hex()), "string"),
        ("42".to_owned(), "string 42"),
        (twin.to_hex(), "twin oid"),
        (format!("string:{}", twin.to_hex()), "twin string"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_owned()))
    .collect();
    assert_eq!(rows, want, "one row per document, none overwritten");
    let dead = dead_letters(&env).await;
    assert_eq!(
        dead.keys().collect::<Vec<_>>(),
        ["int:42"],
        "the integer's dead letter survives its string twin"
    );
    assert_eq!(env.count(doc! {"status": "processed"}).await, 5);
}

/// 500 documents of 34 KB (17 MB) and two of 15 MB among them, in one collection: more than
/// one MongoDB reply can carry. Every document syncs, in batches bounded by `BATCH_MAX_BYTES`.
#[tokio::test]
async fn batches_are_bounded_by_bytes_so_any_mix_of_sizes_syncs() {
    let env = Env::postgres().await;
    let text = |bytes: usize, n: usize| format!("{n:08}{}", "x".repeat(bytes - 8));
    let mut docs: Vec<Document> = (0..500)
        .map(|n| {
            let mut d = article(n);
            d.insert("payload", doc! {"text": text(34_000, n)});
            d
        })
        .collect();
    for n in [10, 400] {
        docs[n].insert("payload", doc! {"text": text(15_000_000, n)});
    }
    let ids = hex_ids(&docs);
    // One document at a time: a 15 MB document fills an insert by itself.
    // A 15 MB document fills an insert by itself.
    let mut chunk = Vec::new();
    for d in docs {
        let big = d
            .get_document("payload")
            .is_ok_and(|p| p.get_str("text").is_ok_and(|t| t.len() > 1_000_000));
        if big || chunk.len() == 100 {
            env.insert(std::mem::take(&mut chunk)).await;
        }
        if big {
            env.insert(vec![d]).await;
        } else {
            chunk.push(d);
        }
    }
    env.insert(chunk).await;
    let report = env.function().await.sync(Trigger::Cli).await;
    assert!(report.error.is_none(), "{:?}", report.error);
    assert_eq!((report.synced.processed, report.synced.failed), (500, 0));
    env.assert_exactly_once(&ids).await;
    let sizes: Vec<(String, i32)> = hub_runtime::on_pool!(&env.store().await, |p| {
        sqlx::query_as("SELECT mongo_id, length(payload->>'text') FROM reading_analytics")
            .fetch_all(p)
            .await
            .expect("sizes")
    });
    let big = sizes.iter().filter(|(_, n)| *n == 15_000_000).count();
    assert_eq!(big, 2, "the 15 MB payloads arrive whole");
}

#[tokio::test]
async fn a_batch_max_bytes_below_one_document_still_moves_one_at_a_time() {
    let env = Env::postgres().await.set("BATCH_MAX_BYTES", 1);
    let docs: Vec<Document> = (0..7).map(article).collect();
    let ids = hex_ids(&docs);
    env.insert(docs).await;
    let report = env.function().await.sync(Trigger::Cli).await;
    assert!(report.error.is_none(), "{:?}", report.error);
    assert_eq!(report.synced.processed, 7);
    env.assert_exactly_once(&ids).await;
}
