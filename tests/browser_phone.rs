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

use std::time::Duration;

use common::browser::Page;
use common::peer::{json, wait_agent_state, PyPeer, AGENT_TONE, CALLER_TONE, PJSUA};
use common::{repo, Server, ServerOpts};

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
    let artifacts = repo().join("tests/artifacts");
    std::fs::create_dir_all(&artifacts).expect("mkdir tests/artifacts");
    let shot = artifacts.join(format!("browser-phone-{hangup}.png"));
    let env = [
        ("AGENT_TOKEN", AGENT_TOKEN.to_string()),
        ("HANGUP", hangup.to_string()),
        ("SCREENSHOT", shot.display().to_string()),
    ];
    let mut page = Page::open("phone.test.mjs", &srv, &env, AGENT_TONE, dir.path());
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
    caller.finish_hearing(AGENT_TONE, &srv);

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

/// The agent closes the tab mid-call: the leg ends and the caller hears
/// the call end within 5 s, and the agent is no longer reachable.
#[test]
fn a_closed_agent_tab_ends_the_call_within_five_seconds() {
    let srv = server();
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [
        ("AGENT_TOKEN", AGENT_TOKEN.to_string()),
        ("HANGUP", "close".to_string()),
    ];
    let mut page = Page::open("phone.test.mjs", &srv, &env, AGENT_TONE, dir.path());
    page.expect("ready", 30, &srv);
    wait_agent_state(&srv, "alice", "available");
    let caller_tone = CALLER_TONE.to_string();
    let mut caller: PyPeer = PJSUA.caller(
        &srv,
        "udp",
        "2000",
        &["--dtmf", "0@1.5", "--play", &caller_tone, "--timeout", "40"],
    );
    page.expect("answered", 30, &srv);
    page.expect("closed", 30, &srv);
    let closed_at = std::time::Instant::now();
    caller.expect_where(
        "call_state",
        |e| e["state"] == "DISCONNECTED",
        Duration::from_secs(8),
        &srv,
    );
    let took = closed_at.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "the caller's call ended {took:?} after the tab closed\n{}",
        srv.log()
    );
    caller.finish(&srv);
    // The page's phone is gone: alice cannot be rung any more.
    let (_, body) = srv.http_get("/api/v1/agents");
    let alice = json(&body)["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["id"] == "alice").cloned())
        .unwrap_or_default();
    assert_eq!(alice["reachable"], false, "{alice}");
}

#[test]
fn browser_agent_answers_and_hangs_up_in_chromium() {
    browser_agent_takes_a_zero_out_call("page");
}

#[test]
fn browser_agent_answers_and_the_caller_hangs_up() {
    browser_agent_takes_a_zero_out_call("caller");
}

