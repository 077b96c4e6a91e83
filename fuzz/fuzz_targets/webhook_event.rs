//! What a GitHub delivery means (`event::decide`) and the repository-name check, on arbitrary
//! JSON payloads.
//!
//! Checks: neither panics; `ping` is always `Pong` and an unknown event always `Ignore`; a
//! `Sync` names the payload's non-empty `repository.name`; a name `valid_repo_name` accepts is
//! one plain path component (it is joined to the checkout base directory).
//! Input: byte 0 picks the event and the deployed branch, the rest is the payload (inputs that
//! are not JSON only go through `valid_repo_name`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::path::{Component, Path};
use webhook_gitops::event::{Decision, decide, valid_repo_name};

fn check_name(name: &str) {
    if valid_repo_name(name) {
        let mut parts = Path::new(name).components();
        assert!(
            matches!(parts.next(), Some(Component::Normal(_))),
            "{name:?}"
        );
        assert!(parts.next().is_none(), "{name:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let [selector, rest @ ..] = data else {
        return;
    };
    let Ok(payload) = serde_json::from_slice::<Value>(rest) else {
        if let Ok(text) = std::str::from_utf8(rest) {
            check_name(text);
        }
        return;
    };
    // Any other event name: the payload's "event" string if it has one.
    let other = payload
        .get("event")
        .and_then(Value::as_str)
        .unwrap_or("issues");
    let event = ["push", "pull_request", "ping", other][usize::from(selector & 3)];
    let branch = ["main", "dev", "", "refs/heads/main"][usize::from(selector >> 2 & 3)];

    let decision = decide(event, &payload, branch);
    match (&decision, event) {
        (Decision::Pong, "ping") => {}
        (_, "ping") => panic!("ping gave {decision:?}"),
        (Decision::Sync { repository }, "push" | "pull_request") => {
            assert!(!repository.is_empty());
            assert_eq!(
                payload.pointer("/repository/name").and_then(Value::as_str),
                Some(repository.as_str())
            );
            check_name(repository);
        }
        (Decision::Ignore(_), _) => {}
        (Decision::Invalid(_), "push" | "pull_request") => {}
        _ => panic!("{event} gave {decision:?}"),
    }
    if let Some(name) = payload.pointer("/repository/name").and_then(Value::as_str) {
        check_name(name);
    }
});
