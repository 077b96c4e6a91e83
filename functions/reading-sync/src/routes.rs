//! HTTP routes of reading-sync: run a sync, page through stored readings.

use crate::{READING_PATH, ReadingSync, SYNC_PATH, SyncError, SyncReport, sink};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hub_runtime::error::{PublicError, respond};
use hub_runtime::function::run_tracked;
use hub_runtime::http::{reply, reply_interrupted};
use hub_runtime::store::StoreError;
use hub_runtime::{RouteTable, Routes, Trigger};
use serde::{Deserialize, Serialize};

/// The routes: `POST` (and, as the seed allowed, `GET`) runs a sync; `GET /api/reading` pages.
pub(crate) fn table(f: &ReadingSync) -> Routes {
    RouteTable::new()
        .post(SYNC_PATH, sync_route)
        .get(SYNC_PATH, sync_route)
        .get(READING_PATH, list_route)
        .with_state(f.clone())
}

/// Runs a sync as a tracked task, so a client that disconnects or times out does not cut it
/// off half way (the gateway waits for tracked tasks at shutdown).
pub(crate) async fn sync_tracked(f: &ReadingSync, trigger: Trigger) -> SyncReport {
    let task = f.clone();
    run_tracked(&f.inner.tasks, async move { task.sync(trigger).await }).await
}

async fn sync_route(State(f): State<ReadingSync>) -> Response {
    let report = sync_tracked(&f, f.inner.http_trigger).await;
    let status = match &report.error {
        Some(SyncError::Interrupted) => return reply_interrupted(report.body(), report.summary()),
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
    #[error("database unavailable")]
    Store(#[from] StoreError),
}

impl PublicError for ListError {
    fn status(&self) -> StatusCode {
        match self {
            ListError::Query(_) | ListError::Limit => StatusCode::BAD_REQUEST,
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
    limit: Option<i64>,
    offset: Option<u32>,
    source: Option<String>,
    event_type: Option<String>,
}

#[derive(Serialize)]
struct PageBody {
    items: Vec<sink::StoredReading>,
    limit: i64,
    offset: i64,
    next_offset: Option<i64>,
    truncated: bool,
}

const MAX_PAGE: i64 = 500;
/// Bytes of `payload` + `meta` per page (a page holds at least one row, whatever its size):
/// 4 MiB keeps an answer inside Lambda's 6 MB response limit and a browser's patience.
const MAX_PAGE_BYTES: i64 = 4 * 1024 * 1024;

async fn list_route(
    State(f): State<ReadingSync>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, ListError> {
    let Query(p) = params?;
    let limit = p.limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ListError::Limit);
    }
    let offset = i64::from(p.offset.unwrap_or(0));
    let q = sink::ListQuery {
        source: p.source.filter(|s| !s.is_empty()),
        event_type: p.event_type.filter(|s| !s.is_empty()),
        limit,
        offset,
        max_bytes: MAX_PAGE_BYTES,
    };
    let page = sink::list(f.store().await?, &q).await?;
    let shown = page.items.len() as i64;
    // A page cut short by the byte cap goes on where it stopped; a full one after its end.
    let truncated = page.items.len() < page.uncapped;
    let next_offset = (truncated || shown == limit).then_some(offset + shown);
    // Serialized straight from the rows: a `json!` tree would re-parse every payload.
    Ok(Json(PageBody {
        items: page.items,
        limit,
        offset,
        next_offset,
        truncated,
    })
    .into_response())
}
