//! Unit tests of every rule in the crate docs. Each test drives the engine
//! through `handle`/`handle_timeout` (draining `poll_output`) with a
//! synthetic clock.

// Test code drives the core with the real clock as its base time (issue 12).
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use ringback_sansio::{Core, Now};

use crate::*;

/// Handles one input at `now` and drains what it queued: `Err` when the
/// engine refused it (a refusal is always the input's only output).
pub(crate) fn run(acd: &mut Acd, input: Input, now: Now) -> Result<Vec<Output>, AcdError> {
    acd.handle(input, now);
    let out = drain(acd);
    match out.as_slice() {
        [Output::Refused(e)] => Err(e.clone()),
        _ => {
            assert!(
                !out.iter().any(|o| matches!(o, Output::Refused(_))),
                "a refusal among other outputs: {out:?}"
            );
            Ok(out)
        }
    }
}

/// Everything queued, in order.
pub(crate) fn drain(acd: &mut Acd) -> Vec<Output> {
    std::iter::from_fn(|| acd.poll_output()).collect()
}

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn q(name: &str) -> QueueConfig {
    QueueConfig::new(name)
}

fn agent(id: &str, queues: &[&str]) -> AgentConfig {
    queues
        .iter()
        .fold(AgentConfig::new(id), |a, q| a.member_of(*q))
}

struct H {
    acd: Acd,
    /// The fake clock's start on both clocks; `now` only moves forward
    /// from it, and [`H::clock`] moves the wall clock along.
    base: Now,
    now: Instant,
}

impl H {
    fn new(queues: Vec<QueueConfig>, agents: Vec<AgentConfig>) -> H {
        H::seeded(queues, agents, 7)
    }

    fn seeded(queues: Vec<QueueConfig>, agents: Vec<AgentConfig>, seed: u64) -> H {
        // Far enough from "now" that earlier entry times are representable.
        let base = Now::system().plus(s(10_000));
        H {
            acd: Acd::new(queues, agents, seed).expect("config"),
            base,
            now: base.mono,
        }
    }

    /// `now` on both clocks.
    fn clock(&self) -> Now {
        self.base.plus(self.now - self.base.mono)
    }

    fn try_go(&mut self, input: Input) -> Result<Vec<Output>, AcdError> {
        let now = self.clock();
        let r = run(&mut self.acd, input, now);
        self.acd.check_invariants().expect("invariants");
        r
    }

    fn go(&mut self, input: Input) -> Vec<Output> {
        let dbg = format!("{input:?}");
        self.try_go(input)
            .unwrap_or_else(|e| panic!("{dbg} refused: {e}"))
    }

    /// Moves the clock forward, running every deadline at its instant.
    fn advance(&mut self, d: Duration) -> Vec<Output> {
        let target = self.now + d;
        let mut out = Vec::new();
        while let Some(t) = self.acd.poll_timeout() {
            if t > target {
                break;
            }
            self.now = self.now.max(t);
            self.acd.handle_timeout(self.clock());
            out.extend(drain(&mut self.acd));
            self.acd.check_invariants().expect("invariants");
        }
        self.now = target;
        out
    }

    fn ready(&mut self, a: &str) -> Vec<Output> {
        let mut out = self.go(Input::AgentLogin(a.into()));
        out.extend(self.go(Input::AgentReachable(a.into(), true)));
        out
    }

    fn enqueue(&mut self, id: &str, queue: &str, caller: &str) -> Vec<Output> {
        let c = WaitingCall::new(id, queue, caller, self.now);
        self.go(Input::Enqueue(c))
    }

    fn answer(&mut self, call: &str, a: &str) -> Vec<Output> {
        self.go(Input::OfferAnswered {
            call: call.into(),
            agent: a.into(),
        })
    }

    fn fail(&mut self, call: &str, a: &str, reason: OfferFailure) -> Vec<Output> {
        self.go(Input::OfferFailed {
            call: call.into(),
            agent: a.into(),
            reason,
        })
    }

    fn end(&mut self, call: &str, a: &str) -> Vec<Output> {
        self.go(Input::CallEnded {
            call: call.into(),
            agent: a.into(),
            by: EndedBy::Caller,
        })
    }

    /// Answer, hang up, end wrap-up: returns what followed (the next offer).
    fn serve(&mut self, call: &str, a: &str) -> Vec<Output> {
        self.answer(call, a);
        let out = self.end(call, a);
        if matches!(self.state(a), AgentState::WrapUp { .. }) {
            self.go(Input::WrapUpDone(a.into()))
        } else {
            out
        }
    }

    fn state(&self, a: &str) -> AgentState {
        self.acd.agent_state(a).cloned().expect("agent")
    }
}

fn offers(out: &[Output]) -> Vec<(String, String)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Offer { call, agent, .. } => Some((call.to_string(), agent.to_string())),
            _ => None,
        })
        .collect()
}

fn offer_pair(call: &str, agent: &str) -> Vec<(String, String)> {
    vec![(call.to_owned(), agent.to_owned())]
}

fn cancels(out: &[Output]) -> Vec<(String, String)> {
    out.iter()
        .filter_map(|o| match o {
            Output::CancelOffer { call, agent } => Some((call.to_string(), agent.to_string())),
            _ => None,
        })
        .collect()
}

fn verbs(out: &[Output]) -> Vec<&'static str> {
    out.iter()
        .filter_map(|o| match o {
            Output::QueueLog(e) => Some(e.kind.verb()),
            _ => None,
        })
        .collect()
}

fn changes(out: &[Output]) -> Vec<&StateChange> {
    out.iter()
        .filter_map(|o| match o {
            Output::StateChanged(c) => Some(c),
            _ => None,
        })
        .collect()
}

fn paused(reason: &str) -> AgentState {
    AgentState::Paused {
        reason: reason.to_owned(),
    }
}

// ----- agent states --------------------------------------------------------

#[test]
fn agent_transitions_are_recorded_and_illegal_ones_refused() {
    let mut h = H::new(vec![q("q")], vec![agent("a", &["q"])]);
    let out = h.go(Input::AgentLogin("a".into()));
    let c = changes(&out);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].from, AgentState::LoggedOut);
    assert_eq!(c[0].to, AgentState::Available);
    assert_eq!(c[0].reason, TransitionReason::Login);
    assert_eq!(c[0].at, h.clock());
    assert_eq!(verbs(&out), ["AGENTLOGIN"]);

    assert!(matches!(
        h.try_go(Input::AgentLogin("a".into())),
        Err(AcdError::IllegalTransition {
            action: "log in",
            ..
        })
    ));
    assert!(h.try_go(Input::WrapUpDone("a".into())).is_err());
    assert!(h.try_go(Input::AgentUnpause("a".into())).is_err());
    assert_eq!(
        h.try_go(Input::AgentLogin("nobody".into())),
        Err(AcdError::UnknownAgent("nobody".into()))
    );

    let out = h.go(Input::AgentPause {
        agent: "a".into(),
        reason: "lunch".into(),
    });
    assert_eq!(h.state("a"), paused("lunch"));
    assert_eq!(verbs(&out), ["PAUSE"]);
    assert!(h
        .try_go(Input::AgentPause {
            agent: "a".into(),
            reason: "again".into()
        })
        .is_err());
    h.advance(s(5));
    let out = h.go(Input::AgentUnpause("a".into()));
    assert_eq!(h.state("a"), AgentState::Available);
    assert_eq!(verbs(&out), ["UNPAUSE"]);
    h.advance(s(60));
    let out = h.go(Input::AgentLogout("a".into()));
    assert_eq!(h.state("a"), AgentState::LoggedOut);
    assert!(out.iter().any(|o| matches!(o, Output::QueueLog(QueueEvent {
        kind: QueueEventKind::AgentLogoff { session }, .. }) if *session == s(65))));
    assert!(h.try_go(Input::AgentLogout("a".into())).is_err());
    assert!(h
        .try_go(Input::AgentPause {
            agent: "a".into(),
            reason: "x".into()
        })
        .is_err());
}

