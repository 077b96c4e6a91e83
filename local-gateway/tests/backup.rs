//! minio-backup through the running gateway and the `hub-gateway backup` commands: the routes
//! over HTTP, a scheduled-style invoke, list / verify / restore from the command line, a backup
//! stopped by shutdown.

mod common;

use common::{Backend, Setup, TestApp};
use serde_json::Value;
use std::process::Command;

/// A directory to back up, and the gateway's settings pointing at it (local target).
async fn setup() -> (Setup, tempfile::TempDir) {
    let tree = tempfile::TempDir::new().expect("tree");
    std::fs::create_dir_all(tree.path().join("sub")).expect("dir");
    std::fs::write(tree.path().join("sub/notes.txt"), "keep me\n").expect("file");
    let setup = Setup::new(Backend::Sqlite)
        .await
        .set("BACKUP_DIRS", format!("notes={}", tree.path().display()));
    (setup, tree)
}

fn backup_cmd(setup: &Setup, args: &[&str]) -> std::process::Output {
    let mut cmd: Command = common::gateway_cmd(setup);
    cmd.arg("backup")
        .args(args)
        .output()
        .expect("run hub-gateway backup")
}

#[tokio::test]
async fn the_routes_run_and_list_backups_and_each_run_is_recorded() {
    let (setup, _tree) = setup().await;
    let app = TestApp::spawn(&setup).await;
    let resp = app
        .client
        .post(app.url("/api/backup/run"))
        .json(&serde_json::json!({"set": "notes"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["status"], "success", "{body}");
    let key = body["sets"][0]["key"].as_str().expect("key").to_owned();

    // The gauges and the status page say when and how big.
    let metrics = app.metrics_text().await;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("hub_backup_last_success_timestamp_seconds{set=\"notes\"}"))
        .unwrap_or_else(|| panic!("no backup gauge in {metrics}"));
    let at: f64 = line
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("value");
    assert!(
        (chrono::Utc::now().timestamp() as f64 - at).abs() < 120.0,
        "{line}"
    );
    assert!(
        metrics.contains("hub_backup_bytes{set=\"notes\"}"),
        "{metrics}"
    );
    let page = app
        .client
        .get(app.url("/"))
        .send()
        .await
        .expect("GET /")
        .text()
        .await
        .expect("page");
    assert!(
        page.contains("<h2>Backups</h2>") && page.contains("<td>notes</td>"),
        "{page}"
    );

    let (status, list) = app.get_json("/api/backup").await;
    assert_eq!(status, 200);
    assert_eq!(list["sets"][0]["set"], "notes");
    assert_eq!(list["sets"][0]["backups"][0]["key"], key.as_str());

    let resp = app
        .client
        .post(app.url("/api/backup/run"))
        .json(&serde_json::json!({"set": "nope"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 404);
    let runs = app.runs("minio-backup").await;
    assert!(
        runs.iter().any(|r| r["outcome"] == "success"),
        "the run is in the history: {runs:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn list_verify_and_restore_from_the_command_line() {
    let (setup, tree) = setup().await;
    let out = common::gateway_cmd(&setup)
        .args(["invoke", "minio-backup"])
        .output()
        .expect("invoke");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = backup_cmd(&setup, &["list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Value = serde_json::from_slice(&out.stdout).expect("JSON list");
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["set"], "notes");

    let out = backup_cmd(&setup, &["verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let into = setup.data_dir.path().join("restored");
    let out = backup_cmd(
        &setup,
        &["restore", "notes", "--to-dir", &into.display().to_string()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(into.join("sub/notes.txt")).expect("restored"),
        std::fs::read(tree.path().join("sub/notes.txt")).expect("original")
    );

    // Damage the stored object: verify names it and fails; restore refuses it.
    let key = list[0]["key"].as_str().expect("key");
    std::fs::write(setup.data_dir.path().join("backups").join(key), "garbage").expect("damage");
    let out = backup_cmd(&setup, &["verify", "notes"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains(key));
    let other = setup.data_dir.path().join("again");
    let out = backup_cmd(
        &setup,
        &["restore", "notes", "--to-dir", &other.display().to_string()],
    );
    assert_eq!(out.status.code(), Some(1));

    // Bad usage is 2.
    assert_eq!(backup_cmd(&setup, &["list", "nope"]).status.code(), Some(2));
    let out = backup_cmd(
        &setup,
        &[
            "restore",
            "notes",
            "--at",
            "yesterday",
            "--to-dir",
            "/tmp/x",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
}

fn stdout_json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {} / {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[tokio::test]
async fn backup_run_and_drill_from_the_command_line_are_recorded_as_runs() {
    let (setup, _tree) = setup().await;
    let db = common::TestDb::create().await;
    sqlx::raw_sql(
        "CREATE TABLE readings (id INT PRIMARY KEY); INSERT INTO readings SELECT generate_series(1, 250);",
    )
    .execute(&mut <sqlx::PgConnection as sqlx::Connection>::connect(&db.url).await.expect("connect"))
    .await
    .expect("fill");
    let setup = setup.set("BACKUP_DATABASE_URL", &db.url);

    let out = backup_cmd(&setup, &["run"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done = stdout_json(&out);
    assert_eq!(done["status"], "success", "{done}");
    let summary = done["summary"].as_str().expect("summary");
    assert!(
        summary.contains("notes:") && summary.contains("postgres:"),
        "{summary}"
    );
    // Not a terminal: no progress bar in what a script or a log would capture.
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("B/s"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = backup_cmd(&setup, &["drill"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let drilled = stdout_json(&out);
    let summary = drilled["summary"].as_str().expect("summary");
    assert!(
        summary.contains("drill postgres:") && summary.contains("1 table, 250 rows"),
        "{summary}"
    );
    // A directory set cannot be drilled: exit 1 with the reason.
    let out = backup_cmd(&setup, &["drill", "notes"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout_json(&out)["summary"]
            .as_str()
            .is_some_and(|s| s.contains("pg_dump backups only"))
    );
    assert_eq!(backup_cmd(&setup, &["run", "nope"]).status.code(), Some(2));

    // Both went into the run history as the CLI's.
    let app = TestApp::spawn(&setup).await;
    let runs = app.runs("minio-backup").await;
    let cli: Vec<_> = runs.iter().filter(|r| r["trigger"] == "cli").collect();
    assert!(
        cli.iter().filter(|r| r["outcome"] == "success").count() >= 2
            && cli.iter().any(|r| r["outcome"] == "failure"),
        "{runs:?}"
    );
    app.stop().await;
}

/// SIGTERM while a backup started over HTTP streams: the request answers 503 saying nothing was
/// kept, the run is recorded `interrupted` with trigger `http`, not as a failure, and nothing is
/// left in the target: no object, and not the partial file the upload was writing.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_an_http_backup_answers_503_and_records_it_interrupted() {
    let (setup, tree) = setup().await;
    // 64 GiB of holes: read as zeros, far more than the backup gets through before the signal.
    std::fs::File::create(tree.path().join("sub/huge.img"))
        .and_then(|f| f.set_len(64 << 30))
        .expect("sparse file");
    let target = tempfile::TempDir::new().expect("target");
    let setup = setup
        .set("BACKUP_LOCAL_DIR", target.path().display())
        .set("HUB_SHUTDOWN_GRACE_SECS", 2);
    let (mut child, addr) = common::spawn_server(&setup);
    let answer = common::post_in_background(
        addr,
        "/api/backup/run",
        Some(serde_json::json!({"set": "notes"})),
    );
    common::wait_for("the backup to start writing", || {
        files(target.path()).iter().any(|f| f.contains(".partial-"))
    })
    .await;
    let body = common::sigterm_answers_503(&mut child, answer).await;
    assert_eq!(
        body["sets"][0]["error"], "interrupted by shutdown; nothing was kept of this backup",
        "{body}"
    );
    let left = files(target.path());
    assert!(
        left.is_empty(),
        "nothing left, not even the partial file: {left:?}"
    );
    assert_eq!(
        common::run_outcomes(&setup, "minio-backup").await,
        [("http".to_owned(), "interrupted".to_owned())],
        "the one run, recorded as interrupted"
    );
}

/// Every file under `dir`, as paths relative to it.
fn files(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if let Ok(rel) = path.strip_prefix(dir) {
                out.push(rel.display().to_string());
            }
        }
    }
    out
}
