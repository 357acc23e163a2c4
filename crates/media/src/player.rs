//! A sans-IO prompt player: the queue of prompts one call is hearing.
//!
//! The media clock asks every playing call for its next 20 ms frame; the player hands
//! out a borrowed slice of a shared pre-encoded [`Prompt`] (no copy, no allocation),
//! says when a queued prompt finished (the dialplan's `PromptDone`), and when a new
//! talkspurt starts (RTP marker bit). A loop prompt (music on hold) fills the time when
//! the queue is empty, so a waiting caller never hears dead air.

use crate::codec::Codec;
use crate::prompt::Prompt;
use std::collections::VecDeque;
use std::sync::Arc;

/// One frame handed out by [`Player::next_frame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlayerFrame<'a> {
    /// 160 bytes of G.711 to send.
    pub data: &'a [u8],
    /// This frame is the first after silence or after a change of source: set the RTP
    /// marker bit ([`crate::rtp::RtpSender::start_talkspurt`]).
    pub talkspurt_start: bool,
    /// This was the last frame of a queued (non-loop) prompt: feed `PromptDone`.
    pub prompt_done: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    None,
    Queue,
    Loop,
}

/// Per-call playback state. Cheap to create; holds only `Arc`s to shared prompts.
#[derive(Debug, Clone)]
pub struct Player {
    queue: VecDeque<Arc<Prompt>>,
    pos: usize,
    /// The front prompt handed out its last frame; pop it on the next call (it must stay
    /// alive while the caller borrows that frame).
    front_done: bool,
    loop_prompt: Option<Arc<Prompt>>,
    loop_pos: usize,
    last: Source,
}

impl Default for Player {
    fn default() -> Self {
        Self::new()
    }
}

impl Player {
    /// An idle player.
    pub fn new() -> Self {
        Player {
            queue: VecDeque::with_capacity(4),
            pos: 0,
            front_done: false,
            loop_prompt: None,
            loop_pos: 0,
            last: Source::None,
        }
    }

    /// Appends a prompt to play after the ones already queued (e.g. "you are caller",
    /// "3", "in line").
    pub fn enqueue(&mut self, p: Arc<Prompt>) {
        self.queue.push_back(p);
    }

    /// Replaces whatever is queued with `p` (a new menu prompt).
    pub fn play_now(&mut self, p: Arc<Prompt>) {
        self.stop();
        self.enqueue(p);
    }

    /// Stops queued prompts at once, without a `prompt_done` (barge-in: the caller
    /// pressed a key, so the menu must stop talking). The loop prompt stays.
    pub fn stop(&mut self) {
        self.queue.clear();
        self.pos = 0;
        self.front_done = false;
    }

    /// Sets or clears the prompt that loops while nothing is queued (music on hold).
    /// Setting a new one restarts it from the beginning.
    pub fn set_loop(&mut self, p: Option<Arc<Prompt>>) {
        self.loop_prompt = p;
        self.loop_pos = 0;
    }

    /// Whether a queued prompt is still playing (the loop does not count).
    pub fn is_playing(&self) -> bool {
        self.queue.len() > usize::from(self.front_done)
    }

    /// Name of the queued prompt currently playing.
    pub fn current(&self) -> Option<&str> {
        self.queue
            .get(usize::from(self.front_done))
            .map(|p| p.name.as_str())
    }

