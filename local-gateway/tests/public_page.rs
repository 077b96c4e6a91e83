//! `hub-gateway page build`: the public page built by the binary from the shipped `page/*.yaml`
//! and a run history, read in headless Chromium with JavaScript off (screenshots kept at
//! `target/e2e/public-page.png` and `public-page-evolution.png`); the health summary on
//! PostgreSQL; bad content refused before the store is opened.

mod common;

use common::{Backend, Setup};
use hub_runtime::{Outcome, Trigger};
use local_gateway::Gateway;
use local_gateway::page::{self, Content};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Run summaries carry what the public page must never show.
const PRIVATE: [&str; 4] = [
    "/srv/gitops/infra-private",
    "acme/infra-private",
    "mongodb://reader:hunter2@",
    "connection refused",
];

fn shipped_content() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../page")
}

/// 8 successes and 2 failures of webhook-gitops, 50 rejected pushes of metrics-flush (bad
/// input does not count against it) and 1 success, a failed reading-sync, and a minio-backup
/// run 40 days ago (outside the window).
async fn record_history(gateway: &Gateway) {
    let runs = &gateway.ctx.runs;
    let now = chrono::Utc::now();
    let at = |hours: i64| now - chrono::Duration::hours(hours);
    for i in 0..10 {
        let (outcome, summary) = if i % 5 == 2 {
            (
                Outcome::Failure,
                "git fetch in /srv/gitops/infra-private failed: connection refused",
            )
        } else {
            (Outcome::Success, "acme/infra-private fast-forwarded")
        };
        let d = Duration::from_millis(40);
        runs.record(
            "webhook-gitops",
            Trigger::Http,
            at(30 - i),
            d,
            outcome,
            summary,
        )
        .await;
    }
    for _ in 0..50 {
        let d = Duration::from_millis(1);
        runs.record(
            "metrics-flush",
            Trigger::Http,
            at(5),
            d,
            Outcome::Rejected,
            "400 bad",
        )
        .await;
    }
    let d = Duration::from_millis(3);
    runs.record(
        "metrics-flush",
        Trigger::Http,
        at(1),
        d,
        Outcome::Success,
        "200 2 rows",
    )
    .await;
    let summary = "cannot reach mongodb://reader:hunter2@db:27017: connection refused";
    runs.record(
        "reading-sync",
        Trigger::Schedule,
        at(2),
        d,
        Outcome::Failure,
        summary,
    )
    .await;
    runs.record(
        "minio-backup",
        Trigger::Schedule,
        at(40 * 24),
        d,
        Outcome::Success,
        "ok",
    )
    .await;
    // Run rows are queued for the store's writer; another process reads them next.
    runs.flush().await;
}

