//! The status page in a real browser: headless Chromium (Debian's) driven by playwright-core
//! loads `/` from a running gateway with runs recorded, and the test checks what rendered. The
//! screenshot is kept as an artifact at `target/e2e/status-page.png`.

mod common;

use common::{Backend, Setup, TestApp};
use hub_runtime::{Outcome, Trigger};
use std::time::Duration;

#[tokio::test]
async fn status_page_renders_tables_and_chart_in_chromium() {
    let setup = Setup::new(Backend::Sqlite).await;
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
    assert_eq!(
        report["functionRows"],
        serde_json::json!(["webhook-gitops", "metrics-flush"])
    );
    assert_eq!(report["runRows"], 13, "all recorded runs are listed");
    let first = report["firstRun"].as_array().expect("cells");
    assert_eq!(first[1], "webhook-gitops");
    assert_eq!(first[5], "sync 11", "newest first");
    assert_eq!(report["circles"], 12, "one point per run of the last 24 h");
    assert_eq!(report["lines"], serde_json::json!(["webhook-gitops"]));
    assert!(
        report["legend"]
            .as_str()
            .expect("legend")
            .contains("webhook-gitops (12)")
    );
    assert!(
        report["chartWidth"].as_f64().expect("width") > 600.0,
        "the chart is laid out"
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real screenshot"
    );
    app.stop().await;
}
