//! Callbacks: web requests for one, the list and history, cancel and
//! reschedule.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ringback_callback::{CallbackError, CallbackState, Origin};
use serde::Serialize;
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};
use utoipa::{IntoParams, ToSchema};

use super::auth::{authorize, check_token, Need};
use super::errors::{error, json_response, ApiError, ErrorBody};
use super::list_query::{answer_list, nonempty};
use super::openapi::{AuthErrors, NoToken};
use super::request::{ApiBody, ApiPath, ApiQuery};
use super::ApiState;
use crate::callbacks::CallbackRefusal;
use crate::store::callbacks::{CallbackEventRow, CallbackRow};
use crate::store::ts;

pub(super) mod bodies;

use self::bodies::{CancelCallback, NewCallback, RescheduleCallback};

/// A string schema whose values are `names`.
fn names_schema<'a>(names: impl IntoIterator<Item = &'a str>) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(names))
        .build()
}

/// The `state` of a callback: [`CallbackState`]'s stored names.
fn state_schema() -> Object {
    names_schema(CallbackState::ALL.map(CallbackState::as_str))
}

/// The `origin` of a callback: [`Origin`]'s stored names.
fn origin_schema() -> Object {
    // A new origin fails to compile here until it is listed.
    let all = |o: Origin| match o {
        Origin::Ivr | Origin::Web => o.as_str(),
    };
    names_schema([all(Origin::Ivr), all(Origin::Web)])
}

/// The `state` filter of the list: a state's name, or empty for every state.
fn state_filter_schema() -> Object {
    let mut schema =
        names_schema(std::iter::once("").chain(CallbackState::ALL.map(CallbackState::as_str)));
    // A parameter whose schema is given has its description here.
    schema.description = Some("Only callbacks in this state (empty: every state)".into());
    schema
}

/// One change of a callback's state.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct CallbackEvent {
    /// When (RFC 3339).
    at: String,
    /// The state before.
    from: String,
    /// The state after.
    to: String,
    /// Why.
    reason: String,
    /// The attempt number at the time.
    attempt: i64,
    /// The node that made the change.
    node: String,
}

impl From<CallbackEventRow> for CallbackEvent {
    fn from(e: CallbackEventRow) -> CallbackEvent {
        CallbackEvent {
            at: e.at,
            from: e.from_state,
            to: e.to_state,
            reason: e.reason,
            attempt: e.attempt,
            node: e.node,
        }
    }
}

/// A callback: as created (with `ahead`), as listed (with `updated_at`) or
/// as read one by one (with `updated_at` and its `events`).
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Callback {
    id: String,
    queue: String,
    /// The number to call, normalised (digits, with the `+`).
    number: String,
    #[schema(schema_with = state_schema)]
    state: String,
    /// The customer's place in line: when they first entered the queue
    /// (for a web request, when it was made).
    #[schema(format = DateTime)]
    entered_at: String,
    /// When the request was accepted.
    #[schema(format = DateTime)]
    created_at: String,
    /// Last change (stored callbacks).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    updated_at: Option<String>,
    /// Dial attempts so far.
    attempts: i64,
    /// Not dialed before this time (`scheduled`, `retry_wait`).
    #[schema(required = true)]
    next_attempt_at: Option<String>,
    /// Gives up if still waiting at this time.
    expires_at: String,
    /// The customer's preferred window: its start.
    #[schema(required = true)]
    preferred_start: Option<String>,
    /// The customer's preferred window: its end.
    #[schema(required = true)]
    preferred_end: Option<String>,
    /// Shown to the agent.
    context: String,
    #[schema(schema_with = origin_schema)]
    origin: String,
    /// The last attempt's result.
    #[schema(required = true)]
    last_result: Option<String>,
    /// Callers and callbacks ahead of this one in the queue (a new
    /// callback).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = u64)]
    ahead: Option<usize>,
    /// The history of its states (one callback read by id).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Vec<CallbackEvent>)]
    events: Option<Vec<CallbackEvent>>,
}

impl Callback {
    /// A callback as the service holds it.
    fn created(cb: &ringback_callback::Callback, ahead: usize) -> Callback {
        Callback {
            id: cb.id.clone(),
            queue: cb.queue.clone(),
            number: cb.number.clone(),
            state: cb.state.as_str().to_string(),
            entered_at: ts(cb.entered_at),
            created_at: ts(cb.created_at),
            updated_at: None,
            attempts: i64::from(cb.attempts),
            next_attempt_at: cb.next_attempt_at.map(ts),
            expires_at: ts(cb.expires_at),
            preferred_start: cb.preferred.map(|(a, _)| ts(a)),
            preferred_end: cb.preferred.map(|(_, b)| ts(b)),
            context: cb.context.clone(),
            origin: cb.origin.as_str().to_string(),
            last_result: cb.last_result.as_ref().map(|r| r.code().to_string()),
            ahead: Some(ahead),
            events: None,
        }
    }

