//! The acceptance suite of the old hub's users: every panel of their Grafana dashboards
//! (`../shared/seed-compat/dashboards/`) runs against a PostgreSQL database filled the real way
//! — `hub-collector` → metrics-flush, MongoDB (PoloDB) → reading-sync — on a fresh database and
//! on a database the old hub created (its exact DDL, its rows, duplicate metric rows, and the
//! TimescaleDB branch through a stand-in extension that records `create_hypertable`).

mod common;

use common::{Hub, TOKEN, collector};
use hub_testkit::{MongoServer, TestDb, grafana};
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{Document, doc};
use serde_json::Value;
use sqlx::{Connection, PgConnection};
use std::path::Path;
use tempfile::TempDir;

/// The users' dashboards, as `../shared/seed-compat` hands them over; kept in the repository so
/// a clone anywhere runs the suite (see [`the_fixtures_are_the_users_dashboards`]).
const DASHBOARDS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/seed-compat/dashboards"
);
/// Where the workplace keeps the originals, beside the repository.
const ORIGINALS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/seed-compat/dashboards"
);
/// The host the dashboards hard-code; the collector is told to use it.
const HOST: &str = "server";
const SOURCES: [&str; 5] = ["freecodecamp", "github", "shopify", "stripe", "substack"];

/// Every panel of both dashboards.
fn panels() -> Vec<grafana::Panel> {
    let out: Vec<grafana::Panel> = grafana::dashboard_files(Path::new(DASHBOARDS))
        .iter()
        .flat_map(|f| grafana::panels(f))
        .collect();
    assert!(out.len() >= 9, "both dashboards' panels: {out:?}");
    out
}

/// Runs every panel; each must succeed and return a row whose every column is non-null.
async fn run_dashboards(url: &str, interface: &str) {
    let failures = grafana::undrawn(url, &panels(), |sql| {
        sql.replace("'enp5s0'", &format!("'{interface}'"))
    })
    .await;
    assert!(
        failures.is_empty(),
        "panels that do not draw:\n{}",
        failures.join("\n")
    );
}

/// A sysfs tree with a coretemp hwmon device: a package and four cores (the panel's).
fn coretemp() -> TempDir {
    let root = TempDir::new().expect("sysfs");
    let dev = root.path().join("class/hwmon/hwmon0");
    std::fs::create_dir_all(&dev).expect("hwmon");
    std::fs::write(dev.join("name"), "coretemp\n").expect("name");
    let sensors = ["Package id 0", "Core 0", "Core 1", "Core 2", "Core 3"];
    for (k, label) in sensors.iter().enumerate() {
        std::fs::write(dev.join(format!("temp{}_label", k + 1)), label).expect("label");
        let milli = 45_000 + 1_000 * k;
        std::fs::write(dev.join(format!("temp{}_input", k + 1)), milli.to_string()).expect("input");
    }
    root
}

/// Documents as the old hub's ingesters wrote them: extractions from each source, with the
/// article's domain, and a summary.
fn readings() -> Vec<Document> {
    let now = chrono::Utc::now().timestamp_millis();
    let mut docs = Vec::new();
    for (i, source) in SOURCES.iter().enumerate() {
        for k in 0..3 {
            docs.push(doc! {
                "_id": ObjectId::new(),
                "status": "ingested",
                "source": *source,
                "event_type": "extraction",
                "timestamp": mongodb::bson::DateTime::from_millis(now - (i * 3 + k) as i64 * 3_600_000),
                "payload": {"domain": format!("{source}.com"), "title": format!("post {k}")},
                "meta": {"ingester": "rss"},
            });
        }
    }
    docs.push(doc! {
        "_id": ObjectId::new(), "status": "ingested", "source": "substack",
        "event_type": "extraction_summary", "timestamp": mongodb::bson::DateTime::now(),
        "payload": {"count": 15},
    });
    docs
}

