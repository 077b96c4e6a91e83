//! What the agent has done, as Prometheus metrics: `--metrics-addr` serves them at `/metrics`
//! so Prometheus sees a collector that stopped sampling or cannot push, per node, without asking
//! the gateway (whose `metrics-flush` runs only show the pushes that arrived).
//!
//! Only counts and times: no sample values, no host details, no token. That is why the listener
//! needs no credentials; it is still off unless asked for.

use crate::spool::Spool;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Counters the agent's loop updates; read by the `/metrics` handler.
#[derive(Debug, Default)]
pub struct Stats {
    samples: AtomicU64,
    pushed: AtomicU64,
    rejected: AtomicU64,
    push_failures: AtomicU64,
    lost: AtomicU64,
    last_sample: AtomicI64,
    last_push: AtomicI64,
}

impl Stats {
    /// A sample was taken at `unix` seconds (whether or not it could be spooled).
    pub fn sampled(&self, unix: i64) {
        self.samples.fetch_add(1, Ordering::Relaxed);
        self.last_sample.store(unix, Ordering::Relaxed);
    }

    /// A flush of the spool ended: the gateway took `pushed` samples and refused `rejected`.
    pub fn flushed(&self, pushed: usize, rejected: usize, unix: i64) {
        self.pushed.fetch_add(pushed as u64, Ordering::Relaxed);
        self.rejected.fetch_add(rejected as u64, Ordering::Relaxed);
        self.last_push.store(unix, Ordering::Relaxed);
    }

    /// A push failed; what it carried stays spooled.
    pub fn push_failed(&self) {
        self.push_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// A sample could not be spooled, so it is gone.
    pub fn lost(&self) {
        self.lost.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition (format 0.0.4) of these counters and of the spool's state.
    pub fn render(&self, spool: &Spool) -> String {
        let count = |a: &AtomicU64| a.load(Ordering::Relaxed) as i64;
        // Unreadable spool: -1, which no real count is, rather than a plausible 0.
        let pending = spool.pending().map_or(-1, |p| p.len() as i64);
        const COUNTER: &str = "counter";
        const GAUGE: &str = "gauge";
        // One line per series: (name after `hub_collector_`, type, help, value).
        #[rustfmt::skip]
        let series: [(&str, &str, &str, i64); 9] = [
            ("samples_total", COUNTER, "Samples taken since the agent started.", count(&self.samples)),
            ("samples_pushed_total", COUNTER, "Samples the gateway accepted since the agent started.", count(&self.pushed)),
            ("samples_rejected_total", COUNTER, "Samples the gateway refused as invalid (moved to the spool's rejected/).", count(&self.rejected)),
            ("samples_lost_total", COUNTER, "Samples that could not be written to the spool.", count(&self.lost)),
            ("push_failures_total", COUNTER, "Pushes that failed; their samples stayed spooled.", count(&self.push_failures)),
            ("spool_pending_samples", GAUGE, "Samples waiting in the spool (-1: the spool cannot be read).", pending),
            ("spool_dropped_samples_total", COUNTER, "Oldest samples dropped because the spool was full (kept across restarts).", spool.dropped() as i64),
            ("last_sample_timestamp_seconds", GAUGE, "When the last sample was taken (Unix time; 0: none yet).", self.last_sample.load(Ordering::Relaxed)),
            ("last_push_timestamp_seconds", GAUGE, "When the spool was last pushed out whole (Unix time; 0: not yet).", self.last_push.load(Ordering::Relaxed)),
        ];
        let mut out = String::with_capacity(2048);
        for (name, kind, help, value) in series {
            let _ = write!(
                out,
                "# HELP hub_collector_{name} {help}\n# TYPE hub_collector_{name} {kind}\n\
                 hub_collector_{name} {value}\n"
            );
        }
        out
    }
}

/// Serves `GET /metrics` on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, stats: Arc<Stats>, spool: Arc<Spool>) {
    use axum::http::header::CONTENT_TYPE;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let (stats, spool) = (stats.clone(), spool.clone());
            async move {
                (
                    [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
                    stats.render(&spool),
                )
            }
        }),
    );
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "the /metrics listener stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, name: &str) -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing in:\n{text}"))
            .to_owned()
    }

    #[test]
    fn counts_and_spool_state_are_rendered() {
        let dir = tempfile::TempDir::new().expect("dir");
        let spool = Spool::open(dir.path(), 1 << 20).expect("spool");
        let stats = Stats::default();
        stats.sampled(1_700_000_000);
        stats.sampled(1_700_000_060);
        stats.flushed(2, 1, 1_700_000_061);
        stats.push_failed();
        stats.lost();
        let text = stats.render(&spool);
        assert_eq!(value(&text, "hub_collector_samples_total"), "2");
        assert_eq!(value(&text, "hub_collector_samples_pushed_total"), "2");
        assert_eq!(value(&text, "hub_collector_samples_rejected_total"), "1");
        assert_eq!(value(&text, "hub_collector_samples_lost_total"), "1");
        assert_eq!(value(&text, "hub_collector_push_failures_total"), "1");
        assert_eq!(value(&text, "hub_collector_spool_pending_samples"), "0");
        assert_eq!(
            value(&text, "hub_collector_last_sample_timestamp_seconds"),
            "1700000060"
        );
        assert_eq!(
            value(&text, "hub_collector_last_push_timestamp_seconds"),
            "1700000061"
        );
        // Every metric has its HELP and TYPE, as Prometheus' parser expects.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(' ').next().expect("name");
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} has no TYPE"
            );
        }
    }

    /// The k3s alert rules (`k3s/platform/prometheus/rules.yml`) name only series rendered here.
    #[test]
    fn every_collector_series_the_alert_rules_name_is_rendered() {
        let rules = include_str!("../../k3s/platform/prometheus/rules.yml");
        let dir = tempfile::TempDir::new().expect("dir");
        let text = Stats::default().render(&Spool::open(dir.path(), 1).expect("spool"));
        let named: Vec<&str> = rules
            .match_indices("hub_collector_")
            .map(|(at, _)| {
                let rest = &rules[at..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                &rest[..end]
            })
            // The comments' `hub_collector_*` is the prefix, not a series.
            .filter(|name| name.len() > "hub_collector_".len())
            .collect();
        assert!(
            named.contains(&"hub_collector_push_failures_total"),
            "{named:?}"
        );
        for name in named {
            assert!(
                text.contains(&format!("\n{name} ")),
                "rules.yml names {name}"
            );
        }
    }

    #[test]
    fn an_unreadable_spool_is_not_reported_as_empty() {
        let dir = tempfile::TempDir::new().expect("dir");
        let spool = Spool::open(&dir.path().join("q"), 1 << 20).expect("spool");
        std::fs::remove_dir_all(dir.path().join("q")).expect("remove");
        let text = Stats::default().render(&spool);
        assert_eq!(value(&text, "hub_collector_spool_pending_samples"), "-1");
    }
}
