//! The media shell: RTP ports, the shared media clock, and each call's
//! receive task. All protocol logic (RTP headers, DTMF, SDP, codecs) lives in
//! the sans-IO `ringback-media` crate; this module only moves bytes and time.

pub mod browser;
pub mod clock;
mod poller;
pub mod ports;
mod receive;
pub mod relay;
mod rx_thread;
pub mod secure;
pub mod tap;

pub use relay::{bridge, Relay};

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ringback_media::codec::Codec;
use ringback_media::prompt::Prompt;
use ringback_media::sdp::Negotiated;
use ringback_media::srtp::Srtp;
use tokio::sync::mpsc::UnboundedSender;

use clock::{ClockHandle, Command, StreamShared, StreamSpec};
use ports::{PortAllocator, RtpPort};

/// A call's RTP socket: non-blocking, and registered with nobody but its
/// receive thread's poller, which reads it (see `rx_thread.rs` for why not
/// a tokio task). Sends are non-blocking `sendto`s from the clock, a
/// bridge relay or a browser stream's transport, which never wait for
/// writability.
#[derive(Debug)]
pub struct RtpSocket(std::net::UdpSocket);

impl RtpSocket {
    /// The socket.
    pub fn get_ref(&self) -> &std::net::UdpSocket {
        &self.0
    }
}

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
    /// One receive thread per clock, reading that clock's streams.
    receivers: Vec<rx_thread::RxHandle>,
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
        let receivers = (0..n)
            .map(rx_thread::RxHandle::spawn)
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(MediaEngine {
            ports: PortAllocator::new(ip, port_min, port_max),
            clocks,
            receivers,
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
    /// [`Stream::apply_negotiation`] gives it an address. The stream's
    /// clock thread sends for it, its receive thread reads for it.
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
        std_socket.set_nonblocking(true)?;
        let socket = Arc::new(RtpSocket(std_socket));
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
        let index = (id as usize) % self.clocks.len();
        let clock = self.clocks[index].clone();
        let rx = self.receivers[index].clone();
        let receiver = receive::Receiver::new(
            Arc::clone(&shared),
            receive::Digits { codec, pt, dtmf_pt },
            srtp_in,
            self.rtp_timeout,
            events.clone(),
        );
        clock.send(Command::Add(Box::new(StreamSpec {
            id,
            socket: Arc::clone(&socket),
            shared: Arc::clone(&shared),
            codec,
            pt,
            ssrc: out_ssrc,
            events,
        })));
        rx.send(rx_thread::RxCommand::Add {
            id,
            socket: Arc::clone(&socket),
            receiver: Box::new(receiver),
        });
        Ok(Stream {
            id,
            clock,
            rx,
            shared,
            socket,
            codec,
            pt,
            dtmf_pt,
            out_ssrc,
            local,
            srtp: srtp.map(std::sync::Mutex::new),
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
    /// The receive thread reading this stream's socket.
    rx: rx_thread::RxHandle,
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
        self.rx.send(rx_thread::RxCommand::Remove { id: self.id });
    }
}
