//! metrics-flush through a running gateway: batches in, rows in `system_metrics` exactly once,
//! bad input refused with nothing written, a vanished database answered with 503.

#[macro_use]
mod common;

use common::{Backend, Setup, TestApp};
use metrics_flush::testing::TOKEN as COLLECTOR_TOKEN;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A test gateway's settings, with metrics-flush configured.
async fn hub_setup(backend: Backend) -> Setup {
    Setup::new(backend)
        .await
        .with(metrics_flush::testing::env())
}

fn sample(host: &str, time: chrono::DateTime<chrono::Utc>, cpu: f64) -> Value {
    json!({
        "time": time, "host": host, "os": "Debian GNU/Linux 12",
        "metrics": {
            "cpu": {"total": cpu, "cores": [cpu, cpu]},
            "memory": {"total": 8_000_000_000_u64, "used": 1_000_000_000_u64},
            "network": [{"interface": "eth0", "rx_bytes": 10, "tx_bytes": 20}],
        }
    })
}

async fn push(app: &TestApp, token: Option<&str>, body: &[u8]) -> (u16, Value) {
    let mut req = app
        .client
        .post(app.url("/api/metrics"))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("POST /api/metrics");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON"))
}

async fn row_count(app: &TestApp) -> i64 {
    let sql = "SELECT COUNT(*) FROM system_metrics";
    let (n,): (i64,) = match &app.gateway.ctx.store {
        hub_runtime::Store::Postgres(p) => sqlx::query_as(sql).fetch_one(p).await,
        hub_runtime::Store::Sqlite(p) => sqlx::query_as(sql).fetch_one(p).await,
    }
    .expect("count rows");
    n
}

async fn batches_are_written_once_and_replays_are_counted(backend: Backend) {
    let setup = hub_setup(backend).await;
    let app = TestApp::spawn(&setup).await;
    let t0 = chrono::Utc::now() - chrono::Duration::minutes(2);
    let t1 = t0 + chrono::Duration::minutes(1);
    let batch = json!({"samples": [sample("h1", t0, 10.0), sample("h1", t1, 20.0), sample("h2", t0, 30.0)]});
    let body = serde_json::to_vec(&batch).expect("json");

    let (status, resp) = push(&app, Some(COLLECTOR_TOKEN), &body).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(
        resp,
        json!({"service": "metrics-flush", "samples": 3, "inserted": 9, "duplicates": 0})
    );
    assert_eq!(row_count(&app).await, 9);

    // The agent replays its spool: nothing new.
    let (status, resp) = push(&app, Some(COLLECTOR_TOKEN), &body).await;
    assert_eq!(
        (
            status,
            resp["inserted"].as_u64(),
            resp["duplicates"].as_u64()
        ),
        (200, Some(0), Some(9))
    );
    assert_eq!(row_count(&app).await, 9);

    let (status, latest) = app.get_json("/api/metrics/latest?host=h1").await;
    assert_eq!(status, 200);
    assert_eq!(latest["host"], "h1");
    assert_eq!(
        latest["metrics"]["cpu"]["payload"]["total"], 20.0,
        "newest sample wins"
    );
    assert_eq!(
        latest["metrics"]["network"]["payload"][0]["interface"],
        "eth0"
    );
    let (status, body) = app.get_json("/api/metrics/latest").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("query parameter host is required"))
    );

    let runs = app.runs("metrics-flush").await;
    assert!(
        runs.iter()
            .any(|r| r["summary"] == "200 3 samples: inserted 0 rows, 9 duplicates"),
        "{runs:#?}"
    );
    app.stop().await;
}

on_both_backends!(batches_are_written_once_and_replays_are_counted);

