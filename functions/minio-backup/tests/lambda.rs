//! The `minio-backup` Lambda binary end to end, driven by the testkit's Lambda Runtime API, over
//! a real S3 server (Garage) and a real PostgreSQL database. The schedule events (the testkit's)
//! back up every set: the database dump is stored, the directory set is refused there (it needs
//! the host's files), so the run and the invocation fail naming it. Function URL requests (the
//! events in `tests/fixtures/`) back up one set and list what is stored.

mod common;

use common::{Env, write_tree};
use hub_runtime::store::RunQuery;
use hub_runtime::{HubConfig, Source, Store, Trigger};
use hub_testkit::lambda::{LambdaProcess, Posted, function_env, http_answer, schedule_event};
use hub_testkit::{GarageServer, TestDb, garage};
use serde_json::Value;
use sqlx::Connection;
use tempfile::TempDir;

fn fixture(name: &str) -> Value {
    hub_testkit::lambda::fixture(env!("CARGO_MANIFEST_DIR"), name)
}

#[tokio::test]
async fn schedules_and_function_urls_back_up_to_s3_and_refuse_host_files() {
    let garage = GarageServer::start();
    let db = TestDb::create().await;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    sqlx::raw_sql("CREATE TABLE notes (id INT PRIMARY KEY, body TEXT); INSERT INTO notes VALUES (1, 'a'), (2, 'b');")
        .execute(&mut conn)
        .await
        .expect("fill");
    let tree = TempDir::new().expect("tree");
    write_tree(tree.path());
    let env = Env::s3(&garage)
        .set("BACKUP_DATABASE_URL", &db.url)
        .set("BACKUP_DIRS", format!("grafana={}", tree.path().display()));
    let settings: Vec<(&str, String)> = env
        .settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let lambda_env = function_env(env.data.path(), &settings);
    let (mut runtime, mut lambda) = LambdaProcess::start(
        minio_backup::NAME,
        env!("CARGO_BIN_EXE_minio-backup"),
        &lambda_env,
        env.data.path(),
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
            Posted::Error { body, .. } => {
                let text = body.to_string();
                assert!(
                    text.contains("minio-backup: postgres: ")
                        && text.contains("set grafana needs this host's files"),
                    "{event}: the dump stored, the directory refused: {body}"
                );
            }
            other => panic!("{event}: a run with a refused set must fail, got {other}"),
        }
    }

    let run = lambda
        .invoke(&mut runtime, "req-3", &fixture("apigw-v2-post-run.json"))
        .await;
    let (status, body) = http_answer(&run);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            &body["status"],
            &body["sets"][0]["set"],
            &body["sets"][0]["status"]
        ),
        (&"success".into(), &"postgres".into(), &"success".into()),
        "{body}"
    );
    let key = body["sets"][0]["key"].as_str().expect("key").to_owned();

    let list = lambda
        .invoke(&mut runtime, "req-4", &fixture("apigw-v2-get-backups.json"))
        .await;
    let (status, body) = http_answer(&list);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["target"],
        format!("s3://{}/homelab at {}", garage::BUCKET, garage.endpoint())
    );
    let backups = |set: &str| -> Vec<String> {
        let entry = body["sets"]
            .as_array()
            .and_then(|sets| sets.iter().find(|s| s["set"] == set))
            .unwrap_or_else(|| panic!("set {set} listed: {body}"));
        entry["backups"]
            .as_array()
            .expect("backups")
            .iter()
            .map(|b| b["key"].as_str().expect("key").to_owned())
            .collect()
    };
    let postgres = backups("postgres");
    assert_eq!(postgres.len(), 3, "two schedules and one request: {body}");
    assert_eq!(postgres[0], key, "newest first: {body}");
    assert!(backups("grafana").is_empty(), "{body}");
    runtime.assert_nothing_else_posted(&lambda);
    lambda.stop().await;

    // What the binary stored is whole in Garage, read back by the gateway's own code.
    let b = env.built_for(Trigger::Cli).await.expect("config");
    let good = b.good_backups("postgres").await.expect("good backups");
    assert_eq!(good.len(), 3);

    let source = Source::from_parts(None, lambda_env.into_iter().collect()).expect("source");
    let store = Store::connect(&HubConfig::from_source(&source).expect("hub"))
        .await
        .expect("store");
    let runs = store
        .list_runs(&RunQuery {
            function: Some(minio_backup::NAME.into()),
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
            ("schedule", "failure")
        ],
        "the two requests and the two schedules"
    );
}
