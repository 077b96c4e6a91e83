//! The checks metrics-flush runs on a pushed batch before writing anything: the JSONB payload
//! check (`payload::check`), and parsing a body into a `Batch` then checking and flattening it
//! into rows (`rows`), as `POST /api/metrics` does.
//!
//! Checks: nothing panics; a payload `check` accepts is JSON `serde_json` parses; a batch
//! `rows` accepts gives one row per metric, each with a `[a-z0-9_]{1,64}` type and a payload
//! that passes `check`.
#![no_main]

use chrono::DateTime;
use libfuzzer_sys::fuzz_target;
use metrics_flush::{Batch, FlushConfig, payload, rows};
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if payload::check(text).is_ok() {
        assert!(
            serde_json::from_str::<serde_json::Value>(text).is_ok(),
            "{text:?}"
        );
    }

    let Ok(batch) = serde_json::from_str::<Batch>(text) else {
        return;
    };
    let metrics: usize = batch.samples.iter().map(|s| s.metrics.len()).sum();
    let cfg = FlushConfig {
        token: None,
        max_samples: 100,
        max_future: Duration::from_secs(300),
    };
    // A fixed clock keeps runs reproducible (the fixtures' 2026-11-23T12:00:05Z).
    let now = DateTime::from_timestamp(1_795_435_205, 0).expect("valid time");
    if let Ok(rows) = rows(batch, &cfg, now) {
        assert_eq!(rows.len(), metrics);
        for r in &rows {
            assert!(!r.metric_type.is_empty() && r.metric_type.len() <= 64);
            assert!(payload::check(&r.payload).is_ok(), "{:?}", r.payload);
        }
    }
});
