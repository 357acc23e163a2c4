//! One inbound call's task: carries bytes and timers between the SIP dialog,
//! the RTP stream, the agent legs and the call core.
//!
//! Every decision (what a key means in which phase, when to announce, when
//! a transfer has failed, how the call ended) is made by
//! [`ringback_call::inbound::InboundCall`], a sans-IO state machine. This
//! task answers the INVITE, then runs a loop: feed the core what arrived,
//! carry out what it asks (play, ring, bridge, ask the ACD or the callback
//! service and feed back the answer), sleep until its next deadline. A call
//! keeps the dialplan snapshot it started with, so a reload never changes a
//! call in progress.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use ringback_call::inbound::{self, InboundCall, Input};
use ringback_call::{Ending, HangupBy};
use ringback_media::sdp::{Negotiated, RemoteSdp};
use ringback_sansio::{Core, Now};
use ringback_sip::dialog::Dialog;
use ringback_sip::message::{self, ViaSpec};
use ringback_sip::session_timer;
use ringback_sip::transaction::{TransactionKey, TransportKind};
use rsip::prelude::*;
use tokio::sync::mpsc::{self, UnboundedReceiver};
use tracing::Instrument;

mod admit;
mod browser;
mod caller;
mod carry;
mod dips;
mod hop;
mod legs;
mod placer;
mod questions;
mod recording;
mod sip;
mod web;

use admit::Admitted;
pub use placer::{queue_settings, CallDeps, CallPlacer};
pub use web::WebCalls;

use crate::acd_task::QueueNotice;
use crate::agent_devices::Devices;
use crate::endpoint::{EndpointCmd, EndpointHandle, SipInput, ALLOW};
use crate::media::{MediaEvent, Stream};
use crate::metrics;
use crate::outbound::contact_uri;
use crate::snapshot::Snapshot;
use crate::store::Cdr;
use legs::AgentLeg;

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

/// The answered call, as the task holds it.
struct Call {
    ctx: Arc<CallDeps>,
    endpoint: EndpointHandle,
    call_id: String,
    source: SocketAddr,
    transport: TransportKind,
    snapshot: Arc<Snapshot>,
    /// The caller's SIP dialog (`None`: a web caller, see `web`).
    dialog: Option<Dialog>,
    core: InboundCall,
    stream: Stream,
    local_sdp_version: u64,
    session_id: u64,
    offer_answer: Option<(RemoteSdp, Negotiated)>,
    /// The caller's codec: offered first to agents (no transcoding).
    caller_codec: ringback_media::codec::Codec,
    /// A caller from the public web page (no SIP dialog).
    web: Option<crate::browser::caller::WebCaller>,
    cdr: Cdr,
    /// Notices from the ACD while queued.
    queue_rx: Option<UnboundedReceiver<QueueNotice>>,
    /// Agent legs (several at once with ring-all).
    legs: Vec<AgentLeg>,
    /// Where the agent being offered can be reached (from the ACD's notice,
    /// used when the core says to ring).
    offered: Option<Devices>,
    /// Calls from this number in the last 7 days (looked up once).
    repeat_calls: Option<i64>,
    /// The caller in the customer directory (looked up once, in memory).
    customer: Option<Arc<ringback_customers::Known>>,
    /// Media events of the agent legs (their RTP timeouts).
    leg_media: mpsc::UnboundedSender<MediaEvent>,
    /// What agents' browser phones say about this call's legs (made when
    /// the first browser leg rings).
    browser: Option<browser::Events>,
    /// The dialplan lookup under way.
    lookup: dips::Pending,
    /// The recording of the bridge, and the queue's announcement.
    rec: recording::CallRecording,
    /// The leg to the node that owns the queues (one queue across nodes).
    hop: Option<hop::HopLeg>,
    /// Who owns the queues; a change is fed to the core.
    owner: crate::cluster::OwnerWatch,
}

/// Run one call to its end.
pub async fn run(ctx: Arc<CallDeps>, setup: CallSetup, sip_rx: UnboundedReceiver<SipInput>) {
    let span = tracing::info_span!(
        "call",
        call_id = %setup.call_id,
        caller = %setup.admitted.caller,
        dialed = %setup.admitted.dialed,
    );
    run_inner(ctx, setup, sip_rx).instrument(span).await
}

/// End a call that never got answered: its record and its routing.
fn finish_unanswered(
    ctx: &CallDeps,
    endpoint: &EndpointHandle,
    mut cdr: Cdr,
    disposition: &str,
    code: i32,
) {
    cdr.ended_at = Some(Utc::now());
    cdr.disposition = disposition.into();
    cdr.sip_code = Some(code);
    cdr.hangup_by = Some(HangupBy::Caller.as_str().into());
    metrics::call_ended(disposition);
    endpoint.send(EndpointCmd::CallEnded {
        call_id: cdr.call_id.clone(),
    });
    ctx.cdr.write(cdr);
}

