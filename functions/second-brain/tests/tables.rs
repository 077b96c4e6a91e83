//! The tables as dashboards and the old job see them: a Grafana-style query after a sync, the
//! stats view, and the old job's tables adopted as they are.

mod common;

use common::{Backend, Env, count, day_body};
use hub_runtime::Store;

#[tokio::test(flavor = "multi_thread")]
async fn a_grafana_query_of_entries_per_day_by_category_returns_rows_after_a_sync() {
    let env = Env::new(Backend::Postgres).await;
    for n in (0..40).rev() {
        env.journal(n, &day_body(n));
    }
    let f = env.function().await;
    let report = f.run_once().await;
    assert!(report.error.is_none(), "{:?}", report.error);
    let Store::Postgres(pool) = f.store().await.expect("store") else {
        panic!("PostgreSQL")
    };
    // As a Grafana time-series panel writes it, with $__timeFilter(entry_date) expanded to
    // the last 30 days.
    let rows: Vec<(chrono::DateTime<chrono::Utc>, String, i64)> = sqlx::query_as(
        "SELECT date_trunc('day', entry_date::timestamptz) AS time, category AS metric, \
         COUNT(*) AS entries FROM second_brain \
         WHERE entry_date::timestamptz BETWEEN NOW() - INTERVAL '30 days' AND NOW() \
         GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .fetch_all(pool)
    .await
    .expect("the panel's query runs");
    // Days 0–29 back, or 1–30 depending on the hour: 30 days × two categories.
    assert!(rows.len() >= 58 && rows.len() <= 62, "{} rows", rows.len());
    assert!(
        rows.iter()
            .all(|(_, c, n)| (c == "project" || c == "area") && *n == 1)
    );

    let stats: Vec<(String, i64)> =
        sqlx::query_as("SELECT category, entry_count FROM second_brain_stats ORDER BY category")
            .fetch_all(pool)
            .await
            .expect("the view");
    assert_eq!(stats, [("area".to_owned(), 40), ("project".to_owned(), 40)]);
    let tags: Vec<Vec<String>> =
        sqlx::query_scalar("SELECT tags FROM second_brain WHERE category = 'project' LIMIT 1")
            .fetch_all(pool)
            .await
            .expect("tags");
    assert_eq!(tags, [vec!["database".to_owned()]], "a real TEXT[]");
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_keeps_tags_as_json_and_the_view_counts_categories() {
    let env = Env::new(Backend::Sqlite).await;
    env.journal(2, &day_body(2));
    let f = env.function().await;
    assert!(f.run_once().await.error.is_none());
    let Store::Sqlite(pool) = f.store().await.expect("store") else {
        panic!("SQLite")
    };
    let tags: Vec<String> = sqlx::query_scalar("SELECT tags FROM second_brain ORDER BY id")
        .fetch_all(pool)
        .await
        .expect("tags");
    assert_eq!(tags, ["[\"database\"]", "[\"random\"]"]);
    let stats: Vec<(String, i64)> =
        sqlx::query_as("SELECT category, entry_count FROM second_brain_stats ORDER BY category")
            .fetch_all(pool)
            .await
            .expect("the view");
    assert_eq!(stats, [("area".to_owned(), 1), ("project".to_owned(), 1)]);
}

/// The old job's DDL: a 32-bit id, VARCHAR columns, and an embedding column of pgvector's
/// `vector(1536)` where the extension is installed. Where it is not (as on these machines),
/// the column is created as `REAL[]`: what matters is that the hub never names it.
async fn old_tables(pool: &sqlx::PgPool) -> &'static str {
    let has_vector: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector')",
    )
    .fetch_one(pool)
    .await
    .expect("extensions");
    let embedding = if has_vector {
        sqlx::query("CREATE EXTENSION IF NOT EXISTS vector")
            .execute(pool)
            .await
            .expect("pgvector");
        "vector(1536)"
    } else {
        "REAL[]"
    };
    sqlx::raw_sql(&format!(
        "CREATE TABLE second_brain (
            id SERIAL PRIMARY KEY,
            entry_date DATE NOT NULL,
            content TEXT NOT NULL,
            category VARCHAR(50),
            source_repo VARCHAR(255),
            origin_type VARCHAR(50) DEFAULT 'journal',
            tags TEXT[],
            context_string TEXT,
            checksum VARCHAR(64) UNIQUE,
            token_count INTEGER,
            embedding {embedding},
            created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
        );
        CREATE TABLE second_brain_sync_history (
            id SERIAL PRIMARY KEY,
            start_time TIMESTAMP WITH TIME ZONE NOT NULL,
            end_time TIMESTAMP WITH TIME ZONE,
            status VARCHAR(20) NOT NULL,
            processed_count INTEGER DEFAULT 0,
            error_message TEXT
        );
        CREATE VIEW second_brain_stats AS
            SELECT category, COUNT(*) AS total_entries FROM second_brain GROUP BY category;
        INSERT INTO second_brain (entry_date, content, category, source_repo, tags,
            context_string, checksum, token_count)
        VALUES (CURRENT_DATE - 10, 'an entry the old job stored', 'area', 'owner/journal',
            ARRAY['random'], 'Date: … | Content: an entry the old job stored',
            '00000000000000000000000000000000000000000000000000000000000000aa', 6);"
    ))
    .execute(pool)
    .await
    .expect("the old job's tables");
    embedding
}

#[tokio::test(flavor = "multi_thread")]
async fn the_old_jobs_tables_are_adopted_with_their_rows_embedding_and_view() {
    let env = Env::new(Backend::Postgres).await;
    let db = env.db.as_ref().expect("database");
    let admin = sqlx::PgPool::connect(&db.url).await.expect("connect");
    let embedding = old_tables(&admin).await;
    eprintln!("old embedding column created as {embedding}");
    if embedding == "REAL[]" {
        sqlx::query("UPDATE second_brain SET embedding = ARRAY[0.25, 0.5]")
            .execute(&admin)
            .await
            .expect("embedding");
    }
    // Older than the stored row: not read again. Newer: stored beside it.
    env.journal(20, "## Area\n- too old to be read\n");
    env.journal(3, &day_body(3));
    let f = env.function().await;
    let report = f.run_once().await;
    assert!(report.error.is_none(), "{:?}", report.error);
    assert_eq!(report.synced.processed, 2);
    let store = f.store().await.expect("store");
    assert_eq!(count(store).await, 3);
    let old: (String, i32, Option<String>) =
        sqlx::query_as("SELECT content, id, embedding::text FROM second_brain ORDER BY id LIMIT 1")
            .fetch_one(&admin)
            .await
            .expect("old row");
    assert_eq!(old.0, "an entry the old job stored");
    assert_eq!(old.1, 1);
    if embedding == "REAL[]" {
        assert_eq!(
            old.2.as_deref(),
            Some("{0.25,0.5}"),
            "the embedding is untouched"
        );
    }
    let view: Vec<(String, i64)> =
        sqlx::query_as("SELECT category, total_entries FROM second_brain_stats ORDER BY 1")
            .fetch_all(&admin)
            .await
            .expect("the old view is still the old view");
    assert_eq!(view, [("area".to_owned(), 2), ("project".to_owned(), 1)]);
    let history: Vec<(String, i32)> =
        sqlx::query_as("SELECT status, processed_count FROM second_brain_sync_history")
            .fetch_all(&admin)
            .await
            .expect("history");
    assert_eq!(history, [("success".to_owned(), 2)]);
    admin.close().await;
}
