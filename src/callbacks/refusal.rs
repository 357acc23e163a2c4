//! Why the callback service refused a request or a command, as a value: the
//! scheduler's own reasons plus what only the shell can run into (the store,
//! a race with another node, the service not running). The API turns it into
//! a status and a JSON body; the IVR logs it.

use ringback_callback::{CallbackError, Refusal};

/// Why a callback request, cancel or reschedule was refused.
///
/// [`CallbackRefusal::code`] is the stable machine-readable `code` of the
/// API's error body; the `Display` text is its `error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackRefusal {
    /// The scheduler refused the request (number, dedupe, deny or allow
    /// list, rate limit, full queue, no dialing time, preferred window);
    /// its code is the scheduler's ([`Refusal::code`]).
    #[error(transparent)]
    Request(#[from] Refusal),
    /// The store already holds a live callback for this number in this
    /// queue (another node sharing the database took it first): `duplicate`.
    #[error("a callback for this number is already pending in this queue")]
    StoredElsewhere,
    /// The store failed; nothing was promised: `store`.
    #[error("the callback could not be stored; nothing was promised")]
    Store,
    /// A cancel or reschedule was refused: `unknown` for an id that is not
    /// a live callback, `conflict` for anything its state does not allow.
    #[error(transparent)]
    Command(#[from] CallbackError),
    /// The callback service is not running: `unavailable`.
    #[error("the callback service is not running")]
    Unavailable,
}

impl CallbackRefusal {
    /// Stable code: the scheduler's ([`Refusal::code`]: `invalid_number`,
    /// `duplicate`, `denied`, `not_allowed`, `rate_limited`, `queue_full`,
    /// `no_dialing_time`, `invalid_window`, `id_in_use`), or `duplicate`,
    /// `store`, `unknown`, `conflict`, `unavailable`.
    pub fn code(&self) -> &'static str {
        match self {
            CallbackRefusal::Request(r) => r.code(),
            CallbackRefusal::StoredElsewhere => "duplicate",
            CallbackRefusal::Store => "store",
            CallbackRefusal::Command(CallbackError::Unknown(_)) => "unknown",
            CallbackRefusal::Command(_) => "conflict",
            CallbackRefusal::Unavailable => "unavailable",
        }
    }
}

/// A refusal as the service's handle returns it: the typed
/// [`reason`](Self::reason), plus its code and message as fields for log
/// lines.
///
/// `code` and `message` are derived from `reason` (build one with `From`);
/// they stay fields because the IVR's log line reads them as such. Once it
/// logs `r.reason` instead, this can become an alias of [`CallbackRefusal`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackRefused {
    /// Why.
    pub reason: CallbackRefusal,
    /// `reason.code()`.
    pub code: &'static str,
    /// `reason.to_string()`.
    pub message: String,
}

impl<T: Into<CallbackRefusal>> From<T> for CallbackRefused {
    fn from(reason: T) -> Self {
        let reason = reason.into();
        CallbackRefused {
            code: reason.code(),
            message: reason.to_string(),
            reason,
        }
    }
}

impl std::fmt::Display for CallbackRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.reason.fmt(f)
    }
}

impl std::error::Error for CallbackRefused {}

#[cfg(test)]
mod tests {
    use super::*;
    use ringback_callback::{CallbackState, RateLimit};

    #[test]
    fn codes_and_messages_are_the_wire_ones() {
        let cases: Vec<(CallbackRefusal, &str, &str)> = vec![
            (
                Refusal::Denied {
                    pattern: "+900*".into(),
                }
                .into(),
                "denied",
                "calls to this number are not allowed (blocked by pattern \"+900*\"",
            ),
            (
                Refusal::RateLimited {
                    limit: RateLimit::GlobalPerHour,
                    max: 3,
                    until: chrono::DateTime::UNIX_EPOCH,
                }
                .into(),
                "rate_limited",
                "too many callback requests overall (at most 3 per hour)",
            ),
            (
                CallbackRefusal::StoredElsewhere,
                "duplicate",
                "a callback for this number is already pending in this queue",
            ),
            (
                CallbackRefusal::Store,
                "store",
                "the callback could not be stored; nothing was promised",
            ),
            (
                CallbackError::Unknown("cb1".into()).into(),
                "unknown",
                "no live callback `cb1`",
            ),
            (
                CallbackError::IllegalTransition {
                    id: "cb1".into(),
                    state: CallbackState::Dialing,
                    action: "reschedule",
                }
                .into(),
                "conflict",
                "callback `cb1`: cannot reschedule while",
            ),
            (
                CallbackRefusal::Unavailable,
                "unavailable",
                "the callback service is not running",
            ),
        ];
        for (r, code, message) in cases {
            assert_eq!(r.code(), code, "{r:?}");
            assert!(r.to_string().starts_with(message), "{r}");
            let wrapped = CallbackRefused::from(r.clone());
            assert_eq!(wrapped.code, code);
            assert_eq!(wrapped.message, r.to_string());
            assert_eq!(wrapped.to_string(), r.to_string());
            assert_eq!(wrapped.reason, r);
        }
    }
}
