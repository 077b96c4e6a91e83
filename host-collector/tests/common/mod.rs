//! Harness for hub-collector tests: a gateway serving metrics-flush in the test process, and
//! the agent binary run as an operator would.

#![allow(dead_code)] // each test binary uses a different part of the harness

use local_gateway::Gateway;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};
use tempfile::TempDir;

pub const TOKEN: &str = "collector-test-token";

pub struct Hub {
    pub url: String,
    pub gateway: Gateway,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: Option<TempDir>,
}

impl Hub {
    /// A gateway on `addr` keeping its embedded store in `dir`.
    pub async fn start(dir: &Path, addr: &str) -> Hub {
        Self::start_with(dir, addr, &[]).await
    }

    /// [`Hub::start`] with more settings (a `DATABASE_URL`, a function's).
    pub async fn start_with(dir: &Path, addr: &str, settings: &[(&str, String)]) -> Hub {
        let mut env = HashMap::from([
            ("HUB_DATA_DIR".to_owned(), dir.display().to_string()),
            ("HUB_COLLECTOR_TOKEN".to_owned(), TOKEN.to_owned()),
        ]);
        env.extend(settings.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        let source = hub_runtime::Source::from_parts(None, env).expect("source");
        let gateway = Gateway::new(source).await.expect("gateway");
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let serving = gateway.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = serving
                .serve(listener, async {
                    let _ = rx.await;
                })
                .await;
        });
        Hub {
            url,
            gateway,
            stop: Some(tx),
            task: Some(task),
            _dir: None,
        }
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

/// A gateway on a free port with its own embedded store.
pub async fn hub() -> Hub {
    let dir = TempDir::new().expect("tempdir");
    let mut hub = Hub::start(dir.path(), "127.0.0.1:0").await;
    hub._dir = Some(dir);
    hub
}

/// A URL nobody listens on: bind a port, then free it.
pub fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    format!("http://{}", l.local_addr().expect("addr"))
}

pub fn collector(url: &str, spool: &Path, token: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hub-collector"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HUB_GATEWAY_URL", url)
        .env("HUB_COLLECTOR_SPOOL_DIR", spool)
        .env("HUB_COLLECTOR_TOKEN", token);
    cmd
}

pub fn once(url: &str, spool: &Path) -> Output {
    let out = collector(url, spool, TOKEN)
        .arg("--once")
        .output()
        .expect("run hub-collector");
    assert!(
        out.status.success(),
        "--once failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `--once` against a gateway that does not take the sample: it stays spooled, and the exit
/// status (75, EX_TEMPFAIL) tells a systemd timer the push failed.
pub fn once_spooled(url: &str, spool: &Path, token: &str) -> Output {
    let out = collector(url, spool, token)
        .arg("--once")
        .output()
        .expect("run hub-collector");
    assert_eq!(
        out.status.code(),
        Some(75),
        "--once with a failed push: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("push failed, the sample waits in the spool"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn spooled(spool: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(spool)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.ends_with(".json"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Distinct sample times stored for `host`, and total rows.
pub async fn stored(hub: &Hub, host: &str) -> (i64, i64) {
    let hub_runtime::Store::Sqlite(pool) = &hub.gateway.ctx.store else {
        panic!("embedded store expected");
    };
    sqlx::query_as("SELECT COUNT(DISTINCT time), COUNT(*) FROM system_metrics WHERE host = $1")
        .bind(host)
        .fetch_one(pool)
        .await
        .unwrap_or((0, 0))
}
