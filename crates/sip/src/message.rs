//! SIP message wrapper over [`rsip`].
//!
//! `rsip` 0.4 is a good carrier for messages (method, URI, an ordered header list, a body) but
//! it was never hardened for traffic from the open network: it does not know compact header
//! names, validates header values only when `.typed()` is called, returns only the first `Via`,
//! ignores `Content-Length`, rejects methods it does not know and prints reason phrases such as
//! `404 NotFound`. Everything that touches bytes from or to the wire therefore goes through this
//! module:
//!
//! * [`parse`] normalises the header section (compact forms, folding, comma-joined `Via`,
//!   `Route`, `Record-Route` and `Contact` lists) before `rsip` sees it, enforces the
//!   `Content-Length` rules of RFC 3261 §18.3 and validates the mandatory headers so that the
//!   transaction and dialog layers can rely on them.
//! * [`error_response_for`] (and [`bad_request`] / [`error_response`]) answer requests that
//!   could not be parsed, using a purely textual extraction of the headers a response needs:
//!   `400 Missing Call-ID`, `505` for another SIP version, `416` for a Request-URI scheme other
//!   than `sip`/`sips`, `501` for an unknown method. Only a request whose top `Via` can be read
//!   is answered; without one a response cannot be routed.
//! * [`frame_stream`] finds message boundaries on TCP (RFC 3261 §18.3) and the CRLF keep-alives
//!   of RFC 5626 §4.4.1.
//! * [`to_bytes`] is the only serializer: it writes standard reason phrases and a correct
//!   `Content-Length`, which `rsip`'s `Display` does not guarantee.
//!
//! Accessors never panic: anything derived from network input returns `Option`.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use rand::distr::Alphanumeric;
use rand::Rng;
use rsip::headers::{ToTypedHeader, UntypedHeader};
use rsip::message::HasHeaders;
use rsip::{Header, Method, Request, Response, SipMessage, StatusCode};

use crate::transaction::TransportKind;

/// Magic cookie that marks an RFC 3261 branch (§8.1.1.7). Transaction matching relies on it.
pub const BRANCH_MAGIC: &str = "z9hG4bK";

