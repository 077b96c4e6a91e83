//! The page's content files, `landing.yaml` and `evolution.yaml`, in the old hub's schema (its
//! users' files load unchanged; docs/page.md documents every key). Values are checked while they
//! are read, so a bad one is reported with its file, line and key path; keys the schema does
//! not know are ignored, as the old hub did, but named in a warning so a typo is not silent.

use chrono::NaiveDate;
use serde::de::{self, Deserializer};
use serde::{Deserialize, de::DeserializeOwned};
use std::path::{Path, PathBuf};

/// A content file that cannot be used: which file, where, and why.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `detail` starts with the key path when the YAML parser knows it (`hero.cta_link: …`).
    #[error("{path}:{line}:{column}: {detail}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        detail: String,
    },
    #[error("{path}: {detail}")]
    Unplaced { path: PathBuf, detail: String },
}

/// A file's content and the keys in it the schema ignored (`hero.subtitel`).
#[derive(Debug)]
pub struct Loaded<T> {
    pub content: T,
    pub ignored: Vec<String>,
}

/// Reads and checks one content file.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<Loaded<T>, ContentError> {
    let text = std::fs::read_to_string(path).map_err(|source| ContentError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(path, &text)
}

/// Checks `text` as the content of `path` (the name is only used in messages).
pub fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<Loaded<T>, ContentError> {
    let mut ignored = Vec::new();
    let content = serde_ignored::deserialize(serde_norway::Deserializer::from_str(text), |key| {
        ignored.push(key.to_string())
    })
    .map_err(|e| located(path, &e))?;
    Ok(Loaded { content, ignored })
}

fn located(path: &Path, e: &serde_norway::Error) -> ContentError {
    let message = e.to_string();
    match e.location() {
        Some(at) => {
            // The parser appends "at line L column C"; the location leads instead.
            let detail = match message.rsplit_once(" at line ") {
                Some((detail, _)) => detail.to_owned(),
                None => message,
            };
            ContentError::Invalid {
                path: path.to_owned(),
                line: at.line(),
                column: at.column(),
                detail,
            }
        }
        None => ContentError::Unplaced {
            path: path.to_owned(),
            detail: message,
        },
    }
}

/// A string that must hold something other than white space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked_str(d, "text", |s| {
            if s.trim().is_empty() {
                return Err("must not be empty".into());
            }
            Ok(Self(s.to_owned()))
        })
    }
}

/// Reads a string and checks it *inside* the visitor: the YAML parser places an error raised
/// there at the value's own line and key, while one raised after reading would be placed at the
/// enclosing mapping.
fn checked_str<'de, D, T>(
    d: D,
    expecting: &'static str,
    check: fn(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct Checked<T> {
        expecting: &'static str,
        check: fn(&str) -> Result<T, String>,
    }
    impl<T> de::Visitor<'_> for Checked<T> {
        type Value = T;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
            (self.check)(s).map_err(E::custom)
        }
    }
    d.deserialize_str(Checked { expecting, check })
}

/// A link the page may carry: `https://`, `http://`, `mailto:`, a `#fragment` or a relative
/// path (`evolution.html`, `docs/adr.md`). Other schemes (`javascript:`, `data:`) are refused:
/// the page is public, and the files may come from a pull request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link(pub String);

impl Link {
    pub fn check(s: &str) -> Result<(), String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("must not be empty".into());
        }
        let scheme = s
            .split_once(':')
            .map(|(scheme, _)| scheme)
            .filter(|scheme| !scheme.contains(['/', '?', '#']));
        match scheme.map(str::to_ascii_lowercase).as_deref() {
            None | Some("https" | "http" | "mailto") => Ok(()),
            Some(other) => Err(format!(
                "links may be https://, http://, mailto:, #fragment or a relative path, not {other}:"
            )),
        }
    }
}

