//! Agents and queues with real peers: SIPp phones REGISTER with digest auth
//! and answer (or ignore, or refuse) calls that ringback routes to them; a
//! SIPp caller zeroes out of a menu three levels deep. Media bridging is
//! observed on a real UDP socket standing in for the agent's phone.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::peer::{agent_state, wait_agent_state};
use common::scenario::{self, AgentPhone, Uac};
use common::{call_id_from_trace, free_udp_port, phone, Server, ServerOpts, Sipp};

const PLAN: &str = r#"
[dialplan]
name = "acd"
numbers = ["100"]
start = "main"
operator = "operator"

[nodes.main]
type = "menu"
prompt = "digit-1"
options = { "1" = "sub", "4" = "sales" }
timeout = 10

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

[nodes.sales]
type = "queue"
queue = "sales"
on_timeout = "bye"

[nodes.bye]
type = "hangup"
prompt = "goodbye"
"#;

fn server(ring_timeout: u64) -> Server {
    Server::start(ServerOpts {
        dialplans: vec![("acd.toml".into(), PLAN.into())],
        extra_config: format!(
            r#"
[queues.operator]
ring_timeout_secs = {ring_timeout}
auto_pause_after = 1
announce_every_secs = 0
wrapup_secs = 1

[queues.sales]
overflow_prompt = "goodbye"

[agents.alice]
password = "alice-secret"
queues = ["operator"]

[agents.bob]
password = "bob-secret"
queues = ["operator"]
"#
        ),
        ..ServerOpts::default()
    })
}

/// Register an agent from `port` (the phone then listens there).
fn register(srv: &Server, user: &str, password: &str, port: u16) {
    Sipp::from_xml(&scenario::register(user, password, 300, 200))
        .arg("-p")
        .arg(port)
        .run(srv.sip, user)
        .assert_ok("REGISTER");
    wait_agent_state(srv, user, "available");
}

#[test]
fn zero_out_from_depth_three_reaches_agent_with_context_and_media() {
    let srv = server(10);
    let alice_port = free_udp_port();
    register(&srv, "alice", "alice-secret", alice_port);
    let rtp = UdpSocket::bind("127.0.0.1:0").expect("bind");
    rtp.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let rtp_port = rtp.local_addr().expect("addr").port();
    let alice = phone(
        alice_port,
        &AgentPhone::new(20_000)
            .ring()
            .answer(rtp_port)
            .expect_bye(20_000),
    )
    .spawn(srv.sip, "alice");

    let caller = Uac::new()
        .codecs("pcma")
        .invite()
        .pause(300)
        .info_digit('1')
        .info_digit('1')
        .info_digit('0')
        .pause(1_500)
        .play_alaw_sample()
        .pause(3_000)
        .bye();
    let caller = Sipp::from_xml(&caller.xml()).spawn(srv.sip, "100");

    // The agent's phone hears the caller: A-law from the caller, relayed
    // and transcoded to the agent's PCMU.
    let mut pcmu = 0;
    let mut loud = 0;
    let until = Instant::now() + Duration::from_secs(6);
    let mut buf = [0u8; 2048];
    while Instant::now() < until {
        if let Ok((n, _)) = rtp.recv_from(&mut buf) {
            if let Ok(h) = ringback_media::rtp::parse(&buf[..n]) {
                if h.pt == 0 {
                    pcmu += 1;
                    let payload = &buf[h.payload_offset..h.payload_offset + h.payload_len];
                    let peak = payload
                        .iter()
                        .map(|&b| i32::from(ringback_media::g711::ulaw_decode(b)).abs())
                        .max()
                        .unwrap_or(0);
                    if peak > 1_000 {
                        loud += 1;
                    }
                }
            }
        }
    }
    let caller = caller.wait();
    caller.assert_ok("caller");
    let alice = alice.wait();
    alice.assert_ok("alice's phone");

    assert!(
        pcmu >= 50,
        "agent received {pcmu} PCMU packets from the caller"
    );
    assert!(
        loud >= 10,
        "relayed audio is speech, not silence ({loud} loud packets)"
    );
    for header in [
        "X-Ringback-Caller: +15550123",
        "X-Ringback-Path: main > sub > deep",
        "X-Ringback-Digits: 110",
        "X-Ringback-Queue: operator",
        "X-Ringback-Repeat: 0",
        "X-Ringback-Waited: ",
    ] {
        assert!(
            alice.messages.contains(header),
            "INVITE to the agent lacks `{header}`:\n{}",
            alice.messages
        );
    }
    let cdr = srv.wait_cdr(
        &call_id_from_trace(&caller.messages).expect("id"),
        Duration::from_secs(5),
    );
    assert_eq!(cdr.disposition, "completed");
    assert_eq!(cdr.hangup_by.as_deref(), Some("caller"));
    assert_eq!(cdr.queue.as_deref(), Some("operator"));
    let agent_leg = srv
        .cdrs()
        .into_iter()
        .find(|c| c.leg == "agent")
        .expect("agent leg CDR");
    assert_eq!(agent_leg.dialed, "alice");
    assert!(agent_leg.answered_at.is_some());
    // The agent leg points to its caller's call, and both records carry
    // the node that handled them.
    assert_eq!(
        agent_leg.parent_call_id.as_deref(),
        Some(cdr.call_id.as_str()),
        "{agent_leg:#?}"
    );
    assert_eq!(cdr.parent_call_id, None, "{cdr:#?}");
    assert!(cdr.node_id.is_some(), "{cdr:#?}");
    assert_eq!(agent_leg.node_id, cdr.node_id, "{agent_leg:#?}");
    // The API returns every stored column, with the stored values.
    let mut stored: Vec<String> = srv
        .query_text("SELECT name FROM pragma_table_info('calls') ORDER BY cid")
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect();
    let (status, body) = srv.http_get("/api/v1/cdrs");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let api_leg = v["cdrs"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["leg"] == "agent"))
        .unwrap_or_else(|| panic!("no agent leg in {v:#}"));
    let mut returned: Vec<String> = api_leg
        .as_object()
        .expect("object")
        .keys()
        .cloned()
        .collect();
    returned.sort();
    stored.sort();
    assert_eq!(returned, stored, "every stored column, nothing else");
    // …each documented in the OpenAPI schema with its type.
    let (_, doc) = srv.http_get("/api/openapi.json");
    let doc: serde_json::Value = serde_json::from_str(&doc).expect("OpenAPI JSON");
    let props = &doc["components"]["schemas"]["Cdr"]["properties"];
    for (k, value) in api_leg.as_object().expect("object") {
        // OpenAPI 3.1: `type` is a name or a list of names ("null" for nullable).
        let types: Vec<&str> = match &props[k]["type"] {
            serde_json::Value::String(t) => vec![t.as_str()],
            serde_json::Value::Array(a) => a.iter().filter_map(|t| t.as_str()).collect(),
            _ => panic!("`{k}` is not in the OpenAPI Cdr schema"),
        };
        let ok = types.iter().any(|t| match *t {
            "integer" => value.is_i64(),
            "string" => value.is_string(),
            "null" => value.is_null(),
            _ => true,
        });
        assert!(
            ok,
            "`{k}` = {value} does not match the OpenAPI types {types:?}"
        );
    }
    assert_eq!(api_leg["parent_call_id"], cdr.call_id.as_str());
    assert_eq!(
        api_leg["node_id"],
        agent_leg.node_id.as_deref().expect("node")
    );
}

