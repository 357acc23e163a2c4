// Test code drives the core with the real clock as its base time (issue 12).
#![allow(clippy::disallowed_methods)]

use super::*;
use crate::message::{parse, request_to_bytes, to_bytes};

const PEER: &str = "192.0.2.10:5062";

fn peer() -> SocketAddr {
    PEER.parse().unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn parse_req(raw: &str) -> Request {
    match parse(raw.as_bytes()) {
        Ok(SipMessage::Request(r)) => r,
        other => panic!("bad test request: {other:?}"),
    }
}

/// An INVITE as a phone would send it to us.
fn incoming(method: &str, branch: &str, cseq: u32) -> Request {
    parse_req(&format!(
        "{method} sip:100@ivr.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5062;branch={branch};rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:alice@example.com>;tag=from1\r\n\
To: <sip:100@ivr.example.com>\r\n\
Call-ID: call-1@example.com\r\n\
CSeq: {cseq} {method}\r\n\
Contact: <sip:alice@192.0.2.10:5062>\r\n\
Content-Length: 0\r\n\r\n"
    ))
}

/// A request we send (our Via first).
fn outgoing(method: &str, branch: &str) -> Request {
    parse_req(&format!(
        "{method} sip:agent@198.51.100.20 SIP/2.0\r\n\
Via: SIP/2.0/UDP 203.0.113.1:5060;branch={branch};rport\r\n\
Max-Forwards: 70\r\n\
Route: <sip:proxy.example.com;lr>\r\n\
From: <sip:ivr@ivr.example.com>;tag=ours\r\n\
To: <sip:agent@example.com>\r\n\
Call-ID: out-1@ivr.example.com\r\n\
CSeq: 7 {method}\r\n\
Contact: <sip:ivr@203.0.113.1:5060>\r\n\
Content-Length: 0\r\n\r\n"
    ))
}

fn response_to(req: &Request, code: u16, to_tag: Option<&str>) -> Response {
    make_response(req, code, to_tag)
}

fn transmits(l: &mut TransactionLayer) -> Vec<Transmit> {
    std::iter::from_fn(|| l.poll_transmit()).collect()
}

fn events(l: &mut TransactionLayer) -> Vec<TuEvent> {
    std::iter::from_fn(|| l.poll_event()).collect()
}

fn text(t: &Transmit) -> String {
    String::from_utf8(to_bytes(&t.message)).unwrap()
}

fn first_line(t: &Transmit) -> String {
    text(t).lines().next().unwrap().to_string()
}

/// Run all timers until the layer is empty (or `limit` passes); returns (offset ms, first line)
/// of every transmit and (offset ms, event) of every event.
#[allow(clippy::type_complexity)]
fn run(
    l: &mut TransactionLayer,
    t0: Instant,
    limit: Duration,
) -> (Vec<(u128, String)>, Vec<(u128, TuEvent)>) {
    let mut tx = Vec::new();
    let mut ev = Vec::new();
    while let Some(at) = l.poll_timeout() {
        if at > t0 + limit {
            break;
        }
        l.handle_timeout(at);
        let off = (at - t0).as_millis();
        for t in transmits(l) {
            tx.push((off, first_line(&t)));
        }
        for e in events(l) {
            ev.push((off, e));
        }
    }
    (tx, ev)
}

fn key_of(ev: &TuEvent) -> &TransactionKey {
    match ev {
        TuEvent::Request { key, .. }
        | TuEvent::Response { key, .. }
        | TuEvent::Timeout { key }
        | TuEvent::Terminated { key } => key,
        TuEvent::Cancelled { invite, .. } => invite,
        other => panic!("no key in {other:?}"),
    }
}

#[test]
fn defaults_are_rfc_values() {
    let c = TimerConfig::default();
    assert_eq!((c.t1, c.t2, c.t4), (ms(500), ms(4000), ms(5000)));
}

#[test]
fn invite_client_udp_retransmits_and_times_out_with_timer_b() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let key = l.send_request(
        outgoing("INVITE", "z9hG4bKc1"),
        peer(),
        TransportKind::Udp,
        t0,
    );
    let first = transmits(&mut l);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].dest, peer());
    assert_eq!(
        first_line(&first[0]),
        "INVITE sip:agent@198.51.100.20 SIP/2.0"
    );
    assert_eq!(l.poll_timeout(), Some(t0 + ms(500)));
    let (tx, ev) = run(&mut l, t0, Duration::from_secs(100));
    let times: Vec<u128> = tx.iter().map(|t| t.0).collect();
    assert_eq!(times, vec![500, 1500, 3500, 7500, 15500, 31500]);
    assert_eq!(
        ev,
        vec![
            (32000, TuEvent::Timeout { key: key.clone() }),
            (32000, TuEvent::Terminated { key })
        ]
    );
    assert!(l.is_empty());
    assert_eq!(l.poll_timeout(), None);
}

