//! Writing our SDP: the offer we make to a browser and the answer to a browser's offer.
//! Both describe one audio m-line on our single UDP port, an ICE-lite agent with one
//! host candidate, DTLS-SRTP and rtcp-mux.

use super::{answer_setup, AudioChoice, RemoteDescription, Setup};
use crate::identity::Fingerprint;
use ringback_media::codec::Codec;
use ringback_media::sdp::Direction;
use std::fmt::Write as _;
use std::net::IpAddr;

/// The payload type of `telephone-event/8000` in our offers.
pub const OFFER_DTMF_PT: u8 = 101;

/// Our side of the description, borrowed from the leg.
#[derive(Debug, Clone, Copy)]
pub struct LocalDescription<'a> {
    /// Our ICE ufrag ([`super::random_ice_credentials`]).
    pub ice_ufrag: &'a str,
    /// Our ICE password.
    pub ice_pwd: &'a str,
    /// Our certificate's fingerprint ([`crate::DtlsIdentity::fingerprint`]).
    pub fingerprint: &'a Fingerprint,
    /// The address browsers reach us at (the host candidate and `c=`).
    pub ip: IpAddr,
    /// Our UDP port for this leg.
    pub port: u16,
    /// `o=` session id; the top bit is cleared (JSEP: below 2^63).
    pub session_id: u64,
    /// The SSRC we send with.
    pub ssrc: u32,
    /// RTCP CNAME for `a=ssrc`.
    pub cname: &'a str,
}

fn addr_type(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IP4"
    } else {
        "IP6"
    }
}

fn session_header(out: &mut String, local: &LocalDescription<'_>, bundle: Option<&str>) {
    let at = addr_type(local.ip);
    let _ = write!(
        out,
        "v=0\r\no=- {} 2 IN {at} {}\r\ns=-\r\nt=0 0\r\n",
        local.session_id & (u64::MAX >> 1),
        local.ip
    );
    if let Some(mid) = bundle {
        let _ = write!(out, "a=group:BUNDLE {mid}\r\n");
    }
    out.push_str("a=ice-lite\r\n");
}

/// The transport part of our audio m-line: address, candidate, ICE, DTLS, mid.
fn transport_lines(
    out: &mut String,
    local: &LocalDescription<'_>,
    setup: Setup,
    mid: &str,
    direction: Direction,
) {
    let at = addr_type(local.ip);
    let (ip, port) = (local.ip, local.port);
    let _ = write!(
        out,
        "c=IN {at} {ip}\r\n\
         a=candidate:1 1 udp 2130706431 {ip} {port} typ host\r\n\
         a=end-of-candidates\r\n\
         a=ice-ufrag:{}\r\n\
         a=ice-pwd:{}\r\n\
         a=fingerprint:{}\r\n\
         a=setup:{}\r\n",
        local.ice_ufrag,
        local.ice_pwd,
        local.fingerprint.to_sdp(),
        setup.as_str()
    );
    if !mid.is_empty() {
        let _ = write!(out, "a=mid:{mid}\r\n");
    }
    let _ = write!(out, "a={}\r\n", direction.as_str());
    if direction.sends() {
        out.push_str("a=msid:ringback ringback-audio\r\n");
    }
    out.push_str("a=rtcp-mux\r\n");
}

fn codec_lines(out: &mut String, codecs: &[(u8, Codec)], dtmf_pt: Option<u8>) {
    for (pt, codec) in codecs {
        let _ = write!(out, "a=rtpmap:{pt} {}/8000\r\n", codec.encoding_name());
    }
    if let Some(pt) = dtmf_pt {
        let _ = write!(
            out,
            "a=rtpmap:{pt} telephone-event/8000\r\na=fmtp:{pt} 0-16\r\n"
        );
    }
    out.push_str("a=ptime:20\r\n");
}

fn ssrc_line(out: &mut String, local: &LocalDescription<'_>) {
    let _ = write!(out, "a=ssrc:{} cname:{}\r\n", local.ssrc, local.cname);
}

/// Our offer to a browser: ICE-lite, `a=setup:actpass`, mid `0` in a BUNDLE group,
/// rtcp-mux, `m=audio <port> UDP/TLS/RTP/SAVPF` with `codecs` (both G.711 when empty)
/// and `telephone-event/8000` as payload type 101, one host candidate, sendrecv.
pub fn build_offer(local: &LocalDescription<'_>, codecs: &[Codec]) -> String {
    let codecs = if codecs.is_empty() {
        &Codec::ALL[..]
    } else {
        codecs
    };
    let mut seen = Vec::with_capacity(codecs.len());
    for &c in codecs {
        if !seen.iter().any(|&(_, s)| s == c) {
            seen.push((c.payload_type(), c));
        }
    }
    let mut out = String::with_capacity(1024);
    session_header(&mut out, local, Some("0"));
    let _ = write!(out, "m=audio {} UDP/TLS/RTP/SAVPF", local.port);
    for (pt, _) in &seen {
        let _ = write!(out, " {pt}");
    }
    let _ = write!(out, " {OFFER_DTMF_PT}\r\n");
    transport_lines(&mut out, local, Setup::ActPass, "0", Direction::SendRecv);
    codec_lines(&mut out, &seen, Some(OFFER_DTMF_PT));
    ssrc_line(&mut out, local);
    out
}

/// Our answer to a browser's offer: the offer's m-lines in order, the audio one
/// accepted with the chosen codec (and `telephone-event/8000` if chosen), its mid
/// mirrored and alone in the BUNDLE group, `a=setup:passive` (or `active` when the
/// offer said `passive`); every other m-line rejected with port 0. `direction` is
/// ours (usually `remote.direction.reverse()`).
pub fn build_answer(
    local: &LocalDescription<'_>,
    remote: &RemoteDescription,
    choice: &AudioChoice,
    direction: Direction,
) -> String {
    let mut out = String::with_capacity(1024);
    let bundle = (!remote.mid.is_empty() && !remote.bundle.is_empty()).then_some(&*remote.mid);
    session_header(&mut out, local, bundle);
    for (i, m) in remote.media.iter().enumerate() {
        if i == remote.audio_index {
            let _ = write!(out, "m=audio {} {} {}", local.port, m.proto, choice.pt);
            if let Some(pt) = choice.dtmf_pt {
                let _ = write!(out, " {pt}");
            }
            out.push_str("\r\n");
            transport_lines(
                &mut out,
                local,
                answer_setup(remote),
                &remote.mid,
                direction,
            );
            codec_lines(&mut out, &[(choice.pt, choice.codec)], choice.dtmf_pt);
            if direction.sends() {
                ssrc_line(&mut out, local);
            }
        } else {
            let fmt = if m.fmt.is_empty() {
                "0".to_string()
            } else {
                m.fmt.join(" ")
            };
            let _ = write!(
                out,
                "m={} 0 {} {fmt}\r\nc=IN IP4 0.0.0.0\r\n",
                m.kind, m.proto
            );
            if let Some(mid) = &m.mid {
                let _ = write!(out, "a=mid:{mid}\r\n");
            }
            out.push_str("a=inactive\r\n");
        }
    }
    out
}
