//! Outgoing legs against every response sequence real equipment sends: an
//! agent's phone (SIPp UAS) answers ringback's INVITE with `100 Trying`
//! first, `180`, `183` with and without SDP, a reliable `183` that needs a
//! PRACK, a retransmitted `200`, and a second `200` from another fork (which
//! must be ACKed and ended with BYE); a carrier challenges the callback's
//! INVITE with `401` before `100`/`180`/`200`.
//!
//! Each sequence ends with the caller bridged to the agent (both call
//! records complete), so a provisional mistaken for an answer, a missing
//! PRACK or ACK, or a leaked fork fails the scenario on the phone's side.

mod common;

use std::time::{Duration, Instant};

use common::scenario::{self, AgentPhone, Uac};
use common::{call_id_from_trace, free_udp_port, phone, poll_until, Server, ServerOpts, Sipp};

const PLAN: &str = r#"
[dialplan]
name = "seq"
numbers = ["100"]
start = "main"
operator = "operator"

[nodes.main]
type = "menu"
prompt = "digit-1"
options = { "1" = "bye" }
timeout = 10

[nodes.bye]
type = "hangup"
prompt = "goodbye"
"#;

fn server() -> Server {
    Server::start(ServerOpts {
        dialplans: vec![("seq.toml".into(), PLAN.into())],
        extra_config: r#"
[queues.operator]
ring_timeout_secs = 10
announce_every_secs = 0
wrapup_secs = 1

[agents.alice]
password = "alice-secret"
queues = ["operator"]
"#
        .into(),
        ..ServerOpts::default()
    })
}

fn register(srv: &Server, port: u16) {
    Sipp::from_xml(&scenario::register("alice", "alice-secret", 300, 200))
        .arg("-p")
        .arg(port)
        .run(srv.sip, "alice")
        .assert_ok("REGISTER");
    poll_until(
        Duration::from_secs(5),
        Duration::from_millis(50),
        || {
            srv.http_get("/api/v1/agents")
                .1
                .contains("\"available\"")
                .then_some(())
        },
        || format!("alice never became available\n{}", srv.log()),
    );
}

/// A caller zeroes out to the operator queue, where alice's phone answers
/// with `script`; the caller stays 3 s, then hangs up. Returns the phone's
/// SIPp trace.
fn call_alice(script: impl FnOnce(u16) -> AgentPhone) -> String {
    let srv = server();
    let alice_port = free_udp_port();
    register(&srv, alice_port);
    let rtp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let rtp_port = rtp.local_addr().expect("addr").port();
    let alice = phone(alice_port, &script(rtp_port).expect_bye(20_000)).spawn(srv.sip, "alice");
    let caller = Uac::new()
        .invite()
        .pause(300)
        .info_digit('0')
        .pause(3_000)
        .bye();
    let caller = Sipp::from_xml(&caller.xml()).run(srv.sip, "100");
    caller.assert_ok("caller");
    let alice = alice.wait();
    alice.assert_ok("alice's phone");
    let cdr = srv.wait_cdr(
        &call_id_from_trace(&caller.messages).expect("call id"),
        Duration::from_secs(5),
    );
    assert_eq!(cdr.disposition, "completed", "{}", srv.log());
    assert_eq!(cdr.queue.as_deref(), Some("operator"));
    let leg = poll_until(
        Duration::from_secs(5),
        Duration::from_millis(50),
        || srv.cdrs().into_iter().find(|c| c.leg == "agent"),
        || format!("no agent leg record\n{}", srv.log()),
    );
    assert!(leg.answered_at.is_some(), "the agent leg was answered");
    assert!(
        !srv.log().contains("unusable"),
        "a response was mistaken for an answer:\n{}",
        srv.log()
    );
    alice.messages
}

#[test]
fn trying_then_ringing_then_answer() {
    call_alice(|rtp| AgentPhone::new(20_000).trying().ring().answer(rtp));
}

#[test]
fn trying_alone_then_answer() {
    call_alice(|rtp| AgentPhone::new(20_000).trying().answer(rtp));
}

#[test]
fn several_provisionals_with_and_without_early_media() {
    call_alice(|rtp| {
        AgentPhone::new(20_000)
            .trying()
            .ring()
            .progress()
            .progress_with_sdp(rtp)
            .ring()
            .answer(rtp)
    });
}

#[test]
fn reliable_provisional_is_pracked() {
    let trace = call_alice(|rtp| {
        AgentPhone::new(20_000)
            .trying()
            .reliable_progress(rtp, 1)
            .reliable_progress(rtp, 2)
            .answer(rtp)
    });
    assert!(
        trace.contains("Supported: 100rel"),
        "the INVITE offers reliable provisionals:\n{trace}"
    );
}

