//! The UAC side of one outgoing INVITE, above the transaction layer: what
//! each response means for the call, and which requests it obliges us to
//! send.
//!
//! Real equipment sends far more than a lone `200 OK`, and every piece of it
//! has broken a B2BUA somewhere:
//! - `100 Trying` first (hop-by-hop, never an answer, never a dialog);
//! - `180`/`183`, with or without SDP (early media), several of them;
//! - reliable provisionals (`Require: 100rel`, `RSeq`) that must be PRACKed
//!   in their early dialog (RFC 3262), each RSeq once;
//! - 2xx retransmissions until our ACK arrives (each ACKed again);
//! - several 2xx with different To tags when a proxy forks: the first one
//!   is kept, every other one is ACKed and then ended with BYE
//!   (RFC 3261 §13.2.2.4);
//! - digest challenges (401/407) to the INVITE and to our BYE, answered
//!   once per nonce.
//!
//! Sans-IO: [`OutgoingInvite::on_response`] takes a response and returns an
//! [`InviteEvent`] for the owner; the requests to send are queued and taken
//! with [`OutgoingInvite::poll_send`]. Time plays no part here (the
//! transaction layer owns the timers).

use std::collections::VecDeque;

use rsip::{Method, Request, Response};

use crate::client_auth::ClientAuth;
use crate::dialog::Dialog;
use crate::message::{self, ViaSpec};

/// Something the shell must send for this INVITE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Send {
    /// A request with its own client transaction (PRACK, BYE, or the
    /// INVITE again with credentials). Its responses come back through
    /// [`OutgoingInvite::on_response`] (only INVITE responses matter).
    Request(Box<Request>),
    /// A request without a transaction: the ACK for a 2xx.
    Ack(Box<Request>),
    /// CANCEL the current INVITE transaction (see [`OutgoingInvite::invite`]).
    Cancel,
}

/// What a response meant to the owner of the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InviteEvent {
    /// Nothing to decide: a retransmission, a response to another method,
    /// an extra fork, or a leg we no longer want.
    Nothing,
    /// The first `100 Trying` (the next hop has the request).
    Trying,
    /// The far end is alerting (`180`, `183`, …). `sdp` is set when the
    /// provisional carries a session description: early media.
    Ringing {
        /// Status code of the provisional.
        code: u16,
        /// Early-media SDP (the answer to our offer), if any.
        sdp: Option<Vec<u8>>,
    },
    /// The INVITE was challenged and sent again with credentials: the
    /// INVITE transaction changed (take the new one from [`OutgoingInvite::invite`]).
    Resent,
    /// Answered: the dialog is confirmed and ACKed. `sdp` is the 2xx's body.
    Answered {
        /// The 2xx's session description (may be empty when the answer
        /// came in a reliable provisional).
        sdp: Vec<u8>,
    },
    /// Answered after the owner gave up: ACKed and hung up at once.
    AnsweredTooLate,
    /// The call failed with this final status (a 2xx we could not use is
    /// reported as 502).
    Failed(u16),
}

/// Where the INVITE is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No final response yet; the owner wants the call.
    Calling,
    /// The owner gave up before an answer. `sent`: CANCEL queued already
    /// (RFC 3261 §9.1 allows it only after a provisional).
    Cancelling { sent: bool },
    /// A 2xx was kept; the dialog is confirmed.
    Answered,
    /// Failed, or hung up by us after the answer.
    Ended,
}

/// One early dialog (a To tag seen in a provisional): needed to PRACK in
/// it, and to keep its CSeq numbering when its 2xx confirms it.
#[derive(Debug)]
struct Early {
    dialog: Dialog,
    last_rseq: Option<u32>,
}

/// The UAC state of one outgoing INVITE and the dialog it creates.
#[derive(Debug)]
pub struct OutgoingInvite {
    invite: Request,
    via: ViaSpec,
    auth: Option<ClientAuth>,
    phase: Phase,
    provisional: bool,
    trying_seen: bool,
    early: Vec<Early>,
    dialog: Option<Dialog>,
    ack: Option<Request>,
    /// To tags of extra 2xx (forks) already ACKed and hung up.
    forks_ended: Vec<String>,
    /// Our BYE in the kept dialog, to answer a challenge to it.
    bye: Option<Request>,
    out: VecDeque<Send>,
}

