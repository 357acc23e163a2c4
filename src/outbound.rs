//! One outgoing call leg placed by ringback (to an agent's phone, or to a
//! customer through the trunk): INVITE with an SDP offer, CANCEL while it
//! rings, ACK and media on answer, BYE when done.
//!
//! The leg only knows SIP and media mechanics; whoever owns it (a queued
//! call, a callback attempt) decides what an answer or a failure means.
//! Invariant: a leg is ringing (and gets CANCEL when no longer wanted),
//! answered (and gets BYE) or gone — never forgotten while the phone rings.

use std::net::SocketAddr;

use chrono::{DateTime, Utc};
use ringback_media::codec::Codec;
use ringback_media::sdp::{self, Negotiated};
use ringback_sip::dialog::Dialog;
use ringback_sip::message::{self, ViaSpec};
use ringback_sip::transaction::{TransactionKey, TransportKind};
use ringback_sip::uac::{make_invite, InviteSpec};
use tokio::sync::mpsc::UnboundedSender;

use crate::endpoint::{EndpointCmd, EndpointHandle};
use crate::media::ports::RtpPort;
use crate::media::{MediaEvent, Stream};
use crate::server::ServerCtx;

/// Where a leg is in its life.
pub enum LegState {
    /// INVITE sent, no final response yet.
    Ringing,
    /// No longer wanted; CANCEL sent (or sent at the first provisional).
    Cancelling {
        /// CANCEL already sent.
        sent: bool,
    },
    /// Answered, ACKed, media flowing.
    Answered(Box<Dialog>),
}

/// What a response meant for the leg's owner.
#[derive(Debug, PartialEq, Eq)]
pub enum LegEvent {
    /// Nothing to decide (provisional, retransmission, a leg we let go).
    Progress,
    /// The far end answered and media is ready.
    Answered,
    /// The far end answered after we gave up on it; it has been hung up.
    AnsweredTooLate,
    /// The far end refused or failed (final status code).
    Failed(u16),
}

/// What to dial.
pub struct DialSpec {
    /// User part of our From URI (the caller's number, or our caller ID).
    pub from_user: String,
    /// Display name in From.
    pub from_display: Option<String>,
    /// Request-URI and To.
    pub target: String,
    /// Where to send the INVITE.
    pub dest: SocketAddr,
    /// Transport.
    pub transport: TransportKind,
    /// Extra headers (context for agents).
    pub headers: Vec<(String, String)>,
    /// Codec offered first (the other G.711 law follows).
    pub prefer: Codec,
}

/// One outgoing leg.
pub struct OutboundLeg {
    /// Its own Call-ID.
    pub call_id: String,
    invite: rsip::Request,
    key: Option<TransactionKey>,
    dest: SocketAddr,
    transport: TransportKind,
    port: Option<RtpPort>,
    /// Media once answered.
    pub stream: Option<Stream>,
    /// Life-cycle state.
    pub state: LegState,
    provisional: bool,
    /// When the INVITE left.
    pub started_at: DateTime<Utc>,
    /// When it was answered.
    pub answered_at: Option<DateTime<Utc>>,
}

/// Why a leg could not be placed at all.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// The RTP range is exhausted.
    #[error("no RTP port free")]
    NoPort,
    /// A URI in the spec is not valid SIP.
    #[error("not a usable SIP URI: {0}")]
    BadUri(String),
}

