//! Client-side encryption of backups to `age` X25519 recipients, for buckets off-site: the
//! stream is encrypted on its way to the target (no temporary file, memory bounded by two
//! pipes), and decrypted the same way on its way back from it. Only public keys are needed to
//! back up; the identity (secret key) is needed only to restore, so it can stay off the host.
//!
//! The stored object is an age file (age-encryption.org/v1); its key ends in [`SUFFIX`]. The
//! manifest's size and SHA-256 are of those encrypted bytes, so checking a backup needs no key.

use crate::source::{Notes, Produced};
use secrecy::{ExposeSecret, SecretString};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use tokio_util::io::SyncIoBridge;
use tokio_util::task::AbortOnDropHandle;

/// What an encrypted backup's key ends in, after the format's own extension (`.dump.age`).
pub const SUFFIX: &str = ".age";
/// The manifest's name for the format.
pub const SCHEME: &str = "age";
/// age encrypts in 64 KiB chunks; reading the plain stream in pieces that size keeps the
/// encryptor from waiting on many small reads.
const CHUNK: usize = 64 * 1024;
/// Bytes between the encryptor and the uploader (as between a producer and the uploader).
const PIPE_BYTES: usize = 256 * 1024;
/// An identity file holds a few keys; one larger than this is not one.
const MAX_IDENTITY_FILE: u64 = 1024 * 1024;

/// The public keys a set's backups are encrypted to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipients(Vec<age::x25519::Recipient>);

impl Recipients {
    /// Parses `age1…` keys, given one by one (a comma-separated setting already split, or a
    /// TOML array). The message never repeats a value: someone may paste a secret key here.
    pub fn parse<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut keys = Vec::new();
        for (i, item) in items.into_iter().map(str::trim).enumerate() {
            if item.is_empty() {
                continue;
            }
            if item.to_ascii_uppercase().starts_with("AGE-SECRET-KEY-") {
                return Err(format!(
                    "item {} is a secret key (an identity), not a recipient: give its public \
                     key (`age-keygen -y FILE` prints it) and keep the secret one off this host",
                    i + 1
                ));
            }
            let key = item.parse::<age::x25519::Recipient>().map_err(|e| {
                format!(
                    "item {} is not an age X25519 public key (age1…): {e}",
                    i + 1
                )
            })?;
            keys.push(key);
        }
        if keys.is_empty() {
            return Err("names no recipient (comma-separated age1… public keys)".into());
        }
        Ok(Self(keys))
    }

    /// The keys as written (`age1…`), for the manifest.
    pub fn keys(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

/// `plain`'s stream encrypted to `to` while it flows. The encryptor's verdict joins the
/// producer's in `done`, so a failing encryptor fails the backup just as a failing producer
/// does; dropping (aborting) `done` aborts the producer too.
pub fn wrap(plain: Produced, to: &Recipients) -> Produced {
    let Produced {
        reader,
        done: producer,
        ext,
        sources,
    } = plain;
    let (writer, encrypted) = tokio::io::duplex(PIPE_BYTES);
    let input = BufReader::with_capacity(CHUNK, SyncIoBridge::new(reader));
    let output = SyncIoBridge::new(writer);
    let recipients = to.0.clone();
    let encrypting = tokio::task::spawn_blocking(move || encrypt(input, output, &recipients));
    let producer = AbortOnDropHandle::new(producer);
    let done = tokio::spawn(async move {
        let encrypted = encrypting.await;
        // The producer's failure explains more than the encryptor's (which then usually has
        // none: it saw the stream end), so it is reported first.
        let notes: Notes = producer
            .await
            .map_err(|e| format!("the producer stopped: {e}"))??;
        encrypted.map_err(|e| format!("the encryptor stopped: {e}"))??;
        Ok(notes)
    });
    Produced {
        reader: Box::pin(encrypted),
        done,
        ext: format!("{ext}{SUFFIX}"),
        sources,
    }
}

fn encrypt(
    mut input: impl Read,
    output: SyncIoBridge<tokio::io::DuplexStream>,
    to: &[age::x25519::Recipient],
) -> Result<(), String> {
    let encryptor = age::Encryptor::with_recipients(to.iter().map(|r| r as &dyn age::Recipient))
        .map_err(|e| format!("age: {e}"))?;
    let mut sealed = encryptor
        .wrap_output(output)
        .map_err(|e| format!("encrypting: {e}"))?;
    std::io::copy(&mut input, &mut sealed).map_err(|e| format!("encrypting: {e}"))?;
    // Without `finish` the last chunk is missing and the file does not decrypt.
    let mut output = sealed.finish().map_err(|e| format!("encrypting: {e}"))?;
    output.flush().map_err(|e| format!("encrypting: {e}"))?;
    output.shutdown().map_err(|e| format!("encrypting: {e}"))
}

/// The X25519 identities (secret keys) of an identity file, as `age-keygen` writes it: one
/// `AGE-SECRET-KEY-1…` a line; empty lines and lines starting with `#` are ignored.
pub struct Identities {
    keys: Vec<age::x25519::Identity>,
    file: PathBuf,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identities")
            .field("file", &self.file)
            .field("public", &self.public())
            .finish()
    }
}

