//! Issue 7, "Crash and restart": `kill -9` under load, then a restart on the
//! same SQLite file. Everything is checked the way a user sees it: the REST
//! API (agents, queues, calls, callbacks), the call records, the queue log
//! and the agent history in the store, and a new call that must work.
//!
//! Load at the moment of the crash:
//! - 20 callers listening to a menu prompt (`300`),
//! - 20 callers waiting with music in `support`, where nobody is logged in
//!   (`100`, callback offers on),
//! - 1 caller bridged to alice (`operator`, `200`),
//! - 1 caller for whom carol's phone is ringing (`sales`, `400`),
//! - 1 callback confirmed through the IVR and 1 through the API (`support`,
//!   waiting: nobody serves it),
//! - 1 callback in `dialing` (`billing`): bob answered, the customer's phone
//!   rings.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::scenario::{self, AgentPhone, Uac};
use common::{free_udp_port, poll_until, Server, ServerOpts, Sipp};
use serde_json::Value;

const LISTENERS: usize = 20;
const WAITERS: usize = 20;
const WEB_NUMBER: &str = "+15551230002";
const IVR_NUMBER: &str = "+15550999";
const DIALED_NUMBER: &str = "+15551230001";

const LISTEN: &str = r#"
[dialplan]
name = "listen"
numbers = ["300"]
start = "menu"
operator = "operator"

[nodes.menu]
type = "menu"
prompt = ["welcome", "main-menu", "support-menu", "phone-line-menu", "opening-hours"]
options = { "1" = "bye" }
timeout = 30

[nodes.bye]
type = "hangup"
"#;

const WAIT: &str = r#"
[dialplan]
name = "wait"
numbers = ["100"]
start = "q"
operator = "operator"

[nodes.q]
type = "queue"
queue = "support"
callback = { offer = true, after = 1, key = "1" }
"#;

const OPERATOR: &str = r#"
[dialplan]
name = "operator"
numbers = ["200"]
start = "q"
operator = "operator"

[nodes.q]
type = "queue"
queue = "operator"
"#;

const SALES: &str = r#"
[dialplan]
name = "sales"
numbers = ["400"]
start = "q"
operator = "operator"

[nodes.q]
type = "queue"
queue = "sales"
"#;

fn config(customer_port: u16) -> String {
    format!(
        r#"
[trunk]
address = "127.0.0.1:{customer_port}"
caller_id = "+15550100"

[queues.operator]
ring_timeout_secs = 60
announce_every_secs = 0
wrapup_secs = 1

[queues.sales]
ring_timeout_secs = 60
announce_every_secs = 0

[queues.billing]
ring_timeout_secs = 60
announce_every_secs = 0
wrapup_secs = 1

[queues.billing.callback]
retry_after_secs = 3
max_attempts = 3
accept_timeout_secs = 8

[queues.support]
announce_every_secs = 0

[queues.support.callback]
retry_after_secs = 3

[agents.alice]
password = "alice-secret"
queues = ["operator"]

[agents.bob]
password = "bob-secret"
queues = ["billing"]

[agents.carol]
password = "carol-secret"
queues = ["sales"]
"#
    )
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn get(srv: &Server, path: &str) -> Value {
    let (status, body) = srv.http_get(path);
    assert_eq!(status, 200, "GET {path}: {body}");
    json(&body)
}

/// Poll `f` every 100 ms until it returns `Some`, at most `timeout`.
fn wait_for<T>(what: &str, srv: &Server, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
    poll_until(timeout, Duration::from_millis(100), f, || {
        format!("timed out waiting for {what}; server log:\n{}", srv.log())
    })
}

fn register(srv: &Server, user: &str, port: u16) {
    Sipp::from_xml(&scenario::register(
        user,
        &format!("{user}-secret"),
        300,
        200,
    ))
    .arg("-p")
    .arg(port)
    .run(srv.sip, user)
    .assert_ok(&format!("REGISTER {user}"));
}

fn agent_states(srv: &Server) -> HashMap<String, (String, bool)> {
    get(srv, "/api/v1/agents")["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .map(|a| {
            (
                a["id"].as_str().unwrap_or_default().to_string(),
                (
                    a["state"].as_str().unwrap_or_default().to_string(),
                    a["reachable"].as_bool().unwrap_or(false),
                ),
            )
        })
        .collect()
}

fn callback(srv: &Server, id: &str) -> Value {
    get(srv, &format!("/api/v1/callbacks/{id}"))
}

