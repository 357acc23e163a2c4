//! Real SIP user agents driven by the Python scripts in `tests/peers/`
//! (`pjsua_peer.py`, `baresip_peer.py`), and the assertions the interop
//! tests built on them share.
//!
//! Every script plays one role (`caller`, `agent`, `customer`) and prints
//! one JSON object per line on stdout (`started`, `registered`, `incoming`,
//! `call_state`, `tone_report`, `hangup`, `done`, ...). A [`PeerScript`]
//! says how one script is started and where its own log is; a [`PyPeer`]
//! is one running process with the events it reported so far. Every
//! script takes `--transport`, `--uri` (caller), `--registrar`, `--user`
//! and `--password` (agent); the other options are the script's own and
//! stay with its tests.
//!
//! A peer still running when it is dropped is stopped by PID.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{poll_until, Cdr, Server, ServerOpts};

/// The caller's (and the callback customer's) tone: what the agent must
/// hear.
pub const CALLER_TONE: f64 = 1000.0;
/// The agent's tone: what the caller / customer must hear.
pub const AGENT_TONE: f64 = 1500.0;
/// The callback customer's number (dialed through the trunk).
pub const CUSTOMER: &str = "+15551230001";

/// A `support` queue served by agent `alice` (password `alice-secret`),
/// for the shipped demo dialplan (2000, press 1: support > internet).
pub const AGENT_CONFIG: &str = r#"
[queues.support]
ring_timeout_secs = 15
announce_every_secs = 0
wrapup_secs = 1

[agents.alice]
password = "alice-secret"
display_name = "Alice Smith"
queues = ["support"]
"#;

/// How one peer script is started and inspected. Each test file defines
/// one for its script.
#[derive(Clone, Copy)]
pub struct PeerScript {
    /// The user agent's name in messages (`PJSIP`, `baresip`).
    pub label: &'static str,
    /// The script, relative to the repository root.
    pub script: &'static str,
    /// Panics (the tests fail, they do not skip) when the user agent or
    /// what the script needs is not installed; called before every spawn.
    pub require: fn(),
    /// A base port the peer can listen on (its layout is the script's).
    pub pick_port: fn() -> u16,
    /// The arguments after the role that place the peer: given its base
    /// port, its private directory and the path of its own log there.
    pub place_args: fn(port: u16, dir: &Path, log: &Path) -> Vec<OsString>,
    /// The user agent's own log (with its SIP trace), in the peer's
    /// directory.
    pub log_file: &'static str,
    /// A bulky event field (the whole SIP message, every header) left out
    /// of the diagnostics.
    pub omit_field: &'static str,
    /// How many lines of the user agent's log the diagnostics end with.
    pub log_tail: usize,
    /// Log lines the diagnostics skip (noise such as progress lines).
    pub skip_log_line: fn(&str) -> bool,
    /// On drop, how long the script may take to stop after SIGTERM (it
    /// stops the user agent it started) before it is killed; zero kills it
    /// at once.
    pub term_grace: Duration,
}

impl PeerScript {
    /// Start a peer and wait until it runs; `args` follow the role (see the
    /// script's `--help`), the placing arguments are added here. A port
    /// taken between our check and the peer's bind makes it try others.
    pub fn spawn(&self, name: &str, role: &str, args: &[String]) -> PyPeer {
        (self.require)();
        let mut last = String::new();
        for _ in 0..3 {
            let peer = PyPeer::spawn_on(*self, name, role, (self.pick_port)(), args);
            // It either starts listening or reports why not.
            match peer.wait_for(
                |e| e["event"] == "started" || e["event"] == "error",
                Duration::from_secs(15),
            ) {
                Some(e) if e["event"] == "started" => return peer,
                other => last = format!("{other:?}\n{}", peer.diagnostics()),
            }
        }
        panic!("{} peer {name} did not start: {last}", self.label);
    }

    /// A caller dialing `number` on the server over `transport`, with the
    /// script's own `extra` arguments.
    pub fn caller(&self, srv: &Server, transport: &str, number: &str, extra: &[&str]) -> PyPeer {
        let mut a = args(&["--transport", transport, "--uri", &uri(srv, number)]);
        a.extend(args(extra));
        self.spawn("caller", "caller", &a)
    }

    /// An agent phone for `user` registering (digest) over `transport`; it
    /// is not waited for (see [`PeerScript::registered_agent`]).
    pub fn agent(
        &self,
        srv: &Server,
        transport: &str,
        user: &str,
        password: &str,
        extra: &[&str],
    ) -> PyPeer {
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
        self.spawn(&format!("agent {user}"), "agent", &a)
    }

