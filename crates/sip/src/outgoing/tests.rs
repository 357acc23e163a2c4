//! Every response sequence real phones and carriers send to an INVITE.

use super::*;
use crate::auth::{Algorithm, DigestServer};
use crate::client_auth::ClientCredentials;
use crate::message::{parse, top_via};
use crate::transaction::TransportKind;
use rsip::SipMessage;

fn via() -> ViaSpec {
    ViaSpec {
        host: "192.0.2.1".into(),
        port: Some(5070),
        transport: TransportKind::Udp,
    }
}

fn invite() -> Request {
    let raw = "INVITE sip:5551234@198.51.100.7 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bKinv1\r\n\
Max-Forwards: 70\r\n\
From: <sip:ringback@192.0.2.1>;tag=ours\r\n\
To: <sip:5551234@198.51.100.7>\r\n\
Call-ID: leg1@192.0.2.1\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:ringback@192.0.2.1:5070>\r\n\
Supported: 100rel\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\r\nv=0\n";
    match parse(raw.as_bytes()) {
        Ok(SipMessage::Request(r)) => r,
        other => panic!("{other:?}"),
    }
}

/// A response to `req` with `code`, To tag `tag`, extra header lines and body.
fn resp(req: &Request, code: u16, tag: Option<&str>, extra: &str, body: &str) -> Response {
    let (seq, method) = message::cseq(req).expect("cseq");
    let via = message::header_value(req, "Via").expect("via");
    let to = match tag {
        Some(t) => format!("<sip:5551234@198.51.100.7>;tag={t}"),
        None => "<sip:5551234@198.51.100.7>".into(),
    };
    let ctype = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\r\n".into()
    };
    let raw = format!(
        "SIP/2.0 {code} {reason}\r\n\
Via: {via}\r\n\
From: <sip:ringback@192.0.2.1>;tag=ours\r\n\
To: {to}\r\n\
Call-ID: leg1@192.0.2.1\r\n\
CSeq: {seq} {method}\r\n\
Contact: <sip:phone@198.51.100.7:5080>\r\n\
{extra}{ctype}Content-Length: {len}\r\n\r\n{body}",
        reason = message::reason_phrase(code),
        len = body.len(),
    );
    match parse(raw.as_bytes()) {
        Ok(SipMessage::Response(r)) => r,
        other => panic!("{other:?}"),
    }
}

fn drain(o: &mut OutgoingInvite) -> Vec<Send> {
    std::iter::from_fn(|| o.poll_send()).collect()
}

/// The next thing to send, which must be a request with a transaction.
fn next_request(o: &mut OutgoingInvite) -> Request {
    match drain(o).remove(0) {
        Send::Request(r) => *r,
        other => panic!("{other:?}"),
    }
}

fn method_of(s: &Send) -> String {
    match s {
        Send::Request(r) => r.method.to_string(),
        Send::Ack(r) => format!("ACK({})", r.method),
        Send::Cancel => "CANCEL".into(),
    }
}

fn methods(o: &mut OutgoingInvite) -> Vec<String> {
    drain(o).iter().map(method_of).collect()
}

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";

#[test]
fn trying_is_never_an_answer() {
    let inv = invite();
    let mut o = OutgoingInvite::new(inv.clone(), via(), None);
    assert_eq!(
        o.on_response(&resp(&inv, 100, None, "", "")),
        InviteEvent::Trying
    );
    // A second 100 (retransmitted INVITE answered again) says nothing new.
    assert_eq!(
        o.on_response(&resp(&inv, 100, None, "", "")),
        InviteEvent::Nothing
    );
    assert!(o.is_calling());
    assert!(o.dialog().is_none());
    assert!(drain(&mut o).is_empty(), "nothing to send for a 100");
    let ev = o.on_response(&resp(&inv, 200, Some("ph1"), "", SDP));
    assert_eq!(
        ev,
        InviteEvent::Answered {
            sdp: SDP.as_bytes().to_vec()
        }
    );
    assert_eq!(methods(&mut o), ["ACK(ACK)"]);
    assert_eq!(
        o.dialog().map(|d| d.id().remote_tag.clone()),
        Some("ph1".into())
    );
}

