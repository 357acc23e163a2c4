//! Property-style test: long seeded random sequences of inputs, checked
//! after every step against what the shell would observe.
//!
//! * the engine never panics and its internal invariants hold;
//! * every agent that is `Ringing` owns exactly one offer the shell still
//!   considers live, and every live offer's agent is ringing for that call;
//! * an offer is never emitted twice for a live (call, agent) pair, and a
//!   `CancelOffer` always names a live offer;
//! * no call is ever `Connected` twice;
//! * every enqueued call ends in exactly one of Connected / Abandon /
//!   MaxWaitReached / NoAgents / Rejected (checked after draining);
//! * a refused input changes nothing;
//! * the same seed gives the same outputs.

// Test code drives the core with the real clock as its base time (issue 12).
#![allow(clippy::disallowed_methods)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use ringback_acd::*;
use ringback_sansio::{Core, Now};

const AGENTS: [&str; 6] = ["ann", "bob", "cat", "dan", "eve", "fay"];
const QUEUES: [&str; 4] = ["sales", "support", "billing", "vip"];

fn config() -> (Vec<QueueConfig>, Vec<AgentConfig>) {
    let mut sales = QueueConfig::new("sales");
    sales.max_wait = Some(Duration::from_secs(240));
    sales.sticky = Some(StickyConfig {
        window: Duration::from_secs(3600),
        wait_for_agent: Duration::from_secs(20),
    });
    sales.ring_timeout = Duration::from_secs(12);
    let mut support = QueueConfig::new("support");
    support.strategy = Strategy::RingAll;
    support.max_len = Some(4);
    support.max_wait = Some(Duration::from_secs(120));
    support.leave_when_empty = true;
    support.auto_pause_after_misses = Some(2);
    let mut billing = QueueConfig::new("billing");
    billing.strategy = Strategy::Random;
    billing.max_wait = Some(Duration::from_secs(300));
    billing.reoffer_after = Some(Duration::from_secs(5));
    billing.max_offers_per_agent = 3;
    billing.wrapup = Duration::ZERO;
    billing.auto_pause_after_misses = None;
    let mut vip = QueueConfig::new("vip");
    vip.strategy = Strategy::SkillsBased {
        required: vec![("vip".into(), 3)],
    };
    vip.max_wait = Some(Duration::from_secs(90));
    vip.reoffer_after = None;
    vip.overflow = Some("sales".into());
    let agents = vec![
        AgentConfig::new("ann")
            .member_of("sales")
            .member_of("vip")
            .skill("vip", 5)
            .skill("es", 4),
        AgentConfig::new("bob")
            .member_of("sales")
            .member_of("support"),
        AgentConfig::new("cat")
            .member_with_penalty("support", 1)
            .member_of("billing")
            .skill("vip", 2),
        AgentConfig::new("dan")
            .member_of("billing")
            .member_of("vip")
            .skill("vip", 9),
        AgentConfig::new("eve")
            .member_of("sales")
            .member_of("support")
            .member_of("billing")
            .skill("es", 8),
        AgentConfig::new("fay").member_with_penalty("sales", 2),
    ];
    (vec![sales, support, billing, vip], agents)
}

/// Handles one input at `now` and drains what it queued: `Err` when the
/// engine refused it (a refusal is always the input's only output).
fn run(acd: &mut Acd, input: Input, now: Now) -> Result<Vec<Output>, AcdError> {
    acd.handle(input, now);
    let out: Vec<Output> = std::iter::from_fn(|| acd.poll_output()).collect();
    match out.as_slice() {
        [Output::Refused(e)] => Err(e.clone()),
        _ => Ok(out),
    }
}

struct Sim {
    acd: Acd,
    /// The fake clock's start; `now` only moves forward from it.
    base: Now,
    now: Instant,
    rng: SmallRng,
    next_call: u64,
    enqueued: BTreeSet<String>,
    terminal: BTreeMap<String, Vec<&'static str>>,
    live: BTreeSet<(String, String)>,
    bridged: BTreeMap<String, String>,
    log: Vec<Output>,
}

