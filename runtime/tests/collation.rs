//! The hub's names and keys compare byte by byte on both stores, whatever PostgreSQL database
//! they live in: lists ordered by them come out in the same order on SQLite and on a PostgreSQL
//! initialised with a language locale, and no index comparison goes through the language rules
//! (migration 0005).

use chrono::{DateTime, Utc};
use hub_runtime::store::{RunQuery, RunRow};
use hub_runtime::{HubConfig, Source, Store};
use hub_testkit::TestDb;
use sqlx::Connection;
use std::collections::HashMap;

async fn store(dir: &std::path::Path, url: Option<&str>) -> Store {
    let mut env = HashMap::from([
        ("HUB_DATA_DIR".to_owned(), dir.display().to_string()),
        ("HUB_CONFIG".to_owned(), "/dev/null".to_owned()),
    ]);
    if let Some(url) = url {
        env.insert("DATABASE_URL".to_owned(), url.to_owned());
    }
    let hub = HubConfig::from_source(&Source::from_parts(None, env).expect("source")).expect("hub");
    Store::connect(&hub).await.expect("store")
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
