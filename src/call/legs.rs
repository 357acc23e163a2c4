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
use crate::browser::leg::BrowserLeg;
use crate::media::{self, MediaEvent};
use crate::outbound::{DialSpec, LegEvent, OutboundLeg};
use crate::store::Cdr;

/// One device ringing (or answered) for this caller: an agent may have two
/// (`ring = "both"`: the SIP phone and the browser; the first to answer
/// takes the call and the other stops ringing).
pub(super) struct AgentLeg {
    pub(super) agent: String,
    pub(super) leg: Device,
}

/// An agent leg's kind.
pub(super) enum Device {
    /// An INVITE to the registered SIP phone (both boxed: a call holds a
    /// few of these, and a SIP leg's state is four times a browser leg's).
    Phone(Box<OutboundLeg>),
    /// The agent page's browser phone.
    Browser(Box<BrowserLeg>),
}

impl Device {
    pub(super) fn call_id(&self) -> &str {
        match self {
            Device::Phone(l) => &l.call_id,
            Device::Browser(l) => &l.id,
        }
    }

    pub(super) fn stream(&self) -> Option<&media::Stream> {
        match self {
            Device::Phone(l) => l.stream.as_ref(),
            Device::Browser(l) => l.stream.as_ref(),
        }
    }

    pub(super) fn is_ringing(&self) -> bool {
        match self {
            Device::Phone(l) => l.is_ringing(),
            Device::Browser(l) => l.is_ringing(),
        }
    }

    fn started_at(&self) -> chrono::DateTime<Utc> {
        match self {
            Device::Phone(l) => l.started_at,
            Device::Browser(l) => l.started_at,
        }
    }

    fn answered_at(&self) -> Option<chrono::DateTime<Utc>> {
        match self {
            Device::Phone(l) => l.answered_at,
            Device::Browser(l) => l.answered_at,
        }
    }

    /// CANCEL or BYE a phone, stop a browser ringing or hang it up. True
    /// when the leg is finished from our side.
    fn hang_up(&mut self, endpoint: &crate::endpoint::EndpointHandle) -> bool {
        match self {
            Device::Phone(l) => l.hang_up(endpoint),
            Device::Browser(l) => {
                if let Some(s) = &l.stream {
                    s.unbridge();
                }
                l.hang_up();
                true
            }
        }
    }

    fn as_phone(&self) -> Option<&OutboundLeg> {
        match self {
            Device::Phone(l) => Some(l.as_ref()),
            Device::Browser(_) => None,
        }
    }
}

impl Call {
    pub(super) fn leg_input(&mut self, agent: String, event: CoreLeg) {
        if matches!(event, CoreLeg::HungUp | CoreLeg::RtpTimeout)
            && self.core.bridged_agent() == Some(agent.as_str())
        {
            // The agent is gone: the caller's stream stops relaying to it
            // and plays again (a survey question, or the end).
            self.stop_recording();
            self.stream.unbridge();
        }
        self.core.handle(Input::Leg { agent, event }, Now::system());
    }

