//! One callback attempt, the shell around `ringback_call::attempt`: the
//! core decides every step (wait in the queue, claim the lease, ring the
//! agent, whisper, dial the customer through the trunks, "press 1",
//! bridge), every timer and every result; this task turns SIP, RTP, the
//! ACD's notices, the store's lease answers and the stop signal into core
//! inputs and carries the core's outputs out with the plumbing
//! ([`OutboundLeg`], the endpoint, media bridges, call records, the live
//! view, the callback service).
//!
//! SIP details are in `sip.rs`; an agent who takes calls in the browser is
//! rung by `browser.rs`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ringback_call::attempt::{
    CallbackAttempt, Input, LeaseAnswer, Leg, LegEvent, Outcome, Output, Setup,
};
use ringback_call::HangupBy;
use ringback_callback::Callback;
use ringback_media::codec::Codec;
use ringback_sansio::{Core, Now};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tracing::Instrument;

use crate::acd_task::{AcdCmd, QueueNotice};
use crate::agent_devices::Devices;
use crate::callbacks::CallbackHandle;
use crate::endpoint::{EndpointCmd, EndpointHandle, SipInput};
use crate::media::{self, MediaEvent, Stream};
use crate::outbound::{DialSpec, OutboundLeg};

mod browser;
mod placer;
mod record;
mod sip;

pub use placer::{AttemptDeps, AttemptPlacer};
use record::{leg_cdr, LegFacts};

/// Start one attempt: built and put in the ACD's line here, on the
/// caller's thread, then run to its end in its own task. Callbacks that
/// become eligible together (the night's requests at an opening) so reach
/// the ACD in the order the service starts them — their order in line —
/// whatever order their tasks then run in.
fn start(
    ctx: Arc<AttemptDeps>,
    svc: CallbackHandle,
    cb: Callback,
    lease: Duration,
    stop: tokio::sync::oneshot::Receiver<()>,
) {
    let (mut shell, rx, span) = open(ctx, svc, cb, lease);
    shell.enqueue_now();
    tokio::spawn(async move { shell.event_loop(rx, stop).instrument(span).await });
}

/// One attempt's shell and receivers, before anything is carried out.
fn open(
    ctx: Arc<AttemptDeps>,
    svc: CallbackHandle,
    cb: Callback,
    lease: Duration,
) -> (Shell, Receivers, tracing::Span) {
    let endpoint = ctx.endpoint.clone();
    let owner = format!("cb-{}-{:08x}", cb.id, rand::random::<u32>());
    let span = tracing::info_span!("callback", id = %cb.id, number = %cb.number, queue = %cb.queue);
    let (sip_tx, sip_rx) = mpsc::unbounded_channel();
    endpoint.send(EndpointCmd::Register {
        call_id: owner.clone(),
        tx: sip_tx,
    });
    let known = ctx.directory.lookup(&cb.number);
    let priority = known.as_ref().map_or(0, |k| k.priority);
    let customer_key = known.as_ref().map(|k| k.routing_key());
    let language = known.as_ref().and_then(|k| k.language.clone());
    let required_skills = language
        .as_deref()
        .and_then(|l| ringback_dialplan::language::find(&ctx.language_skills, l))
        .cloned()
        .into_iter()
        .collect();
    ctx.live.queued(
        &owner,
        crate::live::CallContext {
            caller: cb.number.clone(),
            caller_name: known.as_ref().map(|k| k.name.clone()),
            account: known.as_ref().and_then(|k| k.account.clone()),
            path: String::new(),
            digits: String::new(),
            entered_at: cb.entered_at,
            repeat: None,
            callback_id: Some(cb.id.clone()),
            callback_context: Some(cb.context.clone()),
        },
    );
    let setup = Setup {
        call: owner.clone(),
        queue: cb.queue.clone(),
        number: cb.number.clone(),
        entered_at: cb.entered_at,
        lease,
        accept_timeout: Duration::from_secs(
            ctx.legs
                .config
                .callback_policy(&cb.queue)
                .accept_timeout_secs
                .into(),
        ),
        trunks: ctx.legs.config.all_trunks().len(),
        priority,
        customer_key,
        required_skills,
    };
    let (notice_tx, notices) = mpsc::unbounded_channel();
    let (agent_media, agent_rx) = mpsc::unbounded_channel();
    let (customer_media, customer_rx) = mpsc::unbounded_channel();
    let (browser_tx, browser_rx) = mpsc::unbounded_channel();
    let shell = Shell {
        core: CallbackAttempt::new(setup, Now::system()),
        ctx,
        svc,
        endpoint,
        cb,
        owner,
        notice_tx,
        offers: HashMap::new(),
        agent: None,
        browser: None,
        browser_tx,
        customer: None,
        customer_bye: None,
        agent_media,
        customer_media,
        first: None,
        recording: None,
        language,
    };
    let rx = Receivers {
        sip: sip_rx,
        notices,
        agent: agent_rx,
        customer: customer_rx,
        browser: browser_rx,
    };
    (shell, rx, span)
}

