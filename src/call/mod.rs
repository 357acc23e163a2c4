//! One inbound call: wires the SIP dialog, the media stream and the dialplan
//! interpreter together.
//!
//! The interpreter (`ringback_dialplan::Session`) decides everything a caller
//! experiences; this task only turns its actions into RTP and SIP, and SIP,
//! RTP and timers back into its events. A call keeps the dialplan snapshot it
//! started with, so a reload never changes a call in progress.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ringback_dialplan::{Action, CallInfo, Dialplan, Event, Session};
use ringback_media::dtmf::parse_sip_info;
use ringback_media::prompt::Prompt;
use ringback_media::sdp::{self, Negotiated, RemoteSdp};
use ringback_sip::dialog::Dialog;
use ringback_sip::message::{self, ViaSpec};
use ringback_sip::session_timer;
use ringback_sip::transaction::{TransactionKey, TransportKind};
use rsip::prelude::*;
use tokio::sync::mpsc::{self, UnboundedReceiver};
use tracing::Instrument;

mod queue;

use crate::acd_task::QueueNotice;
use crate::endpoint::{EndpointCmd, EndpointHandle, SipInput, ALLOW};
use crate::media::ports::RtpPort;
use crate::media::{MediaEvent, Stream};
use crate::metrics;
use crate::outbound::contact_uri;
use crate::server::{ServerCtx, Snapshot};
use crate::store::Cdr;
use queue::AgentLeg;

/// Why an INVITE was refused before a call existed.
#[derive(Debug)]
pub struct Rejection {
    /// SIP status code.
    pub code: u16,
    /// Human-readable reason (sent in a Warning header and logged).
    pub reason: String,
    /// Metric label.
    pub metric: &'static str,
}

/// What admission found out about an INVITE that can be answered.
pub struct Admitted {
    /// Dialplan snapshot the call keeps for its whole life.
    pub snapshot: Arc<Snapshot>,
    /// The dialplan answering the dialed number.
    pub plan: Arc<Dialplan>,
    /// Caller's SDP.
    pub offer: RemoteSdp,
    /// Codec and DTMF choice.
    pub negotiated: Negotiated,
    /// Reserved RTP port.
    pub port: RtpPort,
    /// From user.
    pub caller: String,
    /// Request-URI user.
    pub dialed: String,
    /// When the INVITE arrived.
    pub started_at: DateTime<Utc>,
}

/// Everything a call task starts with.
pub struct CallSetup {
    /// Admission results.
    pub admitted: Admitted,
    /// INVITE server transaction.
    pub key: TransactionKey,
    /// The INVITE.
    pub invite: rsip::Request,
    /// Its Call-ID.
    pub call_id: String,
    /// Where the INVITE came from (in-dialog requests go back there, which
    /// is what a phone behind NAT needs).
    pub source: SocketAddr,
    /// Transport the INVITE used.
    pub transport: TransportKind,
    /// To send SIP.
    pub endpoint: EndpointHandle,
}

/// Decide whether an INVITE can become a call: a dialplan for the number,
/// an SDP offer with a codec in common, and a free RTP port. `feature` is
/// the confirmation prompt of an agent feature code already applied.
pub fn admit(
    ctx: &ServerCtx,
    req: &rsip::Request,
    feature: Option<&str>,
) -> Result<Admitted, Rejection> {
    let reject = |code, reason: String, metric| Rejection {
        code,
        reason,
        metric,
    };
    let snapshot = ctx.snapshot();
    let dialed = req
        .uri
        .auth
        .as_ref()
        .map(|a| a.user.clone())
        .unwrap_or_default();
    let plan = match feature {
        Some(confirmation) => feature_plan(&dialed, confirmation)
            .ok_or_else(|| reject(500, "feature code plan failed to build".into(), "internal"))?,
        None => snapshot
            .plans
            .for_number(&dialed)
            .ok_or_else(|| reject(404, format!("no dialplan answers `{dialed}`"), "no_route"))?,
    };
    let caller = caller_number(req);
    let ctype = message::content_type(req).unwrap_or_default();
    if req.body.is_empty() || !ctype.to_ascii_lowercase().starts_with("application/sdp") {
        return Err(reject(
            488,
            "an SDP offer is required in the INVITE (offerless INVITE is not supported)".into(),
            "no_sdp",
        ));
    }
    let text = String::from_utf8_lossy(&req.body);
    let offer =
        sdp::parse(&text).map_err(|e| reject(400, format!("malformed SDP: {e}"), "bad_sdp"))?;
    let negotiated =
        sdp::negotiate(&offer, &ctx.codecs).map_err(|e| reject(488, format!("{e}"), "no_codec"))?;
    let port = ctx
        .media
        .allocate_port()
        .ok_or_else(|| reject(503, "no RTP port free".into(), "no_port"))?;
    Ok(Admitted {
        snapshot,
        plan,
        offer,
        negotiated,
        port,
        caller,
        dialed,
        started_at: Utc::now(),
    })
}

