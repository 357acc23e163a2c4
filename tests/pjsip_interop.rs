//! Interop with a real SIP stack: PJSIP (pjsua2, `pip install
//! pjsua2-python`) driven by `tests/peers/pjsua_peer.py` plays the caller,
//! the agent's phone and the callback customer. Audio is checked by
//! content: each side plays its own tone and the other side must hear it
//! (Goertzel, `tests/peers/audio.py`), never by packet counts.
//!
//! Every test starts its own ringback and its own PJSIP processes on free
//! ports; the peers are killed by PID when a test ends. A missing pjsua2
//! fails the tests (it does not skip them).

mod common;

use std::time::Duration;

use common::peer::{
    agent_server, agent_state, args, assert_callback_call_completed, assert_callback_completed,
    assert_callback_invite, assert_no_active_calls, assert_queued_call_invite,
    assert_support_menu_cdr, assert_trunk_invite, callback_server_to, finish_queued_call,
    request_callback, Bye, PyPeer, AGENT_TONE, CALLER_TONE, CUSTOMER, PJSUA,
};
use common::{free_udp_port, poll_until, Server};

// ---------------------------------------------------------------------------------------------
// A PJSIP peer process.
// ---------------------------------------------------------------------------------------------

/// A PJSIP caller dialing `number` with these extra arguments.
fn caller(srv: &Server, transport: &str, number: &str, extra: &[&str]) -> PyPeer {
    PJSUA.caller(srv, transport, number, extra)
}

