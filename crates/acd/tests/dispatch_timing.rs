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
use ringback_sansio::{Core, Now};

/// Handles one input and drains what it queued; `what` names it if refused.
fn run(acd: &mut Acd, input: Input, now: Now, what: &str) -> Vec<Output> {
    acd.handle(input, now);
    let out: Vec<Output> = std::iter::from_fn(|| acd.poll_output()).collect();
    if let Some(Output::Refused(e)) = out.first() {
        panic!("{what}: {e}");
    }
    out
}

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
    let mut now = Now::system().plus(Duration::from_secs(1_000_000));
    let ms = Duration::from_millis(1);
    for a in ["alice", "bob"] {
        run(&mut acd, Input::AgentLogin(a.into()), now, "login");
        run(
            &mut acd,
            Input::AgentReachable(a.into(), true),
            now,
            "reachable",
        );
    }
    run(
        &mut acd,
        Input::AgentPause {
            agent: "alice".into(),
            reason: "fill".into(),
        },
        now,
        "pause",
    );
    for i in 0..waiting {
        now = now.plus(ms);
        let c = WaitingCall::new(
            format!("cb-{i:08}-0123456789abcdef"),
            "operator",
            "",
            now.mono,
        );
        run(&mut acd, Input::Enqueue(c), now, "enqueue");
    }

    let mut dispatch = Vec::with_capacity(samples);
    let mut cancel = Vec::with_capacity(samples);
    let mut noop = Vec::with_capacity(samples);
    let mut enqueue = Vec::with_capacity(samples);
    for i in 0..samples {
        now = now.plus(ms);
        let t = Instant::now();
        let out = run(
            &mut acd,
            Input::AgentUnpause("alice".into()),
            now,
            "unpause",
        );
        dispatch.push(t.elapsed());
        assert!(
            out.iter().any(|o| matches!(o, Output::Offer { .. })),
            "no offer"
        );
        let t = Instant::now();
        run(
            &mut acd,
            Input::AgentPause {
                agent: "alice".into(),
                reason: "again".into(),
            },
            now,
            "pause",
        );
        cancel.push(t.elapsed());
        // An input while bob (free, but in no queue with calls) is the only
        // available agent: routing runs and finds nothing.
        let t = Instant::now();
        run(&mut acd, Input::ResetDailyCounters, now, "reset");
        noop.push(t.elapsed());
        // One more call at the end of the queue, then it leaves again.
        let id = format!("extra-{i}");
        let c = WaitingCall::new(id.as_str(), "operator", "", now.mono);
        let t = Instant::now();
        run(&mut acd, Input::Enqueue(c), now, "enqueue");
        enqueue.push(t.elapsed());
        run(&mut acd, Input::Abandon(id.as_str().into()), now, "abandon");
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
