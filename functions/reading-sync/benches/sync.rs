//! `make bench` (or `cargo bench -p reading-sync --bench sync`): sync N documents (default
//! 10,000; `BENCH_DOCS`) from PoloDB into PostgreSQL the hub's way (claimed batches, one
//! transaction and one `update_many` per batch) and the seed's way (one INSERT and one update per
//! document), against the same servers in the same run, and print docs/s for both. Then the
//! memory a sync of 15 MB documents takes: the process's peak RSS above where it started
//! (peak reset through `/proc/self/clear_refs` just before), next to `BATCH_MAX_BYTES`.

use hub_runtime::{Context, HubConfig, Source, Store, Trigger};
use hub_testkit::{MongoServer, TestDb};
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{Document, doc};
use mongodb::{Client, Collection};
use reading_sync::ReadingSync;
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn article(n: usize) -> Document {
    doc! {
        "_id": ObjectId::new(),
        "source": "kindle",
        "event_type": "highlight",
        "timestamp": mongodb::bson::DateTime::from_millis(1_700_000_000_000 + n as i64 * 1000),
        "payload": {"n": n as i64, "text": "It was the best of times, it was the worst of times", "page": 12, "loc": [101, 117]},
        "meta": {"device": "kindle-paperwhite", "tags": ["fiction", "classics"]},
        "status": "ingested",
    }
}

async fn seeded(client: &Client, n: usize) -> (String, Collection<Document>) {
    let db = format!("bench_{}", ObjectId::new().to_hex());
    let coll = client.database(&db).collection::<Document>("articles");
    let docs: Vec<Document> = (0..n).map(article).collect();
    for chunk in docs.chunks(1000) {
        coll.insert_many(chunk.to_vec()).await.expect("seed");
    }
    (db, coll)
}

async fn context(
    mongo: &MongoServer,
    db_url: &str,
    mongo_db: &str,
    data: &std::path::Path,
) -> Context {
    let env = HashMap::from([
        ("DATABASE_URL".to_owned(), db_url.to_owned()),
        ("MONGO_URI".to_owned(), mongo.uri()),
        ("MONGO_DB".to_owned(), mongo_db.to_owned()),
        ("HUB_DATA_DIR".to_owned(), data.display().to_string()),
    ]);
    let source = Source::from_parts(None, env).expect("source");
    let hub = HubConfig::from_source(&source).expect("hub");
    let store = Store::connect(&hub).await.expect("store");
    Context::new(source, hub, store, Trigger::Cli)
}

/// The seed's loop: read what is ingested, then per document one INSERT and one update.
/// Returns the documents done and the time spent in PostgreSQL and in MongoDB updates.
async fn seed_way(coll: &Collection<Document>, pool: &sqlx::PgPool) -> (usize, Duration, Duration) {
    let (mut in_pg, mut in_mongo) = (Duration::ZERO, Duration::ZERO);
    use futures::TryStreamExt;
    let docs: Vec<Document> = coll
        .find(doc! {"status": "ingested"})
        .sort(doc! {"_id": 1})
        .await
        .expect("find")
        .try_collect()
        .await
        .expect("read");
    for d in &docs {
        let r = reading_sync::transform::reading(d).expect("valid document");
        let clock = Instant::now();
        sqlx::query(
            "INSERT INTO reading_analytics (mongo_id, event_timestamp, source, event_type, \
             payload, meta) VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb)",
        )
        .bind(&r.mongo_id)
        .bind(r.event_timestamp)
        .bind(&r.source)
        .bind(&r.event_type)
        .bind(r.payload.map(|p| p.to_string()))
        .bind(r.meta.map(|m| m.to_string()))
        .execute(pool)
        .await
        .expect("insert");
        in_pg += clock.elapsed();
        let clock = Instant::now();
        // `update_one` on MongoDB; PoloDB's `update_one` updates every match, and `_id` is
        // unique, so `update_many` on it does the same one-document update.
        coll.update_many(
            doc! {"_id": d.get("_id").cloned().expect("_id")},
            doc! {"$set": {"status": "processed"}},
        )
        .await
        .expect("update");
        in_mongo += clock.elapsed();
    }
    (docs.len(), in_pg, in_mongo)
}

/// `VmRSS` or `VmHWM` (peak) of this process, in bytes.
fn proc_status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .expect("field in /proc/self/status")
        * 1024
}

