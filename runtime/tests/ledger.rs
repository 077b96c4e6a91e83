//! SQLite's replay keys without a unique index (migration 0005): the writer finds keys through
//! an in-memory index, so what it knows must match the table whatever else writes the file.
//! Keys claimed before a restart, by another process, or before the upgrade are replays; an
//! index entry whose row was deleted does not turn the key away.

use hub_runtime::store::{Writer, WriterConfig};
use hub_runtime::{HubConfig, Source, Store};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

const SCOPE: &str = "ledger-test";

async fn open(dir: &Path) -> Store {
    let env = HashMap::from([
        ("HUB_DATA_DIR".to_owned(), dir.display().to_string()),
        ("HUB_CONFIG".to_owned(), "/dev/null".to_owned()),
    ]);
    let hub = HubConfig::from_source(&Source::from_parts(None, env).expect("source")).expect("hub");
    Store::connect(&hub).await.expect("store")
}

/// Another process's view of the same file: a pool of its own.
async fn raw(dir: &Path) -> SqlitePool {
    let opts = SqliteConnectOptions::new()
        .filename(dir.join("hub.db"))
        .busy_timeout(Duration::from_secs(10));
    SqlitePool::connect_with(opts).await.expect("raw pool")
}

fn writer(store: &Store) -> Writer {
    Writer::start(store.clone(), WriterConfig::default())
}

async fn claim(w: &Writer, keys: &[&str]) -> bool {
    w.claim_keys(SCOPE, "repo", keys).await.expect("claim")
}

async fn pending(store: &Store) -> BTreeSet<String> {
    let keys = store.pending_keys(SCOPE, "repo").await.expect("pending");
    keys.into_iter().collect()
}

fn set(keys: &[&str]) -> BTreeSet<String> {
    keys.iter().map(|k| (*k).to_owned()).collect()
}

#[tokio::test]
async fn keys_claimed_before_a_restart_are_replays_after_it() {
    let dir = tempfile::TempDir::new().expect("dir");
    {
        let store = open(dir.path()).await;
        let w = writer(&store);
        assert!(claim(&w, &["delivery:1", "body:1"]).await);
        assert!(claim(&w, &["delivery:2"]).await);
        w.settle_keys(SCOPE, &["delivery:2".to_owned()], true)
            .await
            .expect("settle");
    }
    let store = open(dir.path()).await;
    let w = writer(&store);
    // As the gateway does at start; the claims below find the keys either way.
    w.load_keys().await.expect("load keys");
    assert!(
        !claim(&w, &["delivery:1"]).await,
        "pending before the restart"
    );
    assert!(!claim(&w, &["delivery:2"]).await, "done before the restart");
    assert!(!claim(&w, &["delivery:3", "body:1"]).await, "one old key");
    assert!(claim(&w, &["delivery:3"]).await, "a new key");
    w.settle_keys(SCOPE, &["delivery:1".to_owned(), "body:1".to_owned()], true)
        .await
        .expect("settle old keys");
    assert_eq!(pending(&store).await, set(&["delivery:3"]));
}

#[tokio::test]
async fn keys_another_process_claims_are_seen_by_this_one() {
    let dir = tempfile::TempDir::new().expect("dir");
    let (here, there) = (open(dir.path()).await, open(dir.path()).await);
    let (w_here, w_there) = (writer(&here), writer(&there));
    // Both indexes are loaded before the other side writes.
    assert!(claim(&w_here, &["delivery:1"]).await);
    assert!(claim(&w_there, &["delivery:2"]).await);
    assert!(!claim(&w_here, &["delivery:2"]).await, "claimed there");
    assert!(!claim(&w_there, &["delivery:1"]).await, "claimed here");
    // A key claimed there is settled here, and a redelivery there sees it failed.
    assert!(claim(&w_there, &["delivery:3"]).await);
    w_here
        .settle_keys(SCOPE, &["delivery:3".to_owned()], false)
        .await
        .expect("settle");
    assert!(claim(&w_there, &["delivery:3"]).await, "failed here");
    assert!(
        !claim(&w_here, &["delivery:3"]).await,
        "pending again there"
    );
}

#[tokio::test]
async fn a_key_whose_row_was_deleted_elsewhere_is_new_again() {
    let dir = tempfile::TempDir::new().expect("dir");
    let store = open(dir.path()).await;
    let w = writer(&store);
    assert!(claim(&w, &["delivery:1"]).await);
    assert!(claim(&w, &["delivery:2"]).await);
    // What the clean-up of old keys does, behind the writer's back.
    let other = raw(dir.path()).await;
    sqlx::query("DELETE FROM hub_seen_keys WHERE key = 'delivery:1'")
        .execute(&other)
        .await
        .expect("delete");
    assert!(claim(&w, &["delivery:1"]).await, "its row is gone");
    assert!(!claim(&w, &["delivery:1"]).await, "and claimed again");
    assert!(!claim(&w, &["delivery:2"]).await, "untouched");
    assert_eq!(pending(&store).await, set(&["delivery:1", "delivery:2"]));
}

/// The ledger's migration keeps every key and its state: a store written before it (migrations
/// 1-4, keys done, pending and failed) answers replays as it did.
#[tokio::test]
async fn keys_recorded_before_the_upgrade_keep_their_meaning() {
    let dir = tempfile::TempDir::new().expect("dir");
    let opts = SqliteConnectOptions::new()
        .filename(dir.path().join("hub.db"))
        .create_if_missing(true);
    let old = SqlitePool::connect_with(opts).await.expect("old store");
    let mut before = sqlx::migrate!("./migrations/sqlite");
    let migrations: Vec<_> = before.iter().filter(|m| m.version < 5).cloned().collect();
    assert_eq!(migrations.len(), 4, "migrations 1-4");
    before.migrations = migrations.into();
    before.run(&old).await.expect("migrations 1-4");
    for (key, state) in [
        ("done", "done"),
        ("pending", "pending"),
        ("failed", "failed"),
    ] {
        sqlx::query(
            "INSERT INTO hub_seen_keys (scope, key, seen_at, subject, state) \
             VALUES ($1, $2, '2026-12-01T00:00:00Z', 'repo', $3)",
        )
        .bind(SCOPE)
        .bind(key)
        .bind(state)
        .execute(&old)
        .await
        .expect("old key");
    }
    old.close().await;

    let store = open(dir.path()).await;
    assert_eq!(pending(&store).await, set(&["pending"]));
    let w = writer(&store);
    assert!(!claim(&w, &["done"]).await);
    assert!(!claim(&w, &["pending"]).await);
    assert!(claim(&w, &["failed"]).await, "a failed delivery runs again");
    assert_eq!(pending(&store).await, set(&["failed", "pending"]));
}
