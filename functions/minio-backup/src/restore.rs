//! Restoring a good backup: a `pg_dump` into a new database with `pg_restore`, a directory tree
//! or the embedded store's copy into a new (or empty) directory. The stored bytes are checked
//! against the manifest's SHA-256 first; nothing is restored from a backup that fails it. An
//! encrypted backup (`….age`) is decrypted on its way with the identities of
//! `BACKUP_AGE_IDENTITY_FILE`, which are read, and matched to the manifest's recipients, before
//! anything else: without them nothing is read or created.

use crate::encrypt::{self, Identities};
use crate::manifest::Manifest;
use crate::target::{Progress, counting};
use crate::{Backup, BackupError, Good};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::AsyncReadExt;
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
        // The key says what the bytes are: `….tar.zst.age` is an age file holding a `.tar.zst`.
        let (plain, keys) = match m.key.strip_suffix(encrypt::SUFFIX) {
            Some(plain) => (plain, Some(self.identities_for(m)?)),
            None => (m.key.as_str(), None),
        };
        let (n, hash) = self.target().sha256_reporting(&m.key, check).await?;
        if n != m.size || hash != m.sha256 {
            return Err(BackupError::Verify(format!(
                "{}: {n} bytes hashing {hash}; the manifest says {} bytes hashing {}",
                m.key, m.size, m.sha256
            )));
        }
        let tar = plain.ends_with(".tar.zst");
        match (plain.rsplit_once('.').map(|(_, e)| e), to) {
            (Some("dump"), RestoreTo::Database(name)) => {
                self.to_database(m, name, keys, copy).await
            }
            (Some("zst"), RestoreTo::Dir(dir)) => self.to_dir(m, dir, tar, keys, copy).await,
            (Some("dump"), RestoreTo::Dir(_)) => Err(failed(
                "a pg_dump backup restores into a database: use --to-database NAME",
            )),
            (_, RestoreTo::Database(_)) => Err(failed(
                "only pg_dump backups restore into a database: use --to-dir PATH",
            )),
            (ext, RestoreTo::Dir(_)) => Err(failed(format!("unknown backup format {ext:?}"))),
        }
    }

    /// The identities that decrypt `m`'s backup, from `BACKUP_AGE_IDENTITY_FILE`; an error
    /// unless one of them is a recipient the manifest names.
    fn identities_for(&self, m: &Manifest) -> Result<Identities, BackupError> {
        let to = m
            .encryption
            .as_ref()
            .map(|e| e.recipients.join(", "))
            .unwrap_or_default();
        let file = self.inner.cfg.age_identity_file.as_ref().ok_or_else(|| {
            failed(format!(
                "{} is encrypted (age, to {to}); set BACKUP_AGE_IDENTITY_FILE to an identity \
                 file holding one of its recipients' secret keys (nothing was changed)",
                m.key
            ))
        })?;
        let keys = Identities::load(file).map_err(|e| {
            failed(format!(
                "BACKUP_AGE_IDENTITY_FILE: {e} (nothing was changed)"
            ))
        })?;
        let fits = m
            .encryption
            .as_ref()
            .is_none_or(|e| keys.public().iter().any(|k| e.recipients.contains(k)));
        if !fits {
            return Err(failed(format!(
                "BACKUP_AGE_IDENTITY_FILE ({}) holds none of the keys {} was encrypted to \
                 ({to}); nothing was changed",
                file.display(),
                m.key
            )));
        }
        Ok(keys)
    }

    /// The stored bytes of `m` for reading on a blocking thread, decrypted with `keys` when
    /// given; an age file's header is read here, before anything is created.
    async fn open(
        &self,
        m: &Manifest,
        keys: Option<Identities>,
        progress: Progress,
    ) -> Result<Box<dyn Read + Send>, BackupError> {
        let stored = SyncIoBridge::new(counting(self.target().get(&m.key).await?, progress));
        let Some(keys) = keys else {
            return Ok(Box::new(stored));
        };
        tokio::task::spawn_blocking(move || {
            keys.decrypt(stored)
                .map(|r| Box::new(r) as Box<dyn Read + Send>)
        })
        .await
        .map_err(failed)?
        .map_err(|e| failed(format!("{}: {e} (nothing was changed)", m.key)))
    }

    /// The server a set's dump came from, as a URL (with its password).
    pub(crate) fn server_url(&self, set: &str) -> Result<String, BackupError> {
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
        keys: Option<Identities>,
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
        let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&server)
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
        let stored = self.open(m, keys, progress).await?;
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .map_err(failed)?;
        let _ = sqlx::Connection::close(admin).await;
        let target = crate::source::with_database(&server, name).map_err(failed)?;
        if let Err(e) = self.pg_restore(stored, &target).await {
            // The database is this restore's own (it did not exist): dropping it leaves the
            // server as it was, rather than a half-filled copy that looks restored.
            return Err(failed(match drop_database(&server, name).await {
                Ok(()) => format!("{e}; the partly restored database {name} was dropped"),
                Err(d) => format!("{e}; the partly restored database {name} is left behind: {d}"),
            }));
        }
        Ok(format!("{} restored into database {name}", m.key))
    }

    /// Streams `stored` into `pg_restore` on database `url`. When pg_restore stops reading
    /// because it failed, its own words are the error, not the broken pipe they caused.
    async fn pg_restore(&self, mut stored: Box<dyn Read + Send>, url: &str) -> Result<(), String> {
        let (url, password) = crate::source::split_password(url)?;
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
            .map_err(|e| format!("cannot run pg_restore: {e} (BACKUP_PG_RESTORE names it)"))?;
        let stdin = child.stdin.take().ok_or("pg_restore has no stdin")?;
        let mut stderr = child.stderr.take().ok_or("pg_restore has no stderr")?;
        // Read alongside the copy, bounded: pg_restore blocked on a full stderr pipe would
        // stop reading its input and the copy would wait for ever.
        let complaints = tokio::spawn(async move {
            let mut err = Vec::new();
            let _ = (&mut stderr).take(16 * 1024).read_to_end(&mut err).await;
            let _ = tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await;
            String::from_utf8_lossy(&err).trim().to_owned()
        });
        let mut stdin = SyncIoBridge::new(stdin);
        // Returning drops stdin: pg_restore sees the end of its input.
        let copied = tokio::task::spawn_blocking(move || std::io::copy(&mut stored, &mut stdin))
            .await
            .map_err(|e| e.to_string())?;
        let status = child.wait().await.map_err(|e| format!("pg_restore: {e}"))?;
        let said = complaints.await.unwrap_or_default();
        match copied {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                let mut why = format!("reading the backup: {e}");
                if !status.success() {
                    why.push_str(&format!("; pg_restore failed ({status}): {said}"));
                }
                Err(why)
            }
            _ if !status.success() => Err(format!("pg_restore failed ({status}): {said}")),
            Err(e) => Err(format!("streaming the backup into pg_restore: {e}")),
            Ok(_) => Ok(()),
        }
    }

    async fn to_dir(
        &self,
        m: &Manifest,
        dir: &Path,
        tar: bool,
        keys: Option<Identities>,
        progress: Progress,
    ) -> Result<String, BackupError> {
        let missing = match std::fs::read_dir(dir).map(|mut e| e.next().is_some()) {
            Ok(true) => {
                return Err(failed(format!(
                    "{} is not empty; restore into a new directory (nothing was changed)",
                    dir.display()
                )));
            }
            Ok(false) => false,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => return Err(failed(format!("{}: {e}", dir.display()))),
        };
        let stored = self.open(m, keys, progress).await?;
        if missing {
            std::fs::create_dir_all(dir)
                .map_err(|e| failed(format!("cannot create {}: {e}", dir.display())))?;
        }
        let dir = dir.to_path_buf();
        let target = dir.clone();
        tokio::task::spawn_blocking(move || -> Result<(), String> {
            let decoder = zstd::Decoder::new(stored).map_err(|e| format!("zstd: {e}"))?;
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

/// Drops database `name` on `server`. `WITH (FORCE)`: a connection a failed restore or count
/// left open must not keep the copy alive.
pub(crate) async fn drop_database(server: &str, name: &str) -> Result<(), String> {
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(server)
        .await
        .map_err(|e| format!("cannot connect to drop {name}: {e}"))?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .map_err(|e| e.to_string())?;
    let _ = sqlx::Connection::close(admin).await;
    Ok(())
}
