//! The `gate-check` Lambda binary end to end, driven by the testkit's Lambda Runtime API. There
//! is no tailscaled on Lambda, so the function is not configured there whatever its settings
//! say: a schedule event fails the invocation naming why, a Function URL check answers 503 the
//! same way, the state reads closed, and tailscaled (the LocalAPI stand-in, here reachable on
//! purpose) is never called.

use hub_runtime::store::RunQuery;
use hub_runtime::{HubConfig, Source, Store};
use hub_testkit::lambda::{LambdaProcess, Posted, function_env, http_answer, schedule_event};
use hub_testkit::tailscale::LocalApi;
use serde_json::Value;
use tempfile::TempDir;

const WHY: &str = "there is no tailscaled on Lambda; gate-check runs on the host";

fn fixture(name: &str) -> Value {
    hub_testkit::lambda::fixture(env!("CARGO_MANIFEST_DIR"), name)
}

#[tokio::test]
async fn on_lambda_the_gate_refuses_work_and_never_calls_tailscaled() {
    let api = LocalApi::start().await;
    let dir = TempDir::new().expect("scratch");
    // A socket that answers: only being on Lambda keeps the gate from using it.
    let env = function_env(
        dir.path(),
        &[
            ("TAILSCALE_SOCKET", api.socket().display().to_string()),
            ("GATE_TIMEOUT_SECS", "1".to_owned()),
        ],
    );
    let (mut runtime, mut lambda) = LambdaProcess::start(
        gate_check::NAME,
        env!("CARGO_BIN_EXE_gate-check"),
        &env,
        dir.path(),
    )
    .await;

    for (request_id, event) in [
        ("req-1", "eventbridge-scheduled.json"),
        ("req-2", "scheduler-v2.json"),
    ] {
        match lambda
            .invoke_raw(&mut runtime, request_id, &schedule_event(event))
            .await
        {
            Posted::Error { body, .. } => assert!(
                body.to_string()
                    .contains(&format!("gate-check: not configured: {WHY}")),
                "{event}: says why: {body}"
            ),
            other => panic!("{event} must fail gate-check's invocation, got {other}"),
        }
    }

    let check = lambda
        .invoke(&mut runtime, "req-3", &fixture("apigw-v2-post-check.json"))
        .await;
    let (status, body) = http_answer(&check);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], format!("not configured: {WHY}"), "{body}");

    let state = lambda
        .invoke(&mut runtime, "req-4", &fixture("apigw-v2-get-gate.json"))
        .await;
    let (status, body) = http_answer(&state);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["open"], &body["published"]),
        (&Value::Bool(false), &Value::Null),
        "{body}"
    );
    runtime.assert_nothing_else_posted(&lambda);
    lambda.stop().await;

    assert!(
        api.calls().is_empty(),
        "tailscaled was called from Lambda: {:#?}",
        api.calls()
    );
    // Both schedules are failed runs in the hub's history, where the status page shows them.
    let source = Source::from_parts(None, env.into_iter().collect()).expect("source");
    let store = Store::connect(&HubConfig::from_source(&source).expect("hub"))
        .await
        .expect("store");
    let runs = store
        .list_runs(&RunQuery {
            function: Some(gate_check::NAME.into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("runs");
    let schedules: Vec<&str> = runs
        .iter()
        .filter(|r| r.trigger == "schedule")
        .map(|r| r.outcome.as_str())
        .collect();
    assert_eq!(schedules, ["failure", "failure"], "{runs:?}");
}