#[test]
fn invite_client_tcp_never_retransmits() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let key = l.send_request(
        outgoing("INVITE", "z9hG4bKc2"),
        peer(),
        TransportKind::Tcp,
        t0,
    );
    assert_eq!(transmits(&mut l).len(), 1);
    let (tx, ev) = run(&mut l, t0, Duration::from_secs(100));
    assert!(tx.is_empty());
    assert_eq!(ev[0], (32000, TuEvent::Timeout { key }));
}

#[test]
fn non_invite_client_udp_schedule_caps_at_t2_and_timer_f() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let key = l.send_request(
        outgoing("OPTIONS", "z9hG4bKc3"),
        peer(),
        TransportKind::Udp,
        t0,
    );
    assert_eq!(transmits(&mut l).len(), 1);
    let (tx, ev) = run(&mut l, t0, Duration::from_secs(100));
    let times: Vec<u128> = tx.iter().map(|t| t.0).collect();
    assert_eq!(
        times,
        vec![500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    assert_eq!(ev[0], (32000, TuEvent::Timeout { key }));
}

#[test]
fn non_invite_client_proceeding_uses_t2_then_completes_with_timer_k() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let req = outgoing("BYE", "z9hG4bKc4");
    let key = l.send_request(req.clone(), peer(), TransportKind::Udp, t0);
    transmits(&mut l);
    l.handle_incoming(
        response_to(&req, 100, None).into(),
        peer(),
        TransportKind::Udp,
        t0 + ms(100),
    );
    assert!(
        matches!(&events(&mut l)[..], [TuEvent::Response { response, .. }] if response.status_code.code() == 100)
    );
    // E fires at 0.5 s (retransmit), then every T2.
    let (tx, _) = run(&mut l, t0, ms(9000));
    let times: Vec<u128> = tx.iter().map(|t| t.0).collect();
    assert_eq!(times, vec![500, 4500, 8500]);
    let ok = response_to(&req, 200, Some("agent1"));
    l.handle_incoming(ok.clone().into(), peer(), TransportKind::Udp, t0 + ms(9000));
    let ev = events(&mut l);
    assert!(
        matches!(&ev[..], [TuEvent::Response { response, .. }] if response.status_code.code() == 200)
    );
    // Retransmitted final is absorbed.
    l.handle_incoming(ok.into(), peer(), TransportKind::Udp, t0 + ms(9100));
    assert!(events(&mut l).is_empty());
    let (tx, ev) = run(&mut l, t0, Duration::from_secs(100));
    assert!(tx.is_empty());
    assert_eq!(ev, vec![(14000, TuEvent::Terminated { key })]);
}

