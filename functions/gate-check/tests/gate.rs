//! gate-check against the LocalAPI stand-in: hysteresis, fail-closed paths, concurrent edits,
//! drift, restarts and shutdown.

mod common;

use common::{Env, HOOK, HOST_PORT, Ready, gate_metrics, scheduled};
use hub_runtime::Function;
use hub_runtime::store::RunQuery;
use hub_testkit::tailscale::body_and_etag;
use serde_json::{Value, json};

#[tokio::test]
async fn opens_after_two_healthy_checks_and_not_before() {
    let env = Env::new().await;
    let (gate, ctx) = env.gate().await;

    let first = scheduled(&gate, &ctx).await.expect("first check");
    assert!(first.starts_with("closed (1/2 healthy)"), "{first}");
    assert!(
        env.api.posts().is_empty(),
        "one healthy check must not open"
    );
    assert_eq!(env.api.config(), Value::Null);

    let second = scheduled(&gate, &ctx).await.expect("second check");
    assert!(second.starts_with("opened"), "{second}");
    assert!(second.contains("before: 0 hub handler(s)"), "{second}");
    assert!(
        second.contains("after: 1 hub handler(s) [/api/webhook/github], funnel on"),
        "{second}"
    );
    assert_eq!(env.api.config(), env.open_config());

    let posts = env.api.posts();
    assert_eq!(posts.len(), 1);
    let (_, etag_of_null) = body_and_etag(&Value::Null);
    assert_eq!(posts[0].if_match.as_deref(), Some(etag_of_null.as_str()));
    assert_eq!(posts[0].status, 200);
    assert!(
        env.api
            .calls()
            .iter()
            .all(|c| c.host.as_deref() == Some("local-tailscaled.sock")),
        "every call carries tailscaled's Host"
    );
    assert!(
        env.api
            .calls()
            .iter()
            .any(|c| c.target == "/localapi/v0/status?peers=false"),
        "the host name comes from the LocalAPI status"
    );
    assert_eq!(gate_metrics(&ctx), ("1".into(), "1".into(), "0".into()));

    let st = gate.state().await.expect("state");
    assert!(st.open && st.since.is_some());
    assert_eq!(st.changes.last().map(|c| c.action.as_str()), Some("opened"));

    // Staying open writes nothing.
    env.api.clear_calls();
    scheduled(&gate, &ctx).await.expect("third check");
    assert!(env.api.posts().is_empty());
}

async fn opened(env: &Env) -> (gate_check::Gate, hub_runtime::Context) {
    let (gate, ctx) = env.gate().await;
    for _ in 0..2 {
        scheduled(&gate, &ctx).await.expect("healthy check");
    }
    assert_eq!(env.api.config(), env.open_config(), "opened");
    env.api.clear_calls();
    (gate, ctx)
}

#[tokio::test]
async fn closes_on_the_first_failed_check() {
    let env = Env::new().await;
    let (gate, ctx) = opened(&env).await;
    env.ready(Ready::No);
    let summary = scheduled(&gate, &ctx).await.expect("check");
    assert!(
        summary.starts_with("closed (gateway not ready: store unreachable)"),
        "{summary}"
    );
    assert_eq!(
        env.api.config(),
        json!({}),
        "tailscaled's omitempty shape: nothing left"
    );
    assert_eq!(gate_metrics(&ctx), ("0".into(), "1".into(), "1".into()));
    assert!(!gate.state().await.expect("state").open);
}

#[tokio::test]
async fn a_probe_that_times_out_closes() {
    let env = Env::new().await;
    let (gate, ctx) = opened(&env).await;
    env.ready(Ready::Hang);
    let started = std::time::Instant::now();
    let summary = scheduled(&gate, &ctx).await.expect("check");
    assert!(summary.contains("health probe timed out"), "{summary}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "bounded by GATE_TIMEOUT_SECS"
    );
    assert_eq!(env.api.config(), json!({}));
}