    /// Agent `alice` (password `alice-secret`) registered over `transport`
    /// and `available` on the server.
    pub fn registered_alice(&self, srv: &Server, transport: &str, extra: &[&str]) -> PyPeer {
        let agent = self.agent(srv, transport, "alice", "alice-secret", extra);
        agent.expect("registered", Duration::from_secs(10), srv);
        wait_agent_state(srv, "alice", "available");
        agent
    }
}

#[derive(Default)]
struct Events {
    list: Vec<Value>,
    closed: bool,
}

/// `python3 -u SCRIPT ROLE ...`: one running peer and the JSON events it
/// printed so far.
pub struct PyPeer {
    /// Its name in messages (`caller`, `agent alice`, ...).
    pub name: String,
    /// The SIP port it listens on.
    pub port: u16,
    script: PeerScript,
    child: Child,
    events: Arc<(Mutex<Events>, Condvar)>,
    stderr: Arc<Mutex<String>>,
    dir: tempfile::TempDir,
}

impl PyPeer {
    fn spawn_on(script: PeerScript, name: &str, role: &str, port: u16, args: &[String]) -> PyPeer {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join(script.log_file);
        let mut child = Command::new("python3")
            .arg("-u")
            .arg(super::repo().join(script.script))
            .arg(role)
            .args((script.place_args)(port, dir.path(), &log))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn python3 {}: {e}", script.script));
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
            port,
            script,
            child,
            events,
            stderr,
            dir,
        }
    }

    /// Everything it reported so far.
    pub fn events(&self) -> Vec<Value> {
        self.events.0.lock().expect("events").list.clone()
    }

    /// The first event matching `pred`, waiting up to `timeout` (`None`
    /// once the peer's output closed without one).
    pub fn wait_for(&self, pred: impl Fn(&Value) -> bool, timeout: Duration) -> Option<Value> {
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

    /// The first `event` (panics with the peer's diagnostics and the
    /// server's log otherwise).
    pub fn expect(&self, event: &str, timeout: Duration, srv: &Server) -> Value {
        self.expect_where(event, |_| true, timeout, srv)
    }

    /// The first `event` that also matches `pred` (panics with the peer's
    /// diagnostics and the server's log otherwise).
    pub fn expect_where(
        &self,
        event: &str,
        pred: impl Fn(&Value) -> bool,
        timeout: Duration,
        srv: &Server,
    ) -> Value {
        match self.wait_for(|e| e["event"] == event && pred(e), timeout) {
            Some(e) => e,
            None => panic!(
                "{} {} never reported `{event}`\n{}\nringback log:\n{}",
                self.script.label,
                self.name,
                self.diagnostics(),
                srv.log()
            ),
        }
    }

    /// Wait up to `timeout` for the process to end (the script bounds
    /// itself by its `--timeout`); its exit code, -1 for a signal.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
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

    /// Assert a clean exit (code 0) within 45 s.
    pub fn finish(&mut self, srv: &Server) {
        let code = self.wait_exit(Duration::from_secs(45));
        assert_eq!(
            code,
            Some(0),
            "{} {} did not finish cleanly\n{}\nringback log:\n{}",
            self.script.label,
            self.name,
            self.diagnostics(),
            srv.log()
        );
    }

    /// Assert a clean exit (see [`PyPeer::finish`]), then that it heard
    /// `freq` during the call (see [`PyPeer::assert_heard`]).
    pub fn finish_hearing(&mut self, freq: f64, srv: &Server) {
        self.finish(srv);
        self.assert_heard(freq, srv);
    }

    /// Its tone report for `freq` (sent once the call ended).
    pub fn tone_report(&self, freq: f64, srv: &Server) -> Value {
        self.expect_where(
            "tone_report",
            |e| e["freq"].as_f64() == Some(freq),
            Duration::from_secs(30),
            srv,
        )
    }

    /// Assert that it heard `freq` (for the script's minimum tone length).
    pub fn assert_heard(&self, freq: f64, srv: &Server) {
        let r = self.tone_report(freq, srv);
        assert_eq!(
            r["detected"],
            true,
            "{} {} did not hear {freq} Hz: {r}\n{}\nringback log:\n{}",
            self.script.label,
            self.name,
            self.diagnostics(),
            srv.log()
        );
    }

    /// The path of the user agent's own log.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join(self.script.log_file)
    }

    /// The user agent's own log so far (with its SIP trace).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Its events (without the bulky field), stderr and the tail of the
    /// user agent's own log: what a failure message needs.
    pub fn diagnostics(&self) -> String {
        let events: Vec<String> = self
            .events()
            .iter()
            .map(|e| {
                let mut e = e.clone();
                if let Some(o) = e.as_object_mut() {
                    o.remove(self.script.omit_field);
                }
                e.to_string()
            })
            .collect();
        let log = self.log();
        let kept: Vec<&str> = log
            .lines()
            .filter(|l| !(self.script.skip_log_line)(l))
            .collect();
        let tail = &kept[kept.len().saturating_sub(self.script.log_tail)..];
        format!(
            "--- {} events:\n{}\n--- stderr:\n{}\n--- {} log (tail):\n{}",
            self.name,
            events.join("\n"),
            self.stderr.lock().map(|s| s.clone()).unwrap_or_default(),
            self.script.label,
            tail.join("\n")
        )
    }
}

