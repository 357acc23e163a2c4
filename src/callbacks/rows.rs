//! Callbacks as stored: the scheduler's values to and from the store's rows,
//! and the times they carry.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use ringback_callback::{AttemptResult, Callback, CallbackState, Origin, Transition};

use crate::store::callbacks::{CallbackEventRow, CallbackRow};
use crate::store::ts;

pub(super) fn new_id() -> String {
    let r: u64 = rand::random();
    format!("cb{:x}{:08x}", Utc::now().timestamp_millis(), r as u32)
}

fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

pub(super) fn to_row(cb: &Callback) -> CallbackRow {
    CallbackRow {
        id: cb.id.clone(),
        queue: cb.queue.clone(),
        number: cb.number.clone(),
        state: cb.state.as_str().into(),
        entered_at: ts(cb.entered_at),
        created_at: ts(cb.created_at),
        updated_at: ts(Utc::now()),
        attempts: i64::from(cb.attempts),
        next_attempt_at: cb.next_attempt_at.map(ts),
        preferred_start: cb.preferred.map(|p| ts(p.0)),
        preferred_end: cb.preferred.map(|p| ts(p.1)),
        expires_at: ts(cb.expires_at),
        context: cb.context.clone(),
        origin: cb.origin.as_str().into(),
        last_result: cb.last_result.as_ref().map(ToString::to_string),
        // Not written by updates (see `Store::update_callback`); a new row
        // starts unclaimed.
        claimed_by: None,
        lease_until: None,
    }
}

pub(super) fn from_row(r: &CallbackRow) -> Option<Callback> {
    Some(Callback {
        id: r.id.clone(),
        queue: r.queue.clone(),
        number: r.number.clone(),
        state: CallbackState::parse(&r.state)?,
        entered_at: parse_ts(&r.entered_at)?,
        created_at: parse_ts(&r.created_at)?,
        attempts: u32::try_from(r.attempts).ok()?,
        next_attempt_at: r.next_attempt_at.as_deref().and_then(parse_ts),
        preferred: match (r.preferred_start.as_deref(), r.preferred_end.as_deref()) {
            (Some(a), Some(b)) => Some((parse_ts(a)?, parse_ts(b)?)),
            _ => None,
        },
        expires_at: parse_ts(&r.expires_at)?,
        context: r.context.clone(),
        origin: Origin::parse(&r.origin).unwrap_or(Origin::Web),
        last_result: r.last_result.as_deref().and_then(AttemptResult::parse),
    })
}

pub(super) fn event_row(t: &Transition, node: &str) -> CallbackEventRow {
    CallbackEventRow {
        callback_id: t.id.clone(),
        at: ts(t.at),
        from_state: t.from.as_str().into(),
        to_state: t.to.as_str().into(),
        reason: t.reason.clone(),
        attempt: i64::from(t.attempt),
        node: node.to_string(),
    }
}

/// Parse an RFC 3339 time from an API body.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::<chrono::FixedOffset>::from_str(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}
