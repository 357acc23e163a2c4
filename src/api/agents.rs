//! Agents: their state and the context of the call they are on, and the
//! actions a supervisor (or the agent) takes on them.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ringback_acd::{AgentId, AgentState, Input};
use serde_json::{json, Value};

use super::auth::{authorize, check_token, Need};
use super::errors::{error, json_response};
use super::request::{parse_body, str_field, ApiBody, ApiPath};
use super::ApiState;

pub(super) fn state_json(state: &AgentState) -> Value {
    match state {
        AgentState::Paused { reason } => json!({ "state": state.name(), "reason": reason }),
        AgentState::Ringing { call } | AgentState::OnCall { call } => {
            json!({ "state": state.name(), "call_id": call.as_str() })
        }
        _ => json!({ "state": state.name() }),
    }
}

/// Agents as the API and the dashboard show them, with the context of the
/// call an agent is ringing for or talking to.
pub(super) fn agents_json(
    ctx: &ApiState,
    agents: &[ringback_acd::AgentSnapshot],
    only: Option<&str>,
) -> Vec<Value> {
    agents
        .iter()
        .filter(|a| only.is_none_or(|o| a.id.as_str() == o))
        .map(|a| {
            let mut v = state_json(&a.state);
            v["id"] = json!(a.id.as_str());
            v["name"] = json!(a.name);
            v["reachable"] = json!(a.reachable);
            v["in_state_secs"] = json!(a.since.map(|t| t.elapsed().as_secs()));
            v["calls_today"] = json!(a.calls_today);
            v["consecutive_misses"] = json!(a.consecutive_misses);
            v["queues"] = json!(a.queues.iter().map(|q| q.as_str()).collect::<Vec<_>>());
            if v.get("reason").is_none() {
                v["reason"] = Value::Null;
            }
            let call = match &a.state {
                AgentState::Ringing { call } | AgentState::OnCall { call } => Some(call.as_str()),
                _ => None,
            };
            v["context"] = match call.and_then(|c| ctx.live.context(c)) {
                Some(c) => json!({
                    "caller": c.caller,
                    "path": c.path,
                    "digits": c.digits,
                    "waited_secs": (chrono::Utc::now() - c.entered_at).num_seconds().max(0),
                    "repeat": c.repeat,
                    "callback_id": c.callback_id,
                    "callback_context": c.callback_context,
                }),
                None => Value::Null,
            };
            v
        })
        .collect()
}

pub(super) async fn list_agents(State(ctx): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    if let Some(r) = check_token(&ctx, &headers) {
        return r;
    }
    let (agents, _) = ctx.acd.snapshot().await;
    json_response(
        StatusCode::OK,
        json!({ "agents": agents_json(&ctx, &agents, None) }),
    )
}

/// `POST /api/v1/agents/{id}/{login|logout|pause|unpause|ready}`; `pause`
/// takes `{"reason": "…"}`. The body is checked for every action (a JSON
/// object whose `reason`, if any, is a string of at most 200 characters),
/// so what the document promises holds whatever the action.
pub(super) async fn agent_action(
    State(ctx): State<Arc<ApiState>>,
    ApiPath((id, action)): ApiPath<(String, String)>,
    headers: HeaderMap,
    ApiBody(body): ApiBody,
) -> Response {
    if let Err(r) = authorize(&ctx, &headers, None, Need::Agent(&id)) {
        return r.into_response();
    }
    if !ctx.config.agents.contains_key(&id) {
        return error(StatusCode::NOT_FOUND, format!("no agent `{id}`"));
    }
    let reason = match parse_body(&body).and_then(|v| str_field(&v, "reason", false, 200)) {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    let agent = AgentId::from(id.as_str());
    let input = match action.as_str() {
        "login" => Input::AgentLogin(agent),
        "logout" => Input::AgentLogout(agent),
        "unpause" => Input::AgentUnpause(agent),
        "ready" => Input::WrapUpDone(agent),
        "pause" => Input::AgentPause {
            agent,
            reason: reason.unwrap_or_else(|| "paused".to_string()),
        },
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
