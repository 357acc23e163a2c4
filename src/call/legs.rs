//! The agent legs ringback places for a queued caller (B2BUA): their SIP
//! and media mechanics and their call records. What a leg's answer means
//! for the call (report to the ACD, bridge, end) is the core's decision;
//! this module only turns the phone's responses into
//! [`ringback_call::inbound::LegEvent`]s and carries out ring, drop and
//! bridge.
//!
//! Invariant kept here: every agent leg is either ringing (CANCELled when
//! no longer wanted), answered (BYE when no longer wanted) or gone, and its
//! record is written exactly once, when it goes.

use chrono::Utc;
use ringback_call::inbound::{Input, LegEvent as CoreLeg};
use ringback_call::{Disposition, HangupBy};
use ringback_sansio::{Core, Now};
use ringback_sip::message;
use ringback_sip::transaction::TransactionKey;

use super::Call;
use crate::media::{self, MediaEvent};
use crate::outbound::{DialSpec, LegEvent, OutboundLeg};
use crate::store::Cdr;

/// One INVITE to an agent's phone for this caller.
pub(super) struct AgentLeg {
    pub(super) agent: String,
    pub(super) leg: OutboundLeg,
}

impl Call {
    fn leg_input(&mut self, agent: String, event: CoreLeg) {
        self.core.handle(Input::Leg { agent, event }, Now::system());
    }

    /// Ring `agent` at the binding its offer came with, with the caller's
    /// context in `X-Ringback-*` headers. Returns the core's input when the
    /// INVITE cannot even be sent.
    pub(super) async fn ring_agent(&mut self, agent: String) -> Option<Input> {
        let Some(binding) = self.offered.take() else {
            tracing::warn!(%agent, "no binding for the agent offered");
            return Some(Input::Leg {
                agent,
                event: CoreLeg::DialFailed,
            });
        };
        if self.repeat_calls.is_none() {
            let since = Utc::now() - chrono::Duration::days(7);
            let n = self
                .ctx
                .store
                .count_calls_since(&self.cdr.caller, since)
                .await
                .unwrap_or(0);
            // This call is already recorded; count the earlier ones.
            let repeat = (n - 1).max(0);
            self.repeat_calls = Some(repeat);
            self.ctx
                .live
                .update(&self.call_id, |c| c.repeat = Some(repeat));
        }
        let headers = self.context_headers();
        let spec = DialSpec {
            from_user: self.cdr.caller.clone(),
            from_display: Some(self.caller_display()),
            target: binding.contact.clone(),
            dest: binding.source,
            transport: binding.transport,
            headers,
            // Offer the caller's codec first: no transcoding when the phone agrees.
            prefer: self.offer_answer.1.codec,
            // Agents' phones authenticate to us, not the other way round.
            auth: None,
            inband_dtmf: false,
            srtp: crate::outbound::agent_srtp(&self.ctx.legs.config, &agent),
        };
        match OutboundLeg::dial(&self.ctx, &self.endpoint, &self.call_id, spec) {
            Ok(leg) => {
                tracing::info!(%agent, dest = %binding.source, "ringing agent");
                self.legs.push(AgentLeg { agent, leg });
                None
            }
            Err(e) => {
                tracing::warn!(%agent, error = %e, "cannot ring agent");
                Some(Input::Leg {
                    agent,
                    event: CoreLeg::DialFailed,
                })
            }
        }
    }

    /// CANCEL a ringing leg, BYE an answered one.
    pub(super) fn drop_leg(&mut self, agent: &str) {
        if let Some(i) = self.legs.iter().position(|l| l.agent == agent) {
            if self.legs[i].leg.hang_up(&self.endpoint) {
                self.forget_leg(i, Disposition::Completed, HangupBy::Ringback);
            }
        }
    }

    /// Every leg goes: ringing ones are cancelled, answered ones get BYE.
    pub(super) fn drop_all_legs(&mut self) {
        let agents: Vec<String> = self.legs.iter().map(|l| l.agent.clone()).collect();
        for a in agents {
            self.drop_leg(&a);
        }
    }

    pub(super) fn bridge(&mut self, agent: &str) {
        match self
            .legs
            .iter()
            .find(|l| l.agent == agent)
            .and_then(|l| l.leg.stream.as_ref())
        {
            Some(agent_stream) => media::bridge(&self.stream, agent_stream),
            None => tracing::warn!(agent, "agent leg has no media to bridge"),
        }
    }

    /// Remove a leg and write its call record; `hangup_by`: `agent` (its
    /// phone refused or hung up) or `ringback` (ringback cancelled or ended
    /// it: the caller left, another agent won, the ring timeout).
    fn forget_leg(&mut self, i: usize, disposition: Disposition, hangup_by: HangupBy) -> AgentLeg {
        let l = self.legs.remove(i);
        self.end_leg_record(&l, disposition, hangup_by);
        l
    }

