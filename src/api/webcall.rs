//! The public "call us" page's API: a short-lived, single-use token for one
//! call to a public number (`POST /api/v1/webcall/tokens`, no credentials,
//! rate-limited per address), then the call's signalling WebSocket
//! (`GET /api/v1/webcall?token=`). Only `webrtc.public_numbers` can be
//! called; the Host/Origin allow-list applies as to every API request.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::connect_info::ConnectInfo;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::errors::{json_response, ApiError, ErrorBody};
use super::request::{parse_body, str_field, ApiBody, ApiQuery};
use super::ApiState;
use crate::browser::caller::{ToCaller, TokenRefusal, WebCallRequest};
use crate::browser::messages::{BrowserEvent, EventKind};
use crate::config::IceServer;

/// The peer's address (the API is served with connection info).
pub(super) struct PeerIp(IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for PeerIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([127, 0, 0, 1]), |c| c.0.ip());
        Ok(PeerIp(ip))
    }
}

/// Body of `POST /api/v1/webcall/tokens` (its schema: the handler reads
/// the fields one by one, to name the one that is wrong).
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
pub(super) struct NewWebCall {
    /// The number to call: one of `webrtc.public_numbers`
    #[schema(max_length = 64)]
    number: String,
    /// The page's context, shown to the agent (e.g. the product page)
    #[schema(max_length = 100)]
    topic: Option<String>,
}

/// A token for one call.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct WebCallToken {
    /// Open `GET /api/v1/webcall?token=` with it (once, before it expires)
    token: String,
    /// Seconds it stays valid
    expires_in_secs: u64,
    /// STUN/TURN servers for the page's `RTCPeerConnection`
    #[schema(value_type = Vec<Object>)]
    ice_servers: Vec<IceServer>,
}

fn host_and_origin(ctx: &ApiState, headers: &HeaderMap) -> Result<(), ApiError> {
    let text = |name| headers.get(name).map(|v| v.to_str().unwrap_or(""));
    ctx.access
        .current()
        .check_host_and_origin(text(header::HOST), text(header::ORIGIN))
        .map_err(|refused| ApiError::coded(StatusCode::FORBIDDEN, "forbidden_origin", refused.0))
}

/// A token for one call from the public page
///
/// No credentials: anyone who can load the page may call the public
/// numbers, a few times a minute per address.
#[utoipa::path(
    post,
    path = "/api/v1/webcall/tokens",
    operation_id = "createWebCallToken",
    tag = "webcall",
    security(()),
    request_body = NewWebCall,
    responses(
        (status = 201, description = "A token for one call", body = WebCallToken),
        (status = 400, description = "Body is not JSON", body = ErrorBody),
        (status = 403, description = "Not a public number (code `not_public`), or a foreign Host/Origin (`forbidden_origin`)", body = ErrorBody),
        (status = 413, description = "Body over 2 MB", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody),
        (status = 429, description = "Too many calls from this address in the last minute", body = ErrorBody),
    )
)]
pub(super) async fn create_token(
    State(ctx): State<Arc<ApiState>>,
    headers: HeaderMap,
    PeerIp(ip): PeerIp,
    ApiBody(body): ApiBody,
) -> Response {
    if let Err(e) = host_and_origin(&ctx, &headers) {
        return e.into_response();
    }
    let fields = parse_body(&body).and_then(|v| {
        let number = str_field(&v, "number", true, 64)?.unwrap_or_default();
        let topic = str_field(&v, "topic", false, 100)?;
        Ok((number, topic))
    });
    let (number, topic) = match fields {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let cfg = &ctx.phones.config;
    let ttl = Duration::from_secs(cfg.public_token_secs);
    match ctx
        .phones
        .web_tokens
        .issue(cfg, ip, &number, topic, Instant::now())
    {
        Ok((token, _)) => json_response(
            StatusCode::CREATED,
            WebCallToken {
                token,
                expires_in_secs: ttl.as_secs(),
                ice_servers: cfg.ice_servers.clone(),
            },
        ),
        Err(r @ TokenRefusal::NotPublic(_)) => {
            ApiError::coded(StatusCode::FORBIDDEN, "not_public", r.to_string()).into_response()
        }
        Err(r @ TokenRefusal::RateLimited) => {
            ApiError::coded(StatusCode::TOO_MANY_REQUESTS, "rate_limited", r.to_string())
                .into_response()
        }
    }
}

/// Query of `GET /api/v1/webcall`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct WebCallQuery {
    /// A token from `POST /api/v1/webcall/tokens`
    token: Option<String>,
}

