//! Callbacks: web requests for one, the list and history, cancel and
//! reschedule.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::auth::{authorize, check_token, Need};
use super::errors::{error, json_response, ApiError};
use super::request::{parse_body, str_field, time_field, ApiQuery};
use super::ApiState;

pub(super) fn callback_json(cb: &ringback_callback::Callback) -> Value {
    json!({
        "id": cb.id,
        "queue": cb.queue,
        "number": cb.number,
        "state": cb.state.as_str(),
        "entered_at": crate::store::ts(cb.entered_at),
        "created_at": crate::store::ts(cb.created_at),
        "attempts": cb.attempts,
        "next_attempt_at": cb.next_attempt_at.map(crate::store::ts),
        "expires_at": crate::store::ts(cb.expires_at),
        "context": cb.context,
        "origin": cb.origin.as_str(),
        "last_result": cb.last_result.as_ref().map(|r| r.code()),
    })
}

pub(super) fn row_json(r: &crate::store::callbacks::CallbackRow) -> Value {
    json!({
        "id": r.id, "queue": r.queue, "number": r.number, "state": r.state,
        "entered_at": r.entered_at, "created_at": r.created_at, "updated_at": r.updated_at,
        "attempts": r.attempts, "next_attempt_at": r.next_attempt_at, "expires_at": r.expires_at,
        "preferred_start": r.preferred_start, "preferred_end": r.preferred_end,
        "context": r.context, "origin": r.origin, "last_result": r.last_result,
    })
}

/// `POST /api/v1/callbacks` — a web visitor asks to be called back.
pub(super) async fn create_callback(
    State(ctx): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&ctx, &headers, None, Need::Supervise) {
        return r.into_response();
    }
    let v = match parse_body(&body) {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let fields = (|| {
        let number = str_field(&v, "number", true, 32)?.unwrap_or_default();
        let queue = str_field(&v, "queue", true, 64)?.unwrap_or_default();
        let context = str_field(&v, "context", false, 1000)?.unwrap_or_default();
        let start = time_field(&v, "preferred_start")?;
        let end = time_field(&v, "preferred_end")?;
        let preferred = match (start, end) {
            (Some(a), Some(b)) => Some((a, b)),
            (None, None) => None,
            _ => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "`preferred_start` and `preferred_end` go together",
                ))
            }
        };
        Ok((number, queue, context, preferred))
    })();
    let (number, queue, context, preferred) = match fields {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    if !ctx.config.queues.contains_key(&queue) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("`queue`: no queue named `{queue}`"),
        );
    }
    let req = crate::callbacks::CallbackRequest {
        queue,
        number,
        entered_at: chrono::Utc::now(),
        preferred,
        context,
        origin: ringback_callback::Origin::Web,
    };
    match ctx.callbacks.request(req).await {
        Ok((cb, ahead)) => {
            let mut v = callback_json(&cb);
            v["ahead"] = json!(ahead);
            json_response(StatusCode::CREATED, v)
        }
        Err(r) => r.reason.into_response(),
    }
}

/// Query of `GET /api/v1/callbacks`.
#[derive(serde::Deserialize)]
pub(super) struct CallbackFilter {
    state: Option<String>,
    queue: Option<String>,
    number: Option<String>,
    limit: Option<i64>,
}

pub(super) async fn list_callbacks(
    State(ctx): State<Arc<ApiState>>,
    headers: HeaderMap,
    ApiQuery(f): ApiQuery<CallbackFilter>,
) -> Response {
    if let Some(r) = check_token(&ctx, &headers) {
        return r;
    }
    // An empty filter (`state=`) means no filter, as the schema allows.
    let nonempty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    let f = CallbackFilter {
        state: nonempty(f.state),
        queue: nonempty(f.queue),
        number: nonempty(f.number),
        limit: f.limit,
    };
    if let Some(s) = &f.state {
        if ringback_callback::CallbackState::parse(s).is_none() {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("`state`: unknown state `{s}`"),
            );
        }
    }
    let limit = f.limit.unwrap_or(100).clamp(1, 1000);
    match ctx
        .store
        .list_callbacks(
            f.state.as_deref(),
            f.queue.as_deref(),
            f.number.as_deref(),
            limit,
        )
        .await
    {
        Ok(rows) => json_response(
            StatusCode::OK,
            json!({ "callbacks": rows.iter().map(row_json).collect::<Vec<_>>() }),
        ),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

pub(super) async fn get_callback(
    State(ctx): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = check_token(&ctx, &headers) {
        return r;
    }
    stored_callback(&ctx, &id).await
}

/// A callback as stored, with its history.
pub(super) async fn stored_callback(ctx: &ApiState, id: &str) -> Response {
    match ctx.store.callback(id).await {
        Ok(Some((row, events))) => {
            let mut v = row_json(&row);
            v["events"] = json!(events
                .iter()
                .map(|e| json!({
                    "at": e.at, "from": e.from_state, "to": e.to_state,
                    "reason": e.reason, "attempt": e.attempt, "node": e.node,
                }))
                .collect::<Vec<_>>());
            json_response(StatusCode::OK, v)
        }
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no callback `{id}`")),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

pub(super) async fn cancel_callback(
    State(ctx): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&ctx, &headers, None, Need::Supervise) {
        return r.into_response();
    }
    let v = match parse_body(&body) {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let reason = match str_field(&v, "reason", false, 200) {
        Ok(r) => r.unwrap_or_else(|| "cancelled by API".into()),
        Err(r) => return r.into_response(),
    };
    match ctx.callbacks.cancel(&id, &reason).await {
        Ok(()) => stored_callback(&ctx, &id).await,
        Err(r) => r.reason.into_response(),
    }
}

pub(super) async fn reschedule_callback(
    State(ctx): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&ctx, &headers, None, Need::Supervise) {
        return r.into_response();
    }
    let v = match parse_body(&body) {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let at = match time_field(&v, "at") {
        Ok(Some(t)) => t,
        Ok(None) => return error(StatusCode::UNPROCESSABLE_ENTITY, "`at` is required"),
        Err(r) => return r.into_response(),
    };
    match ctx.callbacks.reschedule(&id, at).await {
        Ok(()) => stored_callback(&ctx, &id).await,
        Err(r) => r.reason.into_response(),
    }
}