    /// A callback as stored.
    fn stored(r: CallbackRow) -> Callback {
        Callback {
            id: r.id,
            queue: r.queue,
            number: r.number,
            state: r.state,
            entered_at: r.entered_at,
            created_at: r.created_at,
            updated_at: Some(r.updated_at),
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at,
            expires_at: r.expires_at,
            preferred_start: r.preferred_start,
            preferred_end: r.preferred_end,
            context: r.context,
            origin: r.origin,
            last_result: r.last_result,
            ahead: None,
            events: None,
        }
    }
}

/// Request a callback
#[utoipa::path(
    post,
    path = "/api/v1/callbacks",
    operation_id = "createCallback",
    tag = "callbacks",
    request_body = NewCallback,
    responses(
        (status = 201, description = "Stored; the customer will be called", body = Callback,
            links(
                ("getCallback" = (operation_id = "getCallback", parameters(("id" = "$response.body#/id")))),
                ("cancelCallback" = (operation_id = "cancelCallback", parameters(("id" = "$response.body#/id")))),
                ("rescheduleCallback" = (operation_id = "rescheduleCallback", parameters(("id" = "$response.body#/id")))),
            )
        ),
        (status = 400, description = "Body is not JSON", body = ErrorBody),
        NoToken,
        (status = 403, description = "The token's role may not do this, or the number is denied / not allowed for the queue", body = ErrorBody),
        (status = 409, description = "A callback for this number is pending in this queue", body = ErrorBody),
        (status = 413, description = "Body over 2 MB", body = ErrorBody),
        (status = 422, description = "Invalid field (code `invalid`, `invalid_number`, `invalid_window`, `no_dialing_time`, `id_in_use`)", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 503, description = "Queue full or store unavailable", body = ErrorBody),
    )
)]
pub(super) async fn create_callback(
    State(ctx): State<Arc<ApiState>>,
    headers: HeaderMap,
    ApiBody(body): ApiBody,
) -> Response {
    if let Err(r) = authorize(&ctx, &headers, None, Need::Supervise) {
        return r.into_response();
    }
    let new = match NewCallback::parse(&body) {
        Ok(n) => n,
        Err(r) => return r.into_response(),
    };
    if !ctx.config.queues.contains_key(&new.queue) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("`queue`: no queue named `{}`", new.queue),
        );
    }
    let req = crate::callbacks::CallbackRequest {
        queue: new.queue,
        number: new.number,
        entered_at: chrono::Utc::now(),
        preferred: new.preferred_start.zip(new.preferred_end),
        not_before: None,
        context: new.context.unwrap_or_default(),
        origin: ringback_callback::Origin::Web,
    };
    match ctx.callbacks.request(req).await {
        Ok((cb, ahead)) => json_response(StatusCode::CREATED, Callback::created(&cb, ahead)),
        Err(r) => r.reason.into_response(),
    }
}

/// Query of `GET /api/v1/callbacks`.
#[derive(Debug, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct CallbackFilter {
    #[param(schema_with = state_filter_schema)]
    state: Option<String>,
    /// Filter by queue (empty: no filter)
    queue: Option<String>,
    /// Filter by number (empty: no filter)
    number: Option<String>,
    /// At most this many (newest first)
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<i64>,
}

/// The answer of `GET /api/v1/callbacks`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct CallbackList {
    callbacks: Vec<Callback>,
}

/// Callbacks, newest first
#[utoipa::path(
    get,
    path = "/api/v1/callbacks",
    operation_id = "listCallbacks",
    tag = "callbacks",
    params(CallbackFilter),
    responses(
        (status = 200, description = "Callbacks", body = CallbackList),
        (status = 400, description = "Malformed query string (JSON error, code `bad_request`).", body = ErrorBody),
        AuthErrors,
        (status = 422, description = "Invalid filter (unknown state, `limit` outside 1-1000)", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    )
)]
pub(super) async fn list_callbacks(
    State(ctx): State<Arc<ApiState>>,
    headers: HeaderMap,
    ApiQuery(f): ApiQuery<CallbackFilter>,
) -> Response {
    // `state=%0C` is an unknown state (422): white space is not empty.
    let f = CallbackFilter {
        state: nonempty(f.state),
        queue: nonempty(f.queue),
        number: nonempty(f.number),
        limit: f.limit,
    };
    let filters = match &f.state {
        Some(s) if CallbackState::parse(s).is_none() => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("`state`: unknown state `{s}`"),
        )),
        _ => Ok(()),
    };
    answer_list(
        &ctx,
        &headers,
        filters,
        f.limit,
        |limit| {
            ctx.store.list_callbacks(
                f.state.as_deref(),
                f.queue.as_deref(),
                f.number.as_deref(),
                limit,
            )
        },
        |rows| CallbackList {
            callbacks: rows.into_iter().map(Callback::stored).collect(),
        },
    )
    .await
}

