//! What agents' browser phones say about this call's legs: answer,
//! decline, hang up, hold, or a leg that vanished (a closed tab). Turned
//! into the same [`CoreLeg`] events a SIP phone's responses become, so the
//! core does not know which kind of device the agent used.

use ringback_call::inbound::{Input, LegEvent as CoreLeg};
use ringback_call::{Disposition, HangupBy};
use ringback_sansio::{Core, Now};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

use super::legs::Device;
use super::Call;
use crate::browser::messages::{BrowserEvent, EventKind};

/// The call's channel for its browser legs' events.
pub(super) struct Events {
    pub(super) tx: UnboundedSender<BrowserEvent>,
    pub(super) rx: UnboundedReceiver<BrowserEvent>,
}

impl Call {
    /// The channel, made the first time a browser leg rings.
    pub(super) fn browser_events(&mut self) -> &Events {
        self.browser.get_or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            Events { tx, rx }
        })
    }

    /// One event of a browser leg.
    pub(super) fn on_browser(&mut self, ev: BrowserEvent) {
        if ev.leg == self.call_id {
            return self.on_web_caller(ev.kind);
        }
        let Some(i) = self
            .legs
            .iter()
            .position(|l| matches!(&l.leg, Device::Browser(b) if b.id == ev.leg))
        else {
            return; // a leg already let go of
        };
        let agent = self.legs[i].agent.clone();
        let Device::Browser(leg) = &mut self.legs[i].leg else {
            return;
        };
        let ringing = leg.is_ringing();
        match ev.kind {
            EventKind::Answer(sdp) if ringing => {
                match leg.on_answer(&self.ctx.legs.media, &sdp, self.leg_media.clone()) {
                    Ok(()) => {
                        tracing::info!(%agent, leg = %ev.leg, "agent answered in the browser");
                        crate::metrics::BROWSER_LEGS_ANSWERED_TOTAL
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        self.leg_answered(i);
                    }
                    Err(e) => {
                        tracing::warn!(%agent, error = %e, "browser answer unusable");
                        leg.hang_up();
                        self.forget_leg(i, Disposition::NotAnswered, HangupBy::Agent);
                        self.device_failed(agent, CoreLeg::Failed(488));
                    }
                }
            }
            EventKind::Answer(_) => {}
            EventKind::Hold(on) => leg.set_hold(on),
            EventKind::Reject | EventKind::HangUp | EventKind::Gone(_) if ringing => {
                leg.finish();
                self.forget_leg(i, Disposition::NotAnswered, HangupBy::Agent);
                // A decline is a 603; a page that vanished while ringing is
                // an agent who did not answer: the caller keeps its place.
                let code = if ev.kind == EventKind::Reject {
                    603
                } else {
                    480
                };
                self.device_failed(agent, CoreLeg::Failed(code));
            }
            EventKind::Reject | EventKind::HangUp | EventKind::Gone(_) => {
                if let EventKind::Gone(why) = &ev.kind {
                    tracing::info!(%agent, %why, "browser leg gone mid-call");
                }
                if let Some(s) = &leg.stream {
                    s.unbridge();
                }
                leg.finish();
                self.forget_leg(i, Disposition::Completed, HangupBy::Agent);
                self.leg_input(agent, CoreLeg::HungUp);
            }
        }
    }

    /// The web caller's page hung up or vanished (a closed tab, a lost
    /// network: its media stopped).
    fn on_web_caller(&mut self, kind: EventKind) {
        match kind {
            EventKind::HangUp | EventKind::Reject | EventKind::Gone(_) => {
                if let EventKind::Gone(why) = &kind {
                    tracing::info!(%why, "web caller gone");
                }
                self.core.handle(Input::CallerHungUp, Now::system());
            }
            EventKind::Answer(_) | EventKind::Hold(_) => {}
        }
    }
}
