//! The engine: [`Acd`]. See the crate docs for the rules it implements.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use ringback_sansio::{Core, Now};

use crate::config::{AgentConfig, ConfigError, QueueConfig, Strategy};
use crate::ewt::{ema, estimate_wait};
use crate::ids::{AgentId, CallId, QueueName};
use crate::types::{
    AcdError, AgentSnapshot, AgentState, CancelReason, EndedBy, Input, OfferFailure, Output,
    QueueEvent, QueueEventKind, QueueSnapshot, RejectReason, StateChange, TransitionReason,
    WaitingCall, WaitingSnapshot,
};

/// Callers remembered for sticky routing, at most (about 100 bytes each).
pub const MAX_STICKY_HISTORY: usize = 200_000;

/// Longest ring timeout / wrap-up accepted in configuration (one day):
/// keeps `now + duration` far from `Instant` overflow.
const MAX_CONFIG_DURATION: Duration = Duration::from_secs(86_400);

/// Service order within and across queues: priority (higher first), then
/// original entry time, then arrival sequence (ties of equal entry times).
type OrderKey = (Reverse<i32>, Instant, u64);

#[derive(Debug)]
struct QueueRt {
    cfg: QueueConfig,
    /// Every waiting call of this queue, in service order.
    order: BTreeMap<OrderKey, CallId>,
    /// The waiting calls of this queue without a live offer, in service
    /// order: the ones routing may visit. Kept in step with `order` and each
    /// call's `offers` (see [`Acd::check_invariants`]).
    idle: BTreeMap<OrderKey, CallId>,
    /// Members in agent configuration order.
    members: Vec<AgentId>,
    /// Configuration index of the agent offered last (round-robin).
    rr_last: Option<usize>,
    avg_handle: Duration,
}

#[derive(Debug)]
struct AgentRt {
    cfg: AgentConfig,
    /// Index in the configuration: the tie-breaker of every strategy.
    order: usize,
    state: AgentState,
    since: Option<Instant>,
    reachable: bool,
    misses: u32,
    answered_today: u32,
    answered_total: u64,
    last_call_end: Option<Instant>,
    logged_in_at: Option<Instant>,
    pending_pause: Option<String>,
    /// Queue and connect time of the call being handled, until its wrap-up
    /// ends (then it becomes a handle-time sample).
    handling: Option<(QueueName, Instant)>,
    /// Waiting calls whose skip list holds this agent, so that clearing the
    /// agent's skips visits only those calls.
    skipped_in: BTreeSet<CallId>,
}

impl AgentRt {
    fn offerable(&self) -> bool {
        self.reachable && self.state == AgentState::Available
    }

    fn present(&self) -> bool {
        self.reachable && self.state != AgentState::LoggedOut
    }

    fn serving(&self) -> bool {
        self.present() && !matches!(self.state, AgentState::Paused { .. })
    }

    fn idle_since(&self) -> Option<Instant> {
        self.last_call_end.max(self.logged_in_at)
    }

    fn penalty(&self, queue: &QueueName) -> Option<u32> {
        self.cfg
            .queues
            .iter()
            .find(|m| &m.queue == queue)
            .map(|m| m.penalty)
    }

    fn has_skills(&self, required: &[(String, u8)]) -> bool {
        required
            .iter()
            .all(|(s, l)| self.cfg.skills.get(s).is_some_and(|v| v >= l))
    }

    fn meets(&self, call: &WaitingCall, queue: &QueueConfig) -> bool {
        self.has_skills(&call.required_skills)
            && match &queue.strategy {
                Strategy::SkillsBased { required } => self.has_skills(required),
                _ => true,
            }
    }
}

#[derive(Debug, Clone, Copy)]
struct OfferRt {
    at: Instant,
    deadline: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Skip {
    /// Last failed offer of this call to this agent.
    at: Instant,
    /// Failed offers since the agent's last clearing state change.
    count: u32,
}

#[derive(Debug, Clone)]
struct StickyRt {
    agent: AgentId,
    /// `Some`: hold the call for the agent until then. `None`: the agent was
    /// available on entry; offer first, no hold.
    hold_until: Option<Instant>,
}

#[derive(Debug)]
struct WaitingRt {
    call: WaitingCall,
    key: OrderKey,
    enqueued_at: Instant,
    orig_position: usize,
    max_wait_at: Option<Instant>,
    offers: BTreeMap<AgentId, OfferRt>,
    skipped: BTreeMap<AgentId, Skip>,
    sticky: Option<StickyRt>,
}

#[derive(Debug)]
struct ActiveRt {
    agent: AgentId,
    queue: QueueName,
    /// Whom sticky routing remembers for this call (see [`WaitingCall::sticky_key`]).
    caller: String,
    enqueued_at: Instant,
    connected_at: Instant,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Ring { call: CallId, agent: AgentId },
    WrapUp(AgentId),
    MaxWait(CallId),
    StickyHold(CallId),
    Reoffer(CallId),
}

/// Candidate agent for one call, with everything a strategy looks at.
struct Cand {
    id: AgentId,
    order: usize,
    penalty: u32,
    idle: Option<Instant>,
    answered: u32,
    score: u32,
}

/// The ACD decision core: feed it inputs and time, act on its outputs. It
/// is driven through [`Core`] (see the impl for how refusals come out).
///
/// Deterministic: the same configuration, seed, inputs and instants give the
/// same outputs (all internal maps are ordered; the only randomness is the
/// seeded RNG of [`Strategy::Random`]).
#[derive(Debug)]
pub struct Acd {
    queues: BTreeMap<QueueName, QueueRt>,
    agents: BTreeMap<AgentId, AgentRt>,
    waiting: BTreeMap<CallId, WaitingRt>,
    /// Waiting calls with a sticky agent (`WaitingRt::sticky` set), in
    /// service order, so routing's sticky pass visits only those.
    sticky: BTreeMap<OrderKey, CallId>,
    active: BTreeMap<CallId, ActiveRt>,
    /// Caller number → (agent, last handled). Only looked up, never iterated
    /// for a decision, so hash order cannot leak into outputs.
    history: HashMap<String, (AgentId, Instant)>,
    /// Bound on `history` (see [`MAX_STICKY_HISTORY`]).
    history_cap: usize,
    timers: BTreeSet<(Instant, Timer)>,
    rng: SmallRng,
    seq: u64,
    /// Outputs not yet taken by [`Core::poll_output`], in order.
    out: VecDeque<Output>,
}

fn log(
    out: &mut VecDeque<Output>,
    at: Now,
    queue: Option<&QueueName>,
    call: Option<&CallId>,
    agent: Option<&AgentId>,
    kind: QueueEventKind,
) {
    out.push_back(Output::QueueLog(QueueEvent {
        at,
        queue: queue.cloned(),
        call: call.cloned(),
        agent: agent.cloned(),
        kind,
    }));
}

fn illegal(agent: &AgentId, from: &AgentState, action: &'static str) -> AcdError {
    AcdError::IllegalTransition {
        agent: agent.clone(),
        from: from.name(),
        action,
    }
}

fn check_levels(owner: String, skills: &[(String, u8)]) -> Result<(), ConfigError> {
    for (skill, level) in skills {
        if !(1..=10).contains(level) {
            return Err(ConfigError::SkillLevel {
                owner,
                skill: skill.clone(),
                level: *level,
            });
        }
    }
    Ok(())
}

/// Whether `a` may be offered `w` now; `Some(penalty)` if so.
fn eligible(w: &WaitingRt, q: &QueueRt, a: &AgentRt, now: Instant) -> Option<u32> {
    if !a.offerable() {
        return None;
    }
    let penalty = a.penalty(&w.call.queue)?;
    if !a.meets(&w.call, &q.cfg) {
        return None;
    }
    if let Some(skip) = w.skipped.get(&a.cfg.id) {
        let cooled = q.cfg.reoffer_after.is_some_and(|d| {
            now.checked_duration_since(skip.at)
                .is_some_and(|elapsed| elapsed >= d)
        });
        if !cooled || skip.count >= q.cfg.max_offers_per_agent {
            return None;
        }
    }
    Some(penalty)
}

/// The first entry of a service-order index after `cursor` (all of it
/// without one).
fn after(
    index: &BTreeMap<OrderKey, CallId>,
    cursor: Option<OrderKey>,
) -> Option<(OrderKey, CallId)> {
    let mut range = match cursor {
        None => index.range(..),
        Some(c) => index.range((Bound::Excluded(c), Bound::Unbounded)),
    };
    range.next().map(|(k, id)| (*k, id.clone()))
}

impl Acd {
    /// Builds an engine: every agent logged out and unreachable, no call.
    /// `seed` feeds [`Strategy::Random`].
    pub fn new(
        queues: Vec<QueueConfig>,
        agents: Vec<AgentConfig>,
        seed: u64,
    ) -> Result<Acd, ConfigError> {
        let mut qmap = BTreeMap::new();
        for cfg in queues {
            let problem = if cfg.ring_timeout.is_zero() || cfg.ring_timeout > MAX_CONFIG_DURATION {
                Some("ring_timeout must be between 0 and 1 day (exclusive of 0)")
            } else if cfg.wrapup > MAX_CONFIG_DURATION {
                Some("wrapup must be at most 1 day")
            } else if cfg.max_offers_per_agent == 0 {
                Some("max_offers_per_agent must be at least 1")
            } else if cfg.auto_pause_after_misses == Some(0) {
                Some("auto_pause_after_misses must be at least 1")
            } else if cfg.max_len == Some(0) {
                Some("max_len must be at least 1")
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(ConfigError::Queue {
                    queue: cfg.name,
                    problem,
                });
            }
            if let Strategy::SkillsBased { required } = &cfg.strategy {
                check_levels(format!("queue `{}`", cfg.name), required)?;
            }
            if qmap.contains_key(&cfg.name) {
                return Err(ConfigError::DuplicateQueue(cfg.name));
            }
            qmap.insert(
                cfg.name.clone(),
                QueueRt {
                    avg_handle: cfg.seed_handle_time,
                    cfg,
                    order: BTreeMap::new(),
                    idle: BTreeMap::new(),
                    members: Vec::new(),
                    rr_last: None,
                },
            );
        }
        let mut amap = BTreeMap::new();
        for (order, cfg) in agents.into_iter().enumerate() {
            if amap.contains_key(&cfg.id) {
                return Err(ConfigError::DuplicateAgent(cfg.id));
            }
            if cfg.max_calls != 1 {
                return Err(ConfigError::MaxCalls {
                    agent: cfg.id,
                    max_calls: cfg.max_calls,
                });
            }
            if cfg.wrapup.is_some_and(|w| w > MAX_CONFIG_DURATION) {
                return Err(ConfigError::Queue {
                    queue: QueueName::new(format!("(agent {})", cfg.id)),
                    problem: "wrapup must be at most 1 day",
                });
            }
            let mut skills: Vec<(String, u8)> =
                cfg.skills.iter().map(|(k, v)| (k.clone(), *v)).collect();
            skills.sort();
            check_levels(format!("agent `{}`", cfg.id), &skills)?;
            let mut seen = BTreeSet::new();
            for m in &cfg.queues {
                if !seen.insert(m.queue.clone()) {
                    return Err(ConfigError::DuplicateMembership {
                        agent: cfg.id.clone(),
                        queue: m.queue.clone(),
                    });
                }
                let Some(q) = qmap.get_mut(&m.queue) else {
                    return Err(ConfigError::UnknownQueue {
                        agent: cfg.id.clone(),
                        queue: m.queue.clone(),
                    });
                };
                q.members.push(cfg.id.clone());
            }
            amap.insert(
                cfg.id.clone(),
                AgentRt {
                    cfg,
                    order,
                    state: AgentState::LoggedOut,
                    since: None,
                    reachable: false,
                    misses: 0,
                    answered_today: 0,
                    answered_total: 0,
                    last_call_end: None,
                    logged_in_at: None,
                    pending_pause: None,
                    handling: None,
                    skipped_in: BTreeSet::new(),
                },
            );
        }
        Ok(Acd {
            queues: qmap,
            agents: amap,
            waiting: BTreeMap::new(),
            sticky: BTreeMap::new(),
            active: BTreeMap::new(),
            history: HashMap::new(),
            history_cap: MAX_STICKY_HISTORY,
            timers: BTreeSet::new(),
            rng: SmallRng::seed_from_u64(seed),
            seq: 0,
            out: VecDeque::new(),
        })
    }

