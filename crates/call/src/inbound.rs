//! An inbound call from the moment it is answered: the dialplan, the queue,
//! the callback questions asked there, the agent legs' meaning, transfers,
//! and how the call ends.
//!
//! The shell answers the INVITE, owns the SIP dialog, the RTP stream and the
//! agent legs' transactions, and looks things up (the ACD, the callback
//! service). Everything that *decides* sits here: which phase the call is in
//! and what each key, prompt end, notice and timeout means in that phase.
//!
//! A phase carries its own data ([`Phase`]): the queue's interlude and
//! announcement timer exist only while queued, the REFER deadline only while
//! transferring. Work that needs the outside world is an [`Output`] whose
//! answer comes back as an [`Input`] (for example [`Output::QueryPosition`]
//! → [`Input::Position`]); the core never waits.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ringback_acd::{AgentId, CallId, EndedBy, OfferFailure, WaitingCall};
use ringback_dialplan::{Action, CallInfo, CallbackOffer, Dialplan, Event, Session};
use ringback_sansio::{Core, Now};

use crate::ending::{Disposition, Ending, HangupBy};
use crate::number_prompts;

mod hop;
mod survey;
#[cfg(test)]
mod tests;

pub use hop::{AcdAt, HopEvent, HopIn, HOP_RETRY};

pub use survey::{Survey, SurveyResult, SURVEY_ANSWER_TIMEOUT, SURVEY_TRIES};

/// How long a REFER may stay unanswered, or accepted without a final
/// NOTIFY, before our part of the transfer is considered done (64·T1, the
/// transaction timeout, so a silent transferee cannot hold the call).
pub const REFER_TIMEOUT: Duration = Duration::from_secs(32);

/// How long the caller has to answer a callback question ("enter your
/// number", "1 keeps it, 2 cancels it") before waiting on as before.
pub const QUESTION_TIMEOUT: Duration = Duration::from_secs(20);

/// What confirms an after-hours callback request when its `callback`
/// node names no `confirm_prompt`: "we will call you back when we open".
pub const AFTER_HOURS_CONFIRM: &str = "callback-when-open";

/// Callers from the public web page are presented as `web:<id>`: they
/// have no number to call back, so a callback asks them to type one.
pub fn is_web_caller(caller: &str) -> bool {
    caller.starts_with("web:")
}

/// A callback number typed in the queue: at least this many digits…
pub const MIN_CALLBACK_DIGITS: usize = 3;
/// …and at most this many (E.164 is 15, plus a trunk prefix).
pub const MAX_CALLBACK_DIGITS: usize = 16;

/// Callers who stay on the line after a callback offer hear it again at
/// most this often.
pub const MIN_REOFFER: Duration = Duration::from_secs(60);

/// Events the dialplan may produce from one input before the call is
/// judged stuck in a loop and hung up (a checked plan never gets close).
const MAX_EVENTS_PER_INPUT: usize = 10_000;

/// What a queue means to a caller waiting in it (the part of a queue's
/// configuration the call needs; the ACD has its own).
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSettings {
    /// Prompt looped while waiting.
    pub music_on_hold: String,
    /// Prompt played once on entry.
    pub entry_prompt: Option<String>,
    /// Announce position and estimated wait this often.
    pub announce_every: Option<Duration>,
    /// Played when the queue lets the caller go without an overflow queue.
    pub overflow_prompt: Option<String>,
    /// Offer a callback at once when the estimated wait exceeds this.
    pub callback_offer_ewt_above: Option<Duration>,
    /// Offer a callback at once to a zero-out nobody is free for.
    pub callback_offer_on_zero_out: bool,
    /// `survey = { prompt, keys }`: one question for the caller when the
    /// agent hangs up.
    pub survey: Option<Survey>,
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            music_on_hold: "hold-music".into(),
            entry_prompt: None,
            announce_every: None,
            overflow_prompt: None,
            callback_offer_ewt_above: None,
            callback_offer_on_zero_out: false,
            survey: None,
        }
    }
}

/// Dialplans reachable by an internal transfer (`transfer` to an extension
/// one of our own plans answers). The shell's reload snapshot implements it,
/// so a call keeps the plans it started with.
pub trait Extensions: Send + Sync {
    /// The plan answering `number`, if any.
    fn plan_for(&self, number: &str) -> Option<Arc<Dialplan>>;
}

/// Everything a call starts with once answered.
pub struct Setup {
    /// SIP Call-ID (the ACD's call id).
    pub call_id: String,
    /// The caller's number.
    pub caller: String,
    /// The dialed number.
    pub dialed: String,
    /// The plan answering it.
    pub plan: Arc<Dialplan>,
    /// Queue reached by zero-out when a plan names none.
    pub operator_queue: Option<String>,
    /// Queues' call-side settings by name.
    pub queues: Arc<BTreeMap<String, QueueSettings>>,
    /// Plans for internal transfers.
    pub extensions: Arc<dyn Extensions>,
    /// Send a session refresh this often (RFC 4028, we are the refresher).
    pub refresh_every: Option<Duration>,
    /// What the customer directory knows of the caller.
    pub known: KnownCaller,
    /// Agent skills a caller's language requires in queues, by lower-case
    /// language tag (`[languages.<tag>] skill`).
    pub language_skills: Arc<BTreeMap<String, (String, u8)>>,
    /// Where the queues' ACD runs when the call starts (`AcdAt::Here`
    /// on a single node); changes come as [`Input::AcdAt`].
    pub acd_at: AcdAt,
}

/// What the customer directory knows of a caller that changes how the call
/// is handled. The default is an unknown caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownCaller {
    /// The caller's priority (0: ordinary), added to the queue node's in
    /// every queue the call enters.
    pub priority: i32,
    /// The caller's language tag: seeds the call's `language` variable,
    /// which picks the prompt set and the language skill.
    pub language: Option<String>,
    /// The customer's routing key (`customer:<id>`). Sticky routing
    /// remembers the caller by it rather than by the number, so a customer
    /// calling from any of their numbers reaches the agent who last helped.
    pub key: Option<String>,
}