/// `hub-gateway page build --content CONTENT --out SITE` with `setup`'s settings.
fn page_build(setup: &Setup, content: &Path, site: &Path) -> std::process::Output {
    common::gateway_cmd(setup)
        .args(["page", "build", "--content"])
        .arg(content)
        .arg("--out")
        .arg(site)
        .output()
        .expect("run hub-gateway")
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[tokio::test]
async fn the_built_page_reads_in_chromium_without_javascript_and_leaks_no_run_detail() {
    let setup = Setup::new(Backend::Sqlite).await;
    record_history(&Gateway::new(setup.source()).await.expect("store")).await;

    let site = setup.data_dir.path().join("site");
    // A file of the publisher's own (a GitHub Pages CNAME) must survive a build.
    std::fs::create_dir_all(&site).expect("site dir");
    std::fs::write(site.join("CNAME"), "hub.example.org\n").expect("CNAME");
    let out = page_build(&setup, &shipped_content(), &site);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "page build failed:\n{stderr}");
    assert!(
        !stderr.contains("warning"),
        "the examples are clean: {stderr}"
    );
    let built: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(
        built["files"],
        serde_json::json!(["index.html", "evolution.html", "style.css"])
    );
    assert_eq!(built["functions"], local_gateway::app::FUNCTIONS.len());
    assert_eq!(read(&site, "CNAME"), "hub.example.org\n");

    for file in ["index.html", "evolution.html", "style.css"] {
        let text = read(&site, file);
        for private in PRIVATE {
            assert!(!text.contains(private), "{file} shows {private:?}");
        }
        assert!(!text.contains("<script"), "{file} needs no JavaScript");
        assert!(!text.contains("src="), "{file} loads nothing");
        assert!(
            !text.contains("@import") && !text.contains("url("),
            "{file}"
        );
    }

    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/e2e");
    std::fs::create_dir_all(&shots).expect("artifact dir");
    let shot = shots.join("public-page.png");
    let _ = std::fs::remove_file(&shot);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/public-page.mjs");
    let out = tokio::process::Command::new("node")
        .arg(&script)
        .arg(&site)
        .arg(&shot)
        .output()
        .await
        .expect("node runs (make test-deps installs it)");
    assert!(
        out.status.success(),
        "browser script failed (make test-deps installs chromium and playwright-core):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("one JSON line from the script");
    let index = &report["index"];

    assert_eq!(index["title"], "Observability Hub");
    assert_eq!(index["heading"], "A homelab that watches itself");
    assert_eq!(
        index["buttons"],
        serde_json::json!([["How it evolved", "evolution.html"], ["Health", "#health"]])
    );
    assert_eq!(
        (index["principles"].as_u64(), index["specRows"].as_u64()),
        (Some(3), Some(5))
    );
    assert_eq!(
        index["buttonBackground"], "rgb(9, 105, 218)",
        "style.css applied (light scheme)"
    );
    let health = index["health"].as_array().expect("health rows");
    let row = |name: &str| {
        health
            .iter()
            .find(|r| r[0] == name)
            .unwrap_or_else(|| panic!("no health row for {name}: {health:?}"))
    };
    assert_eq!(health.len(), local_gateway::app::FUNCTIONS.len());
    assert_eq!(row("webhook-gitops")[3], "80.0 % (8 of 10)");
    assert_eq!(
        row("webhook-gitops")[2],
        "success",
        "the newest of its runs"
    );
    assert_eq!(
        row("metrics-flush")[3],
        "100 % (1 of 1)",
        "rejections do not count"
    );
    assert_eq!(row("reading-sync")[2], "failure");
    assert_eq!(row("reading-sync")[3], "0 % (0 of 1)");
    assert_eq!(row("minio-backup")[1], "none in 30 days");
    assert_eq!(row("minio-backup")[3], "—");

    let evolution = &report["evolution"];
    assert_eq!(evolution["title"], "Evolution");
    assert_eq!(
        evolution["chapters"],
        serde_json::json!(["One runtime", "The Go hub"]),
        "the chapter with the newest event first"
    );
    assert_eq!(
        evolution["dates"],
        serde_json::json!(["2026-11-30", "2026-09-20", "2025-06-02", "2025-03-14"]),
        "newest first within each chapter"
    );
    assert!(
        evolution["listItems"].as_u64() > Some(4),
        "descriptions' bullets are lists"
    );
    assert_eq!(
        (index["scripts"].as_u64(), evolution["scripts"].as_u64()),
        (Some(0), Some(0))
    );
    let requests = report["requests"].as_array().expect("requests");
    assert!(
        requests
            .iter()
            .all(|u| u.as_str().is_some_and(|u| u.starts_with("file://"))),
        "the page loads nothing from elsewhere: {requests:?}"
    );
    assert_eq!(
        report["failed"],
        serde_json::json!([]),
        "every file it links is there"
    );
    assert!(
        std::fs::metadata(&shot).is_ok_and(|m| m.len() > 10_000),
        "a screenshot"
    );
}

#[tokio::test]
async fn the_health_summary_reads_the_history_on_postgres() {
    let setup = Setup::new(Backend::Postgres).await;
    let gateway = Gateway::new(setup.source()).await.expect("store");
    record_history(&gateway).await;
    let content = Content::load(&shipped_content()).expect("content");
    let site = setup.data_dir.path().join("site");
    page::build(&gateway, &content, &site).await.expect("build");
    let index = read(&site, "index.html");
    for private in PRIVATE {
        assert!(!index.contains(private), "index.html shows {private:?}");
    }
    let row = |name: &str| {
        let start = index
            .find(&format!("<tr data-function=\"{name}\">"))
            .unwrap_or_else(|| panic!("no row for {name}"));
        let end = start + index[start..].find("</tr>").expect("row end");
        index[start..end].to_owned()
    };
    assert!(
        row("webhook-gitops").contains("80.0 % <small>(8 of 10)</small>"),
        "{}",
        row("webhook-gitops")
    );
    assert!(
        row("metrics-flush").contains("100 % <small>(1 of 1)</small>"),
        "{}",
        row("metrics-flush")
    );
    assert!(
        row("minio-backup").contains("none in 30 days"),
        "{}",
        row("minio-backup")
    );
}

#[tokio::test]
async fn bad_content_is_refused_with_file_line_and_key_before_the_store_is_opened() {
    let setup = Setup::new(Backend::Sqlite).await;
    let content = setup.data_dir.path().join("content");
    std::fs::create_dir_all(&content).expect("content dir");
    std::fs::copy(
        shipped_content().join("evolution.yaml"),
        content.join("evolution.yaml"),
    )
    .expect("copy evolution.yaml");
    std::fs::write(
        content.join("landing.yaml"),
        "page_title: Hub\nhero:\n  title: Hello\n  cta_text: Click\n  cta_link: javascript:alert(1)\n",
    )
    .expect("landing.yaml");
    let site = setup.data_dir.path().join("site");
    let out = page_build(&setup, &content, &site);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "bad content is bad usage: {stderr}"
    );
    let at = format!("{}:5:", content.join("landing.yaml").display());
    assert!(stderr.contains(&at), "names file and line: {stderr}");
    assert!(stderr.contains("hero.cta_link"), "names the key: {stderr}");
    assert!(!site.exists(), "nothing written");
    assert!(
        !setup.data_dir.path().join("hub.db").exists(),
        "the store was not opened (or created)"
    );

    // A missing file is named too.
    std::fs::remove_file(content.join("evolution.yaml")).expect("remove");
    std::fs::write(
        content.join("landing.yaml"),
        "page_title: Hub\nhero:\n  title: Hello\n",
    )
    .expect("landing.yaml");
    let out = page_build(&setup, &content, &site);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("evolution.yaml: cannot read"), "{stderr}");
}
