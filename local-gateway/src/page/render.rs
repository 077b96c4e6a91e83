//! HTML of the public page: `index.html` (landing and health summary) and `evolution.html`
//! (the timeline, newest first), sharing `style.css`. Static HTML and CSS only: it reads
//! without JavaScript and loads nothing from elsewhere, so it can be served from GitHub Pages
//! or a bucket as it is.

use super::health::{FunctionHealth, WINDOW_DAYS};
use super::schema::{Chapter, Event, Evolution, Landing, Link};
use chrono::{DateTime, Utc};
use hub_runtime::html::escape as esc;
use pulldown_cmark::{Event as Md, Options, Parser, Tag, TagEnd};
use std::fmt::Write;

pub const STYLE: &str = include_str!("style.css");

/// What both pages show around their content.
pub struct Frame<'a> {
    pub landing: &'a Landing,
    pub generated: DateTime<Utc>,
}

fn head(frame: &Frame<'_>, title: &str, description: &str, canonical: Option<String>) -> String {
    let mut out = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<link rel=\"icon\" href=\"data:,\">\n\
         <link rel=\"stylesheet\" href=\"style.css\">\n",
        esc(title)
    );
    if !description.trim().is_empty() {
        let _ = writeln!(
            out,
            "<meta name=\"description\" content=\"{}\">",
            esc(description.trim())
        );
    }
    if !frame.landing.keywords.trim().is_empty() {
        let _ = writeln!(
            out,
            "<meta name=\"keywords\" content=\"{}\">",
            esc(frame.landing.keywords.trim())
        );
    }
    if let Some(author) = &frame.landing.author {
        let _ = writeln!(
            out,
            "<meta name=\"author\" content=\"{}\">",
            esc(&author.name.0)
        );
    }
    if let Some(url) = canonical {
        let _ = writeln!(out, "<link rel=\"canonical\" href=\"{}\">", esc(&url));
    }
    out.push_str("</head><body>\n");
    let _ = writeln!(
        out,
        "<header class=\"top\"><a class=\"brand\" href=\"index.html\">{}</a>\
         <nav><a href=\"index.html#health\">Health</a> <a href=\"evolution.html\">Evolution</a></nav></header>",
        esc(&frame.landing.page_title.0)
    );
    out
}

fn foot(frame: &Frame<'_>) -> String {
    let mut links = Vec::new();
    if let Some(author) = &frame.landing.author {
        links.push(esc(&author.name.0));
        for (label, link) in [("GitHub", &author.github), ("LinkedIn", &author.linkedin)] {
            if let Some(Link(url)) = link {
                links.push(format!("<a href=\"{}\">{label}</a>", esc(url)));
            }
        }
    }
    links.push(format!(
        "generated {}",
        frame.generated.format("%Y-%m-%d %H:%M UTC")
    ));
    format!("<footer>{}</footer>\n</body></html>\n", links.join(" · "))
}

fn canonical(landing: &Landing, file: &str) -> Option<String> {
    let Link(base) = landing.site_url.as_ref()?;
    Some(format!("{}/{file}", base.trim_end_matches('/')))
}

fn link_button(text: &Option<String>, link: &Option<Link>, class: &str) -> String {
    match (text.as_deref().map(str::trim), link) {
        (Some(text), Some(Link(url))) if !text.is_empty() => {
            format!(
                "<a class=\"{class}\" href=\"{}\">{}</a>",
                esc(url),
                esc(text)
            )
        }
        _ => String::new(),
    }
}

