//! second-brain through a running gateway, over HTTP: the sync route against the GitHub
//! stand-in, the listing with its filters and paging (full text on PostgreSQL, LIKE on
//! SQLite), the run it records and its status-page panel, and a sync stopped by shutdown.

mod common;

use common::{Backend, Setup, TestApp, function_entry, spawn_server};
use hub_testkit::github::{Fault, GithubApi, NewIssue};
use serde_json::Value;
use std::time::Duration;

const REPO: &str = "owner/journal";

fn day(days_ago: i64) -> String {
    (chrono::Utc::now().date_naive() - chrono::Duration::days(days_ago)).to_string()
}

async fn journal_app(backend: Backend) -> (Setup, GithubApi, TestApp) {
    let github = GithubApi::start(REPO).await;
    github.add(NewIssue::journal(
        &day(2),
        "## Project\r\n- Tuned the postgres indexes of the hub\r\n- [ ] benchmark\r\n## Area\r\n- Ran 5 km before work 🏃\r\n",
    ));
    github.add(NewIssue::journal(
        &day(1),
        "<!-- template -->\n## Resource\n- Read about Grafana Loki label cardinality\n- Notes on SQLite 100%_full pages\n## Daily Log\n- not captured\n",
    ));
    let setup = Setup::new(backend)
        .await
        .set("JOURNAL_REPO", REPO)
        .set("GITHUB_API_URL", &github.url)
        .set("GITHUB_TOKEN", "ghp_gatewaytoken");
    let app = TestApp::spawn(&setup).await;
    (setup, github, app)
}

async fn list(app: &TestApp, query: &str) -> Vec<String> {
    let (status, body) = app.get_json(&format!("/api/brain?{query}")).await;
    assert_eq!(status, 200, "{query}: {body}");
    body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["content"].as_str().expect("content").to_owned())
        .collect()
}

async fn sync_and_list(backend: Backend) {
    let (_setup, github, app) = journal_app(backend).await;
    let (_, functions) = app.get_json("/api/functions").await;
    let entry = function_entry(&functions, "second-brain");
    assert_eq!(entry["schedule"], "0 0 2 * * *", "{entry}");

    let resp = app
        .client
        .post(app.url("/api/sync/brain"))
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["service"], "second-brain");
    assert_eq!(body["status"], "success");
    assert_eq!(body["processed_count"], 4);
    assert_eq!(body["issues"], 2);
    assert_eq!(github.requests().len(), 1);

    let runs = app.runs("second-brain").await;
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0]["outcome"], "success");
    // HTTP runs are summarised with their status first, like every route's.
    assert_eq!(runs[0]["summary"], "200 4 entries added from 2 new issues");

    // Newest first.
    let all = list(&app, "").await;
    assert_eq!(
        all,
        [
            "Notes on SQLite 100%_full pages",
            "Read about Grafana Loki label cardinality",
            "Ran 5 km before work 🏃",
            "Tuned the postgres indexes of the hub",
        ]
    );
    assert_eq!(list(&app, "category=resource").await.len(), 2);
    assert_eq!(
        list(&app, "tag=observability").await,
        ["Read about Grafana Loki label cardinality"]
    );
    assert_eq!(
        list(&app, "tag=database&category=project").await,
        ["Tuned the postgres indexes of the hub"]
    );
    let (_, page) = app.get_json("/api/brain?limit=3&offset=0").await;
    assert_eq!(page["items"].as_array().expect("items").len(), 3);
    assert_eq!(page["next_offset"], 3);
    let (_, rest) = app.get_json("/api/brain?limit=3&offset=3").await;
    assert_eq!(rest["items"].as_array().expect("items").len(), 1);
    assert_eq!(rest["next_offset"], Value::Null);
    match backend {
        // Full text: "index" finds "indexes", "read" finds "Read".
        Backend::Postgres => {
            assert_eq!(
                list(&app, "q=index").await,
                ["Tuned the postgres indexes of the hub"]
            );
            assert_eq!(
                list(&app, "q=reading").await,
                ["Read about Grafana Loki label cardinality"]
            );
        }
        // LIKE, with % and _ taken literally.
        Backend::Sqlite => {
            assert_eq!(
                list(&app, "q=postgres%20index").await,
                ["Tuned the postgres indexes of the hub"]
            );
            assert_eq!(
                list(&app, "q=100%25_").await,
                ["Notes on SQLite 100%_full pages"]
            );
            assert!(list(&app, "q=100_%25").await.is_empty());
        }
    }
    let (status, err) = app.get_json("/api/brain?limit=0").await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"], "limit must be 1–500");

    let page = app
        .client
        .get(app.url("/"))
        .send()
        .await
        .expect("status page")
        .text()
        .await
        .expect("html");
    assert!(page.contains("Second brain, last 30 days"), "panel shown");
    assert!(page.contains("id=\"brain-chart\"") && page.contains("<td>observability</td>"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_and_list_on_sqlite() {
    sync_and_list(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_and_list_on_postgres() {
    sync_and_list(Backend::Postgres).await;
}

/// SIGTERM while a sync started over HTTP waits on GitHub: the request answers 503 saying the
/// sync was interrupted, and its run is recorded `interrupted` with trigger `http`, not as a
/// failure, before the process exits.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_an_http_sync_answers_503_and_records_it_interrupted() {
    let github = GithubApi::start(REPO).await;
    github.add(NewIssue::journal(&day(1), "## Area\n- Walked\n"));
    // Far longer than the grace: only shutdown ends the wait.
    github.queue(&[Fault::Slow(Duration::from_secs(60))]);
    let setup = Setup::new(Backend::Sqlite)
        .await
        .set("JOURNAL_REPO", REPO)
        .set("GITHUB_API_URL", &github.url)
        .set("GITHUB_TOKEN", "ghp_gatewaytoken")
        .set("HUB_SHUTDOWN_GRACE_SECS", 2);
    let (mut child, addr) = spawn_server(&setup);
    let answer = common::post_in_background(addr, "/api/sync/brain", None);
    common::wait_for("the sync to ask GitHub", || github.faults_left() == 0).await;
    let body = common::sigterm_answers_503(&mut child, answer).await;
    assert_eq!(
        body["error"], "interrupted by shutdown; the next run goes on",
        "{body}"
    );
    assert_eq!(
        common::run_outcomes(&setup, "second-brain").await,
        [("http".to_owned(), "interrupted".to_owned())],
        "the one run, recorded as interrupted"
    );
}
