//! One picture across nodes: with shared queues, the queues' line, the
//! agents' states and the live view are the owner's (`src/cluster.rs`).
//! A node that does not own the queues forwards those requests to the
//! owner's API (streamed, so the server-sent events of `/api/v1/events`
//! pass too) and every answer says whose picture it is in
//! `X-Ringback-Node`. Tokens are the nodes' shared configuration, so the
//! owner checks them as it would its own requests.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;

use super::auth::check_host_and_origin;
use super::errors::error;
use super::ApiState;
use crate::cluster::Holder;

/// Whose picture an answer shows.
pub const NODE_HEADER: &str = "x-ringback-node";
/// Set on a forwarded request: the owner answers it itself, whatever it
/// believes (no forwarding loop while a takeover settles).
const FORWARDED: &str = "x-ringback-forwarded";

/// Routes whose answer is the ACD's (line, agents) or the live view.
fn owners_route(path: &str) -> bool {
    [
        "/api/v1/queues",
        "/api/v1/agents",
        "/api/v1/events",
        "/api/v1/stats",
    ]
    .iter()
    .any(|p| path == *p || path.strip_prefix(p).is_some_and(|r| r.starts_with('/')))
}

/// The middleware: serve here, or at the owner.
pub(super) async fn to_owner(
    State(ctx): State<Arc<ApiState>>,
    req: Request,
    next: Next,
) -> Response {
    let me = ctx.config.node_id();
    if !ctx.config.cluster.shared_queues
        || !owners_route(req.uri().path())
        || req.headers().contains_key(FORWARDED)
    {
        return with_node(next.run(req).await, &me);
    }
    let holder = ctx.owner.borrow().clone();
    match holder {
        Holder::Me => with_node(next.run(req).await, &me),
        Holder::Node {
            id, api: Some(url), ..
        } => {
            // This node's Host/Origin allow-list applies to what reaches
            // it; the owner then sees a request to itself, without the
            // page's Origin.
            let checked = check_host_and_origin(&ctx.access.current(), req.headers());
            if let Err(refused) = checked {
                return refused.into_response();
            }
            match forward(req, &url).await {
                Ok(resp) => with_node(resp, &id),
                Err(e) => {
                    tracing::warn!(owner = %id, error = %e, "cannot reach the queues' owner's API");
                    unavailable(format!("the queues' owner {id} cannot be reached: {e}"))
                }
            }
        }
        Holder::Node { id, api: None, .. } => unavailable(format!(
            "the queues run on {id}, which gave no [cluster] api_url: ask it directly"
        )),
        Holder::Unknown => {
            unavailable("the queues' owner is not known right now (a takeover is under way)".into())
        }
    }
}

fn with_node(mut resp: Response, node: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(node) {
        resp.headers_mut().insert(NODE_HEADER, v);
    }
    resp
}

fn unavailable(why: String) -> Response {
    let mut resp = error(StatusCode::SERVICE_UNAVAILABLE, why).into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    resp
}

/// Send `req` to `base` (`http://IP:PORT`) over a new connection and
/// stream the answer back.
async fn forward(req: Request, base: &str) -> Result<Response, String> {
    let base: Uri = base.parse().map_err(|e| format!("api_url {base}: {e}"))?;
    let authority = base.authority().ok_or("api_url has no host:port")?.clone();
    let port = authority.port_u16().unwrap_or(80);
    let stream = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        tokio::net::TcpStream::connect((authority.host(), port)),
    )
    .await
    .map_err(|_| "connect timed out".to_string())?
    .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    // Lives as long as the answer's body is read (an event stream: as long
    // as the page listens).
    tokio::spawn(conn);
    let (mut parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    parts.uri = path.parse().map_err(|e| format!("path: {e}"))?;
    parts
        .headers
        .insert(FORWARDED, HeaderValue::from_static("1"));
    parts.headers.remove(header::ORIGIN);
    if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
        parts.headers.insert(header::HOST, host);
    }
    let resp = sender
        .send_request(Request::from_parts(parts, body))
        .await
        .map_err(|e| format!("request: {e}"))?;
    Ok(resp.map(Body::new))
}

#[cfg(test)]
mod tests {
    use super::owners_route;

    #[test]
    fn the_acd_and_live_routes_are_the_owners() {
        for p in [
            "/api/v1/queues",
            "/api/v1/agents/alice/pause",
            "/api/v1/events",
            "/api/v1/stats",
        ] {
            assert!(owners_route(p), "{p}");
        }
        for p in [
            "/api/v1/callbacks",
            "/api/v1/queuesx",
            "/api/v1/node/drain",
            "/metrics",
            "/",
        ] {
            assert!(!owners_route(p), "{p}");
        }
    }
}
