//! Issue 18, "crash semantics at every step": a callback is driven with
//! real SIP peers to one step, the server is killed with SIGKILL, the store
//! is read as the killed process left it, and a new process is started on
//! the same data directory (fresh ports). Each test then checks what the
//! store says after the restart's recovery and what happens next (redial or
//! not, attempt counted or not), and what the people on the line
//! experienced: their legs get no BYE or CANCEL, neither from the dead
//! process nor from the new one, and their audio stops.
//!
//! | step | kill when | store after the kill | after the restart |
//! |---|---|---|---|
//! | confirmation prompt | the caller hears "we will call you back" | `scheduled`, 0 attempts | dialed when an agent is free |
//! | agent ringing | the agent's phone rings | `scheduled` + lease, 0 attempts | lease released, dialed again |
//! | whisper | the agent hears who they call | `dialing`, 1 attempt | `scheduled`, 0 attempts, dialed again |
//! | customer ringing | the customer's phone rings | `dialing`, 1 attempt | as above |
//! | customer answering | the customer hears "press 1" | `dialing`, 1 attempt, customer leg open | as above, customer leg `interrupted` |
//! | bridged | they talk (PJSIP, tones both ways) | `connected`, 1 attempt | `completed`, not redialed; with `redial_interrupted = true`: `retry_wait`, 0 attempts, redialed |
//!
//! Every test owns its server, data directory, ports and peers, so the
//! tests run in parallel and can be repeated; timers are short (1 s retry
//! back-off) to keep each one well under a minute.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::peer::{
    agent_state, args, json, request_callback, sip_header, PyPeer, AGENT_TONE, CALLER_TONE, PJSUA,
};
use common::scenario::{AgentPhone, Uac, CALLER};
use common::{free_udp_port, poll_until, Server, ServerOpts, Sipp, SippProcess};
use serde_json::Value;

/// Number 100: the operator queue, a callback offer after 1 s (key 1).
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

/// A server whose trunk reaches the customer at `customer_port`; agent
/// `alice` serves `operator`, whose callback policy retries after 1 s and
/// adds `policy`.
fn server(customer_port: u16, policy: &str) -> Server {
    Server::start(ServerOpts {
        dialplans: vec![("cb.toml".into(), PLAN.into())],
        extra_config: format!(
            r#"
[trunk]
address = "127.0.0.1:{customer_port}"
caller_id = "+15550100"

[queues.operator]
ring_timeout_secs = 20
announce_every_secs = 0
wrapup_secs = 1

[queues.operator.callback]
retry_after_secs = 1
retry_max_secs = 2
max_attempts = 3
accept_timeout_secs = 20
{policy}

[agents.alice]
password = "alice-secret"
queues = ["operator"]
"#
        ),
        ..ServerOpts::default()
    })
}

// ---------------------------------------------------------------------------------------------
// What the store says (read from the SQLite file: after a kill nobody answers the API).
// ---------------------------------------------------------------------------------------------

/// One `callback_events` row.
#[derive(Debug, Clone)]
struct Event {
    from: String,
    to: String,
    reason: String,
    attempt: i64,
}

/// A callback's row and history as stored.
#[derive(Debug)]
struct Stored {
    state: String,
    attempts: i64,
    claimed_by: Option<String>,
    next_attempt_at: Option<String>,
    events: Vec<Event>,
    /// Rows in `callbacks` (all callbacks): never a duplicate.
    rows: usize,
}

impl Stored {
    fn read(srv: &Server, id: &str) -> Stored {
        let row = srv.query_text(&format!(
            "SELECT state, CAST(attempts AS TEXT), claimed_by, next_attempt_at \
             FROM callbacks WHERE id = '{id}'"
        ));
        let row = row
            .first()
            .unwrap_or_else(|| panic!("callback {id} is not in the store"));
        let events = srv
            .query_text(&format!(
                "SELECT from_state, to_state, reason, CAST(attempt AS TEXT) FROM callback_events \
                 WHERE callback_id = '{id}' ORDER BY id"
            ))
            .into_iter()
            .map(|r| Event {
                from: r[0].clone().unwrap_or_default(),
                to: r[1].clone().unwrap_or_default(),
                reason: r[2].clone().unwrap_or_default(),
                attempt: r[3].as_deref().and_then(|a| a.parse().ok()).unwrap_or(-1),
            })
            .collect();
        let rows = srv.query_text("SELECT CAST(COUNT(*) AS TEXT) FROM callbacks")[0][0]
            .as_deref()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        Stored {
            state: row[0].clone().unwrap_or_default(),
            attempts: row[1].as_deref().and_then(|a| a.parse().ok()).unwrap_or(-1),
            claimed_by: row[2].clone(),
            next_attempt_at: row[3].clone(),
            events,
            rows,
        }
    }