#[test]
fn refused_inputs_change_nothing() {
    let mut h = H::new(vec![q("q")], vec![agent("a", &["q"]), agent("b", &["q"])]);
    h.ready("a");
    h.ready("b");
    h.enqueue("c1", "q", "100");
    h.answer("c1", "a");
    h.enqueue("c2", "q", "200");
    let before = format!("{:?}", h.acd);
    let bad = vec![
        Input::AgentLogin("a".into()),
        Input::AgentLogout("a".into()), // on a call
        Input::WrapUpDone("b".into()),
        Input::Enqueue(WaitingCall::new("c1", "q", "1", h.now)),
        Input::Enqueue(WaitingCall::new("c9", "nope", "1", h.now)),
        Input::Abandon("zz".into()),
        Input::OfferAnswered {
            call: "c2".into(),
            agent: "a".into(),
        },
        Input::OfferFailed {
            call: "c1".into(),
            agent: "a".into(),
            reason: OfferFailure::Busy,
        },
        Input::CallEnded {
            call: "c1".into(),
            agent: "b".into(),
            by: EndedBy::Agent,
        },
        Input::SetHistory {
            caller: "1".into(),
            agent: "ghost".into(),
            at: h.clock().wall,
        },
    ];
    for input in bad {
        let dbg = format!("{input:?}");
        assert!(h.try_go(input).is_err(), "{dbg} accepted");
        assert_eq!(format!("{:?}", h.acd), before, "{dbg} changed state");
    }
}

// ----- ordering --------------------------------------------------------------

#[test]
fn service_order_is_priority_then_original_entry_time() {
    let mut h = H::new(vec![q("q")], vec![agent("x", &["q"])]);
    h.ready("x");
    h.go(Input::AgentPause {
        agent: "x".into(),
        reason: "brb".into(),
    });
    let first = h.now;
    h.enqueue("a", "q", "1");
    h.advance(s(1));
    // A caller re-entering keeps their original entry time.
    h.go(Input::Enqueue(WaitingCall::new(
        "b",
        "q",
        "2",
        first - s(500),
    )));
    h.go(Input::Enqueue(
        WaitingCall::new("c", "q", "3", h.now).with_priority(5),
    ));
    h.advance(s(1));
    h.enqueue("d", "q", "4");
    assert_eq!(h.acd.position("c"), Some(1));
    assert_eq!(h.acd.position("b"), Some(2));
    assert_eq!(h.acd.position("a"), Some(3));
    assert_eq!(h.acd.position("d"), Some(4));
    let snap = h.acd.queue_snapshot("q", h.clock()).unwrap();
    let ids: Vec<&str> = snap.waiting.iter().map(|w| w.call.as_str()).collect();
    assert_eq!(ids, ["c", "b", "a", "d"]);
    assert_eq!(snap.longest_wait, Some(s(502)));

    let out = h.go(Input::AgentUnpause("x".into()));
    assert_eq!(offers(&out), offer_pair("c", "x"));
    assert_eq!(offers(&h.serve("c", "x")), offer_pair("b", "x"));
    assert_eq!(offers(&h.serve("b", "x")), offer_pair("a", "x"));
    assert_eq!(offers(&h.serve("a", "x")), offer_pair("d", "x"));
}

#[test]
// The test is the shell here: it picks the start time.
#[allow(clippy::disallowed_methods)]
fn lifted_by_adds_the_directory_priority_within_bounds() {
    let t = Instant::now();
    let call = |plan: i32, vip: i32| {
        WaitingCall::new("c", "q", "1", t)
            .with_priority(plan)
            .lifted_by(vip)
            .priority
    };
    assert_eq!(call(0, 0), 0);
    assert_eq!(call(0, 1), 1);
    assert_eq!(call(5, 7), 12);
    assert_eq!(call(-3, 1), -2);
    assert_eq!(call(900, 900), MAX_PRIORITY);
    assert_eq!(call(-1000, 0), -MAX_PRIORITY);
    assert_eq!(call(i32::MAX, i32::MAX), MAX_PRIORITY);
    assert_eq!(call(i32::MIN, -1), -MAX_PRIORITY);
}

#[test]
fn a_vip_who_arrives_later_is_offered_before_callers_who_waited_longer() {
    // The only agent is on a call; ordinary callers wait, a VIP arrives a
    // minute later, a bigger VIP later still. When the agent is free the
    // VIPs go first (higher priority first), then the others by entry time.
    let mut h = H::new(vec![q("q")], vec![agent("x", &["q"])]);
    h.ready("x");
    assert_eq!(
        offers(&h.enqueue("busy", "q", "0")),
        offer_pair("busy", "x")
    );
    h.answer("busy", "x");
    h.enqueue("a", "q", "1");
    h.advance(s(30));
    h.enqueue("b", "q", "2");
    h.advance(s(30));
    h.go(Input::Enqueue(
        WaitingCall::new("vip", "q", "3", h.now).lifted_by(1),
    ));
    h.advance(s(5));
    h.enqueue("c", "q", "4");
    h.go(Input::Enqueue(
        WaitingCall::new("big", "q", "5", h.now).lifted_by(9),
    ));
    h.advance(s(1));
    h.go(Input::Enqueue(
        WaitingCall::new("vip2", "q", "6", h.now).lifted_by(1),
    ));
    let order = ["big", "vip", "vip2", "a", "b", "c"];
    for (i, id) in order.iter().enumerate() {
        assert_eq!(h.acd.position(id), Some(i + 1), "{id}");
    }
    let mut out = h.end("busy", "x");
    if matches!(h.state("x"), AgentState::WrapUp { .. }) {
        out = h.go(Input::WrapUpDone("x".into()));
    }
    assert_eq!(offers(&out), offer_pair("big", "x"));
    for pair in order.windows(2) {
        assert_eq!(offers(&h.serve(pair[0], "x")), offer_pair(pair[1], "x"));
    }
}

#[test]
fn a_vip_declined_by_one_agent_is_offered_to_the_next_before_older_callers() {
    let mut h = H::new(vec![q("q")], vec![agent("x", &["q"]), agent("y", &["q"])]);
    for a in ["x", "y"] {
        h.ready(a);
        h.go(Input::AgentPause {
            agent: a.into(),
            reason: "brb".into(),
        });
    }
    h.enqueue("old", "q", "1");
    h.advance(s(60));
    h.go(Input::Enqueue(
        WaitingCall::new("vip", "q", "2", h.now).lifted_by(1),
    ));
    assert_eq!(
        offers(&h.go(Input::AgentUnpause("x".into()))),
        offer_pair("vip", "x")
    );
    // x declines: the VIP is skipped for x only; x gets the older caller
    // and y, when free, the VIP.
    let out = h.fail("vip", "x", OfferFailure::Rejected);
    assert_eq!(offers(&out), offer_pair("old", "x"));
    assert_eq!(
        offers(&h.go(Input::AgentUnpause("y".into()))),
        offer_pair("vip", "y")
    );
}

