//! The HTTP surface: Prometheus metrics, a health check, the REST API (agents,
//! queues, calls, callbacks, dialplans, trunks) with its OpenAPI document,
//! server-sent events, and the supervisor dashboard and agent page.
//!
//! When `api.tokens` are configured, `/api/*` requires
//! `Authorization: Bearer <token>` (compared in constant time) and checks the
//! token's role; `/metrics`, `/healthz` and the static pages stay open (the
//! pages ask for a token and send it with every request).

use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use ringback_acd::{AgentId, AgentState, Input};

use crate::config::Role;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::metrics;
use crate::server::ServerCtx;

/// Build the router.
pub fn router(ctx: Arc<ServerCtx>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/", get(|| async { page(DASHBOARD) }))
        .route("/agent", get(|| async { page(AGENT_PAGE) }))
        .route(
            "/assets/app.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], APP_CSS) }),
        )
        .route(
            "/api/openapi.json",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }),
        )
        .route("/api/v1/me", get(me))
        .route("/api/v1/events", get(events))
        .route("/api/v1/calls", get(list_calls))
        .route("/api/v1/cdrs", get(list_cdrs))
        .route("/api/v1/stats", get(stats))
        .route("/api/v1/dialplans", get(list_dialplans))
        .route("/api/v1/dialplans/reload", post(reload_dialplans))
        .route("/api/v1/agents", get(list_agents))
        .route("/api/v1/agents/{id}/{action}", post(agent_action))
        .route("/api/v1/queues", get(list_queues))
        .route("/api/v1/trunks", get(list_trunks))
        .route(
            "/api/v1/callbacks",
            post(create_callback).get(list_callbacks),
        )
        .route("/api/v1/callbacks/{id}", get(get_callback))
        .route("/api/v1/callbacks/{id}/cancel", post(cancel_callback))
        .route(
            "/api/v1/callbacks/{id}/reschedule",
            post(reschedule_callback),
        )
        .with_state(ctx)
}

const DASHBOARD: &str = include_str!("assets/dashboard.html");
const AGENT_PAGE: &str = include_str!("assets/agent.html");
const APP_CSS: &str = include_str!("assets/app.css");
const OPENAPI: &str = include_str!("openapi.json");

fn page(html: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        html,
    )
        .into_response()
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
    // Queues, agents and callbacks as they are right now.
    let (agents, queues) = ctx.acd.snapshot().await;
    metrics::gauge(
        &mut out,
        "queue_waiting",
        "Callers (and callbacks) waiting per queue.",
        &queues
            .iter()
            .map(|q| {
                (
                    format!("queue=\"{}\"", q.name.as_str()),
                    q.waiting.len() as f64,
                )
            })
            .collect::<Vec<_>>(),
    );
    metrics::gauge(
        &mut out,
        "queue_longest_wait_seconds",
        "Longest current wait per queue.",
        &queues
            .iter()
            .map(|q| {
                (
                    format!("queue=\"{}\"", q.name.as_str()),
                    q.longest_wait.map_or(0.0, |d| d.as_secs_f64()),
                )
            })
            .collect::<Vec<_>>(),
    );
    let mut by_state: std::collections::BTreeMap<&str, f64> = [
        "logged-out",
        "available",
        "ringing",
        "on-call",
        "wrap-up",
        "paused",
    ]
    .into_iter()
    .map(|s| (s, 0.0))
    .collect();
    for a in &agents {
        *by_state.entry(a.state.name()).or_insert(0.0) += 1.0;
    }
    metrics::gauge(
        &mut out,
        "agents",
        "Agents by state.",
        &by_state
            .iter()
            .map(|(s, n)| (format!("state=\"{s}\""), *n))
            .collect::<Vec<_>>(),
    );
    let counts = ctx.store.callback_counts().await.unwrap_or_default();
    let cb: Vec<(String, f64)> = [
        "scheduled",
        "retry_wait",
        "dialing",
        "connected",
        "completed",
        "failed",
        "cancelled",
        "expired",
    ]
    .iter()
    .map(|state| {
        let n = counts.get(*state).copied().unwrap_or(0);
        (format!("state=\"{state}\""), n as f64)
    })
    .collect();
    metrics::gauge(
        &mut out,
        "callbacks",
        "Callbacks by state (from the store).",
        &cb,
    );
    let _ = writeln!(out, "# HELP ringback_build_info Build information.");
    let _ = writeln!(out, "# TYPE ringback_build_info gauge");
    let _ = writeln!(
        out,
        "ringback_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
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
    json_response(
        status,
        json!({ "error": message.into(), "code": default_code(status) }),
    )
}