/// What happened, as the shell observed it.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The caller pressed a key (RFC 4733, SIP INFO or in-band).
    Digit(char),
    /// The playback with this token ended.
    PlaybackDone {
        /// Token from [`Output::Play`].
        token: u64,
    },
    /// No RTP from the caller for the configured time.
    RtpTimeout,
    /// The caller sent BYE (already answered 200).
    CallerHungUp,
    /// Our 200 OK was never acknowledged.
    AckTimeout,
    /// The server is shutting down.
    Shutdown,
    /// The final response to our REFER.
    ReferAnswered {
        /// Its status code.
        code: u16,
    },
    /// Our REFER's transaction timed out.
    ReferTimedOut,
    /// A NOTIFY about the transfer (`message/sipfrag` status code).
    TransferProgress {
        /// The status the transferee reports.
        code: u16,
    },
    /// The ACD wants this agent rung.
    Offer {
        /// Agent id.
        agent: String,
    },
    /// The ACD no longer wants this agent rung.
    CancelOffer {
        /// Agent id.
        agent: String,
    },
    /// The ACD connected this agent.
    Connected {
        /// Agent id.
        agent: String,
    },
    /// The ACD let the caller go.
    LeaveQueue {
        /// Another queue to try.
        overflow: Option<String>,
        /// Why (`no_agents`, `full`, `max_wait`).
        why: &'static str,
    },
    /// Something happened on an agent's leg.
    Leg {
        /// Whose leg.
        agent: String,
        /// What.
        event: LegEvent,
    },
    /// Answer to [`Output::QueryPosition`].
    Position(Option<(usize, Duration)>),
    /// Answer to [`Output::QueryQueueState`].
    QueueState {
        /// The caller's estimated wait, if the ACD knows it.
        ewt: Option<Duration>,
        /// Agents of the queue free right now.
        free_agents: usize,
    },
    /// Answer to [`Output::CheckPendingCallback`]: the id of a callback the
    /// caller already has in this queue.
    PendingCallback(Option<String>),
    /// Answer to [`Output::CheckCallbackCapacity`].
    CallbackCapacity {
        /// Callbacks waiting in the queue.
        pending: usize,
        /// Most it may hold.
        max: usize,
    },
    /// Answer to [`Output::RequestCallback`]: stored (durably) with this
    /// many callbacks ahead of it.
    CallbackStored {
        /// Callbacks ahead.
        ahead: usize,
    },
    /// Answer to [`Output::RequestCallback`]: refused (guard, limit, store).
    CallbackRefused,
    /// Answer to [`Output::CancelCallback`].
    CallbackCancelled {
        /// Whether it was cancelled.
        ok: bool,
    },
    /// Answer to [`Output::Lookup`]: the answer's body (2xx), or why there
    /// is none (timeout, error status, breaker open).
    LookupDone(Result<String, String>),
    /// Where the queues' ACD runs now (the lease moved).
    AcdAt(AcdAt),
    /// What the leg to the queue's owner did (see [`hop`]).
    Hop(HopEvent),
}

/// What an agent's leg did (the leg's SIP mechanics are the shell's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegEvent {
    /// The INVITE could not even be sent.
    DialFailed,
    /// The phone answered.
    Answered,
    /// The phone refused with this final status.
    Failed(u16),
    /// The INVITE transaction timed out.
    TimedOut,
    /// The agent hung up (BYE).
    HungUp,
    /// No RTP from the agent's phone.
    RtpTimeout,
}

/// A change the live view (dashboard, today's counters) must see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveUpdate {
    /// First entry into a queue: the caller appears in the line.
    Queued,
    /// Bridged to an agent after waiting this long.
    Answered {
        /// Seconds in the queue.
        waited_secs: u64,
    },
    /// Left while waiting.
    Abandoned,
    /// A bridged call ended after this much talk time.
    Handled {
        /// Seconds bridged.
        talk_secs: u64,
    },
}

/// What the shell must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Play prompts by name (replacing what plays); report the end with
    /// [`Input::PlaybackDone`] and `token`. `hold_music` plays the server's
    /// fallback music when the named prompt is missing.
    Play {
        /// Prompt names.
        prompts: Vec<String>,
        /// Loop until replaced.
        looped: bool,
        /// Identifies this playback.
        token: u64,
        /// This is hold music.
        hold_music: bool,
    },
    /// Stop what plays.
    StopPlayback,
    /// Put the call in the ACD's line and route its notices here.
    Enqueue(WaitingCall),
    /// Tell the ACD.
    Acd(ringback_acd::Input),
    /// Ring this agent (the binding came with the offer).
    RingAgent {
        /// Agent id.
        agent: String,
    },
    /// End this agent's leg: CANCEL while ringing, BYE once answered.
    DropLeg {
        /// Agent id.
        agent: String,
    },
    /// Bridge the caller's media with this agent's leg.
    Bridge {
        /// Agent id.
        agent: String,
    },
    /// Send REFER to the caller's device.
    Refer {
        /// Refer-To URI.
        target: String,
    },
    /// Send a session refresh (UPDATE without a body).
    RefreshSession {
        /// The interval to confirm (Session-Expires is twice it).
        every: Duration,
    },
    /// Ask the ACD for the caller's position and estimated wait.
    QueryPosition,
    /// Ask the ACD for the estimated wait and free agents.
    QueryQueueState,
    /// Does the caller already have a callback in `queue`?
    CheckPendingCallback {
        /// Queue.
        queue: String,
    },
    /// How many callbacks does `queue` hold, and how many may it?
    CheckCallbackCapacity {
        /// Queue.
        queue: String,
    },
    /// Persist a callback request; answer with [`Input::CallbackStored`] or
    /// [`Input::CallbackRefused`].
    RequestCallback {
        /// Queue it keeps a place in.
        queue: String,
        /// Number to call.
        number: String,
        /// The caller's original place in line (wall clock).
        entered_at: DateTime<Utc>,
    },
    /// Cancel this callback.
    CancelCallback {
        /// Its id.
        id: String,
    },
    /// Ask a configured lookup (HTTP) within its timeout; answer with
    /// [`Input::LookupDone`].
    Lookup {
        /// `[lookups.<name>]`.
        lookup: String,
        /// The caller's number.
        caller: String,
        /// The call's variables.
        vars: std::collections::BTreeMap<String, String>,
    },
    /// Place the hop leg: a SIP call to node `node`, which owns the
    /// queues, with `hop` in its `X-Ringback-Hop` header; answer with
    /// [`Input::Hop`].
    Hop {
        /// The owner's node id.
        node: String,
        /// The waiting caller as it travels.
        hop: HopIn,
    },
    /// Bridge the caller's media with the answered hop leg.
    BridgeHop,
    /// End the hop leg (CANCEL or BYE).
    DropHop,
    /// Update the live view.
    Live(LiveUpdate),
    /// The call is over: send BYE if asked, write the record, stop.
    Ended(Ending),
}

/// A callback question the queued caller is answering.
#[derive(Debug, Clone, PartialEq)]
enum Question {
    /// "Press 1 for this number, or enter another followed by #".
    Number { digits: String, deadline: Instant },
    /// "You already have a callback: 1 keeps it, 2 cancels it".
    Pending { id: String, deadline: Instant },
}

impl Question {
    fn deadline(&self) -> Instant {
        match self {
            Question::Number { deadline, .. } | Question::Pending { deadline, .. } => *deadline,
        }
    }
}

