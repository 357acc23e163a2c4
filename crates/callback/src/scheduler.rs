//! The scheduler: guards and dedupe on request, then the life of each live
//! callback — when it may enter the ACD, what each attempt's result leads
//! to, expiry, and recovery after a restart. See the crate docs for the
//! rules.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, TimeDelta, Utc};

use crate::errors::{rfc3339, CallbackError, RateLimit, Refusal};
use crate::model::{AttemptResult, Callback, CallbackState, NewCallback, Transition};
use crate::number::normalize_number;
use crate::policy::Policy;

/// Most request timestamps kept for the rate limits. Entries older than
/// 24 hours are pruned on every request; this cap only matters with a
/// `max_per_hour` above ~4000, where the per-number limit may then
/// under-count the oldest requests.
pub const MAX_RATE_HISTORY: usize = 100_000;

#[derive(Debug, Clone)]
struct Entry {
    cb: Callback,
    /// In the ACD (returned by `eligible`, not withdrawn, not dialed yet).
    handed_out: bool,
    /// Waiting and not handed out: first moment dialing is allowed (a cache
    /// of `next_allowed(next_attempt_at)`; refreshed by `eligible`).
    due: Option<DateTime<Utc>>,
    /// Handed out: when dialing stops being allowed (→ `withdraw`).
    close_at: Option<DateTime<Utc>>,
}

/// The callback scheduler for one node: the live callbacks in memory, the
/// per-queue policies and the rate-limit history. Pure: every method takes
/// the current time and returns what the shell must persist and do.
#[derive(Debug, Clone)]
pub struct Scheduler {
    policies: HashMap<String, Policy>,
    default: Policy,
    entries: HashMap<String, Entry>,
    /// (queue, number) → id of the live callback.
    by_number: HashMap<(String, String), String>,
    /// Accepted requests `(when, number)`, in time order.
    history: VecDeque<(DateTime<Utc>, String)>,
}

fn policy_for<'a>(
    policies: &'a HashMap<String, Policy>,
    default: &'a Policy,
    queue: &str,
) -> &'a Policy {
    policies.get(queue).unwrap_or(default)
}

/// Whether `cb` may be dialed at `t`: before expiry, inside its preferred
/// window, and inside the queue's dialing window.
fn allowed_at(policy: &Policy, cb: &Callback, t: DateTime<Utc>) -> bool {
    t < cb.expires_at && cb.preferred.is_none_or(|(s, e)| s <= t && t < e) && policy.window_open(t)
}

/// The end of the span in which `cb` can be dialed at all.
fn dial_limit(cb: &Callback) -> DateTime<Utc> {
    match cb.preferred {
        Some((_, e)) => e.min(cb.expires_at),
        None => cb.expires_at,
    }
}

/// First moment `≥ from` at which `cb` may be dialed, if any.
fn next_allowed(policy: &Policy, cb: &Callback, from: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let from = match cb.preferred {
        Some((s, _)) => from.max(s),
        None => from,
    };
    policy.next_window_change(from, true, dial_limit(cb))
}

/// First moment `> from` at which `cb` may no longer be dialed (it may be
/// now).
fn next_disallowed(policy: &Policy, cb: &Callback, from: DateTime<Utc>) -> DateTime<Utc> {
    let limit = dial_limit(cb);
    policy
        .next_window_change(from, false, limit)
        .unwrap_or(limit)
}

fn transition(
    cb: &Callback,
    from: CallbackState,
    at: DateTime<Utc>,
    reason: String,
    result: Option<AttemptResult>,
) -> Transition {
    Transition {
        id: cb.id.clone(),
        from,
        to: cb.state,
        at,
        reason,
        attempt: cb.attempts,
        next_attempt_at: cb.next_attempt_at,
        result,
    }
}

impl Scheduler {
    /// A scheduler with per-queue policies; queues not listed use `default`.
    pub fn new(policies: HashMap<String, Policy>, default: Policy) -> Self {
        Scheduler {
            policies,
            default,
            entries: HashMap::new(),
            by_number: HashMap::new(),
            history: VecDeque::new(),
        }
    }