    /// Applies one input at `now`, then routes whatever can be routed.
    /// `Err` when the input is refused; then nothing changed and nothing
    /// was pushed to `out` (every handler checks before it acts).
    fn apply(
        &mut self,
        input: Input,
        now: Now,
        out: &mut VecDeque<Output>,
    ) -> Result<(), AcdError> {
        match input {
            Input::AgentLogin(a) => self.login(&a, now, out)?,
            Input::AgentLogout(a) => self.logout(&a, now, out)?,
            Input::AgentPause { agent, reason } => self.pause(&agent, reason, now, out)?,
            Input::AgentUnpause(a) => self.unpause(&a, now, out)?,
            Input::WrapUpDone(a) => self.wrapup_done(&a, now, out)?,
            Input::AgentReachable(a, r) => self.reachable(&a, r, now, out)?,
            Input::Enqueue(call) => self.enqueue(call, now, out)?,
            Input::Abandon(call) => self.abandon(&call, now, out)?,
            Input::OfferAnswered { call, agent } => self.answered(&call, &agent, now, out)?,
            Input::OfferFailed {
                call,
                agent,
                reason,
            } => {
                self.check_offer(&call, &agent)?;
                self.fail_offer(&call, &agent, reason, false, now, out);
            }
            Input::CallEnded { call, agent, by } => self.call_ended(&call, &agent, by, now, out)?,
            Input::SetHistory { caller, agent, at } => {
                if !self.agents.contains_key(&agent) {
                    return Err(AcdError::UnknownAgent(agent));
                }
                // A stored (wall-clock) time placed on the monotonic clock
                // the windows are measured on.
                self.remember(caller, agent, now.mono_at(at));
            }
            Input::ResetDailyCounters => self.reset_daily(now.mono),
        }
        self.dispatch(now, out);
        Ok(())
    }

    fn fire(&mut self, t: Instant, timer: Timer, now: Now, out: &mut VecDeque<Output>) {
        match timer {
            Timer::Ring { call, agent } => {
                let due = self
                    .waiting
                    .get(&call)
                    .and_then(|w| w.offers.get(&agent))
                    .is_some_and(|o| o.deadline == t);
                if due {
                    self.fail_offer(&call, &agent, OfferFailure::NoAnswer, true, now, out);
                }
            }
            Timer::WrapUp(agent) => {
                let due = self
                    .agents
                    .get(&agent)
                    .is_some_and(|a| a.state == AgentState::WrapUp { until: t });
                if due {
                    self.finish_handling(&agent, TransitionReason::WrapUpExpired, now, out);
                }
            }
            Timer::MaxWait(call) => {
                let due = self
                    .waiting
                    .get(&call)
                    .is_some_and(|w| w.max_wait_at == Some(t));
                if due {
                    if let Some((w, position)) =
                        self.remove_waiting(&call, CancelReason::MaxWait, now, out)
                    {
                        let overflow = self.overflow(&w.call.queue);
                        out.push_back(Output::MaxWaitReached {
                            call: call.clone(),
                            overflow,
                        });
                        log(
                            out,
                            now,
                            Some(&w.call.queue),
                            Some(&call),
                            None,
                            QueueEventKind::ExitWithTimeout {
                                position,
                                orig_position: w.orig_position,
                                wait: now.mono.saturating_duration_since(w.enqueued_at),
                            },
                        );
                    }
                }
            }
            Timer::StickyHold(call) => {
                if let Some(w) = self.waiting.get_mut(&call) {
                    if w.sticky.as_ref().is_some_and(|s| s.hold_until == Some(t)) {
                        w.sticky = None;
                        self.sticky.remove(&w.key);
                    }
                }
            }
            // Nothing to do but the dispatch that follows every timeout.
            Timer::Reoffer(_) => {}
        }
    }

    // ----- agent inputs -------------------------------------------------

