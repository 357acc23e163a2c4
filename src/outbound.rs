//! One outgoing call leg placed by ringback (to an agent's phone, or to a
//! customer through a trunk): INVITE with an SDP offer, CANCEL while it
//! rings, ACK and media on answer, BYE when done.
//!
//! What each response means (100 Trying, 18x with or without early media,
//! reliable provisionals, forked and retransmitted 2xx, digest challenges)
//! is decided by the sans-IO [`OutgoingInvite`] in `ringback-sip`; this
//! shell only carries its requests to the endpoint and opens media.
//!
//! The leg only knows SIP and media mechanics; whoever owns it (a queued
//! call, a callback attempt) decides what an answer or a failure means.
//! Invariant: a leg is ringing (and gets CANCEL when no longer wanted),
//! answered (and gets BYE) or gone — never forgotten while the phone rings.

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use ringback_media::codec::Codec;
use ringback_media::sdp::{self, Negotiated, SrtpOffer, SrtpPolicy};
use ringback_sip::client_auth::{ClientAuth, ClientCredentials};
use ringback_sip::message::{self, ViaSpec};
use ringback_sip::outgoing::{InviteEvent, OutgoingInvite, Send};
use ringback_sip::session_timer;
use ringback_sip::transaction::{TransactionKey, TransportKind};
use ringback_sip::uac::{make_invite, InviteSpec};
use tokio::sync::mpsc::UnboundedSender;

use crate::config::Config;
use crate::endpoint::{EndpointCmd, EndpointHandle};
use crate::media::ports::RtpPort;
use crate::media::secure::SrtpSession;
use crate::media::MediaEngine;
use crate::media::{MediaEvent, Stream};

/// What placing and running a leg needs: the advertised address (config),
/// RTP ports and clocks, the codecs we accept. Cheap to clone.
#[derive(Clone)]
pub struct LegDeps {
    /// Configuration (advertised IP, user agent).
    pub config: Arc<Config>,
    /// RTP ports and media clocks.
    pub media: Arc<MediaEngine>,
    /// Agents' browser phones (WebRTC).
    pub phones: Arc<crate::browser::BrowserPhones>,
}

impl LegDeps {
    /// Codecs offered and accepted, in our order of preference.
    pub const CODECS: [Codec; 2] = [Codec::Pcmu, Codec::Pcma];
}

/// Whatever carries [`LegDeps`] (a call's handles, the callback service's).
pub trait LegSource {
    /// The leg handles.
    fn legs(&self) -> &LegDeps;
}

impl LegSource for LegDeps {
    fn legs(&self) -> &LegDeps {
        self
    }
}

impl<T: LegSource + ?Sized> LegSource for Arc<T> {
    fn legs(&self) -> &LegDeps {
        (**self).legs()
    }
}

/// What a response meant for the leg's owner.
#[derive(Debug, PartialEq, Eq)]
pub enum LegEvent {
    /// Nothing to decide (provisional, retransmission, a leg we let go).
    Progress,
    /// The far end sent early media (a 18x with SDP): the leg's stream is
    /// open and carries it (a carrier's ringback tone or announcement).
    EarlyMedia,
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
    /// Extra headers (context for agents, P-Asserted-Identity for trunks).
    pub headers: Vec<(String, String)>,
    /// Codec offered first (the other G.711 law follows).
    pub prefer: Codec,
    /// Credentials for a far end that challenges the INVITE (401/407).
    pub auth: Option<ClientCredentials>,
    /// Listen for DTMF tones in the audio even when the far end offers
    /// RFC 4733 events (gateways that never send them).
    pub inband_dtmf: bool,
    /// SRTP for this leg (the agent's or trunk's `srtp`).
    pub srtp: SrtpPolicy,
}

/// The SRTP policy for calls to `agent`'s phone (`off` when unknown).
pub fn agent_srtp(config: &crate::config::Config, agent: &str) -> SrtpPolicy {
    config.agents.get(agent).map(|a| a.srtp).unwrap_or_default()
}

