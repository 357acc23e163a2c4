//! `phone-load`'s callers: N slots, each keeping one phone call going with a
//! fixed behaviour, so the mix holds for the whole run:
//!
//! * `browse`: navigates the menus and stays in them, listening: every
//!   think time it presses `1`, which alternates between the main menu and
//!   the sub-menu (`dialplans/phone.toml`), each key answered by the other
//!   menu's prompt;
//! * `listen`: presses `2` in the main menu (the hold queue's entry prompt,
//!   then music) and listens until the end;
//! * `agent`: zeroes out (`0`: the operator queue's entry prompt, and an
//!   agent stand-in's phone rings), talks until the agent hangs up, then
//!   calls again;
//! * `early`: hangs up a few seconds into the main menu, then calls again.
//!
//! Every call sends RTP from its answer to its end. A key's action is the
//! first prompt packet after it (see [`crate::rx::ActionSlot`]) and, for a
//! zero-out, the INVITE at the agent stand-in.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::phone_agents::AgentEvent;
use crate::phone_media::{Kind, Media};
use crate::sip::{State, Uac};

/// What a slot's caller does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Behaviour {
    /// Navigates the menus for the whole call.
    Browse,
    /// Goes to the hold queue and listens.
    Listen,
    /// Zeroes out to an agent, talks, calls again.
    Agent,
    /// Hangs up early, calls again.
    Early,
}

impl Behaviour {
    /// All, in the order of `--mix`.
    pub const ALL: [Behaviour; 4] = [
        Behaviour::Browse,
        Behaviour::Listen,
        Behaviour::Agent,
        Behaviour::Early,
    ];

    /// Its name in `--mix` and the results.
    pub fn name(self) -> &'static str {
        match self {
            Behaviour::Browse => "browse",
            Behaviour::Listen => "listen",
            Behaviour::Agent => "agent",
            Behaviour::Early => "early",
        }
    }
}

/// Parse `browse:50,listen:20,agent:20,early:10` into shares summing to 1.
pub fn parse_mix(s: &str) -> Result<[f64; 4], String> {
    let mut mix = [0.0; 4];
    for part in s.split(',').filter(|p| !p.trim().is_empty()) {
        let (name, pct) = part
            .split_once(':')
            .ok_or_else(|| format!("`{part}`: expected NAME:PERCENT"))?;
        let i = Behaviour::ALL
            .iter()
            .position(|b| b.name() == name.trim())
            .ok_or_else(|| format!("unknown behaviour `{name}` (browse, listen, agent, early)"))?;
        mix[i] = pct
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("`{pct}` is not a number"))?
            .max(0.0);
    }
    let sum: f64 = mix.iter().sum();
    if sum <= 0.0 {
        return Err("the mix is empty".into());
    }
    Ok(mix.map(|m| m / sum))
}

/// Behaviour of each of `n` slots: every prefix of the slots keeps the mix
/// (largest remainder), so the ramp-up has the same mix as the full level.
pub fn assign(n: usize, mix: &[f64; 4]) -> Vec<Behaviour> {
    let mut counts = [0usize; 4];
    (0..n)
        .map(|i| {
            let want = |b: usize| mix[b] * (i + 1) as f64 - counts[b] as f64;
            let b = (0..4)
                .max_by(|&x, &y| want(x).total_cmp(&want(y)))
                .unwrap_or(0);
            counts[b] += 1;
            Behaviour::ALL[b]
        })
        .collect()
}

/// Timing of a caller, seconds as (min, max), drawn uniformly.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// From the answer (or the last key) to the next key.
    pub think: (f64, f64),
    /// From the answer to an early caller's BYE.
    pub early: (f64, f64),
    /// From a call's end to the slot's next INVITE.
    pub redial: (f64, f64),
    /// How long a key is held (RFC 4733 duration).
    pub key_ms: u32,
    /// A key without an action after this long counts as unanswered.
    pub action_timeout: Duration,
}

