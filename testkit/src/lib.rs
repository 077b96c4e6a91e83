//! Test harness shared by the workspace's integration tests (a dev-dependency only):
//!
//! - [`TestDb`]: a PostgreSQL database of its own per test, dropped afterwards;
//! - [`MongoServer`]: a real MongoDB wire-protocol server (PoloDB's) per test on a free port;
//! - [`lambda`]: a minimal AWS Lambda Runtime API and a function binary driven by it.

mod config;
pub mod lambda;
mod mongo;
mod pg;

pub use mongo::MongoServer;
pub use pg::TestDb;