    /// Replaces the policies (configuration reload). Waiting callbacks get
    /// their next dialing time recomputed under the new windows; those that
    /// already used up a lowered `max_attempts` fail (returned transitions).
    /// Handed-out callbacks stay handed out; [`withdraw`](Self::withdraw)
    /// takes them back if the new window is closed.
    pub fn reconfigure(
        &mut self,
        policies: HashMap<String, Policy>,
        default: Policy,
        now: DateTime<Utc>,
    ) -> Vec<Transition> {
        self.policies = policies;
        self.default = default;
        let mut out = Vec::new();
        let mut ids: Vec<String> = self.entries.keys().cloned().collect();
        ids.sort();
        for id in ids {
            let Some(e) = self.entries.get_mut(&id) else {
                continue;
            };
            let policy = policy_for(&self.policies, &self.default, &e.cb.queue);
            if !e.cb.state.is_waiting() {
                continue;
            }
            if e.cb.attempts >= policy.max_attempts.max(1) {
                let from = e.cb.state;
                e.cb.state = CallbackState::Failed;
                e.cb.next_attempt_at = None;
                let reason = format!(
                    "no attempts left: {} made, max_attempts is now {}",
                    e.cb.attempts, policy.max_attempts
                );
                out.push(transition(&e.cb, from, now, reason, None));
                self.remove(&id);
                continue;
            }
            if e.handed_out {
                e.close_at = Some(next_disallowed(policy, &e.cb, now));
            } else {
                let from = e.cb.next_attempt_at.unwrap_or(now);
                e.due = next_allowed(policy, &e.cb, from);
            }
        }
        out
    }

    /// The policy of `queue` (or the default).
    pub fn policy(&self, queue: &str) -> &Policy {
        policy_for(&self.policies, &self.default, queue)
    }

    /// Runs every guard for a request without changing anything, and
    /// returns the normalised number: the IVR calls it before making the
    /// offer (and to tell a repeat caller they already have a callback).
    ///
    /// Order: number valid → not a duplicate → not denied → allowed →
    /// queue not full → per-number limit → global limit.
    pub fn check(&self, queue: &str, number: &str, now: DateTime<Utc>) -> Result<String, Refusal> {
        let number = normalize_number(number)?;
        let policy = self.policy(queue);
        if let Some(existing) = self.by_number.get(&(queue.to_owned(), number.clone())) {
            return Err(Refusal::Duplicate {
                existing_id: existing.clone(),
            });
        }
        if let Some(pattern) = policy.denied_by(&number) {
            return Err(Refusal::Denied {
                pattern: pattern.to_owned(),
            });
        }
        if !policy.allows(&number) {
            return Err(Refusal::NotAllowed);
        }
        if self.pending_in_queue(queue) >= policy.max_pending {
            return Err(Refusal::QueueFull {
                queue: queue.to_owned(),
                max: policy.max_pending,
            });
        }
        let day_ago = now - TimeDelta::hours(24);
        let max = policy.max_per_number_per_day;
        let mine: Vec<DateTime<Utc>> = self
            .history
            .iter()
            .filter(|(t, n)| *t > day_ago && *n == number)
            .map(|(t, _)| *t)
            .collect();
        if mine.len() >= max as usize {
            let oldest = mine.len() - max as usize;
            return Err(Refusal::RateLimited {
                limit: RateLimit::PerNumberPerDay,
                max,
                until: mine.get(oldest).map_or(now, |t| *t + TimeDelta::hours(24)),
            });
        }
        let hour_ago = now - TimeDelta::hours(1);
        let start = self.history.partition_point(|(t, _)| *t <= hour_ago);
        let in_hour = self.history.len() - start;
        let max = policy.max_per_hour;
        if in_hour >= max as usize {
            let oldest = start + (in_hour - max as usize);
            return Err(Refusal::RateLimited {
                limit: RateLimit::GlobalPerHour,
                max,
                until: self
                    .history
                    .get(oldest)
                    .map_or(now, |(t, _)| *t + TimeDelta::hours(1)),
            });
        }
        Ok(number)
    }

