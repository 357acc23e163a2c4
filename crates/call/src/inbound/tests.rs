//! The inbound call core driven with a fake clock: every phase (IVR, queue,
//! callback questions, bridged, transferring, confirming, ended) and every
//! timer (the interpreter's, announcements, callback offers, questions, the
//! REFER deadline, session refresh), asserting on the drained outputs.

use super::*;

use std::path::Path;

use ringback_dialplan::{load_str, CheckContext, Node};

const CALL: &str = "call-1";
const CALLER: &str = "+15551234567";

/// The main test plan: a welcome, then a menu reaching every kind of node.
const PLAN: &str = r#"
[dialplan]
name = "main"
numbers = ["1000"]
start = "welcome"
operator = "operator"

[nodes.welcome]
type = "play"
prompt = "welcome"
next = "main"

[nodes.main]
type = "menu"
prompt = "main-menu"
options = { "1" = "sales", "2" = "billing", "3" = "support", "4" = "cb", "5" = "partner", "6" = "tag", "7" = "nowhere", "8" = "bye" }
timeout = 5
max_retries = 3
timeout_prompt = "no-input"

[nodes.sales]
type = "queue"
queue = "sales"
max_wait = 600
on_timeout = "sorry"

[nodes.billing]
type = "queue"
queue = "billing"
priority = 5
on_timeout = "sorry"
callback = { offer = true, after = 30, key = "1" }

[nodes.support]
type = "queue"
queue = "support"

[nodes.sorry]
type = "hangup"
prompt = "sorry"

[nodes.cb]
type = "callback"
queue = "billing"
confirm_prompt = "callback-confirm"

[nodes.partner]
type = "transfer"
target = "sip:partner@example.com"
on_fail = "transfer-failed"

[nodes.transfer-failed]
type = "hangup"
prompt = "transfer-failed"

[nodes.tag]
type = "set"
vars = { tier = "gold" }
next = "ext"

[nodes.ext]
type = "transfer"
target = "2000"

[nodes.nowhere]
type = "transfer"
target = "2999"

[nodes.bye]
type = "hangup"
"#;

/// The plan extension 2000 answers (internal transfer target).
const SECOND: &str = r#"
[dialplan]
name = "second"
numbers = ["2000"]
start = "hello"
operator = "operator"

[nodes.hello]
type = "menu"
prompt = "second-menu"
options = { "1" = "done" }

[nodes.done]
type = "hangup"
prompt = "goodbye"
"#;

/// A plan that transfers to itself forever (extension 3000).
const SELF_TRANSFER: &str = r#"
[dialplan]
name = "loop"
numbers = ["3000"]
start = "again"
operator = "operator"

