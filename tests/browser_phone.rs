//! The agent page's browser phone (WebRTC, issue 14) in real headless
//! Chromium, against a real SIP caller (PJSIP).
//!
//! Chromium logs into `/agent?token=<agent token>` as a `webrtc = true`
//! agent and its fake microphone plays a known tone
//! (`--use-file-for-fake-audio-capture`). A PJSIP caller dials the support
//! menu and presses 0 (zero-out to the operator queue); the page rings
//! with the caller's context and **Answer** is clicked. The caller must
//! hear the browser's tone (Goertzel on its recording) and the browser must
//! receive the caller's audio (`getStats`: inbound packets and audio
//! energy). Hang-up is tested from each side. The browser side is
//! `tests/browser/phone.test.mjs`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::peer::{json, wait_agent_state, PyPeer, AGENT_TONE, CALLER_TONE, PJSUA};
use common::{repo, Server, ServerOpts};
use serde_json::Value;

const ADMIN_TOKEN: &str = "phone-test-admin-token";
const AGENT_TOKEN: &str = "phone-test-alice-token";

fn config() -> String {
    format!(
        r#"
[queues.operator]
ring_timeout_secs = 20
announce_every_secs = 0
wrapup_secs = 1

[agents.alice]
password = "alice-secret"
display_name = "Alice Smith"
queues = ["operator"]
webrtc = true
ring = "browser"

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

/// The browser side: `node phone.test.mjs` and its JSON events.
struct Page {
    child: Child,
    events: mpsc::Receiver<Value>,
    seen: Vec<Value>,
}

impl Page {
    fn open(srv: &Server, hangup: &str, dir: &std::path::Path) -> Page {
        let browser_dir = repo().join("tests/browser");
        common::browser::ensure_node_modules(&browser_dir);
        let wav = dir.join("agent-tone.wav");
        write_tone(&wav, AGENT_TONE);
        let artifacts = repo().join("tests/artifacts");
        std::fs::create_dir_all(&artifacts).expect("mkdir tests/artifacts");
        let mut child = Command::new("node")
            .arg(browser_dir.join("phone.test.mjs"))
            .current_dir(&browser_dir)
            .env("RINGBACK_URL", format!("http://{}", srv.api))
            .env("AGENT_TOKEN", AGENT_TOKEN)
            .env("TONE_WAV", &wav)
            .env("HANGUP", hangup)
            .env(
                "SCREENSHOT",
                artifacts.join(format!("browser-phone-{hangup}.png")),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn node");
        let (tx, events) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                eprintln!("[page] {line}");
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        let err = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("[page] {line}");
            }
        });
        Page {
            child,
            events,
            seen: Vec::new(),
        }
    }

    /// The next event named `name` within `secs`, failing on an `error`.
    fn expect(&mut self, name: &str, secs: u64, srv: &Server) -> Value {
        let until = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            match self.events.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if v["event"] == "error" {
                        panic!("browser: {}\nringback log:\n{}", v["message"], srv.log());
                    }
                    if v["event"] == name {
                        return v;
                    }
                }
                Err(_) => panic!(
                    "browser: no `{name}` within {secs} s (saw {:?})\nringback log:\n{}",
                    self.seen,
                    srv.log()
                ),
            }
        }
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A 16-bit mono WAV of `freq` Hz for Chromium's fake microphone (it loops
/// the file).
fn write_tone(path: &std::path::Path, freq: f64) {
    let status = Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import sys; sys.path.insert(0, {dir:?}); import audio; audio.write_tone({path:?}, {freq}, 10, rate=48000, amplitude=0.4)",
            dir = repo().join("tests/peers").display().to_string(),
            path = path.display().to_string(),
        ))
        .status()
        .expect("python3");
    assert!(status.success(), "could not write the tone WAV");
}

fn server() -> Server {
    Server::start(ServerOpts {
        extra_config: config(),
        ..ServerOpts::default()
    })
    .with_bearer(ADMIN_TOKEN)
}

fn browser_agent_takes_a_zero_out_call(hangup: &str) {
    let srv = server();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut page = Page::open(&srv, hangup, dir.path());
    page.expect("ready", 30, &srv);
    // The page's phone made alice reachable; she logs in automatically.
    wait_agent_state(&srv, "alice", "available");

    let caller_tone = CALLER_TONE.to_string();
    let agent_tone = AGENT_TONE.to_string();
    let mut caller_args = vec![
        "--dtmf",
        "0@1.5",
        "--play",
        &caller_tone,
        "--play-at",
        "2",
        "--detect",
        &agent_tone,
        "--timeout",
        "45",
    ];
    if hangup == "caller" {
        caller_args.extend(["--hangup-on-tone", &agent_tone, "--hangup-delay", "3"]);
    }
    let mut caller: PyPeer = PJSUA.caller(&srv, "udp", "2000", &caller_args);

    // The page rings with the caller's context: number, menu path, queue.
    let ringing = page.expect("ringing", 30, &srv);
    let text = ringing["context"].as_str().unwrap_or_default();
    assert!(
        text.contains("+15550123"),
        "caller's number on the page: {text}"
    );
    assert!(text.contains("operator"), "the queue on the page: {text}");
    assert!(
        text.contains("Path in the menu"),
        "the menu path on the page: {text}"
    );
    page.expect("answered", 10, &srv);
    wait_agent_state(&srv, "alice", "on-call");

    // The browser receives the caller's audio.
    let media = page.expect("media", 30, &srv);
    assert!(
        media["packets"].as_u64().unwrap_or(0) > 100
            && media["energy"].as_f64().unwrap_or(0.0) > 0.0,
        "the browser received the caller's audio: {media}\nringback log:\n{}",
        srv.log()
    );
    // By content: the strongest frequency the page plays is the caller's tone.
    let heard = page.expect("heard", 15, &srv);
    let freq = heard["freq"].as_f64().unwrap_or(0.0);
    assert!(
        (freq - CALLER_TONE).abs() < 30.0 && heard["db"].as_f64().unwrap_or(-200.0) > -60.0,
        "the browser plays the caller's {CALLER_TONE} Hz tone: {heard}"
    );

    let ended = page.expect("ended", 60, &srv);
    assert_eq!(
        ended["state"], "idle",
        "the page's phone is idle again: {ended}"
    );
    // The caller heard the browser's microphone (its tone, by frequency).
    caller.assert_heard(AGENT_TONE, &srv);
    caller.finish(&srv);

    // Both legs are recorded; the agent leg was hung up by whoever did.
    let (_, body) = srv.http_get("/api/v1/cdrs?limit=10");
    let cdrs = json(&body);
    let rows = cdrs["cdrs"].as_array().cloned().unwrap_or_default();
    let agent_leg = rows
        .iter()
        .find(|r| r["leg"] == "agent")
        .unwrap_or_else(|| panic!("an agent leg record: {cdrs}"));
    assert_eq!(agent_leg["dialed"], "alice", "{agent_leg}");
    assert!(agent_leg["answered_at"].is_string(), "{agent_leg}");
    let expected_by = if hangup == "page" {
        "agent"
    } else {
        "ringback"
    };
    assert_eq!(agent_leg["hangup_by"], expected_by, "{agent_leg}");
}

#[test]
fn browser_agent_answers_and_hangs_up_in_chromium() {
    browser_agent_takes_a_zero_out_call("page");
}

#[test]
fn browser_agent_answers_and_the_caller_hangs_up() {
    browser_agent_takes_a_zero_out_call("caller");
}
