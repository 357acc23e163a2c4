//! A caller from the public "call us" page (`/call`): the page's SDP offer
//! answered (ringback is ICE-lite and the DTLS server), a browser stream
//! opened, and its transport task started. The call itself is an ordinary
//! inbound call (`src/call/web.rs` runs it): the same dialplans, zero-out,
//! queues and callback offers as a phone caller.
//!
//! Who may call what is decided before: only `webrtc.public_numbers`, with a
//! short-lived single-use token per call, a rate limit per source address
//! ([`WebTokens`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ringback_media::codec::Codec;
use ringback_media::sdp::{Direction, Negotiated};
use ringback_webrtc::LocalDescription;
use serde::Serialize;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::oneshot;

use super::messages::BrowserEvent;
use super::BrowserPhones;
use crate::config::WebRtcConfig;
use crate::media::ports::RtpPort;
use crate::media::{MediaEngine, MediaEvent, Stream};

/// Server → caller page frames.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToCaller {
    /// Our SDP answer: the call is up.
    Answer {
        /// SDP answer.
        sdp: String,
    },
    /// The call ended on ringback's side.
    Hangup,
    /// Something the page sent could not be used, or the call could not
    /// be placed.
    Error {
        /// What was wrong.
        message: String,
    },
}

/// What the web call starter needs from the page's socket.
pub struct WebCallRequest {
    /// The dialplan number (already checked against `public_numbers`).
    pub number: String,
    /// The page's context (`?topic=`), shown to the agent.
    pub topic: Option<String>,
    /// The page's SDP offer.
    pub offer: String,
    /// Frames to the page.
    pub page: UnboundedSender<ToCaller>,
}

/// A placed web call, as the page's socket keeps it.
pub struct WebCallStarted {
    /// Our SDP answer.
    pub answer: String,
    /// Where the page's own words about the call go (its hang-up).
    pub events: UnboundedSender<BrowserEvent>,
    /// The call's id (its Call-ID in records and the API).
    pub call_id: String,
}

/// Starts calls from the public page: implemented by the call placer
/// (`src/call/web.rs`), injected into the API so that neither imports the
/// other.
pub trait WebCallStarter: Send + Sync {
    /// Answer the offer and start the call, or say why not.
    fn start(&self, req: WebCallRequest) -> Result<WebCallStarted, String>;
}

/// The web caller's side of a call: its transport and its page.
pub struct WebCaller {
    /// The page's context (`?topic=`).
    pub topic: Option<String>,
    page: UnboundedSender<ToCaller>,
    close: Option<oneshot::Sender<()>>,
}

impl WebCaller {
    /// Answer `offer` on `port`: the stream (keyless until the handshake),
    /// the negotiation, our SDP answer and the caller's side. The transport
    /// task reports the page's disappearance to `owner` as leg `call_id`.
    #[allow(clippy::too_many_arguments)]
    pub fn answer(
        phones: &BrowserPhones,
        media: &MediaEngine,
        port: RtpPort,
        ip: IpAddr,
        call_id: &str,
        req: &WebCallRequest,
        media_events: UnboundedSender<MediaEvent>,
        owner: UnboundedSender<BrowserEvent>,
    ) -> Result<(WebCaller, Stream, Negotiated, String), String> {
        let remote = ringback_webrtc::parse(&req.offer).map_err(|e| format!("SDP offer: {e}"))?;
        let choice = ringback_webrtc::choose_audio(&remote, &[Codec::Pcmu, Codec::Pcma])
            .map_err(|e| format!("SDP offer: {e}"))?;
        let (ufrag, pwd) = ringback_webrtc::random_ice_credentials();
        let ssrc: u32 = rand::random();
        let local = LocalDescription {
            ice_ufrag: &ufrag,
            ice_pwd: &pwd,
            fingerprint: phones.identity.fingerprint(),
            ip,
            port: port.addr.port(),
            session_id: rand::random::<u32>().into(),
            ssrc,
            cname: "ringback",
        };
        let answer = ringback_webrtc::build_answer(&local, &remote, &choice, Direction::SendRecv);
        let neg = ringback_webrtc::negotiated(&choice, Direction::SendRecv);
        let (stream, packets) = media
            .open_browser_stream(port, &neg, ssrc, media_events)
            .map_err(|e| format!("media: {e}"))?;
        let close_tx = super::transport::start(
            phones,
            (&ufrag, &pwd),
            &remote,
            false,
            &stream,
            packets,
            (call_id.to_string(), owner),
        );
        let caller = WebCaller {
            topic: req.topic.clone(),
            page: req.page.clone(),
            close: Some(close_tx),
        };
        Ok((caller, stream, neg, answer))
    }

