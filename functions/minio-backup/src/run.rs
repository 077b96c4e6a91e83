//! One backup run: each set streamed to the target, checked, described by its manifest, then
//! the set's retention applied; and the listing and checking of what is stored.

use crate::config::{SetConfig, SetKind};
use crate::encrypt;
use crate::manifest::{self, Encryption, Manifest};
use crate::retention;
use crate::source::{self, Produced};
use crate::target::{Pending, Target, TargetError};
use crate::{Backup, BackupError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;

/// What one set's backup did.
#[derive(Debug, Clone, Serialize)]
pub struct SetDone {
    pub set: String,
    pub key: String,
    pub size: u64,
    pub sha256: String,
    pub duration_ms: u64,
    pub changed_while_read: usize,
    pub skipped: usize,
    /// Backups the retention policy deleted.
    pub deleted: Vec<String>,
}

/// Keys name the second a backup started in: the first second from `at` on that no good backup
/// of `set` holds yet, so runs started within one second of each other (a schedule and a manual
/// run, or a drill's backup) never overwrite each other's objects.
async fn free_second(
    target: &Target,
    set: &str,
    at: DateTime<Utc>,
) -> Result<DateTime<Utc>, BackupError> {
    const TRIES: i64 = 60;
    for n in 0..TRIES {
        let slot = at + chrono::Duration::seconds(n);
        let taken = target
            .head(&manifest::manifest_key_at(set, slot))
            .await
            .map_err(BackupError::Target)?;
        if taken.is_none() {
            return Ok(slot);
        }
    }
    Err(BackupError::Target(TargetError::new(format!(
        "{TRIES} backups of {set} in the last minute hold every key from {at}; try again later"
    ))))
}

/// A stored good backup: its manifest.
#[derive(Debug, Clone, Serialize)]
pub struct Good {
    pub manifest_key: String,
    pub manifest: Manifest,
}

impl Backup {
    /// Backs up one set; `progress` sees the bytes stored so far.
    pub async fn backup_set(
        &self,
        set: &SetConfig,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<SetDone, BackupError> {
        self.refuse_on_lambda(set)?;
        let target = self.target();
        let started = Utc::now();
        let clock = Instant::now();
        // Before the dump starts: a target that cannot be reached fails the run at once.
        let slot = free_second(target, &set.name, started).await?;
        let produced = source::produce(
            &set.kind,
            &self.inner.store,
            self.inner.hub_url.as_ref(),
            &self.inner.data_dir,
            &self.inner.cfg.pg_dump,
        )
        .await
        .map_err(BackupError::Source)?;
        let Produced {
            reader,
            done,
            ext,
            sources,
        } = match &set.encrypt_to {
            Some(to) => encrypt::wrap(produced, to),
            None => produced,
        };
        let key = manifest::object_key(&set.name, slot, &ext);
        let uploaded = tokio::select! {
            biased;
            () = self.inner.shutdown.cancelled() => Err(BackupError::Interrupted),
            up = target.upload(&key, reader, progress) => up.map_err(BackupError::Target),
        };
        let pending = match uploaded {
            Ok(p) => p,
            Err(e) => {
                // Dropping the producer's task stops it (pg_dump is killed with its handle).
                done.abort();
                return Err(e);
            }
        };
        // The producer's verdict decides, not the stream's end: a dump killed half way also
        // ends its stream.
        let notes = match done.await {
            Ok(Ok(notes)) => notes,
            Ok(Err(e)) => return Err(aborted(pending, BackupError::Source(e)).await),
            Err(e) => {
                let e = BackupError::Source(format!("the producer stopped: {e}"));
                return Err(aborted(pending, e).await);
            }
        };
        let (size, sha256) = (pending.size, pending.sha256.clone());
        pending.complete().await.map_err(BackupError::Target)?;
        self.verify_stored(&key, size, &sha256).await?;
        let finished = Utc::now();
        let mut tools = BTreeMap::from([("hub".to_owned(), env!("CARGO_PKG_VERSION").to_owned())]);
        if let Some(tool) = notes.tool {
            tools.insert("pg_dump".into(), tool);
        }
        let m = Manifest {
            format: 1,
            set: set.name.clone(),
            kind: kind_name(&set.kind).into(),
            key: key.clone(),
            sources,
            size,
            sha256: sha256.clone(),
            started_at: started,
            finished_at: finished,
            duration_ms: u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX),
            tools,
            changed_while_read: notes.changed.clone(),
            skipped: notes.skipped.clone(),
            read_back: self.inner.cfg.verify_readback,
            encryption: set.encrypt_to.as_ref().map(|to| Encryption {
                scheme: encrypt::SCHEME.into(),
                recipients: to.keys(),
            }),
        };
        let text =
            serde_json::to_vec_pretty(&m).map_err(|e| BackupError::Target(TargetError::new(e)))?;
        target
            .put(&manifest::manifest_key(&key), text)
            .await
            .map_err(BackupError::Target)?;
        self.inner
            .metrics
            .backup_stored(&set.name, size, finished.timestamp() as f64);
        for changed in &notes.changed {
            tracing::warn!(set = %set.name, file = %changed, "file changed while it was read");
        }
        let deleted = self.apply_retention(set).await?;
        Ok(SetDone {
            set: set.name.clone(),
            key,
            size,
            sha256,
            duration_ms: m.duration_ms,
            changed_while_read: notes.changed.len(),
            skipped: notes.skipped.len(),
            deleted,
        })
    }

    /// HEAD says the size that was sent; unless disabled, the bytes read back hash the same.
    /// A backup that fails either is deleted, never described as good.
    async fn verify_stored(&self, key: &str, size: u64, sha256: &str) -> Result<(), BackupError> {
        let target = self.target();
        let bad = match target.head(key).await.map_err(BackupError::Target)? {
            None => Some("it is not there after the upload".to_owned()),
            Some(stored) if stored != size => Some(format!("{stored} bytes stored, {size} sent")),
            Some(_) if self.inner.cfg.verify_readback => {
                let (n, hash) = target.sha256(key).await.map_err(BackupError::Target)?;
                (n != size || hash != sha256).then(|| {
                    format!("read back {n} bytes hashing {hash}, stored {size} hashing {sha256}")
                })
            }
            Some(_) => None,
        };
        match bad {
            None => Ok(()),
            Some(why) => {
                let _ = target.delete(key).await;
                Err(BackupError::Verify(format!("{key}: {why}")))
            }
        }
    }

    /// Good backups of `set`, oldest first.
    pub async fn good_backups(&self, set: &str) -> Result<Vec<Good>, BackupError> {
        let target = self.target();
        let objects = target
            .list(&format!("{set}/"))
            .await
            .map_err(BackupError::Target)?;
        let mut out = Vec::new();
        for o in objects.iter().filter(|o| o.key.ends_with(manifest::SUFFIX)) {
            let bytes = target
                .read_small(&o.key, manifest::MAX_BYTES)
                .await
                .map_err(BackupError::Target)?;
            match serde_json::from_slice::<Manifest>(&bytes) {
                Ok(m) if m.set == set => out.push(Good {
                    manifest_key: o.key.clone(),
                    manifest: m,
                }),
                Ok(_) | Err(_) => {
                    tracing::warn!(key = %o.key, "not a manifest of this set; ignored");
                }
            }
        }
        out.sort_by_key(|g| g.manifest.started_at);
        Ok(out)
    }

    /// Deletes what the set's policy does not keep: the manifest first (so the backup stops
    /// counting as good), then the object.
    async fn apply_retention(&self, set: &SetConfig) -> Result<Vec<String>, BackupError> {
        if set.policy.is_empty() {
            return Ok(Vec::new());
        }
        let good = self.good_backups(&set.name).await?;
        let times: Vec<DateTime<Utc>> = good.iter().map(|g| g.manifest.started_at).collect();
        let target = self.target();
        let mut deleted = Vec::new();
        for i in retention::to_delete(&set.policy, &times) {
            let g = &good[i];
            target
                .delete(&g.manifest_key)
                .await
                .map_err(BackupError::Target)?;
            target
                .delete(&g.manifest.key)
                .await
                .map_err(BackupError::Target)?;
            deleted.push(g.manifest.key.clone());
        }
        Ok(deleted)
    }

    /// Re-reads every good backup of `sets` and compares it with its manifest; returns
    /// (manifest key, problem) for each that does not match.
    pub async fn verify(&self, sets: &[String]) -> Result<Vec<(String, String)>, BackupError> {
        let target = self.target();
        let mut bad = Vec::new();
        for set in sets {
            for g in self.good_backups(set).await? {
                let m = &g.manifest;
                match target.sha256(&m.key).await {
                    Ok((n, hash)) if n == m.size && hash == m.sha256 => {}
                    Ok((n, hash)) => bad.push((
                        m.key.clone(),
                        format!(
                            "{n} bytes hashing {hash}; the manifest says {} bytes hashing {}",
                            m.size, m.sha256
                        ),
                    )),
                    Err(e) => bad.push((m.key.clone(), e.to_string())),
                }
            }
        }
        Ok(bad)
    }

    fn refuse_on_lambda(&self, set: &SetConfig) -> Result<(), BackupError> {
        if !self.inner.on_lambda {
            return Ok(());
        }
        let local = match &set.kind {
            SetKind::Dir { .. } => true,
            SetKind::HubStore => matches!(self.inner.store, hub_runtime::Store::Sqlite(_)),
            SetKind::Postgres { .. } => false,
        };
        if local || matches!(self.target(), Target::Local(_)) {
            return Err(BackupError::NotHere(format!(
                "set {} needs this host's files (a directory, the embedded store or a local \
                 target); back it up from the gateway on the host",
                set.name
            )));
        }
        Ok(())
    }
}

async fn aborted(pending: Pending, e: BackupError) -> BackupError {
    pending.abort().await;
    e
}

fn kind_name(kind: &SetKind) -> &'static str {
    match kind {
        SetKind::Postgres { .. } => "postgres",
        SetKind::Dir { .. } => "dir",
        SetKind::HubStore => "hub",
    }
}
