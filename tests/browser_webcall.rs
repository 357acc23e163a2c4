//! The public "call us" page (WebRTC, issue 14) in real headless Chromium:
//! a visitor opens `/call?number=2000&topic=checkout`, clicks **Call**,
//! navigates the support menu with the page's keypad (2, then an account
//! number and #), waits in the queue and talks to a real SIP agent (PJSIP).
//! Audio is checked by content both ways: the agent hears the browser's
//! microphone tone, the page plays the agent's tone. The agent sees the
//! caller as `web:<id>` with the page's topic and the digits entered. The
//! browser side is `tests/browser/webcall.test.mjs`.

mod common;

use std::time::Duration;

use common::browser::Page;
use common::peer::{json, sip_header, AGENT_CONFIG, AGENT_TONE, CALLER_TONE, PJSUA};
use common::{Server, ServerOpts};

fn server() -> Server {
    Server::start(ServerOpts {
        extra_config: format!(
            "{AGENT_CONFIG}\n[webrtc]\npublic_numbers = [\"2000\"]\ncalls_per_minute_per_ip = 3\n"
        ),
        ..ServerOpts::default()
    })
}

#[test]
fn a_web_caller_navigates_the_ivr_with_the_keypad_and_talks_to_a_sip_agent() {
    let srv = server();
    let agent_tone = AGENT_TONE.to_string();
    let caller_tone = CALLER_TONE.to_string();
    let mut agent = PJSUA.registered_alice(
        &srv,
        "udp",
        &[
            "--ring-delay",
            "0.5",
            "--play",
            &agent_tone,
            "--detect",
            &caller_tone,
            "--hangup-on-tone",
            &caller_tone,
            "--hangup-delay",
            "4",
            "--timeout",
            "60",
        ],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [
        ("NUMBER", "2000".to_string()),
        ("TOPIC", "checkout".to_string()),
        ("KEYS", "2 12345678#".to_string()),
        ("HEAR", AGENT_TONE.to_string()),
    ];
    let mut page = Page::open("webcall.test.mjs", &srv, &env, CALLER_TONE, dir.path());
    page.expect("connected", 30, &srv);
    let keys = page.expect("keys_sent", 30, &srv);
    assert_eq!(keys["keys"], "212345678#", "{keys}");

    // The agent rings with the web caller's context: who, the page's topic,
    // the path through the menu and the account number typed on the keypad.
    let inv = agent.expect("incoming", Duration::from_secs(30), &srv);
    let caller = sip_header(&inv, "X-Ringback-Caller");
    assert!(caller.starts_with("web:"), "web caller id: {caller}");
    assert_eq!(sip_header(&inv, "X-Ringback-Topic"), "checkout");
    assert_eq!(sip_header(&inv, "X-Ringback-Var-account"), "12345678");
    assert!(
        sip_header(&inv, "X-Ringback-Path").contains("account"),
        "{}",
        sip_header(&inv, "X-Ringback-Path")
    );

    // Audio by content, both ways.
    let heard = page.expect("heard", 40, &srv);
    let freq = heard["freq"].as_f64().unwrap_or(0.0);
    assert!(
        (freq - AGENT_TONE).abs() < 30.0 && heard["db"].as_f64().unwrap_or(-200.0) > -60.0,
        "the page plays the agent's {AGENT_TONE} Hz tone: {heard}"
    );
    // The agent hangs up after hearing the browser; the page shows it.
    page.expect("ended", 60, &srv);
    agent.assert_heard(CALLER_TONE, &srv);
    agent.finish(&srv);

    let (_, body) = srv.http_get("/api/v1/cdrs?limit=10");
    let cdrs = json(&body);
    let inbound = cdrs["cdrs"]
        .as_array()
        .and_then(|r| r.iter().find(|c| c["leg"] == "inbound"))
        .cloned()
        .unwrap_or_else(|| panic!("the web call's record: {cdrs}"));
    assert!(
        inbound["caller"]
            .as_str()
            .is_some_and(|c| c.starts_with("web:")),
        "{inbound}"
    );
    assert_eq!(inbound["digits"], "212345678", "{inbound}");
    assert_eq!(
        inbound["path"], "support > account > fault > support-queue",
        "{inbound}"
    );
    assert_eq!(inbound["disposition"], "completed", "{inbound}");
    assert_eq!(srv.metric("ringback_web_calls_total"), 1.0);
}

#[test]
fn only_public_numbers_get_a_token_and_each_address_is_rate_limited() {
    let srv = server();
    let (status, body) = srv.http_post("/api/v1/webcall/tokens", r#"{"number":"1000"}"#);
    assert_eq!(status, 403, "{body}");
    assert_eq!(json(&body)["code"], "not_public", "{body}");
    for _ in 0..3 {
        let (status, body) = srv.http_post("/api/v1/webcall/tokens", r#"{"number":"2000"}"#);
        assert_eq!(status, 201, "{body}");
        assert_eq!(
            json(&body)["token"].as_str().map(str::len),
            Some(32),
            "{body}"
        );
    }
    let (status, body) = srv.http_post("/api/v1/webcall/tokens", r#"{"number":"2000"}"#);
    assert_eq!(status, 429, "{body}");
    // A socket without a valid token is refused before any upgrade.
    let (status, body) = srv.http_get("/api/v1/webcall?token=0123");
    assert_eq!(status, 426, "a plain GET is not a WebSocket: {body}");
    assert_eq!(srv.metric("ringback_web_calls_rate_limited_total"), 1.0);
}

/// An overloaded server refuses a web call as it refuses an INVITE (503):
/// the page says the lines are busy, and the refusal is counted.
#[test]
fn an_overloaded_server_tells_the_web_caller_to_try_again() {
    let srv = Server::start(ServerOpts {
        extra_config: "[limits]\nmax_calls = 0\n\n[webrtc]\npublic_numbers = [\"2000\"]\n".into(),
        ..ServerOpts::default()
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [
        ("NUMBER", "2000".to_string()),
        ("EXPECT_REFUSAL", "1".to_string()),
    ];
    let mut page = Page::open("webcall.test.mjs", &srv, &env, CALLER_TONE, dir.path());
    let refused = page.expect("refused", 30, &srv);
    assert!(
        refused["message"]
            .as_str()
            .is_some_and(|m| m.contains("busy")),
        "{refused}"
    );
    assert_eq!(srv.metric("ringback_web_calls_total"), 0.0);
    let (_, metrics) = srv.http_get("/metrics");
    assert!(
        metrics.contains("reason=\"max_calls\""),
        "the refusal is counted:\n{metrics}"
    );
}