impl<'de> Deserialize<'de> for Link {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked_str(d, "a link", |s| {
            Link::check(s)?;
            Ok(Self(s.trim().to_owned()))
        })
    }
}

/// A timeline date, `YYYY-MM-DD` (quoted or not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date(pub NaiveDate);

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked_str(d, "a date YYYY-MM-DD", |s| {
            NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
                .map(Self)
                .map_err(|_| format!("expected a date YYYY-MM-DD, not {s:?}"))
        })
    }
}

/// `landing.yaml`.
#[derive(Debug, Deserialize)]
pub struct Landing {
    pub page_title: Text,
    /// Where the site is published; becomes the canonical link.
    pub site_url: Option<Link>,
    #[serde(default)]
    pub meta_description: String,
    #[serde(default)]
    pub keywords: String,
    pub author: Option<Author>,
    pub hero: Hero,
    #[serde(default)]
    pub principles: Vec<Principle>,
    pub specification: Option<Specification>,
}

#[derive(Debug, Deserialize)]
pub struct Author {
    pub name: Text,
    pub github: Option<Link>,
    pub linkedin: Option<Link>,
}

#[derive(Debug, Deserialize)]
pub struct Hero {
    pub title: Text,
    #[serde(default)]
    pub subtitle: String,
    pub cta_text: Option<String>,
    pub cta_link: Option<Link>,
    pub secondary_cta_text: Option<String>,
    pub secondary_cta_link: Option<Link>,
}

#[derive(Debug, Deserialize)]
pub struct Principle {
    pub title: Text,
    #[serde(default)]
    pub description: String,
    /// An icon name in the old hub's icon font. The page loads no fonts, so it is kept only as a
    /// `data-icon` attribute for custom CSS.
    #[serde(default)]
    pub icon: String,
}

/// The system's specification, shown as a table (the old hub also put it in `llms.txt`).
#[derive(Debug, Deserialize)]
pub struct Specification {
    pub stack: Option<String>,
    pub pattern: Option<String>,
    pub entry_point: Option<String>,
    pub persistence_strategy: Option<String>,
    pub observability: Option<String>,
    pub machine_registry: Option<String>,
}

impl Specification {
    /// Label and value of each key that is set, in the file's documented order.
    pub fn rows(&self) -> Vec<(&'static str, &str)> {
        [
            ("Stack", &self.stack),
            ("Pattern", &self.pattern),
            ("Entry point", &self.entry_point),
            ("Persistence", &self.persistence_strategy),
            ("Observability", &self.observability),
            ("Machine registry", &self.machine_registry),
        ]
        .into_iter()
        .filter_map(|(label, v)| v.as_deref().map(|v| (label, v)))
        .filter(|(_, v)| !v.trim().is_empty())
        .collect()
    }
}

/// `evolution.yaml`.
#[derive(Debug, Deserialize)]
pub struct Evolution {
    pub page_title: Text,
    #[serde(default)]
    pub intro_text: String,
    #[serde(default)]
    pub chapters: Vec<Chapter>,
}

#[derive(Debug, Deserialize)]
pub struct Chapter {
    pub title: Text,
    /// Free text, e.g. "Nov 20, 2025 - Dec 31, 2025".
    #[serde(default)]
    pub period: String,
    #[serde(default)]
    pub intro: String,
    #[serde(default)]
    pub timeline: Vec<Event>,
}

#[derive(Debug, Deserialize)]
pub struct Event {
    pub date: Date,
    pub title: Text,
    /// Markdown (the old files use a bullet list); raw HTML in it is shown as text.
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub artifacts: Vec<Artifact>,
}

#[derive(Debug, Deserialize)]
pub struct Artifact {
    pub name: Text,
    pub url: Link,
}

impl Chapter {
    /// The newest event's date, which orders the chapters.
    pub fn newest(&self) -> Option<Date> {
        self.timeline.iter().map(|e| e.date).max()
    }
}

#[cfg(test)]
mod tests;
