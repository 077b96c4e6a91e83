//! Secrets from a real OpenBao dev server, where the old hub kept them: the database from
//! `observability-hub/postgres`, the collector token from `observability-hub/collector`;
//! explicit environment variables win; OpenBao unreachable or refusing the token stops start-up
//! naming `BAO_ADDR`; values never reach the log.

mod common;

use common::{Backend, Setup, TestApp, TestDb, spawn_command_logged, terminate};
use hub_testkit::BaoServer;
use hub_testkit::bao::ROOT_TOKEN;
use local_gateway::Gateway;
use serde_json::json;
use std::time::Duration;

const BAO_TOKEN: &str = "pushed-with-the-token-from-openbao";
const DB_PASSWORD: &str = "s3cret-from-openbao";

/// A PostgreSQL role with a password (trust auth ignores it, so the test also checks that the
/// password made it into the connection settings through the log-free route).
async fn openbao_with_postgres(db: &TestDb) -> BaoServer {
    let bao = BaoServer::start().await;
    let name = db.url.rsplit('/').next().expect("database name");
    bao.put(
        "observability-hub/postgres",
        json!({"host": "127.0.0.1", "port": "5432", "user": "postgres", "dbname": name,
               "server_db_password": DB_PASSWORD}),
    )
    .await;
    bao.put("observability-hub/collector", json!({"token": BAO_TOKEN}))
        .await;
    bao
}

/// Settings with OpenBao and no `DATABASE_URL` (the embedded store unless OpenBao says otherwise).
async fn setup(bao: &BaoServer) -> Setup {
    Setup::new(Backend::Sqlite)
        .await
        .set("BAO_ADDR", bao.url())
        .set("BAO_TOKEN", ROOT_TOKEN)
}

async fn push(app: &TestApp, token: &str) -> u16 {
    let batch = json!({"samples": [{"time": chrono::Utc::now().to_rfc3339(), "host": "bao-host",
                                    "os": "debian 12.7", "metrics": {"cpu": {"usage": 5.0}}}]});
    app.client
        .post(app.url("/api/metrics"))
        .bearer_auth(token)
        .json(&batch)
        .send()
        .await
        .expect("POST")
        .status()
        .as_u16()
}

#[tokio::test]
async fn the_database_and_the_collector_token_come_from_openbao() {
    let db = TestDb::create().await;
    let bao = openbao_with_postgres(&db).await;
    let app = TestApp::spawn(&setup(&bao).await).await;
    assert!(
        matches!(app.gateway.ctx.store, hub_runtime::Store::Postgres(_)),
        "PostgreSQL from observability-hub/postgres, not the embedded store"
    );
    assert_eq!(push(&app, BAO_TOKEN).await, 200);
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
        .await
        .expect("connect");
    let (rows,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM system_metrics WHERE host = 'bao-host'")
            .fetch_one(&mut conn)
            .await
            .expect("rows in the database OpenBao named");
    assert_eq!(rows, 1);
    app.stop().await;
}

async fn metric_rows(url: &str) -> Option<i64> {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url)
        .await
        .expect("connect");
    let (table,): (Option<String>,) = sqlx::query_as("SELECT to_regclass('system_metrics')::text")
        .fetch_one(&mut conn)
        .await
        .expect("query");
    table?;
    let (rows,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM system_metrics")
        .fetch_one(&mut conn)
        .await
        .expect("count");
    Some(rows)
}

#[tokio::test]
async fn explicit_environment_variables_win_over_openbao() {
    let (named_by_bao, named_by_env) = (TestDb::create().await, TestDb::create().await);
    let bao = openbao_with_postgres(&named_by_bao).await;
    let env_name = named_by_env.url.rsplit('/').next().expect("name");
    let setup = setup(&bao)
        .await
        .set("HUB_COLLECTOR_TOKEN", "the-operator-set-this")
        .set("DB_HOST", "127.0.0.1")
        .set("DB_PORT", "5432")
        .set("DB_USER", "postgres")
        .set("DB_NAME", env_name);
    let app = TestApp::spawn(&setup).await;
    assert_eq!(
        push(&app, BAO_TOKEN).await,
        401,
        "OpenBao's token was not used"
    );
    assert_eq!(push(&app, "the-operator-set-this").await, 200);
    app.stop().await;
    assert_eq!(
        metric_rows(&named_by_env.url).await,
        Some(1),
        "DB_NAME from the environment"
    );
    assert_eq!(
        metric_rows(&named_by_bao.url).await,
        None,
        "nothing where OpenBao pointed"
    );
}

#[tokio::test]
async fn openbao_unreachable_or_refusing_stops_start_up_naming_bao_addr() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    let setup = Setup::new(Backend::Sqlite)
        .await
        .set("BAO_ADDR", &dead)
        .set("BAO_TOKEN", ROOT_TOKEN);
    let err = Gateway::new(setup.source())
        .await
        .expect_err("no silent fallback to SQLite")
        .to_string();
    assert!(err.contains("BAO_ADDR") && err.contains(&dead), "{err}");
    assert!(
        !setup.data_dir.path().join("hub.db").exists(),
        "no SQLite store made"
    );

    let bao = BaoServer::start().await;
    let wrong = Setup::new(Backend::Sqlite)
        .await
        .set("BAO_ADDR", bao.url())
        .set("BAO_TOKEN", "not-the-token");
    let err = Gateway::new(wrong.source())
        .await
        .expect_err("refused")
        .to_string();
    assert!(err.contains("BAO_ADDR") && err.contains("403"), "{err}");
    assert!(
        !err.contains("not-the-token"),
        "the token is not echoed: {err}"
    );

    let no_token = Setup::new(Backend::Sqlite).await.set("BAO_ADDR", bao.url());
    let err = Gateway::new(no_token.source())
        .await
        .expect_err("no token")
        .to_string();
    assert!(err.contains("BAO_TOKEN"), "{err}");
}

#[tokio::test]
async fn openbao_values_never_reach_the_log() {
    let db = TestDb::create().await;
    let bao = openbao_with_postgres(&db).await;
    let setup = setup(&bao).await.set("RUST_LOG", "debug");
    let mut cmd = common::gateway_cmd(&setup);
    cmd.args(["serve", "--port", "0"]);
    let (mut child, addr, logs) = spawn_command_logged(cmd);
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}/api/metrics"))
        .bearer_auth("wrong-token")
        .json(&json!({"samples": []}))
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 401);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(terminate(&mut child).await.success());
    let lines = logs.lock().expect("logs").clone();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("setting read from OpenBao")),
        "{lines:?}"
    );
    for line in &lines {
        for secret in [DB_PASSWORD, BAO_TOKEN, ROOT_TOKEN] {
            assert!(!line.contains(secret), "{secret} logged: {line}");
        }
    }
}
