//! A real S3 server per test: Garage (2.x) as a single node with one bucket and one key, on free
//! ports, in a directory of its own; killed when dropped. Garage checks signatures and
//! checksums, which a mock would not.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The release `make test-deps` builds (`cargo install garage`).
pub const GARAGE_VERSION: &str = "2.5.0";
/// Clients must sign with this region.
pub const REGION: &str = "garage";
pub const BUCKET: &str = "hub-backups";
pub const ACCESS_KEY_ID: &str = "GK0123456789abcdef01234567";
pub const SECRET_ACCESS_KEY: &str =
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const LOG_FILE: &str = "garage.log";

#[derive(Debug)]
pub struct GarageServer {
    child: Option<Child>,
    s3: SocketAddr,
    dir: TempDir,
}

fn garage_bin() -> PathBuf {
    let cached = format!("garage-{GARAGE_VERSION}");
    crate::config::tool("GARAGE_BIN", "garage", &cached, "Garage")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("probe a free port")
        .port()
}

impl GarageServer {
    pub fn start() -> Self {
        // Another process may take a probed port before Garage binds it: then try others.
        for _ in 0..5 {
            let dir = TempDir::new().expect("garage dir");
            let (rpc, s3) = (free_port(), free_port());
            let config = format!(
                "metadata_dir = \"{meta}\"\ndata_dir = \"{data}\"\ndb_engine = \"sqlite\"\n\
                 replication_factor = 1\nrpc_bind_addr = \"127.0.0.1:{rpc}\"\n\
                 rpc_public_addr = \"127.0.0.1:{rpc}\"\nrpc_secret = \"{secret}\"\n\
                 [s3_api]\ns3_region = \"{REGION}\"\napi_bind_addr = \"127.0.0.1:{s3}\"\n\
                 root_domain = \".s3.garage.localhost\"\n",
                meta = dir.path().join("meta").display(),
                data = dir.path().join("data").display(),
                secret = "a".repeat(64),
            );
            std::fs::write(dir.path().join("garage.toml"), config).expect("garage.toml");
            let mut server = Self {
                child: None,
                s3: SocketAddr::from(([127, 0, 0, 1], s3)),
                dir,
            };
            if server.spawn() {
                return server;
            }
            eprintln!(
                "testkit: garage did not start, retrying:\n{}",
                server.log_tail()
            );
        }
        panic!("garage did not start");
    }

    /// Starts the process on this server's config; whether it answers S3 within 30 s.
    fn spawn(&mut self) -> bool {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(LOG_FILE))
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null());
        let child = Command::new(garage_bin())
            .arg("-c")
            .arg(self.dir.path().join("garage.toml"))
            .args(["server", "--single-node", "--default-bucket"])
            .env("GARAGE_DEFAULT_ACCESS_KEY", ACCESS_KEY_ID)
            .env("GARAGE_DEFAULT_SECRET_KEY", SECRET_ACCESS_KEY)
            .env("GARAGE_DEFAULT_BUCKET", BUCKET)
            .env("RUST_LOG", "garage=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn garage server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
                return false;
            }
            if TcpStream::connect_timeout(&self.s3, Duration::from_millis(200)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// `http://127.0.0.1:PORT` of the S3 API.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.s3)
    }

    /// Where Garage keeps its data (tests may damage objects there, or through S3).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last lines Garage logged.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join(LOG_FILE)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Kills the server (the S3 endpoint goes away mid-request).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same ports and data, after [`GarageServer::kill`].
    pub fn restart(&mut self) {
        assert!(
            self.spawn(),
            "garage did not come back:\n{}",
            self.log_tail()
        );
    }
}

impl Drop for GarageServer {
    fn drop(&mut self) {
        self.kill();
    }
}