/// Syncs `n` documents of `doc_bytes` each and returns (RSS before, peak RSS during the sync).
async fn big_documents(
    mongo: &MongoServer,
    client: &Client,
    n: usize,
    doc_bytes: usize,
) -> (u64, u64) {
    let db = TestDb::create().await;
    let mongo_db = format!("bench_big_{}", ObjectId::new().to_hex());
    let coll = client
        .database(&mongo_db)
        .collection::<Document>("articles");
    for i in 0..n {
        let mut d = article(i);
        d.insert("payload", doc! {"text": "z".repeat(doc_bytes)});
        coll.insert_one(d).await.expect("seed a big document");
    }
    let data = tempfile::TempDir::new().expect("data dir");
    let f = ReadingSync::from_context(context(mongo, &db.url, &mongo_db, data.path()).await)
        .expect("config");
    let before = proc_status_bytes("VmRSS:");
    // "5" resets the peak-RSS counter (VmHWM) to the current RSS.
    std::fs::write("/proc/self/clear_refs", "5").expect("reset peak RSS");
    let report = f.sync(Trigger::Cli).await;
    assert!(report.error.is_none(), "{:?}", report.error);
    assert_eq!(report.synced.processed as usize, n);
    (before, proc_status_bytes("VmHWM:"))
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

#[tokio::main]
async fn main() {
    // `cargo test --all-targets` runs bench targets too, without `--bench`: then only check
    // that the harness works, on a handful of documents.
    let benching = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("BENCH_DOCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 10_000 } else { 50 });
    let mongo = MongoServer::start();
    let client = Client::with_uri_str(mongo.uri()).await.expect("client");
    let data = tempfile::TempDir::new().expect("data dir");

    // The hub's way.
    let hub_db = TestDb::create().await;
    let (hub_mongo_db, hub_coll) = seeded(&client, n).await;
    let f =
        ReadingSync::from_context(context(&mongo, &hub_db.url, &hub_mongo_db, data.path()).await)
            .expect("config");
    let clock = Instant::now();
    let report = f.sync(Trigger::Cli).await;
    let hub_time = clock.elapsed();
    assert!(report.error.is_none(), "{:?}", report.error);
    assert_eq!(report.synced.processed as usize, n);
    let left: Vec<Document> = futures::TryStreamExt::try_collect(
        hub_coll
            .find(doc! {"status": "ingested"})
            .await
            .expect("find"),
    )
    .await
    .expect("read");
    assert!(left.is_empty(), "{} documents left", left.len());

    // The seed's way, same servers, its own databases; the same table, created the same way.
    let seed_db = TestDb::create().await;
    let (seed_mongo_db, seed_coll) = seeded(&client, n).await;
    let seed_ctx = context(&mongo, &seed_db.url, &seed_mongo_db, data.path()).await;
    reading_sync::sink::ensure_schema(&seed_ctx.store)
        .await
        .expect("schema");
    let Store::Postgres(pool) = &seed_ctx.store else {
        unreachable!("DATABASE_URL is PostgreSQL")
    };
    let clock = Instant::now();
    let (done, seed_pg, seed_mongo) = seed_way(&seed_coll, pool).await;
    let seed_time = clock.elapsed();
    assert_eq!(done, n);

    let (hub_rate, seed_rate) = (rate(n, hub_time), rate(n, seed_time));
    hub_testkit::bench::record("sync_docs_per_s", "hub", hub_rate);
    hub_testkit::bench::record("sync_docs_per_s", "seed-loop", seed_rate);
    println!("\nreading-sync: {n} documents, PoloDB → PostgreSQL on loopback\n");
    println!("| way | time | docs/s |");
    println!("|---|---|---|");
    println!(
        "| hub: claimed batches of 500, one transaction + one update_many each | {:.2} s | {:.0} |",
        hub_time.as_secs_f64(),
        hub_rate
    );
    println!(
        "| seed: one INSERT + one update per document | {:.2} s | {:.0} |",
        seed_time.as_secs_f64(),
        seed_rate
    );
    println!(
        "\nspeed-up: {:.1}× (aim ≥ 20×). The seed's time splits into {:.2} s of PostgreSQL \
         INSERTs ({:.0} docs/s alone) and {:.2} s of per-document MongoDB updates.",
        hub_rate / seed_rate,
        seed_pg.as_secs_f64(),
        rate(n, seed_pg),
        seed_mongo.as_secs_f64()
    );

    let (big_n, big_bytes) = if benching {
        (8, 15_000_000)
    } else {
        (2, 1_000_000)
    };
    let (before, peak) = big_documents(&mongo, &client, big_n, big_bytes).await;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "\nreading-sync memory: {big_n} documents of {:.1} MB, BATCH_MAX_BYTES 8 MiB: RSS {:.0} MiB \
         before, peak {:.0} MiB during the sync: {:.0} MiB above start, {:.1}× the document size",
        big_bytes as f64 / 1e6,
        mib(before),
        mib(peak),
        mib(peak.saturating_sub(before)),
        peak.saturating_sub(before) as f64 / big_bytes as f64
    );
}