#[test]
fn retransmitted_answer_is_acked_again() {
    let trace = call_alice(|rtp| AgentPhone::new(20_000).trying().ring().answer_twice(rtp));
    // SIPp answers the (identical) second ACK by sending its 200 once more,
    // so the two go back and forth until the call ends: what must hold is
    // that every 200 got its ACK.
    let acks = trace.matches("\nACK sip:").count();
    let oks = trace.matches("\nSIP/2.0 200 Reply").count();
    assert!(
        acks >= 2 && acks + 1 >= oks,
        "{oks} 200s, {acks} ACKs:\n{trace}"
    );
}

#[test]
fn second_answer_from_a_fork_is_acked_and_ended() {
    call_alice(|rtp| {
        AgentPhone::new(20_000)
            .trying()
            .ring()
            .answer_with_fork(rtp)
    });
}

/// The issue's end-to-end case on SIPp: a web callback reaches the agent,
/// then the customer through a trunk that challenges the INVITE with 401
/// and sends 100/180 before 200; the customer presses 1; `completed`.
#[test]
fn callback_through_a_challenging_trunk_completes() {
    let carrier_port = free_udp_port();
    let srv = common::callback_server(
        &format!(
            r#"[trunk]
address = "127.0.0.1:{carrier_port}"
domain = "carrier.example"
caller_id = "+15550100"
username = "acme"
password = "trunk-secret"
asserted_identity = true"#
        ),
        "retry_after_secs = 3\nmax_attempts = 2\naccept_timeout_secs = 8",
    );
    let alice_port = free_udp_port();
    register(&srv, alice_port);
    let rtp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let alice = phone(
        alice_port,
        &AgentPhone::new(30_000)
            .trying()
            .ring()
            .answer(rtp.local_addr().expect("addr").port())
            .expect_bye(30_000),
    )
    .spawn(srv.sip, "alice");
    let carrier = phone(
        carrier_port,
        &AgentPhone::new(30_000)
            .challenge("acme", "trunk-secret")
            .trying()
            .ring()
            .answer_own_media()
            .pause(1_500)
            .press('1')
            .pause(1_500)
            .hang_up(),
    )
    .spawn(srv.sip, "carrier");
    let id = request_callback(&srv);
    let carrier = carrier.wait();
    carrier.assert_ok("carrier (challenge, 100, 180, 200, press 1)");
    alice.wait().assert_ok("alice's phone");
    assert!(
        carrier
            .messages
            .contains("INVITE sip:+15551230001@carrier.example"),
        "{}",
        carrier.messages
    );
    assert!(
        carrier
            .messages
            .contains("P-Asserted-Identity: <sip:+15550100@carrier.example>"),
        "{}",
        carrier.messages
    );
    let cb = wait_completed(&srv, &id, 10);
    assert_eq!(cb["attempts"], 1, "{cb:#}");
}

/// A callback server with `trunks` (TOML) and alice registered from `alice_port`.
fn callback_server(trunks: &str, alice_port: u16) -> Server {
    let srv = common::callback_server(
        trunks,
        "retry_after_secs = 30\nmax_attempts = 1\naccept_timeout_secs = 8",
    );
    register(&srv, alice_port);
    srv
}

