//! Layered configuration: built-in defaults, then an optional `hub.toml`, then the environment.
//!
//! Every setting has a dotted key in `hub.toml` (`webhook_gitops.branch`) and an environment
//! variable (`GITOPS_BRANCH`); the environment wins. Secrets may also come from a file named by
//! `<VAR>_FILE` (or `<key>_file` in `hub.toml`), the usual way to hand over systemd credentials and
//! Kubernetes secrets. The whole source is read once at start-up (the Lambda init phase) and handed
//! to each function, so no handler ever reads the process environment.

use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// Environment variable naming the config file; without it `./hub.toml` is used when present.
pub const CONFIG_ENV: &str = "HUB_CONFIG";
const DEFAULT_CONFIG_FILE: &str = "hub.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("invalid value for {setting}: {message}")]
    Invalid { setting: String, message: String },
    #[error("cannot read secrets from OpenBao at BAO_ADDR={addr}: {message}")]
    OpenBao { addr: String, message: String },
    #[error("cannot read secret file {path} (named by {setting}): {source}")]
    SecretFile {
        setting: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The raw settings a process starts with. Values are looked up by key; typed structs are built by
/// the code that owns them (`GatewayConfig`, each function's config).
#[derive(Clone, Default)]
pub struct Source {
    file: toml::Table,
    file_path: Option<PathBuf>,
    env: HashMap<String, String>,
}

// Values may be secrets, so Debug names only where they came from.
impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source")
            .field("file_path", &self.file_path)
            .field("env_vars", &self.env.len())
            .finish_non_exhaustive()
    }
}

impl Source {
    /// Reads the process environment and the config file it points at (`HUB_CONFIG`, else
    /// `./hub.toml` if it exists). An explicit `path` (the `--config` flag) takes precedence.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        Self::from_parts(path, std::env::vars().collect())
    }

    /// Builds a source from an explicit environment, so tests never touch the process environment.
    pub fn from_parts(
        path: Option<&Path>,
        env: HashMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let explicit = path
            .map(Path::to_path_buf)
            .or_else(|| env.get(CONFIG_ENV).map(PathBuf::from));
        let file_path = match explicit {
            Some(p) => Some(p),
            None => Some(PathBuf::from(DEFAULT_CONFIG_FILE)).filter(|p| p.is_file()),
        };
        let file = match &file_path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.clone(),
                    source,
                })?;
                text.parse::<toml::Table>()
                    .map_err(|source| ConfigError::Parse {
                        path: p.clone(),
                        source,
                    })?
            }
            None => toml::Table::new(),
        };
        Ok(Self {
            file,
            file_path,
            env,
        })
    }

    /// Sets environment variable `env` unless it, or its `_FILE`, is set already; returns
    /// whether it was set. For secrets brought in from a store (OpenBao), which must not
    /// override what the operator set explicitly.
    pub(crate) fn set_if_unset(&mut self, env: &str, value: String) -> bool {
        let set = |k: &str| self.env.get(k).is_some_and(|v| !v.is_empty());
        if set(env) || set(&format!("{env}_FILE")) {
            return false;
        }
        self.env.insert(env.to_owned(), value);
        true
    }

    fn file_value(&self, key: &str) -> Option<&toml::Value> {
        let mut parts = key.split('.');
        let mut value = self.file.get(parts.next()?)?;
        for part in parts {
            value = value.as_table()?.get(part)?;
        }
        Some(value)
    }

    /// A TOML table from the file (for settings that are maps, such as per-repository hooks).
    pub fn table(&self, key: &str) -> Option<&toml::Table> {
        self.file_value(key)?.as_table()
    }

    /// The raw string for a setting: environment first, then the file. Empty means unset.
    pub fn raw(&self, key: &str, env: &str) -> Option<String> {
        if let Some(v) = self.env.get(env).filter(|v| !v.is_empty()) {
            return Some(v.clone());
        }
        match self.file_value(key)? {
            toml::Value::String(s) if s.is_empty() => None,
            toml::Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }

    /// A list: comma-separated in `env` or in a string at `key`, or an array of strings at
    /// `key`; items trimmed, empty ones dropped. `None` when unset or empty.
    pub fn list(&self, key: &str, env: &str) -> Result<Option<Vec<String>>, ConfigError> {
        let items: Vec<String> = match (
            self.env.get(env).filter(|v| !v.is_empty()),
            self.file_value(key),
        ) {
            (Some(text), _) => text.split(',').map(str::to_owned).collect(),
            (None, Some(toml::Value::Array(items))) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .ok_or_else(|| ConfigError::Invalid {
                    setting: if env.is_empty() {
                        key.to_owned()
                    } else {
                        format!("{env} ({key})")
                    },
                    message: "must be a list of strings".into(),
                })?,
            (None, Some(toml::Value::String(text))) => text.split(',').map(str::to_owned).collect(),
            (None, Some(_)) => {
                return Err(ConfigError::Invalid {
                    setting: key.to_owned(),
                    message: "must be a list of strings or a comma-separated string".into(),
                });
            }
            (None, None) => return Ok(None),
        };
        let items: Vec<String> = items
            .iter()
            .map(|i| i.trim().to_owned())
            .filter(|i| !i.is_empty())
            .collect();
        Ok((!items.is_empty()).then_some(items))
    }

    /// A typed setting, `None` when unset; a value that does not parse is an error naming both
    /// places the setting can come from.
    pub fn get<T>(&self, key: &str, env: &str) -> Result<Option<T>, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        self.raw(key, env)
            .map(|raw| {
                raw.parse::<T>().map_err(|e| ConfigError::Invalid {
                    setting: format!("{env} ({key})"),
                    message: format!("{raw:?}: {e}"),
                })
            })
            .transpose()
    }

    /// A typed setting with a default.
    pub fn get_or<T>(&self, key: &str, env: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        Ok(self.get(key, env)?.unwrap_or(default))
    }

    /// A duration given in whole seconds.
    pub fn seconds_or(&self, key: &str, env: &str, default: u64) -> Result<Duration, ConfigError> {
        self.get_or(key, env, default).map(Duration::from_secs)
    }

    /// A secret: `ENV`, then the file named by `ENV_FILE`, then `key` and `key_file` in `hub.toml`.
    /// Trailing newlines of secret files are dropped (editors and `echo` add them).
    pub fn secret(&self, key: &str, env: &str) -> Result<Option<SecretString>, ConfigError> {
        let secret = self.secret_value(key, env)?;
        if let Some(s) = &secret {
            crate::redact::remember(s.expose_secret());
        }
        Ok(secret)
    }

    fn secret_value(&self, key: &str, env: &str) -> Result<Option<SecretString>, ConfigError> {
        if let Some(v) = self.env.get(env).filter(|v| !v.is_empty()) {
            return Ok(Some(SecretString::from(v.clone())));
        }
        let env_file = format!("{env}_FILE");
        let key_file = format!("{key}_file");
        let path = match self.env.get(&env_file).filter(|v| !v.is_empty()) {
            Some(p) => Some((env_file, PathBuf::from(p))),
            None => {
                if let Some(toml::Value::String(v)) = self.file_value(key) {
                    if !v.is_empty() {
                        return Ok(Some(SecretString::from(v.clone())));
                    }
                }
                match self.file_value(&key_file) {
                    Some(toml::Value::String(p)) if !p.is_empty() => {
                        Some((key_file, PathBuf::from(p)))
                    }
                    _ => None,
                }
            }
        };
        let Some((setting, path)) = path else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::SecretFile {
            setting,
            path: path.clone(),
            source,
        })?;
        let trimmed = text.trim_end_matches(['\n', '\r']);
        Ok((!trimmed.is_empty()).then(|| SecretString::from(trimmed.to_owned())))
    }
}

