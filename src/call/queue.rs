//! A call waiting in a queue and the agent legs ringback places for it
//! (B2BUA): ring, cancel, answer, bridge, tear down.
//!
//! Who gets rung and when is decided by the ACD engine; this module only
//! turns its notices into SIP and media, and reports what the agent's phone
//! did. Invariants kept here: every agent leg is either ringing (CANCELled
//! when no longer wanted), answered (BYE when no longer wanted) or gone, and
//! a failing agent never ends the caller's call.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use ringback_acd::{AgentId, CallId, EndedBy, Input, OfferFailure, WaitingCall};
use ringback_dialplan::Event;
use ringback_sip::message;
use ringback_sip::transaction::TransactionKey;

use super::{Call, Ending, Phase};
use crate::acd_task::{AcdCmd, QueueNotice};
use crate::endpoint::EndpointCmd;
use crate::media;
use crate::outbound::{DialSpec, LegEvent, OutboundLeg};
use crate::registrar::Binding;
use crate::store::Cdr;

/// One INVITE to an agent's phone for this caller.
pub(super) struct AgentLeg {
    pub(super) agent: String,
    pub(super) leg: OutboundLeg,
}

impl Call {
    /// Hand the caller to the ACD. `entered_at` is kept across overflow so a
    /// caller never loses their place.
    pub(super) fn enter_queue(&mut self, queue: String, max_wait: Option<Duration>, priority: i32) {
        let qcfg = self
            .ctx
            .config
            .queues
            .get(&queue)
            .cloned()
            .unwrap_or_default();
        tracing::info!(%queue, "caller queued");
        self.timer = None;
        self.queue = Some(queue.clone());
        let entered = *self.entered_queue_at.get_or_insert_with(Instant::now);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.queue_rx = Some(rx);
        let mut waiting = WaitingCall::new(
            self.call_id.as_str(),
            queue.as_str(),
            self.cdr.caller.as_str(),
            entered,
        );
        waiting.priority = priority;
        waiting.max_wait = max_wait;
        self.ctx.acd.send(AcdCmd::Input {
            input: Input::Enqueue(waiting),
            notify: Some(tx),
        });
        self.token += 1;
        let entry = qcfg
            .entry_prompt
            .as_deref()
            .map(|p| self.resolve_prompts(&[p.to_string()]))
            .unwrap_or_default();
        let interlude = if entry.is_empty() {
            self.play_hold_music(&qcfg.music_on_hold);
            None
        } else {
            self.stream.play(entry, false, self.token);
            Some(self.token)
        };
        let announce = (qcfg.announce_every_secs > 0)
            .then(|| Instant::now() + Duration::from_secs(qcfg.announce_every_secs));
        self.phase = Phase::Queued {
            queue,
            interlude,
            next_announce: announce,
        };
    }

    pub(super) fn play_hold_music(&mut self, name: &str) {
        let mut moh = self.resolve_prompts(&[name.to_string()]);
        if moh.is_empty() {
            moh.push(Arc::clone(&self.ctx.fallback_hold_music));
        }
        self.token += 1;
        self.stream.play(moh, true, self.token);
    }

    /// An interlude (entry prompt, announcement) ended: back to the music.
    pub(super) fn resume_hold_music(&mut self) {
        if let Phase::Queued {
            queue, interlude, ..
        } = &mut self.phase
        {
            *interlude = None;
            let moh = self
                .ctx
                .config
                .queues
                .get(queue.as_str())
                .map(|q| q.music_on_hold.clone())
                .unwrap_or_else(|| "hold-music".into());
            self.play_hold_music(&moh);
        }
    }