#[tokio::test]
async fn bad_input_is_refused_and_nothing_is_written() {
    let setup = hub_setup(Backend::Sqlite)
        .await
        .set("HUB_MAX_BODY_BYTES", 4096);
    let app = TestApp::spawn(&setup).await;
    let now = chrono::Utc::now();
    let good = serde_json::to_vec(&json!({"samples": [sample("h1", now, 1.0)]})).expect("json");

    let (status, resp) = push(&app, None, &good).await;
    assert_eq!(
        (status, resp["error"].as_str()),
        (401, Some("missing bearer token"))
    );
    let (status, resp) = push(&app, Some("guess"), &good).await;
    assert_eq!((status, resp["error"].as_str()), (401, Some("wrong token")));

    let (status, resp) = push(&app, Some(COLLECTOR_TOKEN), b"{\"samples\": [").await;
    assert_eq!(status, 400, "{resp}");
    assert!(
        resp["error"]
            .as_str()
            .expect("text")
            .starts_with("invalid batch: "),
        "{resp}"
    );

    let future = now + chrono::Duration::days(1);
    let mixed = json!({"samples": [sample("h1", now, 1.0), sample("h1", future, 2.0)]});
    let (status, resp) = push(
        &app,
        Some(COLLECTOR_TOKEN),
        &serde_json::to_vec(&mixed).expect("json"),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        resp["error"]
            .as_str()
            .expect("text")
            .contains("sample 1: time"),
        "{resp}"
    );

    let many: Vec<Value> = (0..40)
        .map(|i| sample("h1", now - chrono::Duration::seconds(i), 1.0))
        .collect();
    let big = serde_json::to_vec(&json!({"samples": many})).expect("json");
    assert!(big.len() > 4096);
    let (status, resp) = push(&app, Some(COLLECTOR_TOKEN), &big).await;
    assert_eq!(
        (status, resp["error"].as_str()),
        (413, Some("request body too large"))
    );

    // Nothing above reached the table (it may not even exist yet: reading it creates it).
    let (status, latest) = app.get_json("/api/metrics/latest?host=h1").await;
    assert_eq!((status, latest["metrics"].clone()), (200, json!({})));
    assert_eq!(row_count(&app).await, 0);
    app.stop().await;
}

/// Values PostgreSQL's JSONB cannot store answer 400 naming the sample and metric on both
/// stores (they used to answer 503 on PostgreSQL, so the agent retried them forever).
async fn unstorable_values_are_400_naming_the_field(backend: Backend) {
    let setup = hub_setup(backend).await;
    let app = TestApp::spawn(&setup).await;
    let now = chrono::Utc::now().to_rfc3339();
    let deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
    let cases = [
        (
            r#"{"label": "a\u0000b"}"#.to_owned(),
            r"sample 0: metrics.cpu: string contains \u0000",
        ),
        (
            r#"{"label": "\ud800"}"#.to_owned(),
            "sample 0: metrics.cpu: string has a lone UTF-16 surrogate",
        ),
        (
            r#"{"usage": 1e999999}"#.to_owned(),
            "sample 0: metrics.cpu: number out of range",
        ),
        (deep, "sample 0: metrics.cpu: nested deeper than 32 levels"),
    ];
    for (payload, want) in cases {
        let body = format!(
            r#"{{"samples": [{{"time": "{now}", "host": "h1", "metrics": {{"cpu": {payload}}}}}]}}"#
        );
        let (status, resp) = push(&app, Some(COLLECTOR_TOKEN), body.as_bytes()).await;
        assert_eq!(status, 400, "{payload}: {resp}");
        let error = resp["error"].as_str().expect("error text");
        assert!(error.contains(want), "{payload}: {error}");
    }
    let long_os = "x".repeat(300);
    let body = format!(
        r#"{{"samples": [{{"time": "{now}", "host": "h1", "os": "{long_os}", "metrics": {{"cpu": 1}}}}]}}"#
    );
    let (status, resp) = push(&app, Some(COLLECTOR_TOKEN), body.as_bytes()).await;
    assert_eq!(status, 400, "{resp}");
    assert!(
        resp["error"]
            .as_str()
            .expect("text")
            .contains("sample 0: os must be at most 256 printable characters"),
        "{resp}"
    );
    let body =
        r#"{"samples": [{"time": "2026-11-23T12:00:00", "host": "h1", "metrics": {"cpu": 1}}]}"#;
    let (status, resp) = push(&app, Some(COLLECTOR_TOKEN), body.as_bytes()).await;
    assert_eq!(status, 400, "{resp}");
    assert!(
        resp["error"]
            .as_str()
            .expect("text")
            .contains("must carry a UTC offset"),
        "{resp}"
    );
    // Nothing was written (reading creates the table if nothing else did).
    let (status, _) = app.get_json("/api/metrics/latest?host=h1").await;
    assert_eq!(status, 200);
    assert_eq!(row_count(&app).await, 0);
    app.stop().await;
}