#[test]
fn agent_in_several_queues_takes_the_longest_waiting_call() {
    let mut h = H::new(vec![q("q1"), q("q2")], vec![agent("x", &["q1", "q2"])]);
    h.ready("x");
    h.go(Input::AgentPause {
        agent: "x".into(),
        reason: "brb".into(),
    });
    let t = h.now;
    h.go(Input::Enqueue(WaitingCall::new("a", "q1", "1", t)));
    h.go(Input::Enqueue(WaitingCall::new("b", "q2", "2", t - s(5))));
    h.go(Input::Enqueue(
        WaitingCall::new("p", "q1", "3", t + s(1)).with_priority(1),
    ));
    h.go(Input::Enqueue(WaitingCall::new("d", "q2", "4", t + s(2))));
    let out = h.go(Input::AgentUnpause("x".into()));
    assert_eq!(offers(&out), offer_pair("p", "x"));
    assert_eq!(offers(&h.serve("p", "x")), offer_pair("b", "x"));
    assert_eq!(offers(&h.serve("b", "x")), offer_pair("a", "x"));
    assert_eq!(offers(&h.serve("a", "x")), offer_pair("d", "x"));
}

#[test]
fn routing_order_across_queues_survives_cancels_skips_and_ties() {
    // Regression guard for routing's ordered indexes: an agent in two of
    // three queues is offered calls strictly by priority, original entry
    // time, then arrival, over both queues, never a call of the third; a
    // cancelled offer keeps its call's place; a skipped call comes back
    // first once the skip is cleared.
    let mut h = H::new(
        vec![q("q1"), q("q2"), q("q3")],
        vec![agent("x", &["q1", "q2"]), agent("y", &["q3"])],
    );
    h.ready("x");
    h.ready("y");
    for a in ["x", "y"] {
        h.go(Input::AgentPause {
            agent: a.into(),
            reason: "fill".into(),
        });
    }
    let t = h.now;
    // (id, queue, priority, seconds before now): many equal entry times.
    let mut calls = Vec::new();
    for i in 0..36u64 {
        let queue = ["q1", "q2", "q3"][(i * 7 % 3) as usize];
        let priority = [0, 1, -1, 0][(i * 5 % 4) as usize];
        let back = (i * 11 % 5) * 10;
        let id = format!("c{i:02}");
        h.go(Input::Enqueue(
            WaitingCall::new(id.as_str(), queue, "", t - s(back)).with_priority(priority),
        ));
        calls.push((id, queue, priority, back, i));
    }
    let mut expected: Vec<_> = calls.iter().filter(|c| c.1 != "q3").collect();
    expected.sort_by_key(|c| (std::cmp::Reverse(c.2), std::cmp::Reverse(c.3), c.4));
    let expected: Vec<&str> = expected.iter().map(|c| c.0.as_str()).collect();
    for queue in ["q1", "q2", "q3"] {
        let snap = h.acd.queue_snapshot(queue, h.clock()).unwrap();
        let got: Vec<&str> = snap.waiting.iter().map(|w| w.call.as_str()).collect();
        let mut want: Vec<_> = calls.iter().filter(|c| c.1 == queue).collect();
        want.sort_by_key(|c| (std::cmp::Reverse(c.2), std::cmp::Reverse(c.3), c.4));
        let want: Vec<&str> = want.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(got, want, "{queue} order");
    }

    // Cancelled offer (pause while ringing): the same call comes back.
    let out = h.go(Input::AgentUnpause("x".into()));
    assert_eq!(offers(&out), offer_pair(expected[0], "x"));
    h.go(Input::AgentPause {
        agent: "x".into(),
        reason: "oops".into(),
    });
    let out = h.go(Input::AgentUnpause("x".into()));
    assert_eq!(offers(&out), offer_pair(expected[0], "x"));
    // Rejected: skipped for that call only, the next one is offered; after
    // a real state change the skipped call is first again.
    let out = h.fail(expected[0], "x", OfferFailure::Rejected);
    assert_eq!(offers(&out), offer_pair(expected[1], "x"));
    h.go(Input::AgentPause {
        agent: "x".into(),
        reason: "clear".into(),
    });
    let out = h.go(Input::AgentUnpause("x".into()));
    assert_eq!(offers(&out), offer_pair(expected[0], "x"));

    let mut served = Vec::new();
    let mut current = expected[0].to_string();
    loop {
        served.push(current.clone());
        let out = h.serve(&current, "x");
        match offers(&out).first() {
            Some((call, _)) => current = call.clone(),
            None => break,
        }
    }
    assert_eq!(served, expected);
    // The q3 calls all wait for y, still in their order.
    let out = h.go(Input::AgentUnpause("y".into()));
    let first_q3 = calls
        .iter()
        .filter(|c| c.1 == "q3")
        .min_by_key(|c| (std::cmp::Reverse(c.2), std::cmp::Reverse(c.3), c.4))
        .unwrap();
    assert_eq!(offers(&out), offer_pair(&first_q3.0, "y"));
}

// ----- strategies ----------------------------------------------------------

#[test]
fn longest_idle_is_since_last_call_end_or_login() {
    let mut qc = q("q");
    qc.wrapup = Duration::ZERO;
    let mut h = H::new(
        vec![qc],
        vec![agent("a", &["q"]), agent("b", &["q"]), agent("c", &["q"])],
    );
    // Config order is a, b, c; log in in the order c, b, a.
    h.ready("c");
    h.advance(s(10));
    h.ready("b");
    h.advance(s(10));
    h.ready("a");
    assert_eq!(offers(&h.enqueue("1", "q", "")), offer_pair("1", "c"));
    h.answer("1", "c");
    h.end("1", "c");
    assert_eq!(offers(&h.enqueue("2", "q", "")), offer_pair("2", "b"));
    h.answer("2", "b");
    h.advance(s(5));
    h.end("2", "b");
    // a: idle since login; c: since its call ended (earlier than b's).
    assert_eq!(offers(&h.enqueue("3", "q", "")), offer_pair("3", "a"));
    h.answer("3", "a");
    h.advance(s(1));
    h.end("3", "a");
    assert_eq!(offers(&h.enqueue("4", "q", "")), offer_pair("4", "c"));
}

#[test]
fn round_robin_continues_after_the_last_agent_offered() {
    let mut qc = q("q");
    qc.strategy = Strategy::RoundRobin;
    qc.wrapup = Duration::ZERO;
    let mut h = H::new(
        vec![qc],
        vec![agent("a", &["q"]), agent("b", &["q"]), agent("c", &["q"])],
    );
    for a in ["a", "b", "c"] {
        h.ready(a);
    }
    let mut got = Vec::new();
    for i in 0..5 {
        let id = format!("c{i}");
        let o = offers(&h.enqueue(&id, "q", ""));
        assert_eq!(o.len(), 1);
        got.push(o[0].1.clone());
        h.serve(&id, &o[0].1);
    }
    assert_eq!(got, ["a", "b", "c", "a", "b"]);
    // A busy agent is passed over and the rotation continues after the pick.
    let o = offers(&h.enqueue("x", "q", ""));
    assert_eq!(o, offer_pair("x", "c"));
    h.answer("x", "c");
    assert_eq!(offers(&h.enqueue("y", "q", "")), offer_pair("y", "a"));
    assert_eq!(offers(&h.enqueue("z", "q", "")), offer_pair("z", "b"));
}

