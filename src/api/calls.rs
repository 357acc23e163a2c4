//! Calls: the ones in progress, call records, and today's statistics.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::auth::check_token;
use super::errors::{error, json_response};
use super::request::{limit_param, ApiQuery};
use super::ApiState;
use crate::metrics;

pub(super) async fn stats_json(ctx: &ApiState) -> Value {
    let mut st = ctx.live.stats();
    // Today as the counters see it: since local midnight of `stats.timezone`.
    let midnight = ctx.live.day_start();
    st.repeat_call_rate_pct = ctx.store.repeat_call_rate(midnight).await.ok().flatten();
    serde_json::to_value(st).unwrap_or(Value::Null)
}

/// `GET /api/v1/calls`: callers waiting for or talking to an agent.
pub(super) async fn list_calls(State(ctx): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    if let Some(r) = check_token(&ctx, &headers) {
        return r;
    }
    let calls: Vec<Value> = ctx
        .live
        .calls()
        .into_iter()
        .map(|(id, c)| {
            json!({
                "call_id": id, "caller": c.caller, "path": c.path, "digits": c.digits,
                "waited_secs": (chrono::Utc::now() - c.entered_at).num_seconds().max(0),
                "repeat": c.repeat, "callback_id": c.callback_id,
            })
        })
        .collect();
    json_response(
        StatusCode::OK,
        json!({ "active_calls": metrics::CALLS_ACTIVE.load(Relaxed), "calls": calls }),
    )
}

/// Query of `GET /api/v1/cdrs`.
#[derive(serde::Deserialize)]
pub(super) struct Limit {
    limit: Option<i64>,
}

pub(super) async fn list_cdrs(
    State(ctx): State<Arc<ApiState>>,
    headers: HeaderMap,
    ApiQuery(l): ApiQuery<Limit>,
) -> Response {
    if let Some(r) = check_token(&ctx, &headers) {
        return r;
    }
    let limit = match limit_param(l.limit) {
        Ok(l) => l,
        Err(r) => return r.into_response(),
    };
    match ctx.store.recent_cdrs(limit).await {
        Ok(rows) => json_response(StatusCode::OK, json!({ "cdrs": rows })),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

pub(super) async fn stats(State(ctx): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    if let Some(r) = check_token(&ctx, &headers) {
        return r;
    }
    json_response(StatusCode::OK, stats_json(&ctx).await)
}