    /// Ring `agent`'s devices (its offer says which), with the caller's
    /// context (`X-Ringback-*` headers on a phone, the same facts in the
    /// browser's ring frame). Returns the core's input when nothing could
    /// even be rung.
    pub(super) async fn ring_agent(&mut self, agent: String) -> Option<Input> {
        let Some(devices) = self.offered.take() else {
            tracing::warn!(%agent, "no devices for the agent offered");
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
                .count_calls_since(&self.cdr.caller, self.cdr.customer_key.as_deref(), since)
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
        if let Some(binding) = devices.phone {
            let spec = DialSpec {
                from_user: self.cdr.caller.clone(),
                from_display: Some(self.caller_display()),
                target: binding.contact.clone(),
                dest: binding.source,
                transport: binding.transport,
                headers: headers.clone(),
                // Offer the caller's codec first: no transcoding when the phone agrees.
                prefer: self.caller_codec,
                // Agents' phones authenticate to us, not the other way round.
                auth: None,
                inband_dtmf: false,
                srtp: crate::outbound::agent_srtp(&self.ctx.legs.config, &agent),
            };
            match OutboundLeg::dial(&self.ctx, &self.endpoint, &self.call_id, spec) {
                Ok(leg) => {
                    tracing::info!(%agent, dest = %binding.source, "ringing agent");
                    self.legs.push(AgentLeg {
                        agent: agent.clone(),
                        leg: Device::Phone(Box::new(leg)),
                    });
                }
                Err(e) => tracing::warn!(%agent, error = %e, "cannot ring agent's phone"),
            }
        }
        if devices.browser {
            let owner = self.browser_events().tx.clone();
            let legs = &self.ctx.legs;
            match BrowserLeg::ring(
                &legs.phones,
                &legs.media,
                legs.config.advertised_ip(),
                &agent,
                headers,
                self.caller_codec,
                owner,
            ) {
                Ok(leg) => {
                    tracing::info!(%agent, leg = %leg.id, "ringing agent's browser");
                    self.legs.push(AgentLeg {
                        agent: agent.clone(),
                        leg: Device::Browser(Box::new(leg)),
                    });
                }
                Err(e) => tracing::warn!(%agent, error = %e, "cannot ring agent's browser"),
            }
        }
        if self.legs.iter().any(|l| l.agent == agent) {
            None
        } else {
            Some(Input::Leg {
                agent,
                event: CoreLeg::DialFailed,
            })
        }
    }

    /// CANCEL a ringing leg, BYE an answered one (every device of `agent`).
    pub(super) fn drop_leg(&mut self, agent: &str) {
        let mut i = 0;
        while i < self.legs.len() {
            if self.legs[i].agent == agent && self.legs[i].leg.hang_up(&self.endpoint) {
                self.forget_leg(i, Disposition::Completed, HangupBy::Ringback);
            } else {
                i += 1;
            }
        }
    }

    /// The leg at `i` answered: the agent's other device stops ringing,
    /// and the core hears of the answer.
    pub(super) fn leg_answered(&mut self, i: usize) {
        let agent = self.legs[i].agent.clone();
        let winner = self.legs[i].leg.call_id().to_string();
        let mut j = 0;
        while j < self.legs.len() {
            let l = &mut self.legs[j];
            if l.agent == agent && l.leg.call_id() != winner && l.leg.hang_up(&self.endpoint) {
                self.forget_leg(j, Disposition::NotAnswered, HangupBy::Ringback);
            } else {
                j += 1;
            }
        }
        self.leg_input(agent, CoreLeg::Answered);
    }

    /// A device of `agent` failed (`event`): the core hears of it only when
    /// no other device of the agent still rings.
    pub(super) fn device_failed(&mut self, agent: String, event: CoreLeg) {
        if !self.legs.iter().any(|l| l.agent == agent) {
            self.leg_input(agent, event);
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
            .and_then(|l| l.leg.stream())
        {
            Some(agent_stream) => {
                media::bridge(&self.stream, agent_stream);
                self.start_recording(agent);
            }
            None => tracing::warn!(agent, "agent leg has no media to bridge"),
        }
    }

    /// Remove a leg and write its call record; `hangup_by`: `agent` (its
    /// phone refused or hung up) or `ringback` (ringback cancelled or ended
    /// it: the caller left, another agent won, the ring timeout).
    pub(super) fn forget_leg(
        &mut self,
        i: usize,
        disposition: Disposition,
        hangup_by: HangupBy,
    ) -> AgentLeg {
        let l = self.legs.remove(i);
        self.end_leg_record(&l, disposition, hangup_by);
        l
    }

    /// Route a response for one of our agent legs. Returns true if it was one.
    pub(super) fn on_leg_response(&mut self, resp: &rsip::Response) -> bool {
        let call_id = message::call_id(resp).unwrap_or_default();
        let Some(i) = self.legs.iter().position(|l| l.leg.call_id() == call_id) else {
            // A leg we already let go of (e.g. the 487 after our CANCEL).
            return call_id != self.call_id;
        };
        // Still wanted: not yet cancelled or answered by us.
        let wanted = self.legs[i].leg.is_ringing();
        let media = self.leg_media.clone();
        let Device::Phone(leg) = &mut self.legs[i].leg else {
            return true;
        };
        let event = leg.on_response(&self.ctx, &self.endpoint, resp, media);
        let agent = self.legs[i].agent.clone();
        match event {
            // The caller keeps hearing the queue, not the agent phone's tones.
            LegEvent::Progress | LegEvent::EarlyMedia => {}
            LegEvent::Answered => self.leg_answered(i),
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
                    self.device_failed(agent, CoreLeg::Failed(code));
                }
            }
        }
        true
    }