impl Drop for PyPeer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            if !self.script.term_grace.is_zero() {
                let _ = Command::new("kill")
                    .arg("-TERM")
                    .arg(self.child.id().to_string())
                    .status();
                let until = Instant::now() + self.script.term_grace;
                while Instant::now() < until {
                    if let Ok(Some(_)) = self.child.try_wait() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers.
// ---------------------------------------------------------------------------------------------

/// Owned arguments.
pub fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Parse a JSON body (panics with the body otherwise).
pub fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// The `sip:` URI of a number on the server.
pub fn uri(srv: &Server, number: &str) -> String {
    format!("sip:{number}@{}", srv.sip)
}

/// The header `name` (any case) of a SIP request reported in an `incoming`
/// event (`headers`: a list of `[name, value]`); empty when absent.
pub fn sip_header(incoming: &Value, name: &str) -> String {
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

/// A server with the shipped demo dialplans and [`AGENT_CONFIG`].
pub fn agent_server() -> Server {
    Server::start(ServerOpts {
        extra_config: AGENT_CONFIG.into(),
        ..ServerOpts::default()
    })
}

/// A callback server (see `common::callback_server`) whose trunk points at
/// the `customer` peer over `transport`, with caller ID `+15550100`, and
/// that tries each callback once.
pub fn callback_server_to(customer: &PyPeer, transport: &str) -> Server {
    super::callback_server(
        &format!(
            "[trunk]\naddress = \"127.0.0.1:{port}\"\ncaller_id = \"+15550100\"\ntransport = \"{transport}\"\n",
            port = customer.port
        ),
        "retry_after_secs = 60\nmax_attempts = 1\naccept_timeout_secs = 15",
    )
}

/// An agent's state from `GET /api/v1/agents` (`missing` if not listed).
pub fn agent_state(srv: &Server, agent: &str) -> String {
    let (_, body) = srv.http_get("/api/v1/agents");
    json(&body)["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["id"] == agent))
        .and_then(|a| a["state"].as_str())
        .unwrap_or("missing")
        .to_string()
}

/// Wait up to 5 s for `agent` to be in `state`.
pub fn wait_agent_state(srv: &Server, agent: &str, state: &str) {
    poll_until(
        Duration::from_secs(5),
        Duration::from_millis(50),
        || (agent_state(srv, agent) == state).then_some(()),
        || {
            format!(
                "agent {agent} is `{}`, expected `{state}`\n{}",
                agent_state(srv, agent),
                srv.log()
            )
        },
    );
}

/// No call left in the server (`GET /api/v1/calls`), within 5 s.
pub fn assert_no_active_calls(srv: &Server) {
    let calls = || {
        let (status, body) = srv.http_get("/api/v1/calls");
        assert_eq!(status, 200, "{body}");
        body
    };
    poll_until(
        Duration::from_secs(5),
        Duration::from_millis(100),
        || {
            let v = json(&calls());
            (v["active_calls"] == 0 && v["calls"].as_array().is_some_and(|c| c.is_empty()))
                .then_some(())
        },
        || {
            format!(
                "calls still active after the BYE: {}\n{}",
                calls(),
                srv.log()
            )
        },
    );
}

/// Assert that the `incoming` event `inv` came over `transport` (its top
/// Via); `what` names the request in the message.
pub fn assert_via(inv: &Value, transport: &str, what: &str) {
    let via = sip_header(inv, "Via").to_ascii_uppercase();
    assert!(
        via.starts_with(&format!("SIP/2.0/{}", transport.to_ascii_uppercase())),
        "{what} over {transport}: Via {via}"
    );
}

// ---------------------------------------------------------------------------------------------
// The demo IVR.
// ---------------------------------------------------------------------------------------------

/// Assert the final CDR of call `call_id`: the demo caller (+15550123)
/// dialed 2000, pressed 1 in the support menu (path `support > internet`,
/// the `set` node ran), was queued in `support` and hung up; returns it.
pub fn assert_support_menu_cdr(srv: &Server, call_id: &str) -> Cdr {
    let cdr = srv.wait_cdr(call_id, Duration::from_secs(10));
    assert_eq!(cdr.digits, "1", "{cdr:?}");
    assert!(
        cdr.path.starts_with("support > internet"),
        "menu path of {cdr:?}"
    );
    assert_eq!(cdr.queue.as_deref(), Some("support"), "{cdr:?}");
    assert_eq!(cdr.hangup_by.as_deref(), Some("caller"), "{cdr:?}");
    assert_eq!(cdr.dialed, "2000", "{cdr:?}");
    assert!(cdr.caller.contains("15550123"), "{cdr:?}");
    assert!(cdr.vars.contains("internet"), "set node ran: {cdr:?}");
    cdr
}

// ---------------------------------------------------------------------------------------------
// A queued call taken by an agent.
// ---------------------------------------------------------------------------------------------

/// Who sends the BYE at the end of the conversation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Bye {
    /// The agent's phone hangs up.
    Agent,
    /// The caller hangs up.
    Caller,
}

impl Bye {
    /// The CDR's `hangup_by` for this side.
    pub fn hangup_by(self) -> &'static str {
        match self {
            Bye::Agent => "agent",
            Bye::Caller => "caller",
        }
    }

    /// Assert that the side that hangs up reported its `hangup` and the
    /// other one did not hang up (it received the BYE); returns the other
    /// side.
    pub fn assert_sides<'a>(
        self,
        agent: &'a PyPeer,
        caller: &'a PyPeer,
        srv: &Server,
    ) -> &'a PyPeer {
        let (hanger, other) = match self {
            Bye::Agent => (agent, caller),
            Bye::Caller => (caller, agent),
        };
        hanger.expect("hangup", Duration::from_secs(1), srv);
        assert!(
            other.events().iter().all(|e| e["event"] != "hangup"),
            "{} hung up although the other side did:\n{}",
            other.name,
            other.diagnostics()
        );
        other
    }
}

