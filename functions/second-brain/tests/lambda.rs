//! The `second-brain` Lambda binary end to end, driven by the testkit's Lambda Runtime API,
//! against the GitHub stand-in and a real PostgreSQL database: the schedule events (the
//! testkit's) run one sync each, Function URL requests (the events in `tests/fixtures/`) run
//! one and page through the entries, and a sync GitHub fails fails the invocation saying so.

mod common;

use common::{Backend, Env, TOKEN, day_body, history};
use hub_runtime::store::RunQuery;
use hub_runtime::{HubConfig, Source, Store};
use hub_testkit::github::Fault;
use hub_testkit::lambda::{LambdaProcess, Posted, function_env, http_answer, schedule_event};
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    hub_testkit::lambda::fixture(env!("CARGO_MANIFEST_DIR"), name)
}

#[tokio::test(flavor = "multi_thread")]
async fn schedules_and_function_urls_sync_the_journal() {
    let env = Env::new(Backend::Postgres).await;
    for n in 1..=3 {
        env.journal(n, &day_body(n));
    }
    let settings: Vec<(&str, String)> = env
        .settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let lambda_env = function_env(env.data.path(), &settings);
    let (mut runtime, mut lambda) = LambdaProcess::start(
        second_brain::NAME,
        env!("CARGO_BIN_EXE_second-brain"),
        &lambda_env,
        env.data.path(),
    )
    .await;

    let scheduled = schedule_event("eventbridge-scheduled.json");
    let answer = lambda.invoke(&mut runtime, "req-1", &scheduled).await;
    assert_eq!(
        answer,
        json!({"function": second_brain::NAME, "outcome": "success",
               "summary": "6 entries added from 3 new issues"})
    );

    let page = lambda
        .invoke(&mut runtime, "req-2", &fixture("apigw-v2-get-brain.json"))
        .await;
    let (status, body) = http_answer(&page);
    assert_eq!(status, 200, "{body}");
    let contents: Vec<&str> = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["content"].as_str().expect("content"))
        .collect();
    assert_eq!(
        contents,
        [
            "day 1: tuned a postgres index",
            "day 2: tuned a postgres index",
            "day 3: tuned a postgres index"
        ],
        "the project entries, newest first: {body}"
    );

    // Today's issue arrives; a Function URL sync takes only it.
    env.journal(0, &day_body(0));
    let sync = lambda
        .invoke(&mut runtime, "req-3", &fixture("apigw-v2-post-sync.json"))
        .await;
    let (status, body) = http_answer(&sync);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["status"], &body["processed_count"], &body["issues"]),
        (&json!("success"), &json!(2), &json!(1)),
        "{body}"
    );

    // GitHub fails the template's schedule: so does the invocation, saying why.
    env.github.queue(&[Fault::ServerError]);
    match lambda
        .invoke_raw(&mut runtime, "req-4", &schedule_event("scheduler-v2.json"))
        .await
    {
        Posted::Error { body, .. } => assert!(
            body.to_string().contains("stopped: GitHub answered 500"),
            "says why: {body}"
        ),
        other => panic!("a failed sync must fail the invocation, got {other}"),
    }
    runtime.assert_nothing_else_posted(&lambda);
    lambda.stop().await;

    let requests = env.github.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.authorization.as_deref() == Some(format!("Bearer {TOKEN}").as_str())),
        "every request sent GITHUB_TOKEN: {requests:#?}"
    );
    let source = Source::from_parts(None, lambda_env.into_iter().collect()).expect("source");
    let store = Store::connect(&HubConfig::from_source(&source).expect("hub"))
        .await
        .expect("store");
    let synced: Vec<(String, i64)> = history(&store)
        .await
        .into_iter()
        .map(|(status, processed, _)| (status, processed))
        .collect();
    assert_eq!(
        synced,
        [
            ("success".to_owned(), 6),
            ("success".to_owned(), 2),
            ("failure".to_owned(), 0)
        ]
    );
    let runs = store
        .list_runs(&RunQuery {
            function: Some(second_brain::NAME.into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("runs");
    let mut seen: Vec<(&str, &str)> = runs
        .iter()
        .map(|r| (r.trigger.as_str(), r.outcome.as_str()))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("lambda", "success"),
            ("lambda", "success"),
            ("schedule", "failure"),
            ("schedule", "success")
        ],
        "the two requests and the two schedules"
    );
}
