//! Seeded random sequences against the public API, playing the shell:
//! requests, clock jumps, the poll loop, agents picking callbacks, attempt
//! results, API cancels and reschedules, and crashes (a fresh scheduler
//! restored from the "store" the shell kept). After every step:
//!
//! * never two live callbacks for one (number, queue);
//! * `attempts ≤ max_attempts`, in memory and in every transition;
//! * every callback's transitions form one chain from `requested`, and
//!   nothing follows a terminal state;
//! * the scheduler's live set equals the store's live rows;
//! * after the poll loop ran at `now`, `poll_timeout` is later than `now`.
//!
//! At the end, with in-flight attempts finished and the clock moved past
//! every expiry, each callback has ended in exactly one terminal state.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ringback_callback::*;

const MAX_ATTEMPTS: u32 = 3;
const NUMBERS: &[&str] = &[
    "+1 555 000 0001",
    "+15550000001",
    "(555) 000-0002",
    "+1-555-000-0003",
    "+1 900 555 0100",
    "0044 20 7946 0958",
    "911",
];
const QUEUES: &[&str] = &["sales", "support"];

fn policies() -> (HashMap<String, Policy>, Policy) {
    let ny: Policy = toml::from_str(
        r#"
        max_attempts = 3
        expire_after_hours = 72
        timezone = "America/New_York"
        window = [{ days = "mon-fri", from = "09:00", to = "18:00" }, { days = "sat", from = "10:00", to = "13:00" }]
        holidays = ["2026-12-25"]
        max_pending = 3
        max_per_number_per_day = 4
        "#,
    )
    .expect("policy");
    let mut map = HashMap::new();
    map.insert("sales".to_owned(), ny);
    let default: Policy =
        toml::from_str("max_attempts = 3\nexpire_after_hours = 6\nmax_per_hour = 6")
            .expect("policy");
    (map, default)
}

#[derive(Default)]
struct Shell {
    /// Current-state rows, as the store keeps them (terminal ones too).
    store: BTreeMap<String, Callback>,
    /// Event rows per callback.
    events: BTreeMap<String, Vec<Transition>>,
    /// Handed to the ACD.
    acd: BTreeSet<String>,
    next_id: u32,
}

impl Shell {
    fn persist(&mut self, s: &Scheduler, ts: &[Transition]) {
        for t in ts {
            assert!(t.attempt <= MAX_ATTEMPTS, "{t:?}");
            let chain = self.events.entry(t.id.clone()).or_default();
            match chain.last() {
                None => assert_eq!(t.from, CallbackState::Requested, "{t:?}"),
                Some(prev) => {
                    assert!(!prev.to.is_terminal(), "transition after terminal: {t:?}");
                    assert_eq!(prev.to, t.from, "broken chain: {prev:?} then {t:?}");
                }
            }
            chain.push(t.clone());
            // The row: the live callback after the call, else the last
            // transition's fields (a batch may end a callback it repaired).
            let row = self.store.get_mut(&t.id).expect("row exists");
            row.state = t.to;
            row.attempts = t.attempt;
            row.next_attempt_at = t.next_attempt_at;
            if let Some(r) = &t.result {
                row.last_result = Some(r.clone());
            }
            if t.to.is_terminal() {
                self.acd.remove(&t.id);
            }
        }
        for t in ts {
            match s.get(&t.id) {
                Some(cb) => {
                    self.store.insert(t.id.clone(), cb.clone());
                }
                None => assert!(
                    self.events[&t.id]
                        .last()
                        .is_some_and(|l| l.to.is_terminal()),
                    "{} not live but not ended",
                    t.id
                ),
            }
        }
    }

    /// The poll loop at `now`, as the shell runs it.
    fn tick(&mut self, s: &mut Scheduler, now: DateTime<Utc>) {
        let ts = s.expire(now);
        self.persist(s, &ts);
        for id in s.withdraw(now) {
            assert!(
                self.acd.remove(&id),
                "withdrew {id} that was not in the ACD"
            );
        }
        for cb in s.eligible(now) {
            assert!(self.acd.insert(cb.id.clone()), "{} handed out twice", cb.id);
        }
        if let Some(t) = s.poll_timeout(now) {
            assert!(t > now, "poll_timeout {t} not after {now}: would spin");
        }
    }