#[test]
fn fewest_calls_beats_idle_time_and_resets_daily() {
    let mut qc = q("q");
    qc.strategy = Strategy::FewestCalls;
    qc.wrapup = Duration::ZERO;
    let mut h = H::new(vec![qc], vec![agent("a", &["q"]), agent("b", &["q"])]);
    h.ready("b");
    assert_eq!(offers(&h.enqueue("1", "q", "")), offer_pair("1", "b"));
    h.answer("1", "b");
    h.advance(s(10));
    h.end("1", "b");
    h.advance(s(10));
    h.ready("a");
    h.advance(s(10));
    // b idles longer (since its call end) but has one call; a has none.
    assert_eq!(offers(&h.enqueue("2", "q", "")), offer_pair("2", "a"));
    h.go(Input::Abandon("2".into()));
    h.go(Input::ResetDailyCounters);
    // Now both have 0: the tie goes to the longest idle, b.
    assert_eq!(offers(&h.enqueue("3", "q", "")), offer_pair("3", "b"));
    assert_eq!(h.acd.agent_snapshot("b").unwrap().calls_total, 1);
    assert_eq!(h.acd.agent_snapshot("b").unwrap().calls_today, 0);
}

#[test]
fn ring_all_rings_everyone_and_cancels_the_losers() {
    let mut qc = q("q");
    qc.strategy = Strategy::RingAll;
    let mut h = H::new(
        vec![qc],
        vec![agent("a", &["q"]), agent("b", &["q"]), agent("c", &["q"])],
    );
    for a in ["a", "b", "c"] {
        h.ready(a);
    }
    let out = h.enqueue("x", "q", "");
    let o = offers(&out);
    assert_eq!(o.len(), 3);
    let deadlines: Vec<Instant> = out
        .iter()
        .filter_map(|o| match o {
            Output::Offer { deadline, .. } => Some(*deadline),
            _ => None,
        })
        .collect();
    assert!(deadlines
        .iter()
        .all(|d| *d == h.now + QueueConfig::DEFAULT_RING_TIMEOUT));
    // One rejection does not disturb the others.
    assert!(offers(&h.fail("x", "c", OfferFailure::Rejected)).is_empty());
    h.advance(s(2));
    let out = h.answer("x", "b");
    assert_eq!(cancels(&out), vec![("x".to_owned(), "a".to_owned())]);
    assert!(out.contains(&Output::Connected {
        call: "x".into(),
        agent: "b".into()
    }));
    assert!(verbs(&out).contains(&"RINGCANCELED"));
    assert_eq!(h.state("a"), AgentState::Available);
    assert_eq!(h.acd.agent_snapshot("a").unwrap().consecutive_misses, 0);
    assert!(matches!(
        h.try_go(Input::OfferAnswered {
            call: "x".into(),
            agent: "a".into()
        }),
        Err(AcdError::NoSuchOffer { .. })
    ));
}

fn random_picks(seed: u64, n: usize) -> Vec<String> {
    let mut qc = q("q");
    qc.strategy = Strategy::Random;
    let agents = ["a", "b", "c", "d"];
    let mut h = H::seeded(
        vec![qc],
        agents.iter().map(|a| agent(a, &["q"])).collect(),
        seed,
    );
    for a in agents {
        h.ready(a);
    }
    (0..n)
        .map(|i| {
            let id = format!("c{i}");
            let o = offers(&h.enqueue(&id, "q", ""));
            assert_eq!(o.len(), 1);
            h.go(Input::Abandon(id.as_str().into()));
            o[0].1.clone()
        })
        .collect()
}

#[test]
fn random_uses_the_seeded_rng() {
    let a = random_picks(1, 200);
    assert_eq!(a, random_picks(1, 200));
    assert_ne!(a, random_picks(2, 200));
    for x in ["a", "b", "c", "d"] {
        let n = a.iter().filter(|p| *p == x).count();
        assert!((20..=80).contains(&n), "{x} picked {n} times of 200");
    }
}

#[test]
fn skills_based_requires_levels_and_prefers_the_highest_total() {
    let mut qc = q("q");
    qc.strategy = Strategy::SkillsBased {
        required: vec![("billing".into(), 5)],
    };
    let mut h = H::new(
        vec![qc],
        vec![
            agent("low", &["q"]).skill("billing", 4),
            agent("mid", &["q"]).skill("billing", 6),
            agent("top", &["q"]).skill("billing", 9),
            agent("none", &["q"]),
        ],
    );
    for a in ["low", "mid", "top", "none"] {
        h.ready(a);
    }
    assert_eq!(offers(&h.enqueue("1", "q", "")), offer_pair("1", "top"));
    assert_eq!(offers(&h.enqueue("2", "q", "")), offer_pair("2", "mid"));
    // Only unqualified agents are left: the call waits.
    assert!(offers(&h.enqueue("3", "q", "")).is_empty());
    assert!(h.acd.is_waiting("3"));
    // Once top is free again it takes the waiting call.
    assert_eq!(
        offers(&h.go(Input::Abandon("1".into()))),
        offer_pair("3", "top")
    );
    // Call skills add to the queue's requirement: only top has billing 9.
    let c = WaitingCall::new("4", "q", "", h.now).with_skill("billing", 9);
    assert!(offers(&h.go(Input::Enqueue(c))).is_empty());
    assert_eq!(
        offers(&h.go(Input::Abandon("3".into()))),
        offer_pair("4", "top")
    );
}

#[test]
fn call_skills_filter_every_strategy() {
    let mut h = H::new(
        vec![q("q")],
        vec![
            agent("en", &["q"]).skill("english", 8),
            agent("es", &["q"]).skill("spanish", 3),
        ],
    );
    h.ready("en");
    h.ready("es");
    let c = WaitingCall::new("1", "q", "", h.now).with_skill("spanish", 3);
    assert_eq!(offers(&h.go(Input::Enqueue(c))), offer_pair("1", "es"));
    let c = WaitingCall::new("2", "q", "", h.now).with_skill("spanish", 4);
    assert!(offers(&h.go(Input::Enqueue(c))).is_empty());
}

#[test]
fn lower_penalty_tier_goes_first() {
    let mut h = H::new(
        vec![q("q")],
        vec![
            AgentConfig::new("backup").member_with_penalty("q", 2),
            AgentConfig::new("main").member_of("q"),
        ],
    );
    h.ready("backup");
    h.advance(s(100));
    h.ready("main");
    // backup idles far longer but main has the lower penalty.
    assert_eq!(offers(&h.enqueue("1", "q", "")), offer_pair("1", "main"));
    assert_eq!(offers(&h.enqueue("2", "q", "")), offer_pair("2", "backup"));
}

// ----- offer lifecycle ------------------------------------------------------

#[test]
fn ring_timeout_moves_on_and_never_loops_on_the_same_agent() {
    let mut qc = q("q");
    qc.reoffer_after = None;
    let mut h = H::new(vec![qc], vec![agent("a", &["q"]), agent("b", &["q"])]);
    h.ready("a");
    h.ready("b");
    let out = h.enqueue("x", "q", "");
    assert_eq!(offers(&out), offer_pair("x", "a"));
    assert_eq!(h.acd.poll_timeout(), Some(h.now + s(15)));
    assert!(h.advance(s(14)).is_empty());
    let out = h.advance(s(1));
    assert_eq!(cancels(&out), offer_pair("x", "a"));
    assert_eq!(verbs(&out), ["RINGNOANSWER"]);
    assert_eq!(offers(&out), offer_pair("x", "b"));
    let out = h.fail("x", "b", OfferFailure::Rejected);
    assert!(offers(&out).is_empty());
    // Both available, both skipped for x: nobody is rung again.
    assert_eq!(h.state("a"), AgentState::Available);
    assert_eq!(h.state("b"), AgentState::Available);
    assert!(offers(&h.advance(s(3600))).is_empty());
    assert!(h.acd.is_waiting("x"));
    // They still take other callers.
    assert_eq!(offers(&h.enqueue("y", "q", "")).len(), 1);
}

