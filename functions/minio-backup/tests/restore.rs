//! Restores into a database against real PostgreSQL and the local target: a `postgres` set of
//! several databases, and a restore that pg_restore fails.

mod common;

use common::{
    Env, database_exists, drop_database, fingerprint, quiet, run, run_one, script, source_db,
};
use minio_backup::restore::RestoreTo;
use sqlx::Connection;
use tempfile::TempDir;

fn database_name(url: &str) -> &str {
    url.rsplit('/').next().expect("a database in the URL")
}

#[tokio::test]
async fn several_databases_of_one_server_are_backed_up_and_restored_one_by_one() {
    let (app, other) = (source_db().await, source_db().await);
    let mut conn = sqlx::PgConnection::connect(&other.url)
        .await
        .expect("connect");
    sqlx::raw_sql("DELETE FROM readings WHERE id % 2 = 0")
        .execute(&mut conn)
        .await
        .expect("make the two differ");
    let (a, o) = (database_name(&app.url), database_name(&other.url));
    let env = Env::new()
        .set("BACKUP_DATABASE_URL", &app.url)
        .set("BACKUP_DATABASES", format!("{a}, {o}"));
    let b = env.backup().await;
    let done = run(&b).await;
    let sets: Vec<&str> = done.iter().map(|(s, _)| s.as_str()).collect();
    let (sa, so) = (format!("postgres/{a}"), format!("postgres/{o}"));
    assert_eq!(sets, [sa.as_str(), so.as_str()]);
    for (set, r) in &done {
        let r = r.as_ref().unwrap_or_else(|e| panic!("{set}: {e}"));
        assert!(
            r.key.starts_with(&format!("{set}/")) && r.key.ends_with(".dump"),
            "{}",
            r.key
        );
    }
    assert_eq!(b.drill_sets(), [sa.clone(), so.clone()]);

    for (set, source) in [(&sa, &app.url), (&so, &other.url)] {
        let good = b.good_backups(set).await.expect("list");
        assert_eq!(good.len(), 1, "{set}: one good backup of its own");
        let name = format!("restored_{}", uuid::Uuid::new_v4().simple());
        b.restore(
            &good[0],
            &RestoreTo::Database(name.clone()),
            quiet(),
            quiet(),
        )
        .await
        .expect("restore");
        let restored = source.replace(database_name(source), &name);
        assert_eq!(
            fingerprint(&restored, "readings").await,
            fingerprint(source, "readings").await,
            "{set} restored from its own database"
        );
        drop_database(source, &name).await;
    }
}

#[tokio::test]
async fn databases_without_a_server_or_with_bad_names_are_refused() {
    for (env, says) in [
        (vec![("BACKUP_DATABASES", "app")], "BACKUP_DATABASE_URL"),
        (
            vec![
                ("BACKUP_DATABASE_URL", "postgres://u@127.0.0.1/postgres"),
                ("BACKUP_DATABASES", "App"),
            ],
            "postgres/App",
        ),
    ] {
        let mut e = Env::new();
        for (k, v) in &env {
            e = e.set(k, v);
        }
        let Err(err) = e.try_backup().await else {
            panic!("{env:?} is refused")
        };
        let err = err.to_string();
        assert!(err.contains(says), "{env:?}: {err}");
    }
}

#[tokio::test]
async fn a_restore_pg_restore_fails_reports_pg_restore_and_leaves_no_database() {
    let db = source_db().await;
    let tools = TempDir::new().expect("tools");
    // Stops reading early, as pg_restore does at its first error: the copy then meets a
    // closed pipe, which must not hide pg_restore's own message.
    let bad_restore = script(
        tools.path(),
        "pg_restore",
        "head -c 1000 >/dev/null; echo 'pg_restore: error: could not execute query: boom' >&2; exit 1",
    );
    let env = Env::new()
        .set("BACKUP_DATABASE_URL", &db.url)
        .set("BACKUP_PG_RESTORE", bad_restore.display());
    let b = env.backup().await;
    run_one(&b).await.expect("backup");
    let good = b.pick("postgres", None).await.expect("pick");
    let name = format!("restored_{}", uuid::Uuid::new_v4().simple());
    let err = b
        .restore(&good, &RestoreTo::Database(name.clone()), quiet(), quiet())
        .await
        .expect_err("pg_restore fails")
        .to_string();
    assert!(err.contains("could not execute query: boom"), "{err}");
    assert!(!err.to_lowercase().contains("broken pipe"), "{err}");
    assert!(err.contains("was dropped"), "{err}");
    assert!(
        !database_exists(&db.url, &name).await,
        "no half-filled {name} is left"
    );
}