    fn check(&self, s: &Scheduler) {
        let mut seen = BTreeSet::new();
        for cb in s.live() {
            assert!(cb.state.is_live());
            assert!(cb.attempts <= MAX_ATTEMPTS, "{cb:?}");
            assert!(
                seen.insert((cb.queue.clone(), cb.number.clone())),
                "two live callbacks for {} in {}",
                cb.number,
                cb.queue
            );
            assert_eq!(self.store.get(&cb.id), Some(cb), "store out of date");
        }
        let live_rows: BTreeSet<&str> = self
            .store
            .values()
            .filter(|c| c.state.is_live())
            .map(|c| c.id.as_str())
            .collect();
        let live_mem: BTreeSet<&str> = s.live().map(|c| c.id.as_str()).collect();
        assert_eq!(live_rows, live_mem);
        for id in &self.acd {
            assert!(s.is_handed_out(id), "{id} in the ACD but not handed out");
        }
    }
}

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> Option<&'a T> {
    if items.is_empty() {
        None
    } else {
        Some(&items[rng.random_range(0..items.len())])
    }
}

fn run(seed: u64, steps: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let (map, default) = policies();
    let mut s = Scheduler::new(map.clone(), default.clone());
    let mut sh = Shell::default();
    // Thu 2026-12-24 14:00 UTC: a holiday and a weekend ahead.
    let mut now = Utc
        .with_ymd_and_hms(2026, 12, 24, 14, 0, 0)
        .single()
        .expect("valid");
    for _ in 0..steps {
        match rng.random_range(0..100) {
            0..=24 => {
                sh.next_id += 1;
                let id = format!("cb{}", sh.next_id);
                let queue = *pick(&mut rng, QUEUES).expect("queues");
                let number = *pick(&mut rng, NUMBERS).expect("numbers");
                let preferred = rng.random_bool(0.2).then(|| {
                    let start = now + TimeDelta::minutes(rng.random_range(-60..600));
                    (
                        start,
                        start + TimeDelta::minutes(rng.random_range(-10..300)),
                    )
                });
                let req = NewCallback {
                    id: id.clone(),
                    queue: queue.into(),
                    number: number.into(),
                    entered_at: now - TimeDelta::seconds(rng.random_range(0..1800)),
                    preferred,
                    not_before: None,
                    context: String::new(),
                    origin: if rng.random_bool(0.5) {
                        Origin::Ivr
                    } else {
                        Origin::Web
                    },
                };
                let checked = s.check(queue, number, now);
                match s.request(req, now) {
                    Ok((cb, ts)) => {
                        assert!(checked.is_ok(), "check refused what request accepted");
                        assert_eq!(cb.state, CallbackState::Scheduled);
                        sh.store.insert(id, cb);
                        sh.persist(&s, &ts);
                    }
                    Err(Refusal::Duplicate { existing_id }) => {
                        let existing = s.get(&existing_id).expect("duplicate of a live one");
                        assert_eq!(existing.queue, queue);
                    }
                    Err(_) => {}
                }
            }
            25..=44 => {
                let step = match rng.random_range(0..10) {
                    0 => TimeDelta::hours(rng.random_range(1..30)),
                    1..=3 => TimeDelta::minutes(rng.random_range(1..60)),
                    _ => TimeDelta::seconds(rng.random_range(0..300)),
                };
                now += step;
                sh.tick(&mut s, now);
            }
            45..=59 => {
                // The ACD picks the oldest (or a random) handed-out callback.
                let handed: Vec<String> = sh.acd.iter().cloned().collect();
                if let Some(id) = pick(&mut rng, &handed).cloned() {
                    match s.dialing(&id, now) {
                        Ok(t) => {
                            sh.persist(&s, &[t]);
                            sh.acd.remove(&id);
                        }
                        Err(CallbackError::OutsideWindow { .. }) => {
                            sh.acd.remove(&id);
                        }
                        Err(e) => panic!("dialing a handed-out callback: {e}"),
                    }
                }
            }
            60..=79 => {
                let busy: Vec<String> = s
                    .live()
                    .filter(|c| {
                        matches!(c.state, CallbackState::Dialing | CallbackState::Connected)
                    })
                    .map(|c| c.id.clone())
                    .collect();
                if let Some(id) = pick(&mut rng, &busy).cloned() {
                    let state = s.get(&id).expect("live").state;
                    now += TimeDelta::seconds(rng.random_range(1..120));
                    let r = match (state, rng.random_range(0..8)) {
                        (CallbackState::Dialing, 0) => {
                            let t = s.connected(&id, now).expect("connect");
                            sh.persist(&s, &[t]);
                            continue;
                        }
                        (CallbackState::Dialing, 1) => AttemptResult::CustomerBusy,
                        (CallbackState::Dialing, 2) => AttemptResult::CustomerNoAnswer,
                        (CallbackState::Dialing, 3) => AttemptResult::CustomerDeclined,
                        (CallbackState::Dialing, 4) => AttemptResult::CustomerNoAcceptance,
                        (CallbackState::Dialing, 5) => AttemptResult::AgentLost,
                        (CallbackState::Dialing, _) => AttemptResult::Failed("503".into()),
                        (_, 0) => AttemptResult::Failed("dropped".into()),
                        _ => AttemptResult::Completed,
                    };
                    let before = s.get(&id).map(|c| c.attempts).expect("live");
                    let ts = s.finished(&id, r.clone(), now).expect("finished");
                    if r == AttemptResult::AgentLost {
                        assert_eq!(ts[0].attempt, before - 1);
                    }
                    sh.persist(&s, &ts);
                }
            }
            80..=86 => {
                let live: Vec<String> = s.live().map(|c| c.id.clone()).collect();
                if let Some(id) = pick(&mut rng, &live).cloned() {
                    let before = s.get(&id).cloned();
                    match s.cancel(&id, "api", now) {
                        Ok(t) => sh.persist(&s, &[t]),
                        Err(_) => assert_eq!(s.get(&id).cloned(), before),
                    }
                    sh.acd.remove(&id);
                }
            }
            87..=92 => {
                let live: Vec<String> = s.live().map(|c| c.id.clone()).collect();
                if let Some(id) = pick(&mut rng, &live).cloned() {
                    let at = now + TimeDelta::minutes(rng.random_range(-30..3000));
                    let before = s.get(&id).cloned();
                    match s.reschedule(&id, at, now) {
                        Ok(t) => {
                            sh.persist(&s, &[t]);
                            sh.acd.remove(&id);
                        }
                        Err(_) => assert_eq!(s.get(&id).cloned(), before),
                    }
                }
            }
            93..=96 => {
                // kill -9 and restart from the store.
                sh.acd.clear();
                // Sometimes another node raced us and stored a twin.
                let live: Vec<Callback> = s.live().cloned().collect();
                if let Some(orig) = pick(&mut rng, &live).filter(|_| rng.random_bool(0.3)) {
                    sh.next_id += 1;
                    let mut twin = orig.clone();
                    twin.id = format!("cb{}", sh.next_id);
                    twin.state = CallbackState::Scheduled;
                    twin.attempts = 0;
                    twin.created_at = orig.created_at + TimeDelta::seconds(1);
                    twin.next_attempt_at = Some(now);
                    let t = Transition {
                        id: twin.id.clone(),
                        from: CallbackState::Requested,
                        to: CallbackState::Scheduled,
                        at: now,
                        reason: "other node".into(),
                        attempt: 0,
                        next_attempt_at: Some(now),
                        result: None,
                    };
                    sh.events.insert(twin.id.clone(), vec![t]);
                    sh.store.insert(twin.id.clone(), twin);
                }
                // The restarted scheduler lost its memory.
                s = Scheduler::new(map.clone(), default.clone());
                let rows: Vec<Callback> = sh.store.values().cloned().collect();
                let ts = s.restore(rows, now);
                sh.persist(&s, &ts);
                for cb in s.live() {
                    assert!(
                        !matches!(cb.state, CallbackState::Dialing | CallbackState::Connected),
                        "restored in flight"
                    );
                }
            }
            _ => sh.tick(&mut s, now),
        }
        sh.check(&s);
    }

    // Drain: finish every attempt, then run the clock past every expiry.
    let busy: Vec<(String, CallbackState)> = s
        .live()
        .filter(|c| !c.state.is_waiting())
        .map(|c| (c.id.clone(), c.state))
        .collect();
    for (id, state) in busy {
        let r = if state == CallbackState::Connected {
            AttemptResult::Completed
        } else {
            AttemptResult::CustomerNoAnswer
        };
        let ts = s.finished(&id, r, now).expect("finish");
        sh.persist(&s, &ts);
    }
    for _ in 0..200 {
        match s.poll_timeout(now) {
            None => break,
            Some(t) => now = t.max(now),
        }
        sh.tick(&mut s, now);
        // Every callback that becomes dialable goes unanswered.
        let handed: Vec<String> = sh.acd.iter().cloned().collect();
        for id in handed {
            if let Ok(t) = s.dialing(&id, now) {
                sh.persist(&s, &[t]);
                let ts = s
                    .finished(&id, AttemptResult::CustomerNoAnswer, now)
                    .expect("finish");
                sh.persist(&s, &ts);
            }
            sh.acd.remove(&id);
        }
        sh.check(&s);
    }
    assert_eq!(s.live().count(), 0, "seed {seed}: callbacks left live");
    for (id, chain) in &sh.events {
        let terminals = chain.iter().filter(|t| t.to.is_terminal()).count();
        assert_eq!(
            terminals, 1,
            "seed {seed}: {id} ended {terminals} times: {chain:#?}"
        );
        assert!(chain.last().is_some_and(|t| t.to.is_terminal()));
        assert_eq!(sh.store[id].state, chain.last().expect("chain").to);
    }
    assert_eq!(sh.events.len(), sh.store.len());
}

#[test]
fn random_sequences_keep_the_invariants() {
    for seed in 0..300 {
        run(seed, 400);
    }
}
