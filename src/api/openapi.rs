//! The OpenAPI 3.1 document, generated from the handlers' own types:
//! every handler carries `#[utoipa::path]` (path, parameters, body and
//! every status it answers), every answer and request body is a Rust type
//! deriving `ToSchema` that the handler serializes (or parses into), and
//! [`routes`] is the one list of routes: the router and the document are
//! both made from it (`utoipa-axum`), so neither has a route the other
//! lacks. A unit test below fails if a route is added any other way.
//!
//! What the types cannot say is added in [`finish`] (the event stream's
//! `x-events` and the `contentSchema` of an event's data), and
//! [`served`] lists the configured queues and agents as `enum`s.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{IntoResponses, Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::errors::ErrorBody;
use super::events::Snapshot;
use super::ApiState;
use crate::config::Config;

const DESCRIPTION: &str =
    "Agents, queues, callbacks, calls, recordings, customers and dialplans of a ringback server, \
with `/metrics` (Prometheus text), `/healthz` and the pages served beside them without \
authentication. Every error is an `Error` object; a path no route serves is `404` and a method a \
path does not take is `405` (with `Allow`), both with the same body. As served, the document \
lists the server's configured queues and agents as the `enum`s of a new callback's `queue` and \
of the agent path parameter. The document is generated from the handlers' own types.";

#[derive(OpenApi)]
#[openapi(
    info(title = "ringback API", description = DESCRIPTION),
    servers((url = "/")),
    security(("bearer" = [])),
    modifiers(&BearerScheme),
    components(schemas(ErrorBody, Snapshot)),
    tags(
        (name = "ops", description = "Who am I, live events, figures, health and metrics"),
        (name = "agents", description = "Agents and their states"),
        (name = "queues", description = "Queues and who waits in them"),
        (name = "calls", description = "Calls in progress and call records"),
        (name = "callbacks", description = "Callback requests"),
        (name = "customers", description = "The customer directory: who calls"),
        (name = "recordings", description = "Call recordings: their files, pause and resume"),
        (name = "dialplans", description = "Dialplans serving and their reload"),
        (name = "trunks", description = "Carriers and their registration"),
        (name = "pages", description = "The dashboard and the agent page"),
    )
)]
struct ApiDoc;

/// The `bearer` scheme that the document's `security` names.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every route the server has, each with its handler's operation: the one
/// list the router and the document are made from. One `routes!` per path
/// (handlers of one path together).
pub(super) fn routes() -> OpenApiRouter<Arc<ApiState>> {
    use super::{
        agents, callbacks, calls, customers, dialplans, events, phone, prometheus, queues,
        recordings, surveys, trunks, webcall,
    };
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(super::dashboard))
        .routes(routes!(super::agent_page))
        .routes(routes!(super::app_css))
        .routes(routes!(super::phone_js))
        .routes(routes!(super::healthz))
        .routes(routes!(super::node::drain_node))
        .routes(routes!(prometheus::metrics_handler))
        .routes(routes!(openapi_json))
        .routes(routes!(super::get_me))
        .routes(routes!(events::events))
        .routes(routes!(calls::list_calls))
        .routes(routes!(calls::list_cdrs))
        .routes(routes!(calls::stats))
        .routes(routes!(surveys::get_csat))
        .routes(routes!(dialplans::list_dialplans))
        .routes(routes!(dialplans::reload_dialplans))
        .routes(routes!(agents::list_agents))
        .routes(routes!(agents::agent_action))
        .routes(routes!(phone::phone))
        .routes(routes!(webcall::create_token))
        .routes(routes!(webcall::web_call))
        .routes(routes!(super::call_page))
        .routes(routes!(super::call_button_js))
        .routes(routes!(queues::list_queues))
        .routes(routes!(trunks::list_trunks))
        .routes(routes!(
            callbacks::list_callbacks,
            callbacks::create_callback
        ))
        .routes(routes!(callbacks::get_callback))
        .routes(routes!(callbacks::cancel_callback))
        .routes(routes!(callbacks::reschedule_callback))
        .routes(routes!(
            customers::list_customers,
            customers::create_customer
        ))
        .routes(routes!(
            customers::get_customer,
            customers::update_customer,
            customers::delete_customer
        ))
        .routes(routes!(recordings::list_recordings))
        .routes(routes!(recordings::get_recording))
        .routes(routes!(recordings::get_recording_audio))
        .routes(routes!(recordings::pause_recording))
        .routes(routes!(recordings::resume_recording))
}

/// The router of [`routes`] and its document, finished.
pub(super) fn router_and_document() -> (axum::Router<Arc<ApiState>>, Value) {
    let (router, doc) = routes().split_for_parts();
    let doc = serde_json::to_value(&doc).expect("the OpenAPI document is JSON");
    (router, finish(doc))
}

