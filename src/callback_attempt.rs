//! One callback attempt: wait in the queue (in the caller's original place),
//! ring the agent the ACD picks, whisper the context, dial the customer
//! through the trunk, ask them to press 1, bridge.
//!
//! Every outcome is reported to the callback service, which persists it and
//! decides what happens next (retry with backoff, give up, head of the line
//! again when the agent was lost before the customer answered).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use ringback_acd::{AgentId, CallId, EndedBy, Input, OfferFailure, WaitingCall};
use ringback_callback::{AttemptResult, Callback};
use ringback_media::codec::Codec;
use ringback_media::dtmf::parse_sip_info;
use ringback_sip::message;
use tokio::sync::mpsc::{self, UnboundedReceiver};
use tracing::Instrument;

use crate::acd_task::{AcdCmd, QueueNotice};
use crate::callbacks::CallbackHandle;
use crate::endpoint::{EndpointCmd, EndpointHandle, SipInput};
use crate::media::{self, MediaEvent};
use crate::outbound::{DialSpec, LegEvent, OutboundLeg};
use crate::server::ServerCtx;
use crate::store::Cdr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// In the ACD, waiting for an agent.
    Waiting,
    /// An agent is being rung.
    AgentRinging,
    /// The agent answered and hears the whisper.
    Whisper,
    /// The customer's phone rings; the agent hears music.
    CustomerRinging,
    /// The customer answered and hears "press 1".
    Accepting,
    /// Agent and customer talk.
    Bridged,
}

struct Attempt {
    ctx: Arc<ServerCtx>,
    svc: CallbackHandle,
    endpoint: EndpointHandle,
    cb: Callback,
    owner: String,
    step: Step,
    agent: Option<(String, OutboundLeg)>,
    /// The agent the ACD connected (it must hear `CallEnded`, not `Abandon`).
    connected_agent: Option<String>,
    customer: Option<OutboundLeg>,
    /// Index in `Config::all_trunks()` of the trunk dialing the customer.
    trunk: usize,
    /// The customer's early media is bridged to the agent.
    early_bridged: bool,
    token: u64,
    whisper_token: u64,
    accept_deadline: Option<Instant>,
    lease: Duration,
    agent_media: mpsc::UnboundedSender<MediaEvent>,
    customer_media: mpsc::UnboundedSender<MediaEvent>,
}

/// Run one attempt to its end.
pub async fn run(
    ctx: Arc<ServerCtx>,
    svc: CallbackHandle,
    cb: Callback,
    lease: Duration,
    stop: tokio::sync::oneshot::Receiver<()>,
) {
    let Some(endpoint) = ctx.endpoint.get().cloned() else {
        svc.lost(&cb.id);
        return;
    };
    let owner = format!("cb-{}-{:08x}", cb.id, rand::random::<u32>());
    let span = tracing::info_span!("callback", id = %cb.id, number = %cb.number, queue = %cb.queue);
    let (sip_tx, mut sip_rx) = mpsc::unbounded_channel();
    endpoint.send(EndpointCmd::Register {
        call_id: owner.clone(),
        tx: sip_tx,
    });
    ctx.live.queued(
        &owner,
        crate::live::CallContext {
            caller: cb.number.clone(),
            path: String::new(),
            digits: String::new(),
            entered_at: cb.entered_at,
            repeat: None,
            callback_id: Some(cb.id.clone()),
            callback_context: Some(cb.context.clone()),
        },
    );
    let (notice_tx, mut notices) = mpsc::unbounded_channel();
    let age = (Utc::now() - cb.entered_at).to_std().unwrap_or_default();
    let entered = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
    ctx.acd.send(AcdCmd::Input {
        input: Input::Enqueue(WaitingCall::new(
            owner.as_str(),
            cb.queue.as_str(),
            cb.number.as_str(),
            entered,
        )),
        notify: Some(notice_tx),
    });
    let (agent_media, mut agent_rx) = mpsc::unbounded_channel();
    let (customer_media, mut customer_rx) = mpsc::unbounded_channel();
    let mut a = Attempt {
        ctx,
        svc,
        endpoint,
        cb,
        owner,
        step: Step::Waiting,
        agent: None,
        connected_agent: None,
        customer: None,
        trunk: 0,
        early_bridged: false,
        token: 0,
        whisper_token: 0,
        accept_deadline: None,
        lease,
        agent_media,
        customer_media,
    };
    a.event_loop(
        &mut sip_rx,
        &mut notices,
        &mut agent_rx,
        &mut customer_rx,
        stop,
    )
    .instrument(span)
    .await;
}

