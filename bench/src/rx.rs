//! RTP receivers: a few threads, each with its own epoll set over a shard of
//! the non-blocking RTP sockets, reading with `recvmmsg`.
//!
//! Arrival times are the kernel's (`SO_TIMESTAMPNS`): they record when a
//! packet reached the socket, not when this process got around to reading it,
//! so the receivers' own scheduling does not show up as jitter. Per-socket
//! kernel drops (`SO_RXQ_OVFL`) tell whether the receivers kept up.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use crate::procfs;

/// Nominal RTP interval.
pub const INTERVAL_NS: u64 = 20_000_000;
/// Jitter histogram resolution: 1 µs buckets up to this many µs.
pub const HIST_US: usize = 200_000;

/// |interval − 20 ms| of consecutive packets: 1 µs buckets up to
/// [`HIST_US`], the samples beyond, and the largest.
#[derive(Clone)]
pub struct Jitter {
    /// Samples per 1 µs bucket.
    pub hist: Vec<u64>,
    /// Samples beyond the histogram.
    pub overflow: u64,
    /// Largest sample, ns.
    pub max_ns: u64,
}

impl Default for Jitter {
    fn default() -> Jitter {
        Jitter {
            hist: vec![0; HIST_US + 1],
            overflow: 0,
            max_ns: 0,
        }
    }
}

impl Jitter {
    /// Count one inter-arrival's |interval − 20 ms|, in ns.
    pub fn add(&mut self, jitter_ns: u64) {
        self.max_ns = self.max_ns.max(jitter_ns);
        match self.hist.get_mut((jitter_ns / 1000) as usize) {
            Some(b) => *b += 1,
            None => self.overflow += 1,
        }
    }

    /// Add another histogram's samples.
    pub fn merge(&mut self, other: &Jitter) {
        for (h, x) in self.hist.iter_mut().zip(&other.hist) {
            *h += x;
        }
        self.overflow += other.overflow;
        self.max_ns = self.max_ns.max(other.max_ns);
    }

    /// Percentile (0..=1) in ms.
    pub fn percentile_ms(&self, q: f64) -> f64 {
        percentile_ms(&self.hist, self.overflow, self.max_ns, q)
    }

    /// The largest sample, ms.
    pub fn max_ms(&self) -> f64 {
        self.max_ns as f64 / 1e6
    }
}

/// Shared between the driver and the receiver threads.
pub struct Control {
    /// Measurement window (CLOCK_REALTIME ns); `u64::MAX` = not started.
    pub win_start: AtomicU64,
    /// End of the window; `u64::MAX` = still open.
    pub win_end: AtomicU64,
    /// Tell receivers to exit.
    pub stop: AtomicBool,
    /// Shared-socket mode: server RTP source port → stream index (`u32::MAX` = unknown).
    pub port_map: Vec<AtomicU32>,
    /// Per stream: what a pressed key is waiting for (`phone-load`); empty
    /// when nobody presses keys.
    pub actions: Vec<ActionSlot>,
    /// Per stream: its packets are relayed from another phone (a caller
    /// talking to an agent, or the agent), so their timing is that phone's
    /// plus ringback's relay, not ringback's media clock. Counted apart in
    /// [`RxResult::relayed`]; empty when nothing is relayed.
    pub relayed: Vec<AtomicBool>,
}

impl Control {
    /// Fresh control block.
    pub fn new() -> Arc<Control> {
        Control::with_actions(0)
    }

    /// Fresh control block with an [`ActionSlot`] for each of `streams` streams.
    pub fn with_actions(streams: usize) -> Arc<Control> {
        Arc::new(Control {
            win_start: AtomicU64::new(u64::MAX),
            win_end: AtomicU64::new(u64::MAX),
            stop: AtomicBool::new(false),
            port_map: (0..65_536).map(|_| AtomicU32::new(u32::MAX)).collect(),
            actions: (0..streams).map(|_| ActionSlot::default()).collect(),
            relayed: (0..streams).map(|_| AtomicBool::new(false)).collect(),
        })
    }
}

