//! The probe kinds, and where gate-check is not configured.

mod common;

use common::{Env, scheduled};
use gate_check::Gate;
use hub_runtime::{Function, InvokeError, Trigger};
use serde_json::json;
use std::os::unix::fs::PermissionsExt;

#[tokio::test]
async fn without_the_socket_it_is_not_configured_and_refuses_work() {
    let env = Env::new()
        .await
        .set("TAILSCALE_SOCKET", "/nonexistent/tailscaled.sock");
    let (gate, _ctx) = env.gate().await;
    let reason = gate.configured().expect_err("not configured");
    assert!(reason.contains("TAILSCALE_SOCKET"), "{reason}");
    let err = gate
        .invoke(Trigger::Schedule, json!({}))
        .await
        .expect_err("refused");
    assert!(matches!(err, InvokeError::NotConfigured(_)), "{err}");
}

#[tokio::test]
async fn on_lambda_it_is_not_configured_with_a_clear_message() {
    let env = Env::new().await;
    let ctx = env.context(Trigger::Lambda).await;
    let gate = Gate::from_context(&ctx).expect("builds on Lambda");
    let reason = gate.configured().expect_err("not configured");
    assert!(reason.contains("Lambda"), "{reason}");
}

#[tokio::test]
async fn until_the_gateway_publishes_its_edge_the_gate_stays_closed_and_says_why() {
    let env = Env::new().await;
    let ctx = env.context(Trigger::Http).await;
    let gate = Gate::from_context(&ctx).expect("gate");
    for _ in 0..3 {
        let summary = scheduled(&gate, &ctx).await.expect("check");
        assert!(
            summary.contains("has not published its public listener"),
            "{summary}"
        );
    }
    assert!(env.api.posts().is_empty());
}

#[tokio::test]
async fn a_closed_public_listener_is_unhealthy() {
    let env = Env::new().await;
    let (gate, ctx) = env.gate().await;
    let port = env.public_port();
    drop(env.public);
    let summary = scheduled(&gate, &ctx).await.expect("check");
    assert!(
        summary.contains(&format!("127.0.0.1:{port} refuses")),
        "{summary}"
    );
    assert!(env.api.posts().is_empty());
}

#[tokio::test]
async fn the_unit_probe_wants_systemctl_to_say_active() {
    let bin = tempfile::TempDir::new().expect("bin dir");
    let systemctl = bin.path().join("systemctl");
    let answer = bin.path().join("answer");
    std::fs::write(
        &systemctl,
        format!(
            "#!/bin/sh\necho \"$@\" >> {0}.args\ncat {0}\ngrep -qx active {0}\n",
            answer.display()
        ),
    )
    .expect("script");
    std::fs::set_permissions(&systemctl, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let env = Env::new()
        .await
        .set("GATE_UNIT", "hub-gateway.service")
        .set("GATE_SYSTEMCTL", systemctl.display());
    let (gate, ctx) = env.gate().await;
    for (said, healthy) in [("active", true), ("activating", false), ("failed", false)] {
        std::fs::write(&answer, format!("{said}\n")).expect("answer");
        let c = gate.check().await.expect("check");
        assert_eq!(c.health.healthy, healthy, "{said}: {}", c.health.reason);
    }
    let args = std::fs::read_to_string(format!("{}.args", answer.display())).expect("args");
    assert_eq!(
        args.lines().next(),
        Some("is-active -- hub-gateway.service")
    );
    drop(ctx);
}

#[tokio::test]
async fn the_url_probe_wants_a_2xx_in_time() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new()
        .route("/ok", axum::routing::get(|| async { "ok" }))
        .route(
            "/down",
            axum::routing::get(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "no") }),
        )
        .route(
            "/moved",
            axum::routing::get(|| async { axum::response::Redirect::temporary("/ok") }),
        )
        .route(
            "/slow",
            axum::routing::get(std::future::pending::<&'static str>),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    for (path, healthy) in [
        ("/ok", true),
        ("/down", false),
        ("/moved", false),
        ("/slow", false),
    ] {
        let env = Env::new()
            .await
            .set("GATE_HEALTH_URL", format!("http://{addr}{path}"));
        let (gate, _ctx) = env.gate().await;
        let c = gate.check().await.expect("check");
        assert_eq!(c.health.healthy, healthy, "{path}: {}", c.health.reason);
    }
}
