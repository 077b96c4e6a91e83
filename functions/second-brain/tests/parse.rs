//! Table tests of the parsing rules on realistic journal bodies (see `second_brain::parse`).

use chrono::NaiveDate;
use second_brain::parse::{Entry, entries, tags_of, token_count};

const PARA: &str = include_str!("fixtures/journal-para.md");

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 30).expect("date")
}

fn pairs(found: &[Entry]) -> Vec<(&str, &str)> {
    found
        .iter()
        .map(|e| (e.category, e.content.as_str()))
        .collect()
}

/// What `journal-para.md` holds, in order.
const EXPECTED: &[(&str, &str)] = &[
    (
        "project",
        "Migrated the hub's reading-sync to Rust; batches of 500 now commit in one transaction",
    ),
    ("project", "nested: per-category panel with a COUNT query"),
    ("project", "another nested one, with a star marker"),
    ("project", "Grafana dashboard for second_brain entries"),
    ("project", "Deployed to k3s with a helm chart at last"),
    ("area", "Health: ran 5k 🏃 before work"),
    ("area", "Career: 1:1 with my mentor about the promotion"),
    (
        "resource",
        "Read \"Designing Data-Intensive Applications\" ch. 5 (replication) 📚 Second line of the same bullet, soft-wrapped.",
    ),
    (
        "resource",
        "Incident review: our SLO alert fired late, the on-call runbook needs an update",
    ),
    ("archive", "Old Terraform notes moved to the archive"),
];

#[test]
fn a_para_journal_gives_one_entry_per_bullet() {
    let found = entries(day(), PARA);
    assert_eq!(pairs(&found), EXPECTED);
}

#[test]
fn crlf_line_ends_give_the_same_entries() {
    let crlf = PARA.replace('\n', "\r\n");
    assert_eq!(entries(day(), &crlf), entries(day(), PARA));
}

#[test]
fn an_entry_carries_context_checksum_and_tokens_as_the_old_job_wrote_them() {
    let found = entries(day(), PARA);
    let e = found
        .iter()
        .find(|e| e.content == "Grafana dashboard for second_brain entries")
        .expect("entry");
    assert_eq!(e.tags, ["observability"]);
    assert_eq!(
        e.context_string,
        "Date: 2026-11-30 | Category: project | Tags: observability | Content: Grafana dashboard for second_brain entries"
    );
    // sha256sum of the content, computed outside the crate.
    assert_eq!(
        e.checksum,
        "6b9287555562f9f9c9776a8a6d341315bd2016fe556c75ace4bf98fbbd59f0e1"
    );
    // 5 words: ⌊5 × 1.33⌋ + 1.
    assert_eq!(e.token_count, 7);
    let deploy = &found[4];
    assert_eq!(deploy.tags, ["kubernetes"]);
    let incident = &found[8];
    assert_eq!(incident.tags, ["sre"], "{incident:?}");
}

#[test]
fn token_counts_follow_the_formula() {
    for (text, tokens) in [("one", 2), ("two words", 3), ("a b c", 4), ("", 1)] {
        assert_eq!(token_count(text), tokens, "{text:?}");
    }
    // 100 words: ⌊133⌋ + 1.
    assert_eq!(token_count(&"word ".repeat(100)), 134);
}

#[test]
fn tags_match_whole_words_and_fall_back_to_random() {
    let cases: &[(&str, &[&str])] = &[
        ("Tried RAG for AI search", &["ai"]),
        ("maintain the garden", &["random"]),
        (
            "Postgres query plans in Grafana",
            &["observability", "database"],
        ),
        (
            "CI/CD with GitHub Actions deploying to AWS Lambda",
            &["devops", "cloud"],
        ),
        ("KUBERNETES upgrade, k3s 1.31", &["kubernetes"]),
        ("Wrote some Rust on Debian", &["language", "linux"]),
        ("on-call week went fine", &["sre"]),
        ("Pomodoro focus blocks", &["productivity"]),
        ("interview prep", &["career"]),
        ("platform engineering meetup", &["platform"]),
        ("email", &["random"]),
        ("🧠 brain dump", &["random"]),
    ];
    for (text, tags) in cases {
        assert_eq!(tags_of(text), *tags, "{text:?}");
    }
}

#[test]
fn edge_cases_of_the_rules() {
    /// Why, the body, the `(category, content)` pairs expected.
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);
    let cases: &[Case] = &[
        (
            "nothing before a section header",
            "- loose\n## Project\n- kept",
            &[("project", "kept")],
        ),
        (
            "exact header only",
            "## Projects\n- no\n## project\n- no",
            &[],
        ),
        (
            "header with trailing spaces",
            "## Area   \n- yes",
            &[("area", "yes")],
        ),
        (
            "a rule ends capture",
            "## Area\n- a\n\n***\n\n- b",
            &[("area", "a")],
        ),
        (
            "a new section after a rule",
            "## Area\n- a\n---\n## Archive\n- b",
            &[("area", "a"), ("archive", "b")],
        ),
        (
            "tasks skipped, not their children",
            "## Project\n- [ ] task\n  - child",
            &[("project", "child")],
        ),
        (
            "empty and whitespace bullets",
            "## Project\n-\n- \n*   \n- x",
            &[("project", "x")],
        ),
        (
            "unclosed comment hides the rest",
            "## Project\n- a\n<!-- draft\n- b",
            &[("project", "a")],
        ),
        (
            "fenced code inside an item",
            "## Project\n- a\n  ```\n  - not\n  ```",
            &[("project", "a")],
        ),
        (
            "html block",
            "## Project\n<details>\n\n- inside details\n\n</details>",
            &[("project", "inside details")],
        ),
        (
            "plus marker",
            "## Resource\n+ plus",
            &[("resource", "plus")],
        ),
        (
            "ordered list",
            "## Resource\n1. first",
            &[("resource", "first")],
        ),
        ("emoji only", "## Thought\n- 🎉", &[("resource", "🎉")]),
        ("empty body", "", &[]),
    ];
    for (why, body, want) in cases {
        let found = entries(day(), body);
        assert_eq!(pairs(&found), *want, "{why}: {body:?}");
    }
}

#[test]
fn four_hundred_bullets_give_four_hundred_entries() {
    let mut body = String::from("## Project\n");
    for i in 0..400 {
        body.push_str(&format!("- entry number {i} about postgres\n"));
        if i % 50 == 49 {
            body.push_str("  - [x] a done task under it\n");
        }
    }
    let found = entries(day(), &body);
    assert_eq!(found.len(), 400);
    assert_eq!(found[399].content, "entry number 399 about postgres");
    let sums: std::collections::HashSet<&str> = found.iter().map(|e| e.checksum.as_str()).collect();
    assert_eq!(sums.len(), 400, "distinct contents, distinct checksums");
    assert!(found.iter().all(|e| e.tags == ["database"]));
}
