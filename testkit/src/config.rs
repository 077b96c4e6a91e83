//! The harness's settings, read from the environment once per test process.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::OnceLock;

#[derive(Debug)]
pub(crate) struct Settings {
    /// `TEST_PG_ADMIN_URL`: the server tests create their databases on.
    pub pg_admin_url: String,
    /// `TESTKIT_POLODB_LOG`: show PoloDB's own log.
    pub polodb_log: bool,
    /// `PATH`: searched for `polodb`, and passed on to spawned function binaries.
    pub path: Option<OsString>,
    /// `HOME`: where `make test-deps` caches PoloDB.
    pub home: PathBuf,
    /// `HUB_LAMBDA_DIR`: the packages `make lambda-build` made (`<dir>/<function>/bootstrap`),
    /// for the Lambda tests to run instead of their debug builds.
    pub lambda_dir: Option<PathBuf>,
}

pub(crate) fn settings() -> &'static Settings {
    static SETTINGS: OnceLock<Settings> = OnceLock::new();
    SETTINGS.get_or_init(|| Settings {
        pg_admin_url: std::env::var("TEST_PG_ADMIN_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned()),
        polodb_log: std::env::var_os("TESTKIT_POLODB_LOG").is_some(),
        path: std::env::var_os("PATH"),
        home: std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default(),
        lambda_dir: std::env::var_os("HUB_LAMBDA_DIR").map(PathBuf::from),
    })
}

/// A server binary the tests run: `$<env>` when set, else `name` on `PATH`, else where
/// `make test-deps` installs it (`~/.cache/hub-tools/<cached>/bin/<name>`); a clear panic
/// naming all three when none is there. `what` names it in that message.
pub(crate) fn tool(env: &str, name: &str, cached: &str, what: &str) -> PathBuf {
    if let Some(bin) = std::env::var_os(env) {
        return PathBuf::from(bin);
    }
    let s = settings();
    let on_path = s.path.as_ref().and_then(|path| {
        std::env::split_paths(path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    if let Some(bin) = on_path {
        return bin;
    }
    let bin = s
        .home
        .join(".cache/hub-tools")
        .join(cached)
        .join("bin")
        .join(name);
    assert!(
        bin.is_file(),
        "no {what}: set {env}, put {name} on PATH, or run `make test-deps` (installs it into {})",
        bin.display()
    );
    bin
}
