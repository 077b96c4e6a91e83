//! The restore drill against real PostgreSQL databases and the local target: the newest backup
//! restored into a scratch database, every table counted, the scratch database always dropped.

mod common;

use common::{Env, database_exists, run_one, script};
use hub_runtime::{Function, Trigger};
use hub_testkit::TestDb;
use serde_json::json;
use sqlx::Connection;
use tempfile::TempDir;

/// A database with two tables: 1,000 and 3 rows.
async fn source_db() -> TestDb {
    let db = TestDb::create().await;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    sqlx::raw_sql(
        "CREATE TABLE readings (id BIGINT PRIMARY KEY, payload JSONB);
         INSERT INTO readings SELECT g, jsonb_build_object('n', g) FROM generate_series(1, 1000) g;
         CREATE SCHEMA journal;
         CREATE TABLE journal.\"Notes\" (id SERIAL PRIMARY KEY, body TEXT NOT NULL);
         INSERT INTO journal.\"Notes\" (body) VALUES ('first'), ('second'), ('third');",
    )
    .execute(&mut conn)
    .await
    .expect("fill");
    db
}

#[tokio::test]
async fn a_drill_restores_the_newest_backup_counts_every_table_and_drops_the_copy() {
    let db = source_db().await;
    let env = Env::new().set("BACKUP_DATABASE_URL", &db.url);
    let b = env.backup().await;
    run_one(&b).await.expect("backup");
    assert_eq!(b.drill_sets(), vec!["postgres".to_owned()]);

    let d = b.drill("postgres").await.expect("drill");
    assert_eq!(
        d.tables,
        vec![
            ("journal.\"Notes\"".to_owned(), 3),
            ("public.readings".to_owned(), 1000)
        ]
    );
    assert_eq!(d.rows(), 1003);
    assert!(
        d.key.starts_with("postgres/") && d.key.ends_with(".dump"),
        "{}",
        d.key
    );
    assert!(
        !database_exists(&db.url, &d.database).await,
        "the scratch database {} is gone",
        d.database
    );

    // On its own as an invocation: a report that names what was checked.
    let report = b
        .invoke(Trigger::Cli, json!({"drill": true}))
        .await
        .expect("drill invocation");
    assert!(
        report.summary.contains("drill postgres:")
            && report.summary.contains("2 tables, 1003 rows"),
        "{}",
        report.summary
    );
    // Bad input is refused, not run.
    for bad in [
        json!({"drill": "yes"}),
        json!({"drill": true, "set": "nope"}),
    ] {
        let refused = b.invoke(Trigger::Cli, bad.clone()).await;
        assert!(
            matches!(refused, Err(hub_runtime::InvokeError::BadInput(_))),
            "{bad}: {refused:?}"
        );
    }
}

#[tokio::test]
async fn with_backup_drill_a_scheduled_run_ends_with_a_drill_and_other_runs_do_not() {
    let db = source_db().await;
    let env = Env::new()
        .set("BACKUP_DATABASE_URL", &db.url)
        .set("BACKUP_DRILL", "true");
    let b = env.backup().await;
    let scheduled = b
        .invoke(Trigger::Schedule, json!({}))
        .await
        .expect("scheduled run");
    assert!(
        scheduled.summary.contains("drill postgres:")
            && scheduled.summary.contains("2 tables, 1003 rows"),
        "{}",
        scheduled.summary
    );
    let by_hand = b.invoke(Trigger::Cli, json!({})).await.expect("run");
    assert!(!by_hand.summary.contains("drill"), "{}", by_hand.summary);
}

#[tokio::test]
async fn a_drill_whose_restore_fails_fails_clearly_and_leaves_no_scratch_database() {
    let db = source_db().await;
    let tools = TempDir::new().expect("tools");
    // A pg_restore that reads its input and then fails, like one that meets a damaged dump.
    let bad_restore = script(
        tools.path(),
        "pg_restore",
        "cat >/dev/null; echo 'pg_restore: error: could not read input file' >&2; exit 1",
    );
    let env = Env::new()
        .set("BACKUP_DATABASE_URL", &db.url)
        .set("BACKUP_PG_RESTORE", bad_restore.display());
    let b = env.backup().await;
    run_one(&b).await.expect("backup");

    let err = b
        .drill("postgres")
        .await
        .expect_err("the restore fails")
        .to_string();
    assert!(err.contains("could not read input file"), "{err}");
    let scratch = err
        .split_whitespace()
        .find_map(|w| w.strip_suffix(':').filter(|w| w.starts_with("hub_drill_")))
        .unwrap_or_else(|| panic!("the error names the scratch database: {err}"));
    assert!(
        !database_exists(&db.url, scratch).await,
        "{scratch} was dropped"
    );
    // As a scheduled run with BACKUP_DRILL, the failed drill fails the run.
    let env = env.set("BACKUP_DRILL", "true");
    let failed = env
        .backup()
        .await
        .invoke(Trigger::Schedule, json!({}))
        .await;
    assert!(
        matches!(&failed, Err(hub_runtime::InvokeError::Failed(m)) if m.contains("drill postgres:")),
        "{failed:?}"
    );
}

#[tokio::test]
async fn a_drill_of_a_directory_or_of_nothing_stored_says_why() {
    let db = source_db().await;
    let dir = TempDir::new().expect("dir");
    std::fs::write(dir.path().join("a.txt"), "a").expect("write");
    let env = Env::new()
        .set("BACKUP_DATABASE_URL", &db.url)
        .set("BACKUP_DIRS", format!("grafana={}", dir.path().display()));
    let b = env.backup().await;
    let err = b.drill("grafana").await.expect_err("a dir set").to_string();
    assert!(err.contains("restores pg_dump backups only"), "{err}");
    let err = b
        .drill("postgres")
        .await
        .expect_err("nothing stored yet")
        .to_string();
    assert!(err.contains("no good backup of postgres"), "{err}");
    let err = b.drill("nope").await.expect_err("no such set").to_string();
    assert!(err.contains("no backup set named"), "{err}");
}