#[test]
fn invite_client_non_2xx_is_acked_by_the_layer() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let req = outgoing("INVITE", "z9hG4bKc5");
    let key = l.send_request(req.clone(), peer(), TransportKind::Udp, t0);
    transmits(&mut l);
    l.handle_incoming(
        response_to(&req, 180, Some("a1")).into(),
        peer(),
        TransportKind::Udp,
        t0 + ms(200),
    );
    assert_eq!(events(&mut l).len(), 1);
    // No retransmission in Proceeding, and no Timer B.
    let (tx, ev) = run(&mut l, t0, Duration::from_secs(60));
    assert!(tx.is_empty() && ev.is_empty());
    let busy = response_to(&req, 486, Some("a1"));
    let t1 = t0 + Duration::from_secs(60);
    l.handle_incoming(busy.clone().into(), peer(), TransportKind::Udp, t1);
    let out = transmits(&mut l);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].dest, peer());
    assert_eq!(
        text(&out[0]),
        "ACK sip:agent@198.51.100.20 SIP/2.0\r\n\
Via: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKc5;rport\r\n\
Max-Forwards: 70\r\n\
Route: <sip:proxy.example.com;lr>\r\n\
From: <sip:ivr@ivr.example.com>;tag=ours\r\n\
Call-ID: out-1@ivr.example.com\r\n\
To: <sip:agent@example.com>;tag=a1\r\n\
CSeq: 7 ACK\r\n\
Content-Length: 0\r\n\r\n"
    );
    assert!(
        matches!(&events(&mut l)[..], [TuEvent::Response { response, .. }] if response.status_code.code() == 486)
    );
    // Retransmitted 486 → ACK again, not reported.
    l.handle_incoming(busy.into(), peer(), TransportKind::Udp, t1 + ms(500));
    assert_eq!(
        first_line(&transmits(&mut l)[0]),
        "ACK sip:agent@198.51.100.20 SIP/2.0"
    );
    assert!(events(&mut l).is_empty());
    // Timer D = 32 s.
    let (_, ev) = run(&mut l, t1, Duration::from_secs(100));
    assert_eq!(ev, vec![(32000, TuEvent::Terminated { key })]);
}

#[test]
fn invite_client_non_2xx_over_tcp_terminates_at_once() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let req = outgoing("INVITE", "z9hG4bKc6");
    let key = l.send_request(req.clone(), peer(), TransportKind::Tcp, t0);
    transmits(&mut l);
    l.handle_incoming(
        response_to(&req, 603, Some("x")).into(),
        peer(),
        TransportKind::Tcp,
        t0,
    );
    assert_eq!(transmits(&mut l).len(), 1);
    let ev = events(&mut l);
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[1], TuEvent::Terminated { key });
    assert!(l.is_empty());
}

#[test]
fn invite_client_2xx_retransmissions_reach_the_tu_until_timer_m() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let req = outgoing("INVITE", "z9hG4bKc7");
    let key = l.send_request(req.clone(), peer(), TransportKind::Udp, t0);
    transmits(&mut l);
    let ok = response_to(&req, 200, Some("a2"));
    l.handle_incoming(ok.clone().into(), peer(), TransportKind::Udp, t0 + ms(100));
    l.handle_incoming(ok.into(), peer(), TransportKind::Udp, t0 + ms(600));
    let ev = events(&mut l);
    assert_eq!(ev.len(), 2);
    assert!(ev.iter().all(|e| matches!(e, TuEvent::Response { .. })));
    // The layer does not ACK a 2xx itself.
    assert!(transmits(&mut l).is_empty());
    let (tx, ev) = run(&mut l, t0, Duration::from_secs(100));
    assert!(tx.is_empty());
    assert_eq!(ev, vec![(32100, TuEvent::Terminated { key })]);
}

#[test]
fn stray_response_is_dropped() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let req = outgoing("INVITE", "z9hG4bKnone");
    l.handle_incoming(
        response_to(&req, 200, Some("x")).into(),
        peer(),
        TransportKind::Udp,
        t0,
    );
    assert!(events(&mut l).is_empty() && transmits(&mut l).is_empty());
}

