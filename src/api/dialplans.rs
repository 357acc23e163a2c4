//! Dialplans: what is serving, every version loaded, and reloads.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::auth::{authorize, check_token, Need};
use super::errors::json_response;
use super::ApiState;

/// `GET /api/v1/dialplans`: what is serving now, and every version loaded.
pub(super) async fn list_dialplans(
    State(ctx): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = check_token(&ctx, &headers) {
        return r;
    }
    let snap = ctx.dialplans.current();
    let serving: Vec<Value> = snap
        .plans
        .plans()
        .map(|p| json!({ "name": p.name, "file": p.file.display().to_string(), "version": p.version, "numbers": p.numbers }))
        .collect();
    let history: Vec<Value> = ctx
        .store
        .dialplan_versions()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|(name, file, version, loaded_at)| json!({ "name": name, "file": file, "version": version, "loaded_at": loaded_at }))
        .collect();
    json_response(
        StatusCode::OK,
        json!({ "generation": snap.generation, "serving": serving, "history": history }),
    )
}

/// `POST /api/v1/dialplans/reload`: validate and swap in; on errors the old
/// version keeps serving and the errors come back as `file:line:col`.
pub(super) async fn reload_dialplans(
    State(ctx): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&ctx, &headers, None, Need::Admin) {
        return r.into_response();
    }
    match ctx.dialplans.reload("API").await {
        Ok(r) => json_response(
            StatusCode::OK,
            json!({ "ok": true, "dialplans": r.dialplans, "prompts": r.prompts, "warnings": r.warnings,
                    "took_ms": r.took.as_secs_f64() * 1000.0 }),
        ),
        Err(errors) => json_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({ "ok": false, "errors": errors, "error": "dialplans are invalid; the previous version keeps serving", "code": "invalid_dialplan" }),
        ),
    }
}
