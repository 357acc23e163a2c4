//! What goes into and comes out of the engine: inputs, outputs, agent
//! states, queue-log events, errors and read-only snapshots.

use std::fmt;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ringback_sansio::Now;

use crate::config::Strategy;
use crate::ids::{AgentId, CallId, QueueName};

/// State of one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentState {
    /// Not working; never offered.
    LoggedOut,
    /// Idle and ready (offered only while also reachable).
    Available,
    /// Being offered `call`; exactly one live offer belongs to this agent.
    Ringing {
        /// The offered call.
        call: CallId,
    },
    /// Bridged to `call`.
    OnCall {
        /// The connected call.
        call: CallId,
    },
    /// After a call, until `until` (or [`Input::WrapUpDone`]).
    WrapUp {
        /// When wrap-up ends by itself.
        until: Instant,
    },
    /// Logged in but not taking calls.
    Paused {
        /// Free text: the agent's, the supervisor's, or `missed N calls`.
        reason: String,
    },
}

impl AgentState {
    /// Stable lowercase name (`logged-out`, `available`, `ringing`,
    /// `on-call`, `wrap-up`, `paused`) for the store and the API.
    pub fn name(&self) -> &'static str {
        match self {
            AgentState::LoggedOut => "logged-out",
            AgentState::Available => "available",
            AgentState::Ringing { .. } => "ringing",
            AgentState::OnCall { .. } => "on-call",
            AgentState::WrapUp { .. } => "wrap-up",
            AgentState::Paused { .. } => "paused",
        }
    }
}

/// Why an agent leg failed, as the shell saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OfferFailure {
    /// 486 / 600: the phone is busy.
    Busy,
    /// 603 or another explicit decline.
    Rejected,
    /// 408 / 480, or the ring timeout expired.
    NoAnswer,
    /// Anything else: 4xx–6xx not listed, transport error, bad SDP.
    Error,
}

impl OfferFailure {
    /// Stable name (`busy`, `rejected`, `no-answer`, `error`).
    pub fn name(self) -> &'static str {
        match self {
            OfferFailure::Busy => "busy",
            OfferFailure::Rejected => "rejected",
            OfferFailure::NoAnswer => "no-answer",
            OfferFailure::Error => "error",
        }
    }
}

/// Why the ACD withdrew a live offer itself ([`Output::CancelOffer`]
/// without a failure of the agent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CancelReason {
    /// Ring-all: another agent answered first.
    AnsweredElsewhere,
    /// The caller hung up.
    CallerAbandoned,
    /// The call reached its maximum wait.
    MaxWait,
    /// The queue emptied of agents (`leave_when_empty`).
    QueueEmpty,
    /// The agent logged out, paused, or their registration lapsed.
    AgentUnavailable,
}

impl CancelReason {
    /// Stable name.
    pub fn name(self) -> &'static str {
        match self {
            CancelReason::AnsweredElsewhere => "answered-elsewhere",
            CancelReason::CallerAbandoned => "caller-abandoned",
            CancelReason::MaxWait => "max-wait",
            CancelReason::QueueEmpty => "queue-empty",
            CancelReason::AgentUnavailable => "agent-unavailable",
        }
    }
}

/// Why an agent's state changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransitionReason {
    /// [`Input::AgentLogin`].
    Login,
    /// [`Input::AgentLogout`].
    Logout,
    /// [`Input::AgentPause`] (also a pause requested during a call, applied
    /// when the call's wrap-up ends).
    Pause,
    /// [`Input::AgentUnpause`].
    Unpause,
    /// A call was offered.
    Offered,
    /// The agent answered.
    Answered,
    /// The agent leg failed ([`Input::OfferFailed`]).
    OfferFailed(OfferFailure),
    /// The ring timeout expired.
    RingTimeout,
    /// The ACD withdrew the offer.
    OfferCanceled(CancelReason),
    /// Consecutive misses reached the queue's limit.
    AutoPause,
    /// The bridged call ended.
    CallEnded,
    /// Wrap-up time ran out.
    WrapUpExpired,
    /// [`Input::WrapUpDone`].
    WrapUpDone,
}

