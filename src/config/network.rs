//! The network side: SIP listener, RTP media, and the admission limits that
//! keep both responsive under load.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use ringback_media::sdp::SrtpPolicy;

use serde::Deserialize;

/// SIP transport settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// Address for both UDP and TCP. Port 0 picks a free port (tests use it).
    pub listen: SocketAddr,
    /// Address advertised in Via/Contact/SDP when ringback sits behind NAT.
    pub external_ip: Option<IpAddr>,
    /// `User-Agent`/`Server` header value.
    pub user_agent: String,
    /// Ring for this long (180 Ringing) before answering. 0 answers at once.
    pub answer_delay_ms: u64,
    /// Digest realm agents authenticate in.
    pub realm: String,
    /// Digest algorithms offered to phones, in order (RFC 7616 / RFC 8760:
    /// a phone uses the first one it supports). MD5 comes first by default
    /// because many phones (and SIPp) only read the first challenge and only
    /// know MD5; put `"SHA-256"` first when all your phones support it.
    pub auth_algorithms: Vec<String>,
    /// Largest SIP message accepted, in bytes.
    pub max_message_bytes: usize,
    /// Enable the TCP transport alongside UDP.
    pub tcp: bool,
    /// When not empty, only these networks (CIDR, e.g. `"203.0.113.0/24"`,
    /// or single addresses) may send INVITEs and REGISTERs; anyone else gets
    /// 403 before any other work (toll-fraud protection).
    pub allow_from: Vec<String>,
    /// Address for SIP over TLS (RFC 3261 §26; conventionally port 5061).
    /// Needs `tls_cert` and `tls_key`. Port 0 picks a free port (tests).
    pub tls_listen: Option<SocketAddr>,
    /// PEM file with the certificate chain the TLS listener presents (leaf
    /// first). Re-read on SIGHUP; calls in progress keep their connections.
    pub tls_cert: Option<PathBuf>,
    /// PEM file with the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub tls_key: Option<PathBuf>,
    /// SRTP for callers' media (SDES keys in SDP, RFC 4568): `off` (plain
    /// RTP; an SRTP-only offer gets 488), `optional` (SRTP when the phone
    /// offers keys) or `mandatory` (a plain offer gets 488). Keys travel in
    /// the SIP messages: without TLS they protect nothing.
    #[serde(deserialize_with = "super::srtp_policy")]
    pub srtp: SrtpPolicy,
}

impl SipConfig {
    /// Make the TLS file names relative to the configuration file's folder.
    pub(super) fn resolve_paths(&mut self, base: &std::path::Path) {
        for p in [&mut self.tls_cert, &mut self.tls_key]
            .into_iter()
            .flatten()
        {
            *p = super::resolve(base, p);
        }
    }

    /// The TLS settings are complete or absent: a listener without a
    /// certificate (or the reverse) is a mistake to report at start.
    pub(super) fn validate_tls(&self) -> Result<(), String> {
        match (&self.tls_listen, &self.tls_cert, &self.tls_key) {
            (None, None, None) | (Some(_), Some(_), Some(_)) => Ok(()),
            (Some(_), _, _) => {
                Err("sip.tls_listen needs both sip.tls_cert and sip.tls_key (PEM files)".into())
            }
            (None, _, _) => {
                Err("sip.tls_cert/sip.tls_key are set but sip.tls_listen is not".into())
            }
        }
    }
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5060),
            external_ip: None,
            user_agent: format!("ringback/{}", env!("CARGO_PKG_VERSION")),
            answer_delay_ms: 0,
            realm: "ringback".into(),
            auth_algorithms: vec!["MD5".into(), "SHA-256".into()],
            max_message_bytes: 65_535,
            tcp: true,
            allow_from: Vec::new(),
            tls_listen: None,
            tls_cert: None,
            tls_key: None,
            srtp: SrtpPolicy::Optional,
        }
    }
}

