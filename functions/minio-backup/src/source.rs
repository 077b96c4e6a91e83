//! What a set backs up, as one byte stream produced while it is uploaded — no temporary file
//! (but the consistent copy SQLite needs) — plus the producer's verdict, awaited after the last
//! byte: a `pg_dump` that failed or was killed, or a tar that could not be finished, must never
//! become a backup.

use crate::config::SetKind;
use hub_runtime::Store;
use secrecy::{ExposeSecret, SecretString};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinHandle;
use tokio_util::io::SyncIoBridge;

/// Bytes between the producer and the uploader: enough to keep both busy, small enough that
/// memory does not grow with the backup.
const PIPE_BYTES: usize = 256 * 1024;
/// zstd level 3: its default, several hundred MB/s per core.
const ZSTD_LEVEL: i32 = 3;

/// How a producer ended when it did not fail: what it has to say (files that changed while read).
#[derive(Debug, Default, Clone)]
pub struct Notes {
    pub changed: Vec<String>,
    pub skipped: Vec<String>,
    pub tool: Option<String>,
}

/// The bytes of a backup as they are produced.
pub type Stream = Pin<Box<dyn AsyncRead + Send>>;
/// The producer's verdict, once its last byte is out.
pub type Verdict = JoinHandle<Result<Notes, String>>;

pub struct Produced {
    pub reader: Stream,
    pub done: Verdict,
    /// The object name's extension.
    pub ext: String,
    /// What went in, for the manifest (never a password).
    pub sources: Vec<String>,
}

impl std::fmt::Debug for Produced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Produced")
            .field("ext", &self.ext)
            .field("sources", &self.sources)
            .finish_non_exhaustive()
    }
}

/// Starts producing `kind`'s stream. `hub_url` is the hub's own `DATABASE_URL`; `scratch`
/// holds the SQLite copy of the hub's store.
pub async fn produce(
    kind: &SetKind,
    store: &Store,
    hub_url: Option<&SecretString>,
    scratch: &Path,
    pg_dump_bin: &Path,
) -> Result<Produced, String> {
    match kind {
        SetKind::Postgres { url } => pg_dump(pg_dump_bin, url.expose_secret()).await,
        SetKind::Dir { path } => Ok(tar_zstd(path.clone())),
        SetKind::HubStore => match store {
            Store::Postgres(_) => {
                let url = hub_url.ok_or("the hub's PostgreSQL URL is not known")?;
                pg_dump(pg_dump_bin, url.expose_secret()).await
            }
            Store::Sqlite(pool) => sqlite_copy(pool, scratch).await,
        },
    }
}

/// A connection URL without its password (which goes to `PGPASSWORD`, not the process list),
/// and the password.
pub(crate) fn split_password(url: &str) -> Result<(String, Option<String>), String> {
    let mut u = url::Url::parse(url).map_err(|_| "not a postgres:// URL".to_owned())?;
    let password = u.password().map(|p| {
        percent_encoding::percent_decode_str(p)
            .decode_utf8_lossy()
            .into_owned()
    });
    let _ = u.set_password(None);
    Ok((u.to_string(), password))
}

/// `url` pointing at database `name` on the same server (same user, password, options).
pub(crate) fn with_database(url: &str, name: &str) -> Result<String, String> {
    let mut u = url::Url::parse(url).map_err(|_| "not a postgres:// URL".to_owned())?;
    u.set_path(name);
    Ok(u.to_string())
}

/// The database name a URL points at, for the manifest.
fn database_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .map(|u| u.path().trim_start_matches('/').to_owned())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "postgres".into())
}

