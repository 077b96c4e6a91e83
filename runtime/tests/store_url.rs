//! Which store `DATABASE_URL` selects, and errors that say what is wrong without echoing a
//! password.

use hub_runtime::{HubConfig, Source, Store};
use std::collections::HashMap;

fn config(dir: &std::path::Path, url: Option<&str>) -> HubConfig {
    let mut env = HashMap::from([
        ("HUB_DATA_DIR".to_owned(), dir.display().to_string()),
        // No hub.toml from the working directory.
        ("HUB_CONFIG".to_owned(), "/dev/null".to_owned()),
    ]);
    if let Some(u) = url {
        env.insert("DATABASE_URL".to_owned(), u.to_owned());
    }
    HubConfig::from_source(&Source::from_parts(None, env).expect("source")).expect("config")
}

#[tokio::test]
async fn sqlite_urls_open_that_file_and_other_schemes_are_refused_by_name() {
    let dir = tempfile::TempDir::new().expect("dir");
    let file = dir.path().join("elsewhere/state.db");
    let store = Store::connect(&config(
        dir.path(),
        Some(&format!("sqlite://{}", file.display())),
    ))
    .await
    .expect("sqlite: URL");
    assert_eq!(store.backend(), "sqlite");
    assert!(file.is_file(), "the named file holds the store");
    assert!(!dir.path().join("hub.db").exists(), "not the default file");

    let err = Store::connect(&config(dir.path(), Some("mysql://hub:s3cret@db/hub")))
        .await
        .expect_err("unknown scheme");
    let text = err.to_string();
    assert!(
        text.contains("DATABASE_URL must start with postgres://, postgresql:// or sqlite:")
            && text.contains("\"mysql\"")
            && !text.contains("s3cret"),
        "{text}"
    );
}

#[tokio::test]
async fn sqlite_open_errors_name_the_path() {
    let dir = tempfile::TempDir::new().expect("dir");
    // A directory where the database file should be: SQLite cannot open it.
    std::fs::create_dir(dir.path().join("hub.db")).expect("mkdir");
    let err = Store::connect(&config(dir.path(), None))
        .await
        .expect_err("cannot open");
    let text = err.to_string();
    assert!(
        text.contains(&dir.path().join("hub.db").display().to_string()),
        "{text}"
    );
}
