use super::*;
use rsip::message::HeadersExt;

const INVITE: &str = "INVITE sip:100@ivr.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKabc123;rport\r\n\
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKproxy\r\n\
Max-Forwards: 70\r\n\
From: \"Alice\" <sip:alice@example.com>;tag=1928301774\r\n\
To: <sip:100@ivr.example.com>\r\n\
Call-ID: a84b4c76e66710@pc33.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@192.0.2.10:5062>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";

fn req(raw: &str) -> Request {
    match parse(raw.as_bytes()) {
        Ok(SipMessage::Request(r)) => r,
        other => panic!("expected request, got {other:?}"),
    }
}

#[test]
fn parses_full_invite_and_accessors() {
    let r = req(INVITE);
    assert_eq!(r.method, Method::Invite);
    assert_eq!(
        call_id(&r).as_deref(),
        Some("a84b4c76e66710@pc33.example.com")
    );
    assert_eq!(cseq(&r), Some((314159, Method::Invite)));
    assert_eq!(from_tag(&r).as_deref(), Some("1928301774"));
    assert_eq!(to_tag(&r), None);
    assert_eq!(content_type(&r).as_deref(), Some("application/sdp"));
    assert_eq!(r.body, b"v=0\n");
    assert_eq!(
        all_via_values(&r),
        vec![
            "SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKabc123;rport".to_string(),
            "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKproxy".to_string()
        ]
    );
    let via = top_via(&r).unwrap();
    assert_eq!(
        via,
        ViaInfo {
            transport: rsip::Transport::Udp,
            sent_by_host: "192.0.2.10".into(),
            sent_by_port: Some(5062),
            branch: Some("z9hG4bKabc123".into()),
            received: None,
            rport: Some(None),
        }
    );
    assert_eq!(
        contact_uri(&r).unwrap().to_string(),
        "sip:alice@192.0.2.10:5062"
    );
    // rsip's typed accessors work on what we produced.
    assert!(r.from_header().unwrap().typed().is_ok());
}

#[test]
fn compact_forms_folding_and_comma_vias_are_normalised() {
    let raw = "OPTIONS sip:ivr.example.com SIP/2.0\r\n\
v: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1, SIP/2.0/TCP 198.51.100.2;branch=z9hG4bK2\r\n\
f: <sip:bob@example.com>\r\n\x20;tag=77\r\n\
t: sip:ivr.example.com\r\n\
i: cid-1\r\n\
CSeq: 2 OPTIONS\r\n\
X-Ringback-Caller: +15551234\r\n\
l: 0\r\n\r\n";
    let r = req(raw);
    assert_eq!(call_id(&r).as_deref(), Some("cid-1"));
    assert_eq!(from_tag(&r).as_deref(), Some("77"));
    let vias = all_via_values(&r);
    assert_eq!(vias.len(), 2);
    assert_eq!(vias[1], "SIP/2.0/TCP 198.51.100.2;branch=z9hG4bK2");
    // Two distinct Via headers now exist in the rsip message.
    assert_eq!(
        r.headers
            .iter()
            .filter(|h| matches!(h, Header::Via(_)))
            .count(),
        2
    );
    assert_eq!(header_values(&r, "x-ringback-caller"), vec!["+15551234"]);
    assert_eq!(header_value(&r, "l").as_deref(), Some("0"));
}

#[test]
fn body_longer_than_content_length_is_truncated() {
    let raw = INVITE.replace("v=0\n", "v=0\nJUNK");
    let r = req(&raw);
    assert_eq!(r.body, b"v=0\n");
}

#[test]
fn body_shorter_than_content_length_is_error() {
    let raw = INVITE.replace("Content-Length: 4", "Content-Length: 40");
    assert_eq!(
        parse(raw.as_bytes()),
        Err(ParseError::TruncatedBody {
            declared: 40,
            actual: 4
        })
    );
}

#[test]
fn missing_content_length_means_rest_of_datagram() {
    let raw = INVITE.replace("Content-Length: 4\r\n", "");
    let r = req(&raw);
    assert_eq!(r.body, b"v=0\n");
}

