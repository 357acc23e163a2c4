//! SDP tests with browser descriptions as Chrome and Firefox write them.

use super::*;
use crate::identity::Fingerprint;
use std::net::IpAddr;

/// An audio-only offer from Chrome 120+ (`pc.addTransceiver('audio')`), CRLF.
const CHROME_OFFER: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0\r\n\
a=extmap-allow-mixed\r\n\
a=msid-semantic: WMS 3c2f1a7e-1d1b-4b8a-9a43-0d6e1a2b3c4d\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:Fv3Y\r\n\
a=ice-pwd:Wd0tAdwHq5r9Yc1kE6mJ2S3x\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 2F:1B:8A:6C:E2:2D:0F:5D:16:7B:99:4C:A3:11:0E:2C:7E:60:9A:44:6B:DB:F0:35:21:C8:5A:93:0D:7E:11:FA\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n\
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n\
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
a=sendrecv\r\n\
a=msid:3c2f1a7e-1d1b-4b8a-9a43-0d6e1a2b3c4d 8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d\r\n\
a=rtcp-mux\r\n\
a=rtcp-rsize\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=rtcp-fb:111 transport-cc\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:63 red/48000/2\r\n\
a=fmtp:63 111/111\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:13 CN/8000\r\n\
a=rtpmap:110 telephone-event/48000\r\n\
a=rtpmap:126 telephone-event/8000\r\n\
a=ssrc:3735928559 cname:q0Vh3Yl1mEr8ZtNi\r\n\
a=ssrc:3735928559 msid:3c2f1a7e-1d1b-4b8a-9a43-0d6e1a2b3c4d 8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d\r\n";

/// Firefox style: fingerprint at session level, LF only, a video line too, the
/// static payload types without rtpmap.
const FIREFOX_OFFER: &str = "v=0
o=mozilla...THIS_IS_SDPARTA-99.0 6237541249328466395 0 IN IP4 0.0.0.0
s=-
t=0 0
a=fingerprint:sha-256 A1:B2:C3:D4:E5:F6:07:18:29:3A:4B:5C:6D:7E:8F:90:A1:B2:C3:D4:E5:F6:07:18:29:3A:4B:5C:6D:7E:8F:90
a=group:BUNDLE 0 1
a=ice-options:trickle
a=msid-semantic:WMS *
m=audio 9 UDP/TLS/RTP/SAVPF 109 9 0 8 101
c=IN IP4 0.0.0.0
a=sendonly
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
a=fmtp:109 maxplaybackrate=48000;stereo=1;useinbandfec=1
a=fmtp:101 0-15
a=ice-pwd:3f2a0c5e9b7d41e6a8c2b4d6e8f0a1b3
a=ice-ufrag:8d3e1b7c
a=mid:0
a=msid:{5c1d0f3e-2b4a-4c6d-8e9f-0a1b2c3d4e5f} {6d2e1f4a-3c5b-4d7e-9f0a-1b2c3d4e5f6a}
a=rtcp-mux
a=rtpmap:109 opus/48000/2
a=rtpmap:9 G722/8000/1
a=rtpmap:101 telephone-event/8000
a=setup:actpass
a=ssrc:1234567890 cname:{7e3f2a5b-4d6c-4e8f-a0b1-c2d3e4f5a6b7}
m=video 9 UDP/TLS/RTP/SAVPF 120 124
c=IN IP4 0.0.0.0
a=sendrecv
a=mid:1
a=rtcp-mux
a=rtpmap:120 VP8/90000
a=rtpmap:124 rtx/90000
";

fn fingerprint() -> Fingerprint {
    Fingerprint::of_der("sha-256", b"our certificate").unwrap()
}