fn respond_code(
    endpoint: &EndpointHandle,
    key: TransactionKey,
    req: &rsip::Request,
    code: u16,
    tag: &str,
) {
    let response = message::make_response(req, code, Some(tag));
    endpoint.send(EndpointCmd::Respond { key, response });
}

async fn run_inner(ctx: Arc<CallDeps>, setup: CallSetup, mut sip_rx: UnboundedReceiver<SipInput>) {
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

    let (media_tx, mut media_rx) = mpsc::unbounded_channel();
    // No remote address until the call is answered: no media before the 200.
    let stream = match ctx.legs.media.open_stream(
        port,
        &negotiated,
        negotiated
            .srtp
            .as_ref()
            .map(crate::media::secure::SrtpSession::answering),
        media_tx,
    ) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot open RTP stream");
            respond_code(&endpoint, key, &invite, 500, &message::new_tag());
            finish_unanswered(&ctx, &endpoint, cdr, "failed", 500);
            return;
        }
    };
    let local_tag = message::new_tag();
    let session_id: u64 = rand::random::<u32>().into();
    // A caller another node sends to our queues (one queue across nodes).
    let hopped = match hop::hop_in(&ctx.legs.config, &invite) {
        Ok(h) => h,
        Err((code, why)) => {
            tracing::warn!(code, %why, "hop refused");
            let mut resp = message::make_response(&invite, code, Some(&local_tag));
            resp.headers.push(message::make_header(
                "Warning",
                &format!("399 ringback \"{why}\""),
            ));
            endpoint.send(EndpointCmd::Respond {
                key,
                response: resp,
            });
            finish_unanswered(&ctx, &endpoint, cdr, "failed", i32::from(code));
            return;
        }
    };
    if let Some((hop, _)) = &hopped {
        // The queue part of a call that landed on another node: the
        // origin's `inbound` record is the call's; this one is its wait.
        cdr.leg = "hop".into();
        cdr.parent_call_id = message::header_value(&invite, "X-Ringback-Call-Id");
        tracing::info!(queue = %hop.queue, entered = %hop.entered_at, "a caller hopped here from another node");
    }

    // Ringing phase (optional): the caller may still CANCEL.
    let delay = Duration::from_millis(ctx.legs.config.sip.answer_delay_ms);
    if !delay.is_zero() {
        respond_code(&endpoint, key.clone(), &invite, 180, &local_tag);
        let answer_at = tokio::time::Instant::now() + delay;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(answer_at) => break,
                input = sip_rx.recv() => match input {
                    Some(SipInput::Cancelled) | Some(SipInput::Shutdown) | None => {
                        respond_code(&endpoint, key, &invite, 487, &local_tag);
                        tracing::info!("caller cancelled before answer");
                        finish_unanswered(&ctx, &endpoint, cdr, "cancelled", 487);
                        return;
                    }
                    Some(_) => {}
                },
            }
        }
    }

    let advertised = ctx.legs.config.advertised_ip();
    let contact_uri = contact_uri(advertised, endpoint.port_for(transport), transport);
    let answer = match stream.answer_sdp(&negotiated, &offer, advertised, session_id, 1) {
        Ok(a) => a,
        Err(code) => {
            respond_code(&endpoint, key, &invite, code, &local_tag);
            finish_unanswered(&ctx, &endpoint, cdr, "failed", i32::from(code));
            return;
        }
    };
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
        finish_unanswered(&ctx, &endpoint, cdr, "failed", 422);
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
        .push(rsip::headers::Server::new(ctx.legs.config.sip.user_agent.clone()).into());
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
            respond_code(&endpoint, key, &invite, 400, &local_tag);
            finish_unanswered(&ctx, &endpoint, cdr, "failed", 400);
            return;
        }
    };
    endpoint.send(EndpointCmd::Respond { key, response: ok });
    stream.apply_negotiation(&negotiated);
    metrics::CALLS_ANSWERED_TOTAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    cdr.answered_at = Some(Utc::now());
    cdr.disposition = "in_progress".into();
    let customer = ctx.directory.lookup(&caller);
    cdr.customer_key = customer.as_ref().map(|k| k.routing_key());
    ctx.cdr.write(cdr.clone());
    tracing::info!(
        customer = customer.as_ref().map(|k| k.id),
        dialplan = %plan.name,
        version = %plan.version,
        codec = ?negotiated.codec,
        "answered"
    );

    let setup = inbound::Setup {
        call_id: call_id.clone(),
        caller,
        dialed,
        plan,
        operator_queue: ctx.legs.config.operator_queue.clone(),
        queues: Arc::clone(&ctx.queue_settings),
        extensions: Arc::clone(&snapshot) as Arc<dyn inbound::Extensions>,
        refresh_every: timer
            .our_refresh_secs()
            .map(|s| Duration::from_secs(u64::from(s))),
        known: caller::known_caller(customer.as_deref()),
        language_skills: Arc::clone(&ctx.language_skills),
        acd_at: ctx.owner.borrow().acd_at(),
    };
    let core = match hopped {
        Some((hop, vars)) => InboundCall::hopped_in(setup, hop, vars, Now::system()),
        None => InboundCall::new(setup, Now::system()),
    };
    let (leg_media_tx, mut leg_media_rx) = mpsc::unbounded_channel();
    let mut call = Call {
        ctx: Arc::clone(&ctx),
        endpoint,
        call_id,
        source,
        transport,
        snapshot,
        dialog: Some(dialog),
        core,
        stream,
        local_sdp_version: 1,
        session_id,
        caller_codec: negotiated.codec,
        offer_answer: Some((offer, negotiated)),
        web: None,
        cdr,
        queue_rx: None,
        legs: Vec::new(),
        offered: None,
        repeat_calls: None,
        customer,
        leg_media: leg_media_tx,
        browser: None,
        lookup: None,
        rec: Default::default(),
        hop: None,
        owner: ctx.owner.clone(),
    };
    let ending = call
        .event_loop(&mut sip_rx, &mut media_rx, &mut leg_media_rx)
        .await;
    call.finish(ending);
}

