//! Interop: a real SIPp caller against a real `ringback serve`, over real
//! UDP/TCP on 127.0.0.1, with outcomes read from the real SQLite store.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::scenario::{self, Uac};
use common::{call_id_from_trace, Server, ServerOpts, Sipp};

/// A three-level menu with a hang-up branch; no business hours so the
/// result does not depend on the time of day.
const MENUS: &str = r#"
[dialplan]
name = "interop"
numbers = ["100"]
start = "main"
operator = "operator"

[nodes.main]
type = "menu"
prompt = "digit-1"
options = { "1" = "sub", "2" = "bye", "3" = "account", "5" = "sales", "7" = "cb" }
timeout = 10

[nodes.cb]
type = "callback"
queue = "support"
confirm_prompt = "callback-confirm"

[nodes.sales]
type = "transfer"
target = "sip:sales@127.0.0.1:5999"
prompt = "transferring"

[nodes.sub]
type = "menu"
prompt = "digit-2"
options = { "1" = "deep" }
timeout = 10

[nodes.deep]
type = "menu"
prompt = "digit-3"
options = { "1" = "bye" }
timeout = 10

[nodes.account]
type = "gather"
prompt = "digit-4"
var = "account"
min_digits = 3
max_digits = 3
timeout = 10
next = "bye"

[nodes.bye]
type = "hangup"
prompt = "goodbye"
"#;

fn menus_server(opts: ServerOpts) -> Server {
    Server::start(ServerOpts {
        dialplans: vec![("interop.toml".into(), MENUS.into())],
        ..opts
    })
}

#[test]
fn sip_info_digits_walk_three_menus_and_zero_out() {
    let srv = menus_server(ServerOpts::default());
    let uac = Uac::new()
        .invite()
        .pause(300)
        .info_digit('1')
        .pause(200)
        .info_digit_plain('1')
        .pause(200)
        .info_digit('0')
        .pause(1500)
        .bye();
    let run = Sipp::from_xml(&uac.xml()).run(srv.sip, "100");
    run.assert_ok("INFO digits");
    let call_id = call_id_from_trace(&run.messages).expect("call id");
    let cdr = srv.wait_cdr(&call_id, Duration::from_secs(5));
    assert_eq!(cdr.path, "main > sub > deep");
    assert_eq!(cdr.digits, "110");
    assert_eq!(cdr.queue.as_deref(), Some("operator"), "{cdr:?}");
    assert_eq!(
        cdr.disposition, "abandoned",
        "caller hung up while queued: {cdr:?}"
    );
    assert_eq!(cdr.caller, scenario::CALLER);
    assert_eq!(cdr.dialed, "100");
    assert!(cdr.answered_at.is_some());
}

#[test]
fn rfc4733_digits_walk_menus() {
    let srv = menus_server(ServerOpts::default());
    let uac = Uac::new()
        .invite()
        .pause(300)
        .rfc4733_digit('1')
        .rfc4733_digit('1')
        .rfc4733_digit('0')
        .pause(1000)
        .bye();
    let run = Sipp::from_xml(&uac.xml()).run(srv.sip, "100");
    run.assert_ok("RFC 4733 digits");
    let call_id = call_id_from_trace(&run.messages).expect("call id");
    let cdr = srv.wait_cdr(&call_id, Duration::from_secs(5));
    // Each pcap carries three redundant end packets: one digit each.
    assert_eq!(cdr.digits, "110", "{cdr:?}");
    assert_eq!(cdr.path, "main > sub > deep");
    assert_eq!(cdr.queue.as_deref(), Some("operator"));
}