    /// The `to` states of the history, in order.
    fn history(&self) -> Vec<&str> {
        self.events.iter().map(|e| e.to.as_str()).collect()
    }

    fn last(&self) -> &Event {
        self.events.last().expect("a callback always has events")
    }
}

/// (leg, disposition, hangup_by, answered) of every call record.
fn records(srv: &Server) -> Vec<(String, String, Option<String>, bool)> {
    srv.cdrs()
        .into_iter()
        .map(|c| (c.leg, c.disposition, c.hangup_by, c.answered_at.is_some()))
        .collect()
}

/// The legs of the call records still `in_progress`.
fn open_legs(srv: &Server) -> Vec<String> {
    let mut legs: Vec<String> = records(srv)
        .into_iter()
        .filter(|(_, d, _, _)| d == "in_progress")
        .map(|(leg, ..)| leg)
        .collect();
    legs.sort();
    legs
}

/// After the restart: nothing is `in_progress`, and every record the killed
/// process left open is `interrupted` by the `restart`; returns the legs
/// closed that way.
fn interrupted_legs(srv: &Server) -> Vec<String> {
    let rows = records(srv);
    assert!(
        rows.iter().all(|(_, d, _, _)| d != "in_progress"),
        "records left open after the restart: {rows:?}"
    );
    let mut legs: Vec<String> = rows
        .into_iter()
        .filter(|(_, d, by, _)| d == "interrupted" && by.as_deref() == Some("restart"))
        .map(|(leg, ..)| leg)
        .collect();
    legs.sort();
    legs
}

// ---------------------------------------------------------------------------------------------
// The people on the line.
// ---------------------------------------------------------------------------------------------

/// A UDP socket standing in for a phone's RTP port: records when each RTP
/// packet from ringback arrived (what the person hears, and when it stops).
struct RtpProbe {
    port: u16,
    arrivals: Arc<Mutex<Vec<Instant>>>,
    stop: Arc<AtomicBool>,
}

impl RtpProbe {
    fn new() -> RtpProbe {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind RTP probe");
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let port = sock.local_addr().expect("addr").port();
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (Arc::clone(&arrivals), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !s.load(Ordering::Relaxed) {
                if let Ok(n) = sock.recv(&mut buf) {
                    if n >= 12 && buf[0] >> 6 == 2 {
                        a.lock().expect("arrivals").push(Instant::now());
                    }
                }
            }
        });
        RtpProbe {
            port,
            arrivals,
            stop,
        }
    }

    fn count_between(&self, from: Instant, to: Instant) -> usize {
        self.arrivals
            .lock()
            .expect("arrivals")
            .iter()
            .filter(|t| **t >= from && **t < to)
            .count()
    }

    fn count(&self) -> usize {
        self.arrivals.lock().expect("arrivals").len()
    }

    /// Wait until `n` packets arrived (false after `timeout`).
    fn wait(&self, n: usize, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            if self.count() >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// The audio was flowing up to the kill and stopped with it: packets in
    /// the half second before, none from 300 ms after on (`who` hears
    /// silence).
    fn assert_cut_at(&self, killed: Instant, who: &str) {
        let before = self.count_between(killed - Duration::from_millis(500), killed);
        assert!(before > 0, "{who} heard nothing just before the kill");
        let after = self.count_between(killed + Duration::from_millis(300), Instant::now());
        assert_eq!(after, 0, "{who} still received RTP after the kill");
    }
}

