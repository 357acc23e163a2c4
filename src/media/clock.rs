//! The media clock: a few OS threads, each serving every stream assigned to
//! it once per 20 ms tick, spread over 1 ms phases.
//!
//! Why not a tokio task per call? 10,000 calls would mean 500,000 timer
//! wake-ups a second, each with its own scheduling jitter. Here one absolute
//! deadline per thread drives all of its streams, prompt frames are
//! pre-encoded `Arc` slices shared between calls, and a packet is a 12-byte
//! header write plus one `sendto` on the call's own socket (borrowed, not
//! duplicated, so a call costs one file descriptor). Commands reach the thread
//! through a channel and take effect at the next tick.
//!
//! Receiving is not done here: a stream's packets are read by the
//! receive thread paired with its clock ([`super::rx_thread`]), so the
//! real-time thread's 1 ms phases only ever wait for sends.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringback_media::codec::Codec;
use ringback_media::prompt::{Prompt, FRAME_SAMPLES};
use ringback_media::rtp::RtpSender;
use socket2::{SockAddr, SockRef};
use tokio::sync::mpsc::UnboundedSender;

use super::MediaEvent;
use priority::{raise_priority, set_realtime, tighten_timer_slack, RtGovernor};

/// One packetisation interval.
pub const TICK: Duration = Duration::from_millis(20);

/// Phases per tick: a clock thread wakes every `TICK / SLOTS` (1 ms) and
/// serves the streams of one slot.
pub const SLOTS: usize = 20;

/// How many missed ticks a late thread sends at once before it gives up
/// catching up (and counts an overrun).
const MAX_CATCH_UP: u32 = 5;

/// State both the media clock and the call's receive task look at.
#[derive(Debug, Default)]
pub struct StreamShared {
    /// Where RTP goes: first from SDP, then latched to the source of the
    /// peer's packets (symmetric RTP, RFC 4961) so NAT'd phones hear audio.
    pub remote: Mutex<Option<SocketAddr>>,
    /// True while the peer does not want our audio (it answered or offered
    /// so that we must not send): the clock skips the stream.
    pub mute: AtomicBool,
    /// True while the peer holds the call: it may send nothing, so the RTP
    /// timeout does not run.
    pub on_hold: AtomicBool,
    /// Packets sent on this stream.
    pub sent: AtomicU64,
    /// Packets received on this stream.
    pub received: AtomicU64,
    /// True while the stream is bridged to another leg: the receive task
    /// relays the peer's packets and the clock sends nothing.
    pub bridged: AtomicBool,
    /// Where received packets are relayed while bridged.
    pub relay: Mutex<Option<super::Relay>>,
    /// The stream's owner wants DTMF detected in the received audio even though
    /// telephone-event was negotiated (a trunk with `dtmf = "inband"`); see
    /// [`super::Stream::set_inband_dtmf`]. Read by the receive task per packet.
    pub inband_dtmf: AtomicBool,
    /// SRTP sending context on a secure stream (set when the stream opens,
    /// never changed): the clock and a bridge relay seal with it.
    pub srtp_out: super::secure::Outbound,
    /// The peer's new key after a re-offer changed it: the receive task
    /// switches to it when the first packet sealed with it arrives.
    pub srtp_rekey: Mutex<Option<ringback_media::srtp::Srtp>>,
    /// Where a bridge's relayed packets left off on this stream (next
    /// sequence number and timestamp), so the next bridge continues the
    /// numbering: SRTP refuses to send an index twice.
    pub relay_next: Mutex<Option<(u16, u32)>>,
    /// Where the clock's own packets left off (next sequence number and
    /// timestamp; 0 = nothing sent yet): a bridge continues from here, so
    /// the phone sees one stream with one SSRC and no jump back in its
    /// numbering (jitter buffers that ignore SSRC changes drop "late"
    /// packets; SRTP receivers may refuse them).
    pub clock_next: AtomicU64,
    /// A browser stream's ICE and DTLS packets go here (its transport task).
    pub transport: std::sync::OnceLock<super::browser::TransportTx>,
}

/// Everything the clock needs to own a stream.
pub struct StreamSpec {
    /// Unique id (the engine hands these out).
    pub id: u64,
    /// The call's RTP socket, shared with its receive task.
    pub socket: Arc<super::RtpSocket>,
    /// Remote address and counters.
    pub shared: Arc<StreamShared>,
    /// Negotiated codec.
    pub codec: Codec,
    /// Negotiated payload type for that codec (usually 0 or 8).
    pub pt: u8,
    /// The stream's SSRC, shared with bridge relays out of it.
    pub ssrc: u32,
    /// Where `PlaybackDone` goes.
    pub events: UnboundedSender<MediaEvent>,
}

