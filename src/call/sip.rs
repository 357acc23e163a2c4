//! The caller's SIP dialog: in-dialog requests (BYE, INFO, re-INVITE,
//! UPDATE, NOTIFY), responses to our requests (REFER, UPDATE, the agent
//! legs'), and the ACD's notices, turned into the core's inputs.

use std::time::Duration;

use ringback_call::inbound::Input;
use ringback_media::dtmf::parse_sip_info;
use ringback_sansio::{Core, Now};
use ringback_sip::message;
use ringback_sip::session_timer;
use ringback_sip::transaction::TransactionKey;
use rsip::prelude::*;

use super::Call;
use crate::acd_task::QueueNotice;
use crate::endpoint::{EndpointCmd, SipInput, ALLOW};
use crate::metrics;
use crate::outbound::contact_uri;

impl Call {
    fn input(&mut self, input: Input) {
        self.core.handle(input, Now::system());
    }

    /// What the ACD says about this call.
    pub(super) fn on_queue_notice(&mut self, notice: QueueNotice) {
        let input = match notice {
            QueueNotice::Offer { agent, devices } => {
                self.offered = Some(devices);
                Input::Offer { agent }
            }
            QueueNotice::CancelOffer { agent } => Input::CancelOffer { agent },
            QueueNotice::Connected { agent } => Input::Connected { agent },
            QueueNotice::Leave { overflow, why } => Input::LeaveQueue { overflow, why },
        };
        self.input(input);
    }

    pub(super) fn on_sip(&mut self, input: SipInput) {
        match input {
            SipInput::Request { key, request } => self.on_request(key, *request),
            SipInput::Cancelled | SipInput::Ack => {}
            SipInput::Response { response, .. } => {
                if self.on_hop_response(response.as_ref())
                    || self.on_leg_response(response.as_ref())
                {
                    return;
                }
                let is_refer =
                    message::cseq(response.as_ref()).is_some_and(|(_, m)| m == rsip::Method::Refer);
                let code = response.status_code.code();
                if is_refer && code >= 200 {
                    self.input(Input::ReferAnswered { code });
                }
            }
            SipInput::Timeout { key } => {
                if !self.on_hop_timeout(&key) && !self.on_leg_timeout(&key) {
                    // Our REFER (or a session refresh) went unanswered.
                    self.input(Input::ReferTimedOut);
                }
            }
            SipInput::AckTimeout => self.input(Input::AckTimeout),
            SipInput::Shutdown => self.input(Input::Shutdown),
        }
    }

    fn on_request(&mut self, key: TransactionKey, req: rsip::Request) {
        if message::call_id(&req).as_deref() != Some(self.call_id.as_str()) {
            if !self.on_hop_request(key.clone(), &req) && !self.on_leg_request(key.clone(), &req) {
                self.respond(key, &req, 481);
            }
            return;
        }
        let Some(dialog) = self.dialog.as_mut() else {
            // A web caller has no SIP dialog to be in.
            self.respond(key, &req, 481);
            return;
        };
        if let Err(e) = dialog.on_remote_request(&req) {
            tracing::debug!(error = %e, "in-dialog request refused");
            self.respond(key, &req, 500);
            return;
        }
        match req.method {
            rsip::Method::Bye => {
                self.respond(key, &req, 200);
                self.input(Input::CallerHungUp);
            }
            rsip::Method::Info => {
                let ctype = message::content_type(&req).unwrap_or_default();
                if !ctype.to_ascii_lowercase().starts_with("application/dtmf") {
                    self.respond(key, &req, 415);
                    return;
                }
                match parse_sip_info(&ctype, &req.body) {
                    Some(d) => {
                        self.respond(key, &req, 200);
                        metrics::DTMF_SIP_INFO_TOTAL
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tracing::info!(digit = %d, "digit");
                        self.input(Input::Digit(d));
                    }
                    None => self.respond(key, &req, 400),
                }
            }
            rsip::Method::Invite => self.on_reinvite(key, req),
            rsip::Method::Notify => {
                self.respond(key, &req, 200);
                let body = String::from_utf8_lossy(&req.body);
                if let Some(code) = sipfrag_status(&body) {
                    self.input(Input::TransferProgress { code });
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
    }

    fn our_contact(&self) -> String {
        contact_uri(
            self.ctx.legs.config.advertised_ip(),
            self.endpoint.port_for(self.transport),
            self.transport,
        )
    }

    /// re-INVITE: hold/resume or a new address. The codec stays as
    /// negotiated unless the new offer no longer contains it. An offerless
    /// re-INVITE gets the current session again.
    fn on_reinvite(&mut self, key: TransactionKey, req: rsip::Request) {
        let result = if req.body.iter().all(u8::is_ascii_whitespace) {
            self.offer_answer.clone().ok_or(488)
        } else {
            self.stream.reoffer(&req.body)
        };
        match result {
            Ok((offer, neg)) => {
                tracing::info!(hold = neg.is_hold(), "re-INVITE");
                self.local_sdp_version += 1;
                let answer = match self.stream.answer_sdp(
                    &neg,
                    &offer,
                    self.ctx.legs.config.advertised_ip(),
                    self.session_id,
                    self.local_sdp_version,
                ) {
                    Ok(a) => a,
                    Err(code) => return self.respond(key, &req, code),
                };
                self.offer_answer = Some((offer, neg));
                let ok = session_timer::sdp_answer_ok(&req, answer, &self.our_contact());
                self.endpoint
                    .send(EndpointCmd::Respond { key, response: ok });
            }
            Err(code) => {
                tracing::info!(code, "re-INVITE refused");
                self.respond(key, &req, code);
            }
        }
    }

    /// Blind transfer: REFER to the caller's device.
    pub(super) fn send_refer(&mut self, target: &str) {
        let via = self.via();
        let Some(dialog) = self.dialog.as_mut() else {
            // A web caller cannot be referred anywhere: the transfer fails
            // (and the dialplan's fallback runs).
            self.input(Input::ReferAnswered { code: 488 });
            return;
        };
        let mut refer = dialog.make_request(rsip::Method::Refer, &via);
        refer.headers.push(rsip::Header::Other(
            "Refer-To".into(),
            format!("<{target}>"),
        ));
        refer.headers.push(rsip::Header::Other(
            "Referred-By".into(),
            format!("<{}>", self.our_contact()),
        ));
        self.send_request(refer);
    }

    /// Our session refresh (RFC 4028 §10, `refresher=uas`): an UPDATE
    /// without a body keeps the session alive at the caller's side.
    pub(super) fn refresh_session(&mut self, every: Duration) {
        let via = self.via();
        let Some(dialog) = self.dialog.as_mut() else {
            return; // no SIP session to refresh
        };
        let mut update = dialog.make_request(rsip::Method::Update, &via);
        update.headers.push(message::make_header(
            "Session-Expires",
            &format!("{};refresher=uas", every.as_secs() * 2),
        ));
        tracing::debug!("session refresh (UPDATE)");
        self.send_request(update);
    }
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