/// A key's action as the caller hears it: ringback's media clock sets the
/// RTP marker bit on the first packet of every prompt it starts (a new
/// talkspurt), so the first marked packet that arrives after the key's
/// first event packet left is the answer to the key. The sender arms the
/// slot; a receiver fills it; the driver reads and disarms it.
#[derive(Default)]
pub struct ActionSlot {
    /// When the key's first RFC 4733 packet was handed to the kernel
    /// (CLOCK_REALTIME ns); 0 = not armed.
    pub armed_ns: AtomicU64,
    /// Kernel arrival time of the first marked packet after `armed_ns`
    /// (CLOCK_REALTIME ns); 0 = none yet.
    pub at_ns: AtomicU64,
    /// The first 8 payload bytes of that packet, big-endian: which prompt
    /// started.
    pub head: AtomicU64,
}

impl ActionSlot {
    /// Arm for a key whose first packet leaves at `tx_ns`.
    pub fn arm(&self, tx_ns: u64) {
        self.at_ns.store(0, Ordering::Relaxed);
        self.head.store(0, Ordering::Relaxed);
        self.armed_ns.store(tx_ns.max(1), Ordering::Release);
    }

    /// A packet with the marker bit arrived at `ts` with this payload.
    fn on_marker(&self, ts: u64, payload: &[u8]) {
        let armed = self.armed_ns.load(Ordering::Acquire);
        if armed == 0 || ts < armed || self.at_ns.load(Ordering::Relaxed) != 0 {
            return;
        }
        let mut head = [0u8; 8];
        let n = payload.len().min(8);
        head[..n].copy_from_slice(&payload[..n]);
        self.head.store(u64::from_be_bytes(head), Ordering::Relaxed);
        self.at_ns.store(ts, Ordering::Release);
    }
}

/// An RTP packet's payload (after CSRCs and a header extension), or empty.
pub fn rtp_payload(pkt: &[u8]) -> &[u8] {
    let Some(&b0) = pkt.first() else { return &[] };
    let mut off = 12 + 4 * usize::from(b0 & 0x0f);
    if b0 & 0x10 != 0 {
        let words = pkt
            .get(off + 2..off + 4)
            .map_or(0, |w| usize::from(u16::from_be_bytes([w[0], w[1]])));
        off += 4 + 4 * words;
    }
    pkt.get(off..).unwrap_or(&[])
}

/// Per-stream measurements.
#[derive(Clone, Copy, Default)]
pub struct StreamStat {
    last_ns: u64,
    last_seq: u16,
    seen: bool,
    /// Packets whose arrival fell inside the window.
    pub in_window: u32,
    /// Packets missing according to sequence numbers (inside the window).
    pub seq_lost: u32,
    /// Duplicates or reordered packets (inside the window).
    pub reordered: u32,
}

/// What one receiver thread measured.
pub struct RxResult {
    /// Stream index → stats (only the streams this thread saw are non-default).
    pub streams: Vec<StreamStat>,
    /// |interval − 20 ms| of the streams ringback's media clock sends.
    pub jitter: Jitter,
    /// The same for relayed streams (see [`Control::relayed`]).
    pub relayed: Jitter,
    /// Datagrams that were not RTP or not from a known stream.
    pub other: u64,
    /// Kernel drops on this thread's sockets (`SO_RXQ_OVFL`).
    pub kernel_drops: u64,
    /// Packets read in total.
    pub packets: u64,
    /// `recvmmsg` calls.
    pub syscalls: u64,
    /// CPU seconds this thread used.
    pub cpu_s: f64,
}

impl RxResult {
    fn new(streams: usize) -> RxResult {
        RxResult {
            streams: vec![StreamStat::default(); streams],
            jitter: Jitter::default(),
            relayed: Jitter::default(),
            other: 0,
            kernel_drops: 0,
            packets: 0,
            syscalls: 0,
            cpu_s: 0.0,
        }
    }
}

/// Enable kernel receive timestamps and drop counters on an RTP socket.
pub fn prepare_socket(fd: RawFd, rcvbuf: i32) {
    let one: libc::c_int = 1;
    let sz = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: valid fd, pointers to live c_ints of the given size.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&one as *const libc::c_int).cast(),
            sz,
        );
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RXQ_OVFL,
            (&one as *const libc::c_int).cast(),
            sz,
        );
        if rcvbuf > 0 {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&rcvbuf as *const libc::c_int).cast(),
                sz,
            );
        }
    }
}

