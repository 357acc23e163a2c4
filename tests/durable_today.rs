//! Issue 18, "'Today' forgets on restart": `/api/v1/stats` must say the same
//! after a restart as before it. A day's worth of traffic in small: callers
//! who only use the IVR, one who hangs up while waiting in the queue, one
//! answered by an agent who hangs up after a short talk, a callback the
//! customer takes and one that fails. Then SIGTERM, a new process on the
//! same store (SQLite file or PostgreSQL database), and the same figures.
//!
//! `stats.timezone` is `Europe/Berlin`, so "today" is Berlin's day in both
//! processes (the unit tests in `src/live.rs` check the day boundary
//! itself).

mod common;

use std::time::Duration;

use common::pg::PgDb;
use common::scenario::{self, AgentPhone, Uac};
use common::{free_udp_port, poll_until, Server, ServerOpts, Sipp};
use serde_json::Value;

const PLANS: [(&str, &str); 2] = [
    (
        "ivr.toml",
        r#"
[dialplan]
name = "ivr"
numbers = ["300"]
start = "menu"
operator = "operator"

[nodes.menu]
type = "menu"
prompt = ["welcome", "main-menu"]
options = { "1" = "bye" }
timeout = 30

[nodes.bye]
type = "hangup"
"#,
    ),
    (
        "queue.toml",
        r#"
[dialplan]
name = "queue"
numbers = ["100"]
start = "q"
operator = "operator"

[nodes.q]
type = "queue"
queue = "operator"
"#,
    ),
];

const COMPLETED_NUMBER: &str = "+15551230001";
const FAILED_NUMBER: &str = "+15551230002";

