//! The supervisor dashboard and the agent page in real headless Chromium:
//! a SIPp caller waits in a queue and shows up live on the dashboard, then
//! disappears when it hangs up; pausing an agent in the page changes its
//! state in the API; the agent page (with the agent's own token) shows the
//! pause and unpauses; a pending callback is cancelled from the page; when
//! the server dies the page says the connection was lost.
//!
//! The browser side is `tests/browser/dashboard.test.mjs` (playwright-core
//! driving Debian's `/usr/bin/chromium`). Both are installed here when
//! missing (`apt-get install chromium`, `npm ci`). The screenshots land in
//! `tests/artifacts/` (dashboard.png, agent.png).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::scenario::{self, Uac, CALLER};
use common::{free_udp_port, poll_until, repo, Server, ServerOpts, Sipp};
use serde_json::Value;

const ADMIN_TOKEN: &str = "browser-test-admin-token";
const AGENT_TOKEN: &str = "browser-test-alice-token";
const CALLBACK_NUMBER: &str = "+15551230001";

/// Calls to 300 wait in `support`, a queue nobody serves (so the caller
/// keeps waiting); alice serves `billing` only and is never offered it.
const PLAN: &str = r#"
[dialplan]
name = "browser"
numbers = ["300"]
start = "q"
operator = "operator"

[nodes.q]
type = "queue"
queue = "support"
"#;

fn config() -> String {
    format!(
        r#"
[queues.support]
announce_every_secs = 0

[agents.alice]
password = "alice-secret"
display_name = "Alice Smith"
queues = ["billing"]

[[api.tokens]]
token = "{ADMIN_TOKEN}"
role = "admin"

[[api.tokens]]
token = "{AGENT_TOKEN}"
role = "agent"
agent = "alice"
"#
    )
}

/// An HTTP request with the admin token; returns (status, body).
fn http(srv: &Server, method: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(srv.api).expect("connect api");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        srv.api,
        body.len()
    )
    .expect("write");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read");
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn get_json(srv: &Server, path: &str) -> Value {
    let (status, body) = http(srv, "GET", path, "");
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"))
}

fn agent_state(srv: &Server, id: &str) -> String {
    get_json(srv, "/api/v1/agents")["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["id"] == id))
        .and_then(|a| a["state"].as_str())
        .unwrap_or("missing")
        .to_string()
}

fn wait_until(what: &str, srv: &Server, timeout: Duration, mut ok: impl FnMut() -> bool) {
    poll_until(
        timeout,
        Duration::from_millis(100),
        || ok().then_some(()),
        || format!("timed out waiting for {what}\nserver log:\n{}", srv.log()),
    );
}

/// The caller: INVITE, wait in the queue until the test sends it an INFO
/// (our "hang up now" signal; answered 200), then BYE.
fn caller_xml() -> String {
    let xml = Uac::new().invite().bye().xml();
    let bye = xml
        .find("<send retrans=\"500\"><![CDATA[\nBYE")
        .expect("BYE step in the scenario");
    let wait = "<recv request=\"INFO\" timeout=\"170000\"/>\n\
<send><![CDATA[\nSIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n[last_To:]\n[last_Call-ID:]\n[last_CSeq:]\nContent-Length: 0\n]]></send>\n";
    format!("{}{wait}{}", &xml[..bye], &xml[bye..])
}

/// Tell the waiting SIPp caller (Call-ID `call_id`, listening on
/// `sipp_port`) to hang up. Sent once: a second INFO would arrive after the
/// scenario moved on and abort it.
fn signal_hangup(sipp_port: u16, call_id: &str) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let me = sock.local_addr().expect("addr").port();
    let msg = format!(
        "INFO sip:sipp@127.0.0.1:{sipp_port} SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK-browser-hangup\r\n\
From: <sip:driver@127.0.0.1:{me}>;tag=driver\r\n\
To: <sip:{CALLER}@127.0.0.1:{sipp_port}>\r\n\
Call-ID: {call_id}\r\n\
CSeq: 1 INFO\r\n\
Max-Forwards: 70\r\n\
Content-Length: 0\r\n\r\n"
    );
    sock.send_to(msg.as_bytes(), ("127.0.0.1", sipp_port))
        .expect("send INFO to SIPp");
}

