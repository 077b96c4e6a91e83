//! The status-page panel of metrics-flush: CPU and memory per host over the last 24 h.

use crate::batch::Row;
use serde_json::{Value, json};

/// A stored payload as JSON; text edited by hand into non-JSON is shown as a string.
pub(crate) fn parse_payload(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// Most rows the host panel reads (two types × 1440 per-minute samples × a few hosts).
pub(crate) const PANEL_ROWS: i64 = 20_000;

/// The status-page panel: per host, CPU and memory use (%) over the last 24 h.
pub(crate) fn host_panel(rows: &[Row]) -> Option<String> {
    let mut hosts: Vec<(&str, Vec<Value>, Vec<Value>)> = Vec::new();
    for r in rows {
        let payload = parse_payload(&r.payload);
        let value = match r.metric_type.as_str() {
            // `usage` / `used_percent` are the dashboards' shapes; `total` / `used` those of
            // samples stored by hub versions before them.
            "cpu" => payload["usage"].as_f64().or(payload["total"].as_f64()),
            "memory" => payload["used_percent"].as_f64().or_else(|| {
                let total = payload["total"].as_f64().filter(|t| *t > 0.0);
                total.and_then(|t| Some(payload["used"].as_f64()? / t * 100.0))
            }),
            _ => None,
        };
        let Some(value) = value else { continue };
        let i = match hosts.iter().position(|(h, ..)| *h == r.host) {
            Some(i) => i,
            None => {
                hosts.push((r.host.as_str(), Vec::new(), Vec::new()));
                hosts.len() - 1
            }
        };
        let point = json!([r.time.timestamp_millis(), (value * 10.0).round() / 10.0]);
        if r.metric_type == "cpu" {
            hosts[i].1.push(point);
        } else {
            hosts[i].2.push(point);
        }
    }
    if hosts.is_empty() {
        return None;
    }
    let mut html = String::from("<h2>Hosts, last 24 h</h2>");
    for (host, cpu, memory) in hosts {
        let series =
            json!([{"name": "cpu %", "points": cpu}, {"name": "memory %", "points": memory}]);
        html.push_str(&format!(
            "<h3 class=\"host\">{}</h3><div class=\"chart host-chart\" data-unit=\"%\" data-max=\"100\">\
             <script type=\"application/json\">{}</script></div>",
            hub_runtime::html::escape(host),
            hub_runtime::html::script_json(&series)
        ));
    }
    Some(html)
}