#[test]
fn auto_pause_after_consecutive_misses() {
    let mut qc = q("q");
    qc.auto_pause_after_misses = Some(2);
    let mut h = H::new(vec![qc], vec![agent("a", &["q"])]);
    h.ready("a");
    h.enqueue("1", "q", "");
    h.fail("1", "a", OfferFailure::NoAnswer);
    h.go(Input::Abandon("1".into()));
    assert_eq!(h.acd.agent_snapshot("a").unwrap().consecutive_misses, 1);
    // An answer in between resets the count.
    h.enqueue("2", "q", "");
    h.serve("2", "a");
    assert_eq!(h.acd.agent_snapshot("a").unwrap().consecutive_misses, 0);
    h.enqueue("3", "q", "");
    let out = h.advance(s(15));
    assert_eq!(h.state("a"), AgentState::Available);
    assert_eq!(verbs(&out), ["RINGNOANSWER"]);
    // 3 is skipped for a; the next caller is offered and missed too.
    assert_eq!(offers(&h.enqueue("4", "q", "")), offer_pair("4", "a"));
    let out = h.fail("4", "a", OfferFailure::Busy);
    assert_eq!(h.state("a"), paused("missed 2 calls"));
    assert_eq!(verbs(&out), ["RINGNOANSWER", "AUTOPAUSE"]);
    let c = changes(&out);
    assert_eq!(c.last().unwrap().reason, TransitionReason::AutoPause);
    // Unpausing clears misses and skips: the oldest waiting call is offered.
    let out = h.go(Input::AgentUnpause("a".into()));
    assert_eq!(h.acd.agent_snapshot("a").unwrap().consecutive_misses, 0);
    assert_eq!(offers(&out), offer_pair("3", "a"));
}

fn state_change_during_offer(change: Input) {
    let mut h = H::new(vec![q("q")], vec![agent("a", &["q"]), agent("b", &["q"])]);
    h.ready("a");
    h.ready("b");
    let mut all = h.enqueue("x", "q", "");
    assert_eq!(offers(&all), offer_pair("x", "a"));
    let out = h.go(change);
    assert_eq!(cancels(&out), offer_pair("x", "a"));
    assert_eq!(offers(&out), offer_pair("x", "b"));
    assert_eq!(verbs(&out)[0], "RINGCANCELED");
    assert_eq!(h.acd.agent_snapshot("a").unwrap().consecutive_misses, 0);
    all.extend(out);
    all.extend(h.advance(s(60)));
    let to_a = offers(&all).iter().filter(|(_, ag)| ag == "a").count();
    assert_eq!(to_a, 1, "a must not be re-offered x: {all:?}");
}

#[test]
fn logout_during_offer_cancels_and_reroutes() {
    state_change_during_offer(Input::AgentLogout("a".into()));
}

#[test]
fn pause_during_offer_cancels_and_reroutes() {
    state_change_during_offer(Input::AgentPause {
        agent: "a".into(),
        reason: "x".into(),
    });
}

#[test]
fn unregistering_during_offer_cancels_and_reroutes() {
    state_change_during_offer(Input::AgentReachable("a".into(), false));
}

#[test]
fn failed_call_keeps_waiting_until_an_agent_changes_state() {
    let mut qc = q("q");
    qc.reoffer_after = None;
    let mut h = H::new(vec![qc], vec![agent("a", &["q"])]);
    h.ready("a");
    h.enqueue("x", "q", "");
    h.fail("x", "a", OfferFailure::Busy);
    assert!(offers(&h.advance(s(120))).is_empty());
    assert!(h.acd.is_waiting("x"));
    // a takes another caller; the end of that wrap-up clears x's skip.
    assert_eq!(offers(&h.enqueue("y", "q", "")), offer_pair("y", "a"));
    h.answer("y", "a");
    h.end("y", "a");
    let out = h.advance(QueueConfig::DEFAULT_WRAPUP);
    assert_eq!(offers(&out), offer_pair("x", "a"));
}

#[test]
fn reoffer_after_cool_down_is_bounded() {
    let mut qc = q("q");
    qc.reoffer_after = Some(s(30));
    qc.max_offers_per_agent = 2;
    qc.auto_pause_after_misses = None;
    let mut h = H::new(vec![qc], vec![agent("a", &["q"])]);
    h.ready("a");
    h.enqueue("x", "q", "");
    h.fail("x", "a", OfferFailure::Rejected);
    assert!(offers(&h.advance(s(29))).is_empty());
    assert_eq!(offers(&h.advance(s(1))), offer_pair("x", "a"));
    h.fail("x", "a", OfferFailure::Rejected);
    assert!(offers(&h.advance(s(3600))).is_empty());
    assert!(h.acd.is_waiting("x"));
}

#[test]
fn late_answer_after_timeout_is_refused() {
    let mut h = H::new(vec![q("q")], vec![agent("a", &["q"])]);
    h.ready("a");
    h.enqueue("x", "q", "");
    h.advance(s(15));
    assert_eq!(
        h.try_go(Input::OfferAnswered {
            call: "x".into(),
            agent: "a".into()
        }),
        Err(AcdError::NoSuchOffer {
            call: "x".into(),
            agent: "a".into()
        })
    );
}

// ----- leaving the queue ----------------------------------------------------

#[test]
fn max_wait_cancels_ringing_and_reports_overflow() {
    let mut qc = q("q");
    qc.max_wait = Some(s(60));
    qc.ring_timeout = s(100);
    qc.overflow = Some("callback".into());
    let mut h = H::new(vec![qc], vec![agent("a", &["q"])]);
    h.ready("a");
    h.enqueue("x", "q", "");
    let out = h.advance(s(60));
    assert_eq!(cancels(&out), offer_pair("x", "a"));
    assert!(out.contains(&Output::MaxWaitReached {
        call: "x".into(),
        overflow: Some("callback".into())
    }));
    assert_eq!(verbs(&out), ["RINGCANCELED", "EXITWITHTIMEOUT"]);
    assert_eq!(h.state("a"), AgentState::Available);
    assert!(!h.acd.is_waiting("x"));
    // A per-call limit overrides the queue's; it counts from this enqueue,
    // not from the original entry.
    h.go(Input::AgentPause {
        agent: "a".into(),
        reason: "p".into(),
    });
    let c = WaitingCall::new("y", "q", "", h.now - s(3600)).with_max_wait(s(10));
    h.go(Input::Enqueue(c));
    assert!(h.advance(s(9)).is_empty());
    assert!(h.advance(s(1)).contains(&Output::MaxWaitReached {
        call: "y".into(),
        overflow: Some("callback".into())
    }));
}

