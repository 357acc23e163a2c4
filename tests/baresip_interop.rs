//! Interop with a real SIP user agent: baresip (Debian's `baresip-core`
//! 1.0, libre 1.1), driven over its `ctrl_tcp` interface by
//! `tests/peers/baresip_peer.py`, plays the caller, the agent's phone
//! (registering with digest against ringback's default configuration) and
//! the callback customer. Audio is checked by content: each side plays its
//! own tone and the other side must hear it (Goertzel,
//! `tests/peers/audio.py`), never by packet counts.
//!
//! Over SIP over TLS with SRTP (SDES keys, RFC 4568) the caller and the
//! agent's phone are baresip too; what went on the wire (transport, `m=`
//! profile, `a=crypto` suites) is read from baresip's own SIP trace. Note
//! that baresip 1.0 never verifies the server's certificate (upstream
//! issue baresip#1122, `sip_verify_server` came with 1.1): the refusal of
//! an unknown CA is proven with PJSIP (`tests/pjsip_interop.rs`), and the
//! baresip version of that test is ignored until a baresip that verifies
//! is installed.
//!
//! Every test starts its own ringback and its own baresip processes on free
//! ports; the peers kill baresip by PID when they end, and a peer still
//! running when its test ends is killed too. A missing baresip fails the
//! tests (it does not skip them): `apt-get install baresip-core`.

mod common;
use std::time::Duration;

use common::peer::{
    agent_server, args, assert_callback_call_completed, assert_callback_invite,
    assert_no_active_calls, assert_queued_call_invite, assert_support_menu_cdr,
    assert_trunk_invite, callback_server_to, finish_queued_call, request_callback, sip_header,
    wait_agent_state, Bye, PyPeer, AGENT_CONFIG, AGENT_TONE, BARESIP_PEER, CALLER_TONE, CUSTOMER,
};
use common::{Server, ServerOpts};
use serde_json::Value;

/// A baresip caller dialing `number` on the server.
fn caller(srv: &Server, transport: &str, number: &str, extra: &[&str]) -> PyPeer {
    BARESIP_PEER.caller(srv, transport, number, extra)
}

/// The Call-ID of the caller's call.
fn call_id(peer: &PyPeer, srv: &Server) -> String {
    peer.expect("established", Duration::from_secs(10), srv)["id"]
        .as_str()
        .expect("id")
        .to_string()
}
/// A baresip agent phone for `user` registering over `transport`.
fn agent(srv: &Server, transport: &str, user: &str, password: &str, extra: &[&str]) -> PyPeer {
    BARESIP_PEER.agent(srv, transport, user, password, extra)
}

/// Wait for the outcome of `a`'s registration and assert that it got in
/// (`what` says with which settings); the agent is then `available`.
fn assert_registered(a: &PyPeer, srv: &Server, what: &str) -> Value {
    let reg = a
        .wait_for(
            |e| e["event"] == "registered" || e["event"] == "reg_failed",
            Duration::from_secs(10),
        )
        .unwrap_or_else(|| panic!("no registration outcome\n{}", a.diagnostics()));
    assert_eq!(
        reg["event"],
        "registered",
        "baresip could not register {what}: {reg}\n{}\nringback log:\n{}",
        a.diagnostics(),
        srv.log()
    );
    wait_agent_state(srv, "alice", "available");
    reg
}

// ---------------------------------------------------------------------------------------------
// 1. IVR: a baresip caller presses 1 (RFC 4733) in the support menu (2000).
// ---------------------------------------------------------------------------------------------

