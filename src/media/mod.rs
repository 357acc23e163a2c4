//! The media shell: RTP ports, the shared media clock, and each call's
//! receive task. All protocol logic (RTP headers, DTMF, SDP, codecs) lives in
//! the sans-IO `ringback-media` crate; this module only moves bytes and time.

pub mod browser;
pub mod clock;
pub mod ports;
pub mod relay;
pub mod secure;
pub mod tap;

pub use relay::{bridge, Relay};

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringback_media::codec::Codec;
use ringback_media::dtmf::{event_to_char, parse_event, DtmfReceiver};
use ringback_media::inband::InbandRtp;
use ringback_media::prompt::Prompt;
use ringback_media::rtp;
use ringback_media::sdp::Negotiated;
use ringback_media::srtp::Srtp;
use tokio::sync::mpsc::UnboundedSender;

use clock::{ClockHandle, Command, StreamShared, StreamSpec};
use ports::{PortAllocator, RtpPort};

/// A call's RTP socket as tokio sees it: registered for *readability only*.
///
/// Why not `tokio::net::UdpSocket`: that registers read and write interest,
/// so every packet the media clock sends frees send-buffer space, raises
/// EPOLLOUT and wakes tokio's reactor for a waker nobody holds — about 15 %
/// of the server's CPU at 1,000 calls. Sends are non-blocking `sendto`s from
/// the clock and relay, which never wait for writability.
pub type RtpSocket = tokio::io::unix::AsyncFd<std::net::UdpSocket>;

/// What the media side tells a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// The playlist started with this token finished.
    PlaybackDone {
        /// Token given to [`Stream::play`].
        token: u64,
    },
    /// The caller pressed a key: an RFC 4733 event or, on streams where
    /// [`Stream::inband_dtmf`] is true, a tone pair detected in the audio.
    Digit(char),
    /// No RTP for the configured time while not on hold.
    RtpTimeout,
}

/// Shared media machinery: port pool and clock threads.
pub struct MediaEngine {
    ports: Arc<PortAllocator>,
    clocks: Vec<ClockHandle>,
    next_id: AtomicU64,
    rtp_timeout: Option<Duration>,
}

