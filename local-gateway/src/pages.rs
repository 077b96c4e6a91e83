//! `GET /`: a short server-rendered page naming the service and its functions.

use crate::app::{Gateway, SERVICE, VERSION};
use axum::extract::State;
use axum::response::Html;
use std::fmt::Write;

/// Escapes text for HTML element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub async fn index(State(gw): State<Gateway>) -> Html<String> {
    let mut rows = String::new();
    for f in gw.function_infos() {
        let routes = f
            .routes
            .iter()
            .map(|r| format!("<code>{} {}</code>", esc(r.method), esc(r.path)))
            .collect::<Vec<_>>()
            .join("<br>");
        let state = match &f.reason {
            None => "<span class=ok>configured</span>".to_owned(),
            Some(r) => format!("<span class=warn>not configured: {}</span>", esc(r)),
        };
        let schedule = f.schedule.as_deref().map(esc).unwrap_or_else(|| "—".into());
        // Writing to a String cannot fail.
        let _ = write!(
            rows,
            "<tr><td><a href=\"/api/runs?function={n}\">{n}</a></td><td>{routes}</td><td>{schedule}</td><td>{state}</td></tr>",
            n = esc(f.name)
        );
    }
    Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Observability Hub</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{{font:15px/1.4 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#222}}
table{{border-collapse:collapse;width:100%}}td,th{{text-align:left;padding:.4rem .6rem;border-bottom:1px solid #ddd;vertical-align:top}}
.ok{{color:#1a7f37}}.warn{{color:#9a6700}}code{{font-size:90%}}
</style></head><body>
<h1>Observability Hub</h1>
<p>{service} {version} · store: {store} · <a href="/readyz">readiness</a> · <a href="/api/functions">functions (JSON)</a> · <a href="/api/runs">recent runs (JSON)</a></p>
<table><thead><tr><th>function</th><th>routes</th><th>schedule</th><th>state</th></tr></thead>
<tbody>{rows}</tbody></table>
</body></html>"#,
        service = SERVICE,
        version = VERSION,
        store = gw.ctx.store.backend(),
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup() {
        assert_eq!(
            super::esc(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
