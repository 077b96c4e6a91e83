//! webhook-gitops end to end: signed deliveries over HTTP to a running gateway, real git
//! repositories, assertions on the deploy checkout's HEAD and on the recorded runs.

#[macro_use]
mod common;

use common::{
    Backend, GitFixture, Setup, TestApp, app_for, app_trusting, git, sync_runs, synced_to,
};
use serde_json::json;

/// A test gateway's settings, with webhook-gitops configured.
async fn hub_setup(backend: Backend) -> Setup {
    Setup::new(backend)
        .await
        .with(webhook_gitops::testing::env())
}

const FN: &str = webhook_gitops::NAME;

async fn push_to_main_fast_forwards_the_checkout(backend: Backend) {
    let fx = GitFixture::new("infra", "main", Some(""));
    let (_setup, app) = app_for(&fx, backend).await;
    let old = fx.deployed_head();
    let new = fx.push_commit("app.yaml", "replicas: 2\n");
    assert_ne!(old, new);

    let (status, body) = app.deliver("push", &fx.push_event(&new)).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "accepted");
    assert_eq!(body["repository"], "infra");

    let runs = app
        .wait_runs(FN, "the sync run", |runs| synced_to(runs, &new))
        .await;
    assert_eq!(fx.deployed_head(), new, "checkout fast-forwarded to origin");
    let sync = sync_runs(&runs)[0];
    assert_eq!(sync["outcome"], "success");
    assert_eq!(
        sync["summary"],
        format!("infra: {} → {}", &old[..7], &new[..7])
    );
    let delivery = runs
        .iter()
        .find(|r| r["summary"].as_str().unwrap_or("").starts_with("202"))
        .expect("the delivery itself is a run");
    assert_eq!(delivery["trigger"], "http");
    assert_eq!(delivery["outcome"], "success");
    app.stop().await;
}

on_both_backends!(push_to_main_fast_forwards_the_checkout);

#[tokio::test]
async fn merged_pull_request_syncs_and_unmerged_is_ignored() {
    let fx = GitFixture::new("infra", "main", Some(""));
    let (_setup, app) = app_for(&fx, Backend::Sqlite).await;
    let new = fx.push_commit("app.yaml", "replicas: 3\n");
    let pr = |merged: bool| {
        serde_json::to_vec(&json!({
            "action": "closed",
            "number": 7,
            "pull_request": {"merged": merged, "base": {"ref": "main"}},
            "repository": {"name": "infra"},
        }))
        .expect("json")
    };
    let (status, body) = app.deliver("pull_request", &pr(false)).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("ignored")),
        "{body}"
    );
    assert_eq!(
        body["message"],
        "ignored: pull request closed without merging"
    );

    let (status, body) = app.deliver("pull_request", &pr(true)).await;
    assert_eq!(status, 202, "{body}");
    app.wait_runs(FN, "sync after merge", |runs| synced_to(runs, &new))
        .await;
    assert_eq!(fx.deployed_head(), new);
    app.stop().await;
}

