//! Initial (out-of-dialog) requests we originate: INVITEs for agent legs and callbacks.

use rsip::{Header, Method, Request};

use crate::message::{self, new_branch, new_tag, ViaSpec};

/// Everything an initial INVITE needs. The `From` tag and Via branch are generated; read them
/// back with [`message::from_tag`] / [`message::top_via`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteSpec {
    /// Our identity (`From`).
    pub from_uri: rsip::Uri,
    /// Display name for `From` (e.g. the caller's number on an agent leg). Quoted and escaped.
    pub from_display: Option<String>,
    /// Logical callee (`To`).
    pub to_uri: rsip::Uri,
    /// Where the request goes (often equal to `to_uri`, or a registered Contact).
    pub request_uri: rsip::Uri,
    /// Our Contact URI (becomes the dialog's remote target for the peer).
    pub contact: rsip::Uri,
    /// Our Via.
    pub via: ViaSpec,
    /// `Call-ID` ([`message::new_call_id`]).
    pub call_id: String,
    /// Initial CSeq number (RFC 3261 §8.1.1.5: below 2^31).
    pub cseq: u32,
    /// Body and its content type, e.g. `("application/sdp", sdp)`.
    pub body: Option<(String, Vec<u8>)>,
    /// Extra headers, e.g. `X-Ringback-Caller`. Names that are not RFC 3261 tokens are dropped;
    /// CR/LF in values become spaces (caller-controlled data must not inject headers).
    pub extra_headers: Vec<(String, String)>,
}

/// Quote a display name per RFC 3261 §25.1 (`quoted-string`), dropping control characters.
pub fn quote_display(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars().filter(|c| !c.is_control()) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c))
}

/// Build an initial request of any method from the spec (used for INVITE; OPTIONS pings and
/// MESSAGE work the same way). Header order: Via, Max-Forwards, From, To, Call-ID, CSeq,
/// Contact, extras, Content-Type, Content-Length.
pub fn make_initial_request(method: Method, spec: InviteSpec) -> Request {
    let from = match &spec.from_display {
        Some(d) => format!("{} <{}>;tag={}", quote_display(d), spec.from_uri, new_tag()),
        None => format!("<{}>;tag={}", spec.from_uri, new_tag()),
    };
    let mut headers: Vec<Header> = vec![
        message::make_header("Via", &spec.via.value(&new_branch())),
        message::make_header("Max-Forwards", "70"),
        message::make_header("From", &from),
        message::make_header("To", &format!("<{}>", spec.to_uri)),
        message::make_header("Call-ID", &spec.call_id),
        message::make_header("CSeq", &format!("{} {}", spec.cseq, method)),
        message::make_header("Contact", &format!("<{}>", spec.contact)),
    ];
    for (name, value) in &spec.extra_headers {
        if !is_token(name) {
            tracing::warn!(header = %name, "dropping extra header with invalid name");
            continue;
        }
        headers.push(message::make_header(name, value));
    }
    let body = match spec.body {
        Some((ct, body)) => {
            headers.push(message::make_header("Content-Type", &ct));
            body
        }
        None => Vec::new(),
    };
    headers.push(message::make_header(
        "Content-Length",
        &body.len().to_string(),
    ));
    Request {
        method,
        uri: spec.request_uri,
        version: rsip::Version::V2,
        headers: headers.into(),
        body,
    }
}

/// Build an initial INVITE (agent legs, callbacks). Send it with
/// [`crate::transaction::TransactionLayer::send_request`].
pub fn make_invite(spec: InviteSpec) -> Request {
    make_initial_request(Method::Invite, spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{from_tag, parse, request_to_bytes, top_via};
    use crate::transaction::TransportKind;

    fn uri(s: &str) -> rsip::Uri {
        rsip::Uri::try_from(s).unwrap()
    }

    #[test]
    fn invite_is_complete_and_reparses() {
        let spec = InviteSpec {
            from_uri: uri("sip:ivr@ivr.example.com"),
            from_display: Some("+1 555 \"0100\"".into()),
            to_uri: uri("sip:agent7@example.com"),
            request_uri: uri("sip:agent7@198.51.100.20:5080"),
            contact: uri("sip:ivr@203.0.113.1:5060"),
            via: ViaSpec {
                host: "203.0.113.1".into(),
                port: Some(5060),
                transport: TransportKind::Udp,
            },
            call_id: "cb-1@ivr.example.com".into(),
            cseq: 1,
            body: Some(("application/sdp".into(), b"v=0\r\n".to_vec())),
            extra_headers: vec![
                ("X-Ringback-Caller".into(), "+15550100\r\nEvil: yes".into()),
                ("Bad Name".into(), "x".into()),
            ],
        };
        let inv = make_invite(spec);
        let tag = from_tag(&inv).unwrap();
        let branch = top_via(&inv).unwrap().branch.unwrap();
        let text = String::from_utf8(request_to_bytes(&inv)).unwrap();
        assert_eq!(
            text,
            format!(
                "INVITE sip:agent7@198.51.100.20:5080 SIP/2.0\r\n\
Via: SIP/2.0/UDP 203.0.113.1:5060;branch={branch};rport\r\n\
Max-Forwards: 70\r\n\
From: \"+1 555 \\\"0100\\\"\" <sip:ivr@ivr.example.com>;tag={tag}\r\n\
To: <sip:agent7@example.com>\r\n\
Call-ID: cb-1@ivr.example.com\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:ivr@203.0.113.1:5060>\r\n\
X-Ringback-Caller: +15550100  Evil: yes\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 5\r\n\
\r\n\
v=0\r\n"
            )
        );
        let back = parse(text.as_bytes()).unwrap();
        assert_eq!(back.body(), b"v=0\r\n");
    }
}