/// `index.html`: the landing section, the principles, the specification and the health summary.
pub fn index(frame: &Frame<'_>, health: &[FunctionHealth]) -> String {
    let landing = frame.landing;
    let mut out = head(
        frame,
        &landing.page_title.0,
        &landing.meta_description,
        canonical(landing, "index.html"),
    );
    let hero = &landing.hero;
    let _ = write!(
        out,
        "<main>\n<section class=\"hero\"><h1>{}</h1>",
        esc(&hero.title.0)
    );
    if !hero.subtitle.trim().is_empty() {
        let _ = write!(
            out,
            "<p class=\"subtitle\">{}</p>",
            esc(hero.subtitle.trim())
        );
    }
    let buttons = [
        link_button(&hero.cta_text, &hero.cta_link, "button"),
        link_button(
            &hero.secondary_cta_text,
            &hero.secondary_cta_link,
            "button secondary",
        ),
    ]
    .concat();
    if !buttons.is_empty() {
        let _ = write!(out, "<p class=\"actions\">{buttons}</p>");
    }
    out.push_str("</section>\n");

    if !landing.principles.is_empty() {
        out.push_str("<section id=\"principles\"><h2>Principles</h2><div class=\"cards\">");
        for p in &landing.principles {
            let _ = write!(
                out,
                "<article class=\"card\" data-icon=\"{}\"><h3>{}</h3><p>{}</p></article>",
                esc(p.icon.trim()),
                esc(&p.title.0),
                esc(p.description.trim())
            );
        }
        out.push_str("</div></section>\n");
    }
    if let Some(spec) = &landing.specification {
        let rows = spec.rows();
        if !rows.is_empty() {
            out.push_str(
                "<section id=\"specification\"><h2>Specification</h2><table class=\"spec\"><tbody>",
            );
            for (label, value) in rows {
                let _ = write!(
                    out,
                    "<tr><th scope=\"row\">{label}</th><td>{}</td></tr>",
                    esc(value.trim())
                );
            }
            out.push_str("</tbody></table></section>\n");
        }
    }
    out.push_str(&health_section(health, frame.generated));
    out.push_str("</main>\n");
    out.push_str(&foot(frame));
    out
}

fn health_section(health: &[FunctionHealth], generated: DateTime<Utc>) -> String {
    let mut out = format!(
        "<section id=\"health\"><h2>Health</h2>\
         <p class=\"meta\">Each function's last run and its success rate over {WINDOW_DAYS} days, \
         as of {}.</p>\
         <table class=\"health\"><thead><tr><th scope=\"col\">function</th><th scope=\"col\">last run</th>\
         <th scope=\"col\">outcome</th><th scope=\"col\">success, {WINDOW_DAYS} days</th></tr></thead><tbody>",
        generated.format("%Y-%m-%d %H:%M UTC")
    );
    for f in health {
        let (when, outcome) = match &f.last {
            Some((at, outcome)) => (
                at.format("%Y-%m-%d %H:%M UTC").to_string(),
                format!("<span class=\"badge {o}\">{o}</span>", o = esc(outcome)),
            ),
            None => (format!("none in {WINDOW_DAYS} days"), "—".to_owned()),
        };
        let rate = match f.success_rate() {
            Some(rate) => format!(
                "<meter min=\"0\" max=\"100\" low=\"90\" high=\"99\" optimum=\"100\" value=\"{rate:.1}\"></meter> \
                 {} % <small>({} of {})</small>",
                format_rate(rate),
                f.succeeded,
                f.counted
            ),
            None => "—".to_owned(),
        };
        let _ = write!(
            out,
            "<tr data-function=\"{n}\"><td>{n}</td><td>{when}</td><td>{outcome}</td><td>{rate}</td></tr>",
            n = esc(&f.name)
        );
    }
    out.push_str("</tbody></table></section>\n");
    out
}

/// 100 and 0 exactly as such; anything else with one decimal, never rounded up to 100.
fn format_rate(rate: f64) -> String {
    if rate >= 100.0 || rate <= 0.0 {
        format!("{rate:.0}")
    } else {
        format!("{:.1}", (rate * 10.0).floor() / 10.0)
    }
}