/// Why a datagram or stream frame could not be turned into a usable SIP message.
///
/// The `Display` text is a short human reason, safe to put in a `Warning` header or a log line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Nothing but whitespace / CRLF (a keep-alive, not a message).
    #[error("empty message")]
    Empty,
    /// The request or status line is not `METHOD URI SIP/2.0` / `SIP/2.0 CODE REASON`.
    #[error("malformed start line: {0}")]
    StartLine(String),
    /// A request line that names a SIP version other than 2.0 (`SIP/3.0`). Answered with
    /// `505 Version Not Supported` (RFC 3261 §8.2 / §21.5.7).
    #[error("unsupported SIP version {0}")]
    UnsupportedVersion(String),
    /// The Request-URI is not a URI (`@@:;;<>`, `sip:` without a host, a space, a bad `%`
    /// escape). Answered with `400`.
    #[error("malformed Request-URI: {0}")]
    RequestUri(String),
    /// A well-formed Request-URI whose scheme ringback does not serve (`tel:`, `mailto:`,
    /// `urn:` …; only `sip` and `sips` are). Answered with `416 Unsupported URI Scheme`
    /// (RFC 3261 §8.2.2.1).
    #[error("unsupported Request-URI scheme {0}")]
    UnsupportedScheme(String),
    /// A syntactically fine request whose method `rsip` cannot represent. The shell should
    /// answer it with `501 Not Implemented` through [`error_response`].
    #[error("unsupported method {0}")]
    UnknownMethod(String),
    /// The header section is not UTF-8; RFC 3261 headers are UTF-8 text.
    #[error("header section is not valid UTF-8")]
    NotUtf8,
    /// A header line without a colon or with an invalid name.
    #[error("malformed header line: {0}")]
    HeaderLine(String),
    /// A header every request and response must carry (RFC 3261 §8.1.1) is absent.
    #[error("missing mandatory header {0}")]
    MissingHeader(&'static str),
    /// A mandatory header is present but unusable.
    #[error("invalid {name} header: {reason}")]
    InvalidHeader {
        /// Canonical header name.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The body is shorter than `Content-Length` says (RFC 3261 §18.3: discard / 400).
    #[error("body shorter than Content-Length ({actual} < {declared})")]
    TruncatedBody {
        /// Value of the `Content-Length` header.
        declared: usize,
        /// Bytes actually present after the header section.
        actual: usize,
    },
    /// `rsip` refused the normalised message.
    #[error("unparseable message: {0}")]
    Rsip(String),
}

impl ParseError {
    /// Short human reason (same as `Display`), for `Warning` headers and logs.
    pub fn reason(&self) -> String {
        self.to_string()
    }

    /// Status code a request that failed this way is answered with: `501` for an unknown
    /// method, `505` for another SIP version, `416` for an unsupported Request-URI scheme,
    /// `400` otherwise. (Whether an answer is possible at all is up to [`error_response_for`].)
    pub fn status(&self) -> u16 {
        match self {
            ParseError::UnknownMethod(_) => 501,
            ParseError::UnsupportedVersion(_) => 505,
            ParseError::UnsupportedScheme(_) => 416,
            _ => 400,
        }
    }

    /// Reason phrase for that response. RFC 3261 §21.4.1 lets a 400 say what is wrong in its
    /// phrase, so a missing mandatory header is named (`Missing Call-ID`) and an invalid one
    /// too (`Invalid CSeq`); everything else gets the standard phrase. The details go into a
    /// `Warning` header.
    pub fn response_phrase(&self) -> String {
        match self {
            ParseError::MissingHeader(name) => format!("Missing {name}"),
            ParseError::InvalidHeader { name, .. } => format!("Invalid {name}"),
            ParseError::RequestUri(_) => "Invalid Request-URI".into(),
            other => reason_phrase(other.status()).into(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Lexing of the header section (shared by `parse`, `bad_request` and `frame_stream`).
// ---------------------------------------------------------------------------------------------

/// Long form of an RFC 3261 §7.3.3 (and later RFCs) compact header name.
pub fn expand_compact_name(name: &str) -> Option<&'static str> {
    let mut chars = name.chars();
    let c = chars.next()?;
    if chars.next().is_some() {
        return None;
    }
    Some(match c.to_ascii_lowercase() {
        'a' => "Accept-Contact",
        'b' => "Referred-By",
        'c' => "Content-Type",
        'd' => "Request-Disposition",
        'e' => "Content-Encoding",
        'f' => "From",
        'i' => "Call-ID",
        'j' => "Reject-Contact",
        'k' => "Supported",
        'l' => "Content-Length",
        'm' => "Contact",
        'n' => "Identity-Info",
        'o' => "Event",
        'r' => "Refer-To",
        's' => "Subject",
        't' => "To",
        'u' => "Allow-Events",
        'v' => "Via",
        'x' => "Session-Expires",
        'y' => "Identity",
        _ => return None,
    })
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c)
}

/// Where the header section ends and the body begins, after skipping leading CRLFs.
struct Sections {
    head_start: usize,
    head_end: usize,
    body_start: usize,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

fn sections(raw: &[u8]) -> Sections {
    let head_start = raw
        .iter()
        .position(|b| !matches!(b, b'\r' | b'\n'))
        .unwrap_or(raw.len());
    let rest = raw.get(head_start..).unwrap_or_default();
    let crlf = find(rest, b"\r\n\r\n").map(|p| (p, p + 4));
    let lf = find(rest, b"\n\n").map(|p| (p, p + 2));
    let (end, body) = match (crlf, lf) {
        (Some(a), Some(b)) => {
            if a.0 <= b.0 {
                a
            } else {
                b
            }
        }
        (Some(a), None) => a,
        (None, Some(b)) => b,
        (None, None) => (rest.len(), rest.len()),
    };
    Sections {
        head_start,
        head_end: head_start + end,
        body_start: head_start + body,
    }
}

/// A lexed header section: start line plus `(name, value)` pairs with folding undone and compact
/// names expanded. Values are trimmed.
struct Lexed {
    start_line: String,
    headers: Vec<(String, String)>,
}

fn lex_head(text: &str) -> Result<Lexed, ParseError> {
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let start_line = lines.next().unwrap_or_default().trim().to_string();
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.chars().any(|c| c.is_control() && c != '\t') {
            // Bare CR, NUL, … inside a line: not SIP, and dangerous to echo back.
            return Err(ParseError::HeaderLine(truncate_for_reason(line)));
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            // RFC 3261 §7.3.1 line folding: continuation of the previous value.
            match headers.last_mut() {
                Some((_, v)) => {
                    let cont = line.trim();
                    if !cont.is_empty() {
                        if !v.is_empty() {
                            v.push(' ');
                        }
                        v.push_str(cont);
                    }
                }
                None => return Err(ParseError::HeaderLine(truncate_for_reason(line))),
            }
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(ParseError::HeaderLine(truncate_for_reason(line)));
        };
        let name = name.trim_end();
        if name.is_empty() || !name.chars().all(is_token_char) {
            return Err(ParseError::HeaderLine(truncate_for_reason(line)));
        }
        let name = match expand_compact_name(name) {
            Some(long) => long.to_string(),
            None => name.to_string(),
        };
        headers.push((name, value.trim().to_string()));
    }
    Ok(Lexed {
        start_line,
        headers,
    })
}

fn truncate_for_reason(s: &str) -> String {
    let mut out: String = s
        .chars()
        .filter(|c| !c.is_control())
        .take(60)
        .collect::<String>();
    if s.chars().count() > 60 {
        out.push('…');
    }
    out
}

/// Split a header value on commas that are not inside a quoted string or `<…>`.
///
/// RFC 3261 §7.3.1 allows a list-valued header to be written either as several lines or as one
/// comma-separated line; `rsip` only understands the first form for `Via` and `Contact`.
pub fn split_header_list(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_quotes = false;
    let mut escaped = false;
    let mut angle = 0usize;
    for c in value.chars() {
        if in_quotes {
            cur.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quotes = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_quotes = true;
                cur.push(c);
            }
            '<' => {
                angle += 1;
                cur.push(c);
            }
            '>' => {
                angle = angle.saturating_sub(1);
                cur.push(c);
            }
            ',' if angle == 0 => {
                let t = cur.trim();
                if !t.is_empty() {
                    out.push(t.to_string());
                }
                cur.clear();
            }
            _ => cur.push(c),
        }
    }
    let t = cur.trim();
    if !t.is_empty() {
        out.push(t.to_string());
    }
    out
}

/// Remove whitespace around `;` and `=` outside quoted strings (RFC 3261 `SEMI`/`EQUAL` allow
/// it; `rsip`'s parameter tokenizer does not).
fn tighten_params(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut in_quotes = false;
    let mut escaped = false;
    let mut pending_ws = String::new();
    for c in value.chars() {
        if in_quotes {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quotes = false;
            }
            continue;
        }
        if c == ' ' || c == '\t' {
            pending_ws.push(c);
            continue;
        }
        if c == ';' || c == '=' {
            pending_ws.clear();
            while out.ends_with(' ') || out.ends_with('\t') {
                out.pop();
            }
            out.push(c);
            // Swallow whitespace after the separator.
            pending_ws.push('\u{0}');
            continue;
        }
        if pending_ws.starts_with('\u{0}') {
            pending_ws.clear();
        } else {
            out.push_str(&pending_ws);
            pending_ws.clear();
        }
        if c == '"' {
            in_quotes = true;
        }
        out.push(c);
    }
    out
}

fn is_address_header(name: &str) -> bool {
    ["Via", "Route", "Record-Route", "Contact", "From", "To"]
        .iter()
        .any(|h| h.eq_ignore_ascii_case(name))
}

fn is_list_header(name: &str) -> bool {
    ["Via", "Route", "Record-Route", "Contact"]
        .iter()
        .any(|h| h.eq_ignore_ascii_case(name))
}

// ---------------------------------------------------------------------------------------------
// parse
// ---------------------------------------------------------------------------------------------

/// Parse one SIP message (a whole UDP datagram, or one frame found by [`frame_stream`]).
///
/// Normalisation done before `rsip` sees the bytes: leading CRLFs skipped (RFC 3261 §7.5),
/// folded lines joined, compact names expanded, comma-joined `Via`/`Route`/`Record-Route`/
/// `Contact` values split into one header each (order kept), bare-LF line ends accepted.
///
/// Body rules (RFC 3261 §18.3): a body longer than `Content-Length` is truncated; a shorter one
/// is an error; without `Content-Length` the body is the rest of the datagram.
///
/// Validation: top `Via` parses and (requests) has a branch, `From`/`To` parse as typed
/// headers, `Call-ID` is present and non-empty, `CSeq` parses and its method equals the request
/// method. `Max-Forwards` may be absent. Requests whose method `rsip` does not know yield
/// [`ParseError::UnknownMethod`]; a request line with another SIP version
/// [`ParseError::UnsupportedVersion`] (`sip/2.0` in lower case is 2.0); a Request-URI that is
/// not a URI [`ParseError::RequestUri`], one with a scheme other than `sip`/`sips`
/// [`ParseError::UnsupportedScheme`]. [`ParseError::status`] says how to answer each.
pub fn parse(bytes: &[u8]) -> Result<SipMessage, ParseError> {
    let sec = sections(bytes);
    if sec.head_start >= bytes.len() {
        return Err(ParseError::Empty);
    }
    let head = bytes.get(sec.head_start..sec.head_end).unwrap_or_default();
    let text = std::str::from_utf8(head).map_err(|_| ParseError::NotUtf8)?;
    let lexed = lex_head(text)?;
    let (is_request, start_line) = check_start_line(&lexed.start_line)?;

    // Content-Length handling.
    let body_all = bytes.get(sec.body_start..).unwrap_or_default();
    let mut declared: Option<usize> = None;
    for (name, value) in &lexed.headers {
        if name.eq_ignore_ascii_case("Content-Length") {
            let n: usize = value
                .trim()
                .parse()
                .map_err(|_| ParseError::InvalidHeader {
                    name: "Content-Length",
                    reason: format!("not a number: {}", truncate_for_reason(value)),
                })?;
            if declared.is_some_and(|d| d != n) {
                return Err(ParseError::InvalidHeader {
                    name: "Content-Length",
                    reason: "conflicting values".into(),
                });
            }
            declared = Some(n);
        }
    }
    let body = match declared {
        Some(n) if n > body_all.len() => {
            return Err(ParseError::TruncatedBody {
                declared: n,
                actual: body_all.len(),
            })
        }
        Some(n) => body_all.get(..n).unwrap_or_default(),
        None => body_all,
    };

    // Rebuild a canonical header section for rsip.
    let mut canon = String::with_capacity(text.len() + 64);
    canon.push_str(&start_line);
    canon.push_str("\r\n");
    for (name, value) in &lexed.headers {
        let tightened;
        let value = if is_address_header(name) {
            tightened = tighten_params(value);
            &tightened
        } else {
            value
        };
        if is_list_header(name) {
            for item in split_header_list(value) {
                let _ = write!(canon, "{name}: {item}\r\n");
            }
        } else {
            let _ = write!(canon, "{name}: {value}\r\n");
        }
    }
    canon.push_str("\r\n");
    let mut buf = canon.into_bytes();
    buf.extend_from_slice(body);

    let mut msg =
        SipMessage::try_from(buf.as_slice()).map_err(|e| ParseError::Rsip(e.to_string()))?;
    // rsip keeps whatever followed the blank line; make sure the body is exactly ours.
    *msg.body_mut() = body.to_vec();
    if msg.is_request() != is_request {
        return Err(ParseError::StartLine(truncate_for_reason(
            &lexed.start_line,
        )));
    }
    validate(&msg)?;
    Ok(msg)
}

/// `SIP/1*DIGIT "." 1*DIGIT`, case-insensitively (RFC 3261 §7.1): `Some(true)` for 2.0,
/// `Some(false)` for another version, `None` when it is not a SIP version at all.
fn sip_version(token: &str) -> Option<bool> {
    let prefix = token.get(..4)?;
    if !prefix.eq_ignore_ascii_case("SIP/") {
        return None;
    }
    let (major, minor) = token.get(4..)?.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(major) || !digits(minor) {
        return None;
    }
    Some(major.trim_start_matches('0') == "2" && minor.trim_start_matches('0').is_empty())
}

/// Checks the start line; returns whether it is a request line, and the line with its version
/// written as `SIP/2.0` (the version is case-insensitive, `rsip` only reads upper case).
///
/// Order of the request checks: version (`505`), method syntax, unknown method (`501`), then
/// the Request-URI (`400` / `416`).
fn check_start_line(line: &str) -> Result<(bool, String), ParseError> {
    let bad = || ParseError::StartLine(truncate_for_reason(line));
    let (first, rest) = line.split_once(' ').ok_or_else(bad)?;
    if first
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
    {
        let (code, reason) = rest.split_once(' ').ok_or_else(bad)?;
        if sip_version(first) != Some(true) {
            return Err(bad());
        }
        let n: u16 = code.parse().map_err(|_| bad())?;
        if !(100..=699).contains(&n) || code.len() != 3 {
            return Err(bad());
        }
        Ok((false, format!("SIP/2.0 {code} {reason}")))
    } else {
        let (uri, version) = rest.rsplit_once(' ').ok_or_else(bad)?;
        match sip_version(version) {
            None => return Err(bad()),
            Some(false) => {
                return Err(ParseError::UnsupportedVersion(truncate_for_reason(version)))
            }
            Some(true) => {}
        }
        if first.is_empty() || !first.chars().all(is_token_char) || uri.is_empty() {
            return Err(bad());
        }
        if first.parse::<Method>().is_err() {
            return Err(ParseError::UnknownMethod(truncate_for_reason(first)));
        }
        check_request_uri(uri)?;
        Ok((true, format!("{first} {uri} SIP/2.0")))
    }
}

/// RFC 3261 §25.1 `absoluteURI` characters (`uric` of RFC 2396 plus `[`/`]` for IPv6 hosts),
/// `%` only as a `%HH` escape. `#` is tolerated: phones put feature codes such as `*67#`
/// unescaped in the user part.
fn uri_chars_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = |j: usize| b.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !hex(i + 1) || !hex(i + 2) {
                return false;
            }
            i += 3;
            continue;
        }
        if !(c.is_ascii_alphanumeric() || b"-_.!~*'();/?:@&=+$,[]#".contains(&c)) {
            return false;
        }
        i += 1;
    }
    true
}