/// RTP settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RtpConfig {
    /// Local address RTP sockets bind to (never a wildcard in SDP: see `external_ip`).
    pub ip: IpAddr,
    /// First port of the RTP range (inclusive, even ports are used).
    pub port_min: u16,
    /// Last port of the RTP range (inclusive).
    pub port_max: u16,
    /// Hang up when no RTP arrives for this long (0 disables). Held calls
    /// (`a=sendonly`/`inactive`) are never timed out.
    pub timeout_secs: u64,
    /// Media clock threads; 0 = one per CPU core.
    pub threads: usize,
    /// `SCHED_FIFO` priority (1–99) of the media clock threads, so other
    /// work on a busy machine cannot hold a packet back by a scheduler time
    /// slice (the clocks sleep between 1 ms phases, so they never hog a
    /// core; admission control refuses new calls long before they could).
    /// Needs root or `CAP_SYS_NICE`; without it ringback tries nice -10,
    /// then runs at normal priority, and logs which it got. 0: normal priority.
    pub realtime_priority: u8,
}

impl Default for RtpConfig {
    fn default() -> Self {
        RtpConfig {
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port_min: 20_000,
            port_max: 39_999,
            timeout_secs: 60,
            threads: 0,
            realtime_priority: 10,
        }
    }
}

/// Admission control and resource limits (see `admission.rs`). Every
/// refusal of a new call is a 503 with `Retry-After`; calls in progress are
/// never touched. 0 disables a limit.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Above this many concurrent calls new INVITEs get 503 + Retry-After.
    pub max_calls: usize,
    /// New calls admitted per second (token bucket, a quarter second of
    /// burst). Above it: 503 + Retry-After: 1.
    pub max_call_rate: f64,
    /// SIP transactions alive at once; above it new calls and REGISTERs get 503.
    pub max_transactions: usize,
    /// When a media clock ran this many ms late within the last second, new
    /// calls get 503 so the calls in progress keep their audio. 100 ms is
    /// five packets: a clock that far behind is overloaded. (With 20 ms, a
    /// soak at half load on a 2-core VM refused 18 % of new calls because of
    /// short scheduling stalls; the busy-share limit covers real overload.)
    pub max_media_lag_ms: u64,
    /// When a media clock thread was busy for more than this percentage of
    /// the last second, new calls get 503: the calls in progress keep the
    /// headroom their audio needs.
    pub max_media_load_pct: u8,
    /// When a SIP datagram waited this many ms in the receive queue within
    /// the last second (signalling is falling behind), new calls and
    /// REGISTERs get 503; in-dialog requests (ACK, BYE) still go through so
    /// calls in progress end cleanly. Well under T1 (500 ms), where phones
    /// start retransmitting.
    pub max_sip_delay_ms: u64,
    /// REGISTERs per second from one source IP (twice that as a burst);
    /// above it: 503 + Retry-After (a registration flood never reaches the
    /// digest check).
    pub max_registers_per_source: f64,
    /// Open SIP TCP connections in total; further connections are closed at once.
    pub max_tcp_connections: usize,
    /// Open SIP TCP connections from one source IP.
    pub max_tcp_connections_per_source: usize,
    /// Close a TCP connection after this many seconds without a byte
    /// (phones send CRLF keep-alives well within it, RFC 5626).
    pub tcp_idle_secs: u64,
    /// Close a TCP connection whose started message has not completed
    /// within this many seconds (slow-loris).
    pub tcp_message_secs: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_calls: 10_000,
            max_call_rate: 0.0,
            max_transactions: 100_000,
            max_media_lag_ms: 100,
            max_media_load_pct: 80,
            max_sip_delay_ms: 200,
            max_registers_per_source: 20.0,
            max_tcp_connections: 4_096,
            max_tcp_connections_per_source: 64,
            tcp_idle_secs: 600,
            tcp_message_secs: 10,
        }
    }
}