impl Drop for RtpProbe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Wait until a phone (SIPp) listens on UDP `port`: a request sent before
/// that would be lost until its first retransmission. Read from
/// `/proc/net/udp` (binding the port to find out could take it from SIPp).
fn wait_bound(port: u16) {
    let needle = format!(":{port:04X} ");
    poll_until(
        Duration::from_secs(5),
        Duration::from_millis(20),
        || {
            let table = std::fs::read_to_string("/proc/net/udp").expect("/proc/net/udp");
            // `sl local_address rem_address …`: the local address is field 2.
            let bound = table.lines().skip(1).any(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|a| format!("{a} ").ends_with(&needle))
            });
            bound.then_some(())
        },
        || format!("nothing listens on UDP {port}"),
    );
}

/// [`common::phone`] at `port`, spawned and listening.
fn phone(srv: &Server, port: u16, script: &AgentPhone, who: &str) -> SippProcess {
    let p = common::phone(port, script).spawn(srv.sip, who);
    wait_bound(port);
    p
}

fn register_alice(srv: &Server, port: u16) {
    Sipp::from_xml(&common::scenario::register(
        "alice",
        "alice-secret",
        300,
        200,
    ))
    .arg("-p")
    .arg(port)
    .run(srv.sip, "alice")
    .assert_ok("REGISTER alice");
}

/// Alice's phone at a fresh port, registered: it rings, answers (media to
/// `rtp`) and then `then` decides. Registered first, then listening: an
/// INVITE sent in between is retransmitted.
fn alice_phone(srv: &Server, rtp: u16, then: impl FnOnce(AgentPhone) -> AgentPhone) -> SippProcess {
    let port = free_udp_port();
    register_alice(srv, port);
    phone(
        srv,
        port,
        &then(AgentPhone::new(30_000).ring().answer(rtp)),
        "alice",
    )
}

/// The customer called back: answers, hears the intro, presses 1, talks,
/// hangs up.
fn happy_customer() -> AgentPhone {
    AgentPhone::new(30_000)
        .ring()
        .answer_own_media()
        .pause(1_500)
        .press('1')
        .pause(1_000)
        .hang_up()
}

/// Poll `f` every 50 ms until it returns `Some` (panics with the server's
/// log after `timeout`).
fn wait_for<T>(what: &str, srv: &Server, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
    poll_until(timeout, Duration::from_millis(50), f, || {
        format!("timed out waiting for {what}; server log:\n{}", srv.log())
    })
}

fn callback(srv: &Server, id: &str) -> Value {
    let (status, body) = srv.http_get(&format!("/api/v1/callbacks/{id}"));
    assert_eq!(status, 200, "{body}");
    json(&body)
}