fn server(customer_port: u16, database_url: Option<String>) -> Server {
    Server::start(ServerOpts {
        database_url,
        dialplans: PLANS
            .iter()
            .map(|(n, t)| ((*n).to_string(), (*t).to_string()))
            .collect(),
        extra_config: format!(
            r#"
[stats]
timezone = "Europe/Berlin"

[trunk]
address = "127.0.0.1:{customer_port}"
caller_id = "+15550100"

[queues.operator]
ring_timeout_secs = 15
announce_every_secs = 0
wrapup_secs = 1

[queues.operator.callback]
max_attempts = 1
accept_timeout_secs = 8

[agents.alice]
password = "alice-secret"
queues = ["operator"]
"#
        ),
        ..ServerOpts::default()
    })
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn get(srv: &Server, path: &str) -> Value {
    let (status, body) = srv.http_get(path);
    assert_eq!(status, 200, "GET {path}: {body}");
    json(&body)
}

fn post(srv: &Server, path: &str, body: &str) -> Value {
    let (status, resp) = srv.http_post(path, body);
    assert!(
        status == 200 || status == 201,
        "POST {path}: {status} {resp}"
    );
    json(&resp)
}

/// Poll `f` every 100 ms until it returns `Some`, at most `timeout`.
fn wait_for<T>(what: &str, srv: &Server, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
    poll_until(timeout, Duration::from_millis(100), f, || {
        format!("timed out waiting for {what}; server log:\n{}", srv.log())
    })
}

fn alice_state(srv: &Server) -> String {
    get(srv, "/api/v1/agents")["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["id"] == "alice"))
        .and_then(|a| a["state"].as_str())
        .unwrap_or_default()
        .to_string()
}

fn wait_alice(srv: &Server, state: &str) {
    wait_for(
        &format!("alice {state}"),
        srv,
        Duration::from_secs(10),
        || (alice_state(srv) == state).then_some(()),
    );
}

fn wait_callback(srv: &Server, id: &str, state: &str) {
    wait_for(
        &format!("callback {id} {state}"),
        srv,
        Duration::from_secs(20),
        || (get(srv, &format!("/api/v1/callbacks/{id}"))["state"] == state).then_some(()),
    );
}

/// Alice's phone for one call: answers, and either hangs up after
/// `talk_ms` or waits for ringback's BYE.
fn alice_phone(srv: &Server, port: u16, rtp: u16, talk_ms: Option<u64>) -> common::SippProcess {
    let phone = AgentPhone::new(30_000).ring().answer(rtp);
    let phone = match talk_ms {
        Some(ms) => phone.pause(ms).hang_up(),
        None => phone.expect_bye(30_000),
    };
    Sipp::from_xml(&phone.xml())
        .arg("-p")
        .arg(port)
        .spawn(srv.sip, "alice")
}

/// The traffic of the "day"; returns when every figure has been counted.
fn make_a_day(srv: &Server, customer_port: u16) {
    // Two callers who only use the IVR: in the call records (and the
    // repeat-call rate), not in the queue figures.
    for _ in 0..2 {
        Sipp::from_xml(&Uac::new().invite().pause(1_500).bye().xml())
            .run(srv.sip, "300")
            .assert_ok("IVR caller");
    }

    let alice_port = free_udp_port();
    Sipp::from_xml(&scenario::register("alice", "alice-secret", 300, 200))
        .arg("-p")
        .arg(alice_port)
        .run(srv.sip, "alice")
        .assert_ok("REGISTER alice");
    wait_alice(srv, "available");

    // Abandoned: alice is paused, the caller waits 2 s and hangs up.
    post(srv, "/api/v1/agents/alice/pause", r#"{"reason":"coffee"}"#);
    wait_alice(srv, "paused");
    Sipp::from_xml(&Uac::new().invite().pause(2_000).bye().xml())
        .run(srv.sip, "100")
        .assert_ok("caller who abandons");
    post(srv, "/api/v1/agents/alice/unpause", "");
    wait_alice(srv, "available");

    // Answered and handled: alice talks for 2.5 s and hangs up.
    let rtp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let rtp_port = rtp.local_addr().expect("addr").port();
    let alice = alice_phone(srv, alice_port, rtp_port, Some(2_500));
    Sipp::from_xml(&Uac::new().invite().expect_bye(30_000).xml())
        .run(srv.sip, "100")
        .assert_ok("caller answered by alice");
    alice.wait().assert_ok("alice answers the caller");
    wait_alice(srv, "available");

    // A callback the customer takes (presses 1, talks, hangs up).
    let alice = alice_phone(srv, alice_port, rtp_port, None);
    let customer = common::phone(
        customer_port,
        &AgentPhone::new(30_000)
            .ring()
            .answer_own_media()
            .pause(1_500)
            .press('1')
            .pause(1_500)
            .hang_up(),
    )
    .spawn(srv.sip, "x");
    let id = post(
        srv,
        "/api/v1/callbacks",
        &format!(r#"{{"number":"{COMPLETED_NUMBER}","queue":"operator"}}"#),
    )["id"]
        .as_str()
        .expect("id")
        .to_string();
    customer.wait().assert_ok("customer takes the callback");
    alice.wait().assert_ok("alice's callback call");
    wait_callback(srv, &id, "completed");
    wait_alice(srv, "available");

    // A callback that fails: the customer is busy, one attempt allowed.
    let alice = alice_phone(srv, alice_port, rtp_port, None);
    let customer =
        common::phone(customer_port, &AgentPhone::new(30_000).refuse(486)).spawn(srv.sip, "x");
    let id = post(
        srv,
        "/api/v1/callbacks",
        &format!(r#"{{"number":"{FAILED_NUMBER}","queue":"operator"}}"#),
    )["id"]
        .as_str()
        .expect("id")
        .to_string();
    customer.wait().assert_ok("busy customer");
    alice.wait().assert_ok("alice's failed callback call");
    wait_callback(srv, &id, "failed");

    wait_for("every figure counted", srv, Duration::from_secs(10), || {
        let s = get(srv, "/api/v1/stats");
        (s["calls_today"] == 4
            && s["callbacks_completed_today"] == 1
            && s["callbacks_failed_today"] == 1
            && s["abandon_rate_pct"].is_number()
            && s["avg_handle_secs"].is_number())
        .then_some(())
    });
}

/// Stop with SIGTERM (a clean shutdown) and start a new process on the
/// same directory and store.
fn restart(mut srv: Server) -> Server {
    srv.signal("TERM");
    assert!(
        srv.wait_exit(Duration::from_secs(10)).is_some(),
        "no exit after SIGTERM:\n{}",
        srv.log()
    );
    srv.restart()
}

fn berlin_today() -> chrono::NaiveDate {
    chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Berlin)
        .date_naive()
}

fn secs(v: &Value) -> i64 {
    v.as_i64()
        .unwrap_or_else(|| panic!("not a number of seconds: {v}"))
}

/// `after` says what `before` said. Durations are whole seconds measured
/// by the call a moment before the queue log measured them: ±1 s.
fn assert_same_figures(before: &Value, after: &Value) {
    for key in [
        "calls_today",
        "service_level_pct",
        "service_level_secs",
        "abandon_rate_pct",
        "callback_completion_pct",
        "repeat_call_rate_pct",
        "callbacks_completed_today",
        "callbacks_failed_today",
    ] {
        assert_eq!(
            after[key], before[key],
            "`{key}` changed across the restart\nbefore: {before:#}\nafter: {after:#}"
        );
    }
    assert!(
        (secs(&after["avg_handle_secs"]) - secs(&before["avg_handle_secs"])).abs() <= 1,
        "avg_handle_secs\nbefore: {before:#}\nafter: {after:#}"
    );
    let (b, a) = (
        before["intervals"].as_array().expect("intervals"),
        after["intervals"].as_array().expect("intervals"),
    );
    assert_eq!(
        a.len(),
        b.len(),
        "intervals\nbefore: {before:#}\nafter: {after:#}"
    );
    for (a, b) in a.iter().zip(b) {
        assert_eq!((&a["start"], &a["calls"]), (&b["start"], &b["calls"]));
        match (&a["avg_wait_secs"], &b["avg_wait_secs"]) {
            (Value::Null, Value::Null) => {}
            (x, y) => assert!((secs(x) - secs(y)).abs() <= 1, "{a} vs {b}"),
        }
    }
}

fn figures_survive_a_restart(database_url: Option<String>) {
    let customer_port = free_udp_port();
    let srv = server(customer_port, database_url);
    let day = berlin_today();
    make_a_day(&srv, customer_port);
    let before = get(&srv, "/api/v1/stats");
    // What the day was: 2 queued callers + 2 callback attempts; answered:
    // the caller and the customer who took the callback; abandoned: 1.
    assert_eq!(before["calls_today"], 4, "{before:#}");
    assert_eq!(before["abandon_rate_pct"], 33.3, "{before:#}");
    assert_eq!(before["service_level_pct"], 66.7, "{before:#}");
    assert_eq!(before["callback_completion_pct"], 50.0, "{before:#}");
    assert!(secs(&before["avg_handle_secs"]) >= 2, "{before:#}");

    let srv = restart(srv);
    let after = get(&srv, "/api/v1/stats");
    if berlin_today() != day {
        eprintln!("Berlin's midnight passed during the test: a new day, nothing to compare");
        return;
    }
    assert_same_figures(&before, &after);
    assert!(
        srv.log().contains("today's figures rebuilt from the store"),
        "{}",
        srv.log()
    );
}

#[test]
fn todays_figures_survive_a_restart_sqlite() {
    figures_survive_a_restart(None);
}

#[test]
fn todays_figures_survive_a_restart_postgres() {
    let db = PgDb::create();
    figures_survive_a_restart(Some(db.url()));
}
