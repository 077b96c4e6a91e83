//! A journal issue body → atomic entries. The rules are the old job's, applied to the Markdown
//! tree (pulldown-cmark) instead of to lines, so nested lists, CRLF line ends and code blocks
//! cannot produce half-entries:
//!
//! - HTML comments (`<!-- … -->`, the issue template's hints) are removed first; an unclosed
//!   one runs to the end of the body, as in a browser.
//! - Capture starts at a level-2 heading whose text is exactly `Project` (category `project`),
//!   `Area` (`area`), `Resource` (`resource`), `Archive` (`archive`) or `Thought`
//!   (`resource`). Any other level-2 heading stops it; so does a thematic break (a `---` line;
//!   `***` and `___` are the same Markdown element). Other heading levels change nothing.
//! - Inside a section each list item is one entry: its own text (inline code, links and
//!   emphasis as plain text, line breaks as spaces, whitespace collapsed), without its nested
//!   lists, which are entries of their own. The marker (`-`, `*`, or `+`) is not part of it.
//! - Task items (`- [ ]`, `- [x]`) are skipped; paragraphs outside lists, code blocks (fenced
//!   or indented, also inside an item), tables and HTML never make entries. Empty items are
//!   dropped.

use chrono::NaiveDate;
use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use sha2::{Digest, Sha256};

/// The section headings that start capture, and the category each one files under.
pub const SECTIONS: &[(&str, &str)] = &[
    ("Project", "project"),
    ("Area", "area"),
    ("Resource", "resource"),
    ("Archive", "archive"),
    // The old job filed thoughts with resources; dashboards count them there.
    ("Thought", "resource"),
];

/// Tag groups: an entry gets every tag one of whose keywords it contains, in this order, and
/// `["random"]` when none matches. A keyword matches case-insensitively as a whole word or
/// phrase: the characters around it are not letters or digits ("ai" in "a RAG pipeline for AI"
/// but not in "maintain"). Words too common to mean a topic ("go", "pod" alone) are left out.
pub const TAGS: &[(&str, &[&str])] = &[
    (
        "ai",
        &[
            "ai",
            "llm",
            "llms",
            "gpt",
            "claude",
            "openai",
            "rag",
            "embedding",
            "embeddings",
            "machine learning",
            "prompt",
            "agent",
            "agents",
        ],
    ),
    (
        "observability",
        &[
            "observability",
            "grafana",
            "prometheus",
            "loki",
            "tempo",
            "otel",
            "opentelemetry",
            "tracing",
            "traces",
            "metrics",
            "logs",
            "dashboard",
            "dashboards",
            "alerting",
        ],
    ),
    (
        "kubernetes",
        &[
            "kubernetes",
            "k8s",
            "k3s",
            "kubectl",
            "helm",
            "pods",
            "kustomize",
            "argocd",
        ],
    ),
    (
        "database",
        &[
            "database",
            "databases",
            "postgres",
            "postgresql",
            "sql",
            "mongodb",
            "mongo",
            "timescaledb",
            "redis",
            "sqlite",
            "pgvector",
            "index",
            "query",
        ],
    ),
    (
        "devops",
        &[
            "devops",
            "ci",
            "ci/cd",
            "pipeline",
            "github actions",
            "terraform",
            "ansible",
            "docker",
            "deploy",
            "deployment",
            "gitops",
        ],
    ),
    (
        "career",
        &[
            "career",
            "interview",
            "job",
            "promotion",
            "resume",
            "mentor",
            "mentoring",
            "salary",
        ],
    ),
    (
        "platform",
        &[
            "platform",
            "platform engineering",
            "developer experience",
            "backstage",
            "idp",
        ],
    ),
    (
        "cloud",
        &[
            "cloud",
            "aws",
            "gcp",
            "azure",
            "lambda",
            "s3",
            "serverless",
            "minio",
        ],
    ),
    (
        "sre",
        &[
            "sre",
            "slo",
            "slos",
            "sli",
            "incident",
            "on-call",
            "oncall",
            "postmortem",
            "reliability",
        ],
    ),
    (
        "language",
        &[
            "rust",
            "golang",
            "python",
            "typescript",
            "javascript",
            "java",
            "bash",
            "cargo",
        ],
    ),
    (
        "linux",
        &[
            "linux", "systemd", "kernel", "ubuntu", "debian", "shell", "cgroups", "ebpf",
        ],
    ),
    (
        "productivity",
        &[
            "productivity",
            "focus",
            "habit",
            "habits",
            "routine",
            "pomodoro",
            "notes",
            "obsidian",
        ],
    ),
];

