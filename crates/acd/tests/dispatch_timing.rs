//! Micro-benchmark of routing with many waiting calls (not a pass/fail
//! test; ignored by default). It mirrors `bench/callback.sh`: one queue with
//! N waiting calls, one agent; per sample the agent unpauses (→ `Offer` of
//! the first call) and pauses again (→ `CancelOffer`; the call keeps its
//! place), so every sample starts from the same state. It also times an
//! enqueue at the end of the queue and an input that routes nothing.
//!
//! ```sh
//! cargo test --release -p ringback-acd --test dispatch_timing -- --ignored --nocapture
//! ```

// Test code drives the core with the real clock as its base time (issue 12).
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use ringback_acd::*;

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(mut v: Vec<Duration>) -> String {
    v.sort();
    format!(
        "p50 {:>9.2?}  p99 {:>9.2?}  max {:>9.2?}",
        pct(&v, 0.5),
        pct(&v, 0.99),
        v[v.len() - 1]
    )
}

fn one(waiting: usize, samples: usize) {
    let mut qc = QueueConfig::new("operator");
    qc.max_wait = None;
    let agents = vec![
        AgentConfig::new("alice").member_of("operator"),
        // A second, idle member of another queue: a free agent that cannot
        // take any of the waiting calls.
        AgentConfig::new("bob").member_of("other"),
    ];
    let mut acd = Acd::new(vec![qc, QueueConfig::new("other")], agents, 1).expect("config");
    let t0 = Instant::now() + Duration::from_secs(1_000_000);
    let mut now = t0;
    for a in ["alice", "bob"] {
        acd.handle(Input::AgentLogin(a.into()), now).expect("login");
        acd.handle(Input::AgentReachable(a.into(), true), now)
            .expect("reachable");
    }
    acd.handle(
        Input::AgentPause {
            agent: "alice".into(),
            reason: "fill".into(),
        },
        now,
    )
    .expect("pause");
    for i in 0..waiting {
        now += Duration::from_millis(1);
        let c = WaitingCall::new(format!("cb-{i:08}-0123456789abcdef"), "operator", "", now);
        acd.handle(Input::Enqueue(c), now).expect("enqueue");
    }

    let mut dispatch = Vec::with_capacity(samples);
    let mut cancel = Vec::with_capacity(samples);
    let mut noop = Vec::with_capacity(samples);
    let mut enqueue = Vec::with_capacity(samples);
    for i in 0..samples {
        now += Duration::from_millis(1);
        let t = Instant::now();
        let out = acd
            .handle(Input::AgentUnpause("alice".into()), now)
            .expect("unpause");
        dispatch.push(t.elapsed());
        assert!(
            out.iter().any(|o| matches!(o, Output::Offer { .. })),
            "no offer"
        );
        let t = Instant::now();
        acd.handle(
            Input::AgentPause {
                agent: "alice".into(),
                reason: "again".into(),
            },
            now,
        )
        .expect("pause");
        cancel.push(t.elapsed());
        // An input while bob (free, but in no queue with calls) is the only
        // available agent: routing runs and finds nothing.
        let t = Instant::now();
        acd.handle(Input::ResetDailyCounters, now).expect("reset");
        noop.push(t.elapsed());
        // One more call at the end of the queue, then it leaves again.
        let id = format!("extra-{i}");
        let c = WaitingCall::new(id.as_str(), "operator", "", now);
        let t = Instant::now();
        acd.handle(Input::Enqueue(c), now).expect("enqueue");
        enqueue.push(t.elapsed());
        acd.handle(Input::Abandon(id.as_str().into()), now)
            .expect("abandon");
    }
    println!(
        "waiting {waiting:>6}  unpause→offer   {}",
        summary(dispatch)
    );
    println!("waiting {waiting:>6}  pause→cancel    {}", summary(cancel));
    println!("waiting {waiting:>6}  input, no route {}", summary(noop));
    println!("waiting {waiting:>6}  enqueue at end  {}", summary(enqueue));
}

#[test]
#[ignore = "timing only; run with --ignored --nocapture (release)"]
fn dispatch_timing() {
    for n in [10, 1_000, 10_000] {
        one(n, 500);
    }
}
