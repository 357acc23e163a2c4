//! The browser's SDP and ours, JSEP style (RFC 8829): one audio stream, BUNDLE,
//! rtcp-mux, DTLS-SRTP (`UDP/TLS/RTP/SAVPF`), ICE-lite on our side.
//!
//! [`parse`] reads what a browser sends (offer or answer): ICE credentials,
//! fingerprint and DTLS role at session or media level, and the first audio m-line's
//! payload types. [`choose_audio`] picks G.711 and `telephone-event/8000` from it;
//! [`build_offer`] and [`build_answer`] (in `build.rs`) write ours. Like
//! `ringback_media::sdp`, the parser is tolerant: CRLF or LF, any attribute order,
//! unknown lines ignored.

use ringback_media::codec::Codec;
use ringback_media::sdp::{Direction, Negotiated};

mod build;
pub use build::{build_answer, build_offer, LocalDescription, OFFER_DTMF_PT};

use crate::identity::Fingerprint;

/// Why a browser's SDP cannot be used. The messages name what is missing, so the
/// shell can pass them to the page as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// A line we must understand is broken.
    #[error("malformed SDP at line {line}: {reason}")]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        reason: String,
    },
    /// A required attribute is absent at both session and media level (the
    /// attribute is named, e.g. `"a=ice-ufrag"`).
    #[error("SDP has no {0}")]
    Missing(&'static str),
    /// Only `a=fingerprint` lines with hash functions we do not support.
    #[error("no a=fingerprint with a supported hash (sha-256, sha-384, sha-512, sha-1)")]
    UnsupportedFingerprint,
    /// No usable `m=audio` line.
    #[error("SDP has no audio m-line")]
    NoAudio,
    /// The audio m-line offers neither PCMU nor PCMA at 8000 Hz.
    #[error("no common audio codec: ringback speaks PCMU and PCMA (G.711) only")]
    NoCommonCodec,
}

/// DTLS role attribute (`a=setup`, RFC 4145 / RFC 5763 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// The side that writes it starts the DTLS handshake (DTLS client).
    Active,
    /// The side that writes it waits for the handshake (DTLS server).
    Passive,
    /// Either (offers only).
    ActPass,
}

impl Setup {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Setup::Active => "active",
            Setup::Passive => "passive",
            Setup::ActPass => "actpass",
        }
    }
}

/// One `a=rtpmap` of the audio m-line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// Payload type.
    pub pt: u8,
    /// Encoding name as written (`"PCMU"`, `"telephone-event"`).
    pub name: String,
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// Channels, when given.
    pub channels: Option<u16>,
}

/// One m-line of the remote description, kept so the answer has as many (RFC 3264
/// §6: the ones we do not use are rejected with port 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSection {
    /// `audio`, `video`, `application`, …
    pub kind: String,
    /// The port (0: rejected or `bundle-only`).
    pub port: u16,
    /// Transport protocol (`UDP/TLS/RTP/SAVPF`).
    pub proto: String,
    /// The format list as written.
    pub fmt: Vec<String>,
    /// `a=mid`, if any.
    pub mid: Option<String>,
}

/// What we use of a browser's SDP.
#[derive(Debug, Clone)]
pub struct RemoteDescription {
    /// `a=ice-ufrag` (media level wins over session level).
    pub ice_ufrag: String,
    /// `a=ice-pwd`.
    pub ice_pwd: String,
    /// The first `a=fingerprint` with a supported hash function.
    pub fingerprint: Fingerprint,
    /// `a=setup`; `Active` when absent (the RFC 4145 default).
    pub setup: Setup,
    /// `a=mid` of the audio m-line (`"0"` from Chrome); empty when absent.
    pub mid: String,
    /// The audio stream's direction as the browser wrote it (not yet reversed).
    pub direction: Direction,
    /// Payload types of the audio m-line, in the browser's order of preference.
    pub payload_types: Vec<u8>,
    /// The audio m-line's `a=rtpmap` lines.
    pub rtpmaps: Vec<RtpMap>,
    /// The first `a=ssrc` of the audio m-line, if any.
    pub ssrc: Option<u32>,
    /// The mids of the `a=group:BUNDLE` line, if any.
    pub bundle: Vec<String>,
    /// Every m-line, in order.
    pub media: Vec<MediaSection>,
    /// Index of the audio m-line in [`RemoteDescription::media`].
    pub audio_index: usize,
}

