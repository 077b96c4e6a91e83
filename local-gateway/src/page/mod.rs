//! `hub-gateway page build --out DIR`: the hub's public page as a static site, like the old
//! hub's page generator. A landing section and an "evolution" timeline come from
//! `landing.yaml` and `evolution.yaml` in the content directory (`page/` by default; schema in
//! `docs/page.md`), and a health summary from the run history: each function's last outcome and
//! 30-day success rate — nothing else from the store, since the page is public.
//!
//! The content is read and checked before the store is opened, so a bad file costs nothing and
//! is reported with its file, line and key.

mod health;
mod render;
pub mod schema;

use crate::app::Gateway;
use schema::{ContentError, Evolution, Landing, Loaded};
use serde::Serialize;
use std::path::{Path, PathBuf};

pub const LANDING_FILE: &str = "landing.yaml";
pub const EVOLUTION_FILE: &str = "evolution.yaml";

/// The two content files, checked.
#[derive(Debug)]
pub struct Content {
    pub landing: Loaded<Landing>,
    pub evolution: Loaded<Evolution>,
    dir: PathBuf,
}

impl Content {
    /// Reads `landing.yaml` and `evolution.yaml` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, ContentError> {
        Ok(Self {
            landing: schema::load(&dir.join(LANDING_FILE))?,
            evolution: schema::load(&dir.join(EVOLUTION_FILE))?,
            dir: dir.to_owned(),
        })
    }

    /// Keys the schema does not know, as `FILE: KEY` (ignored, like the old hub did, but a typo
    /// should not pass unnoticed).
    pub fn warnings(&self) -> Vec<String> {
        let named = |file: &str, keys: &[String]| -> Vec<String> {
            keys.iter()
                .map(|k| {
                    format!(
                        "{}: unknown key {k} (ignored)",
                        self.dir.join(file).display()
                    )
                })
                .collect()
        };
        let mut out = named(LANDING_FILE, &self.landing.ignored);
        out.extend(named(EVOLUTION_FILE, &self.evolution.ignored));
        out
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot read the run history: {0}")]
    Store(#[from] hub_runtime::store::StoreError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What a build wrote.
#[derive(Debug, Serialize)]
pub struct Built {
    pub out: PathBuf,
    pub files: Vec<&'static str>,
    pub functions: usize,
}

/// Renders the site into `out` (created if missing). Only the site's own files are replaced,
/// each atomically, so `out` may be a checkout that is published as it is (GitHub Pages).
pub async fn build(gateway: &Gateway, content: &Content, out: &Path) -> Result<Built, BuildError> {
    let now = chrono::Utc::now();
    let names: Vec<&str> = gateway.functions.iter().map(|f| f.name()).collect();
    let health = health::summary(&gateway.ctx.runs, &names, now).await?;
    let frame = render::Frame {
        landing: &content.landing.content,
        generated: now,
    };
    let files = [
        ("index.html", render::index(&frame, &health)),
        (
            "evolution.html",
            render::evolution(&frame, &content.evolution.content),
        ),
        ("style.css", render::STYLE.to_owned()),
    ];
    let written = |path: &Path, source| BuildError::Write {
        path: path.to_owned(),
        source,
    };
    std::fs::create_dir_all(out).map_err(|e| written(out, e))?;
    for (name, text) in &files {
        let path = out.join(name);
        let temp = out.join(format!(".{name}.tmp"));
        std::fs::write(&temp, text).map_err(|e| written(&temp, e))?;
        std::fs::rename(&temp, &path).map_err(|e| written(&path, e))?;
    }
    Ok(Built {
        out: out.to_owned(),
        files: files.iter().map(|(name, _)| *name).collect(),
        functions: health.len(),
    })
}
