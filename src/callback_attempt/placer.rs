//! How attempts are started: the handles every attempt shares
//! ([`AttemptDeps`]) and the callback service's [`AttemptStarter`].

use std::sync::Arc;
use std::time::Duration;

use ringback_callback::Callback;

use super::run;
use crate::acd_task::AcdHandle;
use crate::callbacks::{AttemptStarter, CallbackHandle};
use crate::endpoint::EndpointHandle;
use crate::live::Live;
use crate::outbound::{LegDeps, LegSource};
use crate::snapshot::Dialplans;
use crate::store::{CdrWriter, Store};

/// What callback attempts need from the rest of the server.
pub struct AttemptDeps {
    /// Config, RTP ports and clocks (the agent's and the customer's legs).
    pub legs: LegDeps,
    /// The lease on the callback (one node dials it).
    pub store: Store,
    /// Leg records.
    pub cdr: CdrWriter,
    /// The queue the callback waits in.
    pub acd: AcdHandle,
    /// Live view and today's counters.
    pub live: Arc<Live>,
    /// Prompts (whisper, intro, music).
    pub dialplans: Arc<Dialplans>,
    /// To send SIP.
    pub endpoint: EndpointHandle,
}

impl LegSource for AttemptDeps {
    fn legs(&self) -> &LegDeps {
        &self.legs
    }
}

/// Starts an attempt task per eligible callback (the callback service's
/// [`AttemptStarter`]).
pub struct AttemptPlacer {
    deps: Arc<AttemptDeps>,
}

impl AttemptPlacer {
    /// Place attempts with `deps`.
    pub fn new(deps: AttemptDeps) -> Self {
        AttemptPlacer {
            deps: Arc::new(deps),
        }
    }
}

impl AttemptStarter for AttemptPlacer {
    fn start(
        &self,
        svc: CallbackHandle,
        cb: Callback,
        lease: Duration,
        stop: tokio::sync::oneshot::Receiver<()>,
    ) {
        tokio::spawn(run(Arc::clone(&self.deps), svc, cb, lease, stop));
    }
}
