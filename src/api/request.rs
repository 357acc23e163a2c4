//! Reading requests: path segments, query strings and JSON bodies, with
//! errors that name the offending field. Every extractor here answers a
//! failure with the API's JSON error instead of axum's plain-text
//! rejection.

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Query, Request};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::errors::{error, ApiError};

/// A query string, parsed like axum's `Query`, but a malformed one gets
/// the API's JSON error (`400`, `"code":"bad_request"`) instead of a
/// plain-text rejection.
pub(super) struct ApiQuery<T>(pub(super) T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            Err(e) => Err(error(
                StatusCode::BAD_REQUEST,
                format!("query string: {}", e.body_text()),
            )),
        }
    }
}

/// Path parameters, parsed like axum's `Path` (a segment that is not UTF-8
/// after percent-decoding is refused), with a JSON error.
pub(super) struct ApiPath<T>(pub(super) T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiPath<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(ApiPath(v)),
            Err(e) => Err(error(e.status(), format!("path: {}", e.body_text()))),
        }
    }
}

/// The request body as bytes; a body over the size limit (axum's default,
/// 2 MB) is `413` with the JSON error.
pub(super) struct ApiBody(pub(super) Bytes);

impl<S> FromRequest<S> for ApiBody
where
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Bytes::from_request(req, state).await {
            Ok(b) => Ok(ApiBody(b)),
            Err(e) => Err(error(e.status(), format!("body: {}", e.body_text()))),
        }
    }
}

pub(super) fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice::<Value>(body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("body is not JSON: {e}")))
        .and_then(|v| {
            if v.is_object() {
                Ok(v)
            } else {
                Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "body must be a JSON object",
                ))
            }
        })
}

/// A string field; `Err` names the field and what is wrong.
pub(super) fn str_field(
    v: &Value,
    name: &str,
    required: bool,
    max: usize,
) -> Result<Option<String>, ApiError> {
    match v.get(name) {
        None | Some(Value::Null) if !required => Ok(None),
        None | Some(Value::Null) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("`{name}` is required"),
        )),
        Some(Value::String(s)) if s.chars().count() <= max => Ok(Some(s.clone())),
        Some(Value::String(_)) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("`{name}` is longer than {max} characters"),
        )),
        Some(_) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("`{name}` must be a string"),
        )),
    }
}

/// An RFC 3339 `date-time` field (as the document's `format` says: `T`
/// between date and time, an offset or `Z`).
pub(super) fn time_field(
    v: &Value,
    name: &str,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
    match str_field(v, name, false, 64)? {
        None => Ok(None),
        Some(s) => parse_rfc3339(&s).map(Some).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("`{name}` must be an RFC 3339 time such as 2026-11-24T09:00:00Z"),
            )
        }),
    }
}

/// The callback service's time parser, on strings that are RFC 3339 proper:
/// that parser alone also takes a space for the `T` or an offset without
/// its colon, which the document's `format: date-time` does not allow.
pub(super) fn parse_rfc3339(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let rfc3339 = matches!(s.as_bytes().get(10), Some(b'T' | b't'))
        && chrono::DateTime::parse_from_rfc3339(s).is_ok();
    rfc3339.then(|| crate::callbacks::parse_time(s)).flatten()
}

/// The `limit` of a listing: 1 to 1000, 100 when absent.
pub(super) fn limit_param(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(100),
        Some(l @ 1..=1000) => Ok(l),
        Some(l) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("`limit` must be 1 to 1000, not {l}"),
        )),
    }
}