#[test]
fn no_agents_and_full_queues_refuse_with_overflow() {
    let mut qc = q("q");
    qc.max_len = Some(1);
    qc.overflow = Some("operator".into());
    let mut h = H::new(vec![qc], vec![agent("a", &["q"])]);
    let out = h.enqueue("1", "q", "");
    assert_eq!(
        out.last(),
        Some(&Output::NoAgents {
            call: "1".into(),
            overflow: Some("operator".into())
        })
    );
    assert_eq!(verbs(&out), ["JOINEMPTY"]);
    // Logged in but not registered: still nobody.
    h.go(Input::AgentLogin("a".into()));
    assert!(matches!(
        h.enqueue("2", "q", "").last(),
        Some(Output::NoAgents { .. })
    ));
    // Registered but paused: the call waits.
    h.go(Input::AgentReachable("a".into(), true));
    h.go(Input::AgentPause {
        agent: "a".into(),
        reason: "p".into(),
    });
    assert_eq!(verbs(&h.enqueue("3", "q", "")), ["ENTERQUEUE"]);
    let out = h.enqueue("4", "q", "");
    assert_eq!(
        out.last(),
        Some(&Output::Rejected {
            call: "4".into(),
            reason: RejectReason::QueueFull,
            overflow: Some("operator".into())
        })
    );
    assert_eq!(verbs(&out), ["FULL"]);
    assert_eq!(
        h.try_go(Input::Enqueue(WaitingCall::new("5", "zz", "", h.now))),
        Err(AcdError::UnknownQueue("zz".into()))
    );
}

#[test]
fn leave_when_empty_sends_waiting_callers_to_overflow() {
    let mut qc = q("q");
    qc.leave_when_empty = true;
    let mut h = H::new(vec![qc, q("keep")], vec![agent("a", &["q", "keep"])]);
    h.ready("a");
    h.go(Input::AgentPause {
        agent: "a".into(),
        reason: "p".into(),
    });
    h.enqueue("1", "q", "");
    h.enqueue("2", "keep", "");
    let out = h.go(Input::AgentLogout("a".into()));
    assert!(out.contains(&Output::NoAgents {
        call: "1".into(),
        overflow: None
    }));
    assert!(verbs(&out).contains(&"EXITEMPTY"));
    assert!(h.acd.is_waiting("2"));
}

#[test]
fn abandon_while_ringing_cancels_the_offer() {
    let mut h = H::new(vec![q("q")], vec![agent("a", &["q"])]);
    h.ready("a");
    h.enqueue("x", "q", "");
    h.advance(s(4));
    let out = h.go(Input::Abandon("x".into()));
    assert_eq!(cancels(&out), offer_pair("x", "a"));
    assert_eq!(verbs(&out), ["RINGCANCELED", "ABANDON"]);
    assert!(out.iter().any(|o| matches!(o, Output::QueueLog(QueueEvent {
        kind: QueueEventKind::Abandon { position: 1, orig_position: 1, wait }, .. }) if *wait == s(4))));
    assert_eq!(h.state("a"), AgentState::Available);
    assert_eq!(h.acd.agent_snapshot("a").unwrap().consecutive_misses, 0);
    assert_eq!(
        h.try_go(Input::Abandon("x".into())),
        Err(AcdError::UnknownCall("x".into()))
    );
}

#[test]
fn connected_call_ends_into_wrap_up_and_logs_who_hung_up() {
    let mut h = H::new(vec![q("q")], vec![agent("a", &["q"])]);
    h.ready("a");
    h.enqueue("x", "q", "");
    h.advance(s(3));
    let out = h.answer("x", "a");
    assert!(out.iter().any(|o| matches!(o, Output::QueueLog(QueueEvent {
        kind: QueueEventKind::Connect { hold_time, ring_time, .. }, .. })
        if *hold_time == s(3) && *ring_time == s(3))));
    assert_eq!(h.acd.connected_agent("x"), Some(&AgentId::from("a")));
    h.advance(s(30));
    let out = h.go(Input::CallEnded {
        call: "x".into(),
        agent: "a".into(),
        by: EndedBy::Agent,
    });
    assert_eq!(verbs(&out), ["COMPLETEAGENT"]);
    // Abandon of a bridged call is its end by the caller.
    h.go(Input::WrapUpDone("a".into()));
    h.enqueue("y", "q", "");
    h.answer("y", "a");
    let out = h.go(Input::Abandon("y".into()));
    assert_eq!(verbs(&out), ["COMPLETECALLER"]);
    assert!(matches!(h.state("a"), AgentState::WrapUp { .. }));
}

// ----- wrap-up --------------------------------------------------------------

#[test]
fn wrap_up_ends_by_timeout_or_early() {
    let mut h = H::new(
        vec![q("q")],
        vec![
            agent("a", &["q"]),
            AgentConfig::new("b").member_of("q").skill("x", 1),
        ],
    );
    h.ready("a");
    h.enqueue("1", "q", "");
    h.answer("1", "a");
    h.end("1", "a");
    let until = h.now + QueueConfig::DEFAULT_WRAPUP;
    assert_eq!(h.state("a"), AgentState::WrapUp { until });
    assert_eq!(h.acd.poll_timeout(), Some(until));
    // A caller arriving during wrap-up is offered the moment it ends.
    h.advance(s(1));
    h.enqueue("2", "q", "");
    let out = h.advance(s(9));
    assert_eq!(changes(&out)[0].reason, TransitionReason::WrapUpExpired);
    assert_eq!(offers(&out), offer_pair("2", "a"));
    h.answer("2", "a");
    h.end("2", "a");
    let out = h.go(Input::WrapUpDone("a".into()));
    assert_eq!(h.state("a"), AgentState::Available);
    assert_eq!(changes(&out)[0].reason, TransitionReason::WrapUpDone);
}

#[test]
fn agent_wrap_up_overrides_the_queue() {
    let mut a = agent("a", &["q"]);
    a.wrapup = Some(s(3));
    let mut z = agent("z", &["q"]);
    z.wrapup = Some(Duration::ZERO);
    let mut h = H::new(vec![q("q")], vec![a, z]);
    h.ready("a");
    h.enqueue("1", "q", "");
    h.answer("1", "a");
    h.end("1", "a");
    assert_eq!(
        h.state("a"),
        AgentState::WrapUp {
            until: h.now + s(3)
        }
    );
    h.ready("z");
    h.enqueue("2", "q", "");
    h.answer("2", "z");
    h.end("2", "z");
    assert_eq!(h.state("z"), AgentState::Available);
}

#[test]
fn pause_requested_during_a_call_applies_after_wrap_up() {
    let mut h = H::new(vec![q("q")], vec![agent("a", &["q"])]);
    h.ready("a");
    h.enqueue("1", "q", "");
    h.answer("1", "a");
    let out = h.go(Input::AgentPause {
        agent: "a".into(),
        reason: "break".into(),
    });
    assert!(out.is_empty());
    assert!(matches!(h.state("a"), AgentState::OnCall { .. }));
    h.end("1", "a");
    h.enqueue("2", "q", "");
    let out = h.advance(s(10));
    assert_eq!(h.state("a"), paused("break"));
    assert!(offers(&out).is_empty());
    assert_eq!(verbs(&out), ["PAUSE"]);
    // And an unpause during the call cancels the request.
    let out = h.go(Input::AgentUnpause("a".into()));
    assert_eq!(offers(&out), offer_pair("2", "a"));
    h.answer("2", "a");
    h.go(Input::AgentPause {
        agent: "a".into(),
        reason: "break".into(),
    });
    h.go(Input::AgentUnpause("a".into()));
    h.end("2", "a");
    h.advance(s(10));
    assert_eq!(h.state("a"), AgentState::Available);
}

#[test]
fn pause_during_wrap_up_supersedes_a_pending_pause() {
    let mut h = H::new(vec![q("q")], vec![agent("a", &["q"])]);
    h.ready("a");
    h.enqueue("1", "q", "");
    h.answer("1", "a");
    h.go(Input::AgentPause {
        agent: "a".into(),
        reason: "break".into(),
    });
    h.end("1", "a");
    h.go(Input::AgentPause {
        agent: "a".into(),
        reason: "meeting".into(),
    });
    assert_eq!(h.state("a"), paused("meeting"));
    assert_eq!(h.acd.agent_snapshot("a").unwrap().pending_pause, None);
    h.go(Input::AgentUnpause("a".into()));
    assert_eq!(h.state("a"), AgentState::Available);
}

