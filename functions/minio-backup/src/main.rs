//! Lambda entry for minio-backup: the run and list routes as a Function URL, and an
//! EventBridge scheduled event runs every set. Sets that need this host's files are refused
//! there. Build with `cargo lambda build --release -p minio-backup`.

fn main() -> Result<(), hub_runtime::lambda::Error> {
    hub_runtime::lambda::run(minio_backup::REGISTRATION)
}
