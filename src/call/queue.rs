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

use super::{number_prompts, Call, Ending, Phase};
use crate::acd_task::{AcdCmd, QueueNotice};
use crate::endpoint::EndpointCmd;
use crate::media::{self, MediaEvent};
use crate::outbound::{DialSpec, LegEvent, OutboundLeg};
use crate::registrar::Binding;
use crate::store::Cdr;

/// A callback question the queued caller is answering.
pub(super) enum CallbackFlow {
    /// "Press 1 for this number, or enter another followed by #".
    AskNumber {
        /// Digits typed so far.
        digits: String,
        /// Give up (or take what was typed) at this time.
        deadline: Instant,
    },
    /// "You already have a callback: 1 keeps it, 2 cancels it".
    Pending {
        /// That callback.
        id: String,
        /// Stop asking at this time.
        deadline: Instant,
    },
}

impl CallbackFlow {
    pub(super) fn deadline(&self) -> Option<Instant> {
        match self {
            CallbackFlow::AskNumber { deadline, .. } | CallbackFlow::Pending { deadline, .. } => {
                Some(*deadline)
            }
        }
    }
}

/// Callback work that needs the store (run by the event loop).
pub(super) enum CallbackOp {
    /// Is there a live callback for this caller in this queue?
    CheckPending,
    /// Request a callback to this number.
    Request(String),
    /// Cancel this callback.
    Cancel(String),
    /// Offer a callback, unless the queue already holds its maximum.
    Offer,
}

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
        if self.entered_queue_at.is_none() {
            self.ctx.live.queued(
                &self.call_id,
                crate::live::CallContext {
                    caller: self.cdr.caller.clone(),
                    path: self.context_path(),
                    digits: self.context_digits(),
                    entered_at: Utc::now(),
                    repeat: self.repeat_calls,
                    callback_id: None,
                    callback_context: None,
                },
            );
        }
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
        self.offer_at = self
            .callback_offer
            .as_ref()
            .map(|o| Instant::now() + o.after.max(Duration::from_secs(1)));
        if self.cb_op.is_none() {
            self.cb_op = Some(CallbackOp::CheckPending);
        }
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
            let repeat = (n - 1).max(0);
            self.repeat_calls = Some(repeat);
            self.ctx
                .live
                .update(&self.call_id, |c| c.repeat = Some(repeat));
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
            // Agents' phones authenticate to us, not the other way round.
            auth: None,
            inband_dtmf: false,
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

    /// Play a prompt instead of the music for a moment (offer, question,
    /// answer); the music resumes after it.
    fn interlude(&mut self, names: &[&str]) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let prompts = self.resolve_prompts(&names);
        self.token += 1;
        let token = self.token;
        self.stream.play(prompts, false, token);
        if let Phase::Queued { interlude, .. } = &mut self.phase {
            *interlude = Some(token);
        }
    }

    /// Queue timers: the callback offer, and callback questions timing out.
    pub(super) fn on_queue_deadline(&mut self) {
        let now = Instant::now();
        if let Some(flow) = &self.cb_flow {
            if flow.deadline().is_some_and(|d| d <= now) {
                match self.cb_flow.take() {
                    Some(CallbackFlow::AskNumber { digits, .. }) if digits.len() >= 3 => {
                        self.cb_op = Some(CallbackOp::Request(digits));
                    }
                    _ => tracing::debug!("callback question timed out; the caller keeps waiting"),
                }
            }
        }
        let idle = matches!(
            self.phase,
            Phase::Queued {
                interlude: None,
                ..
            }
        );
        if idle && self.cb_flow.is_none() && self.offer_at.is_some_and(|t| t <= now) {
            if let Some(offer) = &self.callback_offer {
                // Offer again later for callers who stay on the line.
                self.offer_at = Some(now + offer.after.max(Duration::from_secs(60)));
                self.cb_op = Some(CallbackOp::Offer);
            }
        }
    }

    /// A key pressed while waiting in the queue.
    pub(super) fn on_queue_digit(&mut self, d: char) {
        match self.cb_flow.take() {
            Some(CallbackFlow::AskNumber {
                mut digits,
                deadline,
            }) => {
                if digits.is_empty() && d == '1' {
                    self.cb_op = Some(CallbackOp::Request(self.cdr.caller.clone()));
                } else if d == '#' && digits.len() >= 3 {
                    self.cb_op = Some(CallbackOp::Request(digits));
                } else if d.is_ascii_digit() && digits.len() < 16 {
                    digits.push(d);
                    self.cb_flow = Some(CallbackFlow::AskNumber { digits, deadline });
                } else {
                    self.cb_flow = Some(CallbackFlow::AskNumber { digits, deadline });
                }
            }
            Some(CallbackFlow::Pending { id, deadline }) => match d {
                '1' => {
                    tracing::info!(%id, "caller keeps the pending callback");
                    self.leave_queue_for_callback();
                    self.confirm_and_hang_up(&["callback-confirm"]);
                }
                '2' => self.cb_op = Some(CallbackOp::Cancel(id)),
                _ => self.cb_flow = Some(CallbackFlow::Pending { id, deadline }),
            },
            None => {
                let key = self.callback_offer.as_ref().map(|o| o.key);
                if key == Some(d) {
                    tracing::info!("caller accepted the callback offer");
                    self.cb_flow = Some(CallbackFlow::AskNumber {
                        digits: String::new(),
                        deadline: Instant::now() + Duration::from_secs(20),
                    });
                    self.interlude(&["callback-number"]);
                }
            }
        }
    }

    /// Callback work that talks to the callback service.
    pub(super) async fn run_callback_op(&mut self, op: CallbackOp) {
        let Some(queue) = self.queue.clone() else {
            return;
        };
        match op {
            CallbackOp::CheckPending => {
                if let Some(cb) = self.ctx.callbacks.live_for(&self.cdr.caller, &queue).await {
                    tracing::info!(id = %cb.id, "caller already has a callback pending");
                    self.cb_flow = Some(CallbackFlow::Pending {
                        id: cb.id,
                        deadline: Instant::now() + Duration::from_secs(20),
                    });
                    self.interlude(&["callback-pending"]);
                } else if self.offer_now(&queue).await {
                    // Long wait ahead, or a zero-out nobody is free for: offer
                    // right away instead of after the usual wait.
                    self.callback_offer
                        .get_or_insert(ringback_dialplan::CallbackOffer {
                            offer: true,
                            after: Duration::from_secs(60),
                            key: '1',
                        });
                    self.offer_at = Some(Instant::now());
                }
            }
            CallbackOp::Offer => {
                let (pending, max) = self.ctx.callbacks.pending(&queue).await;
                if pending < max
                    && matches!(
                        self.phase,
                        Phase::Queued {
                            interlude: None,
                            ..
                        }
                    )
                {
                    tracing::info!("offering a callback");
                    self.interlude(&["callback-offer"]);
                } else {
                    tracing::info!(
                        pending,
                        max,
                        "no callback offer: the queue holds its maximum"
                    );
                }
            }
            CallbackOp::Cancel(id) => {
                match self
                    .ctx
                    .callbacks
                    .cancel(&id, "cancelled by the caller")
                    .await
                {
                    Ok(_) => self.interlude(&["callback-cancelled"]),
                    Err(e) => tracing::warn!(%id, error = %e.message, "cannot cancel the callback"),
                }
            }
            CallbackOp::Request(number) => {
                let waited = self
                    .entered_queue_at
                    .map_or(Duration::ZERO, |t| t.elapsed());
                let entered_at =
                    Utc::now() - chrono::Duration::from_std(waited).unwrap_or_default();
                let req = crate::callbacks::CallbackRequest {
                    queue,
                    number,
                    entered_at,
                    preferred: None,
                    context: format!(
                        "IVR path {} | digits {}",
                        self.context_path(),
                        self.context_digits()
                    ),
                    origin: ringback_callback::Origin::Ivr,
                };
                match self.ctx.callbacks.request(req).await {
                    Ok((cb, ahead)) => {
                        // Stored: now, and only now, the caller hears it.
                        tracing::info!(id = %cb.id, ahead, "callback confirmed to the caller");
                        self.leave_queue_for_callback();
                        let place = number_prompts(ahead as u64 + 1);
                        let mut names = vec!["callback-confirm", "you-are-caller"];
                        names.extend(place.iter().map(String::as_str));
                        self.confirm_and_hang_up(&names);
                    }
                    Err(r) => {
                        tracing::info!(code = %r.code, reason = %r.message, "callback refused; caller keeps waiting");
                        self.interlude(&["callback-unavailable"]);
                    }
                }
            }
        }
    }

    /// Whether the queue's settings call for an immediate callback offer:
    /// estimated wait above the threshold, or a zero-out while no agent of
    /// the queue is free.
    async fn offer_now(&self, queue: &str) -> bool {
        let Some(q) = self.ctx.config.queues.get(queue) else {
            return false;
        };
        if q.callback_offer_ewt_above_secs.is_none() && !q.callback_offer_on_zero_out {
            return false;
        }
        if let Some(limit) = q.callback_offer_ewt_above_secs {
            if let Some((_, ewt)) = self.ctx.acd.position(&self.call_id).await {
                if ewt.as_secs() > limit {
                    tracing::info!(
                        ewt = ewt.as_secs(),
                        limit,
                        "long estimated wait: offering a callback now"
                    );
                    return true;
                }
            }
        }
        if q.callback_offer_on_zero_out && self.zero_out {
            let (_, queues) = self.ctx.acd.snapshot().await;
            let free = queues
                .iter()
                .find(|s| s.name.as_str() == queue)
                .map_or(0, |s| s.available_agents);
            if free == 0 {
                tracing::info!("zero-out with no agent free: offering a callback now");
                return true;
            }
        }
        false
    }

    /// The caller becomes a callback: out of the live queue (its place is
    /// kept by the callback's original entry time), agents un-rung.
    fn leave_queue_for_callback(&mut self) {
        self.ctx
            .acd
            .input(Input::Abandon(CallId::from(self.call_id.as_str())));
        self.drop_all_legs();
        self.queue_rx = None;
        self.offer_at = None;
        self.cb_flow = None;
        self.phase = Phase::Ivr;
    }

    /// Play the confirmation, then hang up.
    fn confirm_and_hang_up(&mut self, names: &[&str]) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let prompts = self.resolve_prompts(&names);
        self.token += 1;
        self.hangup_after = Some(self.token);
        self.stream.play(prompts, false, self.token);
    }

    fn report_failure(&self, agent: &str, reason: OfferFailure) {
        self.ctx.acd.input(Input::OfferFailed {
            call: CallId::from(self.call_id.as_str()),
            agent: AgentId::from(agent),
            reason,
        });
    }

    pub(super) fn context_path(&self) -> String {
        let here = self.session.path().join(" > ");
        if self.cdr.path.is_empty() {
            here
        } else {
            format!("{} >> {here}", self.cdr.path)
        }
    }

    pub(super) fn context_digits(&self) -> String {
        format!("{}{}", self.cdr.digits, self.session.digits())
    }

    /// The ACD no longer wants this agent rung (timeout, another agent won,
    /// the agent paused): CANCEL, or BYE if it already answered.
    fn drop_leg(&mut self, agent: &str) {
        if let Some(i) = self.legs.iter().position(|l| l.agent == agent) {
            if self.legs[i].leg.hang_up(&self.endpoint) {
                self.forget_leg(i, "completed", "ringback");
            }
        }
    }

    /// Remove a leg and write its call record; `hangup_by`: `agent` (its
    /// phone refused or hung up) or `ringback` (ringback cancelled or ended
    /// it: the caller left, another agent won, the ring timeout).
    fn forget_leg(&mut self, i: usize, disposition: &str, hangup_by: &str) -> AgentLeg {
        let l = self.legs.remove(i);
        self.end_leg_record(&l, disposition, hangup_by);
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
        let waited = self.entered_queue_at.map_or(0, |t| t.elapsed().as_secs());
        self.ctx.live.answered(waited);
        self.bridged_at = Some(Instant::now());
        self.queue_rx = None;
        self.timer = None;
        self.phase = Phase::Bridged {
            agent: agent.to_string(),
        };
        None
    }

    /// Route a response for one of our agent legs. Returns true if it was one.
    pub(super) fn on_leg_response(&mut self, resp: &rsip::Response) -> bool {
        let call_id = message::call_id(resp).unwrap_or_default();
        let Some(i) = self.legs.iter().position(|l| l.leg.call_id == call_id) else {
            // A leg we already let go of (e.g. the 487 after our CANCEL).
            return call_id != self.call_id;
        };
        let wanted = self.legs[i].leg.is_ringing();
        let event =
            self.legs[i]
                .leg
                .on_response(&self.ctx, &self.endpoint, resp, self.leg_media.clone());
        let agent = self.legs[i].agent.clone();
        match event {
            // The caller keeps hearing the queue, not the agent phone's tones.
            LegEvent::Progress | LegEvent::EarlyMedia => {}
            LegEvent::Answered if matches!(self.phase, Phase::Queued { .. }) => {
                tracing::info!(%agent, "agent answered");
                self.ctx.acd.input(Input::OfferAnswered {
                    call: CallId::from(self.call_id.as_str()),
                    agent: AgentId::from(agent.as_str()),
                });
            }
            LegEvent::Answered => self.drop_leg(&agent),
            LegEvent::AnsweredTooLate => {
                self.forget_leg(i, "completed", "ringback");
            }
            LegEvent::Failed(code) => {
                // 487: the phone confirms our CANCEL; anything else is its answer.
                let by = if code == 487 { "ringback" } else { "agent" };
                self.forget_leg(i, "not_answered", by);
                if wanted {
                    let reason = crate::outbound::offer_failure(code);
                    tracing::info!(%agent, code, "agent did not take the call");
                    self.report_failure(&agent, reason);
                }
            }
        }
        true
    }

    /// A media event of an agent leg. Its keys are not interpreted (the
    /// caller's are); an RTP timeout on the bridged agent means the phone
    /// vanished without a BYE: the call ends instead of leaving the caller
    /// in silence and the agent `on-call` forever.
    pub(super) fn on_leg_media(&mut self, ev: MediaEvent) -> Option<Ending> {
        if ev != MediaEvent::RtpTimeout {
            return None;
        }
        let Phase::Bridged { agent } = &self.phase else {
            return None;
        };
        let agent = agent.clone();
        tracing::warn!(%agent, "no RTP from the agent's phone; ending the call");
        self.drop_leg(&agent);
        self.ctx.acd.input(Input::CallEnded {
            call: CallId::from(self.call_id.as_str()),
            agent: AgentId::from(agent.as_str()),
            by: EndedBy::Agent,
        });
        Some(Ending {
            disposition: "rtp_timeout",
            hangup_by: "agent",
            send_bye: true,
        })
    }

    /// A client transaction timed out: if it was an agent's INVITE, the
    /// agent did not answer.
    pub(super) fn on_leg_timeout(&mut self, key: &TransactionKey) -> bool {
        let Some(i) = self.legs.iter().position(|l| l.leg.owns(key)) else {
            return false;
        };
        let wanted = self.legs[i].leg.is_ringing();
        let l = self.forget_leg(i, "not_answered", "ringback");
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
                let leg = self.forget_leg(i, "completed", "agent");
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
            rsip::Method::Invite | rsip::Method::Update => {
                // Hold/resume, a new address or a session refresh from the
                // agent's phone.
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
    fn end_leg_record(&self, l: &AgentLeg, disposition: &str, hangup_by: &str) {
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
            path: self.context_path(),
            digits: self.context_digits(),
            vars: format!("{{\"inbound_call_id\":{:?}}}", self.call_id),
            disposition: disposition.into(),
            hangup_by: Some(hangup_by.into()),
            queue: self.queue.clone(),
            sip_code: None,
        });
        self.endpoint.send(EndpointCmd::CallEnded {
            call_id: call_id.to_string(),
        });
    }
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
