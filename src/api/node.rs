//! This node: draining it for a rolling upgrade (`src/drain.rs`).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::{authorize, Need};
use super::errors::json_response;
use super::openapi::AuthErrors;
use super::ApiState;
use crate::metrics;

/// The answer of a drain request.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct NodeDrain {
    /// This node's id (`callbacks.node_id`).
    node: String,
    /// Always `true`: the node drains until the process exits.
    draining: bool,
    /// `false` when the node was draining already (the request changed
    /// nothing).
    started: bool,
    /// Inbound calls in progress on this node; the process exits when
    /// none is left (callback attempts dialing a customer count too).
    calls: u64,
    /// Calls still up after this many seconds from the start of the drain
    /// are ended (`cluster.drain_timeout_secs`).
    drain_timeout_secs: u64,
}

/// Drain this node (admin)
///
/// For a rolling upgrade: new calls are refused with `503` and
/// `Retry-After`, out-of-dialog OPTIONS are answered `503` (a dispatcher's
/// keep-alive probe takes the node out of rotation), `/healthz` answers
/// `draining`, and no new callback attempt starts here. Calls in
/// progress continue; when none is left the process exits with status 0
/// (after `cluster.drain_timeout_secs`, the remaining calls are ended with
/// BYE first). The same as `SIGUSR1`. A drain cannot be undone: start the
/// node again.
#[utoipa::path(
    post,
    path = "/api/v1/node/drain",
    operation_id = "drainNode",
    tag = "ops",
    responses(
        (status = 202, description = "Draining; the process exits when its calls have ended", body = NodeDrain),
        AuthErrors,
    )
)]
pub(super) async fn drain_node(State(ctx): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    if let Err(r) = authorize(&ctx, &headers, None, Need::Admin) {
        return r.into_response();
    }
    let started = crate::drain::start("API");
    json_response(
        StatusCode::ACCEPTED,
        NodeDrain {
            node: ctx.config.node_id(),
            draining: true,
            started,
            calls: metrics::CALLS_ACTIVE.load(Relaxed),
            drain_timeout_secs: ctx.config.cluster.drain_timeout_secs,
        },
    )
}
