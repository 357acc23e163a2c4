//! The attempt's SIP: which leg a message belongs to, INFO digits,
//! answering re-INVITEs, and waiting for a carrier's challenge to our BYE.

use std::sync::Arc;
use std::time::Duration;

use ringback_call::attempt::{Input, Leg, LegEvent};
use ringback_media::dtmf::parse_sip_info;
use ringback_sip::message;
use tokio::sync::mpsc::UnboundedReceiver;

use super::Shell;
use crate::endpoint::{EndpointCmd, SipInput};
use crate::outbound::{self, OutboundLeg};

impl Shell {
    pub(super) fn on_sip(&mut self, input: SipInput) -> Option<Input> {
        match input {
            SipInput::Response { response, .. } => {
                let leg = self.leg_of(&message::call_id(response.as_ref()).unwrap_or_default())?;
                let media = match leg {
                    Leg::Agent => self.agent_media.clone(),
                    Leg::Customer => self.customer_media.clone(),
                };
                let (ctx, endpoint) = (Arc::clone(&self.ctx), self.endpoint.clone());
                let event = self
                    .leg_mut(leg)?
                    .on_response(&ctx, &endpoint, &response, media);
                let event = match event {
                    outbound::LegEvent::Progress => return None,
                    outbound::LegEvent::EarlyMedia => LegEvent::EarlyMedia,
                    outbound::LegEvent::Answered => LegEvent::Answered,
                    outbound::LegEvent::AnsweredTooLate => LegEvent::AnsweredTooLate,
                    outbound::LegEvent::Failed(code) => LegEvent::Failed(code),
                };
                if (leg, &event) == (Leg::Customer, &LegEvent::Answered) {
                    self.customer_answered();
                }
                Some(Input::on(leg, event))
            }
            SipInput::Timeout { key } => [Leg::Customer, Leg::Agent]
                .into_iter()
                .find(|&leg| self.leg(leg).is_some_and(|l| l.owns(&key)))
                .map(|leg| Input::on(leg, LegEvent::Timeout)),
            SipInput::Request { key, request } => self.on_request(key, *request),
            SipInput::Shutdown => Some(Input::Shutdown),
            SipInput::Cancelled | SipInput::Ack | SipInput::AckTimeout => None,
        }
    }

    fn on_request(
        &mut self,
        key: ringback_sip::transaction::TransactionKey,
        req: rsip::Request,
    ) -> Option<Input> {
        let leg = self.leg_of(&message::call_id(&req).unwrap_or_default());
        let reply = |code| {
            let resp = message::make_response(&req, code, None);
            self.endpoint.send(EndpointCmd::Respond {
                key: key.clone(),
                response: resp,
            });
        };
        let Some(leg) = leg else {
            reply(481);
            return None;
        };
        match req.method {
            rsip::Method::Bye => {
                reply(200);
                tracing::info!(?leg, "hung up");
                Some(Input::on(leg, LegEvent::Bye))
            }
            rsip::Method::Info => {
                let ctype = message::content_type(&req).unwrap_or_default();
                let Some(d) = parse_sip_info(&ctype, &req.body) else {
                    reply(415);
                    return None;
                };
                reply(200);
                (leg == Leg::Customer).then_some(Input::CustomerDigit(d))
            }
            rsip::Method::Invite | rsip::Method::Update => {
                let (ctx, endpoint) = (Arc::clone(&self.ctx), self.endpoint.clone());
                if let Some(l) = self.leg_mut(leg) {
                    l.on_reinvite(&ctx, &endpoint, key, &req);
                }
                None
            }
            _ => {
                reply(200);
                None
            }
        }
    }

    /// Wait (a few seconds at most) for the final answer to our BYE on
    /// `leg`, answering a carrier's 401/407 to it with credentials.
    pub(super) async fn await_bye(
        &self,
        leg: &mut OutboundLeg,
        sip_rx: &mut UnboundedReceiver<SipInput>,
    ) {
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
}
