//! A million runs in `hub_runs`: the status page and `/api/runs` still answer, and every run
//! list they read walks an index in order instead of sorting the whole history. (How fast is a
//! benchmark's business; this checks the plans that make it fast.)

#[macro_use]
mod common;

use common::{Backend, Setup, TestApp};
use hub_runtime::Store;
use hub_runtime::store::{RunQuery, list_runs_sql};

const RUNS: i64 = 1_000_000;

/// Fills `hub_runs` with [`RUNS`] rows, one a second going back from now, over three functions.
async fn fill(store: &Store) {
    match store {
        Store::Sqlite(p) => {
            sqlx::query(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) \
                 INSERT INTO hub_runs SELECT 'r' || i, \
                 CASE i % 3 WHEN 0 THEN 'webhook-gitops' WHEN 1 THEN 'metrics-flush' \
                 ELSE 'reading-sync' END, 'http', \
                 strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now', '-' || i || ' seconds'), \
                 5, 'success', 'filler' FROM n",
            )
            .bind(RUNS)
            .execute(p)
            .await
            .expect("fill");
            sqlx::query("ANALYZE").execute(p).await.expect("analyze");
        }
        Store::Postgres(p) => {
            sqlx::query(
                "INSERT INTO hub_runs SELECT 'r' || i, \
                 CASE i % 3 WHEN 0 THEN 'webhook-gitops' WHEN 1 THEN 'metrics-flush' \
                 ELSE 'reading-sync' END, 'http', now() - i * interval '1 second', \
                 5, 'success', 'filler' FROM generate_series(1, $1) AS i",
            )
            .bind(RUNS)
            .execute(p)
            .await
            .expect("fill");
            sqlx::query("ANALYZE hub_runs")
                .execute(p)
                .await
                .expect("analyze");
        }
    }
}

/// The plan of `q`'s query, one line per step.
async fn plan(store: &Store, q: &RunQuery) -> Vec<String> {
    let sql = list_runs_sql(q);
    macro_rules! explain {
        ($p:expr, $prefix:expr, $col:literal) => {{
            let explain = format!("{}{sql}", $prefix);
            let mut query = sqlx::query(&explain);
            if let Some(f) = &q.function {
                query = query.bind(f);
            }
            if let Some(since) = q.since {
                query = query.bind(since);
            }
            let rows = query
                .bind(q.limit)
                .bind(q.offset)
                .fetch_all($p)
                .await
                .expect("explain");
            rows.iter()
                .map(|r| sqlx::Row::get::<String, _>(r, $col))
                .collect()
        }};
    }
    match store {
        Store::Sqlite(p) => explain!(p, "EXPLAIN QUERY PLAN ", "detail"),
        Store::Postgres(p) => explain!(p, "EXPLAIN ", "QUERY PLAN"),
    }
}

async fn a_million_runs_are_read_by_index(backend: Backend) {
    let setup = Setup::new(backend).await;
    let app = TestApp::spawn(&setup).await;
    let store = &app.gateway.ctx.store;
    fill(store).await;

    // The shapes the status page and `/api/runs` read: newest overall, the last day, and the
    // last run of one function.
    let shapes = [
        RunQuery {
            limit: 50,
            ..Default::default()
        },
        RunQuery {
            since: Some(chrono::Utc::now() - chrono::Duration::hours(24)),
            limit: 500,
            ..Default::default()
        },
        RunQuery {
            function: Some("reading-sync".into()),
            limit: 1,
            ..Default::default()
        },
    ];
    for q in &shapes {
        let steps = plan(store, q).await;
        let text = steps.join("\n");
        assert!(!text.is_empty(), "no plan for {q:?}");
        for step in &steps {
            let full_scan = match backend {
                Backend::Sqlite => {
                    step.contains("TEMP B-TREE")
                        || (step.starts_with("SCAN hub_runs") && !step.contains("INDEX"))
                }
                Backend::Postgres => step.contains("Sort") || step.contains("Seq Scan"),
            };
            assert!(!full_scan, "{q:?} sorts or scans the history:\n{text}");
        }
    }

    let page = app.client.get(app.url("/")).send().await.expect("GET /");
    assert_eq!(page.status(), 200);
    let (status, runs) = app
        .get_json("/api/runs?function=webhook-gitops&limit=3")
        .await;
    assert_eq!(status, 200, "{runs}");
    let ids: Vec<&str> = runs
        .as_array()
        .expect("runs")
        .iter()
        .map(|r| r["id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        ids,
        ["r3", "r6", "r9"],
        "the newest webhook-gitops runs, in order"
    );
    app.stop().await;
}

on_both_backends!(a_million_runs_are_read_by_index);