struct Receivers {
    sip: UnboundedReceiver<SipInput>,
    notices: UnboundedReceiver<QueueNotice>,
    agent: UnboundedReceiver<MediaEvent>,
    customer: UnboundedReceiver<MediaEvent>,
    browser: UnboundedReceiver<crate::browser::messages::BrowserEvent>,
}

struct Shell {
    core: CallbackAttempt,
    ctx: Arc<AttemptDeps>,
    svc: CallbackHandle,
    endpoint: EndpointHandle,
    cb: Callback,
    owner: String,
    notice_tx: UnboundedSender<QueueNotice>,
    /// What to ring for each offered agent, until the core rings it.
    offers: HashMap<String, Devices>,
    agent: Option<(String, OutboundLeg)>,
    /// The agent's browser phone, when it is rung instead of a SIP phone.
    browser: Option<(String, crate::browser::leg::BrowserLeg)>,
    browser_tx: UnboundedSender<crate::browser::messages::BrowserEvent>,
    /// The customer's language in the directory: their prompt set.
    language: Option<String>,
    customer: Option<OutboundLeg>,
    /// The customer's answered leg we sent BYE to: kept until that BYE has
    /// its answer (a carrier may challenge it).
    customer_bye: Option<OutboundLeg>,
    agent_media: UnboundedSender<MediaEvent>,
    customer_media: UnboundedSender<MediaEvent>,
    /// An output taken by [`Shell::enqueue_now`] that is not for the ACD,
    /// carried out first by [`Shell::carry_out`].
    first: Option<Output>,
    /// The recording of the agent and the customer, while bridged.
    recording: Option<crate::recording::Recording>,
}

impl Shell {
    /// Send the core's first outputs for the ACD (its `Enqueue`) at once.
    fn enqueue_now(&mut self) {
        while let Some(out) = self.core.poll_output() {
            let Output::Acd(input) = out else {
                self.first = Some(out);
                return;
            };
            let notify =
                matches!(input, ringback_acd::Input::Enqueue(_)).then(|| self.notice_tx.clone());
            self.ctx.acd.send(AcdCmd::Input { input, notify });
        }
    }

    async fn event_loop(
        &mut self,
        mut rx: Receivers,
        mut stop: tokio::sync::oneshot::Receiver<()>,
    ) {
        let mut stoppable = true;
        loop {
            if self.carry_out(&mut rx.sip).await {
                return;
            }
            let deadline = self.core.poll_timeout();
            let timer = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            let input = tokio::select! {
                // Withdrawn, cancelled or rescheduled (the core decides
                // whether it is too late for that).
                _ = &mut stop, if stoppable => {
                    stoppable = false;
                    Some(Input::Stop)
                }
                Some(n) = rx.notices.recv() => Some(self.on_notice(n)),
                Some(input) = rx.sip.recv() => self.on_sip(input),
                Some(ev) = rx.agent.recv() => on_media(Leg::Agent, ev),
                Some(ev) = rx.customer.recv() => on_media(Leg::Customer, ev),
                Some(ev) = rx.browser.recv() => self.on_browser(ev),
                _ = timer => {
                    self.core.handle_timeout(Now::system());
                    None
                }
            };
            if let Some(input) = input {
                self.core.handle(input, Now::system());
            }
        }
    }

