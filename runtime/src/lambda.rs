//! The Lambda adapter: the same Router and middleware the gateway mounts, served by
//! `lambda_http::run`. A function's `main.rs` is one call to [`run`].

use crate::config::{HubConfig, Source};
use crate::function::{Context, Function};
use crate::http::{Limits, function_layers, standard_layers};
use crate::runs::Trigger;
use crate::store::Store;
use axum::Router;

pub type Error = lambda_http::Error;

/// Builds the app for one function exactly as Lambda will serve it (config from the
/// environment, store, function layers, shared stack).
pub async fn app<F, E>(build: impl FnOnce(Context) -> Result<F, E>) -> Result<Router, Error>
where
    F: Function + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    let source = Source::load(None)?;
    let hub = HubConfig::from_source(&source)?;
    let store = Store::connect(&hub).await?;
    let limits = Limits {
        request_timeout: hub.request_timeout,
        max_body_bytes: hub.max_body_bytes,
    };
    let max_concurrency = hub.max_concurrency;
    let ctx = Context::new(source, hub, store, Trigger::Lambda);
    let runs = ctx.runs.clone();
    let runs_metrics = runs.metrics().clone();
    let function = build(ctx)?;
    if let Err(reason) = function.configured() {
        tracing::warn!(function = function.name(), %reason, "function is not configured");
    }
    let router = function_layers(
        function.router(),
        runs,
        function.name(),
        Trigger::Lambda,
        max_concurrency,
    );
    Ok(standard_layers(router, limits, runs_metrics))
}

/// Entry point for a function's Lambda binary.
pub fn run<F, E>(
    service: &'static str,
    build: impl FnOnce(Context) -> Result<F, E>,
) -> Result<(), Error>
where
    F: Function + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    let _telemetry = crate::telemetry::init(service, crate::telemetry::LogOutput::Stdout);
    tokio::runtime::Runtime::new()?.block_on(async {
        let router = app(build).await?;
        lambda_http::run(router).await
    })
}
