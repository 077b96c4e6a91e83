//! The Lambda adapter: the same Router and middleware the gateway mounts, served by
//! `lambda_http::run`. A function's `main.rs` is one call to [`run`].
//!
//! Events that are not HTTP requests reach the Router as `POST /events` (lambda_http's
//! `pass_through` feature). An EventBridge scheduled event there is one scheduled run of the
//! function (`Function::invoke` with trigger `schedule`, recorded like a run of the gateway's
//! scheduler); a run that fails fails the invocation, so Lambda's error metrics and retries see
//! it. Any other non-HTTP event fails the invocation with a message saying what came.

use crate::config::{HubConfig, Source};
use crate::function::{Context, Function, Registration};
use crate::http::{Limits, body_limit, function_layers, standard_layers};
use crate::runs::{Runs, Trigger};
use crate::store::Store;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use lambda_http::request::RequestContext;
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

pub type Error = lambda_http::Error;

/// Where lambda_http's `pass_through` delivers non-HTTP events.
pub const EVENTS_PATH: &str = "/events";

/// Builds the app for one function exactly as Lambda will serve it, from the given settings
/// (store, function layers, the events route, shared stack).
pub async fn app_from_source(source: Source, registration: Registration) -> Result<Router, Error> {
    let source = source.with_openbao().await?;
    let hub = HubConfig::from_source(&source)?;
    let store = Store::connect(&hub).await?;
    let limits = Limits::from_hub(&hub);
    let ctx = Context::new(source, hub, store, Trigger::Lambda);
    let runs = ctx.runs.clone();
    let runs_metrics = runs.metrics().clone();
    let function = (registration.build)(ctx)?;
    runs.metrics().register_function(function.name());
    if let Err(reason) = function.configured() {
        tracing::warn!(function = function.name(), %reason, "function is not configured");
    }
    let router = function_layers(
        function.routes(),
        runs.clone(),
        function.name(),
        Trigger::Lambda,
        limits,
    );
    // Outside the function's layers: a scheduled run is recorded as such by `Runs::track`, not
    // as an HTTP request.
    let events = body_limit(
        Router::new()
            .route(EVENTS_PATH, post(on_event))
            .with_state(Events { function, runs }),
        limits.max_body_bytes,
    );
    Ok(standard_layers(
        router.merge(events),
        limits,
        runs_metrics,
        None,
    ))
}

/// [`app_from_source`] with the settings of this process (environment, `hub.toml`).
pub async fn app(registration: Registration) -> Result<Router, Error> {
    app_from_source(Source::load(None)?, registration).await
}

#[derive(Clone)]
struct Events {
    function: Arc<dyn Function>,
    runs: Runs,
}

/// Marks a response to a non-HTTP event as a failed invocation (see [`run`]).
#[derive(Debug, Clone)]
struct EventFailed(String);

fn event_failed(message: String) -> Response {
    let mut resp = axum::Json(json!({"error": message})).into_response();
    resp.extensions_mut().insert(EventFailed(message));
    resp
}

async fn on_event(State(ev): State<Events>, req: Request) -> Response {
    // A Function URL request for /events carries an HTTP request context; only lambda_http's
    // pass-through (a non-HTTP event) may start a run here.
    if !matches!(
        req.extensions().get::<RequestContext>(),
        Some(RequestContext::PassThrough)
    ) {
        return crate::error::error_response(axum::http::StatusCode::NOT_FOUND, "not found");
    }
    // Bounded by `body_limit` around this route.
    let body = axum::body::to_bytes(req.into_body(), usize::MAX)
        .await
        .unwrap_or_else(|_| Bytes::new());
    let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let scheduled = event["source"] == "aws.events" && event["detail-type"] == "Scheduled Event";
    if !scheduled {
        let kind = event["detail-type"]
            .as_str()
            .or(event["source"].as_str())
            .unwrap_or("unknown");
        return event_failed(format!(
            "{} takes HTTP requests and EventBridge scheduled events, not this event ({kind})",
            ev.function.name()
        ));
    }
    let name = ev.function.name();
    let input = match &event["detail"] {
        Value::Object(d) if !d.is_empty() => Value::Object(d.clone()),
        _ => json!({}),
    };
    let work = ev.function.invoke(Trigger::Schedule, input);
    let result = ev.runs.track(name, Trigger::Schedule, work).await;
    match result {
        Ok(report) => axum::Json(json!({
            "function": name,
            "outcome": report.outcome.as_str(),
            "summary": report.summary,
        }))
        .into_response(),
        Err(e) => event_failed(format!("{name}: {e}")),
    }
}

/// Entry point for a function's Lambda binary: `main` is one call to this.
pub fn run(registration: Registration) -> Result<(), Error> {
    let runtime = tokio::runtime::Runtime::new()?;
    // Telemetry exports from tasks of this runtime (see `telemetry`): started inside it.
    let _telemetry = {
        let _inside = runtime.enter();
        crate::telemetry::init(registration.name, crate::telemetry::LogOutput::Stdout)
    };
    runtime.block_on(async {
        let router = app(registration).await?;
        // A failed scheduled run must fail the invocation, which an HTTP-shaped answer cannot.
        let service = ServiceExt::<lambda_http::Request>::map_result(
            router,
            |res: Result<Response, std::convert::Infallible>| {
                let resp = res.unwrap_or_else(|never| match never {});
                match resp.extensions().get::<EventFailed>() {
                    Some(EventFailed(message)) => Err(Error::from(message.clone())),
                    None => Ok(resp),
                }
            },
        );
        lambda_http::run(service).await
    })
}
