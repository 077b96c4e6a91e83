//! Settings of reading-sync, checked once at start.

use hub_runtime::{ConfigError, Source};
use mongodb::options::ConnectionString;
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

/// Settings (`[reading_sync]` in `hub.toml`, or the environment).
#[derive(Debug, Clone)]
pub struct SyncConfig {
    pub mongo_uri: Option<SecretString>,
    pub mongo_db: String,
    pub mongo_collection: String,
    pub batch_size: usize,
    /// About how many bytes of documents one batch reads (see [`crate::mongo::Inbox::claim`]).
    pub batch_max_bytes: u64,
    pub max_docs: Option<u64>,
    pub claim_timeout: Duration,
    pub mongo_timeout: Duration,
}

/// Half of MongoDB's 16 MiB reply: a batch's documents come in one reply, with room to spare
/// for one document larger than the average.
pub(crate) const DEFAULT_BATCH_MAX_BYTES: u64 = 8 * 1024 * 1024;
/// 256 MiB: beyond this a batch is a memory problem, not a throughput gain.
const MAX_BATCH_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// A week: the largest `CLAIM_TIMEOUT_SECS` accepted.
pub(crate) const MAX_CLAIM_TIMEOUT_SECS: u64 = 7 * 24 * 3600;

impl SyncConfig {
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let invalid = |setting: &str, message: String| ConfigError::Invalid {
            setting: setting.into(),
            message,
        };
        let mongo_uri = src.secret("reading_sync.mongo_uri", "MONGO_URI")?;
        if let Some(uri) = &mongo_uri {
            // The driver's own message can echo the URI, password included: keep only its kind.
            ConnectionString::parse(uri.expose_secret()).map_err(|_| {
                invalid(
                    "MONGO_URI",
                    "not a MongoDB connection string (mongodb://host:port/…)".into(),
                )
            })?;
        }
        let batch_size = src.get_or("reading_sync.batch_size", "BATCH_SIZE", 500usize)?;
        if !(1..=10_000).contains(&batch_size) {
            return Err(invalid(
                "BATCH_SIZE",
                format!("{batch_size} is not 1–10000"),
            ));
        }
        let batch_max_bytes = src.get_or(
            "reading_sync.batch_max_bytes",
            "BATCH_MAX_BYTES",
            DEFAULT_BATCH_MAX_BYTES,
        )?;
        if !(1..=MAX_BATCH_MAX_BYTES).contains(&batch_max_bytes) {
            return Err(invalid(
                "BATCH_MAX_BYTES",
                format!("{batch_max_bytes} is not 1–{MAX_BATCH_MAX_BYTES}"),
            ));
        }
        let claim_timeout =
            src.seconds_or("reading_sync.claim_timeout_secs", "CLAIM_TIMEOUT_SECS", 600)?;
        // 0 would release the claims of a runner still working; a week is beyond any sane run.
        if !(1..=MAX_CLAIM_TIMEOUT_SECS).contains(&claim_timeout.as_secs()) {
            return Err(invalid(
                "CLAIM_TIMEOUT_SECS",
                format!(
                    "{} is not 1–{MAX_CLAIM_TIMEOUT_SECS} seconds",
                    claim_timeout.as_secs()
                ),
            ));
        }
        let max_docs = src
            .get::<u64>("reading_sync.max_docs", "SYNC_MAX_DOCS")?
            .filter(|n| *n > 0);
        Ok(Self {
            mongo_uri,
            mongo_db: src.get_or(
                "reading_sync.mongo_db",
                "MONGO_DB",
                "reading-analytics".to_owned(),
            )?,
            mongo_collection: src.get_or(
                "reading_sync.mongo_collection",
                "MONGO_COLLECTION",
                "articles".to_owned(),
            )?,
            batch_size,
            batch_max_bytes,
            max_docs,
            claim_timeout,
            mongo_timeout: src.seconds_or(
                "reading_sync.mongo_timeout_secs",
                "MONGO_TIMEOUT_SECS",
                10,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(env: &[(&str, &str)]) -> Result<SyncConfig, ConfigError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        SyncConfig::from_source(&Source::from_parts(None, env).expect("source"))
    }

    #[test]
    fn defaults_match_the_seed() {
        let cfg = config(&[("MONGO_URI", "mongodb://127.0.0.1:27017/")]).expect("valid");
        assert_eq!(cfg.mongo_db, "reading-analytics");
        assert_eq!(cfg.mongo_collection, "articles");
        assert_eq!(cfg.batch_size, 500);
        assert_eq!(cfg.batch_max_bytes, 8 * 1024 * 1024);
        assert_eq!(cfg.max_docs, None);
        assert_eq!(cfg.claim_timeout, Duration::from_secs(600));
        assert!(config(&[]).expect("valid").mongo_uri.is_none());
    }

    #[test]
    fn bad_settings_fail_start_naming_the_setting_without_echoing_secrets() {
        let err = config(&[("MONGO_URI", "http://reader:s3cret@db:27017")]).expect_err("bad uri");
        let text = err.to_string();
        assert!(
            text.contains("MONGO_URI") && !text.contains("s3cret"),
            "{text}"
        );
        for size in ["0", "10001", "many"] {
            let err = config(&[("BATCH_SIZE", size)]).expect_err("bad batch size");
            assert!(err.to_string().contains("BATCH_SIZE"), "{err}");
        }
        for bytes in ["0", "268435457", "lots"] {
            let err = config(&[("BATCH_MAX_BYTES", bytes)]).expect_err("bad batch bytes");
            assert!(err.to_string().contains("BATCH_MAX_BYTES"), "{err}");
        }
        for secs in ["0", "604801", "18446744073709551615"] {
            let err = config(&[("CLAIM_TIMEOUT_SECS", secs)]).expect_err("bad claim timeout");
            assert!(err.to_string().contains("CLAIM_TIMEOUT_SECS"), "{err}");
        }
    }
}
