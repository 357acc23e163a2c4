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
use ringback_media::codec::Codec;
use ringback_media::sdp;
use ringback_sip::dialog::Dialog;
use ringback_sip::message::{self, ViaSpec};
use ringback_sip::transaction::{TransactionKey, TransportKind};
use ringback_sip::uac::{make_invite, InviteSpec};
use rsip::headers::UntypedHeader;

use super::{contact_uri, Call, Ending, Phase};
use crate::acd_task::{AcdCmd, QueueNotice};
use crate::endpoint::EndpointCmd;
use crate::media::ports::RtpPort;
use crate::media::{self, Stream};
use crate::registrar::Binding;
use crate::store::Cdr;

/// State of one agent leg.
pub(super) enum LegState {
    /// INVITE sent, no final response yet.
    Ringing,
    /// We want it gone; CANCEL sent (or will be, at the first provisional).
    Cancelling {
        /// CANCEL already sent.
        sent: bool,
    },
    /// 200 OK received and ACKed.
    Answered(Box<Dialog>),
}

/// One INVITE to an agent's phone.
pub(super) struct AgentLeg {
    pub(super) agent: String,
    pub(super) call_id: String,
    invite: rsip::Request,
    key: Option<TransactionKey>,
    binding: Binding,
    port: Option<RtpPort>,
    pub(super) stream: Option<Stream>,
    pub(super) state: LegState,
    started_at: chrono::DateTime<Utc>,
    answered_at: Option<chrono::DateTime<Utc>>,
    /// A provisional response arrived (CANCEL is allowed from then on).
    provisional: bool,
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

    fn leg_via(&self, transport: TransportKind) -> ViaSpec {
        ViaSpec {
            host: self.ctx.config.advertised_ip().to_string(),
            port: Some(self.endpoint.local.port()),
            transport,
        }
    }