fn local<'a>(fp: &'a Fingerprint) -> LocalDescription<'a> {
    LocalDescription {
        ice_ufrag: "RbUf",
        ice_pwd: "0123456789abcdefABCDEF+/",
        fingerprint: fp,
        ip: "203.0.113.10".parse::<IpAddr>().unwrap(),
        port: 40002,
        session_id: 0xFFFF_0000_1234_5678,
        ssrc: 0x1122_3344,
        cname: "ringback",
    }
}

#[test]
fn parses_a_chrome_offer() {
    let r = parse(CHROME_OFFER).unwrap();
    assert_eq!(r.ice_ufrag, "Fv3Y");
    assert_eq!(r.ice_pwd, "Wd0tAdwHq5r9Yc1kE6mJ2S3x");
    assert_eq!(r.fingerprint.algorithm, "sha-256");
    assert_eq!(&r.fingerprint.value[..3], &[0x2F, 0x1B, 0x8A]);
    assert_eq!(r.setup, Setup::ActPass);
    assert_eq!(r.mid, "0");
    assert_eq!(r.direction, Direction::SendRecv);
    assert_eq!(r.payload_types, vec![111, 63, 9, 0, 8, 13, 110, 126]);
    assert_eq!(r.rtpmaps.len(), 8);
    assert_eq!(r.ssrc, Some(3_735_928_559));
    assert_eq!(r.bundle, vec!["0"]);
    assert_eq!(r.audio_index, 0);
    let choice = choose_audio(&r, &[Codec::Pcmu, Codec::Pcma]).unwrap();
    assert_eq!(
        choice,
        AudioChoice {
            codec: Codec::Pcmu,
            pt: 0,
            dtmf_pt: Some(126)
        }
    );
    let alaw = choose_audio(&r, &[Codec::Pcma]).unwrap();
    assert_eq!(
        (alaw.codec, alaw.pt, alaw.dtmf_pt),
        (Codec::Pcma, 8, Some(126))
    );
    assert!(we_are_dtls_server(&r, false));
}

#[test]
fn parses_a_firefox_offer_with_session_level_fingerprint_and_lf() {
    let r = parse(FIREFOX_OFFER).unwrap();
    assert_eq!(r.ice_ufrag, "8d3e1b7c");
    assert_eq!(r.fingerprint.value[0], 0xA1);
    assert_eq!(r.direction, Direction::SendOnly);
    assert_eq!(r.media.len(), 2);
    assert_eq!(r.media[1].kind, "video");
    assert_eq!(r.bundle, vec!["0", "1"]);
    // PCMU and PCMA by static payload type alone.
    let choice = choose_audio(&r, &[]).unwrap();
    assert_eq!(
        (choice.codec, choice.pt, choice.dtmf_pt),
        (Codec::Pcmu, 0, Some(101))
    );
    assert_eq!(choose_audio(&r, &[Codec::Pcma]).unwrap().pt, 8);
}

#[test]
fn an_offer_without_g711_is_refused() {
    let opus_only = CHROME_OFFER
        .replace(
            "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126",
            "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 13 110 126",
        )
        .replace("a=rtpmap:0 PCMU/8000\r\n", "")
        .replace("a=rtpmap:8 PCMA/8000\r\n", "");
    let r = parse(&opus_only).unwrap();
    let err = choose_audio(&r, &Codec::ALL).unwrap_err();
    assert_eq!(err, SdpError::NoCommonCodec);
    assert!(err.to_string().contains("PCMU and PCMA"));
    // PT 0 remapped to something else is not PCMU.
    let remapped = CHROME_OFFER
        .replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:0 opus/48000/2")
        .replace("a=rtpmap:8 PCMA/8000", "a=rtpmap:8 PCMA/16000");
    let r = parse(&remapped).unwrap();
    assert_eq!(choose_audio(&r, &[]), Err(SdpError::NoCommonCodec));
}