on_both_backends!(unstorable_values_are_400_naming_the_field);

/// PostgreSQL takes a batch with COPY and, when a row is already there, again with an insert that
/// skips it: both must store the same row (time cut to the microsecond, text as sent) or a
/// replay would be written twice.
async fn replays_meet_their_rows_whichever_way_those_went_in(backend: Backend) {
    let setup = hub_setup(backend).await;
    let app = TestApp::spawn(&setup).await;
    // 789 ns past the microsecond: rounding and cutting give different rows.
    let t0: chrono::DateTime<chrono::Utc> = "2026-12-07T08:00:00.123456789Z".parse().expect("time");
    let tricky = json!({"path": "C:\\dir\\new", "text": "tab\there\nnewline\r\\.", "q": "\"é\""});
    let one = |host: &str| {
        json!({"time": t0, "host": host, "os": "os\\with\\backslashes",
               "metrics": {"cpu": {"total": 1.5}, "labels": tricky}})
    };
    let body =
        |samples: Vec<Value>| serde_json::to_vec(&json!({"samples": samples})).expect("json");
    // (hosts of the batch's samples, rows inserted, duplicates, why)
    let cases: [(&[&str], u64, u64, &str); 4] = [
        (&["h1"], 2, 0, "new"),
        (&["h1"], 0, 2, "a replay"),
        (
            &["h1", "h2"],
            2,
            2,
            "old and new in one batch: the new go in, the old are counted",
        ),
        (
            &["h3", "h3"],
            2,
            2,
            "a sample twice in one new batch is written once",
        ),
    ];
    for (hosts, inserted, duplicates, why) in cases {
        let batch = body(hosts.iter().map(|h| one(h)).collect());
        let (status, resp) = push(&app, Some(COLLECTOR_TOKEN), &batch).await;
        assert_eq!(
            (
                status,
                resp["inserted"].as_u64(),
                resp["duplicates"].as_u64()
            ),
            (200, Some(inserted), Some(duplicates)),
            "{why}: {resp}"
        );
    }
    assert_eq!(row_count(&app).await, 6);

    let (status, latest) = app.get_json("/api/metrics/latest?host=h1").await;
    assert_eq!(status, 200, "{latest}");
    assert_eq!(latest["metrics"]["labels"]["payload"], tricky);
    assert_eq!(latest["metrics"]["labels"]["os"], "os\\with\\backslashes");
    app.stop().await;
}

on_both_backends!(replays_meet_their_rows_whichever_way_those_went_in);

