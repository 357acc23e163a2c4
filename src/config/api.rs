//! The HTTP listener and its bearer tokens.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde::Deserialize;

/// HTTP listener for `/metrics` and `/healthz`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address to listen on; keep it on loopback unless a proxy guards it.
    pub listen: SocketAddr,
    /// Serve HTTP at all.
    pub enabled: bool,
    /// Bearer tokens and their roles. None configured = no token needed
    /// (keep the listener on loopback then).
    pub tokens: Vec<ApiToken>,
}

/// One API bearer token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiToken {
    /// The secret (compared in constant time).
    pub token: String,
    /// `admin` (everything), `supervisor` (read + agent and callback
    /// actions) or `agent` (its own state and context only).
    pub role: Role,
    /// For `agent` tokens: which agent.
    pub agent: Option<String>,
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including dialplan reloads.
    Admin,
    /// Read everything; change agents and callbacks.
    Supervisor,
    /// Its own agent only.
    Agent,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080),
            enabled: true,
            tokens: Vec::new(),
        }
    }
}
