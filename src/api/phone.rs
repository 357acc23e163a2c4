//! `GET /api/v1/phone`: the agent page's phone (WebRTC signalling over a
//! WebSocket). Browsers cannot set headers on a WebSocket, so the agent's
//! token comes as `?token=`; the Host/Origin allow-list applies as to every
//! API request, which is what keeps another web site from opening an
//! agent's phone with the agent's cookies-free token in its own page.
//!
//! The OpenAPI document lists the upgrade request and its refusals; the
//! frames exchanged afterwards are in the README ("Agents in the browser").

use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa::IntoParams;

use super::auth::{authorize, Need};
use super::errors::{ApiError, ErrorBody};
use super::openapi::AuthErrors;
use super::request::ApiQuery;
use super::ApiState;
use crate::config::Role;

/// The phone's query: the token, and which agent (for admin and supervisor
/// tokens, or an open API; an agent token names its own agent).
#[derive(Debug, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct PhoneQuery {
    /// Bearer token (a WebSocket cannot send headers from a browser)
    token: Option<String>,
    /// The agent whose phone this is (admin and supervisor tokens only)
    agent: Option<String>,
}

/// The agent page's browser phone (WebSocket)
///
/// Upgrades to a WebSocket carrying the phone's JSON frames (see the
/// README). Answers with an error instead when the token, the agent or the
/// request is not right.
#[utoipa::path(
    get,
    path = "/api/v1/phone",
    operation_id = "getPhone",
    tag = "agents",
    params(PhoneQuery),
    responses(
        (status = 101, description = "Switching to the WebSocket"),
        (status = 400, description = "No agent named, or a malformed query (JSON error).", body = ErrorBody),
        (status = 404, description = "No such agent (JSON error).", body = ErrorBody),
        (status = 426, description = "Not a WebSocket upgrade request (JSON error).", body = ErrorBody),
        AuthErrors,
    )
)]
pub(super) async fn phone(
    State(ctx): State<Arc<ApiState>>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<PhoneQuery>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let who = match authorize(&ctx, &headers, q.token.as_deref(), Need::Any) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let agent = match (who.role, who.agent, q.agent) {
        (Role::Agent, Some(own), asked) => {
            if asked.is_some_and(|a| a != own) {
                return ApiError::new(
                    StatusCode::FORBIDDEN,
                    "an agent token opens its own phone only",
                )
                .into_response();
            }
            own
        }
        (_, _, Some(asked)) => asked,
        _ => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "name the agent: ?agent=<id> (or use the agent's own token)",
            )
            .into_response()
        }
    };
    match ctx.config.agents.get(&agent) {
        None => {
            return ApiError::new(StatusCode::NOT_FOUND, format!("no agent `{agent}`"))
                .into_response()
        }
        Some(a) if !a.webrtc => {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                "agent `{agent}` has no browser phone (agents.{agent}.webrtc = true enables it)"
            ),
            )
            .into_response()
        }
        Some(_) => {}
    }
    let Ok(ws) = ws else {
        return ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "this is a WebSocket: connect with Upgrade: websocket",
        )
        .into_response();
    };
    let phones = Arc::clone(&ctx.phones);
    ws.max_message_size(crate::browser::signal::MAX_FRAME)
        .on_upgrade(move |socket| crate::browser::signal::run(socket, phones, agent))
}
