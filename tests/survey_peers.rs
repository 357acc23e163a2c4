//! Post-call surveys with real user agents: a caller waits in a queue with
//! `survey = { prompt = "survey-rate", keys = "1-5" }`, the agent answers,
//! talks and hangs up; the caller, still on the line, hears the shipped
//! question and presses 4 (RFC 4733). The score lands in the call record
//! and in `GET /api/v1/surveys/csat`. Once with a PJSIP caller and a
//! baresip agent phone, once the other way round.

mod common;

use std::time::Duration;

use common::peer::{json, PeerScript, BARESIP_PEER, PJSUA};
use common::survey::{finished_inbound_record, survey_server};

/// `caller` dials the queue; `agent` (alice) answers and hangs up after
/// 3 s; the caller presses 4 during the survey question.
fn survey_answered(caller: PeerScript, agent: PeerScript) {
    let srv = survey_server("survey-rate");
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
    let r = finished_inbound_record(&srv, None, Duration::from_secs(15));
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