/// The caller's Call-ID, as PJSIP reported it.
fn call_id(peer: &PyPeer, srv: &Server) -> String {
    peer.expect_where(
        "call_state",
        |e| e["call_id"].as_str().is_some_and(|s| !s.is_empty()),
        Duration::from_secs(10),
        srv,
    )["call_id"]
        .as_str()
        .expect("call_id")
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// 1. IVR: a PJSIP caller presses 1 in the support menu (number 2000).
// ---------------------------------------------------------------------------------------------

fn ivr_menu(transport: &str, method: &str) {
    let srv = Server::start_demo();
    let mut c = caller(
        &srv,
        transport,
        "2000",
        &[
            "--dtmf-method",
            method,
            "--dtmf",
            "1@1.5",
            "--hangup-after",
            "5",
            "--timeout",
            "25",
        ],
    );
    let id = call_id(&c, &srv);
    c.expect("media_active", Duration::from_secs(10), &srv);
    c.expect("audio_heard", Duration::from_secs(10), &srv);
    c.expect("dtmf_sent", Duration::from_secs(10), &srv);
    c.finish(&srv);
    assert_support_menu_cdr(&srv, &id);
    assert_no_active_calls(&srv);
}

#[test]
fn pjsip_ivr_rfc4733_dtmf_udp() {
    ivr_menu("udp", "rfc2833");
}

#[test]
fn pjsip_ivr_rfc4733_dtmf_tcp() {
    ivr_menu("tcp", "rfc2833");
}

#[test]
fn pjsip_ivr_sip_info_dtmf_udp() {
    ivr_menu("udp", "info");
}

#[test]
fn pjsip_ivr_sip_info_dtmf_tcp() {
    ivr_menu("tcp", "info");
}

/// PJSIP offering SRTP as optional (RTP/AVP with `a=crypto` lines, "best
/// effort" SDES): under `sip.srtp = "optional"` (the default) ringback
/// answers with its own key and the call is SRTP; under `"off"` it answers
/// plain RTP. Either way the call works, digits included.
fn optional_srtp_offer(server_policy: &str, expect_srtp: bool) {
    let srv = Server::start(common::ServerOpts {
        sip_extra: format!("srtp = \"{server_policy}\"\n"),
        ..common::ServerOpts::default()
    });
    let mut c = caller(
        &srv,
        "udp",
        "2000",
        &[
            "--srtp",
            "optional",
            "--dtmf",
            "1@1.5",
            "--hangup-after",
            "4",
            "--timeout",
            "20",
        ],
    );
    let id = call_id(&c, &srv);
    let media = c.expect("media_active", Duration::from_secs(10), &srv);
    assert_eq!(media["codec"], "PCMU", "{media}");
    c.expect("audio_heard", Duration::from_secs(10), &srv);
    c.finish(&srv);
    let cdr = srv.wait_cdr(&id, Duration::from_secs(10));
    assert_eq!(cdr.digits, "1", "RFC 4733 digits work: {cdr:?}");
    assert_eq!(cdr.hangup_by.as_deref(), Some("caller"), "{cdr:?}");
    // ringback's 200 OK (in PJSIP's log) carries a key or not.
    let log = c.log();
    let answer = log
        .split("SIP/2.0 200 OK")
        .skip(1)
        .find(|m| m.contains("CSeq:") && m.contains("INVITE") && m.contains("m=audio"))
        .unwrap_or_else(|| panic!("no 200 OK with SDP in PJSIP's log:\n{}", c.diagnostics()));
    let answer = answer.split("--end msg--").next().unwrap_or(answer);
    assert_eq!(
        answer.contains("a=crypto:"),
        expect_srtp,
        "sip.srtp = {server_policy}: the answer\n{answer}"
    );
}

#[test]
fn pjsip_caller_offering_optional_srtp_gets_srtp_udp() {
    optional_srtp_offer("optional", true);
}

#[test]
fn pjsip_caller_offering_optional_srtp_gets_plain_rtp_when_srtp_is_off_udp() {
    optional_srtp_offer("off", false);
}

/// PJSIP with session timers required (`Require: timer`, RFC 4028): the
/// server must either support them (`Session-Expires` in its 200 OK) or
/// refuse the INVITE with 420 (`Unsupported: timer`). A plain 200 OK makes
/// PJSIP tear the call down at once (BYE with `Reason: SIP;cause=421`).
#[test]
fn pjsip_caller_requiring_session_timers_udp() {
    let srv = Server::start_demo();
    let mut c = caller(
        &srv,
        "udp",
        "2000",
        &[
            "--timer",
            "required",
            "--hangup-after",
            "3",
            "--timeout",
            "20",
        ],
    );
    c.finish(&srv);
    let ended = c.expect_where(
        "call_state",
        |e| e["state"] == "DISCONNECTED",
        Duration::from_secs(1),
        &srv,
    );
    let refused_cleanly = ended["code"] == 420;
    let worked = c
        .events()
        .iter()
        .any(|e| e["event"] == "hangup" && e["why"] == "after");
    assert!(
        refused_cleanly || worked,
        "a caller requiring session timers got neither a 420 nor a working call: {ended}\n{}\nringback log:\n{}",
        c.diagnostics(),
        srv.log()
    );
}

// ---------------------------------------------------------------------------------------------
// 2. A PJSIP agent phone takes a queued PJSIP caller.
// ---------------------------------------------------------------------------------------------

/// A PJSIP agent `alice` registered (digest) over `transport`.
fn register_alice(srv: &Server, transport: &str, extra: &[&str]) -> PyPeer {
    PJSUA.registered_alice(srv, transport, extra)
}

fn agent_takes_queued_call(transport: &str, bye: Bye) {
    let srv = agent_server();
    let agent_tone = AGENT_TONE.to_string();
    let caller_tone = CALLER_TONE.to_string();
    // Whoever hangs up does so 2 s after hearing the other side's tone,
    // so that the other side has heard its tone by then too.
    let mut agent_args = vec![
        "--ring-delay",
        "0.5",
        "--play",
        &agent_tone,
        "--detect",
        &caller_tone,
        "--timeout",
        "35",
    ];
    if bye == Bye::Agent {
        agent_args.extend(["--hangup-on-tone", &caller_tone, "--hangup-delay", "2"]);
    }
    let mut agent = register_alice(&srv, transport, &agent_args);

    let mut caller_args = vec![
        "--dtmf",
        "1@1.5",
        "--play",
        &caller_tone,
        "--play-at",
        "2",
        "--detect",
        &agent_tone,
        "--timeout",
        "30",
    ];
    if bye == Bye::Caller {
        caller_args.extend(["--hangup-on-tone", &agent_tone, "--hangup-delay", "2"]);
    }
    let mut c = caller(&srv, transport, "2000", &caller_args);
    let id = call_id(&c, &srv);

    // The agent's phone rings with the caller's context.
    let inv = agent.expect("incoming", Duration::from_secs(15), &srv);
    assert_queued_call_invite(&inv, &id, transport);
    assert!(
        inv["message"]
            .as_str()
            .unwrap_or_default()
            .contains("+15550123"),
        "the agent sees the caller's number as caller ID: {}",
        inv["message"]
    );

    agent.expect_where(
        "call_state",
        |e| e["state"] == "CONFIRMED",
        Duration::from_secs(10),
        &srv,
    );
    finish_queued_call(&srv, &id, &mut agent, &mut c, bye);
}

#[test]
fn pjsip_agent_takes_queued_call_agent_hangs_up_udp() {
    agent_takes_queued_call("udp", Bye::Agent);
}

#[test]
fn pjsip_agent_takes_queued_call_caller_hangs_up_udp() {
    agent_takes_queued_call("udp", Bye::Caller);
}

#[test]
fn pjsip_agent_takes_queued_call_agent_hangs_up_tcp() {
    agent_takes_queued_call("tcp", Bye::Agent);
}

#[test]
fn pjsip_agent_takes_queued_call_caller_hangs_up_tcp() {
    agent_takes_queued_call("tcp", Bye::Caller);
}

/// A PJSIP phone with the wrong password is refused (403 after the digest
/// challenge), exits non-zero, and the agent stays logged out.
#[test]
fn pjsip_agent_with_wrong_password_is_refused_udp() {
    let srv = agent_server();
    let mut agent = PJSUA.spawn(
        "agent alice (wrong password)",
        "agent",
        &args(&[
            "--registrar",
            &srv.sip.to_string(),
            "--user",
            "alice",
            "--password",
            "not-the-password",
            "--timeout",
            "15",
        ]),
    );
    let failed = agent.expect("reg_failed", Duration::from_secs(10), &srv);
    assert_eq!(failed["code"], 403, "{failed}");
    assert_eq!(agent.wait_exit(Duration::from_secs(20)), Some(1));
    assert_eq!(agent_state(&srv, "alice"), "logged-out");
}

// ---------------------------------------------------------------------------------------------
// 3. Callback: ringback calls the PJSIP agent, then the PJSIP customer.
// ---------------------------------------------------------------------------------------------

fn callback_to_customer(transport: &str) {
    callback_to_customer_with(transport, &[], |customer| {
        callback_server_to(customer, transport)
    });
}

/// [`callback_to_customer`] with extra customer arguments (its TLS
/// certificate) and a server made by `server` (its trunk's TLS settings).
fn callback_to_customer_with(
    transport: &str,
    customer_extra: &[&str],
    server: impl FnOnce(&PyPeer) -> Server,
) {
    let agent_tone = AGENT_TONE.to_string();
    let caller_tone = CALLER_TONE.to_string();
    // The customer listens before the server exists: the trunk points at it.
    let mut customer_args = args(customer_extra);
    customer_args.extend(args(&[
        "--transport",
        transport,
        "--ring-delay",
        "0.5",
        // Presses 1 a second into the intro prompt.
        "--dtmf-base",
        "audio",
        "--dtmf",
        "1@1",
        "--play",
        &caller_tone,
        "--play-at",
        "1",
        "--detect",
        &agent_tone,
        "--hangup-on-tone",
        &agent_tone,
        "--hangup-delay",
        "2",
        "--timeout",
        "35",
    ]));
    let mut customer = PJSUA.spawn("customer", "customer", &customer_args);
    let srv = server(&customer);
    // Agents register over UDP or TCP (a TLS trunk says nothing of them).
    let agent_transport = if transport == "tls" { "tcp" } else { transport };
    let mut agent = register_alice(
        &srv,
        agent_transport,
        &[
            "--ring-delay",
            "0.5",
            "--play",
            &agent_tone,
            "--detect",
            &caller_tone,
            "--timeout",
            "35",
        ],
    );

    let id = request_callback(&srv, Some("web form: PJSIP interop"));

    // The agent is called first, with the callback's context.
    let inv = agent.expect("incoming", Duration::from_secs(15), &srv);
    assert_callback_invite(&inv, &id, "web form: PJSIP interop");
    agent.expect_where(
        "call_state",
        |e| e["state"] == "CONFIRMED",
        Duration::from_secs(10),
        &srv,
    );
    // Then the customer, through the trunk, over the configured transport.
    let cinv = customer.expect("incoming", Duration::from_secs(20), &srv);
    assert_trunk_invite(&cinv, customer.port, transport);
    assert!(
        cinv["message"]
            .as_str()
            .unwrap_or_default()
            .contains("+15550100"),
        "the trunk caller ID: {}",
        cinv["message"]
    );
    customer.expect("dtmf_sent", Duration::from_secs(15), &srv);

    customer.finish_hearing(AGENT_TONE, &srv);
    agent.finish_hearing(CALLER_TONE, &srv);

    // Both legs are on record, answered, whoever hung up.
    assert_callback_call_completed(&srv, &id, &inv, &cinv);
}

#[test]
fn pjsip_callback_agent_then_customer_udp() {
    callback_to_customer("udp");
}

#[test]
fn pjsip_callback_agent_then_customer_tcp() {
    callback_to_customer("tcp");
}

/// The issue's acceptance case: a web callback reaches the agent on a PJSIP
/// phone, then the customer through a trunk that challenges the INVITE with
/// 401 (SIPp verifies the digest) and sends 100 and 180 before 200; the
/// customer presses 1 and the callback ends `completed`.
#[test]
fn pjsip_agent_callback_through_a_challenging_trunk_completes() {
    use common::scenario::AgentPhone;
    let carrier_port = free_udp_port();
    let carrier = common::phone(
        carrier_port,
        &AgentPhone::new(40_000)
            .challenge("acme", "trunk-secret")
            .trying()
            .ring()
            .answer_own_media()
            .pause(1_500)
            .press('1')
            .pause(2_000)
            .hang_up(),
    );
    let srv = common::callback_server(
        &format!(
            r#"[trunk]
address = "127.0.0.1:{carrier_port}"
domain = "carrier.example"
caller_id = "+15550100"
username = "acme"
password = "trunk-secret""#
        ),
        "retry_after_secs = 60\nmax_attempts = 1\naccept_timeout_secs = 15",
    );
    let carrier = carrier.spawn(srv.sip, "carrier");
    let mut agent = register_alice(&srv, "udp", &["--ring-delay", "0.5", "--timeout", "35"]);
    let id = request_callback(&srv, None);
    let inv = agent.expect("incoming", Duration::from_secs(15), &srv);
    assert_eq!(
        inv["x_ringback"]["X-Ringback-Callback"].as_str(),
        Some(id.as_str())
    );
    let carrier = carrier.wait();
    carrier.assert_ok("carrier: 401, then 100/180/200, press 1, BYE");
    assert!(
        carrier
            .messages
            .contains(&format!("INVITE sip:{CUSTOMER}@carrier.example")),
        "{}",
        carrier.messages
    );
    assert_callback_completed(&srv, &id);
    agent.finish(&srv);
    assert_no_active_calls(&srv);
}

/// Re-INVITEs with a changed SDP on the agent's leg: the PJSIP agent puts
/// the caller on hold (sendonly) and resumes (sendrecv). The caller's tone
/// starts only after the resume, so the agent hears it only if ringback
/// followed both re-INVITEs (it stops sending while held).
#[test]
fn pjsip_agent_holds_and_resumes_udp() {
    let srv = agent_server();
    let agent_tone = AGENT_TONE.to_string();
    let caller_tone = CALLER_TONE.to_string();
    let mut agent = register_alice(
        &srv,
        "udp",
        &[
            "--ring-delay",
            "0.5",
            "--hold-at",
            "1",
            "--unhold-at",
            "3",
            "--play",
            &agent_tone,
            "--detect",
            &caller_tone,
            "--hangup-on-tone",
            &caller_tone,
            "--hangup-delay",
            "1.5",
            "--timeout",
            "35",
        ],
    );
    let mut c = caller(
        &srv,
        "udp",
        "2000",
        &[
            "--dtmf",
            "1@1.5",
            "--play",
            &caller_tone,
            "--play-at",
            "9",
            "--detect",
            &agent_tone,
            "--timeout",
            "30",
        ],
    );
    let id = call_id(&c, &srv);
    agent.expect("incoming", Duration::from_secs(15), &srv);
    agent.expect("hold_sent", Duration::from_secs(10), &srv);
    agent.expect("unhold_sent", Duration::from_secs(10), &srv);
    finish_queued_call(&srv, &id, &mut agent, &mut c, Bye::Agent);
    assert!(
        srv.log().contains("leg renegotiated"),
        "ringback saw the agent's re-INVITEs:\n{}",
        srv.log()
    );
}

/// The agent's phone vanishes mid-call (killed: no BYE). The bridged call
/// must not stay up in silence: the agent leg's RTP timeout ends it, the
/// caller gets a BYE, the agent is not left `on-call`, and nothing stays
/// active.
#[test]
fn pjsip_vanished_agent_phone_ends_the_call_by_rtp_timeout() {
    let srv = Server::start(common::ServerOpts {
        extra_config: common::peer::AGENT_CONFIG.into(),
        rtp_timeout_secs: 3,
        ..common::ServerOpts::default()
    });
    let agent_tone = AGENT_TONE.to_string();
    let caller_tone = CALLER_TONE.to_string();
    let agent = PJSUA.registered_alice(
        &srv,
        "udp",
        &[
            "--ring-delay",
            "0.5",
            "--play",
            &agent_tone,
            "--timeout",
            "30",
        ],
    );
    let c = PJSUA.caller(
        &srv,
        "udp",
        "2000",
        &[
            "--dtmf",
            "1@1.5",
            "--play",
            &caller_tone,
            "--play-at",
            "1",
            "--timeout",
            "30",
        ],
    );
    let id = call_id(&c, &srv);
    agent.expect_where(
        "call_state",
        |e| e["state"] == "CONFIRMED",
        Duration::from_secs(15),
        &srv,
    );
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(agent_state(&srv, "alice"), "on-call");
    drop(agent); // SIGKILL: the phone is gone without a word
    c.expect_where(
        "call_state",
        |e| e["state"] == "DISCONNECTED",
        Duration::from_secs(10),
        &srv,
    );
    let cdr = srv.wait_cdr(&id, Duration::from_secs(5));
    assert_eq!(cdr.disposition, "rtp_timeout", "{cdr:?}");
    assert_eq!(cdr.hangup_by.as_deref(), Some("agent"), "{cdr:?}");
    let state = agent_state(&srv, "alice");
    assert_ne!(state, "on-call", "the agent was left on-call");
    assert_no_active_calls(&srv);
}

/// A bridged callback whose two ends both vanish (agent and customer
/// killed: no BYE from either) ends by RTP timeout: the callback is
/// `completed`, the agent is not left `on-call`, nothing stays active.
#[test]
fn pjsip_callback_with_both_ends_vanished_ends_by_rtp_timeout() {
    let agent_tone = AGENT_TONE.to_string();
    let caller_tone = CALLER_TONE.to_string();
    let customer = PJSUA.spawn(
        "customer",
        "customer",
        &args(&[
            "--ring-delay",
            "0.5",
            "--dtmf-base",
            "audio",
            "--dtmf",
            "1@1",
            "--play",
            &caller_tone,
            "--timeout",
            "40",
        ]),
    );
    let srv = common::callback_server_with_rtp_timeout(
        &format!(
            "[trunk]\naddress = \"127.0.0.1:{}\"\ncaller_id = \"+15550100\"\n",
            customer.port
        ),
        "retry_after_secs = 60\nmax_attempts = 1\naccept_timeout_secs = 15",
        3,
    );
    let agent = PJSUA.registered_alice(
        &srv,
        "udp",
        &[
            "--ring-delay",
            "0.5",
            "--play",
            &agent_tone,
            "--timeout",
            "40",
        ],
    );
    let id = request_callback(&srv, None);
    customer.expect("dtmf_sent", Duration::from_secs(25), &srv);
    // Wait for the bridge (state `connected`), then both phones vanish.
    let callback = || srv.http_get(&format!("/api/v1/callbacks/{id}")).1;
    poll_until(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || (common::peer::json(&callback())["state"] == "connected").then_some(()),
        || format!("never connected: {}", callback()),
    );
    std::thread::sleep(Duration::from_millis(1_000));
    drop(agent);
    drop(customer);
    assert_callback_completed(&srv, &id);
    assert_ne!(
        agent_state(&srv, "alice"),
        "on-call",
        "the agent was left on-call"
    );
    assert_no_active_calls(&srv);
}

// ---------------------------------------------------------------------------------------------
// 8. SIP over TLS: certificates verified both ways round, connections reused.
// ---------------------------------------------------------------------------------------------

use common::certs::{path_str, tls_addr, Lab};

fn tls_server(lab: &Lab, extra_config: &str) -> Server {
    Server::start(common::ServerOpts {
        extra_config: extra_config.into(),
        sip_extra: lab.tls_listener(),
        ..common::ServerOpts::default()
    })
}

/// A PJSIP caller over TLS that verifies ringback's certificate with `ca`.
fn tls_caller(srv: &Server, ca: &std::path::Path, number: &str, extra: &[&str]) -> PyPeer {
    let uri = format!("sip:{number}@{};transport=tls", tls_addr(srv));
    let mut a = args(&["--transport", "tls", "--ca", path_str(ca), "--uri", &uri]);
    a.extend(args(extra));
    PJSUA.spawn("caller", "caller", &a)
}

#[test]
fn pjsip_tls_caller_navigates_the_ivr_with_a_verified_certificate() {
    let lab = Lab::new();
    let srv = tls_server(&lab, "");
    let mut c = tls_caller(
        &srv,
        &lab.ca.cert,
        "2000",
        &["--dtmf", "1@1.5", "--hangup-after", "5", "--timeout", "25"],
    );
    let id = call_id(&c, &srv);
    c.expect("media_active", Duration::from_secs(10), &srv);
    c.expect("audio_heard", Duration::from_secs(10), &srv);
    c.expect("dtmf_sent", Duration::from_secs(10), &srv);
    c.finish(&srv);
    assert_support_menu_cdr(&srv, &id);
    assert_no_active_calls(&srv);
    // It came over TLS: the server saw a TLS Via.
    assert!(
        c.log().contains("SIP/2.0/TLS"),
        "PJSIP sent over TLS:\n{}",
        c.diagnostics()
    );
}

#[test]
fn pjsip_tls_caller_refuses_a_certificate_from_an_unknown_ca() {
    let lab = Lab::new();
    let other = common::certs::Ca::new(lab.dir.path(), "other");
    let srv = tls_server(&lab, "");
    let mut c = tls_caller(&srv, &other.cert, "2000", &["--timeout", "15"]);
    let end = c.expect_where(
        "call_state",
        |e| e["state"] == "DISCONNECTED",
        Duration::from_secs(15),
        &srv,
    );
    assert_ne!(end["code"], 200, "the call must not connect: {end}");
    assert!(
        c.events()
            .iter()
            .all(|e| !(e["event"] == "call_state" && e["state"] == "CONFIRMED")),
        "no call may be confirmed over an unverified connection:\n{}",
        c.diagnostics()
    );
    c.finish(&srv);
    assert!(
        srv.cdrs().is_empty(),
        "nothing reached the dialplan: {:?}",
        srv.cdrs()
    );
}

#[test]
fn pjsip_tls_agent_takes_a_tls_caller_with_audio_both_ways() {
    let lab = Lab::new();
    let srv = tls_server(&lab, common::peer::AGENT_CONFIG);
    let agent_tone = AGENT_TONE.to_string();
    let caller_tone = CALLER_TONE.to_string();
    let registrar = tls_addr(&srv);
    let mut agent = PJSUA.spawn(
        "agent alice",
        "agent",
        &args(&[
            "--transport",
            "tls",
            "--ca",
            path_str(&lab.ca.cert),
            "--registrar",
            &registrar,
            "--user",
            "alice",
            "--password",
            "alice-secret",
            "--ring-delay",
            "0.5",
            "--play",
            &agent_tone,
            "--detect",
            &caller_tone,
            "--timeout",
            "35",
        ]),
    );
    agent.expect("registered", Duration::from_secs(10), &srv);
    common::peer::wait_agent_state(&srv, "alice", "available");
    let mut c = tls_caller(
        &srv,
        &lab.ca.cert,
        "2000",
        &[
            "--dtmf",
            "1@1.5",
            "--play",
            &caller_tone,
            "--play-at",
            "2",
            "--detect",
            &agent_tone,
            "--hangup-on-tone",
            &agent_tone,
            "--hangup-delay",
            "2",
            "--timeout",
            "30",
        ],
    );
    let id = call_id(&c, &srv);
    // The agent's phone is reached over its own registration connection
    // (it listens on no TLS port of its own): the INVITE's Via says TLS.
    let inv = agent.expect("incoming", Duration::from_secs(15), &srv);
    assert_queued_call_invite(&inv, &id, "tls");
    agent.expect_where(
        "call_state",
        |e| e["state"] == "CONFIRMED",
        Duration::from_secs(10),
        &srv,
    );
    finish_queued_call(&srv, &id, &mut agent, &mut c, Bye::Caller);
}

#[test]
fn pjsip_callback_customer_through_a_tls_trunk_verified_by_its_ca() {
    let lab = Lab::new();
    let customer_cert = lab.ca.issue("carrier");
    let ca = path_str(&lab.ca.cert).to_string();
    callback_to_customer_with(
        "tls",
        &[
            "--tls-cert",
            path_str(&customer_cert.cert),
            "--tls-key",
            path_str(&customer_cert.key),
        ],
        |customer| {
            // The carrier sends its BYE to our TLS Contact: ringback
            // listens for TLS too.
            Server::start(common::ServerOpts {
                sip_extra: lab.tls_listener(),
                ..common::callback_opts(
                    &format!(
                        "[trunk]\naddress = \"127.0.0.1:{port}\"\ncaller_id = \"+15550100\"\ntransport = \"tls\"\ntls_ca_file = \"{ca}\"\ntls_server_name = \"localhost\"\n",
                        port = customer.port
                    ),
                    "retry_after_secs = 60\nmax_attempts = 1\naccept_timeout_secs = 15",
                )
            })
        },
    );
}

#[test]
fn tls_trunk_with_an_untrusted_certificate_is_never_called() {
    let lab = Lab::new();
    let customer_cert = lab.ca.issue("carrier");
    // The customer's certificate is signed by the lab CA; the trunk trusts
    // only the public roots, so the handshake must fail and nothing of the
    // call may leave ringback.
    let customer = PJSUA.spawn(
        "customer",
        "customer",
        &args(&[
            "--transport",
            "tls",
            "--tls-cert",
            path_str(&customer_cert.cert),
            "--tls-key",
            path_str(&customer_cert.key),
            "--timeout",
            "25",
        ]),
    );
    let srv = Server::start(common::ServerOpts {
        sip_extra: lab.tls_listener(),
        ..common::callback_opts(
            &format!(
                "[trunk]\naddress = \"127.0.0.1:{}\"\ncaller_id = \"+15550100\"\ntransport = \"tls\"\ntls_server_name = \"localhost\"\n",
                customer.port
            ),
            "retry_after_secs = 60\nmax_attempts = 1\naccept_timeout_secs = 15",
        )
    });
    let _agent = register_alice(&srv, "udp", &["--ring-delay", "0.2", "--timeout", "30"]);
    let _id = request_callback(&srv, None);
    assert!(
        srv.wait_log("SIP TLS handshake failed", 1, Duration::from_secs(20)),
        "the refused certificate is logged:\n{}",
        srv.log()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        customer.events().iter().all(|e| e["event"] != "incoming"),
        "the customer must not be rung over an unverified connection:\n{}",
        customer.diagnostics()
    );
}
