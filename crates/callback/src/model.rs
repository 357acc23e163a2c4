//! The callback record, its states, attempt results and transitions — the
//! shapes the shell persists.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

/// Where a callback is in its life.
///
/// ```text
/// requested → scheduled → dialing → connected → completed
///                 ↑  ↑       │ ╲
///                 │  └───────┘  ╲→ retry_wait → dialing …   (busy, no answer, …)
///                 │  agent lost  ╲→ failed                  (max attempts)
///                 │               ╲→ cancelled              (customer pressed 2)
///   any waiting state → cancelled (API, caller) · expired (past expires_at)
/// ```
///
/// The lowercase names from [`CallbackState::as_str`] are stored in the
/// database and shown by the API; they never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CallbackState {
    /// Accepted by the guards, not yet scheduled. Only ever seen in the
    /// `from` of the first transition, or in a store row written by a node
    /// that crashed between the two.
    Requested,
    /// Waiting for its turn: enters the ACD when dialing is allowed
    /// (`next_attempt_at` passed, dialing window and preferred window open).
    Scheduled,
    /// An agent was picked; the agent leg and then the customer leg are
    /// being set up. One attempt is counted.
    Dialing,
    /// The customer accepted (pressed 1) and is bridged to the agent.
    Connected,
    /// The customer talked to an agent. Terminal.
    Completed,
    /// The last attempt failed (busy, no answer, …); waits for the backoff
    /// to pass and the dialing window to open, then behaves as `Scheduled`.
    RetryWait,
    /// Every attempt failed. Terminal.
    Failed,
    /// Cancelled by the customer (pressed 2, or asked for it) or through
    /// the API. Terminal.
    Cancelled,
    /// Not completed before `expires_at`. Terminal.
    Expired,
}

impl CallbackState {
    /// Every state, in lifecycle order.
    pub const ALL: [CallbackState; 9] = [
        CallbackState::Requested,
        CallbackState::Scheduled,
        CallbackState::Dialing,
        CallbackState::Connected,
        CallbackState::Completed,
        CallbackState::RetryWait,
        CallbackState::Failed,
        CallbackState::Cancelled,
        CallbackState::Expired,
    ];

    /// Stable lowercase name: `requested`, `scheduled`, `dialing`,
    /// `connected`, `completed`, `retry_wait`, `failed`, `cancelled`,
    /// `expired`.
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackState::Requested => "requested",
            CallbackState::Scheduled => "scheduled",
            CallbackState::Dialing => "dialing",
            CallbackState::Connected => "connected",
            CallbackState::Completed => "completed",
            CallbackState::RetryWait => "retry_wait",
            CallbackState::Failed => "failed",
            CallbackState::Cancelled => "cancelled",
            CallbackState::Expired => "expired",
        }
    }

    /// The state named by [`as_str`](Self::as_str); `None` for anything
    /// else (names are case-sensitive, as stored).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Not yet finished: counts for dedupe and `max_pending`.
    pub fn is_live(self) -> bool {
        !self.is_terminal()
    }

    /// `completed`, `failed`, `cancelled` or `expired`: nothing follows.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            CallbackState::Completed
                | CallbackState::Failed
                | CallbackState::Cancelled
                | CallbackState::Expired
        )
    }

    /// Waiting for its turn (`scheduled` or `retry_wait`): may be handed to
    /// the ACD, cancelled or rescheduled.
    pub fn is_waiting(self) -> bool {
        matches!(self, CallbackState::Scheduled | CallbackState::RetryWait)
    }
}

impl fmt::Display for CallbackState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no [`CallbackState`] (or [`Origin`], or
/// [`AttemptResult`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{value}`")]
pub struct UnknownName {
    /// What was being parsed (`callback state`, `origin`, `attempt result`).
    pub what: &'static str,
    /// The offending text.
    pub value: String,
}

impl FromStr for CallbackState {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or_else(|| UnknownName {
            what: "callback state",
            value: s.to_owned(),
        })
    }
}

