//! ringback's callback policy and scheduler.
//!
//! A caller who chooses a callback hangs up and keeps their place in line;
//! a web visitor asks for one through the API. From then on, everything
//! about that promise is decided here: whether the request is accepted at
//! all (toll-fraud guards, dedupe, limits), when the callback may enter the
//! ACD (retry backoff, the queue's dialing window in its own time zone,
//! holidays, the customer's preferred window), what each attempt's result
//! leads to, when it expires, and how a crash is repaired. Nothing here
//! opens a socket, spawns a task, reads a clock or touches the database:
//! the shell passes `now` in, persists every returned [`Transition`] (an
//! append-only event row plus the callback's current state) *before*
//! acting on it, and sleeps until [`Scheduler::poll_timeout`]. That makes
//! each rule a unit test with a synthetic clock, and keeps "dialed twice",
//! "lost after a restart" and "called at 3 a.m." out of the I/O code.
//!
//! # Driving it
//!
//! 1. At start-up, load live callbacks (and those created in the last 24
//!    hours, for the rate limits) and call [`Scheduler::restore`]; persist
//!    its transitions.
//! 2. IVR offer: [`Scheduler::check`] (no offer if refused); on "press 1",
//!    [`Scheduler::request`], persist, then confirm to the caller. The web
//!    API calls `request` directly and maps [`Refusal`] to an error
//!    ([`Refusal::code`] + its `Display` text).
//! 3. Whenever [`Scheduler::poll_timeout`] is reached (and after any
//!    change): [`Scheduler::expire`], [`Scheduler::withdraw`] (remove those
//!    from the ACD), [`Scheduler::eligible`] (enqueue those in the ACD as
//!    waiting calls with `entered_at` = the callback's).
//! 4. The ACD picks an agent for a callback: [`Scheduler::dialing`],
//!    persist, dial the agent (whisper) then the customer through the
//!    trunk. On press 1: [`Scheduler::connected`]. When the attempt ends:
//!    [`Scheduler::finished`] with the [`AttemptResult`].
//! 5. API: [`Scheduler::cancel`], [`Scheduler::reschedule`],
//!    [`Scheduler::get`], [`Scheduler::live`].
//!
//! After any transition to a terminal state, or a reschedule or cancel of
//! a handed-out callback, remove it from the ACD if it is there.
//!
//! # Rules
//!
//! **Place in line.** [`Callback::entered_at`] is the time the caller first
//! entered the queue (a web request: when it was made) and never changes.
//! The ACD orders by priority, then `entered_at`, so a callback interleaves
//! fairly with live callers and a retried callback is not sent to the back.
//! [`Scheduler::eligible`] returns callbacks oldest first.
//!
//! **Guards**, in this order ([`Scheduler::check`]): the number normalises
//! ([`normalize_number`]); no live callback for the same (number, queue)
//! — dedupe, reported with the existing id; no `deny` pattern matches (the
//! built-in [`DEFAULT_DENY`] list blocks international prefixes and premium
//! ranges); an `allow` list, if set, matches; the queue holds fewer than
//! `max_pending` live callbacks; the number had fewer than
//! `max_per_number_per_day` accepted requests (over all queues) in the last
//! 24 hours; fewer than `max_per_hour` requests were accepted overall in
//! the last 60 minutes. Only accepted requests count towards the limits.
//! Then [`Scheduler::request`] refuses a preferred window that is over,
//! inverted, or starts after the expiry horizon, and a request that could
//! never be dialed before it expires ([`Refusal::NoDialingTime`]: e.g.
//! Friday evening with a weekday window and a 24-hour expiry) — better no
//! promise than a broken one.
//!
//! **When dialing is allowed**: at or after `next_attempt_at`, before
//! `expires_at`, inside the preferred window `[start, end)` if any, and
//! inside the queue's dialing window (local wall clock of its `timezone`,
//! not on a holiday; no window configured = any time). `next_attempt_at`
//! is stored already moved to the next window opening.
//!
//! **Attempts and retries.** [`Scheduler::dialing`] counts an attempt.
//! Busy, no answer, no acceptance (answered without pressing 1 within
//! `accept_timeout_secs`) and trunk failures retry after
//! `retry_after_secs × retry_factor^(attempts-1)`, capped at
//! `retry_max_secs` (120, 240, 480, 960, 1800 s … by default), moved to the
//! next allowed moment; after `max_attempts` attempts the callback
//! `failed`. Pressing 2 cancels it. An agent lost before the customer
//! answered is not the customer's fault: the attempt is not counted and the
//! callback is `scheduled` again at once with its original `entered_at` —
//! the head of the line. Hence `attempts ≤ max_attempts` always.
//!
//! **Expiry.** `expires_at` = request + `expire_after_hours`, or the end of
//! the preferred window if earlier. A waiting callback past it expires; a
//! callback being dialed finishes its attempt and then expires instead of
//! retrying; a retry (or agent-lost requeue) that would find no dialing
//! time before expiry expires at once.
//!
//! **Crash safety** ([`Scheduler::restore`]): every stored live callback
//! comes back; one that was `dialing` returns to `scheduled` at once and
//! one that was `connected` to `retry_wait` (one backoff step), in both
//! cases with the interrupted attempt not counted — retried, never lost.
//! Nothing restored is handed out, and [`Scheduler::dialing`] only accepts
//! a handed-out callback, so one node never dials a callback twice at the
//! same time (across nodes, the shell's lease does that).
//!
//! **Illegal inputs** return [`CallbackError`] and change nothing (except
//! [`CallbackError::OutsideWindow`], which also withdraws the callback);
//! the scheduler never panics on input.
//!
//! # Configuration
//!
//! [`Policy`] deserialises from TOML with every key optional (see its docs
//! for keys and defaults); the shell maps queue names to policies and
//! passes a default for the others.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod errors;
mod model;
mod number;
mod policy;
mod scheduler;

#[cfg(test)]
mod tests;

pub use errors::{CallbackError, RateLimit, Refusal};
pub use model::{
    AttemptResult, Callback, CallbackState, NewCallback, Origin, Transition, UnknownName,
};
pub use number::{normalize_number, pattern_matches, validate_pattern, MAX_DIGITS, MIN_DIGITS};
pub use policy::{Days, DialingWindow, Policy, PolicyError, DEFAULT_DENY};
pub use scheduler::{Scheduler, MAX_RATE_HISTORY};