impl MediaEngine {
    /// Start `threads` clock threads (0 = one per core), at `SCHED_FIFO`
    /// priority `rt_priority` where allowed (0: normal priority).
    pub fn start(
        ip: IpAddr,
        port_min: u16,
        port_max: u16,
        threads: usize,
        rt_priority: u8,
        rtp_timeout: Option<Duration>,
    ) -> std::io::Result<MediaEngine> {
        let n = if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            threads
        };
        let clocks = (0..n)
            .map(|i| ClockHandle::spawn(i, rt_priority))
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(MediaEngine {
            ports: PortAllocator::new(ip, port_min, port_max),
            clocks,
            next_id: AtomicU64::new(1),
            rtp_timeout,
        })
    }

    /// Reserve an RTP port for a call that is about to be answered.
    pub fn allocate_port(&self) -> Option<RtpPort> {
        self.ports.allocate()
    }

    /// Ports in use (one per call leg).
    pub fn ports_in_use(&self) -> usize {
        self.ports.in_use()
    }

    /// Total packets sent by all clocks.
    pub fn packets_sent(&self) -> u64 {
        self.clocks
            .iter()
            .map(|c| c.stats.packets_sent.load(Ordering::Relaxed))
            .sum()
    }

    /// Worst tick lateness (µs) over all clocks.
    pub fn max_late_us(&self) -> u64 {
        self.clocks
            .iter()
            .map(|c| c.stats.max_late_us.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0)
    }

    /// Worst lateness of any clock over the last second or two.
    pub fn recent_lag(&self) -> Duration {
        let us = self
            .clocks
            .iter()
            .map(|c| c.stats.recent_late_us())
            .max()
            .unwrap_or(0);
        Duration::from_micros(us)
    }

    /// Busiest clock thread's share of the last second spent sending, in percent.
    pub fn recent_load_pct(&self) -> u8 {
        self.clocks
            .iter()
            .map(|c| c.stats.last_window_busy_pct.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0)
            .min(100) as u8
    }

    /// Ticks that could not be served on time, over all clocks.
    pub fn overruns(&self) -> u64 {
        self.clocks
            .iter()
            .map(|c| c.stats.overruns.load(Ordering::Relaxed))
            .sum()
    }

    /// Start a stream on `port` with the codec and payload types of `neg`,
    /// sealed with `srtp` when it is secure. Nothing is sent until
    /// [`Stream::apply_negotiation`] gives it an address. Must be called
    /// inside the tokio runtime (the receive task is spawned there).
    pub fn open_stream(
        &self,
        port: RtpPort,
        neg: &Negotiated,
        srtp: Option<secure::SrtpSession>,
        events: UnboundedSender<MediaEvent>,
    ) -> std::io::Result<Stream> {
        self.open_stream_with(port, neg, srtp, events, None, rand::random())
    }

    /// [`MediaEngine::open_stream`], with the port's non-RTP packets sent
    /// to `transport` when given (a browser stream's ICE and DTLS), sending
    /// as `out_ssrc`.
    fn open_stream_with(
        &self,
        mut port: RtpPort,
        neg: &Negotiated,
        srtp: Option<secure::SrtpSession>,
        events: UnboundedSender<MediaEvent>,
        transport: Option<browser::TransportTx>,
        out_ssrc: u32,
    ) -> std::io::Result<Stream> {
        let (codec, pt, dtmf_pt) = (neg.codec, neg.pt, neg.dtmf_pt);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let std_socket = port.take_socket().ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "RTP port already in use by a stream",
            )
        })?;
        // One descriptor per call: the clock borrows this socket, never dups it.
        // SAFETY: `std_socket` is an open UdpSocket that the AsyncFd owns
        // from here on; its descriptor stays the same until the AsyncFd drops.
        let socket =
            unsafe { RtpSocket::register_with_interest(std_socket, tokio::io::Interest::READABLE) }
                .map(Arc::new)
                .map_err(|e| e.into_parts().1)?;
        let local = port.addr;
        let (srtp_out, srtp_in) = match &srtp {
            Some(k) => (
                Some(std::sync::Mutex::new(Srtp::new(&k.local))),
                Some(Srtp::new(&k.remote)),
            ),
            None => (None, None),
        };
        let shared = Arc::new(StreamShared {
            srtp_out,
            transport: transport.map(std::sync::OnceLock::from).unwrap_or_default(),
            ..StreamShared::default()
        });
        // One SSRC for everything the leg sends: prompts from the clock and
        // audio relayed from a bridge.
        let clock = self.clocks[(id as usize) % self.clocks.len()].clone();
        clock.send(Command::Add(Box::new(StreamSpec {
            id,
            socket: Arc::clone(&socket),
            shared: Arc::clone(&shared),
            codec,
            pt,
            ssrc: out_ssrc,
            events: events.clone(),
        })));
        let receiver = tokio::spawn(receive(
            Arc::clone(&socket),
            Arc::clone(&shared),
            Digits { codec, pt, dtmf_pt },
            srtp_in,
            self.rtp_timeout,
            events,
        ));
        Ok(Stream {
            id,
            clock,
            shared,
            socket,
            codec,
            pt,
            dtmf_pt,
            out_ssrc,
            local,
            srtp: srtp.map(std::sync::Mutex::new),
            receiver,
            _port: PortGuard { _reserved: port },
        })
    }
}

/// Keeps the port reserved (the pool releases it on drop) after its socket
/// was handed to tokio.
struct PortGuard {
    _reserved: RtpPort,
}

/// One call's media stream. Dropping it stops sending and receiving.
pub struct Stream {
    id: u64,
    clock: ClockHandle,
    shared: Arc<StreamShared>,
    socket: Arc<RtpSocket>,
    codec: Codec,
    pt: u8,
    dtmf_pt: Option<u8>,
    /// SSRC used for packets relayed out of this leg.
    out_ssrc: u32,
    local: SocketAddr,
    /// The keys of a secure stream (ours stays for the stream's life; the
    /// peer's may change with a re-offer).
    srtp: Option<std::sync::Mutex<secure::SrtpSession>>,
    receiver: tokio::task::JoinHandle<()>,
    _port: PortGuard,
}

impl Stream {
    /// Play prompts in order; `PlaybackDone { token }` follows unless
    /// stopped or replaced first.
    pub fn play(&self, prompts: Vec<Arc<Prompt>>, looped: bool, token: u64) {
        self.clock.send(Command::Play {
            id: self.id,
            prompts,
            looped,
            token,
        });
    }

