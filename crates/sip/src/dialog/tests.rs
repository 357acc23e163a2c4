use super::*;
use crate::message::{make_response, parse, request_to_bytes, top_via};
use rsip::SipMessage;

fn req(raw: &str) -> Request {
    match parse(raw.as_bytes()) {
        Ok(SipMessage::Request(r)) => r,
        other => panic!("{other:?}"),
    }
}

fn uri(s: &str) -> rsip::Uri {
    rsip::Uri::try_from(s).unwrap()
}

fn via() -> ViaSpec {
    ViaSpec {
        host: "203.0.113.1".into(),
        port: Some(5060),
        transport: TransportKind::Udp,
    }
}

fn incoming_invite() -> Request {
    req("INVITE sip:100@ivr.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKp1\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKu1\r\n\
Record-Route: <sip:10.0.0.1;lr>, <sip:p2.example.com;lr>\r\n\
From: \"Alice\" <sip:alice@example.com>;tag=from1\r\n\
To: <sip:100@ivr.example.com>\r\n\
Call-ID: d1@example.com\r\n\
CSeq: 10 INVITE\r\n\
Contact: <sip:alice@192.0.2.10:5062>\r\n\
Content-Length: 0\r\n\r\n")
}

/// Strip the random branch so the text can be compared exactly.
fn text_without_branch(r: &Request) -> (String, String) {
    let branch = top_via(r).unwrap().branch.unwrap();
    let t = String::from_utf8(request_to_bytes(r)).unwrap();
    (t.replace(&branch, "BRANCH"), branch)
}

#[test]
fn uas_dialog_builds_bye_with_loose_routes() {
    let inv = incoming_invite();
    let mut d = Dialog::new_uas(&inv, "loc1", uri("sip:ivr@203.0.113.1:5060")).unwrap();
    assert_eq!(
        d.id(),
        &DialogId {
            call_id: "d1@example.com".into(),
            local_tag: "loc1".into(),
            remote_tag: "from1".into()
        }
    );
    assert_eq!(d.remote_seq(), Some(10));
    let bye = d.make_request(Method::Bye, &via());
    let (text, branch) = text_without_branch(&bye);
    assert!(branch.starts_with("z9hG4bK"));
    assert_eq!(
        text,
        "BYE sip:alice@192.0.2.10:5062 SIP/2.0\r\n\
Via: SIP/2.0/UDP 203.0.113.1:5060;branch=BRANCH;rport\r\n\
Max-Forwards: 70\r\n\
Route: <sip:10.0.0.1;lr>\r\n\
Route: <sip:p2.example.com;lr>\r\n\
From: <sip:100@ivr.example.com>;tag=loc1\r\n\
To: \"Alice\" <sip:alice@example.com>;tag=from1\r\n\
Call-ID: d1@example.com\r\n\
CSeq: 1 BYE\r\n\
Content-Length: 0\r\n\r\n"
    );
    let info = d.make_request(Method::Info, &via());
    assert_eq!(crate::message::cseq(&info), Some((2, Method::Info)));
    assert_ne!(
        top_via(&info).unwrap().branch,
        top_via(&bye).unwrap().branch,
        "each request gets a fresh branch"
    );
    assert_eq!(
        d.next_hop(),
        NextHop::Addr {
            addr: "10.0.0.1:5060".parse().unwrap(),
            transport: TransportKind::Udp
        }
    );
    // The dialog ID of a request coming back from the peer is the same.
    let resp = make_response(&inv, 200, Some("loc1"));
    assert_eq!(
        dialog_id_for_response(&resp).map(|id| id.local_tag),
        Some("from1".to_string()),
        "for a response to *their* request the From tag is theirs"
    );
}

#[test]
fn re_invite_contains_contact_and_existing_to_tag_is_kept() {
    let inv = incoming_invite();
    let raw = String::from_utf8(request_to_bytes(&inv)).unwrap();
    let with_tag = req(&raw.replace(
        "To: <sip:100@ivr.example.com>",
        "To: <sip:100@ivr.example.com>;tag=pre",
    ));
    let mut d = Dialog::new_uas(&with_tag, "ignored", uri("sip:ivr@203.0.113.1")).unwrap();
    assert_eq!(d.id().local_tag, "pre");
    let reinv = d.make_request(Method::Invite, &via());
    let (text, _) = text_without_branch(&reinv);
    assert!(text.contains("From: <sip:100@ivr.example.com>;tag=pre\r\n"));
    assert!(text.contains("Contact: <sip:ivr@203.0.113.1>\r\n"));
}