fn draw((lo, hi): (f64, f64)) -> Duration {
    Duration::from_secs_f64((lo + (hi - lo).max(0.0) * rand::random::<f64>()).max(0.0))
}

/// How a call ended.
#[derive(Clone, Debug, PartialEq)]
pub enum End {
    /// Still going (or never started).
    Open,
    /// We hung up (early caller, or the teardown) and the BYE was answered.
    ByUs,
    /// The agent hung up and ringback ended the call: a normal end.
    ByAgent,
    /// Failed: INVITE refused or unanswered, BYE unanswered, or the server
    /// hung up on a caller who was not talking to an agent.
    Failed(String),
}

/// One call.
pub struct CallRec {
    /// The slot that placed it.
    pub slot: usize,
    /// Its behaviour.
    pub behaviour: Behaviour,
    /// Its RTP stream.
    pub stream: u32,
    /// How it ended.
    pub end: End,
    /// Browse: in the main menu (else the sub-menu).
    at_main: bool,
    /// Index of its zero-out key in [`Callers::keys`].
    zero_key: Option<usize>,
    /// An agent's INVITE arrived for this call.
    pub agent_rung: bool,
}

/// One key press and what answered it.
#[derive(Clone, Debug)]
pub struct KeyRec {
    /// The call.
    pub call: usize,
    /// The key.
    pub digit: char,
    /// The prompt that should answer it.
    pub expected: &'static str,
    /// When its first event packet left (CLOCK_REALTIME ns; 0 = not yet).
    pub tx_ns: u64,
    /// Key → first packet of the next prompt, ns.
    pub prompt_ns: Option<u64>,
    /// The prompt that started (by its first bytes), if known.
    pub got: Option<String>,
    /// Zero-out: key → the agent's INVITE, ns.
    pub agent_ns: Option<u64>,
    /// No prompt started within the action timeout.
    pub unanswered: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Dial(usize),
    Key(usize),
    StopAudio(usize),
    Bye(usize),
}

/// First 8 PCMU bytes of each prompt → its name (to tell which prompt answered a key).
pub type PromptHeads = HashMap<u64, String>;

/// All callers.
pub struct Callers {
    /// The SIP side.
    pub uac: Uac,
    /// Every call placed, by index (= the UAC's index).
    pub calls: Vec<CallRec>,
    /// Slot behaviours.
    pub slots: Vec<Behaviour>,
    /// Every key pressed.
    pub keys: Vec<KeyRec>,
    /// Slots not placing calls any more because the generator ran out of streams.
    pub starved_slots: usize,
    pending: Vec<(usize, Instant)>,
    sched: BinaryHeap<Reverse<(Instant, u64, Ev)>>,
    seq: u64,
    timing: Timing,
    server_ip: Ipv4Addr,
    heads: PromptHeads,
    tearing_down: bool,
}

impl Callers {
    /// Callers for `slots`, dialing through `uac` (which must track changes).
    pub fn new(
        mut uac: Uac,
        slots: Vec<Behaviour>,
        timing: Timing,
        server_ip: Ipv4Addr,
        heads: PromptHeads,
    ) -> Callers {
        uac.changed = Some(Vec::new());
        uac.pcmu_only = true;
        Callers {
            uac,
            calls: Vec::new(),
            slots,
            keys: Vec::new(),
            starved_slots: 0,
            pending: Vec::new(),
            sched: BinaryHeap::new(),
            seq: 0,
            timing,
            server_ip,
            heads,
            tearing_down: false,
        }
    }

    fn at(&mut self, when: Instant, ev: Ev) {
        self.seq += 1;
        self.sched.push(Reverse((when, self.seq, ev)));
    }

    /// Place slot `slot`'s first call now.
    pub fn dial(&mut self, slot: usize, media: &mut Media) {
        let Some(&behaviour) = self.slots.get(slot) else {
            return;
        };
        let Some((stream, port)) = media.reserve(Kind::Caller) else {
            self.starved_slots += 1;
            return;
        };
        let i = self.uac.add_call(port);
        self.calls.push(CallRec {
            slot,
            behaviour,
            stream,
            end: End::Open,
            at_main: true,
            zero_key: None,
            agent_rung: false,
        });
        self.uac.start_call(i);
    }