    async fn ring_agent(&mut self, agent: String, binding: Binding) {
        let fail = |call: &Call, reason| {
            call.ctx.acd.input(Input::OfferFailed {
                call: CallId::from(call.call_id.as_str()),
                agent: AgentId::from(agent.as_str()),
                reason,
            })
        };
        let Some(port) = self.ctx.media.allocate_port() else {
            tracing::warn!(%agent, "no RTP port for the agent leg");
            fail(self, OfferFailure::Error);
            return;
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
            self.repeat_calls = Some((n - 1).max(0));
        }
        let ip = self.ctx.config.advertised_ip();
        let host = contact_host(ip);
        // Offer the caller's codec first: no transcoding when the phone agrees.
        let caller_codec = self.offer_answer.1.codec;
        let codecs = [caller_codec, other(caller_codec)];
        let offer = sdp::build_offer(
            &codecs,
            101,
            ip,
            port.addr.port(),
            rand::random::<u32>().into(),
            1,
        );
        let leg_call_id = message::new_call_id(&host);
        let caller = self.cdr.caller.clone();
        let parse = |s: String| rsip::Uri::try_from(s.as_str());
        let (Ok(from_uri), Ok(target), Ok(contact)) = (
            parse(format!("sip:{}@{host}", sanitize_user(&caller))),
            parse(binding.contact.clone()),
            parse(contact_uri(
                ip,
                self.endpoint.local.port(),
                binding.transport,
            )),
        ) else {
            tracing::warn!(%agent, contact = %binding.contact, "agent contact is not a usable SIP URI");
            fail(self, OfferFailure::Error);
            return;
        };
        let waited = self.entered_queue_at.map_or(0, |t| t.elapsed().as_secs());
        let mut headers = vec![
            ("X-Ringback-Caller".to_string(), caller.clone()),
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
        let invite = make_invite(InviteSpec {
            from_uri,
            from_display: Some(caller.clone()),
            to_uri: target.clone(),
            request_uri: target,
            contact,
            via: self.leg_via(binding.transport),
            call_id: leg_call_id.clone(),
            cseq: 1,
            body: Some(("application/sdp".into(), offer.into_bytes())),
            extra_headers: headers,
        });
        let key = ringback_sip::transaction::TransactionKey::for_client_request(&invite);
        tracing::info!(%agent, dest = %binding.source, "ringing agent");
        self.endpoint.send(EndpointCmd::Alias {
            call_id: leg_call_id.clone(),
            of: self.call_id.clone(),
        });
        self.endpoint.send(EndpointCmd::Request {
            request: invite.clone(),
            dest: binding.source,
            transport: binding.transport,
            owner: self.call_id.clone(),
        });
        self.legs.push(AgentLeg {
            agent,
            call_id: leg_call_id,
            invite,
            key,
            binding,
            port: Some(port),
            stream: None,
            state: LegState::Ringing,
            started_at: Utc::now(),
            answered_at: None,
            provisional: false,
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
        let Some(i) = self.legs.iter().position(|l| l.agent == agent) else {
            return;
        };
        if let LegState::Answered(_) = self.legs[i].state {
            self.hang_up_leg(i);
            return;
        }
        let leg = &mut self.legs[i];
        let can_cancel = leg.key.is_some() && leg.provisional_seen();
        if can_cancel {
            if let Some(key) = leg.key.clone() {
                self.endpoint.send(EndpointCmd::Cancel { key });
            }
        }
        leg.state = LegState::Cancelling { sent: can_cancel };
    }

    /// BYE an answered leg and forget it.
    pub(super) fn hang_up_leg(&mut self, i: usize) {
        let leg = self.legs.remove(i);
        if let LegState::Answered(mut dialog) = leg.state {
            let bye = dialog.make_request(rsip::Method::Bye, &self.leg_via(leg.binding.transport));
            self.endpoint.send(EndpointCmd::Request {
                request: bye,
                dest: leg.binding.source,
                transport: leg.binding.transport,
                owner: self.call_id.clone(),
            });
        }
        self.end_leg_record(
            &leg.call_id,
            &leg.agent,
            leg.started_at,
            leg.answered_at,
            "completed",
        );
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
        let agent_stream = leg.stream.as_ref()?;
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
        let Some(i) = self.legs.iter().position(|l| l.call_id == call_id) else {
            // A leg we already let go of (e.g. the 487 after our CANCEL).
            return call_id != self.call_id;
        };
        let is_invite = message::cseq(&resp).is_some_and(|(_, m)| m == rsip::Method::Invite);
        if !is_invite {
            return true; // BYE/CANCEL responses need nothing more
        }
        let code = resp.status_code.code();
        let leg = &mut self.legs[i];
        if leg.key.is_none() {
            leg.key = Some(key.clone());
        }
        if (101..200).contains(&code) {
            leg.mark_provisional();
            if let LegState::Cancelling { sent: false } = leg.state {
                self.endpoint.send(EndpointCmd::Cancel { key });
                leg.state = LegState::Cancelling { sent: true };
            }
            return true;
        }
        if (200..300).contains(&code) {
            self.on_leg_answered(i, resp);
            return true;
        }
        // 3xx–6xx: the agent did not take it.
        let leg = self.legs.remove(i);
        let was_wanted = matches!(leg.state, LegState::Ringing);
        self.end_leg_record(
            &leg.call_id,
            &leg.agent,
            leg.started_at,
            None,
            "not_answered",
        );
        if was_wanted {
            let reason = match code {
                486 | 600 => OfferFailure::Busy,
                603 => OfferFailure::Rejected,
                408 | 480 | 487 => OfferFailure::NoAnswer,
                _ => OfferFailure::Error,
            };
            tracing::info!(agent = %leg.agent, code, "agent did not answer");
            self.ctx.acd.input(Input::OfferFailed {
                call: CallId::from(self.call_id.as_str()),
                agent: AgentId::from(leg.agent.as_str()),
                reason,
            });
        }
        true
    }

    fn on_leg_answered(&mut self, i: usize, resp: rsip::Response) {
        let via = self.leg_via(self.legs[i].binding.transport);
        let leg = &mut self.legs[i];
        if let LegState::Answered(dialog) = &leg.state {
            // A retransmitted 200: ACK again.
            let ack = dialog.make_ack(1, &via);
            self.endpoint.send(EndpointCmd::Stateless {
                message: ack.into(),
                dest: leg.binding.source,
                transport: leg.binding.transport,
            });
            return;
        }
        let dialog = match Dialog::new_uac(&leg.invite, &resp) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(agent = %leg.agent, error = %e, "unusable 200 from agent");
                return;
            }
        };
        let ack = dialog.make_ack(1, &via);
        self.endpoint.send(EndpointCmd::Stateless {
            message: ack.into(),
            dest: leg.binding.source,
            transport: leg.binding.transport,
        });
        let wanted =
            matches!(leg.state, LegState::Ringing) && matches!(self.phase, Phase::Queued { .. });
        leg.state = LegState::Answered(Box::new(dialog));
        leg.answered_at = Some(Utc::now());
        if !wanted {
            // Answered after we gave up on it: hang it up politely.
            self.hang_up_leg(i);
            return;
        }
        let negotiated = sdp::parse(&String::from_utf8_lossy(&resp.body))
            .map_err(|e| e.to_string())
            .and_then(|o| sdp::negotiate(&o, &self.ctx.codecs).map_err(|e| e.to_string()));
        let (stream, agent) = match (negotiated, leg.port.take()) {
            (Ok(neg), Some(port)) => {
                let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
                match self
                    .ctx
                    .media
                    .open_stream(port, None, neg.codec, neg.pt, neg.dtmf_pt, tx)
                {
                    Ok(s) => {
                        s.apply_negotiation(&neg);
                        (Some(s), leg.agent.clone())
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot open the agent's RTP stream");
                        (None, leg.agent.clone())
                    }
                }
            }
            (Err(e), _) => {
                tracing::warn!(agent = %leg.agent, error = %e, "agent's SDP answer unusable");
                (None, leg.agent.clone())
            }
            (Ok(_), None) => (None, leg.agent.clone()),
        };
        match stream {
            Some(s) => {
                self.legs[i].stream = Some(s);
                tracing::info!(%agent, "agent answered");
                self.ctx.acd.input(Input::OfferAnswered {
                    call: CallId::from(self.call_id.as_str()),
                    agent: AgentId::from(agent.as_str()),
                });
            }
            None => {
                self.hang_up_leg(i);
                self.ctx.acd.input(Input::OfferFailed {
                    call: CallId::from(self.call_id.as_str()),
                    agent: AgentId::from(agent.as_str()),
                    reason: OfferFailure::Error,
                });
            }
        }
    }

    /// A client transaction timed out: if it was an agent's INVITE, the
    /// agent did not answer.
    pub(super) fn on_leg_timeout(&mut self, key: &TransactionKey) -> bool {
        let Some(i) = self.legs.iter().position(|l| l.key.as_ref() == Some(key)) else {
            return false;
        };
        let leg = self.legs.remove(i);
        self.end_leg_record(
            &leg.call_id,
            &leg.agent,
            leg.started_at,
            None,
            "not_answered",
        );
        if matches!(leg.state, LegState::Ringing) {
            self.ctx.acd.input(Input::OfferFailed {
                call: CallId::from(self.call_id.as_str()),
                agent: AgentId::from(leg.agent.as_str()),
                reason: OfferFailure::NoAnswer,
            });
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
        let i = self.legs.iter().position(|l| l.call_id == call_id)?;
        match req.method {
            rsip::Method::Bye => {
                self.respond(key, &req, 200);
                let leg = self.legs.remove(i);
                self.end_leg_record(
                    &leg.call_id,
                    &leg.agent,
                    leg.started_at,
                    leg.answered_at,
                    "completed",
                );
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
                self.ctx.acd.input(Input::OfferFailed {
                    call: CallId::from(self.call_id.as_str()),
                    agent: AgentId::from(leg.agent.as_str()),
                    reason: OfferFailure::Rejected,
                });
                Some(None)
            }
            rsip::Method::Invite => {
                // Hold/resume from the agent's phone: accept without changing codecs.
                self.respond_leg_reinvite(i, key, &req);
                Some(None)
            }
            _ => {
                self.respond(key, &req, 200);
                Some(None)
            }
        }
    }

    fn respond_leg_reinvite(&mut self, i: usize, key: TransactionKey, req: &rsip::Request) {
        let ip = self.ctx.config.advertised_ip();
        let leg = &self.legs[i];
        let Some(stream) = leg.stream.as_ref() else {
            self.respond(key, req, 488);
            return;
        };
        let parsed = sdp::parse(&String::from_utf8_lossy(&req.body))
            .map_err(|e| e.to_string())
            .and_then(|o| {
                sdp::negotiate(&o, &self.ctx.codecs)
                    .map(|n| (o, n))
                    .map_err(|e| e.to_string())
            });
        match parsed {
            Ok((offer, neg)) => {
                stream.apply_negotiation(&neg);
                let answer = sdp::build_answer(&neg, &offer, ip, stream.local_addr().port(), 1, 2);
                let mut ok = message::make_response(req, 200, None);
                ok.headers
                    .push(rsip::headers::ContentType::new("application/sdp").into());
                ok.body = answer.into_bytes();
                self.endpoint
                    .send(EndpointCmd::Respond { key, response: ok });
            }
            Err(_) => self.respond(key, req, 488),
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

impl AgentLeg {
    fn provisional_seen(&self) -> bool {
        self.answered_at.is_none() && self.key.is_some() && self.provisional
    }

    fn mark_provisional(&mut self) {
        self.provisional = true;
    }
}

/// The other G.711 law.
fn other(c: Codec) -> Codec {
    match c {
        Codec::Pcmu => Codec::Pcma,
        Codec::Pcma => Codec::Pcmu,
    }
}

fn contact_host(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        std::net::IpAddr::V4(v4) => v4.to_string(),
    }
}

/// Keep only characters that are safe in a SIP URI user part.
fn sanitize_user(s: &str) -> String {
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

    #[test]
    fn caller_ids_are_sanitized() {
        assert_eq!(sanitize_user("+1 (555) 0123"), "+15550123");
        assert_eq!(sanitize_user("<>"), "anonymous");
    }
}
