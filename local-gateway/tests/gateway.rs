//! The gateway's own routes and middleware, over HTTP against a running gateway.

#[macro_use]
mod common;

use common::{Backend, GitFixture, Setup, TestApp};

/// A test gateway's settings, with webhook-gitops and metrics-flush configured.
async fn hub_setup(backend: Backend) -> Setup {
    Setup::new(backend)
        .await
        .with(webhook_gitops::testing::env())
        .with(metrics_flush::testing::env())
}

#[tokio::test]
async fn liveness_health_and_index_page() {
    let setup = hub_setup(Backend::Sqlite).await;
    let app = TestApp::spawn(&setup).await;
    let (status, body) = app.get_json("/healthz").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body) = app.get_json("/api/health").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("healthy")));
    assert_eq!(body["service"], "hub-gateway");

    let resp = app.client.get(app.url("/")).send().await.expect("GET /");
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/html")
    );
    let page = resp.text().await.expect("page");
    assert!(page.contains("<h1>Observability Hub</h1>"), "{page}");
    assert!(page.contains("webhook-gitops"), "{page}");
    assert!(page.contains("POST /api/webhook/gitops"), "{page}");

    assert!(
        setup.data_dir.path().join("hub.db").is_file(),
        "embedded store created on first start"
    );
    app.stop().await;
}

#[tokio::test]
async fn request_ids_are_set_echoed_and_sanitised() {
    let setup = hub_setup(Backend::Sqlite).await;
    let app = TestApp::spawn(&setup).await;
    let resp = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("GET");
    let id = resp.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(
        uuid::Uuid::parse_str(&id).map(|_| ()),
        Ok(()),
        "generated id is a UUID: {id}"
    );

    let resp = app
        .client
        .get(app.url("/no/such/route"))
        .header("x-request-id", "upstream-42")
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 404);
    assert_eq!(
        resp.headers()["x-request-id"],
        "upstream-42",
        "incoming id propagated"
    );
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(
        body,
        serde_json::json!({"error": "no such route", "request_id": "upstream-42"})
    );

    let resp = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "<script>")
        .send()
        .await
        .expect("GET");
    let id = resp.headers()["x-request-id"].to_str().expect("ascii");
    assert_ne!(id, "<script>", "unsafe incoming ids are replaced");
    app.stop().await;
}

#[tokio::test]
async fn readiness_names_a_failing_function() {
    let setup = hub_setup(Backend::Sqlite)
        .await
        .set("GITOPS_BASE_DIR", "/nonexistent/gitops");
    let app = TestApp::spawn(&setup).await;
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["failing"], serde_json::json!(["webhook-gitops"]));
    assert_eq!(
        body["checks"]["webhook-gitops"],
        "failing: GITOPS_BASE_DIR /nonexistent/gitops is not a directory"
    );
    assert_eq!(body["checks"]["store"], "ok");
    app.stop().await;

    let fx = GitFixture::new("infra", "main", Some(""));
    let setup = hub_setup(Backend::Sqlite)
        .await
        .set("GITOPS_BASE_DIR", fx.base.display());
    let app = TestApp::spawn(&setup).await;
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["failing"], serde_json::json!([]));
    app.stop().await;
}

#[tokio::test]
async fn readiness_fails_when_postgres_goes_away() {
    let fx = GitFixture::new("infra", "main", Some(""));
    let setup = hub_setup(Backend::Postgres)
        .await
        .set("GITOPS_BASE_DIR", fx.base.display());
    let app = TestApp::spawn(&setup).await;
    let (status, _) = app.get_json("/readyz").await;
    assert_eq!(status, 200);

    // Pull the database out from under the running gateway.
    let db = setup.db.as_ref().expect("postgres backend");
    db.drop_now().await;
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["failing"], serde_json::json!(["store"]));
    assert!(
        body["checks"]["store"]
            .as_str()
            .expect("text")
            .starts_with("failing: postgres store"),
        "{body}"
    );
    // Liveness is not readiness: the process itself is fine.
    let (status, _) = app.get_json("/healthz").await;
    assert_eq!(status, 200);
    // Run listing fails cleanly, without leaking the database error.
    let (status, body) = app.get_json("/api/runs").await;
    assert_eq!(status, 503);
    assert_eq!(body["error"], "store unavailable");
    app.stop().await;
}

