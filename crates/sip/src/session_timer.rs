//! Session timers (RFC 4028) on the answering side: what a 2xx says about
//! an INVITE's `Session-Expires`, and who refreshes the session.
//!
//! Phones (PJSIP: `Supported: timer`, `Session-Expires: 1800`, often
//! `Require: timer`) and carriers use session timers to clear calls whose
//! other end vanished. A UAS that ignores a `Require: timer` answers a 2xx
//! the caller cannot use (PJSIP hangs up with 421), so ringback takes part:
//! it accepts the interval (refusing one below its `Min-SE` with 422), lets
//! the caller refresh when it can, and refreshes with UPDATE itself when the
//! caller asked ringback to (`refresher=uas`).

use rsip::Request;

use crate::message;

/// The smallest session interval ringback accepts (RFC 4028 §4 minimum).
pub const MIN_SE: u32 = 90;

/// Which side sends the refreshes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    /// The caller.
    Uac,
    /// ringback.
    Uas,
}

impl Refresher {
    fn as_str(self) -> &'static str {
        match self {
            Refresher::Uac => "uac",
            Refresher::Uas => "uas",
        }
    }
}

/// What to do with an INVITE's session-timer request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimerAnswer {
    /// No session timer (none asked for).
    None,
    /// Run a session timer: put [`TimerAnswer::headers`] in the 2xx.
    Use {
        /// Session interval in seconds.
        interval: u32,
        /// Who refreshes.
        refresher: Refresher,
    },
    /// The interval is below our minimum: answer `422 Session Interval Too
    /// Small` with `Min-SE: min_se`.
    TooSmall {
        /// Our minimum.
        min_se: u32,
    },
}

impl TimerAnswer {
    /// Headers for the 2xx (`Session-Expires`, and `Require: timer` when
    /// the caller refreshes, RFC 4028 §9), or for the 422 (`Min-SE`).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        match self {
            TimerAnswer::None => Vec::new(),
            TimerAnswer::Use {
                interval,
                refresher,
            } => {
                let mut h = vec![(
                    "Session-Expires",
                    format!("{interval};refresher={}", refresher.as_str()),
                )];
                if *refresher == Refresher::Uac {
                    h.push(("Require", "timer".to_string()));
                }
                h
            }
            TimerAnswer::TooSmall { min_se } => vec![("Min-SE", min_se.to_string())],
        }
    }

    /// When ringback must send its refresh: half the interval (§10), for
    /// `refresher=uas` only.
    pub fn our_refresh_secs(&self) -> Option<u32> {
        match self {
            TimerAnswer::Use {
                interval,
                refresher: Refresher::Uas,
            } => Some((interval / 2).max(1)),
            _ => None,
        }
    }
}

/// Decide the answer to `invite` (an initial INVITE or a refreshing
/// re-INVITE/UPDATE), accepting intervals of at least `min_se` seconds.
pub fn answer(invite: &Request, min_se: u32) -> TimerAnswer {
    let Some(value) = message::header_value(invite, "Session-Expires")
        .or_else(|| message::header_value(invite, "x"))
    else {
        return TimerAnswer::None;
    };
    let mut parts = value.split(';');
    let Some(interval) = parts.next().and_then(|v| v.trim().parse::<u32>().ok()) else {
        return TimerAnswer::None;
    };
    let asked = parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("refresher")
            .then(|| v.trim().to_ascii_lowercase())
    });
    if interval < min_se {
        return TimerAnswer::TooSmall { min_se };
    }
    let caller_supports = ["Supported", "Require", "k"].iter().any(|h| {
        message::header_values(invite, h)
            .iter()
            .flat_map(|v| message::split_header_list(v))
            .any(|t| t.trim().eq_ignore_ascii_case("timer"))
    });
    let refresher = match asked.as_deref() {
        Some("uas") => Refresher::Uas,
        Some("uac") if caller_supports => Refresher::Uac,
        // The caller cannot refresh (a proxy added the header): we do.
        _ if !caller_supports => Refresher::Uas,
        _ => Refresher::Uac,
    };
    TimerAnswer::Use {
        interval,
        refresher,
    }
}

/// The 200 OK to a re-INVITE or UPDATE that changed the session: our SDP
/// answer, our Contact, and the session-timer headers answering the
/// request's (RFC 4028 §9: a UAS that supports timers confirms them in
/// every 2xx to a refresh). One builder for the caller's dialog and for the
/// legs ringback places, so both answer a re-offer alike.
pub fn sdp_answer_ok(req: &rsip::Request, sdp: String, contact: &str) -> rsip::Response {
    use rsip::headers::UntypedHeader;
    let mut ok = crate::message::make_response(req, 200, None);
    for (name, value) in answer(req, MIN_SE).headers() {
        ok.headers.push(crate::message::make_header(name, &value));
    }
    ok.headers
        .push(rsip::headers::Contact::new(format!("<{contact}>")).into());
    ok.headers
        .push(rsip::headers::ContentType::new("application/sdp").into());
    ok.body = sdp.into_bytes();
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::parse;
    use rsip::SipMessage;

    fn invite(extra: &str) -> Request {
        let raw = format!(
            "INVITE sip:2000@192.0.2.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKst\r\n\
From: <sip:alice@192.0.2.9>;tag=a\r\n\
To: <sip:2000@192.0.2.1>\r\n\
Call-ID: st@192.0.2.9\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:alice@192.0.2.9>\r\n\
{extra}Content-Length: 0\r\n\r\n"
        );
        match parse(raw.as_bytes()) {
            Ok(SipMessage::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn no_session_expires_no_timer() {
        assert_eq!(
            answer(&invite("Supported: timer\r\n"), MIN_SE),
            TimerAnswer::None
        );
    }

    #[test]
    fn pjsip_style_request_is_refreshed_by_the_caller() {
        let a = answer(
            &invite("Supported: replaces, 100rel, timer\r\nRequire: timer\r\nSession-Expires: 1800\r\nMin-SE: 90\r\n"),
            MIN_SE,
        );
        assert_eq!(
            a,
            TimerAnswer::Use {
                interval: 1800,
                refresher: Refresher::Uac
            }
        );
        assert_eq!(
            a.headers(),
            vec![
                ("Session-Expires", "1800;refresher=uac".to_string()),
                ("Require", "timer".to_string())
            ]
        );
        assert_eq!(a.our_refresh_secs(), None);
    }

    #[test]
    fn caller_asking_us_to_refresh_gets_uas() {
        let a = answer(
            &invite("Supported: timer\r\nSession-Expires: 600;refresher=uas\r\n"),
            MIN_SE,
        );
        assert_eq!(
            a.headers(),
            vec![("Session-Expires", "600;refresher=uas".to_string())]
        );
        assert_eq!(a.our_refresh_secs(), Some(300));
    }

    #[test]
    fn header_added_by_a_proxy_is_refreshed_by_us() {
        let a = answer(&invite("x: 300\r\n"), MIN_SE);
        assert_eq!(
            a,
            TimerAnswer::Use {
                interval: 300,
                refresher: Refresher::Uas
            }
        );
    }

    #[test]
    fn too_small_interval_gets_422_with_min_se() {
        let a = answer(
            &invite("Supported: timer\r\nSession-Expires: 30\r\n"),
            MIN_SE,
        );
        assert_eq!(a, TimerAnswer::TooSmall { min_se: 90 });
        assert_eq!(a.headers(), vec![("Min-SE", "90".to_string())]);
    }

    #[test]
    fn garbage_value_is_ignored() {
        assert_eq!(
            answer(&invite("Session-Expires: soon\r\n"), MIN_SE),
            TimerAnswer::None
        );
    }
}
