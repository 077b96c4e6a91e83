//! Pushing spooled samples to metrics-flush.

use crate::sample::Sample;
use crate::spool::Spool;
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

/// Samples per push when replaying a backlog.
const BATCH: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("gateway unreachable: {0}")]
    Unreachable(#[from] reqwest::Error),
    /// Bad data that will never be accepted: a 400, 413 or 422 carrying the gateway's own JSON
    /// error (a proxy's error page is not the gateway's verdict, so it is retried).
    #[error("gateway rejected the batch ({0}): {1}")]
    Rejected(u16, String),
    /// Worth retrying later (401 until the token is fixed, 429, 5xx, ...).
    #[error("gateway answered {0}: {1}")]
    Failed(u16, String),
    #[error("spool: {0}")]
    Spool(#[from] std::io::Error),
}

#[derive(Debug)]
pub struct Pusher {
    client: reqwest::Client,
    url: String,
    token: Option<SecretString>,
}

/// What a flush did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    pub pushed: usize,
    pub rejected: usize,
}

impl Pusher {
    pub fn new(gateway: &str, token: Option<SecretString>) -> Result<Self, reqwest::Error> {
        Ok(Self {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
            url: format!("{}/api/metrics", gateway.trim_end_matches('/')),
            token,
        })
    }

    async fn push(&self, samples: &[&Sample]) -> Result<(), PushError> {
        let mut req = self
            .client
            .post(&self.url)
            .json(&serde_json::json!({ "samples": samples }));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t.expose_secret());
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        let json = serde_json::from_str::<serde_json::Value>(&body).ok();
        if (200..300).contains(&status) {
            // Only metrics-flush's answer, with its counts, means the samples are stored; an
            // empty 204 or a proxy's HTML page is not an acceptance, and deleting the spool on
            // it would lose them.
            return match json.as_ref().filter(|v| is_acceptance(v, samples.len())) {
                Some(_) => Ok(()),
                None => Err(PushError::Failed(
                    status,
                    format!("not metrics-flush's answer: {}", excerpt(&body)),
                )),
            };
        }
        let gateway_error = json
            .as_ref()
            .and_then(|v| v["error"].as_str().map(str::to_owned));
        Err(match (status, gateway_error) {
            (400 | 413 | 422, Some(message)) => PushError::Rejected(status, message),
            (_, Some(message)) => PushError::Failed(status, message),
            (_, None) => PushError::Failed(status, excerpt(&body)),
        })
    }

    /// Pushes the whole spool, oldest first, deleting what was accepted. Stops at the first
    /// failure that may pass (the rest stays spooled); a batch the gateway rejects is retried
    /// sample by sample so one bad sample cannot hold back the others.
    pub async fn flush(&self, spool: &Spool) -> Result<Flushed, PushError> {
        let mut done = Flushed::default();
        loop {
            let pending = spool.pending()?;
            if pending.is_empty() {
                return Ok(done);
            }
            let chunk = &pending[..pending.len().min(BATCH)];
            let loaded = spool.load(chunk);
            let samples: Vec<&Sample> = loaded.iter().map(|(_, s)| s).collect();
            let paths: Vec<_> = loaded.iter().map(|(p, _)| p.clone()).collect();
            match self.push(&samples).await {
                Ok(()) => {
                    spool.remove(&paths);
                    done.pushed += paths.len();
                }
                Err(PushError::Rejected(..)) => {
                    for (path, sample) in &loaded {
                        match self.push(&[sample]).await {
                            Ok(()) => {
                                spool.remove(std::slice::from_ref(path));
                                done.pushed += 1;
                            }
                            Err(PushError::Rejected(status, why)) => {
                                tracing::error!(file = %path.display(), status, %why, "sample rejected; moved to rejected/");
                                spool.reject(std::slice::from_ref(path));
                                done.rejected += 1;
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// metrics-flush's answer to a push of `sent` samples: `{"samples", "inserted", "duplicates"}`.
fn is_acceptance(answer: &serde_json::Value, sent: usize) -> bool {
    let count = |k: &str| answer[k].as_u64();
    matches!(
        (count("samples"), count("inserted"), count("duplicates")),
        (Some(n), Some(_), Some(_)) if n == sent as u64
    )
}

/// The start of a body, for a log line.
fn excerpt(body: &str) -> String {
    let text: String = body.chars().take(120).collect();
    if text.len() < body.len() {
        format!("{text}…")
    } else {
        text
    }
}
