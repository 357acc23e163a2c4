//! `sdp`: an SDP body from an INVITE or re-INVITE.

use std::net::{IpAddr, Ipv4Addr};

use ringback_media::sdp::{self, SdpError};
use ringback_media::Codec;

const OUR_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 5));

/// Runs `data` as an SDP offer the way call admission and re-INVITE handling do
/// (`src/call/mod.rs`): lossy UTF-8, [`sdp::parse`], [`sdp::negotiate`] against the
/// server's codec list (and a PCMA-only list), [`sdp::build_answer`].
///
/// Invariants: nothing panics; a parse error points at a line that exists; the parsed
/// offer is self-consistent (the chosen audio stream is one of its `m=` lines, payload
/// types are 7-bit); a negotiated codec and telephone-event are formats the offer
/// contains; our answer parses with our own parser, has exactly as many `m=` lines as
/// the offer, and negotiates back to the same codec, payload types and direction.
pub fn sdp(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let offer = match sdp::parse(&text) {
        Ok(o) => o,
        Err(e) => {
            if let SdpError::Malformed { line, .. } = &e {
                let lines = text.split('\n').count();
                assert!(
                    (1..=lines).contains(line),
                    "SDP error at line {line} of a {lines}-line body: {e}"
                );
            }
            assert!(matches!(e.sip_status(), 400 | 488));
            return;
        }
    };
    assert_eq!(offer.media_count, offer.media.len(), "media_count");
    if let Some(audio) = &offer.audio {
        let line = offer
            .media
            .get(audio.index)
            .unwrap_or_else(|| panic!("audio index {} out of range", audio.index));
        assert!(line.media.eq_ignore_ascii_case("audio"));
        assert_eq!(line.port, audio.port);
        assert!(audio.formats.iter().all(|f| f.pt < 128));
        let _ = audio.remote_addr(offer.session_ip);
    }

    for (codecs, version) in [
        (&[Codec::Pcmu, Codec::Pcma][..], 1),
        (&[Codec::Pcma][..], 2),
    ] {
        let neg = match sdp::negotiate(&offer, codecs) {
            Ok(n) => n,
            // 488 for no usable stream or codec, 400 for an audio stream without any
            // `c=` address.
            Err(e) => {
                assert!(matches!(e.sip_status(), 400 | 488), "negotiation error {e}");
                continue;
            }
        };
        let Some(audio) = &offer.audio else {
            panic!("negotiated without an audio stream");
        };
        assert!(codecs.contains(&neg.codec));
        assert!(
            audio.formats.iter().any(|f| f.pt == neg.pt
                && Codec::from_name(&f.name) == Some(neg.codec)
                && f.rate == 8000),
            "negotiated PT {} is not an offered {} format",
            neg.pt,
            neg.codec
        );
        if let Some(d) = neg.dtmf_pt {
            assert!(audio.formats.iter().any(|f| f.pt == d
                && f.name.eq_ignore_ascii_case("telephone-event")
                && f.rate == 8000));
        }
        let _ = (neg.is_hold(), neg.should_send());

        let answer = sdp::build_answer(&neg, &offer, OUR_IP, 40_000, 42, version);
        let back = match sdp::parse(&answer) {
            Ok(b) => b,
            Err(e) => panic!("our answer does not parse ({e}):\n{answer}"),
        };
        assert_eq!(
            back.media_count, offer.media_count,
            "answer m= lines vs offer:\n{answer}"
        );
        let again = match sdp::negotiate(&back, codecs) {
            Ok(n) => n,
            Err(e) => panic!("our answer does not negotiate ({e}):\n{answer}"),
        };
        assert_eq!(
            (again.codec, again.pt, again.dtmf_pt),
            (neg.codec, neg.pt, neg.dtmf_pt),
            "answer negotiates differently:\n{answer}"
        );
        assert_eq!(
            again.direction.reverse(),
            neg.direction,
            "answer direction:\n{answer}"
        );
    }
}
