//! The shell's side of a hop (one queue across nodes; the decisions are in
//! `ringback_call::inbound::hop`).
//!
//! Origin: the leg to the node that owns the queues is an ordinary
//! outgoing SIP leg (`OutboundLeg`, UDP, straight to the owner's address
//! from the lease) carrying the caller's context headers, the
//! `X-Ringback-Hop` header and the cluster secret; answered, its stream is
//! bridged with the caller's, so the owner's music, prompts and agent
//! reach the caller and the caller's audio and keys (RFC 4733 events are
//! relayed like audio) reach the owner. The owner's BYE says how the call
//! ended there (`X-Ringback-Outcome`).
//!
//! Owner: an INVITE with `X-Ringback-Hop` and the right secret becomes a
//! call that starts in the queue ([`hop_in`]).

use std::collections::BTreeMap;

use ringback_call::inbound::{HopEvent, HopIn, Input};
use ringback_call::Disposition;
use ringback_sansio::{Core, Now};
use ringback_sip::message;
use ringback_sip::transaction::{TransactionKey, TransportKind};
use subtle::ConstantTimeEq;

use super::Call;
use crate::cluster::Holder;
use crate::config::Config;
use crate::metrics;
use crate::outbound::{DialSpec, LegEvent, OutboundLeg};

/// The hop's header: where the caller waits and since when.
pub const HOP_HEADER: &str = "X-Ringback-Hop";
/// The nodes' shared secret, on every hop.
pub const SECRET_HEADER: &str = "X-Ringback-Cluster-Secret";
/// In the owner's BYE: `overflow` (the origin's plan continues) or the
/// disposition the call ended with there.
pub const OUTCOME_HEADER: &str = "X-Ringback-Outcome";

/// The leg to the owner.
pub(super) struct HopLeg {
    leg: OutboundLeg,
    answered: bool,
}

impl Call {
    /// Place the hop leg to `node` (the lease's holder). Returns the
    /// core's input when it cannot even be tried.
    pub(super) fn place_hop(&mut self, node: String, hop: HopIn) -> Option<Input> {
        self.drop_hop();
        let holder = self.ctx.owner.borrow().clone();
        let Holder::Node { id, sip, .. } = holder else {
            return Some(Input::Hop(HopEvent::Failed));
        };
        if id != node {
            return Some(Input::Hop(HopEvent::Failed));
        }
        let mut headers = self.context_headers();
        headers.push((HOP_HEADER.to_string(), hop.header_value()));
        let secret = self
            .ctx
            .legs
            .config
            .cluster
            .secret
            .clone()
            .unwrap_or_default();
        headers.push((SECRET_HEADER.to_string(), secret));
        let spec = DialSpec {
            from_user: self.cdr.caller.clone(),
            from_display: Some(self.caller_display()),
            target: format!("sip:{}@{sip}", self.cdr.dialed),
            dest: sip,
            transport: TransportKind::Udp,
            headers,
            prefer: self.caller_codec,
            auth: None,
            inband_dtmf: false,
            srtp: Default::default(),
        };
        match OutboundLeg::dial(&self.ctx, &self.endpoint, &self.call_id, spec) {
            Ok(leg) => {
                tracing::info!(%node, %sip, queue = %hop.queue, "hopping to the queues' owner");
                metrics::HOPS_TOTAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.hop = Some(HopLeg {
                    leg,
                    answered: false,
                });
                None
            }
            Err(e) => {
                tracing::warn!(%node, error = %e, "cannot place the hop leg");
                Some(Input::Hop(HopEvent::Failed))
            }
        }
    }

    /// CANCEL or BYE the hop leg, if any.
    pub(super) fn drop_hop(&mut self) {
        if let Some(h) = self.hop.as_mut() {
            self.stream.unbridge();
            h.leg.hang_up(&self.endpoint);
        }
        self.forget_hop_leg();
    }

    pub(super) fn bridge_hop(&mut self) {
        match self.hop.as_ref().and_then(|h| h.leg.stream.as_ref()) {
            Some(s) => crate::media::bridge(&self.stream, s),
            None => tracing::warn!("the hop leg has no media to bridge"),
        }
    }