/// Waiting in a queue.
#[derive(Debug, Clone, PartialEq)]
struct Queued {
    queue: String,
    settings: QueueSettings,
    /// Token of a prompt played instead of the music (entry prompt,
    /// announcement, a callback question); the music resumes after it.
    interlude: Option<u64>,
    /// Next position announcement (None while one is being looked up).
    next_announce: Option<Instant>,
    /// When to (re-)offer a callback.
    offer_at: Option<Instant>,
    /// The question the caller is answering.
    question: Option<Question>,
}

/// Where the call is in its life.
#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// Running the dialplan. `overflow`: token of a prompt after which the
    /// dialplan continues at the queue node's `on_timeout`.
    Ivr { overflow: Option<u64> },
    /// Waiting in a queue (music on hold, agents being rung).
    Queued(Box<Queued>),
    /// Music here while the leg to the queues' owner is placed.
    Hopping(Box<hop::Hop>),
    /// Bridged to the owner's queue, which runs the wait.
    Hopped(Box<hop::Hop>),
    /// Talking to an agent.
    Bridged { agent: String, since: Instant },
    /// REFER sent; `accepted` once it got a 2xx.
    Transferring { accepted: bool, deadline: Instant },
    /// A callback is stored; the confirmation plays, then we hang up.
    Confirming { token: u64 },
    /// The agent hung up; the caller answers the queue's survey question.
    Surveying(Box<survey::Surveying>),
    /// Over; nothing more happens.
    Ended,
}

/// One answered inbound call. See the module documentation.
pub struct InboundCall {
    call_id: String,
    caller: String,
    session: Session,
    operator_queue: Option<String>,
    queues: Arc<BTreeMap<String, QueueSettings>>,
    extensions: Arc<dyn Extensions>,
    phase: Phase,
    /// Interpreter events not yet fed.
    pending: VecDeque<Event>,
    out: VecDeque<Output>,
    /// Last playback token handed out.
    token: u64,
    /// The interpreter's single timer.
    timer: Option<Instant>,
    /// Last queue entered (for the call record).
    queue: Option<String>,
    /// Agents with a leg up or ringing (several with ring-all).
    legs: Vec<String>,
    /// First entry into a queue: the caller's place in line, kept across
    /// overflow and callback requests.
    entered_queue: Option<Now>,
    /// The caller reached the queue by pressing 0.
    zero_out: bool,
    /// The interpreter is waiting at a queue node (it continues at the
    /// node's `on_timeout` when the queue lets the caller go). False when
    /// the caller waits only while a `callback` node's request is stored.
    plan_waits: bool,
    /// Callback offer settings of the queue node the caller is in.
    callback_offer: Option<CallbackOffer>,
    /// Path and digits of plans left by internal transfers.
    earlier_path: String,
    earlier_digits: String,
    refresh_every: Option<Duration>,
    refresh_at: Option<Instant>,
    /// What the directory knows of the caller (see [`Setup`]).
    known: KnownCaller,
    /// Skills a language requires (see [`Setup`]).
    language_skills: Arc<BTreeMap<String, (String, u8)>>,
    /// A `callback` node's `when_open` opening (after-hours request).
    callback_not_before: Option<DateTime<Utc>>,
    /// The `confirm_prompt` of that after-hours `callback` node ("we will
    /// call you back when we open"); empty: the built-in confirmation.
    after_hours_confirm: Vec<String>,
    /// The survey asked after the agent hung up, with its answer.
    survey_result: Option<SurveyResult>,
    /// Where the queues' ACD runs.
    acd_at: AcdAt,
    /// This call hopped here from another node (we own its queue).
    hopped_in: bool,
    /// A hopped-in call's queue let it go (the origin continues).
    hop_overflow: bool,
    /// The live view has seen this caller queue.
    live_queued: bool,
}

impl InboundCall {
    /// A call just answered: the dialplan starts at once.
    pub fn new(setup: Setup, now: Now) -> Self {
        let info = CallInfo {
            caller: setup.caller.clone(),
            dialed: setup.dialed.clone(),
            now: now.wall,
        };
        let mut call = Self::new_unstarted(setup, now);
        call.pending.push_back(Event::Started(info));
        call.drain(now);
        call
    }

    fn new_unstarted(setup: Setup, now: Now) -> Self {
        let Setup {
            call_id,
            caller,
            dialed: _,
            plan,
            operator_queue,
            queues,
            extensions,
            refresh_every,
            known,
            language_skills,
            acd_at,
        } = setup;
        let mut session = Session::new(plan, operator_queue.clone());
        if let Some(language) = known.language.clone().filter(|l| !l.trim().is_empty()) {
            session.carry_vars(BTreeMap::from([(
                ringback_dialplan::language::VAR.to_string(),
                language,
            )]));
        }
        InboundCall {
            call_id,
            caller,
            session,
            operator_queue,
            queues,
            extensions,
            phase: Phase::Ivr { overflow: None },
            pending: VecDeque::new(),
            out: VecDeque::new(),
            token: 0,
            timer: None,
            queue: None,
            legs: Vec::new(),
            entered_queue: None,
            zero_out: false,
            plan_waits: false,
            callback_offer: None,
            earlier_path: String::new(),
            earlier_digits: String::new(),
            refresh_every,
            refresh_at: refresh_every.map(|d| now.mono + d),
            known,
            language_skills,
            callback_not_before: None,
            after_hours_confirm: Vec::new(),
            survey_result: None,
            acd_at,
            hopped_in: false,
            hop_overflow: false,
            live_queued: false,
        }
    }

    /// A caller who hopped here from another node (we own the queues):
    /// no dialplan runs; they join the line with their original entry
    /// time, path and keys, and the variables `vars`.
    pub fn hopped_in(setup: Setup, hop: HopIn, vars: BTreeMap<String, String>, now: Now) -> Self {
        let mut setup = setup;
        setup.acd_at = AcdAt::Here;
        // Not started: `new` only queues the plan's first event.
        let mut call = Self::new_unstarted(setup, now);
        call.session.carry_vars(vars);
        call.join_from_hop(hop, now);
        call.drain(now);
        call
    }

    /// The call's language: its `language` variable (the directory's, or a
    /// `set` node's), else the plan's `language`; `None`: the default
    /// prompts.
    pub fn language(&self) -> Option<&str> {
        self.session
            .vars()
            .get(ringback_dialplan::language::VAR)
            .map(String::as_str)
            .filter(|l| !l.trim().is_empty())
            .or(self.session.plan().language.as_deref())
    }

    /// The skill the call's language requires, most specific tag first.
    fn language_skill(&self) -> Option<&(String, u8)> {
        ringback_dialplan::language::find(&self.language_skills, self.language()?)
    }

