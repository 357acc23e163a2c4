//! The HTTP surface: Prometheus metrics, a health check, the REST API (agents,
//! queues, calls, callbacks, dialplans, trunks) with its OpenAPI document,
//! server-sent events, and the supervisor dashboard and agent page.
//!
//! When `api.tokens` are configured, `/api/*` requires
//! `Authorization: Bearer <token>` (compared in constant time) and checks the
//! token's role; `/metrics`, `/healthz` and the static pages stay open (the
//! pages ask for a token and send it with every request).
//!
//! One module per concept: `auth` (tokens and roles), `errors` (the JSON
//! error body for every error, unrouted requests included, and how callback
//! refusals become statuses), `request` (paths, query strings and bodies),
//! then the resources: `agents`, `queues`, `calls`, `callbacks`,
//! `dialplans`, `trunks`, the live `events` feed and the `prometheus`
//! metrics.

mod agents;
mod auth;
mod callbacks;
mod calls;
mod dialplans;
mod errors;
mod events;
mod prometheus;
mod queues;
mod request;
mod trunks;

use std::sync::Arc;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;

use crate::acd_task::AcdHandle;
use crate::callbacks::CallbackHandle;
use crate::config::Config;
use crate::live::Live;
use crate::media::MediaEngine;
use crate::snapshot::Dialplans;
use crate::store::Store;

use self::agents::{agent_action, list_agents};
use self::auth::me;
use self::callbacks::{
    cancel_callback, create_callback, get_callback, list_callbacks, reschedule_callback,
};
use self::calls::{list_calls, list_cdrs, stats};
use self::dialplans::{list_dialplans, reload_dialplans};
use self::errors::{no_route, wrong_method};
use self::events::events;
use self::prometheus::metrics_handler;
use self::queues::list_queues;
use self::trunks::list_trunks;

/// What the API reads and changes, handed over by the server at start-up.
pub struct ApiState {
    /// Configuration (tokens, queues, trunks).
    pub config: Arc<Config>,
    /// Call records, callbacks, agent history.
    pub store: Store,
    /// Agents and queues.
    pub acd: AcdHandle,
    /// Callback requests and commands.
    pub callbacks: CallbackHandle,
    /// Live calls and today's counters.
    pub live: Arc<Live>,
    /// Dialplans in force, and their reload.
    pub dialplans: Arc<Dialplans>,
    /// Media load for `/metrics`.
    pub media: Arc<MediaEngine>,
}

/// Build the router.
pub fn router(ctx: Arc<ApiState>) -> Router {
    let openapi = openapi_document(&ctx.config);
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
            get(move || async move { ([(header::CONTENT_TYPE, "application/json")], openapi) }),
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
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .with_state(ctx)
}

const DASHBOARD: &str = include_str!("assets/dashboard.html");
const AGENT_PAGE: &str = include_str!("assets/agent.html");
const APP_CSS: &str = include_str!("assets/app.css");
const OPENAPI: &str = include_str!("openapi.json");

/// The OpenAPI document as this server serves it: the written document with
/// the configured queue names as the `enum` of a new callback's `queue`,
/// and the configured agent ids as the `enum` of the agent path parameter,
/// so a client (or a fuzzer) knows which values exist.
fn openapi_document(config: &Config) -> String {
    let mut doc: serde_json::Value =
        serde_json::from_str(OPENAPI).expect("src/api/openapi.json is JSON (tests/api.rs)");
    let queues: Vec<&String> = config.queues.keys().collect();
    if !queues.is_empty() {
        doc["components"]["schemas"]["NewCallback"]["properties"]["queue"]["enum"] =
            serde_json::json!(queues);
    }
    let agents: Vec<&String> = config.agents.keys().collect();
    if !agents.is_empty() {
        let params = doc["paths"]["/api/v1/agents/{id}/{action}"]["post"]["parameters"]
            .as_array_mut()
            .into_iter()
            .flatten();
        for p in params.filter(|p| p["name"] == "id") {
            p["schema"]["enum"] = serde_json::json!(agents);
        }
    }
    doc.to_string()
}

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
pub async fn serve(listener: TcpListener, ctx: Arc<ApiState>) {
    if let Err(e) = axum::serve(listener, router(ctx)).await {
        tracing::error!(error = %e, "HTTP server stopped");
    }
}