impl OutboundLeg {
    /// Send the INVITE. `owner` is the Call-ID of the task that receives
    /// this leg's responses and in-dialog requests.
    pub fn dial(
        ctx: &ServerCtx,
        endpoint: &EndpointHandle,
        owner: &str,
        spec: DialSpec,
    ) -> Result<OutboundLeg, DialError> {
        let port = ctx.media.allocate_port().ok_or(DialError::NoPort)?;
        let ip = ctx.config.advertised_ip();
        let host = host_of(ip);
        let other = match spec.prefer {
            Codec::Pcmu => Codec::Pcma,
            Codec::Pcma => Codec::Pcmu,
        };
        let offer = sdp::build_offer(
            &[spec.prefer, other],
            101,
            ip,
            port.addr.port(),
            rand::random::<u32>().into(),
            1,
        );
        let call_id = message::new_call_id(&host);
        let parse = |s: &str| rsip::Uri::try_from(s).map_err(|_| DialError::BadUri(s.to_string()));
        let from_uri = parse(&format!("sip:{}@{host}", sanitize_user(&spec.from_user)))?;
        let target = parse(&spec.target)?;
        let contact = parse(&contact_uri(ip, endpoint.local.port(), spec.transport))?;
        let invite = make_invite(InviteSpec {
            from_uri,
            from_display: spec.from_display,
            to_uri: target.clone(),
            request_uri: target,
            contact,
            via: via(ctx, endpoint, spec.transport),
            call_id: call_id.clone(),
            cseq: 1,
            body: Some(("application/sdp".into(), offer.into_bytes())),
            extra_headers: spec.headers,
        });
        let key = TransactionKey::for_client_request(&invite);
        endpoint.send(EndpointCmd::Alias {
            call_id: call_id.clone(),
            of: owner.to_string(),
        });
        endpoint.send(EndpointCmd::Request {
            request: invite.clone(),
            dest: spec.dest,
            transport: spec.transport,
            owner: owner.to_string(),
        });
        Ok(OutboundLeg {
            call_id,
            invite,
            key,
            dest: spec.dest,
            transport: spec.transport,
            port: Some(port),
            stream: None,
            state: LegState::Ringing,
            provisional: false,
            started_at: Utc::now(),
            answered_at: None,
        })
    }

    /// True if `key` is this leg's INVITE transaction.
    pub fn owns(&self, key: &TransactionKey) -> bool {
        self.key.as_ref() == Some(key)
    }

    /// Still wanted and not yet answered.
    pub fn is_ringing(&self) -> bool {
        matches!(self.state, LegState::Ringing)
    }

    /// Feed a response to this leg's INVITE (other methods' responses are
    /// `Progress`). `media` receives the leg's DTMF and playback events.
    pub fn on_response(
        &mut self,
        ctx: &ServerCtx,
        endpoint: &EndpointHandle,
        key: TransactionKey,
        resp: &rsip::Response,
        media: UnboundedSender<MediaEvent>,
    ) -> LegEvent {
        let is_invite = message::cseq(resp).is_some_and(|(_, m)| m == rsip::Method::Invite);
        if !is_invite {
            return LegEvent::Progress;
        }
        if self.key.is_none() {
            self.key = Some(key.clone());
        }
        let code = resp.status_code.code();
        if (101..200).contains(&code) {
            self.provisional = true;
            if let LegState::Cancelling { sent: false } = self.state {
                endpoint.send(EndpointCmd::Cancel { key });
                self.state = LegState::Cancelling { sent: true };
            }
            return LegEvent::Progress;
        }
        if code >= 300 {
            return LegEvent::Failed(code);
        }
        let via = via(ctx, endpoint, self.transport);
        if let LegState::Answered(dialog) = &self.state {
            // A retransmitted 200: ACK again.
            self.send(endpoint, dialog.make_ack(1, &via).into());
            return LegEvent::Progress;
        }
        let dialog = match Dialog::new_uac(&self.invite, resp) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "unusable 200 OK");
                return LegEvent::Failed(502);
            }
        };
        self.send(endpoint, dialog.make_ack(1, &via).into());
        let wanted = self.is_ringing();
        self.state = LegState::Answered(Box::new(dialog));
        self.answered_at = Some(Utc::now());
        if !wanted {
            self.hang_up(ctx, endpoint);
            return LegEvent::AnsweredTooLate;
        }
        match self.open_media(ctx, resp, media) {
            Ok(()) => LegEvent::Answered,
            Err(e) => {
                tracing::warn!(error = %e, "answered leg has no usable media; hanging up");
                self.hang_up(ctx, endpoint);
                LegEvent::Failed(488)
            }
        }
    }

    fn open_media(
        &mut self,
        ctx: &ServerCtx,
        resp: &rsip::Response,
        media: UnboundedSender<MediaEvent>,
    ) -> Result<(), String> {
        let neg: Negotiated = sdp::parse(&String::from_utf8_lossy(&resp.body))
            .map_err(|e| e.to_string())
            .and_then(|o| sdp::negotiate(&o, &ctx.codecs).map_err(|e| e.to_string()))?;
        let port = self.port.take().ok_or("RTP port already used")?;
        let stream = ctx
            .media
            .open_stream(port, None, neg.codec, neg.pt, neg.dtmf_pt, media)
            .map_err(|e| e.to_string())?;
        stream.apply_negotiation(&neg);
        self.stream = Some(stream);
        Ok(())
    }

    fn send(&self, endpoint: &EndpointHandle, message: rsip::SipMessage) {
        endpoint.send(EndpointCmd::Stateless {
            message,
            dest: self.dest,
            transport: self.transport,
        });
    }

    /// No longer wanted: CANCEL while ringing (as soon as RFC 3261 allows:
    /// after a provisional), BYE once answered. Returns true when the leg is
    /// finished from our side (BYE sent).
    pub fn hang_up(&mut self, ctx: &ServerCtx, endpoint: &EndpointHandle) -> bool {
        match &mut self.state {
            LegState::Answered(dialog) => {
                let bye =
                    dialog.make_request(rsip::Method::Bye, &via(ctx, endpoint, self.transport));
                endpoint.send(EndpointCmd::Request {
                    request: bye,
                    dest: self.dest,
                    transport: self.transport,
                    owner: self.call_id.clone(),
                });
                if let Some(s) = &self.stream {
                    s.unbridge();
                }
                true
            }
            LegState::Ringing => {
                let sent = self.provisional && self.key.is_some();
                if sent {
                    if let Some(key) = self.key.clone() {
                        endpoint.send(EndpointCmd::Cancel { key });
                    }
                }
                self.state = LegState::Cancelling { sent };
                false
            }
            LegState::Cancelling { .. } => false,
        }
    }

    /// Answer an in-dialog re-INVITE (hold/resume from the far end).
    pub fn on_reinvite(
        &self,
        ctx: &ServerCtx,
        endpoint: &EndpointHandle,
        key: TransactionKey,
        req: &rsip::Request,
    ) {
        use rsip::headers::UntypedHeader;
        let reply = match (
            &self.stream,
            sdp::parse(&String::from_utf8_lossy(&req.body)),
        ) {
            (Some(stream), Ok(offer)) => match sdp::negotiate(&offer, &ctx.codecs) {
                Ok(neg) => {
                    stream.apply_negotiation(&neg);
                    let answer = sdp::build_answer(
                        &neg,
                        &offer,
                        ctx.config.advertised_ip(),
                        stream.local_addr().port(),
                        1,
                        2,
                    );
                    let mut ok = message::make_response(req, 200, None);
                    ok.headers
                        .push(rsip::headers::ContentType::new("application/sdp").into());
                    ok.body = answer.into_bytes();
                    ok
                }
                Err(_) => message::make_response(req, 488, None),
            },
            _ => message::make_response(req, 488, None),
        };
        endpoint.send(EndpointCmd::Respond {
            key,
            response: reply,
        });
    }
}