impl OutgoingInvite {
    /// Track `invite` (already handed to the transaction layer). `via`
    /// describes our address for requests we build (ACK, PRACK, BYE);
    /// `auth` answers digest challenges when the far end asks for them.
    pub fn new(invite: Request, via: ViaSpec, auth: Option<ClientAuth>) -> OutgoingInvite {
        OutgoingInvite {
            invite,
            via,
            auth,
            phase: Phase::Calling,
            provisional: false,
            trying_seen: false,
            early: Vec::new(),
            dialog: None,
            ack: None,
            forks_ended: Vec::new(),
            bye: None,
            out: VecDeque::new(),
        }
    }

    /// The INVITE currently in flight (changes when a challenge is answered).
    pub fn invite(&self) -> &Request {
        &self.invite
    }

    /// The confirmed dialog, once answered.
    pub fn dialog(&self) -> Option<&Dialog> {
        self.dialog.as_ref()
    }

    /// The confirmed dialog, to build in-dialog requests or check the
    /// far end's requests against it.
    pub fn dialog_mut(&mut self) -> Option<&mut Dialog> {
        self.dialog.as_mut()
    }

    /// No final response yet and still wanted.
    pub fn is_calling(&self) -> bool {
        self.phase == Phase::Calling
    }

    /// Answered and not yet hung up by us.
    pub fn is_answered(&self) -> bool {
        self.phase == Phase::Answered
    }

    /// Next request to send, if any.
    pub fn poll_send(&mut self) -> Option<Send> {
        self.out.pop_front()
    }

    fn invite_cseq(&self) -> u32 {
        message::cseq(&self.invite).map_or(1, |(n, _)| n)
    }

    /// Feed a response to any request of this call (only INVITE responses
    /// change anything).
    pub fn on_response(&mut self, resp: &Response) -> InviteEvent {
        let seq = match message::cseq(resp) {
            Some((seq, Method::Invite)) => seq,
            Some((seq, Method::Bye)) => {
                self.on_bye_response(resp, seq);
                return InviteEvent::Nothing;
            }
            _ => return InviteEvent::Nothing,
        };
        let code = resp.status_code.code();
        if seq != self.invite_cseq() {
            // A response to an INVITE we replaced after a challenge: only a
            // 2xx matters (a dialog we never wanted): ACK it and end it.
            if (200..300).contains(&code) {
                self.end_fork(resp, seq);
            }
            return InviteEvent::Nothing;
        }
        match code {
            100..=199 => self.on_provisional(resp, code),
            200..=299 => self.on_success(resp, seq),
            401 | 407 => self.on_challenge(resp, code),
            _ => {
                if matches!(self.phase, Phase::Calling | Phase::Cancelling { .. }) {
                    self.phase = Phase::Ended;
                    InviteEvent::Failed(code)
                } else {
                    InviteEvent::Nothing
                }
            }
        }
    }

    fn on_provisional(&mut self, resp: &Response, code: u16) -> InviteEvent {
        if !matches!(self.phase, Phase::Calling | Phase::Cancelling { .. }) {
            return InviteEvent::Nothing;
        }
        self.provisional = true;
        let mut fresh = true;
        if code != 100 {
            if let Some(rseq) = reliable_rseq(resp) {
                fresh = self.prack(resp, rseq);
            }
        }
        if let Phase::Cancelling { sent: false } = self.phase {
            self.out.push_back(Send::Cancel);
            self.phase = Phase::Cancelling { sent: true };
        }
        if self.phase != Phase::Calling || !fresh {
            return InviteEvent::Nothing;
        }
        if code == 100 {
            if self.trying_seen {
                return InviteEvent::Nothing;
            }
            self.trying_seen = true;
            return InviteEvent::Trying;
        }
        InviteEvent::Ringing {
            code,
            sdp: sdp_body(resp),
        }
    }

