//! Sync runs against the GitHub stand-in, on PostgreSQL and on SQLite: pagination by `Link`,
//! the delta by date titles, idempotence, and what a run does when GitHub limits, fails or
//! stalls.

mod common;

use common::{Backend, Env, REPO, TOKEN, count, day_body, history, today};
use hub_testkit::github::{Fault, NewIssue, REPO_ID};

/// Both backends, one test each.
macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread")]
            async fn postgres() {
                super::$name(super::Backend::Postgres).await;
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn sqlite() {
                super::$name(super::Backend::Sqlite).await;
            }
        }
    };
}

on_both!(pages_through_the_journal_and_ingests_only_what_is_new);
async fn pages_through_the_journal_and_ingests_only_what_is_new(backend: Backend) {
    let env = Env::new(backend).await;
    // 230 days of journal: three pages of 100.
    for n in (1..=230).rev() {
        env.journal(n, &day_body(n));
    }
    env.github.add(NewIssue::journal(
        "weekly review",
        "## Project\n- not a date title",
    ));
    let mut pr = NewIssue::journal(&today().to_string(), "## Project\n- a pull request");
    pr.pull_request = true;
    env.github.add(pr);
    let mut other = NewIssue::journal(&today().to_string(), "## Project\n- not labelled");
    other.labels = vec!["bug".into()];
    env.github.add(other);

    let f = env.function().await;
    let report = f.run_once().await;
    assert!(report.error.is_none(), "{:?}", report.error);
    assert_eq!(report.synced.issues, 230);
    assert_eq!(
        report.synced.processed, 460,
        "two entries a day, tasks left out"
    );
    assert_eq!(report.synced.skipped, 1, "the title that is not a date");
    let store = f.store().await.expect("store");
    assert_eq!(count(store).await, 460);

    let reqs = env.github.requests();
    assert_eq!(reqs.len(), 3, "one request per page: {reqs:#?}");
    assert_eq!(
        reqs[0].target,
        format!(
            "/repos/{REPO}/issues?labels=journal&state=all&per_page=100&sort=created&direction=desc"
        )
    );
    for (i, r) in reqs.iter().enumerate().skip(1) {
        assert!(
            r.target
                .starts_with(&format!("/repositories/{REPO_ID}/issues?"))
                && r.target.ends_with(&format!("page={}", i + 1)),
            "page {} follows the Link header: {}",
            i + 1,
            r.target
        );
    }
    for r in &reqs {
        assert_eq!(
            r.authorization.as_deref(),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        assert_eq!(r.accept.as_deref(), Some("application/vnd.github+json"));
        assert!(
            r.user_agent.is_some(),
            "GitHub refuses requests without one"
        );
        assert_eq!(r.status, 200);
    }

    // Again: nothing new.
    let again = f.run_once().await;
    assert!(again.error.is_none(), "{:?}", again.error);
    assert_eq!((again.synced.processed, again.synced.issues), (0, 0));
    assert_eq!(count(store).await, 460);

    // Tomorrow's issue repeats yesterday's first bullet: only its other entry is new.
    let tomorrow = today() + chrono::Duration::days(1);
    env.github.add(NewIssue::journal(
        &tomorrow.to_string(),
        "## Project\n- day 1: tuned a postgres index\n- wrote the second-brain README\n",
    ));
    let third = f.run_once().await;
    assert!(third.error.is_none(), "{:?}", third.error);
    assert_eq!(third.synced.issues, 1, "only the new dated issue is read");
    assert_eq!(third.synced.processed, 1);
    assert_eq!(third.synced.duplicates, 1, "the same bullet is stored once");
    assert_eq!(count(store).await, 461);

    let rows = history(store).await;
    assert_eq!(
        rows,
        vec![
            ("success".to_owned(), 460, None),
            ("success".to_owned(), 0, None),
            ("success".to_owned(), 1, None),
        ]
    );
}

on_both!(a_rate_limit_answer_is_waited_out_within_the_bound);
async fn a_rate_limit_answer_is_waited_out_within_the_bound(backend: Backend) {
    let env = Env::new(backend).await;
    env.journal(1, &day_body(1));
    env.github.queue(&[Fault::RetryAfter(1)]);
    let f = env.function().await;
    let report = f.run_once().await;
    assert!(report.error.is_none(), "{:?}", report.error);
    assert_eq!(report.synced.processed, 2);
    let statuses: Vec<u16> = env.github.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [403, 200], "waited, then asked once more");
}