/// Assert the agent's INVITE (`incoming` event) for the demo caller
/// (+15550123) who pressed 1 in the support menu: every `X-Ringback-*`
/// context header, for call `call_id`, sent over `transport`.
pub fn assert_queued_call_invite(inv: &Value, call_id: &str, transport: &str) {
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
    assert_eq!(header("X-Ringback-Digits"), "1", "X-Ringback-Digits in {x}");
    assert_eq!(
        header("X-Ringback-Queue"),
        "support",
        "X-Ringback-Queue in {x}"
    );
    assert_eq!(
        header("X-Ringback-Call-Id"),
        call_id,
        "X-Ringback-Call-Id in {x}"
    );
    assert_eq!(header("X-Ringback-Repeat"), "0", "X-Ringback-Repeat in {x}");
    assert!(
        header("X-Ringback-Waited").parse::<u64>().is_ok(),
        "X-Ringback-Waited in {x}"
    );
    assert_via(
        inv,
        transport,
        &format!("the INVITE to the agent registered over {transport}"),
    );
}

/// Assert the end of queued call `call_id`: its CDR is `completed`, went
/// through `queue` and was hung up by `bye`; exactly one agent leg, which
/// dialed `agent` and was answered; and no call is left.
pub fn assert_queued_call_completed(
    srv: &Server,
    call_id: &str,
    queue: &str,
    agent: &str,
    bye: Bye,
) {
    let cdr = srv.wait_cdr(call_id, Duration::from_secs(10));
    assert_eq!(cdr.disposition, "completed", "{cdr:?}");
    assert_eq!(cdr.queue.as_deref(), Some(queue), "{cdr:?}");
    assert_eq!(cdr.hangup_by.as_deref(), Some(bye.hangup_by()), "{cdr:?}");
    let legs: Vec<_> = srv
        .cdrs()
        .into_iter()
        .filter(|c| c.leg == "agent")
        .collect();
    assert_eq!(legs.len(), 1, "one agent leg: {legs:?}");
    assert_eq!(legs[0].dialed, agent, "{legs:?}");
    assert!(legs[0].answered_at.is_some(), "{legs:?}");
    // The agent's own record says who ended its leg: its phone (BYE), or
    // ringback on the caller's behalf.
    let leg_by = match bye {
        Bye::Agent => "agent",
        Bye::Caller => "ringback",
    };
    assert_eq!(legs[0].hangup_by.as_deref(), Some(leg_by), "{legs:?}");
    // The API returns every stored field, with the link to the call.
    let (_, body) = srv.http_get("/api/v1/cdrs?limit=10");
    let rows = json(&body);
    let leg = rows["cdrs"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["leg"] == "agent"))
        .cloned()
        .unwrap_or_else(|| panic!("no agent leg in {rows:#}"));
    assert!(
        leg["vars"].as_str().is_some_and(|v| v.contains(call_id)),
        "the agent leg names its call: {leg:#}"
    );
    assert!(leg["dialplan_version"].is_string(), "{leg:#}");
    assert_no_active_calls(srv);
}

