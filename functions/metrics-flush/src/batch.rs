//! A pushed batch: its wire shape, and its check-then-flatten into `system_metrics` rows. The
//! whole batch is checked before anything is written: one bad sample rejects it.

use crate::FlushError;
use crate::config::FlushConfig;
use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// Each metric kept as raw JSON text: the gateway only validates and forwards payloads, and
/// parsing them into trees cost most of its CPU and ~25× the body size in memory per request.
pub type Metrics = BTreeMap<String, Box<RawValue>>;

/// One sample as the collector sends it (the wire type `hub-collector` shares).
pub type Sample = hub_core::wire::Sample<Metrics>;

/// `{"samples": [...]}`.
pub type Batch = hub_core::wire::Batch<Metrics>;

/// One row of `system_metrics`.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub time: DateTime<Utc>,
    pub host: String,
    pub os: String,
    pub metric_type: String,
    /// The metric's JSON, as text.
    pub payload: String,
}

fn valid_metric_type(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 64
        && t.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Longest `os` accepted (e.g. "debian 12.7"; PRETTY_NAME strings are far shorter).
const MAX_OS: usize = 256;

/// Checks every sample and flattens the batch into rows; any bad sample rejects the batch.
pub fn rows(batch: Batch, cfg: &FlushConfig, now: DateTime<Utc>) -> Result<Vec<Row>, FlushError> {
    if batch.samples.len() > cfg.max_samples {
        return Err(FlushError::TooMany(batch.samples.len(), cfg.max_samples));
    }
    let latest = now + chrono::Duration::from_std(cfg.max_future).unwrap_or_default();
    let mut rows = Vec::new();
    for (i, s) in batch.samples.into_iter().enumerate() {
        if s.host.is_empty() || s.host.len() > 253 || s.host.chars().any(char::is_control) {
            return Err(FlushError::Invalid(format!(
                "sample {i}: host must be 1–253 printable characters"
            )));
        }
        if s.os.len() > MAX_OS || s.os.chars().any(char::is_control) {
            return Err(FlushError::Invalid(format!(
                "sample {i}: os must be at most {MAX_OS} printable characters"
            )));
        }
        if s.time > latest {
            return Err(FlushError::Invalid(format!(
                "sample {i}: time {} is in the future (now {})",
                s.time.to_rfc3339(),
                now.to_rfc3339()
            )));
        }
        if s.metrics.is_empty() {
            return Err(FlushError::Invalid(format!("sample {i}: no metrics")));
        }
        for (metric_type, payload) in s.metrics {
            if !valid_metric_type(&metric_type) {
                return Err(FlushError::Invalid(format!(
                    "sample {i}: metric type {metric_type:?} is not [a-z0-9_]{{1,64}}"
                )));
            }
            crate::payload::check(payload.get()).map_err(|reason| {
                FlushError::Invalid(format!("sample {i}: metrics.{metric_type}: {reason}"))
            })?;
            rows.push(Row {
                time: s.time,
                host: s.host.clone(),
                os: s.os.clone(),
                metric_type,
                payload: payload.get().to_owned(),
            });
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use std::time::Duration;

    fn cfg() -> FlushConfig {
        FlushConfig {
            token: None,
            max_samples: 3,
            max_future: Duration::from_secs(300),
        }
    }

    fn batch(v: Value) -> Batch {
        serde_json::from_str(&v.to_string()).expect("batch")
    }

    #[test]
    fn samples_flatten_to_one_row_per_metric() {
        let now = Utc::now();
        let b = batch(json!({"samples": [{
            "time": now, "host": "h1", "os": "Debian 12",
            "metrics": {"cpu": {"total": 12.5}, "memory": {"used": 1}}
        }]}));
        let rows = rows(b, &cfg(), now).expect("valid");
        let types: Vec<_> = rows.iter().map(|r| r.metric_type.as_str()).collect();
        assert_eq!(types, ["cpu", "memory"]);
        assert!(
            rows.iter()
                .all(|r| r.host == "h1" && r.os == "Debian 12" && r.time == now)
        );
        assert_eq!(rows[0].payload, r#"{"total":12.5}"#);
    }

    #[test]
    fn bad_samples_reject_the_batch() {
        let now = Utc::now();
        let cases = [
            (
                json!({"time": now + chrono::Duration::hours(1), "host": "h", "metrics": {"cpu": 1}}),
                "is in the future",
            ),
            (
                json!({"time": now, "host": "", "metrics": {"cpu": 1}}),
                "host must be",
            ),
            (
                json!({"time": now, "host": "h\n", "metrics": {"cpu": 1}}),
                "host must be",
            ),
            (
                json!({"time": now, "host": "h", "metrics": {}}),
                "no metrics",
            ),
            (
                json!({"time": now, "host": "h", "metrics": {"CPU Load": 1}}),
                "is not [a-z0-9_]",
            ),
        ];
        for (sample, want) in cases {
            let good = json!({"time": now, "host": "ok", "metrics": {"cpu": 1}});
            let err = rows(batch(json!({"samples": [good, sample]})), &cfg(), now)
                .expect_err("must be rejected");
            assert!(
                err.to_string().contains("sample 1") && err.to_string().contains(want),
                "{err}"
            );
        }
        let four = json!({"samples": [
            {"time": now, "host": "h", "metrics": {"cpu": 1}},
            {"time": now, "host": "h", "metrics": {"cpu": 1}},
            {"time": now, "host": "h", "metrics": {"cpu": 1}},
            {"time": now, "host": "h", "metrics": {"cpu": 1}}]});
        assert!(matches!(
            rows(batch(four), &cfg(), now),
            Err(FlushError::TooMany(4, 3))
        ));
    }
}
