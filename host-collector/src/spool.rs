//! The on-disk spool: every sample is written here *before* it is pushed, one file per sample,
//! so a `kill -9` at any moment loses at most the sample being taken. Files are named by sample
//! time, so replay is in order; they are deleted only after the gateway accepted them (a replay
//! after a crash between push and delete is harmless: metrics-flush ignores duplicates).

use crate::sample::Sample;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static SEQ: AtomicU64 = AtomicU64::new(0);
const DROPPED_FILE: &str = "dropped.count";
const REJECTED_DIR: &str = "rejected";
/// Time of the newest sample spooled: (host, whole second) is the key the gateway stores a
/// sample under, so a second sample in the same second would be dropped there as a duplicate.
const LAST_FILE: &str = "last-sample";

#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
}

impl Spool {
    /// Opens (creating) the spool and clears half-written files of an earlier crash.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<Self> {
        fs::create_dir_all(dir.join(REJECTED_DIR))?;
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                let _ = fs::remove_file(&path);
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            max_bytes,
        })
    }

    /// Creates the spool directories again if they were removed while the agent ran.
    fn ensure_dirs(&self) -> io::Result<()> {
        if !self.dir.join(REJECTED_DIR).is_dir() {
            tracing::warn!(spool = %self.dir.display(), "spool directory missing; recreating it");
            fs::create_dir_all(self.dir.join(REJECTED_DIR))?;
        }
        Ok(())
    }

    /// Writes one sample durably (temp file, fsync, rename, fsync of the directory), then drops
    /// the oldest files if the spool is over its bound. Returns how many were dropped. Refuses a
    /// sample in the same second as the last one spooled: the gateway would store nothing for it.
    /// (An earlier second, after the clock was set back, is a different key and is taken.)
    pub fn append(&self, sample: &Sample) -> io::Result<u64> {
        self.ensure_dirs()?;
        if self.last_sample() == Some(sample.time) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "a sample for {} was already taken; hub-collector takes at most one sample \
                     per second (it would be stored as a duplicate)",
                    sample.time.to_rfc3339()
                ),
            ));
        }
        let nanos = sample.time.timestamp_nanos_opt().unwrap_or_default();
        let name = format!(
            "{nanos:020}-{:05}-{:06}.json",
            std::process::id() % 100_000,
            SEQ.fetch_add(1, Ordering::Relaxed) % 1_000_000
        );
        let tmp = self.dir.join(format!("{name}.tmp"));
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(sample).map_err(io::Error::other)?)?;
        f.sync_all()?;
        fs::rename(&tmp, self.dir.join(&name))?;
        fs::File::open(&self.dir)?.sync_all()?;
        fs::write(self.dir.join(LAST_FILE), sample.time.to_rfc3339())?;
        self.enforce_bound()
    }

    /// Time of the newest sample spooled (even if since pushed).
    pub fn last_sample(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let text = fs::read_to_string(self.dir.join(LAST_FILE)).ok()?;
        let time = chrono::DateTime::parse_from_rfc3339(text.trim()).ok()?;
        Some(time.with_timezone(&chrono::Utc))
    }

    /// Spooled samples, oldest first.
    pub fn pending(&self) -> io::Result<Vec<PathBuf>> {
        let mut files: Vec<PathBuf> = fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        Ok(files)
    }

    /// Reads spooled samples; an unreadable file is moved aside rather than blocking the spool.
    pub fn load(&self, paths: &[PathBuf]) -> Vec<(PathBuf, Sample)> {
        let mut out = Vec::with_capacity(paths.len());
        for p in paths {
            match fs::read(p)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Sample>(&b).map_err(|e| e.to_string()))
            {
                Ok(s) => out.push((p.clone(), s)),
                Err(e) => {
                    tracing::error!(file = %p.display(), error = %e, "unreadable spool file; moving it aside");
                    self.reject(std::slice::from_ref(p));
                }
            }
        }
        out
    }

    /// Deletes files the gateway accepted.
    pub fn remove(&self, paths: &[PathBuf]) {
        for p in paths {
            if let Err(e) = fs::remove_file(p) {
                tracing::warn!(file = %p.display(), error = %e, "cannot delete pushed spool file");
            }
        }
    }

    /// Moves files the gateway will never accept (400) to `rejected/` for a human to look at.
    pub fn reject(&self, paths: &[PathBuf]) {
        if let Err(e) = self.ensure_dirs() {
            tracing::warn!(error = %e, "cannot recreate the spool directory");
        }
        for p in paths {
            if let Some(name) = p.file_name() {
                let _ = fs::rename(p, self.dir.join(REJECTED_DIR).join(name));
            }
        }
    }

    /// Samples dropped so far because the spool was full (kept across restarts).
    pub fn dropped(&self) -> u64 {
        fs::read_to_string(self.dir.join(DROPPED_FILE))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    fn enforce_bound(&self) -> io::Result<u64> {
        let files = self.pending()?;
        let mut sizes: Vec<(PathBuf, u64)> = files
            .into_iter()
            .map(|p| {
                let len = fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
                (p, len)
            })
            .collect();
        let mut total: u64 = sizes.iter().map(|(_, l)| l).sum();
        let mut dropped = 0;
        // Oldest first, but never the newest sample.
        while total > self.max_bytes && sizes.len() > 1 {
            let (p, len) = sizes.remove(0);
            fs::remove_file(&p)?;
            total -= len;
            dropped += 1;
        }
        if dropped > 0 {
            let all = self.dropped() + dropped;
            fs::write(self.dir.join(DROPPED_FILE), all.to_string())?;
            tracing::warn!(
                dropped,
                dropped_total = all,
                max_bytes = self.max_bytes,
                "spool full: dropped the oldest samples"
            );
        }
        Ok(dropped)
    }
}
