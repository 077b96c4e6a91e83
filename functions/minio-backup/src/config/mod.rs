//! Settings of minio-backup, checked once at start: the backup sets, the target, retention,
//! encryption.
//!
//! Encryption: `BACKUP_AGE_RECIPIENTS` (`age1…,age1…`, age X25519 public keys) encrypts every
//! set's backups to those keys, for a bucket off-site; a set in `hub.toml` may name its own
//! `age_recipients` (a comma-separated string or an array), which replace the default.
//! `BACKUP_AGE_IDENTITY_FILE` names an age identity file (as `age-keygen` writes it), read
//! only by a restore of an encrypted backup: backing up needs no secret key.

use crate::encrypt::Recipients;
use crate::retention::Policy;
use hub_runtime::{ConfigError, Source};
use secrecy::{ExposeSecret, SecretString};
use std::path::PathBuf;

/// What one set backs up.
#[derive(Debug, Clone)]
pub enum SetKind {
    /// `pg_dump --format=custom` of the database this URL names.
    Postgres { url: SecretString },
    /// A directory tree as a zstd-compressed tar stream.
    Dir { path: PathBuf },
    /// The hub's own store: `pg_dump` of `DATABASE_URL`, or a consistent copy of the embedded
    /// SQLite file (`VACUUM INTO`). The set backed up when no other is declared, so a bare
    /// `make run` has something to back up.
    HubStore,
}

#[derive(Debug, Clone)]
pub struct SetConfig {
    pub name: String,
    pub kind: SetKind,
    pub policy: Policy,
    /// Encrypt this set's backups to these keys (`BACKUP_AGE_RECIPIENTS`, or the set's
    /// `age_recipients`); `None`: stored as produced.
    pub encrypt_to: Option<Recipients>,
}

/// Where backups go.
#[derive(Debug, Clone)]
pub enum TargetConfig {
    /// A directory: the same layout and manifests as a bucket, files renamed into place only
    /// when complete.
    Local {
        dir: PathBuf,
    },
    S3(S3Config),
}

#[derive(Debug, Clone)]
pub struct S3Config {
    pub endpoint: String,
    pub bucket: String,
    pub prefix: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: SecretString,
}

#[derive(Debug, Clone)]
pub struct BackupConfig {
    pub sets: Vec<SetConfig>,
    pub target: TargetConfig,
    /// Read every backup back after the upload and compare its SHA-256 (`BACKUP_VERIFY`).
    pub verify_readback: bool,
    /// The client tools (`BACKUP_PG_DUMP`, `BACKUP_PG_RESTORE`): a dump needs a `pg_dump` at
    /// least as new as the server, which may not be the one on `PATH`.
    pub pg_dump: PathBuf,
    pub pg_restore: PathBuf,
    /// The age identity file a restore of an encrypted backup decrypts with
    /// (`BACKUP_AGE_IDENTITY_FILE`); read only then, so a host that only backs up need not
    /// hold the secret key.
    pub age_identity_file: Option<PathBuf>,
}

fn invalid(setting: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting: setting.into(),
        message: message.into(),
    }
}