/// A Request-URI must be a URI (`scheme ":" …`, RFC 3261 §25.1); ringback serves `sip` and
/// `sips` URIs with a host. Anything else that is a well-formed URI (`tel:+15550100`,
/// `mailto:…`) is [`ParseError::UnsupportedScheme`]; what is not a URI at all is
/// [`ParseError::RequestUri`].
fn check_request_uri(uri: &str) -> Result<(), ParseError> {
    let bad = || ParseError::RequestUri(truncate_for_reason(uri));
    if uri.contains(' ') {
        return Err(bad());
    }
    let (scheme, rest) = uri.split_once(':').ok_or_else(bad)?;
    let mut chars = scheme.chars();
    let scheme_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok || rest.is_empty() || !uri_chars_ok(rest) {
        return Err(bad());
    }
    if !(scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips")) {
        return Err(ParseError::UnsupportedScheme(scheme.to_ascii_lowercase()));
    }
    let parsed = rsip::Uri::try_from(uri).map_err(|_| bad())?;
    let host = parsed.host_with_port.host.to_string();
    if !matches!(parsed.scheme, Some(rsip::Scheme::Sip | rsip::Scheme::Sips)) || host.is_empty() {
        return Err(bad());
    }
    Ok(())
}

fn validate(msg: &SipMessage) -> Result<(), ParseError> {
    let vias = all_via_values(msg);
    let top = vias.first().ok_or(ParseError::MissingHeader("Via"))?;
    let via = ViaParts::parse(top).ok_or_else(|| ParseError::InvalidHeader {
        name: "Via",
        reason: truncate_for_reason(top),
    })?;
    if let SipMessage::Request(_) = msg {
        if via.param("branch").flatten().is_none_or(|b| b.is_empty()) {
            return Err(ParseError::InvalidHeader {
                name: "Via",
                reason: "missing branch".into(),
            });
        }
    }

    let mut from = None;
    let mut to = None;
    let mut call_id = None;
    let mut cseq_h = None;
    fn put<'a, T>(
        slot: &mut Option<&'a T>,
        v: &'a T,
        name: &'static str,
    ) -> Result<(), ParseError> {
        match slot.replace(v) {
            Some(_) => Err(ParseError::InvalidHeader {
                name,
                reason: "more than one".into(),
            }),
            None => Ok(()),
        }
    }
    for h in msg.headers().iter() {
        match h {
            Header::From(f) => put(&mut from, f, "From")?,
            Header::To(t) => put(&mut to, t, "To")?,
            Header::CallId(c) => put(&mut call_id, c, "Call-ID")?,
            Header::CSeq(c) => put(&mut cseq_h, c, "CSeq")?,
            Header::MaxForwards(m) => {
                m.value()
                    .trim()
                    .parse::<u32>()
                    .map_err(|_| ParseError::InvalidHeader {
                        name: "Max-Forwards",
                        reason: truncate_for_reason(m.value()),
                    })?;
            }
            _ => {}
        }
    }
    let from = from.ok_or(ParseError::MissingHeader("From"))?;
    from.typed().map_err(|_| ParseError::InvalidHeader {
        name: "From",
        reason: truncate_for_reason(from.value()),
    })?;
    let to = to.ok_or(ParseError::MissingHeader("To"))?;
    to.typed().map_err(|_| ParseError::InvalidHeader {
        name: "To",
        reason: truncate_for_reason(to.value()),
    })?;
    let call_id = call_id.ok_or(ParseError::MissingHeader("Call-ID"))?;
    if call_id.value().trim().is_empty() {
        return Err(ParseError::InvalidHeader {
            name: "Call-ID",
            reason: "empty".into(),
        });
    }
    let cseq_h = cseq_h.ok_or(ParseError::MissingHeader("CSeq"))?;
    let (_, method) = parse_cseq(cseq_h.value()).ok_or_else(|| ParseError::InvalidHeader {
        name: "CSeq",
        reason: truncate_for_reason(cseq_h.value()),
    })?;
    if let SipMessage::Request(req) = msg {
        if req.method != method {
            return Err(ParseError::InvalidHeader {
                name: "CSeq",
                reason: format!(
                    "method {} does not match request method {}",
                    method, req.method
                ),
            });
        }
    }
    Ok(())
}