#[test]
fn mandatory_header_errors() {
    let no_via: String = INVITE
        .lines()
        .filter(|l| !l.starts_with("Via"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        parse(no_via.as_bytes()),
        Err(ParseError::MissingHeader("Via"))
    );
    let no_branch = INVITE.replace(";branch=z9hG4bKabc123", "");
    assert!(matches!(
        parse(no_branch.as_bytes()),
        Err(ParseError::InvalidHeader { name: "Via", .. })
    ));
    let bad_cseq = INVITE.replace("CSeq: 314159 INVITE", "CSeq: 314159 BYE");
    assert!(matches!(
        parse(bad_cseq.as_bytes()),
        Err(ParseError::InvalidHeader { name: "CSeq", .. })
    ));
    let nan_cseq = INVITE.replace("CSeq: 314159 INVITE", "CSeq: abc INVITE");
    assert!(matches!(
        parse(nan_cseq.as_bytes()),
        Err(ParseError::InvalidHeader { name: "CSeq", .. })
    ));
    let no_callid = INVITE.replace("Call-ID: a84b4c76e66710@pc33.example.com\r\n", "");
    assert_eq!(
        parse(no_callid.as_bytes()),
        Err(ParseError::MissingHeader("Call-ID"))
    );
    let bad_from = INVITE.replace("<sip:alice@example.com>", "<>");
    assert!(matches!(
        parse(bad_from.as_bytes()),
        Err(ParseError::InvalidHeader { name: "From", .. })
    ));
    let no_maxf = INVITE.replace("Max-Forwards: 70\r\n", "");
    assert!(parse(no_maxf.as_bytes()).is_ok());
    // Non-z9hG4bK branches are accepted.
    let old_branch = INVITE.replace("z9hG4bKabc123", "1234");
    assert_eq!(
        top_via(&req(&old_branch)).unwrap().branch.as_deref(),
        Some("1234")
    );
}

#[test]
fn non_utf8_and_garbage_are_errors_not_panics() {
    let mut raw = INVITE.as_bytes().to_vec();
    let pos = INVITE.find("Alice").unwrap();
    raw[pos] = 0xff;
    assert_eq!(parse(&raw), Err(ParseError::NotUtf8));
    assert_eq!(parse(b"\r\n\r\n"), Err(ParseError::Empty));
    assert!(matches!(parse(b"hello"), Err(ParseError::StartLine(_))));
    assert!(parse("INVITE sip:x SIP/2.0\r\nVia: ü\r\n\r\n".as_bytes()).is_err());
    assert!(matches!(
        parse(b"FOO sip:x SIP/2.0\r\n\r\n"),
        Err(ParseError::UnknownMethod(m)) if m == "FOO"
    ));
    // Random truncations never panic.
    for i in 0..INVITE.len() {
        let _ = parse(&INVITE.as_bytes()[..i]);
        let _ = bad_request(&INVITE.as_bytes()[..i], "x");
        let _ = frame_stream(&INVITE.as_bytes()[..i], 4096);
    }
}

#[test]
fn parses_responses() {
    let raw = "SIP/2.0 486 Busy Here\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx;received=10.1.1.1\r\n\
From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 5 INVITE\r\n\
Content-Length: 0\r\n\r\n";
    let SipMessage::Response(r) = parse(raw.as_bytes()).unwrap() else {
        panic!()
    };
    assert_eq!(r.status_code.code(), 486);
    assert_eq!(to_tag(&r).as_deref(), Some("2"));
    assert_eq!(
        top_via(&r).unwrap().received,
        Some("10.1.1.1".parse().unwrap())
    );
    assert!(response_to_bytes(&r).starts_with(b"SIP/2.0 486 Busy Here\r\n"));
}

#[test]
fn bad_request_is_built_textually() {
    let raw = "INVITE sip:100@ivr SIP/2.0\r\n\
v: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKabc\r\n\
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKp\r\n\
f: <sip:alice@example.com>;tag=99\r\n\
t: <sip:100@ivr>;tag=existing\r\n\
i: call-1\r\n\
CSeq: 1 INVITE\r\n\
Contact: <<<broken\r\n\r\n";
    let out =
        String::from_utf8(bad_request(raw.as_bytes(), "bad \"Contact\"\r\n").unwrap()).unwrap();
    assert_eq!(
        out,
        "SIP/2.0 400 Bad Request\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKabc\r\n\
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKp\r\n\
From: <sip:alice@example.com>;tag=99\r\n\
To: <sip:100@ivr>;tag=existing\r\n\
Call-ID: call-1\r\n\
CSeq: 1 INVITE\r\n\
Warning: 399 ringback \"bad Contact\"\r\n\
Content-Length: 0\r\n\r\n"
    );
    // A To tag is added when absent.
    let no_tag = raw.replace(";tag=existing", "");
    let out = String::from_utf8(bad_request(no_tag.as_bytes(), "x").unwrap()).unwrap();
    assert!(out.contains("To: <sip:100@ivr>;tag="));
    // Responses, ACKs and requests without a usable top Via get nothing.
    assert_eq!(bad_request(b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n", "x"), None);
    assert_eq!(
        bad_request(raw.replace("INVITE", "ACK").as_bytes(), "x"),
        None
    );
    let no_via: String = raw
        .split_inclusive("\r\n")
        .filter(|l| !l.starts_with("v:") && !l.starts_with("Via:"))
        .collect();
    assert_eq!(bad_request(no_via.as_bytes(), "x"), None);
    // A missing Call-ID is left out rather than invented.
    let out =
        String::from_utf8(bad_request(raw.replace("i: call-1\r\n", "").as_bytes(), "x").unwrap())
            .unwrap();
    assert!(!out.contains("Call-ID"), "{out}");
    assert!(out.contains("CSeq: 1 INVITE\r\n"), "{out}");
    // 501 for unknown methods.
    let out = error_response(raw.replace("INVITE", "FOO").as_bytes(), 501, "unknown").unwrap();
    assert!(out.starts_with(b"SIP/2.0 501 Not Implemented\r\n"));
}

#[test]
fn frame_stream_cases() {
    let msg = INVITE.as_bytes();
    assert_eq!(frame_stream(msg, 4096), Frame::Message(msg.len()));
    let mut two = msg.to_vec();
    two.extend_from_slice(msg);
    assert_eq!(frame_stream(&two, 4096), Frame::Message(msg.len()));
    assert_eq!(frame_stream(&msg[..msg.len() - 1], 4096), Frame::NeedMore);
    assert_eq!(frame_stream(&msg[..40], 4096), Frame::NeedMore);
    assert_eq!(
        frame_stream(b"\r\n\r\nINVITE", 4096),
        Frame::KeepAlive(4, true)
    );
    assert_eq!(
        frame_stream(b"\r\nINVITE", 4096),
        Frame::KeepAlive(2, false)
    );
    assert_eq!(frame_stream(b"\r\n", 4096), Frame::NeedMore);
    assert_eq!(frame_stream(b"", 4096), Frame::NeedMore);
    let no_len = INVITE.replace("Content-Length: 4\r\n", "");
    assert!(matches!(
        frame_stream(no_len.as_bytes(), 4096),
        Frame::Invalid(_)
    ));
    let compact = INVITE.replace("Content-Length: 4", "l: 4");
    assert_eq!(
        frame_stream(compact.as_bytes(), 4096),
        Frame::Message(compact.len())
    );
    assert!(matches!(frame_stream(msg, 100), Frame::Invalid(_)));
    assert!(matches!(frame_stream(&[b'A'; 200], 100), Frame::Invalid(_)));
    assert_eq!(frame_stream(&[b'A'; 50], 100), Frame::NeedMore);
    let huge = INVITE.replace(
        "Content-Length: 4",
        "Content-Length: 99999999999999999999999",
    );
    assert!(matches!(
        frame_stream(huge.as_bytes(), 4096),
        Frame::Invalid(_)
    ));
}

#[test]
fn make_response_copies_headers_and_adds_tag() {
    let mut r = req(&INVITE.replace(
        "Contact:",
        "Record-Route: <sip:p1.example.com;lr>\r\nContact:",
    ));
    stamp_received(&mut r, "203.0.113.7:40000".parse().unwrap());
    let resp = make_response(&r, 180, Some("srv1"));
    let text = String::from_utf8(response_to_bytes(&resp)).unwrap();
    assert_eq!(
        text,
        "SIP/2.0 180 Ringing\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKabc123;rport=40000;received=203.0.113.7\r\n\
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKproxy\r\n\
From: \"Alice\" <sip:alice@example.com>;tag=1928301774\r\n\
To: <sip:100@ivr.example.com>;tag=srv1\r\n\
Call-ID: a84b4c76e66710@pc33.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Record-Route: <sip:p1.example.com;lr>\r\n\
Content-Length: 0\r\n\r\n"
    );
    // 4xx: no Record-Route; an existing To tag is kept.
    let resp = make_response(&r, 487, Some("srv1"));
    let text = String::from_utf8(response_to_bytes(&resp)).unwrap();
    assert!(text.starts_with("SIP/2.0 487 Request Terminated\r\n"));
    assert!(!text.contains("Record-Route"));
    let resp100 = make_response(&r, 100, None);
    assert_eq!(to_tag(&resp100), None);
}

#[test]
fn to_bytes_fixes_content_length_and_round_trips() {
    let mut r = req(INVITE);
    r.body = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n".to_vec();
    let bytes = request_to_bytes(&r);
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert_eq!(r.body.len(), 31);
    assert!(text.contains("Content-Length: 31\r\n"));
    assert!(!text.contains("Content-Length: 4\r\n"));
    assert!(text.starts_with("INVITE sip:100@ivr.example.com SIP/2.0\r\n"));
    let back = req(&text);
    assert_eq!(back.body, r.body);
    assert_eq!(frame_stream(&bytes, 65535), Frame::Message(bytes.len()));
    // Header injection through a value is neutralised.
    r.headers.push(make_header("X-Test", "a\r\nEvil: 1"));
    let text = String::from_utf8(request_to_bytes(&r)).unwrap();
    assert!(text.contains("X-Test: a  Evil: 1\r\n"));
    assert!(matches!(make_header("m", "<sip:a@b>"), Header::Contact(_)));
}

#[test]
fn stamp_received_rules() {
    // rport without value: fill it and always add received.
    let mut r = req(INVITE);
    stamp_received(&mut r, "192.0.2.10:5062".parse().unwrap());
    let via = top_via(&r).unwrap();
    assert_eq!(via.rport, Some(Some(5062)));
    assert_eq!(via.received, Some("192.0.2.10".parse().unwrap()));
    // No rport, same IP: untouched.
    let plain = INVITE.replace(";rport", "");
    let mut r = req(&plain);
    stamp_received(&mut r, "192.0.2.10:9999".parse().unwrap());
    assert_eq!(
        all_via_values(&r)[0],
        "SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKabc123"
    );
    // No rport, different IP: received only.
    stamp_received(&mut r, "198.51.100.9:9999".parse().unwrap());
    assert_eq!(
        all_via_values(&r)[0],
        "SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKabc123;received=198.51.100.9"
    );
    // Second Via untouched.
    assert_eq!(
        all_via_values(&r)[1],
        "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKproxy"
    );
    // Domain sent-by, IPv4-mapped source.
    let dom = plain.replace("192.0.2.10:5062", "pc33.example.com");
    let mut r = req(&dom);
    stamp_received(&mut r, "[::ffff:198.51.100.9]:5060".parse().unwrap());
    assert_eq!(
        top_via(&r).unwrap().received,
        Some("198.51.100.9".parse().unwrap())
    );
}

#[test]
fn response_destination_rules() {
    let src: SocketAddr = "203.0.113.7:40000".parse().unwrap();
    let base = ViaInfo {
        transport: rsip::Transport::Udp,
        sent_by_host: "192.0.2.10".into(),
        sent_by_port: Some(5062),
        branch: Some("z9hG4bKx".into()),
        received: None,
        rport: None,
    };
    assert_eq!(
        response_destination(&base, src),
        "192.0.2.10:5062".parse().unwrap()
    );
    let v = ViaInfo {
        sent_by_port: None,
        ..base.clone()
    };
    assert_eq!(
        response_destination(&v, src),
        "192.0.2.10:5060".parse().unwrap()
    );
    let v = ViaInfo {
        received: Some("203.0.113.7".parse().unwrap()),
        ..base.clone()
    };
    assert_eq!(
        response_destination(&v, src),
        "203.0.113.7:5062".parse().unwrap()
    );
    let v = ViaInfo {
        received: Some("203.0.113.7".parse().unwrap()),
        rport: Some(Some(40000)),
        ..base.clone()
    };
    assert_eq!(response_destination(&v, src), src);
    let v = ViaInfo {
        rport: Some(None),
        ..base.clone()
    };
    assert_eq!(response_destination(&v, src), src);
    let v = ViaInfo {
        sent_by_host: "pc.example.com".into(),
        ..base
    };
    assert_eq!(
        response_destination(&v, src),
        "203.0.113.7:5062".parse().unwrap()
    );
}

#[test]
fn ids_are_fresh_and_well_formed() {
    let b1 = new_branch();
    let b2 = new_branch();
    assert!(b1.starts_with("z9hG4bK") && b1.len() >= 7 + 16);
    assert_ne!(b1, b2);
    assert!(new_tag().len() >= 8);
    let cid = new_call_id("ivr.example.com");
    assert!(cid.ends_with("@ivr.example.com") && cid.len() > 30);
}

#[test]
fn via_spec_and_add_via() {
    let mut r = req(INVITE);
    let spec = ViaSpec {
        host: "2001:db8::1".into(),
        port: Some(5070),
        transport: TransportKind::Tcp,
    };
    let branch = add_via(&mut r, &spec);
    let vias = all_via_values(&r);
    assert_eq!(vias.len(), 3);
    assert_eq!(
        vias[0],
        format!("SIP/2.0/TCP [2001:db8::1]:5070;branch={branch};rport")
    );
    let v = top_via(&r).unwrap();
    assert_eq!(v.sent_by_host, "2001:db8::1");
    assert_eq!(v.transport, rsip::Transport::Tcp);
}

#[test]
fn name_addr_parsing() {
    let n = NameAddr::parse("\"Doe, \\\"J\\\" <x>\" <sip:j@example.com;transport=tcp>;tag=abc;x")
        .unwrap();
    assert_eq!(n.display.as_deref(), Some("Doe, \"J\" <x>"));
    assert_eq!(n.uri, "sip:j@example.com;transport=tcp");
    assert_eq!(n.param("tag"), Some(Some("abc")));
    assert_eq!(n.param("x"), Some(None));
    let n = NameAddr::parse("sip:j@example.com;tag=q").unwrap();
    assert_eq!(n.uri, "sip:j@example.com");
    assert_eq!(n.param("TAG"), Some(Some("q")));
    assert_eq!(
        split_header_list("\"a,b\" <sip:x>, <sip:y;lr>,sip:z"),
        vec!["\"a,b\" <sip:x>", "<sip:y;lr>", "sip:z"]
    );
    assert!(is_keepalive(b"\r\n\r\n"));
    assert!(!is_keepalive(b"OPTIONS"));
}

#[test]
fn tighten_params_removes_separator_whitespace_outside_quotes() {
    assert_eq!(
        tighten_params("\"A ; B\" <sip:a@b> ; tag = 1 ;lr"),
        "\"A ; B\" <sip:a@b>;tag=1;lr"
    );
    assert_eq!(
        tighten_params("SIP/2.0/UDP h:5060 ;branch= z9hG4bK1"),
        "SIP/2.0/UDP h:5060;branch=z9hG4bK1"
    );
}

#[test]
fn random_mutations_never_panic() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let alphabet = b" :;,<>\"\\=\r\n\t@[]/0123456789abcSIPVvlfti\xff";
    for _ in 0..5_000 {
        let mut m = INVITE.as_bytes().to_vec();
        for _ in 0..rng.random_range(1..6) {
            let pos = rng.random_range(0..m.len());
            match rng.random_range(0..3) {
                0 => m[pos] = alphabet[rng.random_range(0..alphabet.len())],
                1 => {
                    m.remove(pos);
                }
                _ => m.insert(pos, alphabet[rng.random_range(0..alphabet.len())]),
            }
        }
        if let Ok(msg) = parse(&m) {
            // Whatever parsed must serialize, reparse and answer without panicking.
            let bytes = to_bytes(&msg);
            assert!(
                parse(&bytes).is_ok(),
                "{}\n---\n{}",
                String::from_utf8_lossy(&m),
                String::from_utf8_lossy(&bytes)
            );
            let _ = top_via(&msg);
            let _ = cseq(&msg);
            let _ = from_tag(&msg);
            let _ = contact_uri(&msg);
            if let SipMessage::Request(mut r) = msg {
                stamp_received(&mut r, "198.51.100.1:5060".parse().unwrap());
                let _ = make_response(&r, 200, Some("x"));
            }
        } else {
            let _ = bad_request(&m, "x");
        }
        let _ = frame_stream(&m, 2048);
    }
}

/// The OPTIONS every error-response test starts from.
const OPTIONS: &str = "OPTIONS sip:100@ivr.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKopt1;rport\r\n\
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKproxy\r\n\
From: <sip:alice@example.com>;tag=f1\r\n\
To: <sip:100@ivr.example.com>\r\n\
Call-ID: opt-1@example.com\r\n\
CSeq: 7 OPTIONS\r\n\
Max-Forwards: 70\r\n\
Content-Length: 0\r\n\r\n";

fn without(raw: &str, header: &str) -> String {
    raw.split_inclusive("\r\n")
        .filter(|l| !l.starts_with(&format!("{header}:")))
        .collect()
}

fn answer(raw: &str) -> (ParseError, Option<String>) {
    let err = parse(raw.as_bytes()).expect_err("must not parse");
    let resp = error_response_for(raw.as_bytes(), &err).map(|b| String::from_utf8(b).unwrap());
    (err, resp)
}

#[test]
fn missing_mandatory_header_gets_400_naming_it_with_the_rest_copied() {
    for name in ["Call-ID", "CSeq", "From", "To"] {
        let (err, resp) = answer(&without(OPTIONS, name));
        assert_eq!(err, ParseError::MissingHeader(name));
        assert_eq!(err.status(), 400);
        let resp = resp.unwrap_or_else(|| panic!("no answer without {name}"));
        assert!(
            resp.starts_with(&format!("SIP/2.0 400 Missing {name}\r\n")),
            "{resp}"
        );
        // Both Vias in order, then whatever else exists.
        assert!(resp.contains(
            "Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKopt1;rport\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKproxy\r\n"
        ));
        for (other, value) in [
            ("From", "<sip:alice@example.com>;tag=f1"),
            ("To", "<sip:100@ivr.example.com>;tag="),
            ("Call-ID", "opt-1@example.com"),
            ("CSeq", "7 OPTIONS"),
        ] {
            let line = format!("\r\n{other}: {value}");
            assert_eq!(resp.contains(&line), other != name, "{name}: {resp}");
        }
        assert!(resp.contains("Warning: 399 ringback \"missing mandatory header"));
        assert_eq!(
            frame_stream(resp.as_bytes(), 4096),
            Frame::Message(resp.len())
        );
    }
    // Compact forms count as present.
    let compact = OPTIONS.replace("Call-ID:", "i:");
    assert!(parse(compact.as_bytes()).is_ok());
}

#[test]
fn no_usable_top_via_means_no_answer() {
    let (err, resp) = answer(&without(OPTIONS, "Via"));
    assert_eq!(err, ParseError::MissingHeader("Via"));
    assert_eq!(resp, None);
    // Unreadable top Via: nothing to route by.
    let garbage = OPTIONS.replace("SIP/2.0/UDP 192.0.2.10:5062;", "garbage;");
    assert_eq!(answer(&garbage).1, None);
    // Missing Via and Call-ID: still nothing.
    assert_eq!(
        answer(&without(&without(OPTIONS, "Via"), "Call-ID")).1,
        None
    );
    // A Call-ID that is there but cannot be echoed (control character): dropped, not
    // answered with a made-up or missing Call-ID.
    let nul = OPTIONS.replace("opt-1@example.com", "opt\u{1}1");
    assert_eq!(answer(&nul).1, None);
}

#[test]
fn other_sip_versions_get_505() {
    for v in ["SIP/3.0", "SIP/2.1", "SIP/1.0", "sip/3.0"] {
        let raw = OPTIONS.replacen("SIP/2.0\r\n", &format!("{v}\r\n"), 1);
        let (err, resp) = answer(&raw);
        assert_eq!(err, ParseError::UnsupportedVersion(v.into()), "{v}");
        let resp = resp.unwrap();
        assert!(
            resp.starts_with("SIP/2.0 505 Version Not Supported\r\n"),
            "{resp}"
        );
        assert!(resp.contains("Call-ID: opt-1@example.com\r\n"));
    }
    // The version is case-insensitive (RFC 3261 §7.1); 2.0 in any case parses.
    let lower = OPTIONS.replacen("SIP/2.0\r\n", "sip/2.0\r\n", 1);
    assert!(matches!(
        parse(lower.as_bytes()),
        Ok(SipMessage::Request(_))
    ));
    let resp = "sip/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx\r\n\
From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 5 OPTIONS\r\n\r\n";
    assert!(matches!(
        parse(resp.as_bytes()),
        Ok(SipMessage::Response(_))
    ));
    // Not a version at all: not a SIP request, dropped.
    for v in ["SIP/x", "HTTP/1.1", "SIP/2.", "SIP2.0"] {
        let raw = OPTIONS.replacen("SIP/2.0\r\n", &format!("{v}\r\n"), 1);
        let (err, resp) = answer(&raw);
        assert!(matches!(err, ParseError::StartLine(_)), "{v}: {err:?}");
        assert_eq!(resp, None, "{v}");
    }
    // A response with another version is dropped like any unparseable response.
    assert!(parse(resp.replace("sip/2.0", "SIP/3.0").as_bytes()).is_err());
}

#[test]
fn request_uri_schemes_and_garbage() {
    let with_uri = |uri: &str| OPTIONS.replacen("sip:100@ivr.example.com", uri, 1);
    for (uri, scheme) in [
        ("tel:+1-555-0100", "tel"),
        ("TEL:+15550100;phone-context=example.com", "tel"),
        ("mailto:alice@example.com", "mailto"),
        ("urn:service:sos", "urn"),
        ("http://example.com/x", "http"),
    ] {
        let (err, resp) = answer(&with_uri(uri));
        assert_eq!(err, ParseError::UnsupportedScheme(scheme.into()), "{uri}");
        assert_eq!(err.status(), 416);
        let resp = resp.unwrap();
        assert!(
            resp.starts_with("SIP/2.0 416 Unsupported URI Scheme\r\n"),
            "{resp}"
        );
    }
    for uri in [
        "@@:;;<>",
        "sip:",
        "tel:",
        "sip:100%zz@ivr",
        "sip:1<0>0@ivr",
        "sip:caf\u{e9}@ivr",
        "1a:b",
        "nocolon",
        ":x",
    ] {
        let (err, resp) = answer(&with_uri(uri));
        assert!(matches!(err, ParseError::RequestUri(_)), "{uri}: {err:?}");
        let resp = resp.unwrap();
        assert!(
            resp.starts_with("SIP/2.0 400 Invalid Request-URI\r\n"),
            "{resp}"
        );
    }
    // A space inside the URI.
    let (err, _) = answer(&with_uri("sip:1 00@ivr"));
    assert!(matches!(err, ParseError::RequestUri(_)), "{err:?}");
    // What ringback serves still parses. (IPv6 hosts in URIs are not: `rsip` 0.4 cannot
    // read `[2001:db8::1]`, so such a request gets 400 as it did before.)
    for uri in [
        "sip:100@ivr.example.com",
        "SIP:100@ivr.example.com",
        "sips:100@ivr.example.com",
        "sip:ivr.example.com",
        "sip:%2B15550100@192.0.2.1:5060;user=phone",
        "sip:555-0100;phone-context=+1@ivr;user=phone",
    ] {
        assert!(
            matches!(parse(with_uri(uri).as_bytes()), Ok(SipMessage::Request(_))),
            "{uri}: {:?}",
            parse(with_uri(uri).as_bytes())
        );
    }
}

#[test]
fn unknown_method_and_phrases() {
    let foo = OPTIONS.replace("OPTIONS", "FOO");
    let (err, resp) = answer(&foo);
    assert_eq!(err, ParseError::UnknownMethod("FOO".into()));
    assert!(resp.unwrap().starts_with("SIP/2.0 501 Not Implemented\r\n"));
    let dup = OPTIONS.replace(
        "CSeq: 7 OPTIONS\r\n",
        "CSeq: 7 OPTIONS\r\nCSeq: 8 OPTIONS\r\n",
    );
    let (err, resp) = answer(&dup);
    assert_eq!(err.status(), 400);
    assert!(resp.unwrap().starts_with("SIP/2.0 400 Invalid CSeq\r\n"));
    assert_eq!(
        ParseError::TruncatedBody {
            declared: 9,
            actual: 1
        }
        .response_phrase(),
        "Bad Request"
    );
    // The textual builder never lets a phrase break the status line.
    let out = build_error_response(OPTIONS.as_bytes(), 400, "a\r\nX: y", "w", None).unwrap();
    assert!(out.starts_with(b"SIP/2.0 400 aX: y\r\nVia:"));
}

#[test]
fn name_addr_user_or_host_reads_the_text() {
    let user = |v: &str| NameAddr::parse(v).map(|n| n.user_or_host().to_string());
    assert_eq!(
        user("<sip:alice.smith@example.com>;tag=1").as_deref(),
        Some("alice.smith")
    );
    assert_eq!(
        user("\"Bob\" <sip:+15550123@10.0.0.1:5060;transport=udp>;tag=x").as_deref(),
        Some("+15550123")
    );
    assert_eq!(user("\"a <b>\" <sip:dave@host>").as_deref(), Some("dave"));
    assert_eq!(user("sip:100@host;tag=2").as_deref(), Some("100"));
    assert_eq!(user("<sips:carol:pw@host>").as_deref(), Some("carol"));
    assert_eq!(user("<tel:+15550100;npdi>").as_deref(), Some("+15550100"));
    assert_eq!(
        user("<sip:gateway.example.com>;tag=3").as_deref(),
        Some("gateway.example.com")
    );
    let only_user = NameAddr::parse("<sip:1.2.3.4>").unwrap();
    assert_eq!(only_user.user(), None, "a host is not a user");
}

#[test]
fn an_initial_invites_call_id_is_found_without_parsing() {
    let invite = b"INVITE sip:2000@127.0.0.1 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
        From: <sip:a@127.0.0.1>;tag=1\r\n\
        t: <sip:2000@127.0.0.1;lr>\r\n\
        i:  abc@host \r\n\
        CSeq: 1 INVITE\r\n\r\nv=0\r\n";
    assert_eq!(initial_invite_call_id(invite), Some("abc@host"));
    let reinvite = b"INVITE sip:2000@127.0.0.1 SIP/2.0\r\n\
        To: \"x\" <sip:2000@127.0.0.1>;TAG=9\r\nCall-ID: abc\r\n\r\n";
    assert_eq!(initial_invite_call_id(reinvite), None, "a re-INVITE");
    // A `;tag=` inside the URI is not the To tag.
    let uri_param = b"INVITE sip:2000@h SIP/2.0\r\nTo: <sip:2000@h;tag=x>\r\nCall-ID: c\r\n\r\n";
    assert_eq!(initial_invite_call_id(uri_param), Some("c"));
    for other in [
        &b"BYE sip:x SIP/2.0\r\nTo: <sip:x>\r\nCall-ID: c\r\n\r\n"[..],
        b"INVITE sip:x SIP/2.0\r\nTo: <sip:x>\r\n\r\n",
        b"INVITE sip:x SIP/2.0\r\nCall-ID: c\r\n\r\n",
        b"INVITE ",
        b"",
    ] {
        assert_eq!(initial_invite_call_id(other), None, "{other:?}");
    }
}

#[test]
fn an_overload_refusal_is_a_503_with_retry_after_echoing_the_request() {
    let invite = b"INVITE sip:2000@127.0.0.1 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
        From: <sip:a@127.0.0.1>;tag=1\r\n\
        To: <sip:2000@127.0.0.1>\r\n\
        Call-ID: abc\r\nCSeq: 7 INVITE\r\nContent-Length: 0\r\n\r\n";
    let resp = overload_response(invite, 3, "max_calls").expect("answerable");
    let text = String::from_utf8(resp).expect("utf8");
    assert!(
        text.starts_with("SIP/2.0 503 Service Unavailable\r\n"),
        "{text}"
    );
    for line in [
        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1",
        "Call-ID: abc",
        "CSeq: 7 INVITE",
        "Retry-After: 3",
    ] {
        assert!(text.contains(line), "{line} missing:\n{text}");
    }
    assert!(text.contains("To: <sip:2000@127.0.0.1>;tag="), "{text}");
    match parse(text.as_bytes()) {
        Ok(rsip::SipMessage::Response(r)) => assert_eq!(r.status_code.code(), 503),
        other => panic!("not a response: {other:?}"),
    }
}