impl fmt::Display for TransitionReason {
    /// Stable text for the store: `login`, `offer-failed (busy)`,
    /// `offer-canceled (answered-elsewhere)`, …
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransitionReason::Login => f.write_str("login"),
            TransitionReason::Logout => f.write_str("logout"),
            TransitionReason::Pause => f.write_str("pause"),
            TransitionReason::Unpause => f.write_str("unpause"),
            TransitionReason::Offered => f.write_str("offered"),
            TransitionReason::Answered => f.write_str("answered"),
            TransitionReason::OfferFailed(r) => write!(f, "offer-failed ({})", r.name()),
            TransitionReason::RingTimeout => f.write_str("ring-timeout"),
            TransitionReason::OfferCanceled(r) => write!(f, "offer-canceled ({})", r.name()),
            TransitionReason::AutoPause => f.write_str("auto-pause"),
            TransitionReason::CallEnded => f.write_str("call-ended"),
            TransitionReason::WrapUpExpired => f.write_str("wrap-up-expired"),
            TransitionReason::WrapUpDone => f.write_str("wrap-up-done"),
        }
    }
}

/// One agent state transition, for the store and the event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    /// The agent.
    pub agent: AgentId,
    /// Previous state.
    pub from: AgentState,
    /// New state.
    pub to: AgentState,
    /// When, on both clocks (the `now` of the call that caused it): the
    /// store keeps `at.wall`.
    pub at: Now,
    /// Why.
    pub reason: TransitionReason,
}

/// Who hung up a bridged call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndedBy {
    /// The caller (`COMPLETECALLER`).
    Caller,
    /// The agent (`COMPLETEAGENT`).
    Agent,
}

/// Why an enqueue was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// The queue already holds `max_len` calls.
    QueueFull,
}

/// The highest priority a waiting call can have (and, negated, the lowest):
/// the bound of the dialplan's `priority` and of a directory customer's.
pub const MAX_PRIORITY: i32 = 1000;

/// A call asking for an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingCall {
    /// The call.
    pub id: CallId,
    /// The queue.
    pub queue: QueueName,
    /// Higher is served first (dialplan `priority` plus the caller's
    /// directory priority, -1000..=1000; see [`WaitingCall::lifted_by`]).
    pub priority: i32,
    /// When the caller *first* entered a queue for this request. Kept through
    /// overflow re-entry and callbacks so a caller never loses their place:
    /// within a priority, calls are served in this order.
    pub entered_at: Instant,
    /// Caller number (shown in the line and the queue log); the key of
    /// sticky routing unless `customer` is set (empty: no sticky routing).
    pub caller: String,
    /// The caller's customer in the directory (`customer:<id>`): sticky
    /// routing remembers them by it, whichever of their numbers they use.
    pub customer: Option<String>,
    /// Skills an agent needs for this call, `(skill, minimum level)`.
    pub required_skills: Vec<(String, u8)>,
    /// Per-call maximum wait from this enqueue, overriding the queue's.
    pub max_wait: Option<Duration>,
}

impl WaitingCall {
    /// A call with priority 0, no skills and the queue's max wait.
    pub fn new(
        id: impl Into<CallId>,
        queue: impl Into<QueueName>,
        caller: impl Into<String>,
        entered_at: Instant,
    ) -> Self {
        WaitingCall {
            id: id.into(),
            queue: queue.into(),
            priority: 0,
            entered_at,
            caller: caller.into(),
            customer: None,
            required_skills: Vec::new(),
            max_wait: None,
        }
    }

    /// Whom sticky routing remembers: the customer, else the number.
    pub fn sticky_key(&self) -> &str {
        self.customer.as_deref().unwrap_or(&self.caller)
    }

    /// Sets the priority.
    pub fn with_priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Lifts the call by its caller's directory priority (a VIP's, 0 for
    /// an ordinary or unknown caller): the dialplan's priority plus the
    /// customer's, kept within ±[`MAX_PRIORITY`]. A VIP thus goes ahead of
    /// every ordinary caller the same queue node sent, however long they
    /// waited, and VIPs among themselves are served by original entry time.
    pub fn lifted_by(mut self, customer_priority: i32) -> Self {
        self.priority = self
            .priority
            .saturating_add(customer_priority)
            .clamp(-MAX_PRIORITY, MAX_PRIORITY);
        self
    }

    /// Adds a required skill.
    pub fn with_skill(mut self, skill: impl Into<String>, min_level: u8) -> Self {
        self.required_skills.push((skill.into(), min_level));
        self
    }

    /// Sets a per-call maximum wait.
    pub fn with_max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = Some(max_wait);
        self
    }
}