    /// Route a response for one of our agent legs. Returns true if it was one.
    pub(super) fn on_leg_response(&mut self, resp: &rsip::Response) -> bool {
        let call_id = message::call_id(resp).unwrap_or_default();
        let Some(i) = self.legs.iter().position(|l| l.leg.call_id == call_id) else {
            // A leg we already let go of (e.g. the 487 after our CANCEL).
            return call_id != self.call_id;
        };
        // Still wanted: not yet cancelled or answered by us.
        let wanted = self.legs[i].leg.is_ringing();
        let event =
            self.legs[i]
                .leg
                .on_response(&self.ctx, &self.endpoint, resp, self.leg_media.clone());
        let agent = self.legs[i].agent.clone();
        match event {
            // The caller keeps hearing the queue, not the agent phone's tones.
            LegEvent::Progress | LegEvent::EarlyMedia => {}
            LegEvent::Answered => self.leg_input(agent, CoreLeg::Answered),
            LegEvent::AnsweredTooLate => {
                self.forget_leg(i, Disposition::Completed, HangupBy::Ringback);
            }
            LegEvent::Failed(code) => {
                // 487: the phone confirms our CANCEL; anything else is its answer.
                let by = if code == 487 {
                    HangupBy::Ringback
                } else {
                    HangupBy::Agent
                };
                self.forget_leg(i, Disposition::NotAnswered, by);
                if wanted {
                    self.leg_input(agent, CoreLeg::Failed(code));
                }
            }
        }
        true
    }

    /// A media event of an agent leg: an RTP timeout means the phone
    /// vanished without a BYE.
    pub(super) fn on_leg_media(&mut self, ev: MediaEvent) {
        if ev != MediaEvent::RtpTimeout {
            return;
        }
        if let Some(agent) = self.core.bridged_agent().map(str::to_string) {
            self.leg_input(agent, CoreLeg::RtpTimeout);
        }
    }

    /// A client transaction timed out: if it was an agent's INVITE, the
    /// agent did not answer.
    pub(super) fn on_leg_timeout(&mut self, key: &TransactionKey) -> bool {
        let Some(i) = self.legs.iter().position(|l| l.leg.owns(key)) else {
            return false;
        };
        let wanted = self.legs[i].leg.is_ringing();
        let l = self.forget_leg(i, Disposition::NotAnswered, HangupBy::Ringback);
        if wanted {
            self.leg_input(l.agent, CoreLeg::TimedOut);
        }
        true
    }

    /// An in-dialog request on an agent leg (BYE, re-INVITE, INFO). False
    /// when the Call-ID is none of ours.
    pub(super) fn on_leg_request(&mut self, key: TransactionKey, req: &rsip::Request) -> bool {
        let call_id = message::call_id(req).unwrap_or_default();
        let Some(i) = self.legs.iter().position(|l| l.leg.call_id == call_id) else {
            return false;
        };
        match req.method {
            rsip::Method::Bye => {
                self.respond(key, req, 200);
                let leg = self.forget_leg(i, Disposition::Completed, HangupBy::Agent);
                self.leg_input(leg.agent, CoreLeg::HungUp);
            }
            rsip::Method::Invite | rsip::Method::Update => {
                // Hold/resume, a new address or a session refresh from the
                // agent's phone.
                self.legs[i]
                    .leg
                    .on_reinvite(&self.ctx, &self.endpoint, key, req);
            }
            _ => self.respond(key, req, 200),
        }
        true
    }

    /// Write the agent leg's call record.
    fn end_leg_record(&self, l: &AgentLeg, disposition: Disposition, hangup_by: HangupBy) {
        let call_id = l.leg.call_id.as_str();
        self.ctx.cdr.write(Cdr {
            call_id: call_id.to_string(),
            leg: "agent".into(),
            caller: self.cdr.caller.clone(),
            dialed: l.agent.clone(),
            dialplan: self.cdr.dialplan.clone(),
            dialplan_version: self.cdr.dialplan_version.clone(),
            started_at: l.leg.started_at,
            answered_at: l.leg.answered_at,
            ended_at: Some(Utc::now()),
            path: self.core.path(),
            digits: self.core.digits(),
            vars: format!("{{\"inbound_call_id\":{:?}}}", self.call_id),
            disposition: disposition.as_str().into(),
            hangup_by: Some(hangup_by.as_str().into()),
            queue: self.core.queue().map(str::to_string),
            sip_code: None,
            parent_call_id: Some(self.call_id.clone()),
        });
        self.endpoint.send(EndpointCmd::CallEnded {
            call_id: call_id.to_string(),
        });
    }
}

use crate::endpoint::EndpointCmd;