    fn agent_ref(&self, id: &AgentId) -> Result<&AgentRt, AcdError> {
        self.agents
            .get(id)
            .ok_or_else(|| AcdError::UnknownAgent(id.clone()))
    }

    fn login(
        &mut self,
        id: &AgentId,
        now: Now,
        out: &mut VecDeque<Output>,
    ) -> Result<(), AcdError> {
        let a = self.agent_ref(id)?;
        if a.state != AgentState::LoggedOut {
            return Err(illegal(id, &a.state, "log in"));
        }
        if let Some(a) = self.agents.get_mut(id) {
            a.misses = 0;
            a.logged_in_at = Some(now.mono);
            a.pending_pause = None;
        }
        self.set_state(id, AgentState::Available, TransitionReason::Login, now, out);
        log(out, now, None, None, Some(id), QueueEventKind::AgentLogin);
        self.clear_skips(id);
        Ok(())
    }

    fn logout(
        &mut self,
        id: &AgentId,
        now: Now,
        out: &mut VecDeque<Output>,
    ) -> Result<(), AcdError> {
        let a = self.agent_ref(id)?;
        match a.state.clone() {
            s @ (AgentState::LoggedOut | AgentState::OnCall { .. }) => {
                return Err(illegal(id, &s, "log out"))
            }
            AgentState::Ringing { call } => {
                self.cancel_offer(&call, id, CancelReason::AgentUnavailable, now, out)
            }
            AgentState::WrapUp { until } => self.stop_wrapup(id, until, now.mono),
            AgentState::Available | AgentState::Paused { .. } => {}
        }
        let mut session = Duration::ZERO;
        if let Some(a) = self.agents.get_mut(id) {
            session = a
                .logged_in_at
                .take()
                .map_or(Duration::ZERO, |t| now.mono.saturating_duration_since(t));
            a.pending_pause = None;
        }
        self.set_state(
            id,
            AgentState::LoggedOut,
            TransitionReason::Logout,
            now,
            out,
        );
        log(
            out,
            now,
            None,
            None,
            Some(id),
            QueueEventKind::AgentLogoff { session },
        );
        self.empty_check(id, now, out);
        Ok(())
    }

    fn pause(
        &mut self,
        id: &AgentId,
        reason: String,
        now: Now,
        out: &mut VecDeque<Output>,
    ) -> Result<(), AcdError> {
        let a = self.agent_ref(id)?;
        match a.state.clone() {
            s @ (AgentState::LoggedOut | AgentState::Paused { .. }) => {
                return Err(illegal(id, &s, "pause"))
            }
            AgentState::OnCall { .. } => {
                if let Some(a) = self.agents.get_mut(id) {
                    a.pending_pause = Some(reason);
                }
                return Ok(());
            }
            AgentState::Ringing { call } => {
                self.cancel_offer(&call, id, CancelReason::AgentUnavailable, now, out)
            }
            AgentState::WrapUp { until } => self.stop_wrapup(id, until, now.mono),
            AgentState::Available => {}
        }
        // A pause asked for during the call is superseded by this one.
        if let Some(a) = self.agents.get_mut(id) {
            a.pending_pause = None;
        }
        self.set_state(
            id,
            AgentState::Paused {
                reason: reason.clone(),
            },
            TransitionReason::Pause,
            now,
            out,
        );
        log(
            out,
            now,
            None,
            None,
            Some(id),
            QueueEventKind::Pause { reason },
        );
        Ok(())
    }

    fn unpause(
        &mut self,
        id: &AgentId,
        now: Now,
        out: &mut VecDeque<Output>,
    ) -> Result<(), AcdError> {
        let a = self.agent_ref(id)?;
        match &a.state {
            AgentState::Paused { .. } => {
                if let Some(a) = self.agents.get_mut(id) {
                    a.misses = 0;
                }
                self.set_state(
                    id,
                    AgentState::Available,
                    TransitionReason::Unpause,
                    now,
                    out,
                );
                log(out, now, None, None, Some(id), QueueEventKind::Unpause);
                self.clear_skips(id);
            }
            AgentState::OnCall { .. } | AgentState::WrapUp { .. } if a.pending_pause.is_some() => {
                if let Some(a) = self.agents.get_mut(id) {
                    a.pending_pause = None;
                }
            }
            s => return Err(illegal(id, s, "unpause")),
        }
        Ok(())
    }

    fn wrapup_done(
        &mut self,
        id: &AgentId,
        now: Now,
        out: &mut VecDeque<Output>,
    ) -> Result<(), AcdError> {
        let a = self.agent_ref(id)?;
        let AgentState::WrapUp { until } = a.state else {
            return Err(illegal(id, &a.state, "end wrap-up"));
        };
        self.timers.remove(&(until, Timer::WrapUp(id.clone())));
        self.finish_handling(id, TransitionReason::WrapUpDone, now, out);
        Ok(())
    }

    fn reachable(
        &mut self,
        id: &AgentId,
        reachable: bool,
        now: Now,
        out: &mut VecDeque<Output>,
    ) -> Result<(), AcdError> {
        let a = self.agent_ref(id)?;
        if a.reachable == reachable {
            return Ok(());
        }
        let state = a.state.clone();
        if let Some(a) = self.agents.get_mut(id) {
            a.reachable = reachable;
        }
        if reachable {
            self.clear_skips(id);
        } else {
            if let AgentState::Ringing { call } = state {
                self.cancel_offer(&call, id, CancelReason::AgentUnavailable, now, out);
                self.set_state(
                    id,
                    AgentState::Available,
                    TransitionReason::OfferCanceled(CancelReason::AgentUnavailable),
                    now,
                    out,
                );
            }
            self.empty_check(id, now, out);
        }
        Ok(())
    }

    // ----- call inputs --------------------------------------------------

    fn enqueue(
        &mut self,
        call: WaitingCall,
        now: Now,
        out: &mut VecDeque<Output>,
    ) -> Result<(), AcdError> {
        if self.waiting.contains_key(&call.id) || self.active.contains_key(&call.id) {
            return Err(AcdError::DuplicateCall(call.id));
        }
        let Some(q) = self.queues.get(&call.queue) else {
            return Err(AcdError::UnknownQueue(call.queue));
        };
        let present = q
            .members
            .iter()
            .filter(|m| self.agents.get(*m).is_some_and(AgentRt::present))
            .count();
        let overflow = q.cfg.overflow.clone();
        if present == 0 && !q.cfg.join_empty {
            log(
                out,
                now,
                Some(&call.queue),
                Some(&call.id),
                None,
                QueueEventKind::JoinEmpty,
            );
            out.push_back(Output::NoAgents {
                call: call.id,
                overflow,
            });
            return Ok(());
        }
        if q.cfg.max_len.is_some_and(|m| q.order.len() >= m) {
            log(
                out,
                now,
                Some(&call.queue),
                Some(&call.id),
                None,
                QueueEventKind::Full,
            );
            out.push_back(Output::Rejected {
                call: call.id,
                reason: RejectReason::QueueFull,
                overflow,
            });
            return Ok(());
        }
        let max_wait_at = call
            .max_wait
            .or(q.cfg.max_wait)
            .and_then(|d| now.mono.checked_add(d));
        let sticky = self.sticky_for(&call, now.mono);
        self.seq += 1;
        let key = (Reverse(call.priority), call.entered_at, self.seq);
        let Some(q) = self.queues.get_mut(&call.queue) else {
            return Ok(());
        };
        q.order.insert(key, call.id.clone());
        q.idle.insert(key, call.id.clone());
        let position = q.order.range(..key).count() + 1;
        if sticky.is_some() {
            self.sticky.insert(key, call.id.clone());
        }
        if let Some(t) = max_wait_at {
            self.timers.insert((t, Timer::MaxWait(call.id.clone())));
        }
        if let Some(StickyRt {
            hold_until: Some(t),
            ..
        }) = &sticky
        {
            self.timers.insert((*t, Timer::StickyHold(call.id.clone())));
        }
        log(
            out,
            now,
            Some(&call.queue),
            Some(&call.id),
            None,
            QueueEventKind::EnterQueue {
                caller: call.caller.clone(),
                position,
            },
        );
        self.waiting.insert(
            call.id.clone(),
            WaitingRt {
                call,
                key,
                enqueued_at: now.mono,
                orig_position: position,
                max_wait_at,
                offers: BTreeMap::new(),
                skipped: BTreeMap::new(),
                sticky,
            },
        );
        Ok(())
    }