fn via(ctx: &ServerCtx, endpoint: &EndpointHandle, transport: TransportKind) -> ViaSpec {
    ViaSpec {
        host: ctx.config.advertised_ip().to_string(),
        port: Some(endpoint.local.port()),
        transport,
    }
}

/// What a final status from an agent's phone means to the ACD.
pub fn offer_failure(code: u16) -> ringback_acd::OfferFailure {
    use ringback_acd::OfferFailure;
    match code {
        486 | 600 => OfferFailure::Busy,
        603 => OfferFailure::Rejected,
        408 | 480 | 487 => OfferFailure::NoAnswer,
        _ => OfferFailure::Error,
    }
}

/// Host part for URIs (IPv6 in brackets).
pub fn host_of(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        std::net::IpAddr::V4(v4) => v4.to_string(),
    }
}

/// Our Contact URI.
pub fn contact_uri(ip: std::net::IpAddr, port: u16, transport: TransportKind) -> String {
    let host = host_of(ip);
    match transport {
        TransportKind::Tcp => format!("sip:ringback@{host}:{port};transport=tcp"),
        TransportKind::Udp => format!("sip:ringback@{host}:{port}"),
    }
}

/// Keep only characters that are safe in a SIP URI user part.
pub fn sanitize_user(s: &str) -> String {
    let u: String = s
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.' | '_' | '*' | '#'))
        .collect();
    if u.is_empty() {
        "anonymous".into()
    } else {
        u
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_ids_are_sanitized() {
        assert_eq!(sanitize_user("+1 (555) 0123"), "+15550123");
        assert_eq!(sanitize_user("<>"), "anonymous");
    }

    #[test]
    fn contact_forms() {
        let ip: std::net::IpAddr = "127.0.0.1".parse().expect("ip");
        assert_eq!(
            contact_uri(ip, 5060, TransportKind::Udp),
            "sip:ringback@127.0.0.1:5060"
        );
        assert_eq!(
            contact_uri(ip, 5061, TransportKind::Tcp),
            "sip:ringback@127.0.0.1:5061;transport=tcp"
        );
    }
}