async fn tool_version(tool: &Path) -> Option<String> {
    let out = tokio::process::Command::new(tool)
        .arg("--version")
        .output()
        .await
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

async fn pg_dump(bin: &Path, url: &str) -> Result<Produced, String> {
    let (dbname, password) = split_password(url)?;
    let tool = tool_version(bin).await;
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args(["--format=custom", "--no-password"])
        .arg(format!("--dbname={dbname}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // The upload stopping (an error, a shutdown) must not leave a dump running.
        .kill_on_drop(true);
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    let mut child = cmd.spawn().map_err(|e| {
        format!(
            "cannot run {}: {e} (is the PostgreSQL client installed? BACKUP_PG_DUMP names it)",
            bin.display()
        )
    })?;
    let stdout = child.stdout.take().ok_or("pg_dump has no stdout")?;
    let mut stderr = child.stderr.take().ok_or("pg_dump has no stderr")?;
    let done = tokio::spawn(async move {
        let mut err = Vec::new();
        // Bounded: a dump that complains endlessly must not fill memory.
        let _ = (&mut stderr).take(16 * 1024).read_to_end(&mut err).await;
        let status = child.wait().await.map_err(|e| format!("pg_dump: {e}"))?;
        if status.success() {
            Ok(Notes {
                tool,
                ..Notes::default()
            })
        } else {
            let text = String::from_utf8_lossy(&err);
            Err(format!("pg_dump failed ({status}): {}", text.trim()))
        }
    });
    Ok(Produced {
        reader: Box::pin(stdout),
        done,
        ext: "dump".into(),
        sources: vec![format!("postgres database {}", database_of(url))],
    })
}

/// Runs `produce` on a blocking thread writing into a pipe whose other end is the stream.
fn blocking_pipe(
    produce: impl FnOnce(&mut dyn Write) -> Result<Notes, String> + Send + 'static,
) -> (Stream, Verdict) {
    let (writer, reader) = tokio::io::duplex(PIPE_BYTES);
    let mut bridge = SyncIoBridge::new(writer);
    let done = tokio::task::spawn_blocking(move || {
        let notes = produce(&mut bridge)?;
        bridge.flush().map_err(|e| format!("stream: {e}"))?;
        bridge.shutdown().map_err(|e| format!("stream: {e}"))?;
        Ok(notes)
    });
    let done = tokio::spawn(async move {
        done.await
            .map_err(|e| format!("the producer stopped: {e}"))?
    });
    (Box::pin(reader), done)
}

fn tar_zstd(root: PathBuf) -> Produced {
    let sources = vec![format!("directory {}", root.display())];
    let (reader, done) = blocking_pipe(move |out| {
        let meta = std::fs::symlink_metadata(&root)
            .map_err(|e| format!("cannot read {}: {e}", root.display()))?;
        if !meta.is_dir() {
            return Err(format!("{} is not a directory", root.display()));
        }
        let enc = zstd::Encoder::new(out, ZSTD_LEVEL).map_err(|e| format!("zstd: {e}"))?;
        let mut tar = tar::Builder::new(enc);
        tar.mode(tar::HeaderMode::Complete);
        let mut notes = Notes::default();
        walk(&mut tar, &root, Path::new(""), &mut notes)?;
        let enc = tar.into_inner().map_err(|e| format!("tar: {e}"))?;
        enc.finish().map_err(|e| format!("zstd: {e}"))?;
        Ok(notes)
    });
    Produced {
        reader,
        done,
        ext: "tar.zst".into(),
        sources,
    }
}

/// Appends `root/rel` and everything under it. Symlinks are stored as links, never followed;
/// sockets, devices and files that vanish or cannot be read are skipped and noted; a file that
/// changes while read is stored as far as it was read (padded to the size it had) and noted.
fn walk<W: Write>(
    tar: &mut tar::Builder<W>,
    root: &Path,
    rel: &Path,
    notes: &mut Notes,
) -> Result<(), String> {
    let dir = root.join(rel);
    let mut entries: Vec<_> = match std::fs::read_dir(&dir) {
        Ok(e) => e.filter_map(Result::ok).collect(),
        Err(e) if rel.as_os_str().is_empty() => {
            return Err(format!("cannot read {}: {e}", dir.display()));
        }
        Err(e) => {
            notes.skipped.push(format!("{}: {e}", rel.display()));
            return Ok(());
        }
    };
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = rel.join(entry.file_name());
        let path = root.join(&name);
        let io = |e: std::io::Error| format!("tar {}: {e}", name.display());
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            notes.skipped.push(format!("{}: vanished", name.display()));
            continue;
        };
        let mut header = tar::Header::new_gnu();
        header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
        if meta.is_dir() {
            header.set_size(0);
            tar.append_data(&mut header, &name, std::io::empty())
                .map_err(io)?;
            walk(tar, root, &name, notes)?;
        } else if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).map_err(io)?;
            header.set_size(0);
            tar.append_link(&mut header, &name, target).map_err(io)?;
        } else if meta.is_file() {
            let file = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) => {
                    notes.skipped.push(format!("{}: {e}", name.display()));
                    continue;
                }
            };
            let mut exact = ExactLen::new(file, meta.len());
            tar.append_data(&mut header, &name, &mut exact)
                .map_err(io)?;
            let after = std::fs::symlink_metadata(&path).ok();
            let moved = after
                .is_none_or(|a| a.len() != meta.len() || a.modified().ok() != meta.modified().ok());
            if exact.short || moved {
                notes.changed.push(name.display().to_string());
            }
        } else {
            notes
                .skipped
                .push(format!("{}: not a regular file", name.display()));
        }
    }
    Ok(())
}