/// A command for a clock thread.
pub enum Command {
    /// Start serving a stream.
    Add(Box<StreamSpec>),
    /// Replace what the stream plays. `token` comes back in `PlaybackDone`.
    Play {
        /// Stream id.
        id: u64,
        /// Prompts in order.
        prompts: Vec<Arc<Prompt>>,
        /// Repeat the list until stopped (music on hold).
        looped: bool,
        /// Identifies this request in `PlaybackDone`.
        token: u64,
    },
    /// Stop playing (silence follows); no `PlaybackDone` is sent.
    Stop {
        /// Stream id.
        id: u64,
    },
    /// Stop serving the stream.
    Remove {
        /// Stream id.
        id: u64,
    },
}

/// Counters of one clock thread (read by metrics and benchmarks).
#[derive(Debug, Default)]
pub struct ClockStats {
    /// RTP packets handed to the kernel.
    pub packets_sent: AtomicU64,
    /// `sendto` failures (buffer full, unreachable).
    pub send_errors: AtomicU64,
    /// Ticks that ran more than one interval late.
    pub overruns: AtomicU64,
    /// Streams currently served.
    pub streams: AtomicU64,
    /// Worst lateness of a tick in microseconds since start.
    pub max_late_us: AtomicU64,
    /// Worst lateness (µs) in the current one-second window.
    pub window_late_us: AtomicU64,
    /// Worst lateness (µs) in the previous one-second window.
    pub last_window_late_us: AtomicU64,
    /// Share of the previous one-second window spent serving streams, %.
    pub last_window_busy_pct: AtomicU64,
}

impl ClockStats {
    /// Worst lateness over the last one to two seconds: what admission
    /// control asks before it adds another stream.
    pub fn recent_late_us(&self) -> u64 {
        self.window_late_us
            .load(Ordering::Relaxed)
            .max(self.last_window_late_us.load(Ordering::Relaxed))
    }

    fn record_late(&self, late_us: u64) {
        self.max_late_us.fetch_max(late_us, Ordering::Relaxed);
        self.window_late_us.fetch_max(late_us, Ordering::Relaxed);
    }

    fn roll_window(&self, busy: Duration, window: Duration) {
        let w = self.window_late_us.swap(0, Ordering::Relaxed);
        self.last_window_late_us.store(w, Ordering::Relaxed);
        let pct = busy.as_secs_f64() * 100.0 / window.as_secs_f64().max(1e-3);
        self.last_window_busy_pct
            .store(pct.round() as u64, Ordering::Relaxed);
    }
}

struct Stream {
    spec: StreamSpec,
    rtp: RtpSender,
    /// Bridged at the last tick: the relay's numbering must be picked up
    /// when the clock sends again.
    was_bridged: bool,
    playlist: Vec<Arc<Prompt>>,
    item: usize,
    frame: usize,
    looped: bool,
    token: Option<u64>,
}

/// One frame of silence per codec, shared by every stream (a copy per
/// stream would add 160 bytes to the state the clock walks every tick).
fn silence(codec: Codec) -> &'static [u8; FRAME_SAMPLES] {
    static PCMU: [u8; FRAME_SAMPLES] = [0xFF; FRAME_SAMPLES];
    static PCMA: [u8; FRAME_SAMPLES] = [0xD5; FRAME_SAMPLES];
    match codec {
        Codec::Pcmu => &PCMU,
        Codec::Pcma => &PCMA,
    }
}

/// Handle to one clock thread.
#[derive(Clone)]
pub struct ClockHandle {
    tx: Sender<Command>,
    /// The thread's counters.
    pub stats: Arc<ClockStats>,
}

impl ClockHandle {
    /// Start a clock thread named `media-clock-{index}` (at `SCHED_FIFO`
    /// priority `rt_priority` if allowed; 0 keeps normal priority).
    pub fn spawn(index: usize, rt_priority: u8) -> std::io::Result<ClockHandle> {
        let (tx, rx) = mpsc::channel();
        let stats = Arc::new(ClockStats::default());
        let st = Arc::clone(&stats);
        std::thread::Builder::new()
            .name(format!("media-clock-{index}"))
            .spawn(move || {
                let granted = raise_priority(index, rt_priority);
                let governor = RtGovernor {
                    priority: if granted { rt_priority } else { 0 },
                    realtime: granted,
                };
                run(rx, st, governor)
            })?;
        Ok(ClockHandle { tx, stats })
    }

