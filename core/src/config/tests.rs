use super::*;
use std::io::Write;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn toml_file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(text.as_bytes()).expect("write");
    f
}

#[test]
fn environment_overrides_file_which_overrides_defaults() {
    let f = toml_file("[hub]\nrequest_timeout_secs = 7\nmax_concurrency = 3\n");
    let src =
        Source::from_parts(Some(f.path()), env(&[("HUB_MAX_CONCURRENCY", "9")])).expect("load");
    let cfg = HubConfig::from_source(&src).expect("config");
    assert_eq!(cfg.request_timeout, Duration::from_secs(7));
    assert_eq!(cfg.max_concurrency, 9);
    assert_eq!(cfg.data_dir, PathBuf::from("var"));
    assert!(cfg.database_url.is_none());
}

#[test]
fn invalid_value_names_the_setting() {
    let src = Source::from_parts(None, env(&[("HUB_MAX_BODY_BYTES", "lots")])).expect("load");
    let err = HubConfig::from_source(&src).expect_err("must fail");
    let text = err.to_string();
    assert!(text.contains("HUB_MAX_BODY_BYTES"), "{text}");
    assert!(text.contains("lots"), "{text}");
}

#[test]
fn broken_toml_is_reported_with_its_path() {
    let f = toml_file("[hub\n");
    let err = Source::from_parts(Some(f.path()), HashMap::new()).expect_err("must fail");
    assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
    assert!(err.to_string().contains(&f.path().display().to_string()));
}

#[test]
fn secrets_come_from_env_file_or_toml_and_never_show_in_debug() {
    let secret_file = toml_file("from-file\n");
    let path = secret_file.path().to_str().expect("utf8").to_owned();
    let src = Source::from_parts(None, env(&[("TOKEN_FILE", &path)])).expect("load");
    let token = src.secret("x.token", "TOKEN").expect("read").expect("set");
    assert_eq!(token.expose_secret(), "from-file");
    assert!(!format!("{token:?}").contains("from-file"));
    assert!(!format!("{src:?}").contains(&path));

    let src =
        Source::from_parts(None, env(&[("TOKEN", "direct"), ("TOKEN_FILE", &path)])).expect("load");
    let token = src.secret("x.token", "TOKEN").expect("read").expect("set");
    assert_eq!(token.expose_secret(), "direct");

    let f = toml_file("[x]\ntoken = \"in-toml\"\n");
    let src = Source::from_parts(Some(f.path()), HashMap::new()).expect("load");
    let token = src.secret("x.token", "TOKEN").expect("read").expect("set");
    assert_eq!(token.expose_secret(), "in-toml");

    let src = Source::from_parts(None, env(&[("TOKEN", "")])).expect("load");
    assert!(
        src.secret("x.token", "TOKEN").expect("read").is_none(),
        "empty is unset"
    );
}

#[test]
fn the_old_hubs_db_settings_build_the_database_url() {
    let url = |pairs: &[(&str, &str)]| {
        let src = Source::from_parts(None, env(pairs)).expect("load");
        HubConfig::from_source(&src).map(|c| c.database_url.map(|u| u.expose_secret().to_owned()))
    };
    assert_eq!(
        url(&[]).expect("valid"),
        None,
        "neither: the embedded store"
    );
    assert_eq!(
        url(&[("DB_HOST", "10.0.0.5"), ("SERVER_DB_PASSWORD", "p@ss/w:rd")]).expect("valid"),
        Some("postgres://server:p%40ss%2Fw%3Ard@10.0.0.5:30432/homelab?sslmode=disable".into())
    );
    assert_eq!(
        url(&[
            ("DB_HOST", "::1"),
            ("DB_PORT", "5432"),
            ("DB_USER", "grafana"),
            ("DB_NAME", "metrics"),
            ("DB_SSLMODE", "require"),
        ])
        .expect("valid"),
        Some("postgres://grafana@[::1]:5432/metrics?sslmode=require".into())
    );
    // DATABASE_URL wins.
    assert_eq!(
        url(&[("DATABASE_URL", "postgres://a@b/c"), ("DB_HOST", "x")]).expect("valid"),
        Some("postgres://a@b/c".into())
    );
    for (bad, setting) in [
        (("DB_PORT", "99999"), "DB_PORT"),
        (("DB_SSLMODE", "sometimes"), "DB_SSLMODE"),
    ] {
        let err = url(&[("DB_HOST", "h"), bad]).expect_err("invalid");
        assert!(err.to_string().contains(setting), "{err}");
    }
}

#[test]
fn missing_secret_file_is_an_error_not_silence() {
    let src =
        Source::from_parts(None, env(&[("TOKEN_FILE", "/nonexistent/secret")])).expect("load");
    let err = src.secret("x.token", "TOKEN").expect_err("must fail");
    assert!(err.to_string().contains("TOKEN_FILE"), "{err}");
}
