//! The phones' RTP sender: one thread sends every stream's 20 ms PCMU packet,
//! callers and agent stand-ins alike, from the few shared sockets the
//! streams also receive on (symmetric RTP: ringback latches to the address
//! it hears from, which is the one our SDP named).
//!
//! The streams are spread over 20 phases of 1 ms (as independent phones
//! would be); each phase's packets leave with one `sendmmsg` per socket, so
//! thousands of phones cost one wake-up a millisecond. A key is an RFC 4733
//! event train in place of the audio: the first packet with the marker bit,
//! one packet per 20 ms with the growing duration, the last one with the E
//! bit sent three times (RFC 4733 §2.5.1.4), then audio again as a new
//! talkspurt with the timestamp moved on by the time the event took. The
//! moment the first event packet is handed to the kernel arms the stream's
//! [`ActionSlot`](crate::rx::ActionSlot), which a receiver fills with the
//! first prompt packet that answers the key.

use std::net::{SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::Arc;

use crate::pacer::Pacer;
use crate::procfs;
use crate::rx::Control;

/// Phases of a 20 ms packet interval.
pub const PHASES: usize = 20;
/// RTP header + 20 ms of G.711.
const PACKET: usize = 12 + 160;
/// Samples per packet at 8 kHz.
const FRAME: u32 = 160;
/// Volume of our events, −dBm0.
const EVENT_VOLUME: u8 = 10;

/// What the driver tells the sender.
pub enum TxCmd {
    /// Start sending a stream.
    Add(TxStream),
    /// Press a key on a stream for `ms` milliseconds.
    Key {
        /// Stream id.
        id: u32,
        /// RFC 4733 event code (0–9, 10 = `*`, 11 = `#`).
        event: u8,
        /// Key duration.
        ms: u32,
    },
    /// Stop sending a stream.
    Remove {
        /// Stream id.
        id: u32,
    },
}

/// A stream to send.
pub struct TxStream {
    /// Stream id (below the sender's capacity); also picks the phase.
    pub id: u32,
    /// Index of the shared socket it sends from.
    pub socket: usize,
    /// Where ringback wants its RTP (the SDP's address and port).
    pub dest: SocketAddrV4,
    /// Audio payload type (PCMU).
    pub pt: u8,
    /// Negotiated telephone-event payload type, if any.
    pub dtmf_pt: Option<u8>,
}

/// An RFC 4733 event in progress.
struct Train {
    event: u8,
    /// Packets until the E bit (key duration / 20 ms, at least 1).
    ticks: u32,
    sent: u32,
    ends: u8,
    ts: u32,
}

struct Stream {
    dest: libc::sockaddr_in,
    pt: u8,
    dtmf_pt: Option<u8>,
    ssrc: u32,
    seq: u16,
    ts: u32,
    marker: bool,
    frame: usize,
    train: Option<Train>,
}

/// Packets one stream sent.
#[derive(Clone, Copy, Default)]
pub struct Sent {
    /// From the first packet to removal.
    pub total: u32,
    /// Inside the measurement window.
    pub in_window: u32,
}

/// What the sender did.
#[derive(Default)]
pub struct TxResult {
    /// Per stream id.
    pub per_stream: Vec<Sent>,
    /// Packets handed to the kernel (audio and events).
    pub packets: u64,
    /// Of those, inside the window.
    pub packets_in_window: u64,
    /// RFC 4733 packets among them.
    pub event_packets: u64,
    /// Keys whose whole train went out.
    pub keys: u64,
    /// Packets `sendmmsg` did not take.
    pub send_errors: u64,
    /// `sendmmsg` calls.
    pub syscalls: u64,
    /// Lateness of the 1 ms phases: p99 and max, ms.
    pub late_p99_ms: f64,
    /// Worst lateness, ms.
    pub late_max_ms: f64,
    /// CPU seconds of the sender thread.
    pub cpu_s: f64,
}

/// 50 frames (one second) of a voice-band test signal in PCMU: 300 and
/// 1,100 Hz under a 4 Hz syllable envelope at about −15 dBFS, so the audio
/// is neither silence nor a DTMF pair.
fn voice_frames() -> Vec<[u8; 160]> {
    let two_pi = 2.0 * std::f64::consts::PI;
    (0..50)
        .map(|f| {
            let mut out = [0u8; 160];
            for (i, b) in out.iter_mut().enumerate() {
                let t = (f * 160 + i) as f64 / 8000.0;
                let env = 0.55 + 0.45 * (two_pi * 4.0 * t).sin();
                let x =
                    env * (0.6 * (two_pi * 300.0 * t).sin() + 0.4 * (two_pi * 1100.0 * t).sin());
                *b = ringback_media::g711::ulaw_encode((x * 5800.0) as i16);
            }
            out
        })
        .collect()
}

fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain data; all-zero is a valid start.
    let mut s: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    s.sin_family = libc::AF_INET as libc::sa_family_t;
    s.sin_port = a.port().to_be();
    s.sin_addr.s_addr = u32::from(*a.ip()).to_be();
    s
}

