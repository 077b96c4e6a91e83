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
use std::sync::Arc;

use hub_runtime::html::{escape as esc, script_json};

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

pub async fn index(State(gw): State<Arc<Gateway>>) -> Response {
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
            .map(|r| {
                // Public routes are reachable from the internet through Funnel: say so.
                let public = if r.public {
                    " <small>(public)</small>"
                } else {
                    ""
                };
                format!("<code>{} {}</code>{public}", esc(r.method), esc(r.path))
            })
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
    // One series per function: [unix ms, duration ms, succeeded].
    let mut series: Vec<(String, Vec<serde_json::Value>)> = Vec::new();
    for r in day.iter().rev() {
        let point = serde_json::json!([
            r.started_at.timestamp_millis(),
            r.duration_ms,
            r.outcome == "success"
        ]);
        match series.iter_mut().find(|(name, _)| *name == r.function) {
            Some((_, points)) => points.push(point),
            None => series.push((r.function.clone(), vec![point])),
        }
    }
    let runs_chart: Vec<serde_json::Value> = series
        .into_iter()
        .map(|(name, points)| serde_json::json!({"name": name, "points": points}))
        .collect();
    let mut panels = String::new();
    for f in gw.functions.iter() {
        if let Some(panel) = f.status_panel().await {
            panels.push_str(&panel);
        }
    }

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
.chart svg{{width:100%;height:220px;border:1px solid #d1d9e0;border-radius:6px}}
.legend span{{margin-right:1rem}}
</style></head><body>
<h1>Observability Hub</h1>
<p class="meta">{service} {version} · store: {store} · <a href="/readyz">readiness</a> · <a href="/metrics">metrics</a> · <a href="/api/functions">functions (JSON)</a> · <a href="/api/runs">runs (JSON)</a></p>
<h2>Functions</h2>
<table id="functions"><thead><tr><th>function</th><th>routes</th><th>schedule</th><th>next due</th><th>last run</th><th>outcome</th><th>duration</th></tr></thead>
<tbody>{functions}</tbody></table>
<h2>Run durations, last 24 h</h2>
<div class="chart" id="runs-chart" data-unit="ms"><script type="application/json">{runs_json}</script></div>
<noscript>The charts need JavaScript; the tables do not.</noscript>
{panels}
<h2>Last 50 runs</h2>
<table id="runs"><thead><tr><th>started</th><th>function</th><th>trigger</th><th>outcome</th><th>duration</th><th>summary</th></tr></thead>
<tbody>{recent_rows}</tbody></table>
<script>
// Draws every .chart from the JSON inside it: [{{name, points: [[unix ms, value, ok]]}}] over
// the last 24 h, one colour per series, failed points in red.
(function () {{
  var ns = 'http://www.w3.org/2000/svg';
  var colours = ['#0969da', '#8250df', '#bf3989', '#1a7f37', '#9a6700', '#cf222e'];
  function fmt(v, unit) {{
    if (unit === 'ms' && v >= 1000) return (v / 1000).toFixed(1) + ' s';
    return (Math.round(v * 10) / 10) + ' ' + unit;
  }}
  document.querySelectorAll('.chart').forEach(function (chart) {{
    var data = chart.querySelector('script[type="application/json"]');
    var series = JSON.parse(data ? data.textContent : '[]');
    var unit = chart.dataset.unit || '';
    var W = 1000, H = 220, L = 64, R = 12, T = 12, B = 28;
    var now = Date.now(), t0 = now - 24 * 3600 * 1000;
    var svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
    svg.setAttribute('role', 'img');
    function el(name, attrs, text) {{
      var e = document.createElementNS(ns, name);
      for (var k in attrs) e.setAttribute(k, attrs[k]);
      if (text !== undefined) e.textContent = text;
      svg.appendChild(e);
      return e;
    }}
    var max = Number(chart.dataset.max) || 0;
    series.forEach(function (s) {{ s.points.forEach(function (p) {{ if (p[1] > max) max = p[1]; }}); }});
    if (max <= 0) max = 1;
    var x = function (t) {{ return L + (t - t0) / (now - t0) * (W - L - R); }};
    var y = function (v) {{ return H - B - v / max * (H - T - B); }};
    el('line', {{x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: '#8c959f'}});
    el('line', {{x1: L, y1: T, x2: L, y2: H - B, stroke: '#8c959f'}});
    el('text', {{x: L - 6, y: T + 10, 'text-anchor': 'end', 'font-size': 11}}, fmt(max, unit));
    el('text', {{x: L - 6, y: H - B, 'text-anchor': 'end', 'font-size': 11}}, '0');
    for (var h = 0; h <= 24; h += 6) {{
      el('text', {{x: x(t0 + h * 3600 * 1000), y: H - 8, 'text-anchor': 'middle', 'font-size': 11}}, h === 24 ? 'now' : '-' + (24 - h) + ' h');
    }}
    var legend = document.createElement('div');
    legend.className = 'legend';
    series.forEach(function (s, i) {{
      var c = colours[i % colours.length];
      var pts = s.points.filter(function (p) {{ return p[0] >= t0; }}).sort(function (a, b) {{ return a[0] - b[0]; }});
      el('polyline', {{points: pts.map(function (p) {{ return x(p[0]) + ',' + y(p[1]); }}).join(' '), fill: 'none', stroke: c, 'stroke-opacity': 0.45, 'data-series': s.name}});
      pts.forEach(function (p) {{
        var dot = el('circle', {{cx: x(p[0]), cy: y(p[1]), r: 2.5, fill: p[2] === false ? '#cf222e' : c, 'data-series': s.name}});
        var tip = document.createElementNS(ns, 'title');
        tip.textContent = s.name + ': ' + fmt(p[1], unit) + ', ' + new Date(p[0]).toISOString();
        dot.appendChild(tip);
      }});
      var item = document.createElement('span');
      item.innerHTML = '<svg width="10" height="10"><rect width="10" height="10" fill="' + c + '"/></svg> ';
      item.appendChild(document.createTextNode(s.name + ' (' + pts.length + ')'));
      legend.appendChild(item);
    }});
    if (!series.length) el('text', {{x: W / 2, y: H / 2, 'text-anchor': 'middle', fill: '#59636e'}}, 'nothing in the last 24 hours');
    chart.appendChild(svg);
    chart.parentNode.insertBefore(legend, chart.nextSibling);
  }});
}})();
</script>
</body></html>"#,
        service = SERVICE,
        version = VERSION,
        store = gw.ctx.store.backend(),
        runs_json = script_json(&serde_json::Value::Array(runs_chart)),
    ))
}