/// An event fed to the engine ([`Core::handle`](ringback_sansio::Core::handle)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// API / dashboard / feature code: logged-out → available.
    AgentLogin(AgentId),
    /// Any state but on-call → logged-out (a ringing offer is cancelled).
    AgentLogout(AgentId),
    /// Available, ringing (offer cancelled) or wrap-up → paused; during a
    /// call the pause is remembered and applied when wrap-up ends.
    AgentPause {
        /// The agent.
        agent: AgentId,
        /// Free text.
        reason: String,
    },
    /// Paused → available (or forget a pause requested during a call).
    AgentUnpause(AgentId),
    /// The agent ended wrap-up early.
    WrapUpDone(AgentId),
    /// Registrar: the agent has (`true`) or no longer has (`false`) a live
    /// registration. Unreachable agents are never offered; a ringing offer
    /// to an agent becoming unreachable is cancelled. Agents start
    /// unreachable.
    AgentReachable(AgentId, bool),
    /// A call enters a queue.
    Enqueue(WaitingCall),
    /// The caller hung up while waiting (or, leniently, while bridged: then
    /// it is handled as [`Input::CallEnded`] by the caller).
    Abandon(CallId),
    /// The agent leg of a live offer answered (200 OK).
    OfferAnswered {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentId,
    },
    /// The agent leg of a live offer failed.
    OfferFailed {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentId,
        /// How.
        reason: OfferFailure,
    },
    /// A bridged call finished (BYE from either side).
    CallEnded {
        /// The call.
        call: CallId,
        /// The agent it was bridged to.
        agent: AgentId,
        /// Who hung up.
        by: EndedBy,
    },
    /// Seed sticky routing from the store at start-up: `agent` handled
    /// `caller` at `at`. Older than what is known: ignored.
    SetHistory {
        /// Caller number.
        caller: String,
        /// The agent.
        agent: AgentId,
        /// When, as stored (wall clock); the engine places it on its
        /// monotonic clock with the `now` it is handed.
        at: DateTime<Utc>,
    },
    /// Start a new day for [`Strategy::FewestCalls`] counters (and prune
    /// sticky history older than every queue's window).
    ResetDailyCounters,
}

/// What the shell must do or record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// INVITE `agent` for `call`. The shell owns this leg until it reports
    /// [`Input::OfferAnswered`] / [`Input::OfferFailed`] or receives
    /// [`Output::CancelOffer`]. Ring-all emits one per agent for one call.
    Offer {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentId,
        /// When the ACD gives up (the shell need not run its own timer).
        deadline: Instant,
    },
    /// CANCEL (or BYE, if it raced to answered) the agent leg.
    CancelOffer {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentId,
    },
    /// Bridge the caller to the agent leg that answered.
    Connected {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentId,
    },
    /// The call left the queue after its maximum wait: run the overflow.
    MaxWaitReached {
        /// The call.
        call: CallId,
        /// The queue's overflow target.
        overflow: Option<String>,
    },
    /// No agent is logged in and reachable (on enqueue, or when the queue
    /// emptied with `leave_when_empty`): run the overflow.
    NoAgents {
        /// The call.
        call: CallId,
        /// The queue's overflow target.
        overflow: Option<String>,
    },
    /// Enqueue refused: play an announcement / overflow, or answer 503.
    Rejected {
        /// The call.
        call: CallId,
        /// Why.
        reason: RejectReason,
        /// The queue's overflow target.
        overflow: Option<String>,
    },
    /// Persist: an agent changed state.
    StateChanged(StateChange),
    /// Persist: one queue-log row.
    QueueLog(QueueEvent),
    /// The input just handled was refused: it changed nothing and this is
    /// the only output it queued. Whoever sent it may need to know: an
    /// agent command from the API answers with the error, and an
    /// [`Input::OfferAnswered`] refused as [`AcdError::NoSuchOffer`] came
    /// too late — that agent leg must be hung up. Any other refusal is a
    /// report that raced a change (a caller and an offer timing out at
    /// once) and needs nothing.
    Refused(AcdError),
}

/// One Asterisk-like queue-log row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEvent {
    /// When, on both clocks: the store keeps `at.wall`.
    pub at: Now,
    /// The queue (`None` for agent events, which are not per queue).
    pub queue: Option<QueueName>,
    /// The call, if any.
    pub call: Option<CallId>,
    /// The agent, if any.
    pub agent: Option<AgentId>,
    /// What happened.
    pub kind: QueueEventKind,
}