/// A one-node dialplan that confirms an agent feature code and hangs up.
/// Built with the same loader and run by the same interpreter as any plan.
fn feature_plan(code: &str, confirmation: &str) -> Option<Arc<Dialplan>> {
    // `*13` toggles; its result is not known here, so it says neither word.
    let prompt = if confirmation == "agent-paused-or-available" {
        String::new()
    } else {
        format!("prompt = \"{confirmation}\"\n")
    };
    let text = format!(
        "[dialplan]\nname = \"feature code {code}\"\nnumbers = [\"{code}\"]\nstart = \"done\"\noperator = \"operator\"\n\n[nodes.done]\ntype = \"hangup\"\n{prompt}"
    );
    ringback_dialplan::load_str(
        std::path::Path::new("<feature code>"),
        &text,
        &ringback_dialplan::CheckContext::default(),
    )
    .ok()
    .map(|(p, _)| Arc::new(p))
}

/// The caller's number: the From URI's user part (or the host when a
/// device sends none).
/// The caller's number: the user part of the From URI (`alice.smith` of
/// `<sip:alice.smith@example.com>`), or the host when there is no user.
fn caller_number(req: &rsip::Request) -> String {
    message::header_value(req, "From")
        .and_then(|v| message::NameAddr::parse(&v))
        .map(|n| n.user_or_host().to_string())
        .unwrap_or_default()
}

/// Where the caller is in the call's life.
#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// Running the dialplan.
    Ivr,
    /// Waiting in a queue (music on hold, agents being rung).
    Queued {
        queue: String,
        /// Token of a prompt played instead of the music (entry prompt,
        /// position announcement); the music resumes after it.
        interlude: Option<u64>,
        next_announce: Option<Instant>,
    },
    /// Talking to an agent.
    Bridged { agent: String },
    /// REFER sent; waiting for its outcome.
    Transferring {
        refer: Option<TransactionKey>,
        deadline: Instant,
    },
}

/// How a call ended, for the CDR.
struct Ending {
    disposition: &'static str,
    hangup_by: &'static str,
    send_bye: bool,
}

struct Call {
    ctx: Arc<ServerCtx>,
    endpoint: EndpointHandle,
    call_id: String,
    source: SocketAddr,
    transport: TransportKind,
    snapshot: Arc<Snapshot>,
    dialog: Dialog,
    session: Session,
    stream: Stream,
    local_sdp_version: u64,
    session_id: u64,
    offer_answer: (RemoteSdp, Negotiated),
    token: u64,
    timer: Option<Instant>,
    phase: Phase,
    cdr: Cdr,
    queue: Option<String>,
    pending: VecDeque<Event>,
    /// Skip the rest of the interpreter's current action batch.
    discard_batch: bool,
    /// Notices from the ACD while queued.
    queue_rx: Option<UnboundedReceiver<QueueNotice>>,
    /// Agent legs (several at once with ring-all).
    legs: Vec<AgentLeg>,
    /// First time the caller entered a queue: their place in line.
    entered_queue_at: Option<Instant>,
    /// Calls from this number in the last 7 days (looked up once).
    repeat_calls: Option<i64>,
    /// Token of an overflow prompt; the dialplan continues after it.
    overflow_token: Option<u64>,
    /// Callback offer settings of the queue node the caller is in.
    callback_offer: Option<ringback_dialplan::CallbackOffer>,
    /// When to (re-)offer a callback.
    offer_at: Option<Instant>,
    /// The caller is answering a callback question.
    cb_flow: Option<queue::CallbackFlow>,
    /// Work for the event loop (it needs the store): request a callback
    /// for this number, cancel one, or look for a pending one.
    cb_op: Option<queue::CallbackOp>,
    /// Hang up after the playback with this token (callback confirmed).
    hangup_after: Option<u64>,
    /// When the caller was bridged to an agent (handle time).
    bridged_at: Option<Instant>,
    /// The caller reached the queue by pressing 0 (zero-out).
    zero_out: bool,
    /// Media events of the agent legs (their RTP timeouts).
    leg_media: mpsc::UnboundedSender<MediaEvent>,
    /// Session timer (RFC 4028) refreshed by us: how often we send UPDATE.
    refresh_every: Option<Duration>,
    /// When our next session refresh is due.
    refresh_at: Option<Instant>,
}