/// Let `caller` and `agent` (alice, on a server with [`AGENT_CONFIG`]) of
/// queued call `call_id` finish cleanly, then assert that each heard the
/// other's tone ([`CALLER_TONE`], [`AGENT_TONE`]), that `bye`'s side hung
/// up and the other did not, and the records (see
/// [`assert_queued_call_completed`], queue `support`). Returns the side
/// that received the BYE.
pub fn finish_queued_call<'a>(
    srv: &Server,
    call_id: &str,
    agent: &'a mut PyPeer,
    caller: &'a mut PyPeer,
    bye: Bye,
) -> &'a PyPeer {
    // Audio both ways, by content.
    caller.finish_hearing(AGENT_TONE, srv);
    agent.finish_hearing(CALLER_TONE, srv);
    // The side that did not hang up received the BYE.
    let other = bye.assert_sides(agent, caller, srv);
    assert_queued_call_completed(srv, call_id, "support", "alice", bye);
    other
}

// ---------------------------------------------------------------------------------------------
// A callback: ringback calls the agent, then the customer.
// ---------------------------------------------------------------------------------------------

/// `POST /api/v1/callbacks` for [`CUSTOMER`] in the operator queue, with
/// this context; asserts 201 and returns the callback's id.
pub fn request_callback(srv: &Server, context: Option<&str>) -> String {
    let mut req = serde_json::json!({ "number": CUSTOMER, "queue": "operator" });
    if let Some(c) = context {
        req["context"] = c.into();
    }
    let (status, body) = srv.http_post("/api/v1/callbacks", &req.to_string());
    assert_eq!(status, 201, "{body}\n{}", srv.log());
    json(&body)["id"].as_str().expect("id").to_string()
}

/// Assert the agent's INVITE (`incoming` event) for callback `id`: its id,
/// its `context` and the customer's number as caller.
pub fn assert_callback_invite(inv: &Value, id: &str, context: &str) {
    let x = &inv["x_ringback"];
    assert_eq!(x["X-Ringback-Callback"].as_str(), Some(id), "{x}");
    assert_eq!(x["X-Ringback-Context"].as_str(), Some(context), "{x}");
    assert!(
        x["X-Ringback-Caller"]
            .as_str()
            .is_some_and(|c| c.contains(&CUSTOMER[1..])),
        "X-Ringback-Caller in {x}"
    );
}

/// Assert the customer's INVITE (`incoming` event): to [`CUSTOMER`] at the
/// trunk's address (`port` on 127.0.0.1), over `transport`.
pub fn assert_trunk_invite(cinv: &Value, port: u16, transport: &str) {
    let line = cinv["request_line"].as_str().unwrap_or_default();
    assert!(
        line.starts_with(&format!("INVITE sip:{CUSTOMER}@127.0.0.1:{port}")),
        "customer dialed through the trunk: {line}"
    );
    assert_via(cinv, transport, "customer INVITE");
}

/// Wait up to 10 s for callback `id` to be `completed`, then assert that
/// it is, after one attempt, through `scheduled`, `dialing`, `connected`;
/// returns the callback.
pub fn assert_callback_completed(srv: &Server, id: &str) -> Value {
    let callback = || {
        let (status, body) = srv.http_get(&format!("/api/v1/callbacks/{id}"));
        assert_eq!(status, 200, "{body}");
        json(&body)
    };
    let cb = poll_until(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || Some(callback()).filter(|cb| cb["state"] == "completed"),
        || {
            let cb = callback();
            format!(
                "callback {id} is {}, not completed: {cb:#}\n{}",
                cb["state"],
                srv.log()
            )
        },
    );
    assert_eq!(cb["attempts"], 1, "{cb:#}");
    let history: Vec<&str> = cb["events"]
        .as_array()
        .map(|e| e.iter().filter_map(|x| x["to"].as_str()).collect())
        .unwrap_or_default();
    for st in ["scheduled", "dialing", "connected", "completed"] {
        assert!(history.contains(&st), "history {history:?} lacks {st}");
    }
    cb
}