    /// Accepts a request: runs the guards ([`check`](Self::check)),
    /// validates the preferred window, and returns the new callback in
    /// `scheduled` with `next_attempt_at` = the first moment dialing is
    /// allowed (now, or the next window opening; never before
    /// [`NewCallback::not_before`]), plus its transition `requested →
    /// scheduled`. Persist both before confirming to the caller. Requests
    /// waiting for the same opening are dialed in `entered_at` order (see
    /// [`eligible`](Self::eligible)).
    ///
    /// `expires_at` is `expire_after_hours` after now (or after
    /// `not_before`, when later), or the end of the preferred window if
    /// that is earlier. A preferred window must end after now and after its
    /// start, and start before that horizon.
    pub fn request(
        &mut self,
        req: NewCallback,
        now: DateTime<Utc>,
    ) -> Result<(Callback, Vec<Transition>), Refusal> {
        let number = self.check(&req.queue, &req.number, now)?;
        if self.entries.contains_key(&req.id) {
            return Err(Refusal::IdInUse(req.id));
        }
        let policy = self.policy(&req.queue);
        // An after-hours request waits for the opening; its life (and the
        // latest preferred start) counts from there.
        let start = req.not_before.map_or(now, |t| t.max(now));
        let horizon = start + TimeDelta::hours(i64::from(policy.expire_after_hours.max(1)));
        let mut expires_at = horizon;
        if let Some((start, end)) = req.preferred {
            if end <= start {
                return Err(Refusal::InvalidWindow(format!(
                    "it ends ({}) before it starts ({})",
                    rfc3339(end),
                    rfc3339(start)
                )));
            }
            if end <= now {
                return Err(Refusal::InvalidWindow(format!(
                    "it is already over (ended {})",
                    rfc3339(end)
                )));
            }
            if start >= horizon {
                return Err(Refusal::InvalidWindow(format!(
                    "it starts after {}, the latest a callback can be scheduled ({} hours ahead)",
                    rfc3339(horizon),
                    policy.expire_after_hours
                )));
            }
            expires_at = expires_at.min(end);
        }
        let mut cb = Callback {
            id: req.id,
            queue: req.queue,
            number,
            state: CallbackState::Scheduled,
            entered_at: req.entered_at,
            created_at: now,
            attempts: 0,
            next_attempt_at: None,
            preferred: req.preferred,
            expires_at,
            context: req.context,
            origin: req.origin,
            last_result: None,
        };
        let Some(due) = next_allowed(policy, &cb, start) else {
            return Err(Refusal::NoDialingTime { expires_at });
        };
        cb.next_attempt_at = Some(due);
        let reason = if due <= now {
            format!("{} request accepted; dialing allowed now", cb.origin)
        } else {
            format!(
                "{} request accepted; dialing allowed from {}",
                cb.origin,
                rfc3339(due)
            )
        };
        let t = transition(&cb, CallbackState::Requested, now, reason, None);
        self.record_request(now, &cb.number);
        self.insert(cb.clone(), Some(due));
        Ok((cb, vec![t]))
    }

    fn record_request(&mut self, at: DateTime<Utc>, number: &str) {
        let cutoff = at - TimeDelta::hours(24);
        while self.history.front().is_some_and(|(t, _)| *t <= cutoff) {
            self.history.pop_front();
        }
        let pos = self.history.partition_point(|(t, _)| *t <= at);
        self.history.insert(pos, (at, number.to_owned()));
        while self.history.len() > MAX_RATE_HISTORY {
            self.history.pop_front();
        }
    }

    fn insert(&mut self, cb: Callback, due: Option<DateTime<Utc>>) {
        self.by_number
            .insert((cb.queue.clone(), cb.number.clone()), cb.id.clone());
        self.entries.insert(
            cb.id.clone(),
            Entry {
                cb,
                handed_out: false,
                due,
                close_at: None,
            },
        );
    }

    fn remove(&mut self, id: &str) -> Option<Callback> {
        let e = self.entries.remove(id)?;
        let key = (e.cb.queue.clone(), e.cb.number.clone());
        if self.by_number.get(&key).is_some_and(|x| x == id) {
            self.by_number.remove(&key);
        }
        Some(e.cb)
    }

