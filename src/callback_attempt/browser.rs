//! A callback offered to an agent who takes calls in the browser: the
//! agent's page rings with the callback's context, the whisper plays there
//! once answered, and the customer is bridged to it like to a SIP phone.
//! What the page says becomes the same core events as a phone's responses.

use chrono::Utc;
use ringback_call::attempt::{Input, LegEvent};
use ringback_call::HangupBy;
use ringback_media::codec::Codec;

use super::record::{leg_cdr, LegFacts};
use super::{placer, Shell};
use crate::browser::leg::BrowserLeg;
use crate::browser::messages::{BrowserEvent, EventKind};

impl Shell {
    /// Ring `agent`'s browser phone for this callback.
    pub(super) fn ring_browser(&mut self, agent: String, waited_secs: i64) {
        let known = self.ctx.directory.lookup(&self.cb.number);
        let headers = placer::agent_headers(&self.cb, waited_secs, known.as_deref());
        let legs = &self.ctx.legs;
        match BrowserLeg::ring(
            &legs.phones,
            &legs.media,
            legs.config.advertised_ip(),
            &agent,
            headers,
            Codec::Pcmu,
            self.browser_tx.clone(),
        ) {
            Ok(leg) => {
                tracing::info!(%agent, leg = %leg.id, "ringing agent's browser for a callback");
                self.browser = Some((agent, leg));
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot ring the agent's browser");
                self.feed(Input::Agent(LegEvent::DialFailed));
            }
        }
    }

    /// What the agent's page said: the core's agent-leg event, if any.
    pub(super) fn on_browser(&mut self, ev: BrowserEvent) -> Option<Input> {
        let media = self.agent_media.clone();
        let (_, leg) = self.browser.as_mut().filter(|(_, l)| l.id == ev.leg)?;
        let ringing = leg.is_ringing();
        let event = match ev.kind {
            EventKind::Answer(sdp) if ringing => {
                match leg.on_answer(&self.ctx.legs.media, &sdp, media) {
                    Ok(()) => {
                        crate::metrics::BROWSER_LEGS_ANSWERED_TOTAL
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        LegEvent::Answered
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "browser answer unusable");
                        leg.hang_up();
                        LegEvent::Failed(488)
                    }
                }
            }
            EventKind::Answer(_) => return None,
            EventKind::Hold(on) => {
                leg.set_hold(on);
                return None;
            }
            EventKind::Reject if ringing => {
                leg.finish();
                LegEvent::Failed(603)
            }
            // A page that vanished while ringing did not answer.
            EventKind::HangUp | EventKind::Gone(_) | EventKind::Reject if ringing => {
                leg.finish();
                LegEvent::Failed(480)
            }
            EventKind::HangUp | EventKind::Gone(_) | EventKind::Reject => LegEvent::Bye,
        };
        Some(Input::Agent(event))
    }

    /// Let the browser leg go (stop ringing, or hang up) and write its
    /// record. False when there was none.
    pub(super) fn drop_browser(&mut self, by: HangupBy) -> bool {
        let Some((agent, mut l)) = self.browser.take() else {
            return false;
        };
        if let Some(s) = &l.stream {
            s.unbridge();
        }
        l.hang_up();
        let facts = LegFacts {
            kind: "callback-agent",
            dialed: &agent,
            call_id: &l.id,
            started_at: l.started_at,
            answered_at: l.answered_at,
        };
        let end = Some((by, Utc::now()));
        self.ctx
            .cdr
            .write(leg_cdr(&self.cb, &self.owner, &facts, end));
        true
    }
}