    /// The menu path so far (`main > billing`), earlier plans first.
    pub fn path(&self) -> String {
        let here = self.session.path().join(" > ");
        if self.earlier_path.is_empty() {
            here
        } else if here.is_empty() {
            self.earlier_path.clone()
        } else {
            format!("{} >> {here}", self.earlier_path)
        }
    }

    /// When the callback being requested ([`Output::RequestCallback`]) may
    /// be dialed at the earliest: the next opening of a `callback` node's
    /// `when_open` hours for a call made while they were closed; `None` for
    /// callbacks that may be dialed as soon as an agent is free.
    pub fn callback_not_before(&self) -> Option<DateTime<Utc>> {
        self.callback_not_before
    }

    /// The post-call survey, if the caller was asked one: the queue, the
    /// agent and the score (`None`: no answer). For the call record.
    pub fn survey(&self) -> Option<&SurveyResult> {
        self.survey_result.as_ref()
    }

    /// Every key the interpreter took, earlier plans first.
    pub fn digits(&self) -> String {
        format!("{}{}", self.earlier_digits, self.session.digits())
    }

    /// Variables the dialplan gathered.
    pub fn vars(&self) -> &BTreeMap<String, String> {
        self.session.vars()
    }

    /// The last queue entered.
    pub fn queue(&self) -> Option<&str> {
        self.queue.as_deref()
    }

    /// How long the caller has been in line (0 before any queue).
    pub fn waited(&self, now: Now) -> Duration {
        self.entered_queue.map_or(Duration::ZERO, |t| {
            now.mono.saturating_duration_since(t.mono)
        })
    }

    /// When the caller first entered a queue (wall clock).
    pub fn entered_queue_at(&self) -> Option<DateTime<Utc>> {
        self.entered_queue.map(|t| t.wall)
    }

    /// True once the call has ended.
    pub fn is_ended(&self) -> bool {
        self.phase == Phase::Ended
    }

    /// The agent the caller talks to, if bridged.
    pub fn bridged_agent(&self) -> Option<&str> {
        match &self.phase {
            Phase::Bridged { agent, .. } => Some(agent),
            _ => None,
        }
    }

    fn next_token(&mut self) -> u64 {
        self.token += 1;
        self.token
    }

    fn play(&mut self, prompts: Vec<String>, looped: bool, hold_music: bool) -> u64 {
        let token = self.next_token();
        self.out.push_back(Output::Play {
            prompts,
            looped,
            token,
            hold_music,
        });
        token
    }

    fn me(&self) -> CallId {
        CallId::from(self.call_id.as_str())
    }

    fn acd(&mut self, input: ringback_acd::Input) {
        self.out.push_back(Output::Acd(input));
    }

    /// End the call: settle the ACD and the live view, drop every leg.
    fn end(&mut self, ending: Ending, now: Now) {
        if self.phase == Phase::Ended {
            return;
        }
        match std::mem::replace(&mut self.phase, Phase::Ended) {
            Phase::Queued(_) => {
                self.out.push_back(Output::Live(LiveUpdate::Abandoned));
                let me = self.me();
                self.acd(ringback_acd::Input::Abandon(me));
            }
            Phase::Hopping(_) | Phase::Hopped(_) => self.out.push_back(Output::DropHop),
            Phase::Bridged { agent, since } => {
                let talk_secs = now.mono.saturating_duration_since(since).as_secs();
                self.out
                    .push_back(Output::Live(LiveUpdate::Handled { talk_secs }));
                if ending.hangup_by != HangupBy::Agent {
                    let me = self.me();
                    self.acd(ringback_acd::Input::CallEnded {
                        call: me,
                        agent: AgentId::from(agent.as_str()),
                        by: EndedBy::Caller,
                    });
                }
            }
            _ => {}
        }
        for agent in std::mem::take(&mut self.legs) {
            self.out.push_back(Output::DropLeg { agent });
        }
        self.pending.clear();
        self.timer = None;
        self.refresh_at = None;
        self.out.push_back(Output::Ended(ending));
    }

    /// Feed queued events to the interpreter and carry out its actions.
    fn drain(&mut self, now: Now) {
        let mut fed = 0;
        let mut actions = Vec::new();
        while let Some(ev) = self.pending.pop_front() {
            if self.phase == Phase::Ended {
                self.pending.clear();
                return;
            }
            fed += 1;
            if fed > MAX_EVENTS_PER_INPUT {
                tracing::error!("dialplan event loop did not settle; hanging up");
                self.end(Ending::by_ringback(Disposition::Failed), now);
                return;
            }
            actions.clear();
            self.session.handle(ev, &mut actions);
            for action in actions.drain(..) {
                // A callback request cuts the interpreter's batch short: its
                // confirmation may only follow the stored request.
                if !self.execute(action, now) || self.phase == Phase::Ended {
                    break;
                }
            }
        }
    }

    /// Carry out one interpreter action; false skips the rest of the batch.
    fn execute(&mut self, action: Action, now: Now) -> bool {
        match action {
            Action::Play { prompts, .. } => {
                if prompts.is_empty() {
                    self.next_token();
                    self.pending.push_back(Event::PlaybackDone);
                } else {
                    self.play(prompts, false, false);
                }
            }
            Action::StopPlayback => {
                self.next_token();
                self.out.push_back(Output::StopPlayback);
            }
            Action::StartTimer { after } => self.timer = Some(now.mono + after),
            Action::CancelTimer => self.timer = None,
            Action::Enqueue {
                queue,
                max_wait,
                priority,
                callback,
                zero_out,
            } => {
                self.zero_out = zero_out;
                self.plan_waits = true;
                self.callback_offer = callback.filter(|c| c.offer);
                self.enter_queue(queue, max_wait, priority, now);
                // Asked where the caller waits (a hop's owner asks itself).
                if matches!(self.phase, Phase::Queued(_)) {
                    self.out.push_back(Output::CheckPendingCallback {
                        queue: self.queue.clone().unwrap_or_default(),
                    });
                }
            }
            Action::Callback { queue, not_before } => {
                // The caller waits in the queue, keeping their place, while
                // the request is stored; ringback then confirms it (or says
                // it could not) itself. After hours the request waits for
                // the opening; its place among other such requests is its
                // entry time, i.e. when it was made.
                self.plan_waits = false;
                self.callback_not_before = not_before;
                if not_before.is_some() {
                    // The node's own words, else the shipped "…when we open".
                    let own = self.callback_node_confirm();
                    self.after_hours_confirm = if own.is_empty() {
                        vec![AFTER_HOURS_CONFIRM.to_string()]
                    } else {
                        own
                    };
                }
                self.enter_queue_here(queue.clone(), None, 0, now);
                self.request_callback(self.caller.clone(), now);
                return false;
            }
            Action::Lookup {
                lookup,
                caller,
                vars,
            } => self.out.push_back(Output::Lookup {
                lookup,
                caller,
                vars,
            }),
            Action::Transfer { target } => self.transfer(target, now),
            Action::Hangup => self.end(Ending::by_ringback(Disposition::Completed), now),
        }
        true
    }

