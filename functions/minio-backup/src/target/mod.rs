//! Where backups go: an S3-compatible bucket, or a local directory with the same layout. Both
//! take a stream of unknown length, count and hash what they store, and make it visible only
//! when told the producer succeeded (`Pending::complete`); anything else leaves no object.

mod local;
mod s3;

use crate::config::TargetConfig;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::pin::Pin;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt};

pub type Reader = Pin<Box<dyn AsyncRead + Send>>;
/// Told the bytes moved so far (progress bars on a terminal).
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

/// `reader`, telling `progress` how many bytes went through it.
pub fn counting(reader: Reader, progress: Progress) -> Reader {
    Box::pin(Counting {
        inner: reader,
        count: 0,
        progress,
    })
}

struct Counting {
    inner: Reader,
    count: u64,
    progress: Progress,
}

impl AsyncRead for Counting {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = self.inner.as_mut().poll_read(cx, buf);
        if let std::task::Poll::Ready(Ok(())) = &polled {
            self.count += (buf.filled().len() - before) as u64;
            (self.progress)(self.count);
        }
        polled
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TargetError(pub String);

impl TargetError {
    pub(crate) fn new(what: impl std::fmt::Display) -> Self {
        Self(what.to_string())
    }
}

/// One stored object.
#[derive(Debug, Clone)]
pub struct ObjectInfo {
    /// Relative to the target's prefix.
    pub key: String,
    pub size: u64,
}

/// An upload whose bytes are all sent but not yet visible.
#[derive(Debug)]
pub struct Pending {
    pub size: u64,
    pub sha256: String,
    inner: PendingInner,
}

#[derive(Debug)]
enum PendingInner {
    Local(local::PendingFile),
    S3(s3::PendingUpload),
}

impl Pending {
    /// Makes the object visible under its key.
    pub async fn complete(self) -> Result<(), TargetError> {
        match self.inner {
            PendingInner::Local(p) => p.complete().await,
            PendingInner::S3(p) => p.complete().await,
        }
    }

    /// Throws the bytes away: nothing stays under the key, nor half-uploaded.
    pub async fn abort(self) {
        match self.inner {
            // Its drop removes the partial file.
            PendingInner::Local(p) => drop(p),
            PendingInner::S3(p) => p.abort().await,
        }
    }
}

#[derive(Debug, Clone)]
pub enum Target {
    Local(local::Local),
    S3(s3::S3),
}

impl Target {
    pub fn new(cfg: &TargetConfig) -> Self {
        match cfg {
            TargetConfig::Local { dir } => Target::Local(local::Local::new(dir.clone())),
            TargetConfig::S3(c) => Target::S3(s3::S3::new(c)),
        }
    }

    /// For logs and the status page (no credentials).
    pub fn describe(&self) -> String {
        match self {
            Target::Local(l) => format!("directory {}", l.dir().display()),
            Target::S3(s) => s.describe(),
        }
    }

    /// Reads `reader` to its end into a pending object at `key`, counting and hashing the bytes.
    /// On any error the partial object is removed before the error is returned.
    pub async fn upload(
        &self,
        key: &str,
        reader: Reader,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<Pending, TargetError> {
        let mut reader = Hashing::new(reader);
        let inner = match self {
            Target::Local(l) => PendingInner::Local(l.upload(key, &mut reader, progress).await?),
            Target::S3(s) => PendingInner::S3(s.upload(key, &mut reader, progress).await?),
        };
        Ok(Pending {
            size: reader.count,
            sha256: hex::encode(reader.hash.finalize()),
            inner,
        })
    }

    /// A small object (a manifest), written whole.
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), TargetError> {
        match self {
            Target::Local(l) => l.put(key, bytes).await,
            Target::S3(s) => s.put(key, bytes).await,
        }
    }

    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, TargetError> {
        match self {
            Target::Local(l) => l.list(prefix).await,
            Target::S3(s) => s.list(prefix).await,
        }
    }

    pub async fn get(&self, key: &str) -> Result<Reader, TargetError> {
        match self {
            Target::Local(l) => l.get(key).await,
            Target::S3(s) => s.get(key).await,
        }
    }

    /// A whole small object (a manifest).
    pub async fn read_small(&self, key: &str, limit: u64) -> Result<Vec<u8>, TargetError> {
        let mut out = Vec::new();
        self.get(key)
            .await?
            .take(limit)
            .read_to_end(&mut out)
            .await
            .map_err(|e| TargetError::new(format!("reading {key}: {e}")))?;
        Ok(out)
    }

    /// The stored size of `key`, `None` when absent.
    pub async fn head(&self, key: &str) -> Result<Option<u64>, TargetError> {
        match self {
            Target::Local(l) => l.head(key).await,
            Target::S3(s) => s.head(key).await,
        }
    }

    pub async fn delete(&self, key: &str) -> Result<(), TargetError> {
        match self {
            Target::Local(l) => l.delete(key).await,
            Target::S3(s) => s.delete(key).await,
        }
    }

    /// Removes uploads started before `cutoff` that never completed (a crash, a kill -9);
    /// returns how many.
    pub async fn clean_incomplete(&self, cutoff: DateTime<Utc>) -> Result<u64, TargetError> {
        match self {
            Target::Local(l) => l.clean_incomplete(cutoff).await,
            Target::S3(s) => s.clean_incomplete(cutoff).await,
        }
    }

    /// The SHA-256 of what is stored at `key`, read back whole (streamed).
    pub async fn sha256(&self, key: &str) -> Result<(u64, String), TargetError> {
        self.sha256_reporting(key, Arc::new(|_| {})).await
    }

    /// [`Target::sha256`], telling `progress` the bytes read so far.
    pub async fn sha256_reporting(
        &self,
        key: &str,
        progress: Progress,
    ) -> Result<(u64, String), TargetError> {
        let mut reader = Hashing::new(counting(self.get(key).await?, progress));
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = reader
                .read(&mut buf)
                .await
                .map_err(|e| TargetError::new(format!("reading {key} back: {e}")))?;
            if n == 0 {
                break;
            }
        }
        Ok((reader.count, hex::encode(reader.hash.finalize())))
    }
}

/// A reader that counts and hashes what passes through it.
pub(crate) struct Hashing {
    inner: Reader,
    hash: Sha256,
    count: u64,
}

impl Hashing {
    fn new(inner: Reader) -> Self {
        Self {
            inner,
            hash: Sha256::new(),
            count: 0,
        }
    }
}

impl AsyncRead for Hashing {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = self.inner.as_mut().poll_read(cx, buf);
        if let std::task::Poll::Ready(Ok(())) = &polled {
            let new = &buf.filled()[before..];
            self.hash.update(new);
            self.count += new.len() as u64;
        }
        polled
    }
}

/// Fills `buf` from `reader` as far as it goes; returns how many bytes (fewer only at the end).
pub(crate) async fn fill(
    reader: &mut (dyn AsyncRead + Send + Unpin),
    buf: &mut Vec<u8>,
    want: usize,
) -> std::io::Result<usize> {
    buf.clear();
    buf.reserve(want);
    while buf.len() < want {
        let n = (&mut *reader)
            .take((want - buf.len()) as u64)
            .read_buf(buf)
            .await?;
        if n == 0 {
            break;
        }
    }
    Ok(buf.len())
}
