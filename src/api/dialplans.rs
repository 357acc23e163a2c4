//! Dialplans: what is serving, every version loaded, and reloads.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::{authorize, check_token, Need};
use super::errors::json_response;
use super::openapi::AuthErrors;
use super::ApiState;

/// A dialplan serving now.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ServingDialplan {
    name: String,
    file: String,
    /// Content hash.
    version: String,
    /// Numbers (DIDs) it answers.
    numbers: Vec<String>,
}

/// A dialplan version that was loaded at some point.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct DialplanVersion {
    name: String,
    file: String,
    /// Content hash.
    version: String,
    /// When it was first loaded (RFC 3339).
    loaded_at: String,
}

/// The answer of `GET /api/v1/dialplans`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Dialplans {
    /// Grows with every successful reload.
    generation: u64,
    serving: Vec<ServingDialplan>,
    history: Vec<DialplanVersion>,
}

/// Serving dialplans and every loaded version
#[utoipa::path(
    get,
    path = "/api/v1/dialplans",
    operation_id = "listDialplans",
    tag = "dialplans",
    responses((status = 200, description = "Dialplans", body = Dialplans), AuthErrors)
)]
pub(super) async fn list_dialplans(
    State(ctx): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = check_token(&ctx, &headers) {
        return r;
    }
    let snap = ctx.dialplans.current();
    let serving = snap
        .plans
        .plans()
        .map(|p| ServingDialplan {
            name: p.name.clone(),
            file: p.file.display().to_string(),
            version: p.version.clone(),
            numbers: p.numbers.clone(),
        })
        .collect();
    let history = ctx
        .store
        .dialplan_versions()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|(name, file, version, loaded_at)| DialplanVersion {
            name,
            file,
            version,
            loaded_at,
        })
        .collect();
    json_response(
        StatusCode::OK,
        Dialplans {
            generation: snap.generation,
            serving,
            history,
        },
    )
}

/// The answer of a reload that worked.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Reloaded {
    /// Always `true`.
    ok: bool,
    /// Dialplans now serving.
    dialplans: usize,
    /// Prompts loaded.
    prompts: usize,
    /// Warnings (logged).
    warnings: usize,
    /// How long the reload took.
    took_ms: f64,
}

/// The code of a reload refused for invalid dialplans.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(super) enum InvalidDialplanCode {
    InvalidDialplan,
}

/// The answer of a reload refused for invalid dialplans: an `Error` with
/// the errors as `file:line:col` messages.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ReloadFailed {
    /// Always `false`.
    ok: bool,
    /// Every error, as `file:line:col: message`.
    errors: Vec<String>,
    error: String,
    #[schema(inline)]
    code: InvalidDialplanCode,
}

/// Reload dialplans and prompts (admin)
#[utoipa::path(
    post,
    path = "/api/v1/dialplans/reload",
    operation_id = "reloadDialplans",
    tag = "dialplans",
    responses(
        (status = 200, description = "Reloaded", body = Reloaded),
        AuthErrors,
        (status = 422, description = "Invalid dialplans; the previous version keeps serving", body = ReloadFailed),
    )
)]
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
            Reloaded {
                ok: true,
                dialplans: r.dialplans,
                prompts: r.prompts,
                warnings: r.warnings,
                took_ms: r.took.as_secs_f64() * 1000.0,
            },
        ),
        Err(errors) => json_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            ReloadFailed {
                ok: false,
                errors,
                error: "dialplans are invalid; the previous version keeps serving".into(),
                code: InvalidDialplanCode::InvalidDialplan,
            },
        ),
    }
}