    fn transfer(&mut self, target: String, now: Now) {
        // An extension one of our own plans answers: continue there.
        if !target.contains(':') && !target.contains('@') {
            match self.extensions.plan_for(&target) {
                Some(plan) => {
                    tracing::info!(%target, dialplan = %plan.name, "internal transfer");
                    self.earlier_path = self.path();
                    self.earlier_digits = self.digits();
                    let vars = self.session.vars().clone();
                    self.session = Session::new(plan, self.operator_queue.clone());
                    self.session.carry_vars(vars);
                    self.pending.push_back(Event::Started(CallInfo {
                        caller: self.caller.clone(),
                        dialed: target,
                        now: now.wall,
                    }));
                }
                None => {
                    tracing::warn!(%target, "transfer target is not a SIP URI nor a local extension");
                    self.pending.push_back(Event::TransferFailed);
                }
            }
            return;
        }
        tracing::info!(%target, "transferring with REFER");
        self.out.push_back(Output::Refer { target });
        self.phase = Phase::Transferring {
            accepted: false,
            deadline: now.mono + REFER_TIMEOUT,
        };
    }

    fn transfer_failed(&mut self) {
        self.phase = Phase::Ivr { overflow: None };
        self.pending.push_back(Event::TransferFailed);
    }

    /// Hand the caller to the ACD, or, when the queues' ACD runs on
    /// another node, hop there ([`hop`]). The place in line (first entry)
    /// is kept across overflow and hops so a caller never loses it.
    fn enter_queue(&mut self, queue: String, max_wait: Option<Duration>, priority: i32, now: Now) {
        if self.acd_elsewhere() && !self.hopped_in {
            self.arrive_in(&queue, now);
            self.start_hop(queue, max_wait, priority, now);
        } else {
            self.enter_queue_here(queue, max_wait, priority, now);
        }
    }

    /// `queue`'s settings (the defaults for a queue the config lacks).
    fn queue_settings(&self, queue: &str) -> QueueSettings {
        self.queues.get(queue).cloned().unwrap_or_default()
    }

    /// Reaching a queue, here or at the owner: the plan's timer stops, the
    /// queue is the call's, and the first entry is the caller's place.
    fn arrive_in(&mut self, queue: &str, now: Now) {
        self.timer = None;
        self.queue = Some(queue.to_string());
        self.entered_queue.get_or_insert(now);
    }

    /// Wait in this node's queue. On a node that does not own the queues
    /// (a `callback` node's caller, waiting only while the request is
    /// stored) the caller hears the music but joins no line.
    fn enter_queue_here(
        &mut self,
        queue: String,
        max_wait: Option<Duration>,
        priority: i32,
        now: Now,
    ) {
        tracing::info!(%queue, "caller queued");
        self.arrive_in(&queue, now);
        let settings = self.queue_settings(&queue);
        if !self.live_queued {
            self.live_queued = true;
            self.out.push_back(Output::Live(LiveUpdate::Queued));
        }
        let entered = self.entered_queue.map_or(now.mono, |t| t.mono);
        let mut waiting = WaitingCall::new(
            self.call_id.as_str(),
            queue.as_str(),
            self.caller.as_str(),
            entered,
        )
        .with_priority(priority)
        .lifted_by(self.known.priority);
        waiting.max_wait = max_wait;
        waiting.customer = self.known.key.clone();
        if let Some((skill, level)) = self.language_skill() {
            tracing::info!(%skill, level, "the caller's language requires a skill");
            waiting.required_skills.push((skill.clone(), *level));
        }
        if self.acd_at == AcdAt::Here || self.hopped_in {
            self.out.push_back(Output::Enqueue(waiting));
        }
        let interlude = match settings.entry_prompt.clone() {
            Some(p) => Some(self.play(vec![p], false, false)),
            None => {
                self.play(vec![settings.music_on_hold.clone()], true, true);
                None
            }
        };
        let offer_at = self
            .callback_offer
            .as_ref()
            .map(|o| now.mono + o.after.max(Duration::from_secs(1)));
        let next_announce = settings.announce_every.map(|d| now.mono + d);
        self.phase = Phase::Queued(Box::new(Queued {
            queue,
            settings,
            interlude,
            next_announce,
            offer_at,
            question: None,
        }));
    }

    fn queued(&mut self) -> Option<&mut Queued> {
        match &mut self.phase {
            Phase::Queued(q) => Some(q),
            _ => None,
        }
    }

    /// Play a prompt instead of the music for a moment; the music resumes
    /// after it.
    fn interlude(&mut self, prompts: Vec<String>) {
        let token = self.play(prompts, false, false);
        if let Some(q) = self.queued() {
            q.interlude = Some(token);
        }
    }

    fn resume_hold_music(&mut self) {
        let Some(q) = self.queued() else {
            return;
        };
        q.interlude = None;
        let moh = q.settings.music_on_hold.clone();
        self.play(vec![moh], true, true);
    }

    /// The `confirm_prompt` of the `callback` node the interpreter is at.
    fn callback_node_confirm(&self) -> Vec<String> {
        let plan = self.session.plan();
        match self.session.path().last().and_then(|n| plan.node(n)) {
            Some(ringback_dialplan::Node::Callback(c)) => c.confirm_prompt.clone(),
            _ => Vec::new(),
        }
    }

    /// Ask the callback service to store a request (the caller waits).
    fn request_callback(&mut self, number: String, now: Now) {
        let Some(queue) = self.queue.clone() else {
            return;
        };
        let entered_at = self.entered_queue.map_or(now.wall, |t| t.wall);
        self.out.push_back(Output::RequestCallback {
            queue,
            number,
            entered_at,
        });
    }

    /// The caller becomes a callback: out of the live queue (the stored
    /// request keeps the place), agents un-rung, the confirmation plays,
    /// then the call ends.
    fn confirm_and_hang_up(&mut self, prompts: Vec<String>) {
        let me = self.me();
        self.acd(ringback_acd::Input::Abandon(me));
        for agent in std::mem::take(&mut self.legs) {
            self.out.push_back(Output::DropLeg { agent });
        }
        let token = self.play(prompts, false, false);
        self.phase = Phase::Confirming { token };
    }

    fn on_digit(&mut self, d: char, now: Now) {
        match &self.phase {
            Phase::Ivr { .. } => self.pending.push_back(Event::Digit(d)),
            Phase::Queued(_) => self.on_queue_digit(d, now),
            Phase::Surveying(_) => self.on_survey_digit(d, now),
            _ => {}
        }
    }