#[test]
fn invite_server_sends_100_after_200ms_and_resends_on_retransmission() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let src: SocketAddr = "203.0.113.50:40000".parse().unwrap();
    let inv = incoming("INVITE", "z9hG4bKs1", 1);
    l.handle_incoming(inv.clone().into(), src, TransportKind::Udp, t0);
    let ev = events(&mut l);
    let TuEvent::Request {
        key,
        request,
        source,
        transport,
    } = &ev[0]
    else {
        panic!("{ev:?}")
    };
    assert_eq!((*source, *transport), (src, TransportKind::Udp));
    // received/rport stamped for the TU.
    assert_eq!(
        crate::message::all_via_values(request)[0],
        "SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKs1;rport=40000;received=203.0.113.50"
    );
    assert!(transmits(&mut l).is_empty());
    assert_eq!(l.poll_timeout(), Some(t0 + ms(200)));
    l.handle_timeout(t0 + ms(200));
    let out = transmits(&mut l);
    assert_eq!(out.len(), 1);
    // rport → answer to the packet source.
    assert_eq!(out[0].dest, src);
    assert_eq!(first_line(&out[0]), "SIP/2.0 100 Trying");
    assert!(text(&out[0]).contains("To: <sip:100@ivr.example.com>\r\n"));
    // Retransmitted INVITE → the 100 again, no new event.
    l.handle_incoming(inv.clone().into(), src, TransportKind::Udp, t0 + ms(500));
    assert_eq!(first_line(&transmits(&mut l)[0]), "SIP/2.0 100 Trying");
    assert!(events(&mut l).is_empty());
    // TU rings: the 180 replaces the 100 as the one to repeat.
    l.respond(key, response_to(request, 180, Some("t1")), t0 + ms(600))
        .unwrap();
    assert_eq!(first_line(&transmits(&mut l)[0]), "SIP/2.0 180 Ringing");
    l.handle_incoming(inv.into(), src, TransportKind::Udp, t0 + ms(1500));
    assert_eq!(first_line(&transmits(&mut l)[0]), "SIP/2.0 180 Ringing");
}

#[test]
fn invite_server_answering_fast_sends_no_100() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let inv = incoming("INVITE", "z9hG4bKs2", 1);
    l.handle_incoming(inv.clone().into(), peer(), TransportKind::Udp, t0);
    let ev = events(&mut l);
    let key = key_of(&ev[0]).clone();
    l.respond(&key, response_to(&inv, 180, Some("t")), t0 + ms(10))
        .unwrap();
    assert_eq!(transmits(&mut l).len(), 1);
    l.handle_timeout(t0 + ms(300));
    assert!(transmits(&mut l).is_empty());
}

#[test]
fn invite_server_non_2xx_retransmits_with_timer_g_until_timer_h() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let inv = incoming("INVITE", "z9hG4bKs3", 1);
    l.handle_incoming(inv.clone().into(), peer(), TransportKind::Udp, t0);
    let key = key_of(&events(&mut l)[0]).clone();
    l.respond(&key, response_to(&inv, 486, Some("t")), t0)
        .unwrap();
    assert_eq!(first_line(&transmits(&mut l)[0]), "SIP/2.0 486 Busy Here");
    let (tx, ev) = run(&mut l, t0, Duration::from_secs(100));
    let times: Vec<u128> = tx.iter().map(|t| t.0).collect();
    assert_eq!(
        times,
        vec![500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    assert!(tx.iter().all(|t| t.1 == "SIP/2.0 486 Busy Here"));
    assert_eq!(ev, vec![(32000, TuEvent::Terminated { key })]);
}

#[test]
fn invite_server_absorbs_ack_for_non_2xx_then_timer_i() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let inv = incoming("INVITE", "z9hG4bKs4", 1);
    l.handle_incoming(inv.clone().into(), peer(), TransportKind::Udp, t0);
    let key = key_of(&events(&mut l)[0]).clone();
    l.respond(&key, response_to(&inv, 404, Some("t")), t0)
        .unwrap();
    transmits(&mut l);
    // Retransmitted INVITE in Completed → final again.
    l.handle_incoming(inv.clone().into(), peer(), TransportKind::Udp, t0 + ms(100));
    assert_eq!(first_line(&transmits(&mut l)[0]), "SIP/2.0 404 Not Found");
    let ack = incoming("ACK", "z9hG4bKs4", 1);
    l.handle_incoming(ack.clone().into(), peer(), TransportKind::Udp, t0 + ms(200));
    assert!(
        events(&mut l).is_empty(),
        "ACK for non-2xx must be absorbed"
    );
    // ACK retransmission in Confirmed also absorbed; no more G retransmissions.
    l.handle_incoming(ack.into(), peer(), TransportKind::Udp, t0 + ms(300));
    assert!(events(&mut l).is_empty());
    let (tx, ev) = run(&mut l, t0, Duration::from_secs(100));
    assert!(tx.is_empty());
    assert_eq!(ev, vec![(5200, TuEvent::Terminated { key })]);
}

