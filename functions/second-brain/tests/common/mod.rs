//! The harness of second-brain's tests: the GitHub stand-in, a PostgreSQL database (or the
//! embedded SQLite store) per test, and journal issues dated relative to today.
#![allow(dead_code)] // each test file uses its own part of the harness

use chrono::NaiveDate;
use hub_runtime::{Context, HubConfig, Source, Store, Trigger};
use hub_testkit::TestDb;
use hub_testkit::github::{GithubApi, NewIssue};
use second_brain::SecondBrain;
use std::collections::HashMap;
use tempfile::TempDir;

pub const REPO: &str = "owner/journal";
pub const TOKEN: &str = "ghp_testtoken0000000000000000000000000000";

pub use hub_testkit::Backend;

/// One test's servers and settings.
pub struct Env {
    pub github: GithubApi,
    pub db: Option<TestDb>,
    pub data: TempDir,
    pub settings: HashMap<String, String>,
}

impl Env {
    pub async fn new(backend: Backend) -> Self {
        let github = GithubApi::start(REPO).await;
        let db = backend.database().await;
        let data = TempDir::new().expect("data dir");
        let mut settings = HashMap::from([
            ("HUB_DATA_DIR".to_owned(), data.path().display().to_string()),
            ("JOURNAL_REPO".to_owned(), REPO.to_owned()),
            ("GITHUB_API_URL".to_owned(), github.url.clone()),
            ("GITHUB_TOKEN".to_owned(), TOKEN.to_owned()),
            ("GITHUB_TIMEOUT_SECS".to_owned(), "5".to_owned()),
        ]);
        if let Some(db) = &db {
            settings.insert("DATABASE_URL".into(), db.url.clone());
        }
        Self {
            github,
            db,
            data,
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

    pub async fn function(&self) -> SecondBrain {
        SecondBrain::from_context(&self.context().await).expect("second-brain config")
    }

    /// A journal issue titled `days_ago` days before today; returns its date.
    pub fn journal(&self, days_ago: i64, body: &str) -> NaiveDate {
        let date = today() - chrono::Duration::days(days_ago);
        self.github.add(NewIssue::journal(&date.to_string(), body));
        date
    }
}

pub fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
}

/// A day's journal with two entries, distinct per `n`.
pub fn day_body(n: i64) -> String {
    format!(
        "<!-- template -->\r\n## Project\r\n- day {n}: tuned a postgres index\r\n- [ ] a task\r\n\r\n## Area\r\n- ran {n} km 🏃\r\n"
    )
}

/// Rows of `second_brain` (the store's own count).
pub async fn count(store: &Store) -> i64 {
    hub_runtime::on_pool!(store, |pool| {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM second_brain")
            .fetch_one(pool)
            .await
            .expect("count")
    })
}

/// `(status, processed_count, error_message)` of each history row, oldest first.
pub async fn history(store: &Store) -> Vec<(String, i64, Option<String>)> {
    hub_runtime::on_pool!(store, |pool| {
        sqlx::query_as::<_, (String, i64, Option<String>)>(
            "SELECT status, CAST(processed_count AS BIGINT), error_message \
             FROM second_brain_sync_history ORDER BY id",
        )
        .fetch_all(pool)
        .await
        .expect("history")
    })
}
