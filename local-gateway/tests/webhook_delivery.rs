//! webhook-gitops: a delivery answered 202 is never lost. It is pending in the store before it
//! is answered, resumed after a crash, done only once a sync succeeded, and run again when a
//! redelivery arrives after a failed sync.

#[macro_use]
mod common;

use common::{Backend, GitFixture, TestApp, sync_runs};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

const FN: &str = webhook_gitops::NAME;

async fn a_failed_sync_runs_again_when_redelivered(backend: Backend) {
    let fx = GitFixture::new("infra", "main", Some(""));
    let setup = common::gitops_setup(&fx, backend).await;
    let app = TestApp::spawn(&setup).await;
    let new = fx.push_commit("a", "1");
    let body = fx.push_event(&new);
    let sig = webhook_gitops::testing::sign(&body);

    // Origin unreachable: the sync fails.
    let away = fx.root.path().join("origin-away.git");
    std::fs::rename(&fx.origin, &away).expect("hide origin");
    let (status, _) = app
        .deliver_with("push", &body, Some(&sig), Some("d-1"))
        .await;
    assert_eq!(status, 202);
    app.wait_sync("failure").await;
    wait_idle(&app).await;
    assert_ne!(fx.deployed_head(), new);

    // GitHub's "Redeliver" once origin is back: the sync runs again.
    std::fs::rename(&away, &fx.origin).expect("restore origin");
    let (status, resp) = app
        .deliver_with("push", &body, Some(&sig), Some("d-1"))
        .await;
    assert_eq!(status, 202, "a failed delivery is not a duplicate: {resp}");
    app.wait_sync("success").await;
    wait_idle(&app).await;
    assert_eq!(fx.deployed_head(), new);

    // Done now: a replay, by id or by body, is a duplicate, also after a restart.
    app.stop().await;
    let app = TestApp::spawn(&setup).await;
    for id in ["d-1", "d-2"] {
        let (status, resp) = app.deliver_with("push", &body, Some(&sig), Some(id)).await;
        assert_eq!(
            (status, resp["status"].as_str()),
            (200, Some("duplicate")),
            "{id}"
        );
    }
    let runs = app.runs(FN).await;
    assert_eq!(sync_runs(&runs).len(), 2, "{runs:#?}");
    app.stop().await;
}

on_both_backends!(a_failed_sync_runs_again_when_redelivered);

/// Waits until no sync is running or queued.
async fn wait_idle(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !app.gateway.ctx.tasks.is_empty() {
        assert!(Instant::now() < deadline, "the sync queue did not go idle");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn deliveries_answered_202_survive_kill_9(backend: Backend) {
    let fx = GitFixture::new("infra", "main", Some(""));
    // A git that hangs in `fetch` while the flag file exists, so the gateway is killed with
    // every accepted delivery still waiting for its sync.
    let flag = fx.root.path().join("hang");
    std::fs::write(&flag, "").expect("flag");
    let wrapper = fx.root.path().join("slow-git");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nif [ \"$1\" = fetch ] && [ -e '{}' ]; then exec sleep 30; fi\nexec git \"$@\"\n",
            flag.display()
        ),
    )
    .expect("wrapper");
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    // Writes are group-committed; with an hour's batch window, a 202 sent before its claim was
    // committed would be lost to the kill.
    let setup = common::gitops_setup(&fx, backend)
        .await
        .set("GITOPS_GIT", wrapper.display())
        .set("HUB_STORE_BATCH_WINDOW_MS", "3600000");
    let new = fx.push_commit("a", "1");

    let (mut child, addr) = common::spawn_server(&setup);
    let client = reqwest::Client::new();
    let bodies: Vec<Vec<u8>> = (0..200)
        .map(|i| {
            serde_json::to_vec(&serde_json::json!({
                "ref": "refs/heads/main", "after": new, "n": i, "repository": {"name": "infra"}
            }))
            .expect("json")
        })
        .collect();
    let (answered_tx, mut answered_rx) = tokio::sync::mpsc::unbounded_channel();
    let burst: Vec<_> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            let req = common::signed_push(&client, &addr, body.clone())
                .header("x-github-delivery", format!("burst-{i}"));
            let answered = answered_tx.clone();
            tokio::spawn(async move {
                if let Ok(resp) = req.send().await
                    && resp.status() == 202
                {
                    let _ = answered.send(i);
                }
            })
        })
        .collect();
    drop(answered_tx);
    // Kill mid-burst, once some deliveries were answered 202.
    let mut accepted = Vec::new();
    while accepted.len() < 20 {
        accepted.push(answered_rx.recv().await.expect("a delivery answered 202"));
    }
    child.kill().expect("kill -9");
    child.wait().expect("reap");
    for task in burst {
        task.await.expect("request task");
    }
    while let Ok(i) = answered_rx.try_recv() {
        accepted.push(i);
    }
    assert_ne!(fx.deployed_head(), new, "the sync was still hanging");

    // Restarted with a working git: the accepted deliveries are synced without being resent.
    std::fs::remove_file(&flag).expect("unflag");
    let (mut child, addr) = common::spawn_server(&setup);
    let deadline = Instant::now() + Duration::from_secs(20);
    while fx.deployed_head() != fx.origin_head() {
        assert!(
            Instant::now() < deadline,
            "the checkout never reached origin's head"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // GitHub redelivering an accepted delivery gets a duplicate, not a second sync.
    for i in &accepted {
        let resp = common::signed_push(&client, &addr, bodies[*i].clone())
            .header("x-github-delivery", format!("burst-{i}"))
            .send()
            .await
            .expect("redeliver");
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.expect("json");
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("duplicate")),
            "{i}: {body}"
        );
    }
    common::terminate(&mut child).await;
    let runs = common::stored_runs(&setup).await;
    assert!(
        runs.iter()
            .any(|r| r.function == FN && r.outcome == "success" && r.summary.contains(&new[..7])),
        "the resumed sync is recorded: {runs:#?}"
    );
    // Nothing is left pending: every accepted delivery counts as done.
    let hub = hub_runtime::config::HubConfig::from_source(&setup.source()).expect("hub config");
    let store = hub_runtime::Store::connect(&hub).await.expect("store");
    let pending = store
        .pending_subjects(webhook_gitops::queue::SCOPE)
        .await
        .expect("pending");
    assert!(pending.is_empty(), "still pending: {pending:?}");
}

on_both_backends!(deliveries_answered_202_survive_kill_9);