fn header(buf: &mut [u8], marker: bool, pt: u8, seq: u16, ts: u32, ssrc: u32) {
    buf[0] = 0x80;
    buf[1] = (pt & 0x7f) | if marker { 0x80 } else { 0 };
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[4..8].copy_from_slice(&ts.to_be_bytes());
    buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
}

impl Stream {
    /// Write this interval's packet into `buf`; its length, and whether it
    /// is the first packet of a key (to arm the action slot).
    fn next_packet(&mut self, buf: &mut [u8; PACKET], frames: &[[u8; 160]]) -> (usize, bool) {
        if let (Some(t), Some(dpt)) = (self.train.as_mut(), self.dtmf_pt) {
            let first = t.sent == 0;
            if first {
                t.ts = self.ts;
            }
            t.sent += 1;
            let end = t.sent >= t.ticks;
            let duration = (t.sent.min(t.ticks) * FRAME).min(u32::from(u16::MAX)) as u16;
            header(buf, first, dpt, self.seq, t.ts, self.ssrc);
            buf[12] = t.event;
            buf[13] = if end { 0x80 } else { 0 } | EVENT_VOLUME;
            buf[14..16].copy_from_slice(&duration.to_be_bytes());
            self.seq = self.seq.wrapping_add(1);
            if end {
                t.ends += 1;
                if t.ends >= 3 {
                    // Audio resumes after the time the event took.
                    self.ts = t.ts.wrapping_add(t.sent * FRAME);
                    self.marker = true;
                    self.train = None;
                }
            }
            return (16, first);
        }
        header(buf, self.marker, self.pt, self.seq, self.ts, self.ssrc);
        buf[12..].copy_from_slice(&frames[self.frame % frames.len()]);
        self.marker = false;
        self.frame += 1;
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(FRAME);
        (PACKET, false)
    }
}

