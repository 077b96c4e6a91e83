//! Which GitHub events trigger a sync. Pure: a table of cases tests it, and the real example
//! payloads from `@octokit/webhooks-examples` run through it in the integration tests.

use serde_json::Value;

/// What to do with one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// `ping`: GitHub checking the hook works.
    Pong,
    /// Sync the named repository.
    Sync { repository: String },
    /// Nothing to do, and why.
    Ignore(String),
    /// The payload lacks what the event needs.
    Invalid(String),
}

/// Decides what `event` (the `X-GitHub-Event` header) with `payload` means for `branch`.
pub fn decide(event: &str, payload: &Value, branch: &str) -> Decision {
    match event {
        "ping" => Decision::Pong,
        "push" => {
            let Some(git_ref) = payload.get("ref").and_then(Value::as_str) else {
                return Decision::Invalid("push event without ref".into());
            };
            let wanted = format!("refs/heads/{branch}");
            if git_ref != wanted {
                return Decision::Ignore(format!("push to {git_ref}, not {wanted}"));
            }
            if payload.get("deleted").and_then(Value::as_bool) == Some(true) {
                return Decision::Ignore(format!("push deleted {git_ref}"));
            }
            repository(payload)
        }
        "pull_request" => {
            let action = payload.get("action").and_then(Value::as_str).unwrap_or("");
            if action != "closed" {
                return Decision::Ignore(format!("pull_request action {action:?}, not closed"));
            }
            let pr = payload.get("pull_request");
            let merged = pr.and_then(|p| p.get("merged")).and_then(Value::as_bool);
            if merged != Some(true) {
                return Decision::Ignore("pull request closed without merging".into());
            }
            let base = pr
                .and_then(|p| p.pointer("/base/ref"))
                .and_then(Value::as_str)
                .unwrap_or("");
            if base != branch {
                return Decision::Ignore(format!(
                    "pull request merged into {base:?}, not {branch:?}"
                ));
            }
            repository(payload)
        }
        other => Decision::Ignore(format!("event {other:?} is not handled")),
    }
}

fn repository(payload: &Value) -> Decision {
    match payload.pointer("/repository/name").and_then(Value::as_str) {
        Some(name) if !name.is_empty() => Decision::Sync {
            repository: name.to_owned(),
        },
        _ => Decision::Invalid("repository name missing".into()),
    }
}

/// A repository name that is safe to join to the base directory: `[A-Za-z0-9._-]+`, and not
/// `.` or `..`.
pub fn valid_repo_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sync(name: &str) -> Decision {
        Decision::Sync {
            repository: name.into(),
        }
    }

    #[test]
    fn table() {
        let repo = json!({"name": "infra"});
        let cases = [
            ("ping", json!({"zen": "x"}), "main", Decision::Pong),
            (
                "push",
                json!({"ref": "refs/heads/main", "repository": repo}),
                "main",
                sync("infra"),
            ),
            (
                "push",
                json!({"ref": "refs/heads/prod", "repository": repo}),
                "prod",
                sync("infra"),
            ),
            (
                "push",
                json!({"ref": "refs/heads/dev", "repository": repo}),
                "main",
                Decision::Ignore("push to refs/heads/dev, not refs/heads/main".into()),
            ),
            (
                "push",
                json!({"ref": "refs/tags/main", "repository": repo}),
                "main",
                Decision::Ignore("push to refs/tags/main, not refs/heads/main".into()),
            ),
            (
                "push",
                json!({"ref": "refs/heads/main", "deleted": true, "repository": repo}),
                "main",
                Decision::Ignore("push deleted refs/heads/main".into()),
            ),
            (
                "push",
                json!({"repository": repo}),
                "main",
                Decision::Invalid("push event without ref".into()),
            ),
            (
                "push",
                json!({"ref": "refs/heads/main"}),
                "main",
                Decision::Invalid("repository name missing".into()),
            ),
            (
                "push",
                json!({"ref": "refs/heads/main", "repository": {"name": ""}}),
                "main",
                Decision::Invalid("repository name missing".into()),
            ),
            (
                "pull_request",
                json!({"action": "closed", "pull_request": {"merged": true, "base": {"ref": "main"}}, "repository": repo}),
                "main",
                sync("infra"),
            ),
            (
                "pull_request",
                json!({"action": "closed", "pull_request": {"merged": false, "base": {"ref": "main"}}, "repository": repo}),
                "main",
                Decision::Ignore("pull request closed without merging".into()),
            ),
            (
                "pull_request",
                json!({"action": "opened", "pull_request": {"merged": false, "base": {"ref": "main"}}, "repository": repo}),
                "main",
                Decision::Ignore("pull_request action \"opened\", not closed".into()),
            ),
            (
                "pull_request",
                json!({"action": "closed", "pull_request": {"merged": true, "base": {"ref": "dev"}}, "repository": repo}),
                "main",
                Decision::Ignore("pull request merged into \"dev\", not \"main\"".into()),
            ),
            (
                "issues",
                json!({"action": "opened"}),
                "main",
                Decision::Ignore("event \"issues\" is not handled".into()),
            ),
        ];
        for (event, payload, branch, want) in cases {
            assert_eq!(decide(event, &payload, branch), want, "{event} {payload}");
        }
    }

    #[test]
    fn repo_names() {
        for ok in ["infra", "my-repo", "a.b_c-9", "x"] {
            assert!(valid_repo_name(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../etc",
            "a b",
            "a\0b",
            "ä",
            "repo;rm",
            &"x".repeat(101),
        ] {
            assert!(!valid_repo_name(bad), "{bad:?}");
        }
    }
}