    /// Loads callbacks from the store after a start (or a crash), and
    /// returns the transitions that repair them — persist these first.
    ///
    /// * Terminal callbacks only seed the rate limits (pass those created
    ///   in the last 24 hours for the limits to survive a restart).
    /// * `requested` (crashed between the two writes) → `scheduled`.
    /// * `dialing` → `scheduled` at once, keeping its place in line: the
    ///   interrupted attempt is **not counted** (the crash was ours, not the
    ///   customer's), so a crash mid-dial is retried, never lost, and
    ///   `attempts ≤ max_attempts` still holds.
    /// * `connected` (crash while bridged): the customer had reached an
    ///   agent, so by default → `completed`, not called again. With the
    ///   queue's `redial_interrupted = true` → `retry_wait`, retried after
    ///   `retry_after_secs` (the first backoff step, so an agent who had
    ///   finished the conversation can still cancel it); attempt not counted.
    /// * `scheduled` / `retry_wait` are kept; nothing is handed out.
    /// * A second live callback for the same number and queue (two nodes
    ///   raced) → `cancelled`; the one created first (or already in memory)
    ///   wins. Waiting callbacks with `attempts ≥ max_attempts` → `failed`.
    /// * Finally, anything past `expires_at` expires (see
    ///   [`expire`](Self::expire)).
    ///
    /// A callback whose id is already in memory is replaced by the stored
    /// copy and is no longer handed out.
    pub fn restore(&mut self, cbs: Vec<Callback>, now: DateTime<Utc>) -> Vec<Transition> {
        let mut cbs = cbs;
        cbs.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        let mut out = Vec::new();
        let day_ago = now - TimeDelta::hours(24);
        for mut cb in cbs {
            if cb.created_at > day_ago && !self.entries.contains_key(&cb.id) {
                self.record_request(cb.created_at, &cb.number);
            }
            if cb.state.is_terminal() {
                continue;
            }
            self.remove(&cb.id);
            let policy = policy_for(&self.policies, &self.default, &cb.queue);
            let from = cb.state;
            let key = (cb.queue.clone(), cb.number.clone());
            if let Some(existing) = self.by_number.get(&key) {
                cb.state = CallbackState::Cancelled;
                cb.next_attempt_at = None;
                let reason = format!("duplicate of live callback {existing} found on restore");
                out.push(transition(&cb, from, now, reason, None));
                continue;
            }
            let reason = match cb.state {
                CallbackState::Requested => {
                    cb.state = CallbackState::Scheduled;
                    cb.next_attempt_at = Some(now);
                    Some("restored: request had not been scheduled".to_owned())
                }
                CallbackState::Dialing => {
                    cb.state = CallbackState::Scheduled;
                    cb.attempts = cb.attempts.saturating_sub(1);
                    cb.next_attempt_at = Some(now);
                    Some(
                        "interrupted while dialing (restart); attempt not counted, back to its place in line"
                            .to_owned(),
                    )
                }
                CallbackState::Connected if !policy.redial_interrupted => {
                    // The customer had reached a person: calling again would
                    // ring someone whose question may be answered.
                    cb.state = CallbackState::Completed;
                    cb.next_attempt_at = None;
                    let reason = "interrupted while connected (restart): the customer had reached an agent; not called again (redial_interrupted = false)";
                    out.push(transition(&cb, from, now, reason.to_owned(), None));
                    continue;
                }
                CallbackState::Connected => {
                    cb.state = CallbackState::RetryWait;
                    cb.attempts = cb.attempts.saturating_sub(1);
                    cb.next_attempt_at = Some(now + policy.backoff(1));
                    Some(
                        "interrupted while connected (restart); attempt not counted, calling again (redial_interrupted = true)"
                            .to_owned(),
                    )
                }
                _ => None,
            };
            if cb.attempts >= policy.max_attempts.max(1) {
                cb.state = CallbackState::Failed;
                cb.next_attempt_at = None;
                let reason = format!(
                    "no attempts left ({} of {}) on restore",
                    cb.attempts, policy.max_attempts
                );
                out.push(transition(&cb, from, now, reason, None));
                continue;
            }
            let base = cb.next_attempt_at.unwrap_or(now);
            let due = next_allowed(policy, &cb, base);
            if reason.is_some() {
                // Like `request`: the stored time is the window-adjusted one.
                cb.next_attempt_at = Some(due.unwrap_or(base));
            } else if cb.next_attempt_at.is_none() {
                cb.next_attempt_at = Some(base);
            }
            if let Some(reason) = reason {
                out.push(transition(&cb, from, now, reason, None));
            }
            self.insert(cb, due);
        }
        out.extend(self.expire(now));
        out
    }