#[tokio::test]
async fn bad_signatures_and_bodies_are_refused_and_nothing_runs() {
    let fx = GitFixture::new("infra", "main", Some(""));
    let (_setup, app) = app_for(&fx, Backend::Sqlite).await;
    let before = fx.deployed_head();
    let new = fx.push_commit("app.yaml", "x\n");
    let body = fx.push_event(&new);

    let (status, resp) = app.deliver_with("push", &body, None, None).await;
    assert_eq!(status, 401);
    assert_eq!(resp["error"], "missing X-Hub-Signature-256 header");
    assert!(
        resp["request_id"].is_string(),
        "error bodies carry the request id"
    );

    let wrong = webhook_gitops::signature::sign(b"not the secret", &body);
    let (status, resp) = app.deliver_with("push", &body, Some(&wrong), None).await;
    assert_eq!(status, 401);
    assert_eq!(resp["error"], "signature does not match");

    let (status, resp) = app
        .deliver_with("push", &body, Some("sha1=abc"), None)
        .await;
    assert_eq!(status, 401, "{resp}");

    // Signed correctly but not JSON: 400, and the parser's detail stays in the log.
    let (status, resp) = app.deliver("push", b"ref=refs/heads/main").await;
    assert_eq!(status, 400);
    assert_eq!(resp["error"], "body is not valid JSON");

    let (status, resp) = app
        .deliver(
            "ping",
            br#"{"zen":"Keep it logically awesome.","hook_id":1}"#,
        )
        .await;
    assert_eq!((status, resp["status"].as_str()), (200, Some("pong")));

    let other =
        serde_json::to_vec(&json!({"ref": "refs/heads/dev", "repository": {"name": "infra"}}))
            .expect("json");
    let (status, resp) = app.deliver("push", &other).await;
    assert_eq!(status, 200);
    assert_eq!(
        resp["message"],
        "ignored: push to refs/heads/dev, not refs/heads/main"
    );

    // A delivery id far beyond GitHub's UUIDs is bad input (400), not a store failure.
    let huge_id = "d".repeat(20_000);
    let (status, resp) = app
        .deliver_with(
            "push",
            &body,
            Some(&webhook_gitops::testing::sign(&body)),
            Some(&huge_id),
        )
        .await;
    assert_eq!(status, 400, "{resp}");
    assert_eq!(
        resp["error"],
        "X-GitHub-Delivery must be at most 128 printable characters"
    );

    let (status, resp) = app.deliver("issues", br#"{"action":"opened"}"#).await;
    assert_eq!(status, 200);
    assert_eq!(resp["message"], "ignored: event \"issues\" is not handled");

    let runs = app.runs(FN).await;
    assert!(sync_runs(&runs).is_empty(), "no sync may run: {runs:#?}");
    assert_eq!(fx.deployed_head(), before);
    let rejected = runs.iter().filter(|r| r["outcome"] == "rejected").count();
    assert_eq!(
        rejected, 2,
        "the two 400s are rejected runs; the three 401s are refusals, counted but not stored"
    );
    app.stop().await;
}

#[tokio::test]
async fn repository_must_be_a_plain_name_an_existing_checkout_and_opted_in() {
    let fx = GitFixture::new("infra", "main", Some(""));
    // A second checkout that has not opted in (no .gitops marker).
    let plain = GitFixture::new("plain", "main", None);
    git(
        &fx.base,
        &[
            "clone",
            "--quiet",
            plain.origin.to_str().expect("utf8"),
            "plain",
        ],
    );
    let (_setup, app) = app_for(&fx, Backend::Sqlite).await;
    let event = |name: &str| {
        serde_json::to_vec(&json!({"ref": "refs/heads/main", "repository": {"name": name}}))
            .expect("json")
    };
    for bad in ["../infra", "in fra", "a/b", "..", "x;rm -rf /"] {
        let (status, resp) = app.deliver("push", &event(bad)).await;
        assert_eq!(
            (status, resp["error"].as_str()),
            (400, Some("invalid repository name")),
            "{bad}"
        );
    }
    let (status, resp) = app.deliver("push", &event("missing")).await;
    assert_eq!(status, 404, "{resp}");
    assert_eq!(
        resp["error"],
        "no checkout for missing under the base directory"
    );

    let (status, resp) = app.deliver("push", &event("plain")).await;
    assert_eq!(status, 403, "{resp}");
    assert_eq!(resp["error"], "plain has not opted in (no .gitops marker)");

    let (status, resp) = app.deliver("push", br#"{"ref":"refs/heads/main"}"#).await;
    assert_eq!(
        (status, resp["error"].as_str()),
        (400, Some("repository name missing"))
    );
    assert!(sync_runs(&app.runs(FN).await).is_empty());
    app.stop().await;
}

#[tokio::test]
async fn without_a_secret_the_function_refuses_everything() {
    let fx = GitFixture::new("infra", "main", Some(""));
    let setup = hub_setup(Backend::Sqlite)
        .await
        .unset("GITHUB_WEBHOOK_SECRET")
        .set("GITOPS_BASE_DIR", fx.base.display());
    let app = TestApp::spawn(&setup).await;
    let new = fx.push_commit("a", "b");
    // Even a body signed with some key is refused: there is nothing to check it against.
    let (status, resp) = app.deliver("push", &fx.push_event(&new)).await;
    assert_eq!(status, 503);
    assert_eq!(resp["error"], "webhook secret is not configured");
    let (status, resp) = app
        .deliver_with("push", &fx.push_event(&new), None, None)
        .await;
    assert_eq!(status, 503, "{resp}");

    let (status, ready) = app.get_json("/readyz").await;
    assert_eq!(
        status, 200,
        "an unconfigured function does not make the gateway unready"
    );
    assert_eq!(
        ready["checks"][FN],
        "not configured: GITHUB_WEBHOOK_SECRET is not set"
    );
    let (_, functions) = app.get_json("/api/functions").await;
    let entry = common::function_entry(&functions, FN);
    assert_eq!(entry["configured"], false);
    assert_eq!(entry["reason"], "GITHUB_WEBHOOK_SECRET is not set");
    assert_ne!(fx.deployed_head(), new);
    app.stop().await;
}

async fn replays_are_recognised_across_restarts(backend: Backend) {
    let fx = GitFixture::new("infra", "main", Some(""));
    let (setup, app) = app_for(&fx, backend).await;
    let new = fx.push_commit("a", "1");
    let body = fx.push_event(&new);
    let sig = webhook_gitops::testing::sign(&body);

    let (status, _) = app
        .deliver_with("push", &body, Some(&sig), Some("d-1"))
        .await;
    assert_eq!(status, 202);
    app.wait_runs(FN, "first sync", |r| synced_to(r, &new))
        .await;

    // Same delivery id (GitHub's "redeliver").
    let (status, resp) = app
        .deliver_with("push", &body, Some(&sig), Some("d-1"))
        .await;
    assert_eq!((status, resp["status"].as_str()), (200, Some("duplicate")));
    // Same body under a new delivery id.
    let (status, resp) = app
        .deliver_with("push", &body, Some(&sig), Some("d-2"))
        .await;
    assert_eq!((status, resp["status"].as_str()), (200, Some("duplicate")));
    app.stop().await;

    // A new gateway on the same store still remembers.
    let app = TestApp::spawn(&setup).await;
    let (status, resp) = app
        .deliver_with("push", &body, Some(&sig), Some("d-1"))
        .await;
    assert_eq!(
        (status, resp["status"].as_str()),
        (200, Some("duplicate")),
        "after restart"
    );
    let runs = app.runs(FN).await;
    assert_eq!(
        sync_runs(&runs).len(),
        1,
        "exactly one sync for three deliveries: {runs:#?}"
    );
    app.stop().await;
}

on_both_backends!(replays_are_recognised_across_restarts);

#[tokio::test]
async fn dirty_checkout_is_skipped_and_left_alone() {
    let fx = GitFixture::new("infra", "main", Some(""));
    let (_setup, app) = app_for(&fx, Backend::Sqlite).await;
    let before = fx.deployed_head();
    std::fs::write(fx.checkout().join("README.md"), "local hotfix\n").expect("edit");
    let new = fx.push_commit("a", "1");
    app.push(&fx, &new).await;
    let summary = app.wait_sync("skipped").await;
    assert_eq!(summary, "infra: tracked files are modified, not syncing");
    assert_eq!(fx.deployed_head(), before);
    let text = std::fs::read_to_string(fx.checkout().join("README.md")).expect("read");
    assert_eq!(text, "local hotfix\n", "local edits are never touched");
    app.stop().await;
}

#[tokio::test]
async fn diverged_checkout_fails_without_merging() {
    let fx = GitFixture::new("infra", "main", Some(""));
    let (_setup, app) = app_for(&fx, Backend::Sqlite).await;
    std::fs::write(fx.checkout().join("local.txt"), "local commit\n").expect("write");
    git(&fx.checkout(), &["add", "local.txt"]);
    git(&fx.checkout(), &["commit", "--quiet", "-m", "local"]);
    let local = fx.deployed_head();
    let new = fx.push_commit("a", "1");
    app.push(&fx, &new).await;
    let summary = app.wait_sync("failure").await;
    assert!(summary.contains("merge --ff-only"), "{summary}");
    assert_eq!(fx.deployed_head(), local, "no merge commit was made");
    app.stop().await;
}

#[tokio::test]
async fn switches_to_the_branch_and_deletes_other_local_branches() {
    let fx = GitFixture::new("infra", "main", Some(""));
    let (_setup, app) = app_for(&fx, Backend::Sqlite).await;
    git(&fx.checkout(), &["checkout", "--quiet", "-b", "experiment"]);
    let new = fx.push_commit("a", "1");
    let (status, _) = app.deliver("push", &fx.push_event(&new)).await;
    assert_eq!(status, 202);
    let runs = app.wait_runs(FN, "sync", |r| synced_to(r, &new)).await;
    assert!(
        sync_runs(&runs)[0]["summary"]
            .as_str()
            .expect("summary")
            .ends_with("; deleted branches experiment")
    );
    assert_eq!(
        git(&fx.checkout(), &["rev-parse", "--abbrev-ref", "HEAD"]),
        "main"
    );
    assert_eq!(
        git(&fx.checkout(), &["branch", "--format=%(refname:short)"]),
        "main"
    );
    assert_eq!(fx.deployed_head(), new);
    app.stop().await;
}

#[tokio::test]
async fn a_burst_of_pushes_coalesces_into_two_syncs() {
    // The hook keeps the first sync busy while the burst arrives.
    let fx = GitFixture::new("infra", "main", Some("sleep 2\n"));
    let (_setup, app) = app_trusting(&fx).await;
    let new = fx.push_commit("a", "1");
    let bodies: Vec<Vec<u8>> = (0..50)
        .map(|i| {
            serde_json::to_vec(&json!({
                "ref": "refs/heads/main", "after": new, "n": i, "repository": {"name": "infra"}
            }))
            .expect("json")
        })
        .collect();
    let (status, first) = app.deliver("push", &bodies[0]).await;
    assert_eq!((status, first["coalesced"].as_bool()), (202, Some(false)));
    let rest = futures::future::join_all(bodies[1..].iter().map(|b| app.deliver("push", b))).await;
    for (status, body) in &rest {
        assert_eq!(
            (*status, body["coalesced"].as_bool()),
            (202, Some(true)),
            "{body}"
        );
    }
    // Once the queue is idle no further sync can start without a new request, so the count is
    // final.
    let runs = app
        .wait_runs(FN, "the sync queue to go idle", |r| {
            sync_runs(r).len() >= 2 && app.gateway.ctx.tasks.is_empty()
        })
        .await;
    assert_eq!(sync_runs(&runs).len(), 2, "50 pushes → 2 syncs: {runs:#?}");
    assert_eq!(fx.deployed_head(), new);
    app.stop().await;
}

#[tokio::test]
async fn a_follow_up_sync_waits_out_the_sync_interval() {
    // The hook keeps the first sync busy for half a second, well under the interval, so any
    // wait beyond that is the interval's.
    let fx = GitFixture::new("infra", "main", Some("sleep 0.5\n"));
    let setup = common::gitops_setup(&fx, common::Backend::Sqlite)
        .await
        .with_config(&webhook_gitops::testing::allow_repo_command(&fx.name))
        .set("GITOPS_SYNC_INTERVAL_MS", 2000);
    let app = TestApp::spawn(&setup).await;
    let first = fx.push_commit("a", "1");
    let (status, body) = app.deliver("push", &fx.push_event(&first)).await;
    assert_eq!((status, body["coalesced"].as_bool()), (202, Some(false)));
    let second = fx.push_commit("b", "2");
    let (status, body) = app.deliver("push", &fx.push_event(&second)).await;
    assert_eq!((status, body["coalesced"].as_bool()), (202, Some(true)));
    let runs = app
        .wait_runs(FN, "the follow-up sync", |r| sync_runs(r).len() >= 2)
        .await;
    let mut syncs: Vec<(chrono::DateTime<chrono::Utc>, i64)> = sync_runs(&runs)
        .iter()
        .map(|r| {
            let at = r["started_at"].as_str().expect("started_at");
            let at = chrono::DateTime::parse_from_rfc3339(at).expect("rfc3339");
            (at.to_utc(), r["duration_ms"].as_i64().expect("duration_ms"))
        })
        .collect();
    syncs.sort();
    assert_eq!(syncs.len(), 2, "{runs:#?}");
    let gap = (syncs[1].0 - syncs[0].0).num_milliseconds();
    assert!(syncs[0].1 < 1500, "the first sync took {} ms", syncs[0].1);
    // A run's recorded start comes a few ms after the moment the queue measures from (the
    // pending deliveries are read in between); without the interval the gap would be the
    // first sync's ~0.5 s.
    assert!(
        gap >= 1800,
        "the follow-up started {gap} ms after the first sync"
    );
    assert_eq!(fx.deployed_head(), second);
    app.stop().await;
}

#[tokio::test]
async fn octokit_example_payloads_through_the_gateway() {
    // Real payloads from @octokit/webhooks-examples; their repository is Hello-World and their
    // pushes go to master.
    let examples = webhook_gitops_examples();
    let fx = GitFixture::new("Hello-World", "master", Some(""));
    let (_setup, app) = app_for(&fx, Backend::Sqlite).await;
    let mut seen = std::collections::BTreeMap::<(String, u16, String), usize>::new();
    for (event, payload) in &examples {
        let body = serde_json::to_vec(payload).expect("json");
        let (status, resp) = app.deliver(event, &body).await;
        let word = resp["status"].as_str().unwrap_or("error").to_owned();
        *seen.entry((event.clone(), status, word)).or_default() += 1;
    }
    let count = |e: &str, s: u16, w: &str| seen.get(&(e.into(), s, w.into())).copied().unwrap_or(0);
    assert_eq!(count("ping", 200, "pong"), 4, "{seen:?}");
    // Two distinct pushes to master: both accepted (distinct bodies are not replays).
    assert_eq!(count("push", 202, "accepted"), 2, "{seen:?}");
    assert_eq!(
        count("push", 200, "ignored"),
        5,
        "tag pushes are ignored: {seen:?}"
    );
    assert_eq!(count("pull_request", 200, "ignored"), 29, "{seen:?}");
    app.wait_runs(FN, "sync of Hello-World", |r| !sync_runs(r).is_empty())
        .await;
    app.stop().await;
}

/// (event, payload) for every push, ping and pull_request example of the npm package.
fn webhook_gitops_examples() -> Vec<(String, serde_json::Value)> {
    let dir = std::env::var("OCTOKIT_EXAMPLES_DIR").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../.test-deps/node_modules/@octokit/webhooks-examples"
        )
        .to_owned()
    });
    let index = std::path::Path::new(&dir).join("api.github.com/index.json");
    let text = std::fs::read_to_string(&index).unwrap_or_else(|e| {
        panic!(
            "{} is missing ({e}); `make test-deps` installs @octokit/webhooks-examples",
            index.display()
        )
    });
    let all: Vec<serde_json::Value> = serde_json::from_str(&text).expect("index.json");
    all.into_iter()
        .filter_map(|e| {
            let name = e["name"].as_str()?.to_owned();
            ["push", "ping", "pull_request"]
                .contains(&name.as_str())
                .then(|| {
                    e["examples"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .map(move |x| (name.clone(), x))
                })
        })
        .flatten()
        .collect()
}