/// One outgoing leg.
pub struct OutboundLeg {
    /// Its own Call-ID.
    pub call_id: String,
    owner: String,
    invite: OutgoingInvite,
    dest: SocketAddr,
    transport: TransportKind,
    port: Option<RtpPort>,
    /// Media once answered (or once early media arrived).
    pub stream: Option<Stream>,
    /// When the INVITE left.
    pub started_at: DateTime<Utc>,
    /// When it was answered.
    pub answered_at: Option<DateTime<Utc>>,
    /// Version of our SDP `o=` line (bumped for each new answer we give).
    sdp_version: u64,
    sdp_session: u64,
    inband_dtmf: bool,
    srtp: SrtpPolicy,
    /// Our keys, one per offered suite, until the answer picks one.
    srtp_offer: SrtpOffer,
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
        deps: &impl LegSource,
        endpoint: &EndpointHandle,
        owner: &str,
        spec: DialSpec,
    ) -> Result<OutboundLeg, DialError> {
        let deps = deps.legs();
        let port = deps.media.allocate_port().ok_or(DialError::NoPort)?;
        let ip = deps.config.advertised_ip();
        let host = host_of(ip);
        let other = match spec.prefer {
            Codec::Pcmu => Codec::Pcma,
            Codec::Pcma => Codec::Pcmu,
        };
        let sdp_session: u64 = rand::random::<u32>().into();
        // Keys only when SRTP may be used: a plain leg offers none.
        let srtp_offer = if spec.srtp == SrtpPolicy::Off {
            SrtpOffer::new(Vec::new())
        } else {
            SrtpOffer::random()
        };
        let offer = sdp::build_offer_srtp(
            &[spec.prefer, other],
            101,
            ip,
            port.addr.port(),
            sdp_session,
            1,
            spec.srtp,
            &srtp_offer,
        );
        let call_id = message::new_call_id(&host);
        let parse = |s: &str| rsip::Uri::try_from(s).map_err(|_| DialError::BadUri(s.to_string()));
        let from_uri = parse(&format!("sip:{}@{host}", sanitize_user(&spec.from_user)))?;
        let target = parse(&spec.target)?;
        let contact = parse(&contact_uri(
            ip,
            endpoint.port_for(spec.transport),
            spec.transport,
        ))?;
        let mut headers = spec.headers;
        // Reliable provisionals let a carrier's early media and PRACK work;
        // we do not advertise `timer`: the far end refreshes the session
        // (RFC 4028 §9) and we answer its re-INVITEs and UPDATEs.
        headers.push(("Supported".into(), "100rel".into()));
        headers.push(("Allow".into(), crate::endpoint::ALLOW.into()));
        let invite = make_invite(InviteSpec {
            from_uri,
            from_display: spec.from_display,
            to_uri: target.clone(),
            request_uri: target,
            contact,
            via: via(deps, endpoint, spec.transport),
            call_id: call_id.clone(),
            cseq: 1,
            body: Some(("application/sdp".into(), offer.into_bytes())),
            extra_headers: headers,
        });
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
            owner: owner.to_string(),
            invite: OutgoingInvite::new(
                invite,
                via(deps, endpoint, spec.transport),
                spec.auth.map(ClientAuth::new),
            ),
            dest: spec.dest,
            transport: spec.transport,
            port: Some(port),
            stream: None,
            started_at: Utc::now(),
            answered_at: None,
            sdp_version: 1,
            sdp_session,
            inband_dtmf: spec.inband_dtmf,
            srtp: spec.srtp,
            srtp_offer,
        })
    }

    fn invite_key(&self) -> Option<TransactionKey> {
        TransactionKey::for_client_request(self.invite.invite())
    }

    /// True if `key` is this leg's current INVITE transaction.
    pub fn owns(&self, key: &TransactionKey) -> bool {
        self.invite_key().as_ref() == Some(key)
    }

    /// Still wanted and not yet answered.
    pub fn is_ringing(&self) -> bool {
        self.invite.is_calling()
    }

    /// Feed a response to a request of this leg. `media` receives the leg's
    /// DTMF and playback events once its stream is open.
    pub fn on_response(
        &mut self,
        deps: &impl LegSource,
        endpoint: &EndpointHandle,
        resp: &rsip::Response,
        media: UnboundedSender<MediaEvent>,
    ) -> LegEvent {
        let deps = deps.legs();
        let event = match self.invite.on_response(resp) {
            InviteEvent::Nothing | InviteEvent::Trying | InviteEvent::Resent => LegEvent::Progress,
            InviteEvent::Ringing { sdp: None, .. } => LegEvent::Progress,
            InviteEvent::Ringing {
                sdp: Some(body), ..
            } => match self.use_answer(deps, &body, media) {
                Ok(true) => LegEvent::EarlyMedia,
                Ok(false) => LegEvent::Progress,
                Err(e) => {
                    tracing::debug!(error = %e, "early media SDP not usable; ignored");
                    LegEvent::Progress
                }
            },
            InviteEvent::Answered { sdp } => {
                self.answered_at = Some(Utc::now());
                let usable = if sdp.iter().all(u8::is_ascii_whitespace) {
                    // The answer came in a reliable provisional already.
                    if self.stream.is_some() {
                        Ok(false)
                    } else {
                        Err("no SDP answer in the 2xx".to_string())
                    }
                } else {
                    self.use_answer(deps, &sdp, media)
                };
                match usable {
                    Ok(_) => LegEvent::Answered,
                    Err(e) => {
                        tracing::warn!(error = %e, "answered leg has no usable media; hanging up");
                        self.invite.hang_up();
                        LegEvent::Failed(488)
                    }
                }
            }
            InviteEvent::AnsweredTooLate => {
                self.answered_at = Some(Utc::now());
                LegEvent::AnsweredTooLate
            }
            InviteEvent::Failed(code) => LegEvent::Failed(code),
        };
        self.flush(endpoint);
        event
    }

    /// Apply an SDP answer (from a 18x or the 2xx): open the stream the
    /// first time (true), or point the open stream at the new address.
    fn use_answer(
        &mut self,
        deps: &LegDeps,
        body: &[u8],
        media: UnboundedSender<MediaEvent>,
    ) -> Result<bool, String> {
        let neg: Negotiated = sdp::parse(&String::from_utf8_lossy(body))
            .map_err(|e| e.to_string())
            .and_then(|o| {
                sdp::negotiate_answer_srtp(&o, &LegDeps::CODECS, self.srtp, &self.srtp_offer)
                    .map_err(|e| e.to_string())
            })?;
        if let Some(stream) = &self.stream {
            // A later answer (the 2xx after early media) must keep the
            // stream as it is: same security, same keys.
            if stream.is_secure() != neg.srtp.is_some() {
                return Err("the answer changed whether media is encrypted".into());
            }
            stream.apply_negotiation(&neg);
            return Ok(false);
        }
        let srtp = match &neg.srtp {
            Some(agreed) => Some(SrtpSession {
                local: self
                    .srtp_offer
                    .key(agreed.tag)
                    .ok_or("the answer accepted a key we did not offer")?
                    .clone(),
                remote: agreed.remote.clone(),
            }),
            None => None,
        };
        let port = self.port.take().ok_or("RTP port already used")?;
        let stream = deps
            .media
            .open_stream(port, &neg, srtp, media)
            .map_err(|e| e.to_string())?;
        stream.apply_negotiation(&neg);
        if self.inband_dtmf {
            stream.set_inband_dtmf(true);
        }
        tracing::debug!(inband_dtmf = stream.inband_dtmf(), codec = ?neg.codec, "leg media open");
        self.stream = Some(stream);
        Ok(true)
    }

    /// Carry what the INVITE core wants sent to the endpoint.
    fn flush(&mut self, endpoint: &EndpointHandle) {
        while let Some(send) = self.invite.poll_send() {
            match send {
                Send::Request(request) => endpoint.send(EndpointCmd::Request {
                    request: *request,
                    dest: self.dest,
                    transport: self.transport,
                    owner: self.owner.clone(),
                }),
                Send::Ack(ack) => endpoint.send(EndpointCmd::Stateless {
                    message: (*ack).into(),
                    dest: self.dest,
                    transport: self.transport,
                }),
                Send::Cancel => {
                    if let Some(key) = self.invite_key() {
                        endpoint.send(EndpointCmd::Cancel { key });
                    }
                }
            }
        }
    }

    /// No longer wanted: CANCEL while ringing (as soon as RFC 3261 allows:
    /// after a provisional), BYE once answered. Returns true when the leg is
    /// finished from our side (BYE sent).
    pub fn hang_up(&mut self, endpoint: &EndpointHandle) -> bool {
        let done = self.invite.hang_up();
        self.flush(endpoint);
        if done {
            if let Some(s) = &self.stream {
                s.unbridge();
            }
        }
        done
    }

    /// Answer an in-dialog re-INVITE or UPDATE (hold/resume, a new address,
    /// a session-timer refresh). One with an SDP offer gets our answer; one
    /// without (a refresh, or a re-INVITE asking for our offer) gets our
    /// current session description as the offer, whose answer comes in
    /// the ACK and changes nothing we send.
    pub fn on_reinvite(
        &mut self,
        deps: &impl LegSource,
        endpoint: &EndpointHandle,
        key: TransactionKey,
        req: &rsip::Request,
    ) {
        let deps = deps.legs();
        let Some(stream) = &self.stream else {
            let resp = message::make_response(req, 488, None);
            endpoint.send(EndpointCmd::Respond {
                key,
                response: resp,
            });
            return;
        };
        let ip = deps.config.advertised_ip();
        let body = if req.body.iter().all(u8::is_ascii_whitespace) {
            if req.method == rsip::Method::Update {
                // A refresh without SDP: no change, no body.
                None
            } else {
                self.sdp_version += 1;
                Some(Ok(stream.offer_sdp(
                    &LegDeps::CODECS,
                    ip,
                    self.sdp_session,
                    self.sdp_version,
                )))
            }
        } else {
            Some(stream.reoffer(&req.body).and_then(|(offer, neg)| {
                self.sdp_version += 1;
                tracing::info!(hold = neg.is_hold(), method = %req.method, "leg renegotiated");
                stream.answer_sdp(&neg, &offer, ip, self.sdp_session, self.sdp_version)
            }))
        };
        let reply = match body {
            Some(Err(code)) => message::make_response(req, code, None),
            Some(Ok(sdp)) => session_timer::sdp_answer_ok(
                req,
                sdp,
                &contact_uri(ip, endpoint.port_for(self.transport), self.transport),
            ),
            None => message::make_response(req, 200, None),
        };
        endpoint.send(EndpointCmd::Respond {
            key,
            response: reply,
        });
    }
}

fn via(deps: &LegDeps, endpoint: &EndpointHandle, transport: TransportKind) -> ViaSpec {
    ViaSpec {
        host: deps.config.advertised_ip().to_string(),
        port: Some(endpoint.port_for(transport)),
        transport,
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
        TransportKind::Tls => format!("sip:ringback@{host}:{port};transport=tls"),
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
