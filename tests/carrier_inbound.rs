//! Inbound calls from a carrier, against a real `ringback serve` with the
//! shipped demo dialplans (main: 1000 and +15550100; support-direct: 2000;
//! default: the `*` catch-all):
//!
//! * `sip.allow_from`: INVITE and REGISTER from outside the listed networks
//!   get `403 Forbidden` before any other work (no call, no CDR, counted as
//!   `refusals_total{reason="not_allowed"}`); OPTIONS is still answered; an
//!   INVITE from a listed address is answered. Linux routes all of
//!   127.0.0.0/8 to the loopback interface, so a SIPp bound to 127.0.0.2
//!   (`-i 127.0.0.2`) is "another host".
//! * DID selection: a carrier that puts its trunk user in the Request-URI and
//!   the dialed number only in `To` reaches the dialplan of that number.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::scenario::Uac;
use common::{call_id_from_trace, Server, ServerOpts, Sipp};

fn server(sip_extra: &str) -> Server {
    Server::start(ServerOpts {
        sip_extra: sip_extra.into(),
        ..ServerOpts::default()
    })
}

/// Send one request from a UDP socket on `from_ip`; the status line of the
/// final answer (`None`: nothing within 3 s).
fn ask(from_ip: &str, srv: SocketAddr, method: &str, uri_user: Option<&str>) -> Option<String> {
    let sock = UdpSocket::bind((from_ip, 0)).expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let me = sock.local_addr().expect("addr");
    let id = format!("{method}-{}-{}", me.port(), std::process::id());
    let uri = match uri_user {
        Some(u) => format!("sip:{u}@{srv}"),
        None => format!("sip:{srv}"),
    };
    let aor = format!("<sip:agent@{srv}>");
    let req = format!(
        "{method} {uri} SIP/2.0\r\n\
Via: SIP/2.0/UDP {me};branch=z9hG4bK-{id};rport\r\n\
From: {aor};tag=f-{id}\r\n\
To: {aor}\r\n\
Call-ID: {id}@carrier.test\r\n\
CSeq: 1 {method}\r\n\
Contact: <sip:agent@{me}>\r\n\
Max-Forwards: 70\r\n\
Content-Length: 0\r\n\r\n"
    );
    sock.send_to(req.as_bytes(), srv).expect("send");
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, _) = sock.recv_from(&mut buf).ok()?;
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let status = text.split("\r\n").next().unwrap_or_default().to_string();
        if !status.starts_with("SIP/2.0 1") {
            return Some(status);
        }
    }
}

#[test]
fn allow_from_refuses_strangers_with_403_and_serves_listed_carriers() {
    let srv = server(r#"allow_from = ["127.0.0.2/32"]"#);

    // From 127.0.0.1 (not listed): 403 before any other work, no CDR.
    let refused = Sipp::from_xml(&Uac::new().invite_rejected(403).xml()).run(srv.sip, "1000");
    refused.assert_ok("INVITE from outside sip.allow_from");
    let refused_id = call_id_from_trace(&refused.messages).expect("call id");
    assert_eq!(
        ask("127.0.0.1", srv.sip, "REGISTER", None).as_deref(),
        Some("SIP/2.0 403 Forbidden"),
        "REGISTER from outside sip.allow_from (no digest challenge)"
    );
    // OPTIONS pings are still answered.
    assert_eq!(
        ask("127.0.0.1", srv.sip, "OPTIONS", Some("1000")).as_deref(),
        Some("SIP/2.0 200 OK")
    );

    // From 127.0.0.2 (listed): the call is answered and recorded.
    let allowed = Sipp::from_xml(&Uac::new().invite().pause(300).bye().xml())
        .arg("-i")
        .arg("127.0.0.2")
        .run(srv.sip, "1000");
    allowed.assert_ok("INVITE from 127.0.0.2, listed in sip.allow_from");
    let allowed_id = call_id_from_trace(&allowed.messages).expect("call id");
    let cdr = srv.wait_cdr(&allowed_id, Duration::from_secs(5));
    assert!(cdr.answered_at.is_some(), "{cdr:?}");
    assert_eq!(cdr.dialed, "1000");
    // A REGISTER from a listed address reaches the registrar (its challenge).
    assert_eq!(
        ask("127.0.0.2", srv.sip, "REGISTER", None).as_deref(),
        Some("SIP/2.0 401 Unauthorized")
    );

    // The refused INVITE left nothing behind.
    assert!(
        srv.cdrs().iter().all(|c| c.call_id != refused_id),
        "a refused INVITE has a CDR: {:?}",
        srv.cdrs()
    );
    assert_eq!(
        srv.metric(r#"ringback_refusals_total{reason="not_allowed"}"#),
        2.0,
        "one INVITE and one REGISTER refused"
    );
    let log = srv.log();
    assert!(
        log.contains("request from outside sip.allow_from refused")
            && !log.contains("INVITE rejected"),
        "the refused INVITE got past the allow list:\n{log}"
    );
}

/// A UAC whose Request-URI user is `[service]` (SIPp's `-s`) and whose `To`
/// user is `to_user`, as a carrier delivering to a registered trunk sends.
fn carrier_call(to_user: &str) -> String {
    Uac::new()
        .invite()
        .pause(300)
        .bye()
        .xml()
        .replace("To: <sip:[service]@", &format!("To: <sip:{to_user}@"))
}

#[test]
fn carrier_did_in_to_selects_the_dialplan() {
    let srv = server("");
    for (ruri_user, to_user, dialed, plan) in [
        // The trunk user answers nothing; the DID in To does.
        ("trunkuser", "2000", "2000", "Acme Corp support direct line"),
        // Loosely: visual separators and the leading + do not matter.
        (
            "trunkuser",
            "+1-555-0100",
            "+15550100",
            "Acme Corp main line",
        ),
        // A Request-URI a plan answers wins over To.
        ("1000", "2000", "1000", "Acme Corp main line"),
        // Neither answered: the catch-all, with the Request-URI user as before.
        ("trunkuser", "7777", "trunkuser", "Acme Corp catch-all"),
    ] {
        let run = Sipp::from_xml(&carrier_call(to_user)).run(srv.sip, ruri_user);
        run.assert_ok(&format!("INVITE sip:{ruri_user}@… To: {to_user}"));
        let call_id = call_id_from_trace(&run.messages).expect("call id");
        let cdr = srv.wait_cdr(&call_id, Duration::from_secs(5));
        assert_eq!(
            (cdr.dialed.as_str(), cdr.dialplan.as_deref()),
            (dialed, Some(plan)),
            "Request-URI {ruri_user}, To {to_user}: {cdr:?}"
        );
        assert!(cdr.answered_at.is_some(), "{cdr:?}");
    }
    assert!(
        srv.log().contains("dialplan selected by DID"),
        "{}",
        srv.log()
    );
}