/// Assert the end of callback `id` whose agent and customer received the
/// INVITEs `agent_inv` and `customer_inv`: the callback completed (see
/// [`assert_callback_completed`]), both legs have an answered, completed
/// CDR (whoever hung up), and no call is left.
pub fn assert_callback_call_completed(
    srv: &Server,
    id: &str,
    agent_inv: &Value,
    customer_inv: &Value,
) {
    assert_callback_completed(srv, id);
    let cdrs = srv.cdrs();
    for (who, inv) in [("agent", agent_inv), ("customer", customer_inv)] {
        let leg_id = sip_header(inv, "Call-ID");
        let row = cdrs.iter().find(|c| c.call_id == leg_id);
        assert!(
            row.is_some_and(|c| c.answered_at.is_some() && c.disposition == "completed"),
            "the {who} leg ({leg_id}) has no answered, completed CDR: {row:?}\nall rows: {cdrs:#?}"
        );
    }
    assert_no_active_calls(srv);
}

// ---------------------------------------------------------------------------------------------
// PJSIP (pjsua2) peers: `tests/peers/pjsua_peer.py`.
// ---------------------------------------------------------------------------------------------

/// Fail (not skip) when pjsua2 cannot be imported.
pub fn require_pjsua2() {
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
pub fn peer_port() -> u16 {
    for _ in 0..20 {
        let p = super::free_udp_port();
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
    panic!("no port free on both UDP and TCP");
}

/// `python3 tests/peers/pjsua_peer.py ROLE --port P --rtp-port P+2 --dir D
/// --log D/pjsip.log ...`: PJSIP's log (level 5) has every SIP message.
pub const PJSUA: PeerScript = PeerScript {
    label: "PJSIP",
    script: "tests/peers/pjsua_peer.py",
    require: require_pjsua2,
    pick_port: peer_port,
    place_args: |port, dir, log| {
        vec![
            "--port".into(),
            port.to_string().into(),
            "--rtp-port".into(),
            (port + 2).to_string().into(),
            "--dir".into(),
            dir.into(),
            "--log".into(),
            log.into(),
        ]
    },
    log_file: "pjsip.log",
    // The whole SIP message of `incoming`.
    omit_field: "message",
    log_tail: 300,
    skip_log_line: |_| false,
    // pjsua2 runs in the script's own process: nothing to stop first.
    term_grace: Duration::ZERO,
};

// ---------------------------------------------------------------------------------------------
// baresip peers: `tests/peers/baresip_peer.py` (tests/baresip_interop.rs, tests/cluster.rs).
// ---------------------------------------------------------------------------------------------

const BARESIP: &str = "/usr/bin/baresip";
const MODULES: &str = "/usr/lib/baresip/modules";

/// Fail (not skip) when baresip or the modules the peer loads are missing.
pub fn require_baresip() {
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
fn baresip_peer_port() -> u16 {
    for _ in 0..30 {
        let p = super::free_udp_port();
        if (0..3).all(|i| std::net::TcpListener::bind(("127.0.0.1", p + i)).is_ok()) {
            return p;
        }
    }
    panic!("no port free for a baresip peer");
}

/// `python3 tests/peers/baresip_peer.py ROLE --port P --dir D ...`; the
/// script writes baresip's log (with its SIP trace) to `D/baresip.log`.
pub const BARESIP_PEER: PeerScript = PeerScript {
    label: "baresip",
    script: "tests/peers/baresip_peer.py",
    require: require_baresip,
    pick_port: baresip_peer_port,
    place_args: |port, dir, _log| {
        vec![
            "--port".into(),
            port.to_string().into(),
            "--dir".into(),
            dir.into(),
        ]
    },
    log_file: "baresip.log",
    // Every header of `incoming`.
    omit_field: "headers",
    log_tail: 250,
    // baresip's progress lines.
    skip_log_line: |l| l.starts_with('['),
    // SIGTERM: the script stops its baresip (by PID) and exits.
    term_grace: Duration::from_secs(5),
};