/// Set names become object-key segments and metric labels: `[a-z0-9_-]{1,64}`, or
/// `SET/DATABASE` for each database of a `postgres` set that lists several.
fn valid_name(name: &str) -> bool {
    let segment = |s: &str| {
        (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    };
    match name.split_once('/') {
        Some((set, db)) => segment(set) && segment(db),
        None => segment(name),
    }
}

/// The sets a `postgres` set stands for: itself when it names no `databases` (the database
/// of its URL), else one set `NAME/DATABASE` per database listed, each dumped on its own from
/// the same server — a custom-format dump holds one database, and separate objects restore
/// and expire one by one.
fn postgres_sets(
    name: &str,
    url: SecretString,
    databases: Option<Vec<String>>,
    setting: &str,
    template: &SetConfig,
) -> Result<Vec<SetConfig>, ConfigError> {
    let Some(databases) = databases else {
        return Ok(vec![SetConfig {
            name: name.to_owned(),
            kind: SetKind::Postgres { url },
            ..template.clone()
        }]);
    };
    databases
        .iter()
        .map(|db| {
            let url = crate::source::with_database(url.expose_secret(), db)
                .map_err(|e| invalid(setting, e))?;
            Ok(SetConfig {
                name: format!("{name}/{db}"),
                kind: SetKind::Postgres { url: url.into() },
                ..template.clone()
            })
        })
        .collect()
}

fn policy(src: &Source, key: &str, fallback: Policy) -> Result<Policy, ConfigError> {
    let get = |what: &str, default: u32| {
        let env = format!("BACKUP_KEEP_{}", what.to_uppercase());
        // Per-set values live only in hub.toml; the environment sets the default policy.
        if key == "minio_backup" {
            src.get_or(&format!("{key}.keep_{what}"), &env, default)
        } else {
            src.get_or(&format!("{key}.keep_{what}"), "", default)
        }
    };
    Ok(Policy {
        keep_last: get("last", fallback.keep_last)?,
        keep_daily: get("daily", fallback.keep_daily)?,
        keep_weekly: get("weekly", fallback.keep_weekly)?,
        keep_monthly: get("monthly", fallback.keep_monthly)?,
    })
}

/// The age recipients `key` (or `env`) names: a comma-separated string, or in `hub.toml` also
/// an array of strings. The error names the setting, never a value (it may be a secret key
/// pasted in the wrong place).
fn recipients(src: &Source, key: &str, env: &str) -> Result<Option<Recipients>, ConfigError> {
    let setting = if env.is_empty() {
        key.to_owned()
    } else {
        format!("{env} ({key})")
    };
    let items = match src.list(key, env)? {
        Some(items) => items,
        // Set but holding only separators: an error, not "no encryption".
        None if src.raw(key, env).is_some() => Vec::new(),
        None => return Ok(None),
    };
    Recipients::parse(items.iter().map(String::as_str))
        .map(Some)
        .map_err(|e| invalid(&setting, e))
}

/// Like the system it replaces, which kept seven nightly folders.
const DEFAULT_POLICY: Policy = Policy {
    keep_last: 7,
    keep_daily: 0,
    keep_weekly: 0,
    keep_monthly: 0,
};

impl BackupConfig {
    pub fn from_source(src: &Source, data_dir: &std::path::Path) -> Result<Self, ConfigError> {
        let encrypt_to = recipients(src, "minio_backup.age_recipients", "BACKUP_AGE_RECIPIENTS")?;
        let any_keep = ["LAST", "DAILY", "WEEKLY", "MONTHLY"]
            .iter()
            .any(|k| src.raw("", &format!("BACKUP_KEEP_{k}")).is_some())
            || src.table("minio_backup").is_some_and(|t| {
                ["keep_last", "keep_daily", "keep_weekly", "keep_monthly"]
                    .iter()
                    .any(|k| t.contains_key(*k))
            });
        let base = if any_keep {
            Policy::default()
        } else {
            DEFAULT_POLICY
        };
        let default_policy = policy(src, "minio_backup", base)?;
        let mut sets = Vec::new();
        let template = SetConfig {
            name: String::new(),
            kind: SetKind::HubStore,
            policy: default_policy,
            encrypt_to: encrypt_to.clone(),
        };
        if let Some(url) = src.secret("minio_backup.database_url", "BACKUP_DATABASE_URL")? {
            let databases = src.list("minio_backup.databases", "BACKUP_DATABASES")?;
            sets.extend(postgres_sets(
                "postgres",
                url,
                databases,
                "BACKUP_DATABASE_URL",
                &template,
            )?);
        } else if src
            .raw("minio_backup.databases", "BACKUP_DATABASES")
            .is_some()
        {
            return Err(invalid(
                "BACKUP_DATABASES",
                "names databases on the server of BACKUP_DATABASE_URL, which is not set",
            ));
        }
        if let Some(dirs) = src.raw("minio_backup.dirs", "BACKUP_DIRS") {
            for item in dirs.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                let (name, path) = item
                    .split_once('=')
                    .ok_or_else(|| invalid("BACKUP_DIRS", format!("{item:?} is not name=/path")))?;
                let path = PathBuf::from(path.trim());
                if !path.is_absolute() {
                    return Err(invalid(
                        "BACKUP_DIRS",
                        format!("{}: the path must be absolute", name.trim()),
                    ));
                }
                sets.push(SetConfig {
                    name: name.trim().to_owned(),
                    kind: SetKind::Dir { path },
                    policy: default_policy,
                    encrypt_to: encrypt_to.clone(),
                });
            }
        }
        if let Some(table) = src.table("minio_backup.sets") {
            let mut names: Vec<&String> = table.keys().collect();
            names.sort();
            for name in names {
                let key = format!("minio_backup.sets.{name}");
                let set = SetConfig {
                    name: name.clone(),
                    policy: policy(src, &key, default_policy)?,
                    encrypt_to: recipients(src, &format!("{key}.age_recipients"), "")?
                        .or_else(|| encrypt_to.clone()),
                    ..template.clone()
                };
                let kind = match src.raw(&format!("{key}.kind"), "").as_deref() {
                    Some("postgres") => {
                        let url = src.secret(&format!("{key}.url"), "")?.ok_or_else(|| {
                            invalid(&key, "a postgres set needs url (or url_file)")
                        })?;
                        let databases = src.list(&format!("{key}.databases"), "")?;
                        sets.extend(postgres_sets(name, url, databases, &key, &set)?);
                        continue;
                    }
                    Some("dir") => {
                        let path: PathBuf = src
                            .get(&format!("{key}.path"), "")?
                            .ok_or_else(|| invalid(&key, "a dir set needs path"))?;
                        if !path.is_absolute() {
                            return Err(invalid(&key, "path must be absolute"));
                        }
                        SetKind::Dir { path }
                    }
                    Some("hub") => SetKind::HubStore,
                    other => {
                        return Err(invalid(
                            &key,
                            format!("kind must be postgres, dir or hub, not {other:?}"),
                        ));
                    }
                };
                sets.push(SetConfig { kind, ..set });
            }
        }
        if sets.is_empty() {
            sets.push(SetConfig {
                name: "hub".into(),
                ..template
            });
        }
        let mut seen = std::collections::HashSet::new();
        for s in &sets {
            if !valid_name(&s.name) {
                return Err(invalid(
                    "BACKUP_DIRS / [minio_backup.sets]",
                    format!(
                        "set name {:?} is not [a-z0-9_-]{{1,64}} (nor SET/DATABASE, each part so)",
                        s.name
                    ),
                ));
            }
            // `a` and `a/b` would share the key prefix `a/`.
            let parent = s.name.split_once('/').map(|(p, _)| p);
            if let Some(p) = parent.filter(|p| sets.iter().any(|o| o.name == *p)) {
                return Err(invalid(
                    "BACKUP_DIRS / [minio_backup.sets]",
                    format!("set {:?} would share its keys with set {p:?}", s.name),
                ));
            }
            if !seen.insert(s.name.clone()) {
                return Err(invalid(
                    "BACKUP_DIRS / [minio_backup.sets]",
                    format!("set {:?} is declared twice", s.name),
                ));
            }
        }
        let target = match src.raw("minio_backup.s3_endpoint", "BACKUP_S3_ENDPOINT") {
            Some(endpoint) => {
                url::Url::parse(&endpoint)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .ok_or_else(|| invalid("BACKUP_S3_ENDPOINT", "must be an http(s):// URL"))?;
                let required = |key: &str, env: &str| {
                    src.raw(key, env)
                        .ok_or_else(|| invalid(env, "is required with BACKUP_S3_ENDPOINT"))
                };
                TargetConfig::S3(S3Config {
                    endpoint,
                    bucket: required("minio_backup.s3_bucket", "BACKUP_S3_BUCKET")?,
                    prefix: src
                        .raw("minio_backup.s3_prefix", "BACKUP_S3_PREFIX")
                        .unwrap_or_default()
                        .trim_matches('/')
                        .to_owned(),
                    region: src
                        .raw("minio_backup.s3_region", "BACKUP_S3_REGION")
                        .unwrap_or_else(|| "us-east-1".into()),
                    access_key_id: required(
                        "minio_backup.s3_access_key_id",
                        "BACKUP_S3_ACCESS_KEY_ID",
                    )?,
                    secret_access_key: src
                        .secret(
                            "minio_backup.s3_secret_access_key",
                            "BACKUP_S3_SECRET_ACCESS_KEY",
                        )?
                        .ok_or_else(|| {
                            invalid(
                                "BACKUP_S3_SECRET_ACCESS_KEY",
                                "is required with BACKUP_S3_ENDPOINT",
                            )
                        })?,
                })
            }
            None => TargetConfig::Local {
                dir: src
                    .get("minio_backup.local_dir", "BACKUP_LOCAL_DIR")?
                    .unwrap_or_else(|| data_dir.join("backups")),
            },
        };
        Ok(Self {
            sets,
            target,
            verify_readback: src.get_or("minio_backup.verify", "BACKUP_VERIFY", true)?,
            pg_dump: src.get_or("minio_backup.pg_dump", "BACKUP_PG_DUMP", "pg_dump".into())?,
            pg_restore: src.get_or(
                "minio_backup.pg_restore",
                "BACKUP_PG_RESTORE",
                "pg_restore".into(),
            )?,
            age_identity_file: src
                .get("minio_backup.age_identity_file", "BACKUP_AGE_IDENTITY_FILE")?,
        })
    }
}

#[cfg(test)]
mod tests;