    /// PRACK a reliable provisional in its early dialog. False for a
    /// retransmission (same RSeq again), which must not be reported twice.
    fn prack(&mut self, resp: &Response, rseq: u32) -> bool {
        let Some(tag) = message::to_tag(resp) else {
            return false;
        };
        let idx = match self
            .early
            .iter()
            .position(|e| e.dialog.id().remote_tag == tag)
        {
            Some(i) => i,
            None => match Dialog::new_uac(&self.invite, resp) {
                Ok(dialog) => {
                    self.early.push(Early {
                        dialog,
                        last_rseq: None,
                    });
                    self.early.len() - 1
                }
                Err(_) => return false,
            },
        };
        let early = &mut self.early[idx];
        // RFC 3262 §4: only the next RSeq in order is acknowledged.
        if early
            .last_rseq
            .is_some_and(|last| rseq != last.wrapping_add(1))
        {
            return false;
        }
        early.last_rseq = Some(rseq);
        let cseq = message::cseq(&self.invite).map_or(1, |(n, _)| n);
        let mut prack = early.dialog.make_request(Method::PRack, &self.via);
        prack.headers.push(message::make_header(
            "RAck",
            &format!("{rseq} {cseq} INVITE"),
        ));
        self.out.push_back(Send::Request(Box::new(prack)));
        true
    }

