//! A call's recording (`crate::recording`): started when the caller is
//! bridged to an agent whose queue or own settings say `record = true`,
//! stopped when that bridge ends; and the queue's `record_announcement`,
//! played to the caller once, in front of what the core plays on entering
//! the queue (its entry prompt, or the music, which then starts after it).

use std::sync::Arc;

use ringback_media::prompt::Prompt;

use super::Call;
use crate::recording::{self, Recording};

/// The token of the announcement played before the hold music (the core's
/// tokens count up from 1 and never reach it).
const NOTICE_TOKEN: u64 = u64::MAX;

/// What a call knows about its recording.
#[derive(Default)]
pub(super) struct CallRecording {
    /// The recording of the bridge in place.
    active: Option<Recording>,
    /// A queue's announcement is due with the next playlist.
    due: Option<String>,
    /// Queues whose announcement the caller heard.
    heard: Vec<String>,
    /// The looped music to start once the announcement ends (its token).
    then: Option<(Vec<Arc<Prompt>>, u64)>,
}

impl Call {
    /// The core sent the caller to `queue`: its announcement (once per
    /// queue and call) goes in front of the next playlist.
    pub(super) fn entering_queue(&mut self, queue: &str) {
        let notice = self
            .ctx
            .legs
            .config
            .queues
            .get(queue)
            .and_then(|q| q.record_announcement.clone());
        if let Some(n) = notice {
            if !self.rec.heard.iter().any(|q| q == queue) {
                self.rec.heard.push(queue.to_string());
                self.rec.due = Some(n);
            }
        }
    }

    /// Play what the core asked for, with a due announcement first: in
    /// front of a one-off playlist (its end is the core's), or alone before
    /// looped music (which starts when it ends).
    pub(super) fn play(&mut self, mut list: Vec<Arc<Prompt>>, looped: bool, token: u64) {
        self.rec.then = None;
        let notice = self.rec.due.take().and_then(|n| {
            let p = self.snapshot.prompts.get_in(self.core.language(), &n);
            if p.is_none() {
                tracing::warn!(prompt = %n, "record_announcement prompt missing; skipped");
            }
            p
        });
        match notice {
            Some(n) if looped => {
                self.rec.then = Some((list, token));
                self.stream.play(vec![n], false, NOTICE_TOKEN);
            }
            Some(n) => {
                list.insert(0, n);
                self.stream.play(list, false, token);
            }
            None => self.stream.play(list, looped, token),
        }
    }

    /// Stop playing (and forget music waiting for the announcement).
    pub(super) fn stop_playing(&mut self) {
        self.rec.then = None;
        self.stream.stop();
    }

    /// A playlist ended: if it was the announcement, the music it held
    /// back starts (true: nothing for the core).
    pub(super) fn notice_done(&mut self, token: u64) -> bool {
        if token != NOTICE_TOKEN {
            return false;
        }
        if let Some((list, token)) = self.rec.then.take() {
            self.stream.play(list, true, token);
        }
        true
    }

    /// The caller is bridged to `agent`: record when the queue or the
    /// agent says so.
    pub(super) fn start_recording(&mut self, agent: &str) {
        self.stop_recording();
        let queue = self.core.queue();
        if !recording::wanted(&self.ctx.legs.config, queue, agent) {
            return;
        }
        let Some(agent_stream) = self
            .legs
            .iter()
            .find(|l| l.agent == agent)
            .and_then(|l| l.leg.stream())
        else {
            return;
        };
        let (rec, caller, agent_tap) = self.ctx.recorder.start(&self.call_id, agent, queue);
        self.stream.record(Some(caller));
        agent_stream.record(Some(agent_tap));
        tracing::info!(%agent, queue, "recording the call");
        self.rec.active = Some(rec);
    }

    /// The bridge ended (or the call): the recording ends here.
    pub(super) fn stop_recording(&mut self) {
        if let Some(rec) = self.rec.active.take() {
            self.stream.record(None);
            rec.stop();
        }
    }
}