/// One section (session or m-line) while parsing.
#[derive(Default)]
struct Section<'a> {
    media: Option<MediaSection>,
    attrs: Vec<(usize, &'a str, &'a str)>,
}

impl<'a> Section<'a> {
    fn attr(&self, name: &str) -> Option<(usize, &'a str)> {
        self.attrs
            .iter()
            .find(|(_, n, _)| n.eq_ignore_ascii_case(name))
            .map(|&(l, _, v)| (l, v))
    }

    fn attrs<'s>(&'s self, name: &'s str) -> impl Iterator<Item = (usize, &'a str)> + 's {
        self.attrs
            .iter()
            .filter(move |(_, n, _)| n.eq_ignore_ascii_case(name))
            .map(|&(l, _, v)| (l, v))
    }

    fn direction(&self) -> Option<Direction> {
        self.attrs.iter().rev().find_map(|(_, n, _)| {
            let d = match n.to_ascii_lowercase().as_str() {
                "sendrecv" => Direction::SendRecv,
                "sendonly" => Direction::SendOnly,
                "recvonly" => Direction::RecvOnly,
                "inactive" => Direction::Inactive,
                _ => return None,
            };
            Some(d)
        })
    }
}

fn malformed(line: usize, reason: impl Into<String>) -> SdpError {
    SdpError::Malformed {
        line,
        reason: reason.into(),
    }
}

fn parse_m_line(line: usize, v: &str) -> Result<MediaSection, SdpError> {
    let mut it = v.split_whitespace();
    let kind = it.next().ok_or_else(|| malformed(line, "empty m= line"))?;
    let port = it
        .next()
        .ok_or_else(|| malformed(line, "m= line without port"))?;
    let port = port.split('/').next().unwrap_or(port);
    let port = port
        .parse::<u16>()
        .map_err(|_| malformed(line, format!("bad port {port:?}")))?;
    let proto = it
        .next()
        .ok_or_else(|| malformed(line, "m= line without proto"))?;
    Ok(MediaSection {
        kind: kind.to_ascii_lowercase(),
        port,
        proto: proto.to_string(),
        fmt: it.map(str::to_string).collect(),
        mid: None,
    })
}

fn parse_rtpmap(line: usize, v: &str) -> Result<RtpMap, SdpError> {
    let bad = || malformed(line, format!("bad a=rtpmap:{v}"));
    let (pt, enc) = v.trim().split_once(' ').ok_or_else(bad)?;
    let pt = pt.parse::<u8>().map_err(|_| bad())?;
    let mut parts = enc.trim().split('/');
    let name = parts.next().filter(|n| !n.is_empty()).ok_or_else(bad)?;
    let clock_rate = parts
        .next()
        .and_then(|r| r.parse::<u32>().ok())
        .ok_or_else(bad)?;
    let channels = match parts.next() {
        Some(c) => Some(c.parse::<u16>().map_err(|_| bad())?),
        None => None,
    };
    Ok(RtpMap {
        pt,
        name: name.to_string(),
        clock_rate,
        channels,
    })
}

fn parse_setup(line: usize, v: &str) -> Result<Setup, SdpError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "active" => Ok(Setup::Active),
        "passive" => Ok(Setup::Passive),
        "actpass" => Ok(Setup::ActPass),
        other => Err(malformed(line, format!("unsupported a=setup:{other}"))),
    }
}

