//! The fake browsers' media: one sender thread that seals and sends every
//! leg's 20 ms PCMU packet (a 400 Hz tone; the legs spread over 20 one-ms
//! phases, as independent browsers would be), one RFC 4733 key per leg on
//! request, and a STUN consent check per leg every 5 s (RFC 7675); and a few
//! receiver threads (epoll over a shard of the legs' sockets, `recvmmsg`,
//! kernel `SO_TIMESTAMPNS` arrival times, as `ivr-load`) that open every
//! SRTP packet with the leg's key and time the server's audio.

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Duration;

use ringback_media::dtmf::DtmfSender;
use ringback_media::rtp::{looks_like_rtcp, RtpSender};
use ringback_media::srtp::{KeyMaterial, Srtp, SrtpError};
use ringback_webrtc::{is_dtls, is_stun};

use crate::pacer::Pacer;
use crate::procfs;
use crate::rx::{Jitter, INTERVAL_NS};
use crate::webrtc_stun;

/// Shared between the driver and the media threads.
pub struct MediaCtl {
    /// Measurement window, CLOCK_REALTIME ns (`u64::MAX`: not started / still open).
    pub win_start: AtomicU64,
    /// End of the window.
    pub win_end: AtomicU64,
    /// Every leg presses its key once, as soon as this is set.
    pub press: AtomicBool,
    /// Stop all media threads.
    pub stop: AtomicBool,
    /// SRTP packets the sender has sent so far (to check it kept up).
    pub sent: AtomicU64,
}

impl MediaCtl {
    /// Fresh control block.
    pub fn new() -> Arc<MediaCtl> {
        Arc::new(MediaCtl {
            win_start: AtomicU64::new(u64::MAX),
            win_end: AtomicU64::new(u64::MAX),
            press: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            sent: AtomicU64::new(0),
        })
    }
}

/// What the sender needs per leg.
pub struct TxLeg {
    /// The leg's socket (connected to the server's candidate).
    pub socket: Arc<UdpSocket>,
    /// Seals with our key.
    pub srtp: Srtp,
    /// Our SSRC's sequence and timestamp.
    pub rtp: RtpSender,
    /// `telephone-event` payload type, if the server took it.
    pub dtmf_pt: Option<u8>,
    /// ICE consent: username, the server's pwd, our tie-breaker.
    pub consent: (String, String, u64),
}

impl TxLeg {
    /// A leg's sending side.
    pub fn new(
        socket: Arc<UdpSocket>,
        key: &KeyMaterial,
        ssrc: u32,
        dtmf_pt: Option<u8>,
        consent: (String, String, u64),
    ) -> TxLeg {
        TxLeg {
            socket,
            srtp: Srtp::new(key),
            rtp: RtpSender::new(ssrc, rand::random(), rand::random()),
            dtmf_pt,
            consent,
        }
    }
}

/// What the sender did.
#[derive(Default, Debug)]
pub struct TxResult {
    /// SRTP packets sent (audio and events).
    pub packets: u64,
    /// RFC 4733 packets among them.
    pub dtmf_packets: u64,
    /// Keys pressed (whole event trains sent).
    pub keys: u64,
    /// Consent checks sent.
    pub consent_checks: u64,
    /// `send` failures.
    pub send_errors: u64,
    /// Seal failures.
    pub seal_errors: u64,
    /// How late the sender's 1 ms phases started: max and p99 (ms).
    pub late_max_ms: f64,
    /// p99 of the phase lateness, ms.
    pub late_p99_ms: f64,
    /// CPU seconds of the sender thread.
    pub cpu_s: f64,
}

/// One 20 ms frame of a 400 Hz tone at −12 dBFS in PCMU (400 Hz: 20 samples a
/// period, so every frame is the same).
fn tone_frame() -> [u8; 160] {
    let mut f = [0u8; 160];
    for (i, b) in f.iter_mut().enumerate() {
        let x = (2.0 * std::f64::consts::PI * 400.0 * i as f64 / 8000.0).sin();
        *b = ringback_media::g711::ulaw_encode((x * 8192.0) as i16);
    }
    f
}

