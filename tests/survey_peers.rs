//! Post-call surveys with real user agents: a caller waits in a queue with
//! `survey = { prompt = "survey-rate", keys = "1-5" }`, the agent answers,
//! talks and hangs up; the caller, still on the line, hears the shipped
//! question and presses 4 (RFC 4733). The score lands in the call record
//! and in `GET /api/v1/surveys/csat`. Once with a PJSIP caller and a
//! baresip agent phone, once the other way round.

mod common;

use std::time::{Duration, Instant};

use common::peer::{json, PeerScript, BARESIP_PEER, PJSUA};
use common::{Server, ServerOpts, QUEUE_PLAN};
use serde_json::Value;

fn server() -> Server {
    Server::start(ServerOpts {
        dialplans: vec![("q.toml".into(), QUEUE_PLAN.into())],
        extra_config: r#"
[queues.operator]
ring_timeout_secs = 10
announce_every_secs = 0
wrapup_secs = 1
survey = { prompt = "survey-rate", keys = "1-5" }

[agents.alice]
password = "alice-secret"
queues = ["operator"]
"#
        .into(),
        ..ServerOpts::default()
    })
}

/// The caller's finished inbound call record (the server takes one call).
fn inbound_record(srv: &Server) -> Value {
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = srv.http_get("/api/v1/cdrs?limit=20");
        assert_eq!(status, 200, "{body}");
        let found = json(&body)["cdrs"].as_array().and_then(|rows| {
            rows.iter()
                .find(|r| r["leg"] == "inbound" && r["disposition"] != "in_progress")
                .cloned()
        });
        if let Some(r) = found {
            return r;
        }
        assert!(
            Instant::now() < until,
            "no final record: {body}\n{}",
            srv.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `caller` dials the queue; `agent` (alice) answers and hangs up after
/// 3 s; the caller presses 4 during the survey question.
fn survey_answered(caller: PeerScript, agent: PeerScript) {
    let srv = server();
    let mut alice = agent.agent(
        &srv,
        "udp",
        "alice",
        "alice-secret",
        &["--hangup-after", "3", "--timeout", "40"],
    );
    alice.expect("registered", Duration::from_secs(10), &srv);
    common::peer::wait_agent_state(&srv, "alice", "available");
    // Queue and ring ≈ 1 s, 3 s of talk, then the 7.4 s question: the key
    // at 9 s falls inside it.
    let mut c = caller.caller(&srv, "udp", "100", &["--dtmf", "4@9", "--timeout", "40"]);
    alice.expect("incoming", Duration::from_secs(15), &srv);
    c.finish(&srv);
    alice.finish(&srv);
    let r = inbound_record(&srv);
    assert_eq!(
        r["survey_score"],
        4,
        "{r:#}\n{}\n{}",
        c.diagnostics(),
        srv.log()
    );
    assert_eq!(r["survey_agent"], "alice", "{r:#}");
    assert_eq!(r["hangup_by"], "agent", "{r:#}");
    let (status, body) = srv.http_get("/api/v1/surveys/csat");
    assert_eq!(status, 200, "{body}");
    let q = &json(&body)["queues"][0];
    assert_eq!(
        (
            q["queue"].as_str(),
            q["asked"].as_u64(),
            q["answered"].as_u64()
        ),
        (Some("operator"), Some(1), Some(1)),
        "{body}"
    );
}

#[test]
fn a_pjsip_caller_rates_a_baresip_agent() {
    survey_answered(PJSUA, BARESIP_PEER);
}

#[test]
fn a_baresip_caller_rates_a_pjsip_agent() {
    survey_answered(BARESIP_PEER, PJSUA);
}
