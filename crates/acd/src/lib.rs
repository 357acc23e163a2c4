//! ringback's ACD (automatic call distribution) decision core.
//!
//! Which agent gets which caller, when an offer gives up, when an agent is
//! paused for missing calls, how long a caller will wait: all of it is
//! decided here, and nothing here opens a socket, spawns a task or reads a
//! clock. [`Acd`] has the shape of every ringback core
//! ([`ringback_sansio::Core`]): the shell feeds [`Input`]s and the current
//! time ([`ringback_sansio::Now`], both clocks read once per event) to
//! `handle`, sleeps until `poll_timeout` and calls `handle_timeout`, and
//! after either drains `poll_output` and carries out the [`Output`]s
//! (INVITE or CANCEL an agent leg, bridge, run an overflow, persist a row).
//! Timers and durations run on `now.mono`; what is stored carries `now`
//! itself, so the shell takes its wall time from there. That makes
//! every rule below a unit test with a synthetic clock, makes a run
//! reproducible from its inputs and seed, and keeps the failure modes peers
//! are known for (agents rung in a loop, callers stuck behind a rejecting
//! agent, agents stuck "ringing", `max wait` ignored) out of the I/O code.
//!
//! # Rules
//!
//! **Service order.** Within a queue: priority (higher first), then the
//! call's *original* entry time ([`WaitingCall::entered_at`], kept through
//! overflow re-entry and callbacks), then arrival. Routing visits the calls
//! of all queues in that same order, so an agent in several queues takes the
//! highest-priority, longest-waiting call it can serve.
//!
//! **Eligibility.** An agent may be offered a call when it is
//! [`AgentState::Available`], reachable ([`Input::AgentReachable`]), a member
//! of the call's queue, holds the call's required skills (and, for
//! [`Strategy::SkillsBased`], the queue's), and is not skipped for that call.
//! Only the lowest-penalty tier of eligible members is considered; the
//! queue's [`Strategy`] chooses within it.
//!
//! **Offers.** Each offer has one owner (the agent leg the shell creates for
//! it) and a deadline `now + ring_timeout`. A call has at most one live offer
//! per agent, and at most one live offer at all except with ring-all. Any
//! failure (busy, rejected, no answer, error, or the deadline) skips that
//! agent *for that call* and counts a consecutive miss; at the queue's
//! `auto_pause_after_misses` the agent is paused (`missed N calls`,
//! `AUTOPAUSE`). An answer resets the count. If an agent stops being
//! available while ringing (logout, pause, registration lapsed), the offer
//! is cancelled without a miss and the call is routed again at once.
//!
//! **Skip reset.** A call never drops because an agent failed: it keeps
//! waiting (until answered, abandoned, or its maximum wait) while its skip
//! list grows. An agent leaves every skip list when it becomes available
//! through a real state change — login, unpause, end of wrap-up after
//! another call, or a fresh registration — but not when an offer merely
//! fails or is cancelled. Additionally, with `reoffer_after` (default 30 s)
//! a skipped agent that is still available may be offered the same call
//! again after that cool-down, at most `max_offers_per_agent` times in all
//! (default 2) between two clearing state changes. So a lone agent who
//! missed one ring still gets the caller, and a rejecting agent is never
//! rung in a loop.
//!
//! **Leaving the queue.** Exactly one of: [`Output::Connected`] (then the
//! call's end is [`Input::CallEnded`]), the caller's [`Input::Abandon`],
//! [`Output::MaxWaitReached`], [`Output::NoAgents`] (nobody logged in and
//! reachable on enqueue, or the queue emptied with `leave_when_empty`), or
//! [`Output::Rejected`] (`max_len`). Live offers are cancelled whenever a
//! call leaves.
//!
//! **Wrap-up.** [`Input::CallEnded`] puts the agent in wrap-up until `now +
//! wrapup` (the agent's override, else the queue's); the deadline or
//! [`Input::WrapUpDone`] makes them available — or paused, if they asked for
//! a pause during the call.
//!
//! **Sticky agent.** With [`StickyConfig`], a caller whose number an agent
//! of the queue handled within `window` is offered to that agent first if
//! the agent is available and eligible. If the agent is ringing, on a call,
//! or in a wrap-up ending within `wait_for_agent`, the call is held for them
//! up to `wait_for_agent` (only this call waits; others are routed as
//! usual), and gets the agent ahead of older calls when they free up. The
//! hold ends early if the agent pauses, logs out or becomes unreachable;
//! then the strategy applies.
//!
//! **Estimated wait.** See [`estimate_wait`] and [`announce_minutes`].
//!
//! **Determinism.** Same configuration, seed, inputs and instants → same
//! outputs. An illegal input changes nothing and queues one
//! [`Output::Refused`] with the [`AcdError`] (see the `Core` impl of
//! [`Acd`] for why refusals are outputs); the engine never panics on input.
//!
//! # Wiring
//!
//! * [`Output::Offer`]: create the agent leg (INVITE with the caller-context
//!   headers); report 200 → [`Input::OfferAnswered`], 486/600 →
//!   `OfferFailed(Busy)`, 603 → `Rejected`, 408/480 → `NoAnswer`, other →
//!   `Error`. [`Output::CancelOffer`]: CANCEL that leg (BYE if it raced to
//!   200), and do not report it back. [`Output::Refused`] after an
//!   `OfferAnswered` means the offer is gone: BYE the agent leg.
//! * [`Output::Refused`] after an agent command (login, pause …): tell
//!   whoever asked (the API answers with the error).
//! * [`Output::StateChanged`] and [`Output::QueueLog`] are rows for the
//!   store; they carry the `now` they happened at, and the row's time is
//!   its `wall` (no conversion in the shell).
//! * At start-up, replay agent sessions (login, pause) and seed sticky
//!   routing with [`Input::SetHistory`] (stored wall times; the engine
//!   places them on its monotonic clock); at local midnight send
//!   [`Input::ResetDailyCounters`].

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod config;
mod engine;
mod ewt;
mod ids;
mod types;

#[cfg(test)]
mod tests;

pub use config::{AgentConfig, ConfigError, QueueConfig, QueueMembership, StickyConfig, Strategy};
pub use engine::Acd;
pub use ewt::{announce_minutes, estimate_wait, WaitAnnouncement};
pub use ids::{AgentId, CallId, QueueName};
pub use types::{
    AcdError, AgentSnapshot, AgentState, CancelReason, EndedBy, Input, OfferFailure, Output,
    QueueEvent, QueueEventKind, QueueSnapshot, RejectReason, StateChange, TransitionReason,
    WaitingCall, WaitingSnapshot, MAX_PRIORITY,
};