    /// The hop leg is over: the endpoint stops routing its Call-ID here.
    fn forget_hop_leg(&mut self) {
        if let Some(h) = self.hop.take() {
            self.endpoint.send(crate::endpoint::EndpointCmd::CallEnded {
                call_id: h.leg.call_id,
            });
        }
    }

    fn hop_event(&mut self, event: HopEvent) {
        self.core.handle(Input::Hop(event), Now::system());
    }

    /// A response on the hop leg. False when it is not the hop's.
    pub(super) fn on_hop_response(&mut self, resp: &rsip::Response) -> bool {
        let call_id = message::call_id(resp).unwrap_or_default();
        let media = self.leg_media.clone();
        let Some(h) = self.hop.as_mut().filter(|h| h.leg.call_id == call_id) else {
            return false;
        };
        match h.leg.on_response(&self.ctx, &self.endpoint, resp, media) {
            LegEvent::Progress | LegEvent::EarlyMedia => {}
            LegEvent::Answered => {
                h.answered = true;
                self.hop_event(HopEvent::Answered);
            }
            LegEvent::AnsweredTooLate => {}
            LegEvent::Failed(code) => {
                tracing::warn!(code, "the queues' owner refused the hop");
                self.forget_hop_leg();
                self.hop_event(HopEvent::Failed);
            }
        }
        true
    }

    /// The hop INVITE timed out. False when it is not the hop's.
    pub(super) fn on_hop_timeout(&mut self, key: &TransactionKey) -> bool {
        if !self.hop.as_ref().is_some_and(|h| h.leg.owns(key)) {
            return false;
        }
        self.forget_hop_leg();
        self.hop_event(HopEvent::Failed);
        true
    }

    /// An in-dialog request from the owner (its BYE says how it ended).
    /// False when it is not the hop's.
    pub(super) fn on_hop_request(&mut self, key: TransactionKey, req: &rsip::Request) -> bool {
        let call_id = message::call_id(req).unwrap_or_default();
        let Some(h) = self.hop.as_mut().filter(|h| h.leg.call_id == call_id) else {
            return false;
        };
        match req.method {
            rsip::Method::Bye => {
                self.respond(key, req, 200);
                let outcome = message::header_value(req, OUTCOME_HEADER).unwrap_or_default();
                self.forget_hop_leg();
                self.stream.unbridge();
                let event = HopEvent::Ended {
                    overflow: outcome.trim() == "overflow",
                    disposition: Disposition::parse(outcome.trim())
                        .unwrap_or(Disposition::Completed),
                };
                tracing::info!(outcome = %outcome, "the queues' owner hung up");
                self.hop_event(event);
            }
            rsip::Method::Invite | rsip::Method::Update => {
                h.leg.on_reinvite(&self.ctx, &self.endpoint, key, req);
            }
            _ => self.respond(key, req, 200),
        }
        true
    }

    /// The hop leg's media stopped (the owner's process died).
    pub(super) fn on_hop_media_lost(&mut self) -> bool {
        if !self.hop.as_ref().is_some_and(|h| h.answered) {
            return false;
        }
        self.hop_event(HopEvent::Lost);
        true
    }

    /// The owner changed: tell the core.
    pub(super) fn on_owner_changed(&mut self) {
        let at = self.ctx.owner.borrow().acd_at();
        self.core.handle(Input::AcdAt(at), Now::system());
    }

    /// The owner's BYE header for a hopped-in call.
    pub(super) fn hop_outcome(&self, disposition: &str) -> Option<(String, String)> {
        if !self.core.is_hopped_in() {
            return None;
        }
        let outcome = if self.core.hop_overflowed() {
            "overflow"
        } else {
            disposition
        };
        Some((OUTCOME_HEADER.to_string(), outcome.to_string()))
    }
}

/// A caller arriving from another node: the hop and their variables.
pub type Arrival = (HopIn, BTreeMap<String, String>);

