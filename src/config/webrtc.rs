//! `[webrtc]`: the browser phone in the agent page and the public "call us"
//! page (`/call`).

use serde::Deserialize;

/// Browser calls.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebRtcConfig {
    /// Dialplan numbers a visitor of the public `/call` page may call; any
    /// other number is refused. Empty (the default): no public calls.
    pub public_numbers: Vec<String>,
    /// STUN and TURN servers handed to browsers (`RTCPeerConnection`'s
    /// `iceServers`), for agents behind NAT. ringback itself is ICE-lite:
    /// it answers connectivity checks on its RTP port and needs none.
    pub ice_servers: Vec<IceServer>,
    /// Public calls one source IP may start per minute.
    pub calls_per_minute_per_ip: u32,
    /// A browser leg with no packet (media, ICE consent, DTLS) for this
    /// long is ended: a closed tab, a lost network.
    pub idle_timeout_ms: u64,
    /// How long the short-lived token of the public page lives.
    pub public_token_secs: u64,
}

impl Default for WebRtcConfig {
    fn default() -> Self {
        WebRtcConfig {
            public_numbers: Vec::new(),
            ice_servers: Vec::new(),
            calls_per_minute_per_ip: 6,
            idle_timeout_ms: 4000,
            public_token_secs: 120,
        }
    }
}

/// One STUN or TURN server, as a browser's `RTCIceServer`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IceServer {
    /// `stun:host:port`, `turn:host:port?transport=udp`, `turns:…`.
    pub urls: Vec<String>,
    /// TURN user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// Checks that need the whole entry.
pub(super) fn validate(cfg: &WebRtcConfig) -> Result<(), String> {
    for s in &cfg.ice_servers {
        if s.urls.is_empty() {
            return Err("webrtc.ice_servers: an entry needs at least one URL in `urls`".into());
        }
        for u in &s.urls {
            let scheme = u.split(':').next().unwrap_or_default();
            if !matches!(scheme, "stun" | "stuns" | "turn" | "turns") {
                return Err(format!(
                    "webrtc.ice_servers: `{u}` is not a stun:, stuns:, turn: or turns: URL"
                ));
            }
            if scheme.starts_with("turn") && (s.username.is_none() || s.credential.is_none()) {
                return Err(format!(
                    "webrtc.ice_servers: `{u}` is a TURN server: give `username` and `credential`"
                ));
            }
        }
    }
    if cfg.idle_timeout_ms < 1000 {
        return Err("webrtc.idle_timeout_ms: at least 1000".into());
    }
    Ok(())
}