/// Run one call to its end.
pub async fn run(ctx: Arc<ServerCtx>, setup: CallSetup, sip_rx: UnboundedReceiver<SipInput>) {
    let span = tracing::info_span!(
        "call",
        call_id = %setup.call_id,
        caller = %setup.admitted.caller,
        dialed = %setup.admitted.dialed,
    );
    run_inner(ctx, setup, sip_rx).instrument(span).await
}

async fn run_inner(ctx: Arc<ServerCtx>, setup: CallSetup, mut sip_rx: UnboundedReceiver<SipInput>) {
    let CallSetup {
        admitted,
        key,
        invite,
        call_id,
        source,
        transport,
        endpoint,
    } = setup;
    let Admitted {
        snapshot,
        plan,
        offer,
        negotiated,
        port,
        caller,
        dialed,
        started_at,
    } = admitted;
    let mut cdr = Cdr {
        call_id: call_id.clone(),
        leg: "inbound".into(),
        caller: caller.clone(),
        dialed: dialed.clone(),
        dialplan: Some(plan.name.clone()),
        dialplan_version: Some(plan.version.clone()),
        started_at,
        vars: "{}".into(),
        ..Cdr::default()
    };
    let finish_early = |cdr: &mut Cdr, disposition: &str, code: i32| {
        cdr.ended_at = Some(Utc::now());
        cdr.disposition = disposition.into();
        cdr.sip_code = Some(code);
        cdr.hangup_by = Some("caller".into());
        metrics::call_ended(disposition);
        ctx.cdr.write(cdr.clone());
        endpoint.send(EndpointCmd::CallEnded {
            call_id: call_id.clone(),
        });
    };

    let (media_tx, mut media_rx) = mpsc::unbounded_channel();
    // No remote address until the call is answered: no media before the 200.
    let stream = match ctx.media.open_stream(
        port,
        None,
        negotiated.codec,
        negotiated.pt,
        negotiated.dtmf_pt,
        media_tx,
    ) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot open RTP stream");
            let resp = message::make_response(&invite, 500, Some(&message::new_tag()));
            endpoint.send(EndpointCmd::Respond {
                key,
                response: resp,
            });
            finish_early(&mut cdr, "failed", 500);
            return;
        }
    };
    let local_tag = message::new_tag();
    let session_id: u64 = rand::random::<u32>().into();

    // Ringing phase (optional): the caller may still CANCEL.
    let delay = Duration::from_millis(ctx.config.sip.answer_delay_ms);
    if !delay.is_zero() {
        let ringing = message::make_response(&invite, 180, Some(&local_tag));
        endpoint.send(EndpointCmd::Respond {
            key: key.clone(),
            response: ringing,
        });
        let answer_at = tokio::time::Instant::now() + delay;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(answer_at) => break,
                input = sip_rx.recv() => match input {
                    Some(SipInput::Cancelled) | Some(SipInput::Shutdown) | None => {
                        let resp = message::make_response(&invite, 487, Some(&local_tag));
                        endpoint.send(EndpointCmd::Respond { key, response: resp });
                        tracing::info!("caller cancelled before answer");
                        finish_early(&mut cdr, "cancelled", 487);
                        return;
                    }
                    Some(_) => {}
                },
            }
        }
    }

    let advertised = ctx.config.advertised_ip();
    let contact_uri = contact_uri(advertised, endpoint.local.port(), transport);
    let answer = sdp::build_answer(
        &negotiated,
        &offer,
        advertised,
        stream.local_addr().port(),
        session_id,
        1,
    );
    let timer = session_timer::answer(&invite, session_timer::MIN_SE);
    if let session_timer::TimerAnswer::TooSmall { .. } = timer {
        let mut resp = message::make_response(&invite, 422, Some(&local_tag));
        for (name, value) in timer.headers() {
            resp.headers.push(message::make_header(name, &value));
        }
        endpoint.send(EndpointCmd::Respond {
            key,
            response: resp,
        });
        finish_early(&mut cdr, "failed", 422);
        return;
    }
    let mut ok = message::make_response(&invite, 200, Some(&local_tag));
    for (name, value) in timer.headers() {
        ok.headers.push(message::make_header(name, &value));
    }
    ok.headers
        .push(rsip::headers::Contact::new(format!("<{contact_uri}>")).into());
    ok.headers.push(rsip::headers::Allow::new(ALLOW).into());
    ok.headers
        .push(rsip::headers::Server::new(ctx.config.sip.user_agent.clone()).into());
    ok.headers
        .push(rsip::headers::ContentType::new("application/sdp").into());
    ok.body = answer.into_bytes();
    let dialog = match rsip::Uri::try_from(contact_uri.as_str())
        .map_err(|e| e.to_string())
        .and_then(|uri| Dialog::new_uas(&invite, &local_tag, uri).map_err(|e| e.to_string()))
    {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "cannot create dialog");
            let resp = message::make_response(&invite, 400, Some(&local_tag));
            endpoint.send(EndpointCmd::Respond {
                key,
                response: resp,
            });
            finish_early(&mut cdr, "failed", 400);
            return;
        }
    };
    endpoint.send(EndpointCmd::Respond { key, response: ok });
    stream.apply_negotiation(&negotiated);
    metrics::CALLS_ANSWERED_TOTAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    cdr.answered_at = Some(Utc::now());
    cdr.disposition = "in_progress".into();
    ctx.cdr.write(cdr.clone());
    tracing::info!(
        dialplan = %plan.name,
        version = %plan.version,
        codec = ?negotiated.codec,
        "answered"
    );

    let session = Session::new(Arc::clone(&plan), ctx.config.operator_queue.clone());
    let (leg_media_tx, mut leg_media_rx) = mpsc::unbounded_channel();
    let mut call = Call {
        ctx: Arc::clone(&ctx),
        endpoint,
        call_id,
        source,
        transport,
        snapshot,
        dialog,
        session,
        stream,
        local_sdp_version: 1,
        session_id,
        offer_answer: (offer, negotiated),
        token: 0,
        timer: None,
        phase: Phase::Ivr,
        cdr,
        queue: None,
        pending: VecDeque::new(),
        discard_batch: false,
        queue_rx: None,
        legs: Vec::new(),
        entered_queue_at: None,
        repeat_calls: None,
        overflow_token: None,
        callback_offer: None,
        offer_at: None,
        cb_flow: None,
        cb_op: None,
        hangup_after: None,
        bridged_at: None,
        zero_out: false,
        leg_media: leg_media_tx,
        refresh_every: timer
            .our_refresh_secs()
            .map(|s| Duration::from_secs(u64::from(s))),
        refresh_at: timer
            .our_refresh_secs()
            .map(|s| Instant::now() + Duration::from_secs(u64::from(s))),
    };
    call.pending.push_back(Event::Started(CallInfo {
        caller,
        dialed,
        now: Utc::now(),
    }));
    let ending = call
        .event_loop(&mut sip_rx, &mut media_rx, &mut leg_media_rx)
        .await;
    call.finish(ending);
}