    /// A key pressed while waiting in a queue: callback questions.
    fn on_queue_digit(&mut self, d: char, now: Now) {
        let offer_key = self.callback_offer.as_ref().map(|o| o.key);
        let caller = self.caller.clone();
        let Some(q) = self.queued() else {
            return;
        };
        match q.question.take() {
            Some(Question::Number {
                mut digits,
                deadline,
            }) => {
                // "1: call me back on this number" — unless the caller
                // has none (a web caller, `web:<id>`): then 1 is the first
                // digit of the number they type.
                if digits.is_empty() && d == '1' && !is_web_caller(&caller) {
                    self.request_callback(caller, now);
                } else if d == '#' && digits.len() >= MIN_CALLBACK_DIGITS {
                    self.request_callback(digits, now);
                } else {
                    if d.is_ascii_digit() && digits.len() < MAX_CALLBACK_DIGITS {
                        digits.push(d);
                    }
                    q.question = Some(Question::Number { digits, deadline });
                }
            }
            Some(Question::Pending { id, deadline }) => match d {
                '1' => {
                    tracing::info!(%id, "caller keeps the pending callback");
                    self.confirm_and_hang_up(vec!["callback-confirm".into()]);
                }
                '2' => self.out.push_back(Output::CancelCallback { id }),
                _ => q.question = Some(Question::Pending { id, deadline }),
            },
            None if offer_key == Some(d) => {
                tracing::info!("caller accepted the callback offer");
                q.question = Some(Question::Number {
                    digits: String::new(),
                    deadline: now.mono + QUESTION_TIMEOUT,
                });
                self.interlude(vec!["callback-number".into()]);
            }
            None => {}
        }
    }

    fn on_playback_done(&mut self, token: u64, now: Now) {
        if token != self.token {
            return; // superseded by a newer playback
        }
        match &mut self.phase {
            Phase::Confirming { token: t } if *t == token => {
                self.end(Ending::by_ringback(Disposition::Callback), now);
            }
            Phase::Ivr { overflow } if *overflow == Some(token) => {
                *overflow = None;
                self.queue_exited(now);
            }
            Phase::Ivr { .. } => self.pending.push_back(Event::PlaybackDone),
            Phase::Queued(q) if q.interlude == Some(token) => self.resume_hold_music(),
            Phase::Surveying(_) => self.on_survey_played(token, now),
            _ => {}
        }
    }
}

impl InboundCall {
    fn on_leave_queue(&mut self, overflow: Option<String>, why: &'static str, now: Now) {
        tracing::info!(why, ?overflow, "leaving the queue");
        let Phase::Queued(q) = &self.phase else {
            return;
        };
        let prompt = q.settings.overflow_prompt.clone();
        self.out.push_back(Output::StopPlayback);
        match overflow {
            Some(next) if self.queues.contains_key(&next) => {
                self.enter_queue(next.clone(), None, 0, now);
                self.out
                    .push_back(Output::CheckPendingCallback { queue: next });
            }
            _ => {
                self.phase = Phase::Ivr { overflow: None };
                match prompt {
                    Some(p) => {
                        let token = self.play(vec![p], false, false);
                        self.phase = Phase::Ivr {
                            overflow: Some(token),
                        };
                    }
                    None => self.queue_exited(now),
                }
            }
        }
    }

    /// The queue let the caller go: the plan continues at the queue node's
    /// `on_timeout`, or, when no queue node waits (a refused `callback`
    /// node's caller), the call ends instead of leaving them in silence.
    fn queue_exited(&mut self, now: Now) {
        if self.hopped_in {
            self.release_hop(now);
        } else if self.plan_waits {
            self.pending.push_back(Event::QueueExited);
        } else {
            tracing::info!("released from the queue after a callback node; hanging up");
            self.end(Ending::by_ringback(Disposition::Completed), now);
        }
    }

    fn on_offer(&mut self, agent: String) {
        if !matches!(self.phase, Phase::Queued(_)) {
            // Connected elsewhere or gone meanwhile: decline at once.
            let me = self.me();
            self.acd(ringback_acd::Input::OfferFailed {
                call: me,
                agent: AgentId::from(agent.as_str()),
                reason: OfferFailure::Error,
            });
            return;
        }
        if !self.legs.contains(&agent) {
            self.legs.push(agent.clone());
        }
        self.out.push_back(Output::RingAgent { agent });
    }

    fn drop_leg(&mut self, agent: &str) {
        if let Some(i) = self.legs.iter().position(|a| a == agent) {
            self.legs.remove(i);
            self.out.push_back(Output::DropLeg {
                agent: agent.to_string(),
            });
        }
    }

    fn on_connected(&mut self, agent: String, now: Now) {
        if !self.legs.contains(&agent) {
            tracing::warn!(%agent, "ACD connected an agent without a leg");
            return;
        }
        tracing::info!(%agent, "caller bridged to agent");
        self.out.push_back(Output::Bridge {
            agent: agent.clone(),
        });
        let waited_secs = self.waited(now).as_secs();
        self.out
            .push_back(Output::Live(LiveUpdate::Answered { waited_secs }));
        self.timer = None;
        self.phase = Phase::Bridged {
            agent,
            since: now.mono,
        };
    }

    fn report_failure(&mut self, agent: &str, reason: OfferFailure) {
        let me = self.me();
        self.acd(ringback_acd::Input::OfferFailed {
            call: me,
            agent: AgentId::from(agent),
            reason,
        });
    }