/// True for datagrams that only carry keep-alive filler (CRLFs, spaces, NULs), which UDP
/// clients send to keep NAT bindings open. The shell should silently ignore them.
pub fn is_keepalive(datagram: &[u8]) -> bool {
    datagram
        .iter()
        .all(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\t' | 0))
}

// ---------------------------------------------------------------------------------------------
// Responses to unparseable requests
// ---------------------------------------------------------------------------------------------

/// Build a `400 Bad Request` for raw bytes that [`parse`] rejected, if that is possible.
///
/// RFC 3261 says to drop unparseable messages silently, except that a request that can still
/// be answered SHOULD get a 400 (§8.2.2 / §16.3 / §21.4.1). The headers a response copies
/// (all `Via`s, `From`, `To`, `Call-ID`, `CSeq`) are extracted textually, without `rsip`, so
/// this works precisely on what `rsip` could not parse. Those that are absent are left out
/// (that is what `400 Missing Call-ID` is for), but the top `Via` is required: without it a
/// response cannot be routed. Returns `None` for responses, for `ACK` (never answered), for a
/// start line that is not `METHOD URI SIP/x.y`, without a readable top `Via`, and when one of
/// the copied headers is present but cannot be echoed faithfully (not UTF-8, control
/// characters). The reason is carried in a `Warning: 399` header. Send the bytes back to the
/// packet's source address.
pub fn bad_request(raw: &[u8], reason: &str) -> Option<Vec<u8>> {
    error_response(raw, 400, reason)
}

/// Like [`bad_request`] with any status code (and its standard reason phrase), e.g. `413`/`513`
/// for oversized messages.
pub fn error_response(raw: &[u8], code: u16, reason: &str) -> Option<Vec<u8>> {
    build_error_response(raw, code, reason_phrase(code), reason, None)
}

/// `503 Service Unavailable` with `Retry-After: retry_after_secs` for a
/// request refused before it was parsed (overload), built from its raw
/// headers like [`error_response`].
pub fn overload_response(raw: &[u8], retry_after_secs: u32, reason: &str) -> Option<Vec<u8>> {
    build_error_response(raw, 503, reason_phrase(503), reason, Some(retry_after_secs))
}

/// The Call-ID of `raw` when it is an initial INVITE (its `To` has no tag),
/// found by scanning the header lines without parsing the message: what
/// the endpoint needs to refuse a new call under overload at the cost of a
/// scan. `None` for any other message, a re-INVITE, or a message whose
/// Call-ID cannot be found (the full parser then answers it).
pub fn initial_invite_call_id(raw: &[u8]) -> Option<&str> {
    if !raw.starts_with(b"INVITE ") {
        return None;
    }
    let head = &raw[..find(raw, b"\r\n\r\n").unwrap_or(raw.len())];
    let mut call_id = None;
    let mut to_seen = false;
    for line in head.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        let value = line[colon + 1..].trim_ascii();
        if name.eq_ignore_ascii_case(b"Call-ID") || name.eq_ignore_ascii_case(b"i") {
            call_id = std::str::from_utf8(value).ok().filter(|v| !v.is_empty());
        } else if name.eq_ignore_ascii_case(b"To") || name.eq_ignore_ascii_case(b"t") {
            // A tag parameter after the name-addr: a re-INVITE.
            let after_uri = value
                .iter()
                .rposition(|&b| b == b'>')
                .map_or(value, |i| &value[i..]);
            if after_uri
                .windows(5)
                .any(|w| w.eq_ignore_ascii_case(b";tag="))
            {
                return None;
            }
            to_seen = true;
        }
    }
    call_id.filter(|_| to_seen)
}

/// The answer to a request that [`parse`] rejected with `err`: [`ParseError::status`] with
/// [`ParseError::response_phrase`] (`400 Missing Call-ID`, `505 Version Not Supported`,
/// `416 Unsupported URI Scheme`, `501 Not Implemented` …) and the error text in a `Warning`
/// header. `None` when nothing can be answered; see [`bad_request`].
pub fn error_response_for(raw: &[u8], err: &ParseError) -> Option<Vec<u8>> {
    build_error_response(
        raw,
        err.status(),
        &err.response_phrase(),
        &err.reason(),
        None,
    )
}

fn build_error_response(
    raw: &[u8],
    code: u16,
    phrase: &str,
    reason: &str,
    retry_after_secs: Option<u32>,
) -> Option<Vec<u8>> {
    if !(300..=699).contains(&code) {
        return None;
    }
    let sec = sections(raw);
    let head = raw.get(sec.head_start..sec.head_end)?;
    let text = String::from_utf8_lossy(head);
    // Lex leniently: skip lines that are not headers instead of failing.
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let start = lines.next()?.trim();
    let method = start.split(' ').next()?;
    if method
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
    {
        return None;
    }
    if method.is_empty() || !method.chars().all(is_token_char) || method == "ACK" {
        return None;
    }
    // Any SIP version: `SIP/3.0` requests get their 505.
    start.rsplit(' ').next().and_then(sip_version)?;
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some((_, v)) = headers.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        let name = expand_compact_name(name)
            .map(str::to_string)
            .unwrap_or_else(|| name.to_string());
        headers.push((name, value.trim().to_string()));
    }
    let usable =
        |v: &str| !v.is_empty() && !v.contains('\u{FFFD}') && !v.chars().any(|c| c.is_control());
    let mut vias = Vec::new();
    let (mut from, mut to, mut call_id, mut cseq) = (None, None, None, None);
    for (name, value) in &headers {
        let slot = if name.eq_ignore_ascii_case("Via") {
            // Every Via is copied (§8.2.6.2): one that cannot be is as bad as none.
            if !usable(value) {
                return None;
            }
            vias.extend(split_header_list(value));
            continue;
        } else if name.eq_ignore_ascii_case("From") {
            &mut from
        } else if name.eq_ignore_ascii_case("To") {
            &mut to
        } else if name.eq_ignore_ascii_case("Call-ID") {
            &mut call_id
        } else if name.eq_ignore_ascii_case("CSeq") {
            &mut cseq
        } else {
            continue;
        };
        if slot.is_none() {
            // Present but not echoable: answering without it would mislead; drop.
            if !usable(value) {
                return None;
            }
            *slot = Some(value.clone());
        }
    }
    // The response goes where the top Via says (§18.2.2): it must be readable.
    ViaParts::parse(vias.first()?)?;
    if let Some(to) = to.as_mut() {
        if name_addr_param(to, "tag").is_none() {
            to.push_str(";tag=");
            to.push_str(&new_tag());
        }
    }
    let clean = |s: &str, n: usize| -> String {
        s.chars()
            .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
            .take(n)
            .collect()
    };
    let phrase = match clean(phrase, 80) {
        p if p.trim().is_empty() => reason_phrase(code).to_string(),
        p => p,
    };
    let warning = clean(reason, 200);
    let mut out = format!("SIP/2.0 {code} {phrase}\r\n");
    for v in &vias {
        let _ = write!(out, "Via: {v}\r\n");
    }
    for (name, value) in [
        ("From", &from),
        ("To", &to),
        ("Call-ID", &call_id),
        ("CSeq", &cseq),
    ] {
        if let Some(v) = value {
            let _ = write!(out, "{name}: {v}\r\n");
        }
    }
    if let Some(secs) = retry_after_secs {
        let _ = write!(out, "Retry-After: {secs}\r\n");
    }
    let _ = write!(
        out,
        "Warning: 399 ringback \"{warning}\"\r\nContent-Length: 0\r\n\r\n"
    );
    Some(out.into_bytes())
}