impl Call {
    async fn event_loop(
        &mut self,
        sip_rx: &mut UnboundedReceiver<SipInput>,
        media_rx: &mut UnboundedReceiver<MediaEvent>,
        leg_media_rx: &mut UnboundedReceiver<MediaEvent>,
    ) -> Ending {
        loop {
            if let Some(end) = self.drain() {
                return end;
            }
            if let Some(op) = self.cb_op.take() {
                self.run_callback_op(op).await;
                continue;
            }
            let deadline = self.next_deadline();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            let notice = async {
                match self.queue_rx.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some(n) = notice => {
                    if let Some(end) = self.on_queue_notice(n).await {
                        return end;
                    }
                }
                input = sip_rx.recv() => {
                    let Some(input) = input else {
                        return Ending { disposition: "shutdown", hangup_by: "ringback", send_bye: true };
                    };
                    if let Some(end) = self.on_sip(input) {
                        return end;
                    }
                }
                Some(ev) = media_rx.recv() => {
                    if let Some(end) = self.on_media(ev) {
                        return end;
                    }
                }
                Some(ev) = leg_media_rx.recv() => {
                    if let Some(end) = self.on_leg_media(ev) {
                        return end;
                    }
                }
                _ = sleep => {
                    if let Some(end) = self.on_deadline() {
                        return end;
                    }
                    self.on_queue_deadline();
                    if self.announcement_due() {
                        self.announce_position().await;
                    }
                }
            }
        }
    }

    fn announcement_due(&self) -> bool {
        matches!(&self.phase, Phase::Queued { next_announce: Some(t), interlude: None, .. } if *t <= Instant::now())
    }