fn history(cb: &Value) -> Vec<String> {
    cb["events"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|x| x["to"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn post_callback(srv: &Server, number: &str, queue: &str) -> String {
    let (status, body) = srv.http_post(
        "/api/v1/callbacks",
        &format!(r#"{{"number":"{number}","queue":"{queue}","context":"crash test"}}"#),
    );
    assert_eq!(status, 201, "{body}");
    json(&body)["id"].as_str().expect("id").to_string()
}

/// (call_id, leg) of every call record still open.
fn open_rows(srv: &Server) -> Vec<(String, String, String)> {
    srv.cdrs()
        .into_iter()
        .filter(|c| c.disposition == "in_progress")
        .map(|c| (c.call_id, c.leg, c.dialed))
        .collect()
}

/// Calls whose last queue-lifecycle event in the queue log leaves them
/// waiting or talking (what a report or wallboard would count as live).
fn dangling_queue_calls(srv: &Server, up_to_id: i64) -> Vec<(String, String)> {
    let rows = srv.query_text(&format!(
        "SELECT call_id, event FROM queue_log WHERE id IN (SELECT MAX(id) FROM queue_log \
         WHERE call_id IS NOT NULL AND event IN ('ENTERQUEUE','CONNECT','ABANDON','EXITWITHTIMEOUT', \
         'EXITEMPTY','EXITWITHKEY','COMPLETECALLER','COMPLETEAGENT','TRANSFER','INTERRUPTED') \
         AND call_id IN (SELECT call_id FROM queue_log WHERE id <= {up_to_id}) GROUP BY call_id) \
         AND event IN ('ENTERQUEUE','CONNECT')"
    ));
    rows.into_iter()
        .map(|r| {
            (
                r[0].clone().unwrap_or_default(),
                r[1].clone().unwrap_or_default(),
            )
        })
        .collect()
}

/// Agents whose last AGENTLOGIN has no AGENTLOGOFF after it.
fn logged_in_per_queue_log(srv: &Server) -> Vec<String> {
    srv.query_text(
        "SELECT agent FROM queue_log WHERE id IN (SELECT MAX(id) FROM queue_log \
         WHERE agent IS NOT NULL AND event IN ('AGENTLOGIN','AGENTLOGOFF') GROUP BY agent) \
         AND event = 'AGENTLOGIN'",
    )
    .into_iter()
    .filter_map(|r| r[0].clone())
    .collect()
}

/// Each agent's latest state in `agent_events`.
fn last_agent_events(srv: &Server) -> HashMap<String, String> {
    srv.query_text(
        "SELECT agent, to_state FROM agent_events WHERE id IN \
         (SELECT MAX(id) FROM agent_events GROUP BY agent)",
    )
    .into_iter()
    .map(|r| {
        (
            r[0].clone().unwrap_or_default(),
            r[1].clone().unwrap_or_default(),
        )
    })
    .collect()
}

/// The log without terminal colours.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ parameters final-byte
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The customer's phone for the resumed callback: answers, presses 1,
/// talks, hangs up.
fn happy_customer() -> AgentPhone {
    AgentPhone::new(30_000)
        .ring()
        .answer_own_media()
        .pause(1_500)
        .press('1')
        .pause(1_000)
        .hang_up()
}

#[test]
fn sigkill_under_load_then_restart_is_consistent() {
    let t0 = Instant::now();
    let customer_port = free_udp_port();
    let mut srv = Server::start(ServerOpts {
        dialplans: vec![
            ("listen.toml".into(), LISTEN.into()),
            ("wait.toml".into(), WAIT.into()),
            ("operator.toml".into(), OPERATOR.into()),
            ("sales.toml".into(), SALES.into()),
        ],
        extra_config: config(customer_port),
        ..ServerOpts::default()
    });

    // --- Agents' phones -------------------------------------------------------------------
    let (alice_port, bob_port, carol_port) = (free_udp_port(), free_udp_port(), free_udp_port());
    register(&srv, "alice", alice_port);
    register(&srv, "bob", bob_port);
    register(&srv, "carol", carol_port);
    wait_for(
        "three agents available",
        &srv,
        Duration::from_secs(5),
        || {
            let s = agent_states(&srv);
            (s.len() == 3 && s.values().all(|(st, r)| st == "available" && *r)).then_some(())
        },
    );
    let agent_rtp = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let agent_media = agent_rtp.local_addr().expect("addr").port();
    let alice = common::phone(
        alice_port,
        &AgentPhone::new(30_000)
            .ring()
            .answer(agent_media)
            .expect_bye(90_000),
    )
    .spawn(srv.sip, "alice");
    let carol = common::phone(
        carol_port,
        &AgentPhone::new(30_000).ring().until_cancel(90_000),
    )
    .spawn(srv.sip, "carol");
    let bob = common::phone(
        bob_port,
        &AgentPhone::new(30_000)
            .ring()
            .answer(agent_media)
            .expect_bye(90_000),
    )
    .spawn(srv.sip, "bob");
    let customer = common::phone(
        customer_port,
        &AgentPhone::new(30_000).ring().until_cancel(90_000),
    )
    .spawn(srv.sip, "customer");

    // --- Callers ----------------------------------------------------------------------------
    let hold = |n: usize| {
        Sipp::from_xml(&Uac::new().invite().pause(90_000).bye().xml())
            .arg("-m")
            .arg(n)
            .arg("-l")
            .arg(n)
            .arg("-r")
            .arg(20)
    };
    let bridged = hold(1).spawn(srv.sip, "200");
    let ringing = hold(1).spawn(srv.sip, "400");
    let listeners = hold(LISTENERS).spawn(srv.sip, "300");
    let waiters = hold(WAITERS).spawn(srv.sip, "100");
    // One caller in `support` accepts the callback offer (1 = keep my
    // place, 1 = this number) and is hung up on after the confirmation.
    let ivr_caller = Sipp::from_xml(
        &Uac::new()
            .calling_as(IVR_NUMBER)
            .invite()
            .pause(3_500)
            .info_digit('1')
            .pause(1_000)
            .info_digit('1')
            .expect_bye(20_000)
            .xml(),
    )
    .spawn(srv.sip, "100");

    // --- Callbacks through the API ------------------------------------------------------------
    let web_id = post_callback(&srv, WEB_NUMBER, "support");
    let dialing_id = post_callback(&srv, DIALED_NUMBER, "billing");
    wait_for(
        "the billing callback dialing",
        &srv,
        Duration::from_secs(20),
        || (callback(&srv, &dialing_id)["state"] == "dialing").then_some(()),
    );
    ivr_caller
        .wait()
        .assert_ok("IVR caller accepting a callback");
    let ivr_id = wait_for("the IVR callback", &srv, Duration::from_secs(5), || {
        let list = get(&srv, "/api/v1/callbacks?number=%2B15550999");
        let cb = &list["callbacks"][0];
        (cb["state"] == "scheduled").then(|| cb["id"].as_str().expect("id").to_string())
    });

    // --- The moment of the crash: everything is in flight -----------------------------------
    let expected_open = LISTENERS + WAITERS + 2;
    wait_for(
        "every caller answered and recorded",
        &srv,
        Duration::from_secs(20),
        || {
            let open = open_rows(&srv);
            let inbound = open.iter().filter(|(_, leg, _)| leg == "inbound").count();
            (inbound == expected_open).then_some(())
        },
    );
    wait_for(
        "alice on a call, bob on the callback, carol ringing",
        &srv,
        Duration::from_secs(20),
        || {
            let s = agent_states(&srv);
            let st = |a: &str| s.get(a).map(|x| x.0.as_str()).unwrap_or("");
            (st("alice") == "on-call" && st("bob") == "on-call" && st("carol") == "ringing")
                .then_some(())
        },
    );
    let queues = get(&srv, "/api/v1/queues");
    let waiting_live: usize = queues["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .flat_map(|q| q["waiting"].as_array().cloned().unwrap_or_default())
        .filter(|w| w["callback"] == false)
        .count();
    assert!(
        waiting_live > WAITERS,
        "the support callers and carol's caller wait: {queues:#}"
    );
    let before = open_rows(&srv);
    let bridged_call = before
        .iter()
        .find(|(_, leg, dialed)| leg == "inbound" && dialed == "200")
        .map(|(id, _, _)| id.clone())
        .expect("the bridged caller's record");
    let crashed_at = Instant::now();
    srv.kill9();
    // The phones notice nothing: they are simply gone with the test.
    drop((
        alice, bob, carol, customer, bridged, ringing, listeners, waiters,
    ));

    // What the killed process left behind.
    let open_before_restart: HashSet<(String, String)> = open_rows(&srv)
        .into_iter()
        .map(|(id, leg, _)| (id, leg))
        .collect();
    assert!(
        open_before_restart.len() >= expected_open,
        "{open_before_restart:?}"
    );
    let last_id: i64 = srv.query_text("SELECT CAST(MAX(id) AS TEXT) FROM queue_log")[0][0]
        .as_deref()
        .and_then(|s| s.parse().ok())
        .expect("queue log rows");
    assert!(
        !dangling_queue_calls(&srv, last_id).is_empty(),
        "the crash left live entries in the queue log (the test would prove nothing)"
    );

    // --- Restart on the same data directory ---------------------------------------------------
    let srv = srv.restart();
    eprintln!(
        "restarted {} ms after the kill ({} s into the test)",
        crashed_at.elapsed().as_millis(),
        t0.elapsed().as_secs()
    );

    // Every call record the killed process left open is closed, with a
    // clear disposition, and the count is logged.
    let log = strip_ansi(&srv.log());
    let logged: usize = log
        .lines()
        .find(|l| l.contains("closed call records left open by a previous run"))
        .and_then(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("calls="))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or_else(|| panic!("the orphaned-call count is not logged:\n{log}"));
    assert_eq!(logged, open_before_restart.len(), "{log}");
    let recovered = log
        .lines()
        .find(|l| l.contains("left open by a previous run") && l.contains("agent_legs="))
        .unwrap_or_else(|| panic!("the queue log and agent recovery is not logged:\n{log}"));
    eprintln!("{recovered}");
    for expected in ["agent_legs=2", "agent_sessions=3", "agent_states=3"] {
        assert!(recovered.contains(expected), "{expected}: {recovered}");
    }
    let cdrs = srv.cdrs();
    let still_open: Vec<_> = cdrs
        .iter()
        .filter(|c| c.disposition == "in_progress")
        .collect();
    assert!(still_open.is_empty(), "rows left open: {still_open:#?}");
    for (id, leg) in &open_before_restart {
        let c = cdrs
            .iter()
            .find(|c| &c.call_id == id && &c.leg == leg)
            .expect("row");
        assert_eq!(
            (c.disposition.as_str(), c.hangup_by.as_deref()),
            ("interrupted", Some("restart")),
            "{c:#?}"
        );
        assert!(c.ended_at.is_some(), "{c:#?}");
    }
    // The killed callers' records say which queue they were waiting in.
    for c in cdrs
        .iter()
        .filter(|c| c.leg == "inbound" && c.dialed == "100")
    {
        if c.disposition == "interrupted" {
            assert_eq!(c.queue.as_deref(), Some("support"), "{c:#?}");
        }
    }
    // The agent legs that were talking have a record too: alice's call…
    let alice_leg = cdrs
        .iter()
        .find(|c| c.leg == "agent" && c.dialed == "alice" && c.vars.contains(&bridged_call))
        .unwrap_or_else(|| panic!("no record of alice's interrupted call: {cdrs:#?}"));
    assert_eq!(alice_leg.disposition, "interrupted", "{alice_leg:#?}");
    assert!(alice_leg.answered_at.is_some() && alice_leg.ended_at.is_some());
    assert_eq!(alice_leg.caller, scenario::CALLER);
    assert_eq!(
        alice_leg.parent_call_id.as_deref(),
        Some(bridged_call.as_str()),
        "{alice_leg:#?}"
    );
    // …and bob's callback leg.
    let bob_leg = cdrs
        .iter()
        .find(|c| c.leg == "callback-agent" && c.dialed == "bob" && c.vars.contains(&dialing_id))
        .unwrap_or_else(|| panic!("no record of bob's interrupted callback call: {cdrs:#?}"));
    assert_eq!(bob_leg.disposition, "interrupted", "{bob_leg:#?}");
    assert_eq!(bob_leg.caller, DIALED_NUMBER);
    assert!(
        bob_leg
            .parent_call_id
            .as_deref()
            .is_some_and(|p| p.starts_with(&format!("cb-{dialing_id}-"))),
        "{bob_leg:#?}"
    );

    // Callbacks: all three are there, once each, and waiting again; the one
    // being dialed was put back without counting the attempt.
    let all = get(&srv, "/api/v1/callbacks");
    let list = all["callbacks"].as_array().expect("callbacks");
    assert_eq!(list.len(), 3, "no callback lost or duplicated: {all:#}");
    for id in [&web_id, &ivr_id] {
        let cb = callback(&srv, id);
        assert_eq!(cb["state"], "scheduled", "{cb:#}");
        assert_eq!(cb["attempts"], 0, "{cb:#}");
    }
    let cb = callback(&srv, &dialing_id);
    assert_eq!(
        cb["state"], "scheduled",
        "a crash mid-dial is retried: {cb:#}"
    );
    assert_eq!(
        cb["attempts"], 0,
        "the interrupted attempt does not count: {cb:#}"
    );
    let h = history(&cb);
    assert_eq!(h.iter().filter(|s| *s == "dialing").count(), 1, "{h:?}");
    assert_eq!(h.last().map(String::as_str), Some("scheduled"), "{h:?}");

    // Agents: nobody is left ringing or on a call; the phones have to
    // register again with the new process.
    let s = agent_states(&srv);
    for a in ["alice", "bob", "carol"] {
        assert_eq!(
            s.get(a),
            Some(&("logged-out".to_string(), false)),
            "{a} after the restart: {s:?}"
        );
    }
    // The stored history agrees: every agent's last state is logged-out…
    let last = last_agent_events(&srv);
    for a in ["alice", "bob", "carol"] {
        assert_eq!(
            last.get(a).map(String::as_str),
            Some("logged-out"),
            "agent_events leaves {a} in another state: {last:?}"
        );
    }
    // …and the queue log has no caller waiting or talking, and no agent
    // session, left over from the killed process.
    let dangling = dangling_queue_calls(&srv, last_id);
    assert!(
        dangling.is_empty(),
        "queue log entries left live: {dangling:?}"
    );
    let sessions = logged_in_per_queue_log(&srv);
    assert!(
        sessions.is_empty(),
        "agent sessions left open in the queue log: {sessions:?}"
    );

    // The dashboard shows no caller of the killed process waiting or
    // talking: only the callbacks are in line again.
    let queues = get(&srv, "/api/v1/queues");
    for q in queues["queues"].as_array().expect("queues") {
        for w in q["waiting"].as_array().cloned().unwrap_or_default() {
            assert_eq!(w["callback"], true, "a ghost caller is waiting: {queues:#}");
        }
    }
    let calls = get(&srv, "/api/v1/calls");
    for c in calls["calls"].as_array().expect("calls") {
        assert!(!c["callback_id"].is_null(), "a ghost call: {calls:#}");
    }
    assert_eq!(calls["active_calls"], 0, "{calls:#}");

    // --- The restarted server works -------------------------------------------------------------
    // A new caller is answered and hears the prompt (RTP flows).
    let rtp = UdpSocket::bind("127.0.0.1:0").expect("bind");
    rtp.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let port = rtp.local_addr().expect("addr").port();
    let caller = Sipp::from_xml(
        &Uac::new()
            .media_port(port)
            .invite()
            .pause(2_000)
            .bye()
            .xml(),
    )
    .spawn(srv.sip, "300");
    let mut packets = 0;
    let mut buf = [0u8; 2048];
    let until = Instant::now() + Duration::from_secs(10);
    while packets < 60 && Instant::now() < until {
        if let Ok(n) = rtp.recv(&mut buf) {
            if n >= 12 && buf[0] >> 6 == 2 {
                packets += 1;
            }
        }
    }
    let run = caller.wait();
    run.assert_ok("a new call after the restart");
    assert!(packets >= 60, "RTP after the restart: {packets} packets");
    let new_call = common::call_id_from_trace(&run.messages).expect("Call-ID");
    let cdr = srv.wait_cdr(&new_call, Duration::from_secs(5));
    assert_eq!(cdr.disposition, "completed", "{cdr:#?}");

    // The interrupted callback resumes when bob is back: dialed once more,
    // completed exactly once.
    let bob_port = free_udp_port();
    register(&srv, "bob", bob_port);
    let bob = common::phone(
        bob_port,
        &AgentPhone::new(30_000)
            .ring()
            .answer(agent_media)
            .expect_bye(30_000),
    )
    .spawn(srv.sip, "bob");
    common::phone(customer_port, &happy_customer())
        .run(srv.sip, "customer")
        .assert_ok("the customer, called back after the restart");
    bob.wait().assert_ok("bob, after the restart");
    let cb = wait_for(
        "the callback completed",
        &srv,
        Duration::from_secs(10),
        || {
            let cb = callback(&srv, &dialing_id);
            (cb["state"] == "completed").then_some(cb)
        },
    );
    let h = history(&cb);
    assert_eq!(h.iter().filter(|s| *s == "dialing").count(), 2, "{h:?}");
    assert_eq!(h.iter().filter(|s| *s == "completed").count(), 1, "{h:?}");
    assert_eq!(cb["attempts"], 1, "{cb:#}");
    // The other two still wait, still once each.
    let all = get(&srv, "/api/v1/callbacks");
    assert_eq!(
        all["callbacks"].as_array().map(Vec::len),
        Some(3),
        "{all:#}"
    );
    eprintln!("crash/restart test took {} s", t0.elapsed().as_secs());
}
