//! SDP (RFC 4566) parsing and RFC 3264 offer/answer for a single audio stream.
//!
//! This is our own small parser rather than `rtc-sdp`: that crate follows the RFC 4566
//! line-order grammar strictly and is shaped for WebRTC, while SIP phones and trunks
//! send SDP with missing `a=rtpmap` for static payload types, odd line order, LF-only
//! endings and hostnames in `c=`. We accept all of that, extract only what a G.711 IVR
//! needs, and keep every `m=` line so the answer can reject the others with port 0
//! (RFC 3264 §6). The tests validate our generated SDP with `rtc-sdp`'s strict parser.
//!
//! SDES (RFC 4568): `a=crypto` lines are parsed on every audio stream, and
//! [`negotiate_srtp`] / [`build_answer_srtp`] / [`build_offer_srtp`] /
//! [`negotiate_answer_srtp`] apply an [`SrtpPolicy`]. The original [`negotiate`],
//! [`build_answer`] and [`build_offer`] are unchanged: plain RTP only (an `RTP/SAVP`-only
//! offer is refused with 488, crypto lines on `RTP/AVP` are ignored), which is exactly
//! policy [`SrtpPolicy::Off`].

use crate::codec::Codec;
use crate::srtp::{KeyMaterial, Suite};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// Why an SDP body could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// Not an SDP body, or a line we must understand is broken.
    #[error("malformed SDP at line {line}: {reason}")]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        reason: String,
    },
    /// The offer has no usable `m=audio` stream over RTP/AVP(F).
    #[error("no RTP/AVP audio stream in SDP")]
    NoAudio,
    /// The audio stream offers neither PCMU nor PCMA (at 8000 Hz, mono).
    #[error("no common audio codec (we support PCMU and PCMA)")]
    NoCommonCodec,
    /// The audio stream has no `c=` line, neither its own nor a session-level one
    /// (RFC 4566 §5.7), so there is nowhere to send media.
    #[error("no c= connection address for the audio stream")]
    NoConnectionAddress,
    /// Our policy is [`SrtpPolicy::Mandatory`] and the description has no SRTP we can
    /// use (no `a=crypto` line with a suite and key we support).
    #[error("SRTP is mandatory here but the SDP offers no usable a=crypto line")]
    SrtpRequired,
    /// The audio stream is SRTP-only (`RTP/SAVP`) and our policy is [`SrtpPolicy::Off`].
    #[error("the SDP requires SRTP (RTP/SAVP) but SRTP is off")]
    SrtpNotAllowed,
    /// An `RTP/SAVP` audio stream (or an answer with `a=crypto`) none of whose
    /// `a=crypto` lines we can use: unknown suites, bad keys, unsupported parameters.
    #[error("no usable a=crypto line (supported: AES_CM_128_HMAC_SHA1_80/32, AES_256_CM_HMAC_SHA1_80/32, AEAD_AES_128_GCM, AEAD_AES_256_GCM)")]
    NoUsableCrypto,
    /// The answer to our offer accepted a crypto tag we did not offer, or changed its
    /// suite, or carries more than one `a=crypto` line (an answer accepts one).
    #[error("the answer's a=crypto line does not match our offer")]
    SrtpAnswerMismatch,
    /// [`build_answer_srtp`] was called for an SRTP negotiation without a local key of
    /// the negotiated suite: a bug in the caller, not in the peer's SDP.
    #[error("no local SRTP key of the negotiated suite to put in the answer")]
    SrtpKeyMissing,
}

impl SdpError {
    /// SIP status for rejecting the INVITE: 488 Not Acceptable Here when we understood
    /// the offer but cannot accept it (RFC 3261 §21.4.26), 400 for unparseable bodies.
    pub fn sip_status(&self) -> u16 {
        match self {
            SdpError::Malformed { .. } | SdpError::NoConnectionAddress => 400,
            SdpError::NoAudio
            | SdpError::NoCommonCodec
            | SdpError::SrtpRequired
            | SdpError::SrtpNotAllowed
            | SdpError::NoUsableCrypto
            | SdpError::SrtpAnswerMismatch => 488,
            SdpError::SrtpKeyMissing => 500,
        }
    }
}

/// Media direction attribute (RFC 4566 §6, RFC 3264 §5.1). Hold is signalled with
/// `sendonly`/`inactive`, so the call must not treat missing RTP as a dead peer then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// Both ways (the default when no attribute is present).
    #[default]
    SendRecv,
    /// The describing side only sends.
    SendOnly,
    /// The describing side only receives.
    RecvOnly,
    /// No media either way.
    Inactive,
}

impl Direction {
    /// The direction the other side must use: the answer mirrors the offer
    /// (RFC 3264 §6.1: sendonly ↔ recvonly, sendrecv and inactive stay).
    pub fn reverse(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }

    /// Whether the side described by this direction sends media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the side described by this direction expects to receive media; when
    /// false, an RTP inactivity timeout must not hang the call up.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The attribute name as written in SDP.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn from_attr(a: &str) -> Option<Direction> {
        let d = match a.to_ascii_lowercase().as_str() {
            "sendrecv" => Direction::SendRecv,
            "sendonly" => Direction::SendOnly,
            "recvonly" => Direction::RecvOnly,
            "inactive" => Direction::Inactive,
            _ => return None,
        };
        Some(d)
    }

    fn without_receive(self) -> Direction {
        match self {
            Direction::SendRecv | Direction::SendOnly => Direction::SendOnly,
            Direction::RecvOnly | Direction::Inactive => Direction::Inactive,
        }
    }
}

/// Whether calls use SRTP (SDES keys in `a=crypto` lines, RFC 4568). Configured as
/// `"off"`, `"optional"` or `"mandatory"` ([`FromStr`], case-insensitive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SrtpPolicy {
    /// Plain RTP only: `a=crypto` on an `RTP/AVP` offer is ignored (some phones offer
    /// best-effort SDES that way), an `RTP/SAVP`-only offer is refused with 488, and our
    /// offers carry no keys.
    #[default]
    Off,
    /// SRTP when the peer offers a usable `a=crypto` line, plain RTP otherwise. Our own
    /// offers are `RTP/AVP` with `a=crypto` lines ("best-effort" SDES): phones that do
    /// SDES answer with a key, the others ignore the lines and answer plain RTP, which
    /// an `RTP/SAVP` offer would have made them refuse.
    Optional,
    /// SRTP or no call: an offer without a usable `a=crypto` line gets 488, our offers
    /// are `RTP/SAVP`, and an answer without a key fails the leg.
    Mandatory,
}

impl SrtpPolicy {
    /// The configuration spelling: `off`, `optional` or `mandatory`.
    pub fn as_str(self) -> &'static str {
        match self {
            SrtpPolicy::Off => "off",
            SrtpPolicy::Optional => "optional",
            SrtpPolicy::Mandatory => "mandatory",
        }
    }
}

impl std::fmt::Display for SrtpPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An SRTP policy string that is none of `off`, `optional`, `mandatory`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown SRTP policy {0:?} (expected off, optional or mandatory)")]
pub struct UnknownSrtpPolicy(pub String);

impl FromStr for SrtpPolicy {
    type Err = UnknownSrtpPolicy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" => Ok(SrtpPolicy::Off),
            "optional" => Ok(SrtpPolicy::Optional),
            "mandatory" => Ok(SrtpPolicy::Mandatory),
            _ => Err(UnknownSrtpPolicy(s.to_string())),
        }
    }
}

/// One usable SDES `a=crypto:<tag> <suite> inline:<key>` line (RFC 4568): a suite
/// we implement, a well-formed key of its length, no session parameter we would have
/// to honour and do not. Lines that are not usable are counted in
/// [`AudioMedia::crypto_ignored`] and otherwise skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crypto {
    /// The tag the answer must echo to accept this line.
    pub tag: u32,
    /// The master key and salt of the describing side's *sending* direction.
    pub key: KeyMaterial,
}

impl Crypto {
    /// The line's crypto suite.
    pub fn suite(&self) -> Suite {
        self.key.suite()
    }
}

/// Parses the value of an `a=crypto:` attribute; `None` if we cannot use it.
fn parse_crypto(value: &str) -> Option<Crypto> {
    let mut it = value.split_whitespace();
    let tag_tok = it.next()?;
    if tag_tok.is_empty() || tag_tok.len() > 9 || !tag_tok.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let tag: u32 = tag_tok.parse().ok()?;
    let suite = Suite::from_sdes_name(it.next()?)?;
    let key = KeyMaterial::from_inline(suite, it.next()?).ok()?;
    // RFC 4568 session parameters change how SRTP runs. Those that do not
    // concern us are fine (SRTCP and FEC ones: we send no RTCP; WSH is a hint); any
    // other (UNENCRYPTED_SRTP, UNAUTHENTICATED_SRTP, KDR, FEC_KEY, unknown ones) would
    // have to be honoured, so the line is not usable.
    let harmless = |p: &str| {
        p.eq_ignore_ascii_case("UNENCRYPTED_SRTCP")
            || p.eq_ignore_ascii_case("FEC_ORDER=SRTP_FEC")
            || p.get(..4).is_some_and(|h| h.eq_ignore_ascii_case("WSH="))
    };
    if !it.all(harmless) {
        return None;
    }
    Some(Crypto { tag, key })
}

/// One payload format of the audio stream, resolved from `a=rtpmap` or, for static
/// payload types without one, from RFC 3551 table 4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    /// RTP payload type number.
    pub pt: u8,
    /// Encoding name as given (`PCMU`, `telephone-event`, …); empty if unknown
    /// (dynamic PT without rtpmap).
    pub name: String,
    /// Clock rate in Hz (0 if unknown).
    pub rate: u32,
    /// Channel count (1 unless the rtpmap says otherwise).
    pub channels: u8,
    /// The `a=fmtp` parameters for this PT, if any.
    pub fmtp: Option<String>,
}

/// An `m=` line as offered, kept so the answer can mirror every line (rejecting the
/// ones we do not use with port 0, RFC 3264 §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaLine {
    /// Media type (`audio`, `video`, `application`, …).
    pub media: String,
    /// Transport port (0 = stream disabled).
    pub port: u16,
    /// Transport protocol (`RTP/AVP`, `RTP/SAVP`, …).
    pub proto: String,
    /// The format tokens as offered.
    pub fmts: Vec<String>,
}

