//! # local-gateway (`hub-gateway`)
//!
//! Serves every Observability Hub function behind one HTTP server on the host, runs them from
//! the command line, and records every invocation as a run.
//!
//! **Listeners:** the operator listener (`HUB_BIND`:`PORT`, 127.0.0.1:8085) serves every
//! route; the public listener (`HUB_PUBLIC_BIND`:`HUB_PUBLIC_PORT`, 127.0.0.1:8086) only the
//! routes functions mark public, and is the one Tailscale Funnel points at. Operator routes
//! refuse funnelled requests and, with `HUB_OPERATOR_TOKEN`, anonymous ones (see [`edge`]).
//!
//! **Routes:** each function's own routes (see `GET /api/functions`), plus
//! `GET /healthz` (liveness), `GET /readyz` (every configured dependency answers, else 503
//! naming the failing one), `GET /api/health` (seed-compatible), `GET /` (a short page),
//! `GET /api/functions`, `GET /api/runs?function=&outcome=&since=&limit=&offset=`,
//! `GET /metrics` (Prometheus). Functions with a schedule also run on the cron scheduler
//! (see [`scheduler`]).
//!
//! **Environment:** `HUB_BIND` (127.0.0.1), `PORT` (8085), `HUB_PUBLIC_BIND` (127.0.0.1),
//! `HUB_PUBLIC_PORT` (8086), `HUB_OPERATOR_TOKEN` / `_FILE`, `HUB_OPERATOR_ANONYMOUS`,
//! `HUB_CONFIG` (`./hub.toml`),
//! `HUB_DATA_DIR` (`./var`), `DATABASE_URL` (embedded SQLite when unset),
//! `HUB_REQUEST_TIMEOUT_SECS`, `HUB_BODY_TIMEOUT_SECS`, `HUB_MAX_BODY_BYTES`, `HUB_MAX_CONCURRENCY`,
//! `HUB_SHUTDOWN_GRACE_SECS`, `HUB_RUN_RETENTION_DAYS`, `HUB_PRUNE_INTERVAL_SECS`,
//! `HUB_HEADER_TIMEOUT_SECS`, `HUB_MAX_CONNECTIONS`,
//! `OTEL_EXPORTER_OTLP_ENDPOINT`, `RUST_LOG`, and each function's own. Under systemd
//! (`Type=notify`): `NOTIFY_SOCKET`, `WATCHDOG_USEC`, `WATCHDOG_PID` (see [`systemd`]).
//!
//! **Run:** `hub-gateway` (same as `hub-gateway serve`); `hub-gateway invoke NAME --data JSON`;
//! `hub-gateway page build --out DIR` renders the public page (see [`page`]).

pub mod api;
pub mod app;
pub mod backup_cli;
pub mod cli;
pub mod edge;
pub mod funnel;
pub mod page;
pub mod pages;
pub mod progress;
pub mod scheduler;
pub mod server;
pub mod systemd;

pub use app::{Gateway, GatewayConfig, StartError};