/// Queue-log event kinds, named as in Asterisk's `queue_log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueEventKind {
    /// `ENTERQUEUE`.
    EnterQueue {
        /// Caller number.
        caller: String,
        /// Position on entry (1 = next).
        position: usize,
    },
    /// `RINGNOANSWER`: an offer failed or timed out.
    RingNoAnswer {
        /// How long it rang.
        ring_time: Duration,
        /// How it failed.
        reason: OfferFailure,
    },
    /// `RINGCANCELED`: the ACD withdrew an offer.
    RingCanceled {
        /// How long it rang.
        ring_time: Duration,
        /// Why.
        reason: CancelReason,
    },
    /// `CONNECT`.
    Connect {
        /// Time in this queue.
        hold_time: Duration,
        /// Time since the original entry (includes earlier queues).
        waited: Duration,
        /// How long the answering agent's phone rang.
        ring_time: Duration,
    },
    /// `COMPLETECALLER`: the caller hung up a bridged call.
    CompleteCaller {
        /// Time in queue before connect.
        hold_time: Duration,
        /// Bridged time.
        talk_time: Duration,
    },
    /// `COMPLETEAGENT`: the agent hung up a bridged call.
    CompleteAgent {
        /// Time in queue before connect.
        hold_time: Duration,
        /// Bridged time.
        talk_time: Duration,
    },
    /// `ABANDON`: the caller hung up while waiting.
    Abandon {
        /// Position when leaving.
        position: usize,
        /// Position on entry.
        orig_position: usize,
        /// Time in this queue.
        wait: Duration,
    },
    /// `EXITWITHTIMEOUT`: maximum wait reached.
    ExitWithTimeout {
        /// Position when leaving.
        position: usize,
        /// Position on entry.
        orig_position: usize,
        /// Time in this queue.
        wait: Duration,
    },
    /// `EXITEMPTY`: the queue lost its last agent (`leave_when_empty`).
    ExitEmpty {
        /// Position when leaving.
        position: usize,
        /// Position on entry.
        orig_position: usize,
        /// Time in this queue.
        wait: Duration,
    },
    /// `JOINEMPTY`: enqueue refused, nobody logged in and reachable.
    JoinEmpty,
    /// `FULL`: enqueue refused, `max_len` reached.
    Full,
    /// `AGENTLOGIN`.
    AgentLogin,
    /// `AGENTLOGOFF`.
    AgentLogoff {
        /// Time since login.
        session: Duration,
    },
    /// `PAUSE`.
    Pause {
        /// Reason.
        reason: String,
    },
    /// `UNPAUSE`.
    Unpause,
    /// `AUTOPAUSE`: paused after consecutive misses.
    AutoPause {
        /// Consecutive misses.
        misses: u32,
    },
}

impl QueueEventKind {
    /// The Asterisk verb (`ENTERQUEUE`, `CONNECT`, …).
    pub fn verb(&self) -> &'static str {
        match self {
            QueueEventKind::EnterQueue { .. } => "ENTERQUEUE",
            QueueEventKind::RingNoAnswer { .. } => "RINGNOANSWER",
            QueueEventKind::RingCanceled { .. } => "RINGCANCELED",
            QueueEventKind::Connect { .. } => "CONNECT",
            QueueEventKind::CompleteCaller { .. } => "COMPLETECALLER",
            QueueEventKind::CompleteAgent { .. } => "COMPLETEAGENT",
            QueueEventKind::Abandon { .. } => "ABANDON",
            QueueEventKind::ExitWithTimeout { .. } => "EXITWITHTIMEOUT",
            QueueEventKind::ExitEmpty { .. } => "EXITEMPTY",
            QueueEventKind::JoinEmpty => "JOINEMPTY",
            QueueEventKind::Full => "FULL",
            QueueEventKind::AgentLogin => "AGENTLOGIN",
            QueueEventKind::AgentLogoff { .. } => "AGENTLOGOFF",
            QueueEventKind::Pause { .. } => "PAUSE",
            QueueEventKind::Unpause => "UNPAUSE",
            QueueEventKind::AutoPause { .. } => "AUTOPAUSE",
        }
    }

    /// The event's data fields, `|`-separated as in Asterisk's `queue_log`
    /// (durations in whole seconds): `ENTERQUEUE` `|caller|position`,
    /// `RINGNOANSWER` `ringtime|reason`, `RINGCANCELED` `ringtime|reason`,
    /// `CONNECT` `holdtime||ringtime|waited`, `COMPLETE*` `holdtime|talktime`,
    /// `ABANDON`/`EXITWITHTIMEOUT`/`EXITEMPTY` `position|origposition|wait`,
    /// `AGENTLOGOFF` `|session`, `PAUSE` `reason`, `AUTOPAUSE` `misses`;
    /// empty for the others.
    pub fn data(&self) -> String {
        let s = |d: &Duration| d.as_secs();
        match self {
            QueueEventKind::EnterQueue { caller, position } => format!("|{caller}|{position}"),
            QueueEventKind::RingNoAnswer { ring_time, reason } => {
                format!("{}|{}", s(ring_time), reason.name())
            }
            QueueEventKind::RingCanceled { ring_time, reason } => {
                format!("{}|{}", s(ring_time), reason.name())
            }
            QueueEventKind::Connect {
                hold_time,
                waited,
                ring_time,
            } => format!("{}||{}|{}", s(hold_time), s(ring_time), s(waited)),
            QueueEventKind::CompleteCaller {
                hold_time,
                talk_time,
            }
            | QueueEventKind::CompleteAgent {
                hold_time,
                talk_time,
            } => format!("{}|{}", s(hold_time), s(talk_time)),
            QueueEventKind::Abandon {
                position,
                orig_position,
                wait,
            }
            | QueueEventKind::ExitWithTimeout {
                position,
                orig_position,
                wait,
            }
            | QueueEventKind::ExitEmpty {
                position,
                orig_position,
                wait,
            } => format!("{position}|{orig_position}|{}", s(wait)),
            QueueEventKind::AgentLogoff { session } => format!("|{}", s(session)),
            QueueEventKind::Pause { reason } => reason.clone(),
            QueueEventKind::AutoPause { misses } => misses.to_string(),
            QueueEventKind::JoinEmpty
            | QueueEventKind::Full
            | QueueEventKind::AgentLogin
            | QueueEventKind::Unpause => String::new(),
        }
    }
}

