//! HTTP routes of second-brain, both operator routes: `POST /api/sync/brain` runs one sync,
//! `GET /api/brain` pages through stored entries.

use crate::run::SyncReport;
use crate::{BRAIN_PATH, BrainError, SYNC_PATH, SecondBrain, store};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hub_runtime::error::{PublicError, respond};
use hub_runtime::function::run_tracked;
use hub_runtime::http::{reply, reply_interrupted};
use hub_runtime::store::StoreError;
use hub_runtime::{RouteTable, Routes};
use serde::Deserialize;
use serde_json::json;

pub(crate) fn table(f: &SecondBrain) -> Routes {
    RouteTable::new()
        .post(SYNC_PATH, sync_route)
        .get(BRAIN_PATH, list_route)
        .with_state(f.clone())
}

/// Runs a sync as a tracked task, so a client that disconnects or times out does not cut it
/// off half way (the gateway waits for tracked tasks at shutdown).
pub(crate) async fn sync_tracked(f: &SecondBrain) -> SyncReport {
    let task = f.clone();
    run_tracked(&f.inner.tasks, async move { task.run_once().await }).await
}

async fn sync_route(State(f): State<SecondBrain>) -> Response {
    let report = sync_tracked(&f).await;
    let status = match &report.error {
        Some(BrainError::Interrupted) => return reply_interrupted(report.body(), report.summary()),
        Some(e) => e.status(),
        None => StatusCode::OK,
    };
    reply(status, report.body(), report.summary())
}

#[derive(Debug, thiserror::Error)]
enum ListError {
    #[error("invalid query: {0}")]
    Query(#[from] QueryRejection),
    #[error("limit must be 1–500")]
    Limit,
    #[error("q must be at most 200 characters")]
    LongQuery,
    #[error("database unavailable")]
    Store(#[from] StoreError),
}

impl PublicError for ListError {
    fn status(&self) -> StatusCode {
        match self {
            ListError::Query(_) | ListError::Limit | ListError::LongQuery => {
                StatusCode::BAD_REQUEST
            }
            ListError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn public_message(&self) -> String {
        match self {
            ListError::Query(r) => format!("invalid query: {}", r.body_text()),
            other => other.to_string(),
        }
    }
}

impl IntoResponse for ListError {
    fn into_response(self) -> Response {
        respond(&self)
    }
}

#[derive(Debug, Deserialize)]
struct ListParams {
    category: Option<String>,
    tag: Option<String>,
    q: Option<String>,
    limit: Option<i64>,
    offset: Option<u32>,
}

const MAX_PAGE: i64 = 500;

async fn list_route(
    State(f): State<SecondBrain>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, ListError> {
    let Query(p) = params?;
    let limit = p.limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ListError::Limit);
    }
    let q = p.q.filter(|s| !s.trim().is_empty());
    if q.as_ref().is_some_and(|q| q.chars().count() > 200) {
        return Err(ListError::LongQuery);
    }
    let offset = i64::from(p.offset.unwrap_or(0));
    let query = store::ListQuery {
        category: p.category.filter(|s| !s.is_empty()),
        tag: p.tag.filter(|s| !s.is_empty()),
        q,
        limit,
        offset,
    };
    let items = store::list(f.store().await?, &query).await?;
    let shown = items.len() as i64;
    let next_offset = (shown == limit).then_some(offset + shown);
    Ok(Json(json!({
        "items": items,
        "limit": limit,
        "offset": offset,
        "next_offset": next_offset,
    }))
    .into_response())
}
