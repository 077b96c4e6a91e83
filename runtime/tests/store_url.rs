//! Which store `DATABASE_URL` selects, and errors that say what is wrong without echoing a
//! password; and that either store compares the hub's names and keys byte by byte, whatever
//! PostgreSQL database they live in (migration 0005), so lists ordered by them come out the same.

use chrono::{DateTime, Utc};
use hub_runtime::store::{RunQuery, RunRow};
use hub_runtime::{HubConfig, Source, Store};
use hub_testkit::TestDb;
use sqlx::Connection;
use std::collections::HashMap;

fn config(dir: &std::path::Path, url: Option<&str>) -> HubConfig {
    let mut env = HashMap::from([
        ("HUB_DATA_DIR".to_owned(), dir.display().to_string()),
        // No hub.toml from the working directory.
        ("HUB_CONFIG".to_owned(), "/dev/null".to_owned()),
    ]);
    if let Some(u) = url {
        env.insert("DATABASE_URL".to_owned(), u.to_owned());
    }
    HubConfig::from_source(&Source::from_parts(None, env).expect("source")).expect("config")
}

#[tokio::test]
async fn sqlite_urls_open_that_file_and_other_schemes_are_refused_by_name() {
    let dir = tempfile::TempDir::new().expect("dir");
    let file = dir.path().join("elsewhere/state.db");
    let store = Store::connect(&config(
        dir.path(),
        Some(&format!("sqlite://{}", file.display())),
    ))
    .await
    .expect("sqlite: URL");
    assert_eq!(store.backend(), "sqlite");
    assert!(file.is_file(), "the named file holds the store");
    assert!(!dir.path().join("hub.db").exists(), "not the default file");

    let err = Store::connect(&config(dir.path(), Some("mysql://hub:s3cret@db/hub")))
        .await
        .expect_err("unknown scheme");
    let text = err.to_string();
    assert!(
        text.contains("DATABASE_URL must start with postgres://, postgresql:// or sqlite:")
            && text.contains("\"mysql\"")
            && !text.contains("s3cret"),
        "{text}"
    );
}

#[tokio::test]
async fn sqlite_open_errors_name_the_path() {
    let dir = tempfile::TempDir::new().expect("dir");
    // A directory where the database file should be: SQLite cannot open it.
    std::fs::create_dir(dir.path().join("hub.db")).expect("mkdir");
    let err = Store::connect(&config(dir.path(), None))
        .await
        .expect_err("cannot open");
    let text = err.to_string();
    assert!(
        text.contains(&dir.path().join("hub.db").display().to_string()),
        "{text}"
    );
}

async fn store(dir: &std::path::Path, url: Option<&str>) -> Store {
    Store::connect(&config(dir, url)).await.expect("store")
}

fn run(id: &str, function: &str, started_at: DateTime<Utc>) -> RunRow {
    RunRow {
        id: id.to_owned(),
        function: function.to_owned(),
        trigger: "http".to_owned(),
        started_at,
        duration_ms: 1,
        outcome: "success".to_owned(),
        summary: String::new(),
    }
}

/// Function names in `outcome_counts` order, and run ids in list order (newest first, then id).
async fn orders(store: &Store) -> (Vec<String>, Vec<String>) {
    let at = Utc::now();
    // Upper case comes before lower case byte by byte ('Z' is 0x5a, 'a' 0x61); a language
    // collation compares letters first and case last.
    for (id, function) in [("R1", "Zeta"), ("r0", "alpha")] {
        store
            .insert_run(&run(id, function, at))
            .await
            .expect("insert");
    }
    let counts = store
        .outcome_counts(at - chrono::Duration::seconds(1))
        .await
        .expect("counts");
    let listed = store
        .list_runs(&RunQuery {
            limit: 10,
            ..RunQuery::default()
        })
        .await
        .expect("list");
    (
        counts.into_iter().map(|c| c.function).collect(),
        listed.into_iter().map(|r| r.id).collect(),
    )
}

#[tokio::test]
async fn names_sort_byte_by_byte_on_a_language_collated_postgres_as_on_sqlite() {
    let db = TestDb::create_with_icu_locale("en-US").await;
    // The database itself orders these names the language way, so the store's order below is
    // the migration's doing and not the server's default.
    let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    let (first,): (String,) =
        sqlx::query_as("SELECT x FROM (VALUES ('Zeta'), ('alpha')) AS v(x) ORDER BY x LIMIT 1")
            .fetch_one(&mut conn)
            .await
            .expect("order");
    assert_eq!(first, "alpha", "the test database sorts by en-US rules");

    let dir = tempfile::TempDir::new().expect("dir");
    let sqlite = orders(&store(dir.path(), None).await).await;
    let postgres = orders(&store(dir.path(), Some(&db.url)).await).await;
    let bytewise = (
        vec!["Zeta".to_owned(), "alpha".to_owned()],
        vec!["r0".to_owned(), "R1".to_owned()],
    );
    assert_eq!(sqlite, bytewise);
    assert_eq!(postgres, bytewise);
}