#[test]
fn invite_server_2xx_is_retransmitted_until_ack() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let inv = incoming("INVITE", "z9hG4bKs5", 9);
    l.handle_incoming(inv.clone().into(), peer(), TransportKind::Udp, t0);
    let key = key_of(&events(&mut l)[0]).clone();
    l.respond(&key, response_to(&inv, 200, Some("t")), t0)
        .unwrap();
    assert_eq!(first_line(&transmits(&mut l)[0]), "SIP/2.0 200 OK");
    let (tx, ev) = run(&mut l, t0, ms(8000));
    assert_eq!(
        tx.iter().map(|t| t.0).collect::<Vec<_>>(),
        vec![500, 1500, 3500, 7500]
    );
    assert!(ev.is_empty());
    // INVITE retransmission is absorbed (nothing sent, no event).
    l.handle_incoming(inv.into(), peer(), TransportKind::Udp, t0 + ms(8000));
    assert!(transmits(&mut l).is_empty() && events(&mut l).is_empty());
    // The 2xx ACK has its own branch; matched by Call-ID + CSeq number.
    let ack = incoming("ACK", "z9hG4bKnewbranch", 9);
    l.handle_incoming(
        ack.clone().into(),
        peer(),
        TransportKind::Udp,
        t0 + ms(9000),
    );
    assert!(matches!(&events(&mut l)[..], [TuEvent::Ack { source, .. }] if *source == peer()));
    // A duplicate ACK is not reported twice.
    l.handle_incoming(ack.into(), peer(), TransportKind::Udp, t0 + ms(9100));
    assert!(events(&mut l).is_empty());
    let (tx, ev) = run(&mut l, t0, Duration::from_secs(100));
    assert!(tx.is_empty(), "no retransmission after ACK: {tx:?}");
    assert_eq!(ev, vec![(32000, TuEvent::Terminated { key })]);
}

#[test]
fn invite_server_2xx_without_ack_gives_ack_timeout() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let inv = incoming("INVITE", "z9hG4bKs6", 1);
    l.handle_incoming(inv.clone().into(), peer(), TransportKind::Udp, t0);
    let key = key_of(&events(&mut l)[0]).clone();
    l.respond(&key, response_to(&inv, 200, Some("t")), t0)
        .unwrap();
    transmits(&mut l);
    let (tx, ev) = run(&mut l, t0, Duration::from_secs(100));
    assert_eq!(
        tx.iter().map(|t| t.0).collect::<Vec<_>>(),
        vec![500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    assert_eq!(
        ev,
        vec![
            (
                32000,
                TuEvent::AckTimeout {
                    call_id: "call-1@example.com".into()
                }
            ),
            (32000, TuEvent::Terminated { key })
        ]
    );
    // An ACK after the transaction is gone is still reported.
    l.handle_incoming(
        incoming("ACK", "z9hG4bKlate", 1).into(),
        peer(),
        TransportKind::Udp,
        t0 + Duration::from_secs(40),
    );
    assert!(matches!(&events(&mut l)[..], [TuEvent::Ack { .. }]));
}

#[test]
fn invite_server_2xx_over_tcp_is_not_retransmitted() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let inv = incoming("INVITE", "z9hG4bKs7", 1);
    let src: SocketAddr = "198.51.100.7:33333".parse().unwrap();
    l.handle_incoming(inv.clone().into(), src, TransportKind::Tcp, t0);
    let key = key_of(&events(&mut l)[0]).clone();
    l.respond(&key, response_to(&inv, 200, Some("t")), t0)
        .unwrap();
    let out = transmits(&mut l);
    assert_eq!((out[0].dest, out[0].transport), (src, TransportKind::Tcp));
    let (tx, ev) = run(&mut l, t0, Duration::from_secs(100));
    assert!(tx.is_empty());
    assert!(matches!(ev[0], (32000, TuEvent::AckTimeout { .. })));
}