impl Sim {
    fn new(seed: u64, base: Now) -> Sim {
        let (q, a) = config();
        Sim {
            acd: Acd::new(q, a, seed).unwrap(),
            base,
            now: base.mono,
            rng: SmallRng::seed_from_u64(seed ^ 0x5eed),
            next_call: 0,
            enqueued: BTreeSet::new(),
            terminal: BTreeMap::new(),
            live: BTreeSet::new(),
            bridged: BTreeMap::new(),
            log: Vec::new(),
        }
    }

    /// `now` on both clocks.
    fn clock(&self) -> Now {
        self.base.plus(self.now - self.base.mono)
    }

    fn pick<'a>(&mut self, xs: &'a [&'a str]) -> &'a str {
        xs[self.rng.random_range(0..xs.len())]
    }

    fn input(&mut self, input: Input) {
        let before = format!("{:?}", self.acd);
        let answered = match &input {
            Input::OfferAnswered { call, agent } => Some((call.to_string(), agent.to_string())),
            Input::OfferFailed { call, agent, .. } => Some((call.to_string(), agent.to_string())),
            _ => None,
        };
        let dbg = format!("{input:?}");
        let now = self.clock();
        match run(&mut self.acd, input, now) {
            Ok(out) => {
                if let Some(pair) = answered {
                    assert!(self.live.remove(&pair), "{dbg} accepted for a dead offer");
                }
                self.observe(out);
            }
            Err(e) => {
                assert_eq!(
                    format!("{:?}", self.acd),
                    before,
                    "refused {dbg} ({e}) changed state"
                );
                if let Some(pair) = answered {
                    assert!(
                        !self.live.contains(&pair),
                        "{dbg} refused for a live offer: {e}"
                    );
                }
            }
        }
        self.check();
    }

    fn timeout(&mut self) {
        self.acd.handle_timeout(self.clock());
        let out = std::iter::from_fn(|| self.acd.poll_output()).collect();
        self.observe(out);
        self.check();
    }

    fn observe(&mut self, out: Vec<Output>) {
        for o in &out {
            match o {
                Output::Offer {
                    call,
                    agent,
                    deadline,
                } => {
                    assert!(*deadline > self.now);
                    assert!(
                        self.live.insert((call.to_string(), agent.to_string())),
                        "double offer {call}→{agent}"
                    );
                    assert!(!self.bridged.contains_key(call.as_str()));
                }
                Output::CancelOffer { call, agent } => {
                    assert!(
                        self.live.remove(&(call.to_string(), agent.to_string())),
                        "cancel of a dead offer {call}→{agent}"
                    );
                }
                Output::Connected { call, agent } => {
                    assert!(
                        self.bridged
                            .insert(call.to_string(), agent.to_string())
                            .is_none(),
                        "{call} connected twice"
                    );
                    self.end(call, "connected");
                }
                Output::MaxWaitReached { call, .. } => self.end(call, "max-wait"),
                Output::NoAgents { call, .. } => self.end(call, "no-agents"),
                Output::Rejected { call, .. } => self.end(call, "rejected"),
                Output::QueueLog(e) => match &e.kind {
                    QueueEventKind::Abandon { .. } => self.end(e.call.as_ref().unwrap(), "abandon"),
                    QueueEventKind::CompleteAgent { .. }
                    | QueueEventKind::CompleteCaller { .. } => {
                        let call = e.call.as_ref().unwrap().to_string();
                        assert!(
                            self.bridged.remove(&call).is_some(),
                            "{call} completed unbridged"
                        );
                    }
                    _ => {}
                },
                Output::StateChanged(c) => assert_eq!(c.at, self.clock()),
                Output::Refused(e) => panic!("a refusal among other outputs: {e}"),
            }
        }
        self.log.extend(out);
    }

    fn end(&mut self, call: &CallId, how: &'static str) {
        let v = self.terminal.entry(call.to_string()).or_default();
        v.push(how);
        assert_eq!(v.len(), 1, "call {call} ended twice: {v:?}");
    }

    fn check(&self) {
        self.acd.check_invariants().unwrap();
        for a in AGENTS {
            if let Some(AgentState::Ringing { call }) = self.acd.agent_state(a) {
                assert!(
                    self.live.contains(&(call.to_string(), a.to_owned())),
                    "{a} ringing for {call} without a live offer"
                );
            }
        }
        for (call, agent) in &self.live {
            assert_eq!(
                self.acd.agent_state(agent),
                Some(&AgentState::Ringing {
                    call: call.as_str().into()
                }),
                "live offer {call}→{agent} but agent not ringing"
            );
        }
        for (call, agent) in &self.bridged {
            assert_eq!(
                self.acd.agent_state(agent),
                Some(&AgentState::OnCall {
                    call: call.as_str().into()
                })
            );
        }
    }

    fn advance(&mut self, max_ms: u64) {
        self.now += Duration::from_millis(self.rng.random_range(0..max_ms));
        if self.acd.poll_timeout().is_some_and(|t| t <= self.now) || self.rng.random_bool(0.1) {
            self.timeout();
        }
    }

    fn random_live(&mut self) -> Option<(String, String)> {
        if self.live.is_empty() {
            return None;
        }
        let i = self.rng.random_range(0..self.live.len());
        self.live.iter().nth(i).cloned()
    }

    fn respond_to_offer(&mut self) {
        if let Some((call, agent)) = self.random_live() {
            let input = if self.rng.random_bool(0.5) {
                Input::OfferAnswered {
                    call: call.as_str().into(),
                    agent: agent.as_str().into(),
                }
            } else {
                let reason = [
                    OfferFailure::Busy,
                    OfferFailure::Rejected,
                    OfferFailure::NoAnswer,
                    OfferFailure::Error,
                ][self.rng.random_range(0..4)];
                Input::OfferFailed {
                    call: call.as_str().into(),
                    agent: agent.as_str().into(),
                    reason,
                }
            };
            self.input(input);
        }
    }

    fn hang_up(&mut self) {
        if self.bridged.is_empty() {
            return;
        }
        let i = self.rng.random_range(0..self.bridged.len());
        let (call, agent) = self
            .bridged
            .iter()
            .nth(i)
            .map(|(c, a)| (c.clone(), a.clone()))
            .unwrap();
        let input = if self.rng.random_bool(0.2) {
            Input::Abandon(call.as_str().into())
        } else {
            let by = if self.rng.random_bool(0.5) {
                EndedBy::Caller
            } else {
                EndedBy::Agent
            };
            Input::CallEnded {
                call: call.as_str().into(),
                agent: agent.as_str().into(),
                by,
            }
        };
        self.input(input);
    }

    fn step(&mut self) {
        match self.rng.random_range(0..100) {
            0..=24 => self.advance(8_000),
            25..=39 => {
                self.next_call += 1;
                let id = format!("c{}", self.next_call);
                let unknown = self.rng.random_bool(0.02);
                let queue = if unknown {
                    "nowhere"
                } else {
                    self.pick(&QUEUES)
                };
                let caller = format!("55501{}", self.rng.random_range(0..8));
                let back = Duration::from_secs(self.rng.random_range(0..600));
                let mut c = WaitingCall::new(id.as_str(), queue, caller, self.now - back)
                    .with_priority(self.rng.random_range(-1..=2));
                if self.rng.random_bool(0.15) {
                    c = c.with_skill("es", self.rng.random_range(1..=9));
                }
                if self.rng.random_bool(0.2) {
                    c = c.with_max_wait(Duration::from_secs(self.rng.random_range(1..200)));
                }
                if !unknown {
                    self.enqueued.insert(id);
                }
                self.input(Input::Enqueue(c));
            }
            40..=41 => {
                // A duplicate of a call the ACD still holds must be refused.
                let held: Vec<String> = self
                    .enqueued
                    .iter()
                    .filter(|c| self.acd.is_waiting(c) || self.bridged.contains_key(*c))
                    .cloned()
                    .collect();
                if !held.is_empty() {
                    let id = held[self.rng.random_range(0..held.len())].clone();
                    let before = format!("{:?}", self.acd);
                    let now = self.clock();
                    let r = run(
                        &mut self.acd,
                        Input::Enqueue(WaitingCall::new(id.as_str(), "sales", "1", self.now)),
                        now,
                    );
                    assert_eq!(r, Err(AcdError::DuplicateCall(id.as_str().into())));
                    assert_eq!(format!("{:?}", self.acd), before);
                }
            }
            42..=49 => {
                let waiting: Vec<String> = self
                    .enqueued
                    .iter()
                    .filter(|c| self.acd.is_waiting(c))
                    .cloned()
                    .collect();
                let id = if waiting.is_empty() || self.rng.random_bool(0.1) {
                    format!("c{}", self.rng.random_range(0..=self.next_call + 1))
                } else {
                    waiting[self.rng.random_range(0..waiting.len())].clone()
                };
                self.input(Input::Abandon(id.as_str().into()));
            }
            50..=69 => self.respond_to_offer(),
            70..=74 => {
                // Bogus answer/failure for a random pair.
                let call = format!("c{}", self.rng.random_range(0..=self.next_call));
                let agent = self.pick(&AGENTS);
                self.input(Input::OfferAnswered {
                    call: call.as_str().into(),
                    agent: agent.into(),
                });
            }
            75..=82 => self.hang_up(),
            83..=97 => {
                let a: AgentId = self.pick(&AGENTS).into();
                let input = match self.rng.random_range(0..8) {
                    0 | 1 => Input::AgentLogin(a),
                    2 => Input::AgentLogout(a),
                    3 => Input::AgentPause {
                        agent: a,
                        reason: "break".into(),
                    },
                    4 => Input::AgentUnpause(a),
                    5 => Input::WrapUpDone(a),
                    _ => Input::AgentReachable(a, self.rng.random_bool(0.8)),
                };
                self.input(input);
            }
            98 => {
                let caller = format!("55501{}", self.rng.random_range(0..8));
                let agent = self.pick(&AGENTS).into();
                let at =
                    self.clock().wall - chrono::TimeDelta::seconds(self.rng.random_range(0..7200));
                self.input(Input::SetHistory { caller, agent, at });
            }
            _ => self.input(Input::ResetDailyCounters),
        }
    }

    /// No new callers; let every waiting call leave (max waits are finite).
    fn drain(&mut self) {
        for _ in 0..2_000 {
            if !self.enqueued.iter().any(|c| self.acd.is_waiting(c)) {
                return;
            }
            self.now += Duration::from_secs(5);
            self.timeout();
            if self.rng.random_bool(0.5) {
                self.respond_to_offer();
            }
            if self.rng.random_bool(0.3) {
                self.hang_up();
            }
        }
        panic!("calls still waiting after the drain");
    }

    fn finish(&self) {
        for c in &self.enqueued {
            let v = self.terminal.get(c).map_or(0, Vec::len);
            assert_eq!(v, 1, "call {c} ended {v} times");
        }
    }
}

fn simulate(seed: u64, steps: usize, base: Now) -> Vec<Output> {
    let mut sim = Sim::new(seed, base);
    // Start with most agents working, so routing happens from the start.
    for a in AGENTS.iter().take(4) {
        sim.input(Input::AgentLogin((*a).into()));
        sim.input(Input::AgentReachable((*a).into(), true));
    }
    for _ in 0..steps {
        sim.step();
    }
    sim.drain();
    sim.finish();
    let connected = sim
        .terminal
        .values()
        .filter(|v| v[0] == "connected")
        .count();
    assert!(connected > 0, "seed {seed}: nothing ever connected");
    sim.log
}

#[test]
fn random_sequences_keep_every_invariant() {
    let base = Now::system().plus(Duration::from_secs(10_000));
    for seed in 0..12 {
        simulate(seed, 4_000, base);
    }
}

#[test]
fn same_inputs_and_seed_give_same_outputs() {
    let base = Now::system().plus(Duration::from_secs(10_000));
    let a = simulate(42, 3_000, base);
    let b = simulate(42, 3_000, base);
    assert!(a.len() > 1_000);
    assert_eq!(a, b);
    let c = simulate(43, 3_000, base);
    assert_ne!(a, c);
}
