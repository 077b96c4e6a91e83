//! `hub-gateway serve` and its two listeners (#15), on the binary: it refuses to serve operator
//! routes beyond loopback without credentials unless told to, logs both addresses, takes the
//! operator token from a file, and stops both listeners on SIGTERM.

mod common;

use common::{Backend, Setup, gateway_cmd, spawn_gateway, terminate};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Runs `hub-gateway serve` with `args` expecting it to exit on its own; returns its exit
/// status and stderr. Killed (and failed) if it is still running after 20 s.
fn run_to_exit(setup: &Setup, args: &[&str]) -> (std::process::ExitStatus, String) {
    let mut child = gateway_cmd(setup)
        .arg("serve")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hub-gateway");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("hub-gateway kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("read stderr");
    (status, stderr)
}

#[tokio::test]
async fn refuses_to_serve_operator_routes_beyond_loopback_without_a_token() {
    let setup = Setup::new(Backend::Sqlite).await;
    for args in [
        vec!["--bind", "0.0.0.0", "--port", "0"],
        vec!["--bind", "::", "--port", "0"],
    ] {
        let (status, stderr) = run_to_exit(&setup, &args);
        assert!(!status.success(), "{args:?}: {status}");
        for name in ["HUB_BIND", "HUB_OPERATOR_TOKEN", "HUB_OPERATOR_ANONYMOUS"] {
            assert!(stderr.contains(name), "{args:?}: {stderr}");
        }
    }
    // From the environment as well as the flag.
    let setup = setup.set("HUB_BIND", "0.0.0.0");
    let (status, stderr) = run_to_exit(&setup, &["--port", "0"]);
    assert!(!status.success());
    assert!(stderr.contains("HUB_OPERATOR_ANONYMOUS"), "{stderr}");
    // A value that is not a boolean is a mistake, not consent.
    let setup = setup.set("HUB_OPERATOR_ANONYMOUS", "yes");
    let (status, stderr) = run_to_exit(&setup, &["--port", "0"]);
    assert!(!status.success());
    assert!(stderr.contains("HUB_OPERATOR_ANONYMOUS"), "{stderr}");
}

/// `host:port` of a listener bound to every address, reached over loopback.
fn local(addr: &str) -> String {
    let port = addr.rsplit(':').next().expect("port");
    format!("127.0.0.1:{port}")
}

#[tokio::test]
async fn serves_beyond_loopback_anonymously_only_on_purpose() {
    let setup = Setup::new(Backend::Sqlite)
        .await
        .set("HUB_BIND", "0.0.0.0")
        .set("HUB_OPERATOR_ANONYMOUS", "true");
    let mut cmd = gateway_cmd(&setup);
    cmd.args(["serve", "--port", "0"]);
    let mut gw = spawn_gateway(cmd);
    assert!(gw.addr.starts_with("0.0.0.0:"), "{}", gw.addr);
    let client = reqwest::Client::new();
    let runs = client
        .get(format!("http://{}/api/runs", local(&gw.addr)))
        .send()
        .await
        .expect("GET /api/runs");
    assert_eq!(runs.status(), 200, "served without credentials");
    assert!(terminate(&mut gw.child).await.success());
}

#[tokio::test]
async fn serves_beyond_loopback_with_a_token_from_a_file() {
    let setup = Setup::new(Backend::Sqlite).await;
    let token_file = setup.data_dir.path().join("operator-token");
    std::fs::write(&token_file, "file-operator-token\n").expect("write token");
    let setup = setup.set("HUB_OPERATOR_TOKEN_FILE", token_file.display());
    let mut cmd = gateway_cmd(&setup);
    cmd.args(["serve", "--bind", "0.0.0.0", "--port", "0"]);
    let mut gw = spawn_gateway(cmd);
    let url = format!("http://{}/api/runs", local(&gw.addr));
    let client = reqwest::Client::new();
    let anonymous = client.get(&url).send().await.expect("GET");
    assert_eq!(anonymous.status(), 401);
    let basic = client
        .get(&url)
        .basic_auth("admin", Some("file-operator-token"))
        .send()
        .await
        .expect("GET");
    assert_eq!(basic.status(), 200, "the file's newline is not the token's");
    assert!(terminate(&mut gw.child).await.success());
    let logs = gw.logs.lock().expect("logs").join("\n");
    assert!(!logs.contains("file-operator-token"), "{logs}");
}

#[tokio::test]
async fn both_listeners_are_logged_and_stopped_by_sigterm() {
    let setup = Setup::new(Backend::Sqlite)
        .await
        .with(webhook_gitops::testing::env());
    let mut cmd = gateway_cmd(&setup);
    cmd.args(["serve", "--port", "0"]);
    let mut gw = spawn_gateway(cmd);
    assert_ne!(gw.addr, gw.public_addr);
    let client = reqwest::Client::new();
    let status = |addr: &str, path: &str| {
        let url = format!("http://{addr}{path}");
        let client = client.clone();
        async move { client.get(url).send().await.map(|r| r.status().as_u16()) }
    };
    assert_eq!(status(&gw.addr, "/api/runs").await.expect("operator"), 200);
    assert_eq!(
        status(&gw.public_addr, "/api/runs").await.expect("public"),
        404
    );
    assert!(terminate(&mut gw.child).await.success());
    for addr in [&gw.addr, &gw.public_addr] {
        assert!(
            std::net::TcpStream::connect(addr).is_err(),
            "{addr} still accepts connections"
        );
    }
}