/// What the handlers' annotations cannot say: the events of the stream (an
/// extension of its answer, and the schema of each event's `data`); that an
/// optional body (`Option<T>` in `request_body`) is absent or a `T`, not
/// `null`; and links as OpenAPI spells them (utoipa 5 writes a link's
/// fields in snake case).
fn finish(mut doc: Value) -> Value {
    let snapshot = json!({ "$ref": format!("#/components/schemas/{}", Snapshot::name()) });
    let ok = &mut doc["paths"]["/api/v1/events"]["get"]["responses"]["200"];
    ok["x-events"] = json!({ "snapshot": snapshot });
    let sse = &mut doc["components"]["schemas"]["ServerSentEvent"]["properties"]["data"];
    sse["contentSchema"] = snapshot;
    let operations = doc["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut());
    for op in operations {
        let bodies = op
            .pointer_mut("/requestBody/content")
            .and_then(Value::as_object_mut);
        for media in bodies.into_iter().flat_map(|c| c.values_mut()) {
            let Some(schema) = media.get_mut("schema") else {
                continue;
            };
            let one_of = schema["oneOf"].as_array().cloned().unwrap_or_default();
            if let [null, body] = &one_of[..] {
                if null == &json!({ "type": "null" }) {
                    *schema = body.clone();
                }
            }
        }
        let responses = op.get_mut("responses").and_then(Value::as_object_mut);
        for r in responses.into_iter().flat_map(|r| r.values_mut()) {
            let links = r.get_mut("links").and_then(Value::as_object_mut);
            let links = links.into_iter().flat_map(|l| l.values_mut());
            for link in links.filter_map(Value::as_object_mut) {
                for (snake, camel) in [
                    ("operation_id", "operationId"),
                    ("operation_ref", "operationRef"),
                    ("request_body", "requestBody"),
                ] {
                    if let Some(v) = link.remove(snake) {
                        link.insert(camel.to_string(), v);
                    }
                }
            }
        }
    }
    doc
}

/// The document as this server serves it: the configured queue names as
/// the `enum` of a new callback's `queue`, and the configured agent ids as
/// the `enum` of the agent path parameter, so a client (or a fuzzer) knows
/// which values exist.
pub(super) fn served(mut doc: Value, config: &Config) -> String {
    let queues: Vec<&String> = config.queues.keys().collect();
    let agents: Vec<&String> = config.agents.keys().collect();
    list_values(&mut doc, &queues, &agents);
    doc.to_string()
}

fn list_values(doc: &mut Value, queues: &[&String], agents: &[&String]) {
    if !queues.is_empty() {
        let queue = &mut doc["components"]["schemas"]["NewCallback"]["properties"]["queue"];
        assert!(queue.is_object(), "NewCallback has a queue");
        queue["enum"] = json!(queues);
    }
    if !agents.is_empty() {
        let params = doc["paths"]["/api/v1/agents/{id}/{action}"]["post"]["parameters"]
            .as_array_mut()
            .expect("agentAction has parameters");
        for p in params.iter_mut().filter(|p| p["name"] == "id") {
            p["schema"]["enum"] = json!(agents);
        }
    }
}

/// The served document, made once per router.
#[derive(Clone)]
pub(super) struct ServedDocument(pub(super) Arc<String>);

/// This document
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    operation_id = "getOpenApi",
    tag = "ops",
    security(()),
    responses((status = 200, description = "The OpenAPI document (this one)", body = Object))
)]
pub(super) async fn openapi_json(Extension(doc): Extension<ServedDocument>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.0.as_str().to_owned(),
    )
        .into_response()
}

/// A token's role and agent (the answer of `GET /api/v1/me`).
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Me {
    #[schema(inline)]
    pub(super) role: RoleName,
    /// The agent an agent token belongs to.
    #[schema(required = true)]
    pub(super) agent: Option<String>,
}

/// A token's role.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(super) enum RoleName {
    Admin,
    Supervisor,
    Agent,
}

fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(ErrorBody::name())))
                .build(),
        )
        .build()
        .into()
}

/// `401`: the answer of every operation that needs a token, when it is
/// missing or wrong.
pub(super) struct NoToken;

impl IntoResponses for NoToken {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        let status = StatusCode::UNAUTHORIZED.as_u16().to_string();
        BTreeMap::from([(status, error_response("Missing or wrong bearer token"))])
    }
}

/// `401` and `403` (the token's role may not): the answers of every
/// operation that needs a token.
pub(super) struct AuthErrors;

impl IntoResponses for AuthErrors {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        let mut r = NoToken::responses();
        r.insert(
            StatusCode::FORBIDDEN.as_u16().to_string(),
            error_response("The token's role may not do this"),
        );
        r
    }
}

#[cfg(test)]
mod tests;
