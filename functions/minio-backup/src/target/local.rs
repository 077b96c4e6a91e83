//! The embedded default target: a directory laid out like a bucket. Each object is written to
//! `<key>.partial-<id>` beside its place, synced, and renamed into place only when complete, so
//! a full disk, a read-only directory or a kill leaves no file under the real name.

use super::{ObjectInfo, Reader, TargetError, fill};
use chrono::{DateTime, Utc};
use std::path::{Component, Path, PathBuf};
use tokio::io::AsyncWriteExt;

const PARTIAL: &str = ".partial-";
const CHUNK: usize = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct Local {
    dir: PathBuf,
}

/// A written object not yet in place. Dropped without [`PendingFile::complete`] — an error, or
/// shutdown cancelling the backup mid-stream — it removes its partial file, so an interrupted
/// backup leaves nothing behind, not only nothing under the real name. (A kill still can; the
/// next run's [`Local::clean_incomplete`] removes those.)
#[derive(Debug)]
pub struct PendingFile {
    partial: PathBuf,
    path: PathBuf,
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        // After `complete` the partial name is gone and this finds nothing to remove.
        let _ = std::fs::remove_file(&self.partial);
    }
}

impl Local {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `key` under the directory; keys are made by this crate, but a manifest read back could
    /// name anything, so nothing may climb out.
    fn path(&self, key: &str) -> Result<PathBuf, TargetError> {
        let rel = Path::new(key);
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(TargetError::new(format!(
                "{key:?} is not a plain relative key"
            )));
        }
        Ok(self.dir.join(rel))
    }

    fn partial_for(path: &Path) -> PathBuf {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(format!("{PARTIAL}{}", uuid::Uuid::new_v4().simple()));
        path.with_file_name(name)
    }

    async fn create(&self, path: &Path) -> Result<(PathBuf, tokio::fs::File), TargetError> {
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(|e| {
                TargetError::new(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        let partial = Self::partial_for(path);
        let file = tokio::fs::File::create(&partial)
            .await
            .map_err(|e| TargetError::new(format!("cannot write {}: {e}", partial.display())))?;
        Ok((partial, file))
    }

    pub async fn upload(
        &self,
        key: &str,
        reader: &mut (dyn tokio::io::AsyncRead + Send + Unpin),
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<PendingFile, TargetError> {
        let path = self.path(key)?;
        let (partial, mut file) = self.create(&path).await?;
        let pending = PendingFile { partial, path };
        let partial = &pending.partial;
        let copied = async {
            let mut buf = Vec::with_capacity(CHUNK);
            let mut total = 0u64;
            loop {
                let n = fill(reader, &mut buf, CHUNK)
                    .await
                    .map_err(|e| format!("reading the backup stream: {e}"))?;
                if n == 0 {
                    break;
                }
                file.write_all(&buf)
                    .await
                    .map_err(|e| format!("writing {}: {e}", partial.display()))?;
                total += n as u64;
                progress(total);
            }
            file.sync_all()
                .await
                .map_err(|e| format!("syncing {}: {e}", partial.display()))
        }
        .await;
        copied.map_err(TargetError::new)?;
        Ok(pending)
    }

    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), TargetError> {
        let path = self.path(key)?;
        let (partial, mut file) = self.create(&path).await?;
        let pending = PendingFile { partial, path };
        let written = async {
            file.write_all(&bytes).await?;
            file.sync_all().await
        }
        .await;
        if let Err(e) = written {
            return Err(TargetError::new(format!(
                "writing {}: {e}",
                pending.path.display()
            )));
        }
        pending.complete().await
    }

    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, TargetError> {
        let start = self.path(prefix.trim_end_matches('/'))?;
        let mut out = Vec::new();
        let mut dirs = vec![start];
        while let Some(dir) = dirs.pop() {
            let mut entries = match tokio::fs::read_dir(&dir).await {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(TargetError::new(format!(
                        "cannot list {}: {e}",
                        dir.display()
                    )));
                }
            };
            while let Some(entry) = entries
                .next_entry()
                .await
                .map_err(|e| TargetError::new(format!("cannot list {}: {e}", dir.display())))?
            {
                let path = entry.path();
                let Ok(meta) = entry.metadata().await else {
                    continue;
                };
                if meta.is_dir() {
                    dirs.push(path);
                } else if !path.to_string_lossy().contains(PARTIAL) {
                    if let Ok(rel) = path.strip_prefix(&self.dir) {
                        out.push(ObjectInfo {
                            key: rel.to_string_lossy().into_owned(),
                            size: meta.len(),
                        });
                    }
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    pub async fn get(&self, key: &str) -> Result<Reader, TargetError> {
        let path = self.path(key)?;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| TargetError::new(format!("cannot read {}: {e}", path.display())))?;
        Ok(Box::pin(file))
    }

    pub async fn head(&self, key: &str) -> Result<Option<u64>, TargetError> {
        match tokio::fs::metadata(self.path(key)?).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(TargetError::new(format!("{key}: {e}"))),
        }
    }

    pub async fn delete(&self, key: &str) -> Result<(), TargetError> {
        match tokio::fs::remove_file(self.path(key)?).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(TargetError::new(format!("cannot delete {key}: {e}"))),
        }
    }

    pub async fn clean_incomplete(&self, cutoff: DateTime<Utc>) -> Result<u64, TargetError> {
        let mut removed = 0;
        let mut dirs = vec![self.dir.clone()];
        while let Some(dir) = dirs.pop() {
            let Ok(mut entries) = tokio::fs::read_dir(&dir).await else {
                continue;
            };
            while let Ok(Some(entry)) = entries.next_entry().await {
                let Ok(meta) = entry.metadata().await else {
                    continue;
                };
                let path = entry.path();
                if meta.is_dir() {
                    dirs.push(path);
                    continue;
                }
                let old = meta
                    .modified()
                    .ok()
                    .map(DateTime::<Utc>::from)
                    .is_some_and(|m| m < cutoff);
                if old
                    && path.to_string_lossy().contains(PARTIAL)
                    && tokio::fs::remove_file(&path).await.is_ok()
                {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

impl PendingFile {
    pub async fn complete(self) -> Result<(), TargetError> {
        if let Err(e) = tokio::fs::rename(&self.partial, &self.path).await {
            // Dropped on return: the partial file goes with it.
            return Err(TargetError::new(format!(
                "cannot move {} into place: {e}",
                self.path.display()
            )));
        }
        // The rename is durable only once the directory is synced.
        if let Some(parent) = self.path.parent() {
            if let Ok(dir) = tokio::fs::File::open(parent).await {
                let _ = dir.sync_all().await;
            }
        }
        Ok(())
    }
}
