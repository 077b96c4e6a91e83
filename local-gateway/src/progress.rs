//! Progress of long backup work on a terminal (bytes, rate, ETA when the size is known); nothing
//! when stderr is not a terminal, so scripts and logs get only the JSON outcome.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

/// A bar on stderr for `len` bytes (`None`: a counter, as a backup's size is only known at the
/// end), or a hidden one when stderr is not a terminal.
pub fn bar(label: &str, len: Option<u64>) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (bar, template) = match len {
        Some(n) => (
            ProgressBar::new(n),
            "{prefix:>10} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        ),
        None => (
            ProgressBar::new_spinner(),
            "{prefix:>10} {spinner} {bytes} {binary_bytes_per_sec} {elapsed}",
        ),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(label.to_owned());
    bar
}

/// A callback for `Backup::run_sets`: one counter per set, each finished when the next starts.
pub fn per_set() -> (impl Fn(&str, u64) + Send + Sync, impl FnOnce()) {
    let current: Arc<Mutex<Option<(String, ProgressBar)>>> = Arc::default();
    let finish = {
        let current = current.clone();
        move || {
            if let Some((_, bar)) = current.lock().ok().and_then(|mut c| c.take()) {
                bar.finish();
            }
        }
    };
    let report = move |set: &str, bytes: u64| {
        let Ok(mut cur) = current.lock() else { return };
        if cur.as_ref().is_none_or(|(name, _)| name != set) {
            if let Some((_, old)) = cur.take() {
                old.finish();
            }
            *cur = Some((set.to_owned(), bar(set, None)));
        }
        if let Some((_, bar)) = cur.as_ref() {
            bar.set_position(bytes);
        }
    };
    (report, finish)
}
