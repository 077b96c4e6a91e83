//! The rows of BENCHMARKS.md: what is compared with what, and the aim of each (issue #18's
//! table, and the earlier issues' aims for the rows it inherits).

use crate::results::{Key, Results, Stat};

/// What a row is held to: its ratio (hub / peer) when it has a peer, else the hub's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Aim {
    AtLeast(f64),
    AtMost(f64),
    /// Reported for context only.
    None,
}

impl Aim {
    fn met(self, v: f64) -> Option<bool> {
        match self {
            Aim::AtLeast(a) => Some(v >= a),
            Aim::AtMost(a) => Some(v <= a),
            Aim::None => None,
        }
    }

    fn describe(self, unit: &str) -> String {
        let (op, a) = match self {
            Aim::AtLeast(a) => ("≥", a),
            Aim::AtMost(a) => ("≤", a),
            Aim::None => return "—".into(),
        };
        if unit == "×" {
            format!("{op} {}×", number(a))
        } else {
            format!("{op} {} {unit}", number(a))
        }
    }
}

#[derive(Debug, Clone)]
pub struct Row {
    pub label: String,
    pub unit: &'static str,
    pub metric: &'static str,
    pub x: Option<f64>,
    pub hub: String,
    /// The peer's series, when the row is a comparison.
    pub peer: Option<String>,
    pub aim: Aim,
}

const HUB: &str = "hub";

fn compare(
    label: String,
    unit: &'static str,
    metric: &'static str,
    x: Option<f64>,
    peer: &'static str,
    aim: Aim,
) -> Row {
    Row {
        label,
        unit,
        metric,
        x,
        hub: HUB.into(),
        peer: Some(peer.into()),
        aim,
    }
}

fn alone(label: String, unit: &'static str, metric: &'static str, series: &str, aim: Aim) -> Row {
    Row {
        label,
        unit,
        metric,
        x: None,
        hub: series.into(),
        peer: None,
        aim,
    }
}

/// The table, in the order of the issue's aims, then the inherited rows. Per-function rows
/// (the Lambda bootstraps) follow the functions the results name.
pub fn table(results: &Results) -> Vec<Row> {
    let mut rows = Vec::new();
    for c in [16.0, 64.0] {
        rows.push(compare(
            format!("signed webhook deliveries/s, {c} connections, durable replay ledger"),
            "req/s",
            "webhook_rps",
            Some(c),
            "webhook",
            Aim::AtLeast(5.0),
        ));
        rows.push(compare(
            format!("signed webhook p99 latency, {c} connections"),
            "ms",
            "webhook_p99_ms",
            Some(c),
            "webhook",
            Aim::AtMost(0.2),
        ));
    }
    rows.push(compare(
        "`/healthz` through the full middleware stack".into(),
        "req/s",
        "healthz_rps",
        None,
        "bare-axum",
        Aim::AtLeast(0.9),
    ));
    for store in ["sqlite", "postgres"] {
        rows.push(Row {
            label: format!("run recording into {store}, group-committed vs one per transaction"),
            unit: "runs/s",
            metric: "runs_per_s",
            x: None,
            hub: format!("batched-{store}"),
            peer: Some(format!("single-{store}")),
            aim: Aim::AtLeast(10.0),
        });
    }
    rows.push(compare(
        "metrics ingest, 1 connection, 500 samples/request".into(),
        "rows/s",
        "ingest_rows_per_s",
        Some(500.0),
        "copy",
        Aim::AtLeast(0.8),
    ));
    rows.push(compare(
        "hub-collector CPU per sample (node_exporter: per scrape)".into(),
        "ms",
        "collector_cpu_ms",
        None,
        "node_exporter",
        Aim::AtMost(0.5),
    ));
    rows.push(compare(
        "reading-sync, PoloDB documents into PostgreSQL".into(),
        "docs/s",
        "sync_docs_per_s",
        None,
        "seed-loop",
        Aim::None,
    ));
    rows.push(compare(
        "backup upload from a pipe to Garage".into(),
        "MB/s",
        "backup_mb_per_s",
        None,
        "rclone",
        Aim::AtLeast(1.0),
    ));
    rows.push(alone(
        "backup peak RSS".into(),
        "MiB",
        "backup_peak_rss_mib",
        HUB,
        Aim::AtMost(64.0),
    ));
    for function in results.series("lambda_init_ms") {
        rows.push(alone(
            format!("Lambda bootstrap init, {function}"),
            "ms",
            "lambda_init_ms",
            &function,
            Aim::AtMost(30.0),
        ));
        rows.push(alone(
            format!("Lambda bootstrap size (x86_64), {function}"),
            "MB",
            "lambda_size_mb",
            &function,
            Aim::AtMost(15.0),
        ));
    }
    // arm64 is template.yaml's default architecture; measured when make lambda-build-arm64 ran.
    for function in results.series("lambda_size_arm64_mb") {
        rows.push(alone(
            format!("Lambda bootstrap size (arm64, the template's default), {function}"),
            "MB",
            "lambda_size_arm64_mb",
            &function,
            Aim::AtMost(15.0),
        ));
    }
    rows.push(alone(
        "gateway RSS after the mixed-load soak".into(),
        "MiB",
        "soak_rss_end_mib",
        HUB,
        Aim::AtMost(64.0),
    ));
    rows.push(alone(
        "gateway RSS drift after warm-up, mixed-load soak".into(),
        "%",
        "soak_rss_drift_pct",
        HUB,
        Aim::AtMost(10.0),
    ));
    rows
}