fn in_dialog(method: &str, cseq: u32, from_tag: &str, contact: &str) -> Request {
    req(&format!(
        "{method} sip:ivr@203.0.113.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK{method}{cseq}\r\n\
From: <sip:alice@example.com>;tag={from_tag}\r\n\
To: <sip:100@ivr.example.com>;tag=loc1\r\n\
Call-ID: d1@example.com\r\n\
CSeq: {cseq} {method}\r\n\
{contact}Content-Length: 0\r\n\r\n"
    ))
}

#[test]
fn remote_requests_check_cseq_and_refresh_target() {
    let inv = incoming_invite();
    let mut d = Dialog::new_uas(&inv, "loc1", uri("sip:ivr@203.0.113.1:5060")).unwrap();
    let info = in_dialog("INFO", 11, "from1", "");
    assert_eq!(dialog_id_for_incoming(&info).as_ref(), Some(d.id()));
    assert_eq!(d.on_remote_request(&info), Ok(()));
    assert_eq!(d.remote_seq(), Some(11));
    assert_eq!(
        d.on_remote_request(&in_dialog("INFO", 5, "from1", "")),
        Err(DialogError::OutOfOrder { got: 5, last: 11 })
    );
    assert_eq!(
        d.on_remote_request(&in_dialog("BYE", 12, "other", "")),
        Err(DialogError::Mismatch)
    );
    // ACK carries the INVITE's (older) CSeq and is fine.
    assert_eq!(
        d.on_remote_request(&in_dialog("ACK", 10, "from1", "")),
        Ok(())
    );
    // INFO with a Contact is not a target refresh; re-INVITE is.
    d.on_remote_request(&in_dialog(
        "INFO",
        12,
        "from1",
        "Contact: <sip:alice@198.51.100.99>\r\n",
    ))
    .unwrap();
    assert_eq!(d.remote_target().to_string(), "sip:alice@192.0.2.10:5062");
    d.on_remote_request(&in_dialog(
        "INVITE",
        13,
        "from1",
        "Contact: <sip:alice@198.51.100.99:5070>\r\n",
    ))
    .unwrap();
    assert_eq!(
        d.remote_target().to_string(),
        "sip:alice@198.51.100.99:5070"
    );
    assert!(dialog_id_for_incoming(&incoming_invite()).is_none());
}

fn our_invite() -> Request {
    crate::uac::make_invite(crate::uac::InviteSpec {
        from_uri: uri("sip:ivr@ivr.example.com"),
        from_display: None,
        to_uri: uri("sip:agent7@example.com"),
        request_uri: uri("sip:agent7@198.51.100.20"),
        contact: uri("sip:ivr@203.0.113.1:5060"),
        via: via(),
        call_id: "out-9@ivr.example.com".into(),
        cseq: 20,
        body: None,
        extra_headers: vec![],
    })
}

fn agent_response(inv: &Request, code: u16) -> Response {
    let mut r = make_response(inv, code, Some("agenttag"));
    r.headers.push(crate::message::make_header(
        "Record-Route",
        "<sip:a.example.com;lr>, <sip:198.51.100.1:5070;lr;transport=tcp>",
    ));
    r.headers.push(crate::message::make_header(
        "Contact",
        "<sip:agent7@198.51.100.20:5080>",
    ));
    r
}

#[test]
fn uac_dialog_reverses_route_set_and_builds_ack_and_bye() {
    let inv = our_invite();
    let ok = agent_response(&inv, 200);
    let mut d = Dialog::new_uac(&inv, &ok).unwrap();
    assert_eq!(d.id().remote_tag, "agenttag");
    assert_eq!(d.id().local_tag, crate::message::from_tag(&inv).unwrap());
    assert!(!d.is_early());
    assert_eq!(
        d.route_set(),
        &[
            "<sip:198.51.100.1:5070;lr;transport=tcp>".to_string(),
            "<sip:a.example.com;lr>".to_string()
        ]
    );
    let ack = d.make_ack(20, &via());
    let (text, _) = text_without_branch(&ack);
    let from_tag = d.id().local_tag.clone();
    assert_eq!(
        text,
        format!(
            "ACK sip:agent7@198.51.100.20:5080 SIP/2.0\r\n\
Via: SIP/2.0/UDP 203.0.113.1:5060;branch=BRANCH;rport\r\n\
Max-Forwards: 70\r\n\
Route: <sip:198.51.100.1:5070;lr;transport=tcp>\r\n\
Route: <sip:a.example.com;lr>\r\n\
From: <sip:ivr@ivr.example.com>;tag={from_tag}\r\n\
To: <sip:agent7@example.com>;tag=agenttag\r\n\
Call-ID: out-9@ivr.example.com\r\n\
CSeq: 20 ACK\r\n\
Content-Length: 0\r\n\r\n"
        )
    );
    assert_ne!(top_via(&ack).unwrap().branch, top_via(&inv).unwrap().branch);
    let bye = d.make_request(Method::Bye, &via());
    assert_eq!(crate::message::cseq(&bye), Some((21, Method::Bye)));
    assert_eq!(
        d.next_hop(),
        NextHop::Addr {
            addr: "198.51.100.1:5070".parse().unwrap(),
            transport: TransportKind::Tcp
        }
    );
}

