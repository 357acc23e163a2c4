//! Interop with a real SIP user agent: baresip (Debian's `baresip-core`
//! 1.0, libre 1.1), driven over its `ctrl_tcp` interface by
//! `tests/peers/baresip_peer.py`, plays the caller, the agent's phone
//! (registering with digest against ringback's default configuration) and
//! the callback customer. Audio is checked by content: each side plays its
//! own tone and the other side must hear it (Goertzel,
//! `tests/peers/audio.py`), never by packet counts.
//!
//! Every test starts its own ringback and its own baresip processes on free
//! ports; the peers kill baresip by PID when they end, and a peer still
//! running when its test ends is killed too. A missing baresip fails the
//! tests (it does not skip them): `apt-get install baresip-core`.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use common::{free_udp_port, Server, ServerOpts};
use serde_json::Value;

/// The caller's (and the customer's) tone: what the agent must hear.
const CALLER_TONE: f64 = 1000.0;
/// The agent's tone: what the caller / customer must hear.
const AGENT_TONE: f64 = 1500.0;
const CUSTOMER: &str = "+15551230001";
const BARESIP: &str = "/usr/bin/baresip";
const MODULES: &str = "/usr/lib/baresip/modules";

// ---------------------------------------------------------------------------------------------
// A baresip peer process.
// ---------------------------------------------------------------------------------------------

/// Fail (not skip) when baresip or the modules the peer loads are missing.
fn require_baresip() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let baresip = which("baresip").unwrap_or_else(|| PathBuf::from(BARESIP));
        assert!(
            baresip.exists(),
            "baresip is not installed: run `apt-get install baresip-core` (scripts/test does)"
        );
        for m in [
            "g711", "aufile", "sndfile", "aubridge", "account", "menu", "ctrl_tcp",
        ] {
            let p = PathBuf::from(MODULES).join(format!("{m}.so"));
            assert!(
                p.exists(),
                "baresip module {} is missing: `apt-get install baresip-core`",
                p.display()
            );
        }
        let out = Command::new("python3")
            .arg("--version")
            .output()
            .expect("python3 must be installed to run the baresip interop tests");
        assert!(out.status.success());
    });
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// A base port for a peer: SIP on UDP and TCP at `p`, baresip's own TLS
/// listener at TCP `p+1`, ctrl_tcp at TCP `p+2`, RTP/RTCP at UDP `p+2`/`p+3`.
fn peer_port() -> u16 {
    for _ in 0..30 {
        let p = free_udp_port();
        if (0..3).all(|i| TcpListener::bind(("127.0.0.1", p + i)).is_ok()) {
            return p;
        }
    }
    panic!("no port free for a baresip peer");
}

#[derive(Default)]
struct Events {
    list: Vec<Value>,
    closed: bool,
}

/// `python3 tests/peers/baresip_peer.py ROLE ...` with its JSON events.
struct Peer {
    name: String,
    child: Child,
    events: Arc<(Mutex<Events>, Condvar)>,
    stderr: Arc<Mutex<String>>,
    dir: tempfile::TempDir,
    /// SIP port it listens on.
    port: u16,
}

impl Peer {
    /// Start a peer (`--port` and `--dir` are added here) and wait until
    /// baresip runs; a port taken between our check and baresip's bind
    /// makes it try other ports.
    fn spawn(name: &str, role: &str, args: &[String]) -> Peer {
        require_baresip();
        let mut last = String::new();
        for _ in 0..3 {
            let peer = Peer::spawn_on(name, role, peer_port(), args);
            match peer.wait_for(
                |e| e["event"] == "started" || e["event"] == "error",
                Duration::from_secs(15),
            ) {
                Some(e) if e["event"] == "started" => return peer,
                other => last = format!("{other:?}\n{}", peer.diagnostics()),
            }
        }
        panic!("baresip peer {name} did not start: {last}");
    }

