//! The dialplan interpreter: a pure state machine, one per call.
//!
//! The shell (the server's call task, or [`crate::simulate`]) feeds
//! [`Event`]s and executes the [`Action`]s written to `out`, in order. The
//! session never reads a clock, a socket or a file, so the server and
//! `ringback simulate` run exactly the same code and every behaviour can be
//! tested without a network.
//!
//! Invariants that protect callers:
//! * `0` in any menu (and a lone `0` + timeout in a gather) reaches a human
//!   (the operator queue), whatever the plan says;
//! * every retry loop is bounded by `max_retries`, after which the call goes
//!   to `on_fail` or, by default, to the operator — never to silence;
//! * a runaway (more than [`MAX_STEPS_WITHOUT_INPUT`] node entries without a
//!   caller key press) ends in a zero-out, even though `check` already
//!   rejects plans that could loop;
//! * events that do not apply in the current state are ignored; nothing
//!   panics on caller input.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use chrono_tz::Tz;

use crate::model::*;

/// Node entries allowed without a caller key press before the session gives
/// up and zero-outs (the "runaway guard").
pub const MAX_STEPS_WITHOUT_INPUT: usize = 1000;

/// Trace entries kept per call; a bound so a pathological call cannot grow
/// memory without limit.
pub const MAX_TRACE: usize = 4000;

/// Who is calling and when; given once, with [`Event::Started`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallInfo {
    /// Caller id (From user), informational.
    pub caller: String,
    /// The dialed number (Request-URI user).
    pub dialed: String,
    /// Call start time; `hours` nodes decide on this instant, which keeps
    /// the interpreter free of clock reads (and makes `simulate --at` work).
    pub now: DateTime<Utc>,
}

/// Something that happened to the call, fed by the shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The call was answered; run the plan from `start`.
    Started(CallInfo),
    /// The caller pressed a key (`0`-`9`, `*`, `#`; others are ignored).
    Digit(char),
    /// The last `Play` finished (not sent when it was stopped).
    PlaybackDone,
    /// The timer from `StartTimer` fired.
    Timeout,
    /// The caller hung up.
    Hangup,
    /// The last `Transfer` failed.
    TransferFailed,
    /// The ACD released the call from its queue (e.g. `max_wait` reached):
    /// continue at the queue node's `on_timeout`.
    QueueExited,
    /// The last `Lookup` was answered with this body (2xx): mapped into
    /// variables, or the node's `fallback` when it does not map.
    LookupAnswered(String),
    /// The last `Lookup` failed (timeout, error status, connection refused,
    /// breaker open): continue at the node's `fallback`.
    LookupFailed(String),
}

/// Something the shell must do, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Play prompts in order, then feed `PlaybackDone`. With `barge_in` a
    /// key press may interrupt (the session then sends `StopPlayback`).
    Play {
        /// Prompt names (`prompts/<name>.wav`).
        prompts: Vec<String>,
        /// Whether digits are accepted during playback.
        barge_in: bool,
    },
    /// Stop the current playback (no `PlaybackDone` afterwards).
    StopPlayback,
    /// Start the call's single timer, replacing any previous one; feed
    /// `Timeout` when it fires.
    StartTimer {
        /// Delay.
        after: Duration,
    },
    /// Cancel the timer.
    CancelTimer,
    /// Hand the call to the ACD. Terminal for the IVR unless `QueueExited`
    /// comes back.
    Enqueue {
        /// Queue name from `ringback.toml`.
        queue: String,
        /// True when the caller is routed to a human by the zero-out rule
        /// (key 0, default fallback, runaway guard), for reporting.
        zero_out: bool,
        /// Queue priority from the node (0 for zero-outs). An addition to
        /// the original action so the ACD does not need to look up the node.
        priority: i32,
        /// Feed `QueueExited` after this long without an agent.
        max_wait: Option<Duration>,
        /// Callback offer settings for the ACD.
        callback: Option<CallbackOffer>,
    },
    /// Record a callback request for `queue`. The shell must persist it
    /// before executing the next action (the confirmation prompt).
    Callback {
        /// Queue the callback keeps a place in.
        queue: String,
        /// Not to be dialed before this instant: the next opening of the
        /// node's `when_open` hours when the call came outside them.
        not_before: Option<DateTime<Utc>>,
    },
    /// Ask the configured lookup `lookup` (HTTP) with the caller's number
    /// and the call's variables; feed `LookupAnswered` or `LookupFailed`.
    /// The shell must answer within the lookup's timeout, so the caller is
    /// never left waiting for nothing.
    Lookup {
        /// `[lookups.<name>]` of the configuration.
        lookup: String,
        /// The caller's number.
        caller: String,
        /// The call's variables so far.
        vars: BTreeMap<String, String>,
    },
    /// Blind-transfer the call; feed `TransferFailed` on failure.
    Transfer {
        /// SIP URI or extension.
        target: String,
    },
    /// Hang up the call.
    Hangup,
}

