//! `GET /`: the status page. Server-rendered HTML (works without JavaScript) plus a small inline
//! script that draws the 24 h run-duration chart as SVG from JSON embedded in the page. No build
//! step, no external assets: it must load on a host with no internet access.

use crate::app::{Gateway, SERVICE, VERSION};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use hub_runtime::error::error_response;
use hub_runtime::store::{RunQuery, RunRow};
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

/// JSON safe to embed in a `<script>` element (no `</script>` can end it early).
fn script_json(v: &serde_json::Value) -> String {
    v.to_string().replace('<', "\\u003c")
}

fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn duration(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

fn outcome_badge(outcome: &str) -> String {
    format!("<span class=\"badge {o}\">{o}</span>", o = esc(outcome))
}

/// Most runs the chart shows (24 h of a per-minute schedule is 1440).
const CHART_RUNS: i64 = 2000;

pub async fn index(State(gw): State<Gateway>) -> Response {
    match render(&gw).await {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot render the status page");
            error_response(StatusCode::SERVICE_UNAVAILABLE, "store unavailable")
        }
    }
}

async fn render(gw: &Gateway) -> Result<String, hub_runtime::store::StoreError> {
    let runs = &gw.ctx.runs;
    let recent = runs
        .list(&RunQuery {
            limit: 50,
            ..Default::default()
        })
        .await?;
    let day = runs
        .list(&RunQuery {
            since: Some(chrono::Utc::now() - chrono::Duration::hours(24)),
            limit: CHART_RUNS,
            ..Default::default()
        })
        .await?;

    let mut functions = String::new();
    for f in gw.function_infos() {
        let last: Vec<RunRow> = runs
            .list(&RunQuery {
                function: Some(f.name.to_owned()),
                limit: 1,
                ..Default::default()
            })
            .await?;
        let (last_at, last_outcome, last_duration) = match last.first() {
            Some(r) => (
                time(r.started_at),
                outcome_badge(&r.outcome),
                duration(r.duration_ms),
            ),
            None => ("never".into(), "—".into(), "—".into()),
        };
        let state = match &f.reason {
            None => "<span class=ok>configured</span>".to_owned(),
            Some(r) => format!("<span class=warn>not configured: {}</span>", esc(r)),
        };
        let routes = f
            .routes
            .iter()
            .map(|r| format!("<code>{} {}</code>", esc(r.method), esc(r.path)))
            .collect::<Vec<_>>()
            .join("<br>");
        // Writing to a String cannot fail.
        let _ = write!(
            functions,
            "<tr data-function=\"{n}\"><td><a href=\"/api/runs?function={n}\">{n}</a><br>{state}</td>\
             <td>{routes}</td><td><code>{schedule}</code></td><td>{next}</td>\
             <td>{last_at}</td><td>{last_outcome}</td><td>{last_duration}</td></tr>",
            n = esc(f.name),
            schedule = f.schedule.as_deref().map(esc).unwrap_or_else(|| "—".into()),
            next = f.next_due.map(time).unwrap_or_else(|| "—".into()),
        );
    }

    let mut recent_rows = String::new();
    for r in &recent {
        let _ = write!(
            recent_rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            time(r.started_at),
            esc(&r.function),
            esc(&r.trigger),
            outcome_badge(&r.outcome),
            duration(r.duration_ms),
            esc(&r.summary),
        );
    }
    if recent.is_empty() {
        recent_rows.push_str("<tr><td colspan=6>no runs yet</td></tr>");
    }
    let chart_data: Vec<serde_json::Value> = day
        .iter()
        .map(|r| {
            serde_json::json!({
                "f": r.function,
                "t": r.started_at.timestamp_millis(),
                "d": r.duration_ms,
                "o": r.outcome,
            })
        })
        .collect();

    Ok(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Observability Hub</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<style>
body{{font:14px/1.45 system-ui,sans-serif;margin:1.5rem auto;max-width:72rem;padding:0 1rem;color:#1f2328;background:#fff}}
h1{{margin:.2rem 0}}h2{{margin:1.6rem 0 .5rem;font-size:1.1rem}}
.meta{{color:#59636e}}a{{color:#0969da}}
table{{border-collapse:collapse;width:100%}}td,th{{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #d1d9e0;vertical-align:top}}
th{{font-weight:600;background:#f6f8fa}}code{{font-size:90%}}
.ok{{color:#1a7f37}}.warn{{color:#9a6700}}
.badge{{display:inline-block;padding:0 .45rem;border-radius:1rem;font-size:85%;border:1px solid}}
.success{{color:#1a7f37}}.failure{{color:#cf222e}}.rejected{{color:#9a6700}}.skipped,.interrupted{{color:#59636e}}
#chart svg{{width:100%;height:220px;border:1px solid #d1d9e0;border-radius:6px}}
#legend span{{margin-right:1rem}}
</style></head><body>
<h1>Observability Hub</h1>
<p class="meta">{service} {version} · store: {store} · <a href="/readyz">readiness</a> · <a href="/metrics">metrics</a> · <a href="/api/functions">functions (JSON)</a> · <a href="/api/runs">runs (JSON)</a></p>
<h2>Functions</h2>
<table id="functions"><thead><tr><th>function</th><th>routes</th><th>schedule</th><th>next due</th><th>last run</th><th>outcome</th><th>duration</th></tr></thead>
<tbody>{functions}</tbody></table>
<h2>Run durations, last 24 h</h2>
<div id="chart"><noscript>The chart needs JavaScript; the tables do not.</noscript></div>
<div id="legend"></div>
<h2>Last 50 runs</h2>
<table id="runs"><thead><tr><th>started</th><th>function</th><th>trigger</th><th>outcome</th><th>duration</th><th>summary</th></tr></thead>
<tbody>{recent_rows}</tbody></table>
<script type="application/json" id="chart-data">{chart_json}</script>
<script>
(function () {{
  var runs = JSON.parse(document.getElementById('chart-data').textContent);
  var chart = document.getElementById('chart'), legend = document.getElementById('legend');
  var W = 1000, H = 220, L = 56, R = 12, T = 12, B = 28;
  var now = Date.now(), t0 = now - 24 * 3600 * 1000;
  var ns = 'http://www.w3.org/2000/svg';
  var svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', 'run durations per function over the last 24 hours');
  function el(name, attrs, text) {{
    var e = document.createElementNS(ns, name);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    svg.appendChild(e);
    return e;
  }}
  var max = 1;
  runs.forEach(function (r) {{ if (r.d > max) max = r.d; }});
  var x = function (t) {{ return L + (t - t0) / (now - t0) * (W - L - R); }};
  var y = function (d) {{ return H - B - d / max * (H - T - B); }};
  el('line', {{x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: '#8c959f'}});
  el('line', {{x1: L, y1: T, x2: L, y2: H - B, stroke: '#8c959f'}});
  el('text', {{x: L - 6, y: T + 10, 'text-anchor': 'end', 'font-size': 11}}, max >= 1000 ? (max / 1000).toFixed(1) + ' s' : max + ' ms');
  el('text', {{x: L - 6, y: H - B, 'text-anchor': 'end', 'font-size': 11}}, '0');
  for (var h = 0; h <= 24; h += 6) {{
    el('text', {{x: x(t0 + h * 3600 * 1000), y: H - 8, 'text-anchor': 'middle', 'font-size': 11}}, h === 24 ? 'now' : '-' + (24 - h) + ' h');
  }}
  var colours = ['#0969da', '#8250df', '#bf3989', '#1a7f37', '#9a6700', '#cf222e'];
  var names = [];
  runs.forEach(function (r) {{ if (names.indexOf(r.f) < 0) names.push(r.f); }});
  names.forEach(function (name, i) {{
    var c = colours[i % colours.length];
    var pts = runs.filter(function (r) {{ return r.f === name; }}).sort(function (a, b) {{ return a.t - b.t; }});
    el('polyline', {{points: pts.map(function (r) {{ return x(r.t) + ',' + y(r.d); }}).join(' '), fill: 'none', stroke: c, 'stroke-opacity': 0.35, 'data-function': name}});
    pts.forEach(function (r) {{
      var dot = el('circle', {{cx: x(r.t), cy: y(r.d), r: 3, fill: r.o === 'success' ? c : '#cf222e', 'data-function': name}});
      var tip = document.createElementNS(ns, 'title');
      tip.textContent = name + ': ' + r.d + ' ms, ' + r.o + ', ' + new Date(r.t).toISOString();
      dot.appendChild(tip);
    }});
    var item = document.createElement('span');
    item.innerHTML = '<svg width="10" height="10"><rect width="10" height="10" fill="' + c + '"/></svg> ';
    item.appendChild(document.createTextNode(name + ' (' + pts.length + ')'));
    legend.appendChild(item);
  }});
  if (!runs.length) el('text', {{x: W / 2, y: H / 2, 'text-anchor': 'middle', fill: '#59636e'}}, 'no runs in the last 24 hours');
  chart.appendChild(svg);
}})();
</script>
</body></html>"#,
        service = SERVICE,
        version = VERSION,
        store = gw.ctx.store.backend(),
        chart_json = script_json(&serde_json::Value::Array(chart_data)),
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

    #[test]
    fn embedded_json_cannot_close_the_script() {
        let v = serde_json::json!({"summary": "</script><script>alert(1)</script>"});
        assert!(!super::script_json(&v).contains("</script>"));
    }
}