/// One receiver thread's epoll set.
pub struct Shard {
    epfd: RawFd,
}

impl Shard {
    /// A new, empty epoll set.
    pub fn new() -> std::io::Result<Shard> {
        // SAFETY: plain syscall.
        let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epfd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Shard { epfd })
    }

    /// Watch `fd` (level-triggered); `token` identifies the socket.
    pub fn add(&self, fd: RawFd, token: u64) -> std::io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: valid epoll fd and event.
        let r = unsafe { libc::epoll_ctl(self.epfd, libc::EPOLL_CTL_ADD, fd, &mut ev) };
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// The epoll descriptor (for the thread).
    pub fn fd(&self) -> RawFd {
        self.epfd
    }
}

impl Drop for Shard {
    fn drop(&mut self) {
        // SAFETY: we own the fd.
        unsafe { libc::close(self.epfd) };
    }
}

/// How sockets map to streams.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// One socket per call: the epoll token is the stream index.
    PerCall,
    /// A few sockets shared by all calls: the source port names the stream.
    Shared,
}

const BATCH: usize = 32;
const BUF: usize = 512;
const CMSG: usize = 128;

/// Run one receiver until `ctl.stop`. `fds[token]` is the socket for a token.
///
/// After each round the thread naps `nap` so packets pile up in the socket
/// buffers and one `recvmmsg` returns many: arrival times come from the
/// kernel, so reading late does not change what is measured.
pub fn run(
    epfd: RawFd,
    fds: Arc<Vec<RawFd>>,
    mode: Mode,
    streams: usize,
    ctl: Arc<Control>,
    nap: std::time::Duration,
) -> RxResult {
    let mut res = RxResult::new(streams);
    let mut drops_by_fd: std::collections::HashMap<RawFd, u32> = Default::default();
    let mut bufs = vec![[0u8; BUF]; BATCH];
    let mut cmsgs = vec![[0u64; CMSG / 8]; BATCH];
    let mut names: Vec<libc::sockaddr_in> = vec![
        // SAFETY: all-zero is a valid sockaddr_in.
        unsafe { std::mem::zeroed() };
        BATCH
    ];
    let mut iovs: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: BUF,
        })
        .collect();
    // SAFETY: all-zero is a valid mmsghdr; the pointers are set below.
    let mut msgs: Vec<libc::mmsghdr> = (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    while !ctl.stop.load(Ordering::Relaxed) {
        // SAFETY: valid epoll fd and event buffer.
        let n = unsafe { libc::epoll_wait(epfd, events.as_mut_ptr(), events.len() as i32, 100) };
        if n <= 0 {
            continue;
        }
        if !nap.is_zero() {
            std::thread::sleep(nap);
        }
        let win_start = ctl.win_start.load(Ordering::Relaxed);
        let win_end = ctl.win_end.load(Ordering::Relaxed);
        for ev in events.iter().take(n as usize) {
            let token = ev.u64 as usize;
            let Some(&fd) = fds.get(token) else { continue };
            loop {
                for i in 0..BATCH {
                    let m = &mut msgs[i].msg_hdr;
                    m.msg_name = (&mut names[i] as *mut libc::sockaddr_in).cast();
                    m.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
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
                res.syscalls += 1;
                if got <= 0 {
                    break;
                }
                for i in 0..got as usize {
                    let len = msgs[i].msg_len as usize;
                    let (ts, ovfl) = control_data(&msgs[i].msg_hdr);
                    if let Some(d) = ovfl {
                        drops_by_fd.insert(fd, d);
                    }
                    res.packets += 1;
                    let stream = match mode {
                        Mode::PerCall => token,
                        Mode::Shared => {
                            let port = u16::from_be(names[i].sin_port) as usize;
                            match ctl.port_map[port].load(Ordering::Relaxed) {
                                u32::MAX => {
                                    res.other += 1;
                                    continue;
                                }
                                s => s as usize,
                            }
                        }
                    };
                    let pkt = &bufs[i][..len.min(BUF)];
                    if pkt.len() < 12 || pkt[0] >> 6 != 2 {
                        res.other += 1;
                        continue;
                    }
                    let seq = u16::from_be_bytes([pkt[2], pkt[3]]);
                    let ts = ts.unwrap_or_else(procfs::realtime_ns);
                    let Some(st) = res.streams.get_mut(stream) else {
                        res.other += 1;
                        continue;
                    };
                    if pkt[1] & 0x80 != 0 {
                        if let Some(slot) = ctl.actions.get(stream) {
                            slot.on_marker(ts, rtp_payload(pkt));
                        }
                    }
                    let in_win = ts >= win_start && ts < win_end;
                    if st.seen {
                        let prev_in = st.last_ns >= win_start && st.last_ns < win_end;
                        if in_win && prev_in {
                            let d = seq.wrapping_sub(st.last_seq);
                            if d == 1 {
                            } else if d > 1 && d < 3000 {
                                st.seq_lost += u32::from(d - 1);
                            } else {
                                st.reordered += 1;
                            }
                            let interval = ts.saturating_sub(st.last_ns);
                            let jitter = interval.abs_diff(INTERVAL_NS);
                            let relayed = ctl
                                .relayed
                                .get(stream)
                                .is_some_and(|r| r.load(Ordering::Relaxed));
                            if relayed {
                                res.relayed.add(jitter);
                            } else {
                                res.jitter.add(jitter);
                            }
                        }
                    }
                    if in_win {
                        st.in_window += 1;
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
    res.kernel_drops = drops_by_fd.values().map(|&d| u64::from(d)).sum();
    res.cpu_s = procfs::thread_cpu_seconds();
    res
}

/// Start `threads` receivers over `fds` (socket `j` in shard `j % threads`,
/// its epoll token `j`), each running [`run`]. Keep the shards until the
/// threads are joined: they own the epoll descriptors.
pub fn spawn(
    fds: Arc<Vec<RawFd>>,
    threads: usize,
    mode: Mode,
    streams: usize,
    ctl: &Arc<Control>,
    nap: std::time::Duration,
) -> (Vec<Shard>, Vec<std::thread::JoinHandle<RxResult>>) {
    let shards: Vec<Shard> = (0..threads.max(1))
        .map(|_| Shard::new().expect("epoll"))
        .collect();
    for (j, fd) in fds.iter().enumerate() {
        shards[j % shards.len()]
            .add(*fd, j as u64)
            .expect("epoll_ctl");
    }
    let handles = shards
        .iter()
        .enumerate()
        .map(|(t, sh)| {
            let (epfd, fds, ctl) = (sh.fd(), Arc::clone(&fds), Arc::clone(ctl));
            std::thread::Builder::new()
                .name(format!("rtp-rx-{t}"))
                .spawn(move || run(epfd, fds, mode, streams, ctl, nap))
                .expect("spawn a receiver")
        })
        .collect();
    (shards, handles)
}

/// Kernel timestamp (ns) and cumulative drop counter from a message's control data.
pub fn control_data(m: &libc::msghdr) -> (Option<u64>, Option<u32>) {
    let mut ts = None;
    let mut drops = None;
    // SAFETY: `m` was filled by recvmmsg; the CMSG macros stay within msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(m);
        while !c.is_null() {
            let h = &*c;
            if h.cmsg_level == libc::SOL_SOCKET {
                if h.cmsg_type == libc::SCM_TIMESTAMPNS {
                    let t: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                    ts = Some(t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64);
                } else if h.cmsg_type == libc::SO_RXQ_OVFL {
                    drops = Some(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<u32>()));
                }
            }
            c = libc::CMSG_NXTHDR(m, c);
        }
    }
    (ts, drops)
}

/// Percentile (0..=1) of a 1 µs histogram, in ms.
pub fn percentile_ms(hist: &[u64], overflow: u64, max_ns: u64, q: f64) -> f64 {
    let total: u64 = hist.iter().sum::<u64>() + overflow;
    if total == 0 {
        return 0.0;
    }
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut acc = 0;
    for (us, &c) in hist.iter().enumerate() {
        acc += c;
        if acc >= rank {
            return us as f64 / 1000.0;
        }
    }
    max_ns as f64 / 1e6
}