    /// The next 20 ms frame, or `None` when there is nothing to play (send silence or
    /// skip the timestamp, as the caller prefers). An empty prompt plays as one silent
    /// frame so its `prompt_done` is never lost.
    pub fn next_frame(&mut self, codec: Codec) -> Option<PlayerFrame<'_>> {
        if self.front_done {
            self.queue.pop_front();
            self.pos = 0;
            self.front_done = false;
        }
        let (source, idx, done) = if let Some(p) = self.queue.front() {
            let frames = p.frames(codec).max(1);
            let idx = self.pos;
            self.pos += 1;
            self.front_done = self.pos >= frames;
            (Source::Queue, idx, self.front_done)
        } else if let Some(l) = &self.loop_prompt {
            let frames = l.frames(codec).max(1);
            let idx = self.loop_pos % frames;
            self.loop_pos = (idx + 1) % frames;
            (Source::Loop, idx, false)
        } else {
            self.last = Source::None;
            return None;
        };
        let talkspurt_start = self.last != source;
        self.last = source;
        let prompt = match source {
            Source::Loop => self.loop_prompt.as_deref()?,
            _ => self.queue.front()?.as_ref(),
        };
        Some(PlayerFrame {
            data: prompt.frame(codec, idx),
            talkspurt_start,
            prompt_done: done,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompt::{self, FRAME_SAMPLES};

    fn p(name: &str, frames: usize, level: i16) -> Arc<Prompt> {
        Arc::new(Prompt::from_samples_8k(
            name,
            &vec![level; frames * FRAME_SAMPLES],
        ))
    }

    /// Plays until idle and returns (first byte of each frame, marker flags, done flags).
    fn drain(pl: &mut Player, max: usize) -> (Vec<u8>, Vec<bool>, Vec<bool>) {
        let (mut b, mut m, mut d) = (vec![], vec![], vec![]);
        for _ in 0..max {
            let Some(f) = pl.next_frame(Codec::Pcmu) else {
                break;
            };
            assert_eq!(f.data.len(), FRAME_SAMPLES);
            b.push(f.data[0]);
            m.push(f.talkspurt_start);
            d.push(f.prompt_done);
        }
        (b, m, d)
    }

    #[test]
    fn plays_queue_in_order_and_reports_done() {
        let mut pl = Player::new();
        assert!(pl.next_frame(Codec::Pcmu).is_none());
        let a = p("a", 2, 1000);
        let b = p("b", 3, -1000);
        pl.enqueue(a.clone());
        pl.enqueue(b.clone());
        assert_eq!(pl.current(), Some("a"));
        let ua = a.frame(Codec::Pcmu, 0)[0];
        let ub = b.frame(Codec::Pcmu, 0)[0];
        let (bytes, marks, done) = drain(&mut pl, 100);
        assert_eq!(bytes, vec![ua, ua, ub, ub, ub]);
        assert_eq!(marks, vec![true, false, false, false, false]);
        assert_eq!(done, vec![false, true, false, false, true]);
        assert!(!pl.is_playing());
        assert!(pl.next_frame(Codec::Pcmu).is_none());
        // Starting again after silence is a new talkspurt.
        pl.enqueue(a);
        assert!(pl.next_frame(Codec::Pcmu).unwrap().talkspurt_start);
    }

    #[test]
    fn barge_in_and_loop() {
        let mut pl = Player::new();
        let moh = p("moh", 3, 500);
        pl.set_loop(Some(moh.clone()));
        pl.enqueue(p("menu", 10, 2000));
        let f = pl.next_frame(Codec::Pcma).unwrap();
        assert!(f.talkspurt_start && !f.prompt_done);
        assert!(pl.is_playing());
        pl.stop(); // caller pressed a key
        assert!(!pl.is_playing());
        let (_, marks, done) = drain(&mut pl, 7);
        assert_eq!(marks, vec![true, false, false, false, false, false, false]);
        assert!(done.iter().all(|d| !d), "loop never reports done");
        // An announcement interrupts the music, which resumes afterwards.
        pl.play_now(p("pos", 1, 3000));
        let f = pl.next_frame(Codec::Pcmu).unwrap();
        assert!(f.talkspurt_start && f.prompt_done);
        let f = pl.next_frame(Codec::Pcmu).unwrap();
        assert!(f.talkspurt_start && !f.prompt_done);
        assert_eq!(f.data, moh.frame(Codec::Pcmu, 1));
        pl.set_loop(None);
        assert!(pl.next_frame(Codec::Pcmu).is_none());
    }

    #[test]
    fn empty_prompt_still_completes() {
        let mut pl = Player::new();
        pl.enqueue(Arc::new(prompt::silence(std::time::Duration::ZERO)));
        let f = pl.next_frame(Codec::Pcmu).unwrap();
        assert!(f.prompt_done);
        assert_eq!(f.data, &[0xFF; 160][..]);
        assert!(pl.next_frame(Codec::Pcmu).is_none());
    }
}
