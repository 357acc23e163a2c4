//! Agents: their state and the context of the call they are on, and the
//! actions a supervisor (or the agent) takes on them.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ringback_acd::{AgentId, AgentState, Input};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{authorize, check_token, Need};
use super::errors::{error, json_response, ApiError, ErrorBody};
use super::openapi::AuthErrors;
use super::request::{parse_body, str_field, ApiBody, ApiPath};
use super::ApiState;

/// An agent's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
#[schema(as = AgentState)]
pub(super) enum AgentStateName {
    LoggedOut,
    Available,
    Ringing,
    OnCall,
    WrapUp,
    Paused,
}

impl From<&AgentState> for AgentStateName {
    fn from(state: &AgentState) -> AgentStateName {
        match state {
            AgentState::LoggedOut => AgentStateName::LoggedOut,
            AgentState::Available => AgentStateName::Available,
            AgentState::Ringing { .. } => AgentStateName::Ringing,
            AgentState::OnCall { .. } => AgentStateName::OnCall,
            AgentState::WrapUp { .. } => AgentStateName::WrapUp,
            AgentState::Paused { .. } => AgentStateName::Paused,
        }
    }
}

/// What an agent sees of the call they are ringing for or talking to.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct CallContext {
    /// The caller's number.
    caller: String,
    /// The caller's name, when the customer directory knows the number.
    #[schema(required = true)]
    caller_name: Option<String>,
    /// The caller's account id, from the customer directory.
    #[schema(required = true)]
    account: Option<String>,
    /// Menu path.
    path: String,
    /// Digits entered.
    digits: String,
    /// Seconds since the caller first entered a queue.
    waited_secs: i64,
    /// Calls from this number in the previous 7 days.
    #[schema(required = true)]
    repeat: Option<i64>,
    /// The callback this call is an attempt of.
    #[schema(required = true)]
    callback_id: Option<String>,
    /// The callback's context, shown to the agent.
    #[schema(required = true)]
    callback_context: Option<String>,
}

/// An agent as the API, the dashboard and the event stream show it.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Agent {
    /// Agent id (`[agents.ID]`).
    id: String,
    /// Display name.
    name: String,
    /// Current state.
    state: AgentStateName,
    /// Why the agent is paused (`paused` only).
    #[schema(required = true)]
    reason: Option<String>,
    /// The call the agent is ringing for or talking to (only in `ringing`
    /// and `on-call`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    call_id: Option<String>,
    /// Whether the agent's phone is registered.
    reachable: bool,
    /// Seconds in the current state (null before the first change).
    #[schema(required = true)]
    in_state_secs: Option<u64>,
    /// Calls answered today.
    calls_today: u32,
    /// Offers missed in a row.
    consecutive_misses: u32,
    /// Queues served.
    queues: Vec<String>,
    /// The call the agent is ringing for or talking to.
    #[schema(required = true)]
    context: Option<CallContext>,
    /// The recording of the agent's call: `recording`, `paused`, or null
    /// when the call is not recorded (pause and resume:
    /// `POST /api/v1/calls/{call_id}/recording/pause|resume`).
    #[schema(required = true, inline)]
    recording: Option<LiveRecording>,
}

/// Whether a call's recording runs or is paused.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(super) enum LiveRecording {
    /// The audio is being recorded.
    Recording,
    /// Silence is being recorded until the agent resumes.
    Paused,
}

/// Agents as the API and the dashboard show them, with the context of the
/// call an agent is ringing for or talking to.
pub(super) fn agents_view(
    ctx: &ApiState,
    agents: &[ringback_acd::AgentSnapshot],
    only: Option<&str>,
) -> Vec<Agent> {
    agents
        .iter()
        .filter(|a| only.is_none_or(|o| a.id.as_str() == o))
        .map(|a| {
            let call = match &a.state {
                AgentState::Ringing { call } | AgentState::OnCall { call } => Some(call.as_str()),
                _ => None,
            };
            Agent {
                id: a.id.as_str().to_string(),
                name: a.name.clone(),
                state: AgentStateName::from(&a.state),
                reason: match &a.state {
                    AgentState::Paused { reason } => Some(reason.clone()),
                    _ => None,
                },
                call_id: call.map(str::to_string),
                reachable: a.reachable,
                in_state_secs: a.since.map(|t| t.elapsed().as_secs()),
                calls_today: a.calls_today,
                consecutive_misses: a.consecutive_misses,
                queues: a.queues.iter().map(|q| q.as_str().to_string()).collect(),
                context: call.and_then(|c| ctx.live.context(c)).map(|c| CallContext {
                    waited_secs: (chrono::Utc::now() - c.entered_at).num_seconds().max(0),
                    caller: c.caller,
                    caller_name: c.caller_name,
                    account: c.account,
                    path: c.path,
                    digits: c.digits,
                    repeat: c.repeat,
                    callback_id: c.callback_id,
                    callback_context: c.callback_context,
                }),
                recording: call.and_then(|c| ctx.recorder.control(c)).map(|r| {
                    if r.is_paused() {
                        LiveRecording::Paused
                    } else {
                        LiveRecording::Recording
                    }
                }),
            }
        })
        .collect()
}