/// One callback with its history
#[utoipa::path(
    get,
    path = "/api/v1/callbacks/{id}",
    operation_id = "getCallback",
    tag = "callbacks",
    params(("id" = String, Path, description = "Callback id")),
    responses(
        (status = 200, description = "Callback", body = Callback),
        (status = 400, description = "Path is not UTF-8 after percent-decoding", body = ErrorBody),
        AuthErrors,
        (status = 404, description = "Unknown", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    )
)]
pub(super) async fn get_callback(
    State(ctx): State<Arc<ApiState>>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Response {
    if let Some(r) = check_token(&ctx, &headers) {
        return r;
    }
    stored_callback(&ctx, &id).await
}

/// A refused command as its answer. The service knows only live callbacks,
/// so "unknown" there may be one that has ended (completed, failed,
/// cancelled, expired): it exists, so that is `409`, not `404`.
async fn command_refused(ctx: &ApiState, id: &str, reason: CallbackRefusal) -> Response {
    if matches!(reason, CallbackRefusal::Command(CallbackError::Unknown(_))) {
        if let Ok(Some((row, _))) = ctx.store.callback(id).await {
            return error(
                StatusCode::CONFLICT,
                format!("callback `{id}` has ended ({})", row.state),
            );
        }
    }
    reason.into_response()
}

/// A callback as stored, with its history.
async fn stored_callback(ctx: &ApiState, id: &str) -> Response {
    match ctx.store.callback(id).await {
        Ok(Some((row, events))) => {
            let mut cb = Callback::stored(row);
            cb.events = Some(events.into_iter().map(CallbackEvent::from).collect());
            json_response(StatusCode::OK, cb)
        }
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no callback `{id}`")),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// Cancel a waiting callback
#[utoipa::path(
    post,
    path = "/api/v1/callbacks/{id}/cancel",
    operation_id = "cancelCallback",
    tag = "callbacks",
    params(("id" = String, Path, description = "Callback id")),
    request_body(content = Option<CancelCallback>, content_type = "application/json"),
    responses(
        (status = 200, description = "Cancelled", body = Callback),
        (status = 400, description = "Body is not JSON, or the path is not UTF-8", body = ErrorBody),
        AuthErrors,
        (status = 404, description = "Unknown", body = ErrorBody),
        (status = 409, description = "Not cancellable now", body = ErrorBody),
        (status = 413, description = "Body over 2 MB", body = ErrorBody),
        (status = 422, description = "Invalid body", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    )
)]
pub(super) async fn cancel_callback(
    State(ctx): State<Arc<ApiState>>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    ApiBody(body): ApiBody,
) -> Response {
    if let Err(r) = authorize(&ctx, &headers, None, Need::Supervise) {
        return r.into_response();
    }
    let reason = match CancelCallback::parse(&body) {
        Ok(b) => b.reason.unwrap_or_else(|| "cancelled by API".into()),
        Err(r) => return r.into_response(),
    };
    match ctx.callbacks.cancel(&id, &reason).await {
        Ok(()) => stored_callback(&ctx, &id).await,
        Err(r) => command_refused(&ctx, &id, r.reason).await,
    }
}

/// Move a waiting callback
#[utoipa::path(
    post,
    path = "/api/v1/callbacks/{id}/reschedule",
    operation_id = "rescheduleCallback",
    tag = "callbacks",
    params(("id" = String, Path, description = "Callback id")),
    request_body = RescheduleCallback,
    responses(
        (status = 200, description = "Rescheduled", body = Callback),
        (status = 400, description = "Body is not JSON, or the path is not UTF-8", body = ErrorBody),
        AuthErrors,
        (status = 404, description = "Unknown", body = ErrorBody),
        (status = 409, description = "Not reschedulable now", body = ErrorBody),
        (status = 413, description = "Body over 2 MB", body = ErrorBody),
        (status = 422, description = "Invalid body", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    )
)]
pub(super) async fn reschedule_callback(
    State(ctx): State<Arc<ApiState>>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    ApiBody(body): ApiBody,
) -> Response {
    if let Err(r) = authorize(&ctx, &headers, None, Need::Supervise) {
        return r.into_response();
    }
    let at = match RescheduleCallback::parse(&body) {
        Ok(b) => b.at,
        Err(r) => return r.into_response(),
    };
    match ctx.callbacks.reschedule(&id, at).await {
        Ok(()) => stored_callback(&ctx, &id).await,
        Err(r) => command_refused(&ctx, &id, r.reason).await,
    }
}