    /// "You are caller number 3. Your estimated waiting time is 4 minutes."
    pub(super) async fn announce_position(&mut self) {
        let Some((position, ewt)) = self.ctx.acd.position(&self.call_id).await else {
            return;
        };
        let minutes = ewt.as_secs().div_ceil(60).max(1);
        let mut names = vec!["you-are-caller".to_string()];
        names.extend(number_prompts(position as u64));
        names.push("estimated-wait".into());
        names.extend(number_prompts(minutes));
        names.push("minutes".into());
        let prompts = self.resolve_prompts(&names);
        self.token += 1;
        let token = self.token;
        self.stream.play(prompts, false, token);
        if let Phase::Queued {
            interlude,
            next_announce,
            queue,
        } = &mut self.phase
        {
            *interlude = Some(token);
            let every = self
                .ctx
                .config
                .queues
                .get(queue.as_str())
                .map_or(0, |q| q.announce_every_secs);
            *next_announce = (every > 0).then(|| Instant::now() + Duration::from_secs(every));
        }
        tracing::debug!(position, minutes, "position announced");
    }

    /// Handle what the ACD says about this call.
    pub(super) async fn on_queue_notice(&mut self, notice: QueueNotice) -> Option<Ending> {
        match notice {
            QueueNotice::Offer { agent, binding } => self.ring_agent(agent, binding).await,
            QueueNotice::CancelOffer { agent } => self.drop_leg(&agent),
            QueueNotice::Connected { agent } => return self.connect(&agent),
            QueueNotice::Leave { overflow, why } => {
                tracing::info!(why, ?overflow, "leaving the queue");
                self.queue_rx = None;
                self.stream.stop();
                let queue = self.queue.clone().unwrap_or_default();
                match overflow {
                    Some(next) if self.ctx.config.queues.contains_key(&next) => {
                        self.enter_queue(next, None, 0);
                    }
                    _ => {
                        let prompt = self
                            .ctx
                            .config
                            .queues
                            .get(&queue)
                            .and_then(|q| q.overflow_prompt.clone());
                        self.phase = Phase::Ivr;
                        match prompt
                            .map(|p| self.resolve_prompts(&[p]))
                            .filter(|p| !p.is_empty())
                        {
                            Some(p) => {
                                self.token += 1;
                                self.overflow_token = Some(self.token);
                                self.stream.play(p, false, self.token);
                            }
                            None => self.pending.push_back(Event::QueueExited),
                        }
                    }
                }
            }
        }
        None
    }

    async fn ring_agent(&mut self, agent: String, binding: Binding) {
        if self.repeat_calls.is_none() {
            let since = Utc::now() - chrono::Duration::days(7);
            let n = self
                .ctx
                .store
                .count_calls_since(&self.cdr.caller, since)
                .await
                .unwrap_or(0);
            // This call is already recorded; count the earlier ones.
            self.repeat_calls = Some((n - 1).max(0));
        }
        let waited = self.entered_queue_at.map_or(0, |t| t.elapsed().as_secs());
        let mut headers = vec![
            ("X-Ringback-Caller".to_string(), self.cdr.caller.clone()),
            ("X-Ringback-Path".to_string(), self.context_path()),
            ("X-Ringback-Digits".to_string(), self.context_digits()),
            ("X-Ringback-Waited".to_string(), waited.to_string()),
            (
                "X-Ringback-Repeat".to_string(),
                self.repeat_calls.unwrap_or(0).to_string(),
            ),
            (
                "X-Ringback-Queue".to_string(),
                self.queue.clone().unwrap_or_default(),
            ),
            ("X-Ringback-Call-Id".to_string(), self.call_id.clone()),
        ];
        for (k, v) in self.session.vars() {
            headers.push((format!("X-Ringback-Var-{k}"), v.clone()));
        }
        let spec = DialSpec {
            from_user: self.cdr.caller.clone(),
            from_display: Some(self.cdr.caller.clone()),
            target: binding.contact.clone(),
            dest: binding.source,
            transport: binding.transport,
            headers,
            // Offer the caller's codec first: no transcoding when the phone agrees.
            prefer: self.offer_answer.1.codec,
        };
        match OutboundLeg::dial(&self.ctx, &self.endpoint, &self.call_id, spec) {
            Ok(leg) => {
                tracing::info!(%agent, dest = %binding.source, "ringing agent");
                self.legs.push(AgentLeg { agent, leg });
            }
            Err(e) => {
                tracing::warn!(%agent, error = %e, "cannot ring agent");
                self.report_failure(&agent, OfferFailure::Error);
            }
        }
    }