#[test]
fn missing_parts_are_named() {
    let cases = [
        ("a=ice-ufrag:Fv3Y\r\n", "a=ice-ufrag"),
        ("a=ice-pwd:Wd0tAdwHq5r9Yc1kE6mJ2S3x\r\n", "a=ice-pwd"),
    ];
    for (line, name) in cases {
        let err = parse(&CHROME_OFFER.replace(line, "")).unwrap_err();
        assert_eq!(err, SdpError::Missing(name));
        assert!(err.to_string().contains(name));
    }
    let no_fp: String = CHROME_OFFER
        .lines()
        .filter(|l| !l.starts_with("a=fingerprint"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    assert_eq!(
        parse(&no_fp).unwrap_err(),
        SdpError::Missing("a=fingerprint")
    );
    let md5 = CHROME_OFFER.replace("a=fingerprint:sha-256", "a=fingerprint:md5");
    assert_eq!(parse(&md5).unwrap_err(), SdpError::UnsupportedFingerprint);
    let video_only = CHROME_OFFER.replace("m=audio", "m=video");
    assert_eq!(parse(&video_only).unwrap_err(), SdpError::NoAudio);
    assert!(matches!(
        parse("v=0\r\ngarbage\r\n"),
        Err(SdpError::Malformed { line: 2, .. })
    ));
    assert!(matches!(
        parse(&CHROME_OFFER.replace("m=audio 9 ", "m=audio x ")),
        Err(SdpError::Malformed { .. })
    ));
    assert!(parse("").is_err());
}

#[test]
fn offer_round_trips_and_has_the_required_lines() {
    let fp = fingerprint();
    let l = local(&fp);
    let offer = build_offer(&l, &[Codec::Pcmu, Codec::Pcma]);
    for line in [
        "v=0\r\n",
        &format!("o=- {} 2 IN IP4 203.0.113.10\r\n", 0x7FFF_0000_1234_5678u64),
        "a=group:BUNDLE 0\r\n",
        "a=ice-lite\r\n",
        "m=audio 40002 UDP/TLS/RTP/SAVPF 0 8 101\r\n",
        "c=IN IP4 203.0.113.10\r\n",
        "a=candidate:1 1 udp 2130706431 203.0.113.10 40002 typ host\r\n",
        "a=end-of-candidates\r\n",
        "a=ice-ufrag:RbUf\r\n",
        "a=ice-pwd:0123456789abcdefABCDEF+/\r\n",
        &format!("a=fingerprint:{}\r\n", fp.to_sdp()),
        "a=setup:actpass\r\n",
        "a=mid:0\r\n",
        "a=sendrecv\r\n",
        "a=rtcp-mux\r\n",
        "a=rtpmap:0 PCMU/8000\r\n",
        "a=rtpmap:8 PCMA/8000\r\n",
        "a=rtpmap:101 telephone-event/8000\r\n",
        "a=fmtp:101 0-16\r\n",
        "a=ptime:20\r\n",
        "a=ssrc:287454020 cname:ringback\r\n",
    ] {
        assert!(offer.contains(line), "offer lacks {line:?}:\n{offer}");
    }
    assert!(offer.lines().all(|l| !l.is_empty()));
    let back = parse(&offer).unwrap();
    assert_eq!(back.ice_ufrag, "RbUf");
    assert_eq!(back.fingerprint, fp);
    assert_eq!(back.setup, Setup::ActPass);
    assert_eq!(back.mid, "0");
    let choice = choose_audio(&back, &[]).unwrap();
    assert_eq!((choice.pt, choice.dtmf_pt), (0, Some(101)));
    // IPv6 host.
    let v6 = LocalDescription {
        ip: "2001:db8::5".parse().unwrap(),
        ..l
    };
    let offer6 = build_offer(&v6, &[Codec::Pcma]);
    assert!(offer6.contains("c=IN IP6 2001:db8::5\r\n"));
    assert!(offer6.contains("m=audio 40002 UDP/TLS/RTP/SAVPF 8 101\r\n"));
    assert!(offer6.contains("a=candidate:1 1 udp 2130706431 2001:db8::5 40002 typ host\r\n"));
}

#[test]
fn answer_mirrors_the_chrome_offer() {
    let fp = fingerprint();
    let l = local(&fp);
    let remote = parse(CHROME_OFFER).unwrap();
    let choice = choose_audio(&remote, &Codec::ALL).unwrap();
    let answer = build_answer(&l, &remote, &choice, remote.direction.reverse());
    for line in [
        "a=group:BUNDLE 0\r\n",
        "a=ice-lite\r\n",
        "m=audio 40002 UDP/TLS/RTP/SAVPF 0 126\r\n",
        "a=setup:passive\r\n",
        "a=mid:0\r\n",
        "a=sendrecv\r\n",
        "a=rtcp-mux\r\n",
        "a=rtpmap:0 PCMU/8000\r\n",
        "a=rtpmap:126 telephone-event/8000\r\n",
        "a=fmtp:126 0-16\r\n",
        "a=end-of-candidates\r\n",
    ] {
        assert!(answer.contains(line), "answer lacks {line:?}:\n{answer}");
    }
    assert!(!answer.contains("PCMA") && !answer.contains("opus") && !answer.contains(" 110"));
    let back = parse(&answer).unwrap();
    assert_eq!(back.setup, Setup::Passive);
    assert_eq!(back.payload_types, vec![0, 126]);
    assert_eq!(choose_audio(&back, &[]).unwrap(), choice);
    // The browser reads our answer: passive means the browser is the DTLS client.
    assert!(we_are_dtls_server(&remote, false));
}

#[test]
fn answer_rejects_other_m_lines_and_follows_setup_passive() {
    let fp = fingerprint();
    let l = local(&fp);
    let offer = FIREFOX_OFFER.replace("a=setup:actpass", "a=setup:passive");
    let remote = parse(&offer).unwrap();
    let choice = choose_audio(&remote, &[Codec::Pcma]).unwrap();
    let answer = build_answer(&l, &remote, &choice, remote.direction.reverse());
    assert!(answer.contains("a=group:BUNDLE 0\r\n"));
    assert!(answer.contains("m=audio 40002 UDP/TLS/RTP/SAVPF 8 101\r\n"));
    assert!(answer.contains("a=setup:active\r\n"));
    assert!(answer.contains("a=recvonly\r\n"));
    assert!(!answer.contains("a=ssrc:"), "recvonly: we send nothing");
    assert!(answer.contains(
        "m=video 0 UDP/TLS/RTP/SAVPF 120 124\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=inactive\r\n"
    ));
    assert!(!we_are_dtls_server(&remote, false));
    let back = parse(&answer).unwrap();
    assert_eq!(back.media.len(), 2);
    assert_eq!(back.media[1].port, 0);
}

#[test]
fn dtls_role_when_we_offered() {
    let mut r = parse(CHROME_OFFER).unwrap();
    r.setup = Setup::Active;
    assert!(we_are_dtls_server(&r, true));
    r.setup = Setup::Passive;
    assert!(!we_are_dtls_server(&r, true));
}

#[test]
fn negotiated_for_the_media_layer() {
    let choice = AudioChoice {
        codec: Codec::Pcma,
        pt: 8,
        dtmf_pt: Some(126),
    };
    let n = negotiated(&choice, Direction::SendRecv);
    assert_eq!((n.codec, n.pt, n.dtmf_pt), (Codec::Pcma, 8, Some(126)));
    assert_eq!((n.remote, n.ptime, n.index), (None, 20, 0));
    assert!(n.srtp.is_none());
}

#[test]
fn ice_credentials_are_long_enough_and_random() {
    let (u, p) = random_ice_credentials();
    let (u2, _) = random_ice_credentials();
    assert!(u.len() >= 4 && p.len() >= 22);
    assert_ne!(u, u2);
    let ok = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    };
    assert!(ok(&u) && ok(&p));
}
