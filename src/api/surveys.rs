//! Post-call surveys: CSAT per interval, per queue and per agent
//! (`GET /api/v1/surveys/csat`), also what the dashboard shows for today.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeDelta, Utc};
use ringback_call::csat::{self, Figures};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::check_token;
use super::errors::{error, json_response, ApiError, ErrorBody};
use super::openapi::AuthErrors;
use super::request::{parse_rfc3339, ApiQuery};
use super::ApiState;
use crate::store::ts;

/// The length of one interval.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(super) enum CsatInterval {
    /// One hour.
    Hour,
    /// One day (24 hours from `from`).
    #[default]
    Day,
    /// Seven days.
    Week,
}

impl CsatInterval {
    fn step(self) -> TimeDelta {
        match self {
            CsatInterval::Hour => TimeDelta::hours(1),
            CsatInterval::Day => TimeDelta::days(1),
            CsatInterval::Week => TimeDelta::weeks(1),
        }
    }
}

/// Query of `GET /api/v1/surveys/csat`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct CsatQuery {
    /// Start (RFC 3339; default: today's local midnight in `stats.timezone`)
    #[param(format = DateTime)]
    from: Option<String>,
    /// End, exclusive (RFC 3339; default: now)
    #[param(format = DateTime)]
    to: Option<String>,
    /// CsatInterval length (default `day`); intervals start at `from`
    interval: Option<CsatInterval>,
}

/// CSAT of one queue in one interval.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct QueueCsat {
    /// CsatInterval start (RFC 3339).
    start: String,
    /// The queue.
    queue: String,
    /// Surveys asked (the agent hung up on a caller still on the line).
    asked: u64,
    /// Surveys answered with a score key.
    answered: u64,
    /// Answers in the top of the range (the two highest keys of ranges of
    /// four keys or more, else the highest).
    satisfied: u64,
    /// `satisfied / answered` in percent (one decimal); null without answers.
    #[schema(required = true)]
    csat_pct: Option<f64>,
    /// Average score; null without answers.
    #[schema(required = true)]
    average: Option<f64>,
}

/// CSAT of one agent in one interval (the same figures as [`QueueCsat`]).
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct AgentCsat {
    /// CsatInterval start (RFC 3339).
    start: String,
    /// The agent rated.
    agent: String,
    /// Surveys asked.
    asked: u64,
    /// Surveys answered with a score key.
    answered: u64,
    /// Answers in the top of the range.
    satisfied: u64,
    /// `satisfied / answered` in percent; null without answers.
    #[schema(required = true)]
    csat_pct: Option<f64>,
    /// Average score; null without answers.
    #[schema(required = true)]
    average: Option<f64>,
}

/// The answer of `GET /api/v1/surveys/csat`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct CsatReport {
    /// Start of the first interval (RFC 3339).
    from: String,
    /// End, exclusive (RFC 3339).
    to: String,
    /// CsatInterval length.
    interval: CsatInterval,
    /// Per queue: intervals with at least one survey, in time then name
    /// order (none when `to` is not after `from`).
    queues: Vec<QueueCsat>,
    /// Per agent: intervals with at least one survey, in time then name order.
    agents: Vec<AgentCsat>,
}

fn time(
    value: Option<&str>,
    name: &str,
    default: DateTime<Utc>,
) -> Result<DateTime<Utc>, ApiError> {
    match value {
        None => Ok(default),
        Some(s) => parse_rfc3339(s).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("`{name}` must be an RFC 3339 time such as 2026-11-24T09:00:00Z"),
            )
        }),
    }
}

/// The bounds and interval asked for. `to` at or before `from` is an
/// empty range (no intervals). Only intervals with surveys are listed, so
/// a long range of short intervals costs no more than its answers.
fn bounds(
    ctx: &ApiState,
    q: &CsatQuery,
) -> Result<(DateTime<Utc>, DateTime<Utc>, CsatInterval), ApiError> {
    let from = time(q.from.as_deref(), "from", ctx.live.day_start())?;
    let to = time(q.to.as_deref(), "to", Utc::now())?.max(from);
    Ok((from, to, q.interval.unwrap_or_default()))
}

/// CSAT per interval, per queue and per agent
#[utoipa::path(
    get,
    path = "/api/v1/surveys/csat",
    operation_id = "getCsat",
    tag = "calls",
    params(CsatQuery),
    responses(
        (status = 200, description = "CSAT per interval, queue and agent", body = CsatReport),
        (status = 400, description = "Malformed query string, e.g. an unknown `interval` (code `bad_request`).", body = ErrorBody),
        AuthErrors,
        (status = 422, description = "`from` or `to` is not an RFC 3339 time", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    )
)]
pub(super) async fn get_csat(
    State(ctx): State<Arc<ApiState>>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<CsatQuery>,
) -> Response {
    if let Some(r) = check_token(&ctx, &headers) {
        return r;
    }
    let (from, to, interval) = match bounds(&ctx, &q) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let answers = match ctx.store.survey_answers(from, to).await {
        Ok(a) => a,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    let (queues, agents) = csat::tables(&answers, from, to, interval.step());
    let figures = |f: &Figures| (f.asked, f.answered, f.satisfied, f.csat_pct(), f.average());
    let queues = queues
        .iter()
        .map(|((start, queue), f)| {
            let (asked, answered, satisfied, csat_pct, average) = figures(f);
            QueueCsat {
                start: ts(*start),
                queue: queue.clone(),
                asked,
                answered,
                satisfied,
                csat_pct,
                average,
            }
        })
        .collect();
    let agents = agents
        .iter()
        .map(|((start, agent), f)| {
            let (asked, answered, satisfied, csat_pct, average) = figures(f);
            AgentCsat {
                start: ts(*start),
                agent: agent.clone(),
                asked,
                answered,
                satisfied,
                csat_pct,
                average,
            }
        })
        .collect();
    json_response(
        StatusCode::OK,
        CsatReport {
            from: ts(from),
            to: ts(to),
            interval,
            queues,
            agents,
        },
    )
}