    /// The waiting callbacks that may enter the ACD now (retry time passed,
    /// dialing and preferred windows open, not expired, not already handed
    /// out), oldest place in line first. They are marked handed out: each
    /// is returned once, until it is dialed, withdrawn, released or
    /// rescheduled. Enqueue each as a waiting call with `entered_at` =
    /// [`Callback::entered_at`].
    pub fn eligible(&mut self, now: DateTime<Utc>) -> Vec<Callback> {
        let mut out = Vec::new();
        for e in self.entries.values_mut() {
            if !e.cb.state.is_waiting() || e.handed_out || e.due.is_none_or(|d| d > now) {
                continue;
            }
            let policy = policy_for(&self.policies, &self.default, &e.cb.queue);
            if allowed_at(policy, &e.cb, now) {
                e.handed_out = true;
                e.due = None;
                e.close_at = Some(next_disallowed(policy, &e.cb, now));
                out.push(e.cb.clone());
            } else {
                // The window closed again before we got here.
                let from = e.cb.next_attempt_at.unwrap_or(now).max(now);
                e.due = next_allowed(policy, &e.cb, from);
            }
        }
        out.sort_by(|a, b| {
            (a.entered_at, a.created_at, &a.id).cmp(&(b.entered_at, b.created_at, &b.id))
        });
        out
    }

    /// Handed-out callbacks that may no longer be dialed (dialing window or
    /// preferred window closed): they are taken back — remove them from the
    /// ACD. They become eligible again when dialing is next allowed. No
    /// state changes (they stay `scheduled` / `retry_wait`).
    pub fn withdraw(&mut self, now: DateTime<Utc>) -> Vec<String> {
        let mut out = Vec::new();
        for e in self.entries.values_mut() {
            if !e.handed_out || e.close_at.is_none_or(|c| c > now) {
                continue;
            }
            let policy = policy_for(&self.policies, &self.default, &e.cb.queue);
            if allowed_at(policy, &e.cb, now) {
                e.close_at = Some(next_disallowed(policy, &e.cb, now));
                continue;
            }
            e.handed_out = false;
            e.close_at = None;
            e.due = next_allowed(policy, &e.cb, now);
            out.push(e.cb.id.clone());
        }
        out.sort();
        out
    }

    /// Takes back a handed-out callback the ACD dropped without dialing it
    /// (e.g. the queue's maximum wait): it becomes eligible again on the
    /// next [`eligible`](Self::eligible) if dialing is allowed. Do not
    /// release in a loop: if the ACD cannot hold it, reschedule it instead.
    pub fn release(&mut self, id: &str, now: DateTime<Utc>) -> Result<(), CallbackError> {
        let e = self
            .entries
            .get_mut(id)
            .ok_or_else(|| CallbackError::Unknown(id.to_owned()))?;
        if !e.handed_out {
            return Err(CallbackError::NotHandedOut(id.to_owned()));
        }
        let policy = policy_for(&self.policies, &self.default, &e.cb.queue);
        e.handed_out = false;
        e.close_at = None;
        e.due = next_allowed(policy, &e.cb, now);
        Ok(())
    }

    /// The next moment the shell must call [`eligible`](Self::eligible),
    /// [`withdraw`](Self::withdraw) and [`expire`](Self::expire): a waiting
    /// callback becomes dialable, a handed-out one stops being dialable, or
    /// one expires. `None`: nothing will happen without an input. May be
    /// `≤ now` (act at once); after those three calls at `now` it is later
    /// than `now`. Callbacks in `dialing` / `connected` wait for the dialer.
    pub fn poll_timeout(&self, _now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.entries
            .values()
            .filter(|e| e.cb.state.is_waiting())
            .flat_map(|e| {
                let t = if e.handed_out { e.close_at } else { e.due };
                [t, Some(e.cb.expires_at)]
            })
            .flatten()
            .min()
    }

