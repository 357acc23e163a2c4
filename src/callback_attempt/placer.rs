//! How attempts are started: the handles every attempt shares
//! ([`AttemptDeps`]) and the callback service's [`AttemptStarter`].

use std::sync::Arc;
use std::time::Duration;

use ringback_callback::Callback;

use super::start;
use crate::acd_task::AcdHandle;
use crate::callbacks::{AttemptStarter, CallbackHandle};
use crate::directory::Directory;
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
    /// Who the customers called back are (names, accounts), in memory.
    pub directory: Arc<Directory>,
    /// The skill each customer language requires (`[languages]`).
    pub language_skills: Arc<std::collections::BTreeMap<String, (String, u8)>>,
    /// Prompts (whisper, intro, music).
    pub dialplans: Arc<Dialplans>,
    /// To send SIP.
    pub endpoint: EndpointHandle,
    /// Call recordings.
    pub recorder: Arc<crate::recording::Recorder>,
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
        start(Arc::clone(&self.deps), svc, cb, lease, stop);
    }
}

/// The callback's context for the agent's phone: `X-Ringback-Callback`,
/// `-Caller` (with `-Caller-Name` and `-Account` when the customer
/// directory knows the number), `-Queue`, `-Waited` and `-Context`.
pub(super) fn agent_headers(
    cb: &Callback,
    waited_secs: i64,
    known: Option<&ringback_customers::Known>,
) -> Vec<(String, String)> {
    let mut headers = vec![
        ("X-Ringback-Callback".into(), cb.id.clone()),
        ("X-Ringback-Caller".into(), cb.number.clone()),
    ];
    if let Some(k) = known {
        let name = ringback_customers::header_value(&k.name, 100);
        headers.push(("X-Ringback-Caller-Name".into(), name));
        if let Some(account) = &k.account {
            let account = ringback_customers::header_value(account, 100);
            headers.push(("X-Ringback-Account".into(), account));
        }
    }
    headers.extend([
        ("X-Ringback-Queue".into(), cb.queue.clone()),
        ("X-Ringback-Waited".into(), waited_secs.to_string()),
        (
            "X-Ringback-Context".into(),
            cb.context.replace(['\r', '\n'], " "),
        ),
    ]);
    headers
}
