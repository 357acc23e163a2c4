//! Trunks: the carriers customers are dialed through.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::json;

use super::auth::check_token;
use super::errors::json_response;
use super::ApiState;

/// `GET /api/v1/trunks`: every trunk with its registration state.
pub(super) async fn list_trunks(State(ctx): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    if let Some(r) = check_token(&ctx, &headers) {
        return r;
    }
    json_response(
        StatusCode::OK,
        json!({ "trunks": crate::trunk_registration::snapshot(&ctx.config) }),
    )
}