fn api_state(srv: &Server, id: &str) -> String {
    callback(srv, id)["state"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn count(history: &[&str], state: &str) -> usize {
    history.iter().filter(|s| **s == state).count()
}

/// After the restart: a fresh registration of alice and the customer's
/// phone at the trunk's port; the restored callback is dialed again, the
/// customer presses 1, and it completes. Returns the stored callback.
fn redial_completes(srv: &Server, customer_port: u16, id: &str) -> Stored {
    let customer = phone(srv, customer_port, &happy_customer(), "customer");
    let rtp = RtpProbe::new();
    let alice = alice_phone(srv, rtp.port, |p| p.expect_bye(30_000));
    customer
        .wait()
        .assert_ok("the customer, called again after the restart");
    alice.wait().assert_ok("alice, after the restart");
    wait_for(
        "the callback completed",
        srv,
        Duration::from_secs(10),
        || (api_state(srv, id) == "completed").then_some(()),
    );
    let s = Stored::read(srv, id);
    assert_eq!(
        s.attempts, 1,
        "the attempt after the restart counts: {s:#?}"
    );
    assert_eq!(count(&s.history(), "completed"), 1, "{s:#?}");
    assert_eq!(s.rows, 1, "one callback, never a copy: {s:#?}");
    s
}

/// Right after the restart, a callback that was being dialed is back in
/// line: `dialing → scheduled`, attempt not counted, lease released.
fn assert_put_back(srv: &Server, id: &str, killed: &Stored) {
    let s = Stored::read(srv, id);
    assert_eq!(s.state, "scheduled", "{s:#?}");
    assert_eq!(s.attempts, killed.attempts - 1, "not counted: {s:#?}");
    assert_eq!(s.attempts, 0, "{s:#?}");
    assert_eq!(s.claimed_by, None, "the lease is released: {s:#?}");
    assert!(s.next_attempt_at.is_some(), "{s:#?}");
    let last = s.last();
    assert_eq!(
        (last.from.as_str(), last.to.as_str()),
        ("dialing", "scheduled")
    );
    assert!(
        last.reason.contains("interrupted while dialing (restart)")
            && last.reason.contains("attempt not counted"),
        "{last:?}"
    );
    assert_eq!(last.attempt, 0, "{last:?}");
}

/// Right after the kill, a callback being dialed: `dialing`, the attempt
/// counted, the lease held, history `scheduled, dialing`.
fn assert_killed_dialing(s: &Stored) {
    assert_eq!(s.state, "dialing", "{s:#?}");
    assert_eq!(s.attempts, 1, "{s:#?}");
    assert!(s.claimed_by.is_some(), "the lease is held: {s:#?}");
    assert_eq!(s.history(), ["scheduled", "dialing"], "{s:#?}");
}

// ---------------------------------------------------------------------------------------------
// 1. The confirmation prompt.
// ---------------------------------------------------------------------------------------------

/// The caller pressed 1 twice in the queue; the callback is stored and the
/// confirmation plays when ringback dies. It was committed before the
/// prompt, so it is there after the restart and the caller is called back
/// once an agent is free. The caller's line goes silent; no BYE ever comes.
#[test]
fn crash_at_the_confirmation_prompt_keeps_the_callback_and_dials_it() {
    let t0 = Instant::now();
    let customer_port = free_udp_port();
    let mut srv = server(customer_port, "");
    // Nobody is logged in: the caller waits, is offered a callback after
    // 1 s, keeps their place (1) with this number (1).
    let ear = RtpProbe::new();
    let mut caller = Sipp::from_xml(
        &Uac::new()
            .media_port(ear.port)
            .invite()
            .pause(3_500)
            .info_digit('1')
            .pause(1_000)
            .info_digit('1')
            .silence(45_000)
            .xml(),
    )
    .spawn(srv.sip, "100");
    let id = wait_for("the stored callback", &srv, Duration::from_secs(15), || {
        let (_, body) = srv.http_get(&format!(
            "/api/v1/callbacks?number={}",
            CALLER.replace('+', "%2B")
        ));
        json(&body)["callbacks"][0]["id"].as_str().map(String::from)
    });
    // The confirmation starts right after the commit: kill while it plays.
    std::thread::sleep(Duration::from_millis(300));
    srv.kill9();
    let killed = Instant::now();

    let s = Stored::read(&srv, &id);
    assert_eq!((s.state.as_str(), s.attempts), ("scheduled", 0), "{s:#?}");
    assert_eq!(s.history(), ["scheduled"], "{s:#?}");
    assert_eq!(s.claimed_by, None, "{s:#?}");
    assert_eq!(open_legs(&srv), ["inbound"], "the caller's record is open");

    let srv = srv.restart();
    let s = Stored::read(&srv, &id);
    assert_eq!((s.state.as_str(), s.attempts), ("scheduled", 0), "{s:#?}");
    assert_eq!(s.history(), ["scheduled"], "nothing to repair: {s:#?}");
    assert_eq!(interrupted_legs(&srv), ["inbound"]);
    let cdr = srv
        .cdrs()
        .into_iter()
        .find(|c| c.leg == "inbound")
        .expect("the caller's record");
    assert_eq!(cdr.queue.as_deref(), Some("operator"), "{cdr:#?}");
    // The caller heard the confirmation until the kill, then silence.
    ear.assert_cut_at(killed, "the caller");

    let s = redial_completes(&srv, customer_port, &id);
    assert_eq!(count(&s.history(), "dialing"), 1, "{s:#?}");
    // Neither process ever sent the caller a BYE: the line just went quiet.
    assert!(caller.running(), "{:#?}", caller.wait());
    drop(caller);
    eprintln!("confirmation step: {} s", t0.elapsed().as_secs());
}

// ---------------------------------------------------------------------------------------------
// 2. The agent's phone rings.
// ---------------------------------------------------------------------------------------------

/// Killed while alice's phone rings: nothing was counted yet (the attempt
/// counts from `dialing`, when the agent has answered), the lease is freed
/// at the restart and the callback is dialed again. The ringing phone gets
/// no CANCEL; picking it up gets no ACK.
#[test]
fn crash_while_the_agent_rings_dials_again_without_counting() {
    let t0 = Instant::now();
    let customer_port = free_udp_port();
    let mut srv = server(customer_port, "");
    let old_port = free_udp_port();
    register_alice(&srv, old_port);
    let rtp = RtpProbe::new();
    // Rings; picks up 2.5 s later (ringback is dead by then).
    let ringing = phone(
        &srv,
        old_port,
        &AgentPhone::new(30_000)
            .ring()
            .pause(2_500)
            .answer_unacked(rtp.port, 3_000),
        "alice",
    );
    let id = request_callback(&srv, Some("crash test: agent ringing"));
    assert!(
        srv.wait_log("ringing agent for a callback", 1, Duration::from_secs(10)),
        "{}",
        srv.log()
    );
    wait_for("alice ringing", &srv, Duration::from_secs(5), || {
        (agent_state(&srv, "alice") == "ringing").then_some(())
    });
    std::thread::sleep(Duration::from_millis(300));
    srv.kill9();

    let s = Stored::read(&srv, &id);
    assert_eq!((s.state.as_str(), s.attempts), ("scheduled", 0), "{s:#?}");
    assert!(
        s.claimed_by.is_some(),
        "the lease was taken before ringing: {s:#?}"
    );
    assert_eq!(s.history(), ["scheduled"], "{s:#?}");
    assert!(
        open_legs(&srv).is_empty(),
        "a ringing leg has no record yet"
    );

    let srv = srv.restart();
    assert!(
        srv.log()
            .contains("released leases left by the previous process"),
        "{}",
        srv.log()
    );
    let s = Stored::read(&srv, &id);
    assert_eq!((s.state.as_str(), s.attempts), ("scheduled", 0), "{s:#?}");
    assert_eq!(s.claimed_by, None, "{s:#?}");
    assert_eq!(s.history(), ["scheduled"], "{s:#?}");
    assert!(interrupted_legs(&srv).is_empty());
    // Agents start logged out: nothing rings until a phone registers again.
    assert_eq!(agent_state(&srv, "alice"), "logged-out");
    // The phone that rang: no CANCEL came, and its late answer no ACK.
    ringing
        .wait()
        .assert_ok("the phone that rang: no CANCEL, no ACK to its answer");
    assert_eq!(rtp.count(), 0, "nobody sent it audio");

    let s = redial_completes(&srv, customer_port, &id);
    assert_eq!(count(&s.history(), "dialing"), 1, "{s:#?}");
    eprintln!("agent ringing step: {} s", t0.elapsed().as_secs());
}

// ---------------------------------------------------------------------------------------------
// 3. The whisper.
// ---------------------------------------------------------------------------------------------

/// Killed while alice hears the whisper (the customer not dialed yet): the
/// store says `dialing` with the attempt counted; the restart puts it back
/// in line without counting it, and it is dialed again. Alice's line goes
/// silent mid-whisper and is never hung up.
#[test]
fn crash_during_the_whisper_dials_again_without_counting() {
    let t0 = Instant::now();
    let customer_port = free_udp_port();
    let mut srv = server(customer_port, "");
    let ear = RtpProbe::new();
    let mut alice = alice_phone(&srv, ear.port, |p| p.silence(45_000));
    let id = request_callback(&srv, Some("crash test: whisper"));
    wait_for("dialing", &srv, Duration::from_secs(15), || {
        (api_state(&srv, &id) == "dialing").then_some(())
    });
    assert!(
        ear.wait(15, Duration::from_secs(3)),
        "alice hears the whisper"
    );
    srv.kill9();
    let killed = Instant::now();
    assert!(
        !srv.log().contains("dialing the customer"),
        "killed during the whisper, before the customer was dialed"
    );

    let killed_state = Stored::read(&srv, &id);
    assert_killed_dialing(&killed_state);
    assert!(open_legs(&srv).is_empty(), "{:?}", records(&srv));

    let srv = srv.restart();
    assert_put_back(&srv, &id, &killed_state);
    // Alice's leg was answered: the queue log gives it a record.
    assert_eq!(interrupted_legs(&srv), ["callback-agent"]);
    ear.assert_cut_at(killed, "alice");

    let s = redial_completes(&srv, customer_port, &id);
    assert_eq!(count(&s.history(), "dialing"), 2, "{s:#?}");
    assert!(
        alice.running(),
        "alice's old leg got a request: {:#?}",
        alice.wait()
    );
    eprintln!("whisper step: {} s", t0.elapsed().as_secs());
}

// ---------------------------------------------------------------------------------------------
// 4. The customer's phone rings.
// ---------------------------------------------------------------------------------------------

/// Killed while the customer's phone rings: `dialing`, put back at the
/// restart without counting, dialed again. The customer's phone gets no
/// CANCEL, and picking it up gets no ACK (dead air until the phone gives
/// up); alice, on hold music, hears it stop.
#[test]
fn crash_while_the_customer_rings_dials_again_without_counting() {
    let t0 = Instant::now();
    let customer_port = free_udp_port();
    let mut srv = server(customer_port, "");
    let customer_ear = RtpProbe::new();
    let ringing = phone(
        &srv,
        customer_port,
        &AgentPhone::new(30_000)
            .ring()
            .pause(2_500)
            .answer_unacked(customer_ear.port, 3_000),
        "customer",
    );
    let ear = RtpProbe::new();
    let mut alice = alice_phone(&srv, ear.port, |p| p.silence(50_000));
    let id = request_callback(&srv, Some("crash test: customer ringing"));
    assert!(
        srv.wait_log("dialing the customer", 1, Duration::from_secs(20)),
        "{}",
        srv.log()
    );
    std::thread::sleep(Duration::from_millis(300));
    srv.kill9();
    let killed = Instant::now();

    let killed_state = Stored::read(&srv, &id);
    assert_killed_dialing(&killed_state);
    assert!(open_legs(&srv).is_empty(), "{:?}", records(&srv));

    let srv = srv.restart();
    assert_put_back(&srv, &id, &killed_state);
    assert_eq!(interrupted_legs(&srv), ["callback-agent"]);
    ear.assert_cut_at(killed, "alice (hold music)");
    ringing
        .wait()
        .assert_ok("the customer's phone: no CANCEL, no ACK to its answer");
    assert_eq!(customer_ear.count(), 0);

    let s = redial_completes(&srv, customer_port, &id);
    assert_eq!(count(&s.history(), "dialing"), 2, "{s:#?}");
    assert!(
        alice.running(),
        "alice's old leg got a request: {:#?}",
        alice.wait()
    );
    eprintln!("customer ringing step: {} s", t0.elapsed().as_secs());
}

// ---------------------------------------------------------------------------------------------
// 5. The customer answered and hears "press 1".
// ---------------------------------------------------------------------------------------------

/// Killed while the customer hears the intro, before pressing 1: they had
/// not reached anybody, so the callback is put back at the restart
/// (attempt not counted) and dialed again. Their answered leg has a call
/// record, closed `interrupted`; their line goes silent, no BYE.
#[test]
fn crash_while_the_customer_hears_press_1_dials_again_without_counting() {
    let t0 = Instant::now();
    let customer_port = free_udp_port();
    let mut srv = server(customer_port, "");
    let customer_ear = RtpProbe::new();
    let mut answered = phone(
        &srv,
        customer_port,
        &AgentPhone::new(30_000)
            .ring()
            .answer(customer_ear.port)
            .silence(45_000),
        "customer",
    );
    let ear = RtpProbe::new();
    let mut alice = alice_phone(&srv, ear.port, |p| p.silence(50_000));
    let id = request_callback(&srv, Some("crash test: customer answering"));
    // Half a second of the intro prompt.
    assert!(
        customer_ear.wait(25, Duration::from_secs(25)),
        "the customer never heard the intro\n{}",
        srv.log()
    );
    srv.kill9();
    let killed = Instant::now();

    let killed_state = Stored::read(&srv, &id);
    assert_killed_dialing(&killed_state);
    assert_eq!(
        open_legs(&srv),
        ["callback-customer"],
        "the answered customer leg is on record: {:?}",
        records(&srv)
    );

    let srv = srv.restart();
    assert_put_back(&srv, &id, &killed_state);
    assert_eq!(
        interrupted_legs(&srv),
        ["callback-agent", "callback-customer"]
    );
    customer_ear.assert_cut_at(killed, "the customer (intro)");
    ear.assert_cut_at(killed, "alice (hold music)");
    // No BYE reached the customer from either process; now they hang up
    // (their phone is gone) and the line is free for the second call.
    assert!(answered.running(), "{:#?}", answered.wait());
    drop(answered);

    let s = redial_completes(&srv, customer_port, &id);
    assert_eq!(count(&s.history(), "dialing"), 2, "{s:#?}");
    assert!(
        alice.running(),
        "alice's old leg got a request: {:#?}",
        alice.wait()
    );
    eprintln!("customer answering step: {} s", t0.elapsed().as_secs());
}

// ---------------------------------------------------------------------------------------------
// 6. The bridged conversation (PJSIP on both ends, audio checked by tone).
// ---------------------------------------------------------------------------------------------

/// What the bridged step leaves: the server (restarted), the callback, the
/// customer's trunk port, the two PJSIP phones (still in their dead call)
/// and the agent's INVITE.
struct Bridged {
    srv: Server,
    id: String,
    customer_port: u16,
    agent: PyPeer,
    customer: PyPeer,
    agent_invite: Value,
}

/// Drive a callback to a bridged conversation between a PJSIP agent and a
/// PJSIP customer (each hears the other's tone), kill the server, check
/// the store as left, restart.
fn kill_while_bridged(policy: &str) -> Bridged {
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
            "--detect",
            &agent_tone,
            "--timeout",
            "50",
        ]),
    );
    let mut srv = server(customer.port, policy);
    let agent = PJSUA.registered_alice(
        &srv,
        "udp",
        &[
            "--ring-delay",
            "0.5",
            "--play",
            &agent_tone,
            "--detect",
            &caller_tone,
            "--timeout",
            "50",
        ],
    );
    let id = request_callback(&srv, Some("crash test: bridged"));
    let agent_invite = agent.expect("incoming", Duration::from_secs(15), &srv);
    // Talking: each one hears the other.
    agent.expect_where(
        "tone",
        |e| e["freq"].as_f64() == Some(CALLER_TONE),
        Duration::from_secs(30),
        &srv,
    );
    customer.expect_where(
        "tone",
        |e| e["freq"].as_f64() == Some(AGENT_TONE),
        Duration::from_secs(10),
        &srv,
    );
    assert_eq!(api_state(&srv, &id), "connected");
    srv.kill9();

    let s = Stored::read(&srv, &id);
    assert_eq!((s.state.as_str(), s.attempts), ("connected", 1), "{s:#?}");
    assert_eq!(s.history(), ["scheduled", "dialing", "connected"], "{s:#?}");
    assert!(s.claimed_by.is_some(), "{s:#?}");
    assert_eq!(
        open_legs(&srv),
        ["callback-customer"],
        "the customer's answered trunk leg is on record: {:?}",
        records(&srv)
    );

    let srv = srv.restart();
    assert_eq!(
        interrupted_legs(&srv),
        ["callback-agent", "callback-customer"]
    );
    let customer_port = customer.port;
    Bridged {
        srv,
        id,
        customer_port,
        agent,
        customer,
        agent_invite,
    }
}