/// Parses a browser's offer or answer. ICE credentials, fingerprint and setup are
/// taken from the audio m-line, else the session level, else any other m-line (they
/// share one transport under BUNDLE). The first `m=audio` line with a port or
/// `a=bundle-only` is used. CRLF and LF line ends are both accepted.
pub fn parse(sdp: &str) -> Result<RemoteDescription, SdpError> {
    let mut sections: Vec<Section<'_>> = vec![Section::default()];
    for (i, raw) in sdp.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let (typ, value) = line
            .split_once('=')
            .filter(|(t, _)| t.len() == 1)
            .ok_or_else(|| malformed(line_no, "not a <type>=<value> line"))?;
        match typ {
            "m" => sections.push(Section {
                media: Some(parse_m_line(line_no, value)?),
                attrs: Vec::new(),
            }),
            "a" => {
                let (name, v) = value.split_once(':').unwrap_or((value, ""));
                if let Some(s) = sections.last_mut() {
                    s.attrs.push((line_no, name.trim(), v.trim()));
                }
            }
            _ => {}
        }
    }
    let session = &sections[0];
    let media_sections = &sections[1..];
    let audio_index = media_sections
        .iter()
        .position(|s| {
            s.media.as_ref().is_some_and(|m| {
                m.kind == "audio" && (m.port != 0 || s.attr("bundle-only").is_some())
            })
        })
        .ok_or(SdpError::NoAudio)?;
    let audio = &media_sections[audio_index];
    // Where transport attributes come from, in order of precedence.
    let order: Vec<&Section<'_>> = std::iter::once(audio)
        .chain(std::iter::once(session))
        .chain(media_sections.iter())
        .collect();
    let find = |name: &'static str| -> Result<&str, SdpError> {
        order
            .iter()
            .find_map(|s| s.attr(name))
            .map(|(_, v)| v)
            .filter(|v| !v.is_empty())
            .ok_or(SdpError::Missing(match name {
                "ice-ufrag" => "a=ice-ufrag",
                "ice-pwd" => "a=ice-pwd",
                _ => "a=fingerprint",
            }))
    };
    let ice_ufrag = find("ice-ufrag")?.to_string();
    let ice_pwd = find("ice-pwd")?.to_string();
    let mut any_fingerprint = false;
    let fingerprint = order
        .iter()
        .flat_map(|s| s.attrs("fingerprint"))
        .inspect(|_| any_fingerprint = true)
        .find_map(|(_, v)| Fingerprint::from_sdp(v));
    let fingerprint = match fingerprint {
        Some(f) => f,
        None if any_fingerprint => return Err(SdpError::UnsupportedFingerprint),
        None => return Err(SdpError::Missing("a=fingerprint")),
    };
    let setup = match order.iter().find_map(|s| s.attr("setup")) {
        Some((line, v)) => parse_setup(line, v)?,
        None => Setup::Active,
    };
    let direction = audio
        .direction()
        .or_else(|| session.direction())
        .unwrap_or_default();
    let mut rtpmaps = Vec::new();
    for (line, v) in audio.attrs("rtpmap") {
        rtpmaps.push(parse_rtpmap(line, v)?);
    }
    let ssrc = audio.attrs("ssrc").find_map(|(_, v)| {
        v.split_whitespace()
            .next()
            .and_then(|s| s.parse::<u32>().ok())
    });
    let bundle = session
        .attrs("group")
        .find_map(|(_, v)| {
            let mut it = v.split_whitespace();
            it.next()
                .filter(|s| s.eq_ignore_ascii_case("BUNDLE"))
                .map(|_| it.map(str::to_string).collect())
        })
        .unwrap_or_default();
    let media: Vec<MediaSection> = media_sections
        .iter()
        .filter_map(|s| {
            let mut m = s.media.clone()?;
            m.mid = s.attr("mid").map(|(_, v)| v.to_string());
            Some(m)
        })
        .collect();
    let audio_media = &media[audio_index];
    Ok(RemoteDescription {
        ice_ufrag,
        ice_pwd,
        fingerprint,
        setup,
        mid: audio_media.mid.clone().unwrap_or_default(),
        direction,
        payload_types: audio_media
            .fmt
            .iter()
            .filter_map(|f| f.parse::<u8>().ok())
            .collect(),
        rtpmaps,
        ssrc,
        bundle,
        media,
        audio_index,
    })
}

