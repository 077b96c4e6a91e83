//! The batch `hub-collector` pushes to metrics-flush (`POST /api/metrics`), defined once for
//! both ends. The container of metrics is a type parameter: the agent builds JSON values, the
//! gateway keeps each metric as raw JSON text it only validates and stores.

use chrono::{DateTime, FixedOffset, NaiveDateTime, Utc};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

/// One sample of one host: each entry of `metrics` becomes a row of `system_metrics`, its key
/// the `metric_type`, its value the `payload`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample<M> {
    #[serde(deserialize_with = "utc_time")]
    pub time: DateTime<Utc>,
    pub host: String,
    #[serde(default)]
    pub os: String,
    pub metrics: M,
}

/// A time as chrono reads it (RFC 3339, a space allowed for the `T`), with a message that says
/// what is missing when a sender leaves out the UTC offset: without it the instant is unknown.
fn utc_time<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let text = String::deserialize(d)?;
    match text.parse::<DateTime<FixedOffset>>() {
        Ok(t) => Ok(t.with_timezone(&Utc)),
        Err(_) if text.parse::<NaiveDateTime>().is_ok() => Err(D::Error::custom(format!(
            "time {text:?} must carry a UTC offset, e.g. {text}Z"
        ))),
        Err(e) => Err(D::Error::custom(format!("time {text:?}: {e}"))),
    }
}

/// `{"samples": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch<M> {
    pub samples: Vec<Sample<M>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time_of(json: &str) -> Result<DateTime<Utc>, String> {
        serde_json::from_str::<Sample<serde_json::Value>>(json)
            .map(|s| s.time)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn times_need_an_offset() {
        let want = "2026-11-23T12:00:00Z"
            .parse::<DateTime<Utc>>()
            .expect("time");
        for ok in [
            r#"{"time": "2026-11-23T12:00:00Z", "host": "h", "metrics": {}}"#,
            r#"{"time": "2026-11-23T14:00:00+02:00", "host": "h", "metrics": {}}"#,
            r#"{"time": "2026-11-23 12:00:00Z", "host": "h", "metrics": {}}"#,
        ] {
            assert_eq!(time_of(ok), Ok(want), "{ok}");
        }
        let err = time_of(r#"{"time": "2026-11-23T12:00:00", "host": "h", "metrics": {}}"#)
            .expect_err("no offset");
        assert!(err.contains("must carry a UTC offset"), "{err}");
        let err = time_of(r#"{"time": "yesterday", "host": "h", "metrics": {}}"#)
            .expect_err("not a time");
        assert!(err.contains("time \"yesterday\""), "{err}");
    }
}
