//! The shared middleware stack served over real HTTP: panics, timeouts, concurrency limits and
//! oversized bodies all end in a JSON error with the request id, and each function invocation
//! is recorded as a run.

use axum::body::Bytes;
use hub_runtime::auth::bearer_guard;
use hub_runtime::http::{Limits, function_layers, reply_interrupted, standard_layers};
use hub_runtime::store::RunQuery;
use hub_runtime::{HubConfig, RouteTable, Runs, Source, Store, Trigger};
use std::collections::HashMap;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "demo-token";

struct Served {
    base: String,
    runs: Runs,
    _dir: tempfile::TempDir,
}

async fn serve(max_concurrency: usize) -> Served {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let env = HashMap::from([("HUB_DATA_DIR".to_owned(), dir.path().display().to_string())]);
    let hub = HubConfig::from_source(&Source::from_parts(None, env).expect("source")).expect("cfg");
    let runs = Runs::new(Store::connect(&hub).await.expect("store"));
    let function = RouteTable::new()
        .get("/panic", panicking)
        .get("/slow", || async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "late"
        })
        .get("/brief", || async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            "done"
        })
        .post("/stopped", || async {
            reply_interrupted(
                serde_json::json!({"status": "interrupted"}),
                "stopped by shutdown",
            )
        })
        .post("/echo", |body: Bytes| async move { body })
        .post("/guarded", |body: Bytes| async move { body })
        .guarded(bearer_guard(Some(TOKEN.into()), "demo token"))
        .with_state(());
    let limits = Limits {
        request_timeout: Duration::from_millis(300),
        body_timeout: Duration::from_millis(500),
        max_body_bytes: 1024,
        max_concurrency,
    };
    let router = function_layers(function, runs.clone(), "demo", Trigger::Http, limits);
    let app = standard_layers(router, limits, runs.metrics().clone(), None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    Served {
        base: format!("http://{addr}"),
        runs,
        _dir: dir,
    }
}

impl Served {
    /// The runs recorded so far, newest first.
    async fn recorded_runs(&self) -> Vec<hub_runtime::store::RunRow> {
        self.runs
            .list(&RunQuery {
                limit: 10,
                ..Default::default()
            })
            .await
            .expect("runs")
    }
}

async fn json(resp: reqwest::Response) -> (u16, String, serde_json::Value) {
    let status = resp.status().as_u16();
    let id = resp
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().expect("ascii").to_owned())
        .unwrap_or_default();
    (status, id, resp.json().await.expect("JSON error body"))
}

#[tokio::test]
async fn a_panicking_handler_answers_500_json_and_the_server_lives_on() {
    let s = serve(8).await;
    let client = reqwest::Client::new();
    let resp = client
        .get(format!("{}/panic", s.base))
        .send()
        .await
        .expect("GET");
    let (status, id, body) = json(resp).await;
    assert_eq!(status, 500);
    assert_eq!(
        body["error"], "internal error",
        "no panic text leaks: {body}"
    );
    assert_eq!(body["request_id"], id.as_str());
    let resp = client
        .post(format!("{}/echo", s.base))
        .body("still here")
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.text().await.expect("text"), "still here");
    let runs = s.recorded_runs().await;
    assert!(
        runs.iter()
            .any(|r| r.outcome == "failure" && r.summary == "500 internal error"),
        "{runs:#?}"
    );
}

#[tokio::test]
async fn slow_requests_time_out_with_504() {
    let s = serve(8).await;
    let resp = reqwest::get(format!("{}/slow", s.base)).await.expect("GET");
    let (status, _, body) = json(resp).await;
    assert_eq!(status, 504);
    assert_eq!(body["error"], "request timed out");
    // The timed-out request is a failed run, not a silently lost one.
    let runs = s.recorded_runs().await;
    assert!(
        runs.iter()
            .any(|r| r.outcome == "failure" && r.summary == "504 request timed out"),
        "{runs:#?}"
    );
}

/// A run its handler marks as stopped by shutdown answers 503 but is recorded `interrupted`,
/// not as a failure.
#[tokio::test]
async fn a_run_stopped_by_shutdown_answers_503_and_is_recorded_interrupted() {
    let s = serve(8).await;
    let resp = reqwest::Client::new()
        .post(format!("{}/stopped", s.base))
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 503);
    let outcomes: Vec<(String, String)> = s
        .recorded_runs()
        .await
        .into_iter()
        .map(|r| (r.outcome, r.summary))
        .collect();
    assert_eq!(
        outcomes,
        [(
            "interrupted".to_owned(),
            "503 stopped by shutdown".to_owned()
        )]
    );
}

/// `Runs::settled` (the gateway's last wait before its final flush) waits for a request still
/// being answered, so its run is recorded, not lost with the process.
#[tokio::test]
async fn settled_waits_for_a_request_in_flight_to_record_its_run() {
    let s = serve(8).await;
    let url = format!("{}/brief", s.base);
    let request = tokio::spawn(async move { reqwest::get(url).await.expect("GET").status() });
    // Until the handler runs (the gauge counts it), settling would not be waiting for it.
    while !s
        .runs
        .metrics()
        .encode()
        .contains("hub_runs_in_flight{function=\"demo\"} 1")
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::timeout(Duration::from_secs(5), s.runs.settled())
        .await
        .expect("settled once the request recorded its run");
    let runs = s.recorded_runs().await;
    assert!(
        runs.iter()
            .any(|r| r.outcome == "success" && r.summary == "200 OK"),
        "{runs:#?}"
    );
    assert_eq!(request.await.expect("request"), 200);
}

