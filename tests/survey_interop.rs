//! Post-call surveys end to end: a SIPp caller waits in a queue with
//! `survey = { prompt, keys = "1-5" }`, a SIPp agent phone answers, talks
//! and hangs up; the caller, still on the line, hears the question and
//! presses 4 (RFC 4733). The score lands in the call record and in
//! `GET /api/v1/surveys/csat`. A second caller hangs up during the question:
//! no answer, and nobody calls them back.

mod common;

use std::time::Duration;

use common::peer::json;
use common::scenario::{self, AgentPhone, Uac};
use common::survey::{finished_inbound_record, survey_server};
use common::{call_id_from_trace, free_udp_port, Server, Sipp};
use serde_json::Value;

/// alice answers the next call, talks for 2 s and hangs up.
fn alice_answers_and_hangs_up(srv: &Server, port: u16) -> common::SippProcess {
    let rtp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port_rtp = rtp.local_addr().expect("addr").port();
    // The socket only reserved a port for the SDP; nobody needs to read it.
    drop(rtp);
    Sipp::from_xml(
        &AgentPhone::new(30_000)
            .ring()
            .answer(port_rtp)
            .pause(2_000)
            .hang_up()
            .xml(),
    )
    .arg("-p")
    .arg(port)
    .spawn(srv.sip, "alice")
}

#[test]
fn agent_hangs_up_caller_presses_4_and_the_score_is_recorded_and_reported() {
    let srv = survey_server("main-menu");
    let alice_port = free_udp_port();
    Sipp::from_xml(&scenario::register("alice", "alice-secret", 300, 200))
        .arg("-p")
        .arg(alice_port)
        .run(srv.sip, "alice")
        .assert_ok("REGISTER");

    // 1. The caller stays on after the agent's BYE and presses 4.
    let alice = alice_answers_and_hangs_up(&srv, alice_port);
    let caller = Uac::new()
        .invite()
        .pause(7_000)
        .rfc4733_digit('4')
        .expect_bye(15_000);
    let caller = Sipp::from_xml(&caller.xml()).run(srv.sip, "100");
    caller.assert_ok("caller answering the survey");
    alice.wait().assert_ok("agent hanging up");
    let id = call_id_from_trace(&caller.messages).expect("the caller's Call-ID");
    let r = finished_inbound_record(&srv, Some(&id), Duration::from_secs(10));
    assert_eq!(r["survey_score"], 4, "{r:#}\n{}", srv.log());
    assert_eq!(r["survey_agent"], "alice", "{r:#}");
    assert_eq!(
        (r["survey_lowest"].clone(), r["survey_highest"].clone()),
        (1.into(), 5.into())
    );
    assert_eq!(r["disposition"], "completed");
    assert_eq!(r["hangup_by"], "agent", "the agent ended the conversation");

    // 2. Another caller hangs up during the question: asked, no answer.
    std::thread::sleep(Duration::from_secs(2)); // alice's wrap-up
    let alice = alice_answers_and_hangs_up(&srv, alice_port);
    let quitter = Uac::new().invite().pause(6_000).bye();
    let quitter = Sipp::from_xml(&quitter.xml()).run(srv.sip, "100");
    quitter.assert_ok("caller hanging up during the survey");
    alice.wait().assert_ok("agent hanging up again");
    let quit_id = call_id_from_trace(&quitter.messages).expect("Call-ID");
    let r = finished_inbound_record(&srv, Some(&quit_id), Duration::from_secs(10));
    assert_eq!(r["survey_agent"], "alice", "{r:#}\n{}", srv.log());
    assert_eq!(r["survey_score"], Value::Null, "no answer: {r:#}");

    // 3. CSAT today (the defaults) and per hour over the last hour.
    let (status, body) = srv.http_get("/api/v1/surveys/csat");
    assert_eq!(status, 200, "{body}");
    let today = json(&body);
    assert_eq!(today["interval"], "day");
    let q = &today["queues"][0];
    assert_eq!(q["queue"], "operator", "{today:#}");
    assert_eq!(
        (
            q["asked"].as_u64(),
            q["answered"].as_u64(),
            q["satisfied"].as_u64()
        ),
        (Some(2), Some(1), Some(1)),
        "{today:#}"
    );
    assert_eq!(q["csat_pct"], 100.0);
    assert_eq!(q["average"], 4.0);
    let a = &today["agents"][0];
    assert_eq!(a["agent"], "alice", "{today:#}");
    assert_eq!(
        (a["asked"].as_u64(), a["answered"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(a["csat_pct"], 100.0);

    let from = (chrono::Utc::now() - chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (status, body) = srv.http_get(&format!("/api/v1/surveys/csat?interval=hour&from={from}"));
    assert_eq!(status, 200, "{body}");
    let hourly = json(&body);
    assert_eq!(
        hourly["queues"].as_array().map(Vec::len),
        Some(1),
        "{hourly:#}"
    );
    assert_eq!(
        hourly["queues"][0]["start"].as_str().map(|s| &s[..19]),
        Some(&from[..19])
    );
    let (status, body) = srv.http_get("/api/v1/surveys/csat?interval=fortnight");
    assert_eq!(status, 400, "{body}");
    let (status, body) = srv.http_get("/api/v1/surveys/csat?from=yesterday");
    assert_eq!(status, 422, "not a time: {body}");
    let (status, body) = srv.http_get(&format!("/api/v1/surveys/csat?from={from}&to={from}"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        json(&body)["queues"].as_array().map(Vec::len),
        Some(0),
        "an empty range: {body}"
    );

    // Nobody is called back for a survey.
    let (status, body) = srv.http_get("/api/v1/callbacks");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        json(&body)["callbacks"].as_array().map(Vec::len),
        Some(0),
        "{body}"
    );
}
