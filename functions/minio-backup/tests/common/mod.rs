//! The harness of minio-backup's tests: the function built from settings as the gateway builds
//! it, over a real Garage (S3) or a local directory, real PostgreSQL databases and directories.
#![allow(dead_code)] // each test file uses its own part of the harness

use hub_runtime::{Context, HubConfig, Source, Store, Trigger};
use hub_testkit::{GarageServer, garage};
use minio_backup::{Backup, BackupError, SetDone};
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
        let source = Source::from_parts(None, self.settings.clone()).expect("source");
        let hub = HubConfig::from_source(&source).expect("hub config");
        let store = Store::connect(&hub).await.expect("store");
        Backup::from_context(&Context::new(source, hub, store, trigger))
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