// ---------------------------------------------------------------------------------------------
// Stream framing
// ---------------------------------------------------------------------------------------------

/// Result of looking for one message at the head of a stream buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete message occupies the first `n` bytes (headers + body). Hand exactly those to
    /// [`parse`] and drop them from the buffer.
    Message(usize),
    /// RFC 5626 §4.4.1 keep-alive: consume `n` bytes of CRLF. When the flag is true it was a
    /// double-CRLF "ping" and the shell must answer with a single CRLF "pong".
    KeepAlive(usize, bool),
    /// Not enough bytes yet; read more and call again.
    NeedMore,
    /// The stream cannot be framed (no/invalid `Content-Length`, oversized message). Close the
    /// connection: there is no way to resynchronise a SIP byte stream.
    Invalid(String),
}

/// Find the first message boundary in a TCP receive buffer (RFC 3261 §18.3).
///
/// `Content-Length` is mandatory on stream transports; a header section or whole message
/// larger than `max_message` is [`Frame::Invalid`]. A lone `"\r\n"` at the end of the buffer
/// yields [`Frame::NeedMore`] because it may be the first half of a ping; should it really have
/// been a pong, the next bytes resolve it (`"\r\n"` + message start → `KeepAlive(2, false)`).
pub fn frame_stream(buf: &[u8], max_message: usize) -> Frame {
    if buf.is_empty() {
        return Frame::NeedMore;
    }
    if buf.starts_with(b"\r\n\r\n") {
        return Frame::KeepAlive(4, true);
    }
    if buf.starts_with(b"\r\n") {
        return if buf.len() == 2 || buf.get(2) == Some(&b'\r') && buf.len() == 3 {
            Frame::NeedMore
        } else {
            Frame::KeepAlive(2, false)
        };
    }
    if buf == b"\r" {
        return Frame::NeedMore;
    }
    let window = buf.get(..buf.len().min(max_message)).unwrap_or(buf);
    let Some(head_end) = find(window, b"\r\n\r\n") else {
        return if buf.len() >= max_message {
            Frame::Invalid(format!("header section larger than {max_message} bytes"))
        } else {
            Frame::NeedMore
        };
    };
    let Ok(text) = std::str::from_utf8(buf.get(..head_end).unwrap_or_default()) else {
        return Frame::Invalid("header section is not valid UTF-8".into());
    };
    let mut length: Option<usize> = None;
    for line in text.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        let is_cl = name.eq_ignore_ascii_case("Content-Length") || name.eq_ignore_ascii_case("l");
        if !is_cl {
            continue;
        }
        let Ok(n) = value.trim().parse::<usize>() else {
            return Frame::Invalid(format!(
                "invalid Content-Length: {}",
                truncate_for_reason(value.trim())
            ));
        };
        if length.is_some_and(|l| l != n) {
            return Frame::Invalid("conflicting Content-Length headers".into());
        }
        length = Some(n);
    }
    let Some(length) = length else {
        return Frame::Invalid("missing Content-Length on a stream transport".into());
    };
    let total = match (head_end + 4).checked_add(length) {
        Some(t) if t <= max_message => t,
        _ => return Frame::Invalid(format!("message larger than {max_message} bytes")),
    };
    if buf.len() < total {
        Frame::NeedMore
    } else {
        Frame::Message(total)
    }
}

// ---------------------------------------------------------------------------------------------
// Building messages
// ---------------------------------------------------------------------------------------------

/// Standard reason phrase for a status code (RFC 3261 §21 and later RFCs), `"Unknown"` else.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        199 => "Early Dialog Terminated",
        200 => "OK",
        202 => "Accepted",
        204 => "No Notification",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        412 => "Conditional Request Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        493 => "Undecipherable",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        580 => "Precondition Failure",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        607 => "Unwanted",
        _ => "Unknown",
    }
}

/// Build a response to `req` as RFC 3261 §8.2.6 requires: all `Via`s in order, `From`, `To`
/// (with `;tag=to_tag` added when given and `To` has no tag yet), `Call-ID`, `CSeq`,
/// `Content-Length: 0`. For dialog-establishing responses to INVITE (101–299) the
/// `Record-Route` values are copied too (§12.1.1). Add `Contact`, a body etc. afterwards.
///
/// The reason phrase is written by [`to_bytes`]; `rsip`'s own `Display` would print
/// `404 NotFound`.
pub fn make_response(req: &Request, code: u16, to_tag: Option<&str>) -> Response {
    let mut headers: Vec<Header> = Vec::new();
    for h in req.headers.iter() {
        if let Header::Via(_) = h {
            headers.push(h.clone());
        }
    }
    for h in req.headers.iter() {
        match h {
            Header::From(_) | Header::CallId(_) | Header::CSeq(_) => headers.push(h.clone()),
            Header::To(to) => {
                let mut value = to.value().to_string();
                if let Some(tag) = to_tag {
                    if name_addr_param(&value, "tag").is_none() {
                        value.push_str(";tag=");
                        value.push_str(tag);
                    }
                }
                headers.push(Header::To(rsip::headers::To::new(value)));
            }
            Header::RecordRoute(_)
                if req.method == Method::Invite && (101..=299).contains(&code) =>
            {
                headers.push(h.clone())
            }
            _ => {}
        }
    }
    headers.push(Header::ContentLength(rsip::headers::ContentLength::new(
        "0",
    )));
    Response {
        status_code: StatusCode::from(code),
        version: rsip::Version::V2,
        headers: headers.into(),
        body: Vec::new(),
    }
}