fn request_callback(srv: &Server) -> String {
    let (status, body) = srv.http_post(
        "/api/v1/callbacks",
        r#"{"number":"+15551230001","queue":"operator"}"#,
    );
    assert_eq!(status, 201, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    v["id"].as_str().expect("id").to_string()
}

/// Wait (`secs` at most) until callback `id` is `completed`; returns it.
fn wait_completed(srv: &Server, id: &str, secs: u64) -> serde_json::Value {
    let callback = || {
        let (_, body) = srv.http_get(&format!("/api/v1/callbacks/{id}"));
        serde_json::from_str::<serde_json::Value>(&body).expect("json")
    };
    poll_until(
        Duration::from_secs(secs),
        Duration::from_millis(100),
        || Some(callback()).filter(|cb| cb["state"] == "completed"),
        || {
            format!(
                "callback is {}, not completed\n{}",
                callback()["state"],
                srv.log()
            )
        },
    )
}

/// The first trunk fails with 503: the same attempt goes out through the
/// next trunk by priority, and the customer is reached there.
#[test]
fn failing_trunk_fails_over_to_the_next() {
    let (down_port, up_port, alice_port) = (free_udp_port(), free_udp_port(), free_udp_port());
    let srv = callback_server(
        &format!(
            r#"
[trunk]
address = "127.0.0.1:{down_port}"
caller_id = "+15550100"

[trunks.backup]
address = "127.0.0.1:{up_port}"
priority = 5
caller_id = "+15550100"
"#
        ),
        alice_port,
    );
    let rtp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let alice = phone(
        alice_port,
        &AgentPhone::new(30_000)
            .trying()
            .answer(rtp.local_addr().expect("addr").port())
            .expect_bye(30_000),
    )
    .spawn(srv.sip, "alice");
    let down = phone(down_port, &AgentPhone::new(30_000).trying().refuse(503)).spawn(srv.sip, "x");
    let up = phone(
        up_port,
        &AgentPhone::new(30_000)
            .trying()
            .ring()
            .answer_own_media()
            .pause(1_500)
            .press('1')
            .pause(1_000)
            .hang_up(),
    )
    .spawn(srv.sip, "y");
    let id = request_callback(&srv);
    down.wait().assert_ok("first trunk: 503");
    up.wait().assert_ok("backup trunk: answered, 1 pressed");
    alice.wait().assert_ok("alice's phone");
    wait_completed(&srv, &id, 15);
}

/// A carrier's early media (183 with SDP, here an RFC 4733 `5` it plays
/// while the customer's phone rings) reaches the agent waiting on the line.
#[test]
fn carrier_early_media_reaches_the_waiting_agent() {
    let (carrier_port, alice_port) = (free_udp_port(), free_udp_port());
    let srv = callback_server(
        &format!("[trunk]\naddress = \"127.0.0.1:{carrier_port}\"\ncaller_id = \"+15550100\"\n"),
        alice_port,
    );
    let rtp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    rtp.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let alice = phone(
        alice_port,
        &AgentPhone::new(30_000)
            .trying()
            .answer(rtp.local_addr().expect("addr").port())
            .expect_bye(30_000),
    )
    .spawn(srv.sip, "alice");
    let mut early = AgentPhone::new(30_000).trying().ring();
    early = early.progress_with_sdp(0);
    let carrier_script = early
        .press('5')
        .pause(600)
        .answer_own_media()
        .pause(1_500)
        .press('1')
        .pause(1_000)
        .hang_up()
        .xml()
        .replace("m=audio 0 ", "m=audio [media_port] ");
    let carrier = Sipp::from_xml(&carrier_script)
        .arg("-p")
        .arg(carrier_port)
        .spawn(srv.sip, "carrier");
    let id = request_callback(&srv);
    // Watch alice's media for the carrier's `5` (telephone-event 5).
    let mut heard_five = false;
    let until = Instant::now() + Duration::from_secs(12);
    let mut buf = [0u8; 2048];
    while Instant::now() < until && !heard_five {
        if let Ok((n, _)) = rtp.recv_from(&mut buf) {
            if let Ok(h) = ringback_media::rtp::parse(&buf[..n]) {
                heard_five = h.pt == 101 && h.payload_len >= 4 && buf[h.payload_offset] == 5;
            }
        }
    }
    carrier.wait().assert_ok("carrier with early media");
    alice.wait().assert_ok("alice's phone");
    assert!(
        heard_five,
        "the agent heard the carrier's early media\n{}",
        srv.log()
    );
    wait_completed(&srv, &id, 15);
}

/// The agent hangs up a callback; ringback's BYE to the carrier is
/// challenged (401) and sent again with credentials that verify.
#[test]
fn carrier_challenging_our_bye_gets_credentials() {
    let (carrier_port, alice_port) = (free_udp_port(), free_udp_port());
    let srv = callback_server(
        &format!(
            "[trunk]\naddress = \"127.0.0.1:{carrier_port}\"\ncaller_id = \"+15550100\"\nusername = \"acme\"\npassword = \"trunk-secret\"\n"
        ),
        alice_port,
    );
    let rtp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let alice = phone(
        alice_port,
        &AgentPhone::new(30_000)
            .trying()
            .answer(rtp.local_addr().expect("addr").port())
            // The whisper (queue, number, how long ago) plays first, then
            // the customer is dialed, answers and presses 1.
            .pause(14_000)
            .hang_up(),
    )
    .spawn(srv.sip, "alice");
    let carrier = phone(
        carrier_port,
        &AgentPhone::new(30_000)
            .challenge("acme", "trunk-secret")
            .trying()
            .answer_own_media()
            .pause(1_500)
            .press('1')
            .expect_challenged_bye("acme", "trunk-secret", 30_000),
    )
    .spawn(srv.sip, "carrier");
    let id = request_callback(&srv);
    alice.wait().assert_ok("alice hangs up");
    carrier
        .wait()
        .assert_ok("carrier: challenged INVITE and BYE, both answered");
    wait_completed(&srv, &id, 15);
}
