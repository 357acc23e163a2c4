//! What ringback tells agents about the caller: the live context the
//! dashboard and the agent page show, and the `X-Ringback-*` headers of
//! the INVITE to the agent's phone, both with the caller's name and
//! account when the customer directory knows the number.

use chrono::Utc;
use ringback_call::inbound::{self, LiveUpdate};
use ringback_sansio::Now;

use super::Call;

/// Longest name or account sent in a header (the directory allows 200
/// characters for a name; a phone's screen shows far fewer).
const HEADER_MAX: usize = 100;

impl Call {
    /// Count and show what the core reports for the live view.
    pub(super) fn live(&self, update: LiveUpdate) {
        match update {
            LiveUpdate::Queued => self.ctx.live.queued(
                &self.call_id,
                crate::live::CallContext {
                    caller: self.cdr.caller.clone(),
                    caller_name: self.customer.as_ref().map(|k| k.name.clone()),
                    account: self.customer.as_ref().and_then(|k| k.account.clone()),
                    path: self.core.path(),
                    digits: self.core.digits(),
                    entered_at: self.core.entered_queue_at().unwrap_or_else(Utc::now),
                    repeat: self.repeat_calls,
                    callback_id: None,
                    callback_context: None,
                },
            ),
            LiveUpdate::Answered { waited_secs } => self.ctx.live.answered(waited_secs),
            LiveUpdate::Abandoned => self.ctx.live.abandoned(),
            LiveUpdate::Handled { talk_secs } => self.ctx.live.handled(talk_secs),
        }
    }

    /// The caller's context for the agent's phone: `X-Ringback-Caller`,
    /// `-Caller-Name` and `-Account` (when the directory knows the
    /// caller; control characters become spaces), `-Path`, `-Digits`,
    /// `-Waited`, `-Repeat`, `-Queue`, `-Call-Id` and one `-Var-<name>`
    /// per dialplan variable.
    pub(super) fn context_headers(&self) -> Vec<(String, String)> {
        let waited = self.core.waited(Now::system()).as_secs();
        let mut headers = vec![("X-Ringback-Caller".to_string(), self.cdr.caller.clone())];
        if let Some(k) = &self.customer {
            let name = ringback_customers::header_value(&k.name, HEADER_MAX);
            headers.push(("X-Ringback-Caller-Name".to_string(), name));
            if let Some(account) = &k.account {
                let account = ringback_customers::header_value(account, HEADER_MAX);
                headers.push(("X-Ringback-Account".to_string(), account));
            }
        }
        headers.extend([
            ("X-Ringback-Path".to_string(), self.core.path()),
            ("X-Ringback-Digits".to_string(), self.core.digits()),
            ("X-Ringback-Waited".to_string(), waited.to_string()),
            (
                "X-Ringback-Repeat".to_string(),
                self.repeat_calls.unwrap_or(0).to_string(),
            ),
            (
                "X-Ringback-Queue".to_string(),
                self.core.queue().unwrap_or_default().to_string(),
            ),
            ("X-Ringback-Call-Id".to_string(), self.call_id.clone()),
        ]);
        if let Some(topic) = self.web.as_ref().and_then(|w| w.topic.as_deref()) {
            let topic = ringback_customers::header_value(topic, HEADER_MAX);
            headers.push(("X-Ringback-Topic".to_string(), topic));
        }
        for (k, v) in self.core.vars() {
            headers.push((format!("X-Ringback-Var-{k}"), v.clone()));
        }
        headers
    }

    /// The display name of the INVITE to the agent: the caller's name when
    /// the directory knows them, else their number.
    pub(super) fn caller_display(&self) -> String {
        match &self.customer {
            Some(k) => ringback_customers::header_value(&k.name, HEADER_MAX),
            None => self.cdr.caller.clone(),
        }
    }
}

/// What the call core needs from the directory's record of the caller.
pub(super) fn known_caller(known: Option<&ringback_customers::Known>) -> inbound::KnownCaller {
    known.map_or_else(inbound::KnownCaller::default, |k| inbound::KnownCaller {
        priority: k.priority,
        language: k.language.clone(),
        key: Some(k.routing_key()),
    })
}
