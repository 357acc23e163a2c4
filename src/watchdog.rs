//! The agent-state watchdog: an agent must never stay `ringing` or
//! `on-call` for a call that no longer exists.
//!
//! Every call task tells the ACD how its call ended, and every leg has an
//! RTP timeout, so this should never find anything. It exists for what
//! those guarantees do not cover (a task that panicked, a message lost in a
//! shutdown race): every [`INTERVAL`] it asks the ACD which agents are
//! ringing or on a call, asks the endpoint which of those calls are still
//! routed to a live task, and frees an agent whose call was missing at two
//! checks in a row (one check could race a call that is just starting or
//! ending). Each repair is logged and counted
//! (`ringback_watchdog_repairs_total`).

use std::collections::HashSet;
use std::time::Duration;

use ringback_acd::{AgentSnapshot, AgentState, EndedBy, Input};

use crate::acd_task::AcdHandle;
use crate::endpoint::{EndpointCmd, EndpointHandle};
use crate::metrics;

/// How often agent states are checked against live calls.
pub const INTERVAL: Duration = Duration::from_secs(15);

/// An agent bound to a call, as the ACD sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Binding {
    agent: String,
    call: String,
    on_call: bool,
}

fn bindings(agents: &[AgentSnapshot]) -> Vec<Binding> {
    agents
        .iter()
        .filter_map(|a| match &a.state {
            AgentState::Ringing { call } => Some(Binding {
                agent: a.id.as_str().to_string(),
                call: call.as_str().to_string(),
                on_call: false,
            }),
            AgentState::OnCall { call } => Some(Binding {
                agent: a.id.as_str().to_string(),
                call: call.as_str().to_string(),
                on_call: true,
            }),
            _ => None,
        })
        .collect()
}

/// The decision, apart from the I/O: given the bindings and whether each
/// call is routed, the repairs due now; `suspects` carries the bindings
/// seen without a call at the previous check.
fn repairs(
    bound: &[Binding],
    routed: &[bool],
    suspects: &mut HashSet<Binding>,
) -> Vec<(Binding, Input)> {
    let mut missing = HashSet::new();
    let mut out = Vec::new();
    for (b, live) in bound.iter().zip(routed) {
        if *live {
            continue;
        }
        if suspects.contains(b) {
            let input = if b.on_call {
                Input::CallEnded {
                    call: b.call.as_str().into(),
                    agent: b.agent.as_str().into(),
                    by: EndedBy::Caller,
                }
            } else {
                Input::Abandon(b.call.as_str().into())
            };
            out.push((b.clone(), input));
        } else {
            missing.insert(b.clone());
        }
    }
    *suspects = missing;
    out
}

/// Run the watchdog until the endpoint or the ACD is gone.
pub async fn run(acd: AcdHandle, endpoint: EndpointHandle) {
    let mut suspects = HashSet::new();
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (agents, _) = acd.snapshot().await;
        let bound = bindings(&agents);
        if bound.is_empty() {
            suspects.clear();
            continue;
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        endpoint.send(EndpointCmd::Routed {
            call_ids: bound.iter().map(|b| b.call.clone()).collect(),
            reply,
        });
        let Ok(routed) = answer.await else {
            return; // the endpoint stopped: shutting down
        };
        for (b, input) in repairs(&bound, &routed, &mut suspects) {
            let state = if b.on_call { "on-call" } else { "ringing" };
            tracing::warn!(agent = %b.agent, call = %b.call, state, "agent bound to a call that no longer exists; freeing the agent");
            metrics::watchdog_repair(state);
            acd.input(input);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound(agent: &str, call: &str, on_call: bool) -> Binding {
        Binding {
            agent: agent.into(),
            call: call.into(),
            on_call,
        }
    }

    #[test]
    fn a_live_call_is_never_touched() {
        let mut suspects = HashSet::new();
        let b = [bound("alice", "c1", true)];
        for _ in 0..5 {
            assert!(repairs(&b, &[true], &mut suspects).is_empty());
        }
        assert!(suspects.is_empty());
    }

    #[test]
    fn a_missing_call_is_repaired_at_the_second_check_only() {
        let mut suspects = HashSet::new();
        let b = [bound("alice", "gone", true), bound("bob", "gone2", false)];
        assert!(repairs(&b, &[false, false], &mut suspects).is_empty());
        let r = repairs(&b, &[false, false], &mut suspects);
        assert_eq!(r.len(), 2);
        assert!(matches!(
            &r[0].1,
            Input::CallEnded { call, agent, by: EndedBy::Caller }
                if call.as_str() == "gone" && agent.as_str() == "alice"
        ));
        assert!(matches!(&r[1].1, Input::Abandon(call) if call.as_str() == "gone2"));
    }

    #[test]
    fn a_call_that_comes_back_or_changes_clears_the_suspicion() {
        let mut suspects = HashSet::new();
        // Missing once (a race with a call just starting), then routed.
        assert!(repairs(&[bound("alice", "c1", false)], &[false], &mut suspects).is_empty());
        assert!(repairs(&[bound("alice", "c1", false)], &[true], &mut suspects).is_empty());
        assert!(repairs(&[bound("alice", "c1", false)], &[false], &mut suspects).is_empty());
        // The agent moved on to another call meanwhile: a new binding.
        assert!(repairs(&[bound("alice", "c2", true)], &[false], &mut suspects).is_empty());
    }
}