    /// Waiting callbacks past `expires_at` → `expired`, in expiry order.
    /// One being dialed or bridged is left to its attempt's result (which
    /// expires it instead of retrying). Remove expired ones from the ACD.
    pub fn expire(&mut self, now: DateTime<Utc>) -> Vec<Transition> {
        let mut due: Vec<(DateTime<Utc>, String)> = self
            .entries
            .values()
            .filter(|e| e.cb.state.is_waiting() && e.cb.expires_at <= now)
            .map(|e| (e.cb.expires_at, e.cb.id.clone()))
            .collect();
        due.sort();
        let mut out = Vec::new();
        for (_, id) in due {
            if let Some(mut cb) = self.remove(&id) {
                let from = cb.state;
                cb.state = CallbackState::Expired;
                cb.next_attempt_at = None;
                let reason = format!(
                    "expired at {} after {} attempt(s)",
                    rfc3339(cb.expires_at),
                    cb.attempts
                );
                out.push(transition(&cb, from, now, reason, None));
            }
        }
        out
    }

    /// The ACD picked an agent for a handed-out callback: `scheduled` /
    /// `retry_wait` → `dialing`, one more attempt counted. Persist, then
    /// dial the agent (whisper) and the customer.
    ///
    /// Refused, with nothing changed, unless the callback is waiting and
    /// handed out. If dialing is not allowed at `now` (window closed and
    /// [`withdraw`](Self::withdraw) not yet called), the callback is
    /// withdrawn and [`CallbackError::OutsideWindow`] returned: cancel the
    /// agent offer and remove it from the ACD.
    pub fn dialing(&mut self, id: &str, now: DateTime<Utc>) -> Result<Transition, CallbackError> {
        let e = self
            .entries
            .get_mut(id)
            .ok_or_else(|| CallbackError::Unknown(id.to_owned()))?;
        if !e.cb.state.is_waiting() {
            return Err(CallbackError::IllegalTransition {
                id: id.to_owned(),
                state: e.cb.state,
                action: "start dialing",
            });
        }
        if !e.handed_out {
            return Err(CallbackError::NotHandedOut(id.to_owned()));
        }
        let policy = policy_for(&self.policies, &self.default, &e.cb.queue);
        if !allowed_at(policy, &e.cb, now) {
            e.handed_out = false;
            e.close_at = None;
            e.due = next_allowed(policy, &e.cb, now);
            return Err(CallbackError::OutsideWindow {
                id: id.to_owned(),
                next: e.due,
            });
        }
        let from = e.cb.state;
        e.cb.state = CallbackState::Dialing;
        e.cb.attempts += 1;
        e.cb.next_attempt_at = None;
        e.handed_out = false;
        e.due = None;
        e.close_at = None;
        let reason = format!(
            "agent found; attempt {} of {}",
            e.cb.attempts, policy.max_attempts
        );
        Ok(transition(&e.cb, from, now, reason, None))
    }

    /// The customer answered and accepted (pressed 1); the legs are
    /// bridged: `dialing` → `connected`.
    pub fn connected(&mut self, id: &str, now: DateTime<Utc>) -> Result<Transition, CallbackError> {
        let e = self
            .entries
            .get_mut(id)
            .ok_or_else(|| CallbackError::Unknown(id.to_owned()))?;
        if e.cb.state != CallbackState::Dialing {
            return Err(CallbackError::IllegalTransition {
                id: id.to_owned(),
                state: e.cb.state,
                action: "connect",
            });
        }
        e.cb.state = CallbackState::Connected;
        let reason = "customer accepted; bridged to the agent".to_owned();
        Ok(transition(&e.cb, CallbackState::Dialing, now, reason, None))
    }