/// The audio stream we will use from a remote description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioMedia {
    /// Remote RTP port (0 = stream disabled).
    pub port: u16,
    /// Media-level `c=` address, which overrides the session-level one. `None` if absent
    /// or not an IP literal (hostnames are not resolved in this sans-IO crate).
    pub ip: Option<IpAddr>,
    /// Formats in the order offered (the offerer's preference).
    pub formats: Vec<Format>,
    /// Direction from the media attributes, else the session ones, else sendrecv.
    pub direction: Direction,
    /// `a=ptime` if given: the packetisation the remote prefers to receive.
    pub ptime: Option<u32>,
    /// `a=maxptime` if given.
    pub maxptime: Option<u32>,
    /// Transport protocol as offered (`RTP/AVP`, `RTP/AVPF`, `RTP/SAVP` or
    /// `RTP/SAVPF`), echoed in the answer.
    pub proto: String,
    /// Index of this stream's `m=` line, so the answer keeps the same position.
    pub index: usize,
    /// Usable SDES `a=crypto` lines in the order given (the offerer's preference).
    pub crypto: Vec<Crypto>,
    /// `a=crypto` lines skipped: unknown suite, bad key or length, unsupported
    /// session parameters or MKI. Lets an answer with a broken key be told apart from
    /// one without any.
    pub crypto_ignored: usize,
}

impl AudioMedia {
    /// Whether the transport is SRTP-only (`RTP/SAVP` or `RTP/SAVPF`).
    pub fn is_savp(&self) -> bool {
        is_rtp_savp(&self.proto)
    }
}

impl AudioMedia {
    /// The remote media address: media-level `c=` else `session_ip`. Returns `None` when
    /// no media should be sent: port 0, no address, or the unspecified address
    /// (`0.0.0.0`, RFC 2543-style hold).
    pub fn remote_addr(&self, session_ip: Option<IpAddr>) -> Option<SocketAddr> {
        let ip = self.ip.or(session_ip)?;
        if self.port == 0 || ip.is_unspecified() {
            return None;
        }
        Some(SocketAddr::new(ip, self.port))
    }
}

/// The `o=` line of a remote description. A re-INVITE with the same session version
/// carries no change (RFC 3264 §8), which the caller can check cheaply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Username field (often `-`).
    pub username: String,
    /// Session id.
    pub session_id: String,
    /// Session version, incremented on every change.
    pub session_version: String,
}

/// What we extracted from a remote SDP body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSdp {
    /// Session-level `c=` address, if an IP literal.
    pub session_ip: Option<IpAddr>,
    /// The first usable RTP/AVP(F) audio stream (one with a non-zero port preferred).
    pub audio: Option<AudioMedia>,
    /// The first usable RTP/SAVP(F) audio stream (SDES SRTP), chosen the same way. Only
    /// [`negotiate_srtp`] and [`negotiate_answer_srtp`] use it; `UDP/TLS/RTP/SAVP`
    /// (DTLS-SRTP) is not SDES and is never picked.
    pub secure_audio: Option<AudioMedia>,
    /// Number of `m=` lines, which the answer must match (RFC 3264 §6).
    pub media_count: usize,
    /// Every `m=` line, in order.
    pub media: Vec<MediaLine>,
    /// The `o=` line, if present and well formed.
    pub origin: Option<Origin>,
    /// Session-level direction attribute, if any.
    pub session_direction: Option<Direction>,
}

/// RFC 3551 table 4 static audio payload types, used when an offer omits `a=rtpmap`.
fn static_format(pt: u8) -> Option<(&'static str, u32, u8)> {
    Some(match pt {
        0 => ("PCMU", 8000, 1),
        3 => ("GSM", 8000, 1),
        4 => ("G723", 8000, 1),
        5 => ("DVI4", 8000, 1),
        6 => ("DVI4", 16000, 1),
        7 => ("LPC", 8000, 1),
        8 => ("PCMA", 8000, 1),
        9 => ("G722", 8000, 1),
        10 => ("L16", 44100, 2),
        11 => ("L16", 44100, 1),
        12 => ("QCELP", 8000, 1),
        13 => ("CN", 8000, 1),
        14 => ("MPA", 90000, 1),
        15 => ("G728", 8000, 1),
        16 => ("DVI4", 11025, 1),
        17 => ("DVI4", 22050, 1),
        18 => ("G729", 8000, 1),
        _ => return None,
    })
}

#[derive(Default)]
struct MediaBuilder {
    line: Option<MediaLine>,
    ip: Option<IpAddr>,
    rtpmap: Vec<(u8, String, u32, u8)>,
    fmtp: Vec<(u8, String)>,
    direction: Option<Direction>,
    ptime: Option<u32>,
    maxptime: Option<u32>,
    crypto: Vec<Crypto>,
    crypto_ignored: usize,
}

fn parse_connection(value: &str) -> Option<IpAddr> {
    // c=IN IP4 192.0.2.1[/ttl[/count]]
    let mut it = value.split_whitespace();
    let _net = it.next()?;
    let _addrtype = it.next()?;
    let addr = it.next()?;
    addr.split('/').next()?.parse().ok()
}

fn parse_rtpmap(value: &str) -> Option<(u8, String, u32, u8)> {
    // 96 telephone-event/8000[/channels]
    let (pt, rest) = value.trim().split_once(char::is_whitespace)?;
    let pt: u8 = pt.parse().ok()?;
    let mut parts = rest.trim().split('/');
    let name = parts.next()?.trim().to_string();
    let rate: u32 = parts.next()?.trim().parse().ok()?;
    let channels: u8 = match parts.next() {
        Some(c) => c.trim().parse().ok()?,
        None => 1,
    };
    Some((pt, name, rate, channels))
}

fn malformed(line: usize, reason: impl Into<String>) -> SdpError {
    SdpError::Malformed {
        line,
        reason: reason.into(),
    }
}

fn is_rtp_avp(proto: &str) -> bool {
    proto.eq_ignore_ascii_case("RTP/AVP") || proto.eq_ignore_ascii_case("RTP/AVPF")
}

fn is_rtp_savp(proto: &str) -> bool {
    proto.eq_ignore_ascii_case("RTP/SAVP") || proto.eq_ignore_ascii_case("RTP/SAVPF")
}

/// Parses a remote SDP body tolerantly (CRLF or LF, any attribute order, unknown lines
/// ignored, static payload types resolved without `a=rtpmap`).
///
/// Fails only when the text is not SDP at all (first line is not `v=`) or an `m=` line
/// is broken, since then the answer could not keep the m-line structure.
pub fn parse(text: &str) -> Result<RemoteSdp, SdpError> {
    let mut session_ip = None;
    let mut session_direction = None;
    let mut origin = None;
    let mut medias: Vec<MediaBuilder> = Vec::new();
    let mut saw_version = false;

    for (i, raw) in text.split('\n').enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let bytes = line.as_bytes();
        let typed = bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b'=';
        if !saw_version {
            if typed && bytes[0] == b'v' {
                saw_version = true;
                continue;
            }
            return Err(malformed(line_no, "SDP must start with a v= line"));
        }
        if !typed {
            continue; // tolerate junk lines
        }
        let value = &line[2..];
        match bytes[0] {
            b'o' => {
                let f: Vec<&str> = value.split_whitespace().collect();
                if f.len() >= 3 {
                    origin = Some(Origin {
                        username: f[0].to_string(),
                        session_id: f[1].to_string(),
                        session_version: f[2].to_string(),
                    });
                }
            }
            b'c' => {
                // An address we cannot send to makes the offer unanswerable
                // (RFC 4566 §5.7); answering 200 would set up a call whose
                // media goes nowhere.
                let ip =
                    Some(parse_connection(value).ok_or_else(|| {
                        malformed(line_no, "c= must carry an IPv4 or IPv6 address")
                    })?);
                match medias.last_mut() {
                    Some(m) => m.ip = ip,
                    None => session_ip = ip,
                }
            }
            b'm' => {
                let mut it = value.split_whitespace();
                let media = it
                    .next()
                    .ok_or_else(|| malformed(line_no, "empty m= line"))?;
                let port_tok = it
                    .next()
                    .ok_or_else(|| malformed(line_no, "m= line without port"))?;
                let port: u16 = port_tok
                    .split('/')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| malformed(line_no, format!("invalid port {port_tok:?}")))?;
                let proto = it
                    .next()
                    .ok_or_else(|| malformed(line_no, "m= line without protocol"))?;
                medias.push(MediaBuilder {
                    line: Some(MediaLine {
                        media: media.to_string(),
                        port,
                        proto: proto.to_string(),
                        fmts: it.map(str::to_string).collect(),
                    }),
                    ..Default::default()
                });
            }
            b'a' => {
                let (name, arg) = match value.split_once(':') {
                    Some((n, a)) => (n.trim(), Some(a.trim())),
                    None => (value.trim(), None),
                };
                if let Some(d) = Direction::from_attr(name) {
                    match medias.last_mut() {
                        Some(m) => m.direction = Some(d),
                        None => session_direction = Some(d),
                    }
                    continue;
                }
                let (Some(m), Some(arg)) = (medias.last_mut(), arg) else {
                    continue;
                };
                if name.eq_ignore_ascii_case("rtpmap") {
                    if let Some(r) = parse_rtpmap(arg) {
                        m.rtpmap.push(r);
                    }
                } else if name.eq_ignore_ascii_case("fmtp") {
                    if let Some((pt, params)) = arg.split_once(char::is_whitespace) {
                        if let Ok(pt) = pt.parse::<u8>() {
                            m.fmtp.push((pt, params.trim().to_string()));
                        }
                    }
                } else if name.eq_ignore_ascii_case("ptime") {
                    m.ptime = arg.parse().ok();
                } else if name.eq_ignore_ascii_case("maxptime") {
                    m.maxptime = arg.parse().ok();
                } else if name.eq_ignore_ascii_case("crypto") {
                    match parse_crypto(arg) {
                        Some(c) => m.crypto.push(c),
                        None => m.crypto_ignored += 1,
                    }
                }
            }
            _ => {}
        }
    }
    if !saw_version {
        return Err(malformed(1, "empty SDP"));
    }

    let media: Vec<MediaLine> = medias.iter().filter_map(|m| m.line.clone()).collect();
    let audio = pick_audio(&medias, is_rtp_avp, session_direction);
    let secure_audio = pick_audio(&medias, is_rtp_savp, session_direction);

    Ok(RemoteSdp {
        session_ip,
        audio,
        secure_audio,
        media_count: media.len(),
        media,
        origin,
        session_direction,
    })
}