fn ivr_menu(transport: &str) {
    let srv = Server::start_demo();
    let mut c = caller(
        &srv,
        transport,
        "2000",
        &["--dtmf", "1@1.5", "--hangup-after", "5", "--timeout", "25"],
    );
    let id = call_id(&c, &srv);
    c.expect("audio_heard", Duration::from_secs(10), &srv);
    c.expect("dtmf_sent", Duration::from_secs(10), &srv);
    c.expect("hangup", Duration::from_secs(10), &srv);
    c.finish(&srv);
    // The key went as an RFC 4733 event (baresip falls back to SIP INFO
    // only when no telephone-event is negotiated).
    let trace = c.log();
    assert!(
        trace.contains("audio: send DTMF digit: '1'"),
        "no RFC 4733 event sent:\n{}",
        c.diagnostics()
    );
    assert!(!trace.contains("\nINFO sip:"), "{}", c.diagnostics());
    assert_support_menu_cdr(&srv, &id);
    // The same digits and path, straight from the store.
    let rows = srv.query_text(&format!(
        "SELECT path, digits, queue FROM calls WHERE call_id = '{id}' AND leg = 'inbound'"
    ));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][1].as_deref(), Some("1"), "{rows:?}");
    assert_no_active_calls(&srv);
}

#[test]
fn baresip_ivr_rfc4733_dtmf_udp() {
    ivr_menu("udp");
}

#[test]
fn baresip_ivr_rfc4733_dtmf_tcp() {
    ivr_menu("tcp");
}

// ---------------------------------------------------------------------------------------------
// 2. Registration with ringback's default digest settings.
// ---------------------------------------------------------------------------------------------

/// baresip 1.0 (libre 1.1) aborts a REGISTER with ENOSYS ("Function not
/// implemented") when any challenge of the 401 is not MD5; ringback's
/// default (`sip.auth_algorithms = ["MD5", "SHA-256"]`, no override here)
/// must let it in at once.
fn registers_with_defaults(transport: &str) {
    let srv = agent_server();
    let mut a = agent(
        &srv,
        transport,
        "alice",
        "alice-secret",
        &["--register-only", "--timeout", "10"],
    );
    let reg = assert_registered(&a, &srv, "with the default digest settings");
    assert_eq!(reg["param"], "200 OK", "{reg}");
    // What it was offered: one MD5 challenge per 401.
    let log = a.log();
    let challenges: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("WWW-Authenticate:"))
        .collect();
    assert!(!challenges.is_empty(), "no challenge in the trace:\n{log}");
    assert!(
        challenges.iter().all(|c| c.contains("algorithm=MD5")),
        "{challenges:?}"
    );
    let via = format!("Via: SIP/2.0/{} ", transport.to_ascii_uppercase());
    assert!(log.contains(&via), "REGISTER over {transport}:\n{log}");
    a.finish(&srv);
}

#[test]
fn baresip_agent_registers_with_default_digest_udp() {
    registers_with_defaults("udp");
}

#[test]
fn baresip_agent_registers_with_default_digest_tcp() {
    registers_with_defaults("tcp");
}

/// SHA-256 preferred for everybody, MD5 for the one agent whose phone is
/// baresip 1.0 (`[agents.NAME] auth_algorithms`): it registers at once.
#[test]
fn baresip_agent_with_md5_override_registers_when_sha256_is_preferred() {
    let srv = Server::start(ServerOpts {
        sip_extra: r#"auth_algorithms = ["SHA-256", "MD5"]"#.into(),
        extra_config: format!("{AGENT_CONFIG}auth_algorithms = [\"MD5\"]\n"),
        ..ServerOpts::default()
    });
    let mut a = agent(
        &srv,
        "udp",
        "alice",
        "alice-secret",
        &["--register-only", "--timeout", "10"],
    );
    assert_registered(&a, &srv, "with its MD5 override");
    a.finish(&srv);
}

// ---------------------------------------------------------------------------------------------
// 3. A baresip agent phone takes a queued baresip caller.
// ---------------------------------------------------------------------------------------------