    /// What an agent leg's event means for the call. Events of legs the
    /// call already let go of (a 487 after our CANCEL) mean nothing.
    fn on_leg(&mut self, agent: String, event: LegEvent, now: Now) {
        let bridged_here = self.bridged_agent() == Some(agent.as_str());
        let Some(i) = self.legs.iter().position(|a| *a == agent) else {
            return;
        };
        match event {
            LegEvent::Answered if matches!(self.phase, Phase::Queued(_)) => {
                tracing::info!(%agent, "agent answered");
                let me = self.me();
                self.acd(ringback_acd::Input::OfferAnswered {
                    call: me,
                    agent: AgentId::from(agent.as_str()),
                });
            }
            // Answered when the caller no longer waits (bridged to another
            // agent with ring-all, transferring, confirming a callback).
            LegEvent::Answered => self.drop_leg(&agent),
            LegEvent::DialFailed => {
                self.legs.remove(i);
                self.report_failure(&agent, OfferFailure::Error);
            }
            LegEvent::Failed(code) => {
                self.legs.remove(i);
                tracing::info!(%agent, code, "agent did not take the call");
                self.report_failure(&agent, offer_failure(code));
            }
            LegEvent::TimedOut => {
                self.legs.remove(i);
                self.report_failure(&agent, OfferFailure::NoAnswer);
            }
            LegEvent::HungUp if bridged_here => {
                self.legs.remove(i);
                let me = self.me();
                self.acd(ringback_acd::Input::CallEnded {
                    call: me,
                    agent: AgentId::from(agent.as_str()),
                    by: EndedBy::Agent,
                });
                if let Phase::Bridged { since, .. } = self.phase {
                    let talk_secs = now.mono.saturating_duration_since(since).as_secs();
                    if self.start_survey(&agent, talk_secs) {
                        return;
                    }
                }
                self.end(
                    Ending {
                        disposition: Disposition::Completed,
                        hangup_by: HangupBy::Agent,
                        send_bye: true,
                    },
                    now,
                );
            }
            LegEvent::HungUp => {
                // Before being bridged: the caller keeps waiting.
                self.legs.remove(i);
                self.report_failure(&agent, OfferFailure::Rejected);
            }
            LegEvent::RtpTimeout if bridged_here => {
                // The agent's phone vanished without a BYE: end the call
                // instead of leaving the caller in silence and the agent
                // `on-call` forever.
                tracing::warn!(%agent, "no RTP from the agent's phone; ending the call");
                self.drop_leg(&agent);
                let me = self.me();
                self.acd(ringback_acd::Input::CallEnded {
                    call: me,
                    agent: AgentId::from(agent.as_str()),
                    by: EndedBy::Agent,
                });
                self.end(
                    Ending {
                        disposition: Disposition::RtpTimeout,
                        hangup_by: HangupBy::Agent,
                        send_bye: true,
                    },
                    now,
                );
            }
            LegEvent::RtpTimeout => {}
        }
    }

    fn on_caller_hung_up(&mut self, now: Now) {
        if matches!(self.phase, Phase::Surveying(_)) {
            // No answer; never called back for a survey.
            tracing::info!("caller hung up during the survey");
            self.end_survey(false, now);
            return;
        }
        self.pending.push_back(Event::Hangup);
        self.drain(now);
        let disposition = match self.phase {
            Phase::Queued(_) => Disposition::Abandoned,
            // The owner's record tells how the wait there went.
            Phase::Hopping(_) | Phase::Hopped(_) => Disposition::Hopped,
            // The callback is stored: hanging up during its confirmation
            // changes nothing.
            Phase::Confirming { .. } => Disposition::Callback,
            // The transferee took over and hangs up on us.
            Phase::Transferring { accepted: true, .. } => Disposition::Transferred,
            _ => Disposition::Completed,
        };
        self.end(
            Ending {
                disposition,
                hangup_by: HangupBy::Caller,
                send_bye: false,
            },
            now,
        );
    }

    fn on_transfer(&mut self, input: Input, now: Now) {
        let Phase::Transferring { accepted, deadline } = &mut self.phase else {
            return;
        };
        match input {
            Input::ReferAnswered { code } if (200..300).contains(&code) => {
                // Accepted: wait for the final NOTIFY, as long again.
                *accepted = true;
                *deadline = now.mono + REFER_TIMEOUT;
            }
            Input::ReferAnswered { code } if code >= 300 => {
                tracing::info!(code, "transfer refused");
                self.transfer_failed();
            }
            Input::ReferTimedOut if !*accepted => self.transfer_failed(),
            Input::TransferProgress { code } if (200..300).contains(&code) => {
                self.end(Ending::by_ringback(Disposition::Transferred), now);
            }
            Input::TransferProgress { code } if code >= 300 => {
                tracing::info!(code, "transfer failed at the target");
                self.transfer_failed();
            }
            _ => {}
        }
    }

    /// The callback service answered one of our questions.
    fn on_callback_answer(&mut self, input: Input, now: Now) {
        match input {
            Input::PendingCallback(Some(id)) => {
                let Some(q) = self.queued() else {
                    return;
                };
                tracing::info!(%id, "caller already has a callback pending");
                q.question = Some(Question::Pending {
                    id,
                    deadline: now.mono + QUESTION_TIMEOUT,
                });
                self.interlude(vec!["callback-pending".into()]);
            }
            Input::PendingCallback(None) => {
                let Some(q) = self.queued() else {
                    return;
                };
                if q.settings.callback_offer_ewt_above.is_some()
                    || q.settings.callback_offer_on_zero_out
                {
                    self.out.push_back(Output::QueryQueueState);
                }
            }
            Input::QueueState { ewt, free_agents } => {
                let zero_out = self.zero_out;
                let Some(q) = self.queued() else {
                    return;
                };
                let long_wait = matches!(
                    (ewt, q.settings.callback_offer_ewt_above),
                    (Some(ewt), Some(limit)) if ewt > limit
                );
                let nobody_free =
                    q.settings.callback_offer_on_zero_out && zero_out && free_agents == 0;
                if long_wait {
                    tracing::info!(?ewt, "long estimated wait: offering a callback now");
                } else if nobody_free {
                    tracing::info!("zero-out with no agent free: offering a callback now");
                }
                if long_wait || nobody_free {
                    q.offer_at = Some(now.mono);
                    self.callback_offer.get_or_insert(CallbackOffer {
                        offer: true,
                        after: MIN_REOFFER,
                        key: '1',
                    });
                }
            }
            Input::CallbackCapacity { pending, max } => {
                let idle = matches!(&self.phase, Phase::Queued(q) if q.interlude.is_none());
                if pending < max && idle {
                    tracing::info!("offering a callback");
                    self.interlude(vec!["callback-offer".into()]);
                } else {
                    tracing::info!(pending, max, "no callback offer now");
                }
            }
            Input::CallbackStored { ahead } => {
                if !matches!(self.phase, Phase::Queued(_)) {
                    return;
                }
                // Stored: now, and only now, the caller hears it.
                tracing::info!(ahead, "callback confirmed to the caller");
                // After hours the node's own words ("…when we open") replace
                // "as soon as an agent is free".
                let mut prompts = match std::mem::take(&mut self.after_hours_confirm) {
                    p if p.is_empty() => vec!["callback-confirm".to_string()],
                    p => p,
                };
                prompts.push("you-are-caller".into());
                prompts.extend(number_prompts(ahead as u64 + 1));
                self.confirm_and_hang_up(prompts);
            }
            Input::CallbackRefused => {
                if matches!(self.phase, Phase::Queued(_)) {
                    tracing::info!("callback refused; the caller keeps waiting");
                    self.interlude(vec!["callback-unavailable".into()]);
                }
            }
            Input::CallbackCancelled { ok: true } => {
                if matches!(self.phase, Phase::Queued(_)) {
                    self.interlude(vec!["callback-cancelled".into()]);
                }
            }
            _ => {}
        }
    }

