use mongodb::Collection;
use mongodb::bson::{Bson, Document, doc};
use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Where each server's log is kept, in its data directory.
const LOG_FILE: &str = "polodb.log";
/// Documents per insert when seeding.
const SEED_CHUNK: usize = 500;
const SEED_ATTEMPTS: u64 = 4;

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

fn polodb_bin() -> PathBuf {
    let cached = format!("polodb-{POLODB_VERSION}");
    crate::config::tool("POLODB_BIN", "polodb", &cached, "PoloDB server")
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
                // endSessions), so its log is kept in a file and shown only when a test fails
                // talking to it; TESTKIT_POLODB_LOG=1 shows it as it goes.
                .stderr(if crate::config::settings().polodb_log {
                    Stdio::inherit()
                } else {
                    std::fs::File::create(dir.path().join(LOG_FILE))
                        .map(Stdio::from)
                        .unwrap_or_else(|_| Stdio::null())
                })
                .spawn()
                .expect("spawn polodb serve");
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                // Something answering on the port is not proof that it is this server: when two
                // tests probe the same free port, the loser's polodb fails to bind and exits,
                // but its first connect reaches the winner's server — which the other test then
                // kills mid-way (seen as `UnexpectedEof` while seeding). Only a listening socket
                // owned by this child counts.
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
                    && listens_on(child.id(), port)
                {
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

    /// The last lines the server logged (empty with `TESTKIT_POLODB_LOG=1`, which prints them).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self._dir.path().join(LOG_FILE)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Inserts `docs` (each with an `_id`) into `db.collection`, in chunks, exactly once: a
    /// chunk cut off by a dropped connection is retried with a new client, inserting only the
    /// documents that did not arrive. A failure that persists panics with the server's log.
    pub async fn seed(&self, db: &str, collection: &str, mut docs: Vec<Document>) {
        // The driver would make up ids for documents without one, different on each attempt.
        for d in docs.iter_mut().filter(|d| !d.contains_key("_id")) {
            d.insert("_id", mongodb::bson::oid::ObjectId::new());
        }
        let mut coll = self.collection(db, collection).await;
        for chunk in docs.chunks(SEED_CHUNK) {
            let mut attempt = 0;
            loop {
                attempt += 1;
                match insert_missing(&coll, chunk, attempt > 1).await {
                    Ok(()) => break,
                    Err(e) if attempt < SEED_ATTEMPTS => {
                        eprintln!("testkit: seeding attempt {attempt} failed, retrying: {e}");
                        tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                        // A dropped connection may have left the pool in a bad state.
                        coll = self.collection(db, collection).await;
                    }
                    Err(e) => panic!(
                        "seeding {db}.{collection} failed {attempt} times: {e}\n\
                         polodb log (last lines):\n{}",
                        self.log_tail()
                    ),
                }
            }
        }
    }

    /// Documents of `db.collection` matching `filter`, counted client-side: the driver's
    /// `count_documents` is an aggregation, which PoloDB gets wrong. PoloDB sends whole
    /// documents whatever the projection, and a reply of huge documents can be too big to read:
    /// then they are counted one per reply.
    pub async fn count(&self, db: &str, collection: &str, filter: Document) -> u64 {
        use futures::TryStreamExt;
        let coll = self
            .collection(db, collection)
            .await
            .clone_with_type::<mongodb::bson::RawDocumentBuf>();
        let all = async {
            coll.find(filter.clone())
                .await?
                .try_collect::<Vec<_>>()
                .await
        };
        match all.await {
            Ok(found) => found.len() as u64,
            Err(_) => {
                let mut cursor = coll.find(filter).batch_size(1).await.expect("find");
                let mut n = 0;
                while cursor.try_next().await.expect("read").is_some() {
                    n += 1;
                }
                n
            }
        }
    }

    /// `db.collection` through a new client.
    async fn collection(&self, db: &str, collection: &str) -> Collection<Document> {
        mongodb::Client::with_uri_str(self.uri())
            .await
            .expect("mongo client")
            .database(db)
            .collection(collection)
    }

    /// Stops the server for good (MongoDB "going away" under a running sync).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Inserts the documents of `chunk` that `coll` does not hold yet (on a first attempt: all of
/// them, without asking).
async fn insert_missing(
    coll: &Collection<Document>,
    chunk: &[Document],
    retry: bool,
) -> Result<(), mongodb::error::Error> {
    use futures::TryStreamExt;
    if !retry {
        // PoloDB checks `$in` per document: only a retry pays for finding what arrived.
        coll.insert_many(chunk).await?;
        return Ok(());
    }
    let ids: Vec<Bson> = chunk.iter().filter_map(|d| d.get("_id").cloned()).collect();
    let present: HashSet<String> = coll
        .find(doc! {"_id": {"$in": ids}})
        .await?
        .try_collect::<Vec<Document>>()
        .await?
        .iter()
        .filter_map(|d| d.get("_id").map(ToString::to_string))
        .collect();
    let missing: Vec<&Document> = chunk
        .iter()
        .filter(|d| {
            d.get("_id")
                .is_some_and(|id| !present.contains(&id.to_string()))
        })
        .collect();
    if !missing.is_empty() {
        coll.insert_many(missing).await?;
    }
    Ok(())
}

/// Whether process `pid` holds the socket listening on 127.0.0.1:`port` (from /proc: the
/// listener's inode in /proc/net/tcp, then the process's file descriptors).
fn listens_on(pid: u32, port: u16) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    let local = format!("0100007F:{port:04X}");
    // Columns: sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
    let inode = table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        (cols.get(1) == Some(&local.as_str()) && cols.get(3) == Some(&"0A"))
            .then(|| cols.get(9).map(|i| format!("socket:[{i}]")))
            .flatten()
    });
    let Some(inode) = inode else {
        return false;
    };
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(Result::ok)
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .any(|target| target.to_string_lossy() == inode)
}

impl Drop for MongoServer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listening_socket_is_attributed_to_its_own_process_only() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        assert!(listens_on(std::process::id(), port));
        let mut other = Command::new("sleep").arg("5").spawn().expect("spawn sleep");
        assert!(
            !listens_on(other.id(), port),
            "another process does not own it"
        );
        let _ = other.kill();
        let _ = other.wait();
        drop(listener);
        assert!(
            !listens_on(std::process::id(), port),
            "closed: nobody listens"
        );
    }
}
