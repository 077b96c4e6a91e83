//! The batch `hub-collector` pushes to metrics-flush (`POST /api/metrics`), defined once for
//! both ends. The container of metrics is a type parameter: the agent builds JSON values, the
//! gateway keeps each metric as raw JSON text it only validates and stores.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One sample of one host: each entry of `metrics` becomes a row of `system_metrics`, its key
/// the `metric_type`, its value the `payload`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample<M> {
    pub time: DateTime<Utc>,
    pub host: String,
    #[serde(default)]
    pub os: String,
    pub metrics: M,
}

/// `{"samples": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch<M> {
    pub samples: Vec<Sample<M>>,
}
