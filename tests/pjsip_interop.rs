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

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use common::{free_udp_port, Server, ServerOpts};
use serde_json::Value;

/// The caller's tone (what the agent / customer must hear).
const CALLER_TONE: f64 = 1000.0;
/// The agent's tone (what the caller / customer must hear).
const AGENT_TONE: f64 = 1500.0;
const CUSTOMER: &str = "+15551230001";

// ---------------------------------------------------------------------------------------------
// A PJSIP peer process.
// ---------------------------------------------------------------------------------------------

/// Fail (not skip) when pjsua2 cannot be imported.
fn require_pjsua2() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let out = Command::new("python3")
            .args(["-c", "import pjsua2"])
            .output()
            .expect("python3 must be installed to run the PJSIP interop tests");
        assert!(
            out.status.success(),
            "pjsua2 is not installed: run `pip install pjsua2-python` (scripts/test does).\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// A SIP port for a peer (with its RTP two ports above), free on UDP
/// and on TCP.
fn peer_port() -> u16 {
    for _ in 0..20 {
        let p = free_udp_port();
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
    panic!("no port free on both UDP and TCP");
}

#[derive(Default)]
struct Events {
    list: Vec<Value>,
    closed: bool,
}

/// `python3 tests/peers/pjsua_peer.py ROLE ...` with its JSON events.
struct PyPeer {
    name: String,
    child: Child,
    events: Arc<(Mutex<Events>, Condvar)>,
    stderr: Arc<Mutex<String>>,
    log: PathBuf,
    /// SIP port it listens on.
    port: u16,
    _dir: tempfile::TempDir,
}

impl PyPeer {
    /// Start a peer; `args` follow the role (see the script's `--help`).
    /// `--port`, `--rtp-port`, `--dir` and `--log` are added here.
    fn spawn(name: &str, role: &str, args: &[String]) -> PyPeer {
        require_pjsua2();
        let mut last = String::new();
        for _ in 0..3 {
            let port = peer_port();
            let peer = PyPeer::spawn_on(name, role, port, args);
            // It either starts listening or reports why not (a port
            // taken between our check and its bind: try another one).
            let first = peer.wait_for(
                |e| e["event"] == "started" || e["event"] == "error",
                Duration::from_secs(15),
            );
            match first {
                Some(e) if e["event"] == "started" => return peer,
                other => last = format!("{other:?}\n{}", peer.diagnostics()),
            }
        }
        panic!("PJSIP peer {name} did not start: {last}");
    }

    fn spawn_on(name: &str, role: &str, port: u16, args: &[String]) -> PyPeer {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("pjsip.log");
        let script = common::repo().join("tests/peers/pjsua_peer.py");
        let mut child = Command::new("python3")
            .arg("-u")
            .arg(&script)
            .arg(role)
            .args(["--port", &port.to_string()])
            .args(["--rtp-port", &(port + 2).to_string()])
            .arg("--dir")
            .arg(dir.path())
            .arg("--log")
            .arg(&log)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn python3 tests/peers/pjsua_peer.py");
        let events: Arc<(Mutex<Events>, Condvar)> = Arc::default();
        let out = child.stdout.take().expect("stdout");
        let ev = Arc::clone(&events);
        let verbose = std::env::var_os("RINGBACK_TEST_VERBOSE").is_some();
        let tag = name.to_string();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if verbose {
                    eprintln!("[{tag}] {line}");
                }
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let (m, cv) = &*ev;
                    m.lock().expect("events").list.push(v);
                    cv.notify_all();
                }
            }
            let (m, cv) = &*ev;
            m.lock().expect("events").closed = true;
            cv.notify_all();
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().expect("stderr");
        let e2 = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            e2.lock().expect("stderr").push_str(&s);
        });
        PyPeer {
            name: name.to_string(),
            child,
            events,
            stderr,
            log,
            port,
            _dir: dir,
        }
    }

    /// Everything it reported so far.
    fn events(&self) -> Vec<Value> {
        self.events.0.lock().expect("events").list.clone()
    }

    /// The first event matching `pred` (waiting up to `timeout`).
    fn wait_for(&self, pred: impl Fn(&Value) -> bool, timeout: Duration) -> Option<Value> {
        let until = Instant::now() + timeout;
        let (m, cv) = &*self.events;
        let mut g = m.lock().expect("events");
        loop {
            if let Some(e) = g.list.iter().find(|e| pred(e)) {
                return Some(e.clone());
            }
            let now = Instant::now();
            if g.closed || now >= until {
                return None;
            }
            g = cv.wait_timeout(g, until - now).expect("events").0;
        }
    }

    /// The first `event` (panics with the peer's diagnostics otherwise).
    fn expect(&self, event: &str, timeout: Duration, srv: &Server) -> Value {
        self.expect_where(event, |_| true, timeout, srv)
    }

    fn expect_where(
        &self,
        event: &str,
        pred: impl Fn(&Value) -> bool,
        timeout: Duration,
        srv: &Server,
    ) -> Value {
        match self.wait_for(|e| e["event"] == event && pred(e), timeout) {
            Some(e) => e,
            None => panic!(
                "PJSIP {} never reported `{event}`\n{}\nringback log:\n{}",
                self.name,
                self.diagnostics(),
                srv.log()
            ),
        }
    }

    /// Wait for the process to end (it is bounded by its own --timeout).
    fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            if let Ok(Some(st)) = self.child.try_wait() {
                // Let the reader thread take the last lines.
                let _ = self.wait_for(|_| false, Duration::from_millis(500));
                return Some(st.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Wait for a clean exit (code 0 and a `done` event).
    fn finish(&mut self, srv: &Server) {
        let code = self.wait_exit(Duration::from_secs(45));
        assert_eq!(
            code,
            Some(0),
            "PJSIP {} did not finish cleanly\n{}\nringback log:\n{}",
            self.name,
            self.diagnostics(),
            srv.log()
        );
    }

    /// Its tone report for `freq` (after the call ended).
    fn tone_report(&self, freq: f64, srv: &Server) -> Value {
        self.expect_where(
            "tone_report",
            |e| e["freq"].as_f64() == Some(freq),
            Duration::from_secs(30),
            srv,
        )
    }

    /// Assert that it heard `freq` for at least half a second.
    fn assert_heard(&self, freq: f64, srv: &Server) {
        let r = self.tone_report(freq, srv);
        assert_eq!(
            r["detected"],
            true,
            "PJSIP {} did not hear {freq} Hz: {r}\n{}\nringback log:\n{}",
            self.name,
            self.diagnostics(),
            srv.log()
        );
    }

    /// Events, stderr and the tail of PJSIP's own log (with SIP messages).
    fn diagnostics(&self) -> String {
        let events: Vec<String> = self
            .events()
            .iter()
            .map(|e| {
                let mut e = e.clone();
                if let Some(o) = e.as_object_mut() {
                    o.remove("message");
                }
                e.to_string()
            })
            .collect();
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: String = log
            .lines()
            .rev()
            .take(300)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        format!(
            "--- {} events:\n{}\n--- stderr:\n{}\n--- PJSIP log (tail):\n{}",
            self.name,
            events.join("\n"),
            self.stderr.lock().map(|s| s.clone()).unwrap_or_default(),
            tail
        )
    }
}

impl Drop for PyPeer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A header of a SIP message reported in an `incoming` event.
fn sip_header(incoming: &Value, name: &str) -> String {
    incoming["headers"]
        .as_array()
        .and_then(|h| {
            h.iter()
                .find(|kv| kv[0].as_str().is_some_and(|k| k.eq_ignore_ascii_case(name)))
        })
        .and_then(|kv| kv[1].as_str())
        .unwrap_or_default()
        .to_string()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// Server helpers.
// ---------------------------------------------------------------------------------------------

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn agent_state(srv: &Server, agent: &str) -> String {
    let (_, body) = srv.http_get("/api/v1/agents");
    json(&body)["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["id"] == agent))
        .and_then(|a| a["state"].as_str())
        .unwrap_or("missing")
        .to_string()
}

fn wait_agent_state(srv: &Server, agent: &str, state: &str) {
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        if agent_state(srv, agent) == state {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "agent {agent} is `{}`, expected `{state}`\n{}",
        agent_state(srv, agent),
        srv.log()
    );
}

/// No call left waiting for or talking to an agent.
fn assert_no_active_calls(srv: &Server) {
    let until = Instant::now() + Duration::from_secs(5);
    let mut last = String::new();
    while Instant::now() < until {
        let (status, body) = srv.http_get("/api/v1/calls");
        assert_eq!(status, 200, "{body}");
        let v = json(&body);
        if v["active_calls"] == 0 && v["calls"].as_array().is_some_and(|c| c.is_empty()) {
            return;
        }
        last = body;
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("calls still active after the BYE: {last}\n{}", srv.log());
}

/// The `sip:` URI of a number on the server.
fn uri(srv: &Server, number: &str) -> String {
    format!("sip:{number}@{}", srv.sip)
}

/// A PJSIP caller dialing `number` with these extra arguments.
fn caller(srv: &Server, transport: &str, number: &str, extra: &[&str]) -> PyPeer {
    let mut a = args(&["--transport", transport, "--uri", &uri(srv, number)]);
    a.extend(args(extra));
    PyPeer::spawn("caller", "caller", &a)
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
    let cdr = srv.wait_cdr(&id, Duration::from_secs(10));
    assert_eq!(cdr.digits, "1", "{cdr:?}");
    assert!(
        cdr.path.starts_with("support > internet"),
        "menu path of {cdr:?}"
    );
    assert_eq!(cdr.queue.as_deref(), Some("support"), "{cdr:?}");
    assert_eq!(cdr.hangup_by.as_deref(), Some("caller"), "{cdr:?}");
    assert_eq!(cdr.dialed, "2000");
    assert!(cdr.caller.contains("15550123"), "{cdr:?}");
    assert!(cdr.vars.contains("internet"), "set node ran: {cdr:?}");
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

/// PJSIP offering SRTP as optional (RTP/AVP with `a=crypto` lines) gets
/// a plain RTP answer and a working call.
#[test]
fn pjsip_caller_offering_optional_srtp_gets_plain_rtp_udp() {
    let srv = Server::start_demo();
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
    assert_eq!(
        cdr.digits, "1",
        "RFC 4733 digits work on the SRTP-capable offer: {cdr:?}"
    );
    assert_eq!(cdr.hangup_by.as_deref(), Some("caller"), "{cdr:?}");
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

const AGENT_CONFIG: &str = r#"
[queues.support]
ring_timeout_secs = 15
announce_every_secs = 0
wrapup_secs = 1

[agents.alice]
password = "alice-secret"
display_name = "Alice Smith"
queues = ["support"]
"#;

/// A PJSIP agent `alice` registered (digest) over `transport`.
fn register_alice(srv: &Server, transport: &str, extra: &[&str]) -> PyPeer {
    let mut a = args(&[
        "--transport",
        transport,
        "--registrar",
        &srv.sip.to_string(),
        "--user",
        "alice",
        "--password",
        "alice-secret",
    ]);
    a.extend(args(extra));
    let agent = PyPeer::spawn("agent alice", "agent", &a);
    agent.expect("registered", Duration::from_secs(10), srv);
    wait_agent_state(srv, "alice", "available");
    agent
}

/// Who sends the BYE at the end of the conversation.
#[derive(Clone, Copy, PartialEq)]
enum Bye {
    Agent,
    Caller,
}

fn agent_takes_queued_call(transport: &str, bye: Bye) {
    let srv = Server::start(ServerOpts {
        extra_config: AGENT_CONFIG.into(),
        ..ServerOpts::default()
    });
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
    let x = &inv["x_ringback"];
    let header = |name: &str| x[name].as_str().unwrap_or_default().to_string();
    assert!(
        header("X-Ringback-Caller").contains("15550123"),
        "X-Ringback-Caller in {x}"
    );
    assert!(
        header("X-Ringback-Path").starts_with("support > internet"),
        "X-Ringback-Path in {x}"
    );
    assert_eq!(header("X-Ringback-Digits"), "1", "{x}");
    assert_eq!(header("X-Ringback-Queue"), "support", "{x}");
    assert_eq!(header("X-Ringback-Call-Id"), id, "{x}");
    assert_eq!(header("X-Ringback-Repeat"), "0", "{x}");
    assert!(
        header("X-Ringback-Waited").parse::<u64>().is_ok(),
        "X-Ringback-Waited in {x}"
    );
    assert!(
        inv["message"]
            .as_str()
            .unwrap_or_default()
            .contains("+15550123"),
        "the agent sees the caller's number as caller ID: {}",
        inv["message"]
    );
    let via = sip_header(&inv, "Via").to_ascii_uppercase();
    assert!(
        via.starts_with(&format!("SIP/2.0/{}", transport.to_ascii_uppercase())),
        "the agent registered over {transport} is called over {transport}: Via {via}"
    );

    agent.expect_where(
        "call_state",
        |e| e["state"] == "CONFIRMED",
        Duration::from_secs(10),
        &srv,
    );
    // Audio both ways, by content.
    c.finish(&srv);
    agent.finish(&srv);
    agent.assert_heard(CALLER_TONE, &srv);
    c.assert_heard(AGENT_TONE, &srv);
    // The side that did not hang up received the BYE.
    let (hanger, other) = match bye {
        Bye::Agent => (&agent, &c),
        Bye::Caller => (&c, &agent),
    };
    hanger.expect("hangup", Duration::from_secs(1), &srv);
    assert!(
        other.events().iter().all(|e| e["event"] != "hangup"),
        "{} hung up although the other side did:\n{}",
        other.name,
        other.diagnostics()
    );

    let cdr = srv.wait_cdr(&id, Duration::from_secs(10));
    assert_eq!(cdr.disposition, "completed", "{cdr:?}");
    assert_eq!(cdr.queue.as_deref(), Some("support"), "{cdr:?}");
    let by = match bye {
        Bye::Agent => "agent",
        Bye::Caller => "caller",
    };
    assert_eq!(cdr.hangup_by.as_deref(), Some(by), "{cdr:?}");
    let legs: Vec<_> = srv
        .cdrs()
        .into_iter()
        .filter(|c| c.leg == "agent")
        .collect();
    assert_eq!(legs.len(), 1, "one agent leg: {legs:?}");
    assert_eq!(legs[0].dialed, "alice");
    assert!(legs[0].answered_at.is_some(), "{legs:?}");
    assert_no_active_calls(&srv);
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
    let srv = Server::start(ServerOpts {
        extra_config: AGENT_CONFIG.into(),
        ..ServerOpts::default()
    });
    let mut agent = PyPeer::spawn(
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
    let agent_tone = AGENT_TONE.to_string();
    let caller_tone = CALLER_TONE.to_string();
    // The customer listens before the server exists: the trunk points at it.
    let mut customer = PyPeer::spawn(
        "customer",
        "customer",
        &args(&[
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
        ]),
    );
    let srv = common::callback_server(
        &format!(
            "[trunk]\naddress = \"127.0.0.1:{port}\"\ncaller_id = \"+15550100\"\ntransport = \"{transport}\"\n",
            port = customer.port
        ),
        "retry_after_secs = 60\nmax_attempts = 1\naccept_timeout_secs = 15",
    );
    let mut agent = register_alice(
        &srv,
        transport,
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

    let (status, body) = srv.http_post(
        "/api/v1/callbacks",
        &format!(
            r#"{{"number":"{CUSTOMER}","queue":"operator","context":"web form: PJSIP interop"}}"#
        ),
    );
    assert_eq!(status, 201, "{body}\n{}", srv.log());
    let id = json(&body)["id"].as_str().expect("id").to_string();

    // The agent is called first, with the callback's context.
    let inv = agent.expect("incoming", Duration::from_secs(15), &srv);
    let x = &inv["x_ringback"];
    assert_eq!(x["X-Ringback-Callback"].as_str(), Some(id.as_str()), "{x}");
    assert_eq!(
        x["X-Ringback-Context"].as_str(),
        Some("web form: PJSIP interop"),
        "{x}"
    );
    assert!(
        x["X-Ringback-Caller"]
            .as_str()
            .is_some_and(|c| c.contains("15551230001")),
        "{x}"
    );
    agent.expect_where(
        "call_state",
        |e| e["state"] == "CONFIRMED",
        Duration::from_secs(10),
        &srv,
    );
    // Then the customer, through the trunk, over the configured transport.
    let cinv = customer.expect("incoming", Duration::from_secs(20), &srv);
    let line = cinv["request_line"].as_str().unwrap_or_default();
    assert!(
        line.starts_with(&format!(
            "INVITE sip:{CUSTOMER}@127.0.0.1:{}",
            customer.port
        )),
        "customer dialed through the trunk: {line}"
    );
    let via = sip_header(&cinv, "Via").to_ascii_uppercase();
    assert!(
        via.starts_with(&format!("SIP/2.0/{}", transport.to_ascii_uppercase())),
        "customer INVITE over {transport}: Via {via}"
    );
    assert!(
        cinv["message"]
            .as_str()
            .unwrap_or_default()
            .contains("+15550100"),
        "the trunk caller ID: {}",
        cinv["message"]
    );
    customer.expect("dtmf_sent", Duration::from_secs(15), &srv);

    customer.finish(&srv);
    agent.finish(&srv);
    customer.assert_heard(AGENT_TONE, &srv);
    agent.assert_heard(CALLER_TONE, &srv);

    let until = Instant::now() + Duration::from_secs(10);
    let cb = loop {
        let (status, body) = srv.http_get(&format!("/api/v1/callbacks/{id}"));
        assert_eq!(status, 200, "{body}");
        let cb = json(&body);
        if cb["state"] == "completed" || Instant::now() > until {
            break cb;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(cb["state"], "completed", "{cb:#}\n{}", srv.log());
    assert_eq!(cb["attempts"], 1, "{cb:#}");
    let history: Vec<&str> = cb["events"]
        .as_array()
        .map(|e| e.iter().filter_map(|x| x["to"].as_str()).collect())
        .unwrap_or_default();
    for st in ["scheduled", "dialing", "connected", "completed"] {
        assert!(history.contains(&st), "history {history:?} lacks {st}");
    }
    // Both legs are on record, answered, whoever hung up.
    let cdrs = srv.cdrs();
    for (who, inv) in [("agent", &inv), ("customer", &cinv)] {
        let leg_id = sip_header(inv, "Call-ID");
        let row = cdrs.iter().find(|c| c.call_id == leg_id);
        assert!(
            row.is_some_and(|c| c.answered_at.is_some() && c.disposition == "completed"),
            "the {who} leg ({leg_id}) has no answered, completed CDR: {row:?}\nall rows: {cdrs:#?}"
        );
    }
    assert_no_active_calls(&srv);
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
    let (status, body) = srv.http_post(
        "/api/v1/callbacks",
        &format!(r#"{{"number":"{CUSTOMER}","queue":"operator"}}"#),
    );
    assert_eq!(status, 201, "{body}\n{}", srv.log());
    let id = json(&body)["id"].as_str().expect("id").to_string();
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
    let until = Instant::now() + Duration::from_secs(10);
    let cb = loop {
        let (_, body) = srv.http_get(&format!("/api/v1/callbacks/{id}"));
        let cb = json(&body);
        if cb["state"] == "completed" || Instant::now() > until {
            break cb;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(cb["state"], "completed", "{cb:#}\n{}", srv.log());
    assert_eq!(cb["attempts"], 1, "{cb:#}");
    agent.finish(&srv);
    assert_no_active_calls(&srv);
}

/// Re-INVITEs with a changed SDP on the agent's leg: the PJSIP agent puts
/// the caller on hold (sendonly) and resumes (sendrecv). The caller's tone
/// starts only after the resume, so the agent hears it only if ringback
/// followed both re-INVITEs (it stops sending while held).
#[test]
fn pjsip_agent_holds_and_resumes_udp() {
    let srv = Server::start(ServerOpts {
        extra_config: AGENT_CONFIG.into(),
        ..ServerOpts::default()
    });
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
    c.finish(&srv);
    agent.finish(&srv);
    agent.assert_heard(CALLER_TONE, &srv);
    c.assert_heard(AGENT_TONE, &srv);
    assert!(
        srv.log().contains("leg renegotiated"),
        "ringback saw the agent's re-INVITEs:\n{}",
        srv.log()
    );
    let cdr = srv.wait_cdr(&id, Duration::from_secs(10));
    assert_eq!(cdr.disposition, "completed", "{cdr:?}");
    assert_eq!(cdr.hangup_by.as_deref(), Some("agent"), "{cdr:?}");
    assert_no_active_calls(&srv);
}
