//! Two ringback nodes sharing one callback queue in the machine's real
//! PostgreSQL (127.0.0.1:5432, trust auth): a callback is dialed by exactly
//! one node, a killed node's callback is taken over when its lease runs
//! out, and a node's restart recovers only its own rows (call records,
//! leases), never those of the node still working beside it. Each test
//! creates (and drops) its own database.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::callback_checks::{customer, dialing_nodes, wait_completed};
use common::pg::PgDb;
use common::scenario::{self, AgentPhone, Uac};
use common::{free_udp_port, poll_until, Server, ServerOpts, Sipp};
use serde_json::Value;

fn node(db: &PgDb, id: &str, customer_port: u16, ring_timeout: u64) -> Server {
    Server::start(ServerOpts {
        database_url: Some(db.url()),
        extra_config: format!(
            r#"
[trunk]
address = "127.0.0.1:{customer_port}"
caller_id = "+15550100"

[callbacks]
node_id = "{id}"
lease_secs = 4
sync_secs = 1

[queues.operator]
ring_timeout_secs = {ring_timeout}
announce_every_secs = 0
wrapup_secs = 1

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
    .assert_ok("REGISTER");
}

fn request(srv: &Server) -> String {
    let (status, body) = srv.http_post(
        "/api/v1/callbacks",
        r#"{"number":"+15551230009","queue":"operator"}"#,
    );
    assert_eq!(status, 201, "{body}");
    let v: Value = serde_json::from_str(&body).expect("JSON");
    v["id"].as_str().expect("id").to_string()
}

#[test]
fn two_nodes_never_dial_the_same_callback() {
    let db = PgDb::create();
    let customer_port = free_udp_port();
    let a = node(&db, "node-a", customer_port, 20);
    let b = node(&db, "node-b", customer_port, 20);
    let (alice_port, bob_port) = (free_udp_port(), free_udp_port());
    register(&a, "alice", alice_port);
    register(&b, "bob", bob_port);
    let rtp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let media = rtp.local_addr().expect("addr").port();
    // Both agents are ready; only one may be rung for the callback. (A
    // SIPp phone that is never rung waits for its global -timeout.)
    let alice = Sipp::from_xml(
        &AgentPhone::new(15_000)
            .ring()
            .answer(media)
            .expect_bye(30_000)
            .xml(),
    )
    .arg("-p")
    .arg(alice_port)
    .arg("-timeout")
    .arg("20s")
    .spawn(a.sip, "alice");
    let bob = Sipp::from_xml(
        &AgentPhone::new(15_000)
            .ring()
            .answer(media)
            .expect_bye(30_000)
            .xml(),
    )
    .arg("-p")
    .arg(bob_port)
    .arg("-timeout")
    .arg("20s")
    .spawn(b.sip, "bob");
    let cust = common::phone(customer_port, &customer()).spawn(a.sip, "x");
    let id = request(&a);
    cust.wait().assert_ok("customer called back once");
    let cb = wait_completed(&b, &id, Duration::from_secs(20));
    let nodes = dialing_nodes(&cb);
    assert_eq!(nodes.len(), 1, "exactly one dial attempt: {cb:#}");
    let (alice, bob) = (alice.wait(), bob.wait());
    let rung: Vec<&str> = [("node-a", &alice), ("node-b", &bob)]
        .iter()
        .filter(|(_, run)| run.messages.contains("INVITE sip:"))
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(
        rung,
        vec![nodes[0].as_str()],
        "only the node that dialed rang its agent"
    );
}

#[test]
fn a_killed_nodes_callback_is_taken_over() {
    let db = PgDb::create();
    let customer_port = free_udp_port();
    let mut a = node(&db, "node-a", customer_port, 60);
    let b = node(&db, "node-b", customer_port, 20);
    let alice_port = free_udp_port();
    register(&a, "alice", alice_port);
    // Alice's phone rings and is never answered: node A holds the lease.
    let alice = common::phone(
        alice_port,
        &AgentPhone::new(20_000).ring().until_cancel(60_000),
    )
    .spawn(a.sip, "alice");
    let id = request(&a);
    poll_until(
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            a.log()
                .contains("ringing agent for a callback")
                .then_some(())
        },
        || format!("node A never rang alice:\n{}", a.log()),
    );
    a.kill9();
    drop(alice);
    // Node B has an agent; it may only dial once A's lease has run out.
    let bob_port = free_udp_port();
    let killed_at = Instant::now();
    register(&b, "bob", bob_port);
    let rtp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let bob = Sipp::from_xml(
        &AgentPhone::new(30_000)
            .ring()
            .answer(rtp.local_addr().expect("a").port())
            .expect_bye(30_000)
            .xml(),
    )
    .arg("-p")
    .arg(bob_port)
    .spawn(b.sip, "bob");
    common::phone(customer_port, &customer())
        .run(b.sip, "x")
        .assert_ok("customer, called by node B");
    bob.wait().assert_ok("bob on node B");
    let cb = wait_completed(&b, &id, Duration::from_secs(20));
    assert_eq!(dialing_nodes(&cb), vec!["node-b".to_string()], "{cb:#}");
    assert!(
        killed_at.elapsed() >= Duration::from_secs(2),
        "B waited for A's lease"
    );
}

/// (state, claimed_by) of a callback, as stored.
fn stored_lease(db: &PgDb, id: &str) -> (String, Option<String>) {
    let rows = db.rows(&format!(
        "SELECT state, claimed_by FROM callbacks WHERE id = '{id}'"
    ));
    let row = rows.first().expect("the callback row");
    (row[0].clone().unwrap_or_default(), row[1].clone())
}

/// Distinct Call-IDs of the INVITEs a SIPp phone received.
fn invites_received(messages: &str) -> BTreeSet<String> {
    messages
        .split("message received")
        .skip(1)
        .filter_map(|m| {
            let mut lines = m.lines().map(str::trim).filter(|l| !l.is_empty());
            lines.next()?; // "[n] bytes :"
            let first = lines.next()?;
            if !first.starts_with("INVITE ") {
                return None;
            }
            lines.find_map(|l| {
                l.strip_prefix("Call-ID:")
                    .or_else(|| l.strip_prefix("i:"))
                    .map(|v| v.trim().to_string())
            })
        })
        .collect()
}

/// Node B is dialing a callback (its agent answered, the customer's phone
/// rings) when node A is killed and started again. A's start-up recovery
/// must leave B's callback alone: still `dialing` under B's lease, not put
/// back in line; B completes it, and the customer is called exactly once
/// although A has an agent ready after its restart.
#[test]
fn restarting_one_node_leaves_the_callback_another_node_is_dialing_alone() {
    let db = PgDb::create();
    let customer_port = free_udp_port();
    let a = node(&db, "node-a", customer_port, 20);
    let b = node(&db, "node-b", customer_port, 20);
    let bob_port = free_udp_port();
    register(&b, "bob", bob_port);
    let rtp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let media = rtp.local_addr().expect("addr").port();
    let bob = common::phone(
        bob_port,
        &AgentPhone::new(20_000)
            .ring()
            .answer(media)
            .expect_bye(60_000),
    )
    .spawn(b.sip, "bob");
    // The customer's phone rings long enough for A to restart meanwhile.
    let customer = common::phone(
        customer_port,
        &AgentPhone::new(30_000)
            .ring()
            .pause(12_000)
            .answer_own_media()
            .pause(1_500)
            .press('1')
            .pause(1_000)
            .hang_up(),
    )
    .arg("-timeout")
    .arg("50s")
    .spawn(b.sip, "x");
    let id = request(&b);
    poll_until(
        Duration::from_secs(20),
        Duration::from_millis(50),
        || (stored_lease(&db, &id) == ("dialing".into(), Some("node-b".into()))).then_some(()),
        || {
            let lease = stored_lease(&db, &id);
            format!("node B never dialed: {lease:?}\n{}", b.log())
        },
    );

    let a = a.restart();
    // Recovery is over when the node is ready; give its sync a few rounds.
    let alice_port = free_udp_port();
    register(&a, "alice", alice_port);
    let alice = common::phone(
        alice_port,
        &AgentPhone::new(20_000)
            .ring()
            .answer(media)
            .expect_bye(30_000),
    )
    .arg("-timeout")
    .arg("25s")
    .spawn(a.sip, "alice");
    std::thread::sleep(Duration::from_millis(2_500));
    assert_eq!(
        stored_lease(&db, &id),
        ("dialing".into(), Some("node-b".into())),
        "A's restart touched B's callback\nA:\n{}",
        a.log()
    );
    let by_a = db.rows(&format!(
        "SELECT to_state, reason FROM callback_events WHERE callback_id = '{id}' AND node = 'node-a'"
    ));
    assert!(by_a.is_empty(), "A changed B's callback: {by_a:?}");

    let customer = customer.wait();
    customer.assert_ok("customer, called back by node B");
    bob.wait().assert_ok("bob on node B");
    let cb = wait_completed(&b, &id, Duration::from_secs(20));
    assert_eq!(dialing_nodes(&cb), vec!["node-b".to_string()], "{cb:#}");
    assert_eq!(
        invites_received(&customer.messages).len(),
        1,
        "the customer was called exactly once:\n{}",
        customer.messages
    );
    // The legs' records are written as the attempt ends.
    let legs_sql = format!(
        "SELECT leg, node_id, parent_call_id FROM calls WHERE parent_call_id LIKE 'cb-{id}-%' \
         OR vars LIKE '%{id}%' ORDER BY leg"
    );
    let until = Instant::now() + Duration::from_secs(5);
    let mut legs = db.rows(&legs_sql);
    while legs.len() < 2 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
        legs = db.rows(&legs_sql);
    }
    let legs: Vec<(String, String)> = legs
        .iter()
        .map(|r| {
            assert!(
                r[2].as_deref()
                    .is_some_and(|p| p.starts_with(&format!("cb-{id}-"))),
                "{r:?}"
            );
            (
                r[0].clone().unwrap_or_default(),
                r[1].clone().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        legs,
        vec![
            ("callback-agent".to_string(), "node-b".to_string()),
            ("callback-customer".to_string(), "node-b".to_string())
        ],
        "one agent leg and one customer leg, both B's"
    );
    assert!(
        !a.log().contains("ringing agent for a callback"),
        "A rang its agent for B's callback:\n{}",
        a.log()
    );
    drop(alice);
}

/// Node A is killed with a call up and started again while node B has a
/// live call: A closes its own open record, B's stays open until B's
/// caller hangs up. Records written before node ids existed are closed by
/// a restart only once they are a day old.
#[test]
fn restarting_one_node_closes_only_its_own_open_call_records() {
    let db = PgDb::create();
    let customer_port = free_udp_port();
    let a = node(&db, "node-a", customer_port, 20);
    let b = node(&db, "node-b", customer_port, 20);
    // Both callers wait in the operator queue (no agent is logged in).
    let caller_b =
        Sipp::from_xml(&Uac::new().invite().pause(15_000).bye().xml()).spawn(b.sip, "500");
    let caller_a =
        Sipp::from_xml(&Uac::new().invite().pause(60_000).bye().xml()).spawn(a.sip, "501");
    let open = |node: &str| {
        db.rows(&format!(
            "SELECT call_id FROM calls WHERE leg = 'inbound' AND node_id = '{node}' \
             AND disposition = 'in_progress'"
        ))
    };
    poll_until(
        Duration::from_secs(10),
        Duration::from_millis(50),
        || (!open("node-a").is_empty() && !open("node-b").is_empty()).then_some(()),
        || format!("calls not answered:\nA:\n{}\nB:\n{}", a.log(), b.log()),
    );
    let (a_call, b_call) = (open("node-a")[0][0].clone(), open("node-b")[0][0].clone());
    // Rows from before node ids: one left by a process long gone, one
    // possibly of a node still running the previous version; and a row of
    // another node (dead or alive: not A's to judge).
    let day_ago = chrono::Utc::now() - chrono::Duration::hours(25);
    let recent = chrono::Utc::now() - chrono::Duration::minutes(1);
    let ts =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    db.rows(&format!(
        "INSERT INTO calls (call_id, leg, caller, dialed, started_at, answered_at, node_id) VALUES \
         ('legacy-old', 'inbound', '1', '2', '{old}', '{old}', NULL), \
         ('legacy-new', 'inbound', '1', '2', '{new}', '{new}', NULL), \
         ('other-node', 'inbound', '1', '2', '{new}', '{new}', 'node-z')",
        old = ts(day_ago),
        new = ts(recent),
    ));

    let a = a.restart();
    drop(caller_a);
    let state = |call_id: &str| {
        db.rows(&format!(
            "SELECT disposition, hangup_by, node_id FROM calls WHERE call_id = '{call_id}' AND leg = 'inbound'"
        ))
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no record of {call_id}"))
    };
    let restart = |node: &str| {
        vec![
            Some("interrupted".into()),
            Some("restart".into()),
            Some(node.to_string()),
        ]
    };
    assert_eq!(
        state(a_call.as_deref().expect("id")),
        restart("node-a"),
        "A's own call is closed"
    );
    assert_eq!(
        state(b_call.as_deref().expect("id")),
        vec![Some("in_progress".into()), None, Some("node-b".into())],
        "B's live call is left alone\nA:\n{}",
        a.log()
    );
    assert_eq!(
        state("legacy-old")[..2],
        restart("x")[..2],
        "a day-old record without a node id is closed"
    );
    assert_eq!(state("legacy-new")[0].as_deref(), Some("in_progress"));
    assert_eq!(state("other-node")[0].as_deref(), Some("in_progress"));
    assert!(
        a.log()
            .contains("closed call records left open by a previous run"),
        "{}",
        a.log()
    );

    caller_b.wait().assert_ok("B's caller");
    let b_state = || state(b_call.as_deref().expect("id"));
    let s = poll_until(
        Duration::from_secs(10),
        Duration::from_millis(50),
        || Some(b_state()).filter(|s| s[0].as_deref() != Some("in_progress")),
        || format!("B's call never ended: {:?}\n{}", b_state(), b.log()),
    );
    assert_eq!(s[1].as_deref(), Some("caller"), "{s:?}");
    assert_eq!(s[2].as_deref(), Some("node-b"), "{s:?}");
}

/// Node A is killed with an agent logged in and a caller waiting, and
/// started again while node B has the same. Each node runs its own ACD, so
/// agent sessions, agent states and queue entries are one node's: A's
/// start-up recovery logs off its own agent (an `AGENTLOGOFF` and a
/// `logged-out` state row, both A's) and interrupts its own caller's queue
/// entry; B's agent stays logged in (B's last state row for it is still
/// `available`, with no `AGENTLOGOFF`) and B's caller stays in line. A
/// later start of another node (its `QUEUESTART` marker) does not hide A's
/// rows from A, and rows written before node ids existed are left alone.
#[test]
fn restarting_one_node_closes_only_its_own_queue_log_and_agent_states() {
    let db = PgDb::create();
    let customer_port = free_udp_port();
    let a = node(&db, "node-a", customer_port, 20);
    let b = node(&db, "node-b", customer_port, 20);
    // Logged in without a registered phone: no caller is offered to them.
    assert_eq!(a.http_post("/api/v1/agents/alice/login", "").0, 200);
    assert_eq!(b.http_post("/api/v1/agents/bob/login", "").0, 200);
    let caller_b =
        Sipp::from_xml(&Uac::new().invite().pause(15_000).bye().xml()).spawn(b.sip, "500");
    let caller_a =
        Sipp::from_xml(&Uac::new().invite().pause(60_000).bye().xml()).spawn(a.sip, "501");
    let entered = |node: &str| {
        db.rows(&format!(
            "SELECT call_id FROM queue_log WHERE event = 'ENTERQUEUE' AND node_id = '{node}'"
        ))
    };
    poll_until(
        Duration::from_secs(10),
        Duration::from_millis(50),
        || (!entered("node-a").is_empty() && !entered("node-b").is_empty()).then_some(()),
        || format!("callers not queued:\nA:\n{}\nB:\n{}", a.log(), b.log()),
    );
    let (a_call, b_call) = (
        entered("node-a")[0][0].clone(),
        entered("node-b")[0][0].clone(),
    );
    // Each node's agent history and queue log carry its id.
    let last_states = |node: &str| {
        db.rows(&format!(
            "SELECT agent, to_state, reason FROM agent_events WHERE id IN \
             (SELECT MAX(id) FROM agent_events WHERE node_id = '{node}' GROUP BY agent) \
             ORDER BY agent"
        ))
    };
    let state = |agent: &str, to: &str, reason: &str| {
        vec![Some(agent.into()), Some(to.into()), Some(reason.into())]
    };
    assert_eq!(
        last_states("node-a").len(),
        1,
        "{:?}",
        last_states("node-a")
    );
    assert_eq!(
        last_states("node-a")[0][..2],
        state("alice", "available", "")[..2]
    );
    let b_before = last_states("node-b");
    assert_eq!(b_before.len(), 1, "{b_before:?}");
    assert_eq!(b_before[0][..2], state("bob", "available", "")[..2]);
    let logins =
        db.rows("SELECT agent, node_id FROM queue_log WHERE event = 'AGENTLOGIN' ORDER BY agent");
    assert_eq!(
        logins,
        vec![
            vec![Some("alice".into()), Some("node-a".into())],
            vec![Some("bob".into()), Some("node-b".into())]
        ]
    );
    // Another node started after A's rows were written; and rows from
    // before node ids: an agent left available, a caller left waiting.
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    db.rows(&format!(
        "INSERT INTO queue_log (at, queue, call_id, agent, event, data, node_id) VALUES \
         ('{now}', NULL, NULL, NULL, 'QUEUESTART', '', 'node-z'), \
         ('{now}', 'operator', 'legacy-call', NULL, 'ENTERQUEUE', '|+1555|1', NULL)"
    ));
    db.rows(&format!(
        "INSERT INTO agent_events (agent, at, from_state, to_state, reason, node_id) VALUES \
         ('carol', '{now}', 'logged-out', 'available', 'legacy', NULL)"
    ));

    let a = a.restart();
    drop(caller_a);
    let restart_reason = "restart: the previous process ended without closing it";
    assert_eq!(
        last_states("node-a"),
        vec![state("alice", "logged-out", restart_reason)],
        "A's agent is logged off\nA:\n{}",
        a.log()
    );
    assert_eq!(last_states("node-b"), b_before, "B's agent is left alone");
    let closed = db.rows(
        "SELECT COALESCE(call_id, agent), event, data, node_id FROM queue_log \
         WHERE event IN ('INTERRUPTED', 'AGENTLOGOFF') ORDER BY id",
    );
    assert_eq!(closed.len(), 2, "{closed:?}");
    assert_eq!(
        closed[0],
        vec![
            a_call.clone(),
            Some("INTERRUPTED".into()),
            Some("restart|waiting".into()),
            Some("node-a".into())
        ],
        "A's caller's queue entry is interrupted"
    );
    assert_eq!(
        closed[1][..2],
        [Some("alice".into()), Some("AGENTLOGOFF".into())],
        "{closed:?}"
    );
    assert_eq!(closed[1][3].as_deref(), Some("node-a"));
    let legacy =
        db.rows("SELECT agent, to_state FROM agent_events WHERE node_id IS NULL ORDER BY id");
    assert_eq!(
        legacy,
        vec![vec![Some("carol".into()), Some("available".into())]],
        "rows from before node ids are not touched"
    );
    let markers =
        db.rows("SELECT node_id FROM queue_log WHERE event = 'QUEUESTART' AND node_id = 'node-a'");
    assert_eq!(markers.len(), 2, "A's two starts: {markers:?}");

    // B's caller was still in line: its entry ends when the caller hangs
    // up, written by B.
    caller_b.wait().assert_ok("B's caller");
    let ends = poll_until(
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let ends = db.rows(&format!(
                "SELECT event, node_id FROM queue_log WHERE call_id = '{}' AND event <> 'ENTERQUEUE'",
                b_call.as_deref().expect("id")
            ));
            Some(ends).filter(|e| !e.is_empty())
        },
        || format!("B's caller never left the queue:\n{}", b.log()),
    );
    let end = &ends[0];
    assert_eq!(ends.len(), 1, "{ends:?}");
    assert_ne!(end[0].as_deref(), Some("INTERRUPTED"), "{ends:?}");
    assert_eq!(end[1].as_deref(), Some("node-b"), "{ends:?}");
}
