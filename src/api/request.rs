//! Reading requests: query strings and JSON bodies, with errors that name
//! the offending field.

use axum::body::Bytes;
use axum::extract::Query;
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

pub(super) fn time_field(
    v: &Value,
    name: &str,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
    match str_field(v, name, false, 64)? {
        None => Ok(None),
        Some(s) => crate::callbacks::parse_time(&s).map(Some).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("`{name}` must be an RFC 3339 time such as 2026-11-24T09:00:00Z"),
            )
        }),
    }
}