#[tokio::test]
async fn form_encoded_deliveries_are_taken_like_json_ones() {
    // GitHub's default content type for a new webhook.
    let fx = GitFixture::new("infra", "main", Some(""));
    let (_setup, app) = app_for(&fx, Backend::Sqlite).await;
    let addr = app.addr.to_string();
    let new = fx.push_commit("app.yaml", "form\n");
    let json = String::from_utf8(fx.push_event(&new)).expect("utf8");
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &json)
        .finish();
    let resp = common::signed_push(&app.client, &addr, form.into_bytes())
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 202);
    app.wait_runs(FN, "sync after a form delivery", |runs| {
        synced_to(runs, &new)
    })
    .await;
    assert_eq!(fx.deployed_head(), new);

    let resp = common::signed_push(&app.client, &addr, b"other=1".to_vec())
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.expect("JSON");
    assert_eq!(body["error"], "form body has no payload field");
    app.stop().await;
}

/// Sends a delivery's headers and the first bytes of a body it never finishes; returns the
/// connection, whose answer the caller reads.
async fn trickle(app: &TestApp, signature: Option<&str>) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut conn = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let sig = signature
        .map(|s| format!("X-Hub-Signature-256: {s}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nX-GitHub-Event: push\r\n{sig}Content-Type: application/json\r\n\
         Content-Length: 5000\r\nConnection: close\r\n\r\n{{\"ref\":",
        webhook_gitops::WEBHOOK_PATH,
        app.addr
    );
    conn.write_all(head.as_bytes()).await.expect("write");
    conn
}