/// The answer of `GET /api/v1/agents`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct AgentList {
    agents: Vec<Agent>,
}

/// Agents and their states
#[utoipa::path(
    get,
    path = "/api/v1/agents",
    operation_id = "listAgents",
    tag = "agents",
    responses(
        (status = 200, description = "Agents", body = AgentList,
            links(("agentAction" = (
                operation_id = "agentAction",
                parameters(("id" = "$response.body#/agents/0/id"))
            )))
        ),
        AuthErrors,
    )
)]
pub(super) async fn list_agents(State(ctx): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    if let Some(r) = check_token(&ctx, &headers) {
        return r;
    }
    let (agents, _) = ctx.acd.snapshot().await;
    json_response(
        StatusCode::OK,
        AgentList {
            agents: agents_view(&ctx, &agents, None),
        },
    )
}

/// What to do with an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(super) enum AgentAction {
    Login,
    Logout,
    Pause,
    Unpause,
    Ready,
}

impl AgentAction {
    /// The action a path segment names, by the names the document lists.
    fn parse(s: &str) -> Option<AgentAction> {
        use serde::de::value::{Error, StrDeserializer};
        AgentAction::deserialize(StrDeserializer::<Error>::new(s)).ok()
    }
}

/// The body of an agent action: a JSON object, or nothing.
#[derive(Debug, ToSchema)]
pub(super) struct AgentActionBody {
    /// Why the agent pauses (`pause` only; default `paused`).
    #[schema(max_length = 200)]
    reason: Option<String>,
}

impl AgentActionBody {
    /// The body, checked whatever the action (a JSON object whose `reason`,
    /// if any, is a string of at most 200 characters), so what the
    /// document promises holds for every action.
    fn parse(body: &Bytes) -> Result<AgentActionBody, ApiError> {
        let v = parse_body(body)?;
        Ok(AgentActionBody {
            reason: str_field(&v, "reason", false, 200)?,
        })
    }
}

/// The answer of a change that has nothing else to say.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Ok)]
pub(super) struct Done {
    ok: bool,
}

/// Change an agent's state (login, logout, pause, unpause, ready)
#[utoipa::path(
    post,
    path = "/api/v1/agents/{id}/{action}",
    operation_id = "agentAction",
    tag = "agents",
    params(
        ("id" = String, Path, description = "Agent id (the served document lists this server's agents as the `enum`)"),
        ("action" = inline(AgentAction), Path, description = "What to do"),
    ),
    request_body(content = Option<AgentActionBody>, content_type = "application/json"),
    responses(
        (status = 200, description = "Done", body = Done),
        (status = 400, description = "Body is not JSON, or the path is not UTF-8", body = ErrorBody),
        AuthErrors,
        (status = 404, description = "No such agent or action", body = ErrorBody),
        (status = 409, description = "Not allowed in the agent's state", body = ErrorBody),
        (status = 413, description = "Body over 2 MB", body = ErrorBody),
        (status = 422, description = "Invalid body", body = ErrorBody),
    )
)]
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
    let reason = match AgentActionBody::parse(&body) {
        Ok(b) => b.reason,
        Err(r) => return r.into_response(),
    };
    let Some(action) = AgentAction::parse(&action) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("unknown action `{action}`; use login, logout, pause, unpause or ready"),
        );
    };
    let agent = AgentId::from(id.as_str());
    let input = match action {
        AgentAction::Login => Input::AgentLogin(agent),
        AgentAction::Logout => Input::AgentLogout(agent),
        AgentAction::Unpause => Input::AgentUnpause(agent),
        AgentAction::Ready => Input::WrapUpDone(agent),
        AgentAction::Pause => Input::AgentPause {
            agent,
            reason: reason.unwrap_or_else(|| "paused".to_string()),
        },
    };
    match ctx.acd.command(input).await {
        Ok(()) => json_response(StatusCode::OK, Done { ok: true }),
        Err(e) => error(StatusCode::CONFLICT, e),
    }
}