#[test]
fn re_registration_clears_skips() {
    let mut qc = q("q");
    qc.reoffer_after = None;
    let mut h = H::new(vec![qc], vec![agent("a", &["q"])]);
    h.ready("a");
    h.enqueue("x", "q", "");
    h.fail("x", "a", OfferFailure::Error);
    h.go(Input::AgentReachable("a".into(), false));
    assert!(h.acd.is_waiting("x"));
    let out = h.go(Input::AgentReachable("a".into(), true));
    assert_eq!(offers(&out), offer_pair("x", "a"));
}

#[test]
fn persisted_texts_are_stable() {
    assert_eq!(
        TransitionReason::OfferFailed(OfferFailure::Busy).to_string(),
        "offer-failed (busy)"
    );
    assert_eq!(TransitionReason::AutoPause.to_string(), "auto-pause");
    let k = QueueEventKind::Abandon {
        position: 2,
        orig_position: 5,
        wait: s(42),
    };
    assert_eq!((k.verb(), k.data().as_str()), ("ABANDON", "2|5|42"));
    let k = QueueEventKind::Connect {
        hold_time: s(30),
        waited: s(90),
        ring_time: s(4),
    };
    assert_eq!(k.data(), "30||4|90");
}

// ----- sticky ---------------------------------------------------------------

fn sticky_setup(wait: u64) -> H {
    let mut qc = q("q");
    qc.sticky = Some(StickyConfig {
        window: s(86_400),
        wait_for_agent: s(wait),
    });
    qc.wrapup = Duration::ZERO;
    let mut h = H::new(vec![qc], vec![agent("a", &["q"]), agent("b", &["q"])]);
    h.ready("a");
    h.advance(s(10));
    h.ready("b");
    h
}

#[test]
fn sticky_agent_available_is_offered_first() {
    let mut h = sticky_setup(30);
    let at = h.clock().wall;
    h.go(Input::SetHistory {
        caller: "555".into(),
        agent: "b".into(),
        at,
    });
    // Longest idle alone would pick a.
    assert_eq!(offers(&h.enqueue("1", "q", "555")), offer_pair("1", "b"));
    assert_eq!(offers(&h.enqueue("2", "q", "777")), offer_pair("2", "a"));
}

#[test]
fn sticky_history_outside_the_window_is_ignored() {
    let mut h = sticky_setup(30);
    let at = h.clock().wall;
    h.go(Input::SetHistory {
        caller: "555".into(),
        agent: "b".into(),
        at,
    });
    h.advance(s(86_401));
    assert_eq!(offers(&h.enqueue("1", "q", "555")), offer_pair("1", "a"));
}

#[test]
fn sticky_holds_for_a_busy_agent_without_blocking_others() {
    let mut h = sticky_setup(60);
    // b handles 555 once: history is learned from connected calls.
    h.go(Input::AgentPause {
        agent: "a".into(),
        reason: "p".into(),
    });
    h.enqueue("1", "q", "555");
    h.serve("1", "b");
    h.go(Input::AgentUnpause("a".into()));
    // b is busy with someone else when 555 calls again.
    assert_eq!(offers(&h.enqueue("2", "q", "900")), offer_pair("2", "a"));
    h.answer("2", "a");
    assert_eq!(offers(&h.enqueue("3", "q", "901")), offer_pair("3", "b"));
    h.answer("3", "b");
    assert!(offers(&h.enqueue("4", "q", "555")).is_empty());
    h.enqueue("5", "q", "902");
    // a frees first: it takes 5 although 4 is older — 4 is held for b.
    h.advance(s(5));
    let out = h.end("2", "a");
    assert_eq!(offers(&out), offer_pair("5", "a"));
    let snap = h.acd.queue_snapshot("q", h.clock()).unwrap();
    assert_eq!(snap.waiting[0].held_for, Some(AgentId::from("b")));
    // b frees within the hold and gets 4.
    h.advance(s(5));
    assert_eq!(offers(&h.end("3", "b")), offer_pair("4", "b"));
}

#[test]
fn sticky_hold_expires_then_strategy_applies() {
    let mut h = sticky_setup(20);
    h.go(Input::SetHistory {
        caller: "555".into(),
        agent: "b".into(),
        at: h.clock().wall,
    });
    h.go(Input::AgentPause {
        agent: "a".into(),
        reason: "p".into(),
    });
    h.enqueue("0", "q", "1");
    h.answer("0", "b");
    h.go(Input::AgentUnpause("a".into()));
    assert!(offers(&h.enqueue("1", "q", "555")).is_empty());
    assert!(offers(&h.advance(s(19))).is_empty());
    assert_eq!(offers(&h.advance(s(1))), offer_pair("1", "a"));
}

#[test]
fn sticky_hold_ends_when_the_agent_pauses() {
    let mut h = sticky_setup(600);
    h.go(Input::SetHistory {
        caller: "555".into(),
        agent: "b".into(),
        at: h.clock().wall,
    });
    h.go(Input::AgentPause {
        agent: "a".into(),
        reason: "p".into(),
    });
    h.enqueue("0", "q", "1");
    h.answer("0", "b");
    h.go(Input::AgentUnpause("a".into()));
    assert!(offers(&h.enqueue("1", "q", "555")).is_empty());
    // b asks for a pause during the call; after it, b cannot free up.
    h.go(Input::AgentPause {
        agent: "b".into(),
        reason: "done".into(),
    });
    let out = h.end("0", "b");
    assert_eq!(offers(&out), offer_pair("1", "a"));
}

#[test]
fn sticky_does_not_hold_for_a_paused_agent() {
    let mut h = sticky_setup(600);
    h.go(Input::SetHistory {
        caller: "555".into(),
        agent: "b".into(),
        at: h.clock().wall,
    });
    h.go(Input::AgentPause {
        agent: "b".into(),
        reason: "p".into(),
    });
    assert_eq!(offers(&h.enqueue("1", "q", "555")), offer_pair("1", "a"));
}

// ----- estimated wait -------------------------------------------------------

#[test]
fn estimate_wait_formula_and_monotonicity() {
    let h = s(180);
    assert_eq!(estimate_wait(1, 0, 1, h), s(180));
    assert_eq!(estimate_wait(3, 0, 2, h), s(270));
    assert_eq!(estimate_wait(1, 1, 2, h), Duration::ZERO);
    assert_eq!(estimate_wait(3, 1, 2, h), s(180));
    assert_eq!(
        estimate_wait(2, 0, 0, h),
        s(360),
        "staffing counts as at least 1"
    );
    assert_eq!(estimate_wait(0, 0, 3, h), Duration::ZERO);
    for free in 0..4 {
        for staffed in 0..6 {
            let mut prev = Duration::ZERO;
            for p in 0..200 {
                let e = estimate_wait(p, free, staffed, h);
                assert!(
                    e >= prev,
                    "not monotonic at p={p} free={free} staffed={staffed}"
                );
                prev = e;
            }
        }
    }
}

