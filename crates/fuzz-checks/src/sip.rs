//! `sip_message`: bytes from the SIP port, over UDP (one datagram) and TCP (a stream).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use ringback_media::dtmf::parse_sip_info;
use ringback_media::Codec;
use ringback_sip::auth::{Algorithm, Authorization, Credential, DigestServer, MemoryNonceCounter};
use ringback_sip::dialog::Dialog;
use ringback_sip::message::{self, Frame, ViaSpec};
use ringback_sip::rsip::headers::ToTypedHeader;
use ringback_sip::rsip::message::HeadersExt;
use ringback_sip::rsip::{self, Method, SipMessage};
use ringback_sip::transaction::{TimerConfig, TransactionLayer, TransportKind, TuEvent};

/// `[sip] max_message_bytes` default of the server's config.
const MAX_MESSAGE: usize = 65_535;
/// What the server's `Allow` header lists (src/endpoint.rs `ALLOW`).
const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, NOTIFY, REFER, UPDATE, REGISTER";
const PEER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)), 5062);
const OUR_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 5));

/// Runs `data` as one UDP datagram and as the byte stream of one TCP connection through
/// the server's receive path.
///
/// UDP (`src/endpoint.rs` `on_bytes`): keep-alive filter, size limit (513),
/// [`message::parse`], on failure [`message::error_response_for`] (400 naming the header,
/// 505, 416, 501); on success
/// `stamp_received`, [`TransactionLayer::handle_incoming`], then each request answered as
/// the endpoint and call admission answer it (SDP offer/answer and a UAS dialog for
/// INVITE, digest verification for REGISTER, DTMF for INFO). The datagram is then
/// delivered a second time (a retransmission) and the timers are run out.
///
/// TCP (`src/tcp.rs`): [`message::frame_stream`] over the buffer as it grows, once in a
/// single read and once in small reads; each framed message takes the UDP path.
///
/// Invariants: nothing panics; a parsed message serialised by [`message::to_bytes`]
/// parses again with the same start line, `Call-ID`, `CSeq`, tags and body; everything
/// the transaction layer transmits parses with our own parser; every error response is
/// exactly one well-framed message (no header injection from the echoed headers); a
/// digit from SIP INFO is a DTMF key; framing consumes only bytes that are there and
/// gives the same messages however the stream is split into reads.
pub fn sip_message(data: &[u8]) {
    let mut udp = Endpoint::new();
    udp.on_bytes(data, TransportKind::Udp);
    udp.on_bytes(data, TransportKind::Udp);
    udp.run_timers();

    tcp_connection(data);
}

/// What one TCP connection's framing produced.
#[derive(Debug, PartialEq, Eq)]
struct Framed {
    messages: Vec<Vec<u8>>,
    pongs: usize,
    /// Framing error that closed the connection, if any.
    invalid: Option<String>,
    /// Bytes still buffered when the input ended (none once the connection is closed:
    /// how much had been read by then depends on the reads).
    rest: Vec<u8>,
}

/// Mirror of the read loop in `src/tcp.rs`: append a read to the buffer, then frame as
/// long as whole messages are there.
fn frame_reads(data: &[u8], read_size: usize) -> Framed {
    let mut out = Framed {
        messages: Vec::new(),
        pongs: 0,
        invalid: None,
        rest: Vec::new(),
    };
    let mut buf: Vec<u8> = Vec::new();
    'read: for chunk in data.chunks(read_size.max(1)) {
        buf.extend_from_slice(chunk);
        loop {
            match message::frame_stream(&buf, MAX_MESSAGE) {
                Frame::Message(len) => {
                    assert!(
                        len > 0 && len <= buf.len() && len <= MAX_MESSAGE,
                        "Frame::Message({len}) for a buffer of {} bytes",
                        buf.len()
                    );
                    out.messages.push(buf.drain(..len).collect());
                }
                Frame::KeepAlive(len, pong) => {
                    assert!(
                        len > 0 && len <= buf.len(),
                        "Frame::KeepAlive({len}) for a buffer of {} bytes",
                        buf.len()
                    );
                    assert!(buf[..len].iter().all(|b| matches!(b, b'\r' | b'\n')));
                    buf.drain(..len);
                    out.pongs += usize::from(pong);
                }
                Frame::NeedMore => break,
                Frame::Invalid(reason) => {
                    if let Some(resp) = message::bad_request(&buf, &reason) {
                        check_error_response(&resp, 400);
                    }
                    out.invalid = Some(reason);
                    break 'read;
                }
            }
        }
    }
    if out.invalid.is_none() {
        out.rest = buf;
    }
    out
}

