//! HTTP routes of minio-backup: run a backup, list the sets and their good backups. Both are
//! operator routes (they reveal and change state); keep them off a public listener.

use crate::{
    Backup, BackupError, LIST_PATH, RUN_PATH, outcome, requested_set, stopped_by_shutdown,
};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hub_runtime::error::respond;
use hub_runtime::function::run_tracked;
use hub_runtime::http::{reply, reply_interrupted};
use hub_runtime::{RouteTable, Routes};
use serde_json::{Value, json};

pub(crate) fn table(f: &Backup) -> Routes {
    RouteTable::new()
        .post(RUN_PATH, run_route)
        .get(LIST_PATH, list_route)
        .with_state(f.clone())
}

impl axum::response::IntoResponse for BackupError {
    fn into_response(self) -> Response {
        respond(&self)
    }
}

/// `{}` or no body backs up every set; `{"set": NAME}` one.
async fn run_route(State(f): State<Backup>, body: Bytes) -> Result<Response, BackupError> {
    let input = if body.is_empty() {
        Ok(Value::Object(Default::default()))
    } else {
        serde_json::from_slice::<Value>(&body)
    };
    let only = match input
        .map_err(|_| "the body is not JSON")
        .and_then(|v| requested_set(&v))
    {
        Ok(only) => only,
        Err(message) => return Ok(bad_request(message)),
    };
    // A tracked task: a client that disconnects or times out does not cut the backup off, and
    // the gateway waits for it at shutdown (which interrupts it past the grace).
    let task = f.clone();
    let results = run_tracked(&f.inner.tasks, async move {
        task.run_sets(only.as_deref(), &|_, _| {}).await
    })
    .await?;
    let (ok, body, summary) = outcome(&results);
    Ok(if ok {
        reply(StatusCode::OK, body, summary)
    } else if stopped_by_shutdown(&results) {
        reply_interrupted(body, summary)
    } else {
        reply(StatusCode::SERVICE_UNAVAILABLE, body, summary)
    })
}

fn bad_request(message: &str) -> Response {
    let e = hub_runtime::error::error_response(StatusCode::BAD_REQUEST, message);
    e.into_response()
}

/// Every set with its target and good backups, newest first.
async fn list_route(State(f): State<Backup>) -> Result<Json<Value>, BackupError> {
    let mut sets = Vec::new();
    for set in &f.config().sets {
        let mut good = f.good_backups(&set.name).await?;
        good.reverse();
        let backups: Vec<Value> = good
            .iter()
            .map(|g| {
                json!({"key": g.manifest.key, "started_at": g.manifest.started_at,
                       "bytes": g.manifest.size, "sha256": g.manifest.sha256,
                       "duration_ms": g.manifest.duration_ms})
            })
            .collect();
        sets.push(json!({"set": set.name, "policy": {
            "keep_last": set.policy.keep_last, "keep_daily": set.policy.keep_daily,
            "keep_weekly": set.policy.keep_weekly, "keep_monthly": set.policy.keep_monthly},
            "backups": backups}));
    }
    Ok(Json(json!({"target": f.target().describe(), "sets": sets})))
}