    /// A media event of an agent leg: an RTP timeout means the phone
    /// vanished without a BYE.
    pub(super) fn on_leg_media(&mut self, ev: MediaEvent) {
        if ev != MediaEvent::RtpTimeout || self.on_hop_media_lost() {
            return;
        }
        if let Some(agent) = self.core.bridged_agent().map(str::to_string) {
            self.leg_input(agent, CoreLeg::RtpTimeout);
        }
    }

    /// A client transaction timed out: if it was an agent's INVITE, the
    /// agent did not answer.
    pub(super) fn on_leg_timeout(&mut self, key: &TransactionKey) -> bool {
        let Some(i) = self
            .legs
            .iter()
            .position(|l| l.leg.as_phone().is_some_and(|p| p.owns(key)))
        else {
            return false;
        };
        let wanted = self.legs[i].leg.is_ringing();
        let l = self.forget_leg(i, Disposition::NotAnswered, HangupBy::Ringback);
        if wanted {
            self.device_failed(l.agent, CoreLeg::TimedOut);
        }
        true
    }

    /// An in-dialog request on an agent leg (BYE, re-INVITE, INFO). False
    /// when the Call-ID is none of ours.
    pub(super) fn on_leg_request(&mut self, key: TransactionKey, req: &rsip::Request) -> bool {
        let call_id = message::call_id(req).unwrap_or_default();
        let Some(i) = self
            .legs
            .iter()
            .position(|l| l.leg.as_phone().is_some_and(|p| p.call_id == call_id))
        else {
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
                if let Device::Phone(leg) = &mut self.legs[i].leg {
                    leg.on_reinvite(&self.ctx, &self.endpoint, key, req);
                }
            }
            _ => self.respond(key, req, 200),
        }
        true
    }

    /// Write the agent leg's call record.
    fn end_leg_record(&self, l: &AgentLeg, disposition: Disposition, hangup_by: HangupBy) {
        let call_id = l.leg.call_id();
        self.ctx.cdr.write(Cdr {
            call_id: call_id.to_string(),
            leg: "agent".into(),
            caller: self.cdr.caller.clone(),
            dialed: l.agent.clone(),
            dialplan: self.cdr.dialplan.clone(),
            dialplan_version: self.cdr.dialplan_version.clone(),
            started_at: l.leg.started_at(),
            answered_at: l.leg.answered_at(),
            ended_at: Some(Utc::now()),
            path: self.core.path(),
            digits: self.core.digits(),
            vars: format!("{{\"inbound_call_id\":{:?}}}", self.call_id),
            disposition: disposition.as_str().into(),
            hangup_by: Some(hangup_by.as_str().into()),
            queue: self.core.queue().map(str::to_string),
            sip_code: None,
            parent_call_id: Some(self.call_id.clone()),
            survey: None,
            customer_key: self.cdr.customer_key.clone(),
        });
        self.endpoint.send(EndpointCmd::CallEnded {
            call_id: call_id.to_string(),
        });
    }
}

use crate::endpoint::EndpointCmd;