fn tcp_connection(data: &[u8]) {
    let whole = frame_reads(data, data.len());
    // A TCP peer decides where reads split; the framing must not depend on it.
    let read_size = 1 + usize::from(data.first().copied().unwrap_or(0) % 16);
    let split = frame_reads(data, read_size);
    assert_eq!(
        whole, split,
        "framing differs between one read and reads of {read_size} bytes"
    );
    let mut conn = Endpoint::new();
    for m in &whole.messages {
        conn.on_bytes(m, TransportKind::Tcp);
    }
    conn.run_timers();
}

/// The parts of the server's SIP endpoint that run on received bytes.
struct Endpoint {
    layer: TransactionLayer,
    now: Instant,
    digest: [DigestServer; 2],
    nonce_counts: MemoryNonceCounter,
    codecs: Vec<Codec>,
}

impl Endpoint {
    fn new() -> Self {
        let lifetime = Duration::from_secs(300);
        Endpoint {
            layer: TransactionLayer::new(TimerConfig::default()),
            // TODO(issue 12): an arbitrary base instant for the fuzzed endpoint (the
            // harness plays the shell); take it from ringback_sansio::Now once
            // fuzz-checks depends on that crate.
            #[allow(clippy::disallowed_methods)]
            now: Instant::now(),
            digest: [
                DigestServer::new("ringback", Algorithm::Sha256, b"fuzz", lifetime),
                DigestServer::new("ringback", Algorithm::Md5, b"fuzz", lifetime),
            ],
            nonce_counts: MemoryNonceCounter::new(64),
            codecs: vec![Codec::Pcmu, Codec::Pcma],
        }
    }

    /// `Endpoint::on_bytes` in src/endpoint.rs.
    fn on_bytes(&mut self, bytes: &[u8], transport: TransportKind) {
        if bytes.iter().all(|b| matches!(b, b'\r' | b'\n' | 0)) {
            return; // keep-alive
        }
        if bytes.len() > MAX_MESSAGE {
            let reason = format!("message of {} bytes is too large", bytes.len());
            if let Some(resp) = message::error_response(bytes, 513, &reason) {
                check_error_response(&resp, 513);
            }
            return;
        }
        match message::parse(bytes) {
            Ok(mut msg) => {
                check_round_trip(&msg);
                if let SipMessage::Request(req) = &mut msg {
                    message::stamp_received(req, PEER);
                }
                self.layer.handle_incoming(msg, PEER, transport, self.now);
                self.flush();
            }
            // 400 naming the header, 505, 416, 501: as the endpoint answers.
            Err(e) => {
                if let Some(resp) = message::error_response_for(bytes, &e) {
                    check_error_response(&resp, e.status());
                }
            }
        }
    }

    /// Lets every timer of every transaction fire (Timer G/H/I/J/K, 2xx retransmissions,
    /// the ACK timeout).
    fn run_timers(&mut self) {
        for _ in 0..16 {
            let Some(at) = self.layer.poll_timeout() else {
                break;
            };
            self.now = self.now.max(at);
            self.layer.handle_timeout(self.now);
            self.flush();
        }
    }