on_both!(a_rate_limit_beyond_the_bound_stops_the_run_without_hammering);
async fn a_rate_limit_beyond_the_bound_stops_the_run_without_hammering(backend: Backend) {
    let env = Env::new(backend).await.set("GITHUB_MAX_WAIT_SECS", 30);
    env.journal(1, &day_body(1));
    env.github.queue(&[Fault::RetryAfter(600)]);
    let f = env.function().await;
    let report = f.run_once().await;
    let err = report.error.as_ref().expect("stopped");
    let text = err.to_string();
    assert!(
        text.contains("rate limit")
            && text.contains("600 s")
            && text.contains("GITHUB_MAX_WAIT_SECS"),
        "{text}"
    );
    assert_eq!(env.github.requests().len(), 1, "no second request");
    let store = f.store().await.expect("store");
    assert_eq!(count(store).await, 0);
    let rows = history(store).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, "failure");
    assert!(
        rows[0]
            .2
            .as_deref()
            .is_some_and(|e| e.contains("rate limit"))
    );
}

on_both!(an_exhausted_window_stops_before_the_next_page);
async fn an_exhausted_window_stops_before_the_next_page(backend: Backend) {
    let env = Env::new(backend).await;
    for n in (1..=150).rev() {
        env.journal(n, &day_body(n));
    }
    // Page 1 arrives with no requests left for an hour.
    env.github.queue(&[Fault::Exhausted(3600)]);
    let f = env.function().await;
    let report = f.run_once().await;
    let text = report.error.as_ref().expect("stopped").to_string();
    assert!(text.contains("rate limit"), "{text}");
    assert_eq!(env.github.requests().len(), 1, "page 2 is not asked for");
    assert_eq!(count(f.store().await.expect("store")).await, 0);
}

on_both!(a_server_error_fails_the_run_and_the_next_run_catches_up);
async fn a_server_error_fails_the_run_and_the_next_run_catches_up(backend: Backend) {
    let env = Env::new(backend).await;
    for n in (1..=120).rev() {
        env.journal(n, &day_body(n));
    }
    // Page 1 fine, page 2 fails.
    env.github.queue(&[Fault::None, Fault::ServerError]);
    let f = env.function().await;
    let report = f.run_once().await;
    let text = report.error.as_ref().expect("failed").to_string();
    assert_eq!(
        text,
        "GitHub answered 500 Internal Server Error for page 2: Server Error"
    );
    let store = f.store().await.expect("store");
    assert_eq!(count(store).await, 0, "nothing half-read is stored");
    let next = f.run_once().await;
    assert!(next.error.is_none(), "{:?}", next.error);
    assert_eq!(next.synced.processed, 240);
    let rows = history(store).await;
    assert_eq!(rows[0].0, "failure");
    assert_eq!(rows[0].2.as_deref(), Some(text.as_str()));
    assert_eq!(rows[1], ("success".to_owned(), 240, None));
}

on_both!(a_slow_answer_times_out);
async fn a_slow_answer_times_out(backend: Backend) {
    let env = Env::new(backend).await.set("GITHUB_TIMEOUT_SECS", 1);
    env.journal(1, &day_body(1));
    env.github
        .queue(&[Fault::Slow(std::time::Duration::from_secs(5))]);
    let f = env.function().await;
    let report = f.run_once().await;
    let text = report.error.as_ref().expect("timed out").to_string();
    assert_eq!(text, "GitHub timed out after 1s (GITHUB_TIMEOUT_SECS)");
    assert_eq!(count(f.store().await.expect("store")).await, 0);
}

#[tokio::test]
async fn without_a_repository_it_is_not_configured_and_writes_nothing() {
    let env = Env::new(Backend::Sqlite).await;
    let mut env = env;
    env.settings.remove("JOURNAL_REPO");
    let f = env.function().await;
    use hub_runtime::Function;
    assert_eq!(f.configured(), Err("JOURNAL_REPO is not set".to_owned()));
    let report = f.run_once().await;
    assert!(matches!(
        report.error,
        Some(second_brain::BrainError::NotConfigured)
    ));
    assert!(env.github.requests().is_empty());
}