/// `/readyz` proves the store takes writes: a store that answers but cannot write (its tables
/// dropped here) is not ready.
async fn readiness_needs_a_writable_store(backend: Backend) {
    let setup = hub_setup(backend).await;
    let base = setup.data_dir.path().display().to_string();
    let setup = setup.set("GITOPS_BASE_DIR", base);
    let app = TestApp::spawn(&setup).await;
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 200, "{body}");
    let drop = "DROP TABLE hub_seen_keys";
    match &app.gateway.ctx.store {
        hub_runtime::Store::Postgres(p) => sqlx::query(drop).execute(p).await.map(|_| ()),
        hub_runtime::Store::Sqlite(p) => sqlx::query(drop).execute(p).await.map(|_| ()),
    }
    .expect("drop table");
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["failing"], serde_json::json!(["store"]), "{body}");
    app.stop().await;
}

on_both_backends!(readiness_needs_a_writable_store);

#[tokio::test]
async fn runs_are_listed_newest_first_with_filter_and_limit() {
    let setup = hub_setup(Backend::Sqlite).await;
    let app = TestApp::spawn(&setup).await;
    // Unsigned deliveries are refused before the function works: counted, never stored.
    for _ in 0..3 {
        let (status, _) = app.deliver_with("push", b"{}", None, None).await;
        assert_eq!(status, 401);
    }
    let (_, refused) = app.get_json("/api/runs").await;
    assert_eq!(refused, serde_json::json!([]), "401s write no runs");
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains(r#"hub_http_requests_total{route="/api/webhook/gitops",status="401"} 3"#),
        "refusals are counted: {metrics}"
    );
    // A known path with another method: a JSON 405 that names the allowed one, not a run.
    let resp = app
        .client
        .get(app.url(webhook_gitops::WEBHOOK_PATH))
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "POST");
    let body: serde_json::Value = resp.json().await.expect("JSON 405");
    assert_eq!(body["error"], "method not allowed");
    assert!(body["request_id"].is_string(), "{body}");
    // Three signed deliveries that are not JSON → three rejected runs of webhook-gitops.
    for _ in 0..3 {
        let (status, _) = app.deliver("push", b"not json").await;
        assert_eq!(status, 400);
    }
    let (status, runs) = app
        .get_json("/api/runs?function=webhook-gitops&limit=2")
        .await;
    assert_eq!(status, 200);
    let runs = runs.as_array().expect("array");
    assert_eq!(runs.len(), 2, "limit honoured");
    let t0 = runs[0]["started_at"].as_str().expect("ts");
    let t1 = runs[1]["started_at"].as_str().expect("ts");
    assert!(t0 >= t1, "newest first: {t0} then {t1}");
    for r in runs {
        assert_eq!(r["function"], "webhook-gitops");
        assert_eq!(r["trigger"], "http");
        assert_eq!(r["outcome"], "rejected");
        assert_eq!(r["summary"], "400 body is not valid JSON");
        assert!(r["id"].is_string() && r["duration_ms"].is_i64());
    }
    let (_, all) = app.get_json("/api/runs").await;
    assert_eq!(all.as_array().expect("array").len(), 3);
    let (_, none) = app.get_json("/api/runs?function=reading-sync").await;
    assert_eq!(none, serde_json::json!([]));
    for bad in ["0", "-1", "501", "ten"] {
        let (status, body) = app.get_json(&format!("/api/runs?limit={bad}")).await;
        assert_eq!(status, 400, "limit={bad}");
        assert_eq!(body["error"], "limit must be a whole number from 1 to 500");
    }
    app.stop().await;
}

#[tokio::test]
async fn oversized_bodies_get_413_and_nothing_runs() {
    let fx = GitFixture::new("infra", "main", Some(""));
    let setup = hub_setup(Backend::Sqlite)
        .await
        .set("GITOPS_BASE_DIR", fx.base.display())
        .set("HUB_MAX_BODY_BYTES", 1024);
    let app = TestApp::spawn(&setup).await;
    let mut event: serde_json::Value = serde_json::from_slice(&fx.push_event("x")).expect("json");
    event["padding"] = "x".repeat(4096).into();
    let body = serde_json::to_vec(&event).expect("json");
    let (status, resp) = app.deliver("push", &body).await;
    assert_eq!(status, 413);
    assert_eq!(resp["error"], "request body too large");
    assert!(common::sync_runs(&app.runs(webhook_gitops::NAME).await).is_empty());
    app.stop().await;
}