[nodes.again]
type = "transfer"
target = "3000"
"#;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn plan(text: &str) -> Arc<Dialplan> {
    match load_str(Path::new("t.toml"), text, &CheckContext::default()) {
        Ok((p, _warnings)) => Arc::new(p),
        Err(diags) => panic!(
            "test plan does not load:\n{}",
            diags
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

/// Plans reachable by internal transfer, by extension.
struct Exts(BTreeMap<String, Arc<Dialplan>>);

impl Extensions for Exts {
    fn plan_for(&self, number: &str) -> Option<Arc<Dialplan>> {
        self.0.get(number).cloned()
    }
}

fn extensions() -> Arc<dyn Extensions> {
    let mut m = BTreeMap::new();
    m.insert("2000".to_string(), plan(SECOND));
    m.insert("3000".to_string(), plan(SELF_TRANSFER));
    Arc::new(Exts(m))
}

/// The queues' call-side settings: `operator` plain, `sales` with an entry
/// prompt, announcements and an overflow prompt, `support` with
/// announcements, `billing` with its own music only.
fn queues() -> BTreeMap<String, QueueSettings> {
    let mut m = BTreeMap::new();
    m.insert("operator".to_string(), QueueSettings::default());
    m.insert(
        "sales".to_string(),
        QueueSettings {
            music_on_hold: "sales-music".into(),
            entry_prompt: Some("sales-welcome".into()),
            announce_every: Some(secs(60)),
            overflow_prompt: Some("sales-full".into()),
            ..QueueSettings::default()
        },
    );
    m.insert(
        "support".to_string(),
        QueueSettings {
            music_on_hold: "support-music".into(),
            announce_every: Some(secs(60)),
            ..QueueSettings::default()
        },
    );
    m.insert(
        "billing".to_string(),
        QueueSettings {
            music_on_hold: "billing-music".into(),
            ..QueueSettings::default()
        },
    );
    m
}

fn setup_with(text: &str, queues: BTreeMap<String, QueueSettings>) -> Setup {
    Setup {
        call_id: CALL.into(),
        caller: CALLER.into(),
        dialed: "1000".into(),
        plan: plan(text),
        operator_queue: Some("operator".into()),
        queues: Arc::new(queues),
        extensions: extensions(),
        refresh_every: None,
        known: KnownCaller::default(),
        language_skills: Arc::default(),
        acd_at: AcdAt::Here,
    }
}

fn setup() -> Setup {
    setup_with(PLAN, queues())
}

/// Everything the call wants done, in order.
fn drain(call: &mut InboundCall) -> Vec<Output> {
    std::iter::from_fn(|| call.poll_output()).collect()
}

/// A call and its fake clock.
struct Harness {
    call: InboundCall,
    now: Now,
    /// Token of the last `Play` seen.
    last_play: u64,
}

impl Harness {
    fn start(setup: Setup) -> (Harness, Vec<Output>) {
        let now = Now::system();
        let call = InboundCall::new(setup, now);
        let mut h = Harness {
            call,
            now,
            last_play: 0,
        };
        let outs = h.drain();
        (h, outs)
    }

    fn drain(&mut self) -> Vec<Output> {
        let outs = drain(&mut self.call);
        for o in &outs {
            if let Output::Play { token, .. } = o {
                self.last_play = *token;
            }
        }
        outs
    }

    fn send(&mut self, input: Input) -> Vec<Output> {
        self.call.handle(input, self.now);
        self.drain()
    }

    fn keys(&mut self, keys: &str) -> Vec<Output> {
        let mut outs = Vec::new();
        for d in keys.chars() {
            outs.extend(self.send(Input::Digit(d)));
        }
        outs
    }

    /// The last playback ended.
    fn done(&mut self) -> Vec<Output> {
        self.send(Input::PlaybackDone {
            token: self.last_play,
        })
    }

    fn advance(&mut self, s: u64) {
        self.now = self.now.plus(secs(s));
    }

    /// Let `s` seconds pass and give the call its timeout.
    fn tick(&mut self, s: u64) -> Vec<Output> {
        self.advance(s);
        self.call.handle_timeout(self.now);
        self.drain()
    }

    /// Jump to the instant `poll_timeout` asks for and fire it; the call
    /// must not ask again for the same (or an earlier) instant.
    fn fire(&mut self) -> Vec<Output> {
        let at = self.call.poll_timeout().expect("a timeout is armed");
        if at > self.now.mono {
            self.now = self.now.plus(at - self.now.mono);
        }
        self.call.handle_timeout(self.now);
        let outs = self.drain();
        if let Some(next) = self.call.poll_timeout() {
            assert!(next > self.now.mono, "timeout not consumed: busy loop");
        }
        outs
    }

    /// How long until the next timeout, if any.
    fn due_in(&self) -> Option<Duration> {
        self.call
            .poll_timeout()
            .map(|t| t.saturating_duration_since(self.now.mono))
    }

    fn leg(&mut self, agent: &str, event: LegEvent) -> Vec<Output> {
        self.send(Input::Leg {
            agent: agent.into(),
            event,
        })
    }

    fn offer(&mut self, agent: &str) -> Vec<Output> {
        self.send(Input::Offer {
            agent: agent.into(),
        })
    }

    fn connect(&mut self, agent: &str) -> Vec<Output> {
        self.send(Input::Connected {
            agent: agent.into(),
        })
    }
}

/// The main menu's prompt is playing (token 2).
fn at_menu() -> Harness {
    let (mut h, _) = Harness::start(setup());
    h.done();
    assert_eq!(h.last_play, 2);
    h
}

/// Pressed `key` in the main menu while its prompt played (so the session
/// stops it first); returns what that did.
fn menu_key(key: char) -> (Harness, Vec<Output>) {
    let mut h = at_menu();
    let outs = h.keys(&key.to_string());
    (h, outs)
}

/// Waiting in `billing` (callback offer after 30 s, key 1), entered at
/// `h.now`; the pending-callback check answered "none".
fn in_billing() -> Harness {
    let (mut h, _) = menu_key('2');
    assert_eq!(h.send(Input::PendingCallback(None)), vec![]);
    h
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn play(list: &[&str], token: u64) -> Output {
    Output::Play {
        prompts: names(list),
        looped: false,
        token,
        hold_music: false,
    }
}

fn music(name: &str, token: u64) -> Output {
    Output::Play {
        prompts: names(&[name]),
        looped: true,
        token,
        hold_music: true,
    }
}

fn waiting(queue: &str, entered: Instant) -> WaitingCall {
    WaitingCall::new(CALL, queue, CALLER, entered)
}

fn me() -> CallId {
    CallId::from(CALL)
}

fn acd_failed(agent: &str, reason: OfferFailure) -> Output {
    Output::Acd(ringback_acd::Input::OfferFailed {
        call: me(),
        agent: AgentId::from(agent),
        reason,
    })
}

fn acd_ended(agent: &str, by: EndedBy) -> Output {
    Output::Acd(ringback_acd::Input::CallEnded {
        call: me(),
        agent: AgentId::from(agent),
        by,
    })
}

fn abandon() -> Output {
    Output::Acd(ringback_acd::Input::Abandon(me()))
}

fn ended(disposition: Disposition, hangup_by: HangupBy, send_bye: bool) -> Output {
    Output::Ended(Ending {
        disposition,
        hangup_by,
        send_bye,
    })
}

fn by_ringback(disposition: Disposition) -> Output {
    Output::Ended(Ending::by_ringback(disposition))
}

fn drop_leg(agent: &str) -> Output {
    Output::DropLeg {
        agent: agent.into(),
    }
}

fn request(number: &str, entered_at: DateTime<Utc>) -> Output {
    Output::RequestCallback {
        queue: "billing".into(),
        number: number.into(),
        entered_at,
    }
}

// ------------------------------------------------------------------ IVR

#[test]
fn start_plays_the_welcome_and_waits_for_its_end() {
    let (h, outs) = Harness::start(setup());
    assert_eq!(outs, vec![play(&["welcome"], 1)]);
    assert_eq!(h.call.poll_timeout(), None);
    assert_eq!(h.call.path(), "welcome");
    assert!(!h.call.is_ended());
    assert_eq!(h.call.queue(), None);
    assert_eq!(h.call.entered_queue_at(), None);
}

#[test]
fn menu_prompt_end_arms_the_interpreter_timer_which_fires_timeout() {
    let (mut h, _) = Harness::start(setup());
    assert_eq!(h.done(), vec![play(&["main-menu"], 2)]);
    assert_eq!(h.call.path(), "welcome > main");
    assert_eq!(
        h.call.poll_timeout(),
        None,
        "no timer while the prompt plays"
    );

    assert_eq!(h.done(), vec![]);
    assert_eq!(h.due_in(), Some(secs(5)));
    assert_eq!(h.tick(4), vec![], "not due yet");
    assert_eq!(h.due_in(), Some(secs(1)));

    assert_eq!(h.fire(), vec![play(&["no-input", "main-menu"], 3)]);
    assert_eq!(h.call.poll_timeout(), None, "the timer fired once");
}

#[test]
fn silent_caller_reaches_the_operator_after_max_retries() {
    let mut h = at_menu();
    for attempt in 1..=2 {
        h.done();
        assert_eq!(
            h.fire(),
            vec![play(&["no-input", "main-menu"], 2 + attempt)]
        );
    }
    h.done();
    let outs = h.fire();
    assert_eq!(
        outs,
        vec![
            Output::Live(LiveUpdate::Queued),
            Output::Enqueue(waiting("operator", h.now.mono)),
            music("hold-music", 5),
            Output::CheckPendingCallback {
                queue: "operator".into()
            },
        ]
    );
}

#[test]
fn stale_playback_done_tokens_are_ignored() {
    let mut h = at_menu();
    assert_eq!(h.send(Input::PlaybackDone { token: 1 }), vec![]);
    assert_eq!(h.send(Input::PlaybackDone { token: 99 }), vec![]);
    assert_eq!(h.call.poll_timeout(), None, "the menu did not move on");
    assert_eq!(h.send(Input::PlaybackDone { token: 2 }), vec![]);
    assert_eq!(h.due_in(), Some(secs(5)));
}

#[test]
fn a_digit_routes_and_a_hangup_node_ends_the_call() {
    let (h, outs) = menu_key('8');
    assert_eq!(
        outs,
        vec![
            Output::StopPlayback,
            ended(Disposition::Completed, HangupBy::Ringback, true),
        ]
    );
    assert!(h.call.is_ended());
    assert_eq!(h.call.poll_timeout(), None);
    assert_eq!(h.call.path(), "welcome > main > bye");
    assert_eq!(h.call.digits(), "8");
}

#[test]
fn a_digit_typed_during_the_welcome_is_kept_for_the_menu() {
    let (mut h, _) = Harness::start(setup());
    assert_eq!(h.keys("8"), vec![], "the welcome plays on");
    assert_eq!(
        h.done(),
        vec![
            play(&["main-menu"], 2),
            Output::StopPlayback,
            by_ringback(Disposition::Completed),
        ]
    );
}

#[test]
fn runaway_internal_transfer_loop_is_hung_up() {
    let mut s = setup();
    s.plan = plan(SELF_TRANSFER);
    let (h, outs) = Harness::start(s);
    assert_eq!(outs, vec![by_ringback(Disposition::Failed)]);
    assert!(h.call.is_ended());
    assert_eq!(h.call.poll_timeout(), None);
}

#[test]
fn runaway_play_loop_ends_at_the_operator() {
    // Two silent play nodes calling each other: `check` rejects that, so
    // the plan is edited after loading.
    let mut p = (*plan(PLAN)).clone();
    let silent = |next: &str| {
        Node::Play(ringback_dialplan::Play {
            prompt: Vec::new(),
            next: Some(next.into()),
            zero_out: true,
            type_ahead: None,
        })
    };
    p.nodes.insert("ping".into(), silent("pong"));
    p.nodes.insert("pong".into(), silent("ping"));
    p.start = "ping".into();
    let mut s = setup();
    s.plan = Arc::new(p);
    let (h, outs) = Harness::start(s);
    assert_eq!(outs.len(), 4, "{outs:?}");
    assert_eq!(outs[0], Output::Live(LiveUpdate::Queued));
    assert_eq!(outs[1], Output::Enqueue(waiting("operator", h.now.mono)));
    assert!(matches!(
        &outs[2],
        Output::Play { prompts, looped: true, hold_music: true, .. } if *prompts == names(&["hold-music"])
    ));
    assert_eq!(
        outs[3],
        Output::CheckPendingCallback {
            queue: "operator".into()
        }
    );
}

// ------------------------------------------------------------- zero-out

#[test]
fn zero_enqueues_in_the_operator_queue_with_hold_music() {
    let (h, outs) = menu_key('0');
    assert_eq!(
        outs,
        vec![
            Output::StopPlayback,
            Output::Live(LiveUpdate::Queued),
            Output::Enqueue(waiting("operator", h.now.mono)),
            music("hold-music", 4),
            Output::CheckPendingCallback {
                queue: "operator".into()
            },
        ]
    );
    assert_eq!(h.call.queue(), Some("operator"));
    assert_eq!(h.call.entered_queue_at(), Some(h.now.wall));
    assert_eq!(h.call.poll_timeout(), None, "a plain queue has no timers");
}

#[test]
fn zero_while_the_menu_waits_cancels_the_interpreter_timer() {
    let mut h = at_menu();
    h.done();
    assert_eq!(h.due_in(), Some(secs(5)));
    h.advance(2);
    let outs = h.keys("0");
    assert_eq!(outs[0], Output::Live(LiveUpdate::Queued));
    assert_eq!(h.call.poll_timeout(), None);
    assert_eq!(h.tick(10), vec![], "the menu timer is gone");
}

// ---------------------------------------------------------------- queue

#[test]
fn entry_prompt_is_an_interlude_then_the_music_resumes() {
    let (mut h, outs) = menu_key('1');
    let mut expected = waiting("sales", h.now.mono);
    expected.max_wait = Some(secs(600));
    assert_eq!(
        outs,
        vec![
            Output::StopPlayback,
            Output::Live(LiveUpdate::Queued),
            Output::Enqueue(expected),
            play(&["sales-welcome"], 4),
            Output::CheckPendingCallback {
                queue: "sales".into()
            },
        ]
    );
    assert_eq!(
        h.call.poll_timeout(),
        None,
        "announcements wait for the prompt"
    );
    assert_eq!(h.done(), vec![music("sales-music", 5)]);
    assert_eq!(h.due_in(), Some(secs(60)));
    assert_eq!(h.done(), vec![], "the end of a music loop means nothing");
}

#[test]
fn position_is_announced_every_interval() {
    let (mut h, outs) = menu_key('3');
    assert_eq!(outs[3], music("support-music", 4));
    assert_eq!(h.due_in(), Some(secs(60)));

    assert_eq!(h.fire(), vec![Output::QueryPosition]);
    assert_eq!(h.call.poll_timeout(), None, "until the position comes back");
    assert_eq!(
        h.send(Input::Position(Some((2, secs(180))))),
        vec![play(
            &[
                "you-are-caller",
                "digit-2",
                "estimated-wait",
                "digit-3",
                "minutes"
            ],
            5
        )]
    );
    assert_eq!(
        h.call.poll_timeout(),
        None,
        "nothing during the announcement"
    );
    assert_eq!(h.done(), vec![music("support-music", 6)]);
    assert_eq!(h.due_in(), Some(secs(60)), "next announcement rescheduled");
    assert_eq!(h.fire(), vec![Output::QueryPosition]);
}

#[test]
fn estimated_wait_is_rounded_up_to_whole_minutes() {
    let (mut h, _) = menu_key('3');
    h.fire();
    assert_eq!(
        h.send(Input::Position(Some((12, secs(61))))),
        vec![play(
            &[
                "you-are-caller",
                "digit-1",
                "digit-2",
                "estimated-wait",
                "digit-2",
                "minutes"
            ],
            5
        )]
    );
    h.done();
    h.fire();
    let outs = h.send(Input::Position(Some((1, Duration::ZERO))));
    assert_eq!(
        outs,
        vec![play(
            &[
                "you-are-caller",
                "digit-1",
                "estimated-wait",
                "digit-1",
                "minutes"
            ],
            7
        )]
    );
}

#[test]
fn unknown_position_says_nothing_and_reschedules() {
    let (mut h, _) = menu_key('3');
    h.fire();
    assert_eq!(h.send(Input::Position(None)), vec![]);
    assert_eq!(h.due_in(), Some(secs(60)));
}

#[test]
fn no_announcement_during_an_interlude() {
    // The sales entry prompt is still playing when the announcement is due.
    let (mut h, _) = menu_key('1');
    h.advance(70);
    assert_eq!(h.call.poll_timeout(), None);
    h.call.handle_timeout(h.now);
    assert_eq!(h.drain(), vec![]);
    assert_eq!(h.done(), vec![music("sales-music", 5)]);
    assert_eq!(
        h.due_in(),
        Some(Duration::ZERO),
        "overdue once the prompt ended"
    );
    assert_eq!(h.fire(), vec![Output::QueryPosition]);

    // A prompt starting while the position is looked up wins.
    assert_eq!(
        h.send(Input::PendingCallback(Some("cb-7".into()))),
        vec![play(&["callback-pending"], 6)]
    );
    assert_eq!(h.send(Input::Position(Some((2, secs(180))))), vec![]);
    assert_eq!(h.done(), vec![music("sales-music", 7)]);
    // The question (20 s) comes before the rescheduled announcement (60 s).
    assert_eq!(h.due_in(), Some(QUESTION_TIMEOUT));
}

#[test]
fn offer_rings_the_agent_and_an_answer_goes_to_the_acd() {
    let (mut h, _) = menu_key('3');
    assert_eq!(
        h.offer("alice"),
        vec![Output::RingAgent {
            agent: "alice".into()
        }]
    );
    assert_eq!(
        h.leg("alice", LegEvent::Answered),
        vec![Output::Acd(ringback_acd::Input::OfferAnswered {
            call: me(),
            agent: AgentId::from("alice"),
        })]
    );
}

#[test]
fn connected_bridges_and_reports_the_wait() {
    let (mut h, _) = menu_key('3');
    h.advance(42);
    h.offer("alice");
    h.leg("alice", LegEvent::Answered);
    assert_eq!(
        h.connect("alice"),
        vec![
            Output::Bridge {
                agent: "alice".into()
            },
            Output::Live(LiveUpdate::Answered { waited_secs: 42 }),
        ]
    );
    assert_eq!(h.call.bridged_agent(), Some("alice"));
    assert_eq!(h.call.poll_timeout(), None, "no announcements once bridged");
    assert_eq!(h.keys("1"), vec![], "keys mean nothing while bridged");
}

#[test]
fn agent_leg_failures_are_reported_to_the_acd() {
    let cases = [
        (LegEvent::Failed(486), OfferFailure::Busy),
        (LegEvent::Failed(600), OfferFailure::Busy),
        (LegEvent::Failed(603), OfferFailure::Rejected),
        (LegEvent::Failed(480), OfferFailure::NoAnswer),
        (LegEvent::Failed(500), OfferFailure::Error),
        (LegEvent::TimedOut, OfferFailure::NoAnswer),
        (LegEvent::DialFailed, OfferFailure::Error),
        (LegEvent::HungUp, OfferFailure::Rejected),
    ];
    for (event, reason) in cases {
        let (mut h, _) = menu_key('3');
        h.offer("alice");
        assert_eq!(
            h.leg("alice", event),
            vec![acd_failed("alice", reason)],
            "{event:?}"
        );
        assert_eq!(h.leg("alice", event), vec![], "{event:?}: the leg is gone");
        assert_eq!(h.connect("alice"), vec![], "{event:?}: no leg to bridge");
        assert_eq!(h.call.bridged_agent(), None);
    }
}

#[test]
fn offer_failure_codes() {
    assert_eq!(offer_failure(486), OfferFailure::Busy);
    assert_eq!(offer_failure(600), OfferFailure::Busy);
    assert_eq!(offer_failure(603), OfferFailure::Rejected);
    assert_eq!(offer_failure(408), OfferFailure::NoAnswer);
    assert_eq!(offer_failure(480), OfferFailure::NoAnswer);
    assert_eq!(offer_failure(487), OfferFailure::NoAnswer);
    assert_eq!(offer_failure(404), OfferFailure::Error);
    assert_eq!(offer_failure(503), OfferFailure::Error);
}

#[test]
fn cancelled_offer_drops_the_leg_and_its_later_events_are_ignored() {
    let (mut h, _) = menu_key('3');
    h.offer("alice");
    assert_eq!(
        h.send(Input::CancelOffer {
            agent: "alice".into()
        }),
        vec![drop_leg("alice")]
    );
    assert_eq!(h.leg("alice", LegEvent::Failed(487)), vec![]);
    assert_eq!(h.leg("alice", LegEvent::Answered), vec![]);
    assert_eq!(h.connect("alice"), vec![]);
    assert_eq!(
        h.send(Input::CancelOffer {
            agent: "alice".into()
        }),
        vec![],
        "dropped once"
    );
    assert_eq!(h.leg("bob", LegEvent::HungUp), vec![], "never rung");
}

#[test]
fn offer_outside_a_queue_is_declined() {
    let mut h = at_menu();
    assert_eq!(
        h.offer("alice"),
        vec![acd_failed("alice", OfferFailure::Error)]
    );
}

#[test]
fn ring_all_drops_the_agent_answering_after_the_bridge() {
    let (mut h, _) = menu_key('3');
    h.offer("alice");
    h.offer("bob");
    h.connect("alice");
    assert_eq!(
        h.leg("bob", LegEvent::RtpTimeout),
        vec![],
        "not the bridged leg"
    );
    assert_eq!(h.leg("bob", LegEvent::Answered), vec![drop_leg("bob")]);
    assert_eq!(h.leg("bob", LegEvent::HungUp), vec![], "already dropped");
    assert_eq!(h.call.bridged_agent(), Some("alice"));
}

#[test]
fn a_vip_caller_is_lifted_in_every_queue_they_enter() {
    // The directory's priority (3) adds to the node's (billing: 5), and
    // goes with the caller through overflow (support: 0).
    let (mut h, _) = Harness::start(Setup {
        known: KnownCaller {
            priority: 3,
            ..KnownCaller::default()
        },
        ..setup()
    });
    h.done();
    let first = h.now;
    let outs = h.keys("2");
    let enqueued: Vec<i32> = outs
        .iter()
        .filter_map(|o| match o {
            Output::Enqueue(w) => Some(w.priority),
            _ => None,
        })
        .collect();
    assert_eq!(enqueued, [8]);
    h.advance(100);
    let outs = h.send(Input::LeaveQueue {
        overflow: Some("support".into()),
        why: "max_wait",
    });
    let expected = waiting("support", first.mono).with_priority(3);
    assert_eq!(outs[1], Output::Enqueue(expected), "{outs:?}");
}

#[test]
fn a_vip_callers_callback_node_request_waits_lifted() {
    let (mut h, _) = Harness::start(Setup {
        known: KnownCaller {
            priority: 2,
            ..KnownCaller::default()
        },
        ..setup()
    });
    h.done();
    let outs = h.keys("4");
    let enqueued: Vec<(String, i32)> = outs
        .iter()
        .filter_map(|o| match o {
            Output::Enqueue(w) => Some((w.queue.to_string(), w.priority)),
            _ => None,
        })
        .collect();
    assert_eq!(enqueued, [("billing".to_string(), 2)], "{outs:?}");
}

#[test]
fn overflow_to_a_known_queue_keeps_the_place_in_line() {
    let (mut h, _) = menu_key('2');
    let first = h.now;
    h.advance(100);
    let outs = h.send(Input::LeaveQueue {
        overflow: Some("support".into()),
        why: "max_wait",
    });
    assert_eq!(
        outs,
        vec![
            Output::StopPlayback,
            Output::Enqueue(waiting("support", first.mono)),
            music("support-music", 5),
            Output::CheckPendingCallback {
                queue: "support".into()
            },
        ],
        "same place in line, no second `Queued`"
    );
    assert_eq!(h.call.queue(), Some("support"));
    assert_eq!(h.call.entered_queue_at(), Some(first.wall));
    assert_eq!(h.call.waited(h.now), secs(100));
}

#[test]
fn overflow_prompt_plays_then_the_plan_continues_at_on_timeout() {
    let (mut h, _) = menu_key('1');
    h.done();
    let outs = h.send(Input::LeaveQueue {
        overflow: None,
        why: "max_wait",
    });
    assert_eq!(outs, vec![Output::StopPlayback, play(&["sales-full"], 6)]);
    assert_eq!(
        h.offer("alice"),
        vec![acd_failed("alice", OfferFailure::Error)]
    );
    assert_eq!(h.done(), vec![play(&["sorry"], 7)]);
    assert_eq!(h.call.path(), "welcome > main > sales > sorry");
    assert_eq!(h.done(), vec![by_ringback(Disposition::Completed)]);
}

#[test]
fn leaving_without_a_prompt_continues_the_plan_at_once() {
    // `support` has no overflow prompt and its node no `on_timeout`: the
    // plan zero-outs, and the caller keeps the first place in line.
    let (mut h, _) = menu_key('3');
    let first = h.now.mono;
    h.advance(30);
    let outs = h.send(Input::LeaveQueue {
        overflow: None,
        why: "no_agents",
    });
    assert_eq!(
        outs,
        vec![
            Output::StopPlayback,
            Output::Enqueue(waiting("operator", first)),
            music("hold-music", 5),
            Output::CheckPendingCallback {
                queue: "operator".into()
            },
        ]
    );
}

#[test]
fn overflow_to_an_unknown_queue_is_like_none() {
    let (mut h, _) = menu_key('2');
    let outs = h.send(Input::LeaveQueue {
        overflow: Some("nope".into()),
        why: "full",
    });
    assert_eq!(outs, vec![Output::StopPlayback, play(&["sorry"], 5)]);
}

#[test]
fn the_operator_queue_letting_go_hangs_up() {
    let (mut h, _) = menu_key('0');
    let outs = h.send(Input::LeaveQueue {
        overflow: None,
        why: "max_wait",
    });
    assert_eq!(
        outs,
        vec![Output::StopPlayback, by_ringback(Disposition::Completed)]
    );
}

// ------------------------------------------------------ callback questions

#[test]
fn callback_is_offered_after_the_node_delay_when_there_is_room() {
    let (mut h, outs) = menu_key('2');
    let mut expected = waiting("billing", h.now.mono);
    expected.priority = 5;
    assert_eq!(
        outs,
        vec![
            Output::StopPlayback,
            Output::Live(LiveUpdate::Queued),
            Output::Enqueue(expected),
            music("billing-music", 4),
            Output::CheckPendingCallback {
                queue: "billing".into()
            },
        ]
    );
    assert_eq!(h.send(Input::PendingCallback(None)), vec![]);
    assert_eq!(h.due_in(), Some(secs(30)));
    assert_eq!(
        h.fire(),
        vec![Output::CheckCallbackCapacity {
            queue: "billing".into()
        }]
    );
    assert_eq!(
        h.due_in(),
        Some(MIN_REOFFER),
        "offered again a minute later"
    );
    assert_eq!(
        h.send(Input::CallbackCapacity { pending: 1, max: 5 }),
        vec![play(&["callback-offer"], 5)]
    );
    assert_eq!(h.call.poll_timeout(), None, "the offer is an interlude");
    assert_eq!(h.done(), vec![music("billing-music", 6)]);
    assert_eq!(h.due_in(), Some(MIN_REOFFER));
}

#[test]
fn full_callback_capacity_means_no_offer_and_a_retry_a_minute_later() {
    let mut h = in_billing();
    h.fire();
    assert_eq!(
        h.send(Input::CallbackCapacity { pending: 5, max: 5 }),
        vec![]
    );
    assert_eq!(h.due_in(), Some(MIN_REOFFER));
    h.advance(59);
    h.call.handle_timeout(h.now);
    assert_eq!(h.drain(), vec![], "no sooner than 60 s");
    assert_eq!(
        h.fire(),
        vec![Output::CheckCallbackCapacity {
            queue: "billing".into()
        }]
    );
}

#[test]
fn capacity_answer_during_an_interlude_does_not_offer() {
    let mut h = in_billing();
    h.advance(30);
    h.fire();
    // The caller pressed the key meanwhile: that question plays.
    assert_eq!(h.keys("1"), vec![play(&["callback-number"], 5)]);
    assert_eq!(
        h.send(Input::CallbackCapacity { pending: 0, max: 5 }),
        vec![]
    );
}

#[test]
fn the_offer_key_asks_for_a_number_and_1_means_this_one() {
    let mut h = in_billing();
    let entered = h.now.wall;
    h.advance(1);
    assert_eq!(h.keys("1"), vec![play(&["callback-number"], 5)]);
    assert_eq!(h.due_in(), Some(QUESTION_TIMEOUT));
    assert_eq!(h.keys("1"), vec![request(CALLER, entered)]);
}

#[test]
fn a_typed_number_ends_with_hash() {
    let mut h = in_billing();
    let entered = h.now.wall;
    h.advance(5);
    h.keys("1");
    assert_eq!(h.keys("5551234#"), vec![request("5551234", entered)]);
}

#[test]
fn fewer_than_three_digits_and_hash_are_ignored() {
    let mut h = in_billing();
    let entered = h.now.wall;
    h.keys("1");
    assert_eq!(h.keys("55#"), vec![]);
    assert_eq!(h.keys("*"), vec![], "not a digit");
    assert_eq!(h.keys("5#"), vec![request("555", entered)]);
}

#[test]
fn a_typed_number_is_capped_at_sixteen_digits() {
    let mut h = in_billing();
    let entered = h.now.wall;
    h.keys("1");
    assert_eq!(
        h.keys("23456789012345678901#"),
        vec![request("2345678901234567", entered)]
    );
    assert_eq!(MAX_CALLBACK_DIGITS, 16);
}

#[test]
fn question_timeout_with_three_digits_requests_them() {
    let mut h = in_billing();
    let entered = h.now.wall;
    h.advance(1);
    h.keys("1");
    h.done(); // the question ends, the music resumes; the question stays open
    assert_eq!(h.keys("555"), vec![]);
    assert_eq!(h.due_in(), Some(QUESTION_TIMEOUT));
    assert_eq!(h.fire(), vec![request("555", entered)]);
    assert_eq!(h.due_in(), Some(secs(9)), "then the offer timer as before");
}

#[test]
fn question_timeout_with_fewer_digits_does_nothing() {
    let mut h = in_billing();
    h.advance(1);
    h.keys("1");
    h.done();
    h.keys("55");
    assert_eq!(h.fire(), vec![]);
    assert_eq!(h.due_in(), Some(secs(9)));
    assert_eq!(h.keys("#"), vec![], "the question is over");
}

#[test]
fn stored_callback_is_confirmed_then_the_call_ends() {
    let mut h = in_billing();
    h.offer("alice");
    h.keys("11");
    let outs = h.send(Input::CallbackStored { ahead: 2 });
    assert_eq!(
        outs,
        vec![
            abandon(),
            drop_leg("alice"),
            play(&["callback-confirm", "you-are-caller", "digit-3"], 6),
        ]
    );
    assert_eq!(h.call.poll_timeout(), None);
    assert_eq!(h.keys("1"), vec![]);
    assert_eq!(
        h.leg("alice", LegEvent::Answered),
        vec![],
        "leg already dropped"
    );
    assert_eq!(h.send(Input::PlaybackDone { token: 5 }), vec![], "stale");
    assert_eq!(h.done(), vec![by_ringback(Disposition::Callback)]);
    assert!(h.call.is_ended());
}

#[test]
fn caller_hanging_up_during_the_confirmation_is_still_a_callback() {
    // README: disposition `callback` = "left the queue with a confirmed
    // callback". The request is stored before the confirmation plays, so a
    // caller who hangs up during it has one.
    let mut h = in_billing();
    h.keys("11");
    h.send(Input::CallbackStored { ahead: 0 });
    assert_eq!(
        h.send(Input::CallerHungUp),
        vec![ended(Disposition::Callback, HangupBy::Caller, false)]
    );
}

#[test]
fn refused_callback_is_announced_and_the_caller_keeps_waiting() {
    let mut h = in_billing();
    h.keys("11");
    h.done();
    assert_eq!(
        h.send(Input::CallbackRefused),
        vec![play(&["callback-unavailable"], 7)]
    );
    assert_eq!(h.done(), vec![music("billing-music", 8)]);
    assert!(!h.call.is_ended());
}

#[test]
fn pending_callback_kept_with_1() {
    let (mut h, _) = menu_key('2');
    assert_eq!(
        h.send(Input::PendingCallback(Some("cb-7".into()))),
        vec![play(&["callback-pending"], 5)]
    );
    assert_eq!(h.due_in(), Some(QUESTION_TIMEOUT));
    assert_eq!(h.keys("5"), vec![], "neither 1 nor 2: asked on");
    assert_eq!(h.keys("1"), vec![abandon(), play(&["callback-confirm"], 6)]);
    assert_eq!(h.done(), vec![by_ringback(Disposition::Callback)]);
}

#[test]
fn pending_callback_cancelled_with_2() {
    let (mut h, _) = menu_key('2');
    h.send(Input::PendingCallback(Some("cb-7".into())));
    assert_eq!(
        h.keys("2"),
        vec![Output::CancelCallback { id: "cb-7".into() }]
    );
    assert_eq!(
        h.send(Input::CallbackCancelled { ok: true }),
        vec![play(&["callback-cancelled"], 6)]
    );
    assert_eq!(h.done(), vec![music("billing-music", 7)]);
    assert!(!h.call.is_ended());
}

#[test]
fn pending_question_times_out_and_the_caller_keeps_waiting() {
    let (mut h, _) = menu_key('2');
    h.send(Input::PendingCallback(Some("cb-7".into())));
    h.done();
    assert_eq!(h.due_in(), Some(QUESTION_TIMEOUT));
    assert_eq!(h.fire(), vec![]);
    assert_eq!(h.keys("2"), vec![], "no longer a question");
    assert_eq!(h.due_in(), Some(secs(10)), "the offer timer remains");
}

#[test]
fn callback_node_requests_at_once_while_holding_a_place() {
    let (mut h, outs) = menu_key('4');
    assert_eq!(
        outs,
        vec![
            Output::StopPlayback,
            Output::Live(LiveUpdate::Queued),
            Output::Enqueue(waiting("billing", h.now.mono)),
            music("billing-music", 4),
            request(CALLER, h.now.wall),
        ],
        "no pending-callback check, no confirmation before it is stored"
    );
    assert_eq!(
        h.send(Input::CallbackStored { ahead: 0 }),
        vec![
            abandon(),
            play(&["callback-confirm", "you-are-caller", "digit-1"], 5)
        ]
    );
    assert_eq!(h.done(), vec![by_ringback(Disposition::Callback)]);
}

#[test]
fn callback_node_refused_then_released_is_not_left_in_silence() {
    let (mut h, _) = menu_key('4');
    assert_eq!(
        h.send(Input::CallbackRefused),
        vec![play(&["callback-unavailable"], 5)]
    );
    h.done();
    let outs = h.send(Input::LeaveQueue {
        overflow: None,
        why: "max_wait",
    });
    let goes_on = outs.iter().any(|o| {
        matches!(
            o,
            Output::Play { .. } | Output::Enqueue(_) | Output::Ended(_)
        )
    });
    assert!(
        goes_on || h.call.poll_timeout().is_some(),
        "caller left in silence with nothing scheduled: {outs:?}"
    );
}

#[test]
fn long_estimated_wait_offers_a_callback_at_once() {
    let mut qs = queues();
    qs.get_mut("support").unwrap().callback_offer_ewt_above = Some(secs(300));
    let (mut h, _) = Harness::start(setup_with(PLAN, qs));
    h.done();
    h.keys("3");
    assert_eq!(
        h.send(Input::PendingCallback(None)),
        vec![Output::QueryQueueState]
    );
    assert_eq!(
        h.send(Input::QueueState {
            ewt: Some(secs(240)),
            free_agents: 0
        }),
        vec![]
    );
    assert_eq!(h.due_in(), Some(secs(60)), "only the announcement");
    h.send(Input::QueueState {
        ewt: Some(secs(600)),
        free_agents: 3,
    });
    assert_eq!(h.due_in(), Some(Duration::ZERO));
    assert_eq!(
        h.fire(),
        vec![Output::CheckCallbackCapacity {
            queue: "support".into()
        }]
    );
    assert_eq!(h.due_in(), Some(secs(60)));
    assert_eq!(
        h.send(Input::CallbackCapacity { pending: 0, max: 9 }),
        vec![play(&["callback-offer"], 5)]
    );
    assert_eq!(
        h.keys("1"),
        vec![play(&["callback-number"], 6)],
        "key 1 by default"
    );
}

#[test]
fn zero_out_with_nobody_free_offers_a_callback_at_once() {
    let mut qs = queues();
    qs.get_mut("operator").unwrap().callback_offer_on_zero_out = true;
    let (mut h, _) = Harness::start(setup_with(PLAN, qs));
    h.done();
    h.keys("0");
    assert_eq!(
        h.send(Input::PendingCallback(None)),
        vec![Output::QueryQueueState]
    );
    h.send(Input::QueueState {
        ewt: None,
        free_agents: 1,
    });
    assert_eq!(h.call.poll_timeout(), None, "somebody is free");
    h.send(Input::QueueState {
        ewt: None,
        free_agents: 0,
    });
    assert_eq!(
        h.fire(),
        vec![Output::CheckCallbackCapacity {
            queue: "operator".into()
        }]
    );
}

#[test]
fn a_queue_without_callback_settings_ignores_keys() {
    let (mut h, _) = menu_key('3');
    assert_eq!(h.send(Input::PendingCallback(None)), vec![]);
    assert_eq!(h.keys("1#0"), vec![]);
    assert_eq!(h.due_in(), Some(secs(60)), "only announcements");
}

// -------------------------------------------------------------- bridged

/// Bridged to alice in `support`, connected at `h.now`.
fn bridged() -> Harness {
    let (mut h, _) = menu_key('3');
    h.advance(10);
    h.offer("alice");
    h.leg("alice", LegEvent::Answered);
    h.connect("alice");
    h
}

#[test]
fn caller_bye_while_bridged() {
    let mut h = bridged();
    h.advance(95);
    assert_eq!(
        h.send(Input::CallerHungUp),
        vec![
            Output::Live(LiveUpdate::Handled { talk_secs: 95 }),
            acd_ended("alice", EndedBy::Caller),
            drop_leg("alice"),
            ended(Disposition::Completed, HangupBy::Caller, false),
        ]
    );
}

#[test]
fn agent_bye_while_bridged() {
    let mut h = bridged();
    h.advance(30);
    assert_eq!(
        h.leg("alice", LegEvent::HungUp),
        vec![
            acd_ended("alice", EndedBy::Agent),
            Output::Live(LiveUpdate::Handled { talk_secs: 30 }),
            ended(Disposition::Completed, HangupBy::Agent, true),
        ]
    );
}

#[test]
fn agent_rtp_timeout_while_bridged() {
    let mut h = bridged();
    h.advance(7);
    assert_eq!(
        h.leg("alice", LegEvent::RtpTimeout),
        vec![
            drop_leg("alice"),
            acd_ended("alice", EndedBy::Agent),
            Output::Live(LiveUpdate::Handled { talk_secs: 7 }),
            ended(Disposition::RtpTimeout, HangupBy::Agent, true),
        ]
    );
}

#[test]
fn caller_rtp_timeout_while_bridged() {
    let mut h = bridged();
    h.advance(3);
    assert_eq!(
        h.send(Input::RtpTimeout),
        vec![
            Output::Live(LiveUpdate::Handled { talk_secs: 3 }),
            acd_ended("alice", EndedBy::Caller),
            drop_leg("alice"),
            by_ringback(Disposition::RtpTimeout),
        ]
    );
}

#[test]
fn caller_bye_while_queued_abandons_and_drops_ringing_legs() {
    let (mut h, _) = menu_key('3');
    h.offer("alice");
    h.offer("bob");
    assert_eq!(
        h.send(Input::CallerHungUp),
        vec![
            Output::Live(LiveUpdate::Abandoned),
            abandon(),
            drop_leg("alice"),
            drop_leg("bob"),
            ended(Disposition::Abandoned, HangupBy::Caller, false),
        ]
    );
}

#[test]
fn caller_bye_in_the_ivr_completes() {
    let mut h = at_menu();
    assert_eq!(
        h.send(Input::CallerHungUp),
        vec![ended(Disposition::Completed, HangupBy::Caller, false)]
    );
}

// ------------------------------------------------------------- transfer

#[test]
fn external_transfer_refers_and_ends_when_the_target_answers() {
    let (mut h, outs) = menu_key('5');
    assert_eq!(
        outs,
        vec![
            Output::StopPlayback,
            Output::Refer {
                target: "sip:partner@example.com".into()
            },
        ]
    );
    assert_eq!(h.due_in(), Some(REFER_TIMEOUT));
    h.advance(10);
    assert_eq!(h.send(Input::ReferAnswered { code: 202 }), vec![]);
    assert_eq!(
        h.due_in(),
        Some(REFER_TIMEOUT),
        "accepted: the deadline restarts"
    );
    assert_eq!(h.send(Input::TransferProgress { code: 100 }), vec![]);
    assert_eq!(h.keys("1"), vec![]);
    assert_eq!(
        h.send(Input::TransferProgress { code: 200 }),
        vec![by_ringback(Disposition::Transferred)]
    );
    assert_eq!(h.call.poll_timeout(), None);
}

#[test]
fn transfer_failures_before_the_end_continue_the_plan() {
    let cases: [&[Input]; 4] = [
        &[Input::TransferProgress { code: 486 }],
        &[Input::ReferAnswered { code: 403 }],
        &[Input::ReferTimedOut],
        &[
            Input::ReferAnswered { code: 202 },
            Input::TransferProgress { code: 503 },
        ],
    ];
    for inputs in cases {
        let (mut h, _) = menu_key('5');
        let mut outs = Vec::new();
        for i in inputs {
            outs.extend(h.send(i.clone()));
        }
        assert_eq!(outs, vec![play(&["transfer-failed"], 4)], "{inputs:?}");
        assert_eq!(h.call.poll_timeout(), None, "{inputs:?}: no REFER deadline");
        assert_eq!(h.done(), vec![by_ringback(Disposition::Completed)]);
    }
}

#[test]
fn refer_timeout_after_acceptance_is_ignored_and_the_deadline_ends_it() {
    let (mut h, _) = menu_key('5');
    h.advance(10);
    h.send(Input::ReferAnswered { code: 202 });
    assert_eq!(h.send(Input::ReferTimedOut), vec![]);
    assert_eq!(h.tick(22), vec![], "the first deadline no longer counts");
    assert_eq!(h.due_in(), Some(secs(10)));
    assert_eq!(h.fire(), vec![by_ringback(Disposition::Transferred)]);
}

#[test]
fn unanswered_refer_ends_as_transferred_at_the_deadline() {
    let (mut h, _) = menu_key('5');
    assert_eq!(h.tick(31), vec![]);
    assert_eq!(h.tick(1), vec![by_ringback(Disposition::Transferred)]);
    assert!(h.call.is_ended());
}

#[test]
fn internal_transfer_runs_the_second_plan() {
    let (mut h, outs) = menu_key('6');
    assert_eq!(outs, vec![Output::StopPlayback, play(&["second-menu"], 4)]);
    assert_eq!(h.call.path(), "welcome > main > tag > ext >> hello");
    assert_eq!(h.call.digits(), "6");
    h.done();
    assert_eq!(h.due_in(), Some(secs(5)), "the second plan's menu timer");
    assert_eq!(h.keys("1"), vec![play(&["goodbye"], 5)]);
    assert_eq!(h.call.path(), "welcome > main > tag > ext >> hello > done");
    assert_eq!(h.call.digits(), "61");
    assert_eq!(h.done(), vec![by_ringback(Disposition::Completed)]);
}

#[test]
fn variables_set_before_an_internal_transfer_travel_with_the_call() {
    // `set` nodes: "the variables travel with the call (agent headers,
    // CDR)"; path and digits of the first plan are kept, so must its vars.
    let (h, _) = menu_key('6');
    assert_eq!(h.call.path(), "welcome > main > tag > ext >> hello");
    assert_eq!(h.call.vars().get("tier").map(String::as_str), Some("gold"));
}

#[test]
fn transfer_to_an_unknown_extension_zero_outs() {
    let (h, outs) = menu_key('7');
    assert_eq!(
        outs,
        vec![
            Output::StopPlayback,
            Output::Live(LiveUpdate::Queued),
            Output::Enqueue(waiting("operator", h.now.mono)),
            music("hold-music", 4),
            Output::CheckPendingCallback {
                queue: "operator".into()
            },
        ]
    );
}

// ------------------------------------------------------ session refresh

#[test]
fn session_refresh_at_every_interval() {
    let mut s = setup();
    s.refresh_every = Some(secs(600));
    let (mut h, _) = Harness::start(s);
    assert_eq!(h.due_in(), Some(secs(600)));
    let refresh = Output::RefreshSession { every: secs(600) };
    assert_eq!(h.fire(), vec![refresh.clone()]);
    assert_eq!(h.due_in(), Some(secs(600)));
    assert_eq!(h.fire(), vec![refresh.clone()]);

    // The interpreter timer comes first when sooner; refreshes go on in
    // the queue (the operator queue has no timers of its own).
    h.done();
    h.done();
    assert_eq!(h.due_in(), Some(secs(5)));
    h.advance(100);
    h.keys("0");
    assert_eq!(h.due_in(), Some(secs(500)));
    assert_eq!(h.fire(), vec![refresh.clone()]);
    h.offer("alice");
    h.connect("alice");
    assert_eq!(h.due_in(), Some(secs(600)), "and while bridged");
    assert_eq!(h.fire(), vec![refresh]);
    h.send(Input::Shutdown);
    assert_eq!(h.call.poll_timeout(), None);
}

// --------------------------------------------------------------- ending

#[test]
fn nothing_happens_after_the_end() {
    let (mut h, _) = menu_key('3');
    h.offer("alice");
    h.send(Input::CallerHungUp);
    assert!(h.call.is_ended());
    assert_eq!(h.call.poll_timeout(), None);
    let inputs = [
        Input::Digit('1'),
        Input::PlaybackDone { token: h.last_play },
        Input::RtpTimeout,
        Input::CallerHungUp,
        Input::AckTimeout,
        Input::Shutdown,
        Input::ReferAnswered { code: 202 },
        Input::TransferProgress { code: 200 },
        Input::Offer {
            agent: "bob".into(),
        },
        Input::Connected {
            agent: "alice".into(),
        },
        Input::Leg {
            agent: "alice".into(),
            event: LegEvent::HungUp,
        },
        Input::LeaveQueue {
            overflow: Some("sales".into()),
            why: "max_wait",
        },
        Input::Position(Some((1, secs(60)))),
        Input::PendingCallback(Some("cb-1".into())),
        Input::CallbackCapacity { pending: 0, max: 3 },
        Input::CallbackStored { ahead: 0 },
        Input::CallbackRefused,
    ];
    for i in inputs {
        assert_eq!(h.send(i.clone()), vec![], "{i:?}");
    }
    assert_eq!(h.tick(3600), vec![]);
    assert_eq!(h.call.poll_timeout(), None);
}

#[test]
fn ack_timeout_ends_the_call_as_failed() {
    let (mut h, _) = Harness::start(setup());
    assert_eq!(
        h.send(Input::AckTimeout),
        vec![by_ringback(Disposition::Failed)]
    );
    assert!(h.call.is_ended());
    assert_eq!(h.call.poll_timeout(), None);
}

#[test]
fn shutdown_while_queued_settles_the_acd() {
    let (mut h, _) = menu_key('3');
    h.offer("alice");
    assert_eq!(
        h.send(Input::Shutdown),
        vec![
            Output::Live(LiveUpdate::Abandoned),
            abandon(),
            drop_leg("alice"),
            by_ringback(Disposition::Shutdown),
        ]
    );
    assert_eq!(h.call.poll_timeout(), None);
}

#[test]
fn a_web_caller_has_no_number_so_1_starts_the_typed_one() {
    let mut setup = setup();
    setup.caller = "web:5a1b2c3d".into();
    let (mut h, _) = Harness::start(setup);
    h.done();
    h.keys("2");
    assert_eq!(h.send(Input::PendingCallback(None)), vec![]);
    let entered = h.now.wall;
    assert_eq!(h.keys("1"), vec![play(&["callback-number"], 5)]);
    assert_eq!(h.keys("1"), vec![], "not `web:…`: the first digit");
    assert_eq!(h.keys("5551234#"), vec![request("15551234", entered)]);
    assert!(is_web_caller("web:x") && !is_web_caller("+15550123"));
}

// ------------------------------------------------------ after-hours callback

/// Closed around the clock except 09:00-17:00 on weekdays (UTC), with a
/// "press 1 and we call you back when we open" offer on the closed path.
const AFTER_HOURS: &str = r#"
[dialplan]
name = "after-hours"
numbers = ["1000"]
start = "hours"
operator = "operator"

[nodes.hours]
type = "hours"
open = [ { days = "mon-fri", from = "09:00", to = "17:00" } ]
open_next = "live"
closed_next = "closed"

[nodes.live]
type = "queue"
queue = "billing"

[nodes.closed]
type = "menu"
prompt = "closed-offer"
options = { "1" = "later" }

[nodes.later]
type = "callback"
queue = "billing"
when_open = "hours"
"#;

/// A harness whose clock reads `wall`.
fn start_at(text: &str, wall: DateTime<Utc>) -> (Harness, Vec<Output>) {
    let now = Now::new(Now::system().mono, wall);
    let mut h = Harness {
        call: InboundCall::new(setup_with(text, queues()), now),
        now,
        last_play: 0,
    };
    let outs = h.drain();
    (h, outs)
}

fn utc(d: u32, h: u32, m: u32) -> DateTime<Utc> {
    use chrono::TimeZone;
    Utc.with_ymd_and_hms(2026, 11, d, h, m, 0)
        .single()
        .expect("valid time")
}

#[test]
fn after_hours_callback_waits_for_the_opening_and_says_so() {
    // Friday 2026-11-27 18:30: closed until Monday 09:00.
    let (mut h, outs) = start_at(AFTER_HOURS, utc(27, 18, 30));
    assert_eq!(outs, vec![play(&["closed-offer"], 1)]);
    let outs = h.keys("1");
    assert!(outs.contains(&request(CALLER, h.now.wall)), "{outs:?}");
    assert_eq!(h.call.callback_not_before(), Some(utc(30, 9, 0)));
    assert_eq!(
        h.send(Input::CallbackStored { ahead: 1 }),
        vec![
            abandon(),
            play(&["callback-when-open", "you-are-caller", "digit-2"], 4)
        ]
    );
    assert_eq!(h.done(), vec![by_ringback(Disposition::Callback)]);
}

#[test]
fn an_after_hours_callback_node_may_confirm_in_its_own_words() {
    let plan = AFTER_HOURS.replace(
        "when_open = \"hours\"",
        "when_open = \"hours\"\nconfirm_prompt = \"our-words\"",
    );
    let (mut h, _) = start_at(&plan, utc(27, 18, 30));
    h.keys("1");
    assert_eq!(
        h.send(Input::CallbackStored { ahead: 0 }),
        vec![
            abandon(),
            play(&["our-words", "you-are-caller", "digit-1"], 4)
        ]
    );
}

#[test]
fn during_opening_hours_the_call_goes_to_the_queue() {
    // Monday 2026-11-30 10:00: open, no callback at all.
    let (h, outs) = start_at(AFTER_HOURS, utc(30, 10, 0));
    assert!(
        outs.iter().any(|o| matches!(o, Output::Enqueue(_))),
        "{outs:?}"
    );
    assert_eq!(h.call.callback_not_before(), None);
}

#[test]
fn a_callback_node_without_when_open_is_dialed_when_an_agent_is_free() {
    let (mut h, _) = menu_key('4');
    assert_eq!(h.call.callback_not_before(), None);
    assert_eq!(
        h.send(Input::CallbackStored { ahead: 0 }),
        vec![
            abandon(),
            play(&["callback-confirm", "you-are-caller", "digit-1"], 5)
        ]
    );
}

// ------------------------------------------------------------ the survey

fn survey_queues() -> BTreeMap<String, QueueSettings> {
    let mut qs = queues();
    qs.get_mut("support").expect("support").survey =
        Some(Survey::new(vec!["how-did-we-do".into()], "1-5").expect("a valid survey"));
    qs
}

/// Talking to alice in `support` (which has a survey) for 30 s.
fn surveyed() -> Harness {
    let (mut h, _) = Harness::start(setup_with(PLAN, survey_queues()));
    h.done();
    h.keys("3");
    h.advance(10);
    h.offer("alice");
    h.leg("alice", LegEvent::Answered);
    h.connect("alice");
    h.advance(30);
    h
}

fn no_answer() -> Option<SurveyResult> {
    Some(SurveyResult {
        queue: "support".into(),
        agent: "alice".into(),
        score: None,
        lowest: 1,
        highest: 5,
    })
}

fn answered(score: u8) -> Option<SurveyResult> {
    no_answer().map(|r| SurveyResult {
        score: Some(score),
        ..r
    })
}

#[test]
fn survey_keys_parse_and_name_what_is_wrong() {
    let s = Survey::new(vec!["q".into()], " 1 - 5 ").expect("valid");
    assert_eq!((s.lowest, s.highest), (1, 5));
    assert_eq!(s.score('4'), Some(4));
    assert_eq!(s.score('0'), None);
    assert_eq!(s.score('6'), None);
    assert_eq!(s.score('#'), None);
    for (keys, why) in [
        ("5", "expected a range"),
        ("1-10", "expected a range"),
        ("a-5", "expected a range"),
        ("5-1", "lower than the last"),
        ("3-3", "lower than the last"),
    ] {
        let err = Survey::new(vec!["q".into()], keys).expect_err(keys);
        assert!(err.contains(why), "{keys}: {err}");
    }
    assert!(Survey::new(Vec::new(), "1-5").is_err());
}

#[test]
fn agent_bye_asks_the_survey_and_a_key_is_the_score() {
    let mut h = surveyed();
    assert_eq!(
        h.leg("alice", LegEvent::HungUp),
        vec![
            acd_ended("alice", EndedBy::Agent),
            Output::Live(LiveUpdate::Handled { talk_secs: 30 }),
            play(&["how-did-we-do"], 5),
        ],
        "the caller stays on the line and hears the question"
    );
    assert_eq!(h.call.survey(), no_answer().as_ref());
    assert_eq!(h.call.poll_timeout(), None, "no deadline while it plays");
    h.done();
    assert_eq!(
        h.call.poll_timeout(),
        Some(h.now.mono + SURVEY_ANSWER_TIMEOUT)
    );
    assert_eq!(
        h.keys("4"),
        vec![Output::StopPlayback, play(&["thank-you"], 6)]
    );
    assert_eq!(h.call.survey(), answered(4).as_ref());
    assert_eq!(h.keys("2"), vec![], "one answer only");
    assert_eq!(
        h.done(),
        vec![ended(Disposition::Completed, HangupBy::Agent, true)]
    );
    assert_eq!(h.call.survey(), answered(4).as_ref());
}

#[test]
fn a_key_may_interrupt_the_question() {
    let mut h = surveyed();
    h.leg("alice", LegEvent::HungUp);
    assert_eq!(
        h.keys("5"),
        vec![Output::StopPlayback, play(&["thank-you"], 6)]
    );
    assert_eq!(h.call.survey(), answered(5).as_ref());
}

#[test]
fn an_invalid_key_asks_again_then_gives_up() {
    let mut h = surveyed();
    h.leg("alice", LegEvent::HungUp);
    h.done();
    assert_eq!(
        h.keys("9"),
        vec![
            Output::StopPlayback,
            play(&["invalid-option", "how-did-we-do"], 6)
        ]
    );
    h.done();
    assert_eq!(
        h.keys("*"),
        vec![Output::StopPlayback, play(&["goodbye"], 7)]
    );
    assert_eq!(h.keys("3"), vec![], "too late");
    assert_eq!(
        h.done(),
        vec![ended(Disposition::Completed, HangupBy::Agent, true)]
    );
    assert_eq!(h.call.survey(), no_answer().as_ref());
}

#[test]
fn silence_asks_again_then_ends_without_a_score() {
    let mut h = surveyed();
    h.leg("alice", LegEvent::HungUp);
    h.done();
    assert_eq!(h.tick(SURVEY_ANSWER_TIMEOUT.as_secs() - 1), vec![]);
    assert_eq!(
        h.tick(1),
        vec![Output::StopPlayback, play(&["how-did-we-do"], 6)]
    );
    h.done();
    assert_eq!(
        h.tick(SURVEY_ANSWER_TIMEOUT.as_secs()),
        vec![Output::StopPlayback, play(&["goodbye"], 7)]
    );
    assert_eq!(
        h.done(),
        vec![ended(Disposition::Completed, HangupBy::Agent, true)]
    );
    assert_eq!(h.call.survey(), no_answer().as_ref());
}

#[test]
fn a_caller_who_hangs_up_during_the_survey_is_no_answer() {
    let mut h = surveyed();
    h.leg("alice", LegEvent::HungUp);
    assert_eq!(
        h.send(Input::CallerHungUp),
        vec![ended(Disposition::Completed, HangupBy::Agent, false)],
        "no BYE to a caller who left, nothing scheduled"
    );
    assert_eq!(h.call.survey(), no_answer().as_ref());
    assert_eq!(h.call.poll_timeout(), None);
}

#[test]
fn no_survey_when_the_caller_hangs_up_or_the_queue_has_none() {
    let mut h = surveyed();
    assert_eq!(
        h.send(Input::CallerHungUp),
        vec![
            Output::Live(LiveUpdate::Handled { talk_secs: 30 }),
            acd_ended("alice", EndedBy::Caller),
            drop_leg("alice"),
            ended(Disposition::Completed, HangupBy::Caller, false),
        ]
    );
    assert_eq!(h.call.survey(), None);
    // `billing` has no survey: the agent's BYE ends the call.
    let (mut h, _) = Harness::start(setup_with(PLAN, survey_queues()));
    h.done();
    h.keys("2");
    h.send(Input::PendingCallback(None));
    h.offer("alice");
    h.leg("alice", LegEvent::Answered);
    h.connect("alice");
    let outs = h.leg("alice", LegEvent::HungUp);
    assert_eq!(
        outs.last(),
        Some(&ended(Disposition::Completed, HangupBy::Agent, true)),
        "{outs:?}"
    );
    assert_eq!(h.call.survey(), None);
}

#[test]
fn an_agent_phone_that_vanishes_ends_the_call_without_a_survey() {
    let mut h = surveyed();
    let outs = h.leg("alice", LegEvent::RtpTimeout);
    assert_eq!(
        outs.last(),
        Some(&ended(Disposition::RtpTimeout, HangupBy::Agent, true))
    );
    assert_eq!(h.call.survey(), None);
}

/// A plan in English by default, with `9` for Spanish (a `set` node).
const LANGUAGES: &str = r#"
[dialplan]
name = "languages"
numbers = ["1000"]
start = "choose"
operator = "operator"
language = "en"

[nodes.choose]
type = "menu"
prompt = "choose"
options = { "1" = "queue", "9" = "spanish" }

[nodes.spanish]
type = "set"
vars = { language = "es-MX" }
next = "queue"

[nodes.queue]
type = "queue"
queue = "support"
"#;

fn language_setup(known: KnownCaller) -> Setup {
    Setup {
        known,
        language_skills: Arc::new(BTreeMap::from([
            ("es".to_string(), ("spanish".to_string(), 3)),
            ("pt-br".to_string(), ("portuguese".to_string(), 1)),
        ])),
        ..setup_with(LANGUAGES, queues())
    }
}

fn enqueued(outs: &[Output]) -> Vec<WaitingCall> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Enqueue(w) => Some(w.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn an_unknown_caller_takes_the_plans_language_and_needs_no_skill() {
    let (mut h, _) = Harness::start(language_setup(KnownCaller::default()));
    assert_eq!(h.call.language(), Some("en"));
    let outs = h.keys("1");
    let w = enqueued(&outs);
    assert_eq!(w.len(), 1, "{outs:?}");
    assert_eq!(
        w[0].caller, CALLER,
        "unknown callers are remembered by number"
    );
    assert!(w[0].required_skills.is_empty(), "{w:?}");
    assert!(!h.call.vars().contains_key("language"));
}

#[test]
fn a_customers_language_is_a_variable_and_requires_its_skill_by_its_primary_tag() {
    let (mut h, _) = Harness::start(language_setup(KnownCaller {
        priority: 0,
        language: Some("es-AR".into()),
        key: Some("customer:42".into()),
    }));
    assert_eq!(h.call.language(), Some("es-AR"));
    assert_eq!(
        h.call.vars().get("language").map(String::as_str),
        Some("es-AR"),
        "agents see the language like any variable"
    );
    let outs = h.keys("1");
    let w = enqueued(&outs);
    assert_eq!(
        w[0].required_skills,
        [("spanish".to_string(), 3)],
        "es-AR falls back to es"
    );
    assert_eq!(w[0].caller, CALLER, "the line shows the number");
    assert_eq!(
        w[0].sticky_key(),
        "customer:42",
        "sticky routing remembers the customer, not the number"
    );
}

#[test]
fn a_set_node_changes_the_language_and_the_skill_follows() {
    let (mut h, _) = Harness::start(language_setup(KnownCaller {
        language: Some("pt-BR".into()),
        ..KnownCaller::default()
    }));
    assert_eq!(h.call.language(), Some("pt-BR"));
    let outs = h.keys("9");
    assert_eq!(h.call.language(), Some("es-MX"));
    assert_eq!(
        enqueued(&outs)[0].required_skills,
        [("spanish".to_string(), 3)]
    );
}

#[test]
fn a_language_without_a_skill_queues_like_any_caller() {
    let (mut h, _) = Harness::start(language_setup(KnownCaller {
        language: Some("de".into()),
        ..KnownCaller::default()
    }));
    let outs = h.keys("1");
    assert!(enqueued(&outs)[0].required_skills.is_empty());
}

mod hop;
