//! Queues: who is waiting, for how long, and the agents serving them.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::check_token;
use super::errors::json_response;
use super::openapi::AuthErrors;
use super::ApiState;

/// A caller (or callback) waiting in a queue.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Waiting {
    call_id: String,
    /// The caller's number; null in an agent token's snapshot.
    #[schema(required = true)]
    caller: Option<String>,
    /// The caller's name from the customer directory; null when unknown
    /// and in an agent token's snapshot.
    #[schema(required = true)]
    caller_name: Option<String>,
    /// Whether this is a callback attempt.
    callback: bool,
    /// Service priority: the queue node's plus the caller's directory
    /// priority (a VIP's); higher is served first.
    priority: i32,
    /// 1-based position in the queue.
    position: usize,
    /// Seconds since the caller first entered a queue.
    waited_secs: u64,
    /// Estimated wait, in seconds.
    ewt_secs: u64,
    /// Agents being offered the call.
    ringing: Vec<String>,
}

/// A queue as the API and the dashboard show it.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Queue {
    name: String,
    /// Routing strategy (`longest-idle`, `round-robin`, `fewest-calls`,
    /// `ring-all`, `random`, `skills-based`).
    strategy: String,
    /// Waiting calls in service order.
    waiting: Vec<Waiting>,
    /// The longest current wait, in seconds (null: nobody waits).
    #[schema(required = true)]
    longest_wait_secs: Option<u64>,
    /// Members logged in and reachable (paused included).
    agents_present: usize,
    /// Members available and reachable right now.
    agents_available: usize,
    /// Moving average of handle time (talk + wrap-up), in seconds.
    avg_handle_secs: u64,
}

/// Queues as the API shows them; waiting callers' numbers and names (from
/// their live context) only `with_callers`.
pub(super) fn queues_view(
    queues: &[ringback_acd::QueueSnapshot],
    with_callers: bool,
    live: &crate::live::Live,
) -> Vec<Queue> {
    queues
        .iter()
        .map(|q| Queue {
            name: q.name.as_str().to_string(),
            strategy: q.strategy.name().to_string(),
            waiting: q
                .waiting
                .iter()
                .map(|w| Waiting {
                    call_id: w.call.as_str().to_string(),
                    caller: with_callers.then(|| w.caller.clone()),
                    caller_name: with_callers
                        .then(|| live.context(w.call.as_str()))
                        .flatten()
                        .and_then(|c| c.caller_name),
                    callback: w.call.as_str().starts_with("cb-"),
                    priority: w.priority,
                    position: w.position,
                    waited_secs: w.waited.as_secs(),
                    ewt_secs: w.ewt.as_secs(),
                    ringing: w.ringing.iter().map(|a| a.as_str().to_string()).collect(),
                })
                .collect(),
            longest_wait_secs: q.longest_wait.map(|d| d.as_secs()),
            agents_present: q.present_agents,
            agents_available: q.available_agents,
            avg_handle_secs: q.avg_handle.as_secs(),
        })
        .collect()
}

/// The answer of `GET /api/v1/queues`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct QueueList {
    queues: Vec<Queue>,
}

/// Queues with waiting callers
#[utoipa::path(
    get,
    path = "/api/v1/queues",
    operation_id = "listQueues",
    tag = "queues",
    responses((status = 200, description = "Queues", body = QueueList), AuthErrors)
)]
pub(super) async fn list_queues(State(ctx): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    if let Some(r) = check_token(&ctx, &headers) {
        return r;
    }
    let (_, queues) = ctx.acd.snapshot().await;
    json_response(
        StatusCode::OK,
        QueueList {
            queues: queues_view(&queues, true, &ctx.live),
        },
    )
}
