//! The store's writer inside the `hub-gateway` process: run rows still queued when SIGTERM
//! arrives, or when a command ends, are committed before the process exits. The batch window
//! is set to an hour, so nothing but those flushes can commit them.

#[macro_use]
mod common;

use common::{Backend, Setup};

const FN: &str = webhook_gitops::NAME;
const AN_HOUR_MS: &str = "3600000";

async fn setup(backend: Backend) -> Setup {
    Setup::new(backend)
        .await
        .with(webhook_gitops::testing::env())
        .set("HUB_STORE_BATCH_WINDOW_MS", AN_HOUR_MS)
}

async fn runs_queued_at_sigterm_are_committed(backend: Backend) {
    let setup = setup(backend).await;
    let (mut child, addr) = common::spawn_server(&setup);
    let client = reqwest::Client::new();
    let body = br#"{"zen":"Design for failure.","hook_id":1}"#.to_vec();
    const PINGS: usize = 5;
    for _ in 0..PINGS {
        let resp = client
            .post(format!("http://{addr}{}", webhook_gitops::WEBHOOK_PATH))
            .header("x-github-event", "ping")
            .header("x-hub-signature-256", webhook_gitops::testing::sign(&body))
            .body(body.clone())
            .send()
            .await
            .expect("ping");
        assert_eq!(resp.status(), 200);
    }
    let status = common::terminate(&mut child).await;
    assert!(status.success(), "{status}");
    let runs = common::stored_runs(&setup).await;
    let pings = runs
        .iter()
        .filter(|r| r.function == FN && r.summary == "200 ping")
        .count();
    assert_eq!(pings, PINGS, "runs lost at shutdown: {runs:#?}");
}

on_both_backends!(runs_queued_at_sigterm_are_committed);

async fn a_command_commits_its_run_before_exiting(backend: Backend) {
    let setup = setup(backend).await;
    // No checkouts there: the run is skipped, quickly.
    let base = setup.data_dir.path().display().to_string();
    let setup = setup.set("GITOPS_BASE_DIR", base);
    let out = common::gateway_cmd(&setup)
        .args(["invoke", FN])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs = common::stored_runs(&setup).await;
    assert!(
        runs.iter().any(|r| r.function == FN && r.trigger == "cli"),
        "the command's run was lost: {runs:#?}"
    );
}

on_both_backends!(a_command_commits_its_run_before_exiting);