fn random_chars(n: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

/// A fresh RFC 3261 branch: magic cookie plus 22 random alphanumerics (≈130 bits), so branches
/// are unique across restarts and nodes without coordination.
pub fn new_branch() -> String {
    format!("{BRANCH_MAGIC}{}", random_chars(22))
}

/// A fresh `From`/`To` tag (RFC 3261 §19.3: at least 32 bits of randomness; we use ~71).
pub fn new_tag() -> String {
    random_chars(12)
}

/// A fresh `Call-ID` of the form `random@host` (RFC 3261 §8.1.1.4).
pub fn new_call_id(host: &str) -> String {
    format!("{}@{}", random_chars(24), host)
}

/// How we describe ourselves in a `Via` we add (host as it should appear in sent-by).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViaSpec {
    /// Host or IP to put in sent-by (an address peers can reach us on).
    pub host: String,
    /// Port for sent-by; `None` omits it (meaning 5060).
    pub port: Option<u16>,
    /// Transport named in the `Via` sent-protocol.
    pub transport: TransportKind,
}

impl ViaSpec {
    /// `Via` value with the given branch and `;rport` (RFC 3581: ask for symmetric responses,
    /// which is what makes NATed peers work).
    pub fn value(&self, branch: &str) -> String {
        let host = bracket_host(&self.host);
        match self.port {
            Some(p) => format!(
                "SIP/2.0/{} {host}:{p};branch={branch};rport",
                self.transport.via_name()
            ),
            None => format!(
                "SIP/2.0/{} {host};branch={branch};rport",
                self.transport.via_name()
            ),
        }
    }
}

fn bracket_host(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// Prepend a `Via` for `via` with a fresh branch to an outgoing request; returns the branch.
/// Use it before [`crate::transaction::TransactionLayer::send_request`].
pub fn add_via(req: &mut Request, via: &ViaSpec) -> String {
    let branch = new_branch();
    let mut headers: Vec<Header> = std::mem::take(&mut req.headers).into();
    headers.insert(0, Header::Via(rsip::headers::Via::new(via.value(&branch))));
    req.headers = headers.into();
    branch
}

/// Build an `rsip::Header` from a name and value, using the typed variant `rsip` knows for
/// that name (so `rsip`'s own accessors find it) and `Header::Other` otherwise.
/// CR and LF in the value are replaced by spaces to prevent header injection.
pub fn make_header(name: &str, value: &str) -> Header {
    use rsip::headers as h;
    let name = expand_compact_name(name).unwrap_or(name);
    let value: String = value
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect();
    macro_rules! known {
        ($($n:literal => $v:ident),* $(,)?) => {
            $( if name.eq_ignore_ascii_case($n) { return Header::$v(h::$v::new(value)); } )*
        };
    }
    known!(
        "Accept" => Accept, "Accept-Encoding" => AcceptEncoding,
        "Accept-Language" => AcceptLanguage, "Alert-Info" => AlertInfo, "Allow" => Allow,
        "Authentication-Info" => AuthenticationInfo, "Authorization" => Authorization,
        "CSeq" => CSeq, "Call-ID" => CallId, "Call-Info" => CallInfo, "Contact" => Contact,
        "Content-Disposition" => ContentDisposition, "Content-Encoding" => ContentEncoding,
        "Content-Language" => ContentLanguage, "Content-Length" => ContentLength,
        "Content-Type" => ContentType, "Date" => Date, "Error-Info" => ErrorInfo,
        "Event" => Event, "Expires" => Expires, "From" => From, "In-Reply-To" => InReplyTo,
        "Max-Forwards" => MaxForwards, "MIME-Version" => MimeVersion,
        "Min-Expires" => MinExpires, "Organization" => Organization, "Priority" => Priority,
        "Proxy-Authenticate" => ProxyAuthenticate, "Proxy-Authorization" => ProxyAuthorization,
        "Proxy-Require" => ProxyRequire, "Record-Route" => RecordRoute, "Reply-To" => ReplyTo,
        "Require" => Require, "Retry-After" => RetryAfter, "Route" => Route,
        "Server" => Server, "Subject" => Subject, "Subscription-State" => SubscriptionState,
        "Supported" => Supported, "Timestamp" => Timestamp, "To" => To,
        "Unsupported" => Unsupported, "User-Agent" => UserAgent, "Via" => Via,
        "Warning" => Warning, "WWW-Authenticate" => WwwAuthenticate,
    );
    Header::Other(name.to_string(), value)
}

/// Canonical name and value of any `rsip` header.
pub fn header_parts(h: &Header) -> (&str, &str) {
    macro_rules! parts {
        ($($v:ident => $n:literal),* $(,)?) => {
            match h {
                $( Header::$v(x) => ($n, x.value()), )*
                Header::Other(n, v) => (n.as_str(), v.as_str()),
            }
        };
    }
    parts!(
        Accept => "Accept", AcceptEncoding => "Accept-Encoding",
        AcceptLanguage => "Accept-Language", AlertInfo => "Alert-Info", Allow => "Allow",
        AuthenticationInfo => "Authentication-Info", Authorization => "Authorization",
        CSeq => "CSeq", CallId => "Call-ID", CallInfo => "Call-Info", Contact => "Contact",
        ContentDisposition => "Content-Disposition", ContentEncoding => "Content-Encoding",
        ContentLanguage => "Content-Language", ContentLength => "Content-Length",
        ContentType => "Content-Type", Date => "Date", ErrorInfo => "Error-Info",
        Event => "Event", Expires => "Expires", From => "From", InReplyTo => "In-Reply-To",
        MaxForwards => "Max-Forwards", MimeVersion => "MIME-Version",
        MinExpires => "Min-Expires", Organization => "Organization", Priority => "Priority",
        ProxyAuthenticate => "Proxy-Authenticate", ProxyAuthorization => "Proxy-Authorization",
        ProxyRequire => "Proxy-Require", RecordRoute => "Record-Route", ReplyTo => "Reply-To",
        Require => "Require", RetryAfter => "Retry-After", Route => "Route",
        Server => "Server", Subject => "Subject", SubscriptionState => "Subscription-State",
        Supported => "Supported", Timestamp => "Timestamp", To => "To",
        Unsupported => "Unsupported", UserAgent => "User-Agent", Via => "Via",
        Warning => "Warning", WwwAuthenticate => "WWW-Authenticate",
    )
}

// ---------------------------------------------------------------------------------------------
// Serialization
// ---------------------------------------------------------------------------------------------

/// Serialize a message for the wire: standard reason phrase, headers in order with
/// `Content-Length` set to the real body length (replacing any stale value, appended if
/// absent), CR/LF inside header values neutralised.
pub fn to_bytes(msg: &SipMessage) -> Vec<u8> {
    match msg {
        SipMessage::Request(r) => request_to_bytes(r),
        SipMessage::Response(r) => response_to_bytes(r),
    }
}

/// [`to_bytes`] for a request.
pub fn request_to_bytes(req: &Request) -> Vec<u8> {
    let start = format!("{} {} SIP/2.0", req.method, req.uri);
    encode(&start, &req.headers, &req.body)
}

/// [`to_bytes`] for a response.
pub fn response_to_bytes(resp: &Response) -> Vec<u8> {
    let code = resp.status_code.code();
    let reason = match &resp.status_code {
        StatusCode::Other(_, r) if !r.is_empty() && r != "Other" => r.as_str(),
        _ => reason_phrase(code),
    };
    let start = format!("SIP/2.0 {code} {reason}");
    encode(&start, &resp.headers, &resp.body)
}

fn encode(start: &str, headers: &rsip::Headers, body: &[u8]) -> Vec<u8> {
    let mut out = String::with_capacity(512);
    out.push_str(start);
    out.push_str("\r\n");
    let mut wrote_length = false;
    for h in headers.iter() {
        let (name, value) = header_parts(h);
        if name.eq_ignore_ascii_case("Content-Length") {
            if !wrote_length {
                let _ = write!(out, "Content-Length: {}\r\n", body.len());
                wrote_length = true;
            }
            continue;
        }
        out.push_str(name);
        out.push_str(": ");
        for c in value.chars() {
            out.push(if c == '\r' || c == '\n' { ' ' } else { c });
        }
        out.push_str("\r\n");
    }
    if !wrote_length {
        let _ = write!(out, "Content-Length: {}\r\n", body.len());
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

// ---------------------------------------------------------------------------------------------
// Accessors
// ---------------------------------------------------------------------------------------------

/// All values of the headers called `name` (case-insensitive; compact forms accepted), in
/// order. Use it for custom `X-…` headers.
pub fn header_values(msg: &impl HasHeaders, name: &str) -> Vec<String> {
    let name = expand_compact_name(name).unwrap_or(name);
    msg.headers()
        .iter()
        .map(header_parts)
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.to_string())
        .collect()
}

/// First value of the header called `name`, if any.
pub fn header_value(msg: &impl HasHeaders, name: &str) -> Option<String> {
    let name = expand_compact_name(name).unwrap_or(name);
    msg.headers()
        .iter()
        .map(header_parts)
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.to_string())
}

/// `Call-ID` value.
pub fn call_id(msg: &impl HasHeaders) -> Option<String> {
    msg.headers().iter().find_map(|h| match h {
        Header::CallId(c) => Some(c.value().trim().to_string()),
        _ => None,
    })
}

fn parse_cseq(value: &str) -> Option<(u32, Method)> {
    let mut it = value.split_whitespace();
    let seq = it.next()?.parse::<u32>().ok()?;
    let method = it.next()?.parse::<Method>().ok()?;
    if it.next().is_some() {
        return None;
    }
    Some((seq, method))
}

/// `CSeq` number and method.
pub fn cseq(msg: &impl HasHeaders) -> Option<(u32, Method)> {
    msg.headers().iter().find_map(|h| match h {
        Header::CSeq(c) => parse_cseq(c.value()),
        _ => None,
    })
}

/// Tag of the `From` header.
pub fn from_tag(msg: &impl HasHeaders) -> Option<String> {
    msg.headers().iter().find_map(|h| match h {
        Header::From(f) => name_addr_param(f.value(), "tag").flatten(),
        _ => None,
    })
}

/// Tag of the `To` header.
pub fn to_tag(msg: &impl HasHeaders) -> Option<String> {
    msg.headers().iter().find_map(|h| match h {
        Header::To(t) => name_addr_param(t.value(), "tag").flatten(),
        _ => None,
    })
}

/// Every `Via` value in order (rsip's accessor only returns the first), with comma-joined
/// values split.
pub fn all_via_values(msg: &impl HasHeaders) -> Vec<String> {
    msg.headers()
        .iter()
        .filter_map(|h| match h {
            Header::Via(v) => Some(split_header_list(v.value())),
            _ => None,
        })
        .flatten()
        .collect()
}

/// `Content-Type` value.
pub fn content_type(msg: &impl HasHeaders) -> Option<String> {
    msg.headers().iter().find_map(|h| match h {
        Header::ContentType(c) => Some(c.value().trim().to_string()),
        _ => None,
    })
}

/// Message body.
pub fn body(msg: &SipMessage) -> &[u8] {
    msg.body()
}

/// The parsed top `Via`.
pub fn top_via(msg: &impl HasHeaders) -> Option<ViaInfo> {
    let first = all_via_values(msg).into_iter().next()?;
    ViaParts::parse(&first).map(|p| p.info())
}

/// Parse one `Via` value (not a comma-joined list).
pub fn parse_via(value: &str) -> Option<ViaInfo> {
    ViaParts::parse(value).map(|p| p.info())
}

/// What the transaction layer and the response routing need from a `Via` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViaInfo {
    /// Transport of the sent-protocol (`UDP`, `TCP`, `TLS`, …).
    pub transport: rsip::Transport,
    /// Host of sent-by (IPv6 without brackets).
    pub sent_by_host: String,
    /// Port of sent-by, if written.
    pub sent_by_port: Option<u16>,
    /// `branch` parameter.
    pub branch: Option<String>,
    /// `received` parameter, when it is a valid IP address.
    pub received: Option<IpAddr>,
    /// RFC 3581 `rport`: `None` absent, `Some(None)` present without value, `Some(Some(p))`.
    pub rport: Option<Option<u16>>,
}