    /// The attempt ended. From `dialing`:
    ///
    /// * busy, no answer, no acceptance, trunk failure → `retry_wait` at
    ///   `now + backoff(attempts)` (moved to the next moment dialing is
    ///   allowed); `failed` if `max_attempts` are used up; `expired` if no
    ///   dialing time is left before expiry.
    /// * declined (pressed 2) → `cancelled`.
    /// * agent lost → `scheduled` immediately, attempt not counted, same
    ///   `entered_at`: back to the head of the line (`expired` if past
    ///   expiry).
    ///
    /// From `connected`: completed → `completed`; a trunk failure → as
    /// above (the call dropped). Any other combination is refused and
    /// changes nothing.
    pub fn finished(
        &mut self,
        id: &str,
        result: AttemptResult,
        now: DateTime<Utc>,
    ) -> Result<Vec<Transition>, CallbackError> {
        let e = self
            .entries
            .get_mut(id)
            .ok_or_else(|| CallbackError::Unknown(id.to_owned()))?;
        let policy = policy_for(&self.policies, &self.default, &e.cb.queue);
        let from = e.cb.state;
        use AttemptResult as R;
        use CallbackState as S;
        let retry = match (from, &result) {
            (S::Connected, R::Completed) => false,
            (S::Dialing, R::AgentLost | R::CustomerDeclined) => false,
            (S::Dialing, R::CustomerBusy | R::CustomerNoAnswer | R::CustomerNoAcceptance) => true,
            (S::Dialing | S::Connected, R::Failed(_)) => true,
            (S::Dialing, R::Completed) => {
                return Err(CallbackError::IllegalTransition {
                    id: id.to_owned(),
                    state: from,
                    action: "complete (the customer was never connected)",
                })
            }
            (S::Connected, _) => {
                return Err(CallbackError::IllegalTransition {
                    id: id.to_owned(),
                    state: from,
                    action: "report a pre-answer result",
                })
            }
            _ => {
                return Err(CallbackError::IllegalTransition {
                    id: id.to_owned(),
                    state: from,
                    action: "finish an attempt",
                })
            }
        };
        let cb = &mut e.cb;
        cb.last_result = Some(result.clone());
        cb.next_attempt_at = None;
        let max = policy.max_attempts.max(1);
        let reason;
        if retry {
            if cb.attempts >= max {
                cb.state = S::Failed;
                reason = format!("{result}; no attempts left ({} of {max})", cb.attempts);
            } else {
                let base = now + policy.backoff(cb.attempts);
                match next_allowed(policy, cb, base) {
                    Some(at) => {
                        cb.state = S::RetryWait;
                        cb.next_attempt_at = Some(at);
                        e.due = Some(at);
                        reason = format!(
                            "{result}; attempt {} of {max} at {}",
                            cb.attempts + 1,
                            rfc3339(at)
                        );
                    }
                    None => {
                        cb.state = S::Expired;
                        reason = format!(
                            "{result}; no dialing time left before expiry at {}",
                            rfc3339(cb.expires_at)
                        );
                    }
                }
            }
        } else {
            match result {
                R::Completed => {
                    cb.state = S::Completed;
                    reason = "completed".to_owned();
                }
                R::CustomerDeclined => {
                    cb.state = S::Cancelled;
                    reason = "customer declined (pressed 2)".to_owned();
                }
                _ => {
                    // AgentLost: not the customer's fault.
                    cb.attempts = cb.attempts.saturating_sub(1);
                    match next_allowed(policy, cb, now) {
                        Some(at) => {
                            cb.state = S::Scheduled;
                            cb.next_attempt_at = Some(at);
                            e.due = Some(at);
                            reason = "agent lost before the customer answered; attempt not counted, back to the head of the line".to_owned();
                        }
                        None => {
                            cb.state = S::Expired;
                            reason = format!(
                                "agent lost; no dialing time left before expiry at {}",
                                rfc3339(cb.expires_at)
                            );
                        }
                    }
                }
            }
        }
        let t = transition(cb, from, now, reason, Some(result));
        if cb.state.is_terminal() {
            self.remove(id);
        }
        Ok(vec![t])
    }