/// The first audio stream whose transport passes `proto_ok` (one with a non-zero port
/// preferred), resolved into an [`AudioMedia`].
fn pick_audio(
    medias: &[MediaBuilder],
    proto_ok: fn(&str) -> bool,
    session_direction: Option<Direction>,
) -> Option<AudioMedia> {
    let is_candidate = |m: &MediaBuilder| {
        m.line
            .as_ref()
            .is_some_and(|l| l.media.eq_ignore_ascii_case("audio") && proto_ok(&l.proto))
    };
    let chosen = medias
        .iter()
        .position(|m| is_candidate(m) && m.line.as_ref().is_some_and(|l| l.port != 0))
        .or_else(|| medias.iter().position(is_candidate));
    chosen.and_then(|index| {
        let b = medias.get(index)?;
        let l = b.line.as_ref()?;
        let formats = l
            .fmts
            .iter()
            .filter_map(|tok| tok.parse::<u8>().ok().filter(|pt| *pt < 128))
            .map(|pt| {
                let (name, rate, channels) = match b.rtpmap.iter().find(|r| r.0 == pt) {
                    Some((_, n, r, c)) => (n.clone(), *r, *c),
                    None => match static_format(pt) {
                        Some((n, r, c)) => (n.to_string(), r, c),
                        None => (String::new(), 0, 1),
                    },
                };
                let fmtp = b.fmtp.iter().find(|f| f.0 == pt).map(|f| f.1.clone());
                Format {
                    pt,
                    name,
                    rate,
                    channels,
                    fmtp,
                }
            })
            .collect();
        Some(AudioMedia {
            port: l.port,
            ip: b.ip,
            formats,
            direction: b.direction.or(session_direction).unwrap_or_default(),
            ptime: b.ptime,
            maxptime: b.maxptime,
            proto: l.proto.clone(),
            index,
            crypto: b.crypto.clone(),
            crypto_ignored: b.crypto_ignored,
        })
    })
}

/// The outcome of offer/answer for the audio stream: everything the RTP session needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The codec both sides use.
    pub codec: Codec,
    /// Payload type to send the codec with (the remote's number; usually 0/8).
    pub pt: u8,
    /// Payload type of `telephone-event/8000`, if the remote supports RFC 4733.
    pub dtmf_pt: Option<u8>,
    /// Where to send RTP; `None` when we must not send (port 0, `c=0.0.0.0`, no `c=`).
    /// Senders should still latch onto the source address real RTP comes from (NAT).
    pub remote: Option<SocketAddr>,
    /// *Our* direction, mirrored from the remote's (and reduced on hold).
    pub direction: Direction,
    /// Packetisation we send, in ms (always 20: prompts are stored as 20 ms frames).
    pub ptime: u32,
    /// Index of the remote description's `m=` line this negotiation used: the answer
    /// accepts that line and rejects the others.
    pub index: usize,
    /// SRTP, when negotiated ([`negotiate_srtp`], [`negotiate_answer_srtp`]); always
    /// `None` from [`negotiate`].
    pub srtp: Option<SrtpNegotiated>,
}

/// The SDES outcome: which `a=crypto` line was accepted and the remote side's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtpNegotiated {
    /// The accepted suite; our own key must be of the same suite.
    pub suite: Suite,
    /// The accepted line's tag, echoed in the answer's `a=crypto`.
    pub tag: u32,
    /// The remote side's master key: build the *receiving* [`crate::srtp::Srtp`] from it.
    pub remote: KeyMaterial,
}

impl Negotiated {
    /// Whether the stream is on hold in any form (`sendonly`, `recvonly`, `inactive`,
    /// port 0 or `c=0.0.0.0`). Many phones stop sending RTP entirely on hold even when
    /// they say `sendonly`, so an RTP inactivity timeout must only run when this is
    /// false (DESIGN.md pitfall "calls cut after N seconds of silence").
    pub fn is_hold(&self) -> bool {
        self.direction != Direction::SendRecv || self.remote.is_none()
    }

    /// Whether we should send RTP right now.
    pub fn should_send(&self) -> bool {
        self.direction.sends() && self.remote.is_some()
    }
}

/// Negotiates the audio stream of a remote offer (or of the answer to our own offer).
///
/// Picks the first format *in the remote's order* that is PCMU/PCMA at 8000 Hz mono and
/// in `supported` (honouring the offerer's preference, RFC 3264 §6.1), and the
/// `telephone-event` format at 8000 Hz (never another rate, which would garble
/// timestamps). Our direction mirrors the remote's.
pub fn negotiate(offer: &RemoteSdp, supported: &[Codec]) -> Result<Negotiated, SdpError> {
    let audio = offer.audio.as_ref().ok_or(SdpError::NoAudio)?;
    negotiate_stream(offer, audio, supported, None)
}

/// Codec, telephone-event, address and direction of one audio stream.
fn negotiate_stream(
    offer: &RemoteSdp,
    audio: &AudioMedia,
    supported: &[Codec],
    srtp: Option<SrtpNegotiated>,
) -> Result<Negotiated, SdpError> {
    let (codec, pt) = audio
        .formats
        .iter()
        .find_map(|f| {
            let c = Codec::from_name(&f.name)?;
            (f.rate == Codec::CLOCK_RATE && f.channels == 1 && supported.contains(&c))
                .then_some((c, f.pt))
        })
        .ok_or(SdpError::NoCommonCodec)?;
    let dtmf_pt = audio
        .formats
        .iter()
        .find(|f| f.name.eq_ignore_ascii_case("telephone-event") && f.rate == Codec::CLOCK_RATE)
        .map(|f| f.pt);
    if audio.port != 0 && audio.ip.or(offer.session_ip).is_none() {
        // RFC 4566 §5.7: c= at session level or in every m= section.
        return Err(SdpError::NoConnectionAddress);
    }
    let remote = audio.remote_addr(offer.session_ip);
    let ip_unspecified = audio
        .ip
        .or(offer.session_ip)
        .is_some_and(|ip| ip.is_unspecified());
    let remote_dir = if audio.port == 0 {
        Direction::Inactive
    } else if ip_unspecified {
        // RFC 3264 §8.4: c=0.0.0.0 is old-style hold: the offerer does not want media.
        audio.direction.without_receive()
    } else {
        audio.direction
    };
    Ok(Negotiated {
        codec,
        pt,
        dtmf_pt,
        remote,
        direction: remote_dir.reverse(),
        ptime: 20,
        index: audio.index,
        srtp,
    })
}

/// The audio stream to use for SDES under a policy that wants SRTP, and its first
/// usable crypto line: an `RTP/SAVP(F)` stream with one, else an `RTP/AVP(F)` stream
/// with one (best-effort SDES). Streams with port 0 come last.
fn secure_candidate(d: &RemoteSdp) -> Option<(&AudioMedia, &Crypto)> {
    let mut streams: Vec<&AudioMedia> = d.secure_audio.iter().chain(d.audio.iter()).collect();
    streams.sort_by_key(|a| a.port == 0);
    streams
        .into_iter()
        .find_map(|a| a.crypto.first().map(|c| (a, c)))
}

/// Negotiates a remote offer under an SRTP policy (RFC 4568, as the answerer).
///
/// - `Off`: as [`negotiate`]: the `RTP/AVP(F)` stream, crypto lines ignored; an offer
///   that only has `RTP/SAVP(F)` audio → [`SdpError::SrtpNotAllowed`] (488).
/// - `Optional`: SRTP with the *first* usable `a=crypto` line in the offerer's order
///   (PJSIP lists `AES_256_CM_HMAC_SHA1_80` first, baresip `AES_CM_128_HMAC_SHA1_32`),
///   on the `RTP/SAVP(F)` stream if it has one, else on an `RTP/AVP(F)` stream that
///   carries crypto lines; plain RTP when nothing is offered; an `RTP/SAVP` stream
///   whose lines are all unusable → [`SdpError::NoUsableCrypto`] (488).
/// - `Mandatory`: as `Optional` but never plain: [`SdpError::SrtpRequired`] (488).
///
/// With SRTP, [`Negotiated::srtp`] holds the chosen tag, suite and the offerer's key;
/// the caller makes a key of that suite for its own direction and passes it to
/// [`build_answer_srtp`].
pub fn negotiate_srtp(
    offer: &RemoteSdp,
    supported: &[Codec],
    policy: SrtpPolicy,
) -> Result<Negotiated, SdpError> {
    let plain = offer.audio.as_ref();
    match policy {
        SrtpPolicy::Off => match (plain, &offer.secure_audio) {
            (Some(a), _) => negotiate_stream(offer, a, supported, None),
            (None, Some(_)) => Err(SdpError::SrtpNotAllowed),
            (None, None) => Err(SdpError::NoAudio),
        },
        SrtpPolicy::Optional | SrtpPolicy::Mandatory => {
            if let Some((audio, c)) = secure_candidate(offer) {
                let srtp = SrtpNegotiated {
                    suite: c.suite(),
                    tag: c.tag,
                    remote: c.key.clone(),
                };
                return negotiate_stream(offer, audio, supported, Some(srtp));
            }
            match (plain, &offer.secure_audio, policy) {
                (Some(a), _, SrtpPolicy::Optional) => negotiate_stream(offer, a, supported, None),
                (_, Some(_), _) => Err(SdpError::NoUsableCrypto),
                (Some(_), None, _) => Err(SdpError::SrtpRequired),
                (None, None, _) => Err(SdpError::NoAudio),
            }
        }
    }
}

/// Reads the answer to an offer made with [`build_offer_srtp`] (RFC 4568, as the
/// offerer): which of our crypto lines was accepted (by tag, and the suite must be
/// the one we offered under it) and the answerer's key. Our own key for the accepted
/// line is `offered.key(srtp.tag)`.
///
/// An answer with `a=crypto` (or `RTP/SAVP`) but nothing we offered, or with a key we
/// cannot use, is an error whatever the policy: the answerer would send SRTP we cannot
/// read. An answer without crypto is plain RTP under `Optional`/`Off` and
/// [`SdpError::SrtpRequired`] under `Mandatory`.
pub fn negotiate_answer_srtp(
    answer: &RemoteSdp,
    supported: &[Codec],
    policy: SrtpPolicy,
    offered: &SrtpOffer,
) -> Result<Negotiated, SdpError> {
    if policy == SrtpPolicy::Off {
        return negotiate_srtp(answer, supported, SrtpPolicy::Off);
    }
    let mut streams: Vec<&AudioMedia> = answer
        .secure_audio
        .iter()
        .chain(answer.audio.iter())
        .collect();
    streams.sort_by_key(|a| a.port == 0);
    let audio = *streams.first().ok_or(SdpError::NoAudio)?;
    match audio.crypto.as_slice() {
        [] if audio.crypto_ignored > 0 => Err(SdpError::NoUsableCrypto),
        [] if audio.is_savp() => Err(SdpError::NoUsableCrypto),
        [] if policy == SrtpPolicy::Mandatory => Err(SdpError::SrtpRequired),
        [] => negotiate_stream(answer, audio, supported, None),
        [c] if audio.crypto_ignored == 0 => {
            let ours = offered.key(c.tag).ok_or(SdpError::SrtpAnswerMismatch)?;
            if ours.suite() != c.suite() {
                return Err(SdpError::SrtpAnswerMismatch);
            }
            let srtp = SrtpNegotiated {
                suite: c.suite(),
                tag: c.tag,
                remote: c.key.clone(),
            };
            negotiate_stream(answer, audio, supported, Some(srtp))
        }
        _ => Err(SdpError::SrtpAnswerMismatch),
    }
}

/// The keys of an SDES offer we make, one `a=crypto` line each, tags 1, 2, … in order.
/// Keep it until the answer arrives: [`negotiate_answer_srtp`] checks the answer
/// against it and [`SrtpOffer::key`] gives our key for the accepted tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtpOffer {
    keys: Vec<(u32, KeyMaterial)>,
}

