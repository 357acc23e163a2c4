//! Post-call survey tests (tests/survey_interop.rs, tests/survey_peers.rs):
//! a server whose operator queue asks a survey question, and the finished
//! call record that carries the answer.

use std::time::Duration;

use serde_json::Value;

use super::peer::json;
use super::{poll_until, Server, ServerOpts, QUEUE_PLAN};

/// A server whose number 100 queues for the operator queue, which asks
/// `survey = { prompt, keys = "1-5" }` after the agent hangs up; agent
/// `alice` (password `alice-secret`) serves it.
pub fn survey_server(prompt: &str) -> Server {
    Server::start(ServerOpts {
        dialplans: vec![("q.toml".into(), QUEUE_PLAN.into())],
        extra_config: format!(
            r#"
[queues.operator]
ring_timeout_secs = 10
announce_every_secs = 0
wrapup_secs = 1
survey = {{ prompt = "{prompt}", keys = "1-5" }}

[agents.alice]
password = "alice-secret"
queues = ["operator"]
"#
        ),
        ..ServerOpts::default()
    })
}

/// The finished inbound call record (`GET /api/v1/cdrs`) of `call_id`, or
/// the first finished one when `None` (a server that took one call);
/// panics with the server's log unless there is one `within`.
pub fn finished_inbound_record(srv: &Server, call_id: Option<&str>, within: Duration) -> Value {
    let cdrs = || {
        let (status, body) = srv.http_get("/api/v1/cdrs?limit=50");
        assert_eq!(status, 200, "{body}");
        body
    };
    poll_until(
        within,
        Duration::from_millis(100),
        || {
            json(&cdrs())["cdrs"].as_array().and_then(|rows| {
                rows.iter()
                    .find(|r| {
                        call_id.is_none_or(|id| r["call_id"] == id)
                            && r["leg"] == "inbound"
                            && r["disposition"] != "in_progress"
                    })
                    .cloned()
            })
        },
        || {
            format!(
                "no final record for {}: {}\n{}",
                call_id.unwrap_or("the call"),
                cdrs(),
                srv.log()
            )
        },
    )
}