/// Settings every process built on the runtime shares, gateway and Lambda alike.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Where the embedded store and other local state live (`HUB_DATA_DIR`, default `./var`).
    pub data_dir: PathBuf,
    /// `DATABASE_URL`: PostgreSQL when set, the embedded SQLite file otherwise.
    pub database_url: Option<SecretString>,
    /// Upper bound for one HTTP request, handler included (`HUB_REQUEST_TIMEOUT_SECS`, 30).
    pub request_timeout: Duration,
    /// How long a request body may take to arrive (`HUB_BODY_TIMEOUT_SECS`, 10); it is read
    /// before the request takes one of its function's concurrency slots, so a client trickling
    /// a body cannot hold one.
    pub body_timeout: Duration,
    /// Largest accepted request body (`HUB_MAX_BODY_BYTES`, 5 MiB: GitHub push payloads with many
    /// commits are large, and 25 MB is GitHub's own cap).
    pub max_body_bytes: usize,
    /// Requests one function serves at once before answering 429 (`HUB_MAX_CONCURRENCY`, 64).
    pub max_concurrency: usize,
    /// How long queued run rows wait for more writes to share their transaction
    /// (`HUB_STORE_BATCH_WINDOW_MS`, 2). A write someone awaits (a webhook's replay key) never
    /// waits for it.
    pub store_batch_window: Duration,
    /// Most writes committed in one transaction (`HUB_STORE_BATCH_MAX`, 512).
    pub store_batch_max: usize,
    /// Writes queued for the store before callers wait for room (`HUB_STORE_QUEUE`, 8192): the
    /// bound on memory held by writes not yet committed.
    pub store_queue: usize,
}