/// The sender thread: legs join through `new` as their keys come up; runs
/// until `ctl.stop`.
pub fn send_loop(new: Receiver<TxLeg>, ctl: Arc<MediaCtl>) -> TxResult {
    let mut res = TxResult::default();
    let frame = tone_frame();
    let mut buf = [0u8; 512];
    let mut legs: Vec<TxLeg> = Vec::new();
    let mut pressed: Vec<bool> = Vec::new();
    let mut trains: Vec<Option<DtmfSender>> = Vec::new();
    let mut pacer = Pacer::new(1 << 16);
    while !ctl.stop.load(Ordering::Relaxed) {
        let tick = pacer.wait(); // 1 ms phases
        while let Ok(leg) = new.try_recv() {
            legs.push(leg);
            pressed.push(false);
            trains.push(None);
        }
        let phase = (tick % 20) as usize;
        let period = tick / 20;
        let press = ctl.press.load(Ordering::Relaxed);
        for i in (phase..legs.len()).step_by(20) {
            let leg = &mut legs[i];
            let sock = &*leg.socket;
            // Consent freshness: one check per leg every 5 s (250 periods), spread out.
            if (period + i as u64) % 250 == 0 {
                let (user, pwd, tb) = &leg.consent;
                let req = webrtc_stun::binding_request(rand::random(), user, pwd, *tb, false);
                if sock.send(&req).is_ok() {
                    res.consent_checks += 1;
                }
            }
            if press && !pressed[i] {
                pressed[i] = true;
                if leg.dtmf_pt.is_some() {
                    trains[i] = DtmfSender::for_digit('5', 100);
                }
            }
            let n = match (&mut trains[i], leg.dtmf_pt) {
                (Some(t), Some(pt)) => {
                    let n = t.next_packet(&mut leg.rtp, pt, &mut buf);
                    if t.is_done() {
                        trains[i] = None;
                        res.keys += 1;
                    }
                    res.dtmf_packets += u64::from(n.is_some());
                    n
                }
                _ => None,
            };
            let n = match n {
                Some(n) => n,
                None => leg.rtp.write(0, &frame, &mut buf),
            };
            match leg.srtp.protect_in_place(&mut buf, n) {
                Ok(len) => match sock.send(&buf[..len]) {
                    Ok(_) => {
                        res.packets += 1;
                        ctl.sent.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => res.send_errors += 1,
                },
                Err(_) => res.seal_errors += 1,
            }
        }
    }
    (res.late_p99_ms, res.late_max_ms) = pacer.lateness_ms();
    res.cpu_s = procfs::thread_cpu_seconds();
    res
}

/// Per-leg receive statistics (the window only, except `opened`).
#[derive(Clone, Copy, Default)]
pub struct RxStat {
    last_ns: u64,
    last_seq: u16,
    seen: bool,
    /// Audio packets that arrived in the window.
    pub in_window: u32,
    /// Of those, with a non-silent payload.
    pub voiced: u32,
    /// Sequence gaps in the window.
    pub seq_lost: u32,
    /// Duplicates or reordered.
    pub reordered: u32,
    /// Inter-arrival gaps over 40 ms (two packet times) in the window.
    pub late: u32,
    /// SRTP packets opened at all (any time).
    pub opened: u32,
}

/// What one receiver thread measured.
pub struct RxResult {
    /// Global leg index → stats (only this thread's legs are filled).
    pub legs: Vec<(usize, RxStat)>,
    /// |interval − 20 ms| of the server's audio.
    pub jitter: Jitter,
    /// SRTP packets whose tag did not verify.
    pub auth_failures: u64,
    /// SRTP replays.
    pub replays: u64,
    /// Malformed SRTP (or other errors).
    pub malformed: u64,
    /// STUN (consent responses), DTLS and RTCP datagrams.
    pub stun: u64,
    /// DTLS datagrams after the handshake.
    pub dtls: u64,
    /// SRTCP datagrams (not opened).
    pub rtcp: u64,
    /// Opened packets that were not PCMU.
    pub other_pt: u64,
    /// Kernel drops on this thread's sockets (`SO_RXQ_OVFL`).
    pub kernel_drops: u64,
    /// Datagrams read.
    pub packets: u64,
    /// CPU seconds of this thread.
    pub cpu_s: f64,
}

const BATCH: usize = 32;
const BUF: usize = 1500;
const CMSG: usize = 128;

/// A leg for a receiver: its global index, socket and the server's key.
pub type RxLeg = (usize, Arc<UdpSocket>, KeyMaterial);

/// One receiver thread: legs join through `new`; runs until `ctl.stop`.
pub fn recv_loop(
    new: Receiver<RxLeg>,
    ctl: Arc<MediaCtl>,
    nap: Duration,
) -> Result<RxResult, String> {
    // SAFETY: plain syscall.
    let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if epfd < 0 {
        return Err(format!(
            "epoll_create1: {}",
            std::io::Error::last_os_error()
        ));
    }
    let mut legs: Vec<(usize, Arc<UdpSocket>, Srtp, RxStat)> = Vec::new();
    let mut drops: Vec<u32> = Vec::new();
    let mut res = RxResult {
        legs: Vec::new(),
        jitter: Jitter::default(),
        auth_failures: 0,
        replays: 0,
        malformed: 0,
        stun: 0,
        dtls: 0,
        rtcp: 0,
        other_pt: 0,
        kernel_drops: 0,
        packets: 0,
        cpu_s: 0.0,
    };
    let mut bufs = vec![[0u8; BUF]; BATCH];
    let mut cmsgs = vec![[0u64; CMSG / 8]; BATCH];
    let mut iovs: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: BUF,
        })
        .collect();
    // SAFETY: all-zero is a valid mmsghdr; the pointers are set before each call.
    let mut msgs: Vec<libc::mmsghdr> = (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    while !ctl.stop.load(Ordering::Relaxed) {
        while let Ok((global, socket, key)) = new.try_recv() {
            let mut ev = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: legs.len() as u64,
            };
            // SAFETY: valid epoll fd, socket fd and event.
            if unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, socket.as_raw_fd(), &mut ev) }
                != 0
            {
                return Err(format!("epoll_ctl: {}", std::io::Error::last_os_error()));
            }
            legs.push((global, socket, Srtp::new(&key), RxStat::default()));
            drops.push(0);
        }
        // SAFETY: valid epoll fd and event buffer.
        let n = unsafe { libc::epoll_wait(epfd, events.as_mut_ptr(), events.len() as i32, 20) };
        if n <= 0 {
            continue;
        }
        if !nap.is_zero() {
            std::thread::sleep(nap);
        }
        let win_start = ctl.win_start.load(Ordering::Relaxed);
        let win_end = ctl.win_end.load(Ordering::Relaxed);
        for ev in events.iter().take(n as usize) {
            let j = ev.u64 as usize;
            let Some((_, socket, srtp, st)) = legs.get_mut(j) else {
                continue;
            };
            let fd = socket.as_raw_fd();
            loop {
                for i in 0..BATCH {
                    let m = &mut msgs[i].msg_hdr;
                    m.msg_name = std::ptr::null_mut();
                    m.msg_namelen = 0;
                    m.msg_iov = &mut iovs[i];
                    m.msg_iovlen = 1;
                    m.msg_control = cmsgs[i].as_mut_ptr().cast();
                    m.msg_controllen = CMSG as _;
                    m.msg_flags = 0;
                    msgs[i].msg_len = 0;
                }
                // SAFETY: every mmsghdr points at live buffers of the stated sizes.
                let got = unsafe {
                    libc::recvmmsg(
                        fd,
                        msgs.as_mut_ptr(),
                        BATCH as u32,
                        libc::MSG_DONTWAIT,
                        std::ptr::null_mut(),
                    )
                };
                if got <= 0 {
                    break;
                }
                for i in 0..got as usize {
                    let len = (msgs[i].msg_len as usize).min(BUF);
                    let (ts, ovfl) = crate::rx::control_data(&msgs[i].msg_hdr);
                    if let Some(d) = ovfl {
                        drops[j] = d;
                    }
                    res.packets += 1;
                    let pkt = &mut bufs[i][..len];
                    if is_stun(pkt) {
                        res.stun += 1;
                        continue;
                    }
                    if is_dtls(pkt) {
                        res.dtls += 1;
                        continue;
                    }
                    if looks_like_rtcp(pkt) {
                        res.rtcp += 1;
                        continue;
                    }
                    let plain = match srtp.unprotect_in_place(pkt) {
                        Ok(n) => n,
                        Err(SrtpError::Auth) => {
                            res.auth_failures += 1;
                            continue;
                        }
                        Err(SrtpError::Replay) => {
                            res.replays += 1;
                            continue;
                        }
                        Err(_) => {
                            res.malformed += 1;
                            continue;
                        }
                    };
                    st.opened += 1;
                    let pkt = &pkt[..plain];
                    if pkt.len() < 12 || pkt[1] & 0x7f != 0 {
                        res.other_pt += 1;
                        continue;
                    }
                    let seq = u16::from_be_bytes([pkt[2], pkt[3]]);
                    let ts = ts.unwrap_or_else(procfs::realtime_ns);
                    let in_win = ts >= win_start && ts < win_end;
                    if st.seen && in_win && st.last_ns >= win_start && st.last_ns < win_end {
                        let d = seq.wrapping_sub(st.last_seq);
                        if d > 1 && d < 3000 {
                            st.seq_lost += u32::from(d - 1);
                        } else if d != 1 {
                            st.reordered += 1;
                        }
                        let interval = ts.saturating_sub(st.last_ns);
                        if interval > 2 * INTERVAL_NS {
                            st.late += 1;
                        }
                        let jitter = interval.abs_diff(INTERVAL_NS);
                        res.jitter.add(jitter);
                    }
                    if in_win {
                        st.in_window += 1;
                        // PCMU silence is 0xFF/0x7F: anything else is sound.
                        if pkt[12..].iter().any(|&b| b & 0x7f != 0x7f) {
                            st.voiced += 1;
                        }
                    }
                    st.seen = true;
                    st.last_ns = ts;
                    st.last_seq = seq;
                }
                if (got as usize) < BATCH {
                    break;
                }
            }
        }
    }
    // SAFETY: we own the epoll fd.
    unsafe { libc::close(epfd) };
    res.kernel_drops = drops.iter().map(|&d| u64::from(d)).sum();
    res.legs = legs.into_iter().map(|(g, _, _, st)| (g, st)).collect();
    res.cpu_s = procfs::thread_cpu_seconds();
    Ok(res)
}