#[test]
fn cancel_of_pending_invite_is_answered_and_reported() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let inv = incoming("INVITE", "z9hG4bKs8", 1);
    l.handle_incoming(inv.clone().into(), peer(), TransportKind::Udp, t0);
    let key = key_of(&events(&mut l)[0]).clone();
    l.respond(&key, response_to(&inv, 180, Some("ringtag")), t0)
        .unwrap();
    transmits(&mut l);
    let cancel = incoming("CANCEL", "z9hG4bKs8", 1);
    l.handle_incoming(
        cancel.clone().into(),
        peer(),
        TransportKind::Udp,
        t0 + ms(50),
    );
    let out = transmits(&mut l);
    assert_eq!(out.len(), 1);
    let t = text(&out[0]);
    assert!(t.starts_with("SIP/2.0 200 OK\r\n"), "{t}");
    assert!(t.contains("CSeq: 1 CANCEL\r\n"));
    assert!(t.contains("To: <sip:100@ivr.example.com>;tag=ringtag\r\n"));
    let ev = events(&mut l);
    assert!(
        matches!(&ev[..], [TuEvent::Cancelled { invite, cancel: c }] if *invite == key && c.method == Method::Cancel),
        "{ev:?}"
    );
    // TU answers the INVITE 487.
    l.respond(&key, response_to(&inv, 487, Some("ringtag")), t0 + ms(60))
        .unwrap();
    assert_eq!(
        first_line(&transmits(&mut l)[0]),
        "SIP/2.0 487 Request Terminated"
    );
    // Retransmitted CANCEL → 200 again, no event.
    l.handle_incoming(cancel.into(), peer(), TransportKind::Udp, t0 + ms(550));
    let out = transmits(&mut l);
    assert_eq!(out.len(), 1);
    assert_eq!(first_line(&out[0]), "SIP/2.0 200 OK");
    assert!(events(&mut l).is_empty());
}

#[test]
fn cancel_after_final_is_answered_without_event_and_unmatched_goes_to_tu() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let inv = incoming("INVITE", "z9hG4bKs9", 1);
    l.handle_incoming(inv.clone().into(), peer(), TransportKind::Udp, t0);
    let key = key_of(&events(&mut l)[0]).clone();
    l.respond(&key, response_to(&inv, 200, Some("t")), t0)
        .unwrap();
    transmits(&mut l);
    l.handle_incoming(
        incoming("CANCEL", "z9hG4bKs9", 1).into(),
        peer(),
        TransportKind::Udp,
        t0 + ms(10),
    );
    assert_eq!(first_line(&transmits(&mut l)[0]), "SIP/2.0 200 OK");
    assert!(events(&mut l).is_empty());
    l.handle_incoming(
        incoming("CANCEL", "z9hG4bKunknown", 1).into(),
        peer(),
        TransportKind::Udp,
        t0 + ms(20),
    );
    assert!(transmits(&mut l).is_empty());
    assert!(
        matches!(&events(&mut l)[..], [TuEvent::Request { request, .. }] if request.method == Method::Cancel)
    );
}

#[test]
fn non_invite_server_absorbs_and_repeats_then_timer_j() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let req = incoming("OPTIONS", "z9hG4bKn1", 3);
    l.handle_incoming(req.clone().into(), peer(), TransportKind::Udp, t0);
    let key = key_of(&events(&mut l)[0]).clone();
    assert!(!key.is_server() || key.method() == Method::Options);
    // Retransmission before the TU answered: nothing sent, no new event. No automatic 100.
    l.handle_incoming(req.clone().into(), peer(), TransportKind::Udp, t0 + ms(500));
    assert!(transmits(&mut l).is_empty() && events(&mut l).is_empty());
    l.handle_timeout(t0 + ms(1000));
    assert!(transmits(&mut l).is_empty());
    l.respond(&key, response_to(&req, 200, Some("t")), t0 + ms(1000))
        .unwrap();
    assert_eq!(transmits(&mut l).len(), 1);
    l.handle_incoming(req.into(), peer(), TransportKind::Udp, t0 + ms(1500));
    assert_eq!(first_line(&transmits(&mut l)[0]), "SIP/2.0 200 OK");
    assert_eq!(
        l.respond(
            &key,
            response_to(&incoming("OPTIONS", "z9hG4bKn1", 3), 500, None),
            t0 + ms(1600)
        ),
        Err(TxError::FinalAlreadySent)
    );
    let (_, ev) = run(&mut l, t0, Duration::from_secs(100));
    assert_eq!(ev, vec![(33000, TuEvent::Terminated { key })]);
}

