//! The live feed: everything the dashboard and the agent page show, pushed
//! as server-sent events.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::agents::agents_json;
use super::auth::{authorize, Need, Principal};
use super::calls::stats_json;
use super::queues::queues_json;
use super::request::ApiQuery;
use super::ApiState;
use crate::config::Role;

/// Everything the dashboard shows, as one JSON document.
pub(super) async fn snapshot_json(ctx: &ApiState, who: &Principal) -> Value {
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

/// Query of endpoints that accept `?token=` (EventSource cannot set headers).
#[derive(serde::Deserialize)]
pub(super) struct TokenQuery {
    token: Option<String>,
}

/// `GET /api/v1/events`: a `snapshot` event every second (server-sent
/// events), so pages update without polling or reloads.
pub(super) async fn events(
    State(ctx): State<Arc<ApiState>>,
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
