//! SDP (RFC 4566) parsing and RFC 3264 offer/answer for a single audio stream.
//!
//! This is our own small parser rather than `rtc-sdp`: that crate follows the RFC 4566
//! line-order grammar strictly and is shaped for WebRTC, while SIP phones and trunks
//! send SDP with missing `a=rtpmap` for static payload types, odd line order, LF-only
//! endings and hostnames in `c=`. We accept all of that, extract only what a G.711 IVR
//! needs, and keep every `m=` line so the answer can reject the others with port 0
//! (RFC 3264 §6). The tests validate our generated SDP with `rtc-sdp`'s strict parser.

use crate::codec::Codec;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

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
}

impl SdpError {
    /// SIP status for rejecting the INVITE: 488 Not Acceptable Here when we understood
    /// the offer but cannot accept it (RFC 3261 §21.4.26), 400 for unparseable bodies.
    pub fn sip_status(&self) -> u16 {
        match self {
            SdpError::Malformed { .. } | SdpError::NoConnectionAddress => 400,
            SdpError::NoAudio | SdpError::NoCommonCodec => 488,
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
    /// Transport protocol as offered (`RTP/AVP` or `RTP/AVPF`), echoed in the answer.
    pub proto: String,
    /// Index of this stream's `m=` line, so the answer keeps the same position.
    pub index: usize,
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
                }
            }
            _ => {}
        }
    }
    if !saw_version {
        return Err(malformed(1, "empty SDP"));
    }

    let media: Vec<MediaLine> = medias.iter().filter_map(|m| m.line.clone()).collect();
    let is_candidate = |m: &MediaBuilder| {
        m.line
            .as_ref()
            .is_some_and(|l| l.media.eq_ignore_ascii_case("audio") && is_rtp_avp(&l.proto))
    };
    let chosen = medias
        .iter()
        .position(|m| is_candidate(m) && m.line.as_ref().is_some_and(|l| l.port != 0))
        .or_else(|| medias.iter().position(is_candidate));
    let audio = chosen.and_then(|index| {
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
        })
    });

    Ok(RemoteSdp {
        session_ip,
        audio,
        media_count: media.len(),
        media,
        origin,
        session_direction,
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
    })
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
}

/// Builds our answer (RFC 3264 §6): the same number of `m=` lines as the offer, the
/// chosen audio stream at its index with our address, codec, telephone-event and
/// direction, every other stream rejected with port 0. `session_id`/`version` go into
/// `o=`; increment `version` whenever a later answer/offer in the dialog changes.
pub fn build_answer(
    neg: &Negotiated,
    offer: &RemoteSdp,
    local_ip: IpAddr,
    local_port: u16,
    session_id: u64,
    version: u64,
) -> String {
    let mut out = String::with_capacity(512);
    session_header(&mut out, local_ip, session_id, version);
    let audio_index = offer.audio.as_ref().map(|a| a.index);
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
        audio_section(
            &mut out,
            local_port,
            "RTP/AVP",
            &[(neg.pt, neg.codec)],
            neg.dtmf_pt,
            neg.direction,
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
        "RTP/AVP",
        &list,
        Some(dtmf_pt & 0x7F),
        Direction::SendRecv,
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
}
