//! The manifest written beside each backup once its upload completed and checked out: a backup
//! is "good" only when its manifest exists. Layout under the target's prefix:
//! `SET/YYYY-MM-DDTHHMMSSZ.<ext>` (`<ext>.age` when encrypted) and
//! `SET/YYYY-MM-DDTHHMMSSZ.manifest.json`.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const SUFFIX: &str = ".manifest.json";
/// Manifests are small; one larger than this is not ours.
pub const MAX_BYTES: u64 = 1024 * 1024;
const STAMP: &str = "%Y-%m-%dT%H%M%SZ";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: u32,
    pub set: String,
    pub kind: String,
    /// The backup object, relative to the target's prefix.
    pub key: String,
    pub sources: Vec<String>,
    /// Bytes stored, and their SHA-256 (hex).
    pub size: u64,
    pub sha256: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub tools: BTreeMap<String, String>,
    /// Files that changed while they were read (stored as far as read).
    #[serde(default)]
    pub changed_while_read: Vec<String>,
    /// Entries left out (unreadable, vanished, not regular files), with why.
    #[serde(default)]
    pub skipped: Vec<String>,
    /// Whether the stored bytes were read back and their SHA-256 compared before this was written.
    pub read_back: bool,
    /// How the stored bytes are encrypted, when they are; `size` and `sha256` are of the
    /// encrypted bytes, so a check needs no key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Encryption {
    /// `age` (age-encryption.org/v1; the key ends in `.age`).
    pub scheme: String,
    /// The public keys (`age1…`) whose identities decrypt it.
    pub recipients: Vec<String>,
}

/// The object key of a backup of `set` started at `at`.
pub fn object_key(set: &str, at: DateTime<Utc>, ext: &str) -> String {
    format!("{set}/{}.{ext}", at.format(STAMP))
}

/// The manifest key of a backup object key.
pub fn manifest_key(object_key: &str) -> String {
    let stem = object_key
        .split_once('.')
        .map_or(object_key, |(stem, _)| stem);
    format!("{stem}{SUFFIX}")
}

/// The manifest key a good backup of `set` started at `at` has, whatever its extension.
pub fn manifest_key_at(set: &str, at: DateTime<Utc>) -> String {
    format!("{set}/{}{SUFFIX}", at.format(STAMP))
}

/// The time in a key's name (`SET/2026-12-03T010000Z…`), if it has one.
pub fn time_of(key: &str) -> Option<DateTime<Utc>> {
    let name = key.rsplit('/').next()?;
    let stamp = name.get(..18)?;
    NaiveDateTime::parse_from_str(stamp, STAMP)
        .ok()
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_the_set_and_the_time() {
        let at = DateTime::parse_from_rfc3339("2026-12-03T01:00:07Z")
            .expect("time")
            .with_timezone(&Utc);
        let key = object_key("grafana", at, "tar.zst");
        assert_eq!(key, "grafana/2026-12-03T010007Z.tar.zst");
        assert_eq!(
            manifest_key(&key),
            "grafana/2026-12-03T010007Z.manifest.json"
        );
        assert_eq!(manifest_key_at("grafana", at), manifest_key(&key));
        assert_eq!(time_of(&key), Some(at));
        assert_eq!(time_of(&manifest_key(&key)), Some(at));
        assert_eq!(time_of("grafana/notes.txt"), None);
    }
}
