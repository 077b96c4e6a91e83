//! gate-check through the running gateway (#15): the edge the gateway hands it — the bound
//! public port and the public routes — ends up in tailscaled's serve config (a LocalAPI
//! stand-in on a unix socket), and SIGTERM closes Funnel before the process exits.

mod common;

use common::{Backend, Setup, gateway_cmd, spawn_gateway, terminate};
use hub_testkit::tailscale::LocalApi;
use serde_json::Value;

#[tokio::test]
async fn the_gate_opens_funnel_to_the_public_listener_only_and_sigterm_closes_it() {
    let api = LocalApi::start().await;
    let setup = Setup::new(Backend::Sqlite)
        .await
        .with(webhook_gitops::testing::env())
        .set("TAILSCALE_SOCKET", api.socket().display())
        // Checks are driven by hand here, not every 30 s.
        .set("HUB_SCHEDULE_GATE_CHECK", "off");
    // webhook-gitops is ready (and the gate may open) once its checkouts' directory exists.
    let checkouts = setup.data_dir.path().join("gitops");
    std::fs::create_dir_all(&checkouts).expect("checkouts dir");
    let setup = setup.set("GITOPS_BASE_DIR", checkouts.display());
    let mut cmd = gateway_cmd(&setup);
    cmd.args(["serve", "--port", "0", "--public-port", "0"]);
    let mut gw = spawn_gateway(cmd);
    let public_port: u16 = gw
        .public_addr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("public port");
    let client = reqwest::Client::new();
    let check = || async {
        let resp = client
            .post(format!("http://{}/api/gate/check", gw.addr))
            .send()
            .await
            .expect("POST /api/gate/check");
        let status = resp.status();
        (status, resp.text().await.expect("body"))
    };

    // Two healthy checks (GATE_OPEN_AFTER=2): closed after the first, open after the second.
    let (status, body) = check().await;
    assert!(status.is_success(), "{status}: {body}");
    assert_eq!(
        api.posts().len(),
        0,
        "nothing written before the gate opens"
    );
    let (status, body) = check().await;
    assert!(status.is_success(), "{status}: {body}");
    let cfg = api.config();
    let web = &cfg["Web"]["hub.tail1234.ts.net:443"]["Handlers"];
    let Some(handlers) = web.as_object() else {
        let _ = gw.child.kill();
        panic!("the gate did not open: {cfg}; last check: {body}");
    };
    let mounts: Vec<&String> = handlers.keys().collect();
    assert_eq!(
        mounts,
        vec!["/api/webhook/gitops"],
        "only the public routes: {cfg}"
    );
    assert_eq!(
        handlers["/api/webhook/gitops"]["Proxy"],
        format!("http://127.0.0.1:{public_port}/api/webhook/gitops"),
        "Funnel points at the public listener: {cfg}"
    );
    assert_eq!(cfg["AllowFunnel"]["hub.tail1234.ts.net:443"], true, "{cfg}");
    let metrics = client
        .get(format!("http://{}/metrics", gw.addr))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics");
    assert!(metrics.lines().any(|l| l == "hub_gate_open 1"), "{metrics}");

    // SIGTERM: the gate closes Funnel before the process goes.
    assert!(terminate(&mut gw.child).await.success());
    let cfg = api.config();
    let funnelled = cfg["AllowFunnel"]
        .as_object()
        .is_some_and(|m| m.values().any(|v| v == &Value::Bool(true)));
    assert!(!funnelled, "Funnel closed at shutdown: {cfg}");
    assert!(
        cfg["Web"]["hub.tail1234.ts.net:443"]["Handlers"]["/api/webhook/gitops"].is_null(),
        "{cfg}"
    );
}
