//! Admission: whether an INVITE can become a call (a dialplan for the
//! number, an SDP offer with a codec in common, a free RTP port), decided
//! before anything is answered.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use ringback_dialplan::Dialplan;
use ringback_media::sdp::{self, Negotiated, RemoteSdp};
use ringback_sip::message;

use super::CallDeps;
use crate::media::ports::RtpPort;
use crate::outbound::LegDeps;
use crate::snapshot::Snapshot;

/// Why an INVITE was refused before a call existed.
#[derive(Debug)]
pub struct Rejection {
    /// SIP status code.
    pub code: u16,
    /// Human-readable reason (sent in a Warning header and logged).
    pub reason: String,
    /// Metric label.
    pub metric: &'static str,
}

/// What admission found out about an INVITE that can be answered.
pub struct Admitted {
    /// Dialplan snapshot the call keeps for its whole life.
    pub snapshot: Arc<Snapshot>,
    /// The dialplan answering the dialed number.
    pub plan: Arc<Dialplan>,
    /// Caller's SDP.
    pub offer: RemoteSdp,
    /// Codec and DTMF choice.
    pub negotiated: Negotiated,
    /// Reserved RTP port.
    pub port: RtpPort,
    /// From user.
    pub caller: String,
    /// Request-URI user.
    pub dialed: String,
    /// When the INVITE arrived.
    pub started_at: DateTime<Utc>,
}

/// Decide whether an INVITE can become a call: a dialplan for the number,
/// an SDP offer with a codec in common, and a free RTP port. `feature` is
/// the confirmation prompt of an agent feature code already applied.
pub fn admit(
    ctx: &CallDeps,
    req: &rsip::Request,
    feature: Option<&str>,
) -> Result<Admitted, Rejection> {
    let reject = |code, reason: String, metric| Rejection {
        code,
        reason,
        metric,
    };
    let snapshot = ctx.dialplans.current();
    let dialed = req
        .uri
        .auth
        .as_ref()
        .map(|a| a.user.clone())
        .unwrap_or_default();
    let plan = match feature {
        Some(confirmation) => feature_plan(&dialed, confirmation)
            .ok_or_else(|| reject(500, "feature code plan failed to build".into(), "internal"))?,
        None => snapshot
            .plans
            .for_number(&dialed)
            .ok_or_else(|| reject(404, format!("no dialplan answers `{dialed}`"), "no_route"))?,
    };
    let caller = caller_number(req);
    let ctype = message::content_type(req).unwrap_or_default();
    if req.body.is_empty() || !ctype.to_ascii_lowercase().starts_with("application/sdp") {
        return Err(reject(
            488,
            "an SDP offer is required in the INVITE (offerless INVITE is not supported)".into(),
            "no_sdp",
        ));
    }
    let text = String::from_utf8_lossy(&req.body);
    let offer =
        sdp::parse(&text).map_err(|e| reject(400, format!("malformed SDP: {e}"), "bad_sdp"))?;
    // `sip.srtp` decides whether the caller's media must, may or must not
    // be SRTP (488 when the offer does not fit).
    let negotiated = sdp::negotiate_srtp(&offer, &LegDeps::CODECS, ctx.legs.config.sip.srtp)
        .map_err(|e| {
            let why = match e {
                sdp::SdpError::SrtpRequired
                | sdp::SdpError::SrtpNotAllowed
                | sdp::SdpError::NoUsableCrypto => "srtp_policy",
                _ => "no_codec",
            };
            reject(e.sip_status(), format!("{e}"), why)
        })?;
    let port = ctx
        .legs
        .media
        .allocate_port()
        .ok_or_else(|| reject(503, "no RTP port free".into(), "no_port"))?;
    Ok(Admitted {
        snapshot,
        plan,
        offer,
        negotiated,
        port,
        caller,
        dialed,
        started_at: Utc::now(),
    })
}

/// A one-node dialplan that confirms an agent feature code and hangs up.
/// Built with the same loader and run by the same interpreter as any plan.
fn feature_plan(code: &str, confirmation: &str) -> Option<Arc<Dialplan>> {
    // `*13` toggles; its result is not known here, so it says neither word.
    let prompt = if confirmation == "agent-paused-or-available" {
        String::new()
    } else {
        format!("prompt = \"{confirmation}\"\n")
    };
    let text = format!(
        "[dialplan]\nname = \"feature code {code}\"\nnumbers = [\"{code}\"]\nstart = \"done\"\noperator = \"operator\"\n\n[nodes.done]\ntype = \"hangup\"\n{prompt}"
    );
    ringback_dialplan::load_str(
        std::path::Path::new("<feature code>"),
        &text,
        &ringback_dialplan::CheckContext::default(),
    )
    .ok()
    .map(|(p, _)| Arc::new(p))
}

/// The caller's number: the user part of the From URI (`alice.smith` of
/// `<sip:alice.smith@example.com>`), or the host when there is no user.
fn caller_number(req: &rsip::Request) -> String {
    message::header_value(req, "From")
        .and_then(|v| message::NameAddr::parse(&v))
        .map(|n| n.user_or_host().to_string())
        .unwrap_or_default()
}