/// A hopped caller arriving at the owner: `None` for an ordinary call,
/// the hop and the caller's variables, or a refusal (status, reason).
pub fn hop_in(config: &Config, invite: &rsip::Request) -> Result<Option<Arrival>, (u16, String)> {
    let Some(value) = message::header_value(invite, HOP_HEADER) else {
        return Ok(None);
    };
    let c = &config.cluster;
    let expected = c.secret.as_deref().filter(|_| c.shared_queues);
    let given = message::header_value(invite, SECRET_HEADER);
    match (expected, given.as_deref()) {
        (Some(e), Some(g)) if bool::from(e.as_bytes().ct_eq(g.as_bytes())) => {}
        (None, _) => {
            return Err((
                403,
                "this node does not share queues ([cluster] shared_queues)".into(),
            ))
        }
        _ => return Err((403, "wrong or missing cluster secret".into())),
    }
    let path = message::header_value(invite, "X-Ringback-Path").unwrap_or_default();
    let digits = message::header_value(invite, "X-Ringback-Digits").unwrap_or_default();
    let hop =
        HopIn::parse(&value, &path, &digits).map_err(|e| (400, format!("{HOP_HEADER}: {e}")))?;
    let vars = invite
        .headers
        .iter()
        .filter_map(|h| {
            let text = h.to_string();
            let (name, value) = text.split_once(':')?;
            let var = name.trim().strip_prefix("X-Ringback-Var-")?;
            Some((var.to_string(), value.trim().to_string()))
        })
        .collect();
    metrics::HOPS_IN_TOTAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(Some((hop, vars)))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config(cluster: &str) -> Config {
        let text = format!("[callbacks]\nnode_id = \"b\"\n[cluster]\n{cluster}");
        Config::parse(Path::new("r.toml"), &text).expect("config")
    }

    fn invite(extra: &str) -> rsip::Request {
        let text = format!(
            "INVITE sip:2000@127.0.0.1:5060 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\n\
             From: <sip:+15550123@127.0.0.1>;tag=a\r\n\
             To: <sip:2000@127.0.0.1>\r\n\
             Call-ID: hop-1\r\n\
             CSeq: 1 INVITE\r\n\
             {extra}Content-Length: 0\r\n\r\n"
        );
        match message::parse(text.as_bytes()) {
            Ok(rsip::SipMessage::Request(r)) => r,
            other => panic!("not a request: {other:?}"),
        }
    }

    const SHARED: &str = "shared_queues = true\nsecret = \"0123456789\"\n";
    const HOP: &str = "X-Ringback-Hop: queue=support;entered=1733221234123;priority=2\r\n";

    #[test]
    fn an_ordinary_invite_is_no_hop() {
        assert_eq!(hop_in(&config(SHARED), &invite("")), Ok(None));
    }

    #[test]
    fn a_hop_needs_shared_queues_and_the_secret() {
        let good = format!("{HOP}X-Ringback-Cluster-Secret: 0123456789\r\n");
        let (code, why) = hop_in(&config(""), &invite(&good)).unwrap_err();
        assert_eq!(code, 403, "{why}");
        for bad in [
            HOP.to_string(),
            format!("{HOP}X-Ringback-Cluster-Secret: 0123456788\r\n"),
        ] {
            let (code, why) = hop_in(&config(SHARED), &invite(&bad)).unwrap_err();
            assert_eq!(
                (code, why.as_str()),
                (403, "wrong or missing cluster secret")
            );
        }
    }

    #[test]
    fn a_good_hop_brings_the_place_path_keys_and_variables() {
        let extra = format!(
            "{HOP}X-Ringback-Cluster-Secret: 0123456789\r\n\
             X-Ringback-Path: main > support\r\n\
             X-Ringback-Digits: 2\r\n\
             X-Ringback-Var-account: 42\r\n"
        );
        let (hop, vars) = hop_in(&config(SHARED), &invite(&extra))
            .expect("accepted")
            .expect("a hop");
        assert_eq!(hop.queue, "support");
        assert_eq!(hop.priority, 2);
        assert_eq!(hop.entered_at.timestamp_millis(), 1_733_221_234_123);
        assert_eq!(
            (hop.path.as_str(), hop.digits.as_str()),
            ("main > support", "2")
        );
        assert_eq!(vars.get("account").map(String::as_str), Some("42"));
    }

    #[test]
    fn an_unreadable_hop_is_a_400_naming_the_problem() {
        let extra = "X-Ringback-Hop: queue=support\r\nX-Ringback-Cluster-Secret: 0123456789\r\n";
        let (code, why) = hop_in(&config(SHARED), &invite(extra)).unwrap_err();
        assert_eq!((code, why.as_str()), (400, "X-Ringback-Hop: no entered"));
    }
}
