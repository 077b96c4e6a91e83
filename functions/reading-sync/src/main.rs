//! Lambda entry for reading-sync: the sync and list routes as a Function URL, and an EventBridge
//! scheduled event runs one sync. Build with `cargo lambda build --release -p reading-sync`.

fn main() -> Result<(), hub_runtime::lambda::Error> {
    hub_runtime::lambda::run(reading_sync::REGISTRATION)
}
