//! HTTP routes of gate-check, both operator routes (they reveal and change the funnel):
//! `GET /api/gate` shows the state, `POST /api/gate/check` runs one check now.

use crate::{CHECK_PATH, Gate, GateError, STATUS_PATH};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hub_runtime::error::{PublicError, error_response, respond};
use hub_runtime::http::reply;
use hub_runtime::{Function, RouteTable, Routes};
use serde_json::{Value, json};

pub(crate) fn table(f: &Gate) -> Routes {
    RouteTable::new()
        .get(STATUS_PATH, status_route)
        .post(CHECK_PATH, check_route)
        .with_state(f.clone())
}

impl PublicError for GateError {
    fn status(&self) -> StatusCode {
        StatusCode::SERVICE_UNAVAILABLE
    }

    /// The kind of failure only: tailscaled's and the store's own text goes to the log and
    /// the run.
    fn public_message(&self) -> String {
        match self {
            GateError::Api(_) => "tailscaled's LocalAPI failed".into(),
            GateError::Conflict(_) => "the serve config holds a conflicting entry".into(),
            GateError::State(_) | GateError::Both { .. } => "the gate state failed".into(),
            GateError::Contended => self.to_string(),
        }
    }
}

impl IntoResponse for GateError {
    fn into_response(self) -> Response {
        respond(&self)
    }
}

async fn status_route(State(f): State<Gate>) -> Result<Json<Value>, GateError> {
    let st = f.state().await?;
    let cfg = f.config();
    Ok(Json(json!({
        "open": st.open,
        "since": st.since,
        "healthy_streak": st.healthy_streak,
        "unhealthy_streak": st.unhealthy_streak,
        "open_after": cfg.open_after,
        "close_after": cfg.close_after,
        "published": st.applied,
        "changes": st.changes.iter().rev().collect::<Vec<_>>(),
    })))
}

async fn check_route(State(f): State<Gate>) -> Result<Response, GateError> {
    if let Err(reason) = f.configured() {
        return Ok(error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not configured: {reason}"),
        ));
    }
    let c = f.check().await?;
    let body = json!({"open": c.open, "healthy": c.health.healthy, "reason": c.health.reason,
                      "changed": c.changed, "summary": c.summary});
    Ok(reply(StatusCode::OK, body, c.summary))
}
