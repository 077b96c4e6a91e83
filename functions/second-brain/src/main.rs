//! Lambda entry for second-brain: the sync and list routes as a Function URL, and an
//! EventBridge scheduled event runs one sync. Build with
//! `cargo lambda build --release -p second-brain`.

fn main() -> Result<(), hub_runtime::lambda::Error> {
    hub_runtime::lambda::run(second_brain::REGISTRATION)
}