/// A callback offered to an agent who has only the browser phone: the page
/// rings first with the callback's context, the agent answers (and hears
/// the whisper), then the customer is dialed through the trunk (PJSIP),
/// presses 1 and talks to the browser; audio by content both ways.
#[test]
fn a_callback_rings_the_agents_browser_first_then_the_customer() {
    let agent_tone = AGENT_TONE.to_string();
    let caller_tone = CALLER_TONE.to_string();
    let mut customer = PJSUA.spawn(
        "customer",
        "customer",
        &common::peer::args(&[
            "--transport",
            "udp",
            "--ring-delay",
            "0.5",
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
            "3",
            "--timeout",
            "45",
        ]),
    );
    let mut opts = common::callback_opts(
        &format!(
            "[trunk]\naddress = \"127.0.0.1:{}\"\ncaller_id = \"+15550100\"\n",
            customer.port
        ),
        "retry_after_secs = 60\nmax_attempts = 1\naccept_timeout_secs = 15",
    );
    opts.extra_config = opts.extra_config.replace(
        "queues = [\"operator\"]\n",
        "queues = [\"operator\"]\nwebrtc = true\nring = \"browser\"\n",
    );
    let srv = Server::start(opts);
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [
        ("AGENT", "alice".to_string()),
        ("HANGUP", "caller".to_string()),
        ("HEAR", CALLER_TONE.to_string()),
    ];
    let mut page = Page::open("phone.test.mjs", &srv, &env, AGENT_TONE, dir.path());
    page.expect("ready", 30, &srv);
    wait_agent_state(&srv, "alice", "available");

    let id = common::peer::request_callback(&srv, Some("web form: browser agent"));
    let ringing = page.expect("ringing", 30, &srv);
    let text = ringing["context"].as_str().unwrap_or_default();
    assert!(
        text.contains(common::peer::CUSTOMER),
        "the customer's number: {text}"
    );
    assert!(
        text.contains("web form: browser agent"),
        "the callback notes: {text}"
    );
    assert!(text.contains(&id), "the callback's id: {text}");
    page.expect("answered", 10, &srv);

    // Then the customer, who presses 1 and is bridged to the browser.
    customer.expect("incoming", Duration::from_secs(30), &srv);
    customer.expect("dtmf_sent", Duration::from_secs(20), &srv);
    let heard = page.expect("heard", 45, &srv);
    let freq = heard["freq"].as_f64().unwrap_or(0.0);
    assert!(
        (freq - CALLER_TONE).abs() < 30.0 && heard["db"].as_f64().unwrap_or(-200.0) > -60.0,
        "the browser plays the customer's {CALLER_TONE} Hz tone: {heard}"
    );
    page.expect("ended", 60, &srv);
    customer.finish_hearing(AGENT_TONE, &srv);
    let cb = common::peer::assert_callback_completed(&srv, &id);
    assert_eq!(cb["state"], "completed", "{cb}");
}

/// `ring = "both"`: the SIP phone and the browser ring together; the
/// browser answers, so the phone's INVITE is cancelled, and the call is the
/// browser's.
#[test]
fn ring_both_rings_the_phone_and_the_browser_and_the_first_answer_wins() {
    let srv = Server::start(ServerOpts {
        extra_config: config().replace("ring = \"browser\"", "ring = \"both\""),
        ..ServerOpts::default()
    })
    .with_bearer(ADMIN_TOKEN);
    // A SIP phone that would answer only after 30 s.
    let phone = PJSUA.registered_alice(&srv, "udp", &["--ring-delay", "30", "--timeout", "20"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [
        ("AGENT_TOKEN", AGENT_TOKEN.to_string()),
        ("HANGUP", "page".to_string()),
    ];
    let mut page = Page::open("phone.test.mjs", &srv, &env, AGENT_TONE, dir.path());
    page.expect("ready", 30, &srv);
    let caller_tone = CALLER_TONE.to_string();
    let mut caller: PyPeer = PJSUA.caller(
        &srv,
        "udp",
        "2000",
        &["--dtmf", "0@1.5", "--play", &caller_tone, "--timeout", "40"],
    );
    // Both ring.
    phone.expect("incoming", Duration::from_secs(30), &srv);
    page.expect("ringing", 30, &srv);
    page.expect("answered", 10, &srv);
    // The phone stops ringing (CANCEL) and never gets the call.
    phone.expect_where(
        "call_state",
        |e| e["state"] == "DISCONNECTED",
        Duration::from_secs(10),
        &srv,
    );
    assert!(
        !phone
            .events()
            .iter()
            .any(|e| e["event"] == "call_state" && e["state"] == "CONFIRMED"),
        "the SIP phone never got the call: {:?}",
        phone.events()
    );
    page.expect("media", 30, &srv);
    page.expect("ended", 60, &srv);
    caller.finish(&srv);
    let (_, body) = srv.http_get("/api/v1/cdrs?limit=10");
    let rows = json(&body)["cdrs"].as_array().cloned().unwrap_or_default();
    let agent_legs: Vec<_> = rows.iter().filter(|r| r["leg"] == "agent").collect();
    assert_eq!(agent_legs.len(), 2, "one record per device: {rows:?}");
    assert_eq!(
        agent_legs
            .iter()
            .filter(|r| r["answered_at"].is_string())
            .count(),
        1,
        "one device answered: {agent_legs:?}"
    );
}
