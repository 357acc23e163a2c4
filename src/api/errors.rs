//! Error responses: every error is `{"error": message, "code": code}` with
//! a status ([`ErrorBody`], the document's `Error`), and the callback
//! service's refusals map to statuses here, in one place.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use ringback_callback::{CallbackError, Refusal};
use serde::Serialize;
use utoipa::ToSchema;

use crate::callbacks::CallbackRefusal;

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub(super) struct ErrorBody {
    /// What went wrong, naming the offending field where there is one.
    pub(super) error: String,
    /// Machine-readable reason: `bad_request` (malformed body, path or
    /// query string), `unauthorized`, `forbidden`, `not_found`,
    /// `method_not_allowed` (any path, with `Allow`), `too_large` (body over
    /// 2 MB), `conflict`, `invalid`, `rate_limited`, `unavailable`, or a more
    /// specific one (`duplicate`, `denied`, `not_allowed`, `queue_full`,
    /// `invalid_number`, `invalid_window`, `no_dialing_time`,
    /// `invalid_dialplan`, …).
    pub(super) code: String,
}

/// `body` as JSON with `status`.
pub(super) fn json_response(status: StatusCode, body: impl Serialize) -> Response {
    match serde_json::to_string(&body) {
        Ok(text) => (status, [(header::CONTENT_TYPE, "application/json")], text).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "API answer not serializable");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

pub(super) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    ApiError::new(status, message).into_response()
}

/// The JSON error for requests no route serves (`404`) and methods a path
/// does not take (`405`; axum adds the `Allow` header).
pub(super) async fn no_route() -> Response {
    error(StatusCode::NOT_FOUND, "no such path")
}

pub(super) async fn wrong_method() -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "this path does not take that method",
    )
}

/// The machine-readable `code` of an error that has no more specific one.
pub(super) fn default_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::CONFLICT => "conflict",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        _ => "error",
    }
}

/// A request error: status, a message naming the offending field, and the
/// status's default code unless a more specific one is given.
pub(super) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: default_code(status),
            message: message.into(),
        }
    }

    /// The same with a specific `code`.
    pub(super) fn coded(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(
            self.status,
            &ErrorBody {
                error: self.message,
                code: self.code.to_string(),
            },
        )
    }
}

impl CallbackRefusal {
    /// The HTTP status of a refused callback request or command: the one
    /// place refusals become statuses.
    pub(super) fn status(&self) -> StatusCode {
        match self {
            CallbackRefusal::Request(r) => match r {
                Refusal::Duplicate { .. } => StatusCode::CONFLICT,
                Refusal::Denied { .. } | Refusal::NotAllowed => StatusCode::FORBIDDEN,
                Refusal::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
                Refusal::QueueFull { .. } => StatusCode::SERVICE_UNAVAILABLE,
                Refusal::InvalidNumber(_)
                | Refusal::NoDialingTime { .. }
                | Refusal::InvalidWindow(_)
                | Refusal::IdInUse(_) => StatusCode::UNPROCESSABLE_ENTITY,
            },
            CallbackRefusal::StoredElsewhere => StatusCode::CONFLICT,
            CallbackRefusal::Store | CallbackRefusal::Unavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            CallbackRefusal::Command(e) => match e {
                CallbackError::Unknown(_) => StatusCode::NOT_FOUND,
                CallbackError::IllegalTransition { .. }
                | CallbackError::NotHandedOut(_)
                | CallbackError::OutsideWindow { .. }
                | CallbackError::NoDialingTime { .. } => StatusCode::CONFLICT,
            },
        }
    }
}

impl IntoResponse for CallbackRefusal {
    fn into_response(self) -> Response {
        json_response(
            self.status(),
            &ErrorBody {
                error: self.to_string(),
                code: self.code().to_string(),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use ringback_callback::{CallbackState, RateLimit};
    use serde_json::{json, Value};

    /// The mapping the API had when refusals were strings; statuses must
    /// not change.
    fn status_by_code(code: &str) -> StatusCode {
        match code {
            "duplicate" => StatusCode::CONFLICT,
            "denied" | "not_allowed" => StatusCode::FORBIDDEN,
            "rate_limited" => StatusCode::TOO_MANY_REQUESTS,
            "queue_full" | "store" | "unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            "unknown" => StatusCode::NOT_FOUND,
            "conflict" => StatusCode::CONFLICT,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }

    #[test]
    fn every_refusal_keeps_its_status_and_code() {
        let t = DateTime::<Utc>::UNIX_EPOCH;
        let all: Vec<(CallbackRefusal, &str)> = vec![
            (Refusal::InvalidNumber("x".into()).into(), "invalid_number"),
            (
                Refusal::Duplicate {
                    existing_id: "cb1".into(),
                }
                .into(),
                "duplicate",
            ),
            (
                Refusal::Denied {
                    pattern: "+900*".into(),
                }
                .into(),
                "denied",
            ),
            (Refusal::NotAllowed.into(), "not_allowed"),
            (
                Refusal::RateLimited {
                    limit: RateLimit::PerNumberPerDay,
                    max: 3,
                    until: t,
                }
                .into(),
                "rate_limited",
            ),
            (
                Refusal::QueueFull {
                    queue: "sales".into(),
                    max: 10,
                }
                .into(),
                "queue_full",
            ),
            (
                Refusal::NoDialingTime { expires_at: t }.into(),
                "no_dialing_time",
            ),
            (
                Refusal::InvalidWindow("over".into()).into(),
                "invalid_window",
            ),
            (Refusal::IdInUse("cb1".into()).into(), "id_in_use"),
            (CallbackRefusal::StoredElsewhere, "duplicate"),
            (CallbackRefusal::Store, "store"),
            (CallbackError::Unknown("cb1".into()).into(), "unknown"),
            (
                CallbackError::IllegalTransition {
                    id: "cb1".into(),
                    state: CallbackState::Completed,
                    action: "cancel",
                }
                .into(),
                "conflict",
            ),
            (CallbackError::NotHandedOut("cb1".into()).into(), "conflict"),
            (
                CallbackError::OutsideWindow {
                    id: "cb1".into(),
                    next: None,
                }
                .into(),
                "conflict",
            ),
            (
                CallbackError::NoDialingTime {
                    id: "cb1".into(),
                    expires_at: t,
                }
                .into(),
                "conflict",
            ),
            (CallbackRefusal::Unavailable, "unavailable"),
        ];
        for (r, code) in all {
            assert_eq!(r.code(), code, "{r:?}");
            assert_eq!(r.status(), status_by_code(code), "{r:?}");
        }
    }

    #[tokio::test]
    async fn a_refusal_is_the_json_error_body() {
        let r = CallbackRefusal::Request(Refusal::NotAllowed);
        let message = r.to_string();
        let resp = r.into_response();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v, json!({ "error": message, "code": "not_allowed" }));
    }
}