/// How the attempt ends for the service.
enum Outcome {
    /// Report this result.
    Result(AttemptResult),
    /// Nothing was dialed (lease lost, left the queue): hand it back.
    HandBack,
    /// The service refused to dial (cancelled or expired meanwhile).
    Dropped,
}

impl Attempt {
    async fn event_loop(
        &mut self,
        sip_rx: &mut UnboundedReceiver<SipInput>,
        notices: &mut UnboundedReceiver<QueueNotice>,
        agent_rx: &mut UnboundedReceiver<MediaEvent>,
        customer_rx: &mut UnboundedReceiver<MediaEvent>,
        mut stop: tokio::sync::oneshot::Receiver<()>,
    ) {
        let mut stoppable = true;
        // Keep the lease while this attempt is alive (another node takes
        // the callback over only when we stop renewing: a crash).
        let mut renew = tokio::time::interval(self.lease / 3);
        let mut leased = false;
        let outcome = loop {
            let deadline = self.accept_deadline;
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            let step = tokio::select! {
                // Withdrawn, cancelled or rescheduled: leave the queue, unless
                // the customer is already being dialed (its result decides).
                _ = &mut stop, if stoppable => {
                    stoppable = false;
                    if matches!(self.step, Step::Waiting | Step::AgentRinging) {
                        tracing::info!("callback withdrawn from the queue");
                        Some(Outcome::Dropped)
                    } else {
                        None
                    }
                }
                _ = renew.tick(), if leased => {
                    let now = Utc::now();
                    let until = now + chrono::Duration::from_std(self.lease).unwrap_or_default();
                    match self.ctx.store.claim_callback(&self.cb.id, &self.svc.node, now, until).await {
                        Ok(true) => None,
                        Ok(false) => {
                            tracing::warn!("lease lost to another node");
                            Some(Outcome::HandBack)
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot renew the lease");
                            None
                        }
                    }
                }
                Some(n) = notices.recv() => {
                    let r = self.on_notice(n).await;
                    leased = leased || self.agent.is_some() || self.connected_agent.is_some();
                    r
                }
                Some(input) = sip_rx.recv() => self.on_sip(input),
                Some(ev) = agent_rx.recv() => self.on_agent_media(ev),
                Some(ev) = customer_rx.recv() => self.on_customer_media(ev),
                _ = sleep => {
                    tracing::info!("customer did not press 1 in time");
                    Some(Outcome::Result(AttemptResult::CustomerNoAcceptance))
                }
            };
            if let Some(o) = step {
                break o;
            }
        };
        self.finish(outcome, sip_rx).await;
    }

    fn me(&self) -> CallId {
        CallId::from(self.owner.as_str())
    }

