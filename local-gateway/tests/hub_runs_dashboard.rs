//! The k3s deployment's Grafana and Prometheus files against a real gateway: every panel of the
//! "Hub runs" dashboard (`k3s/platform/grafana/dashboards/hub-runs.json`) draws from a run
//! history the gateway wrote on PostgreSQL, every `hub_*` series the alert rules name
//! (`k3s/platform/prometheus/rules.yml`) is on the gateway's `/metrics` (the collector's own,
//! `hub_collector_*`, are checked in host-collector's `stats` tests), and the users'
//! dashboards deployed there are byte-identical to the seed's.

mod common;

use common::{Backend, Setup, TestApp};
use hub_testkit::grafana;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;

const K3S: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../k3s/platform");
/// The users' dashboards as the acceptance suite keeps them.
const SEED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../host-collector/tests/fixtures/seed-compat/dashboards"
);

fn k3s(path: &str) -> std::path::PathBuf {
    Path::new(K3S).join(path)
}

/// A gateway on a fresh PostgreSQL database with minio-backup on the local target (one
/// directory set), metrics-flush taking pushes, and reading-sync pointed at a MongoDB that is
/// not there (so its runs fail fast).
async fn gateway(backend: Backend) -> (TestApp, Setup, tempfile::TempDir) {
    let tree = tempfile::TempDir::new().expect("tree");
    std::fs::write(tree.path().join("notes.txt"), "keep me\n").expect("file");
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_uri = format!("mongodb://{}", dead.local_addr().expect("addr"));
    drop(dead);
    let setup = Setup::new(backend)
        .await
        .with(metrics_flush::testing::env())
        .set("BACKUP_DIRS", format!("notes={}", tree.path().display()))
        .set("MONGO_URI", dead_uri)
        .set("MONGO_TIMEOUT_SECS", 1);
    let app = TestApp::spawn(&setup).await;
    (app, setup, tree)
}

async fn post(app: &TestApp, path: &str, body: Value, token: Option<&str>) -> (u16, Value) {
    let mut req = app.client.post(app.url(path)).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("POST");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn batch(host: &str) -> Value {
    json!({"samples": [{"time": chrono::Utc::now().to_rfc3339(), "host": host, "os": "test",
        "metrics": {"cpu": {"total": 12.5}}}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hub_runs_panel_draws_from_the_run_history() {
    let (app, setup, _tree) = gateway(Backend::Postgres).await;
    let token = Some(metrics_flush::testing::TOKEN);
    // Successes, a rejection and failures, in three functions.
    let (status, body) = post(&app, "/api/backup/run", json!({"set": "notes"}), None).await;
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("success")),
        "{body}"
    );
    for _ in 0..2 {
        let (status, body) = post(&app, "/api/metrics", batch("node-a"), token).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = post(&app, "/api/metrics", batch(""), token).await;
    assert_eq!(status, 400, "an empty host is refused: {body}");
    let (status, body) = post(&app, "/api/sync/reading", json!({}), None).await;
    assert_eq!(status, 503, "MongoDB is not there: {body}");

    // Run rows are group-committed: the dashboard sees them once their batch is.
    app.gateway.ctx.runs.flush().await;
    let db = setup.db.as_ref().expect("PostgreSQL");
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
        .await
        .expect("connect");
    let seen: Vec<(String, String)> =
        sqlx::query_as("SELECT DISTINCT function, outcome FROM hub_runs ORDER BY 1, 2")
            .fetch_all(&mut conn)
            .await
            .expect("runs");
    let want = [
        ("metrics-flush", "rejected"),
        ("metrics-flush", "success"),
        ("minio-backup", "success"),
        ("reading-sync", "failure"),
    ];
    for (f, o) in want {
        assert!(
            seen.iter().any(|(sf, so)| sf == f && so == o),
            "no {f} run with outcome {o}: {seen:?}"
        );
    }

    let panels = grafana::panels(&k3s("grafana/dashboards/hub-runs.json"));
    assert!(panels.len() >= 8, "{panels:?}");
    let failures = grafana::undrawn(&db.url, &panels, str::to_owned).await;
    assert!(
        failures.is_empty(),
        "panels that do not draw:\n{}",
        failures.join("\n")
    );
    app.stop().await;
}

/// The names in `rules` that look like the hub's series (recording rules are `hub:…`).
fn hub_series(rules: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = rules;
    while let Some(at) = rest.find("hub_") {
        let before = rules.len() - rest.len() + at;
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        // Part of a longer word (`observability_hub_…`) is not a series name, nor the bare
        // prefix (the comments' `hub_*`).
        let glued = rules[..before]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        if !glued && name.len() > "hub_".len() {
            out.insert(name.clone());
        }
        rest = &rest[at + name.len()..];
    }
    out
}

#[tokio::test]
async fn every_series_the_alert_rules_name_is_exported() {
    let (app, _setup, _tree) = gateway(Backend::Sqlite).await;
    let rules = std::fs::read_to_string(k3s("prometheus/rules.yml")).expect("rules.yml");
    let names = hub_series(&rules);
    assert!(
        names.contains("hub_runs_total")
            && names.contains("hub_last_success_timestamp_seconds")
            && names.contains("hub_backup_last_success_timestamp_seconds"),
        "{names:?}"
    );
    let text = app.metrics_text().await;
    let exported: BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !n.starts_with("hub_collector_") && !exported.contains(n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "rules.yml names series /metrics does not export: {missing:?}\n{text}"
    );
    app.stop().await;
}

#[test]
fn the_k3s_dashboards_are_the_users_dashboards() {
    let seed = grafana::dashboard_files(Path::new(SEED));
    assert!(seed.len() >= 2, "{seed:?}");
    for original in seed {
        let name = original.file_name().expect("name");
        let copy = k3s("grafana/dashboards").join(name);
        assert!(
            std::fs::read(&original).expect("seed") == std::fs::read(&copy).unwrap_or_default(),
            "{} must be a byte-identical copy of {}: copy it again",
            copy.display(),
            original.display()
        );
    }
}
