//! The gate's state survives a restart, in the embedded store and in PostgreSQL.

mod common;

use common::{Env, Ready, scheduled};
use hub_testkit::TestDb;
use serde_json::json;

async fn streak_and_open_state_survive(env: Env) {
    let (gate, ctx) = env.gate().await;
    scheduled(&gate, &ctx).await.expect("first healthy check");
    drop((gate, ctx));

    // A new process: the first healthy check of it is the second in a row.
    let (gate, ctx) = env.gate().await;
    let summary = scheduled(&gate, &ctx).await.expect("check after restart");
    assert!(summary.starts_with("opened"), "{summary}");
    drop((gate, ctx));

    let (gate, ctx) = env.gate().await;
    let st = gate.state().await.expect("state");
    assert!(st.open, "open across the restart");
    assert_eq!(st.changes.len(), 1);
    env.api.clear_calls();
    scheduled(&gate, &ctx).await.expect("check");
    assert!(
        env.api.posts().is_empty(),
        "nothing to redo after a restart"
    );

    env.ready(Ready::No);
    scheduled(&gate, &ctx).await.expect("close");
    assert_eq!(
        env.api.config(),
        json!({}),
        "the restarted gate knows what it published"
    );
}

#[tokio::test]
async fn restart_keeps_the_state_in_sqlite() {
    streak_and_open_state_survive(Env::new().await).await;
}

#[tokio::test]
async fn restart_keeps_the_state_in_postgres() {
    let db = TestDb::create().await;
    streak_and_open_state_survive(Env::new().await.set("DATABASE_URL", &db.url)).await;
}
