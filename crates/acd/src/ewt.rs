//! Estimated wait time and its spoken rounding.
//!
//! # Formula
//!
//! With `f` members free right now (available and reachable), `s` members
//! serving (logged in, reachable, not paused) and `h` the queue's moving
//! average handle time (talk + wrap-up):
//!
//! ```text
//! ewt(p) = 0                          if p <= f
//!        = (p - f) · h / max(1, s)    otherwise
//! ```
//!
//! The caller at position `p` needs `p - f` agents to free up. If each of
//! the `s` busy agents frees after an exponentially distributed handle time
//! of mean `h` (the Erlang-C assumption), departures arrive at rate `s / h`
//! and the `k`-th is expected after `k · h / s`. It is monotonic
//! (non-decreasing) in `p` by construction, and answers the question callers
//! care about ("about how long?") without the arrival rate that a full
//! Erlang-C model needs and a small queue cannot estimate well.
//!
//! `h` starts at the queue's `seed_handle_time` and moves with every
//! completed call: `h ← h + (sample − h) / 5` (an exponential moving average
//! whose weight halves about every 3 calls), where the sample runs from
//! connect to the end of the agent's wrap-up.

use std::fmt;
use std::time::Duration;

/// Weight of one new handle-time sample in the moving average (1/5).
pub(crate) const EMA_DIVISOR: u32 = 5;

/// Estimated wait of the caller at 1-based `position` (see the module
/// docs). `position` 0 is treated as "being served": zero.
pub fn estimate_wait(
    position: usize,
    free_agents: usize,
    serving_agents: usize,
    avg_handle: Duration,
) -> Duration {
    if position <= free_agents {
        return Duration::ZERO;
    }
    let ahead = u32::try_from(position - free_agents).unwrap_or(u32::MAX);
    let staff = u32::try_from(serving_agents.max(1)).unwrap_or(u32::MAX);
    avg_handle.saturating_mul(ahead) / staff
}

/// Moves the average towards a new sample.
pub(crate) fn ema(avg: Duration, sample: Duration) -> Duration {
    if sample >= avg {
        avg + (sample - avg) / EMA_DIVISOR
    } else {
        avg - (avg - sample) / EMA_DIVISOR
    }
}

/// What a prompt should say about a wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WaitAnnouncement {
    /// Under one minute: "less than a minute".
    LessThanAMinute,
    /// "about N minute(s)", N ≥ 1.
    AboutMinutes(u32),
}

impl fmt::Display for WaitAnnouncement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitAnnouncement::LessThanAMinute => f.write_str("less than a minute"),
            WaitAnnouncement::AboutMinutes(1) => f.write_str("about 1 minute"),
            WaitAnnouncement::AboutMinutes(n) => write!(f, "about {n} minutes"),
        }
    }
}

/// Rounds an estimated wait for a prompt: under 60 s is "less than a
/// minute"; otherwise the nearest whole minute, halves rounded up (89 s →
/// 1, 90 s → 2). Monotonic in `ewt`.
pub fn announce_minutes(ewt: Duration) -> WaitAnnouncement {
    let secs = ewt.as_secs();
    if secs < 60 {
        return WaitAnnouncement::LessThanAMinute;
    }
    let minutes = (secs + 30) / 60;
    WaitAnnouncement::AboutMinutes(u32::try_from(minutes).unwrap_or(u32::MAX))
}