/// A gateway on the test's database, two collector samples from it (network rates need two)
/// and a reading sync. Returns the gateway and the interface the samples carry.
async fn fill(db: &TestDb, mongo: &MongoServer, data: &Path) -> (Hub, String) {
    let mongo_db = format!("reading_{}", ObjectId::new().to_hex());
    mongo.seed(&mongo_db, "articles", readings()).await;
    let hub = start(db, mongo, &mongo_db, data).await;
    let sysfs = coretemp();
    let spool = TempDir::new().expect("spool");
    for _ in 0..2 {
        let out = collector(&hub.url, spool.path(), TOKEN)
            .args(["--once", "--host-name", HOST, "--sysfs"])
            .arg(sysfs.path())
            .output()
            .expect("run hub-collector");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let client = reqwest::Client::new();
    let sync: Value = client
        .post(format!("{}/api/sync/reading", hub.url))
        .send()
        .await
        .expect("POST sync")
        .json()
        .await
        .expect("JSON");
    assert_eq!(sync["status"], "success", "{sync}");
    let latest: Value = client
        .get(format!("{}/api/metrics/latest?host={HOST}", hub.url))
        .send()
        .await
        .expect("GET latest")
        .json()
        .await
        .expect("JSON");
    let interface = latest["metrics"]["network"]["payload"]
        .as_object()
        .and_then(|n| n.keys().next().cloned())
        .unwrap_or_else(|| panic!("this machine reports no network interface: {latest}"));
    (hub, interface)
}

async fn start(db: &TestDb, mongo: &MongoServer, mongo_db: &str, data: &Path) -> Hub {
    Hub::start_with(
        data,
        "127.0.0.1:0",
        &[
            ("DATABASE_URL", db.url.clone()),
            ("MONGO_URI", mongo.uri()),
            ("MONGO_DB", mongo_db.to_owned()),
        ],
    )
    .await
}

/// Where the originals are at hand (a checkout beside `../shared`), the copies must equal them.
#[test]
fn the_fixtures_are_the_users_dashboards() {
    let Ok(originals) = std::fs::read_dir(ORIGINALS) else {
        eprintln!("{ORIGINALS} is not here; the repository's copies are used as they are");
        return;
    };
    for entry in originals.filter_map(Result::ok) {
        let name = entry.file_name();
        let original = std::fs::read(entry.path()).expect("original");
        let copy = std::fs::read(Path::new(DASHBOARDS).join(&name))
            .unwrap_or_else(|e| panic!("{name:?} has no copy in {DASHBOARDS}: {e}"));
        assert!(
            original == copy,
            "{name:?} differs from {ORIGINALS}: copy it again"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_panel_draws_from_what_the_hub_stores() {
    let (db, mongo, data) = (
        TestDb::create().await,
        MongoServer::start(),
        TempDir::new().expect("data"),
    );
    let (hub, interface) = fill(&db, &mongo, data.path()).await;
    run_dashboards(&db.url, &interface).await;
    hub.stop().await;
}

/// The old hub's tables, exactly as it created them.
const OLD_DDL: &str = "
CREATE TABLE system_metrics (time TIMESTAMPTZ(0) NOT NULL, host TEXT NOT NULL, os TEXT NOT NULL,
  metric_type TEXT NOT NULL, payload JSONB NOT NULL);
CREATE TABLE reading_analytics (id SERIAL PRIMARY KEY, mongo_id TEXT UNIQUE NOT NULL,
  event_timestamp TIMESTAMPTZ, source TEXT, event_type TEXT, payload JSONB, meta JSONB,
  created_at TIMESTAMPTZ DEFAULT NOW());
CREATE TABLE reading_sync_history (id SERIAL PRIMARY KEY, start_time TIMESTAMPTZ NOT NULL,
  end_time TIMESTAMPTZ NOT NULL, status TEXT NOT NULL, processed_count INTEGER NOT NULL,
  error_message TEXT, created_at TIMESTAMPTZ DEFAULT NOW());
";

/// Its rows: a day-old sample of each type, two of them written twice with different payloads
/// (its collector had no unique key), a reading and two history rows.
const OLD_ROWS: &str = "
INSERT INTO system_metrics VALUES
  (now() - interval '1 day', 'server', 'debian 12.7', 'cpu',
   '{\"usage\": 12.5, \"package_temp\": 51, \"core_temps\": {\"core_0\": 48, \"core_1\": 50}}'),
  (now() - interval '1 day', 'server', 'debian 12.7', 'cpu',
   '{\"usage\": 13.5, \"package_temp\": 52, \"core_temps\": {\"core_0\": 49, \"core_1\": 51}}'),
  (now() - interval '1 day', 'server', 'debian 12.7', 'memory',
   '{\"total\": 100, \"available\": 60, \"used\": 40, \"used_percent\": 40}'),
  (now() - interval '1 day', 'server', 'debian 12.7', 'memory',
   '{\"total\": 100, \"available\": 60, \"used\": 40, \"used_percent\": 40}'),
  (now() - interval '1 day', 'server', 'debian 12.7', 'disk',
   '{\"/\": {\"total\": 100, \"used\": 30, \"free\": 70, \"used_percent\": 30}}');
INSERT INTO reading_analytics (mongo_id, event_timestamp, source, event_type, payload, meta)
  VALUES ('65f1c0ffee0000000000abcd', now() - interval '2 days', 'github', 'extraction',
          '{\"domain\": \"github.com\"}', '{}');
INSERT INTO reading_sync_history (start_time, end_time, status, processed_count)
  VALUES (now() - interval '2 days', now() - interval '2 days', 'success', 1),
         (now() - interval '1 day', now() - interval '1 day', 'failure', 0);
";

/// A row of the stand-in's `hubtest_hypertable_calls`: relation, time column, if_not_exists,
/// migrate_data, other arguments set, unique indexes at the call, rows then, outcome.
type HypertableCall = (
    String,
    String,
    bool,
    bool,
    Vec<String>,
    Vec<String>,
    i64,
    String,
);

async fn scalar(conn: &mut PgConnection, sql: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sql).fetch_one(conn).await.expect(sql);
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_adopts_the_old_hubs_database_and_its_hypertable() {
    let (db, mongo, data) = (
        TestDb::create().await,
        MongoServer::start(),
        TempDir::new().expect("data"),
    );
    let mut conn = PgConnection::connect(&db.url).await.expect("connect");
    sqlx::raw_sql(OLD_DDL)
        .execute(&mut conn)
        .await
        .expect("old DDL");
    sqlx::raw_sql(OLD_ROWS)
        .execute(&mut conn)
        .await
        .expect("old rows");
    sqlx::query("CREATE EXTENSION timescaledb")
        .execute(&mut conn)
        .await
        .expect("the TimescaleDB stand-in (make test-deps installs it)");

    let (hub, interface) = fill(&db, &mongo, data.path()).await;

    // TimescaleDB was asked the way it expects, before any unique index existed.
    let calls: Vec<HypertableCall> = sqlx::query_as(
        "SELECT relation, time_column_name, if_not_exists, migrate_data, \
             other_arguments_set, unique_indexes, rows_in_table, outcome \
             FROM hubtest_hypertable_calls ORDER BY n",
    )
    .fetch_all(&mut conn)
    .await
    .expect("calls");
    assert_eq!(
        calls,
        [(
            "system_metrics".to_owned(),
            "time".to_owned(),
            true,
            true,
            vec![],
            vec![],
            5,
            "created".to_owned()
        )]
    );
    // The replay key includes time, leading with (host, time).
    let (index,): (String,) = sqlx::query_as(
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'system_metrics_host_time_type'",
    )
    .fetch_one(&mut conn)
    .await
    .expect("unique index");
    assert!(
        index.contains("UNIQUE") && index.contains("(host, \"time\", metric_type)"),
        "{index}"
    );

    // Nothing lost: the repeated rows moved aside, the first of each stayed.
    let old = "time < now() - interval '12 hours'";
    assert_eq!(
        scalar(
            &mut conn,
            &format!("SELECT COUNT(*) FROM system_metrics WHERE {old}")
        )
        .await,
        3
    );
    assert_eq!(
        scalar(&mut conn, "SELECT COUNT(*) FROM system_metrics_duplicates").await,
        2
    );
    let payloads: Vec<(String,)> = sqlx::query_as(
        "SELECT payload->>'usage' FROM system_metrics WHERE metric_type = 'cpu' AND time < now() - interval '12 hours' \
         UNION ALL SELECT payload->>'usage' FROM system_metrics_duplicates WHERE metric_type = 'cpu'",
    )
    .fetch_all(&mut conn)
    .await
    .expect("cpu payloads");
    let mut usages: Vec<String> = payloads.into_iter().map(|p| p.0).collect();
    usages.sort();
    assert_eq!(usages, ["12.5", "13.5"], "both differing samples kept");
    // Fresh samples went in beside the old ones.
    assert_eq!(
        scalar(
            &mut conn,
            "SELECT COUNT(DISTINCT time) FROM system_metrics WHERE time > now() - interval '1 hour'"
        )
        .await,
        2
    );

    // reading-sync wrote its history in the old table's shape and words, and pages through
    // old rows (32-bit ids) and new ones alike.
    let history: Vec<(String, i32, bool)> = sqlx::query_as(
        "SELECT status, processed_count, end_time >= start_time FROM reading_sync_history ORDER BY id",
    )
    .fetch_all(&mut conn)
    .await
    .expect("history");
    assert_eq!(
        history,
        [
            ("success".to_owned(), 1, true),
            ("failure".to_owned(), 0, true),
            ("success".to_owned(), 16, true)
        ]
    );
    let page: Value = reqwest::get(format!("{}/api/reading?limit=500", hub.url))
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    let items = page["items"].as_array().unwrap_or_else(|| panic!("{page}"));
    assert_eq!(items.len(), 17, "the old row and 16 new ones");
    assert!(
        items
            .iter()
            .any(|i| i["mongo_id"] == "65f1c0ffee0000000000abcd" && i["id"] == 1)
    );

    run_dashboards(&db.url, &interface).await;

    // A second start on the adopted tables changes nothing and fails nothing.
    hub.stop().await;
    let hub = start(&db, &mongo, "unused", data.path()).await;
    let ready = reqwest::get(format!("{}/readyz", hub.url))
        .await
        .expect("GET");
    assert_eq!(
        ready.status(),
        200,
        "{}",
        ready.text().await.unwrap_or_default()
    );
    let outcomes: Vec<(String,)> =
        sqlx::query_as("SELECT outcome FROM hubtest_hypertable_calls ORDER BY n")
            .fetch_all(&mut conn)
            .await
            .expect("calls");
    assert!(
        outcomes.iter().skip(1).all(|o| o.0 == "skipped"),
        "{outcomes:?}"
    );
    assert_eq!(
        scalar(&mut conn, "SELECT COUNT(*) FROM system_metrics_duplicates").await,
        2
    );
    hub.stop().await;
}