    fn flush(&mut self) {
        loop {
            while let Some(t) = self.layer.poll_transmit() {
                let bytes = message::to_bytes(&t.message);
                if let Err(e) = message::parse(&bytes) {
                    panic!(
                        "we transmit a message our own parser rejects ({e}):\n{}",
                        String::from_utf8_lossy(&bytes)
                    );
                }
            }
            let Some(ev) = self.layer.poll_event() else {
                break;
            };
            match ev {
                TuEvent::Request { key, request, .. } => {
                    let resp = self.answer(&request);
                    if let Err(e) = self.layer.respond(&key, resp, self.now) {
                        panic!("answering a new server transaction failed: {e}");
                    }
                }
                TuEvent::Cancelled { cancel, .. } => {
                    let _ = message::call_id(&cancel);
                }
                TuEvent::Ack { request, .. } => {
                    let _ = message::call_id(&request);
                }
                _ => {}
            }
        }
    }

    /// The response the endpoint (or the call task it starts) sends to a new request.
    fn answer(&mut self, req: &rsip::Request) -> rsip::Response {
        let has_to_tag = message::to_tag(req).is_some();
        let tag = message::new_tag();
        match req.method {
            Method::Invite if !has_to_tag => self.admit_invite(req, &tag),
            Method::Register => self.register(req, &tag),
            Method::Info if has_to_tag => {
                let ctype = message::content_type(req).unwrap_or_default();
                if let Some(d) = parse_sip_info(&ctype, &req.body) {
                    assert!(
                        "0123456789*#ABCD".contains(d),
                        "SIP INFO gave a non-DTMF key {d:?}"
                    );
                }
                message::make_response(req, 481, Some(&tag))
            }
            Method::Options => {
                let mut resp = message::make_response(req, 200, Some(&tag));
                resp.headers.push(message::make_header("Allow", ALLOW));
                resp
            }
            _ => message::make_response(req, 481, Some(&tag)),
        }
    }

    /// Call admission (src/call/mod.rs): SDP offer → negotiation → 200 with our answer and
    /// a UAS dialog; a BYE built in that dialog must serialise.
    fn admit_invite(&mut self, req: &rsip::Request, tag: &str) -> rsip::Response {
        let _ = req.uri.auth.as_ref().map(|a| a.user.as_str());
        let _ = req.from_header().ok().and_then(|h| h.typed().ok());
        let ctype = message::content_type(req).unwrap_or_default();
        if req.body.is_empty() || !ctype.to_ascii_lowercase().starts_with("application/sdp") {
            return message::make_response(req, 488, Some(tag));
        }
        let text = String::from_utf8_lossy(&req.body);
        let Ok(offer) = ringback_media::sdp::parse(&text) else {
            return message::make_response(req, 400, Some(tag));
        };
        let Ok(neg) = ringback_media::sdp::negotiate(&offer, &self.codecs) else {
            return message::make_response(req, 488, Some(tag));
        };
        let answer = ringback_media::sdp::build_answer(&neg, &offer, OUR_IP, 40_000, 7, 1);
        let contact = "sip:ringback@203.0.113.5:5060";
        let mut ok = message::make_response(req, 200, Some(tag));
        ok.headers
            .push(message::make_header("Contact", &format!("<{contact}>")));
        ok.headers.push(message::make_header("Allow", ALLOW));
        ok.headers
            .push(message::make_header("Content-Type", "application/sdp"));
        ok.body = answer.into_bytes();
        let uri = match rsip::Uri::try_from(contact) {
            Ok(u) => u,
            Err(e) => panic!("our own Contact URI does not parse: {e}"),
        };
        match Dialog::new_uas(req, tag, uri) {
            Ok(mut dialog) => {
                let via = ViaSpec {
                    host: OUR_IP.to_string(),
                    port: Some(5060),
                    transport: TransportKind::Udp,
                };
                let bye = dialog.make_request(Method::Bye, &via);
                let _ = message::request_to_bytes(&bye);
                let _ = dialog.next_hop();
                ok
            }
            Err(_) => message::make_response(req, 400, Some(tag)),
        }
    }