/// How the IVR part of a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Handed to a queue.
    Queued {
        /// Queue name.
        queue: String,
        /// Reached through the zero-out rule.
        zero_out: bool,
    },
    /// Transferred away.
    Transferred {
        /// SIP URI or extension.
        target: String,
    },
    /// A callback was requested (then the call was hung up).
    CallbackRequested {
        /// Queue of the callback.
        queue: String,
    },
    /// The call ended in the IVR.
    HungUp {
        /// True when the caller hung up, false when the plan did.
        by_caller: bool,
    },
}

/// Why a call was zero-outed to the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZeroOutReason {
    /// The caller pressed 0 in a menu.
    KeyZero,
    /// The caller entered a lone 0 in a gather and waited.
    LoneZero,
    /// A menu or gather ran out of retries and has no `on_fail`.
    MaxRetries,
    /// A transfer failed and the node has no `on_fail`.
    TransferFailed,
    /// A non-operator queue timed out without `on_timeout`.
    QueueTimeout,
    /// The plan referenced a node that does not exist (hand-built plans).
    MissingNode,
    /// The runaway guard fired.
    Guard,
}

impl fmt::Display for ZeroOutReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ZeroOutReason::KeyZero => "caller pressed 0",
            ZeroOutReason::LoneZero => "lone 0 entered",
            ZeroOutReason::MaxRetries => "too many failed attempts",
            ZeroOutReason::TransferFailed => "transfer failed",
            ZeroOutReason::QueueTimeout => "queue wait exceeded",
            ZeroOutReason::MissingNode => "missing node",
            ZeroOutReason::Guard => "runaway guard",
        })
    }
}

/// Why a menu or gather asks again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryReason {
    /// A key that is not an option.
    Invalid,
    /// Nothing was pressed.
    Timeout,
    /// A gather entry shorter than `min_digits`.
    TooShort,
}

/// What a key press did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigitEffect {
    /// Selected a menu option leading to this node.
    Option(String),
    /// Zero-out.
    ZeroOut,
    /// Not an option in this menu.
    Invalid,
    /// Added to a gather entry.
    Collected,
    /// Ended a gather entry.
    Terminator,
    /// Pressed during a play node: kept for the next menu or gather
    /// (type-ahead).
    KeptForNextMenu,
    /// Pressed during a play node that keeps no keys: ignored.
    Ignored,
}

/// One entry of a session's trace: what happened, at which node.
///
/// The trace is what `simulate` prints and what the server can log; it is
/// structured so neither has to parse text.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The node it happened at (`None` before the first node).
    pub node: Option<String>,
    /// What happened.
    pub kind: StepKind,
}

/// See [`Step`].
#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    /// An `hours` node decided.
    Hours {
        /// Zone used.
        timezone: Tz,
        /// Local time of the decision.
        local: NaiveDateTime,
        /// Open or closed.
        open: bool,
        /// Closed because of a holiday.
        holiday: bool,
        /// Where the call continues.
        next: String,
    },
    /// Prompts were started.
    Play {
        /// Prompt names.
        prompts: Vec<String>,
        /// Whether keys interrupt them.
        barge_in: bool,
    },
    /// The session waits for input (timer started).
    Waiting {
        /// Timeout.
        timeout: Duration,
        /// True in a gather (several digits).
        gather: bool,
    },
    /// The caller pressed a key.
    Digit {
        /// The key.
        digit: char,
        /// What it did.
        effect: DigitEffect,
    },
    /// The input timer expired.
    Timeout,
    /// The menu or gather asks again.
    Retry {
        /// Why.
        reason: RetryReason,
        /// Failed attempts so far.
        attempt: u32,
        /// `max_retries`.
        max: u32,
    },
    /// Retries exhausted; continuing at the explicit `on_fail` node.
    Fallback {
        /// The `on_fail` node.
        to: String,
    },
    /// A gather stored its entry.
    Gathered {
        /// Variable.
        var: String,
        /// Digits entered.
        value: String,
    },
    /// A `set` node set variables.
    Set {
        /// Name/value pairs.
        vars: Vec<(String, String)>,
    },
    /// A `goto` node.
    Goto {
        /// Target node.
        target: String,
    },
    /// Routed to the operator by the zero-out rule.
    ZeroOut {
        /// Why.
        reason: ZeroOutReason,
    },
    /// `Enqueue` was emitted.
    Enqueued {
        /// Queue.
        queue: String,
        /// Zero-out flag.
        zero_out: bool,
    },
    /// The ACD released the call.
    QueueExited,
    /// `Transfer` was emitted.
    Transfer {
        /// Target.
        target: String,
    },
    /// The transfer failed.
    TransferFailed,
    /// `Callback` was emitted.
    Callback {
        /// Queue.
        queue: String,
        /// Not dialed before (after-hours callback).
        not_before: Option<DateTime<Utc>>,
    },
    /// The call ended.
    Hangup {
        /// By the caller or by the plan.
        by_caller: bool,
    },
    /// A referenced node does not exist (only in hand-built plans).
    MissingNode {
        /// The missing name.
        name: String,
    },
    /// The runaway guard fired.
    Guard,
    /// A `lookup` node asked its endpoint.
    Lookup {
        /// The lookup.
        lookup: String,
    },
    /// The lookup answered; these variables were set.
    LookupDone {
        /// Name/value pairs.
        vars: Vec<(String, String)>,
    },
    /// The lookup failed; the call continues at the fallback.
    LookupFailed {
        /// Why.
        reason: String,
        /// The `fallback` node.
        fallback: String,
    },
    /// A `say` entry could not be spoken (unset, or not in its format).
    Unspeakable {
        /// The variable.
        var: String,
        /// Its value (empty when unset).
        value: String,
        /// The format.
        format: SayFormat,
    },
}

