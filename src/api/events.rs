//! The live feed: everything the dashboard and the agent page show, pushed
//! as server-sent events.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::agents::{agents_view, Agent};
use super::auth::{authorize, Need, Principal};
use super::calls::day_stats;
use super::errors::ErrorBody;
use super::openapi::AuthErrors;
use super::queues::{queues_view, Queue};
use super::request::ApiQuery;
use super::ApiState;
use crate::config::Role;
use crate::live::DayStats;

/// Callback counts of a snapshot.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct SnapshotCallbacks {
    /// Waiting to be dialed (`requested`, `scheduled`, `retry_wait`).
    pending: i64,
    /// Being dialed or connected.
    dialing: i64,
    /// Completed today.
    completed_today: u32,
    /// Failed or expired today.
    failed_today: u32,
}

/// The `data` of a `snapshot` server-sent event: everything the dashboard
/// and the agent page show. For an agent token, `agents` holds only that
/// agent and waiting callers' numbers are null.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Snapshot {
    #[schema(format = DateTime)]
    at: String,
    queues: Vec<Queue>,
    agents: Vec<Agent>,
    callbacks: SnapshotCallbacks,
    stats: DayStats,
}

/// Everything the dashboard shows, as one document.
pub(super) async fn snapshot(ctx: &ApiState, who: &Principal) -> Snapshot {
    let (agents, queues) = ctx.acd.snapshot().await;
    let agent_only = (who.role == Role::Agent).then(|| who.agent.clone().unwrap_or_default());
    let counts = ctx.store.callback_counts().await.unwrap_or_default();
    let count = |states: &[&str]| states.iter().filter_map(|s| counts.get(*s)).sum::<i64>();
    let stats = day_stats(ctx).await;
    Snapshot {
        at: crate::store::ts(chrono::Utc::now()),
        queues: queues_view(&queues, agent_only.is_none(), &ctx.live),
        agents: agents_view(ctx, &agents, agent_only.as_deref()),
        callbacks: SnapshotCallbacks {
            pending: count(&["scheduled", "retry_wait", "requested"]),
            dialing: count(&["dialing", "connected"]),
            completed_today: stats.callbacks_completed_today,
            failed_today: stats.callbacks_failed_today,
        },
        stats,
    }
}

/// The names of the stream's events.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(super) enum EventName {
    Snapshot,
}

impl EventName {
    fn as_str(self) -> &'static str {
        match self {
            EventName::Snapshot => "snapshot",
        }
    }
}

/// One event of `GET /api/v1/events`, as the stream carries it: its name
/// and its `data` (one line of JSON).
#[derive(Debug, ToSchema)]
pub(super) struct ServerSentEvent {
    #[schema(inline)]
    event: EventName,
    /// JSON: the event's schema is under the answer's `x-events`.
    #[schema(content_media_type = "application/json")]
    data: String,
    #[schema(value_type = String, required = false)]
    id: Option<String>,
    /// Reconnection time, in milliseconds.
    #[schema(value_type = u64, required = false)]
    retry: Option<u64>,
}

impl From<ServerSentEvent> for Event {
    fn from(e: ServerSentEvent) -> Event {
        let mut ev = Event::default().event(e.event.as_str()).data(e.data);
        if let Some(id) = e.id {
            ev = ev.id(id);
        }
        if let Some(ms) = e.retry {
            ev = ev.retry(std::time::Duration::from_millis(ms));
        }
        ev
    }
}

/// Query of endpoints that accept `?token=` (EventSource cannot set headers).
#[derive(Debug, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct TokenQuery {
    /// Bearer token (EventSource cannot send headers)
    token: Option<String>,
}

/// Live snapshots (server-sent events, `snapshot` every second)
#[utoipa::path(
    get,
    path = "/api/v1/events",
    operation_id = "getEvents",
    tag = "ops",
    params(TokenQuery),
    responses(
        (status = 200, content_type = "text/event-stream", body = ServerSentEvent,
            description = "Event stream (`text/event-stream`): an event named `snapshot` at once and then every second, whose `data` is one line of JSON, a `Snapshot` (see `x-events`)."),
        (status = 400, description = "Malformed query string (JSON error, code `bad_request`).", body = ErrorBody),
        AuthErrors,
    )
)]
pub(super) async fn events(
    State(ctx): State<Arc<ApiState>>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<TokenQuery>,
) -> Response {
    use axum::response::sse::{KeepAlive, Sse};
    let who = match authorize(&ctx, &headers, q.token.as_deref(), Need::Any) {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    let stream = futures_util::stream::unfold((ctx, who, true), |(ctx, who, first)| async move {
        if !first {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        let data = serde_json::to_string(&snapshot(&ctx, &who).await).unwrap_or_default();
        let ev = ServerSentEvent {
            event: EventName::Snapshot,
            data,
            id: None,
            retry: None,
        };
        Some((
            Ok::<_, std::convert::Infallible>(Event::from(ev)),
            (ctx, who, false),
        ))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}