    /// Sticky decision on entry (see [`crate::StickyConfig`]).
    fn sticky_for(&self, call: &WaitingCall, now: Instant) -> Option<StickyRt> {
        let q = self.queues.get(&call.queue)?;
        let sc = q.cfg.sticky?;
        if call.sticky_key().is_empty() {
            return None;
        }
        let (agent, at) = self.history.get(call.sticky_key())?;
        if now.saturating_duration_since(*at) > sc.window {
            return None;
        }
        let a = self.agents.get(agent)?;
        a.penalty(&call.queue)?;
        if !a.reachable || !a.meets(call, &q.cfg) {
            return None;
        }
        let hold = || {
            if sc.wait_for_agent.is_zero() {
                return None;
            }
            Some(StickyRt {
                agent: agent.clone(),
                hold_until: Some(now.checked_add(sc.wait_for_agent)?),
            })
        };
        match &a.state {
            AgentState::Available => Some(StickyRt {
                agent: agent.clone(),
                hold_until: None,
            }),
            AgentState::Ringing { .. } | AgentState::OnCall { .. } => hold(),
            AgentState::WrapUp { until } => {
                if now
                    .checked_add(sc.wait_for_agent)
                    .is_some_and(|t| *until <= t)
                {
                    hold()
                } else {
                    None
                }
            }
            AgentState::LoggedOut | AgentState::Paused { .. } => None,
        }
    }

    fn abandon(
        &mut self,
        call: &CallId,
        now: Now,
        out: &mut VecDeque<Output>,
    ) -> Result<(), AcdError> {
        if self.waiting.contains_key(call) {
            if let Some((w, position)) =
                self.remove_waiting(call, CancelReason::CallerAbandoned, now, out)
            {
                log(
                    out,
                    now,
                    Some(&w.call.queue),
                    Some(call),
                    None,
                    QueueEventKind::Abandon {
                        position,
                        orig_position: w.orig_position,
                        wait: now.mono.saturating_duration_since(w.enqueued_at),
                    },
                );
            }
            return Ok(());
        }
        if let Some(act) = self.active.get(call) {
            let agent = act.agent.clone();
            return self.call_ended(call, &agent, EndedBy::Caller, now, out);
        }
        Err(AcdError::UnknownCall(call.clone()))
    }

    fn check_offer(&self, call: &CallId, agent: &AgentId) -> Result<(), AcdError> {
        let live =
            self.waiting
                .get(call)
                .is_some_and(|w| w.offers.contains_key(agent))
                && self.agents.get(agent).is_some_and(
                    |a| matches!(&a.state, AgentState::Ringing { call: c } if c == call),
                );
        if live {
            Ok(())
        } else {
            Err(AcdError::NoSuchOffer {
                call: call.clone(),
                agent: agent.clone(),
            })
        }
    }

    fn answered(
        &mut self,
        call: &CallId,
        agent: &AgentId,
        now: Now,
        out: &mut VecDeque<Output>,
    ) -> Result<(), AcdError> {
        self.check_offer(call, agent)?;
        let ring_time = self
            .withdraw_offer(call, agent)
            .map_or(Duration::ZERO, |o| now.mono.saturating_duration_since(o.at));
        let Some((w, _)) = self.remove_waiting(call, CancelReason::AnsweredElsewhere, now, out)
        else {
            return Ok(());
        };
        if let Some(a) = self.agents.get_mut(agent) {
            a.misses = 0;
            a.answered_today = a.answered_today.saturating_add(1);
            a.answered_total = a.answered_total.saturating_add(1);
            a.handling = Some((w.call.queue.clone(), now.mono));
        }
        self.set_state(
            agent,
            AgentState::OnCall { call: call.clone() },
            TransitionReason::Answered,
            now,
            out,
        );
        self.remember(w.call.sticky_key().to_string(), agent.clone(), now.mono);
        out.push_back(Output::Connected {
            call: call.clone(),
            agent: agent.clone(),
        });
        log(
            out,
            now,
            Some(&w.call.queue),
            Some(call),
            Some(agent),
            QueueEventKind::Connect {
                hold_time: now.mono.saturating_duration_since(w.enqueued_at),
                waited: now.mono.saturating_duration_since(w.call.entered_at),
                ring_time,
            },
        );
        let sticky_key = w.call.sticky_key().to_string();
        self.active.insert(
            call.clone(),
            ActiveRt {
                agent: agent.clone(),
                queue: w.call.queue,
                caller: sticky_key,
                enqueued_at: w.enqueued_at,
                connected_at: now.mono,
            },
        );
        Ok(())
    }

    fn call_ended(
        &mut self,
        call: &CallId,
        agent: &AgentId,
        by: EndedBy,
        now: Now,
        out: &mut VecDeque<Output>,
    ) -> Result<(), AcdError> {
        if self.active.get(call).is_none_or(|a| &a.agent != agent) {
            return Err(AcdError::NotConnected {
                call: call.clone(),
                agent: agent.clone(),
            });
        }
        let Some(act) = self.active.remove(call) else {
            return Ok(());
        };
        let hold_time = act.connected_at.saturating_duration_since(act.enqueued_at);
        let talk_time = now.mono.saturating_duration_since(act.connected_at);
        let kind = match by {
            EndedBy::Caller => QueueEventKind::CompleteCaller {
                hold_time,
                talk_time,
            },
            EndedBy::Agent => QueueEventKind::CompleteAgent {
                hold_time,
                talk_time,
            },
        };
        log(out, now, Some(&act.queue), Some(call), Some(agent), kind);
        self.remember(act.caller.clone(), agent.clone(), now.mono);
        let queue_wrap = self
            .queues
            .get(&act.queue)
            .map_or(Duration::ZERO, |q| q.cfg.wrapup);
        let mut wrap = queue_wrap;
        if let Some(a) = self.agents.get_mut(agent) {
            a.last_call_end = Some(now.mono);
            wrap = a.cfg.wrapup.unwrap_or(queue_wrap);
        }
        match now.mono.checked_add(wrap) {
            Some(until) if !wrap.is_zero() => {
                self.set_state(
                    agent,
                    AgentState::WrapUp { until },
                    TransitionReason::CallEnded,
                    now,
                    out,
                );
                self.timers.insert((until, Timer::WrapUp(agent.clone())));
            }
            _ => self.finish_handling(agent, TransitionReason::CallEnded, now, out),
        }
        Ok(())
    }

    /// The longest sticky window of any queue: history older than that
    /// can never route a call. `None` when no queue is sticky.
    fn sticky_window(&self) -> Option<Duration> {
        self.queues
            .values()
            .filter_map(|q| q.cfg.sticky.map(|s| s.window))
            .max()
    }

    /// Learn who helped `caller`, for sticky routing. Kept only when a
    /// queue is sticky, and at most [`MAX_STICKY_HISTORY`] callers: past
    /// that, entries outside every window go, then the older half (a
    /// repeat caller of long ago loses stickiness; memory stays bounded
    /// whatever the number of distinct callers).
    fn remember(&mut self, caller: String, agent: AgentId, at: Instant) {
        if caller.is_empty() {
            return;
        }
        let Some(window) = self.sticky_window() else {
            return;
        };
        match self.history.get(&caller) {
            Some((_, known)) if *known > at => {}
            _ => {
                self.history.insert(caller, (agent, at));
            }
        }
        if self.history.len() > self.history_cap {
            self.history
                .retain(|_, (_, t)| at.saturating_duration_since(*t) <= window);
        }
        if self.history.len() > self.history_cap {
            let mut times: Vec<Instant> = self.history.values().map(|(_, t)| *t).collect();
            let mid = times.len() / 2;
            let (_, cutoff, _) = times.select_nth_unstable(mid);
            let cutoff = *cutoff;
            self.history.retain(|_, (_, t)| *t >= cutoff);
        }
    }