/// The machine-readable `code` of an error that has no more specific one.
fn default_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::CONFLICT => "conflict",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        _ => "error",
    }
}

/// A query string, parsed like axum's `Query`, but a malformed one gets
/// the API's JSON error (`400`, `"code":"bad_request"`) instead of a
/// plain-text rejection.
struct ApiQuery<T>(T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            Err(e) => Err(error(
                StatusCode::BAD_REQUEST,
                format!("query string: {}", e.body_text()),
            )),
        }
    }
}

/// What a request needs to be allowed.
#[derive(Clone, Copy)]
enum Need<'a> {
    /// Any valid token (`/me`, the event stream).
    Any,
    /// Read queues, agents, callbacks, calls: admin or supervisor.
    Read,
    /// Change agents or callbacks: admin or supervisor.
    Supervise,
    /// Change this agent: admin, supervisor, or that agent's own token.
    Agent(&'a str),
    /// Reload dialplans: admin only.
    Admin,
}

/// Who is asking.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Principal {
    role: Role,
    agent: Option<String>,
}

/// `None` when the request may proceed; otherwise the 401/403 to return.
fn check_token(ctx: &ServerCtx, headers: &HeaderMap) -> Option<Response> {
    authorize(ctx, headers, None, Need::Read)
        .err()
        .map(IntoResponse::into_response)
}

