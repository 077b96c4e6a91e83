//! Test harness: a gateway on port 0 with its own store, per-test PostgreSQL databases, and real
//! git repositories (a bare origin, an author clone, a deploy checkout).

#![allow(dead_code)] // each test binary uses a different part of the harness

use local_gateway::Gateway;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Runs the async test fn `$name(backend)` once on each store, as `$name::sqlite` and
/// `$name::postgres`.
#[allow(unused_macros)] // only some test binaries compare the stores
macro_rules! on_both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name(super::common::Backend::Sqlite).await;
            }
            #[tokio::test]
            async fn postgres() {
                super::$name(super::common::Backend::Postgres).await;
            }
        }
    };
}

/// Which store a test gateway uses.
pub use hub_testkit::Backend;

#[allow(unused_imports)] // only some test binaries talk to MongoDB
pub use hub_testkit::{MongoServer, TestDb};

mod process;
#[allow(unused_imports)] // only some test binaries spawn the binary
pub use process::*;

/// Settings for one test gateway.
#[derive(Debug)]
pub struct Setup {
    pub env: HashMap<String, String>,
    pub config_file: Option<PathBuf>,
    pub data_dir: TempDir,
    pub db: Option<TestDb>,
}

impl Setup {
    pub async fn new(backend: Backend) -> Self {
        let data_dir = TempDir::new().expect("data dir");
        let mut env = HashMap::new();
        env.insert(
            "HUB_DATA_DIR".to_owned(),
            data_dir.path().display().to_string(),
        );
        env.insert("HUB_SHUTDOWN_GRACE_SECS".to_owned(), "10".to_owned());
        // A spawned `hub-gateway` opens its public listener too: never on the fixed 8086,
        // which parallel tests would fight over.
        env.insert("HUB_PUBLIC_PORT".to_owned(), "0".to_owned());
        let db = backend.database().await;
        if let Some(db) = &db {
            env.insert("DATABASE_URL".to_owned(), db.url.clone());
        }
        Self {
            env,
            config_file: None,
            data_dir,
            db,
        }
    }

    pub fn set(mut self, key: &str, value: impl ToString) -> Self {
        self.env.insert(key.to_owned(), value.to_string());
        self
    }

    /// Adds a function's test settings, e.g. `webhook_gitops::testing::env()`: each function's
    /// test environment comes from its own crate.
    pub fn with(mut self, env: Vec<(String, String)>) -> Self {
        self.env.extend(env);
        self
    }

    /// Writes `toml` as the gateway's `hub.toml` (in its data directory, which is also the
    /// working directory of a spawned `hub-gateway`).
    pub fn with_config(mut self, toml: &str) -> Self {
        let path = self.data_dir.path().join("hub.toml");
        std::fs::write(&path, toml).expect("write hub.toml");
        self.config_file = Some(path);
        self
    }

    pub fn unset(mut self, key: &str) -> Self {
        self.env.remove(key);
        self
    }

    pub fn source(&self) -> hub_runtime::Source {
        hub_runtime::Source::from_parts(self.config_file.as_deref(), self.env.clone())
            .expect("config source")
    }
}

/// The runs stored for `setup`, newest first, read by opening the store like a gateway does.
pub async fn stored_runs(setup: &Setup) -> Vec<hub_runtime::store::RunRow> {
    let gateway = Gateway::new(setup.source()).await.expect("open store");
    gateway
        .ctx
        .runs
        .list(&hub_runtime::store::RunQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("list runs")
}

/// `(trigger, outcome)` of every run of `function` stored for `setup`, newest first.
pub async fn run_outcomes(setup: &Setup, function: &str) -> Vec<(String, String)> {
    stored_runs(setup)
        .await
        .into_iter()
        .filter(|r| r.function == function)
        .map(|r| (r.trigger, r.outcome))
        .collect()
}

/// POSTs `body` (none when `None`) to `path` on the gateway at `addr` in a task of its own, for
/// tests that signal the gateway while it works on the request; the task gives the status and
/// the JSON answer.
pub fn post_in_background(
    addr: String,
    path: &str,
    body: Option<serde_json::Value>,
) -> JoinHandle<(u16, serde_json::Value)> {
    let url = format!("http://{addr}{path}");
    tokio::spawn(async move {
        let mut req = reqwest::Client::new().post(url);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("answered");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("json"))
    })
}