    fn report_failure(&self, agent: &str, reason: OfferFailure) {
        self.ctx.acd.input(Input::OfferFailed {
            call: CallId::from(self.call_id.as_str()),
            agent: AgentId::from(agent),
            reason,
        });
    }

    fn context_path(&self) -> String {
        let here = self.session.path().join(" > ");
        if self.cdr.path.is_empty() {
            here
        } else {
            format!("{} >> {here}", self.cdr.path)
        }
    }

    fn context_digits(&self) -> String {
        format!("{}{}", self.cdr.digits, self.session.digits())
    }

    /// The ACD no longer wants this agent rung (timeout, another agent won,
    /// the agent paused): CANCEL, or BYE if it already answered.
    fn drop_leg(&mut self, agent: &str) {
        if let Some(i) = self.legs.iter().position(|l| l.agent == agent) {
            if self.legs[i].leg.hang_up(&self.ctx, &self.endpoint) {
                self.forget_leg(i, "completed");
            }
        }
    }

    /// Remove a leg and write its call record.
    fn forget_leg(&mut self, i: usize, disposition: &str) -> AgentLeg {
        let l = self.legs.remove(i);
        self.end_leg_record(
            &l.leg.call_id,
            &l.agent,
            l.leg.started_at,
            l.leg.answered_at,
            disposition,
        );
        l
    }

    /// Every leg goes: ringing ones are cancelled, answered ones get BYE.
    pub(super) fn drop_all_legs(&mut self) {
        let agents: Vec<String> = self.legs.iter().map(|l| l.agent.clone()).collect();
        for a in agents {
            self.drop_leg(&a);
        }
    }

    fn connect(&mut self, agent: &str) -> Option<Ending> {
        let Some(leg) = self.legs.iter().find(|l| l.agent == agent) else {
            tracing::warn!(agent, "ACD connected an agent without a leg");
            return None;
        };
        let agent_stream = leg.leg.stream.as_ref()?;
        media::bridge(&self.stream, agent_stream);
        tracing::info!(agent, "caller bridged to agent");
        self.queue_rx = None;
        self.timer = None;
        self.phase = Phase::Bridged {
            agent: agent.to_string(),
        };
        None
    }

    /// Route a response for one of our agent legs. Returns true if it was one.
    pub(super) fn on_leg_response(&mut self, key: TransactionKey, resp: rsip::Response) -> bool {
        let call_id = message::call_id(&resp).unwrap_or_default();
        let Some(i) = self.legs.iter().position(|l| l.leg.call_id == call_id) else {
            // A leg we already let go of (e.g. the 487 after our CANCEL).
            return call_id != self.call_id;
        };
        let wanted = self.legs[i].leg.is_ringing();
        // Agent legs' own DTMF is not interpreted (the caller's is).
        let sink = tokio::sync::mpsc::unbounded_channel().0;
        let event = self.legs[i]
            .leg
            .on_response(&self.ctx, &self.endpoint, key, &resp, sink);
        let agent = self.legs[i].agent.clone();
        match event {
            LegEvent::Progress => {}
            LegEvent::Answered if matches!(self.phase, Phase::Queued { .. }) => {
                tracing::info!(%agent, "agent answered");
                self.ctx.acd.input(Input::OfferAnswered {
                    call: CallId::from(self.call_id.as_str()),
                    agent: AgentId::from(agent.as_str()),
                });
            }
            LegEvent::Answered => self.drop_leg(&agent),
            LegEvent::AnsweredTooLate => {
                self.forget_leg(i, "completed");
            }
            LegEvent::Failed(code) => {
                self.forget_leg(i, "not_answered");
                if wanted {
                    let reason = match code {
                        486 | 600 => OfferFailure::Busy,
                        603 => OfferFailure::Rejected,
                        408 | 480 | 487 => OfferFailure::NoAnswer,
                        _ => OfferFailure::Error,
                    };
                    tracing::info!(%agent, code, "agent did not take the call");
                    self.report_failure(&agent, reason);
                }
            }
        }
        true
    }

