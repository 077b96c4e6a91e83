//! The status page in a real browser: headless Chromium (Debian's) driven by playwright-core
//! loads `/` from a running gateway with runs recorded, and the test checks what rendered. The
//! screenshot is kept as an artifact at `target/e2e/status-page.png`.

mod common;

use common::{Backend, Setup, TestApp};
use hub_runtime::{Outcome, Trigger};
use metrics_flush::testing::TOKEN as COLLECTOR_TOKEN;
use std::time::Duration;

#[tokio::test]
async fn status_page_renders_tables_and_chart_in_chromium() {
    let setup = Setup::new(Backend::Sqlite)
        .await
        .with(metrics_flush::testing::env());
    let app = TestApp::spawn(&setup).await;
    let now = chrono::Utc::now();
    let runs = &app.gateway.ctx.runs;
    // 12 runs over the last day, one two days ago (outside the chart), one failure.
    for i in 0..12_i64 {
        let outcome = if i == 5 {
            Outcome::Failure
        } else {
            Outcome::Success
        };
        runs.record(
            "webhook-gitops",
            Trigger::Http,
            now - chrono::Duration::hours(23 - i * 2),
            Duration::from_millis(40 + 15 * i as u64),
            outcome,
            &format!("sync {i}"),
        )
        .await;
    }
    runs.record(
        "webhook-gitops",
        Trigger::Cli,
        now - chrono::Duration::hours(48),
        Duration::from_millis(5),
        Outcome::Success,
        "<b>old</b> run",
    )
    .await;

    // Five samples of one host over the last hours, pushed like hub-collector does.
    let samples: Vec<serde_json::Value> = (0..5_i64)
        .map(|i| {
            serde_json::json!({
                "time": now - chrono::Duration::hours(4 - i),
                "host": "nuc", "os": "Debian GNU/Linux 12",
                "metrics": {
                    "cpu": {"total": 10.0 + 10.0 * i as f64},
                    "memory": {"total": 1000, "used": 250 + 100 * i},
                }
            })
        })
        .collect();
    let resp = app
        .client
        .post(app.url("/api/metrics"))
        .bearer_auth(COLLECTOR_TOKEN)
        .json(&serde_json::json!({ "samples": samples }))
        .send()
        .await
        .expect("push samples");
    assert_eq!(resp.status(), 200);

    let out_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/e2e");
    std::fs::create_dir_all(&out_dir).expect("artifact dir");
    let shot = out_dir.join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/status-page.mjs");
    let out = tokio::process::Command::new("node")
        .arg(&script)
        .arg(app.url("/"))
        .arg(&shot)
        .output()
        .await
        .expect("node runs (make test-deps installs it)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser script failed (make test-deps installs chromium and playwright-core):\n{stderr}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("one JSON line from the script");

    assert_eq!(report["status"], 200);
    assert_eq!(
        report["errors"],
        serde_json::json!([]),
        "no script errors in the page"
    );
    assert_eq!(report["title"], "Observability Hub");
    let rows = report["functionRows"].as_array().expect("function rows");
    for name in ["webhook-gitops", "metrics-flush", "reading-sync"] {
        assert!(rows.iter().any(|r| r == name), "{name} has a row: {rows:?}");
    }
    assert_eq!(
        report["runRows"], 14,
        "all recorded runs are listed (13 + the push)"
    );
    let first = report["firstRun"].as_array().expect("cells");
    assert_eq!(first[1], "metrics-flush", "newest first: the push");
    let charts = report["charts"].as_array().expect("charts");
    assert_eq!(
        charts.len(),
        2,
        "runs chart and one host chart: {charts:#?}"
    );
    let runs_chart = &charts[0];
    assert_eq!(runs_chart["id"], "runs-chart");
    assert_eq!(
        runs_chart["series"],
        serde_json::json!([["webhook-gitops", 12], ["metrics-flush", 1]]),
        "one point per run of the last 24 h, per function"
    );
    assert!(
        runs_chart["legend"]
            .as_str()
            .expect("legend")
            .contains("webhook-gitops (12)")
    );
    assert!(
        runs_chart["width"].as_f64().expect("width") > 600.0,
        "the chart is laid out"
    );
    let host = &charts[1];
    assert_eq!(host["heading"], "nuc");
    assert_eq!(
        host["series"],
        serde_json::json!([["cpu %", 5], ["memory %", 5]])
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real screenshot"
    );
    app.stop().await;
}