/// Exactly `len` bytes of a file: what it holds up to `len`, then zeros if it shrank meanwhile
/// (a tar entry must be as long as its header says).
struct ExactLen<R> {
    inner: std::io::Take<R>,
    left: u64,
    short: bool,
}

impl<R: Read> ExactLen<R> {
    fn new(inner: R, len: u64) -> Self {
        Self {
            inner: inner.take(len),
            left: len,
            short: false,
        }
    }
}

impl<R: Read> Read for ExactLen<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let n = match self.inner.read(buf)? {
            0 => {
                self.short = true;
                let n = buf
                    .len()
                    .min(usize::try_from(self.left).unwrap_or(usize::MAX));
                buf[..n].fill(0);
                n
            }
            n => n,
        };
        self.left -= n as u64;
        Ok(n)
    }
}

/// A consistent copy of the embedded store (`VACUUM INTO`, which SQLite makes while others
/// write), compressed on its way out; the copy is removed once streamed.
async fn sqlite_copy(pool: &sqlx::SqlitePool, scratch: &Path) -> Result<Produced, String> {
    std::fs::create_dir_all(scratch)
        .map_err(|e| format!("cannot create {}: {e}", scratch.display()))?;
    let copy = scratch.join(format!(".hub-backup-{}.db", uuid::Uuid::new_v4()));
    sqlx::query("VACUUM INTO ?")
        .bind(copy.display().to_string())
        .execute(pool)
        .await
        .map_err(|e| format!("cannot copy the embedded store: {e}"))?;
    let path = copy.clone();
    let (reader, done) = blocking_pipe(move |out| {
        let result = (|| {
            let mut file =
                std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut enc = zstd::Encoder::new(out, ZSTD_LEVEL).map_err(|e| format!("zstd: {e}"))?;
            std::io::copy(&mut file, &mut enc).map_err(|e| format!("stream: {e}"))?;
            enc.finish().map_err(|e| format!("zstd: {e}"))?;
            Ok(Notes::default())
        })();
        let _ = std::fs::remove_file(&path);
        result
    });
    Ok(Produced {
        reader,
        done,
        ext: "sqlite.zst".into(),
        sources: vec!["the hub's embedded store (SQLite)".into()],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_leaves_the_url_for_the_environment() {
        let (url, pw) =
            split_password("postgres://hub:p%40ss@db:5432/homelab?sslmode=disable").expect("url");
        assert_eq!(url, "postgres://hub@db:5432/homelab?sslmode=disable");
        assert_eq!(pw.as_deref(), Some("p@ss"));
        assert_eq!(database_of(&url), "homelab");
        assert!(split_password("not a url").is_err());
    }

    #[test]
    fn a_file_that_shrinks_is_padded_to_its_header_size() {
        let mut r = ExactLen::new(&b"abc"[..], 5);
        let mut out = Vec::new();
        r.read_to_end(&mut out).expect("read");
        assert_eq!((out.as_slice(), r.short), (&b"abc\0\0"[..], true));
        let mut r = ExactLen::new(&b"abcdef"[..], 4);
        let mut out = Vec::new();
        r.read_to_end(&mut out).expect("read");
        assert_eq!((out.as_slice(), r.short), (&b"abcd"[..], false));
    }
}
