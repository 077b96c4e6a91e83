//! Client-side encryption to age recipients, against a real S3 server (Garage) and real
//! PostgreSQL: what is stored is an age file only the identity opens, it checks out without
//! the key, restores with it, and nothing is created without it.

mod common;

use age::secrecy::ExposeSecret;
use chrono::{Duration, Utc};
use common::{Env, drop_database, fingerprint, quiet, run_one, script, source_db, write_tree};
use hub_testkit::GarageServer;
use minio_backup::BackupError;
use minio_backup::restore::RestoreTo;
use std::io::Read;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// An identity file as `age-keygen` writes it: comments, then the secret key.
fn identity_file(dir: &Path, name: &str, key: &age::x25519::Identity) -> PathBuf {
    let path = dir.join(name);
    let text = format!(
        "# created: 2026-01-01T00:00:00Z\n# public key: {}\n{}\n",
        key.to_public(),
        key.to_string().expose_secret()
    );
    std::fs::write(&path, text).expect("identity file");
    path
}

fn restore_err(result: Result<String, BackupError>) -> String {
    match result {
        Err(BackupError::Restore(m)) => m,
        other => panic!("a restore error, not {other:?}"),
    }
}

#[tokio::test]
async fn a_directory_is_stored_encrypted_checks_out_without_the_key_and_restores_with_it() {
    let garage = GarageServer::start();
    let (tree, keys) = (TempDir::new().expect("tree"), TempDir::new().expect("keys"));
    write_tree(tree.path());
    let key = age::x25519::Identity::generate();
    let recipient = key.to_public().to_string();
    let dirs = format!("grafana={}", tree.path().display());
    let env = Env::s3(&garage)
        .set("BACKUP_DIRS", &dirs)
        .set("BACKUP_AGE_RECIPIENTS", &recipient);
    let b = env.backup().await;
    let done = run_one(&b).await.expect("backup");
    assert!(done.key.ends_with(".tar.zst.age"), "{}", done.key);
    let m = b.pick("grafana", None).await.expect("pick").manifest;
    let enc = m.encryption.as_ref().expect("the manifest says encrypted");
    assert_eq!(
        (enc.scheme.as_str(), enc.recipients.as_slice()),
        ("age", [recipient.clone()].as_slice())
    );

    // The bucket holds an age file, not the tar.zst; its size and hash are the manifest's.
    let stored = b
        .target()
        .read_small(&done.key, u64::MAX)
        .await
        .expect("read");
    assert!(!stored.starts_with(&ZSTD_MAGIC));
    assert!(stored.starts_with(b"age-encryption.org/v1\n"));
    assert_eq!(stored.len() as u64, m.size);
    assert!(
        b.verify(&["grafana".into()])
            .await
            .expect("verify")
            .is_empty(),
        "checked without any key"
    );
    // The identity opens it, by itself, into the zstd tar of the tree.
    let mut plain = Vec::new();
    age::Decryptor::new_buffered(stored.as_slice())
        .expect("an age file")
        .decrypt(std::iter::once(&key as &dyn age::Identity))
        .expect("the key fits")
        .read_to_end(&mut plain)
        .expect("decrypt");
    assert!(plain.starts_with(&ZSTD_MAGIC));
    let tar = zstd::decode_all(plain.as_slice()).expect("zstd");
    let mut archive = tar::Archive::new(tar.as_slice());
    let names: Vec<String> = archive
        .entries()
        .expect("tar")
        .map(|e| {
            e.expect("entry")
                .path()
                .expect("path")
                .display()
                .to_string()
        })
        .collect();
    assert!(names.contains(&"sub/a.txt".to_owned()), "{names:?}");

    // Restored with the identity file: the same files.
    let with_key = Env::s3(&garage)
        .set("BACKUP_DIRS", &dirs)
        .set(
            "BACKUP_AGE_IDENTITY_FILE",
            identity_file(keys.path(), "backup.key", &key).display(),
        )
        .backup()
        .await;
    let out = TempDir::new().expect("out");
    let into = out.path().join("restored");
    let good = with_key.pick("grafana", None).await.expect("pick");
    with_key
        .restore(&good, &RestoreTo::Dir(into.clone()), quiet(), quiet())
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
}