    fn next_deadline(&self) -> Option<Instant> {
        let phase_deadline = match &self.phase {
            // Announce only between interludes, never over one.
            Phase::Queued {
                next_announce,
                interlude: None,
                ..
            } => [
                *next_announce,
                self.offer_at,
                self.cb_flow.as_ref().and_then(|f| f.deadline()),
            ]
            .into_iter()
            .flatten()
            .min(),
            Phase::Queued { .. } => self.cb_flow.as_ref().and_then(|f| f.deadline()),
            Phase::Bridged { .. } | Phase::Ivr => None,
            Phase::Transferring { deadline, .. } => Some(*deadline),
        };
        [self.timer, phase_deadline, self.refresh_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// Our session refresh (RFC 4028 §10, `refresher=uas`): an UPDATE
    /// without a body keeps the session alive at the caller's side.
    fn refresh_session(&mut self, now: Instant) {
        let Some(every) = self.refresh_every else {
            return;
        };
        self.refresh_at = Some(now + every);
        let mut update = self.dialog.make_request(rsip::Method::Update, &self.via());
        update.headers.push(message::make_header(
            "Session-Expires",
            &format!("{};refresher=uas", every.as_secs() * 2),
        ));
        tracing::debug!("session refresh (UPDATE)");
        self.send_request(update);
    }

    fn on_deadline(&mut self) -> Option<Ending> {
        let now = Instant::now();
        if self.refresh_at.is_some_and(|t| t <= now) {
            self.refresh_session(now);
        }
        if self.timer.is_some_and(|t| t <= now) {
            self.timer = None;
            self.pending.push_back(Event::Timeout);
        }
        match &self.phase {
            Phase::Transferring { deadline, .. } if *deadline <= now => {
                // REFER accepted but no final NOTIFY: the transferee is
                // handling it; our part is done.
                return Some(Ending {
                    disposition: "transferred",
                    hangup_by: "ringback",
                    send_bye: true,
                });
            }
            _ => {}
        }
        None
    }

    /// Feed queued events to the interpreter and carry out its actions.
    fn drain(&mut self) -> Option<Ending> {
        let mut actions = Vec::new();
        let mut guard = 0;
        while let Some(ev) = self.pending.pop_front() {
            guard += 1;
            if guard > 10_000 {
                tracing::error!("dialplan event loop did not settle; hanging up");
                return Some(Ending {
                    disposition: "failed",
                    hangup_by: "ringback",
                    send_bye: true,
                });
            }
            actions.clear();
            self.session.handle(ev, &mut actions);
            for action in actions.drain(..) {
                if self.discard_batch {
                    break;
                }
                if let Some(end) = self.execute(action) {
                    return Some(end);
                }
            }
            self.discard_batch = false;
        }
        None
    }

    fn execute(&mut self, action: Action) -> Option<Ending> {
        match action {
            Action::Play {
                prompts,
                barge_in: _,
            } => {
                let list = self.resolve_prompts(&prompts);
                self.token += 1;
                if list.is_empty() {
                    self.pending.push_back(Event::PlaybackDone);
                } else {
                    self.stream.play(list, false, self.token);
                }
            }
            Action::StopPlayback => {
                self.token += 1;
                self.stream.stop();
            }
            Action::StartTimer { after } => self.timer = Some(Instant::now() + after),
            Action::CancelTimer => self.timer = None,
            Action::Enqueue {
                queue,
                max_wait,
                priority,
                callback,
                zero_out,
            } => {
                self.zero_out = zero_out;
                self.callback_offer = callback.filter(|c| c.offer);
                self.enter_queue(queue, max_wait, priority);
            }
            Action::Callback { queue } => {
                // A confirmation may only follow a persisted request: the
                // interpreter's confirmation is dropped, the caller waits in
                // the queue (keeping their place) while the request is
                // stored, and ringback confirms (or says it could not) itself.
                self.discard_batch = true;
                self.enter_queue(queue, None, 0);
                self.cb_op = Some(queue::CallbackOp::Request(self.cdr.caller.clone()));
            }
            Action::Transfer { target } => return self.transfer(target),
            Action::Hangup => {
                return Some(Ending {
                    disposition: "completed",
                    hangup_by: "ringback",
                    send_bye: true,
                })
            }
        }
        None
    }

    fn resolve_prompts(&self, names: &[String]) -> Vec<Arc<Prompt>> {
        names
            .iter()
            .filter_map(|n| {
                let p = self.snapshot.prompts.get(n);
                if p.is_none() {
                    tracing::warn!(prompt = %n, "prompt missing; skipped");
                }
                p
            })
            .collect()
    }

    fn transfer(&mut self, target: String) -> Option<Ending> {
        // An extension that one of our own dialplans answers: continue there.
        if !target.contains(':') && !target.contains('@') {
            if let Some(plan) = self.snapshot.plans.for_number(&target) {
                tracing::info!(%target, dialplan = %plan.name, "internal transfer");
                self.cdr.path = self.session.path().join(" > ");
                self.cdr.digits = self.session.digits().to_string();
                self.session = Session::new(plan, self.ctx.config.operator_queue.clone());
                self.pending.push_back(Event::Started(CallInfo {
                    caller: self.cdr.caller.clone(),
                    dialed: target,
                    now: Utc::now(),
                }));
                return None;
            }
            tracing::warn!(%target, "transfer target is not a SIP URI nor a local extension");
            self.pending.push_back(Event::TransferFailed);
            return None;
        }
        let mut refer = self.dialog.make_request(rsip::Method::Refer, &self.via());
        refer.headers.push(rsip::Header::Other(
            "Refer-To".into(),
            format!("<{target}>"),
        ));
        refer.headers.push(rsip::Header::Other(
            "Referred-By".into(),
            format!(
                "<{}>",
                contact_uri(
                    self.ctx.config.advertised_ip(),
                    self.endpoint.local.port(),
                    self.transport
                )
            ),
        ));
        tracing::info!(%target, "transferring with REFER");
        self.send_request(refer);
        self.phase = Phase::Transferring {
            refer: None,
            deadline: Instant::now() + Duration::from_secs(32),
        };
        None
    }

    fn via(&self) -> ViaSpec {
        ViaSpec {
            host: self.ctx.config.advertised_ip().to_string(),
            port: Some(self.endpoint.local.port()),
            transport: self.transport,
        }
    }

    fn send_request(&self, request: rsip::Request) {
        self.endpoint.send(EndpointCmd::Request {
            request,
            dest: self.source,
            transport: self.transport,
            owner: self.call_id.clone(),
        });
    }

    fn respond(&self, key: TransactionKey, req: &rsip::Request, code: u16) {
        let resp = message::make_response(req, code, None);
        self.endpoint.send(EndpointCmd::Respond {
            key,
            response: resp,
        });
    }

    fn on_media(&mut self, ev: MediaEvent) -> Option<Ending> {
        match ev {
            MediaEvent::PlaybackDone { token } if token == self.token => {
                if self.hangup_after == Some(token) {
                    return Some(Ending {
                        disposition: "callback",
                        hangup_by: "ringback",
                        send_bye: true,
                    });
                }
                if self.overflow_token == Some(token) {
                    self.overflow_token = None;
                    self.pending.push_back(Event::QueueExited);
                } else if matches!(self.phase, Phase::Queued { interlude: Some(t), .. } if t == token)
                {
                    self.resume_hold_music();
                } else if self.phase == Phase::Ivr {
                    self.pending.push_back(Event::PlaybackDone);
                }
            }
            MediaEvent::PlaybackDone { .. } => {} // stale: superseded by a newer play
            // Counted by the media task, which knows the digit's source.
            MediaEvent::Digit(d) => self.on_digit(d),
            MediaEvent::RtpTimeout => {
                tracing::warn!("no RTP from the caller; hanging up");
                return Some(Ending {
                    disposition: "rtp_timeout",
                    hangup_by: "ringback",
                    send_bye: true,
                });
            }
        }
        None
    }

    fn on_digit(&mut self, d: char) {
        tracing::info!(digit = %d, "digit");
        match self.phase {
            Phase::Ivr => self.pending.push_back(Event::Digit(d)),
            Phase::Queued { .. } => self.on_queue_digit(d),
            _ => {}
        }
    }

    fn on_sip(&mut self, input: SipInput) -> Option<Ending> {
        match input {
            SipInput::Request { key, request } => return self.on_request(key, *request),
            SipInput::Cancelled | SipInput::Ack => {}
            SipInput::Response { key, response } => {
                let response = *response;
                if self.on_leg_response(&response) {
                    return None;
                }
                if let Phase::Transferring { refer, deadline } = &mut self.phase {
                    let code = response.status_code.code();
                    let is_refer =
                        message::cseq(&response).is_some_and(|(_, m)| m == rsip::Method::Refer);
                    if is_refer && (200..300).contains(&code) {
                        *refer = Some(key);
                        *deadline = Instant::now() + Duration::from_secs(32);
                    } else if is_refer && code >= 300 {
                        tracing::info!(code, "transfer refused");
                        self.phase = Phase::Ivr;
                        self.pending.push_back(Event::TransferFailed);
                    }
                }
            }
            SipInput::Timeout { key } if self.on_leg_timeout(&key) => {}
            SipInput::Timeout { .. } => {
                if matches!(self.phase, Phase::Transferring { refer: None, .. }) {
                    self.phase = Phase::Ivr;
                    self.pending.push_back(Event::TransferFailed);
                }
            }
            SipInput::AckTimeout => {
                tracing::warn!("no ACK for our 200 OK; hanging up");
                return Some(Ending {
                    disposition: "failed",
                    hangup_by: "ringback",
                    send_bye: true,
                });
            }
            SipInput::Shutdown => {
                return Some(Ending {
                    disposition: "shutdown",
                    hangup_by: "ringback",
                    send_bye: true,
                })
            }
        }
        None
    }

    fn on_request(&mut self, key: TransactionKey, req: rsip::Request) -> Option<Ending> {
        if message::call_id(&req).as_deref() != Some(self.call_id.as_str()) {
            return match self.on_leg_request(key.clone(), req.clone()) {
                Some(end) => end,
                None => {
                    self.respond(key, &req, 481);
                    None
                }
            };
        }
        if let Err(e) = self.dialog.on_remote_request(&req) {
            tracing::debug!(error = %e, "in-dialog request refused");
            self.respond(key, &req, 500);
            return None;
        }
        match req.method {
            rsip::Method::Bye => {
                self.respond(key, &req, 200);
                self.pending.push_back(Event::Hangup);
                let _ = self.drain();
                let disposition =
                    if self.queue.is_some() && matches!(self.phase, Phase::Queued { .. }) {
                        "abandoned"
                    } else {
                        "completed"
                    };
                return Some(Ending {
                    disposition,
                    hangup_by: "caller",
                    send_bye: false,
                });
            }
            rsip::Method::Info => {
                let ctype = message::content_type(&req).unwrap_or_default();
                let lower = ctype.to_ascii_lowercase();
                if !lower.starts_with("application/dtmf") {
                    self.respond(key, &req, 415);
                    return None;
                }
                match parse_sip_info(&ctype, &req.body) {
                    Some(d) => {
                        self.respond(key, &req, 200);
                        metrics::DTMF_SIP_INFO_TOTAL
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        self.on_digit(d);
                    }
                    None => self.respond(key, &req, 400),
                }
            }
            rsip::Method::Invite => self.on_reinvite(key, req),
            rsip::Method::Notify => {
                self.respond(key, &req, 200);
                if let Phase::Transferring { .. } = self.phase {
                    let body = String::from_utf8_lossy(&req.body);
                    if let Some(code) = sipfrag_status(&body) {
                        if (200..300).contains(&code) {
                            return Some(Ending {
                                disposition: "transferred",
                                hangup_by: "ringback",
                                send_bye: true,
                            });
                        } else if code >= 300 {
                            tracing::info!(code, "transfer failed at the target");
                            self.phase = Phase::Ivr;
                            self.pending.push_back(Event::TransferFailed);
                        }
                    }
                }
            }
            // An UPDATE with an offer (RFC 3311) changes the session like a
            // re-INVITE; one without is a session-timer refresh (RFC 4028).
            rsip::Method::Update if !req.body.iter().all(u8::is_ascii_whitespace) => {
                self.on_reinvite(key, req)
            }
            rsip::Method::Update => {
                let mut ok = message::make_response(&req, 200, None);
                // A refresh: confirm the interval it asked for.
                for (name, value) in session_timer::answer(&req, session_timer::MIN_SE).headers() {
                    ok.headers.push(message::make_header(name, &value));
                }
                self.endpoint
                    .send(EndpointCmd::Respond { key, response: ok });
            }
            rsip::Method::Options => self.respond(key, &req, 200),
            _ => {
                let mut resp = message::make_response(&req, 405, None);
                resp.headers.push(rsip::headers::Allow::new(ALLOW).into());
                self.endpoint.send(EndpointCmd::Respond {
                    key,
                    response: resp,
                });
            }
        }
        None
    }

    /// re-INVITE: hold/resume or a new address. The codec stays as
    /// negotiated unless the new offer no longer contains it.
    fn on_reinvite(&mut self, key: TransactionKey, req: rsip::Request) {
        let text = String::from_utf8_lossy(&req.body).to_string();
        let result = if text.trim().is_empty() {
            Ok((self.offer_answer.0.clone(), self.offer_answer.1.clone()))
        } else {
            sdp::parse(&text).map_err(|e| e.to_string()).and_then(|o| {
                crate::media::renegotiate(&o, self.stream.codec())
                    .map(|n| (o, n))
                    .map_err(|e| e.to_string())
            })
        };
        match result {
            Ok((offer, neg)) => {
                tracing::info!(hold = neg.is_hold(), "re-INVITE");
                self.stream.apply_negotiation(&neg);
                self.local_sdp_version += 1;
                let answer = sdp::build_answer(
                    &neg,
                    &offer,
                    self.ctx.config.advertised_ip(),
                    self.stream.local_addr().port(),
                    self.session_id,
                    self.local_sdp_version,
                );
                self.offer_answer = (offer, neg);
                let mut ok = message::make_response(&req, 200, None);
                for (name, value) in session_timer::answer(&req, session_timer::MIN_SE).headers() {
                    ok.headers.push(message::make_header(name, &value));
                }
                ok.headers.push(
                    rsip::headers::Contact::new(format!(
                        "<{}>",
                        contact_uri(
                            self.ctx.config.advertised_ip(),
                            self.endpoint.local.port(),
                            self.transport
                        )
                    ))
                    .into(),
                );
                ok.headers
                    .push(rsip::headers::ContentType::new("application/sdp").into());
                ok.body = answer.into_bytes();
                self.endpoint
                    .send(EndpointCmd::Respond { key, response: ok });
            }
            Err(e) => {
                tracing::info!(error = %e, "re-INVITE refused");
                self.respond(key, &req, 488);
            }
        }
    }

    fn finish(mut self, end: Ending) {
        use ringback_acd::{AgentId, CallId, EndedBy, Input};
        let me = CallId::from(self.call_id.as_str());
        match &self.phase {
            Phase::Queued { .. } => self.ctx.live.abandoned(),
            Phase::Bridged { .. } => self
                .ctx
                .live
                .handled(self.bridged_at.map_or(0, |t| t.elapsed().as_secs())),
            _ => {}
        }
        self.ctx.live.gone(&self.call_id);
        match &self.phase {
            Phase::Queued { .. } => self.ctx.acd.input(Input::Abandon(me)),
            Phase::Bridged { agent } if end.hangup_by != "agent" => {
                self.ctx.acd.input(Input::CallEnded {
                    call: me,
                    agent: AgentId::from(agent.as_str()),
                    by: EndedBy::Caller,
                })
            }
            _ => {}
        }
        self.drop_all_legs();
        self.stream.unbridge();
        if end.send_bye {
            let bye = self.dialog.make_request(rsip::Method::Bye, &self.via());
            self.send_request(bye);
        }
        let vars: BTreeMap<String, String> = self.session.vars().clone();
        self.cdr.path = self.context_path();
        self.cdr.digits = self.context_digits();
        self.cdr.vars = serde_json::to_string(&vars).unwrap_or_else(|_| "{}".into());
        self.cdr.ended_at = Some(Utc::now());
        self.cdr.disposition = end.disposition.into();
        self.cdr.hangup_by = Some(end.hangup_by.into());
        self.cdr.queue = self.queue.clone();
        tracing::info!(
            disposition = end.disposition,
            hangup_by = end.hangup_by,
            path = %self.cdr.path,
            digits = %self.cdr.digits,
            rtp_sent = self.stream.packets_sent(),
            rtp_received = self.stream.packets_received(),
            "call ended"
        );
        self.ctx.cdr.write(self.cdr.clone());
        metrics::call_ended(end.disposition);
        self.endpoint.send(EndpointCmd::CallEnded {
            call_id: self.call_id.clone(),
        });
    }
}

/// Prompt names that say a number digit by digit ("1", "2" → digit-1, digit-2).
pub(crate) fn number_prompts(n: u64) -> Vec<String> {
    n.to_string()
        .chars()
        .map(|c| format!("digit-{c}"))
        .collect()
}

/// Status code of a `message/sipfrag` NOTIFY body (`SIP/2.0 200 OK`).
fn sipfrag_status(body: &str) -> Option<u16> {
    let line = body.lines().next()?.trim();
    let rest = line.strip_prefix("SIP/2.0 ")?;
    rest.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sipfrag() {
        assert_eq!(sipfrag_status("SIP/2.0 200 OK\r\n"), Some(200));
        assert_eq!(sipfrag_status("SIP/2.0 100 Trying"), Some(100));
        assert_eq!(sipfrag_status("garbage"), None);
    }
}
