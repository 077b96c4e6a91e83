use super::*;

const MINIMAL_LANDING: &str = "page_title: Hub\nhero:\n  title: Hello\n";

fn landing(text: &str) -> Result<Loaded<Landing>, ContentError> {
    parse(Path::new("page/landing.yaml"), text)
}

fn evolution(text: &str) -> Result<Loaded<Evolution>, ContentError> {
    parse(Path::new("page/evolution.yaml"), text)
}

/// The message of a refused file, which must name the file, the line and the key.
fn refused<T: std::fmt::Debug>(r: Result<Loaded<T>, ContentError>) -> (usize, String) {
    match r {
        Err(ContentError::Invalid { line, detail, .. }) => (line, detail),
        other => panic!("expected a located error, got {other:?}"),
    }
}

#[test]
fn the_shipped_examples_load_without_unknown_keys() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../page");
    let l: Loaded<Landing> = load(&dir.join("landing.yaml")).expect("page/landing.yaml");
    let e: Loaded<Evolution> = load(&dir.join("evolution.yaml")).expect("page/evolution.yaml");
    assert!(l.ignored.is_empty() && e.ignored.is_empty(), "{l:?} {e:?}");
    assert!(!l.content.principles.is_empty());
    assert!(e.content.chapters.iter().all(|c| !c.timeline.is_empty()));
}

#[test]
fn a_minimal_landing_needs_only_a_title_and_a_hero_title() {
    let l = landing(MINIMAL_LANDING).expect("minimal");
    assert_eq!(l.content.hero.title, Text("Hello".into()));
    assert!(l.content.principles.is_empty() && l.content.specification.is_none());
}

#[test]
fn a_script_link_is_refused_with_its_line_and_key() {
    let text =
        "page_title: Hub\nhero:\n  title: Hello\n  cta_text: Go\n  cta_link: javascript:alert(1)\n";
    let (line, detail) = refused(landing(text));
    assert_eq!(line, 5, "{detail}");
    assert!(detail.starts_with("hero.cta_link"), "{detail}");
    assert!(detail.contains("not javascript:"), "{detail}");
    let shown = landing(text).expect_err("refused").to_string();
    assert!(shown.starts_with("page/landing.yaml:5:"), "{shown}");
}

#[test]
fn links_allow_the_web_mail_fragments_and_relative_paths() {
    for ok in [
        "https://x.example/a",
        "http://x",
        "mailto:a@b",
        "#health",
        "evolution.html",
        "docs/a:b.md",
        "./x?y=z:1",
    ] {
        assert_eq!(Link::check(ok), Ok(()), "{ok}");
    }
    for bad in ["data:text/html,x", "JavaScript:x", "vbscript:x", "  "] {
        assert!(Link::check(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_missing_field_names_its_parent_and_line() {
    let (line, detail) = refused(landing("page_title: Hub\nhero:\n  subtitle: no title\n"));
    assert_eq!(line, 3, "{detail}");
    assert!(
        detail.contains("hero") && detail.contains("title"),
        "{detail}"
    );
}

#[test]
fn an_empty_title_is_refused() {
    let (_, detail) = refused(landing("page_title: '  '\nhero:\n  title: Hello\n"));
    assert!(detail.starts_with("page_title"), "{detail}");
    assert!(detail.contains("must not be empty"), "{detail}");
}

#[test]
fn a_bad_date_names_the_event() {
    let text = "page_title: E\nchapters:\n  - title: C\n    timeline:\n      - date: 2025-13-01\n        title: T\n";
    let (line, detail) = refused(evolution(text));
    assert_eq!(line, 5, "{detail}");
    assert!(
        detail.starts_with("chapters[0].timeline[0].date"),
        "{detail}"
    );
    assert!(detail.contains("YYYY-MM-DD"), "{detail}");
}

#[test]
fn broken_yaml_is_located() {
    let err = landing("page_title: Hub\nhero: [\n").expect_err("refused");
    assert!(
        matches!(err, ContentError::Invalid { line: 2.., .. }),
        "{err:?}"
    );
}

#[test]
fn unknown_keys_are_kept_as_warnings_with_their_path() {
    let l = landing("page_title: Hub\nhero:\n  title: Hello\n  subtitel: typo\ntheme: dark\n")
        .expect("unknown keys are not fatal");
    assert_eq!(l.ignored, ["hero.subtitel", "theme"]);
}

#[test]
fn chapters_are_ordered_by_their_newest_event() {
    let e = evolution(
        "page_title: E\nchapters:\n  - title: C\n    timeline:\n      - {date: 2025-01-02, title: a}\n      - {date: '2026-05-01', title: b}\n      - {date: 2025-07-01, title: c}\n",
    )
    .expect("evolution");
    assert_eq!(
        e.content.chapters[0].newest(),
        Some(Date(NaiveDate::from_ymd_opt(2026, 5, 1).expect("date")))
    );
}
