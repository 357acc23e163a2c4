//! Carrying out what the call core asks for: each [`Output`] becomes a
//! prompt played, a message to the ACD or the callback service (whose
//! answer goes straight back into the core), a leg rung, dropped or
//! bridged, a hop, a REFER, a lookup.

use std::sync::Arc;

use ringback_call::inbound::{Input, Output};
use ringback_call::Ending;
use ringback_media::prompt::Prompt;
use ringback_sansio::{Core, Now};
use tokio::sync::mpsc;

use super::Call;
use crate::acd_task::AcdCmd;

impl Call {
    /// Carry out everything the core asked for; questions to the ACD or the
    /// callback service are answered into the core at once.
    pub(super) async fn carry_out(&mut self) -> Option<Ending> {
        while let Some(output) = self.core.poll_output() {
            let answer = match output {
                Output::Ended(end) => return Some(end),
                Output::Play {
                    prompts,
                    looped,
                    token,
                    hold_music,
                } => {
                    let mut list = self.resolve_prompts(&prompts);
                    if list.is_empty() && hold_music {
                        list.push(Arc::clone(&self.ctx.fallback_hold_music));
                    }
                    // An empty list ends at once (PlaybackDone follows).
                    self.play(list, looped, token);
                    None
                }
                Output::StopPlayback => {
                    self.stop_playing();
                    None
                }
                Output::Enqueue(waiting) => {
                    self.entering_queue(waiting.queue.as_str());
                    let (tx, rx) = mpsc::unbounded_channel();
                    self.queue_rx = Some(rx);
                    self.ctx.acd.send(AcdCmd::Input {
                        input: ringback_acd::Input::Enqueue(waiting),
                        notify: Some(tx),
                    });
                    None
                }
                Output::Acd(input) => {
                    self.ctx.acd.input(input);
                    None
                }
                Output::Hop { node, hop } => self.place_hop(node, hop),
                Output::BridgeHop => {
                    self.bridge_hop();
                    None
                }
                Output::DropHop => {
                    self.drop_hop();
                    None
                }
                Output::RingAgent { agent } => self.ring_agent(agent).await,
                Output::DropLeg { agent } => {
                    self.drop_leg(&agent);
                    None
                }
                Output::Bridge { agent } => {
                    self.bridge(&agent);
                    None
                }
                Output::Refer { target } => {
                    self.send_refer(&target);
                    None
                }
                Output::RefreshSession { every } => {
                    self.refresh_session(every);
                    None
                }
                Output::Live(update) => {
                    self.live(update);
                    None
                }
                Output::Lookup {
                    lookup,
                    caller,
                    vars,
                } => {
                    self.start_lookup(lookup, caller, vars);
                    None
                }
                Output::QueryPosition => {
                    Some(Input::Position(self.ctx.acd.position(&self.call_id).await))
                }
                Output::QueryQueueState => Some(self.queue_state().await),
                Output::CheckPendingCallback { queue } => {
                    let cb = self.ctx.callbacks.live_for(&self.cdr.caller, &queue).await;
                    Some(Input::PendingCallback(cb.map(|c| c.id)))
                }
                Output::CheckCallbackCapacity { queue } => {
                    let (pending, max) = self.ctx.callbacks.pending(&queue).await;
                    Some(Input::CallbackCapacity { pending, max })
                }
                Output::RequestCallback {
                    queue,
                    number,
                    entered_at,
                } => Some(self.request_callback(queue, number, entered_at).await),
                Output::CancelCallback { id } => {
                    let r = self
                        .ctx
                        .callbacks
                        .cancel(&id, "cancelled by the caller")
                        .await;
                    if let Err(e) = &r {
                        tracing::warn!(%id, error = %e.message, "cannot cancel the callback");
                    }
                    Some(Input::CallbackCancelled { ok: r.is_ok() })
                }
            };
            if let Some(input) = answer {
                self.core.handle(input, Now::system());
            }
        }
        None
    }

    fn resolve_prompts(&self, names: &[String]) -> Vec<Arc<Prompt>> {
        names
            .iter()
            .filter_map(|n| {
                let p = self.snapshot.prompts.get_in(self.core.language(), n);
                if p.is_none() {
                    tracing::warn!(prompt = %n, "prompt missing; skipped");
                }
                p
            })
            .collect()
    }
}
