//! Connection-level defences of the listener: a header deadline (slowloris clients and idle
//! keep-alive sockets are closed), a cap on open connections (beyond it: 503 at once), and the
//! open-files limit raised at start.

#[macro_use]
mod common;

use common::{Backend, Setup, TestApp};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn app_with(env: &[(&str, &str)]) -> (Setup, TestApp) {
    let mut setup = Setup::new(Backend::Sqlite).await;
    for (k, v) in env {
        setup = setup.set(k, v);
    }
    let app = TestApp::spawn(&setup).await;
    (setup, app)
}

/// Reads until the server closes the connection; `None` if it is still open after `within`.
async fn closed_within(conn: &mut TcpStream, within: Duration) -> Option<String> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, conn.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&seen).into_owned()),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

async fn healthz(app: &TestApp) -> u16 {
    app.client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("GET /healthz")
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_cut_off() {
    let (_setup, app) = app_with(&[("HUB_HEADER_TIMEOUT_SECS", "1")]).await;
    let mut conn = TcpStream::connect(app.addr).await.expect("connect");
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    // A header byte every 200 ms: never a complete request.
    let started = Instant::now();
    let trickle = async {
        for _ in 0..50 {
            if conn.write_all(b"X").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(4), trickle).await;
    let closed = closed_within(&mut conn, Duration::from_secs(2)).await;
    assert!(
        closed.is_some(),
        "still open {:?} after the 1 s header deadline",
        started.elapsed()
    );
    assert_eq!(healthz(&app).await, 200);
    app.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let (_setup, app) = app_with(&[("HUB_HEADER_TIMEOUT_SECS", "1")]).await;
    let mut conn = TcpStream::connect(app.addr).await.expect("connect");
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 512];
    let n = conn.read(&mut buf).await.expect("response");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
    // Nothing more is sent: the keep-alive connection is closed after the deadline.
    let closed = closed_within(&mut conn, Duration::from_secs(5)).await;
    assert!(closed.is_some(), "idle connection still open after 5 s");
    app.stop().await;
}

#[tokio::test]
async fn beyond_the_connection_cap_new_connections_are_refused_at_once() {
    let (_setup, app) = app_with(&[
        ("HUB_MAX_CONNECTIONS", "4"),
        ("HUB_HEADER_TIMEOUT_SECS", "2"),
    ])
    .await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(app.addr).await.expect("connect"));
    }
    // Let the server accept the four before the fifth arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fifth = TcpStream::connect(app.addr).await.expect("connect");
    let answer = closed_within(&mut fifth, Duration::from_secs(1))
        .await
        .expect("refused at once, not queued");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("too many connections"), "{answer}");

    // The idle ones are closed at the header deadline, and the slots are free again.
    for conn in &mut idle {
        assert!(closed_within(conn, Duration::from_secs(5)).await.is_some());
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while healthz(&app).await != 200 {
        assert!(Instant::now() < deadline, "slots never freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = app.metrics_text().await;
    assert!(
        text.contains("hub_http_connections_refused_total 1\n"),
        "{text}"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_open_files_soft_limit_is_raised_at_start() {
    // systemd starts services with a soft limit of 1024; here 256, under a hard limit of 4096.
    let setup = Setup::new(Backend::Sqlite).await;
    let mut cmd = common::gateway_cmd(&setup);
    let program = cmd.get_program().to_owned();
    let mut wrapped = std::process::Command::new("prlimit");
    wrapped
        .arg("--nofile=256:4096")
        .arg(program)
        .args(["serve", "--port", "0"])
        .env_clear()
        .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .current_dir(setup.data_dir.path());
    cmd = wrapped;
    let (mut child, _addr) = common::spawn_command(cmd);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("open files line");
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[3..5], ["4096", "4096"], "{line}");
    common::terminate(&mut child).await;
}