impl Call {
    /// The loop: carry out the core's outputs, then wait for the next input
    /// or deadline. Returns when the core says the call has ended.
    async fn event_loop(
        &mut self,
        sip_rx: &mut UnboundedReceiver<SipInput>,
        media_rx: &mut UnboundedReceiver<MediaEvent>,
        leg_media_rx: &mut UnboundedReceiver<MediaEvent>,
    ) -> Ending {
        loop {
            if let Some(end) = self.carry_out().await {
                return end;
            }
            let deadline = self.core.poll_timeout();
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
            let browser = async {
                match self.browser.as_mut() {
                    Some(b) => b.rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            let owner = &mut self.owner;
            tokio::select! {
                Ok(()) = owner.changed() => self.on_owner_changed(),
                Some(n) = notice => self.on_queue_notice(n),
                Some(ev) = browser => self.on_browser(ev),
                input = sip_rx.recv() => match input {
                    Some(input) => self.on_sip(input),
                    // The endpoint is gone: the server is stopping.
                    None => self.core.handle(Input::Shutdown, Now::system()),
                },
                Some(ev) = media_rx.recv() => self.on_media(ev),
                Some(ev) = leg_media_rx.recv() => self.on_leg_media(ev),
                answer = dips::answer(&mut self.lookup) => {
                    self.lookup = None;
                    self.core.handle(Input::LookupDone(answer), Now::system());
                }
                _ = sleep => self.core.handle_timeout(Now::system()),
            }
        }
    }

    fn on_media(&mut self, ev: MediaEvent) {
        let input = match ev {
            MediaEvent::PlaybackDone { token } if self.notice_done(token) => return,
            MediaEvent::PlaybackDone { token } => Input::PlaybackDone { token },
            // Counted by the media task, which knows the digit's source.
            MediaEvent::Digit(d) => {
                tracing::info!(digit = %d, "digit");
                Input::Digit(d)
            }
            MediaEvent::RtpTimeout => Input::RtpTimeout,
        };
        self.core.handle(input, Now::system());
    }

    fn via(&self) -> ViaSpec {
        ViaSpec {
            host: self.ctx.legs.config.advertised_ip().to_string(),
            port: Some(self.endpoint.port_for(self.transport)),
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

    /// The call is over: legs down, BYE if ours to send, the record written.
    fn finish(mut self, end: Ending) {
        self.ctx.live.gone(&self.call_id);
        self.stop_recording();
        self.drop_all_legs();
        self.drop_hop();
        self.stream.unbridge();
        if end.send_bye {
            let via = self.via();
            let outcome = self.hop_outcome(end.disposition.as_str());
            if let Some(d) = self.dialog.as_mut() {
                let mut bye = d.make_request(rsip::Method::Bye, &via);
                if let Some((name, value)) = outcome {
                    bye.headers.push(message::make_header(&name, &value));
                }
                self.send_request(bye);
            }
            if let Some(w) = &mut self.web {
                w.hang_up();
            }
        }
        let disposition = end.disposition.as_str();
        let hangup_by = end.hangup_by.as_str();
        self.cdr.path = self.core.path();
        self.cdr.digits = self.core.digits();
        self.cdr.vars = serde_json::to_string(self.core.vars()).unwrap_or_else(|_| "{}".into());
        self.cdr.ended_at = Some(Utc::now());
        self.cdr.disposition = disposition.into();
        self.cdr.hangup_by = Some(hangup_by.into());
        self.cdr.queue = self.core.queue().map(str::to_string);
        self.cdr.survey = self.core.survey().cloned();
        tracing::info!(
            disposition,
            hangup_by,
            path = %self.cdr.path,
            digits = %self.cdr.digits,
            rtp_sent = self.stream.packets_sent(),
            rtp_received = self.stream.packets_received(),
            "call ended"
        );
        self.ctx.cdr.write(self.cdr.clone());
        metrics::call_ended(disposition);
        self.endpoint.send(EndpointCmd::CallEnded {
            call_id: self.call_id.clone(),
        });
    }
}
