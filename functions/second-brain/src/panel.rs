//! The status-page panel of second-brain: entries per day over the last 30 days (a chart) and
//! the most used tags then.

use crate::{SecondBrain, store};
use hub_runtime::html::{escape, script_json};
use serde_json::json;

/// Days the panel covers.
const DAYS: i64 = 30;

pub(crate) async fn render(f: &SecondBrain) -> String {
    let since = chrono::Utc::now().date_naive() - chrono::Duration::days(DAYS - 1);
    let recent = match f.store().await {
        Ok(st) => store::recent(st, since).await,
        Err(e) => Err(e),
    };
    let recent = match recent {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read second_brain for the status page");
            return "<h2>Second brain</h2><p class=\"failure\">entries unreadable (database unavailable)</p>".into();
        }
    };
    if recent.per_day.is_empty() {
        return "<h2>Second brain</h2><p>No journal entries in the last 30 days.</p>".into();
    }
    let points: Vec<_> = recent
        .per_day
        .iter()
        .filter_map(|(d, n)| {
            let ms = d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis();
            Some(json!([ms, n]))
        })
        .collect();
    let series = json!([{"name": "entries", "points": points}]);
    let tags: String = recent
        .top_tags
        .iter()
        .map(|(t, n)| format!("<tr><td>{}</td><td>{n}</td></tr>", escape(t)))
        .collect();
    let total: i64 = recent.per_day.iter().map(|(_, n)| n).sum();
    format!(
        "<h2>Second brain, last 30 days</h2><p>{total} entries</p>\
         <div class=\"chart\" id=\"brain-chart\" data-unit=\"entries\">\
         <script type=\"application/json\">{}</script></div>\
         <table id=\"brain-tags\"><thead><tr><th>tag</th><th>entries</th></tr></thead>\
         <tbody>{tags}</tbody></table>",
        script_json(&series)
    )
}