    /// "You are caller number 3. Your estimated waiting time is 4 minutes."
    fn on_position(&mut self, answer: Option<(usize, Duration)>, now: Now) {
        let Some(q) = self.queued() else {
            return;
        };
        q.next_announce = q.settings.announce_every.map(|d| now.mono + d);
        if q.interlude.is_some() {
            return; // a question or prompt started meanwhile
        }
        let Some((position, ewt)) = answer else {
            return;
        };
        let minutes = ewt.as_secs().div_ceil(60).max(1);
        let mut names = vec!["you-are-caller".to_string()];
        names.extend(number_prompts(position as u64));
        names.push("estimated-wait".into());
        names.extend(number_prompts(minutes));
        names.push("minutes".into());
        self.interlude(names);
    }

    /// Queue timers: announcements, the callback offer, questions expiring.
    fn on_queue_timeout(&mut self, now: Now) {
        let reoffer = self
            .callback_offer
            .as_ref()
            .map(|o| o.after.max(MIN_REOFFER));
        let caller_typed = |q: &mut Queued| -> Option<String> {
            match q.question.take() {
                Some(Question::Number { digits, .. }) if digits.len() >= MIN_CALLBACK_DIGITS => {
                    Some(digits)
                }
                _ => {
                    tracing::debug!("callback question timed out; the caller keeps waiting");
                    None
                }
            }
        };
        let Some(q) = self.queued() else {
            return;
        };
        let mut typed = None;
        if q.question
            .as_ref()
            .is_some_and(|f| f.deadline() <= now.mono)
        {
            typed = caller_typed(q);
        }
        let idle = q.interlude.is_none();
        let mut offer = false;
        let mut announce = false;
        if idle && q.question.is_none() && q.offer_at.is_some_and(|t| t <= now.mono) {
            // Offer again later for callers who stay on the line.
            q.offer_at = reoffer.map(|d| now.mono + d);
            offer = reoffer.is_some();
        }
        if idle && q.next_announce.is_some_and(|t| t <= now.mono) {
            q.next_announce = None; // until the position comes back
            announce = true;
        }
        let queue = q.queue.clone();
        if let Some(digits) = typed {
            self.request_callback(digits, now);
        }
        if offer {
            self.out.push_back(Output::CheckCallbackCapacity { queue });
        }
        if announce {
            self.out.push_back(Output::QueryPosition);
        }
    }
}

impl Core for InboundCall {
    type Input = Input;
    type Output = Output;

    fn handle(&mut self, input: Input, now: Now) {
        if self.phase == Phase::Ended {
            return;
        }
        match input {
            Input::Digit(d) => self.on_digit(d, now),
            Input::PlaybackDone { token } => self.on_playback_done(token, now),
            Input::RtpTimeout => {
                tracing::warn!("no RTP from the caller; hanging up");
                self.end(Ending::by_ringback(Disposition::RtpTimeout), now);
            }
            Input::CallerHungUp => self.on_caller_hung_up(now),
            Input::AckTimeout => {
                tracing::warn!("no ACK for our 200 OK; hanging up");
                self.end(Ending::by_ringback(Disposition::Failed), now);
            }
            Input::Shutdown => self.end(Ending::by_ringback(Disposition::Shutdown), now),
            input @ (Input::ReferAnswered { .. }
            | Input::ReferTimedOut
            | Input::TransferProgress { .. }) => self.on_transfer(input, now),
            Input::Offer { agent } => self.on_offer(agent),
            Input::CancelOffer { agent } => self.drop_leg(&agent),
            Input::Connected { agent } => self.on_connected(agent, now),
            Input::LeaveQueue { overflow, why } => self.on_leave_queue(overflow, why, now),
            Input::AcdAt(at) => self.on_acd_at(at, now),
            Input::Hop(event) => self.on_hop(event, now),
            Input::Leg { agent, event } => self.on_leg(agent, event, now),
            Input::Position(answer) => self.on_position(answer, now),
            Input::LookupDone(answer) => {
                // Only the IVR waits for a lookup; a caller who left it
                // (pressed 0) no longer does.
                if matches!(self.phase, Phase::Ivr { .. }) {
                    self.pending.push_back(match answer {
                        Ok(body) => Event::LookupAnswered(body),
                        Err(why) => Event::LookupFailed(why),
                    });
                    self.drain(now);
                }
            }
            input @ (Input::QueueState { .. }
            | Input::PendingCallback(_)
            | Input::CallbackCapacity { .. }
            | Input::CallbackStored { .. }
            | Input::CallbackRefused
            | Input::CallbackCancelled { .. }) => self.on_callback_answer(input, now),
        }
        self.drain(now);
    }

    fn handle_timeout(&mut self, now: Now) {
        if self.phase == Phase::Ended {
            return;
        }
        if let Some(every) = self.refresh_every {
            if self.refresh_at.is_some_and(|t| t <= now.mono) {
                self.refresh_at = Some(now.mono + every);
                self.out.push_back(Output::RefreshSession { every });
            }
        }
        if self.timer.is_some_and(|t| t <= now.mono) {
            self.timer = None;
            self.pending.push_back(Event::Timeout);
        }
        match &self.phase {
            Phase::Transferring { deadline, .. } if *deadline <= now.mono => {
                // Accepted but no final NOTIFY (the transferee handles it),
                // or never answered: either way our part is over.
                self.end(Ending::by_ringback(Disposition::Transferred), now);
                return;
            }
            Phase::Queued(_) => self.on_queue_timeout(now),
            Phase::Hopping(_) => self.on_hop_timeout(now),
            Phase::Surveying(_) => self.on_survey_timeout(now),
            _ => {}
        }
        self.drain(now);
    }

    fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let phase = match &self.phase {
            Phase::Queued(q) => {
                let question = q.question.as_ref().map(Question::deadline);
                // Offers and announcements wait for the interlude to end.
                let idle = if q.interlude.is_none() {
                    [q.next_announce, q.offer_at.filter(|_| q.question.is_none())]
                        .into_iter()
                        .flatten()
                        .min()
                } else {
                    None
                };
                [question, idle].into_iter().flatten().min()
            }
            Phase::Transferring { deadline, .. } => Some(*deadline),
            Phase::Hopping(_) => self.hop_deadline(),
            Phase::Surveying(s) => s.deadline(),
            Phase::Ended => return None,
            _ => None,
        };
        [self.timer, phase, self.refresh_at]
            .into_iter()
            .flatten()
            .min()
    }
}

/// What an agent phone's final answer means to the ACD.
pub fn offer_failure(code: u16) -> OfferFailure {
    match code {
        486 | 600 => OfferFailure::Busy,
        603 => OfferFailure::Rejected,
        408 | 480 | 487 => OfferFailure::NoAnswer,
        _ => OfferFailure::Error,
    }
}