#[tokio::test]
async fn a_full_function_answers_429() {
    let s = serve(1).await;
    let client = reqwest::Client::new();
    let busy = tokio::spawn({
        let url = format!("{}/slow", s.base);
        let client = client.clone();
        async move { client.get(url).send().await.expect("GET").status().as_u16() }
    });
    // Wait until the slow request holds the only permit.
    let mut status = 0;
    for _ in 0..100 {
        let resp = client
            .post(format!("{}/echo", s.base))
            .body("x")
            .send()
            .await
            .expect("POST");
        status = resp.status().as_u16();
        if status == 429 {
            assert_eq!(resp.headers()["retry-after"], "1");
            let body: serde_json::Value = resp.json().await.expect("json");
            assert_eq!(body["error"], "function is busy, retry later");
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(status, 429);
    assert_eq!(busy.await.expect("join"), 504);
}

#[tokio::test]
async fn oversized_bodies_get_413_json_with_or_without_content_length() {
    let s = serve(8).await;
    let resp = reqwest::Client::new()
        .post(format!("{}/echo", s.base))
        .body(vec![b'x'; 2048])
        .send()
        .await
        .expect("POST");
    let (status, _, body) = json(resp).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (413, Some("request body too large"))
    );

    // Chunked, so the size is only known while reading.
    let addr = s.base.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let chunk = "x".repeat(1500);
    let req = format!(
        "POST /echo HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    conn.write_all(req.as_bytes()).await.expect("write");
    let mut raw = String::new();
    conn.read_to_string(&mut raw).await.expect("read");
    assert!(raw.starts_with("HTTP/1.1 413"), "{raw}");
    assert!(raw.contains(r#""error":"request body too large""#), "{raw}");
}

#[tokio::test]
async fn a_trickled_body_holds_no_slot_and_times_out_with_408() {
    // One slot: a client that sends headers and then stalls must not take it.
    let s = serve(1).await;
    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut stalled = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /echo HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 100\r\nConnection: close\r\n\r\n0123456789"
    );
    stalled.write_all(head.as_bytes()).await.expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await;

    let resp = reqwest::Client::new()
        .post(format!("{}/echo", s.base))
        .body("meanwhile")
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 200, "the stalled body holds no slot");
    assert_eq!(resp.text().await.expect("text"), "meanwhile");

    let mut raw = String::new();
    tokio::time::timeout(Duration::from_secs(5), stalled.read_to_string(&mut raw))
        .await
        .expect("answered after the body deadline")
        .expect("read");
    assert!(raw.starts_with("HTTP/1.1 408"), "{raw}");
    assert!(
        raw.contains(r#""error":"request body not received in time""#),
        "{raw}"
    );
}

async fn panicking() -> &'static str {
    panic!("handler bug")
}

/// Sends a request head and the first chunk of a chunked body that never ends; returns what
/// the server answered within 5 s (a server that waited for the body would answer nothing).
async fn unfinished_chunked_post(base: &str, path: &str, auth: &str) -> String {
    let addr = base.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let chunk = "{".repeat(100);
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {auth}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n",
        chunk.len()
    );
    conn.write_all(head.as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
        .await
        .expect("answered before the body ended")
        .expect("read");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn guards_refuse_before_the_body_is_read_or_a_run_is_recorded() {
    let s = serve(8).await;
    let client = reqwest::Client::new();
    let post = |auth: Option<&str>, body: Vec<u8>| {
        let mut req = client.post(format!("{}/guarded", s.base)).body(body);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.send()
    };

    // Over the 1,024-byte limit and not what the handler takes: a wrong token still gets 401,
    // not 413, because the limit is only looked at after the credentials.
    let (status, _, body) = json(
        post(Some("Bearer guess"), vec![b'{'; 4096])
            .await
            .expect("POST"),
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (401, Some("wrong token")));
    let (status, _, body) = json(post(None, vec![b'{'; 4096]).await.expect("POST")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("missing bearer token"))
    );

    // A body that never ends: the refusal comes from the headers alone.
    let raw = unfinished_chunked_post(&s.base, "/guarded", "Bearer guess").await;
    assert!(raw.starts_with("HTTP/1.1 401"), "{raw}");
    assert!(raw.contains(r#""error":"wrong token""#), "{raw}");

    // With the token, the body limit applies as before, then the handler runs.
    let auth = format!("Bearer {TOKEN}");
    let (status, _, body) = json(post(Some(&auth), vec![b'x'; 4096]).await.expect("POST")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (413, Some("request body too large"))
    );
    let resp = post(Some(&auth), b"hello".to_vec()).await.expect("POST");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.expect("text"), "hello");

    // Only the admitted request that reached the handler is a run; refusals wrote nothing.
    let runs = s.recorded_runs().await;
    let summaries: Vec<_> = runs.iter().map(|r| r.summary.as_str()).collect();
    assert_eq!(summaries, ["200 OK"], "{runs:#?}");
}
