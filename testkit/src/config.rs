//! The harness's settings, read from the environment once per test process.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::OnceLock;

#[derive(Debug)]
pub(crate) struct Settings {
    /// `TEST_PG_ADMIN_URL`: the server tests create their databases on.
    pub pg_admin_url: String,
    /// `POLODB_BIN`: an explicit PoloDB server binary.
    pub polodb_bin: Option<PathBuf>,
    /// `TESTKIT_POLODB_LOG`: show PoloDB's own log.
    pub polodb_log: bool,
    /// `PATH`: searched for `polodb`, and passed on to spawned function binaries.
    pub path: Option<OsString>,
    /// `HOME`: where `make test-deps` caches PoloDB.
    pub home: PathBuf,
}

pub(crate) fn settings() -> &'static Settings {
    static SETTINGS: OnceLock<Settings> = OnceLock::new();
    SETTINGS.get_or_init(|| Settings {
        pg_admin_url: std::env::var("TEST_PG_ADMIN_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned()),
        polodb_bin: std::env::var_os("POLODB_BIN").map(PathBuf::from),
        polodb_log: std::env::var_os("TESTKIT_POLODB_LOG").is_some(),
        path: std::env::var_os("PATH"),
        home: std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default(),
    })
}