    /// The call ended on our side: the page is told, DTLS closes.
    pub fn hang_up(&mut self) {
        let _ = self.page.send(ToCaller::Hangup);
        if let Some(c) = self.close.take() {
            let _ = c.send(());
        }
    }
}

impl Drop for WebCaller {
    fn drop(&mut self) {
        self.hang_up();
    }
}

/// Short-lived, single-use tokens for the public page, and the per-address
/// rate limit on them.
#[derive(Default)]
pub struct WebTokens {
    inner: Mutex<TokensInner>,
}

#[derive(Default)]
struct TokensInner {
    tokens: HashMap<String, Grant>,
    /// Per source address: when its recent tokens were issued.
    issued: HashMap<IpAddr, Vec<Instant>>,
}

/// What a token allows: one call to `number`, until `expires`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The number to call.
    pub number: String,
    /// The page's context.
    pub topic: Option<String>,
    expires: Instant,
}

/// Why no token was issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    /// The number is not in `webrtc.public_numbers`.
    #[error("`{0}` is not a number the public may call")]
    NotPublic(String),
    /// Too many calls from this address in the last minute.
    #[error("too many calls from this address; try again in a minute")]
    RateLimited,
}

impl WebTokens {
    /// A token for one call to `number` from `ip`, valid for
    /// `public_token_secs`, if the number is one of `public_numbers` and
    /// `ip` got fewer than `calls_per_minute_per_ip` in the last minute.
    pub fn issue(
        &self,
        cfg: &WebRtcConfig,
        ip: IpAddr,
        number: &str,
        topic: Option<String>,
        now: Instant,
    ) -> Result<(String, Grant), TokenRefusal> {
        let ttl = Duration::from_secs(cfg.public_token_secs);
        let per_minute = cfg.calls_per_minute_per_ip;
        if !cfg.public_numbers.iter().any(|n| n == number) {
            return Err(TokenRefusal::NotPublic(number.to_string()));
        }
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.tokens.retain(|_, g| g.expires > now);
        inner
            .issued
            .retain(|_, times| times.iter().any(|t| now.duration_since(*t) < MINUTE));
        let times = inner.issued.entry(ip).or_default();
        times.retain(|t| now.duration_since(*t) < MINUTE);
        if times.len() >= per_minute as usize {
            crate::metrics::WEB_CALLS_RATE_LIMITED_TOTAL
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Err(TokenRefusal::RateLimited);
        }
        times.push(now);
        let token = format!("{:032x}", rand::random::<u128>());
        let grant = Grant {
            number: number.to_string(),
            topic,
            expires: now + ttl,
        };
        inner.tokens.insert(token.clone(), grant.clone());
        Ok((token, grant))
    }

    /// Use `token` (once): what it allows, if it is known and not expired.
    pub fn redeem(&self, token: &str, now: Instant) -> Option<Grant> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.tokens.remove(token).filter(|g| g.expires > now)
    }
}

const MINUTE: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_for_public_numbers_single_use_short_lived_and_rate_limited() {
        let t = WebTokens::default();
        let cfg = WebRtcConfig {
            public_numbers: vec!["2000".to_string()],
            calls_per_minute_per_ip: 3,
            public_token_secs: 120,
            ..WebRtcConfig::default()
        };
        let ip: IpAddr = "192.0.2.7".parse().expect("ip");
        let now = Instant::now();
        let ttl = Duration::from_secs(120);
        assert_eq!(
            t.issue(&cfg, ip, "1000", None, now),
            Err(TokenRefusal::NotPublic("1000".into()))
        );
        let (tok, grant) = t
            .issue(&cfg, ip, "2000", Some("billing".into()), now)
            .expect("issued");
        assert_eq!(grant.topic.as_deref(), Some("billing"));
        assert_eq!(t.redeem(&tok, now).map(|g| g.number), Some("2000".into()));
        assert_eq!(t.redeem(&tok, now), None, "single use");
        let (late, _) = t.issue(&cfg, ip, "2000", None, now).expect("issued");
        assert_eq!(t.redeem(&late, now + ttl), None, "expired");
        assert!(t.issue(&cfg, ip, "2000", None, now).is_ok());
        assert_eq!(
            t.issue(&cfg, ip, "2000", None, now),
            Err(TokenRefusal::RateLimited)
        );
        let other: IpAddr = "192.0.2.8".parse().expect("ip");
        assert!(t.issue(&cfg, other, "2000", None, now).is_ok());
        assert!(t.issue(&cfg, ip, "2000", None, now + MINUTE).is_ok());
    }
}