async fn answer(conn: &mut tokio::net::TcpStream, within: std::time::Duration) -> String {
    use tokio::io::AsyncReadExt;
    let mut raw = String::new();
    tokio::time::timeout(within, conn.read_to_string(&mut raw))
        .await
        .expect("answered in time")
        .expect("read");
    raw
}

#[tokio::test]
async fn trickled_bodies_cannot_lock_real_deliveries_out() {
    let fx = GitFixture::new("infra", "main", Some(""));
    let setup = hub_setup(Backend::Sqlite)
        .await
        .set("GITOPS_BASE_DIR", fx.base.display())
        .set("HUB_MAX_CONCURRENCY", 1)
        .set("HUB_BODY_TIMEOUT_SECS", 2);
    let app = TestApp::spawn(&setup).await;

    // No signature at all: refused on the headers, without waiting for the body.
    let mut unsigned = trickle(&app, None).await;
    let raw = answer(&mut unsigned, std::time::Duration::from_secs(1)).await;
    assert!(raw.starts_with("HTTP/1.1 401"), "{raw}");
    assert!(raw.contains("missing X-Hub-Signature-256 header"), "{raw}");

    // Well-formed (but wrong) signatures whose bodies never finish: they wait for their body
    // outside the function's only slot, so a real delivery still gets through.
    let fake = webhook_gitops::signature::sign(b"guess", b"x");
    let mut stalled = Vec::new();
    for _ in 0..3 {
        stalled.push(trickle(&app, Some(&fake)).await);
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let new = fx.push_commit("app.yaml", "v2\n");
    let (status, body) = app.deliver("push", &fx.push_event(&new)).await;
    assert_eq!(status, 202, "a real delivery is not locked out: {body}");
    for mut conn in stalled {
        let raw = answer(&mut conn, std::time::Duration::from_secs(5)).await;
        assert!(raw.starts_with("HTTP/1.1 408"), "{raw}");
    }
    app.wait_runs(FN, "the real delivery's sync", |runs| synced_to(runs, &new))
        .await;
    app.stop().await;
}