    fn feed(&mut self, input: Input) {
        self.core.handle(input, Now::system());
    }

    /// Carry out everything the core asked for (answers to its questions
    /// are fed back at once and their outputs carried out in turn). True
    /// once the attempt is over.
    async fn carry_out(&mut self, sip_rx: &mut UnboundedReceiver<SipInput>) -> bool {
        while let Some(out) = self.first.take().or_else(|| self.core.poll_output()) {
            match out {
                Output::Acd(input) => {
                    let notify = matches!(input, ringback_acd::Input::Enqueue(_))
                        .then(|| self.notice_tx.clone());
                    self.ctx.acd.send(AcdCmd::Input { input, notify });
                }
                Output::ClaimLease { at, until } => {
                    let answer = self.lease(at, until).await;
                    self.feed(Input::LeaseClaimed(answer));
                }
                Output::RenewLease { at, until } => {
                    let answer = self.lease(at, until).await;
                    self.feed(Input::LeaseRenewed(answer));
                }
                Output::RingAgent { agent, waited_secs } => self.ring_agent(agent, waited_secs),
                Output::CancelAgent => {
                    if self.drop_browser(HangupBy::Ringback) {
                        // No 487 comes from a page: the leg is over now.
                        self.feed(Input::Agent(LegEvent::Failed(487)));
                    }
                    if self
                        .agent
                        .as_mut()
                        .is_some_and(|(_, l)| l.hang_up(&self.endpoint))
                    {
                        self.end_leg(Leg::Agent, HangupBy::Ringback);
                    }
                }
                Output::AskToDial => {
                    let allowed = self.svc.dialing(&self.cb.id).await;
                    self.feed(Input::MayDial(allowed));
                }
                Output::Play {
                    leg,
                    prompts,
                    looped,
                    token,
                } => {
                    let prompts = self.prompts(leg, &prompts);
                    match self.stream(leg) {
                        Some(s) if !prompts.is_empty() => s.play(prompts, looped, token),
                        // Nothing to play: as if it had been played.
                        _ => self.feed(Input::on(leg, LegEvent::PlaybackDone { token })),
                    }
                }
                Output::DialCustomer { trunk } => {
                    if !self.dial_customer(trunk) {
                        self.feed(Input::Customer(LegEvent::DialFailed));
                    }
                }
                Output::Bridge => {
                    if let (Some(a), Some(c)) =
                        (self.stream(Leg::Agent), self.stream(Leg::Customer))
                    {
                        media::bridge(a, c);
                        self.start_recording();
                    }
                }
                Output::Unbridge => {
                    self.recording = None;
                    for leg in [Leg::Customer, Leg::Agent] {
                        if let Some(s) = self.stream(leg) {
                            s.unbridge();
                        }
                    }
                }
                Output::Accepted { waited_secs } => {
                    tracing::info!("customer accepted; bridged to the agent");
                    self.ctx.live.answered(waited_secs);
                    self.svc.connected(&self.cb.id);
                }
                Output::EndLeg { leg, by } => self.end_leg(leg, by),
                Output::HangUp { leg, by } => {
                    if leg == Leg::Agent {
                        self.drop_browser(by);
                    }
                    let endpoint = self.endpoint.clone();
                    let bye = self
                        .leg_mut(leg)
                        .is_some_and(|l| l.hang_up(&endpoint) && l.answered_at.is_some());
                    // A carrier may challenge our BYE: the customer's
                    // answered leg stays until that BYE has its answer.
                    match leg {
                        Leg::Customer if bye => self.customer_bye = self.customer.take(),
                        _ => self.end_leg(leg, by),
                    }
                }
                Output::Report(outcome) => match outcome {
                    Outcome::Result(r) => {
                        tracing::info!(result = r.code(), "callback attempt finished");
                        self.svc.finished(&self.cb.id, r);
                    }
                    Outcome::HandBack => {
                        tracing::info!("callback handed back");
                        self.svc.lost(&self.cb.id);
                    }
                    Outcome::Dropped => tracing::info!("callback withdrawn from the queue"),
                },
                Output::Finished => {
                    self.recording = None;
                    self.ctx.live.gone(&self.owner);
                    if let Some(mut c) = self.customer_bye.take() {
                        self.await_bye(&mut c, sip_rx).await;
                        self.leg_record(
                            &c,
                            "callback-customer",
                            &self.cb.number,
                            HangupBy::Ringback,
                        );
                    }
                    self.endpoint.send(EndpointCmd::CallEnded {
                        call_id: self.owner.clone(),
                    });
                    return true;
                }
            }
        }
        false
    }