#[tokio::test]
async fn without_the_right_identity_a_restore_says_what_to_set_and_creates_nothing() {
    let garage = GarageServer::start();
    let (tree, keys) = (TempDir::new().expect("tree"), TempDir::new().expect("keys"));
    write_tree(tree.path());
    let key = age::x25519::Identity::generate();
    let dirs = format!("grafana={}", tree.path().display());
    let b = Env::s3(&garage)
        .set("BACKUP_DIRS", &dirs)
        .set("BACKUP_AGE_RECIPIENTS", key.to_public())
        .backup()
        .await;
    run_one(&b).await.expect("backup");
    let good = b.pick("grafana", None).await.expect("pick");
    let out = TempDir::new().expect("out");
    let into = out.path().join("restored");

    let err = restore_err(
        b.restore(&good, &RestoreTo::Dir(into.clone()), quiet(), quiet())
            .await,
    );
    assert!(
        err.contains("encrypted") && err.contains("BACKUP_AGE_IDENTITY_FILE"),
        "{err}"
    );
    assert!(!into.exists(), "no directory created");

    // Someone else's key: named as not fitting, before anything is created.
    let stranger = age::x25519::Identity::generate();
    let wrong = Env::s3(&garage)
        .set("BACKUP_DIRS", &dirs)
        .set(
            "BACKUP_AGE_IDENTITY_FILE",
            identity_file(keys.path(), "other.key", &stranger).display(),
        )
        .backup()
        .await;
    let err = restore_err(
        wrong
            .restore(&good, &RestoreTo::Dir(into.clone()), quiet(), quiet())
            .await,
    );
    assert!(err.contains("holds none of the keys"), "{err}");
    assert!(!err.contains(stranger.to_string().expose_secret()), "{err}");
    assert!(!into.exists(), "no directory created");
}

#[tokio::test]
async fn an_encrypted_database_dump_restores_into_a_new_database_row_for_row() {
    let (garage, db) = (GarageServer::start(), source_db().await);
    let keys = TempDir::new().expect("keys");
    let key = age::x25519::Identity::generate();
    let env = Env::s3(&garage)
        .set("BACKUP_DATABASE_URL", &db.url)
        .set("BACKUP_AGE_RECIPIENTS", key.to_public());
    let b = env.backup().await;
    let done = run_one(&b).await.expect("backup");
    assert!(done.key.ends_with(".dump.age"), "{}", done.key);
    let good = b.pick("postgres", None).await.expect("pick");

    let name = format!("restored_{}", uuid::Uuid::new_v4().simple());
    let restored = db
        .url
        .replace(db.url.rsplit('/').next().expect("name"), &name);
    // Without the identity: refused before the database is created.
    let err = restore_err(
        b.restore(&good, &RestoreTo::Database(name.clone()), quiet(), quiet())
            .await,
    );
    assert!(err.contains("BACKUP_AGE_IDENTITY_FILE"), "{err}");
    assert!(
        sqlx::PgPool::connect(&restored).await.is_err(),
        "database {name} was not created"
    );

    let with_key = env
        .set(
            "BACKUP_AGE_IDENTITY_FILE",
            identity_file(keys.path(), "backup.key", &key).display(),
        )
        .backup()
        .await;
    with_key
        .restore(&good, &RestoreTo::Database(name.clone()), quiet(), quiet())
        .await
        .expect("restore");
    for table in ["readings", "notes"] {
        assert_eq!(
            fingerprint(&restored, table).await,
            fingerprint(&db.url, table).await,
            "{table} restored row for row"
        );
    }
    drop_database(&db.url, &name).await;
}

#[tokio::test]
async fn an_encrypted_pg_dump_killed_mid_stream_never_becomes_a_backup() {
    let (garage, db) = (GarageServer::start(), source_db().await);
    let tools = TempDir::new().expect("tools");
    // 20 MB (past the first multipart part), then killed: the encryptor sees a clean end.
    let dump = script(
        tools.path(),
        "pg_dump",
        "case \"$1\" in --version) echo 'pg_dump (PostgreSQL) 15'; exit 0;; esac\n\
         head -c 20000000 /dev/urandom\nkill -9 $$",
    );
    let b = Env::s3(&garage)
        .set("BACKUP_DATABASE_URL", &db.url)
        .set("BACKUP_PG_DUMP", dump.display())
        .set(
            "BACKUP_AGE_RECIPIENTS",
            age::x25519::Identity::generate().to_public(),
        )
        .backup()
        .await;
    let err = run_one(&b).await.expect_err("the dump failed");
    assert!(
        matches!(&err, BackupError::Source(m) if m.contains("pg_dump failed")),
        "{err}"
    );
    assert!(b.target().list("postgres/").await.expect("list").is_empty());
    let leftover = b
        .target()
        .clean_incomplete(Utc::now() + Duration::days(2))
        .await
        .expect("list uploads");
    assert_eq!(leftover, 0, "no incomplete upload left");
}

#[tokio::test]
async fn a_bad_recipient_is_a_config_error_naming_the_variable() {
    let good = age::x25519::Identity::generate().to_public().to_string();
    let err = Env::new()
        .set("BACKUP_AGE_RECIPIENTS", format!("{good},age1notakey"))
        .try_backup()
        .await
        .expect_err("refused at start")
        .to_string();
    assert!(
        err.contains("BACKUP_AGE_RECIPIENTS") && err.contains("item 2"),
        "{err}"
    );
    assert!(
        !err.contains("age1notakey"),
        "the value is not echoed: {err}"
    );
}
