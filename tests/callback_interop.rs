//! Callbacks end to end with real peers: a SIPp agent phone, a SIPp
//! customer phone behind the "trunk", a SIPp caller in the IVR, the REST
//! API, the real SQLite store, and a SIGKILL in the middle.

mod common;

use std::time::{Duration, Instant};

use common::scenario::{self, AgentPhone, Uac};
use common::{free_udp_port, poll_until, Server, ServerOpts, Sipp};
use serde_json::Value;

const CUSTOMER: &str = "+15551230001";

const PLAN: &str = r#"
[dialplan]
name = "callbacks"
numbers = ["100"]
start = "q"
operator = "operator"

[nodes.q]
type = "queue"
queue = "operator"
callback = { offer = true, after = 1, key = "1" }
"#;

/// A server whose trunk points at `customer_port`.
fn server(customer_port: u16, policy: &str) -> Server {
    Server::start(ServerOpts {
        dialplans: vec![("cb.toml".into(), PLAN.into())],
        extra_config: format!(
            r#"
[trunk]
address = "127.0.0.1:{customer_port}"
caller_id = "+15550100"

[queues.operator]
ring_timeout_secs = 10
announce_every_secs = 0
wrapup_secs = 1

[queues.operator.callback]
retry_after_secs = 3
max_attempts = 3
accept_timeout_secs = 8
{policy}

[agents.alice]
password = "alice-secret"
queues = ["operator"]
"#
        ),
        ..ServerOpts::default()
    })
}

