//! After-hours callbacks end to end: SIPp callers reach a closed line, press
//! 1 for "we will call you back when we open", and are called back — a SIPp
//! agent phone first, then a SIPp customer phone behind the trunk — only
//! once the `hours` node opens, a few seconds later, in the order they
//! asked.

mod common;

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Timelike, Utc};
use common::scenario::{self, AgentPhone, Uac};
use common::{callback_opts, free_udp_port, Server, ServerOpts, Sipp};
use serde_json::Value;

const FIRST: &str = "+15550001111";
const SECOND: &str = "+15550002222";

/// Closed until `opens` (UTC, on the minute), open ten minutes from then.
fn plan(opens: DateTime<Utc>) -> String {
    let from = opens.format("%H:%M");
    let to = (opens + TimeDelta::minutes(10)).format("%H:%M");
    format!(
        r#"
[dialplan]
name = "after-hours"
numbers = ["100"]
start = "hours"
operator = "operator"
timezone = "UTC"

[nodes.hours]
type = "hours"
open = [ {{ days = "daily", from = "{from}", to = "{to}" }} ]
open_next = "q"
closed_next = "closed"

[nodes.q]
type = "queue"
queue = "operator"

[nodes.closed]
type = "menu"
prompt = "callback-offer"
options = {{ "1" = "later" }}
on_fail = "bye"

[nodes.later]
type = "callback"
queue = "operator"
when_open = "hours"
confirm_prompt = "callback-confirm"

[nodes.bye]
type = "hangup"
prompt = "goodbye"
"#
    )
}

/// The first whole minute at least `lead` from now.
fn next_minute_after(lead: TimeDelta) -> DateTime<Utc> {
    let t = Utc::now() + lead + TimeDelta::minutes(1);
    t.with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .expect("a valid time")
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// The callback of `number` (the newest), with its history.
fn callback_of(srv: &Server, number: &str) -> Value {
    let (status, body) = srv.http_get(&format!(
        "/api/v1/callbacks?number={}",
        number.replace('+', "%2B")
    ));
    assert_eq!(status, 200, "{body}");
    let list = json(&body);
    let id = list["callbacks"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no callback for {number}: {body}"))
        .to_string();
    let (status, body) = srv.http_get(&format!("/api/v1/callbacks/{id}"));
    assert_eq!(status, 200, "{body}");
    json(&body)
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("not a time: {v}"))
}

/// When the callback went to `dialing` (the agent answered for it).
fn dialed_at(cb: &Value) -> Option<DateTime<Utc>> {
    cb["events"]
        .as_array()?
        .iter()
        .find(|e| e["to"] == "dialing")
        .map(|e| time(&e["at"]))
}

/// A caller on the closed line: hears the offer, presses 1, hears the
/// confirmation and is hung up on.
fn ask_for_callback(srv: &Server, number: &str) {
    let caller = Uac::new()
        .calling_as(number)
        .invite()
        .pause(1_500)
        .info_digit('1')
        .expect_bye(20_000);
    Sipp::from_xml(&caller.xml())
        .run(srv.sip, "100")
        .assert_ok("caller asking for a callback when the line opens");
}

/// One callback conversation: alice answers (whisper, music), the customer
/// answers, presses 1, talks and hangs up. Returns the number dialed.
fn one_callback(srv: &Server, alice_port: u16, customer_port: u16) -> String {
    let rtp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let alice = Sipp::from_xml(
        &AgentPhone::new(60_000)
            .ring()
            .answer(rtp.local_addr().expect("addr").port())
            .expect_bye(30_000)
            .xml(),
    )
    .arg("-p")
    .arg(alice_port)
    .spawn(srv.sip, "alice");
    let customer = common::phone(
        customer_port,
        &AgentPhone::new(60_000)
            .ring()
            .answer_own_media()
            .pause(1_500)
            .press('1')
            .pause(1_000)
            .hang_up(),
    )
    .run(srv.sip, "x");
    customer.assert_ok("customer called back");
    alice.wait().assert_ok("agent");
    customer
        .messages
        .lines()
        .find(|l| l.starts_with("INVITE sip:"))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn after_hours_callbacks_are_dialed_when_the_line_opens_in_request_order() {
    let opens = next_minute_after(TimeDelta::seconds(25));
    let customer_port = free_udp_port();
    let srv = Server::start(ServerOpts {
        dialplans: vec![("closed.toml".into(), plan(opens))],
        ..callback_opts(
            &format!("[trunk]\naddress = \"127.0.0.1:{customer_port}\"\ncaller_id = \"+15550100\""),
            "retry_after_secs = 600",
        )
    });

    // Two callers, while closed: FIRST, then SECOND.
    ask_for_callback(&srv, FIRST);
    ask_for_callback(&srv, SECOND);
    assert!(
        Utc::now() < opens - TimeDelta::seconds(4),
        "the test took too long to reach the opening"
    );
    let first = callback_of(&srv, FIRST);
    let second = callback_of(&srv, SECOND);
    for cb in [&first, &second] {
        assert_eq!(cb["state"], "scheduled", "{cb:#}");
        assert_eq!(cb["origin"], "ivr");
        assert_eq!(time(&cb["next_attempt_at"]), opens, "{cb:#}");
    }
    assert!(
        time(&first["entered_at"]) < time(&second["entered_at"]),
        "places in line are the request times: {first:#} {second:#}"
    );

    // An agent logs in well before the opening: the callbacks still wait
    // (without `when_open` they would be dialed at once).
    let alice_port = free_udp_port();
    Sipp::from_xml(&scenario::register("alice", "alice-secret", 300, 200))
        .arg("-p")
        .arg(alice_port)
        .run(srv.sip, "alice")
        .assert_ok("REGISTER");
    let until_opening = (opens - Utc::now() - TimeDelta::seconds(1))
        .to_std()
        .unwrap_or_default();
    std::thread::sleep(until_opening);
    for number in [FIRST, SECOND] {
        let cb = callback_of(&srv, number);
        assert_eq!(
            cb["state"], "scheduled",
            "dialed before the opening: {cb:#}"
        );
        assert_eq!(cb["attempts"], 0);
        assert_eq!(dialed_at(&cb), None, "{cb:#}");
    }

    // The line opens: FIRST is called back, then SECOND.
    let started = Instant::now();
    let dialed = one_callback(&srv, alice_port, customer_port);
    assert!(
        dialed.contains(FIRST),
        "first called back: {dialed}\n{}",
        srv.log()
    );
    let dialed = one_callback(&srv, alice_port, customer_port);
    assert!(
        dialed.contains(SECOND),
        "then the second: {dialed}\n{}",
        srv.log()
    );
    assert!(started.elapsed() < Duration::from_secs(90));

    let first = callback_of(&srv, FIRST);
    let second = callback_of(&srv, SECOND);
    let (a, b) = (
        dialed_at(&first).expect("first dialed"),
        dialed_at(&second).expect("second dialed"),
    );
    assert!(a >= opens, "dialed at {a}, before the opening at {opens}");
    assert!(b > a, "request order: first at {a}, second at {b}");
    assert_eq!(first["state"], "completed", "{first:#}");
    assert_eq!(second["state"], "completed", "{second:#}");
}
