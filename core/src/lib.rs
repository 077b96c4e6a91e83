//! hub-core: what every Observability Hub binary needs, and nothing heavier — the host agent
//! (`hub-collector`) links only this, not the HTTP server, the database drivers, the Lambda
//! runtime or OpenTelemetry that `hub-runtime` brings.
//!
//! - [`config`]: typed config loaded once — defaults, then `hub.toml`, then the environment;
//!   secrets also from `NAME_FILE`, never printed.
//! - [`openbao`]: secrets read from OpenBao's KV v2 at start, where the old hub kept them.
//! - [`logs`]: JSON log lines (stdout or stderr) filtered by `RUST_LOG`, secrets redacted.
//! - [`redact`]: every secret the config loads is replaced by `***` in logs and run summaries.
//! - [`wire`]: the batch of host samples `hub-collector` pushes and metrics-flush takes.

pub mod config;
pub mod logs;
pub mod openbao;
pub mod redact;
pub mod wire;

pub use config::{ConfigError, HubConfig, Source};