    /// A client transaction timed out: if it was an agent's INVITE, the
    /// agent did not answer.
    pub(super) fn on_leg_timeout(&mut self, key: &TransactionKey) -> bool {
        let Some(i) = self.legs.iter().position(|l| l.leg.owns(key)) else {
            return false;
        };
        let wanted = self.legs[i].leg.is_ringing();
        let l = self.forget_leg(i, "not_answered");
        if wanted {
            self.report_failure(&l.agent, OfferFailure::NoAnswer);
        }
        true
    }

    /// An in-dialog request on an agent leg (BYE, re-INVITE, INFO).
    pub(super) fn on_leg_request(
        &mut self,
        key: TransactionKey,
        req: rsip::Request,
    ) -> Option<Option<Ending>> {
        let call_id = message::call_id(&req).unwrap_or_default();
        let i = self.legs.iter().position(|l| l.leg.call_id == call_id)?;
        match req.method {
            rsip::Method::Bye => {
                self.respond(key, &req, 200);
                let leg = self.forget_leg(i, "completed");
                let bridged =
                    matches!(&self.phase, Phase::Bridged { agent } if *agent == leg.agent);
                if bridged {
                    self.ctx.acd.input(Input::CallEnded {
                        call: CallId::from(self.call_id.as_str()),
                        agent: AgentId::from(leg.agent.as_str()),
                        by: EndedBy::Agent,
                    });
                    return Some(Some(Ending {
                        disposition: "completed",
                        hangup_by: "agent",
                        send_bye: true,
                    }));
                }
                // An agent hung up before being bridged: the caller keeps waiting.
                self.report_failure(&leg.agent, OfferFailure::Rejected);
                Some(None)
            }
            rsip::Method::Invite => {
                // Hold/resume from the agent's phone.
                self.legs[i]
                    .leg
                    .on_reinvite(&self.ctx, &self.endpoint, key, &req);
                Some(None)
            }
            _ => {
                self.respond(key, &req, 200);
                Some(None)
            }
        }
    }

    /// Write the agent leg's call record.
    fn end_leg_record(
        &self,
        call_id: &str,
        agent: &str,
        started: chrono::DateTime<Utc>,
        answered: Option<chrono::DateTime<Utc>>,
        disposition: &str,
    ) {
        self.ctx.cdr.write(Cdr {
            call_id: call_id.to_string(),
            leg: "agent".into(),
            caller: self.cdr.caller.clone(),
            dialed: agent.to_string(),
            dialplan: self.cdr.dialplan.clone(),
            dialplan_version: self.cdr.dialplan_version.clone(),
            started_at: started,
            answered_at: answered,
            ended_at: Some(Utc::now()),
            path: self.context_path(),
            digits: self.context_digits(),
            vars: format!("{{\"inbound_call_id\":{:?}}}", self.call_id),
            disposition: disposition.into(),
            hangup_by: None,
            queue: self.queue.clone(),
            sip_code: None,
        });
        self.endpoint.send(EndpointCmd::CallEnded {
            call_id: call_id.to_string(),
        });
    }
}

/// Prompt names that say a number digit by digit ("1", "2" → digit-1, digit-2).
pub(super) fn number_prompts(n: u64) -> Vec<String> {
    n.to_string()
        .chars()
        .map(|c| format!("digit-{c}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_said_digit_by_digit() {
        assert_eq!(number_prompts(3), vec!["digit-3"]);
        assert_eq!(number_prompts(12), vec!["digit-1", "digit-2"]);
    }
}
