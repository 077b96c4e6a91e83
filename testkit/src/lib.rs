//! Test harness shared by the workspace's integration tests (a dev-dependency only):
//!
//! - [`TestDb`]: a PostgreSQL database of its own per test, dropped afterwards;
//! - [`MongoServer`]: a real MongoDB wire-protocol server (PoloDB's) per test on a free port;
//! - [`lambda`]: a minimal AWS Lambda Runtime API and a function binary driven by it;
//! - [`grafana`]: Grafana dashboards' panel SQL, macros replaced, run against a database;
//! - [`BaoServer`]: a real OpenBao dev server per test;
//! - [`GarageServer`]: a real S3 server (Garage) per test;
//! - [`github::GithubApi`]: a stand-in for GitHub's REST issues listing (no GitHub here),
//!   answering with `@octokit/fixtures`' recorded shapes and recording every request;
//! - [`bench::record`]: a bench's figures for `make bench`'s report;
//! - [`tailscale::LocalApi`]: a stand-in for tailscaled's LocalAPI on a unix socket (the one
//!   fake: tailscaled cannot run here), recording every call.

pub mod bao;
pub mod bench;
mod config;
pub mod garage;
pub mod github;
pub mod grafana;
pub mod lambda;
mod mongo;
mod pg;
pub mod tailscale;

pub use bao::BaoServer;
pub use garage::GarageServer;
pub use mongo::MongoServer;
pub use pg::{Backend, TestDb};