#[test]
fn ring_no_answer_rolls_over_and_auto_pauses() {
    let srv = server(2);
    let (alice_port, bob_port) = (free_udp_port(), free_udp_port());
    register(&srv, "alice", "alice-secret", alice_port);
    std::thread::sleep(Duration::from_millis(50));
    register(&srv, "bob", "bob-secret", bob_port);
    let rtp = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let rtp_port = rtp.local_addr().expect("addr").port();
    // Alice has been idle longest: she is rung first, never answers.
    let alice = phone(
        alice_port,
        &AgentPhone::new(20_000).ring().until_cancel(10_000),
    )
    .spawn(srv.sip, "alice");
    let bob = phone(
        bob_port,
        &AgentPhone::new(20_000)
            .ring()
            .answer(rtp_port)
            .expect_bye(20_000),
    )
    .spawn(srv.sip, "bob");
    let caller = Uac::new()
        .invite()
        .pause(300)
        .info_digit('0')
        .pause(6_000)
        .bye();
    let caller = Sipp::from_xml(&caller.xml()).run(srv.sip, "100");
    caller.assert_ok("caller");
    alice
        .wait()
        .assert_ok("alice: rung, then CANCELled after the ring timeout");
    bob.wait().assert_ok("bob: answered the rolled-over call");
    assert_eq!(
        agent_state(&srv, "alice"),
        "paused",
        "missed once with auto_pause_after = 1"
    );
    let cdr = srv.wait_cdr(
        &call_id_from_trace(&caller.messages).expect("id"),
        Duration::from_secs(5),
    );
    assert_eq!(cdr.disposition, "completed");
}