    fn reset_daily(&mut self, now: Instant) {
        for a in self.agents.values_mut() {
            a.answered_today = 0;
        }
        match self.sticky_window() {
            Some(w) => self
                .history
                .retain(|_, (_, at)| now.saturating_duration_since(*at) <= w),
            None => self.history.clear(),
        }
    }

    // ----- building blocks ----------------------------------------------

    fn set_state(
        &mut self,
        agent: &AgentId,
        to: AgentState,
        reason: TransitionReason,
        now: Now,
        out: &mut VecDeque<Output>,
    ) {
        let Some(a) = self.agents.get_mut(agent) else {
            return;
        };
        let from = std::mem::replace(&mut a.state, to.clone());
        a.since = Some(now.mono);
        out.push_back(Output::StateChanged(StateChange {
            agent: agent.clone(),
            from,
            to,
            at: now,
            reason,
        }));
    }

    fn overflow(&self, queue: &QueueName) -> Option<String> {
        self.queues.get(queue).and_then(|q| q.cfg.overflow.clone())
    }

    /// The skip-list reset rule: an agent that becomes available through a
    /// real state change (login, unpause, end of wrap-up, re-registration)
    /// may be offered every waiting call again.
    fn clear_skips(&mut self, agent: &AgentId) {
        let Some(a) = self.agents.get_mut(agent) else {
            return;
        };
        for call in std::mem::take(&mut a.skipped_in) {
            if let Some(w) = self.waiting.get_mut(&call) {
                w.skipped.remove(agent);
            }
        }
    }

    /// Removes a live offer and its ring timer; the agent's state is the
    /// caller's business.
    fn withdraw_offer(&mut self, call: &CallId, agent: &AgentId) -> Option<OfferRt> {
        let w = self.waiting.get_mut(call)?;
        let rec = w.offers.remove(agent)?;
        if w.offers.is_empty() {
            if let Some(q) = self.queues.get_mut(&w.call.queue) {
                q.idle.insert(w.key, call.clone());
            }
        }
        self.timers.remove(&(
            rec.deadline,
            Timer::Ring {
                call: call.clone(),
                agent: agent.clone(),
            },
        ));
        Some(rec)
    }

    /// Withdraws an offer without the agent failing: `CancelOffer` and
    /// `RINGCANCELED`; no miss, no skip.
    fn cancel_offer(
        &mut self,
        call: &CallId,
        agent: &AgentId,
        reason: CancelReason,
        now: Now,
        out: &mut VecDeque<Output>,
    ) {
        let Some(rec) = self.withdraw_offer(call, agent) else {
            return;
        };
        let queue = self.waiting.get(call).map(|w| w.call.queue.clone());
        out.push_back(Output::CancelOffer {
            call: call.clone(),
            agent: agent.clone(),
        });
        log(
            out,
            now,
            queue.as_ref(),
            Some(call),
            Some(agent),
            QueueEventKind::RingCanceled {
                ring_time: now.mono.saturating_duration_since(rec.at),
                reason,
            },
        );
    }

    /// The agent failed an offer: skip it for this call, count the miss,
    /// auto-pause at the limit.
    fn fail_offer(
        &mut self,
        call: &CallId,
        agent: &AgentId,
        reason: OfferFailure,
        timed_out: bool,
        now: Now,
        out: &mut VecDeque<Output>,
    ) {
        let Some(rec) = self.withdraw_offer(call, agent) else {
            return;
        };
        let Some(w) = self.waiting.get_mut(call) else {
            return;
        };
        let skip = w.skipped.entry(agent.clone()).or_insert(Skip {
            at: now.mono,
            count: 0,
        });
        skip.at = now.mono;
        skip.count = skip.count.saturating_add(1);
        let count = skip.count;
        let queue = w.call.queue.clone();
        if let Some(a) = self.agents.get_mut(agent) {
            a.skipped_in.insert(call.clone());
        }
        let (auto_pause, reoffer_after, max_offers) = match self.queues.get(&queue) {
            Some(q) => (
                q.cfg.auto_pause_after_misses,
                q.cfg.reoffer_after,
                q.cfg.max_offers_per_agent,
            ),
            None => (None, None, 0),
        };
        if timed_out {
            out.push_back(Output::CancelOffer {
                call: call.clone(),
                agent: agent.clone(),
            });
        }
        log(
            out,
            now,
            Some(&queue),
            Some(call),
            Some(agent),
            QueueEventKind::RingNoAnswer {
                ring_time: now.mono.saturating_duration_since(rec.at),
                reason,
            },
        );
        let mut misses = 0;
        if let Some(a) = self.agents.get_mut(agent) {
            a.misses = a.misses.saturating_add(1);
            misses = a.misses;
        }
        if auto_pause.is_some_and(|n| misses >= n) {
            let reason = format!("missed {misses} calls");
            self.set_state(
                agent,
                AgentState::Paused { reason },
                TransitionReason::AutoPause,
                now,
                out,
            );
            log(
                out,
                now,
                None,
                None,
                Some(agent),
                QueueEventKind::AutoPause { misses },
            );
        } else {
            let why = if timed_out {
                TransitionReason::RingTimeout
            } else {
                TransitionReason::OfferFailed(reason)
            };
            self.set_state(agent, AgentState::Available, why, now, out);
        }
        if count < max_offers {
            if let Some(t) = reoffer_after.and_then(|d| now.mono.checked_add(d)) {
                self.timers.insert((t, Timer::Reoffer(call.clone())));
            }
        }
    }

    /// Takes a call out of its queue, cancelling its live offers (their
    /// agents become available). Returns it with its last position.
    fn remove_waiting(
        &mut self,
        call: &CallId,
        reason: CancelReason,
        now: Now,
        out: &mut VecDeque<Output>,
    ) -> Option<(WaitingRt, usize)> {
        let w = self.waiting.get(call)?;
        let key = w.key;
        let queue = w.call.queue.clone();
        let ringing: Vec<AgentId> = w.offers.keys().cloned().collect();
        let position = self
            .queues
            .get(&queue)
            .map_or(1, |q| q.order.range(..key).count() + 1);
        for agent in ringing {
            self.cancel_offer(call, &agent, reason, now, out);
            self.set_state(
                &agent,
                AgentState::Available,
                TransitionReason::OfferCanceled(reason),
                now,
                out,
            );
        }
        let w = self.waiting.remove(call)?;
        if let Some(q) = self.queues.get_mut(&queue) {
            q.order.remove(&key);
            q.idle.remove(&key);
        }
        if w.sticky.is_some() {
            self.sticky.remove(&key);
        }
        for agent in w.skipped.keys() {
            if let Some(a) = self.agents.get_mut(agent) {
                a.skipped_in.remove(call);
            }
        }
        if let Some(t) = w.max_wait_at {
            self.timers.remove(&(t, Timer::MaxWait(call.clone())));
        }
        if let Some(StickyRt {
            hold_until: Some(t),
            ..
        }) = &w.sticky
        {
            self.timers.remove(&(*t, Timer::StickyHold(call.clone())));
        }
        Some((w, position))
    }

    /// Ends wrap-up early (pause, logout): the handle-time sample is taken now.
    fn stop_wrapup(&mut self, agent: &AgentId, until: Instant, now: Instant) {
        self.timers.remove(&(until, Timer::WrapUp(agent.clone())));
        self.record_handle(agent, now);
    }

    fn record_handle(&mut self, agent: &AgentId, now: Instant) {
        let Some((queue, connected)) = self.agents.get_mut(agent).and_then(|a| a.handling.take())
        else {
            return;
        };
        if let Some(q) = self.queues.get_mut(&queue) {
            q.avg_handle = ema(q.avg_handle, now.saturating_duration_since(connected));
        }
    }

    /// End of a call's handling (wrap-up over, or none): sample the handle
    /// time, then available — or paused, if a pause was requested meanwhile.
    fn finish_handling(
        &mut self,
        agent: &AgentId,
        reason: TransitionReason,
        now: Now,
        out: &mut VecDeque<Output>,
    ) {
        self.record_handle(agent, now.mono);
        let pending = self
            .agents
            .get_mut(agent)
            .and_then(|a| a.pending_pause.take());
        match pending {
            Some(r) => {
                self.set_state(
                    agent,
                    AgentState::Paused { reason: r.clone() },
                    TransitionReason::Pause,
                    now,
                    out,
                );
                log(
                    out,
                    now,
                    None,
                    None,
                    Some(agent),
                    QueueEventKind::Pause { reason: r },
                );
            }
            None => {
                self.set_state(agent, AgentState::Available, reason, now, out);
                self.clear_skips(agent);
            }
        }
    }