#[test]
fn gather_over_tcp_then_server_hangs_up() {
    let srv = menus_server(ServerOpts::default());
    let uac = Uac::new()
        .invite()
        .pause(300)
        .info_digit('3')
        .pause(100)
        .info_digit('4')
        .info_digit('2')
        .info_digit('7')
        .expect_bye(15_000);
    let run = Sipp::from_xml(&uac.xml())
        .arg("-t")
        .arg("t1")
        .run(srv.sip, "100");
    run.assert_ok("gather over TCP");
    let call_id = call_id_from_trace(&run.messages).expect("call id");
    let cdr = srv.wait_cdr(&call_id, Duration::from_secs(5));
    assert_eq!(cdr.path, "main > account > bye");
    assert_eq!(cdr.digits, "3427");
    assert!(cdr.vars.contains(r#""account":"427""#), "{cdr:?}");
    assert_eq!(cdr.disposition, "completed");
    assert_eq!(cdr.hangup_by.as_deref(), Some("ringback"));
}

#[test]
fn cancel_before_answer_gets_487() {
    let srv = menus_server(ServerOpts {
        answer_delay_ms: 5_000,
        ..ServerOpts::default()
    });
    let run = Sipp::from_xml(&Uac::new().invite_then_cancel().xml()).run(srv.sip, "100");
    run.assert_ok("CANCEL");
    let call_id = call_id_from_trace(&run.messages).expect("call id");
    let cdr = srv.wait_cdr(&call_id, Duration::from_secs(5));
    assert_eq!(cdr.disposition, "cancelled");
    assert_eq!(cdr.sip_code, Some(487));
    assert!(cdr.answered_at.is_none());
}

#[test]
fn options_is_answered_over_udp_and_tcp() {
    let srv = menus_server(ServerOpts::default());
    Sipp::from_xml(&scenario::options())
        .run(srv.sip, "100")
        .assert_ok("OPTIONS udp");
    Sipp::from_xml(&scenario::options())
        .arg("-t")
        .arg("t1")
        .run(srv.sip, "100")
        .assert_ok("OPTIONS tcp");
}

#[test]
fn unknown_number_is_404_and_no_codec_is_488() {
    let srv = menus_server(ServerOpts::default());
    Sipp::from_xml(&Uac::new().invite_rejected(404).xml())
        .run(srv.sip, "999")
        .assert_ok("404");
    Sipp::from_xml(&Uac::new().codecs("g722,opus").invite_rejected(488).xml())
        .run(srv.sip, "100")
        .assert_ok("488");
}

/// RTP as the caller's phone sees it: packets received on a real socket.
struct RtpCapture {
    arrivals: Vec<(Instant, u16, u32, u8, bool, Vec<u8>)>,
}

fn capture_rtp(sock: &UdpSocket, dur: Duration) -> RtpCapture {
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let mut arrivals = Vec::new();
    let until = Instant::now() + dur;
    let mut buf = [0u8; 2048];
    while Instant::now() < until {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            let now = Instant::now();
            if let Ok(h) = ringback_media::rtp::parse(&buf[..n]) {
                let payload = buf[h.payload_offset..h.payload_offset + h.payload_len].to_vec();
                arrivals.push((now, h.seq, h.ts, h.pt, h.marker, payload));
            }
        }
    }
    RtpCapture { arrivals }
}

#[test]
fn prompt_rtp_is_paced_at_20ms_with_correct_headers() {
    let srv = menus_server(ServerOpts::default());
    let rtp = UdpSocket::bind("127.0.0.1:0").expect("bind rtp");
    let port = rtp.local_addr().expect("addr").port();
    let uac = Uac::new()
        .codecs("pcma")
        .media_port(port)
        .invite()
        .pause(3500)
        .bye();
    let sipp = Sipp::from_xml(&uac.xml()).spawn(srv.sip, "100");
    let cap = capture_rtp(&rtp, Duration::from_millis(3000));
    sipp.wait().assert_ok("RTP timing call");
    let a = &cap.arrivals;
    // Skip the first packets (call set-up) and measure 2 s in the middle.
    assert!(a.len() > 100, "only {} RTP packets in 3 s", a.len());
    let window: Vec<_> = a.iter().skip(10).take(100).collect();
    for w in window.windows(2) {
        assert_eq!(w[1].1, w[0].1.wrapping_add(1), "sequence gap");
        assert_eq!(w[1].2, w[0].2.wrapping_add(160), "timestamp step");
        assert_eq!(w[1].3, 8, "PCMA payload type");
        assert_eq!(w[1].5.len(), 160, "20 ms of G.711");
    }
    let mut gaps: Vec<f64> = window
        .windows(2)
        .map(|w| w[1].0.duration_since(w[0].0).as_secs_f64() * 1000.0)
        .collect();
    gaps.sort_by(|x, y| x.total_cmp(y));
    let p50 = gaps[gaps.len() / 2];
    let jitter_p99 = gaps.iter().map(|g| (g - 20.0).abs()).fold(0.0f64, f64::max);
    let span = window
        .last()
        .expect("last")
        .0
        .duration_since(window[0].0)
        .as_secs_f64();
    let rate = (window.len() - 1) as f64 / span;
    eprintln!(
        "RTP: p50 interval {p50:.2} ms, max |interval-20| {jitter_p99:.2} ms, rate {rate:.1} pps"
    );
    assert!((19.0..21.0).contains(&p50), "median interval {p50} ms");
    assert!((48.0..52.0).contains(&rate), "packet rate {rate}/s");
    // The first packet of the prompt carries the marker bit.
    assert!(
        a.iter().take(5).any(|p| p.4),
        "marker on the first packet of the prompt"
    );
    // It is a real prompt, not silence: decode A-law and look for energy.
    let energy: f64 = a
        .iter()
        .take(50)
        .flat_map(|p| p.5.iter())
        .map(|&b| {
            let s = f64::from(ringback_media::g711::alaw_decode(b));
            s * s
        })
        .sum::<f64>()
        / (50.0 * 160.0);
    assert!(
        energy.sqrt() > 300.0,
        "prompt audio RMS {} looks like silence",
        energy.sqrt()
    );
}

#[test]
fn malformed_requests_get_400_and_unknown_dialogs_481() {
    let srv = menus_server(ServerOpts::default());
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let me = sock.local_addr().expect("addr");
    let bad = format!(
        "OPTIONS sip:100@{0} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-bad1\r\nFrom: <sip:a@{me}>;tag=1\r\nTo: <sip:100@{0}>\r\nCall-ID: bad-cseq@test\r\nCSeq: banana OPTIONS\r\nContent-Length: 0\r\n\r\n",
        srv.sip
    );
    sock.send_to(bad.as_bytes(), srv.sip).expect("send");
    let mut buf = [0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).expect("a 400 for a bad CSeq");
    let resp = String::from_utf8_lossy(&buf[..n]);
    assert!(resp.starts_with("SIP/2.0 400"), "{resp}");
    assert!(
        resp.contains("bad-cseq@test"),
        "400 must echo the Call-ID: {resp}"
    );

    let bye = format!(
        "BYE sip:100@{0} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-bye1\r\nFrom: <sip:a@{me}>;tag=1\r\nTo: <sip:100@{0}>;tag=nope\r\nCall-ID: no-such-call@test\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        srv.sip
    );
    sock.send_to(bye.as_bytes(), srv.sip).expect("send");
    let (n, _) = sock.recv_from(&mut buf).expect("a 481");
    let resp = String::from_utf8_lossy(&buf[..n]);
    assert!(resp.starts_with("SIP/2.0 481"), "{resp}");

    // Garbage that is not SIP at all is dropped, and the server still works.
    sock.send_to(&[0xff, 0x00, 0x13, 0x37], srv.sip)
        .expect("send");
    Sipp::from_xml(&scenario::options())
        .run(srv.sip, "100")
        .assert_ok("OPTIONS after garbage");
}

#[test]
fn transfer_by_refer_then_hang_up_on_success() {
    let srv = menus_server(ServerOpts::default());
    let uac = Uac::new()
        .invite()
        .pause(200)
        .info_digit('5')
        .expect_refer(202, 10_000)
        .pause(100)
        .notify_sipfrag("SIP/2.0 200 OK")
        .expect_bye(5_000);
    let run = Sipp::from_xml(&uac.xml()).run(srv.sip, "100");
    run.assert_ok("REFER accepted");
    assert!(
        run.messages
            .contains("Refer-To: <sip:sales@127.0.0.1:5999>"),
        "REFER must name the target:\n{}",
        run.messages
    );
    let cdr = srv.wait_cdr(
        &call_id_from_trace(&run.messages).expect("id"),
        Duration::from_secs(5),
    );
    assert_eq!(cdr.disposition, "transferred");
    assert_eq!(cdr.path, "main > sales");
}

#[test]
fn refused_transfer_falls_back_to_the_operator() {
    let srv = menus_server(ServerOpts::default());
    let uac = Uac::new()
        .invite()
        .pause(200)
        .info_digit('5')
        .expect_refer(603, 10_000)
        .pause(1_500)
        .bye();
    let run = Sipp::from_xml(&uac.xml()).run(srv.sip, "100");
    run.assert_ok("REFER refused");
    let cdr = srv.wait_cdr(
        &call_id_from_trace(&run.messages).expect("id"),
        Duration::from_secs(5),
    );
    assert_eq!(
        cdr.queue.as_deref(),
        Some("operator"),
        "transfer failure must reach a human: {cdr:?}"
    );
    assert_eq!(cdr.disposition, "abandoned");
}

#[test]
fn metrics_count_calls_digits_and_sip() {
    let srv = menus_server(ServerOpts::default());
    let (status, body) = srv.http_get("/healthz");
    assert_eq!((status, body.trim()), (200, "ok"));
    assert_eq!(srv.metric("ringback_calls_answered_total"), 0.0);
    let uac = Uac::new()
        .invite()
        .pause(200)
        .info_digit('1')
        .rfc4733_digit('1')
        .pause(300)
        .bye();
    Sipp::from_xml(&uac.xml())
        .run(srv.sip, "100")
        .assert_ok("metrics call");
    assert_eq!(srv.metric("ringback_calls_answered_total"), 1.0);
    assert_eq!(srv.metric("ringback_dtmf_sip_info_total"), 1.0);
    assert_eq!(srv.metric("ringback_dtmf_rfc4733_total"), 1.0);
    assert!(
        srv.metric("ringback_sip_requests_in_total") >= 4.0,
        "INVITE, ACK, INFO, BYE"
    );
    assert!(srv.metric("ringback_rtp_packets_sent_total") > 10.0);
    assert_eq!(srv.metric("ringback_calls_active"), 0.0);
    assert_eq!(
        srv.metric(r#"ringback_sip_messages_total{direction="in",method="INVITE"}"#),
        1.0
    );
    assert_eq!(
        srv.metric(r#"ringback_sip_messages_total{direction="in",method="BYE"}"#),
        1.0
    );
    assert!(
        srv.metric(r#"ringback_sip_messages_total{direction="out",method="INVITE",status="200"}"#)
            >= 1.0
    );
    assert_eq!(
        srv.metric(r#"ringback_calls_total{disposition="completed"}"#),
        1.0
    );
    assert_eq!(
        srv.metric(r#"ringback_queue_waiting{queue="operator"}"#),
        0.0
    );
    assert_eq!(srv.metric(r#"ringback_agents{state="available"}"#), 0.0);
}

/// A `callback` node confirms only what it stored: the caller hears the
/// confirmation and is hung up on, and the request is in the store.
#[test]
fn callback_node_confirms_only_after_storing() {
    let srv = menus_server(ServerOpts::default());
    let uac = Uac::new()
        .invite()
        .pause(200)
        .info_digit('7')
        .expect_bye(20_000);
    let run = Sipp::from_xml(&uac.xml()).run(srv.sip, "100");
    run.assert_ok("callback node: confirmation, then BYE");
    let cdr = srv.wait_cdr(
        &call_id_from_trace(&run.messages).expect("id"),
        Duration::from_secs(5),
    );
    assert_eq!(cdr.disposition, "callback");
    assert_eq!(cdr.hangup_by.as_deref(), Some("ringback"));
    let (status, body) = srv.http_get("/api/v1/callbacks?queue=support");
    assert_eq!(status, 200);
    assert!(
        body.contains(r#""number":"+15550123""#) && body.contains(r#""state":"scheduled""#),
        "{body}"
    );
}

/// A number the toll-fraud guard refuses gets no confirmation: the caller
/// hears that a callback is not possible and keeps waiting in the queue.
#[test]
fn refused_callback_is_never_confirmed() {
    let srv = menus_server(ServerOpts::default());
    let uac = Uac::new()
        .calling_as("+19005550123")
        .invite()
        .pause(200)
        .info_digit('7')
        .pause(8_000)
        .bye();
    let run = Sipp::from_xml(&uac.xml()).run(srv.sip, "100");
    run.assert_ok("premium-rate caller: no BYE from ringback, still queued");
    let cdr = srv.wait_cdr(
        &call_id_from_trace(&run.messages).expect("id"),
        Duration::from_secs(5),
    );
    assert_eq!(cdr.queue.as_deref(), Some("support"));
    assert_eq!(cdr.disposition, "abandoned");
    let (_, body) = srv.http_get("/api/v1/callbacks");
    assert!(!body.contains("+19005550123"), "nothing stored: {body}");
}