/// A figure with sensible precision: 41234 → "41,234", 12.34 → "12.3", 0.123 → "0.12".
pub fn number(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 {
        let whole = format!("{:.0}", v.abs());
        let mut out = String::new();
        for (i, c) in whole.chars().enumerate() {
            if i > 0 && (whole.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        if v < 0.0 { format!("-{out}") } else { out }
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn cell(stat: Option<Stat>, unit: &str) -> String {
    match stat {
        Some(s) if s.runs > 1 => format!(
            "{} {unit} ±{:.0} % (n={})",
            number(s.median),
            s.spread() * 100.0,
            s.runs
        ),
        Some(s) => format!("{} {unit} (n=1)", number(s.median)),
        None => "not measured".into(),
    }
}

/// One Markdown table line per row, after the header.
pub fn markdown(results: &Results, rows: &[Row]) -> String {
    let mut out = String::from(
        "| row | hub: median ±spread (runs) | peer | peer: median | ratio | aim | met |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for row in rows {
        let hub = results.stat(Key {
            metric: row.metric,
            series: &row.hub,
            x: row.x,
        });
        // A peer measured once for every x (COPY does not have samples per request) is
        // compared at each.
        let peer = row.peer.as_deref().map(|p| {
            let at = |x| {
                results.stat(Key {
                    metric: row.metric,
                    series: p,
                    x,
                })
            };
            (p, at(row.x).or_else(|| row.x.and_then(|_| at(None))))
        });
        let (peer_name, peer_cell, ratio, judged) = match peer {
            Some((name, peer)) => {
                let ratio = hub
                    .zip(peer)
                    .filter(|(_, p)| p.median != 0.0)
                    .map(|(h, p)| h.median / p.median);
                (
                    name.to_owned(),
                    peer.map_or("not measured".into(), |p| {
                        format!("{} {}", number(p.median), row.unit)
                    }),
                    ratio.map_or("—".into(), |r| format!("{}×", number(r))),
                    ratio,
                )
            }
            None => ("—".into(), "—".into(), "—".into(), hub.map(|h| h.median)),
        };
        let aim_unit = if row.peer.is_some() { "×" } else { row.unit };
        let met = match judged.and_then(|v| row.aim.met(v)) {
            Some(true) => "met",
            Some(false) => "**not met**",
            None if row.aim == Aim::None => "—",
            None => "not measured",
        };
        out.push_str(&format!(
            "| {} | {} | {peer_name} | {peer_cell} | {ratio} | {} | {met} |\n",
            row.label,
            cell(hub, row.unit),
            row.aim.describe(aim_unit),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_is_judged_on_its_ratio_or_its_value() {
        let results = Results::parse(
            r#"{"metric": "healthz_rps", "series": "hub", "value": 95}
{"metric": "healthz_rps", "series": "bare-axum", "value": 100}
{"metric": "backup_peak_rss_mib", "series": "hub", "value": 70}
{"metric": "lambda_init_ms", "series": "gate-check", "value": 11.4}
{"metric": "lambda_size_arm64_mb", "series": "gate-check", "value": 10.9}"#,
        )
        .expect("results");
        let table = markdown(&results, &table(&results));
        let line = |needle: &str| {
            table
                .lines()
                .find(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("no row {needle}:\n{table}"))
                .to_owned()
        };
        assert!(
            line("/healthz").contains("| 0.95× | ≥ 0.90× | met |"),
            "{}",
            line("/healthz")
        );
        assert!(
            line("backup peak RSS").contains("| ≤ 64.0 MiB | **not met** |"),
            "{}",
            line("backup peak RSS")
        );
        assert!(
            line("init, gate-check").contains("11.4 ms (n=1)"),
            "{}",
            line("init, gate-check")
        );
        assert!(
            line("size (x86_64), gate-check").contains("| not measured |"),
            "{}",
            line("size (x86_64), gate-check")
        );
        assert!(
            line("size (arm64, the template's default), gate-check")
                .contains("| ≤ 15.0 MB | met |"),
            "{}",
            line("size (arm64, the template's default), gate-check")
        );
        assert!(line("16 connections, durable").contains("not measured"));
    }

    #[test]
    fn a_peer_measured_once_is_compared_at_every_x() {
        let results = Results::parse(
            r#"{"metric": "ingest_rows_per_s", "series": "hub", "value": 80, "x": 500}
{"metric": "ingest_rows_per_s", "series": "hub", "value": 10, "x": 10}
{"metric": "ingest_rows_per_s", "series": "copy", "value": 100}"#,
        )
        .expect("results");
        let table = markdown(&results, &table(&results));
        let line = table
            .lines()
            .find(|l| l.contains("500 samples/request"))
            .expect("ingest row");
        assert!(
            line.contains("| copy | 100 rows/s | 0.80× | ≥ 0.80× | met |"),
            "{line}"
        );
    }

    #[test]
    fn numbers_keep_sensible_precision() {
        assert_eq!(number(41234.4), "41,234");
        assert_eq!(number(1_234_567.0), "1,234,567");
        assert_eq!(number(123.4), "123");
        assert_eq!(number(12.34), "12.3");
        assert_eq!(number(0.1234), "0.12");
    }
}