/// How the callback was requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// From a caller waiting in a queue or at zero-out.
    Ivr,
    /// Through `POST /api/v1/callbacks`.
    Web,
}

impl Origin {
    /// Stable lowercase name: `ivr` or `web`.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Ivr => "ivr",
            Origin::Web => "web",
        }
    }

    /// The origin named by [`as_str`](Self::as_str).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ivr" => Some(Origin::Ivr),
            "web" => Some(Origin::Web),
            _ => None,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Origin {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or_else(|| UnknownName {
            what: "origin",
            value: s.to_owned(),
        })
    }
}

/// How one attempt ended, as the dialer reports it to
/// [`Scheduler::finished`](crate::Scheduler::finished).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AttemptResult {
    /// Customer and agent talked (only after `connected`). → `completed`.
    Completed,
    /// The customer's line was busy (486/600). → retry.
    CustomerBusy,
    /// The customer did not answer (408/480, or ring timeout). → retry.
    CustomerNoAnswer,
    /// The customer answered and pressed 2. → `cancelled`.
    CustomerDeclined,
    /// The customer answered but did not press 1 within
    /// `accept_timeout_secs` (often voicemail). → retry.
    CustomerNoAcceptance,
    /// The trunk refused or failed the customer leg (detail for the log,
    /// e.g. `503 Service Unavailable`). → retry: the attempt is counted, so
    /// a number the trunk always rejects ends in `failed`.
    Failed(String),
    /// The agent hung up (or their leg failed) before the customer
    /// answered. Not the customer's fault: the attempt is not counted and
    /// the callback goes straight back to `scheduled` with its original
    /// place in line, i.e. to the head of the line.
    AgentLost,
}

impl AttemptResult {
    /// Stable code: `completed`, `busy`, `no_answer`, `declined`,
    /// `no_acceptance`, `failed`, `agent_lost`.
    pub fn code(&self) -> &'static str {
        match self {
            AttemptResult::Completed => "completed",
            AttemptResult::CustomerBusy => "busy",
            AttemptResult::CustomerNoAnswer => "no_answer",
            AttemptResult::CustomerDeclined => "declined",
            AttemptResult::CustomerNoAcceptance => "no_acceptance",
            AttemptResult::Failed(_) => "failed",
            AttemptResult::AgentLost => "agent_lost",
        }
    }

    /// Parses the [`Display`](fmt::Display) form back (`failed: <detail>`
    /// for [`AttemptResult::Failed`], the bare code otherwise).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "completed" => AttemptResult::Completed,
            "busy" => AttemptResult::CustomerBusy,
            "no_answer" => AttemptResult::CustomerNoAnswer,
            "declined" => AttemptResult::CustomerDeclined,
            "no_acceptance" => AttemptResult::CustomerNoAcceptance,
            "agent_lost" => AttemptResult::AgentLost,
            "failed" => AttemptResult::Failed(String::new()),
            _ => AttemptResult::Failed(s.strip_prefix("failed: ")?.to_owned()),
        })
    }
}

impl fmt::Display for AttemptResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttemptResult::Failed(detail) if !detail.is_empty() => write!(f, "failed: {detail}"),
            other => f.write_str(other.code()),
        }
    }
}

impl FromStr for AttemptResult {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or_else(|| UnknownName {
            what: "attempt result",
            value: s.to_owned(),
        })
    }
}

