use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// PoloDB's release the tests are written against (`make test-deps` installs it).
pub const POLODB_VERSION: &str = "5.3.0";

/// A PoloDB server speaking the MongoDB wire protocol, on a free port with its own data
/// directory; killed when dropped.
#[derive(Debug)]
pub struct MongoServer {
    child: Child,
    addr: SocketAddr,
    _dir: TempDir,
}

/// `POLODB_BIN`, else `polodb` on `PATH`, else where `make test-deps` caches it.
fn polodb_bin() -> PathBuf {
    let settings = crate::config::settings();
    if let Some(bin) = &settings.polodb_bin {
        return bin.clone();
    }
    let on_path = settings.path.as_ref().and_then(|path| {
        std::env::split_paths(path)
            .map(|d| d.join("polodb"))
            .find(|p| p.is_file())
    });
    if let Some(bin) = on_path {
        return bin;
    }
    let cached = settings.home.join(format!(
        ".cache/hub-tools/polodb-{POLODB_VERSION}/bin/polodb"
    ));
    assert!(
        cached.is_file(),
        "no PoloDB server: set POLODB_BIN, put polodb on PATH, or run `make test-deps` \
         (installs polodb {POLODB_VERSION} into {})",
        cached.display()
    );
    cached
}

impl MongoServer {
    pub fn start() -> Self {
        let dir = TempDir::new().expect("polodb data dir");
        // Another process may take the port between this probe and the server's bind; then
        // the server exits and the next attempt takes another port.
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("probe a free port")
                .port();
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let mut child = Command::new(polodb_bin())
                .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
                .arg("--path")
                .arg(dir.path().join("db"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                // PoloDB logs an error for every command it lacks (e.g. the driver's
                // endSessions); TESTKIT_POLODB_LOG=1 shows them.
                .stderr(if crate::config::settings().polodb_log {
                    Stdio::inherit()
                } else {
                    Stdio::null()
                })
                .spawn()
                .expect("spawn polodb serve");
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    return Self {
                        child,
                        addr,
                        _dir: dir,
                    };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("polodb serve did not start listening");
    }

    pub fn uri(&self) -> String {
        format!("mongodb://{}/", self.addr)
    }

    /// Stops the server for good (MongoDB "going away" under a running sync).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for MongoServer {
    fn drop(&mut self) {
        self.stop();
    }
}
