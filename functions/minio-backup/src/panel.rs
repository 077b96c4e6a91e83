//! The status-page panel of minio-backup: each set's newest good backup, its size and age, in
//! red when it is older than twice the daily schedule (or when there is none).

use crate::Backup;
use chrono::Utc;
use hub_runtime::html::escape;

/// Two days: a daily backup that missed one night is late, two nights is a problem.
const STALE_HOURS: i64 = 48;

fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

pub(crate) async fn render(b: &Backup) -> String {
    let mut rows = String::new();
    for set in b.set_names() {
        let (when, bytes, age, stale) = match b.good_backups(&set).await {
            Ok(good) => match good.last() {
                Some(g) => {
                    let age = Utc::now() - g.manifest.finished_at;
                    (
                        g.manifest
                            .finished_at
                            .format("%Y-%m-%d %H:%M UTC")
                            .to_string(),
                        size(g.manifest.size),
                        format!("{} h", age.num_hours()),
                        age.num_hours() >= STALE_HOURS,
                    )
                }
                None => ("none yet".into(), "–".into(), "–".into(), true),
            },
            Err(e) => (format!("cannot list: {e}"), "–".into(), "–".into(), true),
        };
        let class = if stale { "failure" } else { "success" };
        rows.push_str(&format!(
            "<tr><td>{}</td><td class=\"{class}\">{}</td><td>{}</td><td class=\"{class}\">{}</td></tr>",
            escape(&set),
            escape(&when),
            escape(&bytes),
            escape(&age)
        ));
    }
    format!(
        "<h2>Backups</h2><p>to {}</p><table id=\"backups\"><thead><tr><th>set</th>\
         <th>newest good backup</th><th>size</th><th>age</th></tr></thead><tbody>{rows}</tbody></table>",
        escape(&b.target().describe())
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_like_df() {
        assert_eq!(super::size(512), "512 B");
        assert_eq!(super::size(3 * 1024 * 1024 + 512 * 1024), "3.5 MiB");
    }
}