/// Why the engine refused an input ([`Output::Refused`]). The engine's
/// state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcdError {
    /// No such agent in the configuration.
    #[error("unknown agent `{0}`")]
    UnknownAgent(AgentId),
    /// No such queue in the configuration.
    #[error("unknown queue `{0}`")]
    UnknownQueue(QueueName),
    /// The call is neither waiting nor connected.
    #[error("unknown call `{0}`")]
    UnknownCall(CallId),
    /// The call is already waiting or connected.
    #[error("call `{0}` is already in the ACD")]
    DuplicateCall(CallId),
    /// The input is not allowed in the agent's current state.
    #[error("agent `{agent}`: cannot {action} while {from}")]
    IllegalTransition {
        /// The agent.
        agent: AgentId,
        /// The current state's name.
        from: &'static str,
        /// The refused action.
        action: &'static str,
    },
    /// No live offer of `call` to `agent` (already cancelled, timed out or
    /// answered elsewhere). After a late 200 OK the shell must BYE the
    /// agent leg.
    #[error("no live offer of call `{call}` to agent `{agent}`")]
    NoSuchOffer {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentId,
    },
    /// `call` is not bridged to `agent`.
    #[error("call `{call}` is not connected to agent `{agent}`")]
    NotConnected {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentId,
    },
}

/// One waiting call in a [`QueueSnapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingSnapshot {
    /// The call.
    pub call: CallId,
    /// Caller number.
    pub caller: String,
    /// Priority.
    pub priority: i32,
    /// 1-based position in this queue.
    pub position: usize,
    /// Time since the original entry.
    pub waited: Duration,
    /// Time in this queue.
    pub in_queue: Duration,
    /// Agents currently ringing for it.
    pub ringing: Vec<AgentId>,
    /// Sticky agent the call is being held for, if any.
    pub held_for: Option<AgentId>,
    /// Estimated wait at this position ([`crate::estimate_wait`]).
    pub ewt: Duration,
}

/// Read-only view of a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSnapshot {
    /// Name.
    pub name: QueueName,
    /// Strategy.
    pub strategy: Strategy,
    /// Waiting calls in service order.
    pub waiting: Vec<WaitingSnapshot>,
    /// Longest time since original entry among waiting calls.
    pub longest_wait: Option<Duration>,
    /// Members logged in and reachable (paused included).
    pub present_agents: usize,
    /// Members logged in, reachable and not paused (EWT staffing).
    pub serving_agents: usize,
    /// Members available and reachable right now.
    pub available_agents: usize,
    /// Current moving average of handle time (talk + wrap-up).
    pub avg_handle: Duration,
}

/// Read-only view of an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSnapshot {
    /// Id.
    pub id: AgentId,
    /// Display name.
    pub name: String,
    /// Current state.
    pub state: AgentState,
    /// Since when (`None` before the first transition).
    pub since: Option<Instant>,
    /// Has a live registration.
    pub reachable: bool,
    /// Calls answered since the last daily reset.
    pub calls_today: u32,
    /// Calls answered since start.
    pub calls_total: u64,
    /// End of the last bridged call.
    pub last_call_end: Option<Instant>,
    /// Consecutive missed offers.
    pub consecutive_misses: u32,
    /// A pause requested during a call, applied after its wrap-up.
    pub pending_pause: Option<String>,
    /// Queues served.
    pub queues: Vec<QueueName>,
}