#[test]
fn ringing_and_early_media_are_reported_each_time() {
    let inv = invite();
    let mut o = OutgoingInvite::new(inv.clone(), via(), None);
    assert_eq!(
        o.on_response(&resp(&inv, 100, None, "", "")),
        InviteEvent::Trying
    );
    assert_eq!(
        o.on_response(&resp(&inv, 180, Some("ph1"), "", "")),
        InviteEvent::Ringing {
            code: 180,
            sdp: None
        }
    );
    assert_eq!(
        o.on_response(&resp(&inv, 183, Some("ph1"), "", SDP)),
        InviteEvent::Ringing {
            code: 183,
            sdp: Some(SDP.as_bytes().to_vec())
        }
    );
    // A 183 without SDP (session progress only).
    assert_eq!(
        o.on_response(&resp(&inv, 183, Some("ph1"), "", "")),
        InviteEvent::Ringing {
            code: 183,
            sdp: None
        }
    );
    assert!(
        drain(&mut o).is_empty(),
        "unreliable provisionals need no PRACK"
    );
    assert!(matches!(
        o.on_response(&resp(&inv, 200, Some("ph1"), "", SDP)),
        InviteEvent::Answered { .. }
    ));
}

#[test]
fn retransmitted_2xx_is_acked_again_with_the_same_ack() {
    let inv = invite();
    let mut o = OutgoingInvite::new(inv.clone(), via(), None);
    let ok = resp(&inv, 200, Some("ph1"), "", SDP);
    assert!(matches!(o.on_response(&ok), InviteEvent::Answered { .. }));
    let first = drain(&mut o);
    assert_eq!(o.on_response(&ok), InviteEvent::Nothing);
    assert_eq!(o.on_response(&ok), InviteEvent::Nothing);
    let again = drain(&mut o);
    assert_eq!(again.len(), 2);
    assert_eq!(again[0], first[0], "the same ACK, resent");
    match &first[0] {
        Send::Ack(a) => {
            assert_eq!(message::cseq(a.as_ref()), Some((1, Method::Ack)));
            assert_eq!(a.uri.to_string(), "sip:phone@198.51.100.7:5080");
            assert_eq!(message::to_tag(a.as_ref()).as_deref(), Some("ph1"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn forked_2xx_are_acked_and_ended() {
    let inv = invite();
    let mut o = OutgoingInvite::new(inv.clone(), via(), None);
    o.on_response(&resp(&inv, 180, Some("a"), "", ""));
    o.on_response(&resp(&inv, 180, Some("b"), "", ""));
    assert!(matches!(
        o.on_response(&resp(&inv, 200, Some("a"), "", SDP)),
        InviteEvent::Answered { .. }
    ));
    assert_eq!(methods(&mut o), ["ACK(ACK)"]);
    // The second branch answers too: ACK it, then BYE it.
    let extra = resp(&inv, 200, Some("b"), "", SDP);
    assert_eq!(o.on_response(&extra), InviteEvent::Nothing);
    let sent = drain(&mut o);
    assert_eq!(
        sent.iter().map(method_of).collect::<Vec<_>>(),
        ["ACK(ACK)", "BYE"]
    );
    for s in &sent {
        if let Send::Ack(r) | Send::Request(r) = s {
            assert_eq!(message::to_tag(r.as_ref()).as_deref(), Some("b"));
        }
    }
    // Its retransmission gets an ACK but no second BYE.
    assert_eq!(o.on_response(&extra), InviteEvent::Nothing);
    assert_eq!(methods(&mut o), ["ACK(ACK)"]);
    // The kept dialog is still the first one.
    assert_eq!(
        o.dialog().map(|d| d.id().remote_tag.clone()),
        Some("a".into())
    );
    assert!(o.is_answered());
}

#[test]
fn reliable_provisionals_are_pracked_once_in_their_early_dialog() {
    let inv = invite();
    let mut o = OutgoingInvite::new(inv.clone(), via(), None);
    let rel = "Require: 100rel\r\nRSeq: 7\r\n";
    let r183 = resp(&inv, 183, Some("ph1"), rel, SDP);
    assert!(matches!(
        o.on_response(&r183),
        InviteEvent::Ringing {
            code: 183,
            sdp: Some(_)
        }
    ));
    let sent = drain(&mut o);
    assert_eq!(sent.len(), 1);
    let Send::Request(prack) = &sent[0] else {
        panic!("{sent:?}")
    };
    assert_eq!(prack.method, Method::PRack);
    assert_eq!(
        message::header_value(prack.as_ref(), "RAck").as_deref(),
        Some("7 1 INVITE")
    );
    assert_eq!(message::cseq(prack.as_ref()), Some((2, Method::PRack)));
    assert_eq!(message::to_tag(prack.as_ref()).as_deref(), Some("ph1"));
    // Retransmission of the same reliable provisional: no second PRACK, no event.
    assert_eq!(o.on_response(&r183), InviteEvent::Nothing);
    assert!(drain(&mut o).is_empty());
    // The next one in order is PRACKed.
    let r180 = resp(&inv, 180, Some("ph1"), "Require: 100rel\r\nRSeq: 8\r\n", "");
    assert!(matches!(
        o.on_response(&r180),
        InviteEvent::Ringing { code: 180, .. }
    ));
    assert_eq!(methods(&mut o), ["PRACK"]);
    // The 2xx confirms the early dialog: the BYE continues its CSeq numbering.
    assert!(matches!(
        o.on_response(&resp(&inv, 200, Some("ph1"), "", "")),
        InviteEvent::Answered { .. }
    ));
    assert_eq!(methods(&mut o), ["ACK(ACK)"]);
    assert!(o.hang_up());
    let sent = drain(&mut o);
    let Send::Request(bye) = &sent[0] else {
        panic!("{sent:?}")
    };
    assert_eq!(message::cseq(bye.as_ref()), Some((4, Method::Bye)));
}

#[test]
fn cancel_waits_for_a_provisional() {
    let inv = invite();
    let mut o = OutgoingInvite::new(inv.clone(), via(), None);
    assert!(!o.hang_up(), "nothing answered: not finished yet");
    assert!(
        drain(&mut o).is_empty(),
        "no CANCEL before any provisional (§9.1)"
    );
    assert_eq!(
        o.on_response(&resp(&inv, 100, None, "", "")),
        InviteEvent::Nothing
    );
    assert_eq!(methods(&mut o), ["CANCEL"]);
    assert_eq!(
        o.on_response(&resp(&inv, 180, Some("x"), "", "")),
        InviteEvent::Nothing
    );
    assert!(drain(&mut o).is_empty(), "one CANCEL only");
    assert_eq!(
        o.on_response(&resp(&inv, 487, Some("x"), "", "")),
        InviteEvent::Failed(487)
    );
}

#[test]
fn cancel_goes_at_once_after_a_provisional() {
    let inv = invite();
    let mut o = OutgoingInvite::new(inv.clone(), via(), None);
    o.on_response(&resp(&inv, 180, Some("x"), "", ""));
    assert!(!o.hang_up());
    assert_eq!(methods(&mut o), ["CANCEL"]);
}

#[test]
fn answer_racing_the_cancel_is_acked_and_hung_up() {
    let inv = invite();
    let mut o = OutgoingInvite::new(inv.clone(), via(), None);
    o.on_response(&resp(&inv, 180, Some("x"), "", ""));
    o.hang_up();
    drain(&mut o);
    assert_eq!(
        o.on_response(&resp(&inv, 200, Some("x"), "", SDP)),
        InviteEvent::AnsweredTooLate
    );
    assert_eq!(methods(&mut o), ["ACK(ACK)", "BYE"]);
}

#[test]
fn hang_up_after_answer_sends_bye() {
    let inv = invite();
    let mut o = OutgoingInvite::new(inv.clone(), via(), None);
    o.on_response(&resp(&inv, 200, Some("x"), "", SDP));
    drain(&mut o);
    assert!(o.hang_up());
    assert_eq!(methods(&mut o), ["BYE"]);
    assert!(o.hang_up(), "already finished");
    assert!(drain(&mut o).is_empty(), "one BYE only");
}

#[test]
fn final_errors_fail_the_call() {
    for code in [404u16, 480, 486, 503, 603] {
        let inv = invite();
        let mut o = OutgoingInvite::new(inv.clone(), via(), None);
        o.on_response(&resp(&inv, 100, None, "", ""));
        assert_eq!(
            o.on_response(&resp(&inv, code, Some("t"), "", "")),
            InviteEvent::Failed(code)
        );
        assert!(!o.is_calling());
    }
}

#[test]
fn challenge_without_credentials_fails() {
    let inv = invite();
    let mut o = OutgoingInvite::new(inv.clone(), via(), None);
    let challenge =
        "WWW-Authenticate: Digest realm=\"carrier\", nonce=\"n1\", algorithm=MD5, qop=\"auth\"\r\n";
    assert_eq!(
        o.on_response(&resp(&inv, 401, Some("t"), challenge, "")),
        InviteEvent::Failed(401)
    );
}

fn credentials() -> ClientAuth {
    ClientAuth::new(ClientCredentials {
        username: "acme".into(),
        auth_username: None,
        password: "s3cret".into(),
        realm: None,
    })
}

#[test]
fn challenged_invite_is_resent_with_credentials_that_verify() {
    let server = DigestServer::new(
        "carrier",
        Algorithm::Md5,
        b"k",
        std::time::Duration::from_secs(60),
    );
    let challenge = server.challenge(1_000, false);
    for (code, header, answer) in [
        (401u16, "WWW-Authenticate", "Authorization"),
        (407, "Proxy-Authenticate", "Proxy-Authorization"),
    ] {
        let inv = invite();
        let mut o = OutgoingInvite::new(inv.clone(), via(), Some(credentials()));
        o.on_response(&resp(&inv, 100, None, "", ""));
        let extra = format!("{header}: {}\r\n", challenge.header_value());
        assert_eq!(
            o.on_response(&resp(&inv, code, Some("t"), &extra, "")),
            InviteEvent::Resent
        );
        let sent = drain(&mut o);
        let Send::Request(again) = &sent[0] else {
            panic!("{sent:?}")
        };
        assert_eq!(again.method, Method::Invite);
        assert_eq!(message::cseq(again.as_ref()), Some((2, Method::Invite)));
        assert_ne!(
            top_via(again.as_ref()).and_then(|v| v.branch),
            top_via(&inv).and_then(|v| v.branch),
            "a new transaction"
        );
        assert_eq!(o.invite(), again.as_ref());
        let value = message::header_value(again.as_ref(), answer).expect("credentials");
        let auth = crate::auth::Authorization::parse(&value).expect("parse");
        assert!(crate::auth::check_response(
            &auth,
            "INVITE",
            crate::auth::Credential::Password("s3cret")
        ));
        // Late responses to the first INVITE change nothing; the new one is answered.
        assert_eq!(
            o.on_response(&resp(&inv, 401, Some("t"), &extra, "")),
            InviteEvent::Nothing
        );
        assert!(matches!(
            o.on_response(&resp(again, 200, Some("ok"), "", SDP)),
            InviteEvent::Answered { .. }
        ));
        let sent = drain(&mut o);
        let Send::Ack(ack) = &sent[0] else {
            panic!("{sent:?}")
        };
        assert_eq!(message::cseq(ack.as_ref()), Some((2, Method::Ack)));
    }
}

#[test]
fn second_challenge_of_the_same_nonce_fails() {
    let inv = invite();
    let mut o = OutgoingInvite::new(inv.clone(), via(), Some(credentials()));
    let ch = "WWW-Authenticate: Digest realm=\"carrier\", nonce=\"n1\", algorithm=MD5\r\n";
    assert_eq!(
        o.on_response(&resp(&inv, 401, Some("t"), ch, "")),
        InviteEvent::Resent
    );
    let again = next_request(&mut o);
    assert_eq!(
        o.on_response(&resp(&again, 401, Some("t"), ch, "")),
        InviteEvent::Failed(401),
        "wrong password: do not loop"
    );
}

#[test]
fn challenged_bye_is_resent_with_credentials() {
    let inv = invite();
    let mut o = OutgoingInvite::new(inv.clone(), via(), Some(credentials()));
    let ch = "Proxy-Authenticate: Digest realm=\"carrier\", nonce=\"n1\", algorithm=MD5, qop=\"auth\"\r\n";
    assert_eq!(
        o.on_response(&resp(&inv, 407, Some("t"), ch, "")),
        InviteEvent::Resent
    );
    let again = next_request(&mut o);
    assert!(matches!(
        o.on_response(&resp(&again, 200, Some("ok"), "", SDP)),
        InviteEvent::Answered { .. }
    ));
    drain(&mut o);
    assert!(o.hang_up());
    let bye = next_request(&mut o);
    assert!(
        message::header_value(&bye, "Proxy-Authorization").is_some(),
        "credentials sent up front with the BYE"
    );
    // The carrier challenges it anyway with a new nonce: sent again, verified.
    let server = DigestServer::new(
        "carrier",
        Algorithm::Md5,
        b"k",
        std::time::Duration::from_secs(60),
    );
    let ch2 = format!(
        "Proxy-Authenticate: {}\r\n",
        server.challenge(1_000, false).header_value()
    );
    let mut challenged = resp(&bye, 407, Some("ok"), &ch2, "");
    challenged.status_code = rsip::StatusCode::ProxyAuthenticationRequired;
    assert_eq!(o.on_response(&challenged), InviteEvent::Nothing);
    let sent = drain(&mut o);
    let Send::Request(bye2) = &sent[0] else {
        panic!("{sent:?}")
    };
    assert_eq!(bye2.method, Method::Bye);
    let value = message::header_value(bye2.as_ref(), "Proxy-Authorization").expect("auth");
    let auth = crate::auth::Authorization::parse(&value).expect("parse");
    assert!(crate::auth::check_response(
        &auth,
        "BYE",
        crate::auth::Credential::Password("s3cret")
    ));
    // A BYE challenge from another dialog is not ours to answer.
    let mut other = resp(&bye, 401, Some("fork"), &ch2.replace("Proxy-", "WWW-"), "");
    other.status_code = rsip::StatusCode::Unauthorized;
    assert_eq!(o.on_response(&other), InviteEvent::Nothing);
    assert!(drain(&mut o).is_empty());
}
