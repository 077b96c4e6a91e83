//! The harness of reading-sync's tests: a PoloDB server and a PostgreSQL database (or the
//! embedded SQLite store) per test, and the documents the seed's ingesters write.
#![allow(dead_code)] // each test file uses its own part of the harness

use hub_runtime::{Context, HubConfig, Source, Store, Trigger};
use hub_testkit::{MongoServer, TestDb};
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{Document, doc};
use mongodb::{Client, Collection};
use reading_sync::ReadingSync;
use std::collections::HashMap;
use tempfile::TempDir;

pub const COLLECTION: &str = "articles";

/// One test's servers and settings.
pub struct Env {
    pub mongo: MongoServer,
    pub db: Option<TestDb>,
    pub data: TempDir,
    pub mongo_db: String,
    pub settings: HashMap<String, String>,
}

impl Env {
    pub async fn postgres() -> Self {
        Self::new(Some(TestDb::create().await))
    }

    pub fn sqlite() -> Self {
        Self::new(None)
    }

    pub fn new(db: Option<TestDb>) -> Self {
        let mongo = MongoServer::start();
        let mongo_db = format!("reading_{}", ObjectId::new().to_hex());
        let data = TempDir::new().expect("data dir");
        let mut settings = HashMap::from([
            ("MONGO_URI".to_owned(), mongo.uri()),
            ("MONGO_DB".to_owned(), mongo_db.clone()),
            ("HUB_DATA_DIR".to_owned(), data.path().display().to_string()),
            ("MONGO_TIMEOUT_SECS".to_owned(), "5".to_owned()),
        ]);
        if let Some(db) = &db {
            settings.insert("DATABASE_URL".into(), db.url.clone());
        }
        Self {
            mongo,
            db,
            data,
            mongo_db,
            settings,
        }
    }

    pub fn set(mut self, key: &str, value: impl ToString) -> Self {
        self.settings.insert(key.into(), value.to_string());
        self
    }

    pub async fn context(&self) -> Context {
        let source = Source::from_parts(None, self.settings.clone()).expect("source");
        let hub = HubConfig::from_source(&source).expect("hub config");
        let store = Store::connect(&hub).await.expect("store");
        Context::new(source, hub, store, Trigger::Http)
    }

    pub async fn function(&self) -> ReadingSync {
        ReadingSync::from_context(self.context().await).expect("reading-sync config")
    }

    pub async fn store(&self) -> Store {
        self.context().await.store
    }

    pub async fn collection(&self) -> Collection<Document> {
        Client::with_uri_str(self.mongo.uri())
            .await
            .expect("mongo client")
            .database(&self.mongo_db)
            .collection(COLLECTION)
    }

    pub async fn insert(&self, docs: Vec<Document>) {
        self.mongo.seed(&self.mongo_db, COLLECTION, docs).await;
    }

    pub async fn count(&self, filter: Document) -> u64 {
        self.mongo.count(&self.mongo_db, COLLECTION, filter).await
    }

    /// `mongo_id` → number of rows, over the whole table.
    pub async fn row_counts(&self) -> HashMap<String, i64> {
        let sql = "SELECT mongo_id, COUNT(*) FROM reading_analytics GROUP BY mongo_id";
        let rows: Vec<(String, i64)> = hub_runtime::on_pool!(&self.store().await, |p| {
            sqlx::query_as(sql).fetch_all(p).await.expect("count rows")
        });
        rows.into_iter().collect()
    }

    /// Every id in `ids` is stored exactly once, nothing else is, and each is `processed`.
    pub async fn assert_exactly_once(&self, ids: &[String]) {
        let counts = self.row_counts().await;
        assert_eq!(
            counts.len(),
            ids.len(),
            "rows for exactly the synced documents"
        );
        for id in ids {
            assert_eq!(counts.get(id), Some(&1), "{id} stored exactly once");
        }
        assert_eq!(
            self.count(doc! {"status": "processed"}).await,
            ids.len() as u64,
            "every document marked processed"
        );
        assert_eq!(self.count(doc! {"status": "processing"}).await, 0);
        assert_eq!(self.count(doc! {"status": "ingested"}).await, 0);
    }

    pub async fn history(&self) -> Vec<(String, i32, i32, Option<String>)> {
        let sql = "SELECT status, processed_count, failed_count, error_message \
                   FROM reading_sync_history ORDER BY id";
        hub_runtime::on_pool!(&self.store().await, |p| {
            sqlx::query_as(sql).fetch_all(p).await.expect("history")
        })
    }
}

/// An `ingested` document as the seed's ingesters write them.
pub fn article(n: usize) -> Document {
    doc! {
        "_id": ObjectId::new(),
        "source": if n % 2 == 0 { "kindle" } else { "web" },
        "event_type": "highlight",
        "timestamp": mongodb::bson::DateTime::from_millis(1_700_000_000_000 + n as i64 * 1000),
        "payload": {"n": n as i64, "text": format!("passage {n}")},
        "meta": {"tags": ["a", "b"]},
        "status": "ingested",
    }
}

pub fn hex_ids(docs: &[Document]) -> Vec<String> {
    docs.iter()
        .map(|d| d.get_object_id("_id").expect("ObjectId _id").to_hex())
        .collect()
}