    fn on_success(&mut self, resp: &Response, seq: u32) -> InviteEvent {
        let tag = message::to_tag(resp).unwrap_or_default();
        if let Some(dialog) = &self.dialog {
            if dialog.id().remote_tag == tag {
                // A retransmission of the 2xx we kept: our ACK was lost.
                if let Some(ack) = &self.ack {
                    self.out.push_back(Send::Ack(Box::new(ack.clone())));
                }
            } else {
                self.end_fork(resp, seq);
            }
            return InviteEvent::Nothing;
        }
        if self.phase == Phase::Ended {
            // Failed already (e.g. a 2xx racing a CANCEL's 487): do not leave
            // the far end in a call nobody hears.
            self.end_fork(resp, seq);
            return InviteEvent::Nothing;
        }
        let early = self
            .early
            .iter()
            .position(|e| e.dialog.id().remote_tag == tag)
            .map(|i| self.early.swap_remove(i).dialog);
        let dialog = match early {
            Some(mut d) => {
                d.update_from_response(resp);
                d
            }
            None => match Dialog::new_uac(&self.invite, resp) {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "unusable 2xx to our INVITE");
                    self.phase = Phase::Ended;
                    return InviteEvent::Failed(502);
                }
            },
        };
        self.early.clear();
        let ack = dialog.make_ack(seq, &self.via);
        self.out.push_back(Send::Ack(Box::new(ack.clone())));
        self.ack = Some(ack);
        self.dialog = Some(dialog);
        if self.phase == Phase::Calling {
            self.phase = Phase::Answered;
            InviteEvent::Answered {
                sdp: resp.body.clone(),
            }
        } else {
            // Answered while our CANCEL was on its way: end it with BYE.
            self.phase = Phase::Answered;
            self.hang_up();
            InviteEvent::AnsweredTooLate
        }
    }

    /// ACK and BYE a 2xx whose dialog we do not keep.
    fn end_fork(&mut self, resp: &Response, seq: u32) {
        let tag = message::to_tag(resp).unwrap_or_default();
        let mut invite = self.invite.clone();
        if seq != self.invite_cseq() {
            set_cseq(&mut invite, seq);
        }
        let Ok(mut fork) = Dialog::new_uac(&invite, resp) else {
            return;
        };
        self.out
            .push_back(Send::Ack(Box::new(fork.make_ack(seq, &self.via))));
        if self.forks_ended.contains(&tag) {
            return;
        }
        tracing::info!(to_tag = %tag, "extra 2xx from a fork: ACK and BYE");
        self.forks_ended.push(tag);
        let bye = fork.make_request(Method::Bye, &self.via);
        self.out.push_back(Send::Request(Box::new(bye)));
    }

    fn on_challenge(&mut self, resp: &Response, code: u16) -> InviteEvent {
        if self.phase != Phase::Calling {
            if matches!(self.phase, Phase::Cancelling { .. }) {
                self.phase = Phase::Ended;
                return InviteEvent::Failed(code);
            }
            return InviteEvent::Nothing;
        }
        let Some(auth) = self.auth.as_mut() else {
            self.phase = Phase::Ended;
            return InviteEvent::Failed(code);
        };
        match auth.retry(&self.invite, resp) {
            Ok(next) => {
                self.invite = next.clone();
                self.provisional = false;
                self.trying_seen = false;
                self.early.clear();
                self.out.push_back(Send::Request(Box::new(next)));
                InviteEvent::Resent
            }
            Err(e) => {
                tracing::warn!(error = %e, code, "challenge to our INVITE cannot be answered");
                self.phase = Phase::Ended;
                InviteEvent::Failed(code)
            }
        }
    }

    /// A carrier challenged our BYE (401/407): send it again with
    /// credentials, once per challenge (RFC 3261 §22.2 applies to every
    /// request, and carriers do challenge BYEs).
    fn on_bye_response(&mut self, resp: &Response, seq: u32) {
        let code = resp.status_code.code();
        if code != 401 && code != 407 {
            return;
        }
        let Some(bye) = self.bye.as_ref() else {
            return;
        };
        let ours = message::cseq(bye).is_some_and(|(n, _)| n == seq)
            && message::to_tag(bye) == message::to_tag(resp);
        let Some(auth) = self.auth.as_mut().filter(|_| ours) else {
            return;
        };
        match auth.retry(bye, resp) {
            Ok(next) => {
                self.bye = Some(next.clone());
                self.out.push_back(Send::Request(Box::new(next)));
            }
            Err(e) => tracing::warn!(error = %e, code, "challenge to our BYE cannot be answered"),
        }
    }

    /// The owner no longer wants the call: CANCEL while it rings (as soon
    /// as RFC 3261 allows: after a provisional), BYE once answered. True
    /// when the call is finished from our side (BYE queued or nothing left
    /// to end).
    pub fn hang_up(&mut self) -> bool {
        match self.phase {
            Phase::Answered => {
                if let Some(d) = self.dialog.as_mut() {
                    let mut bye = d.make_request(Method::Bye, &self.via);
                    // A carrier that challenged the INVITE usually challenges
                    // the BYE too: send the credentials up front.
                    if let Some(auth) = self.auth.as_mut() {
                        auth.authorize_again(&mut bye);
                    }
                    self.bye = Some(bye.clone());
                    self.out.push_back(Send::Request(Box::new(bye)));
                }
                self.phase = Phase::Ended;
                true
            }
            Phase::Calling => {
                let sent = self.provisional;
                if sent {
                    self.out.push_back(Send::Cancel);
                }
                self.phase = Phase::Cancelling { sent };
                false
            }
            Phase::Cancelling { .. } => false,
            Phase::Ended => true,
        }
    }

    /// The far end ended the call (BYE received) or the INVITE timed out:
    /// nothing more to send.
    pub fn ended_by_peer(&mut self) {
        self.phase = Phase::Ended;
    }
}

/// `RSeq` of a reliable provisional (`Require: 100rel`), if it is one.
fn reliable_rseq(resp: &Response) -> Option<u32> {
    let requires = message::header_values(resp, "Require")
        .iter()
        .flat_map(|v| message::split_header_list(v))
        .any(|t| t.trim().eq_ignore_ascii_case("100rel"));
    if !requires {
        return None;
    }
    message::header_value(resp, "RSeq").and_then(|v| v.trim().parse().ok())
}

/// The body when it is a session description.
fn sdp_body(resp: &Response) -> Option<Vec<u8>> {
    let is_sdp = message::content_type(resp)
        .is_some_and(|c| c.to_ascii_lowercase().starts_with("application/sdp"));
    (is_sdp && !resp.body.iter().all(u8::is_ascii_whitespace)).then(|| resp.body.clone())
}

fn set_cseq(req: &mut Request, seq: u32) {
    use rsip::headers::UntypedHeader;
    let method = req.method;
    for h in req.headers.iter_mut() {
        if let rsip::Header::CSeq(c) = h {
            *c = rsip::headers::CSeq::new(format!("{seq} {method}"));
        }
    }
}

#[cfg(test)]
mod tests;