#[test]
fn dashboard_shows_live_queue_and_pauses_agents_in_real_chromium() {
    let browser_dir = repo().join("tests/browser");
    common::browser::ensure_node_modules(&browser_dir);
    let artifacts = repo().join("tests/artifacts");
    std::fs::create_dir_all(&artifacts).expect("mkdir tests/artifacts");
    let screenshot: PathBuf = artifacts.join("dashboard.png");
    let _ = std::fs::remove_file(&screenshot);

    let srv = Server::start(ServerOpts {
        dialplans: vec![("browser.toml".into(), PLAN.into())],
        extra_config: config(),
        ..ServerOpts::default()
    });

    // Without a token the API refuses; the pages themselves are open.
    assert_eq!(srv.http_get("/api/v1/agents").0, 401);
    assert_eq!(srv.http_get("/").0, 200, "the dashboard is served at /");

    // alice's phone registers: she is logged in and available.
    Sipp::from_xml(&scenario::register("alice", "alice-secret", 300, 200))
        .arg("-p")
        .arg(free_udp_port())
        .run(srv.sip, "alice")
        .assert_ok("REGISTER");
    wait_until("alice available", &srv, Duration::from_secs(5), || {
        agent_state(&srv, "alice") == "available"
    });

    // A web callback request that stays pending (nobody serves `support`).
    let (status, body) = http(
        &srv,
        "POST",
        "/api/v1/callbacks",
        &format!(
            r#"{{"number":"{CALLBACK_NUMBER}","queue":"support","context":"web form: invoice 42"}}"#
        ),
    );
    assert_eq!(status, 201, "create callback: {body}");
    let callback: Value = serde_json::from_str(&body).expect("callback JSON");
    let callback_id = callback["id"].as_str().expect("callback id").to_string();

    // The caller dials in and waits in `support`.
    let sipp_port = free_udp_port();
    let call_id = format!("browser-{}@127.0.0.1", std::process::id());
    let caller = Sipp::from_xml(&caller_xml())
        .arg("-p")
        .arg(sipp_port)
        .arg("-cid_str")
        .arg(&call_id)
        .arg("-timeout")
        .arg("180s")
        .spawn(srv.sip, "300");
    wait_until(
        "the caller waiting in /api/v1/queues",
        &srv,
        Duration::from_secs(10),
        || {
            get_json(&srv, "/api/v1/queues")["queues"]
                .as_array()
                .is_some_and(|qs| {
                    qs.iter().any(|q| {
                        q["waiting"]
                            .as_array()
                            .is_some_and(|w| w.iter().any(|c| c["caller"] == CALLER))
                    })
                })
        },
    );

    let mut node = Command::new("node")
        .arg("dashboard.test.mjs")
        .current_dir(&browser_dir)
        .env("RINGBACK_URL", format!("http://{}", srv.api))
        .env("RINGBACK_TOKEN", ADMIN_TOKEN)
        .env("RINGBACK_AGENT_TOKEN", AGENT_TOKEN)
        .env("RINGBACK_CALLER", CALLER)
        .env("RINGBACK_AGENT", "alice")
        .env("RINGBACK_CALLBACK", &callback_id)
        .env("SCREENSHOT", &screenshot)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn node");
    let mut to_node = node.stdin.take().expect("node stdin");
    let (tx, rx) = mpsc::channel::<String>();
    let out = node.stdout.take().expect("node stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            eprintln!("[node] {line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let err = node.stderr.take().expect("node stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            eprintln!("[node] {line}");
        }
    });

    let mut caller = Some(caller);
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match rx.recv_timeout(left) {
            Ok(l) => l,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = node.kill();
                panic!("browser test timed out; its output:\n{}", lines.join("\n"));
            }
        };
        match line.as_str() {
            "READY_FOR_HANGUP" => {
                signal_hangup(sipp_port, &call_id);
                let run = caller.take().expect("one caller").wait();
                run.assert_ok("caller waiting, then hanging up");
                writeln!(to_node, "HUNG_UP").expect("tell node");
            }
            "READY_FOR_SERVER_STOP" => {
                // What the pages did is in the API: alice was paused, then
                // unpaused from her own page; the callback was cancelled.
                assert_eq!(agent_state(&srv, "alice"), "available");
                let cb = get_json(&srv, &format!("/api/v1/callbacks/{callback_id}"));
                assert_eq!(cb["state"], "cancelled", "{cb:#}");
                let reasons: Vec<String> = cb["events"]
                    .as_array()
                    .map(|e| {
                        e.iter()
                            .filter_map(|x| x["reason"].as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                assert!(
                    reasons.iter().any(|r| r.contains("resolved by email")),
                    "cancel reason from the page not recorded: {cb:#}"
                );
                // SIGKILL, reaped later by the harness's drop.
                srv.signal("KILL");
                writeln!(to_node, "SERVER_STOPPED").expect("tell node");
            }
            _ => {}
        }
        lines.push(line);
    }
    let status = node.wait().expect("wait node");
    assert!(
        status.success(),
        "browser test failed ({status}):\n{}\nserver log:\n{}",
        lines.join("\n"),
        srv.log()
    );
    assert!(
        lines.iter().any(|l| l.starts_with("ok - caller leaves")),
        "the hang-up step did not run:\n{}",
        lines.join("\n")
    );
    assert!(
        screenshot.exists(),
        "no screenshot at {}",
        screenshot.display()
    );
}