/// Round-trippable `Via` value: sent-protocol, sent-by and the parameter list.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ViaParts {
    transport: rsip::Transport,
    transport_text: String,
    host: String,
    port: Option<u16>,
    params: Vec<(String, Option<String>)>,
}

impl ViaParts {
    fn parse(value: &str) -> Option<Self> {
        let mut pieces = split_params(value).into_iter();
        let head = pieces.next()?;
        let mut tokens: Vec<&str> = head.split_whitespace().collect();
        let sent_by = tokens.pop()?;
        let protocol: String = tokens.concat();
        let mut proto = protocol.split('/');
        let (name, version, transport_text) = (proto.next()?, proto.next()?, proto.next()?);
        if !name.eq_ignore_ascii_case("SIP") || version != "2.0" || proto.next().is_some() {
            return None;
        }
        let transport: rsip::Transport = transport_text.parse().ok()?;
        let (host, port) = split_host_port(sent_by)?;
        let mut params = Vec::new();
        for p in pieces {
            let p = p.trim();
            if p.is_empty() {
                continue;
            }
            match p.split_once('=') {
                Some((n, v)) => params.push((n.trim().to_string(), Some(v.trim().to_string()))),
                None => params.push((p.to_string(), None)),
            }
        }
        Some(ViaParts {
            transport,
            transport_text: transport_text.to_ascii_uppercase(),
            host,
            port,
            params,
        })
    }

    fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    fn set_param(&mut self, name: &str, value: Option<String>) {
        match self
            .params
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(slot) => slot.1 = value,
            None => self.params.push((name.to_string(), value)),
        }
    }

    fn info(&self) -> ViaInfo {
        ViaInfo {
            transport: self.transport,
            sent_by_host: self.host.clone(),
            sent_by_port: self.port,
            branch: self.param("branch").flatten().map(str::to_string),
            received: self
                .param("received")
                .flatten()
                .and_then(|r| r.trim_matches(|c| c == '[' || c == ']').parse().ok()),
            rport: self
                .param("rport")
                .map(|v| v.and_then(|p| p.parse::<u16>().ok())),
        }
    }

    fn to_value(&self) -> String {
        let mut out = format!(
            "SIP/2.0/{} {}",
            self.transport_text,
            bracket_host(&self.host)
        );
        if let Some(p) = self.port {
            let _ = write!(out, ":{p}");
        }
        for (n, v) in &self.params {
            match v {
                Some(v) => {
                    let _ = write!(out, ";{n}={v}");
                }
                None => {
                    let _ = write!(out, ";{n}");
                }
            }
        }
        out
    }
}