    /// `leave_when_empty`: if `agent` was the last present member of one of
    /// its queues, send that queue's callers to the overflow.
    fn empty_check(&mut self, agent: &AgentId, now: Now, out: &mut VecDeque<Output>) {
        let Some(a) = self.agents.get(agent) else {
            return;
        };
        let queues: Vec<QueueName> = a.cfg.queues.iter().map(|m| m.queue.clone()).collect();
        for qn in queues {
            let Some(q) = self.queues.get(&qn) else {
                continue;
            };
            if !q.cfg.leave_when_empty
                || q.members
                    .iter()
                    .any(|m| self.agents.get(m).is_some_and(AgentRt::present))
            {
                continue;
            }
            let calls: Vec<CallId> = q.order.values().cloned().collect();
            let overflow = q.cfg.overflow.clone();
            for call in calls {
                if let Some((w, position)) =
                    self.remove_waiting(&call, CancelReason::QueueEmpty, now, out)
                {
                    out.push_back(Output::NoAgents {
                        call: call.clone(),
                        overflow: overflow.clone(),
                    });
                    log(
                        out,
                        now,
                        Some(&qn),
                        Some(&call),
                        None,
                        QueueEventKind::ExitEmpty {
                            position,
                            orig_position: w.orig_position,
                            wait: now.mono.saturating_duration_since(w.enqueued_at),
                        },
                    );
                }
            }
        }
    }

    fn offer(&mut self, call: &CallId, agent: &AgentId, now: Now, out: &mut VecDeque<Output>) {
        let Some(w) = self.waiting.get_mut(call) else {
            return;
        };
        let Some(q) = self.queues.get_mut(&w.call.queue) else {
            return;
        };
        let deadline = now.mono.checked_add(q.cfg.ring_timeout).unwrap_or(now.mono);
        if w.offers.is_empty() {
            q.idle.remove(&w.key);
        }
        w.offers.insert(
            agent.clone(),
            OfferRt {
                at: now.mono,
                deadline,
            },
        );
        if let Some(a) = self.agents.get(agent) {
            q.rr_last = Some(a.order);
        }
        self.timers.insert((
            deadline,
            Timer::Ring {
                call: call.clone(),
                agent: agent.clone(),
            },
        ));
        self.set_state(
            agent,
            AgentState::Ringing { call: call.clone() },
            TransitionReason::Offered,
            now,
            out,
        );
        out.push_back(Output::Offer {
            call: call.clone(),
            agent: agent.clone(),
            deadline,
        });
    }

    /// Matches waiting calls with available agents.
    ///
    /// Calls without a live offer are visited in global service order
    /// (priority, then original entry time) across all queues, so an agent
    /// serving several queues goes to the longest-waiting call it can take.
    /// Pass 1 gives sticky calls their agent first; pass 2 applies each
    /// queue's strategy, skipping calls held for a busy sticky agent. Both
    /// stop as soon as no agent is free.
    ///
    /// Cost: neither pass walks every waiting call. Pass 1 visits only the
    /// sticky index. Pass 2 merges, in service order, the idle calls of the
    /// queues that still have a free member with the sticky calls of every
    /// queue; a call of a queue without a free member cannot be offered, and
    /// unless it is sticky (whose hold may be released on the visit) visiting
    /// it would have no effect, so it is not visited. With one free agent
    /// that can take the first call of its queue, routing is `O(log n)`.
    /// What is still linear: free agents that are members of a queue but may
    /// take none of its calls (required skills, skip lists), and many sticky
    /// calls; each such call is visited and costs one strategy evaluation.
    fn dispatch(&mut self, now: Now, out: &mut VecDeque<Output>) {
        let mut free = self.agents.values().filter(|a| a.offerable()).count();
        if free == 0 || self.waiting.is_empty() {
            return;
        }

        let mut cursor: Option<OrderKey> = None;
        while free > 0 {
            let Some((key, id)) = after(&self.sticky, cursor) else {
                break;
            };
            cursor = Some(key);
            let Some(w) = self.waiting.get(&id) else {
                continue;
            };
            if !w.offers.is_empty() {
                continue;
            }
            let Some(st) = &w.sticky else {
                continue;
            };
            let target = st.agent.clone();
            let ok = match (self.queues.get(&w.call.queue), self.agents.get(&target)) {
                (Some(q), Some(a)) => eligible(w, q, a, now.mono).is_some(),
                _ => false,
            };
            if ok {
                self.release_sticky(&id);
                self.offer(&id, &target, now, out);
                free -= 1;
            }
        }

        let mut routable: Vec<QueueName> = self
            .queues
            .iter()
            .filter(|(_, q)| !q.idle.is_empty() && self.has_free_member(q))
            .map(|(name, _)| name.clone())
            .collect();
        let mut cursor: Option<OrderKey> = None;
        while free > 0 {
            let mut next = after(&self.sticky, cursor);
            for name in &routable {
                let Some((k, id)) = self.queues.get(name).and_then(|q| after(&q.idle, cursor))
                else {
                    continue;
                };
                if next.as_ref().is_none_or(|(nk, _)| k < *nk) {
                    next = Some((k, id));
                }
            }
            let Some((key, id)) = next else {
                return;
            };
            cursor = Some(key);
            let Some(w) = self.waiting.get(&id) else {
                continue;
            };
            if !w.offers.is_empty() {
                continue;
            }
            if let Some(st) = &w.sticky {
                let may_free = self.agents.get(&st.agent).is_some_and(|a| {
                    a.reachable
                        && matches!(
                            a.state,
                            AgentState::Ringing { .. }
                                | AgentState::OnCall { .. }
                                | AgentState::WrapUp { .. }
                        )
                });
                if may_free && st.hold_until.is_some_and(|t| t > now.mono) {
                    continue;
                }
                self.release_sticky(&id);
            }
            let picked = self.pick(&id, now.mono);
            if picked.is_empty() {
                continue;
            }
            for agent in picked {
                self.offer(&id, &agent, now, out);
                free = free.saturating_sub(1);
            }
            routable.retain(|name| {
                self.queues
                    .get(name)
                    .is_some_and(|q| self.has_free_member(q))
            });
        }
    }

    /// Whether a member of `q` could be offered a call right now.
    fn has_free_member(&self, q: &QueueRt) -> bool {
        q.members
            .iter()
            .any(|m| self.agents.get(m).is_some_and(AgentRt::offerable))
    }

    fn release_sticky(&mut self, call: &CallId) {
        let Some(w) = self.waiting.get_mut(call) else {
            return;
        };
        let Some(st) = w.sticky.take() else {
            return;
        };
        self.sticky.remove(&w.key);
        if let Some(t) = st.hold_until {
            self.timers.remove(&(t, Timer::StickyHold(call.clone())));
        }
    }

    /// The queue strategy's choice for `call` (several agents for ring-all).
    fn pick(&mut self, call: &CallId, now: Instant) -> Vec<AgentId> {
        let Some(w) = self.waiting.get(call) else {
            return Vec::new();
        };
        let Some(q) = self.queues.get(&w.call.queue) else {
            return Vec::new();
        };
        let mut wanted: BTreeSet<&str> = w
            .call
            .required_skills
            .iter()
            .map(|(s, _)| s.as_str())
            .collect();
        if let Strategy::SkillsBased { required } = &q.cfg.strategy {
            wanted.extend(required.iter().map(|(s, _)| s.as_str()));
        }
        let mut cands: Vec<Cand> = q
            .members
            .iter()
            .filter_map(|id| {
                let a = self.agents.get(id)?;
                let penalty = eligible(w, q, a, now)?;
                let score = wanted
                    .iter()
                    .map(|s| u32::from(a.cfg.skills.get(*s).copied().unwrap_or(0)))
                    .sum();
                Some(Cand {
                    id: id.clone(),
                    order: a.order,
                    penalty,
                    idle: a.idle_since(),
                    answered: a.answered_today,
                    score,
                })
            })
            .collect();
        let Some(tier) = cands.iter().map(|c| c.penalty).min() else {
            return Vec::new();
        };
        cands.retain(|c| c.penalty == tier);
        let strategy = q.cfg.strategy.clone();
        let rr_last = q.rr_last;
        let chosen = match strategy {
            Strategy::LongestIdle => cands.iter().min_by_key(|c| c.idle),
            Strategy::RoundRobin => cands
                .iter()
                .find(|c| rr_last.is_none_or(|l| c.order > l))
                .or(cands.first()),
            Strategy::FewestCalls => cands.iter().min_by_key(|c| (c.answered, c.idle)),
            Strategy::RingAll => return cands.into_iter().map(|c| c.id).collect(),
            Strategy::Random => {
                let i = self.rng.random_range(0..cands.len());
                cands.get(i)
            }
            Strategy::SkillsBased { .. } => cands.iter().min_by_key(|c| (Reverse(c.score), c.idle)),
        };
        chosen.map(|c| vec![c.id.clone()]).unwrap_or_default()
    }

