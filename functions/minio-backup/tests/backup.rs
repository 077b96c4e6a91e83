//! minio-backup against a real S3 server (Garage, one per test), real PostgreSQL databases and
//! real directories: round trips, the faults a backup must survive, retention.

mod common;

use chrono::{Duration, Utc};
use common::{Env, drop_database, fingerprint, quiet, run_one, script, source_db, write_tree};
use hub_runtime::store::RunQuery;
use hub_runtime::{InvokeError, Trigger};
use hub_testkit::GarageServer;
use minio_backup::restore::RestoreTo;
use minio_backup::{Backup, BackupError};
use sqlx::Connection;
use std::path::Path;
use tempfile::TempDir;

#[tokio::test]
async fn a_database_goes_to_s3_and_comes_back_the_same() {
    let (garage, db) = (GarageServer::start(), source_db().await);
    let env = Env::s3(&garage).set("BACKUP_DATABASE_URL", &db.url);
    let b = env.backup().await;
    let done = run_one(&b).await.expect("backup");
    assert!(
        done.key.starts_with("postgres/") && done.key.ends_with(".dump"),
        "{}",
        done.key
    );
    assert!(
        done.size > 1_000_000,
        "a 100k-row dump: {} bytes",
        done.size
    );

    let good = b.good_backups("postgres").await.expect("list");
    assert_eq!(good.len(), 1);
    let m = &good[0].manifest;
    assert_eq!(
        (m.size, m.sha256.as_str(), m.read_back),
        (done.size, done.sha256.as_str(), true)
    );
    assert!(
        m.tools
            .get("pg_dump")
            .is_some_and(|v| v.contains("pg_dump")),
        "{:?}",
        m.tools
    );

    let name = format!("restored_{}", uuid::Uuid::new_v4().simple());
    let picked = b.pick("postgres", None).await.expect("pick");
    b.restore(
        &picked,
        &RestoreTo::Database(name.clone()),
        quiet(),
        quiet(),
    )
    .await
    .expect("restore");
    let restored = db
        .url
        .replace(db.url.rsplit('/').next().expect("name"), &name);
    for table in ["readings", "notes"] {
        assert_eq!(
            fingerprint(&restored, table).await,
            fingerprint(&db.url, table).await,
            "{table} restored row for row"
        );
    }
    // A second restore into the same name changes nothing and says why.
    let again = b
        .restore(
            &picked,
            &RestoreTo::Database(name.clone()),
            quiet(),
            quiet(),
        )
        .await;
    assert!(
        matches!(&again, Err(BackupError::Restore(m)) if m.contains("exists")),
        "{again:?}"
    );
    drop_database(&db.url, &name).await;
}