#[tokio::test]
async fn functions_are_listed_with_routes_and_state() {
    // Only the URI's form is checked at start; nothing connects to it here.
    let setup = hub_setup(Backend::Sqlite)
        .await
        .set("MONGO_URI", "mongodb://127.0.0.1:9/");
    let app = TestApp::spawn(&setup).await;
    let (status, mut body) = app.get_json("/api/functions").await;
    assert_eq!(status, 200);
    // The next due time moves with the clock: checked for shape, then compared as the rest.
    let due = body
        .as_array_mut()
        .expect("list")
        .iter_mut()
        .find(|f| f["name"] == "reading-sync")
        .expect("reading-sync listed")["next_due"]
        .take();
    let due = chrono::DateTime::parse_from_rfc3339(due.as_str().unwrap_or(""))
        .unwrap_or_else(|e| panic!("reading-sync next_due {due}: {e}"));
    assert!(due > chrono::Utc::now() && due <= chrono::Utc::now() + chrono::Duration::hours(12));
    let expected = [
        serde_json::json!({
            "name": "webhook-gitops",
            "routes": [{"method": "POST", "path": "/api/webhook/gitops", "public": true}],
            "schedule": null,
            "next_due": null,
            "configured": true,
        }),
        serde_json::json!({
            "name": "metrics-flush",
            "routes": [
                // Public: the collector token is set.
                {"method": "POST", "path": "/api/metrics", "public": true},
                {"method": "GET", "path": "/api/metrics/latest", "public": false},
            ],
            "schedule": null,
            "next_due": null,
            "configured": true,
        }),
        serde_json::json!({
            "name": "reading-sync",
            "routes": [
                {"method": "POST", "path": "/api/sync/reading", "public": false},
                {"method": "GET", "path": "/api/sync/reading", "public": false},
                {"method": "GET", "path": "/api/reading", "public": false},
            ],
            "schedule": "0 0 0,12 * * *",
            "next_due": null,
            "configured": true,
        }),
    ];
    for want in expected {
        let name = want["name"].as_str().expect("name");
        assert_eq!(common::function_entry(&body, name), &want);
    }
    app.stop().await;

    // A function missing its settings is listed with the reason, and not scheduled: its runs
    // could only fail.
    let unconfigured = TestApp::spawn(&hub_setup(Backend::Sqlite).await).await;
    let (_, body) = unconfigured.get_json("/api/functions").await;
    let entry = common::function_entry(&body, "reading-sync");
    assert_eq!(
        (
            &entry["configured"],
            &entry["reason"],
            &entry["schedule"],
            &entry["next_due"]
        ),
        (
            &serde_json::json!(false),
            &serde_json::json!("MONGO_URI is not set"),
            &serde_json::Value::Null,
            &serde_json::Value::Null
        )
    );
    unconfigured.stop().await;
}

#[tokio::test]
async fn runs_filter_by_outcome_and_time_and_page() {
    let setup = hub_setup(Backend::Sqlite).await;
    let app = TestApp::spawn(&setup).await;
    let runs = &app.gateway.ctx.runs;
    let now = chrono::Utc::now();
    for n in 0..6_i64 {
        let outcome = if n % 2 == 0 {
            hub_runtime::Outcome::Success
        } else {
            hub_runtime::Outcome::Failure
        };
        runs.record(
            "webhook-gitops",
            hub_runtime::Trigger::Cli,
            now - chrono::Duration::minutes(60 - n * 10),
            std::time::Duration::from_millis(5),
            outcome,
            &format!("run {n}"),
        )
        .await;
    }
    let summaries = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|r| r["summary"].as_str().expect("summary").to_owned())
            .collect()
    };
    let (_, v) = app.get_json("/api/runs?outcome=failure").await;
    assert_eq!(summaries(&v), ["run 5", "run 3", "run 1"]);
    let since =
        (now - chrono::Duration::minutes(35)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (_, v) = app.get_json(&format!("/api/runs?since={since}")).await;
    assert_eq!(summaries(&v), ["run 5", "run 4", "run 3"]);
    let (_, v) = app.get_json("/api/runs?limit=2&offset=2").await;
    assert_eq!(summaries(&v), ["run 3", "run 2"]);
    let (_, v) = app.get_json("/api/runs?limit=2&offset=6").await;
    assert_eq!(v, serde_json::json!([]));
    for (query, error) in [
        (
            "outcome=great",
            "outcome must be one of success, rejected, failure, skipped, interrupted",
        ),
        (
            "since=yesterday",
            "since must be an RFC 3339 time, e.g. 2026-01-31T12:00:00Z",
        ),
        ("offset=-1", "offset must be a whole number ≥ 0"),
    ] {
        let (status, body) = app.get_json(&format!("/api/runs?{query}")).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some(error)),
            "{query}"
        );
    }
    app.stop().await;
}

