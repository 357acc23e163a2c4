//! One queue across nodes (`[cluster] shared_queues`): which node runs the
//! queues' ACD now. A task renews (or takes over) the lease in the shared
//! store every second and publishes the holder on a watch channel; call
//! tasks hop their waiting callers to it (`call/hop.rs`), and the callback
//! service starts attempts only while this node holds it.
//!
//! A single node publishes [`Holder::Me`] once and never changes it.

use std::net::SocketAddr;
use std::time::Duration;

use chrono::Utc;
use ringback_call::inbound::AcdAt;
use tokio::sync::watch;

use crate::acd_task::AcdHandle;
use crate::store::acd_owner::{AcdLease, Claim};
use crate::store::Store;

/// How often the holder renews and the others look.
pub const RENEW_EVERY: Duration = Duration::from_secs(1);

/// Who runs the queues' ACD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// This node.
    Me,
    /// Another node, reached for hops at `sip`.
    Node {
        /// Its node id.
        id: String,
        /// Its SIP address (UDP).
        sip: SocketAddr,
        /// Its API, if it said.
        api: Option<String>,
    },
    /// Not known now (the store cannot be reached, or the lease says
    /// something unusable): callers wait with music.
    Unknown,
}

impl Holder {
    /// What the call core is told.
    pub fn acd_at(&self) -> AcdAt {
        match self {
            Holder::Me => AcdAt::Here,
            Holder::Node { id, .. } => AcdAt::Node(id.clone()),
            Holder::Unknown => AcdAt::Unknown,
        }
    }

    /// This node holds the lease.
    pub fn is_me(&self) -> bool {
        *self == Holder::Me
    }
}

/// The holder as tasks see it.
pub type OwnerWatch = watch::Receiver<Holder>;

/// A single node: always the owner. The sender is kept for the
/// process's life (a dropped sender would wake every receiver).
pub fn single_node() -> OwnerWatch {
    let (tx, rx) = watch::channel(Holder::Me);
    std::mem::forget(tx);
    rx
}

/// What the lease task needs.
pub struct LeaseSetup {
    /// The shared store.
    pub store: Store,
    /// This node's id.
    pub node_id: String,
    /// Where other nodes reach this one for hops.
    pub sip_addr: SocketAddr,
    /// This node's API, shown as the owner's.
    pub api_url: Option<String>,
    /// How long a lease runs without renewal.
    pub lease: Duration,
    /// The ACD, told the agents' states at a takeover.
    pub acd: AcdHandle,
}

/// Claim once (so the first calls already know), then keep renewing or
/// watching in a task.
pub async fn spawn(setup: LeaseSetup) -> OwnerWatch {
    let mut state = LeaseState::default();
    let first = state.step(&setup).await;
    let (tx, rx) = watch::channel(first);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(RENEW_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            every.tick().await;
            let holder = state.step(&setup).await;
            tx.send_if_modified(|h| {
                if *h == holder {
                    return false;
                }
                tracing::info!(from = ?h, to = ?holder, "the queues' ACD moved");
                *h = holder;
                true
            });
        }
    });
    rx
}

/// The task's memory between claims: until when our own lease runs (we
/// keep acting as the owner through a store hiccup while it does).
#[derive(Default)]
struct LeaseState {
    mine_until: Option<chrono::DateTime<Utc>>,
    /// The other node that held the lease last (whose agent states a
    /// takeover adopts).
    last_other: Option<String>,
}

impl LeaseState {
    async fn step(&mut self, s: &LeaseSetup) -> Holder {
        let now = Utc::now();
        // A draining node gives the queues up: its lease ends now, the
        // next node to ask takes it, and our waiting callers hop there.
        let draining = crate::drain::is_draining();
        let lease = if draining {
            chrono::Duration::zero()
        } else {
            chrono::Duration::from_std(s.lease).unwrap_or(chrono::Duration::seconds(5))
        };
        let sip = s.sip_addr.to_string();
        let claim = Claim {
            node_id: &s.node_id,
            sip_addr: &sip,
            api_url: s.api_url.as_deref(),
            now,
            until: now + lease,
        };
        match s.store.claim_acd(&claim).await {
            Ok(l) if l.node_id == s.node_id && draining => {
                self.mine_until = None;
                crate::metrics::set_acd_owner(false);
                Holder::Unknown
            }
            Ok(l) if l.node_id == s.node_id => {
                if let Some(old) = self.last_other.take() {
                    adopt_agent_states(&s.store, &s.acd, &old).await;
                }
                self.mine_until = Some(claim.until);
                crate::metrics::set_acd_owner(true);
                Holder::Me
            }
            Ok(l) => {
                self.mine_until = None;
                self.last_other = Some(l.node_id.clone());
                crate::metrics::set_acd_owner(false);
                other(l)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew or read the ACD lease");
                // Ours until it runs out; after that another node may
                // have taken it, so we stop acting as the owner.
                if self.mine_until.is_some_and(|t| t > Utc::now()) {
                    Holder::Me
                } else {
                    crate::metrics::set_acd_owner(false);
                    Holder::Unknown
                }
            }
        }
    }
}

fn other(l: AcdLease) -> Holder {
    match l.sip_addr.parse() {
        Ok(sip) => Holder::Node {
            id: l.node_id,
            sip,
            api: l.api_url,
        },
        Err(_) => {
            tracing::error!(node = %l.node_id, addr = %l.sip_addr, "the ACD lease holder's address is unusable");
            Holder::Unknown
        }
    }
}

/// When this node takes the queues over from another one, agents keep
/// the pause or log-out the old owner gave them (from its last agent
/// events in the store): a paused agent is not rung because the node that
/// knew it died. Everything else starts available here (a call the old
/// owner was ringing or bridging died with it). Done before this node
/// says it owns the queues, so no caller is offered to an agent first.
async fn adopt_agent_states(store: &Store, acd: &AcdHandle, old: &str) {
    let states = match store.agent_states_left_by(old).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, %old, "cannot read the agent states the old owner left");
            return;
        }
    };
    for (agent, state, reason) in states {
        let id = ringback_acd::AgentId::from(agent.as_str());
        let input = match state.as_str() {
            "paused" => ringback_acd::Input::AgentPause { agent: id, reason },
            "logged-out" => ringback_acd::Input::AgentLogout(id),
            _ => continue,
        };
        tracing::info!(%agent, %state, %old, "agent state taken over from the old owner");
        acd.input(input);
    }
}