    /// Cancels a waiting callback (customer's request, API): →
    /// `cancelled` with `reason`. Refused while `dialing` / `connected`: the
    /// attempt in progress decides (the customer can press 2); cancel after
    /// it ends. If it was handed out, remove it from the ACD.
    pub fn cancel(
        &mut self,
        id: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Transition, CallbackError> {
        let e = self
            .entries
            .get(id)
            .ok_or_else(|| CallbackError::Unknown(id.to_owned()))?;
        if !e.cb.state.is_waiting() {
            return Err(CallbackError::IllegalTransition {
                id: id.to_owned(),
                state: e.cb.state,
                action: "cancel",
            });
        }
        let mut cb = self
            .remove(id)
            .ok_or_else(|| CallbackError::Unknown(id.to_owned()))?;
        let from = cb.state;
        cb.state = CallbackState::Cancelled;
        cb.next_attempt_at = None;
        let reason = if reason.is_empty() {
            "cancelled".to_owned()
        } else {
            format!("cancelled: {reason}")
        };
        Ok(transition(&cb, from, now, reason, None))
    }

    /// Moves a waiting callback to `at` (or now, if earlier): →
    /// `scheduled`, dialed from the first moment ≥ `at` the dialing window
    /// allows. The customer's preferred window is replaced by this choice;
    /// attempts and place in line are kept. If `at` is past the expiry, the
    /// expiry moves to `at + expire_after_hours`. Refused while `dialing` /
    /// `connected`, and when the window never opens before expiry (nothing
    /// changed). If it was handed out, remove it from the ACD.
    pub fn reschedule(
        &mut self,
        id: &str,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Transition, CallbackError> {
        let e = self
            .entries
            .get_mut(id)
            .ok_or_else(|| CallbackError::Unknown(id.to_owned()))?;
        if !e.cb.state.is_waiting() {
            return Err(CallbackError::IllegalTransition {
                id: id.to_owned(),
                state: e.cb.state,
                action: "reschedule",
            });
        }
        let policy = policy_for(&self.policies, &self.default, &e.cb.queue);
        let at = at.max(now);
        let mut cb = e.cb.clone();
        cb.preferred = None;
        if at >= cb.expires_at {
            cb.expires_at = at + TimeDelta::hours(i64::from(policy.expire_after_hours.max(1)));
        }
        let Some(next) = next_allowed(policy, &cb, at) else {
            return Err(CallbackError::NoDialingTime {
                id: id.to_owned(),
                expires_at: cb.expires_at,
            });
        };
        let from = cb.state;
        cb.state = CallbackState::Scheduled;
        cb.next_attempt_at = Some(next);
        let reason = if next == at {
            format!("rescheduled to {}", rfc3339(at))
        } else {
            format!(
                "rescheduled to {}; dialing allowed from {}",
                rfc3339(at),
                rfc3339(next)
            )
        };
        let t = transition(&cb, from, now, reason, None);
        e.cb = cb;
        e.handed_out = false;
        e.close_at = None;
        e.due = Some(next);
        Ok(t)
    }

    /// Drops a callback from memory without a transition: another node
    /// took it over or ended it (shared store). Returns it if it was here.
    pub fn forget(&mut self, id: &str) -> Option<Callback> {
        self.remove(id)
    }

    /// A live callback.
    pub fn get(&self, id: &str) -> Option<&Callback> {
        self.entries.get(id).map(|e| &e.cb)
    }

    /// Whether a live callback is currently handed out to the ACD.
    pub fn is_handed_out(&self, id: &str) -> bool {
        self.entries.get(id).is_some_and(|e| e.handed_out)
    }

    /// Every live callback (any order).
    pub fn live(&self) -> impl Iterator<Item = &Callback> {
        self.entries.values().map(|e| &e.cb)
    }

    /// Live callbacks of `queue` (what `max_pending` limits).
    pub fn pending_in_queue(&self, queue: &str) -> usize {
        self.entries
            .values()
            .filter(|e| e.cb.queue == queue)
            .count()
    }

    /// The live callback for `number` (normalised here, so raw caller-ID
    /// is fine) in `queue`, e.g. to tell a repeat caller.
    pub fn live_for_number(&self, number: &str, queue: &str) -> Option<&Callback> {
        let number = normalize_number(number).ok()?;
        let id = self.by_number.get(&(queue.to_owned(), number))?;
        self.get(id)
    }

    /// How many live callbacks of `queue` are ahead of a caller who entered
    /// at `entered_at` — the callback part of "you are number N in line"
    /// (add the live callers ahead from the ACD).
    pub fn callbacks_ahead(&self, queue: &str, entered_at: DateTime<Utc>) -> usize {
        self.entries
            .values()
            .filter(|e| e.cb.queue == queue && e.cb.entered_at < entered_at)
            .count()
    }
}
