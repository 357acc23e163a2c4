//! Trunks: the carriers customers are dialed through.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::check_token;
use super::errors::json_response;
use super::openapi::AuthErrors;
use super::ApiState;
use crate::trunk_registration::TrunkStatus;

/// The state of a trunk's registration. `not_registering`: the trunk does
/// not register (IP-authenticated). `unregistered`: not started or stopped.
/// `registering`: a REGISTER is under way and no binding is valid.
/// `registered`: the carrier holds our binding (a failed refresh keeps this
/// state while the binding lasts, with `last_error` set). `failed`: the last
/// attempt failed and no binding is valid; tried again at `retry_at` (5 s
/// doubling to 5 min).
// The names `TrunkStatus::state` takes, for the schema of `Trunk::state`.
#[allow(dead_code)]
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(super) enum TrunkState {
    NotRegistering,
    Unregistered,
    Registering,
    Registered,
    Failed,
}

/// A configured trunk (`[trunk]` as `default`, and `[trunks.NAME]`) and its
/// registration with the carrier.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Trunk {
    /// `default` for `[trunk]`, else the `[trunks.NAME]` name.
    name: String,
    /// The carrier's address (IP:port).
    #[schema(required = true)]
    address: Option<String>,
    /// Whether ringback registers to this trunk (`register = true`).
    register: bool,
    /// The registration's state.
    #[schema(value_type = TrunkState, inline)]
    state: String,
    /// When the binding expires unless refreshed (refreshes go out well
    /// before).
    #[schema(required = true, format = DateTime)]
    registered_until: Option<String>,
    /// The latest failure since the last success, e.g. `403 Forbidden`,
    /// `408 no response from the registrar`, `401 authentication failed:
    /// credentials rejected`.
    #[schema(required = true)]
    last_error: Option<String>,
    /// When a failed registration is tried again.
    #[schema(required = true, format = DateTime)]
    retry_at: Option<String>,
}

impl From<TrunkStatus> for Trunk {
    fn from(t: TrunkStatus) -> Trunk {
        Trunk {
            name: t.name,
            address: t.address,
            register: t.register,
            state: t.state,
            registered_until: t.registered_until,
            last_error: t.last_error,
            retry_at: t.retry_at,
        }
    }
}

/// The answer of `GET /api/v1/trunks`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct TrunkList {
    trunks: Vec<Trunk>,
}

/// Trunks and their registration state
///
/// Every configured trunk in the order calls try them, with the state of its
/// registration with the carrier. The same state is exported as the
/// Prometheus gauge `ringback_trunk_up{trunk="NAME"}` (1 registered, 0 not;
/// only for trunks with `register = true`).
#[utoipa::path(
    get,
    path = "/api/v1/trunks",
    operation_id = "listTrunks",
    tag = "trunks",
    responses((status = 200, description = "Trunks", body = TrunkList), AuthErrors)
)]
pub(super) async fn list_trunks(State(ctx): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    if let Some(r) = check_token(&ctx, &headers) {
        return r;
    }
    let trunks = crate::trunk_registration::snapshot(&ctx.config)
        .into_iter()
        .map(Trunk::from)
        .collect();
    json_response(StatusCode::OK, TrunkList { trunks })
}