/// Neither phone was hung up on: no BYE from the dead process nor from the
/// new one; both calls are still up on the phones.
fn assert_still_up(b: &Bridged) {
    for peer in [&b.agent, &b.customer] {
        let ended = peer
            .events()
            .into_iter()
            .find(|e| e["event"] == "call_state" && e["state"] == "DISCONNECTED");
        assert!(
            ended.is_none(),
            "{} was hung up: {ended:?}\n{}",
            peer.name,
            peer.diagnostics()
        );
    }
}

/// A BYE for the dead call, as the agent's phone sends it when the agent
/// hangs up (in production the restarted ringback listens at the same
/// address): its answer's status line.
fn bye_for_the_old_call(srv: SocketAddr, invite: &Value) -> String {
    let call_id = sip_header(invite, "Call-ID");
    let from = sip_header(invite, "From");
    let to = sip_header(invite, "To");
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let me = sock.local_addr().expect("addr");
    let bye = format!(
        "BYE sip:ringback@{srv} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-stray-{n};rport\r\n\
         From: {to};tag=phone-{n}\r\nTo: {from}\r\nCall-ID: {call_id}\r\nCSeq: 2 BYE\r\n\
         Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        n = std::process::id()
    );
    sock.send_to(bye.as_bytes(), srv).expect("send BYE");
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("an answer to the BYE");
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// No datagram reaches `port` for `wait`.
fn assert_quiet(port: u16, wait: Duration, who: &str) -> std::thread::JoinHandle<()> {
    let sock = UdpSocket::bind(("127.0.0.1", port)).expect("bind the phone's port");
    let who = who.to_string();
    std::thread::spawn(move || {
        sock.set_read_timeout(Some(wait)).expect("timeout");
        let mut buf = [0u8; 4096];
        if let Ok(n) = sock.recv(&mut buf) {
            panic!(
                "{who} was called again:\n{}",
                String::from_utf8_lossy(&buf[..n])
            );
        }
    })
}

/// Killed while agent and customer talk, default settings: the customer
/// had reached a person, so the restart records the callback `completed`
/// and nobody is called again. Both phones stay in a silent call; no BYE.
#[test]
fn crash_while_bridged_completes_and_does_not_dial_again_by_default() {
    let t0 = Instant::now();
    let b = kill_while_bridged("");
    let s = Stored::read(&b.srv, &b.id);
    assert_eq!((s.state.as_str(), s.attempts), ("completed", 1), "{s:#?}");
    assert_eq!(s.claimed_by, None, "{s:#?}");
    let last = s.last();
    assert_eq!(
        (last.from.as_str(), last.to.as_str()),
        ("connected", "completed")
    );
    assert!(
        last.reason
            .contains("not called again (redial_interrupted = false)"),
        "{last:?}"
    );
    assert_eq!(s.rows, 1, "{s:#?}");
    // Counted once in today's figures.
    let (_, body) = b.srv.http_get("/api/v1/stats");
    let completed = json(&body)["callbacks_completed_today"].clone();
    assert_eq!(completed, 1, "{body}");
    assert_still_up(&b);
    // The agent hangs up the silent call: the new process does not know it.
    let answer = bye_for_the_old_call(b.srv.sip, &b.agent_invite);
    assert!(answer.starts_with("SIP/2.0 481"), "{answer}");

    // The phones give up; alice registers again and is available. Nobody
    // is called: not alice, not the customer.
    let Bridged {
        srv,
        id,
        customer_port,
        agent,
        customer,
        ..
    } = b;
    drop((agent, customer));
    let alice_port = free_udp_port();
    register_alice(&srv, alice_port);
    let quiet = [
        assert_quiet(alice_port, Duration::from_secs(4), "alice"),
        assert_quiet(customer_port, Duration::from_secs(4), "the customer"),
    ];
    wait_for("alice available", &srv, Duration::from_secs(5), || {
        (agent_state(&srv, "alice") == "available").then_some(())
    });
    for q in quiet {
        q.join().expect("nobody is called again");
    }
    let s = Stored::read(&srv, &id);
    assert_eq!(s.state, "completed", "{s:#?}");
    assert_eq!(count(&s.history(), "dialing"), 1, "{s:#?}");
    assert_eq!(agent_state(&srv, "alice"), "available");
    eprintln!("bridged step (default): {} s", t0.elapsed().as_secs());
}

/// The same crash with `redial_interrupted = true`: the restart puts the
/// callback in `retry_wait` (attempt not counted) and the customer is
/// called again after the first back-off, and completes.
#[test]
fn crash_while_bridged_dials_again_with_redial_interrupted() {
    let t0 = Instant::now();
    let b = kill_while_bridged("redial_interrupted = true");
    let s = Stored::read(&b.srv, &b.id);
    assert_eq!((s.state.as_str(), s.attempts), ("retry_wait", 0), "{s:#?}");
    assert!(s.next_attempt_at.is_some(), "{s:#?}");
    let last = s.last();
    assert_eq!(
        (last.from.as_str(), last.to.as_str()),
        ("connected", "retry_wait")
    );
    assert!(
        last.reason
            .contains("calling again (redial_interrupted = true)"),
        "{last:?}"
    );
    assert_still_up(&b);
    let Bridged {
        srv,
        id,
        customer_port,
        agent,
        customer,
        ..
    } = b;
    drop((agent, customer));
    let s = redial_completes(&srv, customer_port, &id);
    assert_eq!(count(&s.history(), "dialing"), 2, "{s:#?}");
    assert_eq!(count(&s.history(), "connected"), 2, "{s:#?}");
    eprintln!(
        "bridged step (redial_interrupted): {} s",
        t0.elapsed().as_secs()
    );
}
