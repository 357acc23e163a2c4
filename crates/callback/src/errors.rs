//! Why a request or an operation was refused: [`Refusal`] for a new
//! callback (guards, dedupe, limits, windows), [`CallbackError`] for an
//! operation on an existing one. Both are plain values the shell maps to its
//! own surfaces (an API status, an IVR prompt, a log line).

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::model::CallbackState;

/// Which rate limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateLimit {
    /// `max_per_number_per_day`: accepted requests for one number, over
    /// all queues, in the last 24 hours.
    PerNumberPerDay,
    /// `max_per_hour`: accepted requests over all queues and numbers in
    /// the last 60 minutes.
    GlobalPerHour,
}

impl RateLimit {
    /// The policy key that sets it: `max_per_number_per_day` or
    /// `max_per_hour`.
    pub fn key(self) -> &'static str {
        match self {
            RateLimit::PerNumberPerDay => "max_per_number_per_day",
            RateLimit::GlobalPerHour => "max_per_hour",
        }
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

fn rate_text(limit: RateLimit, max: u32) -> String {
    match limit {
        RateLimit::PerNumberPerDay => format!("for this number (at most {max} in 24 hours)"),
        RateLimit::GlobalPerHour => format!("overall (at most {max} per hour)"),
    }
}

/// Why a callback request was refused. The `Display` text is meant for an
/// API error body and a log line; [`Refusal::code`] is the stable
/// machine-readable form (and the IVR's prompt selector).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The number cannot be normalised; the text says why.
    #[error("invalid number: {0}")]
    InvalidNumber(String),
    /// A live callback for this number already exists in this queue.
    #[error("a callback to this number is already pending in this queue (id {existing_id})")]
    Duplicate {
        /// The live callback's id.
        existing_id: String,
    },
    /// The number matches a deny pattern.
    #[error("calls to this number are not allowed (blocked by pattern \"{pattern}\": premium-rate, international or denied by configuration)")]
    Denied {
        /// The first matching pattern.
        pattern: String,
    },
    /// The queue has an `allow` list and the number matches none of it.
    #[error(
        "calls to this number are not allowed (it matches none of the allowed number patterns)"
    )]
    NotAllowed,
    /// A rate limit was reached.
    #[error("too many callback requests {}; try again after {}", rate_text(*limit, *max), rfc3339(*until))]
    RateLimited {
        /// Which limit.
        limit: RateLimit,
        /// Its configured value.
        max: u32,
        /// When a request would be accepted again (by this limit).
        until: DateTime<Utc>,
    },
    /// The queue holds `max_pending` live callbacks.
    #[error("queue `{queue}` cannot take more callbacks ({max} pending)")]
    QueueFull {
        /// The queue.
        queue: String,
        /// Its `max_pending`.
        max: usize,
    },
    /// Dialing would not be allowed (window, holidays, preferred window)
    /// at any moment before the request expires; accepting it would be a
    /// promise that cannot be kept.
    #[error("no time to call back: dialing is not allowed at any time before the request would expire ({})", rfc3339(*expires_at))]
    NoDialingTime {
        /// When it would have expired.
        expires_at: DateTime<Utc>,
    },
    /// The preferred window is unusable; the text says why.
    #[error("invalid preferred time window: {0}")]
    InvalidWindow(String),
    /// The shell reused an id (a bug on its side).
    #[error("callback id `{0}` is already in use")]
    IdInUse(String),
}

impl Refusal {
    /// Stable code: `invalid_number`, `duplicate`, `denied`, `not_allowed`,
    /// `rate_limited`, `queue_full`, `no_dialing_time`, `invalid_window`,
    /// `id_in_use`.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::InvalidNumber(_) => "invalid_number",
            Refusal::Duplicate { .. } => "duplicate",
            Refusal::Denied { .. } => "denied",
            Refusal::NotAllowed => "not_allowed",
            Refusal::RateLimited { .. } => "rate_limited",
            Refusal::QueueFull { .. } => "queue_full",
            Refusal::NoDialingTime { .. } => "no_dialing_time",
            Refusal::InvalidWindow(_) => "invalid_window",
            Refusal::IdInUse(_) => "id_in_use",
        }
    }
}

/// An operation on an existing callback that was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// Not a live callback of this scheduler (unknown, or already ended).
    #[error("no live callback `{0}`")]
    Unknown(String),
    /// Not allowed in the current state; nothing changed.
    #[error("callback `{id}`: cannot {action} while {state}")]
    IllegalTransition {
        /// The callback.
        id: String,
        /// Its state.
        state: CallbackState,
        /// What was refused (`start dialing`, `cancel`, …).
        action: &'static str,
    },
    /// [`Scheduler::dialing`] for a callback that was not handed to the ACD
    /// by [`Scheduler::eligible`] (or was withdrawn since); nothing changed.
    #[error("callback `{0}` is not in the ACD (not handed out, or withdrawn)")]
    NotHandedOut(String),
    /// [`Scheduler::dialing`] while dialing is not allowed (window closed,
    /// preferred window over). The callback has been withdrawn: remove it
    /// from the ACD; it will be eligible again at `next`.
    #[error("callback `{id}`: dialing is not allowed now{}", next.map(|t| format!(" (next allowed {})", rfc3339(t))).unwrap_or_default())]
    OutsideWindow {
        /// The callback.
        id: String,
        /// When dialing is next allowed (`None`: not before it expires).
        next: Option<DateTime<Utc>>,
    },
    /// [`Scheduler::reschedule`] to a time from which dialing is never
    /// allowed before the callback expires; nothing changed.
    #[error("callback `{id}`: no dialing time between the requested time and expiry ({})", rfc3339(*expires_at))]
    NoDialingTime {
        /// The callback.
        id: String,
        /// Its expiry.
        expires_at: DateTime<Utc>,
    },
}

pub(crate) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}
