//! Secrets from OpenBao (or Vault), where the old hub kept them: with `BAO_ADDR` and `BAO_TOKEN`
//! (or `BAO_TOKEN_FILE`) set, each secret of the KV v2 engine at mount `BAO_KV_MOUNT`
//! (`secret`) under `BAO_KV_PATH` (`observability-hub`) is read once at start and its fields
//! become the settings below — unless that setting (or its `_FILE`) is already in the
//! environment: explicit environment variables win. A secret that does not exist is skipped;
//! OpenBao unreachable or refusing the token stops start-up with an error naming `BAO_ADDR`,
//! never a silent fallback (to SQLite, say). Values are never logged.

use crate::config::{ConfigError, Source};
use secrecy::ExposeSecret;
use std::time::Duration;

/// Secret (under `BAO_KV_PATH`) → its fields → the setting each becomes.
pub const SECRETS: &[(&str, &[(&str, &str)])] = &[
    (
        "postgres",
        &[
            ("host", "DB_HOST"),
            ("port", "DB_PORT"),
            ("user", "DB_USER"),
            ("dbname", "DB_NAME"),
            ("server_db_password", "SERVER_DB_PASSWORD"),
            ("sslmode", "DB_SSLMODE"),
            ("url", "DATABASE_URL"),
        ],
    ),
    ("mongo", &[("uri", "MONGO_URI")]),
    ("webhook", &[("secret", "GITHUB_WEBHOOK_SECRET")]),
    ("collector", &[("token", "HUB_COLLECTOR_TOKEN")]),
];

/// How long start-up waits for OpenBao.
const TIMEOUT: Duration = Duration::from_secs(10);

impl Source {
    /// This source with the secrets of OpenBao filled in (see the module docs); unchanged when
    /// `BAO_ADDR` is unset.
    pub async fn with_openbao(mut self) -> Result<Self, ConfigError> {
        let Some(addr) = self.raw("openbao.addr", "BAO_ADDR") else {
            return Ok(self);
        };
        let failed = |message: String| ConfigError::OpenBao {
            addr: addr.clone(),
            message,
        };
        let token = self
            .secret("openbao.token", "BAO_TOKEN")?
            .ok_or_else(|| failed("BAO_TOKEN (or BAO_TOKEN_FILE) is not set".into()))?;
        let mount = self.get_or("openbao.kv_mount", "BAO_KV_MOUNT", "secret".to_owned())?;
        let prefix = self.get_or(
            "openbao.kv_path",
            "BAO_KV_PATH",
            "observability-hub".to_owned(),
        )?;
        let mut client = reqwest::Client::builder().timeout(TIMEOUT);
        if let Some(path) = self.raw("openbao.cacert", "BAO_CACERT") {
            let pem = std::fs::read(&path)
                .map_err(|e| failed(format!("cannot read BAO_CACERT {path}: {e}")))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| failed(format!("BAO_CACERT {path} is not a PEM certificate: {e}")))?;
            client = client.add_root_certificate(cert);
        }
        let client = client
            .build()
            .map_err(|e| failed(format!("cannot build an HTTP client: {e}")))?;
        let base = addr.trim_end_matches('/');
        for (name, fields) in SECRETS {
            let path = format!("{mount}/data/{prefix}/{name}");
            let resp = client
                .get(format!("{base}/v1/{path}"))
                .header("X-Vault-Token", token.expose_secret())
                .send()
                .await
                .map_err(|e| failed(format!("cannot reach it: {}", without_url(&e))))?;
            let status = resp.status();
            if status == reqwest::StatusCode::NOT_FOUND {
                tracing::debug!(secret = %path, "no such secret in OpenBao; skipped");
                continue;
            }
            let body: serde_json::Value = resp.json().await.unwrap_or_default();
            if !status.is_success() {
                let why = body["errors"]
                    .as_array()
                    .map(|e| {
                        e.iter()
                            .filter_map(|m| m.as_str())
                            .collect::<Vec<_>>()
                            .join("; ")
                    })
                    .unwrap_or_default();
                return Err(failed(format!(
                    "reading {path} answered {status}{}{why}",
                    if why.is_empty() { "" } else { ": " }
                )));
            }
            let data = &body["data"]["data"];
            for (field, setting) in *fields {
                let value = match &data[*field] {
                    serde_json::Value::String(s) if !s.is_empty() => s.clone(),
                    serde_json::Value::Number(n) => n.to_string(),
                    _ => continue,
                };
                if self.set_if_unset(setting, value) {
                    tracing::info!(setting, secret = %path, "setting read from OpenBao");
                }
            }
        }
        Ok(self)
    }
}

/// reqwest's error text without the URL it names (an address is not a secret, but the rest of
/// a URL may one day be).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "…");
    }
    let source = std::error::Error::source(e).map(|s| s.to_string());
    match source {
        Some(s) if !text.contains(&s) => format!("{text} ({s})"),
        _ => text,
    }
}