    /// Calls up now.
    pub fn up(&self) -> usize {
        self.uac
            .calls
            .iter()
            .filter(|c| matches!(c.state, State::Up { .. }))
            .count()
    }

    /// Handle SIP changes, agent INVITEs, due events and key actions.
    pub fn step(&mut self, media: &mut Media, agent_events: &mut Vec<AgentEvent>) {
        let changed = self
            .uac
            .changed
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        for i in changed {
            self.on_change(i, media);
        }
        for ev in agent_events.drain(..) {
            let (caller, at_ns) = match ev {
                AgentEvent::Invited { caller, at_ns } => (caller, at_ns),
                AgentEvent::Answered { caller } => {
                    if let Some(c) = caller.and_then(|c| self.calls.get(c)) {
                        media.set_relayed(c.stream);
                    }
                    continue;
                }
            };
            let Some(c) = caller.and_then(|c| self.calls.get_mut(c)) else {
                continue;
            };
            c.agent_rung = true;
            let Some(k) = c.zero_key else { continue };
            let stream = c.stream;
            let key = &mut self.keys[k];
            let tx = if key.tx_ns != 0 {
                key.tx_ns
            } else {
                media
                    .action(stream)
                    .map_or(0, |s| s.armed_ns.load(Ordering::Acquire))
            };
            if tx != 0 && key.agent_ns.is_none() {
                key.agent_ns = Some(at_ns.saturating_sub(tx));
            }
        }
        let now = Instant::now();
        while let Some(Reverse((when, _, ev))) = self.sched.peek().copied() {
            if when > now {
                break;
            }
            self.sched.pop();
            self.on_event(ev, media);
        }
        self.check_keys(media);
    }

    fn on_change(&mut self, i: usize, media: &mut Media) {
        let Some(c) = self.calls.get(i) else { return };
        let (slot, behaviour, stream) = (c.slot, c.behaviour, c.stream);
        let now = Instant::now();
        match self.uac.calls[i].state.clone() {
            State::Up { rtp_port } => {
                let dtmf_pt = self.uac.calls[i].dtmf_pt;
                media.start(stream, SocketAddrV4::new(self.server_ip, rtp_port), dtmf_pt);
                if self.tearing_down {
                    self.at(now, Ev::StopAudio(i));
                    return;
                }
                match behaviour {
                    Behaviour::Early => self.at(now + draw(self.timing.early), Ev::StopAudio(i)),
                    _ => self.at(now + draw(self.timing.think), Ev::Key(i)),
                }
            }
            State::Done => {
                self.calls[i].end = End::ByUs;
                self.redial(slot);
            }
            State::Failed(why) => {
                media.stop(stream);
                let c = &mut self.calls[i];
                c.end =
                    if why == "server hung up" && c.behaviour == Behaviour::Agent && c.agent_rung {
                        End::ByAgent
                    } else {
                        End::Failed(why)
                    };
                self.redial(slot);
            }
            _ => {}
        }
    }

    fn redial(&mut self, slot: usize) {
        if !self.tearing_down {
            let when = Instant::now() + draw(self.timing.redial);
            self.at(when, Ev::Dial(slot));
        }
    }

    fn on_event(&mut self, ev: Ev, media: &mut Media) {
        match ev {
            Ev::Dial(slot) => {
                if !self.tearing_down {
                    self.dial(slot, media);
                }
            }
            Ev::Key(i) => self.press(i, media),
            Ev::StopAudio(i) => {
                if let State::Up { .. } = self.uac.calls[i].state {
                    media.stop(self.calls[i].stream);
                    // Let the last packets arrive before the BYE, so what the
                    // server counted is what we sent.
                    self.at(Instant::now() + Duration::from_millis(60), Ev::Bye(i));
                }
            }
            Ev::Bye(i) => self.uac.hang_up(i),
        }
    }