    /// The customer and the agent were bridged: record them (the customer
    /// left, the agent right) when the queue or the agent says so.
    fn start_recording(&mut self) {
        let agent = match (&self.agent, &self.browser) {
            (Some((a, _)), _) | (None, Some((a, _))) => a.clone(),
            (None, None) => return,
        };
        let queue = Some(self.cb.queue.as_str());
        if !crate::recording::wanted(&self.ctx.legs.config, queue, &agent) {
            return;
        }
        let (Some(a), Some(c)) = (self.stream(Leg::Agent), self.stream(Leg::Customer)) else {
            return;
        };
        let (rec, customer_tap, agent_tap) = self.ctx.recorder.start(&self.owner, &agent, queue);
        c.record(Some(customer_tap));
        a.record(Some(agent_tap));
        tracing::info!(%agent, "recording the callback");
        self.recording = Some(rec);
    }

    /// Claim or renew the callback's lease for this node.
    async fn lease(&self, at: DateTime<Utc>, until: DateTime<Utc>) -> LeaseAnswer {
        let store = &self.ctx.store;
        match store
            .claim_callback(&self.cb.id, &self.svc.node, at, until)
            .await
        {
            Ok(true) => LeaseAnswer::Held,
            Ok(false) => {
                tracing::warn!("another node holds this callback's lease");
                LeaseAnswer::HeldElsewhere
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim or renew the lease");
                LeaseAnswer::Error
            }
        }
    }

    fn on_notice(&mut self, notice: QueueNotice) -> Input {
        match notice {
            QueueNotice::Offer { agent, devices } => {
                self.offers.insert(agent.clone(), devices);
                Input::Offer { agent }
            }
            QueueNotice::CancelOffer { agent } => {
                self.offers.remove(&agent);
                Input::CancelOffer { agent }
            }
            QueueNotice::Connected { agent } => Input::Connected { agent },
            QueueNotice::Leave { why, .. } => {
                tracing::info!(
                    why,
                    "callback left the queue without an agent; will try again"
                );
                Input::Leave
            }
        }
    }

    fn ring_agent(&mut self, agent: String, waited_secs: i64) {
        let devices = self.offers.remove(&agent);
        // The SIP phone when there is one; else the browser phone.
        let Some(binding) = devices.as_ref().and_then(|d| d.phone.clone()) else {
            if devices.is_some_and(|d| d.browser) {
                return self.ring_browser(agent, waited_secs);
            }
            tracing::warn!(%agent, "no device for the offered agent");
            self.feed(Input::Agent(LegEvent::DialFailed));
            return;
        };
        let cb = &self.cb;
        let known = self.ctx.directory.lookup(&cb.number);
        let spec = DialSpec {
            from_user: cb.number.clone(),
            from_display: Some(format!("Callback {}", cb.number)),
            target: binding.contact.clone(),
            dest: binding.source,
            transport: binding.transport,
            headers: placer::agent_headers(cb, waited_secs, known.as_deref()),
            prefer: Codec::Pcmu,
            auth: None,
            inband_dtmf: false,
            srtp: crate::outbound::agent_srtp(&self.ctx.legs.config, &agent),
        };
        match OutboundLeg::dial(&self.ctx, &self.endpoint, &self.owner, spec) {
            Ok(leg) => {
                tracing::info!(%agent, "ringing agent for a callback");
                self.agent = Some((agent, leg));
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot ring the agent");
                self.feed(Input::Agent(LegEvent::DialFailed));
            }
        }
    }

