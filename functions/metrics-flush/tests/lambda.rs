//! The `metrics-flush` Lambda binary end to end: Function URL pushes (the events in
//! `tests/fixtures/`) through the testkit's Lambda Runtime API, rows checked in the store; a
//! schedule event, which brings no samples, fails the invocation saying so.

use hub_runtime::{HubConfig, Source, Store};
use hub_testkit::lambda::{LambdaProcess, Posted, function_env, http_answer, schedule_event};
use serde_json::{Value, json};
use tempfile::TempDir;

fn fixture(name: &str) -> Value {
    hub_testkit::lambda::fixture(env!("CARGO_MANIFEST_DIR"), name)
}

#[tokio::test]
async fn function_url_pushes_are_written_once_and_bad_tokens_refused() {
    let dir = TempDir::new().expect("scratch");
    // The fixtures carry `Bearer test-collector-token`.
    let env = function_env(
        dir.path(),
        &[(
            "HUB_COLLECTOR_TOKEN",
            metrics_flush::testing::TOKEN.to_owned(),
        )],
    );
    let (mut runtime, mut lambda) = LambdaProcess::start(
        metrics_flush::NAME,
        env!("CARGO_BIN_EXE_metrics-flush"),
        &env,
        dir.path(),
    )
    .await;

    let push = fixture("apigw-v2-push.json");
    let (status, body) = http_answer(&lambda.invoke(&mut runtime, "req-1", &push).await);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"service": "metrics-flush", "samples": 1, "inserted": 2, "duplicates": 0})
    );
    // The collector replays after a lost answer: nothing doubles.
    let (status, body) = http_answer(&lambda.invoke(&mut runtime, "req-2", &push).await);
    assert_eq!(
        (status, body["duplicates"].as_u64()),
        (200, Some(2)),
        "{body}"
    );

    let wrong = fixture("apigw-v2-push-wrong-token.json");
    let (status, body) = http_answer(&lambda.invoke(&mut runtime, "req-3", &wrong).await);
    assert_eq!(
        (status, &body["error"]),
        (401, &json!("wrong token")),
        "{body}"
    );

    // A schedule carries no samples: the invocation fails saying what it expected.
    match lambda
        .invoke_raw(
            &mut runtime,
            "req-4",
            &schedule_event("eventbridge-scheduled.json"),
        )
        .await
    {
        Posted::Error { body, .. } => assert!(
            body.to_string().contains("expected a batch"),
            "says why: {body}"
        ),
        other => panic!("a schedule event must fail metrics-flush's invocation, got {other}"),
    }
    runtime.assert_nothing_else_posted(&lambda);
    lambda.stop().await;

    let source = Source::from_parts(None, env.into_iter().collect()).expect("source");
    let store = Store::connect(&HubConfig::from_source(&source).expect("hub"))
        .await
        .expect("store");
    let Store::Sqlite(pool) = &store else {
        unreachable!("no DATABASE_URL: the embedded store")
    };
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT host, metric_type, payload FROM system_metrics ORDER BY metric_type",
    )
    .fetch_all(pool)
    .await
    .expect("rows");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!((rows[0].0.as_str(), rows[0].1.as_str()), ("nuc", "cpu"));
    assert_eq!(
        serde_json::from_str::<Value>(&rows[0].2).expect("payload"),
        json!({"total": 12.5, "cores": [10.0, 15.0]})
    );
}
