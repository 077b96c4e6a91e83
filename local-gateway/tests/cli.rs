//! The `hub-gateway` binary as an operator uses it: --help, invoke, serve and SIGTERM.

mod common;

use common::{Backend, GitFixture, Setup};
use std::process::Command;

/// A test gateway's settings, with webhook-gitops configured.
async fn hub_setup(backend: Backend) -> Setup {
    Setup::new(backend)
        .await
        .with(webhook_gitops::testing::env())
}

#[test]
fn help_explains_commands_flags_and_environment() {
    let out = Command::new(env!("CARGO_BIN_EXE_hub-gateway"))
        .arg("--help")
        .output()
        .expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "serve",
        "invoke",
        "functions",
        "--config",
        "HUB_BIND",
        "PORT",
        "HUB_DATA_DIR",
        "DATABASE_URL",
        "GITHUB_WEBHOOK_SECRET",
        "GITOPS_BASE_DIR",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "HUB_MAX_BODY_BYTES",
        "HUB_SCHEDULE_<NAME>",
        "HUB_JITTER_<NAME>",
        "_FILE",
    ] {
        assert!(text.contains(needle), "--help lacks {needle}:\n{text}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_hub-gateway"))
        .args(["invoke", "--help"])
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--data"), "{text}");
}

#[tokio::test]
async fn invoke_syncs_once_and_records_a_cli_run() {
    let fx = GitFixture::new("infra", "main", Some(""));
    let setup = hub_setup(Backend::Sqlite)
        .await
        .set("GITOPS_BASE_DIR", fx.base.display());
    let new = fx.push_commit("a", "1");
    let out = common::gateway_cmd(&setup)
        .args([
            "invoke",
            "webhook-gitops",
            "--data",
            r#"{"repository":"infra"}"#,
        ])
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: serde_json::Value = serde_json::from_str(stdout.trim()).expect("stdout is JSON");
    assert_eq!(result["outcome"], "success");
    assert!(
        result["summary"]
            .as_str()
            .expect("summary")
            .contains(&new[..7])
    );
    assert_eq!(fx.deployed_head(), new);

    let runs = common::stored_runs(&setup).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0].trigger.as_str(), runs[0].outcome.as_str()),
        ("cli", "success")
    );

    // Without a repository: every opted-in checkout.
    let out = common::gateway_cmd(&setup)
        .args(["invoke", "webhook-gitops"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(
        result["summary"],
        format!("infra: already at {}", &new[..7])
    );
}

#[tokio::test]
async fn invoke_reports_bad_usage_and_failures_with_exit_codes() {
    let fx = GitFixture::new("infra", "main", Some(""));
    let setup = hub_setup(Backend::Sqlite)
        .await
        .set("GITOPS_BASE_DIR", fx.base.display());
    let run = |args: &[&str]| {
        let out = common::gateway_cmd(&setup)
            .args(args)
            .output()
            .expect("run");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["invoke", "no-such-function"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("unknown function \"no-such-function\"; known: webhook-gitops, metrics-flush"),
        "{err}"
    );

    let (code, err) = run(&["invoke", "webhook-gitops", "--data", "{not json"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--data is not valid JSON"), "{err}");

    // A bare number is not "no input": it used to sync every checkout.
    let (code, err) = run(&["invoke", "webhook-gitops", "--data", "5"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--data must be a JSON object"), "{err}");
    let (code, err) = run(&[
        "invoke",
        "webhook-gitops",
        "--data",
        "@/nonexistent/input.json",
    ]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("cannot read --data file /nonexistent/input.json"),
        "{err}"
    );
    // Refused before the store is opened: no hub.db was created for it.
    assert!(
        !setup.data_dir.path().join("hub.db").exists(),
        "bad usage must not create the store"
    );

    // The input from a file, and from stdin.
    let input = setup.data_dir.path().join("input.json");
    std::fs::write(&input, r#"{"repository":"infra"}"#).expect("write input");
    let (code, err) = run(&[
        "invoke",
        "webhook-gitops",
        "--data",
        &format!("@{}", input.display()),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let mut child = common::gateway_cmd(&setup)
        .args(["invoke", "webhook-gitops", "--data", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(br#"{"repository":"infra"}"#)
            .expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["function"], "webhook-gitops");

    let (code, err) = run(&[
        "invoke",
        "webhook-gitops",
        "--data",
        r#"{"repository":"missing"}"#,
    ]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("missing: no checkout for missing under the base directory"),
        "{err}"
    );

    let (code, err) = run(&[
        "invoke",
        "webhook-gitops",
        "--data",
        r#"{"repository":"../x"}"#,
    ]);
    assert_eq!(code, Some(2), "input the function refuses is bad usage");
    assert!(
        err.contains("\"repository\" must be a repository name"),
        "{err}"
    );
}

#[tokio::test]
async fn bad_config_fails_start_with_a_message_naming_the_setting() {
    let setup = hub_setup(Backend::Sqlite)
        .await
        .set("HUB_MAX_BODY_BYTES", "lots");
    let out = common::gateway_cmd(&setup).output().expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("HUB_MAX_BODY_BYTES") && err.contains("lots"),
        "{err}"
    );

    let setup = hub_setup(Backend::Sqlite)
        .await
        .set("DATABASE_URL", "postgres://postgres@127.0.0.1:1/nowhere");
    let out = common::gateway_cmd(&setup).output().expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot connect to the postgres store"),
        "{err}"
    );
}

#[tokio::test]
async fn sigterm_finishes_running_syncs_then_exits_zero() {
    // The reload hook keeps a sync busy for a second after the response was sent.
    let fx = GitFixture::new("infra", "main", Some("sleep 1\n"));
    let setup = hub_setup(Backend::Sqlite)
        .await
        .set("GITOPS_BASE_DIR", fx.base.display())
        .with_config(&webhook_gitops::testing::allow_repo_command("infra"));
    let (mut child, addr) = common::spawn_server(&setup);
    let client = reqwest::Client::new();
    let health = client
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .expect("GET /healthz");
    assert_eq!(health.status(), 200);

    let new = fx.push_commit("a", "1");
    let body = fx.push_event(&new);
    let resp = common::signed_push(&client, &addr, body)
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 202);

    let status = common::terminate(&mut child).await;
    assert_eq!(status.code(), Some(0), "clean exit");
    assert_eq!(
        fx.deployed_head(),
        new,
        "the running sync was finished, not cut off"
    );

    let runs = common::stored_runs(&setup).await;
    let sync = runs
        .iter()
        .find(|r| r.summary.starts_with("infra:"))
        .expect("sync run recorded before exit");
    assert_eq!(sync.outcome, "success");
}