#[test]
fn non_invite_server_over_tcp_ends_with_the_final_response() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let req = incoming("BYE", "z9hG4bKn2", 4);
    l.handle_incoming(req.clone().into(), peer(), TransportKind::Tcp, t0);
    let key = key_of(&events(&mut l)[0]).clone();
    l.respond(&key, response_to(&req, 200, Some("t")), t0)
        .unwrap();
    assert_eq!(transmits(&mut l).len(), 1);
    assert_eq!(events(&mut l), vec![TuEvent::Terminated { key }]);
    assert!(l.is_empty());
}

#[test]
fn respond_errors() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let req = outgoing("OPTIONS", "z9hG4bKe1");
    let ckey = l.send_request(req.clone(), peer(), TransportKind::Udp, t0);
    assert_eq!(
        l.respond(&ckey, response_to(&req, 200, None), t0),
        Err(TxError::NotServer)
    );
    let inv = incoming("INVITE", "z9hG4bKe2", 1);
    l.handle_incoming(inv.clone().into(), peer(), TransportKind::Udp, t0);
    let skey = key_of(&events(&mut l)[0]).clone();
    l.respond(&skey, response_to(&inv, 603, Some("t")), t0)
        .unwrap();
    assert_eq!(
        l.respond(&skey, response_to(&inv, 200, Some("t")), t0),
        Err(TxError::FinalAlreadySent)
    );
    let gone = TransactionKey::for_server_request(&incoming("INVITE", "z9hG4bKnope", 1)).unwrap();
    assert_eq!(
        l.respond(&gone, response_to(&inv, 200, None), t0),
        Err(TxError::UnknownTransaction)
    );
}

#[test]
fn client_cancel_only_after_provisional_and_guarded_by_64_t1() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let req = outgoing("INVITE", "z9hG4bKcx");
    let key = l.send_request(req.clone(), peer(), TransportKind::Udp, t0);
    transmits(&mut l);
    assert_eq!(l.cancel(&key, t0), None, "no CANCEL before a provisional");
    l.handle_incoming(
        response_to(&req, 180, Some("a")).into(),
        peer(),
        TransportKind::Udp,
        t0 + ms(100),
    );
    events(&mut l);
    let ckey = l.cancel(&key, t0 + ms(200)).unwrap();
    assert_eq!(ckey.method(), Method::Cancel);
    assert_eq!(ckey.branch(), "z9hG4bKcx");
    assert_eq!(l.cancel(&key, t0 + ms(200)), None, "only one CANCEL");
    let out = transmits(&mut l);
    assert_eq!(
        text(&out[0]),
        "CANCEL sip:agent@198.51.100.20 SIP/2.0\r\n\
Via: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKcx;rport\r\n\
Max-Forwards: 70\r\n\
Route: <sip:proxy.example.com;lr>\r\n\
From: <sip:ivr@ivr.example.com>;tag=ours\r\n\
To: <sip:agent@example.com>\r\n\
Call-ID: out-1@ivr.example.com\r\n\
CSeq: 7 CANCEL\r\n\
Content-Length: 0\r\n\r\n"
    );
    // The CANCEL is answered; the INVITE never gets its 487: 64·T1 after the CANCEL it times out.
    let cancel_req = parse_req(&text(&out[0]));
    l.handle_incoming(
        response_to(&cancel_req, 200, Some("a")).into(),
        peer(),
        TransportKind::Udp,
        t0 + ms(300),
    );
    let ev = events(&mut l);
    assert!(matches!(&ev[..], [TuEvent::Response { key: k, .. }] if *k == ckey));
    let (_, ev) = run(&mut l, t0, Duration::from_secs(100));
    assert!(
        ev.contains(&(32200, TuEvent::Timeout { key: key.clone() })),
        "{ev:?}"
    );
    assert!(ev.contains(&(32200, TuEvent::Terminated { key })));
    assert!(ev.contains(&(5300, TuEvent::Terminated { key: ckey })));
}

