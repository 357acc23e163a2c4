//! Calls: the ones in progress, call records, and today's statistics.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::auth::check_token;
use super::errors::{error, json_response, ErrorBody};
use super::openapi::AuthErrors;
use super::request::{limit_param, ApiQuery};
use super::ApiState;
use crate::live::DayStats;
use crate::metrics;
use crate::store::cdrs::CdrRow;

/// Today's figures: the live counters, and the repeat-call rate from the
/// store.
pub(super) async fn day_stats(ctx: &ApiState) -> DayStats {
    let mut st = ctx.live.stats();
    // Today as the counters see it: since local midnight of `stats.timezone`.
    let midnight = ctx.live.day_start();
    st.repeat_call_rate_pct = ctx.store.repeat_call_rate(midnight).await.ok().flatten();
    st
}

/// A caller waiting for or talking to an agent.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Call {
    call_id: String,
    caller: String,
    /// The caller's name, when the customer directory knows the number.
    #[schema(required = true)]
    caller_name: Option<String>,
    /// The caller's account id, from the customer directory.
    #[schema(required = true)]
    account: Option<String>,
    /// Menu path.
    path: String,
    digits: String,
    /// Seconds since the caller first entered a queue.
    waited_secs: i64,
    /// Calls from this number in the previous 7 days.
    #[schema(required = true)]
    repeat: Option<i64>,
    /// The callback this call is an attempt of.
    #[schema(required = true)]
    callback_id: Option<String>,
}

/// The answer of `GET /api/v1/calls`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct CallList {
    /// Calls in progress, in any phase.
    active_calls: u64,
    /// The ones waiting for or talking to an agent.
    calls: Vec<Call>,
}

/// Calls waiting for or talking to an agent
#[utoipa::path(
    get,
    path = "/api/v1/calls",
    operation_id = "listCalls",
    tag = "calls",
    responses((status = 200, description = "Calls", body = CallList), AuthErrors)
)]
pub(super) async fn list_calls(State(ctx): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    if let Some(r) = check_token(&ctx, &headers) {
        return r;
    }
    let calls = ctx
        .live
        .calls()
        .into_iter()
        .map(|(id, c)| Call {
            call_id: id,
            waited_secs: (chrono::Utc::now() - c.entered_at).num_seconds().max(0),
            caller: c.caller,
            caller_name: c.caller_name,
            account: c.account,
            path: c.path,
            digits: c.digits,
            repeat: c.repeat,
            callback_id: c.callback_id,
        })
        .collect();
    json_response(
        StatusCode::OK,
        CallList {
            active_calls: metrics::CALLS_ACTIVE.load(Relaxed),
            calls,
        },
    )
}

/// Query of `GET /api/v1/cdrs`.
#[derive(Debug, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct Limit {
    /// At most this many (newest first)
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<i64>,
}

/// The answer of `GET /api/v1/cdrs`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct CdrList {
    cdrs: Vec<CdrRow>,
}

/// Recent call records
#[utoipa::path(
    get,
    path = "/api/v1/cdrs",
    operation_id = "listCdrs",
    tag = "calls",
    params(Limit),
    responses(
        (status = 200, description = "CDRs", body = CdrList),
        (status = 400, description = "Malformed query string (JSON error, code `bad_request`).", body = ErrorBody),
        AuthErrors,
        (status = 422, description = "`limit` outside 1-1000", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    )
)]
pub(super) async fn list_cdrs(
    State(ctx): State<Arc<ApiState>>,
    headers: HeaderMap,
    ApiQuery(l): ApiQuery<Limit>,
) -> Response {
    if let Some(r) = check_token(&ctx, &headers) {
        return r;
    }
    let limit = match limit_param(l.limit) {
        Ok(l) => l,
        Err(r) => return r.into_response(),
    };
    match ctx.store.recent_cdrs(limit).await {
        Ok(cdrs) => json_response(StatusCode::OK, CdrList { cdrs }),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// Today's figures
#[utoipa::path(
    get,
    path = "/api/v1/stats",
    operation_id = "getStats",
    tag = "ops",
    responses((status = 200, description = "Stats", body = DayStats), AuthErrors)
)]
pub(super) async fn stats(State(ctx): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    if let Some(r) = check_token(&ctx, &headers) {
        return r;
    }
    json_response(StatusCode::OK, day_stats(&ctx).await)
}