/// The codec and payload types chosen from a browser's audio m-line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioChoice {
    /// PCMU or PCMA.
    pub codec: Codec,
    /// The browser's payload type for it (0 or 8 in practice).
    pub pt: u8,
    /// The browser's `telephone-event/8000` payload type, if it offers one.
    pub dtmf_pt: Option<u8>,
}

impl RemoteDescription {
    fn rtpmap(&self, pt: u8) -> Option<&RtpMap> {
        self.rtpmaps.iter().find(|m| m.pt == pt)
    }

    fn codec_of(&self, pt: u8) -> Option<Codec> {
        match self.rtpmap(pt) {
            Some(m) if m.clock_rate == Codec::CLOCK_RATE && m.channels.unwrap_or(1) == 1 => {
                Codec::from_name(&m.name)
            }
            Some(_) => None,
            None => Codec::from_static_payload_type(pt),
        }
    }
}

/// Picks the first codec of `prefer` (both G.711 codecs when empty) that the audio
/// m-line offers (by rtpmap name at 8000 Hz, or static payload type 0/8 without an
/// rtpmap), and `telephone-event/8000` if offered (`telephone-event/48000`, which
/// Chrome adds for Opus, is ignored).
pub fn choose_audio(remote: &RemoteDescription, prefer: &[Codec]) -> Result<AudioChoice, SdpError> {
    let prefer = if prefer.is_empty() {
        &Codec::ALL[..]
    } else {
        prefer
    };
    let (codec, pt) = prefer
        .iter()
        .find_map(|&c| {
            remote
                .payload_types
                .iter()
                .find(|&&pt| remote.codec_of(pt) == Some(c))
                .map(|&pt| (c, pt))
        })
        .ok_or(SdpError::NoCommonCodec)?;
    let dtmf_pt = remote.payload_types.iter().copied().find(|&pt| {
        remote.rtpmap(pt).is_some_and(|m| {
            m.name.eq_ignore_ascii_case("telephone-event") && m.clock_rate == Codec::CLOCK_RATE
        })
    });
    Ok(AudioChoice { codec, pt, dtmf_pt })
}

/// The media negotiation for the media layer: `direction` is *our* direction (the
/// browser's reversed, or what we offered); no remote address (media goes to the
/// ICE-selected address), ptime 20, index 0, no SDES (keys come from DTLS).
pub fn negotiated(choice: &AudioChoice, direction: Direction) -> Negotiated {
    Negotiated {
        codec: choice.codec,
        pt: choice.pt,
        dtmf_pt: choice.dtmf_pt,
        remote: None,
        direction,
        ptime: 20,
        index: 0,
        srtp: None,
    }
}

/// Whether we are the DTLS server. We offered (always `actpass`): the answer decides,
/// `active` → we are the server, `passive` → we are the client (an answer that says
/// `actpass`, which RFC 5763 forbids, counts as `active`). We answered: we said
/// `passive` (server) unless the offer said `passive`, then we said `active`.
pub fn we_are_dtls_server(remote: &RemoteDescription, we_offered: bool) -> bool {
    let _ = we_offered; // Both cases come down to the same rule.
    remote.setup != Setup::Passive
}

/// Our role attribute in an answer to `remote`.
pub(crate) fn answer_setup(remote: &RemoteDescription) -> Setup {
    if remote.setup == Setup::Passive {
        Setup::Active
    } else {
        Setup::Passive
    }
}

/// Fresh ICE credentials (ufrag, pwd): 8 and 24 characters of `[A-Za-z0-9+/]`
/// (RFC 8839 §5.4 asks for at least 4 and 22), from `rand`'s CSPRNG.
pub fn random_ice_credentials() -> (String, String) {
    use rand::Rng;
    const ICE_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut rng = rand::rng();
    let mut word = |n: usize| -> String {
        (0..n)
            .map(|_| char::from(ICE_CHARS[rng.random_range(0..ICE_CHARS.len())]))
            .collect()
    };
    let ufrag = word(8);
    let pwd = word(24);
    (ufrag, pwd)
}

#[cfg(test)]
mod tests;