/// Run history is kept for `HUB_RUN_RETENTION_DAYS`: older runs (and claimed schedule ticks)
/// are pruned by the gateway while it serves.
async fn old_runs_are_pruned(backend: Backend) {
    let setup = hub_setup(backend)
        .await
        .set("HUB_RUN_RETENTION_DAYS", 2)
        .set("HUB_PRUNE_INTERVAL_SECS", 1);
    let app = TestApp::spawn(&setup).await;
    let now = chrono::Utc::now();
    for (age_hours, summary) in [(24 * 3, "three days old"), (24, "a day old"), (1, "fresh")] {
        app.gateway
            .ctx
            .runs
            .record(
                "webhook-gitops",
                hub_runtime::Trigger::Cli,
                now - chrono::Duration::hours(age_hours),
                std::time::Duration::from_millis(5),
                hub_runtime::Outcome::Success,
                summary,
            )
            .await;
    }
    let store = &app.gateway.ctx.store;
    assert!(
        store
            .claim_tick("probe", now - chrono::Duration::days(3), "node-a")
            .await
            .expect("claim")
    );
    let runs = app
        .wait_runs("webhook-gitops", "the old run pruned", |runs| {
            runs.len() == 2
        })
        .await;
    let left: Vec<_> = runs.iter().map(|r| r["summary"].clone()).collect();
    assert_eq!(
        left,
        [serde_json::json!("fresh"), serde_json::json!("a day old")]
    );
    // The tick's row goes too (in the same pass, right after the runs), so the same tick
    // can be claimed again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !store
        .claim_tick("probe", now - chrono::Duration::days(3), "node-b")
        .await
        .expect("claim")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "claimed ticks older than the retention are pruned"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    app.stop().await;
}

on_both_backends!(old_runs_are_pruned);

#[tokio::test]
async fn a_fresh_gateway_exposes_every_function_series_at_zero() {
    let setup = hub_setup(Backend::Sqlite).await;
    let app = TestApp::spawn(&setup).await;
    let resp = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(
        resp.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = resp.text().await.expect("text");
    assert!(!text.contains("# EOF"), "Prometheus text, not OpenMetrics");
    for family in [
        "hub_runs_total counter",
        "hub_run_duration_seconds histogram",
        "hub_runs_in_flight gauge",
        "hub_last_success_timestamp_seconds gauge",
        "hub_scheduler_skips_total counter",
        "hub_http_requests_total counter",
        "hub_http_connections_open gauge",
        "hub_http_connections_refused_total counter",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family}\n")),
            "{family}: {text}"
        );
    }
    let zero = format!(
        "hub_runs_total{{function=\"{}\",outcome=\"failure\"}} 0\n",
        webhook_gitops::NAME
    );
    assert!(text.contains(&zero), "{text}");
    assert!(
        text.contains(r#"hub_runs_in_flight{function="reading-sync"} 0"#),
        "{text}"
    );
    // Every route, the gateway's and each function's, has a request series before any use.
    for route in ["/healthz", "/api/runs", webhook_gitops::WEBHOOK_PATH] {
        let series = format!("hub_http_requests_total{{route=\"{route}\",status=\"200\"}} 0\n");
        assert!(text.contains(&series), "{series}: {text}");
    }

    // A scraper that asks for OpenMetrics gets it.
    let resp = app
        .client
        .get(app.url("/metrics"))
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
        )
        .send()
        .await
        .expect("GET /metrics");
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("application/openmetrics-text"),
    );
    assert!(resp.text().await.expect("text").ends_with("# EOF\n"));
    app.stop().await;
}