/// Authenticate (bearer header, or `?token=` for EventSource, which cannot
/// send headers) and check the role. No tokens configured: everybody is an
/// admin (the listener defaults to loopback).
fn authorize(
    ctx: &ServerCtx,
    headers: &HeaderMap,
    query_token: Option<&str>,
    need: Need<'_>,
) -> Result<Principal, ApiError> {
    let tokens = &ctx.config.api.tokens;
    if tokens.is_empty() {
        return Ok(Principal {
            role: Role::Admin,
            agent: None,
        });
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or(query_token)
        .unwrap_or("");
    // Compare against every token so timing does not reveal which matched.
    let mut found: Option<&crate::config::ApiToken> = None;
    for t in tokens {
        if constant_time_eq(given.as_bytes(), t.token.as_bytes()) {
            found = Some(t);
        }
    }
    let Some(t) = found else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token",
        ));
    };
    let p = Principal {
        role: t.role,
        agent: t.agent.clone(),
    };
    let allowed = match need {
        Need::Any => true,
        Need::Read | Need::Supervise => matches!(p.role, Role::Admin | Role::Supervisor),
        Need::Agent(id) => {
            matches!(p.role, Role::Admin | Role::Supervisor) || p.agent.as_deref() == Some(id)
        }
        Need::Admin => p.role == Role::Admin,
    };
    if allowed {
        Ok(p)
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "this token's role may not do that",
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

/// Agents as the API and the dashboard show them, with the context of the
/// call an agent is ringing for or talking to.
fn agents_json(
    ctx: &ServerCtx,
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

fn queues_json(queues: &[ringback_acd::QueueSnapshot], with_callers: bool) -> Vec<Value> {
    queues
        .iter()
        .map(|q| {
            json!({
                "name": q.name.as_str(),
                "strategy": q.strategy.name(),
                "waiting": q.waiting.iter().map(|w| json!({
                    "call_id": w.call.as_str(),
                    "caller": if with_callers { json!(w.caller) } else { Value::Null },
                    "callback": w.call.as_str().starts_with("cb-"),
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
        .collect()
}

async fn stats_json(ctx: &ServerCtx) -> Value {
    let mut st = ctx.live.stats();
    let midnight = chrono::Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
        .unwrap_or_else(chrono::Utc::now);
    st.repeat_call_rate_pct = ctx.store.repeat_call_rate(midnight).await.ok().flatten();
    serde_json::to_value(st).unwrap_or(Value::Null)
}

/// Everything the dashboard shows, as one JSON document.
async fn snapshot_json(ctx: &ServerCtx, who: &Principal) -> Value {
    let (agents, queues) = ctx.acd.snapshot().await;
    let agent_only = (who.role == Role::Agent).then(|| who.agent.clone().unwrap_or_default());
    let counts = ctx.store.callback_counts().await.unwrap_or_default();
    let count = |states: &[&str]| states.iter().filter_map(|s| counts.get(*s)).sum::<i64>();
    let pending = count(&["scheduled", "retry_wait", "requested"]);
    let dialing = count(&["dialing", "connected"]);
    let stats = stats_json(ctx).await;
    json!({
        "at": crate::store::ts(chrono::Utc::now()),
        "queues": queues_json(&queues, agent_only.is_none()),
        "agents": agents_json(ctx, &agents, agent_only.as_deref()),
        "callbacks": {
            "pending": pending,
            "dialing": dialing,
            "completed_today": stats["callbacks_completed_today"],
            "failed_today": stats["callbacks_failed_today"],
        },
        "stats": stats,
    })
}

async fn list_agents(State(ctx): State<Arc<ServerCtx>>, headers: HeaderMap) -> Response {
    if let Some(r) = check_token(&ctx, &headers) {
        return r;
    }
    let (agents, _) = ctx.acd.snapshot().await;
    json_response(
        StatusCode::OK,
        json!({ "agents": agents_json(&ctx, &agents, None) }),
    )
}

async fn list_queues(State(ctx): State<Arc<ServerCtx>>, headers: HeaderMap) -> Response {
    if let Some(r) = check_token(&ctx, &headers) {
        return r;
    }
    let (_, queues) = ctx.acd.snapshot().await;
    json_response(
        StatusCode::OK,
        json!({ "queues": queues_json(&queues, true) }),
    )
}

/// `GET /api/v1/trunks`: every trunk with its registration state.
async fn list_trunks(State(ctx): State<Arc<ServerCtx>>, headers: HeaderMap) -> Response {
    if let Some(r) = check_token(&ctx, &headers) {
        return r;
    }
    json_response(
        StatusCode::OK,
        json!({ "trunks": crate::trunk_registration::snapshot(&ctx.config) }),
    )
}

/// `GET /api/v1/me`: the caller's role (and agent, for agent tokens).
async fn me(State(ctx): State<Arc<ServerCtx>>, headers: HeaderMap) -> Response {
    match authorize(&ctx, &headers, None, Need::Any) {
        Ok(p) => json_response(
            StatusCode::OK,
            json!({
                "role": match p.role { Role::Admin => "admin", Role::Supervisor => "supervisor", Role::Agent => "agent" },
                "agent": p.agent,
            }),
        ),
        Err(r) => r.into_response(),
    }
}

/// Query of endpoints that accept `?token=` (EventSource cannot set headers).
#[derive(serde::Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// `GET /api/v1/events`: a `snapshot` event every second (server-sent
/// events), so pages update without polling or reloads.
async fn events(
    State(ctx): State<Arc<ServerCtx>>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<TokenQuery>,
) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let who = match authorize(&ctx, &headers, q.token.as_deref(), Need::Any) {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    let stream = futures_util::stream::unfold((ctx, who, true), |(ctx, who, first)| async move {
        if !first {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        let data = snapshot_json(&ctx, &who).await.to_string();
        let ev = Event::default().event("snapshot").data(data);
        Some((Ok::<_, std::convert::Infallible>(ev), (ctx, who, false)))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// `GET /api/v1/calls`: callers waiting for or talking to an agent.
async fn list_calls(State(ctx): State<Arc<ServerCtx>>, headers: HeaderMap) -> Response {
    if let Some(r) = check_token(&ctx, &headers) {
        return r;
    }
    let calls: Vec<Value> = ctx
        .live
        .calls()
        .into_iter()
        .map(|(id, c)| {
            json!({
                "call_id": id, "caller": c.caller, "path": c.path, "digits": c.digits,
                "waited_secs": (chrono::Utc::now() - c.entered_at).num_seconds().max(0),
                "repeat": c.repeat, "callback_id": c.callback_id,
            })
        })
        .collect();
    json_response(
        StatusCode::OK,
        json!({ "active_calls": metrics::CALLS_ACTIVE.load(Relaxed), "calls": calls }),
    )
}

/// Query of `GET /api/v1/cdrs`.
#[derive(serde::Deserialize)]
struct Limit {
    limit: Option<i64>,
}

async fn list_cdrs(
    State(ctx): State<Arc<ServerCtx>>,
    headers: HeaderMap,
    ApiQuery(l): ApiQuery<Limit>,
) -> Response {
    if let Some(r) = check_token(&ctx, &headers) {
        return r;
    }
    match ctx
        .store
        .recent_cdrs(l.limit.unwrap_or(100).clamp(1, 1000))
        .await
    {
        Ok(rows) => json_response(StatusCode::OK, json!({ "cdrs": rows })),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn stats(State(ctx): State<Arc<ServerCtx>>, headers: HeaderMap) -> Response {
    if let Some(r) = check_token(&ctx, &headers) {
        return r;
    }
    json_response(StatusCode::OK, stats_json(&ctx).await)
}

/// `GET /api/v1/dialplans`: what is serving now, and every version loaded.
async fn list_dialplans(State(ctx): State<Arc<ServerCtx>>, headers: HeaderMap) -> Response {
    if let Some(r) = check_token(&ctx, &headers) {
        return r;
    }
    let snap = ctx.snapshot();
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
async fn reload_dialplans(State(ctx): State<Arc<ServerCtx>>, headers: HeaderMap) -> Response {
    if let Err(r) = authorize(&ctx, &headers, None, Need::Admin) {
        return r.into_response();
    }
    match ctx.reload("API").await {
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

/// `POST /api/v1/agents/{id}/{login|logout|pause|unpause|ready}`; `pause`
/// takes `{"reason": "…"}`.
async fn agent_action(
    State(ctx): State<Arc<ServerCtx>>,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&ctx, &headers, None, Need::Agent(&id)) {
        return r.into_response();
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

/// A request error: status and a message naming the offending field.
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error(self.status, self.message)
    }
}

fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice::<Value>(body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("body is not JSON: {e}")))
        .and_then(|v| {
            if v.is_object() {
                Ok(v)
            } else {
                Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "body must be a JSON object",
                ))
            }
        })
}

/// A string field; `Err` names the field and what is wrong.
fn str_field(
    v: &Value,
    name: &str,
    required: bool,
    max: usize,
) -> Result<Option<String>, ApiError> {
    match v.get(name) {
        None | Some(Value::Null) if !required => Ok(None),
        None | Some(Value::Null) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("`{name}` is required"),
        )),
        Some(Value::String(s)) if s.chars().count() <= max => Ok(Some(s.clone())),
        Some(Value::String(_)) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("`{name}` is longer than {max} characters"),
        )),
        Some(_) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("`{name}` must be a string"),
        )),
    }
}

fn time_field(v: &Value, name: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
    match str_field(v, name, false, 64)? {
        None => Ok(None),
        Some(s) => crate::callbacks::parse_time(&s).map(Some).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("`{name}` must be an RFC 3339 time such as 2026-11-24T09:00:00Z"),
            )
        }),
    }
}

fn refusal_response(r: crate::callbacks::CallbackRefused) -> Response {
    let status = match r.code.as_str() {
        "duplicate" => StatusCode::CONFLICT,
        "denied" | "not_allowed" => StatusCode::FORBIDDEN,
        "rate_limited" => StatusCode::TOO_MANY_REQUESTS,
        "queue_full" | "store" | "unavailable" => StatusCode::SERVICE_UNAVAILABLE,
        "unknown" => StatusCode::NOT_FOUND,
        "conflict" => StatusCode::CONFLICT,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    json_response(status, json!({ "error": r.message, "code": r.code }))
}

fn callback_json(cb: &ringback_callback::Callback) -> Value {
    json!({
        "id": cb.id,
        "queue": cb.queue,
        "number": cb.number,
        "state": cb.state.as_str(),
        "entered_at": crate::store::ts(cb.entered_at),
        "created_at": crate::store::ts(cb.created_at),
        "attempts": cb.attempts,
        "next_attempt_at": cb.next_attempt_at.map(crate::store::ts),
        "expires_at": crate::store::ts(cb.expires_at),
        "context": cb.context,
        "origin": cb.origin.as_str(),
        "last_result": cb.last_result.as_ref().map(|r| r.code()),
    })
}

fn row_json(r: &crate::store::callbacks::CallbackRow) -> Value {
    json!({
        "id": r.id, "queue": r.queue, "number": r.number, "state": r.state,
        "entered_at": r.entered_at, "created_at": r.created_at, "updated_at": r.updated_at,
        "attempts": r.attempts, "next_attempt_at": r.next_attempt_at, "expires_at": r.expires_at,
        "preferred_start": r.preferred_start, "preferred_end": r.preferred_end,
        "context": r.context, "origin": r.origin, "last_result": r.last_result,
    })
}

/// `POST /api/v1/callbacks` — a web visitor asks to be called back.
async fn create_callback(
    State(ctx): State<Arc<ServerCtx>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&ctx, &headers, None, Need::Supervise) {
        return r.into_response();
    }
    let v = match parse_body(&body) {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let fields = (|| {
        let number = str_field(&v, "number", true, 32)?.unwrap_or_default();
        let queue = str_field(&v, "queue", true, 64)?.unwrap_or_default();
        let context = str_field(&v, "context", false, 1000)?.unwrap_or_default();
        let start = time_field(&v, "preferred_start")?;
        let end = time_field(&v, "preferred_end")?;
        let preferred = match (start, end) {
            (Some(a), Some(b)) => Some((a, b)),
            (None, None) => None,
            _ => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "`preferred_start` and `preferred_end` go together",
                ))
            }
        };
        Ok((number, queue, context, preferred))
    })();
    let (number, queue, context, preferred) = match fields {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    if !ctx.config.queues.contains_key(&queue) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("`queue`: no queue named `{queue}`"),
        );
    }
    let req = crate::callbacks::CallbackRequest {
        queue,
        number,
        entered_at: chrono::Utc::now(),
        preferred,
        context,
        origin: ringback_callback::Origin::Web,
    };
    match ctx.callbacks.request(req).await {
        Ok((cb, ahead)) => {
            let mut v = callback_json(&cb);
            v["ahead"] = json!(ahead);
            json_response(StatusCode::CREATED, v)
        }
        Err(r) => refusal_response(r),
    }
}

/// Query of `GET /api/v1/callbacks`.
#[derive(serde::Deserialize)]
struct CallbackFilter {
    state: Option<String>,
    queue: Option<String>,
    number: Option<String>,
    limit: Option<i64>,
}

async fn list_callbacks(
    State(ctx): State<Arc<ServerCtx>>,
    headers: HeaderMap,
    ApiQuery(f): ApiQuery<CallbackFilter>,
) -> Response {
    if let Some(r) = check_token(&ctx, &headers) {
        return r;
    }
    // An empty filter (`state=`) means no filter, as the schema allows.
    let nonempty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    let f = CallbackFilter {
        state: nonempty(f.state),
        queue: nonempty(f.queue),
        number: nonempty(f.number),
        limit: f.limit,
    };
    if let Some(s) = &f.state {
        if ringback_callback::CallbackState::parse(s).is_none() {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("`state`: unknown state `{s}`"),
            );
        }
    }
    let limit = f.limit.unwrap_or(100).clamp(1, 1000);
    match ctx
        .store
        .list_callbacks(
            f.state.as_deref(),
            f.queue.as_deref(),
            f.number.as_deref(),
            limit,
        )
        .await
    {
        Ok(rows) => json_response(
            StatusCode::OK,
            json!({ "callbacks": rows.iter().map(row_json).collect::<Vec<_>>() }),
        ),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn get_callback(
    State(ctx): State<Arc<ServerCtx>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = check_token(&ctx, &headers) {
        return r;
    }
    stored_callback(&ctx, &id).await
}

/// A callback as stored, with its history.
async fn stored_callback(ctx: &ServerCtx, id: &str) -> Response {
    match ctx.store.callback(id).await {
        Ok(Some((row, events))) => {
            let mut v = row_json(&row);
            v["events"] = json!(events
                .iter()
                .map(|e| json!({
                    "at": e.at, "from": e.from_state, "to": e.to_state,
                    "reason": e.reason, "attempt": e.attempt, "node": e.node,
                }))
                .collect::<Vec<_>>());
            json_response(StatusCode::OK, v)
        }
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no callback `{id}`")),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn cancel_callback(
    State(ctx): State<Arc<ServerCtx>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&ctx, &headers, None, Need::Supervise) {
        return r.into_response();
    }
    let v = match parse_body(&body) {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let reason = match str_field(&v, "reason", false, 200) {
        Ok(r) => r.unwrap_or_else(|| "cancelled by API".into()),
        Err(r) => return r.into_response(),
    };
    match ctx.callbacks.cancel(&id, &reason).await {
        Ok(()) => stored_callback(&ctx, &id).await,
        Err(r) => refusal_response(r),
    }
}

async fn reschedule_callback(
    State(ctx): State<Arc<ServerCtx>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&ctx, &headers, None, Need::Supervise) {
        return r.into_response();
    }
    let v = match parse_body(&body) {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let at = match time_field(&v, "at") {
        Ok(Some(t)) => t,
        Ok(None) => return error(StatusCode::UNPROCESSABLE_ENTITY, "`at` is required"),
        Err(r) => return r.into_response(),
    };
    match ctx.callbacks.reschedule(&id, at).await {
        Ok(()) => stored_callback(&ctx, &id).await,
        Err(r) => refusal_response(r),
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