/// Waits, at most 20 s, until `ready` holds; fails naming `what` it waited for.
pub async fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready() {
        assert!(Instant::now() < deadline, "waited 20 s for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// SIGTERMs the gateway `child` while `answer` ([`post_in_background`]) is in flight; checks a
/// clean exit and a 503 answer, and returns the answer's body.
pub async fn sigterm_answers_503(
    child: &mut std::process::Child,
    answer: JoinHandle<(u16, serde_json::Value)>,
) -> serde_json::Value {
    let status = terminate(child).await;
    assert!(status.success(), "{status:?}");
    let (status, body) = answer.await.expect("client task");
    assert_eq!(status, 503, "{body}");
    body
}

/// A gateway serving on 127.0.0.1:<free port> inside the test process, with its public
/// listener on another free port.
#[derive(Debug)]
pub struct TestApp {
    /// The operator listener.
    pub addr: SocketAddr,
    /// The public listener.
    pub public_addr: SocketAddr,
    pub client: reqwest::Client,
    pub gateway: Gateway,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl TestApp {
    pub async fn spawn(setup: &Setup) -> Self {
        Self::serve(Gateway::new(setup.source()).await.expect("gateway starts")).await
    }

    /// A gateway with other functions than the shipped ones.
    pub async fn spawn_with(
        setup: &Setup,
        functions: Vec<std::sync::Arc<dyn hub_runtime::Function>>,
    ) -> Self {
        let gateway = Gateway::with_functions(setup.source(), |_| Ok(functions))
            .await
            .expect("gateway starts");
        Self::serve(gateway).await
    }

    async fn serve(gateway: Gateway) -> Self {
        let bind = || tokio::net::TcpListener::bind("127.0.0.1:0");
        let listener = bind().await.expect("bind port 0");
        let public = bind().await.expect("bind port 0");
        let addr = listener.local_addr().expect("local addr");
        let public_addr = public.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let serving = gateway.clone();
        let listeners = local_gateway::edge::Listeners {
            operator: listener,
            public: Some(public),
        };
        let handle = tokio::spawn(async move {
            serving
                .serve(listeners, async {
                    let _ = rx.await;
                })
                .await
                .expect("serve");
        });
        Self {
            addr,
            public_addr,
            client: reqwest::Client::new(),
            gateway,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `path` on the public listener.
    pub fn public_url(&self, path: &str) -> String {
        format!("http://{}{}", self.public_addr, path)
    }

    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let resp = self.client.get(self.url(path)).send().await.expect("GET");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("JSON body"))
    }

    /// The `/metrics` page as a scraper without preferences gets it.
    pub async fn metrics_text(&self) -> String {
        let resp = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics");
        assert_eq!(resp.status(), 200);
        resp.text().await.expect("text")
    }

    /// POSTs a webhook delivery signed with webhook-gitops' test secret.
    pub async fn deliver(&self, event: &str, body: &[u8]) -> (u16, serde_json::Value) {
        let sig = webhook_gitops::testing::sign(body);
        self.deliver_with(
            event,
            body,
            Some(&sig),
            Some(&uuid::Uuid::new_v4().to_string()),
        )
        .await
    }

    pub async fn deliver_with(
        &self,
        event: &str,
        body: &[u8],
        signature: Option<&str>,
        delivery: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let mut req = self
            .client
            .post(self.url(webhook_gitops::WEBHOOK_PATH))
            .header("content-type", "application/json")
            .header("x-github-event", event)
            .body(body.to_vec());
        if let Some(sig) = signature {
            req = req.header("x-hub-signature-256", sig);
        }
        if let Some(d) = delivery {
            req = req.header("x-github-delivery", d);
        }
        let resp = req.send().await.expect("POST webhook");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("response is not JSON ({status}): {text}"));
        (status, json)
    }

    /// Runs of `function`, newest first.
    pub async fn runs(&self, function: &str) -> Vec<serde_json::Value> {
        let (status, body) = self
            .get_json(&format!("/api/runs?function={function}&limit=500"))
            .await;
        assert_eq!(status, 200, "{body}");
        body.as_array().expect("array of runs").clone()
    }

    /// Waits until `pred` holds for the runs of `function`, or fails after 15 s.
    pub async fn wait_runs(
        &self,
        function: &str,
        what: &str,
        pred: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let runs = self.runs(function).await;
            if pred(&runs) {
                return runs;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; runs: {runs:#?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits for a sync run of webhook-gitops ending in `outcome`; returns its summary.
    pub async fn wait_sync(&self, outcome: &str) -> String {
        let runs = self
            .wait_runs(
                webhook_gitops::NAME,
                &format!("a sync with outcome {outcome}"),
                |r| sync_runs(r).iter().any(|s| s["outcome"] == outcome),
            )
            .await;
        let run = sync_runs(&runs)
            .into_iter()
            .find(|s| s["outcome"] == outcome)
            .expect("found above");
        run["summary"].as_str().expect("summary").to_owned()
    }

    /// Delivers a signed push of `sha` for `fx` and checks it was accepted.
    pub async fn push(&self, fx: &GitFixture, sha: &str) {
        let (status, body) = self.deliver("push", &fx.push_event(sha)).await;
        assert_eq!(status, 202, "{body}");
    }

    /// Stops serving and waits for background work, like SIGTERM does.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.expect("server task");
        }
    }
}

/// The entry of `/api/functions` named `name` (tests look functions up by name, never by
/// position, so adding a function changes none of them).
pub fn function_entry<'a>(functions: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    functions
        .as_array()
        .expect("a list of functions")
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("{name} is not listed: {functions}"))
}

/// Sync runs (as opposed to the HTTP deliveries) of webhook-gitops.
pub fn sync_runs(runs: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    runs.iter()
        .filter(|r| {
            !r["summary"]
                .as_str()
                .unwrap_or("")
                .starts_with(|c: char| c.is_ascii_digit())
        })
        .collect()
}

/// A test gateway with webhook-gitops configured for `fx`'s checkouts.
pub async fn gitops_setup(fx: &GitFixture, backend: Backend) -> Setup {
    Setup::new(backend)
        .await
        .with(webhook_gitops::testing::env())
        .set("GITOPS_BASE_DIR", fx.base.display())
        .set("GITOPS_BRANCH", &fx.branch)
}

/// A gateway serving webhook-gitops for `fx`.
pub async fn app_for(fx: &GitFixture, backend: Backend) -> (Setup, TestApp) {
    let setup = gitops_setup(fx, backend).await;
    let app = TestApp::spawn(&setup).await;
    (setup, app)
}

/// Like [`app_for`], with the repository allowed to name its own reload command.
pub async fn app_trusting(fx: &GitFixture) -> (Setup, TestApp) {
    let setup = gitops_setup(fx, Backend::Sqlite)
        .await
        .with_config(&webhook_gitops::testing::allow_repo_command(&fx.name));
    let app = TestApp::spawn(&setup).await;
    (setup, app)
}

/// Some sync run names `sha` (abbreviated) in its summary.
pub fn synced_to(runs: &[serde_json::Value], sha: &str) -> bool {
    sync_runs(runs)
        .iter()
        .any(|r| r["summary"].as_str().unwrap_or("").contains(&sha[..7]))
}

/// Runs `git` with arguments; panics with its stderr on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.invalid",
        ])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} in {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A bare origin, an author clone that pushes to it, and a deploy checkout under a base
/// directory, all on `branch`.
#[derive(Debug)]
pub struct GitFixture {
    pub root: TempDir,
    pub base: PathBuf,
    pub origin: PathBuf,
    pub author: PathBuf,
    pub name: String,
    pub branch: String,
}

impl GitFixture {
    /// `marker`: contents of `.gitops` (None: the checkout has not opted in).
    pub fn new(name: &str, branch: &str, marker: Option<&str>) -> Self {
        let root = TempDir::new().expect("git root");
        let base = root.path().join("base");
        std::fs::create_dir_all(&base).expect("base dir");
        let origin = root.path().join("origin.git");
        let author = root.path().join("author");
        git(
            root.path(),
            &[
                "init",
                "--quiet",
                "--bare",
                "-b",
                branch,
                origin.to_str().expect("utf8"),
            ],
        );
        git(
            root.path(),
            &[
                "clone",
                "--quiet",
                origin.to_str().expect("utf8"),
                author.to_str().expect("utf8"),
            ],
        );
        git(&author, &["checkout", "--quiet", "-B", branch]);
        std::fs::write(author.join("README.md"), "deployed by webhook-gitops\n").expect("write");
        if let Some(m) = marker {
            std::fs::write(author.join(".gitops"), m).expect("write marker");
        }
        git(&author, &["add", "-A"]);
        git(&author, &["commit", "--quiet", "-m", "initial"]);
        git(&author, &["push", "--quiet", "origin", branch]);
        let fixture = Self {
            base,
            origin,
            author,
            name: name.to_owned(),
            branch: branch.to_owned(),
            root,
        };
        git(
            &fixture.base,
            &[
                "clone",
                "--quiet",
                "-b",
                branch,
                fixture.origin.to_str().expect("utf8"),
                name,
            ],
        );
        fixture
    }

    pub fn checkout(&self) -> PathBuf {
        self.base.join(&self.name)
    }

    /// Adds an executable `name` with `body` to the author clone's index (committed with the
    /// next [`GitFixture::push_commit`]).
    pub fn add_script(&self, name: &str, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        let script = self.author.join(name);
        std::fs::write(&script, body).expect("script");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        git(&self.author, &["add", name]);
    }

    /// Commits `content` to `file` in the author clone and pushes it; returns the new SHA.
    pub fn push_commit(&self, file: &str, content: &str) -> String {
        let path = self.author.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, content).expect("write");
        git(&self.author, &["add", "-A"]);
        git(
            &self.author,
            &["commit", "--quiet", "-m", &format!("update {file}")],
        );
        git(&self.author, &["push", "--quiet", "origin", &self.branch]);
        git(&self.author, &["rev-parse", "HEAD"])
    }

    /// HEAD of the deploy checkout.
    pub fn deployed_head(&self) -> String {
        git(&self.checkout(), &["rev-parse", "HEAD"])
    }

    pub fn origin_head(&self) -> String {
        git(&self.origin, &["rev-parse", &self.branch])
    }

    /// A push event body for this repository.
    pub fn push_event(&self, after: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "ref": format!("refs/heads/{}", self.branch),
            "after": after,
            "repository": {"name": self.name, "full_name": format!("owner/{}", self.name)},
        }))
        .expect("json")
    }
}

/// A push delivery to the gateway at `addr`, signed with webhook-gitops' test secret.
pub fn signed_push(client: &reqwest::Client, addr: &str, body: Vec<u8>) -> reqwest::RequestBuilder {
    client
        .post(format!("http://{addr}{}", webhook_gitops::WEBHOOK_PATH))
        .header("x-github-event", "push")
        .header("x-hub-signature-256", webhook_gitops::testing::sign(&body))
        .body(body)
}