/// The public page's call (WebSocket)
///
/// Upgrades to the call's signalling socket: the page sends
/// `{"type":"call","sdp":…}` and `{"type":"hangup"}`, ringback answers
/// `{"type":"answer","sdp":…}`, `{"type":"hangup"}` and
/// `{"type":"error","message":…}`. Keys travel in the audio (RFC 4733).
#[utoipa::path(
    get,
    path = "/api/v1/webcall",
    operation_id = "getWebCall",
    tag = "webcall",
    security(()),
    params(WebCallQuery),
    responses(
        (status = 101, description = "Switching to the WebSocket"),
        (status = 400, description = "Malformed query (JSON error)", body = ErrorBody),
        (status = 401, description = "No token, or an unknown, used or expired one", body = ErrorBody),
        (status = 403, description = "A foreign Host/Origin (`forbidden_origin`)", body = ErrorBody),
        (status = 426, description = "Not a WebSocket upgrade request", body = ErrorBody),
    )
)]
pub(super) async fn web_call(
    State(ctx): State<Arc<ApiState>>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<WebCallQuery>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    if let Err(e) = host_and_origin(&ctx, &headers) {
        return e.into_response();
    }
    let Ok(ws) = ws else {
        return ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "this is a WebSocket: connect with Upgrade: websocket",
        )
        .into_response();
    };
    let grant = q
        .token
        .as_deref()
        .and_then(|t| ctx.phones.web_tokens.redeem(t, Instant::now()));
    let Some(grant) = grant else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "no valid call token: get one from POST /api/v1/webcall/tokens",
        )
        .into_response();
    };
    let phones = Arc::clone(&ctx.phones);
    ws.max_message_size(crate::browser::signal::MAX_FRAME)
        .on_upgrade(move |socket| run(socket, phones, grant.number, grant.topic))
}

/// Page → server frames.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum FromCaller {
    Call { sdp: String },
    Hangup,
    Ping,
}

async fn send(socket: &mut WebSocket, msg: &ToCaller) -> bool {
    match serde_json::to_string(msg) {
        Ok(text) => socket.send(Message::Text(text.into())).await.is_ok(),
        Err(_) => false,
    }
}

/// One web call's socket: the offer, then the page's hang-up one way and
/// ringback's the other. A socket that closes ends the call.
async fn run(
    mut socket: WebSocket,
    phones: Arc<crate::browser::BrowserPhones>,
    number: String,
    topic: Option<String>,
) {
    let (page_tx, mut page_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut call: Option<(String, tokio::sync::mpsc::UnboundedSender<BrowserEvent>)> = None;
    loop {
        tokio::select! {
            out = page_rx.recv() => match out {
                Some(msg) => {
                    let hangup = msg == ToCaller::Hangup;
                    if !send(&mut socket, &msg).await || hangup {
                        break;
                    }
                }
                None => break,
            },
            frame = socket.recv() => match frame {
                Some(Ok(Message::Text(text))) => {
                    match serde_json::from_str::<FromCaller>(text.as_str()) {
                        Ok(FromCaller::Call { sdp }) if call.is_none() => {
                            let Some(starter) = phones.web_calls.get() else { break };
                            let req = WebCallRequest {
                                number: number.clone(),
                                topic: topic.clone(),
                                offer: sdp,
                                page: page_tx.clone(),
                            };
                            match starter.start(req) {
                                Ok(started) => {
                                    call = Some((started.call_id, started.events));
                                    if !send(&mut socket, &ToCaller::Answer { sdp: started.answer }).await {
                                        break;
                                    }
                                }
                                Err(message) => {
                                    let _ = send(&mut socket, &ToCaller::Error { message }).await;
                                    break;
                                }
                            }
                        }
                        Ok(FromCaller::Call { .. }) => {
                            let message = "one call per token".to_string();
                            if !send(&mut socket, &ToCaller::Error { message }).await {
                                break;
                            }
                        }
                        Ok(FromCaller::Hangup) => break,
                        Ok(FromCaller::Ping) => {}
                        Err(e) => {
                            let message = format!("bad frame: {e}");
                            if !send(&mut socket, &ToCaller::Error { message }).await {
                                break;
                            }
                        }
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
        }
    }
    // The page left (or was told the call ended): the call hangs up.
    if let Some((leg, events)) = call {
        let _ = events.send(BrowserEvent {
            leg,
            kind: EventKind::HangUp,
        });
    }
}