    /// Send a command; false if the thread has stopped.
    pub fn send(&self, cmd: Command) -> bool {
        self.tx.send(cmd).is_ok()
    }
}

/// A clock thread's streams, spread over the [`SLOTS`] phases of a tick.
///
/// Why phases: if every stream were sent at the top of the tick, a stream's
/// send instant would move with the number of packets queued before it
/// (about 5 ms per thread at 1,000 calls), and that queueing delay *is* the
/// receiver's jitter. Giving each stream a fixed phase (slot) and waking once
/// per slot bounds the queue to 1/[`SLOTS`] of the thread's streams, while
/// each stream still sends exactly once per [`TICK`].
struct Slots {
    slots: Vec<HashMap<u64, Stream>>,
    /// Which slot holds a stream.
    index: HashMap<u64, usize>,
}

impl Slots {
    fn new() -> Slots {
        Slots {
            slots: (0..SLOTS).map(|_| HashMap::new()).collect(),
            index: HashMap::new(),
        }
    }

    /// Add to the emptiest slot, so phases stay balanced as calls come and go.
    fn insert(&mut self, id: u64, s: Stream) {
        let slot = (0..SLOTS).min_by_key(|&i| self.slots[i].len()).unwrap_or(0);
        if let Some(old) = self.index.insert(id, slot) {
            self.slots[old].remove(&id);
        }
        self.slots[slot].insert(id, s);
    }

    fn get_mut(&mut self, id: u64) -> Option<&mut Stream> {
        let slot = *self.index.get(&id)?;
        self.slots[slot].get_mut(&id)
    }

    fn remove(&mut self, id: u64) {
        if let Some(slot) = self.index.remove(&id) {
            self.slots[slot].remove(&id);
        }
    }

    fn len(&self) -> usize {
        self.index.len()
    }
}

fn run(rx: Receiver<Command>, stats: Arc<ClockStats>, mut governor: RtGovernor) {
    tighten_timer_slack();
    let mut streams = Slots::new();
    let mut buf = [0u8; 12 + FRAME_SAMPLES];
    // Sealed packets of secure streams (header + payload + tag).
    let mut sealed: Vec<u8> = Vec::with_capacity(12 + FRAME_SAMPLES + 32);
    let slot_len = TICK / SLOTS as u32;
    let mut next = Instant::now() + slot_len;
    let mut slot = 0usize;
    let mut window_start = Instant::now();
    let mut busy = Duration::ZERO;
    loop {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        loop {
            match rx.try_recv() {
                Ok(cmd) => apply(&mut streams, cmd),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            }
        }
        stats.streams.store(streams.len() as u64, Ordering::Relaxed);
        let mut served = 0;
        let work_start = Instant::now();
        while next <= Instant::now() && served < MAX_CATCH_UP * SLOTS as u32 {
            let now = Instant::now();
            let late = now.saturating_duration_since(next).as_micros() as u64;
            stats.record_late(late);
            for s in streams.slots[slot].values_mut() {
                serve(s, &mut buf, &mut sealed, &stats);
            }
            slot = (slot + 1) % SLOTS;
            next += slot_len;
            served += 1;
        }
        let now = Instant::now();
        busy += now.saturating_duration_since(work_start);
        if now.duration_since(window_start) >= Duration::from_secs(1) {
            stats.roll_window(busy, now.duration_since(window_start));
            let pct = stats.last_window_busy_pct.load(Ordering::Relaxed);
            if let Some(realtime) = governor.on_window(pct) {
                set_realtime(realtime, governor.priority, pct);
            }
            window_start = now;
            busy = Duration::ZERO;
        }
        if next <= Instant::now() {
            // Too far behind: skip ahead rather than burst many packets.
            stats.overruns.fetch_add(1, Ordering::Relaxed);
            next = Instant::now() + slot_len;
        }
    }
}