/// One atomic entry, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub entry_date: NaiveDate,
    pub content: String,
    pub category: &'static str,
    pub tags: Vec<&'static str>,
    pub context_string: String,
    pub checksum: String,
    pub token_count: i32,
}

impl Entry {
    pub fn new(entry_date: NaiveDate, category: &'static str, content: String) -> Self {
        let tags = tags_of(&content);
        let context_string = format!(
            "Date: {entry_date} | Category: {category} | Tags: {} | Content: {content}",
            tags.join(", ")
        );
        Self {
            checksum: hex::encode(Sha256::digest(content.as_bytes())),
            token_count: token_count(&content),
            entry_date,
            category,
            tags,
            context_string,
            content,
        }
    }
}

/// ⌊words × 1.33⌋ + 1, the old job's estimate.
pub fn token_count(content: &str) -> i32 {
    let words = content.split_whitespace().count();
    // Exact in integers: ⌊w × 133 / 100⌋.
    i32::try_from(words * 133 / 100 + 1).unwrap_or(i32::MAX)
}

/// The tags of `content` (see [`TAGS`]).
pub fn tags_of(content: &str) -> Vec<&'static str> {
    let lower = content.to_lowercase();
    let tags: Vec<&'static str> = TAGS
        .iter()
        .filter(|(_, words)| words.iter().any(|w| contains_word(&lower, w)))
        .map(|(tag, _)| *tag)
        .collect();
    if tags.is_empty() {
        vec!["random"]
    } else {
        tags
    }
}

fn contains_word(haystack: &str, word: &str) -> bool {
    haystack.match_indices(word).any(|(at, _)| {
        let before = haystack[..at].chars().next_back();
        let after = haystack[at + word.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

/// `body` without its HTML comments.
fn strip_comments(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(start) = rest.find("<!--") {
        out.push_str(&rest[..start]);
        match rest[start + 4..].find("-->") {
            Some(end) => rest = &rest[start + 4 + end + 3..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

/// An item being read: its text so far, and whether it is a task.
struct Item {
    text: String,
    task: bool,
}

/// The entries of one journal issue dated `date`.
pub fn entries(date: NaiveDate, body: &str) -> Vec<Entry> {
    let body = strip_comments(body);
    let mut out = Vec::new();
    let mut category: Option<&'static str> = None;
    // Open list items, innermost last; text goes to the innermost.
    let mut items: Vec<Item> = Vec::new();
    let mut heading: Option<(HeadingLevel, String)> = None;
    // Depth of code blocks, tables and the like whose text is never entry text.
    let mut skip = 0usize;
    for event in Parser::new_ext(&body, Options::ENABLE_TASKLISTS | Options::ENABLE_TABLES) {
        match event {
            Event::Start(Tag::Heading { level, .. }) => heading = Some((level, String::new())),
            Event::End(TagEnd::Heading(_)) => {
                if let Some((HeadingLevel::H2, text)) = heading.take() {
                    let text = text.trim();
                    category = SECTIONS.iter().find(|(h, _)| *h == text).map(|(_, c)| *c);
                }
            }
            Event::Rule => category = None,
            Event::Start(Tag::Item) => items.push(Item {
                text: String::new(),
                task: false,
            }),
            Event::End(TagEnd::Item) => {
                let Some(item) = items.pop() else { continue };
                let content = collapse(&item.text);
                if let Some(c) = category {
                    if !item.task && !content.is_empty() {
                        out.push(Entry::new(date, c, content));
                    }
                }
            }
            Event::TaskListMarker(_) => {
                if let Some(item) = items.last_mut() {
                    item.task = true;
                }
            }
            Event::Start(Tag::CodeBlock(_) | Tag::Table(_) | Tag::HtmlBlock) => skip += 1,
            Event::End(TagEnd::CodeBlock | TagEnd::Table | TagEnd::HtmlBlock) => {
                skip = skip.saturating_sub(1)
            }
            Event::Text(t) | Event::Code(t) if skip == 0 => push_text(&mut heading, &mut items, &t),
            Event::SoftBreak | Event::HardBreak => push_text(&mut heading, &mut items, " "),
            // A paragraph break inside one item: the item stays one entry.
            Event::End(TagEnd::Paragraph) => push_text(&mut None, &mut items, " "),
            _ => {}
        }
    }
    out
}

fn push_text(heading: &mut Option<(HeadingLevel, String)>, items: &mut [Item], text: &str) {
    if let Some((_, h)) = heading {
        h.push_str(text);
    } else if let Some(item) = items.last_mut() {
        item.text.push_str(text);
    }
}

/// Whitespace runs (line breaks, tabs, the `\r` of CRLF) to one space, trimmed.
fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