#[tokio::test]
async fn gzip_bodies_are_inflated_within_the_limit_and_other_encodings_refused() {
    use std::io::Write;
    let setup = hub_setup(Backend::Sqlite)
        .await
        .set("HUB_MAX_BODY_BYTES", 64 * 1024);
    let app = TestApp::spawn(&setup).await;
    let gzip = |bytes: &[u8]| {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(bytes).expect("gzip");
        enc.finish().expect("gzip")
    };
    let send = |body: Vec<u8>, encoding: &'static str| {
        app.client
            .post(app.url("/api/metrics"))
            .bearer_auth(COLLECTOR_TOKEN)
            .header("content-type", "application/json")
            .header("content-encoding", encoding)
            .body(body)
            .send()
    };
    let batch = serde_json::to_vec(&json!({"samples": [sample("gz", chrono::Utc::now(), 3.0)]}))
        .expect("json");
    let resp = send(gzip(&batch), "gzip").await.expect("POST");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("JSON");
    assert_eq!(body["inserted"], 3, "{body}");

    // 8 MiB of spaces inside a valid batch squeeze to a few KiB: the limit counts what they
    // inflate to, so the bomb stops at 64 KiB.
    let mut bomb = b"{\"samples\": [".to_vec();
    bomb.extend(std::iter::repeat_n(b' ', 8 * 1024 * 1024));
    bomb.extend(b"]}");
    let bomb = gzip(&bomb);
    assert!(bomb.len() < 64 * 1024, "compressed: {}", bomb.len());
    let resp = send(bomb, "gzip").await.expect("POST");
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.expect("JSON");
    assert_eq!(body["error"], "request body too large");

    let resp = send(batch.clone(), "br").await.expect("POST");
    assert_eq!(resp.status(), 415);
    let body: Value = resp.json().await.expect("JSON 415");
    assert_eq!(
        body["error"],
        "unsupported Content-Encoding: send gzip or no encoding"
    );
    app.stop().await;
}

#[tokio::test]
async fn credentials_are_checked_before_the_body_is_read() {
    let setup = hub_setup(Backend::Sqlite)
        .await
        .set("HUB_MAX_BODY_BYTES", 4096);
    let app = TestApp::spawn(&setup).await;
    // Over the limit and not JSON: were it read or parsed, the answer would be 413 or 400.
    let junk = vec![b'{'; 64 * 1024];
    let (status, resp) = push(&app, Some("guess"), &junk).await;
    assert_eq!((status, resp["error"].as_str()), (401, Some("wrong token")));
    let (status, resp) = push(&app, None, &junk).await;
    assert_eq!(
        (status, resp["error"].as_str()),
        (401, Some("missing bearer token"))
    );

    // A body that never ends is refused on its headers, without waiting for it.
    let mut conn = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /api/metrics HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer guess\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{{\"samples\": [   \r\n",
        app.addr
    );
    conn.write_all(head.as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), conn.read(&mut buf))
        .await
        .expect("answered while the body was still open")
        .expect("read");
    let raw = String::from_utf8_lossy(&buf[..n]);
    assert!(raw.starts_with("HTTP/1.1 401"), "{raw}");

    // Refused requests hold no slot and write no run row.
    assert!(app.runs(metrics_flush::NAME).await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn without_a_token_configured_pushes_are_refused() {
    let setup = hub_setup(Backend::Sqlite)
        .await
        .unset("HUB_COLLECTOR_TOKEN");
    let app = TestApp::spawn(&setup).await;
    let body = serde_json::to_vec(&json!({"samples": [sample("h1", chrono::Utc::now(), 1.0)]}))
        .expect("json");
    let (status, resp) = push(&app, Some("anything"), &body).await;
    assert_eq!(
        (status, resp["error"].as_str()),
        (503, Some("collector token is not configured"))
    );
    let (_, ready) = app.get_json("/readyz").await;
    assert_eq!(
        ready["checks"]["metrics-flush"],
        "not configured: HUB_COLLECTOR_TOKEN is not set"
    );
    app.stop().await;
}

#[tokio::test]
async fn database_down_answers_503_so_the_agent_spools() {
    let setup = hub_setup(Backend::Postgres).await;
    let app = TestApp::spawn(&setup).await;
    let db = setup.db.as_ref().expect("postgres");
    db.drop_now().await;
    let body = serde_json::to_vec(&json!({"samples": [sample("h1", chrono::Utc::now(), 1.0)]}))
        .expect("json");
    let (status, resp) = push(&app, Some(COLLECTOR_TOKEN), &body).await;
    assert_eq!(
        (status, resp["error"].as_str()),
        (503, Some("metrics store unavailable"))
    );
    app.stop().await;
}
