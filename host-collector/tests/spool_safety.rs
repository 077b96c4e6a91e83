//! hub-collector never loses a sample to an answer that is not the gateway's: a proxy's error
//! page or an empty 2xx keeps the spool as it is; only metrics-flush's JSON verdict deletes or
//! moves samples. A run starting in the second of the previous sample takes its sample in the
//! next second (the gateway keys samples by second), and a spool directory removed while the
//! agent runs is recreated.

mod common;

use common::*;
use std::path::Path;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A server answering every request with `response` (raw HTTP), like a misbehaving proxy.
async fn proxy(response: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut buf = vec![0u8; 65536];
            let _ = conn.read(&mut buf).await;
            let _ = conn.write_all(response.as_bytes()).await;
        }
    });
    url
}

fn rejected(spool: &Path) -> usize {
    std::fs::read_dir(spool.join("rejected"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test]
async fn answers_that_are_not_the_gateways_keep_the_sample_spooled() {
    let answers = [
        "HTTP/1.1 400 Bad Request\r\ncontent-type: text/html\r\ncontent-length: 24\r\nconnection: close\r\n\r\n<html>bad request</html>",
        "HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 15\r\nconnection: close\r\n\r\n<html>ok</html>",
        "HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n",
    ];
    for answer in answers {
        let url = proxy(answer).await;
        let spool = TempDir::new().expect("spool");
        tokio::task::spawn_blocking({
            let (url, spool) = (url.clone(), spool.path().to_path_buf());
            move || once_spooled(&url, &spool, TOKEN)
        })
        .await
        .expect("run");
        assert_eq!(spooled(spool.path()).len(), 1, "kept for {answer:?}");
        assert_eq!(rejected(spool.path()), 0, "not moved aside for {answer:?}");
    }
}

#[tokio::test]
async fn two_runs_in_one_second_store_two_samples() {
    let hub = hub().await;
    let spool = TempDir::new().expect("spool");
    let (url, dir) = (hub.url.clone(), spool.path().to_path_buf());
    // Back to back: the second starts within the first one's second and waits for the next.
    tokio::task::spawn_blocking(move || {
        once(&url, &dir);
        once(&url, &dir);
    })
    .await
    .expect("runs");
    let (times, rows) = stored(&hub, &print_host()).await;
    assert_eq!(times, 2, "two distinct sample times ({rows} rows)");
    hub.stop().await;
}

#[tokio::test]
async fn a_spool_directory_removed_while_running_is_recreated() {
    let hub = hub().await;
    let root = TempDir::new().expect("root");
    let spool = root.path().join("spool");
    let mut agent = collector(&hub.url, &spool, TOKEN)
        .args(["--interval", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn agent");
    let host = print_host();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while stored(&hub, &host).await.0 < 1 {
        assert!(std::time::Instant::now() < deadline, "no first sample");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    std::fs::remove_dir_all(&spool).expect("remove spool");
    let before = stored(&hub, &host).await.0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while stored(&hub, &host).await.0 < before + 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "samples stopped after the spool was removed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(spool.join("rejected").is_dir(), "recreated");
    let _ = agent.kill();
    let _ = agent.wait();
    hub.stop().await;
}

fn print_host() -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hub-collector"))
        .arg("--print")
        .output()
        .expect("run");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    v["host"].as_str().expect("host").to_owned()
}