fn agent_takes_queued_call(transport: &str, bye: Bye) {
    let srv = agent_server();
    let agent_tone = AGENT_TONE.to_string();
    let caller_tone = CALLER_TONE.to_string();
    // Whoever hangs up does so 2 s after hearing the other side's tone, by
    // when the other side has heard its tone too.
    let mut agent_args = vec![
        "--answer-after",
        "1",
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
    let mut a = BARESIP_PEER.registered_alice(&srv, transport, &agent_args);

    let mut caller_args = vec![
        "--dtmf",
        "1@1.5",
        "--play",
        &caller_tone,
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
    let inv = a.expect("incoming", Duration::from_secs(15), &srv);
    assert_queued_call_invite(&inv, &id, transport);
    assert!(
        sip_header(&inv, "From").contains("+15550123"),
        "the agent sees the caller's number: {}",
        sip_header(&inv, "From")
    );
    a.expect("established", Duration::from_secs(10), &srv);
    wait_agent_state(&srv, "alice", "on-call");

    let other = finish_queued_call(&srv, &id, &mut a, &mut c, bye);
    // baresip's own word that the BYE came from the other side.
    let closed = other.expect("closed", Duration::from_secs(1), &srv);
    assert_eq!(closed["by_us"], false, "{}", other.diagnostics());
}

#[test]
fn baresip_agent_takes_queued_call_agent_hangs_up_udp() {
    agent_takes_queued_call("udp", Bye::Agent);
}

#[test]
fn baresip_agent_takes_queued_call_caller_hangs_up_udp() {
    agent_takes_queued_call("udp", Bye::Caller);
}

#[test]
fn baresip_agent_takes_queued_call_agent_hangs_up_tcp() {
    agent_takes_queued_call("tcp", Bye::Agent);
}

#[test]
fn baresip_agent_takes_queued_call_caller_hangs_up_tcp() {
    agent_takes_queued_call("tcp", Bye::Caller);
}

// ---------------------------------------------------------------------------------------------
// 4. Callback: ringback calls the baresip agent, then the baresip customer.
// ---------------------------------------------------------------------------------------------

fn callback_to_customer(transport: &str) {
    let agent_tone = AGENT_TONE.to_string();
    let caller_tone = CALLER_TONE.to_string();
    // The customer listens before the server exists: the trunk points at it.
    let mut customer = BARESIP_PEER.spawn(
        "customer",
        "customer",
        &args(&[
            "--transport",
            transport,
            "--user",
            CUSTOMER,
            "--answer-after",
            "1",
            "--dtmf",
            "1@1.5",
            "--play",
            &caller_tone,
            "--detect",
            &agent_tone,
            "--hangup-on-tone",
            &agent_tone,
            "--hangup-delay",
            "2",
            "--timeout",
            "35",
        ]),
    );
    let srv = callback_server_to(&customer, transport);
    let mut a = BARESIP_PEER.registered_alice(
        &srv,
        transport,
        &[
            "--answer-after",
            "1",
            "--play",
            &agent_tone,
            "--detect",
            &caller_tone,
            "--timeout",
            "35",
        ],
    );

    let id = request_callback(&srv, Some("web form: baresip interop"));

    // The agent is called first, with the callback's context …
    let inv = a.expect("incoming", Duration::from_secs(15), &srv);
    assert_callback_invite(&inv, &id, "web form: baresip interop");
    a.expect("established", Duration::from_secs(10), &srv);
    assert!(
        customer.events().iter().all(|e| e["event"] != "incoming"),
        "the customer rang before the agent answered:\n{}",
        customer.diagnostics()
    );
    // … then the customer, through the trunk, over the configured transport.
    let cinv = customer.expect("incoming", Duration::from_secs(20), &srv);
    assert_trunk_invite(&cinv, customer.port, transport);
    assert!(
        sip_header(&cinv, "From").contains("+15550100"),
        "the trunk caller ID: {}",
        sip_header(&cinv, "From")
    );
    customer.expect("established", Duration::from_secs(10), &srv);
    customer.expect("dtmf_sent", Duration::from_secs(10), &srv);

    customer.finish_hearing(AGENT_TONE, &srv);
    a.finish_hearing(CALLER_TONE, &srv);

    // Both legs are on record, answered, whoever hung up.
    assert_callback_call_completed(&srv, &id, &inv, &cinv);
}

#[test]
fn baresip_callback_agent_then_customer_udp() {
    callback_to_customer("udp");
}

#[test]
fn baresip_callback_agent_then_customer_tcp() {
    callback_to_customer("tcp");
}

// ---------------------------------------------------------------------------------------------
// 5. SIP over TLS with SRTP (SDES): callers and the agent's phone.
// ---------------------------------------------------------------------------------------------

use common::certs::{path_str, tls_addr, Lab};

/// A server with a TLS listener (the lab certificate) that requires SRTP
/// from callers (`sip.srtp = "mandatory"`) and from agent alice's phone
/// (`[agents.alice] srtp = "mandatory"`; support queue, see
/// [`AGENT_CONFIG`]).
fn tls_srtp_server(lab: &Lab) -> Server {
    Server::start(ServerOpts {
        sip_extra: format!("{}srtp = \"mandatory\"\n", lab.tls_listener()),
        // AGENT_CONFIG ends inside [agents.alice].
        extra_config: format!("{AGENT_CONFIG}srtp = \"mandatory\"\n"),
        ..ServerOpts::default()
    })
}

/// A baresip caller dialing `number` over TLS (`sip_cafile` = `ca`) with
/// SRTP `srtp` (`off`, `optional`, `mandatory`).
fn tls_caller(
    srv: &Server,
    ca: &std::path::Path,
    srtp: &str,
    number: &str,
    extra: &[&str],
) -> PyPeer {
    let uri = format!("sip:{number}@{};transport=tls", tls_addr(srv));
    let mut a = args(&[
        "--transport",
        "tls",
        "--ca",
        path_str(ca),
        "--srtp",
        srtp,
        "--uri",
        &uri,
    ]);
    a.extend(args(extra));
    BARESIP_PEER.spawn("caller", "caller", &a)
}

/// The SIP messages of `peer`'s call `id` as its `trace` event reported
/// them (from baresip's SIP trace).
fn trace(peer: &PyPeer, id: &str, srv: &Server) -> Vec<Value> {
    peer.expect_where("trace", |e| e["id"] == id, Duration::from_secs(5), srv)["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The message of `trace` whose first line starts with `start` and whose
/// CSeq method is `method` (panics with the whole trace otherwise).
fn message<'a>(trace: &'a [Value], start: &str, method: &str, peer: &PyPeer) -> &'a Value {
    trace
        .iter()
        .find(|m| {
            m["start"].as_str().is_some_and(|s| s.starts_with(start))
                && m["cseq"].as_str().is_some_and(|c| c.ends_with(method))
        })
        .unwrap_or_else(|| {
            panic!(
                "no `{start}` ({method}) in the trace: {trace:#?}\n{}",
                peer.diagnostics()
            )
        })
}

/// The `a=crypto` suites of a traced message (`TAG SUITE` each).
fn suites(msg: &Value) -> Vec<String> {
    msg["crypto"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|x| x.as_str())
                .filter_map(|x| x.split_whitespace().nth(1))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Assert that a traced message went over TLS with an `RTP/SAVP` audio
/// line and `a=crypto` (exactly one for an answer); returns its suites.
fn assert_srtp_over_tls(msg: &Value, answer: bool, what: &str) -> Vec<String> {
    assert_eq!(msg["transport"], "TLS", "{what} over TLS: {msg:#}");
    let media = msg["media"].as_array().cloned().unwrap_or_default();
    assert!(
        media.len() == 1
            && media[0]
                .as_str()
                .is_some_and(|m| m.starts_with("m=audio ") && m.contains(" RTP/SAVP ")),
        "{what}: one RTP/SAVP audio line: {msg:#}"
    );
    let suites = suites(msg);
    assert!(!suites.is_empty(), "{what}: a=crypto: {msg:#}");
    if answer {
        assert_eq!(suites.len(), 1, "{what}: the answer keeps one key: {msg:#}");
    }
    suites
}

/// baresip's `secure` event for call `id` (CALL_MENC: the stream runs
/// SRTP); returns the suite it names.
fn assert_secure(peer: &PyPeer, id: &str, srv: &Server) -> String {
    let ev = peer.expect_where("secure", |e| e["id"] == id, Duration::from_secs(5), srv);
    // "0,audio,AES_CM_128_HMAC_SHA1_80": event 0 is MENC_EVENT_SECURE.
    let param = ev["param"].as_str().unwrap_or_default();
    let parts: Vec<&str> = param.split(',').collect();
    assert!(
        parts.len() == 3 && parts[0] == "0" && parts[1] == "audio",
        "{} {}: SRTP secured the audio stream: {ev}",
        peer.name,
        id
    );
    parts[2].to_string()
}

/// The local address of the TLS connection `peer` registered over (the
/// `TLS SRC -> DST` line before its REGISTER in baresip's trace).
fn register_connection(peer: &PyPeer, registrar: &str) -> String {
    let log = peer.log();
    let mut last: Option<(&str, &str, &str)> = None;
    for line in log.lines() {
        let line = line.trim_end_matches('\r');
        let words: Vec<&str> = line.split(' ').collect();
        if words.len() == 4 && words[2] == "->" {
            last = Some((words[0], words[1], words[3]));
        } else if line.starts_with("REGISTER sip:") {
            if let Some((proto, src, dst)) = last {
                assert_eq!(proto, "TLS", "REGISTER over TLS:\n{log}");
                assert_eq!(dst, registrar, "REGISTER to the TLS listener:\n{log}");
                return src.to_string();
            }
        }
    }
    panic!("no REGISTER in the trace:\n{}", peer.diagnostics());
}

/// The whole way over TLS with SRTP on both legs: a baresip caller
/// (`srtp-mand`) navigates the IVR (2000, presses 1) and is queued; agent
/// alice's baresip phone, registered over TLS (`srtp-mand`, no TLS
/// listener used: ringback calls it on its registration connection) takes
/// the call. Both SDP exchanges are RTP/SAVP with one agreed AES suite,
/// both baresips report the stream secure, and each side hears the other's
/// tone (audio decrypted both ways, by content); no SRTP packet was
/// dropped by ringback.
#[test]
fn baresip_tls_srtp_caller_reaches_tls_srtp_agent_through_the_ivr() {
    let lab = Lab::new();
    let srv = tls_srtp_server(&lab);
    let registrar = tls_addr(&srv);
    let agent_tone = AGENT_TONE.to_string();
    let caller_tone = CALLER_TONE.to_string();
    let mut a = BARESIP_PEER.spawn(
        "agent alice",
        "agent",
        &args(&[
            "--transport",
            "tls",
            "--ca",
            path_str(&lab.ca.cert),
            "--srtp",
            "mandatory",
            "--registrar",
            &registrar,
            "--user",
            "alice",
            "--password",
            "alice-secret",
            "--answer-after",
            "1",
            "--play",
            &agent_tone,
            "--detect",
            &caller_tone,
            "--timeout",
            "35",
        ]),
    );
    assert_registered(&a, &srv, "over TLS");
    let reg_conn = register_connection(&a, &registrar);

    let mut c = tls_caller(
        &srv,
        &lab.ca.cert,
        "mandatory",
        "2000",
        &[
            "--dtmf",
            "1@1.5",
            "--play",
            &caller_tone,
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

    // The caller's leg: offer and answer over TLS, RTP/SAVP with SDES.
    let ct = trace(&c, &id, &srv);
    let invite = message(&ct, "INVITE sip:2000@", "INVITE", &c);
    assert_eq!(invite["dst"], registrar.as_str(), "{invite:#}");
    let offered = assert_srtp_over_tls(invite, false, "the caller's INVITE");
    let ok = message(&ct, "SIP/2.0 200", "INVITE", &c);
    let agreed = assert_srtp_over_tls(ok, true, "ringback's 200 to the caller");
    assert!(offered.contains(&agreed[0]), "{offered:?} / {agreed:?}");
    assert_eq!(
        assert_secure(&c, &id, &srv),
        agreed[0],
        "{}",
        c.diagnostics()
    );

    // The agent's leg: ringback's INVITE (RTP/SAVP, its keys) on the
    // phone's registration connection, over TLS, with the call's context.
    let inv = a.expect("incoming", Duration::from_secs(15), &srv);
    assert_queued_call_invite(&inv, &id, "tls");
    let leg = a.expect("established", Duration::from_secs(10), &srv)["id"]
        .as_str()
        .expect("id")
        .to_string();
    let at = trace(&a, &leg, &srv);
    let ainv = message(&at, "INVITE sip:alice", "INVITE", &a);
    assert_eq!(
        ainv["src"],
        registrar.as_str(),
        "from ringback's TLS listener: {ainv:#}"
    );
    assert_eq!(
        ainv["dst"],
        reg_conn.as_str(),
        "ringback reached the phone on the connection it registered over: {ainv:#}"
    );
    let leg_offer = assert_srtp_over_tls(ainv, false, "ringback's INVITE to the agent");
    let aok = message(&at, "SIP/2.0 200", "INVITE", &a);
    let leg_agreed = assert_srtp_over_tls(aok, true, "the agent's 200");
    assert!(
        leg_offer.contains(&leg_agreed[0]),
        "{leg_offer:?} / {leg_agreed:?}"
    );
    assert_eq!(
        assert_secure(&a, &leg, &srv),
        leg_agreed[0],
        "{}",
        a.diagnostics()
    );
    wait_agent_state(&srv, "alice", "on-call");

    // Audio both ways by content, the caller hangs up, the records.
    finish_queued_call(&srv, &id, &mut a, &mut c, Bye::Caller);
    assert_support_menu_cdr(&srv, &id);
    for m in [
        "ringback_srtp_auth_failures_total",
        "ringback_srtp_malformed_total",
        "ringback_srtp_replayed_total",
    ] {
        assert_eq!(srv.metric(m), 0.0, "{m}\n{}", srv.log());
    }
}

/// A caller whose baresip offers plain RTP (no `mediaenc`) to a server
/// that requires SRTP gets 488 at once, over TLS; nothing reaches the
/// dialplan and the refusal is counted under `srtp_policy`.
#[test]
fn baresip_plain_rtp_caller_is_refused_488_by_a_mandatory_srtp_server() {
    let lab = Lab::new();
    let srv = tls_srtp_server(&lab);
    let mut c = tls_caller(&srv, &lab.ca.cert, "off", "2000", &["--timeout", "15"]);
    let closed = c.expect("closed", Duration::from_secs(10), &srv);
    let reason = closed["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("488"),
        "refused with 488: {closed}\n{}",
        c.diagnostics()
    );
    let id = closed["id"].as_str().expect("id").to_string();
    assert!(
        c.events().iter().all(|e| e["event"] != "established"),
        "{}",
        c.diagnostics()
    );
    // What went on the wire: a plain offer, over TLS, and the 488.
    let ct = trace(&c, &id, &srv);
    let invite = message(&ct, "INVITE sip:2000@", "INVITE", &c);
    assert_eq!(invite["transport"], "TLS", "{invite:#}");
    let media = invite["media"][0].as_str().unwrap_or_default();
    assert!(media.contains(" RTP/AVP "), "a plain offer: {invite:#}");
    assert!(suites(invite).is_empty(), "no a=crypto: {invite:#}");
    let refusal = message(&ct, "SIP/2.0 488", "INVITE", &c);
    assert_eq!(refusal["transport"], "TLS", "{refusal:#}");
    // The script's exit code for a call that failed before it was set up.
    assert_eq!(
        c.wait_exit(Duration::from_secs(20)),
        Some(4),
        "{}",
        c.diagnostics()
    );
    assert!(
        srv.cdrs().is_empty(),
        "nothing reached the dialplan: {:?}",
        srv.cdrs()
    );
    assert_eq!(
        srv.metric("ringback_refusals_total{reason=\"srtp_policy\"}"),
        1.0,
        "{}",
        srv.log()
    );
    assert!(
        srv.log().contains("SRTP is mandatory here"),
        "the refusal says why:\n{}",
        srv.log()
    );
}

// A baresip caller that trusts another CA is not tested here: baresip 1.0
// (Debian's baresip-core) loads `sip_cafile` but never verifies the
// server's certificate (baresip#1122; `sip_verify_server` came in 1.1).
// PJSIP covers it (`pjsip_tls_caller_refuses_a_certificate_from_an_unknown_ca`).