    /// Stop playing (silence continues so NAT bindings stay open).
    pub fn stop(&self) {
        self.clock.send(Command::Stop { id: self.id });
    }

    /// Apply an offer/answer result: where to send, whether to send at all,
    /// and whether the peer holds the call (no RTP timeout then).
    pub fn apply_negotiation(&self, neg: &Negotiated) {
        if let Ok(mut r) = self.shared.remote.lock() {
            *r = neg.remote;
        }
        self.shared
            .mute
            .store(!neg.should_send(), Ordering::Relaxed);
        self.shared.on_hold.store(neg.is_hold(), Ordering::Relaxed);
    }

    /// Packets sent so far.
    pub fn packets_sent(&self) -> u64 {
        self.shared.sent.load(Ordering::Relaxed)
    }

    /// Packets received so far.
    pub fn packets_received(&self) -> u64 {
        self.shared.received.load(Ordering::Relaxed)
    }

    /// Force DTMF detection in the received audio (`true`), e.g. for a trunk
    /// configured with `dtmf = "inband"` whose gateway negotiates
    /// telephone-event but never sends it, or go back to the default
    /// (`false`). Streams without a negotiated telephone-event payload type
    /// always detect in-band, whatever this says.
    ///
    /// Only one source of digits per stream, so a key is never counted twice:
    /// while in-band detection is on, RFC 4733 events on this stream are
    /// ignored. Takes effect with the next received packet; may be called at
    /// any time (before or after answering).
    pub fn set_inband_dtmf(&self, on: bool) {
        self.shared.inband_dtmf.store(on, Ordering::Relaxed);
    }

    /// Whether this stream's digits come from the audio (in-band): forced by
    /// [`Stream::set_inband_dtmf`], or no telephone-event was negotiated.
    pub fn inband_dtmf(&self) -> bool {
        self.dtmf_pt.is_none() || self.shared.inband_dtmf.load(Ordering::Relaxed)
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.clock.send(Command::Remove { id: self.id });
        self.receiver.abort();
    }
}

/// How long the latched RTP source must be silent before another source may
/// take its place.
const RELATCH_AFTER: Duration = Duration::from_secs(1);

/// Wait for and read one datagram from a read-only registered socket.
async fn recv_from(socket: &RtpSocket, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    loop {
        let mut guard = socket.readable().await?;
        match guard.try_io(|s| s.get_ref().recv_from(buf)) {
            Ok(result) => return result,
            Err(_would_block) => continue,
        }
    }
}

/// What the receive task needs to find digits: the negotiated audio codec
/// and payload type (for in-band detection) and the telephone-event payload
/// type, if any.
#[derive(Debug, Clone, Copy)]
struct Digits {
    codec: Codec,
    pt: u8,
    dtmf_pt: Option<u8>,
}