    /// Dial the customer through trunk number `index`. False if it cannot
    /// even be tried.
    fn dial_customer(&mut self, index: usize) -> bool {
        let trunks = self.ctx.legs.config.all_trunks();
        let Some((name, trunk)) = trunks.get(index).copied() else {
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

    fn leg(&self, leg: Leg) -> Option<&OutboundLeg> {
        match leg {
            Leg::Agent => self.agent.as_ref().map(|(_, l)| l),
            Leg::Customer => self.customer.as_ref(),
        }
    }

    fn leg_mut(&mut self, leg: Leg) -> Option<&mut OutboundLeg> {
        match leg {
            Leg::Agent => self.agent.as_mut().map(|(_, l)| l),
            Leg::Customer => self.customer.as_mut(),
        }
    }

    /// The leg a SIP message with this Call-ID belongs to.
    fn leg_of(&self, call_id: &str) -> Option<Leg> {
        [Leg::Agent, Leg::Customer]
            .into_iter()
            .find(|&leg| self.leg(leg).is_some_and(|l| l.call_id == call_id))
    }

    fn stream(&self, leg: Leg) -> Option<&Stream> {
        let browser = self.browser.as_ref().filter(|_| leg == Leg::Agent);
        self.leg(leg)
            .and_then(|l| l.stream.as_ref())
            .or_else(|| browser.and_then(|(_, b)| b.stream.as_ref()))
    }

    /// The prompts as `leg` hears them: the customer in their language, the
    /// agent (a whisper) in the default one.
    fn prompts(&self, leg: Leg, names: &[String]) -> Vec<Arc<ringback_media::prompt::Prompt>> {
        let snap = self.ctx.dialplans.current();
        let language = self.language.as_deref().filter(|_| leg == Leg::Customer);
        names
            .iter()
            .filter_map(|n| snap.prompts.get_in(language, n))
            .collect()
    }

    /// The leg is over: record it.
    fn end_leg(&mut self, leg: Leg, by: HangupBy) {
        match leg {
            Leg::Agent => {
                if let Some((agent, l)) = self.agent.take() {
                    self.leg_record(&l, "callback-agent", &agent, by);
                }
                self.drop_browser(by);
            }
            Leg::Customer => {
                if let Some(l) = self.customer.take() {
                    self.leg_record(&l, "callback-customer", &self.cb.number, by);
                }
            }
        }
    }

    /// The customer answered: their leg is on record (`in_progress`) from
    /// now on, so a crash cannot lose the trunk call they took.
    fn customer_answered(&self) {
        if let Some(l) = &self.customer {
            let facts = LegFacts::of(l, "callback-customer", &self.cb.number);
            let open = leg_cdr(&self.cb, &self.owner, &facts, None);
            self.ctx.cdr.write(open);
        }
    }

    /// Write a leg's call record and stop routing its Call-ID.
    fn leg_record(&self, l: &OutboundLeg, kind: &str, dialed: &str, by: HangupBy) {
        let facts = LegFacts::of(l, kind, dialed);
        let end = Some((by, Utc::now()));
        self.ctx
            .cdr
            .write(leg_cdr(&self.cb, &self.owner, &facts, end));
        self.endpoint.send(EndpointCmd::CallEnded {
            call_id: l.call_id.clone(),
        });
    }
}

/// What a media event on `leg` means to the core.
fn on_media(leg: Leg, ev: MediaEvent) -> Option<Input> {
    match ev {
        MediaEvent::Digit(d) => (leg == Leg::Customer).then_some(Input::CustomerDigit(d)),
        MediaEvent::RtpTimeout => {
            tracing::warn!(?leg, "no RTP from the leg; ending the callback call");
            Some(Input::on(leg, LegEvent::RtpTimeout))
        }
        MediaEvent::PlaybackDone { token } => {
            Some(Input::on(leg, LegEvent::PlaybackDone { token }))
        }
    }
}