fn register_alice(srv: &Server, port: u16) {
    Sipp::from_xml(&scenario::register("alice", "alice-secret", 300, 200))
        .arg("-p")
        .arg(port)
        .run(srv.sip, "alice")
        .assert_ok("REGISTER");
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn request_callback(srv: &Server, number: &str) -> String {
    let (status, body) = srv.http_post(
        "/api/v1/callbacks",
        &format!(r#"{{"number":"{number}","queue":"operator","context":"web form: question about invoice 42"}}"#),
    );
    assert_eq!(status, 201, "{body}");
    json(&body)["id"].as_str().expect("id").to_string()
}

fn callback(srv: &Server, id: &str) -> Value {
    let (status, body) = srv.http_get(&format!("/api/v1/callbacks/{id}"));
    assert_eq!(status, 200, "{body}");
    json(&body)
}

fn wait_state(srv: &Server, id: &str, state: &str, timeout: Duration) -> Value {
    poll_until(
        timeout,
        Duration::from_millis(100),
        || Some(callback(srv, id)).filter(|cb| cb["state"] == state),
        || {
            let cb = callback(srv, id);
            format!(
                "callback {id} is {}, expected {state}: {cb:#}\n{}",
                cb["state"],
                srv.log()
            )
        },
    )
}

fn states(cb: &Value) -> Vec<String> {
    cb["events"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|x| x["to"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The customer's phone: answers, listens, presses 1, talks, hangs up.
fn happy_customer() -> AgentPhone {
    AgentPhone::new(30_000)
        .ring()
        .answer_own_media()
        .pause(1_500)
        .press('1')
        .pause(1_500)
        .hang_up()
}

#[test]
fn web_callback_rings_agent_first_then_customer_who_presses_1() {
    let customer_port = free_udp_port();
    let srv = server(customer_port, "");
    let alice_port = free_udp_port();
    register_alice(&srv, alice_port);
    let rtp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let alice = Sipp::from_xml(
        &AgentPhone::new(30_000)
            .ring()
            .answer(rtp.local_addr().expect("a").port())
            .expect_bye(30_000)
            .xml(),
    )
    .arg("-p")
    .arg(alice_port)
    .spawn(srv.sip, "alice");
    let customer = common::phone(customer_port, &happy_customer()).spawn(srv.sip, "x");

    let id = request_callback(&srv, CUSTOMER);
    let customer = customer.wait();
    customer.assert_ok("customer phone");
    let alice = alice.wait();
    alice.assert_ok("agent phone");
    assert!(
        alice
            .messages
            .contains(&format!("X-Ringback-Callback: {id}")),
        "agent INVITE names the callback:\n{}",
        alice.messages
    );
    assert!(alice
        .messages
        .contains("X-Ringback-Context: web form: question about invoice 42"));
    assert!(
        customer
            .messages
            .contains(&format!("INVITE sip:{CUSTOMER}@127.0.0.1:{customer_port}")),
        "customer is dialed through the trunk:\n{}",
        customer.messages
    );
    let cb = wait_state(&srv, &id, "completed", Duration::from_secs(10));
    let s = states(&cb);
    for st in ["scheduled", "dialing", "connected", "completed"] {
        assert!(s.contains(&st.to_string()), "history {s:?} lacks {st}");
    }
    assert_eq!(cb["attempts"], 1);
}

#[test]
fn busy_customer_is_retried_after_the_backoff() {
    let customer_port = free_udp_port();
    let srv = server(customer_port, "");
    let alice_port = free_udp_port();
    register_alice(&srv, alice_port);
    let rtp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    // Alice answers both attempts.
    let alice = Sipp::from_xml(
        &AgentPhone::new(30_000)
            .ring()
            .answer(rtp.local_addr().expect("a").port())
            .expect_bye(30_000)
            .xml(),
    )
    .arg("-p")
    .arg(alice_port)
    .arg("-m")
    .arg(2)
    .spawn(srv.sip, "alice");
    let busy =
        common::phone(customer_port, &AgentPhone::new(30_000).refuse(486)).spawn(srv.sip, "x");
    let id = request_callback(&srv, CUSTOMER);
    busy.wait().assert_ok("customer busy");
    let t_busy = Instant::now();
    let retry = wait_state(&srv, &id, "retry_wait", Duration::from_secs(5));
    assert_eq!(retry["last_result"], "busy");
    let customer = common::phone(customer_port, &happy_customer()).run(srv.sip, "x");
    customer.assert_ok("customer answers the retry");
    assert!(
        t_busy.elapsed() >= Duration::from_millis(2_500),
        "retried only after the 3 s backoff"
    );
    alice.wait().assert_ok("agent phone, two attempts");
    let cb = wait_state(&srv, &id, "completed", Duration::from_secs(10));
    assert_eq!(cb["attempts"], 2);
    assert!(states(&cb).contains(&"retry_wait".to_string()));
}

#[test]
fn api_guards_dedupe_toll_fraud_and_validation() {
    let srv = server(free_udp_port(), "");
    let id = request_callback(&srv, CUSTOMER);
    let (status, body) = srv.http_post(
        "/api/v1/callbacks",
        &format!(r#"{{"number":"{CUSTOMER}","queue":"operator"}}"#),
    );
    assert_eq!(status, 409, "dedupe: {body}");
    let (status, body) = srv.http_post(
        "/api/v1/callbacks",
        r#"{"number":"+1 900 555 1234","queue":"operator"}"#,
    );
    assert_eq!(status, 403, "premium rate is denied: {body}");
    assert_eq!(json(&body)["code"], "denied");
    let (status, body) = srv.http_post(
        "/api/v1/callbacks",
        r#"{"number":"call me","queue":"operator"}"#,
    );
    assert_eq!(
        (status, json(&body)["code"].clone()),
        (422, Value::from("invalid_number")),
        "{body}"
    );
    let (status, body) = srv.http_post("/api/v1/callbacks", r#"{"queue":"operator"}"#);
    assert_eq!(status, 422);
    assert!(body.contains("`number` is required"), "{body}");
    let (status, body) = srv.http_post(
        "/api/v1/callbacks",
        r#"{"number":"+15551230002","queue":"nope"}"#,
    );
    assert_eq!(status, 422, "{body}");
    let (status, _) = srv.http_post("/api/v1/callbacks", "not json");
    assert_eq!(status, 400);
    let (status, body) = srv.http_get("/api/v1/callbacks?state=scheduled");
    assert_eq!(status, 200);
    assert!(body.contains(&id), "{body}");
    let (status, body) = srv.http_post(
        &format!("/api/v1/callbacks/{id}/cancel"),
        r#"{"reason":"customer emailed instead"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let cb = callback(&srv, &id);
    assert_eq!(cb["state"], "cancelled");
    assert!(
        cb["events"]
            .as_array()
            .is_some_and(|e| e.iter().any(|x| x["reason"]
                .as_str()
                .is_some_and(|r| r.contains("customer emailed instead")))),
        "the cancel reason is in the history: {cb:#}"
    );
    let (status, _) = srv.http_get("/api/v1/callbacks/nope");
    assert_eq!(status, 404);
    // An ended callback still exists: acting on it again is a conflict
    // (409), not an unknown id (404).
    for (action, body) in [
        ("cancel", "{}"),
        ("reschedule", r#"{"at":"2030-01-01T10:00:00Z"}"#),
    ] {
        let (status, body) = srv.http_post(&format!("/api/v1/callbacks/{id}/{action}"), body);
        assert_eq!(status, 409, "{action} of a cancelled callback: {body}");
        assert!(body.contains("\"conflict\""), "{action}: {body}");
    }
    // After the cancel the number may ask again.
    request_callback(&srv, CUSTOMER);
}

#[test]
fn caller_presses_1_in_the_queue_hangs_up_and_is_called_back() {
    let customer_port = free_udp_port();
    let srv = server(customer_port, "");
    // Nobody is logged in: the caller waits, is offered a callback after
    // 1 s, presses 1 (accept) and 1 (this number), hears the confirmation
    // and is hung up on.
    let caller = Uac::new()
        .invite()
        .pause(3_500)
        .info_digit('1')
        .pause(1_000)
        .info_digit('1')
        .expect_bye(20_000);
    let caller = Sipp::from_xml(&caller.xml()).run(srv.sip, "100");
    caller.assert_ok("caller accepting a callback");
    let (_, body) = srv.http_get("/api/v1/callbacks?number=%2B15550123");
    let list = json(&body);
    let cb = &list["callbacks"][0];
    assert_eq!(cb["state"], "scheduled", "{body}");
    assert_eq!(cb["origin"], "ivr");
    let id = cb["id"].as_str().expect("id").to_string();
    let entered = cb["entered_at"].as_str().expect("entered").to_string();
    assert!(
        entered.as_str() < cb["created_at"].as_str().expect("created"),
        "keeps the place of the original call: {cb:#}"
    );

    // An agent logs in: ringback calls the agent, then the customer.
    let alice_port = free_udp_port();
    register_alice(&srv, alice_port);
    let rtp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let alice = Sipp::from_xml(
        &AgentPhone::new(30_000)
            .ring()
            .answer(rtp.local_addr().expect("a").port())
            .expect_bye(30_000)
            .xml(),
    )
    .arg("-p")
    .arg(alice_port)
    .spawn(srv.sip, "alice");
    let customer = common::phone(customer_port, &happy_customer()).run(srv.sip, "x");
    customer.assert_ok("customer");
    assert!(
        customer.messages.contains("INVITE sip:+15550123@"),
        "the caller's own number is called back"
    );
    alice.wait().assert_ok("agent");
    let done = wait_state(&srv, &id, "completed", Duration::from_secs(10));
    assert_eq!(done["attempts"], 1);
}

#[test]
fn closed_dialing_window_waits() {
    // A window that is certainly closed now: one minute, two hours from now.
    let later = chrono::Utc::now() + chrono::Duration::hours(2);
    let from = later.format("%H:%M").to_string();
    let to = (later + chrono::Duration::minutes(1))
        .format("%H:%M")
        .to_string();
    let customer_port = free_udp_port();
    let srv = server(
        customer_port,
        &format!("timezone = \"UTC\"\nwindow = [{{ days = \"daily\", from = \"{from}\", to = \"{to}\" }}]"),
    );
    register_alice(&srv, free_udp_port());
    let id = request_callback(&srv, CUSTOMER);
    std::thread::sleep(Duration::from_secs(2));
    let cb = callback(&srv, &id);
    assert_eq!(cb["state"], "scheduled", "{cb:#}");
    assert_eq!(cb["attempts"], 0);
    let next = cb["next_attempt_at"].as_str().expect("next attempt time");
    assert!(
        next.contains(&format!("T{from}")),
        "next attempt at the window's opening ({from}): {next}"
    );
    assert!(!states(&cb).contains(&"dialing".to_string()));
}

#[test]
fn callback_survives_sigkill_and_completes_exactly_once() {
    let customer_port = free_udp_port();
    let mut srv = server(customer_port, "");
    let id = request_callback(&srv, CUSTOMER);
    // Confirmed (201) means committed: crash right now.
    srv.kill9();
    let srv = srv.restart();
    let cb = callback(&srv, &id);
    assert!(
        matches!(cb["state"].as_str(), Some("scheduled" | "retry_wait")),
        "{cb:#}"
    );
    let alice_port = free_udp_port();
    register_alice(&srv, alice_port);
    let rtp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let alice = Sipp::from_xml(
        &AgentPhone::new(30_000)
            .ring()
            .answer(rtp.local_addr().expect("a").port())
            .expect_bye(30_000)
            .xml(),
    )
    .arg("-p")
    .arg(alice_port)
    .spawn(srv.sip, "alice");
    common::phone(customer_port, &happy_customer())
        .run(srv.sip, "x")
        .assert_ok("customer after the restart");
    alice.wait().assert_ok("agent after the restart");
    let cb = wait_state(&srv, &id, "completed", Duration::from_secs(10));
    let dialing = states(&cb).iter().filter(|s| *s == "dialing").count();
    assert_eq!(dialing, 1, "dialed exactly once: {cb:#}");
}

#[test]
fn zero_out_with_nobody_free_offers_a_callback_at_once() {
    const MENU: &str = r#"
[dialplan]
name = "menu"
numbers = ["200"]
start = "main"
operator = "operator"

[nodes.main]
type = "menu"
prompt = "digit-1"
options = { "1" = "bye" }
timeout = 10

[nodes.bye]
type = "hangup"
"#;
    let customer_port = free_udp_port();
    let srv = Server::start(ServerOpts {
        dialplans: vec![("menu.toml".into(), MENU.into())],
        extra_config: format!(
            "\n[trunk]\naddress = \"127.0.0.1:{customer_port}\"\n\n[queues.operator]\nannounce_every_secs = 0\ncallback_offer_on_zero_out = true\n"
        ),
        ..ServerOpts::default()
    });
    // 0, then (after "please hold" and the immediate offer) 1 = accept,
    // 1 = this number.
    let caller = Uac::new()
        .invite()
        .pause(300)
        .info_digit('0')
        .pause(3_500)
        .info_digit('1')
        .pause(800)
        .info_digit('1')
        .expect_bye(20_000);
    Sipp::from_xml(&caller.xml())
        .run(srv.sip, "200")
        .assert_ok("zero-out caller");
    let (_, body) = srv.http_get("/api/v1/callbacks?queue=operator");
    assert!(
        body.contains(r#""state":"scheduled""#),
        "a callback was stored: {body}"
    );
    assert!(
        srv.log().contains("zero-out with no agent free"),
        "{}",
        srv.log()
    );
}

#[test]
fn sigkill_while_dialing_the_customer_retries_and_completes_once() {
    let customer_port = free_udp_port();
    let mut srv = server(customer_port, "");
    let alice_port = free_udp_port();
    register_alice(&srv, alice_port);
    let rtp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let media = rtp.local_addr().expect("a").port();
    let alice = Sipp::from_xml(
        &AgentPhone::new(30_000)
            .ring()
            .answer(media)
            .expect_bye(60_000)
            .xml(),
    )
    .arg("-p")
    .arg(alice_port)
    .spawn(srv.sip, "alice");
    // The customer's phone rings and rings: we crash while it does.
    let ringing = common::phone(
        customer_port,
        &AgentPhone::new(30_000).ring().until_cancel(60_000),
    )
    .spawn(srv.sip, "x");
    let id = request_callback(&srv, CUSTOMER);
    wait_state(&srv, &id, "dialing", Duration::from_secs(15));
    srv.kill9();
    drop(ringing);
    drop(alice);
    let srv = srv.restart();
    let cb = callback(&srv, &id);
    assert_eq!(
        cb["state"], "scheduled",
        "a crash mid-dial is retried, not lost: {cb:#}"
    );
    let alice_port = free_udp_port();
    register_alice(&srv, alice_port);
    let alice = Sipp::from_xml(
        &AgentPhone::new(30_000)
            .ring()
            .answer(media)
            .expect_bye(30_000)
            .xml(),
    )
    .arg("-p")
    .arg(alice_port)
    .spawn(srv.sip, "alice");
    common::phone(customer_port, &happy_customer())
        .run(srv.sip, "x")
        .assert_ok("customer, second try");
    alice.wait().assert_ok("agent, second try");
    let cb = wait_state(&srv, &id, "completed", Duration::from_secs(10));
    let s = states(&cb);
    assert_eq!(s.iter().filter(|x| *x == "completed").count(), 1, "{s:?}");
    assert_eq!(
        s.iter().filter(|x| *x == "dialing").count(),
        2,
        "dialed before the crash and once after: {s:?}"
    );
    assert_eq!(
        cb["attempts"], 1,
        "the interrupted attempt is not counted: {cb:#}"
    );
}