#[test]
fn early_uac_dialog_takes_route_set_from_2xx() {
    let inv = our_invite();
    let ringing = make_response(&inv, 180, Some("agenttag"));
    let mut ringing = ringing;
    ringing.headers.push(crate::message::make_header(
        "Contact",
        "<sip:agent7@198.51.100.20>",
    ));
    let mut d = Dialog::new_uac(&inv, &ringing).unwrap();
    assert!(d.is_early());
    assert!(d.route_set().is_empty());
    d.update_from_response(&agent_response(&inv, 200));
    assert!(!d.is_early());
    assert_eq!(d.route_set().len(), 2);
    assert_eq!(
        d.remote_target().to_string(),
        "sip:agent7@198.51.100.20:5080"
    );
}

#[test]
fn uac_errors() {
    let inv = our_invite();
    assert_eq!(
        Dialog::new_uac(&inv, &make_response(&inv, 100, None)).unwrap_err(),
        DialogError::NotEstablishing(100)
    );
    assert_eq!(
        Dialog::new_uac(&inv, &make_response(&inv, 200, None)).unwrap_err(),
        DialogError::MissingTag("To")
    );
    assert_eq!(
        Dialog::new_uac(&inv, &make_response(&inv, 200, Some("t"))).unwrap_err(),
        DialogError::MissingContact
    );
}

#[test]
fn strict_route_puts_first_route_in_request_uri() {
    let inv = incoming_invite();
    let raw = String::from_utf8(request_to_bytes(&inv)).unwrap();
    let strict = req(&raw.replace(
        "Record-Route: <sip:10.0.0.1;lr>\r\n",
        "Record-Route: <sip:strict.example.com>\r\n",
    ));
    let mut d = Dialog::new_uas(&strict, "loc1", uri("sip:ivr@203.0.113.1")).unwrap();
    let bye = d.make_request(Method::Bye, &via());
    let (text, _) = text_without_branch(&bye);
    assert!(
        text.starts_with("BYE sip:strict.example.com SIP/2.0\r\n"),
        "{text}"
    );
    assert!(
        text.contains("Route: <sip:p2.example.com;lr>\r\nRoute: <sip:alice@192.0.2.10:5062>\r\n")
    );
    assert!(
        matches!(d.next_hop(), NextHop::Name { ref host, port: None, .. } if host == "strict.example.com")
    );
}

#[test]
fn next_hop_for_uris() {
    assert_eq!(
        next_hop_for_uri(&uri("sips:bob@192.0.2.1")),
        NextHop::Addr {
            addr: "192.0.2.1:5061".parse().unwrap(),
            transport: TransportKind::Tls
        }
    );
    // `sips:` means TLS whatever `transport=` says (RFC 5630 §3.1.3).
    assert_eq!(
        next_hop_for_uri(&uri("sips:bob@192.0.2.1:5063;transport=tcp")),
        NextHop::Addr {
            addr: "192.0.2.1:5063".parse().unwrap(),
            transport: TransportKind::Tls
        }
    );
    assert_eq!(
        next_hop_for_uri(&uri("sip:bob@192.0.2.1;transport=tls")),
        NextHop::Addr {
            addr: "192.0.2.1:5061".parse().unwrap(),
            transport: TransportKind::Tls
        }
    );
    assert_eq!(
        next_hop_for_uri(&uri("sip:bob@192.0.2.1:5099;transport=tcp")),
        NextHop::Addr {
            addr: "192.0.2.1:5099".parse().unwrap(),
            transport: TransportKind::Tcp
        }
    );
    assert!(matches!(
        next_hop_for_uri(&uri("sip:bob@pbx.example.com:5070")),
        NextHop::Name { host, port: Some(5070), transport: TransportKind::Udp, .. } if host == "pbx.example.com"
    ));
}