#[tokio::test]
async fn a_failing_localapi_keeps_a_closed_gate_closed_and_fails_the_run() {
    let env = Env::new().await;
    let (gate, ctx) = env.gate().await;
    scheduled(&gate, &ctx).await.expect("first check");
    env.api.fail();
    let err = scheduled(&gate, &ctx).await.expect_err("the run fails");
    assert!(err.contains("500"), "{err}");
    assert!(!gate.state().await.expect("state").open, "stays closed");
    assert_eq!(gate_metrics(&ctx).0, "0");
    let failed = ctx
        .runs
        .list(&RunQuery {
            function: Some(gate_check::NAME.into()),
            outcome: Some("failure".into()),
            limit: 10,
            ..RunQuery::default()
        })
        .await
        .expect("runs");
    assert_eq!(failed.len(), 1, "recorded as a failed run");

    // Healed, the streak carries on and the gate opens.
    env.api.heal();
    let summary = scheduled(&gate, &ctx).await.expect("healed");
    assert!(summary.starts_with("opened"), "{summary}");
}

#[tokio::test]
async fn a_failing_localapi_while_closing_goes_closed_and_the_next_check_finishes_the_job() {
    let env = Env::new().await;
    let (gate, ctx) = opened(&env).await;
    env.ready(Ready::No);
    env.api.hang();
    let err = scheduled(&gate, &ctx).await.expect_err("the run fails");
    assert!(err.contains("did not answer"), "{err}");
    assert!(
        !gate.state().await.expect("state").open,
        "the state goes closed"
    );
    assert_eq!(gate_metrics(&ctx).0, "0");
    assert_eq!(
        env.api.config(),
        env.open_config(),
        "tailscaled still has it"
    );

    env.api.heal();
    let summary = scheduled(&gate, &ctx).await.expect("retry");
    assert!(summary.starts_with("repaired"), "{summary}");
    assert_eq!(env.api.config(), json!({}));
}

#[tokio::test]
async fn flapping_health_does_not_flap_the_funnel() {
    let env = Env::new().await.set("GATE_CLOSE_AFTER", 2);
    let (gate, ctx) = env.gate().await;
    for ready in [
        Ready::Yes,
        Ready::No,
        Ready::Yes,
        Ready::No,
        Ready::Yes,
        Ready::No,
    ] {
        env.ready(ready);
        scheduled(&gate, &ctx).await.expect("check");
    }
    assert!(
        env.api.posts().is_empty(),
        "never two healthy in a row: never opened"
    );

    env.ready(Ready::Yes);
    let (gate, ctx) = opened(&env).await;
    for ready in [
        Ready::No,
        Ready::Yes,
        Ready::No,
        Ready::Yes,
        Ready::No,
        Ready::Yes,
    ] {
        env.ready(ready);
        scheduled(&gate, &ctx).await.expect("check");
    }
    assert!(
        env.api.posts().is_empty(),
        "never two unhealthy in a row: never closed"
    );
    assert_eq!(env.api.config(), env.open_config());
    assert_eq!(gate_metrics(&ctx).2, "0");
}

#[tokio::test]
async fn a_concurrent_edit_is_re_read_and_merged_keeping_the_foreign_entry() {
    let env = Env::new().await;
    let (gate, ctx) = env.gate().await;
    scheduled(&gate, &ctx).await.expect("first check");
    let foreign = json!({
        "TCP": {"443": {"HTTPS": true}},
        "Web": {HOST_PORT: {"Handlers": {"/grafana": {"Proxy": "http://127.0.0.1:3000", "NewField": [1, 2]}}}},
        "Services": {"svc:metrics": {"Tun": true}},
    });
    env.api.edit_before_next_post(foreign.clone());
    scheduled(&gate, &ctx)
        .await
        .expect("opens despite the edit");

    let posts = env.api.posts();
    assert_eq!(
        posts.iter().map(|p| p.status).collect::<Vec<_>>(),
        [412, 200]
    );
    let (_, foreign_etag) = body_and_etag(&foreign);
    assert_eq!(
        posts[1].if_match.as_deref(),
        Some(foreign_etag.as_str()),
        "re-read before retrying"
    );
    let live = env.api.config();
    assert_eq!(
        live["Web"][HOST_PORT]["Handlers"]["/grafana"],
        foreign["Web"][HOST_PORT]["Handlers"]["/grafana"]
    );
    assert_eq!(live["Services"], foreign["Services"]);
    assert_eq!(
        live["Web"][HOST_PORT]["Handlers"][HOOK]["Proxy"],
        env.open_config()["Web"][HOST_PORT]["Handlers"][HOOK]["Proxy"]
    );
    assert_eq!(live["AllowFunnel"][HOST_PORT], true);

    // Closing takes away the hub's handler and the funnel, nothing else.
    env.ready(Ready::No);
    scheduled(&gate, &ctx).await.expect("close");
    assert_eq!(env.api.config(), foreign);
}

