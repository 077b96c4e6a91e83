//! Error responses: `{"error": "...", "request_id": "..."}` with the right status.
//!
//! Handlers return their function's own `thiserror` enum; its `IntoResponse` calls [`respond`],
//! which logs the full error (with its source chain) and sends the client only the short public
//! message. The request id comes from a task-local set by the request-id middleware, so every
//! error body can be matched to its log line without threading the id through handlers.

use axum::Json;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

tokio::task_local! {
    // The header's own value: every request sets it, few read it back as text (error bodies).
    static REQUEST_ID: HeaderValue;
}

/// The id of the request being served on this task, if the request-id middleware set one.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID
        .try_with(|id| id.to_str().ok().map(str::to_owned))
        .ok()
        .flatten()
}

/// Runs `fut` with `id` as the current request id.
pub async fn scope_request_id<F: Future>(id: HeaderValue, fut: F) -> F::Output {
    REQUEST_ID.scope(id, fut).await
}

/// A short line describing what an invocation did, attached to responses as an extension so that
/// the run recorder can store it without parsing bodies.
#[derive(Debug, Clone)]
pub struct RunSummary(pub String);

/// An error that knows which status it maps to and what the client may be told.
pub trait PublicError: std::error::Error {
    fn status(&self) -> StatusCode;
    /// What the client sees. Defaults to the `Display` text, which must therefore not carry
    /// internal detail for 5xx variants; override it when it does.
    fn public_message(&self) -> String {
        self.to_string()
    }
}

/// Logs `err` with its whole source chain and turns it into the JSON error response.
pub fn respond<E: PublicError>(err: &E) -> Response {
    let status = err.status();
    let mut detail = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    if status.is_server_error() {
        tracing::error!(status = status.as_u16(), error = %detail, "request failed");
    } else {
        tracing::info!(status = status.as_u16(), error = %detail, "request rejected");
    }
    error_response(status, err.public_message())
}

/// The JSON error body for `status`, carrying the current request id.
pub fn error_response(status: StatusCode, message: impl Into<String>) -> Response {
    let message = message.into();
    let body = json!({ "error": message, "request_id": current_request_id() });
    let mut resp = (status, Json(body)).into_response();
    resp.extensions_mut().insert(RunSummary(message));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Demo {
        #[error("database exploded")]
        Db(#[source] std::io::Error),
    }

    impl PublicError for Demo {
        fn status(&self) -> StatusCode {
            StatusCode::SERVICE_UNAVAILABLE
        }
        fn public_message(&self) -> String {
            "store unavailable".into()
        }
    }

    #[tokio::test]
    async fn body_carries_public_message_and_request_id_only() {
        let err = Demo::Db(std::io::Error::other("password=hunter2 at 10.0.0.1"));
        let resp =
            scope_request_id(HeaderValue::from_static("req-1"), async { respond(&err) }).await;
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        let bytes = axum::body::to_bytes(resp.into_body(), 1024)
            .await
            .expect("body");
        let v: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(
            v,
            json!({"error": "store unavailable", "request_id": "req-1"})
        );
    }
}