impl SrtpOffer {
    /// The suites we offer, in our preference order: the universally supported one
    /// first, then AES-256, GCM, and the short-tag variant last.
    pub const SUITES: [Suite; 4] = [
        Suite::AesCm128HmacSha1_80,
        Suite::AesCm256HmacSha1_80,
        Suite::AeadAes128Gcm,
        Suite::AesCm128HmacSha1_32,
    ];

    /// An offer of the given keys, in that order, tagged 1, 2, ….
    pub fn new(keys: Vec<KeyMaterial>) -> SrtpOffer {
        SrtpOffer {
            keys: (1u32..).zip(keys).collect(),
        }
    }

    /// One fresh key per suite of [`SrtpOffer::SUITES`] from the caller's CSPRNG.
    pub fn from_rng<R: rand::CryptoRng + ?Sized>(rng: &mut R) -> SrtpOffer {
        SrtpOffer::new(
            SrtpOffer::SUITES
                .iter()
                .map(|&s| KeyMaterial::from_rng(s, rng))
                .collect(),
        )
    }

    /// One fresh key per suite of [`SrtpOffer::SUITES`] from `rand`'s thread CSPRNG.
    pub fn random() -> SrtpOffer {
        SrtpOffer::from_rng(&mut rand::rng())
    }

    /// The `(tag, key)` pairs in offer order.
    pub fn keys(&self) -> &[(u32, KeyMaterial)] {
        &self.keys
    }

    /// Our key offered under `tag`: the one to protect what we send once the answer
    /// accepted that tag.
    pub fn key(&self, tag: u32) -> Option<&KeyMaterial> {
        self.keys.iter().find(|(t, _)| *t == tag).map(|(_, k)| k)
    }
}

fn ip_kind(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    }
}

fn session_header(out: &mut String, local_ip: IpAddr, session_id: u64, version: u64) {
    let k = ip_kind(local_ip);
    let _ = write!(
        out,
        "v=0\r\no=ringback {session_id} {version} IN {k} {local_ip}\r\ns=ringback\r\nc=IN {k} {local_ip}\r\nt=0 0\r\n"
    );
}

fn audio_section(
    out: &mut String,
    port: u16,
    proto: &str,
    codecs: &[(u8, Codec)],
    dtmf_pt: Option<u8>,
    direction: Direction,
    crypto: &[(u32, &KeyMaterial)],
) {
    let _ = write!(out, "m=audio {port} {proto}");
    for (pt, _) in codecs {
        let _ = write!(out, " {pt}");
    }
    if let Some(d) = dtmf_pt {
        let _ = write!(out, " {d}");
    }
    out.push_str("\r\n");
    for (pt, c) in codecs {
        let _ = write!(out, "a=rtpmap:{pt} {}/8000\r\n", c.encoding_name());
    }
    if let Some(d) = dtmf_pt {
        let _ = write!(
            out,
            "a=rtpmap:{d} telephone-event/8000\r\na=fmtp:{d} 0-16\r\n"
        );
    }
    let _ = write!(out, "a=ptime:20\r\na={}\r\n", direction.as_str());
    for (tag, key) in crypto {
        let _ = write!(
            out,
            "a=crypto:{tag} {} {}\r\n",
            key.suite().sdes_name(),
            key.to_inline()
        );
    }
}

/// Builds our answer (RFC 3264 §6): the same number of `m=` lines as the offer, the
/// chosen audio stream at its index with our address, codec, telephone-event and
/// direction, every other stream rejected with port 0. `session_id`/`version` go into
/// `o=`; increment `version` whenever a later answer/offer in the dialog changes.
///
/// For a negotiation with SRTP ([`Negotiated::srtp`] set) use [`build_answer_srtp`]:
/// this function writes no `a=crypto` line.
pub fn build_answer(
    neg: &Negotiated,
    offer: &RemoteSdp,
    local_ip: IpAddr,
    local_port: u16,
    session_id: u64,
    version: u64,
) -> String {
    write_answer(neg, offer, local_ip, local_port, session_id, version, &[])
}

/// Builds our answer like [`build_answer`], and for an SRTP negotiation adds
/// `a=crypto:<accepted tag> <suite> inline:<local_key>` on the answered stream, whose
/// `m=` line keeps the offer's profile (`RTP/SAVP`, or `RTP/AVP` for best-effort SDES).
///
/// `local_key` is the key we will *send* with: fresh random material of
/// `neg.srtp.suite` (e.g. [`KeyMaterial::random`]), or the one of a previous answer in
/// the same dialog to keep the key across a re-INVITE. It is ignored when `neg.srtp`
/// is `None`; when SRTP was negotiated and it is missing or of another suite, the
/// answer cannot be built: [`SdpError::SrtpKeyMissing`] (500, a caller bug).
#[allow(clippy::too_many_arguments)]
pub fn build_answer_srtp(
    neg: &Negotiated,
    offer: &RemoteSdp,
    local_ip: IpAddr,
    local_port: u16,
    session_id: u64,
    version: u64,
    local_key: Option<&KeyMaterial>,
) -> Result<String, SdpError> {
    let crypto: Vec<(u32, &KeyMaterial)> = match (&neg.srtp, local_key) {
        (None, _) => Vec::new(),
        (Some(s), Some(k)) if k.suite() == s.suite => vec![(s.tag, k)],
        (Some(_), _) => return Err(SdpError::SrtpKeyMissing),
    };
    Ok(write_answer(
        neg, offer, local_ip, local_port, session_id, version, &crypto,
    ))
}

fn write_answer(
    neg: &Negotiated,
    offer: &RemoteSdp,
    local_ip: IpAddr,
    local_port: u16,
    session_id: u64,
    version: u64,
    crypto: &[(u32, &KeyMaterial)],
) -> String {
    let mut out = String::with_capacity(512);
    session_header(&mut out, local_ip, session_id, version);
    let audio_index = Some(neg.index).filter(|i| *i < offer.media.len());
    let mut wrote_audio = false;
    for (i, m) in offer.media.iter().enumerate() {
        if Some(i) == audio_index {
            let port = if m.port == 0 { 0 } else { local_port };
            audio_section(
                &mut out,
                port,
                &m.proto,
                &[(neg.pt, neg.codec)],
                neg.dtmf_pt,
                neg.direction,
                crypto,
            );
            wrote_audio = true;
        } else {
            let _ = write!(out, "m={} 0 {}", m.media, m.proto);
            if m.fmts.is_empty() {
                out.push_str(" 0");
            }
            for f in &m.fmts {
                let _ = write!(out, " {f}");
            }
            out.push_str("\r\n");
        }
    }
    if !wrote_audio {
        let proto = if crypto.is_empty() {
            "RTP/AVP"
        } else {
            "RTP/SAVP"
        };
        audio_section(
            &mut out,
            local_port,
            proto,
            &[(neg.pt, neg.codec)],
            neg.dtmf_pt,
            neg.direction,
            crypto,
        );
    }
    out
}

/// Builds an offer for our outgoing legs (agents, callback customers): the given codecs
/// in our preference order with their static payload types, `telephone-event/8000` on
/// `dtmf_pt`, 20 ms, sendrecv. An empty `codecs` list offers both G.711 laws.
pub fn build_offer(
    codecs: &[Codec],
    dtmf_pt: u8,
    local_ip: IpAddr,
    local_port: u16,
    session_id: u64,
    version: u64,
) -> String {
    write_offer(
        codecs,
        dtmf_pt,
        local_ip,
        local_port,
        session_id,
        version,
        "RTP/AVP",
        &[],
    )
}

/// Builds an offer like [`build_offer`] with SDES keys per policy: `Mandatory` offers
/// `RTP/SAVP` with one `a=crypto` line per key of `srtp`; `Optional` offers `RTP/AVP`
/// with the same lines (best-effort SDES: RFC 4568 defines `a=crypto` for SAVP, but
/// phones that do SDES accept it on AVP and the others ignore it); `Off` ignores
/// `srtp` and is [`build_offer`]. Read the answer with [`negotiate_answer_srtp`] and
/// the same `srtp`.
#[allow(clippy::too_many_arguments)]
pub fn build_offer_srtp(
    codecs: &[Codec],
    dtmf_pt: u8,
    local_ip: IpAddr,
    local_port: u16,
    session_id: u64,
    version: u64,
    policy: SrtpPolicy,
    srtp: &SrtpOffer,
) -> String {
    let crypto: Vec<(u32, &KeyMaterial)> = srtp.keys().iter().map(|(t, k)| (*t, k)).collect();
    let (proto, crypto) = match policy {
        SrtpPolicy::Off => ("RTP/AVP", &[][..]),
        SrtpPolicy::Optional => ("RTP/AVP", &crypto[..]),
        SrtpPolicy::Mandatory => ("RTP/SAVP", &crypto[..]),
    };
    write_offer(
        codecs, dtmf_pt, local_ip, local_port, session_id, version, proto, crypto,
    )
}

