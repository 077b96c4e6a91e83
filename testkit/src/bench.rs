//! The benches' figures for `make bench`'s report: one JSON line per measurement appended to the
//! file BENCH_RESULTS names (the format `hub-bench report` reads, bench/src/results.rs). Without
//! the variable nothing is written and the benches only print their tables.

use std::io::Write;

/// Appends `{"metric", "series", "value"}` to `$BENCH_RESULTS`, when it is set.
pub fn record(metric: &str, series: &str, value: f64) {
    let Ok(path) = std::env::var("BENCH_RESULTS") else {
        return;
    };
    let line = serde_json::json!({"metric": metric, "series": series, "value": value});
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| writeln!(f, "{line}"));
    if let Err(e) = written {
        panic!("BENCH_RESULTS {path}: {e}");
    }
}
