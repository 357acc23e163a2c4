//! What list endpoints (`GET /api/v1/callbacks`, `GET /api/v1/recordings`)
//! share: reading their query (filters, where an empty value is no filter,
//! and `limit`), checking it, and answering with what the store read.

use std::future::Future;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::auth::check_token;
use super::errors::{error, json_response, ApiError};
use super::request::limit_param;
use super::ApiState;

/// A filter of a list's query: an empty value (`state=`) is no filter, as
/// the schema allows; white space is not empty.
pub(super) fn nonempty(value: Option<String>) -> Option<String> {
    value.filter(|s| !s.is_empty())
}

/// Answer a list request, checking in this order: the token (`401`, or
/// `403` for a role that may not read), the list's own check of its
/// `filters` (their error), then `limit` (1 to 1000, absent: 100; `422`).
/// Then `fetch` reads at most that many rows: `200` with `body` made of
/// them, or `503` when the store fails.
pub(super) async fn answer_list<Row, Body, Fut>(
    ctx: &ApiState,
    headers: &HeaderMap,
    filters: Result<(), ApiError>,
    limit: Option<i64>,
    fetch: impl FnOnce(i64) -> Fut,
    body: impl FnOnce(Vec<Row>) -> Body,
) -> Response
where
    Fut: Future<Output = anyhow::Result<Vec<Row>>>,
    Body: Serialize,
{
    if let Some(r) = check_token(ctx, headers) {
        return r;
    }
    if let Err(e) = filters {
        return e.into_response();
    }
    let limit = match limit_param(limit) {
        Ok(l) => l,
        Err(e) => return e.into_response(),
    };
    match fetch(limit).await {
        Ok(rows) => json_response(StatusCode::OK, body(rows)),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}