#[test]
fn a_closed_connection_fails_only_its_own_waiting_client_transactions() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let other: SocketAddr = "192.0.2.9:5061".parse().expect("addr");
    let on_it = l.send_request(
        outgoing("INVITE", "z9hG4bKc1"),
        peer(),
        TransportKind::Tls,
        t0,
    );
    let same_peer_tcp = l.send_request(
        outgoing("OPTIONS", "z9hG4bKc2"),
        peer(),
        TransportKind::Tcp,
        t0,
    );
    let elsewhere = l.send_request(
        outgoing("INVITE", "z9hG4bKc3"),
        other,
        TransportKind::Tls,
        t0,
    );
    transmits(&mut l);
    l.connection_closed(peer(), TransportKind::Tls);
    assert_eq!(
        events(&mut l),
        vec![
            TuEvent::Timeout { key: on_it.clone() },
            TuEvent::Terminated { key: on_it }
        ]
    );
    assert!(l.contains(&same_peer_tcp), "another transport's connection");
    assert!(l.contains(&elsewhere), "another peer");
    // UDP has no connection to close.
    let udp = l.send_request(
        outgoing("INVITE", "z9hG4bKc4"),
        peer(),
        TransportKind::Udp,
        t0,
    );
    l.connection_closed(peer(), TransportKind::Udp);
    assert!(l.contains(&udp));
}

#[test]
fn transport_error_times_out_client_transaction() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let key = l.send_request(
        outgoing("INVITE", "z9hG4bKte"),
        peer(),
        TransportKind::Tcp,
        t0,
    );
    l.transport_error(&key);
    assert_eq!(
        events(&mut l),
        vec![
            TuEvent::Timeout { key: key.clone() },
            TuEvent::Terminated { key }
        ]
    );
    assert!(l.is_empty());
}

#[test]
fn ack_request_is_sent_statelessly_and_branch_is_ensured() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let mut ack = outgoing("ACK", "z9hG4bKa");
    l.send_request(ack.clone(), peer(), TransportKind::Udp, t0);
    assert_eq!(transmits(&mut l).len(), 1);
    assert!(l.is_empty());
    // Via without branch gets one.
    let mut headers: Vec<Header> = std::mem::take(&mut ack.headers).into();
    headers[0] = Header::Via(rsip::headers::Via::new("SIP/2.0/UDP 203.0.113.1"));
    ack.headers = headers.into();
    ack.method = Method::Options;
    let key = l.send_request(ack, peer(), TransportKind::Udp, t0);
    assert!(key.branch().starts_with("z9hG4bK"));
    let sent = transmits(&mut l);
    assert!(text(&sent[0]).contains(&format!("branch={}", key.branch())));
}

#[test]
fn many_transactions_are_cheap_and_independent() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    for i in 0..5000u32 {
        let req = outgoing("OPTIONS", &format!("z9hG4bKmany{i}"));
        l.send_request(req, peer(), TransportKind::Udp, t0 + ms(u64::from(i % 100)));
    }
    assert_eq!(l.len(), 5000);
    assert_eq!(transmits(&mut l).len(), 5000);
    l.handle_timeout(t0 + Duration::from_secs(40));
    // Each one retransmitted (late wake-up does not burst) then timed out.
    assert_eq!(l.len(), 0);
    let ev = events(&mut l);
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, TuEvent::Timeout { .. }))
            .count(),
        5000
    );
    assert_eq!(l.poll_timeout(), None);
}

#[test]
fn serialized_requests_from_the_layer_reparse() {
    let req = outgoing("INVITE", "z9hG4bKrt");
    let bytes = request_to_bytes(&req);
    assert!(parse(&bytes).is_ok());
}