fn apply(streams: &mut Slots, cmd: Command) {
    match cmd {
        Command::Add(spec) => {
            let id = spec.id;
            // Random sequence and timestamp bases (RFC 3550), the
            // stream's own SSRC.
            let first = RtpSender::random();
            let rtp = RtpSender::new(spec.ssrc, first.next_seq(), first.next_ts());
            streams.insert(
                id,
                Stream {
                    spec: *spec,
                    rtp,
                    was_bridged: false,
                    playlist: Vec::new(),
                    item: 0,
                    frame: 0,
                    looped: false,
                    token: None,
                },
            );
        }
        Command::Play {
            id,
            prompts,
            looped,
            token,
        } => {
            if let Some(s) = streams.get_mut(id) {
                s.playlist = prompts;
                s.item = 0;
                s.frame = 0;
                s.looped = looped;
                s.token = Some(token);
                s.rtp.start_talkspurt();
                if exhausted(s) {
                    finish(s);
                }
            }
        }
        Command::Stop { id } => {
            if let Some(s) = streams.get_mut(id) {
                s.playlist.clear();
                s.token = None;
            }
        }
        Command::Remove { id } => {
            streams.remove(id);
        }
    }
}

/// The playlist ran out: report it and fall back to silence.
fn finish(s: &mut Stream) {
    s.playlist.clear();
    if let Some(token) = s.token.take() {
        let _ = s.spec.events.send(MediaEvent::PlaybackDone { token });
    }
}

/// The next frame of the playlist, advancing the position (wrapping when looped).
fn next_frame(s: &mut Stream) -> Option<(Arc<Prompt>, usize)> {
    let codec = s.spec.codec;
    let mut wrapped = false;
    loop {
        if s.item >= s.playlist.len() {
            if !s.looped || wrapped {
                return None;
            }
            s.item = 0;
            s.frame = 0;
            wrapped = true;
        }
        let p = s.playlist.get(s.item)?;
        if s.frame < p.frames(codec) {
            s.frame += 1;
            return Some((Arc::clone(p), s.frame - 1));
        }
        s.item += 1;
        s.frame = 0;
    }
}

/// True when a non-looped playlist has no frame left to send.
fn exhausted(s: &Stream) -> bool {
    let codec = s.spec.codec;
    !s.looped
        && s.playlist
            .iter()
            .enumerate()
            .skip(s.item)
            .all(|(i, p)| i == s.item && s.frame >= p.frames(codec) || p.frames(codec) == 0)
}

/// Send this tick's packet for one stream and advance its playback.
fn serve(
    s: &mut Stream,
    buf: &mut [u8; 12 + FRAME_SAMPLES],
    sealed: &mut Vec<u8>,
    stats: &ClockStats,
) {
    let codec = s.spec.codec;
    let frame = next_frame(s);
    let payload: &[u8] = match &frame {
        Some((p, i)) => p.frame(codec, *i),
        None => silence(codec),
    };
    let remote = s.spec.shared.remote.lock().ok().and_then(|r| *r);
    let bridged = s.spec.shared.bridged.load(Ordering::Relaxed);
    let held = s.spec.shared.mute.load(Ordering::Relaxed) || bridged;
    if bridged {
        s.was_bridged = true;
    } else if std::mem::take(&mut s.was_bridged) {
        // Back from a bridge: go on where the relay stopped.
        let relayed = s
            .spec
            .shared
            .relay_next
            .lock()
            .ok()
            .and_then(|mut n| n.take());
        if let Some((seq, ts)) = relayed {
            s.rtp = RtpSender::new(s.spec.ssrc, seq, ts);
            s.rtp.start_talkspurt();
        }
    }
    match remote {
        Some(addr) if !held => {
            let n = s.rtp.write(s.spec.pt, payload, &mut buf[..]);
            s.spec.shared.clock_next.store(
                super::relay::pack_next(s.rtp.next_seq(), s.rtp.next_ts()),
                Ordering::Relaxed,
            );
            let Some(wire) = super::secure::seal(&s.spec.shared.srtp_out, &buf[..n], sealed) else {
                stats.send_errors.fetch_add(1, Ordering::Relaxed);
                return;
            };
            match SockRef::from(s.spec.socket.get_ref()).send_to(wire, &SockAddr::from(addr)) {
                Ok(_) => {
                    stats.packets_sent.fetch_add(1, Ordering::Relaxed);
                    s.spec.shared.sent.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {
                    stats.send_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        // Nowhere to send (hold, or no address yet): keep the timestamp
        // running so the stream stays continuous when it resumes.
        _ => s.rtp.skip(FRAME_SAMPLES as u32),
    }
    // Report completion right after the last frame went out.
    if s.token.is_some() && exhausted(s) {
        finish(s);
    }
}

mod priority;
#[cfg(test)]
mod tests;