    // ----- read-only views ----------------------------------------------

    /// Agent ids in configuration order.
    pub fn agent_ids(&self) -> Vec<AgentId> {
        let mut v: Vec<&AgentRt> = self.agents.values().collect();
        v.sort_by_key(|a| a.order);
        v.into_iter().map(|a| a.cfg.id.clone()).collect()
    }

    /// Queue names, sorted.
    pub fn queue_names(&self) -> Vec<QueueName> {
        self.queues.keys().cloned().collect()
    }

    /// Current state of an agent.
    pub fn agent_state(&self, agent: &str) -> Option<&AgentState> {
        self.agents.get(agent).map(|a| &a.state)
    }

    /// Callers remembered for sticky routing (bounded, see
    /// [`MAX_STICKY_HISTORY`]).
    pub fn sticky_history_len(&self) -> usize {
        self.history.len()
    }

    /// Lower the sticky-history bound (tests, small deployments).
    pub fn set_sticky_history_cap(&mut self, cap: usize) {
        self.history_cap = cap.max(2);
    }

    /// Dashboard / API view of an agent.
    pub fn agent_snapshot(&self, agent: &str) -> Option<AgentSnapshot> {
        let a = self.agents.get(agent)?;
        Some(AgentSnapshot {
            id: a.cfg.id.clone(),
            name: a.cfg.name.clone(),
            state: a.state.clone(),
            since: a.since,
            reachable: a.reachable,
            calls_today: a.answered_today,
            calls_total: a.answered_total,
            last_call_end: a.last_call_end,
            consecutive_misses: a.misses,
            pending_pause: a.pending_pause.clone(),
            queues: a.cfg.queues.iter().map(|m| m.queue.clone()).collect(),
        })
    }

    fn counts(&self, q: &QueueRt) -> (usize, usize, usize) {
        let mut present = 0;
        let mut serving = 0;
        let mut free = 0;
        for a in q.members.iter().filter_map(|m| self.agents.get(m)) {
            present += usize::from(a.present());
            serving += usize::from(a.serving());
            free += usize::from(a.offerable());
        }
        (present, serving, free)
    }

    /// Dashboard / API view of a queue at `now` (waits on `now.mono`).
    pub fn queue_snapshot(&self, queue: &str, now: Now) -> Option<QueueSnapshot> {
        let q = self.queues.get(queue)?;
        let (present, serving, free) = self.counts(q);
        let waiting: Vec<WaitingSnapshot> = q
            .order
            .values()
            .enumerate()
            .filter_map(|(i, id)| {
                let w = self.waiting.get(id)?;
                Some(WaitingSnapshot {
                    call: id.clone(),
                    caller: w.call.caller.clone(),
                    priority: w.call.priority,
                    position: i + 1,
                    waited: now.mono.saturating_duration_since(w.call.entered_at),
                    in_queue: now.mono.saturating_duration_since(w.enqueued_at),
                    ringing: w.offers.keys().cloned().collect(),
                    held_for: w
                        .sticky
                        .as_ref()
                        .filter(|s| s.hold_until.is_some())
                        .map(|s| s.agent.clone()),
                    ewt: estimate_wait(i + 1, free, serving, q.avg_handle),
                })
            })
            .collect();
        Some(QueueSnapshot {
            name: q.cfg.name.clone(),
            strategy: q.cfg.strategy.clone(),
            longest_wait: waiting.iter().map(|w| w.waited).max(),
            waiting,
            present_agents: present,
            serving_agents: serving,
            available_agents: free,
            avg_handle: q.avg_handle,
        })
    }

    /// 1-based position of a waiting call in its queue.
    pub fn position(&self, call: &str) -> Option<usize> {
        let w = self.waiting.get(call)?;
        let q = self.queues.get(&w.call.queue)?;
        Some(q.order.range(..w.key).count() + 1)
    }

    /// Estimated wait at `position` in `queue` ([`crate::estimate_wait`]
    /// with the queue's current staffing and average handle time).
    pub fn ewt(&self, queue: &str, position: usize) -> Option<Duration> {
        let q = self.queues.get(queue)?;
        let (_, serving, free) = self.counts(q);
        Some(estimate_wait(position, free, serving, q.avg_handle))
    }

    /// Estimated wait of a waiting call at its current position.
    pub fn call_ewt(&self, call: &str) -> Option<Duration> {
        let w = self.waiting.get(call)?;
        self.ewt(w.call.queue.as_str(), self.position(call)?)
    }

    /// Whether a call is waiting in a queue (possibly ringing an agent).
    pub fn is_waiting(&self, call: &str) -> bool {
        self.waiting.contains_key(call)
    }

    /// The agent a call is bridged to, if connected.
    pub fn connected_agent(&self, call: &str) -> Option<&AgentId> {
        self.active.get(call).map(|a| &a.agent)
    }

    /// Live offers of a waiting call, with their deadlines.
    pub fn offers(&self, call: &str) -> Vec<(AgentId, Instant)> {
        self.waiting.get(call).map_or_else(Vec::new, |w| {
            w.offers
                .iter()
                .map(|(a, o)| (a.clone(), o.deadline))
                .collect()
        })
    }

    /// Verifies the engine's internal consistency; `Err` describes the first
    /// violation. Meant for tests and debug assertions in the shell:
    /// every ringing agent owns exactly one live offer and vice versa, every
    /// on-call agent matches one connected call, no call is both waiting and
    /// connected, queue order and waiting calls agree, and every offer and
    /// wrap-up has its deadline scheduled.
    pub fn check_invariants(&self) -> Result<(), String> {
        for (id, a) in &self.agents {
            match &a.state {
                AgentState::Ringing { call } => {
                    let Some(o) = self.waiting.get(call).and_then(|w| w.offers.get(id)) else {
                        return Err(format!(
                            "agent {id} ringing for {call} without a live offer"
                        ));
                    };
                    let timer = (
                        o.deadline,
                        Timer::Ring {
                            call: call.clone(),
                            agent: id.clone(),
                        },
                    );
                    if !self.timers.contains(&timer) {
                        return Err(format!("offer {call}→{id} has no ring timer"));
                    }
                }
                AgentState::OnCall { call }
                    if self.active.get(call).is_none_or(|c| &c.agent != id) =>
                {
                    return Err(format!("agent {id} on call {call} not connected to it"));
                }
                AgentState::WrapUp { until }
                    if !self.timers.contains(&(*until, Timer::WrapUp(id.clone()))) =>
                {
                    return Err(format!("agent {id} in wrap-up without a timer"));
                }
                _ => {}
            }
            if a.pending_pause.is_some()
                && !matches!(
                    a.state,
                    AgentState::OnCall { .. } | AgentState::WrapUp { .. }
                )
            {
                return Err(format!(
                    "agent {id} has a pending pause while {}",
                    a.state.name()
                ));
            }
        }
        for (call, w) in &self.waiting {
            if self.active.contains_key(call) {
                return Err(format!("call {call} both waiting and connected"));
            }
            for agent in w.offers.keys() {
                let ok = self.agents.get(agent).is_some_and(
                    |a| matches!(&a.state, AgentState::Ringing { call: c } if c == call),
                );
                if !ok {
                    return Err(format!(
                        "offer {call}→{agent} but the agent is not ringing for it"
                    ));
                }
            }
            let in_order = self
                .queues
                .get(&w.call.queue)
                .and_then(|q| q.order.get(&w.key))
                .is_some_and(|c| c == call);
            if !in_order {
                return Err(format!("call {call} missing from its queue order"));
            }
        }
        let ordered: usize = self.queues.values().map(|q| q.order.len()).sum();
        if ordered != self.waiting.len() {
            return Err(format!(
                "{ordered} calls in queue orders, {} waiting",
                self.waiting.len()
            ));
        }
        self.check_indexes()?;
        for (call, c) in &self.active {
            let ok = self
                .agents
                .get(&c.agent)
                .is_some_and(|a| matches!(&a.state, AgentState::OnCall { call: x } if x == call));
            if !ok {
                return Err(format!(
                    "connected call {call} but agent {} not on it",
                    c.agent
                ));
            }
        }
        Ok(())
    }