impl HubConfig {
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        Ok(Self {
            data_dir: src.get_or("hub.data_dir", "HUB_DATA_DIR", PathBuf::from("var"))?,
            database_url: match src.secret("hub.database_url", "DATABASE_URL")? {
                Some(url) => Some(url),
                None => old_hub_database_url(src)?,
            },
            request_timeout: src.seconds_or(
                "hub.request_timeout_secs",
                "HUB_REQUEST_TIMEOUT_SECS",
                30,
            )?,
            body_timeout: src.seconds_or("hub.body_timeout_secs", "HUB_BODY_TIMEOUT_SECS", 10)?,
            max_body_bytes: src.get_or(
                "hub.max_body_bytes",
                "HUB_MAX_BODY_BYTES",
                5 * 1024 * 1024,
            )?,
            max_concurrency: src.get_or("hub.max_concurrency", "HUB_MAX_CONCURRENCY", 64)?,
            store_batch_window: Duration::from_millis(src.get_or(
                "hub.store_batch_window_ms",
                "HUB_STORE_BATCH_WINDOW_MS",
                2,
            )?),
            store_batch_max: src
                .get_or("hub.store_batch_max", "HUB_STORE_BATCH_MAX", 512usize)?
                .max(1),
            store_queue: src
                .get_or("hub.store_queue", "HUB_STORE_QUEUE", 8192usize)?
                .max(1),
        })
    }
}

/// The old hub's PostgreSQL settings, used when `DATABASE_URL` is unset and `DB_HOST` is set:
/// `DB_HOST`, `DB_PORT` (30432, its k3s NodePort), `DB_USER` (`server`), `DB_NAME` (`homelab`),
/// `SERVER_DB_PASSWORD` (or `_FILE`) and `DB_SSLMODE` (`disable`).
fn old_hub_database_url(src: &Source) -> Result<Option<SecretString>, ConfigError> {
    let Some(host) = src.raw("db.host", "DB_HOST") else {
        return Ok(None);
    };
    let invalid = |setting: &str, message: String| ConfigError::Invalid {
        setting: setting.into(),
        message,
    };
    let port: u16 = src.get_or("db.port", "DB_PORT", 30432)?;
    let user = src.get_or("db.user", "DB_USER", "server".to_owned())?;
    let name = src.get_or("db.name", "DB_NAME", "homelab".to_owned())?;
    let sslmode = src.get_or("db.sslmode", "DB_SSLMODE", "disable".to_owned())?;
    const SSLMODES: [&str; 6] = [
        "disable",
        "allow",
        "prefer",
        "require",
        "verify-ca",
        "verify-full",
    ];
    if !SSLMODES.contains(&sslmode.as_str()) {
        return Err(invalid(
            "DB_SSLMODE",
            format!("{sslmode:?} is not one of {}", SSLMODES.join(", ")),
        ));
    }
    let mut url = url::Url::parse("postgres://localhost").expect("a valid base URL");
    // An IPv6 address goes in brackets.
    let host_part = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.clone()
    };
    url.set_host(Some(&host_part))
        .map_err(|e| invalid("DB_HOST", format!("{host:?}: {e}")))?;
    let built = url
        .set_port(Some(port))
        .and_then(|()| url.set_username(&user))
        .map_err(|()| invalid("DB_USER", format!("{user:?} cannot be used in a URL")));
    built?;
    if let Some(password) = src.secret("db.password", "SERVER_DB_PASSWORD")? {
        url.set_password(Some(password.expose_secret()))
            .map_err(|()| invalid("SERVER_DB_PASSWORD", "cannot be used in a URL".into()))?;
    }
    url.set_path(&name);
    url.query_pairs_mut().append_pair("sslmode", &sslmode);
    let url = SecretString::from(url.to_string());
    // The whole URL holds the password: never echoed (percent-encoded, it differs from the
    // password itself, which is already remembered).
    crate::redact::remember(url.expose_secret());
    Ok(Some(url))
}

#[cfg(test)]
mod tests;

/// The OpenTelemetry SDK's standard variables, read once where logging starts (before the
/// rest of the configuration, so that its errors can be logged). Blank counts as unset.
#[derive(Debug, Clone, Default)]
pub struct OtelEnv {
    pub endpoint: Option<String>,
    pub protocol: Option<String>,
    pub service_name: Option<String>,
    /// `OTEL_METRIC_EXPORT_INTERVAL`, in milliseconds.
    pub metric_export_interval: Option<String>,
}

impl OtelEnv {
    pub fn from_env() -> Self {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        Self {
            endpoint: env("OTEL_EXPORTER_OTLP_ENDPOINT"),
            protocol: env("OTEL_EXPORTER_OTLP_PROTOCOL"),
            service_name: env("OTEL_SERVICE_NAME"),
            metric_export_interval: env("OTEL_METRIC_EXPORT_INTERVAL"),
        }
    }
}
