//! The HTTP surface: Prometheus metrics, a health check, and the agent and
//! queue API supervisors (and later the dashboard) use. The full REST API
//! with OpenAPI, server-sent events and the dashboard grow here.
//!
//! When `api.token` is set, `/api/*` requires `Authorization: Bearer <token>`
//! (compared in constant time); `/metrics` and `/healthz` stay open for
//! scrapers and load balancers on the loopback interface.

use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use ringback_acd::{AgentId, AgentState, Input};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::metrics;
use crate::server::ServerCtx;

/// Build the router.
pub fn router(ctx: Arc<ServerCtx>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/api/v1/agents", get(list_agents))
        .route("/api/v1/agents/{id}/{action}", post(agent_action))
        .route("/api/v1/queues", get(list_queues))
        .with_state(ctx)
}

/// Serve until the process ends.
pub async fn serve(listener: TcpListener, ctx: Arc<ServerCtx>) {
    if let Err(e) = axum::serve(listener, router(ctx)).await {
        tracing::error!(error = %e, "HTTP server stopped");
    }
}

async fn metrics_handler(State(ctx): State<Arc<ServerCtx>>) -> impl IntoResponse {
    let mut out = metrics::render();
    let media = &ctx.media;
    let snap = ctx.snapshot();
    let gauges: [(&str, &str, &str, u64); 5] = [
        (
            "rtp_packets_sent_total",
            "counter",
            "RTP packets sent by the media clocks.",
            media.packets_sent(),
        ),
        (
            "media_clock_overruns_total",
            "counter",
            "Media clock ticks served more than one interval late.",
            media.overruns(),
        ),
        (
            "media_clock_max_late_microseconds",
            "gauge",
            "Worst lateness of a media clock tick since start.",
            media.max_late_us(),
        ),
        (
            "rtp_ports_in_use",
            "gauge",
            "RTP ports held by calls.",
            media.ports_in_use() as u64,
        ),
        (
            "dialplans_loaded",
            "gauge",
            "Dialplans in the serving snapshot.",
            snap.plans.len() as u64,
        ),
    ];
    for (name, kind, help, value) in gauges {
        let _ = writeln!(out, "# HELP ringback_{name} {help}");
        let _ = writeln!(out, "# TYPE ringback_{name} {kind}");
        let _ = writeln!(out, "ringback_{name} {value}");
    }
    let _ = writeln!(out, "# HELP ringback_build_info Build information.");
    let _ = writeln!(out, "# TYPE ringback_build_info gauge");
    let _ = writeln!(
        out,
        "ringback_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    let _ = metrics::CALLS_ACTIVE.load(Relaxed);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    json_response(status, json!({ "error": message.into() }))
}

/// `None` when the request may proceed; otherwise the 401 to return.
fn check_token(ctx: &ServerCtx, headers: &HeaderMap) -> Option<Response> {
    let expected = ctx.config.api.token.as_deref()?;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        None
    } else {
        Some(error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token",
        ))
    }
}

/// Compare without an early exit, so response time does not leak how much
/// of a token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i % b.len().max(1)).copied().unwrap_or(0));
    }
    diff == 0
}

fn state_json(state: &AgentState) -> Value {
    match state {
        AgentState::Paused { reason } => json!({ "state": state.name(), "reason": reason }),
        AgentState::Ringing { call } | AgentState::OnCall { call } => {
            json!({ "state": state.name(), "call_id": call.as_str() })
        }
        _ => json!({ "state": state.name() }),
    }
}

async fn list_agents(State(ctx): State<Arc<ServerCtx>>, headers: HeaderMap) -> Response {
    if let Some(r) = check_token(&ctx, &headers) {
        return r;
    }
    let (agents, _) = ctx.acd.snapshot().await;
    let list: Vec<Value> = agents
        .iter()
        .map(|a| {
            let mut v = state_json(&a.state);
            v["id"] = json!(a.id.as_str());
            v["name"] = json!(a.name);
            v["reachable"] = json!(a.reachable);
            v["in_state_secs"] = json!(a.since.map(|t| t.elapsed().as_secs()));
            v["calls_today"] = json!(a.calls_today);
            v["consecutive_misses"] = json!(a.consecutive_misses);
            v["queues"] = json!(a.queues.iter().map(|q| q.as_str()).collect::<Vec<_>>());
            v
        })
        .collect();
    json_response(StatusCode::OK, json!({ "agents": list }))
}

async fn list_queues(State(ctx): State<Arc<ServerCtx>>, headers: HeaderMap) -> Response {
    if let Some(r) = check_token(&ctx, &headers) {
        return r;
    }
    let (_, queues) = ctx.acd.snapshot().await;
    let list: Vec<Value> = queues
        .iter()
        .map(|q| {
            json!({
                "name": q.name.as_str(),
                "strategy": q.strategy.name(),
                "waiting": q.waiting.iter().map(|w| json!({
                    "call_id": w.call.as_str(),
                    "caller": w.caller,
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
        .collect();
    json_response(StatusCode::OK, json!({ "queues": list }))
}

/// `POST /api/v1/agents/{id}/{login|logout|pause|unpause|ready}`; `pause`
/// takes `{"reason": "…"}`.
async fn agent_action(
    State(ctx): State<Arc<ServerCtx>>,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = check_token(&ctx, &headers) {
        return r;
    }
    if !ctx.config.agents.contains_key(&id) {
        return error(StatusCode::NOT_FOUND, format!("no agent `{id}`"));
    }
    let agent = AgentId::from(id.as_str());
    let input = match action.as_str() {
        "login" => Input::AgentLogin(agent),
        "logout" => Input::AgentLogout(agent),
        "unpause" => Input::AgentUnpause(agent),
        "ready" => Input::WrapUpDone(agent),
        "pause" => {
            let reason = if body.is_empty() {
                "paused".to_string()
            } else {
                match serde_json::from_slice::<Value>(&body) {
                    Ok(v) => match v.get("reason") {
                        None => "paused".to_string(),
                        Some(Value::String(r)) if r.len() <= 200 => r.clone(),
                        Some(_) => {
                            return error(
                                StatusCode::UNPROCESSABLE_ENTITY,
                                "`reason` must be a string of at most 200 characters",
                            )
                        }
                    },
                    Err(e) => {
                        return error(StatusCode::BAD_REQUEST, format!("body is not JSON: {e}"))
                    }
                }
            };
            Input::AgentPause { agent, reason }
        }
        other => {
            return error(
                StatusCode::NOT_FOUND,
                format!("unknown action `{other}`; use login, logout, pause, unpause or ready"),
            )
        }
    };
    match ctx.acd.command(input).await {
        Ok(()) => json_response(StatusCode::OK, json!({ "ok": true })),
        Err(e) => error(StatusCode::CONFLICT, e),
    }
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"secret"));
    }
}