#[test]
fn ewt_follows_staffing_and_handle_times() {
    let mut qc = q("q");
    qc.wrapup = Duration::ZERO;
    let mut h = H::new(vec![qc], vec![agent("a", &["q"]), agent("b", &["q"])]);
    assert_eq!(h.acd.ewt("q", 1), Some(s(180)));
    assert_eq!(h.acd.ewt("nope", 1), None);
    h.ready("a");
    h.ready("b");
    assert_eq!(h.acd.ewt("q", 1), Some(Duration::ZERO));
    assert_eq!(h.acd.ewt("q", 4), Some(s(180)));
    h.enqueue("1", "q", "");
    h.answer("1", "a");
    h.advance(s(60));
    h.end("1", "a");
    // 180 + (60 - 180) / 5
    let snap = h.acd.queue_snapshot("q", h.clock()).unwrap();
    assert_eq!(snap.avg_handle, s(156));
    h.go(Input::AgentPause {
        agent: "a".into(),
        reason: "p".into(),
    });
    h.go(Input::AgentPause {
        agent: "b".into(),
        reason: "p".into(),
    });
    h.enqueue("2", "q", "");
    h.enqueue("3", "q", "");
    assert_eq!(h.acd.call_ewt("3"), Some(s(312)));
    let snap = h.acd.queue_snapshot("q", h.clock()).unwrap();
    assert_eq!(snap.serving_agents, 0);
    assert_eq!(snap.present_agents, 2);
    assert_eq!(snap.waiting[1].ewt, s(312));
}

#[test]
fn announce_minutes_rounds_for_prompts() {
    use WaitAnnouncement::*;
    assert_eq!(announce_minutes(s(0)), LessThanAMinute);
    assert_eq!(announce_minutes(s(59)), LessThanAMinute);
    assert_eq!(announce_minutes(s(60)), AboutMinutes(1));
    assert_eq!(announce_minutes(s(89)), AboutMinutes(1));
    assert_eq!(announce_minutes(s(90)), AboutMinutes(2));
    assert_eq!(announce_minutes(s(240)), AboutMinutes(4));
    assert_eq!(announce_minutes(s(59)).to_string(), "less than a minute");
    assert_eq!(announce_minutes(s(61)).to_string(), "about 1 minute");
    assert_eq!(announce_minutes(s(250)).to_string(), "about 4 minutes");
    let mut prev = LessThanAMinute;
    for secs in 0..10_000 {
        let a = announce_minutes(s(secs));
        assert!(a >= prev);
        prev = a;
    }
}

// ----- misc -----------------------------------------------------------------

#[test]
fn poll_timeout_is_the_earliest_deadline() {
    let mut qc = q("q");
    qc.max_wait = Some(s(100));
    qc.ring_timeout = s(20);
    let mut h = H::new(vec![qc], vec![agent("a", &["q"])]);
    assert_eq!(h.acd.poll_timeout(), None);
    h.ready("a");
    h.go(Input::AgentPause {
        agent: "a".into(),
        reason: "p".into(),
    });
    h.enqueue("1", "q", "");
    assert_eq!(h.acd.poll_timeout(), Some(h.now + s(100)));
    h.advance(s(10));
    h.go(Input::AgentUnpause("a".into()));
    assert_eq!(h.acd.poll_timeout(), Some(h.now + s(20)));
    h.answer("1", "a");
    assert_eq!(h.acd.poll_timeout(), None);
}

#[test]
fn config_errors_are_reported() {
    let dup = Acd::new(vec![q("q"), q("q")], vec![], 0);
    assert_eq!(dup.err(), Some(ConfigError::DuplicateQueue("q".into())));
    let unknown = Acd::new(vec![q("q")], vec![agent("a", &["x"])], 0);
    assert!(matches!(
        unknown.err(),
        Some(ConfigError::UnknownQueue { .. })
    ));
    let level = Acd::new(vec![q("q")], vec![agent("a", &["q"]).skill("x", 11)], 0);
    assert!(matches!(
        level.err(),
        Some(ConfigError::SkillLevel { level: 11, .. })
    ));
    let mut zero = q("q");
    zero.ring_timeout = Duration::ZERO;
    assert!(matches!(
        Acd::new(vec![zero], vec![], 0).err(),
        Some(ConfigError::Queue { .. })
    ));
    let mut two = agent("a", &["q"]);
    two.max_calls = 2;
    assert!(matches!(
        Acd::new(vec![q("q")], vec![two], 0).err(),
        Some(ConfigError::MaxCalls { .. })
    ));
    let twice = Acd::new(vec![q("q")], vec![agent("a", &["q", "q"])], 0);
    assert!(matches!(
        twice.err(),
        Some(ConfigError::DuplicateMembership { .. })
    ));
    let dup_agent = Acd::new(
        vec![q("q")],
        vec![agent("a", &["q"]), agent("a", &["q"])],
        0,
    );
    assert_eq!(
        dup_agent.err(),
        Some(ConfigError::DuplicateAgent("a".into()))
    );
}

#[test]
fn join_empty_lets_callers_wait_until_an_agent_logs_in() {
    let t0 = Now::system();
    let mut q = QueueConfig::new("q");
    q.join_empty = true;
    let mut acd = Acd::new(vec![q], vec![AgentConfig::new("a").member_of("q")], 1).unwrap();
    let out = run(
        &mut acd,
        Input::Enqueue(WaitingCall::new("c1", "q", "+1555", t0.mono)),
        t0,
    )
    .unwrap();
    assert!(
        !out.iter().any(|o| matches!(o, Output::NoAgents { .. })),
        "join_empty: no overflow while nobody is logged in: {out:?}"
    );
    assert_eq!(acd.position("c1"), Some(1));
    run(&mut acd, Input::AgentReachable("a".into(), true), t0).unwrap();
    let out = run(&mut acd, Input::AgentLogin("a".into()), t0).unwrap();
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Offer { call, .. } if call.as_str() == "c1")),
        "the waiting caller is offered as soon as the agent logs in: {out:?}"
    );
}

#[test]
fn no_sticky_queue_keeps_no_history() {
    let mut h = H::new(vec![q("q")], vec![agent("a", &["q"])]);
    h.ready("a");
    for i in 0..50 {
        let id = format!("c{i}");
        h.enqueue(&id, "q", &format!("+1555000{i:04}"));
        h.serve(&id, "a");
        h.advance(s(1));
    }
    assert_eq!(
        h.acd.sticky_history_len(),
        0,
        "a caller history nobody can use is not kept"
    );
}

#[test]
fn sticky_history_is_bounded_and_keeps_the_recent_callers() {
    let mut h = sticky_setup(30);
    h.acd.set_sticky_history_cap(100);
    for i in 0..1_000u32 {
        h.go(Input::SetHistory {
            caller: format!("+1555{i:07}"),
            agent: "b".into(),
            at: h.clock().wall,
        });
        h.advance(Duration::from_millis(10));
    }
    assert!(
        h.acd.sticky_history_len() <= 100,
        "{} callers remembered",
        h.acd.sticky_history_len()
    );
    assert!(h.acd.sticky_history_len() >= 50);
    // The most recent caller is still routed to its agent.
    assert_eq!(
        offers(&h.enqueue("x", "q", "+15550000999")),
        offer_pair("x", "b")
    );
}

#[test]
fn daily_reset_forgets_history_outside_every_window() {
    let mut h = sticky_setup(30);
    let at = h.clock().wall;
    for caller in ["+1", "+2"] {
        h.go(Input::SetHistory {
            caller: caller.into(),
            agent: "b".into(),
            at,
        });
    }
    assert_eq!(h.acd.sticky_history_len(), 2);
    h.advance(s(86_401));
    h.go(Input::ResetDailyCounters);
    assert_eq!(h.acd.sticky_history_len(), 0);
}