#[tokio::test]
async fn a_directory_goes_to_the_local_target_and_comes_back_the_same() {
    let tree = TempDir::new().expect("tree");
    write_tree(tree.path());
    let env = Env::new().set("BACKUP_DIRS", format!("grafana={}", tree.path().display()));
    let b = env.backup().await;
    let done = run_one(&b).await.expect("backup");
    assert!(done.key.ends_with(".tar.zst"));
    // Only complete files in the target: the object and its manifest.
    let files: Vec<String> = walk(&env.local_dir());
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files.iter().all(|f| !f.contains(".partial-")), "{files:?}");

    let out = TempDir::new().expect("out");
    let into = out.path().join("restored");
    let good = b.pick("grafana", None).await.expect("pick");
    b.restore(&good, &RestoreTo::Dir(into.clone()), quiet(), quiet())
        .await
        .expect("restore");
    for f in ["grafana.db", "sub/a.txt", "sub/deeper/b.json"] {
        assert_eq!(
            std::fs::read(into.join(f)).expect(f),
            std::fs::read(tree.path().join(f)).expect(f),
            "{f}"
        );
    }
    assert_eq!(
        std::fs::read_link(into.join("link")).expect("link"),
        Path::new("sub/a.txt")
    );
    // Not into a directory that holds something.
    let again = b
        .restore(&good, &RestoreTo::Dir(into), quiet(), quiet())
        .await;
    assert!(
        matches!(&again, Err(BackupError::Restore(m)) if m.contains("not empty")),
        "{again:?}"
    );
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                dirs.push(e.path());
            } else {
                out.push(
                    e.path()
                        .strip_prefix(dir)
                        .expect("under")
                        .display()
                        .to_string(),
                );
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn a_pg_dump_killed_mid_stream_never_becomes_a_backup() {
    let (garage, db) = (GarageServer::start(), source_db().await);
    let tools = TempDir::new().expect("tools");
    // 20 MB of dump (past the first multipart part), then killed.
    let dump = script(
        tools.path(),
        "pg_dump",
        "case \"$1\" in --version) echo 'pg_dump (PostgreSQL) 15'; exit 0;; esac\n\
         head -c 20000000 /dev/urandom\nkill -9 $$",
    );
    let env = Env::s3(&garage)
        .set("BACKUP_DATABASE_URL", &db.url)
        .set("BACKUP_PG_DUMP", dump.display());
    let b = env.backup().await;
    let err = run_one(&b).await.expect_err("the dump failed");
    assert!(
        matches!(&err, BackupError::Source(m) if m.contains("pg_dump failed")),
        "{err}"
    );
    assert!(b.good_backups("postgres").await.expect("list").is_empty());
    // Nothing stored under the set, and the multipart upload was aborted, not left behind.
    assert!(b.target().list("postgres/").await.expect("list").is_empty());
    let leftover = b
        .target()
        .clean_incomplete(Utc::now() + Duration::days(2))
        .await
        .expect("list uploads");
    assert_eq!(leftover, 0, "no incomplete upload left");
}

#[tokio::test]
async fn s3_going_away_mid_upload_fails_the_run_and_the_next_one_succeeds() {
    let (mut garage, db) = (GarageServer::start(), source_db().await);
    let tools = TempDir::new().expect("tools");
    let slow = script(
        tools.path(),
        "pg_dump",
        "case \"$1\" in --version) echo 'pg_dump (PostgreSQL) 15'; exit 0;; esac\n\
         head -c 12000000 /dev/urandom\nsleep 3\nhead -c 12000000 /dev/urandom",
    );
    let slow_env = Env::s3(&garage)
        .set("BACKUP_DATABASE_URL", &db.url)
        .set("BACKUP_PG_DUMP", slow.display());
    let b = slow_env.backup().await;
    let running = tokio::spawn({
        let b = b.clone();
        async move { run_one(&b).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    garage.kill();
    let err = running.await.expect("join").expect_err("S3 went away");
    assert!(matches!(err, BackupError::Target(_)), "{err}");
    garage.restart();
    assert!(
        b.good_backups("postgres").await.expect("list").is_empty(),
        "nothing good"
    );
    // The next run, with the real pg_dump, goes through.
    let env = Env::s3(&garage).set("BACKUP_DATABASE_URL", &db.url);
    let b = env.backup().await;
    run_one(&b).await.expect("the next run");
    assert_eq!(b.good_backups("postgres").await.expect("list").len(), 1);
}

#[tokio::test]
async fn a_corrupted_object_is_named_by_verify_and_never_restored() {
    let garage = GarageServer::start();
    let tree = TempDir::new().expect("tree");
    write_tree(tree.path());
    let env = Env::s3(&garage).set("BACKUP_DIRS", format!("grafana={}", tree.path().display()));
    let b = env.backup().await;
    let done = run_one(&b).await.expect("backup");
    assert!(
        b.verify(&["grafana".into()])
            .await
            .expect("verify")
            .is_empty()
    );
    // Someone overwrites the object's bytes in the bucket.
    b.target()
        .put(&done.key, b"not the backup".to_vec())
        .await
        .expect("overwrite");
    let bad = b.verify(&["grafana".into()]).await.expect("verify");
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(bad[0].0, done.key);
    let good = b.pick("grafana", None).await.expect("pick");
    let out = TempDir::new().expect("out");
    let restored = b
        .restore(
            &good,
            &RestoreTo::Dir(out.path().join("r")),
            quiet(),
            quiet(),
        )
        .await;
    assert!(
        matches!(restored, Err(BackupError::Verify(_))),
        "{restored:?}"
    );
}

#[tokio::test]
async fn backups_started_in_the_same_second_keep_their_own_keys() {
    // Keys name the second a backup started in; three runs back to back (a schedule, a manual
    // run, a retry) must keep three backups, not overwrite one.
    let tree = TempDir::new().expect("tree");
    write_tree(tree.path());
    let env = Env::new().set("BACKUP_DIRS", format!("grafana={}", tree.path().display()));
    let b = env.backup().await;
    let mut keys = Vec::new();
    for _ in 0..3 {
        keys.push(run_one(&b).await.expect("backup").key);
    }
    let good: Vec<String> = b
        .good_backups("grafana")
        .await
        .expect("list")
        .into_iter()
        .map(|g| g.manifest.key)
        .collect();
    assert_eq!(good.len(), 3, "{good:?}");
    for key in &keys {
        assert!(good.contains(key), "{key} kept: {good:?}");
    }
}

#[tokio::test]
async fn wrong_credentials_are_a_clear_error() {
    let garage = GarageServer::start();
    let tree = TempDir::new().expect("tree");
    write_tree(tree.path());
    let env = Env::s3(&garage)
        .set("BACKUP_DIRS", format!("grafana={}", tree.path().display()))
        .set("BACKUP_S3_SECRET_ACCESS_KEY", "not-the-secret-at-all");
    let b = env.backup().await;
    let err = run_one(&b).await.expect_err("refused").to_string();
    assert!(
        err.contains("SignatureDoesNotMatch")
            || err.contains("AccessDenied")
            || err.contains("403"),
        "{err}"
    );
    assert!(
        !err.contains("not-the-secret-at-all"),
        "the secret is not echoed: {err}"
    );
}

/// Thirty days of good backups (fake, tiny) of a set, one a day at 01:00.
async fn fake_history(b: &minio_backup::Backup, set: &str, days: i64) {
    for d in 1..=days {
        let at = (Utc::now() - Duration::days(d))
            .date_naive()
            .and_hms_opt(1, 0, 0)
            .expect("time")
            .and_utc();
        let key = minio_backup::manifest::object_key(set, at, "tar.zst");
        b.target().put(&key, b"old".to_vec()).await.expect("object");
        let m = serde_json::json!({"format": 1, "set": set, "kind": "dir", "key": key,
            "sources": [], "size": 3, "sha256": "00", "started_at": at, "finished_at": at,
            "duration_ms": 1, "tools": {}, "read_back": false});
        b.target()
            .put(
                &minio_backup::manifest::manifest_key(&key),
                m.to_string().into_bytes(),
            )
            .await
            .expect("manifest");
    }
}

#[tokio::test]
async fn retention_keeps_what_the_policy_says_and_failures_never_count() {
    let tree = TempDir::new().expect("tree");
    write_tree(tree.path());
    let env = Env::new()
        .set("BACKUP_DIRS", format!("grafana={}", tree.path().display()))
        .set("BACKUP_KEEP_DAILY", 7);
    let b = env.backup().await;
    fake_history(&b, "grafana", 30).await;
    let done = run_one(&b).await.expect("backup");
    assert_eq!(
        done.deleted.len(),
        24,
        "31 good, 7 days kept: {:?}",
        done.deleted
    );
    let good = b.good_backups("grafana").await.expect("list");
    assert_eq!(good.len(), 7);
    let oldest = good[0].manifest.started_at;
    assert!(
        Utc::now() - oldest < Duration::days(7),
        "the newest seven days: {oldest}"
    );
    // Deleted backups left nothing behind: seven objects, seven manifests.
    assert_eq!(walk(&env.local_dir()).len(), 14);

    // A run that fails keeps every good backup.
    std::fs::remove_dir_all(tree.path()).expect("remove the source");
    let err = run_one(&b).await.expect_err("no source");
    assert!(matches!(err, BackupError::Source(_)), "{err}");
    assert_eq!(b.good_backups("grafana").await.expect("list").len(), 7);
}

#[tokio::test]
async fn the_only_good_backup_is_never_deleted() {
    // Weeks of failed nights: the last good backup is old, and each run fails.
    let env = Env::new()
        .set("BACKUP_DIRS", "grafana=/nonexistent/grafana")
        .set("BACKUP_KEEP_LAST", 1)
        .set("BACKUP_KEEP_DAILY", 1);
    let b = env.backup().await;
    fake_history(&b, "grafana", 1).await;
    let before = b.good_backups("grafana").await.expect("list");
    for _ in 0..3 {
        let err = run_one(&b).await.expect_err("no source");
        assert!(matches!(err, BackupError::Source(_)), "{err}");
    }
    let after = b.good_backups("grafana").await.expect("list");
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].manifest.key, before[0].manifest.key);
}

#[tokio::test]
async fn without_settings_the_embedded_store_is_backed_up_locally() {
    let env = Env::new();
    let b = env.backup().await;
    assert_eq!(b.set_names(), ["hub"]);
    let done = run_one(&b).await.expect("backup");
    assert!(
        done.key.starts_with("hub/") && done.key.ends_with(".sqlite.zst"),
        "{}",
        done.key
    );
    let out = TempDir::new().expect("out");
    let good = b.pick("hub", None).await.expect("pick");
    b.restore(
        &good,
        &RestoreTo::Dir(out.path().to_path_buf()),
        quiet(),
        quiet(),
    )
    .await
    .expect("restore");
    let url = format!("sqlite://{}", out.path().join("hub.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("open the copy");
    let (tables,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM sqlite_master WHERE name = 'hub_runs'")
            .fetch_one(&mut conn)
            .await
            .expect("query");
    assert_eq!(tables, 1, "the hub's tables are in the copy");
}

/// A backup that shutdown stops is recorded `interrupted`, as the scheduler records a run it stops
/// itself, not as a failure, and nothing of it is kept.
#[tokio::test]
async fn a_backup_stopped_by_shutdown_is_recorded_as_interrupted_and_keeps_nothing() {
    let env = Env::new();
    let ctx = env.context(Trigger::Cli).await;
    let b = Backup::from_context(&ctx).expect("minio-backup config");
    ctx.shutdown.cancel();
    let ran = ctx
        .runs
        .track(
            minio_backup::NAME,
            Trigger::Schedule,
            b.run_report(None, false, &|_, _| {}),
        )
        .await;
    assert!(matches!(ran, Err(InvokeError::Interrupted(_))), "{ran:?}");
    let q = RunQuery {
        limit: 10,
        ..RunQuery::default()
    };
    let runs = ctx.runs.list(&q).await.expect("runs");
    let outcomes: Vec<&str> = runs.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(outcomes, ["interrupted"], "{runs:?}");
    assert!(b.good_backups("hub").await.expect("list").is_empty());
}

/// A tmpfs mounted over `dir` for the test's length (root only, as the tests run here).
struct Mount(std::path::PathBuf);

impl Mount {
    fn tmpfs(dir: &Path, options: &str) -> Self {
        std::fs::create_dir_all(dir).expect("mount point");
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(ok.success(), "mount a tmpfs (the tests run as root)");
        Self(dir.to_path_buf())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test]
async fn a_full_or_read_only_local_target_fails_clearly_and_leaves_nothing() {
    let tree = TempDir::new().expect("tree");
    write_tree(tree.path());
    let mut noise = vec![0u8; 4 * 1024 * 1024];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").expect("urandom"),
        &mut noise,
    )
    .expect("random bytes");
    std::fs::write(tree.path().join("random.bin"), noise).expect("incompressible file");
    let env = Env::new().set("BACKUP_DIRS", format!("grafana={}", tree.path().display()));
    let target = env.local_dir();
    {
        let _full = Mount::tmpfs(&target, "size=1m");
        let b = env.backup().await;
        let err = run_one(&b).await.expect_err("the disk is full").to_string();
        assert!(err.contains("No space left"), "{err}");
        assert!(
            walk(&target).is_empty(),
            "no partial file: {:?}",
            walk(&target)
        );
    }
    {
        let _ro = Mount::tmpfs(&target, "size=8m,ro");
        let b = env.backup().await;
        let err = run_one(&b).await.expect_err("read-only").to_string();
        assert!(err.contains("Read-only file system"), "{err}");
        assert!(walk(&target).is_empty());
    }
}

#[tokio::test]
async fn on_lambda_sets_that_need_this_hosts_files_are_refused_and_s3_dumps_run() {
    let (garage, db) = (GarageServer::start(), source_db().await);
    let tree = TempDir::new().expect("tree");
    write_tree(tree.path());
    let env = Env::s3(&garage)
        .set("BACKUP_DATABASE_URL", &db.url)
        .set("BACKUP_DIRS", format!("grafana={}", tree.path().display()));
    let b = env
        .built_for(hub_runtime::Trigger::Lambda)
        .await
        .expect("config");
    let results = common::run(&b).await;
    let by_set: std::collections::HashMap<_, _> = results.into_iter().collect();
    assert!(by_set["postgres"].is_ok(), "{:?}", by_set["postgres"]);
    assert!(
        matches!(&by_set["grafana"], Err(BackupError::NotHere(m)) if m.contains("this host's files")),
        "{:?}",
        by_set["grafana"]
    );
    // A local target cannot work there at all.
    let local = Env::new().set("BACKUP_DATABASE_URL", &db.url);
    let b = local
        .built_for(hub_runtime::Trigger::Lambda)
        .await
        .expect("config");
    assert!(matches!(run_one(&b).await, Err(BackupError::NotHere(_))));
}