#[test]
fn busy_agent_is_skipped_for_the_next_one() {
    let srv = server(10);
    let (alice_port, bob_port) = (free_udp_port(), free_udp_port());
    register(&srv, "alice", "alice-secret", alice_port);
    std::thread::sleep(Duration::from_millis(50));
    register(&srv, "bob", "bob-secret", bob_port);
    let rtp = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let rtp_port = rtp.local_addr().expect("addr").port();
    let alice =
        common::phone(alice_port, &AgentPhone::new(20_000).refuse(486)).spawn(srv.sip, "alice");
    let bob = phone(
        bob_port,
        &AgentPhone::new(20_000)
            .ring()
            .answer(rtp_port)
            .expect_bye(20_000),
    )
    .spawn(srv.sip, "bob");
    let caller = Uac::new()
        .invite()
        .pause(300)
        .info_digit('0')
        .pause(3_000)
        .bye();
    Sipp::from_xml(&caller.xml())
        .run(srv.sip, "100")
        .assert_ok("caller");
    alice.wait().assert_ok("alice: busy");
    bob.wait().assert_ok("bob: answered");
}

#[test]
fn caller_hanging_up_while_agent_rings_cancels_the_agent() {
    let srv = server(30);
    let alice_port = free_udp_port();
    register(&srv, "alice", "alice-secret", alice_port);
    let alice = phone(
        alice_port,
        &AgentPhone::new(20_000).ring().until_cancel(15_000),
    )
    .spawn(srv.sip, "alice");
    let caller = Uac::new()
        .invite()
        .pause(300)
        .info_digit('0')
        .pause(1_500)
        .bye();
    let caller = Sipp::from_xml(&caller.xml()).run(srv.sip, "100");
    caller.assert_ok("caller");
    alice
        .wait()
        .assert_ok("alice: CANCEL after the caller left");
    let cdr = srv.wait_cdr(
        &call_id_from_trace(&caller.messages).expect("id"),
        Duration::from_secs(5),
    );
    assert_eq!(cdr.disposition, "abandoned");
    wait_agent_state(&srv, "alice", "available");
}

#[test]
fn no_agent_logged_in_runs_the_overflow() {
    let srv = server(10);
    // The sales queue has no members: overflow prompt, then the dialplan's
    // on_timeout (a closing prompt and hang-up). Never dead air.
    let caller = Uac::new()
        .invite()
        .pause(300)
        .info_digit('4')
        .expect_bye(15_000);
    let caller = Sipp::from_xml(&caller.xml()).run(srv.sip, "100");
    caller.assert_ok("caller");
    let cdr = srv.wait_cdr(
        &call_id_from_trace(&caller.messages).expect("id"),
        Duration::from_secs(5),
    );
    assert_eq!(cdr.path, "main > sales > bye");
    assert_eq!(cdr.hangup_by.as_deref(), Some("ringback"));
}

#[test]
fn wrong_password_and_unknown_user_are_refused_alike() {
    let srv = server(10);
    for (user, pw) in [("alice", "wrong"), ("mallory", "whatever")] {
        Sipp::from_xml(&scenario::register(user, pw, 300, 403))
            .run(srv.sip, user)
            .assert_ok("REGISTER refused");
    }
    assert_eq!(agent_state(&srv, "alice"), "logged-out");
    let (status, _) = srv.http_get("/api/v1/agents");
    assert_eq!(status, 200);
}

#[test]
fn supervisor_pauses_and_unpauses_an_agent_over_the_api() {
    let srv = server(10);
    register(&srv, "alice", "alice-secret", free_udp_port());
    let (status, body) = srv.http_post("/api/v1/agents/alice/pause", r#"{"reason":"lunch"}"#);
    assert_eq!(status, 200, "{body}");
    assert_eq!(agent_state(&srv, "alice"), "paused");
    let (status, _) = srv.http_post("/api/v1/agents/alice/unpause", "");
    assert_eq!(status, 200);
    assert_eq!(agent_state(&srv, "alice"), "available");
    let (status, body) = srv.http_post("/api/v1/agents/alice/pause", r#"{"reason": 42}"#);
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("reason"), "{body}");
    let (status, _) = srv.http_post("/api/v1/agents/nobody/pause", "");
    assert_eq!(status, 404);
}

#[test]
fn feature_codes_from_the_agents_own_phone() {
    let srv = server(10);
    let port = free_udp_port();
    register(&srv, "alice", "alice-secret", port);
    let dial = |code: &str| {
        Sipp::from_xml(
            &Uac::new()
                .calling_as("alice")
                .invite()
                .expect_bye(10_000)
                .xml(),
        )
        .arg("-p")
        .arg(port)
        .run(srv.sip, code)
        .assert_ok(code)
    };
    dial("*12");
    wait_agent_state(&srv, "alice", "logged-out");
    dial("*11");
    wait_agent_state(&srv, "alice", "available");
    dial("*13");
    wait_agent_state(&srv, "alice", "paused");
    dial("*13");
    wait_agent_state(&srv, "alice", "available");
    // The same code from another address (not alice's registered phone)
    // changes nothing: there is no such number for strangers.
    Sipp::from_xml(&Uac::new().calling_as("alice").invite_rejected(404).xml())
        .run(srv.sip, "*12")
        .assert_ok("*12 from a stranger");
    assert_eq!(agent_state(&srv, "alice"), "available");
}