impl fmt::Display for StepKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepKind::Hours {
                timezone,
                local,
                open,
                holiday,
                next,
            } => {
                let state = match (open, holiday) {
                    (true, _) => "open",
                    (false, true) => "closed (holiday)",
                    (false, false) => "closed",
                };
                write!(
                    f,
                    "business hours ({}, {}): {state} → {next}",
                    timezone.name(),
                    local.format("%a %Y-%m-%d %H:%M")
                )
            }
            StepKind::Play { prompts, barge_in } => {
                write!(f, "▶ {}", prompts.join(", "))?;
                if !barge_in {
                    f.write_str(" (no barge-in)")?;
                }
                Ok(())
            }
            StepKind::Waiting { timeout, gather } => write!(
                f,
                "… waiting for {} ({} s)",
                if *gather { "digits" } else { "a digit" },
                timeout.as_secs()
            ),
            StepKind::Digit { digit, effect } => match effect {
                DigitEffect::Option(n) => write!(f, "caller pressed {digit} → {n}"),
                DigitEffect::ZeroOut => write!(f, "caller pressed {digit} → operator (zero-out)"),
                DigitEffect::Invalid => write!(f, "caller pressed {digit}: not an option"),
                DigitEffect::Collected => write!(f, "caller pressed {digit}"),
                DigitEffect::Terminator => write!(f, "caller pressed {digit} (end of entry)"),
                DigitEffect::KeptForNextMenu => {
                    write!(
                        f,
                        "caller pressed {digit} during the prompt (kept for the next menu)"
                    )
                }
                DigitEffect::Ignored => {
                    write!(f, "caller pressed {digit} during the prompt (ignored)")
                }
            },
            StepKind::Timeout => f.write_str("no input (timeout)"),
            StepKind::Retry {
                reason,
                attempt,
                max,
            } => {
                let why = match reason {
                    RetryReason::Invalid => "invalid choice",
                    RetryReason::Timeout => "no input",
                    RetryReason::TooShort => "entry too short",
                };
                write!(f, "{why}: attempt {attempt} of {max}, asking again")
            }
            StepKind::Fallback { to } => write!(f, "too many failed attempts → {to}"),
            StepKind::Gathered { var, value } => write!(f, "entry complete: {var} = {value}"),
            StepKind::Set { vars } => {
                let list: Vec<String> = vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
                write!(f, "set {}", list.join(", "))
            }
            StepKind::Goto { target } => write!(f, "goto → {target}"),
            StepKind::ZeroOut { reason } => write!(f, "zero-out to a human ({reason})"),
            StepKind::Enqueued { queue, zero_out } => write!(
                f,
                "⇒ queue `{queue}`{}",
                if *zero_out { " (zero-out)" } else { "" }
            ),
            StepKind::QueueExited => f.write_str("left the queue (max wait reached)"),
            StepKind::Transfer { target } => write!(f, "⇒ transfer to {target}"),
            StepKind::TransferFailed => f.write_str("transfer failed"),
            StepKind::Callback {
                queue,
                not_before: None,
            } => write!(f, "callback requested in `{queue}`"),
            StepKind::Callback {
                queue,
                not_before: Some(t),
            } => write!(
                f,
                "callback requested in `{queue}`, not dialed before the opening at {}",
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            StepKind::Hangup { by_caller: true } => f.write_str("caller hung up"),
            StepKind::Hangup { by_caller: false } => f.write_str("hang up"),
            StepKind::MissingNode { name } => write!(f, "node `{name}` does not exist"),
            StepKind::Guard => write!(
                f,
                "runaway guard: {MAX_STEPS_WITHOUT_INPUT} steps without caller input"
            ),
            StepKind::Lookup { lookup } => write!(f, "lookup `{lookup}` …"),
            StepKind::LookupDone { vars } => {
                let list: Vec<String> = vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
                write!(f, "lookup answered: {}", list.join(", "))
            }
            StepKind::LookupFailed { reason, fallback } => {
                write!(f, "lookup failed ({reason}) → {fallback}")
            }
            StepKind::Unspeakable { var, value, format } => {
                write!(f, "cannot say `{var}` = {value:?} as {format}")
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The (barge-in) prompt is playing.
    Prompt,
    /// The timer is armed.
    Waiting,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum AfterPlay {
    Next(String),
    Hangup,
    Transfer(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Idle,
    Menu {
        node: String,
        attempts: u32,
        phase: Phase,
    },
    Gather {
        node: String,
        attempts: u32,
        buf: String,
        phase: Phase,
    },
    Playing {
        node: String,
        after: AfterPlay,
    },
    Transferring {
        node: String,
    },
    Queued {
        node: Option<String>,
        queue: String,
    },
    LookingUp {
        node: String,
    },
    Done,
}

/// One call's walk through a dialplan (see the module docs).
#[derive(Debug, Clone)]
pub struct Session {
    plan: Arc<Dialplan>,
    operator: String,
    info: Option<CallInfo>,
    state: State,
    path: Vec<String>,
    digits: String,
    vars: BTreeMap<String, String>,
    outcome: Option<Outcome>,
    trace: Vec<Step>,
    steps_since_input: usize,
    /// Keys pressed during play nodes, waiting for the next menu or gather.
    type_ahead: std::collections::VecDeque<char>,
}

impl Session {
    /// A session on a snapshot of `plan`. The operator queue is the plan's
    /// own, else `global_operator`, else [`FALLBACK_OPERATOR_QUEUE`] (so a
    /// zero-out always has somewhere to go).
    pub fn new(plan: Arc<Dialplan>, global_operator: Option<String>) -> Session {
        let operator = plan
            .operator
            .clone()
            .or(global_operator)
            .unwrap_or_else(|| FALLBACK_OPERATOR_QUEUE.to_string());
        Session {
            plan,
            operator,
            info: None,
            state: State::Idle,
            path: Vec::new(),
            digits: String::new(),
            vars: BTreeMap::new(),
            outcome: None,
            trace: Vec::new(),
            steps_since_input: 0,
            type_ahead: std::collections::VecDeque::new(),
        }
    }

    /// Feeds one event; actions for the shell are appended to `out`.
    pub fn handle(&mut self, event: Event, out: &mut Vec<Action>) {
        match event {
            Event::Started(info) => {
                if self.state == State::Idle {
                    let start = self.plan.start.clone();
                    self.info = Some(info);
                    self.enter(start, out);
                }
            }
            Event::Digit(d) => {
                self.on_digit(d, out);
                self.feed_type_ahead(out);
            }
            Event::PlaybackDone => {
                self.on_playback_done(out);
                self.feed_type_ahead(out);
            }
            Event::Timeout => self.on_timeout(out),
            Event::Hangup => {
                if !matches!(self.state, State::Done | State::Idle) {
                    self.state = State::Done;
                    if self.outcome.is_none() {
                        self.outcome = Some(Outcome::HungUp { by_caller: true });
                    }
                    self.step(StepKind::Hangup { by_caller: true });
                }
            }
            Event::TransferFailed => {
                if let State::Transferring { node } = &self.state {
                    let node = node.clone();
                    self.outcome = None;
                    self.step(StepKind::TransferFailed);
                    let on_fail = match self.plan.nodes.get(&node) {
                        Some(Node::Transfer(t)) => t.on_fail.clone(),
                        _ => None,
                    };
                    match on_fail {
                        Some(n) => self.enter(n, out),
                        None => self.zero_out(ZeroOutReason::TransferFailed, out),
                    }
                }
            }
            Event::LookupAnswered(body) => self.on_lookup(Ok(body), out),
            Event::LookupFailed(reason) => self.on_lookup(Err(reason), out),
            Event::QueueExited => {
                if let State::Queued { node, queue } = &self.state {
                    let (node, queue) = (node.clone(), queue.clone());
                    self.outcome = None;
                    self.step(StepKind::QueueExited);
                    let on_timeout = match node.as_deref().and_then(|n| self.plan.nodes.get(n)) {
                        Some(Node::Queue(q)) => q.on_timeout.clone(),
                        _ => None,
                    };
                    match on_timeout {
                        Some(n) => self.enter(n, out),
                        None if queue != self.operator => {
                            self.zero_out(ZeroOutReason::QueueTimeout, out)
                        }
                        None => self.hangup(out),
                    }
                }
            }
        }
    }

    /// Nodes entered, in order (repeats included), e.g. for the
    /// `X-Ringback-Path` header.
    pub fn path(&self) -> &[String] {
        &self.path
    }

    /// Every key the IVR accepted from the caller, in order (a key typed
    /// ahead during a play node is listed when the next menu or gather takes
    /// it; a dropped one is not).
    pub fn digits(&self) -> &str {
        &self.digits
    }

    /// Variables set by `set` and `gather` nodes.
    pub fn vars(&self) -> &BTreeMap<String, String> {
        &self.vars
    }

    /// Start with variables an earlier plan gathered (an internal transfer):
    /// variables travel with the call, and this plan may read or overwrite
    /// them. Call before `Started`.
    pub fn carry_vars(&mut self, vars: BTreeMap<String, String>) {
        self.vars.extend(vars);
    }

    /// The node the call is at (the last one entered); `None` before start.
    pub fn current_node(&self) -> Option<&str> {
        self.path.last().map(String::as_str)
    }

    /// True once the IVR has nothing more to do: the call was queued,
    /// transferred or ended. `QueueExited`/`TransferFailed` may reopen it.
    pub fn is_finished(&self) -> bool {
        matches!(
            self.state,
            State::Queued { .. } | State::Transferring { .. } | State::Done
        )
    }

    /// How the IVR part ended, once it has.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// What happened so far, step by step (bounded by [`MAX_TRACE`]).
    pub fn trace(&self) -> &[Step] {
        &self.trace
    }

    /// The plan snapshot this call runs.
    pub fn plan(&self) -> &Arc<Dialplan> {
        &self.plan
    }

    /// The operator queue zero-outs go to.
    pub fn operator_queue(&self) -> &str {
        &self.operator
    }

    /// The call information given with `Started`.
    pub fn call_info(&self) -> Option<&CallInfo> {
        self.info.as_ref()
    }

    // ------------------------------------------------------------ internals

    fn step(&mut self, kind: StepKind) {
        if self.trace.len() < MAX_TRACE {
            self.trace.push(Step {
                node: self.path.last().cloned(),
                kind,
            });
        }
    }

    fn play(&mut self, prompts: Vec<String>, barge_in: bool, out: &mut Vec<Action>) {
        self.step(StepKind::Play {
            prompts: prompts.clone(),
            barge_in,
        });
        out.push(Action::Play { prompts, barge_in });
    }

    /// Enters `target` and follows instant nodes (set/goto/hours) until one
    /// that waits for the caller or hands the call off.
    fn enter(&mut self, mut target: String, out: &mut Vec<Action>) {
        let plan = Arc::clone(&self.plan);
        loop {
            self.steps_since_input += 1;
            if self.steps_since_input > MAX_STEPS_WITHOUT_INPUT {
                self.step(StepKind::Guard);
                self.zero_out(ZeroOutReason::Guard, out);
                return;
            }
            let Some(node) = plan.nodes.get(&target) else {
                self.step(StepKind::MissingNode { name: target });
                self.zero_out(ZeroOutReason::MissingNode, out);
                return;
            };
            self.path.push(target.clone());
            match node {
                Node::Menu(m) => {
                    self.state = State::Menu {
                        node: target,
                        attempts: 0,
                        phase: Phase::Prompt,
                    };
                    self.play(m.prompt.clone(), true, out);
                    return;
                }
                Node::Gather(g) => {
                    self.state = State::Gather {
                        node: target,
                        attempts: 0,
                        buf: String::new(),
                        phase: Phase::Prompt,
                    };
                    self.play(g.prompt.clone(), true, out);
                    return;
                }
                Node::Play(p) => {
                    let after = p.next.clone().map_or(AfterPlay::Hangup, AfterPlay::Next);
                    self.state = State::Playing {
                        node: target,
                        after,
                    };
                    self.play(p.prompt.clone(), false, out);
                    return;
                }
                Node::Set(s) => {
                    for (k, v) in &s.vars {
                        self.vars.insert(k.clone(), v.clone());
                    }
                    self.step(StepKind::Set {
                        vars: s.vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                    });
                    target = s.next.clone();
                }
                Node::Goto(g) => {
                    self.step(StepKind::Goto {
                        target: g.target.clone(),
                    });
                    target = g.target.clone();
                }
                Node::Hours(h) => {
                    let now = self
                        .info
                        .as_ref()
                        .map_or(DateTime::<Utc>::UNIX_EPOCH, |i| i.now);
                    let v = h.evaluate(now, plan.timezone);
                    let next = if v.open {
                        h.open_next.clone()
                    } else {
                        h.closed_next.clone()
                    };
                    self.step(StepKind::Hours {
                        timezone: v.timezone,
                        local: v.local,
                        open: v.open,
                        holiday: v.holiday,
                        next: next.clone(),
                    });
                    target = next;
                }
                Node::Queue(q) => {
                    self.enqueue(Some(target), q, false, out);
                    return;
                }
                Node::Callback(c) => {
                    let not_before = self.next_opening(&plan, c.when_open.as_deref());
                    self.step(StepKind::Callback {
                        queue: c.queue.clone(),
                        not_before,
                    });
                    out.push(Action::Callback {
                        queue: c.queue.clone(),
                        not_before,
                    });
                    self.outcome = Some(Outcome::CallbackRequested {
                        queue: c.queue.clone(),
                    });
                    if c.confirm_prompt.is_empty() {
                        self.hangup(out);
                    } else {
                        self.state = State::Playing {
                            node: target,
                            after: AfterPlay::Hangup,
                        };
                        self.play(c.confirm_prompt.clone(), false, out);
                    }
                    return;
                }
                Node::Transfer(t) => {
                    if t.prompt.is_empty() {
                        self.transfer(target, t.target.clone(), out);
                    } else {
                        self.state = State::Playing {
                            node: target,
                            after: AfterPlay::Transfer(t.target.clone()),
                        };
                        self.play(t.prompt.clone(), false, out);
                    }
                    return;
                }
                Node::Lookup(l) => {
                    self.step(StepKind::Lookup {
                        lookup: l.lookup.clone(),
                    });
                    out.push(Action::Lookup {
                        lookup: l.lookup.clone(),
                        caller: self
                            .info
                            .as_ref()
                            .map(|i| i.caller.clone())
                            .unwrap_or_default(),
                        vars: self.vars.clone(),
                    });
                    self.state = State::LookingUp { node: target };
                    return;
                }
                Node::Say(say) => {
                    let Some(prompts) = self.say_prompts(say) else {
                        if let Some(f) = &say.fallback {
                            target = f.clone();
                            continue;
                        }
                        return;
                    };
                    let after = say.next.clone().map_or(AfterPlay::Hangup, AfterPlay::Next);
                    self.state = State::Playing {
                        node: target,
                        after,
                    };
                    self.play(prompts, false, out);
                    return;
                }
                Node::Hangup(h) => {
                    if h.prompt.is_empty() {
                        self.hangup(out);
                    } else {
                        self.state = State::Playing {
                            node: target,
                            after: AfterPlay::Hangup,
                        };
                        self.play(h.prompt.clone(), false, out);
                    }
                    return;
                }
            }
        }
    }

    /// The next opening of the hours node `hours` (a callback node's
    /// `when_open`), judged at the call's start like the `hours` node
    /// itself; `None` when it is open then, never opens, or is not an
    /// `hours` node.
    fn next_opening(&self, plan: &Dialplan, hours: Option<&str>) -> Option<DateTime<Utc>> {
        let Some(Node::Hours(h)) = plan.nodes.get(hours?) else {
            return None;
        };
        let now = self.info.as_ref()?.now;
        h.calendar(plan.timezone)
            .next_opening(now)
            .filter(|t| *t > now)
    }

    fn enqueue(
        &mut self,
        node: Option<String>,
        q: &QueueNode,
        zero_out: bool,
        out: &mut Vec<Action>,
    ) {
        self.step(StepKind::Enqueued {
            queue: q.queue.clone(),
            zero_out,
        });
        out.push(Action::Enqueue {
            queue: q.queue.clone(),
            zero_out,
            priority: q.priority,
            max_wait: q.max_wait,
            callback: q.callback.filter(|c| c.offer),
        });
        self.outcome = Some(Outcome::Queued {
            queue: q.queue.clone(),
            zero_out,
        });
        self.state = State::Queued {
            node,
            queue: q.queue.clone(),
        };
    }

    fn zero_out(&mut self, reason: ZeroOutReason, out: &mut Vec<Action>) {
        self.step(StepKind::ZeroOut { reason });
        let q = QueueNode {
            queue: self.operator.clone(),
            priority: 0,
            max_wait: None,
            on_timeout: None,
            callback: None,
        };
        self.enqueue(None, &q, true, out);
    }

    fn transfer(&mut self, node: String, target: String, out: &mut Vec<Action>) {
        self.step(StepKind::Transfer {
            target: target.clone(),
        });
        out.push(Action::Transfer {
            target: target.clone(),
        });
        self.outcome = Some(Outcome::Transferred { target });
        self.state = State::Transferring { node };
    }

    fn hangup(&mut self, out: &mut Vec<Action>) {
        self.step(StepKind::Hangup { by_caller: false });
        out.push(Action::Hangup);
        if self.outcome.is_none() {
            self.outcome = Some(Outcome::HungUp { by_caller: false });
        }
        self.state = State::Done;
    }

    /// Stops whatever the current input phase has running (prompt or timer).
    fn interrupt(phase: Phase, out: &mut Vec<Action>) {
        match phase {
            Phase::Prompt => out.push(Action::StopPlayback),
            Phase::Waiting => out.push(Action::CancelTimer),
        }
    }

    /// Keys typed ahead during play nodes go to the menu or gather that
    /// follows, as if pressed there (its prompt is cut short).
    fn feed_type_ahead(&mut self, out: &mut Vec<Action>) {
        while matches!(self.state, State::Menu { .. } | State::Gather { .. }) {
            let Some(d) = self.type_ahead.pop_front() else {
                return;
            };
            self.on_digit(d, out);
        }
        if matches!(
            self.state,
            State::Done | State::Queued { .. } | State::Transferring { .. }
        ) {
            self.type_ahead.clear();
        }
    }

    fn on_digit(&mut self, d: char, out: &mut Vec<Action>) {
        if !(d.is_ascii_digit() || d == '*' || d == '#') {
            return;
        }
        let plan = Arc::clone(&self.plan);
        match self.state.clone() {
            State::LookingUp { .. } if d == '0' => {
                // A human at any moment: the answer, when it comes, is
                // ignored.
                self.digits.push(d);
                self.steps_since_input = 0;
                self.step(StepKind::Digit {
                    digit: d,
                    effect: DigitEffect::ZeroOut,
                });
                self.zero_out(ZeroOutReason::KeyZero, out);
            }
            State::Playing { node, .. } => {
                let (zero_out, type_ahead) = match plan.nodes.get(&node) {
                    Some(Node::Play(p)) => (p.zero_out, p.type_ahead.unwrap_or(plan.type_ahead)),
                    Some(Node::Say(_)) => (true, plan.type_ahead),
                    _ => return,
                };
                if d == '0' && zero_out {
                    // A human at any moment: even an announcement yields to 0.
                    out.push(Action::StopPlayback);
                    self.digits.push(d);
                    self.steps_since_input = 0;
                    self.type_ahead.clear();
                    self.step(StepKind::Digit {
                        digit: d,
                        effect: DigitEffect::ZeroOut,
                    });
                    self.zero_out(ZeroOutReason::KeyZero, out);
                } else if type_ahead {
                    self.type_ahead.push_back(d);
                    self.step(StepKind::Digit {
                        digit: d,
                        effect: DigitEffect::KeptForNextMenu,
                    });
                } else {
                    self.step(StepKind::Digit {
                        digit: d,
                        effect: DigitEffect::Ignored,
                    });
                }
            }
            State::Menu {
                node,
                attempts,
                phase,
            } => {
                let Some(Node::Menu(m)) = plan.nodes.get(&node) else {
                    return;
                };
                Self::interrupt(phase, out);
                self.digits.push(d);
                self.steps_since_input = 0;
                if d == '0' {
                    self.step(StepKind::Digit {
                        digit: d,
                        effect: DigitEffect::ZeroOut,
                    });
                    // A `0` option is only allowed to name a queue node for the
                    // operator queue; honour its settings (priority, callback…).
                    let bound = m.options.get(&'0').and_then(|n| match plan.nodes.get(n) {
                        Some(Node::Queue(q)) if q.queue == self.operator => Some((n, q)),
                        _ => None,
                    });
                    match bound {
                        Some((n, q)) => {
                            self.path.push(n.clone());
                            self.step(StepKind::ZeroOut {
                                reason: ZeroOutReason::KeyZero,
                            });
                            self.enqueue(Some(n.clone()), q, true, out);
                        }
                        None => self.zero_out(ZeroOutReason::KeyZero, out),
                    }
                } else if let Some(next) = m.options.get(&d) {
                    self.step(StepKind::Digit {
                        digit: d,
                        effect: DigitEffect::Option(next.clone()),
                    });
                    self.enter(next.clone(), out);
                } else {
                    self.step(StepKind::Digit {
                        digit: d,
                        effect: DigitEffect::Invalid,
                    });
                    self.retry_menu(node, m, attempts, RetryReason::Invalid, out);
                }
            }
            State::Gather {
                node,
                attempts,
                mut buf,
                phase,
            } => {
                let Some(Node::Gather(g)) = plan.nodes.get(&node) else {
                    return;
                };
                Self::interrupt(phase, out);
                self.digits.push(d);
                self.steps_since_input = 0;
                if d == g.terminator {
                    self.step(StepKind::Digit {
                        digit: d,
                        effect: DigitEffect::Terminator,
                    });
                    self.complete_gather(node, g, attempts, buf, out);
                    return;
                }
                buf.push(d);
                if g.max_digits == 1 && buf == "0" {
                    // A one-digit gather behaves like a menu: 0 is zero-out.
                    self.step(StepKind::Digit {
                        digit: d,
                        effect: DigitEffect::ZeroOut,
                    });
                    self.zero_out(ZeroOutReason::KeyZero, out);
                    return;
                }
                self.step(StepKind::Digit {
                    digit: d,
                    effect: DigitEffect::Collected,
                });
                if buf.len() >= g.max_digits {
                    self.complete_gather(node, g, attempts, buf, out);
                } else {
                    out.push(Action::StartTimer { after: g.timeout });
                    self.state = State::Gather {
                        node,
                        attempts,
                        buf,
                        phase: Phase::Waiting,
                    };
                }
            }
            _ => {}
        }
    }

    fn on_playback_done(&mut self, out: &mut Vec<Action>) {
        let plan = Arc::clone(&self.plan);
        match self.state.clone() {
            State::Menu {
                node,
                attempts,
                phase: Phase::Prompt,
            } => {
                let Some(Node::Menu(m)) = plan.nodes.get(&node) else {
                    return;
                };
                out.push(Action::StartTimer { after: m.timeout });
                self.step(StepKind::Waiting {
                    timeout: m.timeout,
                    gather: false,
                });
                self.state = State::Menu {
                    node,
                    attempts,
                    phase: Phase::Waiting,
                };
            }
            State::Gather {
                node,
                attempts,
                buf,
                phase: Phase::Prompt,
            } => {
                let Some(Node::Gather(g)) = plan.nodes.get(&node) else {
                    return;
                };
                out.push(Action::StartTimer { after: g.timeout });
                self.step(StepKind::Waiting {
                    timeout: g.timeout,
                    gather: true,
                });
                self.state = State::Gather {
                    node,
                    attempts,
                    buf,
                    phase: Phase::Waiting,
                };
            }
            State::Playing { node, after } => match after {
                AfterPlay::Next(n) => self.enter(n, out),
                AfterPlay::Hangup => self.hangup(out),
                AfterPlay::Transfer(t) => self.transfer(node, t, out),
            },
            _ => {}
        }
    }

    fn on_timeout(&mut self, out: &mut Vec<Action>) {
        let plan = Arc::clone(&self.plan);
        match self.state.clone() {
            State::Menu {
                node,
                attempts,
                phase: Phase::Waiting,
            } => {
                let Some(Node::Menu(m)) = plan.nodes.get(&node) else {
                    return;
                };
                self.step(StepKind::Timeout);
                self.retry_menu(node, m, attempts, RetryReason::Timeout, out);
            }
            State::Gather {
                node,
                attempts,
                buf,
                phase: Phase::Waiting,
            } => {
                let Some(Node::Gather(g)) = plan.nodes.get(&node) else {
                    return;
                };
                self.step(StepKind::Timeout);
                if buf.is_empty() {
                    self.retry_gather(node, g, attempts, RetryReason::Timeout, out);
                } else if buf == "0" {
                    self.zero_out(ZeroOutReason::LoneZero, out);
                } else {
                    self.complete_gather(node, g, attempts, buf, out);
                }
            }
            _ => {}
        }
    }

    fn retry_menu(
        &mut self,
        node: String,
        m: &Menu,
        attempts: u32,
        reason: RetryReason,
        out: &mut Vec<Action>,
    ) {
        let attempts = attempts + 1;
        if attempts >= m.max_retries {
            self.fail(m.on_fail.clone(), out);
            return;
        }
        self.step(StepKind::Retry {
            reason,
            attempt: attempts,
            max: m.max_retries,
        });
        let notice = match reason {
            RetryReason::Timeout => &m.timeout_prompt,
            _ => &m.invalid_prompt,
        };
        let prompts: Vec<String> = notice.iter().chain(&m.prompt).cloned().collect();
        self.state = State::Menu {
            node,
            attempts,
            phase: Phase::Prompt,
        };
        self.play(prompts, true, out);
    }

    fn retry_gather(
        &mut self,
        node: String,
        g: &Gather,
        attempts: u32,
        reason: RetryReason,
        out: &mut Vec<Action>,
    ) {
        let attempts = attempts + 1;
        if attempts >= g.max_retries {
            self.fail(g.on_fail.clone(), out);
            return;
        }
        self.step(StepKind::Retry {
            reason,
            attempt: attempts,
            max: g.max_retries,
        });
        let notice = match reason {
            RetryReason::Timeout => &g.timeout_prompt,
            _ => &g.invalid_prompt,
        };
        let prompts: Vec<String> = notice.iter().chain(&g.prompt).cloned().collect();
        self.state = State::Gather {
            node,
            attempts,
            buf: String::new(),
            phase: Phase::Prompt,
        };
        self.play(prompts, true, out);
    }

    fn complete_gather(
        &mut self,
        node: String,
        g: &Gather,
        attempts: u32,
        buf: String,
        out: &mut Vec<Action>,
    ) {
        if buf.len() < g.min_digits {
            self.retry_gather(node, g, attempts, RetryReason::TooShort, out);
            return;
        }
        self.step(StepKind::Gathered {
            var: g.var.clone(),
            value: buf.clone(),
        });
        self.vars.insert(g.var.clone(), buf);
        self.enter(g.next.clone(), out);
    }

    /// What a `say` node plays; `None` when an entry cannot be spoken and
    /// the node has a `fallback` (without one, such an entry is skipped).
    fn say_prompts(&mut self, say: &Say) -> Option<Vec<String>> {
        let mut prompts = Vec::new();
        for item in &say.items {
            match item {
                SayItem::Prompt(p) => prompts.push(p.clone()),
                SayItem::Var { var, format } => {
                    let value = self.vars.get(var).cloned().unwrap_or_default();
                    match crate::say::speak(*format, &value) {
                        Some(p) => prompts.extend(p),
                        None => {
                            self.step(StepKind::Unspeakable {
                                var: var.clone(),
                                value,
                                format: *format,
                            });
                            if say.fallback.is_some() {
                                return None;
                            }
                        }
                    }
                }
            }
        }
        Some(prompts)
    }

    /// The answer to the pending `Lookup`: variables and `next`, or the
    /// node's `fallback`.
    fn on_lookup(&mut self, answer: Result<String, String>, out: &mut Vec<Action>) {
        let State::LookingUp { node } = &self.state else {
            return;
        };
        let plan = Arc::clone(&self.plan);
        let Some(Node::Lookup(l)) = plan.nodes.get(node) else {
            return;
        };
        match answer.and_then(|body| crate::lookup::map_answer(&body, &l.vars)) {
            Ok(vars) => {
                for (k, v) in &vars {
                    self.vars.insert(k.clone(), v.clone());
                }
                self.step(StepKind::LookupDone { vars });
                self.enter(l.next.clone(), out);
            }
            Err(reason) => {
                self.step(StepKind::LookupFailed {
                    reason,
                    fallback: l.fallback.clone(),
                });
                self.enter(l.fallback.clone(), out);
            }
        }
    }

    fn fail(&mut self, on_fail: Option<String>, out: &mut Vec<Action>) {
        match on_fail {
            Some(n) => {
                self.step(StepKind::Fallback { to: n.clone() });
                self.enter(n, out);
            }
            None => self.zero_out(ZeroOutReason::MaxRetries, out),
        }
    }
}