#[allow(clippy::too_many_arguments)]
fn write_offer(
    codecs: &[Codec],
    dtmf_pt: u8,
    local_ip: IpAddr,
    local_port: u16,
    session_id: u64,
    version: u64,
    proto: &str,
    crypto: &[(u32, &KeyMaterial)],
) -> String {
    let mut list: Vec<(u8, Codec)> = Vec::with_capacity(2);
    let codecs = if codecs.is_empty() {
        &Codec::ALL[..]
    } else {
        codecs
    };
    for &c in codecs {
        if !list.iter().any(|(_, x)| *x == c) {
            list.push((c.payload_type(), c));
        }
    }
    let mut out = String::with_capacity(384);
    session_header(&mut out, local_ip, session_id, version);
    audio_section(
        &mut out,
        local_port,
        proto,
        &list,
        Some(dtmf_pt & 0x7F),
        Direction::SendRecv,
        crypto,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use std::net::Ipv4Addr;

    const OUR_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 5));

    fn offer(media: &str) -> String {
        format!(
            "v=0\r\no=- 123 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n{media}"
        )
    }

    fn both() -> Vec<Codec> {
        vec![Codec::Pcmu, Codec::Pcma]
    }

    /// Answers `text`, checks the answer with rtc-sdp's strict parser and our own, and
    /// returns (negotiated, parsed answer).
    fn answer(text: &str, supported: &[Codec]) -> (Negotiated, RemoteSdp, String) {
        let o = parse(text).expect("offer parses");
        let n = negotiate(&o, supported).expect("negotiates");
        let a = build_answer(&n, &o, OUR_IP, 40000, 42, 1);
        assert!(a.ends_with("\r\n"));
        assert!(
            !a.replace("\r\n", "").contains('\n'),
            "only CRLF line endings"
        );
        let strict = rtc_sdp::SessionDescription::unmarshal(&mut Cursor::new(a.as_bytes()))
            .unwrap_or_else(|e| panic!("rtc-sdp rejects our answer: {e}\n{a}"));
        assert_eq!(strict.media_descriptions.len(), o.media_count);
        let back = parse(&a).expect("answer parses");
        assert_eq!(back.media_count, o.media_count);
        (n, back, a)
    }

    #[test]
    fn pcmu_only_offer() {
        let (n, a, text) = answer(
            &offer("m=audio 5004 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"),
            &both(),
        );
        assert_eq!((n.codec, n.pt, n.dtmf_pt), (Codec::Pcmu, 0, Some(101)));
        assert_eq!(n.remote, Some("192.0.2.10:5004".parse().unwrap()));
        assert_eq!(n.direction, Direction::SendRecv);
        assert_eq!(n.ptime, 20);
        assert!(!n.is_hold() && n.should_send());
        let aa = a.audio.unwrap();
        assert_eq!(aa.port, 40000);
        assert_eq!(a.session_ip, Some(OUR_IP));
        let names: Vec<(u8, &str, u32)> = aa
            .formats
            .iter()
            .map(|f| (f.pt, f.name.as_str(), f.rate))
            .collect();
        assert_eq!(
            names,
            vec![(0, "PCMU", 8000), (101, "telephone-event", 8000)]
        );
        assert_eq!(aa.formats[1].fmtp.as_deref(), Some("0-16"));
        assert_eq!(aa.ptime, Some(20));
        assert_eq!(aa.direction, Direction::SendRecv);
        assert!(text.contains("a=sendrecv\r\n"));
        assert!(text.contains("o=ringback 42 1 IN IP4 203.0.113.5\r\n"));
    }

    #[test]
    fn pcma_only_offer_and_unsupported_locally() {
        let text = offer("m=audio 5004 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n");
        let (n, a, _) = answer(&text, &both());
        assert_eq!((n.codec, n.pt, n.dtmf_pt), (Codec::Pcma, 8, None));
        let fm: Vec<u8> = a.audio.unwrap().formats.iter().map(|f| f.pt).collect();
        assert_eq!(fm, vec![8], "no telephone-event in answer when not offered");
        // We only support PCMU here → 488.
        let e = negotiate(&parse(&text).unwrap(), &[Codec::Pcmu]).unwrap_err();
        assert_eq!(e, SdpError::NoCommonCodec);
        assert_eq!(e.sip_status(), 488);
    }

    #[test]
    fn offerer_preference_is_honoured_in_either_order() {
        let (n, ..) = answer(&offer("m=audio 5004 RTP/AVP 8 0 101\r\n"), &both());
        assert_eq!(n.codec, Codec::Pcma);
        let (n, ..) = answer(&offer("m=audio 5004 RTP/AVP 0 8 101\r\n"), &both());
        assert_eq!(n.codec, Codec::Pcmu);
        // Our own order does not override the offerer's.
        let (n, ..) = answer(
            &offer("m=audio 5004 RTP/AVP 8 0\r\n"),
            &[Codec::Pcmu, Codec::Pcma],
        );
        assert_eq!(n.codec, Codec::Pcma);
        // Preferred codec unsupported locally → next one.
        let (n, ..) = answer(&offer("m=audio 5004 RTP/AVP 9 8 0\r\n"), &[Codec::Pcmu]);
        assert_eq!((n.codec, n.pt), (Codec::Pcmu, 0));
    }

    #[test]
    fn static_payload_types_without_rtpmap() {
        let o = parse(&offer("m=audio 5004 RTP/AVP 18 0 8 13\r\n")).unwrap();
        let a = o.audio.as_ref().unwrap();
        let names: Vec<&str> = a.formats.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, vec!["G729", "PCMU", "PCMA", "CN"]);
        let n = negotiate(&o, &both()).unwrap();
        assert_eq!((n.codec, n.pt, n.dtmf_pt), (Codec::Pcmu, 0, None));
    }

    #[test]
    fn dynamic_pt_for_g711_is_used_as_given() {
        let (n, a, _) = answer(
            &offer("m=audio 5004 RTP/AVP 96 97\r\na=rtpmap:96 opus/48000/2\r\na=rtpmap:97 pcma/8000\r\n"),
            &both(),
        );
        assert_eq!((n.codec, n.pt), (Codec::Pcma, 97));
        assert_eq!(a.audio.unwrap().formats[0].pt, 97);
    }

    #[test]
    fn no_common_codec() {
        for m in [
            "m=audio 5004 RTP/AVP 9\r\na=rtpmap:9 G722/8000\r\n",
            "m=audio 5004 RTP/AVP 111 101\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:101 telephone-event/48000\r\n",
            "m=audio 5004 RTP/AVP 0\r\na=rtpmap:0 PCMU/16000\r\n",
            "m=audio 5004 RTP/AVP 96\r\n",
            "m=audio 5004 RTP/AVP\r\n",
        ] {
            let o = parse(&offer(m)).unwrap();
            assert_eq!(negotiate(&o, &both()), Err(SdpError::NoCommonCodec), "{m}");
        }
    }

    #[test]
    fn no_audio() {
        for m in [
            "",
            "m=video 5006 RTP/AVP 31\r\n",
            "m=audio 5004 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x\r\n",
        ] {
            let o = parse(&offer(m)).unwrap();
            let e = negotiate(&o, &both()).unwrap_err();
            assert_eq!(e, SdpError::NoAudio, "{m}");
            assert_eq!(e.sip_status(), 488);
        }
    }

    #[test]
    fn telephone_event_pt_and_rate_selection() {
        let (n, ..) = answer(
            &offer("m=audio 5004 RTP/AVP 0 96\r\na=rtpmap:96 telephone-event/8000\r\n"),
            &both(),
        );
        assert_eq!(n.dtmf_pt, Some(96));
        // 48000 listed first: never pick a mismatched rate.
        let (n, a, text) = answer(
            &offer("m=audio 5004 RTP/AVP 8 110 101\r\na=rtpmap:110 telephone-event/48000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:110 0-15\r\na=fmtp:101 0-15\r\n"),
            &both(),
        );
        assert_eq!(n.dtmf_pt, Some(101));
        assert!(text.contains("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"));
        assert!(!text.contains("110"));
        let pts: Vec<u8> = a.audio.unwrap().formats.iter().map(|f| f.pt).collect();
        assert_eq!(pts, vec![8, 101]);
        // Only 48000 → no DTMF PT (SIP INFO / in-band remain).
        let (n, ..) = answer(
            &offer("m=audio 5004 RTP/AVP 0 110\r\na=rtpmap:110 telephone-event/48000\r\n"),
            &both(),
        );
        assert_eq!(n.dtmf_pt, None);
    }

    #[test]
    fn hold_with_sendonly_inactive_and_zero_address() {
        let (n, a, _) = answer(&offer("m=audio 5004 RTP/AVP 0\r\na=sendonly\r\n"), &both());
        assert_eq!(n.direction, Direction::RecvOnly);
        assert!(n.is_hold() && !n.should_send());
        assert_eq!(n.remote, Some("192.0.2.10:5004".parse().unwrap()));
        assert_eq!(a.audio.unwrap().direction, Direction::RecvOnly);

        let (n, a, _) = answer(&offer("m=audio 5004 RTP/AVP 0\r\na=inactive\r\n"), &both());
        assert_eq!(n.direction, Direction::Inactive);
        assert!(n.is_hold() && !n.should_send());
        assert_eq!(a.audio.unwrap().direction, Direction::Inactive);

        let (n, a, _) = answer(&offer("m=audio 5004 RTP/AVP 0\r\na=recvonly\r\n"), &both());
        assert_eq!(n.direction, Direction::SendOnly);
        assert!(n.is_hold() && n.should_send());
        assert_eq!(a.audio.unwrap().direction, Direction::SendOnly);

        // Session-level direction applies to the media.
        let text = "v=0\r\no=- 1 2 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\na=sendonly\r\nm=audio 5004 RTP/AVP 0\r\n";
        let (n, ..) = answer(text, &both());
        assert_eq!(n.direction, Direction::RecvOnly);

        // RFC 2543 hold: c=0.0.0.0 → no remote, we only receive.
        let text = "v=0\r\no=- 1 2 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 5004 RTP/AVP 0\r\n";
        let (n, ..) = answer(text, &both());
        assert_eq!(n.remote, None);
        assert_eq!(n.direction, Direction::RecvOnly);
        assert!(!n.should_send() && n.is_hold());
    }

    #[test]
    fn disabled_audio_stream_answered_with_port_zero() {
        let (n, a, text) = answer(&offer("m=audio 0 RTP/AVP 0\r\n"), &both());
        assert_eq!(n.remote, None);
        assert_eq!(n.direction, Direction::Inactive);
        assert_eq!(a.audio.unwrap().port, 0);
        assert!(text.contains("m=audio 0 RTP/AVP 0\r\n"));
    }

    #[test]
    fn video_and_extra_lines_rejected_with_port_zero() {
        let text = offer(
            "m=video 5006 RTP/AVP 31 96\r\na=rtpmap:96 H264/90000\r\n\
             m=audio 5004 RTP/AVP 8 101\r\nc=IN IP4 198.51.100.7\r\na=rtpmap:101 telephone-event/8000\r\n\
             m=audio 5008 RTP/AVP 0\r\n\
             m=application 9 TCP/BFCP *\r\n",
        );
        let (n, a, ans) = answer(&text, &both());
        // Media-level c= overrides the session one.
        assert_eq!(n.remote, Some("198.51.100.7:5004".parse().unwrap()));
        assert_eq!(a.media_count, 4);
        assert_eq!(a.media[0].port, 0);
        assert_eq!(a.media[0].media, "video");
        assert_eq!(a.media[0].fmts, vec!["31", "96"]);
        assert_eq!(a.media[1].port, 40000);
        assert_eq!(a.media[2].port, 0, "second audio stream rejected");
        assert_eq!(a.media[3].port, 0);
        assert_eq!(a.audio.unwrap().index, 1);
        assert!(ans.contains("m=video 0 RTP/AVP 31 96\r\n"));
    }

    #[test]
    fn prefers_first_enabled_audio_stream() {
        let o = parse(&offer("m=audio 0 RTP/AVP 0\r\nm=audio 6000 RTP/AVP 8\r\n")).unwrap();
        let a = o.audio.as_ref().unwrap();
        assert_eq!((a.index, a.port), (1, 6000));
    }

    #[test]
    fn tolerant_parsing_lf_case_ipv6_and_junk() {
        let text = "v=0\no=alice 2890844526 2890844527 IN IP6 ::1\ns=\nc=IN IP6 2001:db8::1\n\
                    t=0 0\nthis is junk\nm=audio 49170/2 rtp/avp 0 8\na=RTPMAP:0 pcmu/8000/1\na=SendOnly\na=ptime: 30\n\n";
        let o = parse(text).unwrap();
        assert_eq!(o.session_ip, Some("2001:db8::1".parse().unwrap()));
        let origin = o.origin.as_ref().unwrap();
        assert_eq!(
            (origin.session_id.as_str(), origin.session_version.as_str()),
            ("2890844526", "2890844527")
        );
        let a = o.audio.as_ref().unwrap();
        assert_eq!(
            (a.port, a.ptime, a.direction),
            (49170, Some(30), Direction::SendOnly)
        );
        assert_eq!(a.formats[0].name, "pcmu");
        let n = negotiate(&o, &both()).unwrap();
        assert_eq!(n.remote, Some("[2001:db8::1]:49170".parse().unwrap()));
        let ans = build_answer(&n, &o, "2001:db8::5".parse().unwrap(), 4000, 1, 1);
        assert!(ans.contains("c=IN IP6 2001:db8::5\r\n"));
        assert!(ans.contains("m=audio 4000 rtp/avp 0\r\na=rtpmap:0 PCMU/8000\r\n"));
        assert!(ans.contains("a=recvonly\r\n"));
        // Multicast TTL suffix in c=.
        let o = parse("v=0\r\nc=IN IP4 224.2.1.1/127\r\nm=audio 1 RTP/AVP 0\r\n").unwrap();
        assert_eq!(o.session_ip, Some("224.2.1.1".parse().unwrap()));
        // A hostname or a broken address in c= cannot be sent to: 400, not
        // a call whose audio goes nowhere.
        for c in ["pbx.example.com", "999.1.2", ""] {
            let text =
                format!("v=0\r\nc=IN IP4 224.2.1.1\r\nm=audio 1 RTP/AVP 0\r\nc=IN IP4 {c}\r\n");
            let e = parse(&text).unwrap_err();
            assert_eq!(e.sip_status(), 400, "{c:?}");
        }
        // No c= anywhere: the audio stream has no address.
        let o = parse("v=0\r\nm=audio 5004 RTP/AVP 0\r\n").unwrap();
        assert_eq!(negotiate(&o, &both()).unwrap_err().sip_status(), 400);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for g in [
            "",
            "\r\n\r\n",
            "hello world",
            "INVITE sip:bob@example.com SIP/2.0\r\n",
            "=\n",
            "v",
            "v=0\r\nm=audio\r\n",
            "v=0\r\nm=audio notaport RTP/AVP 0\r\n",
            "v=0\r\nm=audio 70000 RTP/AVP 0\r\n",
            "v=0\r\nm=audio 5004\r\n",
        ] {
            let e = parse(g).unwrap_err();
            assert_eq!(e.sip_status(), 400, "{g:?}");
        }
        // Random bytes and random line soups never panic.
        let mut state: u64 = 0x1234_5678;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let pieces = [
            "v=0",
            "m=audio ",
            "5004",
            " RTP/AVP ",
            "0",
            "96",
            "a=rtpmap:",
            "a=fmtp:",
            "/8000",
            "c=IN IP4 ",
            "1.2.3.4",
            "a=sendonly",
            "\r\n",
            "\n",
            " ",
            ":",
            "/",
            "telephone-event",
            "\u{e9}",
            "a=ptime:",
        ];
        for _ in 0..5000 {
            let mut s = String::from("v=0\n");
            for _ in 0..(next() % 30) {
                s.push_str(pieces[(next() % pieces.len() as u64) as usize]);
            }
            if let Ok(o) = parse(&s) {
                if let Ok(n) = negotiate(&o, &both()) {
                    let a = build_answer(&n, &o, OUR_IP, 1, 1, 1);
                    assert_eq!(parse(&a).unwrap().media_count, o.media_count);
                }
            }
        }
    }

    #[test]
    fn offer_is_valid_and_negotiable() {
        let text = build_offer(
            &[Codec::Pcma, Codec::Pcmu, Codec::Pcma],
            101,
            OUR_IP,
            30000,
            7,
            3,
        );
        let strict = rtc_sdp::SessionDescription::unmarshal(&mut Cursor::new(text.as_bytes()))
            .unwrap_or_else(|e| panic!("rtc-sdp rejects our offer: {e}\n{text}"));
        assert_eq!(strict.media_descriptions.len(), 1);
        assert_eq!(
            strict.media_descriptions[0].media_name.formats,
            vec!["8", "0", "101"]
        );
        let o = parse(&text).unwrap();
        let n = negotiate(&o, &both()).unwrap();
        assert_eq!((n.codec, n.pt, n.dtmf_pt), (Codec::Pcma, 8, Some(101)));
        assert_eq!(n.remote, Some(SocketAddr::new(OUR_IP, 30000)));
        assert!(text.starts_with("v=0\r\no=ringback 7 3 IN IP4 203.0.113.5\r\ns=ringback\r\nc=IN IP4 203.0.113.5\r\nt=0 0\r\n"));
        // Empty list means both laws.
        let text = build_offer(&[], 96, OUR_IP, 30000, 7, 3);
        assert!(text.contains("m=audio 30000 RTP/AVP 0 8 96\r\n"));
    }

    #[test]
    fn direction_helpers() {
        use Direction::*;
        for (d, r) in [
            (SendRecv, SendRecv),
            (SendOnly, RecvOnly),
            (RecvOnly, SendOnly),
            (Inactive, Inactive),
        ] {
            assert_eq!(d.reverse(), r);
            assert_eq!(Direction::from_attr(d.as_str()), Some(d));
        }
        assert!(SendOnly.sends() && !SendOnly.receives());
        assert!(!Inactive.sends() && !Inactive.receives());
    }

    // ---- SDES (RFC 4568) ----

    use crate::srtp::{Srtp, Suite};
    use rand::SeedableRng;

    /// What PJSIP 2.x sends with `use_srtp=2` (mandatory): RTP/SAVP, AES-256 first.
    const PJSIP_OFFER: &str = "v=0\r\n\
        o=- 3905785300 3905785300 IN IP4 192.168.1.20\r\n\
        s=pjmedia\r\n\
        b=AS:84\r\n\
        t=0 0\r\n\
        a=X-nat:0\r\n\
        m=audio 4000 RTP/SAVP 8 0 101\r\n\
        c=IN IP4 192.168.1.20\r\n\
        b=TIAS:64000\r\n\
        a=rtcp:4001 IN IP4 192.168.1.20\r\n\
        a=sendrecv\r\n\
        a=rtpmap:8 PCMA/8000\r\n\
        a=rtpmap:0 PCMU/8000\r\n\
        a=rtpmap:101 telephone-event/8000\r\n\
        a=fmtp:101 0-16\r\n\
        a=ssrc:1447512818 cname:3c6a2b1d6f0e4b39\r\n\
        a=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:jMi944aHc0ptxIPVHpctQQ5ne7Q4zCIV5cK+QtIOuOpuigstYG7nqPt+9K4/AQ==\r\n\
        a=crypto:2 AES_256_CM_HMAC_SHA1_32 inline:eCAL0sp/A5P89rKiVqAU+x7oO2k4ndiPnD++4ZrdfzD7avAJEGQRbujtILZLvQ==\r\n\
        a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:+6ELrSxNaPL15oD3pWmWelRQRerjnmUZP2LJ5bwW\r\n\
        a=crypto:4 AES_CM_128_HMAC_SHA1_32 inline:4TjScXmH1LaZXUcmHKz53vDktfqPJDnl6TC2wWVF\r\n";

    /// What baresip sends with `mediaenc srtp-mand`: RTP/SAVP, the 32-bit tag first.
    /// LF-only line ends, as some builds log and send them.
    const BARESIP_OFFER: &str = "v=0\n\
        o=- 1474407356 3210914713 IN IP4 10.0.0.5\n\
        s=-\n\
        c=IN IP4 10.0.0.5\n\
        t=0 0\n\
        m=audio 10396 RTP/SAVP 0 8 101\n\
        b=AS:64\n\
        a=rtpmap:0 PCMU/8000\n\
        a=rtpmap:8 PCMA/8000\n\
        a=rtpmap:101 telephone-event/8000\n\
        a=fmtp:101 0-15\n\
        a=sendrecv\n\
        a=label:1\n\
        a=ssrc:1374372425 cname:sip:alice@10.0.0.5\n\
        a=rtcp-rsize\n\
        a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:VzSuNrVgzlE5+XfxknCsf3bCUcqlHOjTMETGt1Ff\n\
        a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:bjyUVmbZzK+hZ4vqA6RTvZE/xCqZrSYaqBBWANB0\n\
        a=crypto:3 AEAD_AES_256_GCM inline:zxfIDDTJQjNJxSBP2tKRtaneAxObyTsHr74qrjWNf3d6PBifcw/cuZgywto=\n\
        a=ptime:20\n";

    fn policies() -> [SrtpPolicy; 3] {
        [SrtpPolicy::Off, SrtpPolicy::Optional, SrtpPolicy::Mandatory]
    }

    fn strict(text: &str) -> rtc_sdp::SessionDescription {
        rtc_sdp::SessionDescription::unmarshal(&mut Cursor::new(text.as_bytes()))
            .unwrap_or_else(|e| panic!("rtc-sdp rejects: {e}\n{text}"))
    }

    fn crypto_lines(text: &str) -> Vec<&str> {
        text.lines()
            .filter(|l| l.starts_with("a=crypto:"))
            .collect()
    }

    /// Answers `text` under `policy` with a fresh local key, checks the answer with
    /// rtc-sdp and our parser, and returns (negotiated, local key, answer text, parsed).
    fn answer_srtp(
        text: &str,
        policy: SrtpPolicy,
    ) -> (Negotiated, Option<KeyMaterial>, String, RemoteSdp) {
        let o = parse(text).expect("offer parses");
        let n = negotiate_srtp(&o, &both(), policy).expect("negotiates");
        let local = n.srtp.as_ref().map(|s| KeyMaterial::random(s.suite));
        let a = build_answer_srtp(&n, &o, OUR_IP, 40000, 42, 1, local.as_ref()).unwrap();
        let sd = strict(&a);
        assert_eq!(sd.media_descriptions.len(), o.media_count);
        let back = parse(&a).expect("answer parses");
        assert_eq!(back.media_count, o.media_count);
        (n, local, a, back)
    }

    /// Media both ways after an SDES exchange: the offerer's key protects what it
    /// sends and we unprotect with `neg.srtp.remote`; our key protects what we send
    /// and the offerer unprotects with the key it read from our answer.
    fn media_flows(
        offerer_tx: &KeyMaterial,
        neg: &Negotiated,
        ours: &KeyMaterial,
        answer: &RemoteSdp,
    ) {
        let s = neg.srtp.as_ref().unwrap();
        let answered = answer
            .secure_audio
            .iter()
            .chain(answer.audio.iter())
            .find(|a| a.port != 0)
            .unwrap();
        assert_eq!(answered.crypto.len(), 1);
        assert_eq!(answered.crypto[0].tag, s.tag);
        assert_eq!(&answered.crypto[0].key, ours);
        let pkt = [0x80, 0, 0, 1, 0, 0, 0, 160, 0, 0, 0, 9, 0xd5, 0xd5, 0xd5];
        let (mut sealed, mut opened) = (Vec::new(), Vec::new());
        Srtp::new(offerer_tx).protect(&pkt, &mut sealed).unwrap();
        Srtp::new(&s.remote)
            .unprotect(&sealed, &mut opened)
            .unwrap();
        assert_eq!(opened, pkt);
        Srtp::new(ours).protect(&pkt, &mut sealed).unwrap();
        Srtp::new(&answered.crypto[0].key)
            .unprotect(&sealed, &mut opened)
            .unwrap();
        assert_eq!(opened, pkt);
    }

    #[test]
    fn parses_pjsip_and_baresip_crypto_lines() {
        let o = parse(PJSIP_OFFER).unwrap();
        assert!(o.audio.is_none(), "RTP/SAVP is not a plain stream");
        let a = o.secure_audio.as_ref().unwrap();
        assert!(a.is_savp() && a.crypto_ignored == 0);
        let got: Vec<(u32, Suite)> = a.crypto.iter().map(|c| (c.tag, c.suite())).collect();
        assert_eq!(
            got,
            vec![
                (1, Suite::AesCm256HmacSha1_80),
                (2, Suite::AesCm256HmacSha1_32),
                (3, Suite::AesCm128HmacSha1_80),
                (4, Suite::AesCm128HmacSha1_32),
            ]
        );
        assert_eq!(
            a.crypto[2].key.to_inline(),
            "inline:+6ELrSxNaPL15oD3pWmWelRQRerjnmUZP2LJ5bwW"
        );
        let o = parse(BARESIP_OFFER).unwrap();
        let a = o.secure_audio.as_ref().unwrap();
        let got: Vec<(u32, Suite)> = a.crypto.iter().map(|c| (c.tag, c.suite())).collect();
        assert_eq!(
            got,
            vec![
                (1, Suite::AesCm128HmacSha1_32),
                (2, Suite::AesCm128HmacSha1_80),
                (3, Suite::AeadAes256Gcm),
            ]
        );
        // The old entry points still see no plain stream: 488 as before.
        assert_eq!(negotiate(&o, &both()), Err(SdpError::NoAudio));
    }

    #[test]
    fn pjsip_offer_takes_the_offerers_first_suite() {
        for policy in [SrtpPolicy::Optional, SrtpPolicy::Mandatory] {
            let (n, local, text, back) = answer_srtp(PJSIP_OFFER, policy);
            let s = n.srtp.as_ref().unwrap();
            assert_eq!((s.tag, s.suite), (1, Suite::AesCm256HmacSha1_80));
            assert_eq!((n.codec, n.pt, n.dtmf_pt), (Codec::Pcma, 8, Some(101)));
            assert_eq!(n.remote, Some("192.168.1.20:4000".parse().unwrap()));
            assert!(text.contains("m=audio 40000 RTP/SAVP 8 101\r\n"), "{text}");
            let lines = crypto_lines(&text);
            let local = local.unwrap();
            assert_eq!(
                lines,
                vec![format!(
                    "a=crypto:1 AES_256_CM_HMAC_SHA1_80 {}",
                    local.to_inline()
                )]
            );
            let offerer = parse(PJSIP_OFFER).unwrap().secure_audio.unwrap().crypto[0]
                .key
                .clone();
            media_flows(&offerer, &n, &local, &back);
        }
        let o = parse(PJSIP_OFFER).unwrap();
        let e = negotiate_srtp(&o, &both(), SrtpPolicy::Off).unwrap_err();
        assert_eq!((e.clone(), e.sip_status()), (SdpError::SrtpNotAllowed, 488));
    }

    #[test]
    fn baresip_offer_takes_the_32_bit_tag_line() {
        let (n, local, text, back) = answer_srtp(BARESIP_OFFER, SrtpPolicy::Mandatory);
        let s = n.srtp.as_ref().unwrap();
        assert_eq!((s.tag, s.suite), (1, Suite::AesCm128HmacSha1_32));
        assert_eq!((n.codec, n.pt), (Codec::Pcmu, 0));
        assert!(text.contains("m=audio 40000 RTP/SAVP 0 101\r\n"), "{text}");
        assert!(text.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:"));
        assert_eq!(crypto_lines(&text).len(), 1);
        let offerer = parse(BARESIP_OFFER).unwrap().secure_audio.unwrap().crypto[0]
            .key
            .clone();
        media_flows(&offerer, &n, &local.unwrap(), &back);
    }

    #[test]
    fn plain_offers_under_each_policy() {
        let text = offer("m=audio 5004 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n");
        for policy in [SrtpPolicy::Off, SrtpPolicy::Optional] {
            let (n, local, a, _) = answer_srtp(&text, policy);
            assert_eq!((n.srtp, local), (None, None), "{policy}");
            assert!(crypto_lines(&a).is_empty());
            assert!(a.contains("m=audio 40000 RTP/AVP 0 101\r\n"));
        }
        let e = negotiate_srtp(&parse(&text).unwrap(), &both(), SrtpPolicy::Mandatory).unwrap_err();
        assert_eq!((e.clone(), e.sip_status()), (SdpError::SrtpRequired, 488));
        // No audio at all stays NoAudio under every policy.
        for policy in policies() {
            let o = parse(&offer("m=video 5006 RTP/AVP 31\r\n")).unwrap();
            assert_eq!(negotiate_srtp(&o, &both(), policy), Err(SdpError::NoAudio));
        }
    }

    #[test]
    fn best_effort_sdes_on_rtp_avp() {
        // Some phones (and baresip's `mediaenc srtp`) offer keys on RTP/AVP.
        let text = offer(
            "m=audio 5004 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\n\
             a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:7g1yurVrGBNqMheuMnu7CERgPSio4S4xdBlGtMnj|2^31\r\n",
        );
        // Off: ignored, plain answer without crypto.
        let (n, _, a, _) = answer_srtp(&text, SrtpPolicy::Off);
        assert_eq!(n.srtp, None);
        assert!(crypto_lines(&a).is_empty());
        // The old API does the same.
        let o = parse(&text).unwrap();
        assert_eq!(negotiate(&o, &both()).unwrap().srtp, None);
        // Optional / Mandatory: SRTP, and the answer keeps RTP/AVP.
        for policy in [SrtpPolicy::Optional, SrtpPolicy::Mandatory] {
            let (n, local, a, back) = answer_srtp(&text, policy);
            let s = n.srtp.as_ref().unwrap();
            assert_eq!((s.tag, s.suite), (1, Suite::AesCm128HmacSha1_80));
            assert!(a.contains("m=audio 40000 RTP/AVP 8 101\r\n"), "{a}");
            assert_eq!(crypto_lines(&a).len(), 1);
            media_flows(
                &o.audio.as_ref().unwrap().crypto[0].key,
                &n,
                &local.unwrap(),
                &back,
            );
        }
    }

    #[test]
    fn unusable_crypto_lines_are_skipped() {
        let good = "inline:7g1yurVrGBNqMheuMnu7CERgPSio4S4xdBlGtMnj";
        let text = offer(&format!(
            "m=audio 5004 RTP/SAVP 0\r\n\
             a=crypto:1 F8_128_HMAC_SHA1_80 {good}\r\n\
             a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:not*base64\r\n\
             a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:7g1yurVrGBNqMheuMnu7CERgPSio\r\n\
             a=crypto:4 AES_256_CM_HMAC_SHA1_80 {good}\r\n\
             a=crypto:5 AES_CM_128_HMAC_SHA1_80 {good} UNENCRYPTED_SRTP\r\n\
             a=crypto:6 AES_CM_128_HMAC_SHA1_80 {good} KDR=1\r\n\
             a=crypto:x AES_CM_128_HMAC_SHA1_80 {good}\r\n\
             a=crypto:7\r\n\
             a=crypto:8 AES_CM_128_HMAC_SHA1_32 {good} UNENCRYPTED_SRTCP WSH=64\r\n\
             a=crypto:9 AES_CM_128_HMAC_SHA1_80 {good}\r\n"
        ));
        let o = parse(&text).unwrap();
        let a = o.secure_audio.as_ref().unwrap();
        let tags: Vec<u32> = a.crypto.iter().map(|c| c.tag).collect();
        assert_eq!(tags, vec![8, 9]);
        assert_eq!(a.crypto_ignored, 8);
        for policy in [SrtpPolicy::Optional, SrtpPolicy::Mandatory] {
            let n = negotiate_srtp(&o, &both(), policy).unwrap();
            assert_eq!(n.srtp.unwrap().tag, 8);
        }
        // Only unusable lines on RTP/SAVP: 488 whatever the policy.
        let text = offer(&format!(
            "m=audio 5004 RTP/SAVP 0\r\na=crypto:1 F8_128_HMAC_SHA1_80 {good}\r\n"
        ));
        let o = parse(&text).unwrap();
        for (policy, want) in [
            (SrtpPolicy::Off, SdpError::SrtpNotAllowed),
            (SrtpPolicy::Optional, SdpError::NoUsableCrypto),
            (SrtpPolicy::Mandatory, SdpError::NoUsableCrypto),
        ] {
            let e = negotiate_srtp(&o, &both(), policy).unwrap_err();
            assert_eq!((e.clone(), e.sip_status()), (want, 488), "{policy}");
        }
    }

    #[test]
    fn savp_and_avp_alternatives_in_one_offer() {
        // An SRTP stream with a plain fallback (two m= lines), as some PBXes send.
        let text = offer(
            "m=audio 5004 RTP/SAVP 0\r\n\
             a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:7g1yurVrGBNqMheuMnu7CERgPSio4S4xdBlGtMnj\r\n\
             m=audio 5006 RTP/AVP 0\r\n",
        );
        for policy in [SrtpPolicy::Optional, SrtpPolicy::Mandatory] {
            let (n, _, a, back) = answer_srtp(&text, policy);
            assert_eq!((n.index, n.srtp.is_some()), (0, true));
            assert_eq!(n.remote, Some("192.0.2.10:5004".parse().unwrap()));
            assert!(a.contains("m=audio 40000 RTP/SAVP 0\r\n"), "{a}");
            assert!(a.contains("m=audio 0 RTP/AVP 0\r\n"), "{a}");
            assert_eq!(back.media[1].port, 0);
        }
        let (n, _, a, _) = answer_srtp(&text, SrtpPolicy::Off);
        assert_eq!((n.index, n.srtp), (1, None));
        assert_eq!(n.remote, Some("192.0.2.10:5006".parse().unwrap()));
        assert!(
            a.contains("m=audio 0 RTP/SAVP 0\r\nm=audio 40000 RTP/AVP 0\r\n"),
            "{a}"
        );
        assert!(crypto_lines(&a).is_empty());
    }

    #[test]
    fn answer_needs_a_local_key_of_the_negotiated_suite() {
        let o = parse(BARESIP_OFFER).unwrap();
        let n = negotiate_srtp(&o, &both(), SrtpPolicy::Mandatory).unwrap();
        for key in [None, Some(KeyMaterial::random(Suite::AesCm128HmacSha1_80))] {
            let e = build_answer_srtp(&n, &o, OUR_IP, 1, 1, 1, key.as_ref()).unwrap_err();
            assert_eq!((e.clone(), e.sip_status()), (SdpError::SrtpKeyMissing, 500));
        }
        // Without SRTP the key is ignored and the answer equals build_answer's.
        let o = parse(&offer("m=audio 5004 RTP/AVP 0\r\n")).unwrap();
        let n = negotiate_srtp(&o, &both(), SrtpPolicy::Optional).unwrap();
        let k = KeyMaterial::random(Suite::AesCm128HmacSha1_80);
        assert_eq!(
            build_answer_srtp(&n, &o, OUR_IP, 1, 1, 1, Some(&k)).unwrap(),
            build_answer(&n, &o, OUR_IP, 1, 1, 1)
        );
    }

    #[test]
    fn our_offers_per_policy() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(4568);
        let keys = SrtpOffer::from_rng(&mut rng);
        let suites: Vec<Suite> = keys.keys().iter().map(|(_, k)| k.suite()).collect();
        assert_eq!(suites, SrtpOffer::SUITES.to_vec());
        for (policy, proto, lines) in [
            (SrtpPolicy::Off, "RTP/AVP", 0),
            (SrtpPolicy::Optional, "RTP/AVP", 4),
            (SrtpPolicy::Mandatory, "RTP/SAVP", 4),
        ] {
            let text = build_offer_srtp(&[], 101, OUR_IP, 30000, 7, 3, policy, &keys);
            let sd = strict(&text);
            assert_eq!(sd.media_descriptions[0].media_name.protos.join("/"), proto);
            assert!(
                text.contains(&format!("m=audio 30000 {proto} 0 8 101\r\n")),
                "{text}"
            );
            let got = crypto_lines(&text);
            assert_eq!(got.len(), lines, "{policy}");
            if lines > 0 {
                assert_eq!(
                    got,
                    keys.keys()
                        .iter()
                        .map(|(t, k)| format!("a=crypto:{t} {} {}", k.suite(), k.to_inline()))
                        .collect::<Vec<_>>()
                );
                assert!(got[0].starts_with("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"));
                assert!(got[1].starts_with("a=crypto:2 AES_256_CM_HMAC_SHA1_80 inline:"));
                assert!(got[2].starts_with("a=crypto:3 AEAD_AES_128_GCM inline:"));
                assert!(got[3].starts_with("a=crypto:4 AES_CM_128_HMAC_SHA1_32 inline:"));
            }
            if policy == SrtpPolicy::Off {
                assert_eq!(text, build_offer(&[], 101, OUR_IP, 30000, 7, 3));
            }
        }
    }

    /// Plays a phone answering our offer: parse it, negotiate as answerer under
    /// `phone_policy`, answer with the phone's own key.
    fn phone_answers(offer_text: &str, phone_policy: SrtpPolicy) -> (String, Option<KeyMaterial>) {
        let o = parse(offer_text).unwrap();
        let n = negotiate_srtp(&o, &both(), phone_policy).unwrap();
        let k = n.srtp.as_ref().map(|s| KeyMaterial::random(s.suite));
        let ip: IpAddr = "198.51.100.9".parse().unwrap();
        (
            build_answer_srtp(&n, &o, ip, 7078, 1, 1, k.as_ref()).unwrap(),
            k,
        )
    }

    #[test]
    fn reading_the_answer_to_our_offer() {
        let keys = SrtpOffer::random();
        for ours in [SrtpPolicy::Optional, SrtpPolicy::Mandatory] {
            let offer_text = build_offer_srtp(&[], 101, OUR_IP, 30000, 7, 3, ours, &keys);
            // An SDES phone accepts our first line.
            let (ans, phone_key) = phone_answers(&offer_text, SrtpPolicy::Mandatory);
            let a = parse(&ans).unwrap();
            let n = negotiate_answer_srtp(&a, &both(), ours, &keys).unwrap();
            let s = n.srtp.as_ref().unwrap();
            assert_eq!((s.tag, s.suite), (1, Suite::AesCm128HmacSha1_80));
            assert_eq!(Some(&s.remote), phone_key.as_ref());
            assert_eq!(n.remote, Some("198.51.100.9:7078".parse().unwrap()));
            // Media: we send with our tag-1 key, the phone with its own.
            let our_key = keys.key(s.tag).unwrap();
            let pkt = [0x80, 8, 0, 1, 0, 0, 0, 160, 0, 0, 0, 9, 0x2a];
            let (mut sealed, mut opened) = (Vec::new(), Vec::new());
            Srtp::new(our_key).protect(&pkt, &mut sealed).unwrap();
            Srtp::new(our_key).unprotect(&sealed, &mut opened).unwrap();
            Srtp::new(phone_key.as_ref().unwrap())
                .protect(&pkt, &mut sealed)
                .unwrap();
            Srtp::new(&s.remote)
                .unprotect(&sealed, &mut opened)
                .unwrap();
            assert_eq!(opened, pkt);
        }
        // A plain phone answers our best-effort offer without crypto.
        let offer_text =
            build_offer_srtp(&[], 101, OUR_IP, 30000, 7, 3, SrtpPolicy::Optional, &keys);
        let (ans, k) = phone_answers(&offer_text, SrtpPolicy::Off);
        assert!(k.is_none() && crypto_lines(&ans).is_empty());
        let a = parse(&ans).unwrap();
        assert_eq!(
            negotiate_answer_srtp(&a, &both(), SrtpPolicy::Optional, &keys)
                .unwrap()
                .srtp,
            None
        );
        assert_eq!(
            negotiate_answer_srtp(&a, &both(), SrtpPolicy::Mandatory, &keys),
            Err(SdpError::SrtpRequired)
        );
        // Off: we offered no keys; the answer is read as plain.
        assert_eq!(
            negotiate_answer_srtp(&a, &both(), SrtpPolicy::Off, &keys)
                .unwrap()
                .srtp,
            None
        );
    }

    #[test]
    fn answers_that_do_not_match_our_offer() {
        let keys = SrtpOffer::random();
        let k80 = KeyMaterial::random(Suite::AesCm128HmacSha1_80).to_inline();
        let k256 = KeyMaterial::random(Suite::AesCm256HmacSha1_80).to_inline();
        let answer = |proto: &str, crypto: &str| {
            parse(&format!(
                "v=0\r\no=- 1 1 IN IP4 198.51.100.9\r\ns=-\r\nc=IN IP4 198.51.100.9\r\nt=0 0\r\n\
                 m=audio 7078 {proto} 0\r\n{crypto}"
            ))
            .unwrap()
        };
        for policy in [SrtpPolicy::Optional, SrtpPolicy::Mandatory] {
            for (a, want) in [
                // A tag we never offered.
                (
                    answer("RTP/SAVP", &format!("a=crypto:9 AES_CM_128_HMAC_SHA1_80 {k80}\r\n")),
                    SdpError::SrtpAnswerMismatch,
                ),
                // Our tag 1 was AES_CM_128_HMAC_SHA1_80, not AES-256.
                (
                    answer("RTP/SAVP", &format!("a=crypto:1 AES_256_CM_HMAC_SHA1_80 {k256}\r\n")),
                    SdpError::SrtpAnswerMismatch,
                ),
                // Two lines in an answer.
                (
                    answer(
                        "RTP/SAVP",
                        &format!(
                            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 {k80}\r\na=crypto:2 AES_256_CM_HMAC_SHA1_80 {k256}\r\n"
                        ),
                    ),
                    SdpError::SrtpAnswerMismatch,
                ),
                // A key we cannot use: not plain RTP either.
                (
                    answer("RTP/AVP", "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:short\r\n"),
                    SdpError::NoUsableCrypto,
                ),
                // SRTP profile without a key.
                (answer("RTP/SAVP", ""), SdpError::NoUsableCrypto),
            ] {
                let e = negotiate_answer_srtp(&a, &both(), policy, &keys).unwrap_err();
                assert_eq!(e, want, "{policy}");
                assert_eq!(e.sip_status(), 488);
            }
        }
    }

    #[test]
    fn srtp_policy_from_str() {
        for p in policies() {
            assert_eq!(p.as_str().parse::<SrtpPolicy>(), Ok(p));
            assert_eq!(p.to_string(), p.as_str());
        }
        assert_eq!(
            " Mandatory ".parse::<SrtpPolicy>(),
            Ok(SrtpPolicy::Mandatory)
        );
        assert_eq!("OPTIONAL".parse::<SrtpPolicy>(), Ok(SrtpPolicy::Optional));
        let e = "yes".parse::<SrtpPolicy>().unwrap_err();
        assert!(e.to_string().contains("off, optional or mandatory"));
        assert_eq!(SrtpPolicy::default(), SrtpPolicy::Off);
    }

    #[test]
    fn crypto_garbage_never_panics() {
        let mut state: u64 = 0x4568_4568;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let pieces = [
            "m=audio 5004 ",
            "RTP/SAVP ",
            "RTP/AVP ",
            "RTP/SAVPF ",
            "0",
            " 8",
            "a=crypto:",
            "1 ",
            "4294967296 ",
            "AES_CM_128_HMAC_SHA1_80 ",
            "AEAD_AES_128_GCM ",
            "AES_256_CM_HMAC_SHA1_32 ",
            "inline:",
            "7g1yurVrGBNqMheuMnu7CERgPSio4S4xdBlGtMnj",
            "zxfIDDTJQjNJxSBP2tKRtaneAxObyTsHr74qrjWN",
            "|2^31",
            "|1:4",
            "|:",
            ";",
            "=",
            " UNENCRYPTED_SRTCP",
            "c=IN IP4 1.2.3.4",
            "\r\n",
            "\n",
            " ",
            "\u{e9}",
        ];
        for _ in 0..5000 {
            let mut s = String::from("v=0\nc=IN IP4 192.0.2.1\n");
            for _ in 0..(next() % 30) {
                s.push_str(pieces[(next() % pieces.len() as u64) as usize]);
            }
            let Ok(o) = parse(&s) else { continue };
            for policy in policies() {
                if let Ok(n) = negotiate_srtp(&o, &both(), policy) {
                    let k = n.srtp.as_ref().map(|x| KeyMaterial::random(x.suite));
                    let a = build_answer_srtp(&n, &o, OUR_IP, 1, 1, 1, k.as_ref()).unwrap();
                    let back = parse(&a).unwrap();
                    assert_eq!(back.media_count, o.media_count, "{s:?}\n{a}");
                    assert_eq!(crypto_lines(&a).len(), usize::from(k.is_some()));
                }
                let _ = negotiate_answer_srtp(&o, &both(), policy, &SrtpOffer::random());
            }
        }
    }
}
