//! Queues: who is waiting, for how long, and the agents serving them.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use super::auth::check_token;
use super::errors::json_response;
use super::ApiState;

pub(super) fn queues_json(
    queues: &[ringback_acd::QueueSnapshot],
    with_callers: bool,
) -> Vec<Value> {
    queues
        .iter()
        .map(|q| {
            json!({
                "name": q.name.as_str(),
                "strategy": q.strategy.name(),
                "waiting": q.waiting.iter().map(|w| json!({
                    "call_id": w.call.as_str(),
                    "caller": if with_callers { json!(w.caller) } else { Value::Null },
                    "callback": w.call.as_str().starts_with("cb-"),
                    "position": w.position,
                    "waited_secs": w.waited.as_secs(),
                    "ewt_secs": w.ewt.as_secs(),
                    "ringing": w.ringing.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
                "longest_wait_secs": q.longest_wait.map(|d| d.as_secs()),
                "agents_present": q.present_agents,
                "agents_available": q.available_agents,
                "avg_handle_secs": q.avg_handle.as_secs(),
            })
        })
        .collect()
}

pub(super) async fn list_queues(State(ctx): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    if let Some(r) = check_token(&ctx, &headers) {
        return r;
    }
    let (_, queues) = ctx.acd.snapshot().await;
    json_response(
        StatusCode::OK,
        json!({ "queues": queues_json(&queues, true) }),
    )
}