    fn press(&mut self, i: usize, media: &mut Media) {
        if self.tearing_down || !matches!(self.uac.calls[i].state, State::Up { .. }) {
            return;
        }
        let c = &mut self.calls[i];
        let (digit, expected, again) = match c.behaviour {
            Behaviour::Browse => {
                let e = if c.at_main {
                    "support-menu"
                } else {
                    "main-menu"
                };
                c.at_main = !c.at_main;
                ('1', e, true)
            }
            Behaviour::Listen => ('2', "please-hold", false),
            Behaviour::Agent => ('0', "please-hold", false),
            Behaviour::Early => return,
        };
        let stream = c.stream;
        // A key still waiting on this stream: it had no answer.
        if let Some(pos) = self
            .pending
            .iter()
            .position(|&(k, _)| self.keys[k].call == i)
        {
            let (k, _) = self.pending.swap_remove(pos);
            self.keys[k].unanswered = true;
        }
        if let Some(slot) = media.action(stream) {
            slot.armed_ns.store(0, Ordering::Release);
        }
        let k = self.keys.len();
        if digit == '0' {
            self.calls[i].zero_key = Some(k);
        }
        self.keys.push(KeyRec {
            call: i,
            digit,
            expected,
            tx_ns: 0,
            prompt_ns: None,
            got: None,
            agent_ns: None,
            unanswered: false,
        });
        self.pending.push((k, Instant::now()));
        media.key(stream, digit, self.timing.key_ms);
        if again {
            let next =
                Duration::from_millis(u64::from(self.timing.key_ms) + 60) + draw(self.timing.think);
            self.at(Instant::now() + next, Ev::Key(i));
        }
    }

    fn check_keys(&mut self, media: &Media) {
        let timeout = self.timing.action_timeout;
        let mut j = 0;
        while j < self.pending.len() {
            let (k, issued) = self.pending[j];
            let stream = self.calls[self.keys[k].call].stream;
            let Some(slot) = media.action(stream) else {
                self.pending.swap_remove(j);
                continue;
            };
            let armed = slot.armed_ns.load(Ordering::Acquire);
            let at = slot.at_ns.load(Ordering::Acquire);
            let key = &mut self.keys[k];
            if armed != 0 && key.tx_ns == 0 {
                key.tx_ns = armed;
            }
            if armed != 0 && at != 0 {
                key.prompt_ns = Some(at.saturating_sub(armed));
                let head = slot.head.load(Ordering::Relaxed);
                key.got = Some(
                    self.heads
                        .get(&head)
                        .cloned()
                        .unwrap_or_else(|| format!("unknown:{head:016x}")),
                );
                slot.armed_ns.store(0, Ordering::Release);
                self.pending.swap_remove(j);
                continue;
            }
            if issued.elapsed() > timeout {
                key.unanswered = true;
                slot.armed_ns.store(0, Ordering::Release);
                self.pending.swap_remove(j);
                continue;
            }
            j += 1;
        }
    }

    /// Teardown: no more calls or keys; stop every call's audio and hang up,
    /// `rate` BYEs a second.
    pub fn tear_down(&mut self, rate: f64) {
        self.tearing_down = true;
        self.sched
            .retain(|Reverse((_, _, ev))| matches!(ev, Ev::Bye(_) | Ev::StopAudio(_)));
        let now = Instant::now();
        let mut n = 0u64;
        for i in 0..self.calls.len() {
            if let State::Up { .. } = self.uac.calls[i].state {
                let when = now + Duration::from_secs_f64(n as f64 / rate.max(1.0));
                self.at(when, Ev::StopAudio(i));
                n += 1;
            }
        }
    }

    /// Events still scheduled (BYEs during the teardown).
    pub fn scheduled(&self) -> usize {
        self.sched.len()
    }
}
