//! Calls from the public "call us" page: the page's offer answered, then
//! the same call task as a phone caller's (same dialplans, zero-out,
//! queues, callback offers), with a [`WebCaller`] where a SIP caller has
//! its dialog. The caller is presented as `web:<id>`; the page's `topic`
//! reaches the agent with the caller's context.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use ringback_call::inbound::{self, InboundCall};
use ringback_sansio::Now;
use ringback_sip::transaction::TransportKind;
use tokio::sync::mpsc;
use tracing::Instrument;

use super::browser::Events;
use super::{Call, CallDeps};
use crate::admission::{Admission, Load};
use crate::browser::caller::{WebCallRequest, WebCallStarted, WebCallStarter, WebCaller};
use crate::endpoint::{EndpointCmd, EndpointHandle};
use crate::metrics;
use crate::store::Cdr;

/// The web call starter the API's `/api/v1/webcall` socket uses.
pub struct WebCalls {
    ctx: Arc<CallDeps>,
    endpoint: EndpointHandle,
    /// The same limits as phone calls (`[limits]`): calls in progress,
    /// media clock load and lateness, and a call rate of its own.
    admission: std::sync::Mutex<Admission>,
}

impl WebCalls {
    /// Start web calls with the same handles as phone calls.
    pub fn new(ctx: Arc<CallDeps>, endpoint: EndpointHandle) -> WebCalls {
        let admission = Admission::new(ctx.legs.config.limits.clone(), Instant::now());
        WebCalls {
            ctx,
            endpoint,
            admission: std::sync::Mutex::new(admission),
        }
    }

    /// Whether one more call fits, as for a phone's INVITE (which gets a
    /// 503): the page is told to try again later.
    fn admit(&self) -> Result<(), String> {
        let media = &self.ctx.legs.media;
        let load = Load {
            calls: metrics::CALLS_ACTIVE.load(std::sync::atomic::Ordering::Relaxed) as usize,
            media_lag: media.recent_lag(),
            media_load_pct: media.recent_load_pct(),
            draining: crate::drain::is_draining(),
            ..Load::default()
        };
        let mut admission = self.admission.lock().unwrap_or_else(|p| p.into_inner());
        admission.admit_call(load, Instant::now()).map_err(|r| {
            metrics::rejected(r.reason);
            format!(
                "all lines are busy right now; please try again in {} s",
                r.retry_after
            )
        })
    }
}

impl WebCallStarter for WebCalls {
    fn start(&self, req: WebCallRequest) -> Result<WebCallStarted, String> {
        self.admit()?;
        let ctx = &self.ctx;
        let refuse = |why: String| {
            metrics::WEB_CALLS_REFUSED_TOTAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            why
        };
        let snapshot = ctx.dialplans.current();
        let plan = snapshot
            .plans
            .for_number(&req.number)
            .ok_or_else(|| refuse(format!("no dialplan answers `{}`", req.number)))?;
        let port = ctx
            .legs
            .media
            .allocate_port()
            .ok_or_else(|| refuse("no RTP port free; try again later".into()))?;
        let call_id = format!("web-{:016x}", rand::random::<u64>());
        let caller = format!("web:{}", &call_id[4..12]);
        let (media_tx, media_rx) = mpsc::unbounded_channel();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (web, stream, neg, answer) = WebCaller::answer(
            &ctx.legs.phones,
            &ctx.legs.media,
            port,
            ctx.legs.config.advertised_ip(),
            &call_id,
            &req,
            media_tx,
            events_tx.clone(),
        )
        .map_err(refuse)?;
        metrics::WEB_CALLS_TOTAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        metrics::CALLS_ANSWERED_TOTAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let now = Utc::now();
        let cdr = Cdr {
            call_id: call_id.clone(),
            leg: "inbound".into(),
            caller: caller.clone(),
            dialed: req.number.clone(),
            dialplan: Some(plan.name.clone()),
            dialplan_version: Some(plan.version.clone()),
            started_at: now,
            answered_at: Some(now),
            disposition: "in_progress".into(),
            vars: "{}".into(),
            ..Cdr::default()
        };
        ctx.cdr.write(cdr.clone());
        let core = InboundCall::new(
            inbound::Setup {
                call_id: call_id.clone(),
                caller: caller.clone(),
                dialed: req.number.clone(),
                plan,
                operator_queue: ctx.legs.config.operator_queue.clone(),
                queues: Arc::clone(&ctx.queue_settings),
                extensions: Arc::clone(&snapshot) as Arc<dyn inbound::Extensions>,
                refresh_every: None,
                known: inbound::KnownCaller::default(),
                language_skills: Arc::clone(&ctx.language_skills),
                acd_at: ctx.owner.borrow().acd_at(),
            },
            Now::system(),
        );
        // The endpoint routes nothing SIP to a web call, but it counts it
        // and tells it when the server shuts down.
        let (sip_tx, mut sip_rx) = mpsc::unbounded_channel();
        self.endpoint.send(EndpointCmd::Register {
            call_id: call_id.clone(),
            tx: sip_tx,
        });
        let (leg_media_tx, mut leg_media_rx) = mpsc::unbounded_channel();
        let mut call = Call {
            ctx: Arc::clone(ctx),
            endpoint: self.endpoint.clone(),
            call_id: call_id.clone(),
            source: ([127, 0, 0, 1], 0).into(),
            transport: TransportKind::Udp,
            snapshot,
            dialog: None,
            core,
            stream,
            local_sdp_version: 1,
            session_id: 0,
            caller_codec: neg.codec,
            offer_answer: None,
            web: Some(web),
            cdr,
            queue_rx: None,
            legs: Vec::new(),
            offered: None,
            repeat_calls: None,
            customer: None,
            leg_media: leg_media_tx,
            browser: Some(Events {
                tx: events_tx.clone(),
                rx: events_rx,
            }),
            lookup: None,
            rec: Default::default(),
            hop: None,
            owner: ctx.owner.clone(),
        };
        let span =
            tracing::info_span!("call", call_id = %call_id, caller = %caller, dialed = %req.number);
        tracing::info!(parent: &span, topic = ?req.topic, "web call answered");
        let mut media_rx = media_rx;
        tokio::spawn(
            async move {
                let ending = call
                    .event_loop(&mut sip_rx, &mut media_rx, &mut leg_media_rx)
                    .await;
                call.finish(ending);
            }
            .instrument(span),
        );
        Ok(WebCallStarted {
            answer,
            events: events_tx,
            call_id,
        })
    }
}
