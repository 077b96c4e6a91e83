//! Settings of metrics-flush.

use hub_runtime::{ConfigError, Source};
use secrecy::SecretString;
use std::time::Duration;

/// Settings (`[metrics_flush]` in `hub.toml`, or the environment).
#[derive(Debug, Clone)]
pub struct FlushConfig {
    pub token: Option<SecretString>,
    pub max_samples: usize,
    pub max_future: Duration,
}

impl FlushConfig {
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        Ok(Self {
            token: src.secret("metrics_flush.token", "HUB_COLLECTOR_TOKEN")?,
            max_samples: src.get_or("metrics_flush.max_samples", "METRICS_MAX_SAMPLES", 10_000)?,
            max_future: src.seconds_or(
                "metrics_flush.max_future_secs",
                "METRICS_MAX_FUTURE_SECS",
                300,
            )?,
        })
    }
}
