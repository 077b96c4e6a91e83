//! `cargo bench -p hub-runtime --bench runs`: run rows per second into each store, written the
//! old way (one INSERT, one transaction per run) and through the store's writer (group commit),
//! by `BENCH_CONCURRENCY` tasks at once (default 16, as `wrk -c16` drives the gateway), for
//! `BENCH_ROWS` rows (default 20,000) per way, side by side in the same run. Ways:
//!
//! - `one-per-transaction`: `Store::insert_run`, what every request did before;
//! - `writer, queued`: `Writer::queue_run` then one `flush`, as the gateway records runs;
//! - `writer, awaited`: `Writer::commit_run`, each task waiting for its row's commit, as a
//!   webhook waits for its replay keys (and Lambda for its run rows).
//!
//! PostgreSQL is the test server (`TEST_PG_ADMIN_URL`, default 127.0.0.1:5432, a database of its
//! own); SQLite is the embedded store in a temporary directory. Prints a Markdown table, and
//! appends each way's runs/s to `BENCH_RESULTS` for `make bench`'s report (series
//! `single-STORE`, `batched-STORE`, `awaited-STORE`).

use chrono::Utc;
use hub_runtime::store::{RunRow, Writer, WriterConfig};
use hub_runtime::{HubConfig, Source, Store};
use hub_testkit::TestDb;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
enum Way {
    OnePerTransaction,
    Queued,
    Awaited,
}

impl Way {
    fn label(self) -> &'static str {
        match self {
            Way::OnePerTransaction => "one-per-transaction",
            Way::Queued => "writer, queued",
            Way::Awaited => "writer, awaited",
        }
    }

    /// The report's name for this way on `backend`.
    fn series(self, backend: &str) -> String {
        let way = match self {
            Way::OnePerTransaction => "single",
            Way::Queued => "batched",
            Way::Awaited => "awaited",
        };
        format!("{way}-{backend}")
    }
}

async fn open(dir: &std::path::Path, url: Option<&str>) -> Store {
    let mut env = HashMap::from([
        ("HUB_DATA_DIR".to_owned(), dir.display().to_string()),
        ("HUB_CONFIG".to_owned(), "/dev/null".to_owned()),
    ]);
    if let Some(url) = url {
        env.insert("DATABASE_URL".to_owned(), url.to_owned());
    }
    let hub = HubConfig::from_source(&Source::from_parts(None, env).expect("source")).expect("hub");
    Store::connect(&hub).await.expect("store")
}

/// A run row as the hub records one: a time-ordered (UUIDv7) id, as `Runs` gives every run.
fn row(i: usize) -> RunRow {
    RunRow {
        id: uuid::Uuid::now_v7().to_string(),
        function: "webhook-gitops".to_owned(),
        trigger: "http".to_owned(),
        started_at: Utc::now(),
        duration_ms: 1,
        outcome: "success".to_owned(),
        summary: format!("202 accepted: bench sync started ({i})"),
    }
}

/// Writes `n` rows `way`, from `tasks` tasks at once; the time until all are committed.
async fn measure(store: &Store, way: Way, n: usize, tasks: usize) -> Duration {
    let writer = Writer::start(store.clone(), WriterConfig::default());
    let next = Arc::new(AtomicUsize::new(0));
    let clock = Instant::now();
    let workers: Vec<_> = (0..tasks)
        .map(|_| {
            let (store, writer, next) = (store.clone(), writer.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return;
                    }
                    let row = row(i);
                    match way {
                        Way::OnePerTransaction => store.insert_run(&row).await,
                        Way::Queued => writer.queue_run(row).await,
                        Way::Awaited => writer.commit_run(row).await,
                    }
                    .expect("write");
                }
            })
        })
        .collect();
    for w in workers {
        w.await.expect("worker");
    }
    writer.flush().await.expect("flush");
    clock.elapsed()
}

async fn stored(store: &Store) -> i64 {
    let sql = "SELECT COUNT(*) FROM hub_runs";
    let (count,): (i64,) = hub_runtime::on_pool!(store, |p| sqlx::query_as(sql)
        .fetch_one(p)
        .await
        .expect("count"));
    count
}

#[tokio::main]
async fn main() {
    // `cargo test --all-targets` runs bench targets too, without `--bench`: then only check
    // that the harness works, on a few rows.
    let benching = std::env::args().any(|a| a == "--bench");
    let setting = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let n = setting("BENCH_ROWS", if benching { 20_000 } else { 50 });
    let tasks = setting("BENCH_CONCURRENCY", 16).max(1);
    let dir = tempfile::TempDir::new().expect("dir");
    let db = TestDb::create().await;
    println!("\nrun rows into the store: {n} rows per way, {tasks} tasks writing at once\n");
    println!("| store | way | time | runs/s | × one-per-transaction |");
    println!("|---|---|---|---|---|");
    for backend in ["sqlite", "postgres"] {
        let mut baseline = None;
        for way in [Way::OnePerTransaction, Way::Queued, Way::Awaited] {
            // A fresh store per way, so no way writes into a table another one filled.
            let sub = dir.path().join(format!("{backend}-{}", way.label()));
            let store = match backend {
                "sqlite" => open(&sub, None).await,
                _ => {
                    let store = open(&sub, Some(&db.url)).await;
                    hub_runtime::on_pool!(&store, |p| sqlx::query("TRUNCATE hub_runs")
                        .execute(p)
                        .await
                        .map(|_| ())
                        .expect("truncate"));
                    store
                }
            };
            let time = measure(&store, way, n, tasks).await;
            assert_eq!(stored(&store).await, n as i64, "{backend} {}", way.label());
            let rate = n as f64 / time.as_secs_f64();
            let base = *baseline.get_or_insert(rate);
            if benching {
                hub_testkit::bench::record("runs_per_s", &way.series(backend), rate);
            }
            println!(
                "| {backend} | {} | {:.2} s | {rate:.0} | {:.1}× |",
                way.label(),
                time.as_secs_f64(),
                rate / base
            );
        }
    }
}