    async fn on_notice(&mut self, notice: QueueNotice) -> Option<Outcome> {
        match notice {
            QueueNotice::Offer { agent, binding } => {
                let now = Utc::now();
                let until = now + chrono::Duration::from_std(self.lease).unwrap_or_default();
                match self
                    .ctx
                    .store
                    .claim_callback(&self.cb.id, &self.svc.node, now, until)
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::info!("another node holds this callback");
                        // Its lease runs out by itself if that node died;
                        // look again in a moment, not in a tight loop.
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        return Some(Outcome::HandBack);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot claim the callback");
                        return Some(Outcome::HandBack);
                    }
                }
                let waited = (Utc::now() - self.cb.entered_at).num_seconds().max(0);
                let spec = DialSpec {
                    from_user: self.cb.number.clone(),
                    from_display: Some(format!("Callback {}", self.cb.number)),
                    target: binding.contact.clone(),
                    dest: binding.source,
                    transport: binding.transport,
                    headers: vec![
                        ("X-Ringback-Callback".into(), self.cb.id.clone()),
                        ("X-Ringback-Caller".into(), self.cb.number.clone()),
                        ("X-Ringback-Queue".into(), self.cb.queue.clone()),
                        ("X-Ringback-Waited".into(), waited.to_string()),
                        (
                            "X-Ringback-Context".into(),
                            self.cb.context.replace(['\r', '\n'], " "),
                        ),
                    ],
                    prefer: Codec::Pcmu,
                    auth: None,
                    inband_dtmf: false,
                };
                match OutboundLeg::dial(&self.ctx, &self.endpoint, &self.owner, spec) {
                    Ok(leg) => {
                        tracing::info!(%agent, "ringing agent for a callback");
                        self.agent = Some((agent, leg));
                        self.step = Step::AgentRinging;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot ring the agent");
                        self.ctx.acd.input(Input::OfferFailed {
                            call: self.me(),
                            agent: AgentId::from(agent.as_str()),
                            reason: OfferFailure::Error,
                        });
                    }
                }
                None
            }
            QueueNotice::CancelOffer { agent } => {
                if let Some((a, leg)) = self.agent.as_mut() {
                    if *a == agent && leg.hang_up(&self.endpoint) {
                        self.end_agent_leg("ringback");
                    }
                }
                self.step = Step::Waiting;
                None
            }
            QueueNotice::Connected { agent } => {
                self.connected_agent = Some(agent);
                if !self.svc.dialing(&self.cb.id).await {
                    return Some(Outcome::Dropped);
                }
                self.whisper();
                None
            }
            QueueNotice::Leave { why, .. } => {
                tracing::info!(
                    why,
                    "callback left the queue without an agent; will try again"
                );
                // Do not spin: give the queue time before handing it back.
                tokio::time::sleep(Duration::from_secs(30)).await;
                Some(Outcome::HandBack)
            }
        }
    }

    /// Tell the agent who they are calling, then dial the customer.
    fn whisper(&mut self) {
        self.step = Step::Whisper;
        let minutes = ((Utc::now() - self.cb.entered_at).num_seconds().max(0) as u64).div_ceil(60);
        let mut names = vec!["callback-whisper".to_string()];
        names.extend(crate::call::number_prompts(minutes));
        names.push("minutes-ago".into());
        let prompts = self.prompts(&names);
        self.token += 1;
        self.whisper_token = self.token;
        match self.agent.as_ref().and_then(|(_, l)| l.stream.as_ref()) {
            Some(s) if !prompts.is_empty() => s.play(prompts, false, self.token),
            _ => self.dial_customer(),
        }
    }

    fn prompts(&self, names: &[String]) -> Vec<Arc<ringback_media::prompt::Prompt>> {
        let snap = self.ctx.snapshot();
        names.iter().filter_map(|n| snap.prompts.get(n)).collect()
    }

    fn dial_customer(&mut self) {
        self.trunk = 0;
        // The agent waits with music while the customer's phone rings.
        let moh = self.prompts(&["hold-music".to_string()]);
        if let Some(s) = self.agent.as_ref().and_then(|(_, l)| l.stream.as_ref()) {
            self.token += 1;
            s.play(moh, true, self.token);
        }
        self.step = Step::CustomerRinging;
        self.customer = None;
        if !self.dial_customer_via_trunk() {
            // Every trunk refused at once: fall through to the next one's
            // failure handling (none left).
            self.next_trunk();
        }
    }

    /// Try the next trunk after the current one failed (5xx, 408, no
    /// answer at all). False when none is left.
    fn next_trunk(&mut self) -> bool {
        loop {
            self.trunk += 1;
            if self.trunk >= self.ctx.config.all_trunks().len() {
                return false;
            }
            if self.dial_customer_via_trunk() {
                return true;
            }
        }
    }

    /// Dial the customer through trunk number `self.trunk`. False if it
    /// cannot even be tried.
    fn dial_customer_via_trunk(&mut self) -> bool {
        let trunks = self.ctx.config.all_trunks();
        let Some((name, trunk)) = trunks.get(self.trunk).copied() else {
            tracing::error!("no trunk configured ([trunk] address): cannot call customers back");
            return false;
        };
        let Some(dest) = trunk.address else {
            return false;
        };
        let spec = crate::trunk::dial_spec(trunk, dest, &self.cb.number);
        match OutboundLeg::dial(&self.ctx, &self.endpoint, &self.owner, spec) {
            Ok(leg) => {
                tracing::info!(trunk = name, %dest, "dialing the customer");
                self.customer = Some(leg);
                true
            }
            Err(e) => {
                tracing::warn!(trunk = name, error = %e, "cannot dial the customer");
                false
            }
        }
    }

    fn on_agent_media(&mut self, ev: MediaEvent) -> Option<Outcome> {
        if ev == MediaEvent::RtpTimeout {
            // The agent's phone vanished (no BYE, no RTP): end the attempt
            // so nobody stays in a call no one hears.
            tracing::warn!("no RTP from the agent's phone; ending the callback call");
            return Some(Outcome::Result(if self.step == Step::Bridged {
                AttemptResult::Completed
            } else {
                AttemptResult::AgentLost
            }));
        }
        if let MediaEvent::PlaybackDone { token } = ev {
            if token == self.whisper_token && self.step == Step::Whisper {
                self.dial_customer();
                if self.customer.is_none() {
                    return Some(Outcome::Result(AttemptResult::Failed(
                        "trunk unavailable".into(),
                    )));
                }
            }
        }
        None
    }

    fn on_customer_media(&mut self, ev: MediaEvent) -> Option<Outcome> {
        match ev {
            MediaEvent::Digit(d) => self.on_customer_digit(d),
            MediaEvent::RtpTimeout => {
                tracing::warn!("no RTP from the customer; ending the callback call");
                Some(Outcome::Result(match self.step {
                    Step::Bridged => AttemptResult::Completed,
                    _ => AttemptResult::CustomerNoAcceptance,
                }))
            }
            MediaEvent::PlaybackDone { .. } => None,
        }
    }

    fn on_customer_digit(&mut self, d: char) -> Option<Outcome> {
        if self.step != Step::Accepting {
            return None;
        }
        match d {
            '1' => {
                let (Some((_, a)), Some(c)) = (self.agent.as_ref(), self.customer.as_ref()) else {
                    return None;
                };
                if let (Some(sa), Some(sc)) = (a.stream.as_ref(), c.stream.as_ref()) {
                    media::bridge(sa, sc);
                }
                tracing::info!("customer accepted; bridged to the agent");
                let waited = (Utc::now() - self.cb.entered_at).num_seconds().max(0) as u64;
                self.ctx.live.answered(waited);
                self.accept_deadline = None;
                self.step = Step::Bridged;
                self.svc.connected(&self.cb.id);
                None
            }
            '2' => {
                tracing::info!("customer declined the callback");
                Some(Outcome::Result(AttemptResult::CustomerDeclined))
            }
            _ => None,
        }
    }

    fn on_sip(&mut self, input: SipInput) -> Option<Outcome> {
        match input {
            SipInput::Response { response, .. } => {
                let response = *response;
                let call_id = message::call_id(&response).unwrap_or_default();
                if let Some((agent, leg)) =
                    self.agent.as_mut().filter(|(_, l)| l.call_id == call_id)
                {
                    let agent = agent.clone();
                    let was_ringing = leg.is_ringing();
                    match leg.on_response(
                        &self.ctx,
                        &self.endpoint,
                        &response,
                        self.agent_media.clone(),
                    ) {
                        LegEvent::Answered => self.ctx.acd.input(Input::OfferAnswered {
                            call: self.me(),
                            agent: AgentId::from(agent.as_str()),
                        }),
                        LegEvent::Failed(code) => {
                            self.end_agent_leg("agent");
                            self.step = Step::Waiting;
                            if was_ringing {
                                let reason = crate::outbound::offer_failure(code);
                                self.ctx.acd.input(Input::OfferFailed {
                                    call: self.me(),
                                    agent: AgentId::from(agent.as_str()),
                                    reason,
                                });
                            }
                        }
                        LegEvent::AnsweredTooLate => self.end_agent_leg("ringback"),
                        LegEvent::Progress | LegEvent::EarlyMedia => {}
                    }
                } else if let Some(leg) = self.customer.as_mut().filter(|l| l.call_id == call_id) {
                    let event = leg.on_response(
                        &self.ctx,
                        &self.endpoint,
                        &response,
                        self.customer_media.clone(),
                    );
                    return self.on_customer_event(event);
                }
                None
            }
            SipInput::Timeout { key } => {
                if self.customer.as_ref().is_some_and(|l| l.owns(&key)) {
                    self.end_customer_leg("customer");
                    // No answer at all from the trunk: the next one may work.
                    if self.next_trunk() {
                        return None;
                    }
                    return Some(Outcome::Result(AttemptResult::CustomerNoAnswer));
                }
                if let Some((agent, leg)) = self.agent.as_ref() {
                    if leg.owns(&key) {
                        let agent = agent.clone();
                        self.end_agent_leg("agent");
                        self.step = Step::Waiting;
                        self.ctx.acd.input(Input::OfferFailed {
                            call: self.me(),
                            agent: AgentId::from(agent.as_str()),
                            reason: OfferFailure::NoAnswer,
                        });
                    }
                }
                None
            }
            SipInput::Request { key, request } => self.on_request(key, *request),
            SipInput::Shutdown => Some(Outcome::Result(AttemptResult::Failed(
                "server shutting down".into(),
            ))),
            SipInput::Cancelled | SipInput::Ack | SipInput::AckTimeout => None,
        }
    }

    /// What a response on the customer's leg means for the attempt.
    fn on_customer_event(&mut self, event: LegEvent) -> Option<Outcome> {
        match event {
            LegEvent::EarlyMedia => {
                // The carrier's ringback tone or announcement: let the agent
                // hear it instead of the music.
                if let (Some((_, a)), Some(c)) = (self.agent.as_ref(), self.customer.as_ref()) {
                    if let (Some(sa), Some(sc)) = (a.stream.as_ref(), c.stream.as_ref()) {
                        media::bridge(sa, sc);
                        self.early_bridged = true;
                    }
                }
                None
            }
            LegEvent::Answered => {
                if std::mem::take(&mut self.early_bridged) {
                    if let Some(s) = self.customer.as_ref().and_then(|l| l.stream.as_ref()) {
                        s.unbridge();
                    }
                    if let Some(s) = self.agent.as_ref().and_then(|(_, l)| l.stream.as_ref()) {
                        s.unbridge();
                        let moh = self.prompts(&["hold-music".to_string()]);
                        self.token += 1;
                        s.play(moh, true, self.token);
                    }
                }
                let intro = self.prompts(&["callback-intro".to_string()]);
                self.token += 1;
                if let Some(s) = self.customer.as_ref().and_then(|l| l.stream.as_ref()) {
                    s.play(intro, false, self.token);
                }
                let secs = self.ctx.callback_policy(&self.cb.queue).accept_timeout_secs;
                self.accept_deadline = Some(Instant::now() + Duration::from_secs(u64::from(secs)));
                self.step = Step::Accepting;
                None
            }
            LegEvent::Failed(code) => {
                self.end_customer_leg("customer");
                if std::mem::take(&mut self.early_bridged) {
                    if let Some(s) = self.agent.as_ref().and_then(|(_, l)| l.stream.as_ref()) {
                        s.unbridge();
                    }
                }
                // The carrier failed, not the customer: try the next trunk.
                if (code == 408 || (500..600).contains(&code)) && self.next_trunk() {
                    return None;
                }
                let result = match code {
                    486 | 600 => AttemptResult::CustomerBusy,
                    603 => AttemptResult::CustomerDeclined,
                    408 | 480 | 487 => AttemptResult::CustomerNoAnswer,
                    c => AttemptResult::Failed(format!("trunk answered {c}")),
                };
                Some(Outcome::Result(result))
            }
            LegEvent::AnsweredTooLate | LegEvent::Progress => None,
        }
    }

    fn on_request(
        &mut self,
        key: ringback_sip::transaction::TransactionKey,
        req: rsip::Request,
    ) -> Option<Outcome> {
        let call_id = message::call_id(&req).unwrap_or_default();
        let is_agent = self
            .agent
            .as_ref()
            .is_some_and(|(_, l)| l.call_id == call_id);
        let is_customer = self.customer.as_ref().is_some_and(|l| l.call_id == call_id);
        let reply = |code| {
            let resp = message::make_response(&req, code, None);
            self.endpoint.send(EndpointCmd::Respond {
                key: key.clone(),
                response: resp,
            });
        };
        if !is_agent && !is_customer {
            reply(481);
            return None;
        }
        match req.method {
            rsip::Method::Bye => {
                reply(200);
                if is_agent {
                    // The leg is over: its record and routing end here (no BYE back).
                    self.end_agent_leg("agent");
                    tracing::info!("agent hung up");
                    // Before the customer answered: back to the head of the line.
                    return Some(Outcome::Result(if self.step == Step::Bridged {
                        AttemptResult::Completed
                    } else {
                        AttemptResult::AgentLost
                    }));
                }
                self.end_customer_leg("customer");
                tracing::info!("customer hung up");
                Some(Outcome::Result(match self.step {
                    Step::Bridged => AttemptResult::Completed,
                    _ => AttemptResult::CustomerNoAcceptance,
                }))
            }
            rsip::Method::Info => {
                let ctype = message::content_type(&req).unwrap_or_default();
                match parse_sip_info(&ctype, &req.body) {
                    Some(d) => {
                        reply(200);
                        if is_customer {
                            return self.on_customer_digit(d);
                        }
                        None
                    }
                    None => {
                        reply(415);
                        None
                    }
                }
            }
            rsip::Method::Invite | rsip::Method::Update => {
                let leg = if is_agent {
                    self.agent.as_mut().map(|(_, l)| l)
                } else {
                    self.customer.as_mut()
                };
                if let Some(l) = leg {
                    l.on_reinvite(&self.ctx, &self.endpoint, key.clone(), &req);
                }
                None
            }
            _ => {
                reply(200);
                None
            }
        }
    }

    async fn finish(&mut self, outcome: Outcome, sip_rx: &mut UnboundedReceiver<SipInput>) {
        // Hang up whatever is still up. The customer's leg (a carrier) may
        // challenge our BYE: it stays until that BYE has its answer.
        let mut customer_bye = None;
        if let Some(mut c) = self.customer.take() {
            if c.hang_up(&self.endpoint) && c.answered_at.is_some() {
                customer_bye = Some(c);
            } else {
                self.leg_record(&c, "callback-customer", &self.cb.number.clone(), "ringback");
            }
        }
        if let Some((a, mut l)) = self.agent.take() {
            l.hang_up(&self.endpoint);
            self.leg_record(&l, "callback-agent", &a, "ringback");
        }
        // Tell the ACD the call is over (or gone from the queue).
        match self.connected_agent.take() {
            Some(agent) => self.ctx.acd.input(Input::CallEnded {
                call: self.me(),
                agent: AgentId::from(agent.as_str()),
                by: EndedBy::Caller,
            }),
            None => self.ctx.acd.input(Input::Abandon(self.me())),
        }
        match outcome {
            Outcome::Result(r) => {
                tracing::info!(result = r.code(), "callback attempt finished");
                self.svc.finished(&self.cb.id, r);
            }
            Outcome::HandBack => self.svc.lost(&self.cb.id),
            Outcome::Dropped => {}
        }
        self.ctx.live.gone(&self.owner);
        if let Some(mut c) = customer_bye {
            self.await_bye(&mut c, sip_rx).await;
            self.leg_record(&c, "callback-customer", &self.cb.number.clone(), "ringback");
        }
        self.endpoint.send(EndpointCmd::CallEnded {
            call_id: self.owner.clone(),
        });
    }

    /// Wait (a few seconds at most) for the final answer to our BYE on
    /// `leg`, answering a carrier's 401/407 to it with credentials.
    async fn await_bye(&self, leg: &mut OutboundLeg, sip_rx: &mut UnboundedReceiver<SipInput>) {
        let until = tokio::time::Instant::now() + Duration::from_secs(4);
        loop {
            let Ok(Some(input)) = tokio::time::timeout_at(until, sip_rx.recv()).await else {
                return;
            };
            let SipInput::Response { response, .. } = input else {
                continue;
            };
            if message::call_id(response.as_ref()).as_deref() != Some(leg.call_id.as_str()) {
                continue;
            }
            let is_bye =
                message::cseq(response.as_ref()).is_some_and(|(_, m)| m == rsip::Method::Bye);
            leg.on_response(
                &self.ctx,
                &self.endpoint,
                &response,
                self.customer_media.clone(),
            );
            let code = response.status_code.code();
            if is_bye && code >= 200 && code != 401 && code != 407 {
                return;
            }
        }
    }

    /// The agent's leg is over (refused, timed out, hung up): record it.
    fn end_agent_leg(&mut self, hangup_by: &str) {
        if let Some((a, l)) = self.agent.take() {
            self.leg_record(&l, "callback-agent", &a, hangup_by);
        }
    }

    /// The customer's leg is over: record it.
    fn end_customer_leg(&mut self, hangup_by: &str) {
        if let Some(l) = self.customer.take() {
            let number = self.cb.number.clone();
            self.leg_record(&l, "callback-customer", &number, hangup_by);
        }
    }

    /// Write a leg's call record and stop routing its Call-ID. `hangup_by`:
    /// who ended it (`agent`, `customer`, or `ringback`).
    fn leg_record(&self, leg: &OutboundLeg, kind: &str, dialed: &str, hangup_by: &str) {
        self.ctx.cdr.write(Cdr {
            call_id: leg.call_id.clone(),
            leg: kind.into(),
            caller: self.cb.number.clone(),
            dialed: dialed.into(),
            started_at: leg.started_at,
            answered_at: leg.answered_at,
            ended_at: Some(Utc::now()),
            vars: format!("{{\"callback_id\":{:?}}}", self.cb.id),
            disposition: if leg.answered_at.is_some() {
                "completed"
            } else {
                "not_answered"
            }
            .into(),
            hangup_by: Some(hangup_by.into()),
            queue: Some(self.cb.queue.clone()),
            ..Cdr::default()
        });
        self.endpoint.send(EndpointCmd::CallEnded {
            call_id: leg.call_id.clone(),
        });
    }
}
