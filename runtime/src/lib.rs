//! hub-runtime: the shared runtime every Observability Hub function stands on.
//!
//! - [`function`]: the `Function` trait and the `Context` a function is built from.
//! - [`config`]: typed config loaded once — defaults, then `hub.toml`, then the environment;
//!   secrets also from `NAME_FILE`, never printed.
//! - [`error`]: JSON error bodies `{"error", "request_id"}`; detail goes to the log only.
//! - [`http`]: the middleware stack shared by the gateway and Lambda, and run recording.
//! - [`runs`] / [`store`]: run history and replay keys in PostgreSQL or embedded SQLite.
//! - [`metrics`]: Prometheus counters for runs, HTTP requests and scheduler skips.
//! - [`telemetry`]: JSON logs on stdout, OTLP traces when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
//! - [`lambda`]: serve one function's Router with `lambda_http`.

pub mod config;
pub mod error;
pub mod function;
pub mod html;
pub mod http;
pub mod lambda;
pub mod metrics;
pub mod runs;
pub mod store;
pub mod telemetry;

pub use config::{ConfigError, HubConfig, Source};
pub use error::{PublicError, RunSummary};
pub use function::{Context, Function, InvokeError, RouteInfo};
pub use runs::{Outcome, Report, Runs, Trigger};
pub use store::Store;