    /// The routing indexes agree with the waiting calls: each queue's `idle`
    /// holds exactly its waiting calls without a live offer, `sticky` exactly
    /// the waiting calls with a sticky agent, and each agent's `skipped_in`
    /// exactly the waiting calls whose skip list names it. Part of
    /// [`Acd::check_invariants`].
    fn check_indexes(&self) -> Result<(), String> {
        let (mut idle, mut sticky, mut skips) = (0, 0, 0);
        for (call, w) in &self.waiting {
            let q = self
                .queues
                .get(&w.call.queue)
                .ok_or_else(|| format!("call {call} in unknown queue {}", w.call.queue))?;
            let indexed = q.idle.get(&w.key);
            if w.offers.is_empty() {
                idle += 1;
                if indexed != Some(call) {
                    return Err(format!("call {call} without an offer missing from idle"));
                }
            } else if indexed.is_some() {
                return Err(format!("call {call} with a live offer still idle"));
            }
            match (&w.sticky, self.sticky.get(&w.key)) {
                (Some(_), Some(c)) if c == call => sticky += 1,
                (None, None) => {}
                _ => return Err(format!("call {call}: sticky index out of step")),
            }
            for agent in w.skipped.keys() {
                skips += 1;
                if !self
                    .agents
                    .get(agent)
                    .is_some_and(|a| a.skipped_in.contains(call))
                {
                    return Err(format!("call {call} skips {agent}, not in its index"));
                }
            }
        }
        let idle_total: usize = self.queues.values().map(|q| q.idle.len()).sum();
        if idle_total != idle {
            return Err(format!("{idle_total} idle-indexed calls, {idle} idle"));
        }
        if self.sticky.len() != sticky {
            return Err(format!(
                "{} sticky-indexed calls, {sticky} sticky",
                self.sticky.len()
            ));
        }
        let skip_total: usize = self.agents.values().map(|a| a.skipped_in.len()).sum();
        if skip_total != skips {
            return Err(format!("{skip_total} indexed skips, {skips} skips"));
        }
        Ok(())
    }
}

/// The one core shape (issue 12): inputs and the time go in through
/// [`Core::handle`] and [`Core::handle_timeout`], everything the engine
/// wants done comes out of [`Core::poll_output`], in order.
///
/// # Refusals
///
/// An input the engine cannot take (an unknown agent, a login while logged
/// in, an answer for an offer already withdrawn …) changes nothing and
/// queues exactly one output, [`Output::Refused`] with the [`AcdError`].
/// Refusals are outputs rather than a `Result` from a second entry point
/// because:
///
/// * one way in: the shell never has to choose, per input, between
///   `handle` and a checked variant, and no input can slip past the
///   checked path (the late 200 OK that must be hung up arrives as an
///   ordinary report from a call, not as a command);
/// * what a refusal asks of the shell is work like any other output — hang
///   up a late-answering agent leg, answer the API — so it is carried out
///   where the other outputs are, in order;
/// * the callers that need the error still get it at once: the shell
///   drains right after `handle`, and a refused input's only output is its
///   `Refused`, so `acd_task`'s `command()` replies with exactly that
///   error (or `Ok` when there is none).
impl Core for Acd {
    type Input = Input;
    type Output = Output;

    /// Applies one input at `now`, then routes whatever can be routed; on
    /// refusal queues [`Output::Refused`] alone.
    fn handle(&mut self, input: Input, now: Now) {
        let mut out = std::mem::take(&mut self.out);
        let queued = out.len();
        if let Err(e) = self.apply(input, now, &mut out) {
            // Handlers check before they act, so nothing was pushed; the
            // truncate only makes "nothing else" hold by construction.
            out.truncate(queued);
            out.push_back(Output::Refused(e));
        }
        self.out = out;
    }

    /// Runs every deadline due at `now.mono`, then routes.
    fn handle_timeout(&mut self, now: Now) {
        let mut out = std::mem::take(&mut self.out);
        loop {
            match self.timers.first() {
                Some((t, _)) if *t <= now.mono => {}
                _ => break,
            }
            let Some((t, timer)) = self.timers.pop_first() else {
                break;
            };
            self.fire(t, timer, now, &mut out);
        }
        self.dispatch(now, &mut out);
        self.out = out;
    }

    fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The earliest instant at which [`Core::handle_timeout`] has work
    /// (ring timeouts, wrap-up ends, sticky holds, maximum waits, re-offer
    /// cool-downs). May be slightly early (a wake-up finding nothing to do
    /// is harmless); never late.
    fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }
}

#[cfg(test)]
// Test code drives the core with the real clock as its base time (issue 12).
#[allow(clippy::disallowed_methods)]
mod index_tests {
    use super::*;
    use crate::tests::run;
    use crate::{AgentConfig, QueueConfig};

    fn engine() -> (Acd, Now) {
        let mut acd = Acd::new(
            vec![QueueConfig::new("q")],
            vec![AgentConfig::new("x").member_of("q")],
            1,
        )
        .expect("config");
        let now = Now::system();
        run(&mut acd, Input::AgentLogin("x".into()), now).unwrap();
        run(&mut acd, Input::AgentReachable("x".into(), true), now).unwrap();
        run(
            &mut acd,
            Input::AgentPause {
                agent: "x".into(),
                reason: "p".into(),
            },
            now,
        )
        .unwrap();
        for c in ["a", "b"] {
            let call = WaitingCall::new(c, "q", "", now.mono);
            run(&mut acd, Input::Enqueue(call), now).unwrap();
        }
        run(&mut acd, Input::AgentUnpause("x".into()), now).unwrap();
        run(
            &mut acd,
            Input::OfferFailed {
                call: "a".into(),
                agent: "x".into(),
                reason: OfferFailure::Rejected,
            },
            now,
        )
        .unwrap();
        (acd, now)
    }

    #[test]
    fn check_invariants_catches_indexes_out_of_step() {
        let (acd, _) = engine();
        acd.check_invariants().unwrap();
        // `a` was rejected (skipped, idle again), `b` is ringing.
        assert!(acd.queues["q"].idle.values().any(|c| c.as_str() == "a"));
        assert!(!acd.queues["q"].idle.values().any(|c| c.as_str() == "b"));
        assert_eq!(acd.agents["x"].skipped_in.len(), 1);

        let (mut acd, _) = engine();
        let key = acd.waiting["b"].key;
        acd.queues
            .get_mut("q")
            .unwrap()
            .idle
            .insert(key, "b".into());
        assert!(acd.check_invariants().is_err(), "ringing call left idle");

        let (mut acd, _) = engine();
        let key = acd.waiting["a"].key;
        acd.queues.get_mut("q").unwrap().idle.remove(&key);
        assert!(acd.check_invariants().is_err(), "idle call not indexed");

        let (mut acd, _) = engine();
        acd.agents.get_mut("x").unwrap().skipped_in.clear();
        assert!(acd.check_invariants().is_err(), "skip not indexed");

        let (mut acd, _) = engine();
        let key = acd.waiting["a"].key;
        acd.sticky.insert(key, "a".into());
        assert!(
            acd.check_invariants().is_err(),
            "sticky index without sticky"
        );
    }
}