impl Identities {
    /// Reads `file`. Messages name the file and a line number, never a line's text.
    pub fn load(file: &Path) -> Result<Self, String> {
        let mut text = String::new();
        std::fs::File::open(file)
            .and_then(|f| f.take(MAX_IDENTITY_FILE).read_to_string(&mut text))
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        // Dropped (and so wiped) with the keys parsed from it.
        let text = SecretString::from(text);
        let mut keys = Vec::new();
        for (n, line) in text.expose_secret().lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            keys.push(line.parse::<age::x25519::Identity>().map_err(|_| {
                format!(
                    "{} line {}: not an age X25519 identity (AGE-SECRET-KEY-1…)",
                    file.display(),
                    n + 1
                )
            })?);
        }
        if keys.is_empty() {
            return Err(format!("{} holds no age identity", file.display()));
        }
        Ok(Self {
            keys,
            file: file.to_path_buf(),
        })
    }

    /// The public keys of these identities (`age1…`).
    pub fn public(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| k.to_public().to_string())
            .collect()
    }

    /// The plain bytes of the age file `stored`, read on a blocking thread.
    pub fn decrypt<R: Read>(
        &self,
        stored: R,
    ) -> Result<age::stream::StreamReader<BufReader<R>>, String> {
        let decryptor = age::Decryptor::new_buffered(BufReader::with_capacity(CHUNK, stored))
            .map_err(|e| format!("not an age file: {e}"))?;
        decryptor
            .decrypt(self.keys.iter().map(|k| k as &dyn age::Identity))
            .map_err(|e| format!("cannot decrypt with {}: {e}", self.file.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn produced(reader: crate::source::Stream, verdict: Result<Notes, String>) -> Produced {
        Produced {
            reader,
            done: tokio::spawn(async move { verdict }),
            ext: "tar.zst".into(),
            sources: vec!["test".into()],
        }
    }

    fn identity_file(dir: &Path, keys: &[&age::x25519::Identity]) -> PathBuf {
        let path = dir.join("identity.txt");
        let mut text = String::from("# created: by a test\n\n");
        for k in keys {
            text.push_str(&format!(
                "# public key: {}\n{}\n",
                k.to_public(),
                age::secrecy::ExposeSecret::expose_secret(&k.to_string())
            ));
        }
        std::fs::write(&path, text).expect("identity file");
        path
    }

    #[tokio::test]
    async fn a_stream_encrypts_while_it_flows_and_decrypts_with_the_identity() {
        let key = age::x25519::Identity::generate();
        let to = Recipients::parse([key.to_public().to_string().as_str()]).expect("recipient");
        let plain: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let out = wrap(
            produced(
                Box::pin(std::io::Cursor::new(plain.clone())),
                Ok(Notes::default()),
            ),
            &to,
        );
        assert_eq!(out.ext, "tar.zst.age");
        let mut stored = Vec::new();
        let mut reader = out.reader;
        reader.read_to_end(&mut stored).await.expect("read");
        out.done.await.expect("join").expect("verdict");
        assert!(stored.starts_with(b"age-encryption.org/v1\n"));
        assert!(
            !stored.windows(64).any(|w| w == &plain[..64]),
            "no plaintext"
        );

        let dir = tempfile::TempDir::new().expect("dir");
        let other = age::x25519::Identity::generate();
        let ids = Identities::load(&identity_file(dir.path(), &[&other, &key])).expect("load");
        assert_eq!(
            ids.public(),
            [other.to_public(), key.to_public()].map(|k| k.to_string())
        );
        let mut back = Vec::new();
        ids.decrypt(stored.as_slice())
            .expect("header")
            .read_to_end(&mut back)
            .expect("decrypt");
        assert!(back == plain, "round trip");

        let stranger = Identities::load(&identity_file(dir.path(), &[&other])).expect("load");
        let err = stranger
            .decrypt(stored.as_slice())
            .err()
            .expect("wrong key");
        assert!(err.contains("cannot decrypt with"), "{err}");
    }

    /// A reader that gives some bytes, then fails.
    struct Failing(usize);

    impl tokio::io::AsyncRead for Failing {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            if self.0 == 0 {
                return std::task::Poll::Ready(Err(std::io::Error::other("disk gone")));
            }
            let n = self.0.min(buf.remaining());
            buf.put_slice(&vec![1u8; n]);
            self.0 -= n;
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_failing_producer_or_encryptor_fails_the_verdict() {
        let key = age::x25519::Identity::generate();
        let to = Recipients::parse([key.to_public().to_string().as_str()]).expect("recipient");
        for (reader, verdict, expect) in [
            (
                Box::pin(std::io::Cursor::new(vec![0u8; 1000])) as crate::source::Stream,
                Err("pg_dump failed (signal 9)".to_owned()),
                "pg_dump failed",
            ),
            (
                Box::pin(Failing(200_000)),
                Ok(Notes::default()),
                "disk gone",
            ),
        ] {
            let out = wrap(produced(reader, verdict), &to);
            let mut reader = out.reader;
            // The stream just ends; the verdict says it must not be kept.
            let _ = reader.read_to_end(&mut Vec::new()).await;
            let err = out.done.await.expect("join").expect_err("failed");
            assert!(err.contains(expect), "{err}");
        }
    }

    #[test]
    fn recipients_are_checked_and_never_echoed() {
        let a = age::x25519::Identity::generate().to_public().to_string();
        let b = age::x25519::Identity::generate().to_public().to_string();
        let both = Recipients::parse([a.as_str(), " ", b.as_str()]).expect("two keys");
        assert_eq!(both.keys(), [a.clone(), b]);
        let secret = age::x25519::Identity::generate().to_string();
        let secret = age::secrecy::ExposeSecret::expose_secret(&secret).to_owned();
        for (items, says) in [
            (
                vec![a.as_str(), "age1notakey"],
                "item 2 is not an age X25519",
            ),
            (vec![secret.as_str()], "is a secret key"),
            (vec!["", " "], "names no recipient"),
        ] {
            let err = Recipients::parse(items.iter().copied()).expect_err("invalid");
            assert!(err.contains(says), "{err}");
            assert!(
                !err.contains("age1notakey") && !err.contains(&secret),
                "{err}"
            );
        }
    }

    #[test]
    fn a_bad_identity_file_names_the_line_not_its_text() {
        let dir = tempfile::TempDir::new().expect("dir");
        let path = dir.path().join("id");
        std::fs::write(&path, "# comment\nAGE-SECRET-KEY-1NOTAKEY\n").expect("write");
        let err = Identities::load(&path).expect_err("invalid");
        assert!(err.contains("line 2") && !err.contains("NOTAKEY"), "{err}");
        std::fs::write(&path, "# only comments\n").expect("write");
        let err = Identities::load(&path).expect_err("empty");
        assert!(err.contains("holds no age identity"), "{err}");
        let err = Identities::load(&dir.path().join("missing")).expect_err("missing");
        assert!(err.contains("cannot read"), "{err}");
    }
}