    fn spawn_on(name: &str, role: &str, port: u16, args: &[String]) -> Peer {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = common::repo().join("tests/peers/baresip_peer.py");
        let mut child = Command::new("python3")
            .arg("-u")
            .arg(&script)
            .arg(role)
            .args(["--port", &port.to_string()])
            .arg("--dir")
            .arg(dir.path())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn python3 tests/peers/baresip_peer.py");
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
        Peer {
            name: name.to_string(),
            child,
            events,
            stderr,
            dir,
            port,
        }
    }

    fn events(&self) -> Vec<Value> {
        self.events.0.lock().expect("events").list.clone()
    }

    /// The first event matching `pred`, waiting up to `timeout`.
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

    /// The first `event` (panics with both sides' diagnostics otherwise).
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
                "baresip {} never reported `{event}`\n{}\nringback log:\n{}",
                self.name,
                self.diagnostics(),
                srv.log()
            ),
        }
    }

    /// Wait for a clean exit: code 0 (the script bounds itself by --timeout).
    fn finish(&mut self, srv: &Server) {
        let until = Instant::now() + Duration::from_secs(45);
        let code = loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                // Let the reader thread take the last lines.
                let _ = self.wait_for(|_| false, Duration::from_millis(300));
                break st.code();
            }
            if Instant::now() > until {
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(
            code,
            Some(0),
            "baresip {} did not finish cleanly\n{}\nringback log:\n{}",
            self.name,
            self.diagnostics(),
            srv.log()
        );
    }

    /// Assert that it heard `freq` (its report after the call ended).
    fn assert_heard(&self, freq: f64, srv: &Server) {
        let r = self.expect_where(
            "tone_report",
            |e| e["freq"].as_f64() == Some(freq),
            Duration::from_secs(20),
            srv,
        );
        assert_eq!(
            r["detected"],
            true,
            "baresip {} did not hear {freq} Hz: {r}\n{}\nringback log:\n{}",
            self.name,
            self.diagnostics(),
            srv.log()
        );
    }

    /// baresip's own log, with its SIP trace.
    fn baresip_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("baresip.log")).unwrap_or_default()
    }

    /// Its events, stderr and the tail of baresip's own log (SIP trace).
    fn diagnostics(&self) -> String {
        let events: Vec<String> = self
            .events()
            .iter()
            .map(|e| {
                let mut e = e.clone();
                if let Some(o) = e.as_object_mut() {
                    o.remove("headers");
                }
                e.to_string()
            })
            .collect();
        let log = self.baresip_log();
        let tail: Vec<&str> = log
            .lines()
            .filter(|l| !l.starts_with('['))
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .take(250)
            .collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "--- {} events:\n{}\n--- stderr:\n{}\n--- baresip log (tail):\n{}",
            self.name,
            events.join("\n"),
            self.stderr.lock().map(|s| s.clone()).unwrap_or_default(),
            tail.join("\n")
        )
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SIGTERM: the script stops its baresip (by PID) and exits.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.child.id().to_string())
                .status();
            let until = Instant::now() + Duration::from_secs(5);
            while Instant::now() < until {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
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

fn wait_agent_state(srv: &Server, agent: &str, state: &str, timeout: Duration) {
    let until = Instant::now() + timeout;
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

/// No call left in the server (`GET /api/v1/calls`).
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

/// A baresip caller dialing `number` on the server.
fn caller(srv: &Server, transport: &str, number: &str, extra: &[&str]) -> Peer {
    let uri = format!("sip:{number}@{}", srv.sip);
    let mut a = args(&["--transport", transport, "--uri", &uri]);
    a.extend(args(extra));
    Peer::spawn("caller", "caller", &a)
}

/// The Call-ID of the caller's call.
fn call_id(peer: &Peer, srv: &Server) -> String {
    peer.expect("established", Duration::from_secs(10), srv)["id"]
        .as_str()
        .expect("id")
        .to_string()
}

/// A baresip agent phone for `user` registering over `transport`.
fn agent(srv: &Server, transport: &str, user: &str, password: &str, extra: &[&str]) -> Peer {
    let mut a = args(&[
        "--transport",
        transport,
        "--registrar",
        &srv.sip.to_string(),
        "--user",
        user,
        "--password",
        password,
    ]);
    a.extend(args(extra));
    Peer::spawn(&format!("agent {user}"), "agent", &a)
}

/// The header `name` of an `incoming` event.
fn header(inv: &Value, name: &str) -> String {
    inv["headers"]
        .as_array()
        .and_then(|h| {
            h.iter()
                .find(|kv| kv[0].as_str().is_some_and(|k| k.eq_ignore_ascii_case(name)))
        })
        .and_then(|kv| kv[1].as_str())
        .unwrap_or_default()
        .to_string()
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
    let trace = c.baresip_log();
    assert!(
        trace.contains("audio: send DTMF digit: '1'"),
        "no RFC 4733 event sent:\n{}",
        c.diagnostics()
    );
    assert!(!trace.contains("\nINFO sip:"), "{}", c.diagnostics());
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

/// baresip 1.0 (libre 1.1) aborts a REGISTER with ENOSYS ("Function not
/// implemented") when any challenge of the 401 is not MD5; ringback's
/// default (`sip.auth_algorithms = ["MD5", "SHA-256"]`, no override here)
/// must let it in at once.
fn registers_with_defaults(transport: &str) {
    let srv = Server::start(ServerOpts {
        extra_config: AGENT_CONFIG.into(),
        ..ServerOpts::default()
    });
    let mut a = agent(
        &srv,
        transport,
        "alice",
        "alice-secret",
        &["--register-only", "--timeout", "10"],
    );
    let reg = a
        .wait_for(
            |e| e["event"] == "registered" || e["event"] == "reg_failed",
            Duration::from_secs(10),
        )
        .unwrap_or_else(|| panic!("no registration outcome\n{}", a.diagnostics()));
    assert_eq!(
        reg["event"],
        "registered",
        "baresip could not register with the default digest settings: {reg}\n{}\nringback log:\n{}",
        a.diagnostics(),
        srv.log()
    );
    assert_eq!(reg["param"], "200 OK", "{reg}");
    wait_agent_state(&srv, "alice", "available", Duration::from_secs(5));
    // What it was offered: one MD5 challenge per 401.
    let log = a.baresip_log();
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
    let reg = a
        .wait_for(
            |e| e["event"] == "registered" || e["event"] == "reg_failed",
            Duration::from_secs(10),
        )
        .unwrap_or_else(|| panic!("no registration outcome\n{}", a.diagnostics()));
    assert_eq!(
        reg["event"],
        "registered",
        "{reg}\n{}\nringback log:\n{}",
        a.diagnostics(),
        srv.log()
    );
    wait_agent_state(&srv, "alice", "available", Duration::from_secs(5));
    a.finish(&srv);
}

// ---------------------------------------------------------------------------------------------
// 3. A baresip agent phone takes a queued baresip caller.
// ---------------------------------------------------------------------------------------------

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
    let mut a = agent(&srv, transport, "alice", "alice-secret", &agent_args);
    a.expect("registered", Duration::from_secs(10), &srv);
    wait_agent_state(&srv, "alice", "available", Duration::from_secs(5));

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
    let x = &inv["x_ringback"];
    let xh = |name: &str| x[name].as_str().unwrap_or_default().to_string();
    assert!(xh("X-Ringback-Caller").contains("15550123"), "{x}");
    assert!(
        xh("X-Ringback-Path").starts_with("support > internet"),
        "{x}"
    );
    assert_eq!(xh("X-Ringback-Digits"), "1", "{x}");
    assert_eq!(xh("X-Ringback-Queue"), "support", "{x}");
    assert_eq!(xh("X-Ringback-Call-Id"), id, "{x}");
    assert!(
        header(&inv, "From").contains("+15550123"),
        "the agent sees the caller's number: {}",
        header(&inv, "From")
    );
    let via = header(&inv, "Via").to_ascii_uppercase();
    assert!(
        via.starts_with(&format!("SIP/2.0/{}", transport.to_ascii_uppercase())),
        "INVITE to the agent over {transport}: Via {via}"
    );
    a.expect("established", Duration::from_secs(10), &srv);
    wait_agent_state(&srv, "alice", "on-call", Duration::from_secs(5));

    c.finish(&srv);
    a.finish(&srv);
    // Audio both ways, by content.
    a.assert_heard(CALLER_TONE, &srv);
    c.assert_heard(AGENT_TONE, &srv);
    // The side that did not hang up received the BYE.
    let (hanger, other) = match bye {
        Bye::Agent => (&a, &c),
        Bye::Caller => (&c, &a),
    };
    hanger.expect("hangup", Duration::from_secs(1), &srv);
    let closed = other.expect("closed", Duration::from_secs(1), &srv);
    assert_eq!(closed["by_us"], false, "{}", other.diagnostics());
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
    let mut customer = Peer::spawn(
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
    let srv = common::callback_server(
        &format!(
            "[trunk]\naddress = \"127.0.0.1:{port}\"\ncaller_id = \"+15550100\"\ntransport = \"{transport}\"\n",
            port = customer.port
        ),
        "retry_after_secs = 60\nmax_attempts = 1\naccept_timeout_secs = 15",
    );
    let mut a = agent(
        &srv,
        transport,
        "alice",
        "alice-secret",
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
    a.expect("registered", Duration::from_secs(10), &srv);
    wait_agent_state(&srv, "alice", "available", Duration::from_secs(5));

    let (status, body) = srv.http_post(
        "/api/v1/callbacks",
        &format!(
            r#"{{"number":"{CUSTOMER}","queue":"operator","context":"web form: baresip interop"}}"#
        ),
    );
    assert_eq!(status, 201, "{body}\n{}", srv.log());
    let id = json(&body)["id"].as_str().expect("id").to_string();

    // The agent is called first, with the callback's context …
    let inv = a.expect("incoming", Duration::from_secs(15), &srv);
    let x = &inv["x_ringback"];
    assert_eq!(x["X-Ringback-Callback"].as_str(), Some(id.as_str()), "{x}");
    assert_eq!(
        x["X-Ringback-Context"].as_str(),
        Some("web form: baresip interop"),
        "{x}"
    );
    a.expect("established", Duration::from_secs(10), &srv);
    assert!(
        customer.events().iter().all(|e| e["event"] != "incoming"),
        "the customer rang before the agent answered:\n{}",
        customer.diagnostics()
    );
    // … then the customer, through the trunk, over the configured transport.
    let cinv = customer.expect("incoming", Duration::from_secs(20), &srv);
    let line = cinv["request_line"].as_str().unwrap_or_default();
    assert!(
        line.starts_with(&format!(
            "INVITE sip:{CUSTOMER}@127.0.0.1:{}",
            customer.port
        )),
        "customer dialed through the trunk: {line}"
    );
    let via = header(&cinv, "Via").to_ascii_uppercase();
    assert!(
        via.starts_with(&format!("SIP/2.0/{}", transport.to_ascii_uppercase())),
        "customer INVITE over {transport}: Via {via}"
    );
    assert!(
        header(&cinv, "From").contains("+15550100"),
        "the trunk caller ID: {}",
        header(&cinv, "From")
    );
    customer.expect("established", Duration::from_secs(10), &srv);
    customer.expect("dtmf_sent", Duration::from_secs(10), &srv);

    customer.finish(&srv);
    a.finish(&srv);
    customer.assert_heard(AGENT_TONE, &srv);
    a.assert_heard(CALLER_TONE, &srv);

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
    assert_no_active_calls(&srv);
}

#[test]
fn baresip_callback_agent_then_customer_udp() {
    callback_to_customer("udp");
}

#[test]
fn baresip_callback_agent_then_customer_tcp() {
    callback_to_customer("tcp");
}