/// One callback: what the store keeps as the current-state row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    /// Unique id, chosen by the shell (it is the store's key).
    pub id: String,
    /// Queue whose agents call back.
    pub queue: String,
    /// Number to call, normalised (see [`normalize_number`](crate::normalize_number)).
    pub number: String,
    /// Current state.
    pub state: CallbackState,
    /// The caller's place in line: when they first entered the queue (for a
    /// web request, when it was made). Never changes; the ACD orders
    /// callbacks and live callers by it.
    pub entered_at: DateTime<Utc>,
    /// When the request was accepted.
    pub created_at: DateTime<Utc>,
    /// Attempts counted so far (≤ the policy's `max_attempts`).
    pub attempts: u32,
    /// For `scheduled` / `retry_wait`: not dialed before this moment (the
    /// backoff and the window openings known when it was set). `None` in
    /// the other states.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The customer's preferred window `[start, end)`: only dialed inside it.
    pub preferred: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// Expires (if still waiting) at this moment.
    pub expires_at: DateTime<Utc>,
    /// Free text shown to the agent in the whisper and on screen (menu
    /// path, web form text).
    pub context: String,
    /// How it was requested.
    pub origin: Origin,
    /// The result of the last attempt, if any.
    pub last_result: Option<AttemptResult>,
}

/// A request for a callback, as the IVR or the API hands it to
/// [`Scheduler::request`](crate::Scheduler::request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCallback {
    /// Unique id for the new callback (shell-generated).
    pub id: String,
    /// The queue.
    pub queue: String,
    /// The number as given (normalised by the scheduler).
    pub number: String,
    /// When the caller first entered the queue; for web requests, now.
    pub entered_at: DateTime<Utc>,
    /// The customer's preferred window `[start, end)`, if any.
    pub preferred: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// Not to be dialed before this instant (an after-hours request: the
    /// next opening); the expiry then counts from it, not from now.
    pub not_before: Option<DateTime<Utc>>,
    /// Free text for the agent.
    pub context: String,
    /// How it was requested.
    pub origin: Origin,
}

/// One state change: an append-only event row. The shell writes it (and the
/// callback's new current state) before acting on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The callback.
    pub id: String,
    /// State before.
    pub from: CallbackState,
    /// State after (may equal `from` for a reschedule).
    pub to: CallbackState,
    /// When.
    pub at: DateTime<Utc>,
    /// Human-readable reason for the history and logs, e.g.
    /// `busy; retry 2 of 3 at 2026-11-23T15:04:00Z`.
    pub reason: String,
    /// Attempts counted after this transition.
    pub attempt: u32,
    /// The callback's `next_attempt_at` after this transition (`None` when
    /// not waiting), so a row is complete without re-reading the callback.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The attempt result that caused it, for transitions out of
    /// `dialing` / `connected`.
    pub result: Option<AttemptResult>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_round_trip() {
        for st in CallbackState::ALL {
            assert_eq!(CallbackState::parse(st.as_str()), Some(st));
            assert_eq!(st.to_string().parse::<CallbackState>(), Ok(st));
        }
        assert_eq!(CallbackState::RetryWait.as_str(), "retry_wait");
        assert!(CallbackState::parse("Scheduled").is_none());
        let live: Vec<_> = CallbackState::ALL
            .into_iter()
            .filter(|s| s.is_live())
            .collect();
        assert_eq!(
            live,
            [
                CallbackState::Requested,
                CallbackState::Scheduled,
                CallbackState::Dialing,
                CallbackState::Connected,
                CallbackState::RetryWait
            ]
        );
    }

    #[test]
    fn results_round_trip() {
        for r in [
            AttemptResult::Completed,
            AttemptResult::CustomerBusy,
            AttemptResult::CustomerNoAnswer,
            AttemptResult::CustomerDeclined,
            AttemptResult::CustomerNoAcceptance,
            AttemptResult::Failed("503 Service Unavailable".into()),
            AttemptResult::Failed(String::new()),
            AttemptResult::AgentLost,
        ] {
            assert_eq!(AttemptResult::parse(&r.to_string()), Some(r));
        }
        assert!(AttemptResult::parse("nope").is_none());
        assert_eq!(Origin::parse("web"), Some(Origin::Web));
        assert_eq!("ivr".parse::<Origin>(), Ok(Origin::Ivr));
    }
}