#[tokio::test]
async fn drift_is_repaired_once_and_counted_as_no_transition() {
    let env = Env::new().await;
    let (gate, ctx) = opened(&env).await;
    // `tailscale funnel reset` behind the gate's back.
    env.api.set_config(Value::Null);
    let summary = scheduled(&gate, &ctx).await.expect("check");
    assert!(summary.starts_with("repaired"), "{summary}");
    assert_eq!(env.api.config(), env.open_config());
    assert_eq!(gate_metrics(&ctx), ("1".into(), "1".into(), "0".into()));
    env.api.clear_calls();
    scheduled(&gate, &ctx).await.expect("check");
    assert!(env.api.posts().is_empty(), "repaired once");

    // Closed, a hub handler someone put back is drift too.
    env.ready(Ready::No);
    scheduled(&gate, &ctx).await.expect("close");
    env.api.set_config(env.open_config());
    let summary = scheduled(&gate, &ctx).await.expect("check");
    assert!(summary.starts_with("repaired"), "{summary}");
    assert_eq!(env.api.config(), json!({}));
}

#[tokio::test]
async fn a_stored_state_that_cannot_be_read_closes_the_gate() {
    let env = Env::new().await;
    let (gate, ctx) = opened(&env).await;
    hub_runtime::on_pool!(&ctx.store, |p| sqlx::query(
        "UPDATE gate_check_state SET state = 'garbage'"
    )
    .execute(p)
    .await
    .map(|_| ()))
    .expect("corrupt the row");
    let summary = scheduled(&gate, &ctx).await.expect("check");
    assert!(summary.contains("unreadable"), "{summary}");
    assert_eq!(env.api.config(), json!({}));
    assert!(!gate.state().await.expect("state rewritten").open);
}

#[tokio::test]
async fn shutdown_closes_the_funnel_as_a_recorded_run() {
    let env = Env::new().await;
    let (gate, ctx) = opened(&env).await;
    gate.stop().await;
    assert_eq!(env.api.config(), json!({}));
    assert!(!gate.state().await.expect("state").open);
    assert_eq!(gate_metrics(&ctx), ("0".into(), "1".into(), "1".into()));
    let runs = ctx
        .runs
        .list(&RunQuery {
            limit: 10,
            ..RunQuery::default()
        })
        .await
        .expect("runs");
    let last = runs.first().expect("a run");
    assert_eq!(
        (last.trigger.as_str(), last.outcome.as_str()),
        ("shutdown", "success")
    );
    assert!(
        last.summary.starts_with("closed (gateway shutting down)"),
        "{}",
        last.summary
    );

    // After the restart the gate earns its way open again.
    let (gate, ctx) = env.gate().await;
    scheduled(&gate, &ctx).await.expect("check");
    assert_eq!(env.api.config(), json!({}));
}

#[tokio::test]
async fn shutdown_of_a_closed_gate_writes_nothing() {
    let env = Env::new().await;
    let (gate, _ctx) = env.gate().await;
    gate.stop().await;
    assert!(env.api.posts().is_empty());
}
