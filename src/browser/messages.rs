//! The agent page's signalling protocol: JSON text frames on the WebSocket
//! `/api/v1/phone`. Unknown or malformed frames get an `error` frame back,
//! never a closed connection or a panic.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::IceServer;

/// Server → page.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToBrowser {
    /// Sent once the socket is up: the page is the agent's phone now.
    Hello {
        /// The agent this phone belongs to.
        agent: String,
        /// STUN/TURN servers for `RTCPeerConnection`.
        ice_servers: Vec<IceServer>,
    },
    /// A call for the agent: ring, show the context, answer with `answer`.
    Ring {
        /// The leg's id, named in every later frame about it.
        leg: String,
        /// Our SDP offer (ICE-lite, DTLS-SRTP, G.711).
        sdp: String,
        /// What the agent should know before answering (the same facts a
        /// SIP phone gets as `X-Ringback-*` headers, without the prefix).
        context: BTreeMap<String, String>,
    },
    /// Stop ringing: the caller left, another agent answered, or the ring
    /// timeout passed.
    Cancel {
        /// The leg.
        leg: String,
    },
    /// The call ended on ringback's side.
    Hangup {
        /// The leg.
        leg: String,
    },
    /// A frame the page sent could not be used.
    Error {
        /// What was wrong.
        message: String,
    },
    /// Another page of the same agent took over this phone.
    Replaced,
}

/// Page → server.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum FromBrowser {
    /// The agent answered: the page's SDP answer.
    Answer {
        /// The leg.
        leg: String,
        /// SDP answer.
        sdp: String,
    },
    /// The agent declined the ringing call.
    Reject {
        /// The leg.
        leg: String,
    },
    /// The agent hung up.
    Hangup {
        /// The leg.
        leg: String,
    },
    /// The agent put the call on hold (`on = true`) or resumed it.
    Hold {
        /// The leg.
        leg: String,
        /// Hold or resume.
        on: bool,
    },
    /// Keep-alive (proxies close idle WebSockets).
    Ping,
}

/// What happened to a browser leg, for the task that owns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserEvent {
    /// The leg.
    pub leg: String,
    /// What.
    pub kind: EventKind,
}

/// See [`BrowserEvent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// The page answered with this SDP.
    Answer(String),
    /// The agent declined.
    Reject,
    /// The agent hung up.
    HangUp,
    /// Hold (`true`) or resume.
    Hold(bool),
    /// The leg is gone without a word from the agent: the page closed or
    /// reloaded, its media stopped (a closed tab), or DTLS failed.
    Gone(String),
}

/// Parse one text frame from a page.
pub fn parse(text: &str) -> Result<FromBrowser, String> {
    serde_json::from_str(text).map_err(|e| format!("bad frame: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_parse_and_bad_ones_are_explained() {
        assert_eq!(
            parse(r#"{"type":"answer","leg":"w1","sdp":"v=0"}"#),
            Ok(FromBrowser::Answer {
                leg: "w1".into(),
                sdp: "v=0".into()
            })
        );
        assert_eq!(
            parse(r#"{"type":"hold","leg":"w1","on":true}"#),
            Ok(FromBrowser::Hold {
                leg: "w1".into(),
                on: true
            })
        );
        for bad in [
            "",
            "null",
            "{}",
            r#"{"type":"dial","number":"911"}"#,
            r#"{"type":"answer","leg":"w1"}"#,
            r#"{"type":"hold","leg":"w1","on":"yes"}"#,
            "\u{0}\u{ffff}",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
        let ring = serde_json::to_value(ToBrowser::Cancel { leg: "w1".into() }).expect("json");
        assert_eq!(ring["type"], "cancel");
    }
}