/// The sender thread: runs until `ctl.stop`, taking commands from `cmds`.
/// `capacity` bounds stream ids; `sockets` are the shared RTP sockets;
/// `rt_priority` > 0 runs the thread `SCHED_FIFO` at that priority (phones
/// keep time whatever the server does to the shared CPUs).
pub fn send_loop(
    cmds: Receiver<TxCmd>,
    sockets: Arc<Vec<UdpSocket>>,
    ctl: Arc<Control>,
    capacity: usize,
    rt_priority: u8,
) -> TxResult {
    tighten_timer_slack();
    if rt_priority > 0 {
        let param = libc::sched_param {
            sched_priority: i32::from(rt_priority.min(99)),
        };
        // SAFETY: a scheduling call on the calling thread with a valid parameter.
        let rc =
            unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) };
        if rc != 0 {
            eprintln!("phone-load: SCHED_FIFO {rt_priority} refused for the sender (error {rc}); normal priority");
        }
    }
    let frames = voice_frames();
    let k = sockets.len().max(1);
    let mut res = TxResult {
        per_stream: vec![Sent::default(); capacity],
        ..TxResult::default()
    };
    let mut streams: Vec<Option<Stream>> = (0..capacity).map(|_| None).collect();
    // phases[p][socket] = stream ids sending in phase p from that socket.
    let mut phases: Vec<Vec<Vec<u32>>> = vec![vec![Vec::new(); k]; PHASES];
    let mut bufs: Vec<[u8; PACKET]> = Vec::new();
    let mut to_arm: Vec<u32> = Vec::new();
    let mut pacer = Pacer::new(1 << 20);
    while !ctl.stop.load(Ordering::Relaxed) {
        let tick = pacer.wait();
        while let Ok(cmd) = cmds.try_recv() {
            match cmd {
                TxCmd::Add(s) => {
                    let id = s.id as usize;
                    if id >= capacity {
                        continue;
                    }
                    let sock = s.socket % k;
                    streams[id] = Some(Stream {
                        dest: sockaddr(s.dest),
                        pt: s.pt,
                        dtmf_pt: s.dtmf_pt,
                        ssrc: rand::random(),
                        seq: rand::random(),
                        ts: rand::random(),
                        marker: true,
                        frame: id,
                        train: None,
                    });
                    phases[id % PHASES][sock].push(s.id);
                }
                TxCmd::Key { id, event, ms } => {
                    if let Some(Some(st)) = streams.get_mut(id as usize) {
                        if st.dtmf_pt.is_some() && st.train.is_none() {
                            st.train = Some(Train {
                                event,
                                ticks: ms.div_ceil(20).max(1),
                                sent: 0,
                                ends: 0,
                                ts: 0,
                            });
                        }
                    }
                }
                TxCmd::Remove { id } => {
                    if let Some(slot) = streams.get_mut(id as usize) {
                        if slot.take().is_some() {
                            for list in &mut phases[id as usize % PHASES] {
                                if let Some(pos) = list.iter().position(|&x| x == id) {
                                    list.swap_remove(pos);
                                }
                            }
                        }
                    }
                }
            }
        }
        let rt = procfs::realtime_ns();
        let in_window =
            rt >= ctl.win_start.load(Ordering::Relaxed) && rt < ctl.win_end.load(Ordering::Relaxed);
        let phase = (tick % PHASES as u64) as usize;
        for (si, list) in phases[phase].iter().enumerate() {
            if list.is_empty() {
                continue;
            }
            if bufs.len() < list.len() {
                bufs.resize(list.len(), [0u8; PACKET]);
            }
            to_arm.clear();
            let mut iovs: Vec<libc::iovec> = Vec::with_capacity(list.len());
            for (j, &id) in list.iter().enumerate() {
                // Every listed stream exists: Remove takes it off both.
                let Some(st) = streams[id as usize].as_mut() else {
                    continue;
                };
                let (n, first_event) = st.next_packet(&mut bufs[j], &frames);
                if n < PACKET {
                    res.event_packets += 1;
                    if first_event {
                        to_arm.push(id);
                    } else if st.train.is_none() {
                        res.keys += 1;
                    }
                }
                iovs.push(libc::iovec {
                    iov_base: bufs[j].as_mut_ptr().cast(),
                    iov_len: n,
                });
            }
            let mut msgs: Vec<libc::mmsghdr> = Vec::with_capacity(list.len());
            for (iov, &id) in iovs.iter_mut().zip(list.iter()) {
                let Some(st) = streams[id as usize].as_mut() else {
                    continue;
                };
                // SAFETY: all-zero is a valid mmsghdr; the pointers set below
                // refer to `iovs` and `streams`, which outlive the call.
                let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                m.msg_hdr.msg_name = (&mut st.dest as *mut libc::sockaddr_in).cast();
                m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
                m.msg_hdr.msg_iov = iov;
                m.msg_hdr.msg_iovlen = 1;
                msgs.push(m);
            }
            if !to_arm.is_empty() {
                let t = procfs::realtime_ns();
                for &id in &to_arm {
                    if let Some(slot) = ctl.actions.get(id as usize) {
                        slot.arm(t);
                    }
                }
            }
            let fd = sockets[si].as_raw_fd();
            let mut done = 0usize;
            for _attempt in 0..3 {
                if done >= msgs.len() {
                    break;
                }
                // SAFETY: `msgs[done..]` are valid headers whose buffers live
                // until the call returns.
                let n = unsafe {
                    libc::sendmmsg(
                        fd,
                        msgs[done..].as_mut_ptr(),
                        (msgs.len() - done) as libc::c_uint,
                        0,
                    )
                };
                res.syscalls += 1;
                if n <= 0 {
                    continue;
                }
                done += n as usize;
            }
            res.send_errors += (msgs.len() - done) as u64;
            res.packets += done as u64;
            if in_window {
                res.packets_in_window += done as u64;
            }
            // Streams are counted in list order; sendmmsg sends in order too.
            for &id in list.iter().take(done) {
                let s = &mut res.per_stream[id as usize];
                s.total += 1;
                if in_window {
                    s.in_window += 1;
                }
            }
        }
    }
    (res.late_p99_ms, res.late_max_ms) = pacer.lateness_ms();
    res.cpu_s = procfs::thread_cpu_seconds();
    res
}

/// Wake within 1 µs of the deadline instead of the default 50 µs slack (as
/// ringback's media clocks do).
fn tighten_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes an integer and affects only this thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1_000 as libc::c_ulong);
    }
}
