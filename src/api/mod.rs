//! The HTTP surface: Prometheus metrics, a health check, the REST API (agents,
//! queues, calls, callbacks, customers, dialplans, trunks) with its OpenAPI document,
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
//! `list_query` (the filters and `limit` of a list, and its answer),
//! `openapi` (the one list of routes, and the OpenAPI document generated
//! from the handlers' own types), then the resources: `agents`, `queues`,
//! `calls`, `callbacks`, `customers`, `dialplans`, `trunks`, `recordings`, the live `events` feed,
//! the `prometheus` metrics and `node` (draining this node).

mod agents;
mod auth;
mod callbacks;
mod calls;
mod customers;
mod dialplans;
mod errors;
mod events;
mod list_query;
mod node;
mod openapi;
mod phone;
mod prometheus;
mod queues;
mod recordings;
mod request;
mod surveys;
mod to_owner;
mod trunks;
mod webcall;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use tokio::net::TcpListener;

use crate::acd_task::AcdHandle;
use crate::callbacks::CallbackHandle;
use crate::config::Config;
use crate::directory::Directory;
use crate::live::Live;
use crate::media::MediaEngine;
use crate::snapshot::Dialplans;
use crate::store::Store;

use self::errors::{no_route, wrong_method};
use self::openapi::{AuthErrors, Me, ServedDocument};

/// What the API reads and changes, handed over by the server at start-up.
pub struct ApiState {
    /// Configuration (tokens, queues, trunks).
    pub config: Arc<Config>,
    /// Tokens and the Host/Origin allow-list in force (reloaded on SIGHUP).
    pub access: Arc<crate::api_access::ApiAccess>,
    /// Call records, callbacks, agent history, customers.
    pub store: Store,
    /// The customer directory calls use, changed with the store.
    pub directory: Arc<Directory>,
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
    /// Agents' browser phones (the `/api/v1/phone` WebSocket).
    pub phones: Arc<crate::browser::BrowserPhones>,
    /// Call recordings (pause and resume, the files).
    pub recorder: Arc<crate::recording::Recorder>,
    /// Who runs the queues (their API answers come from there).
    pub owner: crate::cluster::OwnerWatch,
}

/// Build the router: every route of [`openapi::routes`], the list the
/// served OpenAPI document is made from.
pub fn router(ctx: Arc<ApiState>) -> Router {
    let (routes, doc) = openapi::router_and_document();
    let doc = ServedDocument(Arc::new(openapi::served(doc, &ctx.config)));
    routes
        .layer(Extension(doc))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&ctx),
            to_owner::to_owner,
        ))
        .with_state(ctx)
}

const DASHBOARD: &str = include_str!("assets/dashboard.html");
const AGENT_PAGE: &str = include_str!("assets/agent.html");
const APP_CSS: &str = include_str!("assets/app.css");
const PHONE_JS: &str = include_str!("assets/phone.js");
const CALL_PAGE: &str = include_str!("assets/call.html");
const CALL_BUTTON_JS: &str = include_str!("assets/call-button.js");

/// The supervisor dashboard
///
/// It asks for a token and sends it with every request.
#[utoipa::path(
    get,
    path = "/",
    operation_id = "getDashboard",
    tag = "pages",
    security(()),
    responses((status = 200, description = "The page", content_type = "text/html", body = String))
)]
async fn dashboard() -> Response {
    page(DASHBOARD)
}

/// The agent page
///
/// It asks for the agent's token and sends it with every request.
#[utoipa::path(
    get,
    path = "/agent",
    operation_id = "getAgentPage",
    tag = "pages",
    security(()),
    responses((status = 200, description = "The page", content_type = "text/html", body = String))
)]
async fn agent_page() -> Response {
    page(AGENT_PAGE)
}

/// The pages' style sheet
#[utoipa::path(
    get,
    path = "/assets/app.css",
    operation_id = "getAppCss",
    tag = "pages",
    security(()),
    responses((status = 200, description = "CSS", content_type = "text/css", body = String))
)]
async fn app_css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], APP_CSS).into_response()
}

/// A JavaScript asset.
fn script(js: &'static str) -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        js,
    )
        .into_response()
}

/// The agent page's browser phone (WebRTC)
#[utoipa::path(
    get,
    path = "/assets/phone.js",
    operation_id = "getPhoneJs",
    tag = "pages",
    security(()),
    responses((status = 200, description = "JavaScript", content_type = "text/javascript", body = String))
)]
async fn phone_js() -> Response {
    script(PHONE_JS)
}

/// The public "call us" page
///
/// `/call?number=N&topic=T`: a visitor calls a public number
/// (`webrtc.public_numbers`) from the browser.
#[utoipa::path(
    get,
    path = "/call",
    operation_id = "getCallPage",
    tag = "pages",
    security(()),
    responses((status = 200, description = "The page", content_type = "text/html", body = String))
)]
async fn call_page() -> Response {
    page(CALL_PAGE)
}

/// The embeddable "call us" button
#[utoipa::path(
    get,
    path = "/assets/call-button.js",
    operation_id = "getCallButtonJs",
    tag = "pages",
    security(()),
    responses((status = 200, description = "JavaScript", content_type = "text/javascript", body = String))
)]
async fn call_button_js() -> Response {
    script(CALL_BUTTON_JS)
}

/// Health check
///
/// `draining` instead of `ok` while the node drains (`POST
/// /api/v1/node/drain`, SIGUSR1): alive, finishing its calls, taking no new
/// ones (its SIP OPTIONS answer 503).
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "getHealth",
    tag = "ops",
    security(()),
    responses((status = 200, description = "`ok` (or `draining`) and a line break", content_type = "text/plain", body = String))
)]
async fn healthz() -> Response {
    let body = if crate::drain::is_draining() {
        "draining\n"
    } else {
        "ok\n"
    };
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

/// Who the token belongs to
#[utoipa::path(
    get,
    path = "/api/v1/me",
    operation_id = "getMe",
    tag = "ops",
    responses((status = 200, description = "Role", body = Me), AuthErrors)
)]
async fn get_me(ctx: State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    auth::me(ctx, headers).await
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
    let app = router(ctx).into_make_service_with_connect_info::<std::net::SocketAddr>();
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "HTTP server stopped");
    }
}