/// Split on `;` outside quoted strings.
fn split_params(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quotes = false;
            }
            continue;
        }
        match c {
            '"' => in_quotes = true,
            ';' => {
                out.push(value.get(start..i).unwrap_or_default());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(value.get(start..).unwrap_or_default());
    out
}

fn split_host_port(s: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return None,
        };
        (h, port)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'))
    {
        return None;
    }
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    Some((host.to_string(), port))
}

/// A parsed `name-addr` / `addr-spec` header value (`From`, `To`, `Contact`, `Route`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// Display name, unquoted.
    pub display: Option<String>,
    /// The URI text (without angle brackets).
    pub uri: String,
    /// Header parameters (after `>` or, without brackets, after the URI).
    pub params: Vec<(String, Option<String>)>,
}

impl NameAddr {
    /// Parse a single `name-addr` or `addr-spec` with header parameters.
    pub fn parse(value: &str) -> Option<NameAddr> {
        let value = value.trim();
        // Find '<' outside quotes.
        let mut in_quotes = false;
        let mut escaped = false;
        let mut lt = None;
        for (i, c) in value.char_indices() {
            if in_quotes {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    in_quotes = false;
                }
                continue;
            }
            if c == '"' {
                in_quotes = true;
            } else if c == '<' {
                lt = Some(i);
                break;
            }
        }
        let (display, uri, rest) = match lt {
            Some(i) => {
                let display = value.get(..i).unwrap_or_default().trim();
                let after = value.get(i + 1..)?;
                let (uri, rest) = after.split_once('>')?;
                let display = display
                    .strip_prefix('"')
                    .and_then(|d| d.strip_suffix('"'))
                    .map(|d| d.replace("\\\"", "\"").replace("\\\\", "\\"))
                    .unwrap_or_else(|| display.to_string());
                (
                    (!display.is_empty()).then_some(display),
                    uri.trim().to_string(),
                    rest,
                )
            }
            None => match value.split_once(';') {
                Some((u, r)) => (None, u.trim().to_string(), r),
                None => (None, value.to_string(), ""),
            },
        };
        if uri.is_empty() {
            return None;
        }
        let params = split_params(rest)
            .into_iter()
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((n, v)) => (n.trim().to_string(), Some(v.trim().to_string())),
                None => (p.to_string(), None),
            })
            .collect();
        Some(NameAddr {
            display,
            uri,
            params,
        })
    }

    /// The URI's user part (`alice.smith` of `sip:alice.smith@example.com`,
    /// without a password or user parameters); `None` without one. Read
    /// from the text: rsip 0.4 takes a user containing a dot for a host name.
    pub fn user(&self) -> Option<&str> {
        let (user, _) = self.after_scheme().rsplit_once('@')?;
        user.split([':', ';']).next()
    }

    /// [`NameAddr::user`], else the URI's host (a caller without a user).
    pub fn user_or_host(&self) -> &str {
        self.user().unwrap_or_else(|| {
            let rest = self.after_scheme();
            rest.split([';', '?']).next().unwrap_or(rest)
        })
    }

    /// The URI without its `sip:`/`sips:`/`tel:` scheme.
    fn after_scheme(&self) -> &str {
        let uri = self.uri.trim();
        ["sips:", "sip:", "tel:"]
            .iter()
            .find_map(|scheme| {
                uri.get(..scheme.len())
                    .filter(|p| p.eq_ignore_ascii_case(scheme))
                    .and_then(|_| uri.get(scheme.len()..))
            })
            .unwrap_or(uri)
    }

    /// The URI parsed by `rsip`.
    pub fn rsip_uri(&self) -> Option<rsip::Uri> {
        rsip::Uri::try_from(self.uri.as_str()).ok()
    }

    /// Value of a header parameter: `None` absent, `Some(None)` flag, `Some(Some(v))`.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }
}

/// A header parameter of a `name-addr` value, e.g. the `tag` of `From`/`To`.
pub fn name_addr_param(value: &str, name: &str) -> Option<Option<String>> {
    NameAddr::parse(value)?
        .param(name)
        .map(|v| v.map(str::to_string))
}

/// URI of the first `Contact` header.
pub fn contact_uri(msg: &impl HasHeaders) -> Option<rsip::Uri> {
    let v = header_value(msg, "Contact")?;
    let first = split_header_list(&v).into_iter().next()?;
    NameAddr::parse(&first)?.rsip_uri()
}

/// All values of a list header (`Route`, `Record-Route`, `Contact`, …) split into single
/// entries, in order.
pub fn list_values(msg: &impl HasHeaders, name: &str) -> Vec<String> {
    header_values(msg, name)
        .iter()
        .flat_map(|v| split_header_list(v))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// received / rport
// ---------------------------------------------------------------------------------------------

fn canonical_ip(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// Stamp the top `Via` of an incoming request (RFC 3261 §18.2.1, RFC 3581 §4): add
/// `received=<source IP>` when sent-by is a name or a different IP, and fill a value-less
/// `rport` with the source port (which also forces `received`). This is what lets responses
/// reach peers behind NAT. The transaction layer calls it for every request it receives.
pub fn stamp_received(req: &mut Request, source: SocketAddr) {
    let ip = canonical_ip(source.ip());
    for h in req.headers.iter_mut() {
        let Header::Via(via) = h else { continue };
        let mut list = split_header_list(via.value());
        let Some(first) = list.first_mut() else {
            return;
        };
        let Some(mut parts) = ViaParts::parse(first) else {
            return;
        };
        let rport_empty = matches!(parts.param("rport"), Some(None));
        let host_ip = parts.host.parse::<IpAddr>().ok().map(canonical_ip);
        if rport_empty {
            parts.set_param("rport", Some(source.port().to_string()));
        }
        if rport_empty || host_ip != Some(ip) {
            parts.set_param("received", Some(ip.to_string()));
        }
        *first = parts.to_value();
        via.replace(list.join(", "));
        return;
    }
}

/// Where to send a response over an unreliable transport (RFC 3261 §18.2.2, RFC 3581 §4).
///
/// * `rport=<p>` → received IP (or the source IP) and port `p`;
/// * `rport` without value (not stamped) → the source address;
/// * `received=<ip>` → that IP, sent-by port or 5060;
/// * sent-by IP literal → that IP, sent-by port or 5060;
/// * sent-by host name → the source IP (no DNS in a sans-IO core), sent-by port or 5060.
///
/// `maddr` is ignored. On reliable transports, answer on the connection the request came in
/// on instead.
pub fn response_destination(top_via: &ViaInfo, source: SocketAddr) -> SocketAddr {
    let port = top_via.sent_by_port.unwrap_or(5060);
    match top_via.rport {
        Some(Some(p)) => return SocketAddr::new(top_via.received.unwrap_or(source.ip()), p),
        Some(None) => return source,
        None => {}
    }
    if let Some(ip) = top_via.received {
        return SocketAddr::new(ip, port);
    }
    match top_via
        .sent_by_host
        .trim_matches(|c| c == '[' || c == ']')
        .parse::<IpAddr>()
    {
        Ok(ip) => SocketAddr::new(ip, port),
        Err(_) => SocketAddr::new(source.ip(), port),
    }
}

#[cfg(test)]
mod tests;