/// `evolution.html`: the chapters, the one with the newest event first, each event newest first.
pub fn evolution(frame: &Frame<'_>, evolution: &Evolution) -> String {
    let mut out = head(
        frame,
        &evolution.page_title.0,
        &evolution.intro_text,
        canonical(frame.landing, "evolution.html"),
    );
    let _ = write!(out, "<main>\n<h1>{}</h1>", esc(&evolution.page_title.0));
    if !evolution.intro_text.trim().is_empty() {
        let _ = write!(
            out,
            "<p class=\"subtitle\">{}</p>",
            esc(evolution.intro_text.trim())
        );
    }
    let mut chapters: Vec<&Chapter> = evolution.chapters.iter().collect();
    // Stable: chapters without events keep their file order, after the dated ones.
    chapters.sort_by_key(|c| std::cmp::Reverse(c.newest()));
    for chapter in chapters {
        let _ = write!(
            out,
            "\n<section class=\"chapter\"><h2>{}</h2>",
            esc(&chapter.title.0)
        );
        if !chapter.period.trim().is_empty() {
            let _ = write!(out, "<p class=\"meta\">{}</p>", esc(chapter.period.trim()));
        }
        if !chapter.intro.trim().is_empty() {
            let _ = write!(out, "<p>{}</p>", esc(chapter.intro.trim()));
        }
        let mut events: Vec<&Event> = chapter.timeline.iter().collect();
        events.sort_by_key(|e| std::cmp::Reverse(e.date));
        out.push_str("<ol class=\"timeline\">");
        for e in events {
            let date = e.date.0;
            let _ = write!(
                out,
                "<li><time datetime=\"{date}\">{}</time><h3>{}</h3>{}",
                date.format("%b %-d, %Y"),
                esc(&e.title.0),
                markdown(&e.description)
            );
            if !e.artifacts.is_empty() {
                out.push_str("<ul class=\"artifacts\">");
                for a in &e.artifacts {
                    let _ = write!(
                        out,
                        "<li><a href=\"{}\">{}</a></li>",
                        esc(&a.url.0),
                        esc(&a.name.0)
                    );
                }
                out.push_str("</ul>");
            }
            out.push_str("</li>");
        }
        out.push_str("</ol></section>");
    }
    out.push_str("\n</main>\n");
    out.push_str(&foot(frame));
    out
}

/// Markdown to HTML for the page: raw HTML is shown as text, images become their alt text
/// (the page loads nothing from elsewhere), and links with a scheme [`Link::check`] refuses
/// become plain text.
pub fn markdown(text: &str) -> String {
    let mut dropping_link = false;
    let events = Parser::new_ext(text, Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES)
        .filter_map(|event| match event {
            Md::Html(raw) | Md::InlineHtml(raw) => Some(Md::Text(raw)),
            Md::Start(Tag::Image { .. }) | Md::End(TagEnd::Image) => None,
            Md::Start(Tag::Link { ref dest_url, .. }) if Link::check(dest_url).is_err() => {
                dropping_link = true;
                None
            }
            Md::End(TagEnd::Link) if dropping_link => {
                dropping_link = false;
                None
            }
            other => Some(other),
        });
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, events);
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_shows_raw_html_as_text_and_drops_unsafe_links_and_images() {
        let html = markdown(
            "- <script>alert(1)</script> kept\n- [ok](https://example.com) \
             [bad](javascript:alert(1)) ![logo](https://cdn.example/x.png)\n",
        );
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<script"), "{html}");
        assert!(
            html.contains("<a href=\"https://example.com\">ok</a>"),
            "{html}"
        );
        assert!(!html.contains("javascript:"), "{html}");
        assert!(
            html.contains("bad"),
            "the text of a refused link stays: {html}"
        );
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains("logo"),
            "an image becomes its alt text: {html}"
        );
    }

    #[test]
    fn rates_are_never_rounded_up_to_a_perfect_score() {
        assert_eq!(format_rate(100.0), "100");
        assert_eq!(format_rate(0.0), "0");
        assert_eq!(format_rate(99.99), "99.9");
        assert_eq!(format_rate(80.0), "80.0");
    }
}
