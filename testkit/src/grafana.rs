//! Grafana dashboards as tests see them: every panel's `rawSql`, Grafana's macros replaced by
//! plain SQL, run against a database the hub filled. Shared by the users' dashboards'
//! acceptance suite (host-collector) and the hub's own "Hub runs" dashboard (local-gateway).

use serde_json::Value;
use sqlx::{Column, Connection, PgConnection, Row};
use std::path::{Path, PathBuf};

/// One query of one panel.
#[derive(Debug, Clone)]
pub struct Panel {
    /// The dashboard's file name.
    pub dashboard: String,
    pub title: String,
    pub sql: String,
}

/// The `*.json` dashboards in `dir`, sorted by name.
pub fn dashboard_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

/// Every `rawSql` of the dashboard `file`, nested rows of panels included.
pub fn panels(file: &Path) -> Vec<Panel> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let json: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", file.display()));
    let dashboard = file
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let mut out = Vec::new();
    let mut stack = vec![&json];
    while let Some(node) = stack.pop() {
        for p in node["panels"].as_array().into_iter().flatten() {
            stack.push(p);
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(sql) = t["rawSql"].as_str() {
                    out.push(Panel {
                        dashboard: dashboard.clone(),
                        title: p["title"].as_str().unwrap_or("?").to_owned(),
                        sql: sql.to_owned(),
                    });
                }
            }
        }
    }
    out
}

/// Grafana's `$__timeFilter(col)` as a range over the test data (the last 400 days).
pub fn time_filter(sql: &str) -> String {
    let mut out = String::new();
    let mut rest = sql;
    while let Some(at) = rest.find("$__timeFilter(") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "$__timeFilter(".len()..];
        let close = after.find(')').expect("macro closes");
        let col = &after[..close];
        out.push_str(&format!(
            "{col} BETWEEN now() - interval '400 days' AND now() + interval '1 day'"
        ));
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Runs each panel's SQL (after `rewrite`) on the database at `url`. Returns one line per
/// panel that fails or returns no row whose every column is non-null, i.e. would not draw.
pub async fn undrawn(url: &str, panels: &[Panel], rewrite: impl Fn(&str) -> String) -> Vec<String> {
    let mut conn = PgConnection::connect(url).await.expect("connect");
    let mut failures = Vec::new();
    for Panel {
        dashboard,
        title,
        sql,
    } in panels
    {
        let sql = rewrite(&time_filter(sql));
        match sqlx::query(&sql).fetch_all(&mut conn).await {
            Err(e) => failures.push(format!("{dashboard} / {title}: {e}")),
            Ok(rows) => {
                let drawn = rows.iter().any(|r| {
                    (0..r.columns().len())
                        .all(|i| r.try_get_raw(i).is_ok_and(|v| !sqlx::ValueRef::is_null(&v)))
                });
                if !drawn {
                    let cols: Vec<&str> = rows
                        .first()
                        .map(|r| r.columns().iter().map(|c| c.name()).collect())
                        .unwrap_or_default();
                    failures.push(format!(
                        "{dashboard} / {title}: {} rows, none with every column ({cols:?}) set",
                        rows.len()
                    ));
                }
            }
        }
    }
    failures
}
