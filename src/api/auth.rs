//! Bearer tokens and roles: who is asking, and whether they may; and the
//! `Host` / `Origin` allow-list in front of every `/api/*` request (the
//! rules themselves live in `api_access`, swapped on SIGHUP).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::errors::{json_response, ApiError};
use super::openapi::RoleName;
use super::ApiState;
use crate::config::Role;

/// What a request needs to be allowed.
#[derive(Clone, Copy)]
pub(super) enum Need<'a> {
    /// Any valid token (`/me`, the event stream).
    Any,
    /// Read queues, agents, callbacks, calls: admin or supervisor.
    Read,
    /// Change agents or callbacks: admin or supervisor.
    Supervise,
    /// Change this agent (or pause the recording of its call): admin,
    /// supervisor, or that agent's own token.
    Agent(&'a str),
    /// Reload dialplans: admin only.
    Admin,
}

/// Who is asking.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Principal {
    pub(super) role: Role,
    pub(super) agent: Option<String>,
}

/// `None` when the request may proceed; otherwise the 401/403 to return.
pub(super) fn check_token(ctx: &ApiState, headers: &HeaderMap) -> Option<Response> {
    authorize(ctx, headers, None, Need::Read)
        .err()
        .map(IntoResponse::into_response)
}

/// `Host` and `Origin` against the allow-list in force: `403
/// forbidden_origin` when refused.
pub(super) fn check_host_and_origin(
    access: &crate::api_access::Access,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    // A header that is not text cannot be an allowed name ("" never is).
    let text = |name| headers.get(name).map(|v| v.to_str().unwrap_or(""));
    access
        .check_host_and_origin(text(header::HOST), text(header::ORIGIN))
        .map_err(|refused| ApiError::coded(StatusCode::FORBIDDEN, "forbidden_origin", refused.0))
}

/// Check `Host` and `Origin` against the allow-list (every `/api/*`
/// request, reads included: a rebound DNS name must not read data either),
/// authenticate (bearer header, or `?token=` for EventSource, which cannot
/// send headers) and check the role. With `api.open = true` everybody is an
/// admin.
pub(super) fn authorize(
    ctx: &ApiState,
    headers: &HeaderMap,
    query_token: Option<&str>,
    need: Need<'_>,
) -> Result<Principal, ApiError> {
    let access = ctx.access.current();
    check_host_and_origin(&access, headers)?;
    if access.open {
        return Ok(Principal {
            role: Role::Admin,
            agent: None,
        });
    }
    let tokens = &access.tokens;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or(query_token)
        .unwrap_or("");
    // Compare against every token so timing does not reveal which matched.
    let mut found: Option<&crate::config::ApiToken> = None;
    for t in tokens {
        if !given.is_empty() && constant_time_eq(given.as_bytes(), t.token.as_bytes()) {
            found = Some(t);
        }
    }
    let Some(t) = found else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token",
        ));
    };
    let p = Principal {
        role: t.role,
        agent: t.agent.clone(),
    };
    let allowed = match need {
        Need::Any => true,
        Need::Read | Need::Supervise => matches!(p.role, Role::Admin | Role::Supervisor),
        Need::Agent(id) => {
            matches!(p.role, Role::Admin | Role::Supervisor) || p.agent.as_deref() == Some(id)
        }
        Need::Admin => p.role == Role::Admin,
    };
    if allowed {
        Ok(p)
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "this token's role may not do that",
        ))
    }
}

/// Compare without an early exit, so response time does not leak how much
/// of a token was right.
pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i % b.len().max(1)).copied().unwrap_or(0));
    }
    diff == 0
}

/// `GET /api/v1/me`: the caller's role (and agent, for agent tokens).
pub(super) async fn me(State(ctx): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    match authorize(&ctx, &headers, None, Need::Any) {
        Ok(p) => json_response(
            StatusCode::OK,
            super::openapi::Me {
                role: match p.role {
                    Role::Admin => RoleName::Admin,
                    Role::Supervisor => RoleName::Supervisor,
                    Role::Agent => RoleName::Agent,
                },
                agent: p.agent,
            },
        ),
        Err(r) => r.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"secret"));
    }
}
