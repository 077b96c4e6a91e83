//! hub-runtime: the shared runtime every Observability Hub function stands on.
//!
//! - [`function`]: the `Function` trait, the `Context` a function is built from, and the
//!   `Registration` the gateway's list and the Lambda binaries use.
//! - [`routes`]: a function's route table (Router + `/api/functions` entries) and header guards.
//! - [`auth`]: header-only credential checks (bearer tokens).
//! - [`config`] (from `hub-core`): typed config loaded once — defaults, then `hub.toml`, then
//!   the environment; secrets also from `NAME_FILE`, never printed.
//! - [`error`]: JSON error bodies `{"error", "request_id"}`; detail goes to the log only.
//! - [`http`]: the middleware stack shared by the gateway and Lambda, and run recording.
//! - [`runs`] / [`store`]: run history and replay keys in PostgreSQL or embedded SQLite;
//!   `store::Tables` creates a function's own tables once, on first use.
//! - [`metrics`]: Prometheus counters for runs, HTTP requests and scheduler skips.
//! - [`telemetry`]: JSON logs on stdout, OTLP traces when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
//! - [`lambda`]: serve one function's Router with `lambda_http`.

pub mod auth;
/// Layered config and secrets, from `hub-core` (shared with the collector).
pub use hub_core::config;
pub mod error;
pub mod function;
pub mod html;
pub mod http;
pub mod lambda;
pub mod metrics;
pub mod routes;
pub mod runs;
pub mod store;
pub mod telemetry;

pub use config::{ConfigError, HubConfig, Source};
pub use error::{PublicError, RunSummary};
pub use function::{Context, Edge, Function, InvokeError, Registration, require};
pub use routes::{RouteInfo, RouteTable, Routes};
pub use runs::{Outcome, Report, RunError, Runs, Trigger};
pub use store::Store;