    /// The registrar (src/registrar.rs): digest verification and Contact validation.
    fn register(&mut self, req: &rsip::Request, tag: &str) -> rsip::Response {
        let challenge = |digest: &[DigestServer; 2], req: &rsip::Request| {
            let mut resp = message::make_response(req, 401, Some(tag));
            for server in digest {
                let c = server.challenge(1_700_000_000, false);
                resp.headers
                    .push(message::make_header("WWW-Authenticate", &c.header_value()));
            }
            resp
        };
        let Some(authz) = message::header_value(req, "Authorization") else {
            return challenge(&self.digest, req);
        };
        let Some(parsed) = Authorization::parse(&authz) else {
            return message::make_response(req, 400, Some(tag));
        };
        let server = match parsed.algorithm {
            Algorithm::Sha256 => &self.digest[0],
            Algorithm::Md5 => &self.digest[1],
        };
        let _ = parsed.nc_value();
        let _ = server.verify_with(
            &authz,
            "REGISTER",
            Credential::Password("secret"),
            1_700_000_000,
            Some(&mut self.nonce_counts),
        );
        let _ = message::header_value(req, "Expires").and_then(|v| v.trim().parse::<u64>().ok());
        for c in message::list_values(req, "Contact") {
            if let Some(na) = message::NameAddr::parse(c.trim()) {
                let _ = na.param("expires");
            }
        }
        challenge(&self.digest, req)
    }
}

/// A message we accepted must survive our own serialiser: peers see what `to_bytes`
/// writes (responses are built from the request's headers), so it has to parse again
/// and mean the same thing.
fn check_round_trip(msg: &SipMessage) {
    let bytes = message::to_bytes(msg);
    let again = match message::parse(&bytes) {
        Ok(m) => m,
        Err(e) => panic!(
            "re-parsing our serialisation failed ({e}):\n{}",
            String::from_utf8_lossy(&bytes)
        ),
    };
    match (msg, &again) {
        (SipMessage::Request(a), SipMessage::Request(b)) => {
            assert_eq!(a.method, b.method, "method changed in the round trip");
        }
        (SipMessage::Response(a), SipMessage::Response(b)) => {
            assert_eq!(
                a.status_code.code(),
                b.status_code.code(),
                "status changed in the round trip"
            );
        }
        _ => panic!("request/response changed in the round trip"),
    }
    assert_eq!(message::call_id(msg), message::call_id(&again), "Call-ID");
    assert_eq!(message::cseq(msg), message::cseq(&again), "CSeq");
    assert_eq!(
        message::from_tag(msg),
        message::from_tag(&again),
        "From tag"
    );
    assert_eq!(message::to_tag(msg), message::to_tag(&again), "To tag");
    assert_eq!(message::body(msg), message::body(&again), "body");
}

/// An error response echoes headers of a message we could not parse. It must still be
/// exactly one message with an empty body, so nothing in those headers can add headers,
/// a body or a second message.
fn check_error_response(resp: &[u8], code: u16) {
    let prefix = format!("SIP/2.0 {code} ");
    assert!(
        resp.starts_with(prefix.as_bytes()),
        "error response does not start with {prefix:?}"
    );
    assert_eq!(
        message::frame_stream(resp, MAX_MESSAGE),
        Frame::Message(resp.len()),
        "error response is not exactly one framed message:\n{}",
        String::from_utf8_lossy(resp)
    );
    let text = match std::str::from_utf8(resp) {
        Ok(t) => t,
        Err(_) => panic!("error response is not UTF-8"),
    };
    let head = text.strip_suffix("\r\n\r\n").unwrap_or_else(|| {
        panic!("error response does not end with an empty body:\n{text}");
    });
    for line in head.split("\r\n") {
        assert!(
            !line.is_empty() && !line.chars().any(|c| c.is_control()),
            "error response line {line:?} is empty or has control characters"
        );
    }
}
