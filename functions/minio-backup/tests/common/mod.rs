//! The harness of minio-backup's tests: the function built from settings as the gateway builds
//! it, over a real Garage (S3) or a local directory, real PostgreSQL databases and directories.
#![allow(dead_code)] // each test file uses its own part of the harness

use hub_runtime::{Context, HubConfig, Source, Store, Trigger};
use hub_testkit::{GarageServer, TestDb, garage};
use minio_backup::{Backup, BackupError, SetDone};
use sqlx::Connection;
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

pub struct Env {
    pub settings: HashMap<String, String>,
    pub data: TempDir,
}

impl Env {
    /// The embedded store and, unless told otherwise, the local target under the data dir.
    pub fn new() -> Self {
        let data = TempDir::new().expect("data dir");
        let settings =
            HashMap::from([("HUB_DATA_DIR".to_owned(), data.path().display().to_string())]);
        Self { settings, data }
    }

    /// Backups go to `garage`'s bucket.
    pub fn s3(garage: &GarageServer) -> Self {
        Self::new()
            .set("BACKUP_S3_ENDPOINT", garage.endpoint())
            .set("BACKUP_S3_BUCKET", garage::BUCKET)
            .set("BACKUP_S3_PREFIX", "homelab")
            .set("BACKUP_S3_REGION", garage::REGION)
            .set("BACKUP_S3_ACCESS_KEY_ID", garage::ACCESS_KEY_ID)
            .set("BACKUP_S3_SECRET_ACCESS_KEY", garage::SECRET_ACCESS_KEY)
    }

    pub fn set(mut self, key: &str, value: impl ToString) -> Self {
        self.settings.insert(key.into(), value.to_string());
        self
    }

    pub fn local_dir(&self) -> PathBuf {
        self.data.path().join("backups")
    }

    pub async fn backup(&self) -> Backup {
        self.try_backup().await.expect("minio-backup config")
    }

    pub async fn try_backup(&self) -> Result<Backup, hub_runtime::ConfigError> {
        self.built_for(Trigger::Cli).await
    }

    /// As a Lambda binary builds it (`Trigger::Lambda` for its HTTP requests).
    pub async fn built_for(&self, trigger: Trigger) -> Result<Backup, hub_runtime::ConfigError> {
        Backup::from_context(&self.context(trigger).await)
    }

    /// The context the function is built from: its store, runs and shutdown token.
    pub async fn context(&self, trigger: Trigger) -> Context {
        let source = Source::from_parts(None, self.settings.clone()).expect("source");
        let hub = HubConfig::from_source(&source).expect("hub config");
        let store = Store::connect(&hub).await.expect("store");
        Context::new(source, hub, store, trigger)
    }
}

/// Runs every set and returns each one's result.
pub async fn run(b: &Backup) -> Vec<(String, Result<SetDone, BackupError>)> {
    b.run_sets(None, &|_, _| {}).await.expect("the sets exist")
}

/// The one set's result of a run.
pub async fn run_one(b: &Backup) -> Result<SetDone, BackupError> {
    let mut results = run(b).await;
    assert_eq!(results.len(), 1, "one set");
    results.remove(0).1
}

/// An executable shell script in `dir`.
pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// Progress nobody watches.
pub fn quiet() -> minio_backup::target::Progress {
    std::sync::Arc::new(|_| {})
}

/// A database with two tables and 100,000 rows.
pub async fn source_db() -> TestDb {
    let db = TestDb::create().await;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    sqlx::raw_sql(
        "CREATE TABLE readings (id BIGINT PRIMARY KEY, source TEXT, payload JSONB);
         INSERT INTO readings SELECT g, 'src' || (g % 7), jsonb_build_object('n', g, 'text', md5(g::text))
           FROM generate_series(1, 100000) g;
         CREATE TABLE notes (id SERIAL PRIMARY KEY, body TEXT NOT NULL);
         INSERT INTO notes (body) VALUES ('first'), ('second'), ('ünïcödé');",
    )
    .execute(&mut conn)
    .await
    .expect("fill");
    db
}

/// Row count and a checksum of every row of `table`.
pub async fn fingerprint(url: &str, table: &str) -> (i64, String) {
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    sqlx::query_as(&format!(
        "SELECT COUNT(*), COALESCE(md5(string_agg(t::text, ',' ORDER BY id)), '') FROM {table} t"
    ))
    .fetch_one(&mut conn)
    .await
    .expect("fingerprint")
}

/// Whether database `name` exists on the server of `url`.
pub async fn database_exists(url: &str, name: &str) -> bool {
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    let row: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_optional(&mut conn)
        .await
        .expect("query");
    row.is_some()
}

/// Drops a database a restore created.
pub async fn drop_database(admin_url: &str, name: &str) {
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .expect("connect");
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut conn)
        .await;
}

/// A small tree: a 3 MiB file, nested text files and a symlink.
pub fn write_tree(root: &Path) {
    std::fs::create_dir_all(root.join("sub/deeper")).expect("dirs");
    std::fs::write(root.join("grafana.db"), vec![7u8; 3 * 1024 * 1024]).expect("big file");
    std::fs::write(root.join("sub/a.txt"), "alpha\n").expect("a");
    std::fs::write(root.join("sub/deeper/b.json"), "{\"b\": 2}").expect("b");
    std::os::unix::fs::symlink("sub/a.txt", root.join("link")).expect("symlink");
}
