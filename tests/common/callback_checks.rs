//! Callbacks as the API shows them, for tests where nodes dial them: the
//! record, waiting for it to complete, which nodes dialed it, and a
//! customer's phone (SIPp) that answers and accepts.

use std::time::Duration;

use serde_json::Value;

use super::scenario::AgentPhone;
use super::{poll_until, Server};

/// `GET /api/v1/callbacks/{id}`.
pub fn callback(srv: &Server, id: &str) -> Value {
    let (status, body) = srv.http_get(&format!("/api/v1/callbacks/{id}"));
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("JSON")
}

/// The callback once it is `completed` (fails after `timeout`).
pub fn wait_completed(srv: &Server, id: &str, timeout: Duration) -> Value {
    poll_until(
        timeout,
        Duration::from_millis(200),
        || Some(callback(srv, id)).filter(|cb| cb["state"] == "completed"),
        || {
            let cb = callback(srv, id);
            format!("callback not completed: {cb:#}\n{}", srv.log())
        },
    )
}

/// The node of every `dialing` event in the callback's history.
pub fn dialing_nodes(cb: &Value) -> Vec<String> {
    cb["events"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter(|x| x["to"] == "dialing")
                .map(|x| x["node"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The customer's phone: answers, presses 1 (accept) after 1.5 s, hangs
/// up a second later.
pub fn customer() -> AgentPhone {
    AgentPhone::new(40_000)
        .ring()
        .answer_own_media()
        .pause(1_500)
        .press('1')
        .pause(1_000)
        .hang_up()
}
