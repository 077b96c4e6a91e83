//! The status-page panel of gate-check: open or closed, since when, the streak, and the last
//! changes it made to the serve config.

use crate::Gate;
use hub_runtime::html::escape;

/// Changes shown on the page; `GET /api/gate` has all the state keeps.
const SHOWN: usize = 5;

fn when(at: Option<chrono::DateTime<chrono::Utc>>) -> String {
    at.map_or_else(
        || "never".into(),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

pub(crate) async fn render(g: &Gate) -> String {
    let st = match g.state().await {
        Ok(st) => st,
        Err(e) => {
            return format!(
                "<h2>Funnel gate</h2><p class=\"failure\">state unreadable: {}</p>",
                escape(&e.to_string())
            );
        }
    };
    let (class, word) = if st.open {
        ("success", "open")
    } else {
        ("failure", "closed")
    };
    let cfg = g.config();
    let mut rows = String::new();
    for c in st.changes.iter().rev().take(SHOWN) {
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&when(Some(c.at))),
            escape(&c.action),
            escape(&c.reason)
        ));
    }
    format!(
        "<h2>Funnel gate</h2><p>Funnel is <span class=\"{class}\">{word}</span> since {} \
         (healthy streak {}/{}, unhealthy {}/{})</p><table id=\"gate\"><thead><tr><th>when</th>\
         <th>change</th><th>why</th></tr></thead><tbody>{rows}</tbody></table>",
        escape(&when(st.since)),
        st.healthy_streak,
        cfg.open_after,
        st.unhealthy_streak,
        cfg.close_after,
    )
}
