//! Restoring a good backup: a `pg_dump` into a new database with `pg_restore`, a directory tree
//! or the embedded store's copy into a new (or empty) directory. The stored bytes are checked
//! against the manifest's SHA-256 first; nothing is restored from a backup that fails it.

use crate::manifest::Manifest;
use crate::target::{Progress, counting};
use crate::{Backup, BackupError, Good};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio_util::io::SyncIoBridge;

/// Where a restore goes.
#[derive(Debug, Clone)]
pub enum RestoreTo {
    /// A database of this name, created on the set's server; it must not exist yet.
    Database(String),
    /// A directory that does not exist yet or is empty.
    Dir(PathBuf),
}

fn failed(what: impl std::fmt::Display) -> BackupError {
    BackupError::Restore(what.to_string())
}

impl Backup {
    /// The good backup of `set` to restore: the newest one started at or before `at`.
    pub async fn pick(&self, set: &str, at: Option<DateTime<Utc>>) -> Result<Good, BackupError> {
        self.set(set)?;
        let good = self.good_backups(set).await?;
        good.into_iter()
            .rev()
            .find(|g| at.is_none_or(|at| g.manifest.started_at <= at))
            .ok_or_else(|| {
                failed(match at {
                    Some(at) => format!("no good backup of {set} at or before {at}"),
                    None => format!("no good backup of {set}"),
                })
            })
    }

    /// Restores `good` to `to`; returns what was restored, for the operator. `check` and
    /// `copy` are told the bytes read so far by the SHA-256 check and by the restore.
    pub async fn restore(
        &self,
        good: &Good,
        to: &RestoreTo,
        check: Progress,
        copy: Progress,
    ) -> Result<String, BackupError> {
        let m = &good.manifest;
        let (n, hash) = self.target().sha256_reporting(&m.key, check).await?;
        if n != m.size || hash != m.sha256 {
            return Err(BackupError::Verify(format!(
                "{}: {n} bytes hashing {hash}; the manifest says {} bytes hashing {}",
                m.key, m.size, m.sha256
            )));
        }
        match (m.key.rsplit_once('.').map(|(_, e)| e), to) {
            (Some("dump"), RestoreTo::Database(name)) => self.to_database(m, name, copy).await,
            (Some("zst"), RestoreTo::Dir(dir)) => self.to_dir(m, dir, copy).await,
            (Some("dump"), RestoreTo::Dir(_)) => Err(failed(
                "a pg_dump backup restores into a database: use --to-database NAME",
            )),
            (_, RestoreTo::Database(_)) => Err(failed(
                "only pg_dump backups restore into a database: use --to-dir PATH",
            )),
            (ext, RestoreTo::Dir(_)) => Err(failed(format!("unknown backup format {ext:?}"))),
        }
    }

    /// The server a set's dump came from, as a URL (with its password).
    fn server_url(&self, set: &str) -> Result<String, BackupError> {
        match &self.set(set)?.kind {
            crate::config::SetKind::Postgres { url } => Ok(url.expose_secret().to_owned()),
            crate::config::SetKind::HubStore => self
                .inner
                .hub_url
                .as_ref()
                .map(|u| u.expose_secret().to_owned())
                .ok_or_else(|| failed("the hub's store is not PostgreSQL")),
            crate::config::SetKind::Dir { .. } => Err(failed("a dir set has no database")),
        }
    }

    async fn to_database(
        &self,
        m: &Manifest,
        name: &str,
        progress: Progress,
    ) -> Result<String, BackupError> {
        let valid = !name.is_empty()
            && name.len() <= 63
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return Err(failed(format!(
                "{name:?} is not a database name this restores into ([A-Za-z0-9_-], at most 63)"
            )));
        }
        let server = self.server_url(&m.set)?;
        let mut url = url::Url::parse(&server).map_err(|_| failed("the set's URL is not valid"))?;
        let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(url.as_str())
            .await
            .map_err(|e| failed(format!("cannot connect to the set's server: {e}")))?;
        let exists: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM pg_database WHERE datname = $1")
            .bind(name)
            .fetch_optional(&mut admin)
            .await
            .map_err(failed)?;
        if exists.is_some() {
            return Err(failed(format!(
                "database {name} exists; restore into a new name (nothing was changed)"
            )));
        }
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .map_err(failed)?;
        url.set_path(name);
        let (url, password) = crate::source::split_password(url.as_str()).map_err(failed)?;
        let mut cmd = tokio::process::Command::new(&self.inner.cfg.pg_restore);
        cmd.args([
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--no-password",
        ])
        .arg(format!("--dbname={url}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
        if let Some(p) = password {
            cmd.env("PGPASSWORD", p);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| failed(format!("cannot run pg_restore: {e}")))?;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| failed("pg_restore has no stdin"))?;
        let mut object = counting(self.target().get(&m.key).await?, progress);
        let copied = tokio::io::copy(&mut object, &mut stdin).await;
        drop(stdin);
        let out = child.wait_with_output().await.map_err(failed)?;
        if let Err(e) = copied {
            return Err(failed(format!("streaming the backup into pg_restore: {e}")));
        }
        if !out.status.success() {
            return Err(failed(format!(
                "pg_restore failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(format!("{} restored into database {name}", m.key))
    }

    async fn to_dir(
        &self,
        m: &Manifest,
        dir: &Path,
        progress: Progress,
    ) -> Result<String, BackupError> {
        match std::fs::read_dir(dir).map(|mut e| e.next().is_some()) {
            Ok(true) => {
                return Err(failed(format!(
                    "{} is not empty; restore into a new directory (nothing was changed)",
                    dir.display()
                )));
            }
            Ok(false) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| failed(format!("cannot create {}: {e}", dir.display())))?;
            }
            Err(e) => return Err(failed(format!("{}: {e}", dir.display()))),
        }
        let object = counting(self.target().get(&m.key).await?, progress);
        let bridge = SyncIoBridge::new(object);
        let (dir, tar) = (dir.to_path_buf(), m.key.ends_with(".tar.zst"));
        let target = dir.clone();
        tokio::task::spawn_blocking(move || -> Result<(), String> {
            let decoder = zstd::Decoder::new(bridge).map_err(|e| format!("zstd: {e}"))?;
            if tar {
                // `unpack` refuses entries that would land outside `dir`.
                let mut archive = tar::Archive::new(decoder);
                archive.set_preserve_permissions(true);
                archive.unpack(&target).map_err(|e| format!("untar: {e}"))
            } else {
                let mut decoder = decoder;
                let mut file = std::fs::File::create(target.join("hub.db"))
                    .map_err(|e| format!("{}: {e}", target.display()))?;
                std::io::copy(&mut decoder, &mut file).map_err(|e| format!("unzstd: {e}"))?;
                file.sync_all().map_err(|e| format!("sync: {e}"))
            }
        })
        .await
        .map_err(failed)?
        .map_err(failed)?;
        Ok(format!("{} restored into {}", m.key, dir.display()))
    }
}