/// Receive loop of one call: latch the peer's address, detect digits (RFC
/// 4733 events, or tones in the audio when there is no telephone-event or
/// the owner asked for in-band), notice RTP silence.
async fn receive(
    socket: Arc<RtpSocket>,
    shared: Arc<StreamShared>,
    digits: Digits,
    mut srtp_in: Option<ringback_media::srtp::Srtp>,
    timeout: Option<Duration>,
    events: UnboundedSender<MediaEvent>,
) {
    let Digits { codec, pt, dtmf_pt } = digits;
    let mut buf = [0u8; 2048];
    // Opened packets of a secure stream.
    let mut opened: Vec<u8> = Vec::new();
    let mut dtmf = DtmfReceiver::default();
    // Created on the first audio packet that needs it: streams with
    // telephone-event never decode their audio.
    let mut inband: Option<Box<InbandRtp>> = None;
    let mut latched: Option<SocketAddr> = None;
    let mut last_rx = Instant::now();
    let mut timed_out = false;
    loop {
        let wait = timeout.map_or(Duration::from_secs(3600), |t| {
            t.saturating_sub(last_rx.elapsed())
                .max(Duration::from_millis(10))
        });
        let (n, from) = match tokio::time::timeout(wait, recv_from(&socket, &mut buf)).await {
            Ok(Ok(x)) => x,
            Ok(Err(_)) => {
                // ICMP port unreachable from an earlier send surfaces here on
                // Linux; it is not fatal for the call.
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
            Err(_) => {
                if timeout.is_some()
                    && !timed_out
                    && !shared.on_hold.load(Ordering::Relaxed)
                    && last_rx.elapsed() >= timeout.unwrap_or_default()
                {
                    timed_out = true;
                    if events.send(MediaEvent::RtpTimeout).is_err() {
                        return;
                    }
                }
                if shared.on_hold.load(Ordering::Relaxed) {
                    last_rx = Instant::now();
                }
                continue;
            }
        };
        let Some(pkt) = buf.get(..n) else { continue };
        // A browser stream's ICE checks and DTLS records (RFC 7983: RTP and
        // RTCP start with 128..=191) belong to its transport task.
        if let Some(tx) = shared.transport.get() {
            if !(128..=191).contains(&pkt.first().copied().unwrap_or(0)) {
                if tx.send((pkt.to_vec(), from)).is_err() {
                    return;
                }
                continue;
            }
        }
        // A secure stream looks only at packets that authenticate.
        let pkt = match srtp_in.as_mut() {
            None => pkt,
            // SRTCP multiplexed on the RTP port: nothing ringback uses.
            Some(_) if rtp::looks_like_rtcp(pkt) => continue,
            Some(ctx) => match secure::open(ctx, pkt, &mut opened, &shared.srtp_rekey) {
                Some(p) => p,
                None => continue,
            },
        };
        let Ok(hdr) = rtp::parse(pkt) else {
            continue; // not RTP (or RTCP multiplexed): ignore, never crash
        };
        // Symmetric RTP: answer to where the peer's media really comes
        // from — but latch once. Another source may take over only after
        // the latched one has been silent for RELATCH_AFTER (a phone that
        // changed address); until then its packets are not our peer's and
        // are dropped, so nobody can hijack a call's audio or inject digits.
        match latched {
            Some(l) if l == from => {}
            Some(_) if last_rx.elapsed() < RELATCH_AFTER => continue,
            _ => {
                latched = Some(from);
                if let Ok(mut r) = shared.remote.lock() {
                    *r = Some(from);
                }
            }
        }
        last_rx = Instant::now();
        timed_out = false;
        shared.received.fetch_add(1, Ordering::Relaxed);
        if shared.bridged.load(Ordering::Relaxed) {
            if let Ok(mut relay) = shared.relay.lock() {
                if let Some(r) = relay.as_mut() {
                    r.forward(pkt, &hdr, last_rx);
                }
            }
        }
        // One source of digits per stream: in-band when there is no
        // telephone-event or the owner forced it, RFC 4733 otherwise.
        if dtmf_pt.is_none() || shared.inband_dtmf.load(Ordering::Relaxed) {
            if hdr.pt == pt {
                let det = inband.get_or_insert_with(Box::default);
                let mut closed = false;
                det.on_packet(codec, hdr.ssrc, hdr.ts, hdr.payload(pkt), |d| {
                    tracing::debug!(digit = %d, "DTMF (in-band)");
                    crate::metrics::DTMF_INBAND_TOTAL.fetch_add(1, Ordering::Relaxed);
                    closed |= events.send(MediaEvent::Digit(d)).is_err();
                });
                if closed {
                    return;
                }
            }
        } else {
            // Switched back from forced in-band: start afresh if it returns.
            inband = None;
            if Some(hdr.pt) == dtmf_pt {
                let payload = pkt
                    .get(hdr.payload_offset..hdr.payload_offset + hdr.payload_len)
                    .unwrap_or(&[]);
                if let Ok(ev) = parse_event(payload) {
                    if let Some(d) = dtmf.on_rtp(hdr.ts, &ev, Instant::now()) {
                        tracing::debug!(digit = %d, "DTMF (RFC 4733)");
                        crate::metrics::DTMF_RFC4733_TOTAL.fetch_add(1, Ordering::Relaxed);
                        if events.send(MediaEvent::Digit(d)).is_err() {
                            return;
                        }
                    } else if event_to_char(ev.event).is_none() {
                        tracing::trace!(event = ev.event, "ignoring non-DTMF telephone-event");
                    }
                }
            }
        }
    }
}
