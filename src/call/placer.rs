//! How calls are placed: the handles every call shares ([`CallDeps`]) and
//! the endpoint's [`CallStarter`] that admits an INVITE and spawns its task.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ringback_call::inbound;
use ringback_dialplan::Dialplan;
use ringback_media::prompt::Prompt;
use tokio::sync::mpsc::UnboundedReceiver;

use super::admit::admit;
use super::{run, CallSetup};
use crate::acd_task::AcdHandle;
use crate::callbacks::CallbackHandle;
use crate::directory::Directory;
use crate::endpoint::{CallRefused, CallStarter, NewCall, SipInput};
use crate::live::Live;
use crate::outbound::{LegDeps, LegSource};
use crate::snapshot::{Dialplans, Snapshot};
use crate::store::{CdrWriter, Store};

/// What calls need from the rest of the server, shared by all of them.
pub struct CallDeps {
    /// Config, RTP ports and clocks (legs and the caller's stream).
    pub legs: LegDeps,
    /// Repeat-caller lookups.
    pub store: Store,
    /// Who callers are (names, accounts), in memory.
    pub directory: Arc<Directory>,
    /// Call records.
    pub cdr: CdrWriter,
    /// Queues and agents.
    pub acd: AcdHandle,
    /// Callback requests from the queue.
    pub callbacks: CallbackHandle,
    /// Live view and today's counters.
    pub live: Arc<Live>,
    /// The dialplans new calls start with.
    pub dialplans: Arc<Dialplans>,
    /// What each queue means to a caller waiting in it.
    pub queue_settings: Arc<BTreeMap<String, inbound::QueueSettings>>,
    /// The skill each caller language requires (`[languages]`).
    pub language_skills: Arc<BTreeMap<String, (String, u8)>>,
    /// Played when a queue's music-on-hold prompt is missing.
    pub fallback_hold_music: Arc<Prompt>,
    /// Dialplan `lookup` nodes' endpoints.
    pub lookups: Arc<crate::lookups::Lookups>,
    /// Call recordings.
    pub recorder: Arc<crate::recording::Recorder>,
    /// Who runs the queues' ACD (hops to another node; see `hop.rs`).
    pub owner: crate::cluster::OwnerWatch,
}

impl LegSource for CallDeps {
    fn legs(&self) -> &LegDeps {
        &self.legs
    }
}

/// Starts a task per admitted INVITE (the endpoint's [`CallStarter`]).
pub struct CallPlacer {
    deps: Arc<CallDeps>,
}

impl CallPlacer {
    /// Place calls with `deps`.
    pub fn new(deps: CallDeps) -> Self {
        CallPlacer {
            deps: Arc::new(deps),
        }
    }

    /// The handles calls share (the public page's calls use them too).
    pub fn deps(&self) -> Arc<CallDeps> {
        Arc::clone(&self.deps)
    }
}

impl CallStarter for CallPlacer {
    fn snapshot(&self) -> Arc<Snapshot> {
        self.deps.dialplans.current()
    }

    fn start(
        &self,
        call: NewCall,
        sip: UnboundedReceiver<SipInput>,
    ) -> Result<(), Box<CallRefused>> {
        let admitted = match admit(&self.deps, &call.invite, call.feature) {
            Ok(a) => a,
            Err(r) => {
                return Err(Box::new(CallRefused {
                    code: r.code,
                    reason: r.reason,
                    metric: r.metric,
                    invite: call.invite,
                }))
            }
        };
        let setup = CallSetup {
            admitted,
            key: call.key,
            invite: call.invite,
            call_id: call.call_id,
            source: call.source,
            transport: call.transport,
            endpoint: call.endpoint,
        };
        tokio::spawn(run(Arc::clone(&self.deps), setup, sip));
        Ok(())
    }
}

impl inbound::Extensions for Snapshot {
    fn plan_for(&self, number: &str) -> Option<Arc<Dialplan>> {
        self.plans.for_number(number)
    }
}

/// The queues' call-side settings, from the configuration.
pub fn queue_settings(config: &crate::config::Config) -> BTreeMap<String, inbound::QueueSettings> {
    config
        .queues
        .iter()
        .map(|(name, q)| {
            let settings = inbound::QueueSettings {
                music_on_hold: q.music_on_hold.clone(),
                entry_prompt: q.entry_prompt.clone(),
                announce_every: (q.announce_every_secs > 0)
                    .then(|| Duration::from_secs(q.announce_every_secs)),
                overflow_prompt: q.overflow_prompt.clone(),
                callback_offer_ewt_above: q.callback_offer_ewt_above_secs.map(Duration::from_secs),
                callback_offer_on_zero_out: q.callback_offer_on_zero_out,
                // Checked when the configuration was loaded.
                survey: q.survey.as_ref().and_then(|s| s.survey().ok()),
            };
            (name.clone(), settings)
        })
        .collect()
}
