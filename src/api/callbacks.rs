//! Callbacks: web requests for one, the list and history, cancel and
//! reschedule.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::auth::{authorize, check_token, Need};
use super::errors::{error, json_response, ApiError};
use super::request::{limit_param, parse_body, str_field, time_field, ApiBody, ApiPath, ApiQuery};
use super::ApiState;

pub(super) fn callback_json(cb: &ringback_callback::Callback) -> Value {
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

pub(super) fn row_json(r: &crate::store::callbacks::CallbackRow) -> Value {
    json!({
        "id": r.id, "queue": r.queue, "number": r.number, "state": r.state,
        "entered_at": r.entered_at, "created_at": r.created_at, "updated_at": r.updated_at,
        "attempts": r.attempts, "next_attempt_at": r.next_attempt_at, "expires_at": r.expires_at,
        "preferred_start": r.preferred_start, "preferred_end": r.preferred_end,
        "context": r.context, "origin": r.origin, "last_result": r.last_result,
    })
}

/// `POST /api/v1/callbacks` — a web visitor asks to be called back.
pub(super) async fn create_callback(
    State(ctx): State<Arc<ApiState>>,
    headers: HeaderMap,
    ApiBody(body): ApiBody,
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
        if !number_syntax_ok(&number) {
            return Err(ApiError::coded(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_number",
                format!(
                    "`number` must be 7 to 15 digits, optionally after a `+` (not followed by 0), \
                     with spaces, dashes, dots and parentheses allowed between: {number:?}"
                ),
            ));
        }
        let queue = str_field(&v, "queue", true, 64)?.unwrap_or_default();
        let context = str_field(&v, "context", false, 1000)?.unwrap_or_default();
        let start = time_field(&v, "preferred_start")?;
        let end = time_field(&v, "preferred_end")?;
        let preferred = match (start, end) {
            (Some(a), Some(b)) => Some((a, b)),
            (None, None) => None,
            _ => {
                return Err(ApiError::coded(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_window",
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
        Err(r) => r.reason.into_response(),
    }
}

/// Whether `number` has the syntax the OpenAPI document's `NewCallback`
/// pattern states: 7 to 15 ASCII digits, optionally after one `+` that
/// comes before every digit and is not followed by `0`, with spaces, tabs,
/// line breaks, dashes, dots and parentheses anywhere. The callback service
/// normalises the same way (and also trims Unicode spaces, which the
/// document does not promise); checking here keeps the document exact.
pub(super) fn number_syntax_ok(number: &str) -> bool {
    let mut digits = 0;
    let mut plus = false;
    for c in number.chars() {
        match c {
            '-' | '\t' | '\n' | '\x0C' | '\r' | ' ' | '(' | ')' | '.' => {}
            '+' if digits == 0 && !plus => plus = true,
            '0' if plus && digits == 0 => return false,
            '0'..='9' => digits += 1,
            _ => return false,
        }
    }
    (ringback_callback::MIN_DIGITS..=ringback_callback::MAX_DIGITS).contains(&digits)
}

/// Query of `GET /api/v1/callbacks`.
#[derive(serde::Deserialize)]
pub(super) struct CallbackFilter {
    state: Option<String>,
    queue: Option<String>,
    number: Option<String>,
    limit: Option<i64>,
}

pub(super) async fn list_callbacks(
    State(ctx): State<Arc<ApiState>>,
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
    let limit = match limit_param(f.limit) {
        Ok(l) => l,
        Err(r) => return r.into_response(),
    };
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

/// A callback as stored, with its history.
pub(super) async fn stored_callback(ctx: &ApiState, id: &str) -> Response {
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

pub(super) async fn cancel_callback(
    State(ctx): State<Arc<ApiState>>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    ApiBody(body): ApiBody,
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
        Err(r) => r.reason.into_response(),
    }
}

pub(super) async fn reschedule_callback(
    State(ctx): State<Arc<ApiState>>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    ApiBody(body): ApiBody,
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
        Err(r) => r.reason.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::number_syntax_ok;
    use ringback_callback::normalize_number;

    /// The documented syntax and the callback service's normalisation
    /// agree on every string of these characters (they differ only on
    /// Unicode spaces at the ends, which the service trims and the document
    /// does not promise).
    #[test]
    fn number_syntax_is_what_the_service_accepts() {
        let alphabet = [
            '+', '0', '1', '5', '9', ' ', '-', '(', ')', '.', '\t', '\n', 'a', '*', '#', '\u{0B}',
        ];
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut accepted = 0;
        for _ in 0..50_000 {
            let len = (next() % 24) as usize;
            let s: String = (0..len)
                .map(|_| {
                    // Mostly digits, so that many strings are numbers.
                    let r = next();
                    if r % 3 == 0 {
                        alphabet[(r / 3 % alphabet.len() as u64) as usize]
                    } else {
                        char::from(b'0' + (r / 3 % 10) as u8)
                    }
                })
                .collect();
            let ours = number_syntax_ok(&s);
            accepted += usize::from(ours);
            let service = normalize_number(&s).is_ok();
            if s.trim() == s.trim_matches(|c: char| c.is_ascii_whitespace()) {
                assert_eq!(ours, service, "{s:?}");
            } else {
                // A vertical tab at an end: the service trims it, we refuse.
                assert!(!ours, "{s:?}");
            }
        }
        assert!(
            accepted > 1_000,
            "only {accepted} numbers among the samples"
        );
        for ok in ["+1 (555) 123-0001", "555.123.0001", "0049 30 1234567"] {
            assert!(number_syntax_ok(ok), "{ok}");
        }
        for bad in [
            "+0123456789",
            "12+34567890",
            "911",
            "1234567890123456",
            "555-CALL-NOW",
        ] {
            assert!(!number_syntax_ok(bad), "{bad}");
        }
    }
}
