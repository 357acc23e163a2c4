//! ICE-lite STUN (RFC 8445 §2.5, RFC 5389/8489): what a lite agent needs, which is
//! answering binding requests. Demultiplexing of one UDP port follows RFC 7983.
//!
//! Requests are authenticated with the short-term credentials of the SDP exchange:
//! `USERNAME` is `"<our ufrag>:<their ufrag>"` and `MESSAGE-INTEGRITY` is HMAC-SHA1
//! keyed with our `ice-pwd`. Nothing here trusts a length it has not checked.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use std::net::SocketAddr;

/// The fixed magic cookie (RFC 5389 §6).
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
const HEADER_LEN: usize = 20;
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const BINDING_ERROR: u16 = 0x0111;

pub(crate) const ATTR_USERNAME: u16 = 0x0006;
pub(crate) const ATTR_MESSAGE_INTEGRITY: u16 = 0x0008;
pub(crate) const ATTR_ERROR_CODE: u16 = 0x0009;
pub(crate) const ATTR_XOR_MAPPED_ADDRESS: u16 = 0x0020;
pub(crate) const ATTR_PRIORITY: u16 = 0x0024;
pub(crate) const ATTR_USE_CANDIDATE: u16 = 0x0025;
pub(crate) const ATTR_FINGERPRINT: u16 = 0x8028;
pub(crate) const ATTR_ICE_CONTROLLING: u16 = 0x802A;
const FINGERPRINT_XOR: u32 = 0x5354_554E;

/// Why a datagram is not a binding request we answer with success.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StunError {
    /// Not a STUN message (RFC 7983 first byte, magic cookie, length).
    #[error("not a STUN message")]
    NotStun,
    /// A STUN message of another method or class (the type is given).
    #[error("not a binding request (type {0:#06x})")]
    NotBindingRequest(u16),
    /// An attribute overruns the message, or attributes follow `FINGERPRINT`.
    #[error("malformed STUN message: {0}")]
    Malformed(&'static str),
    /// No `USERNAME` attribute (answer 400).
    #[error("no USERNAME")]
    MissingUsername,
    /// No `MESSAGE-INTEGRITY` attribute (answer 400).
    #[error("no MESSAGE-INTEGRITY")]
    MissingIntegrity,
    /// `USERNAME` is not `"<our ufrag>:<their ufrag>"` (answer 401).
    #[error("USERNAME does not match our ufrag")]
    WrongUsername,
    /// `MESSAGE-INTEGRITY` does not verify with our password (answer 401).
    #[error("MESSAGE-INTEGRITY does not verify")]
    BadIntegrity,
    /// `FINGERPRINT` is present and wrong (discard silently).
    #[error("FINGERPRINT does not match")]
    BadFingerprint,
}

impl StunError {
    /// The error response code to answer with (RFC 5389 §10.1.2), or `None` when the
    /// request must be dropped without an answer.
    pub fn error_code(&self) -> Option<u16> {
        match self {
            StunError::MissingUsername | StunError::MissingIntegrity => Some(400),
            StunError::WrongUsername | StunError::BadIntegrity => Some(401),
            StunError::NotStun
            | StunError::NotBindingRequest(_)
            | StunError::Malformed(_)
            | StunError::BadFingerprint => None,
        }
    }
}

/// Whether a datagram is STUN: first byte 0..=3 (RFC 7983 §7), the magic cookie and
/// at least a header.
pub fn is_stun(pkt: &[u8]) -> bool {
    pkt.len() >= HEADER_LEN && pkt[0] <= 3 && pkt[4..8] == MAGIC_COOKIE.to_be_bytes()
}

/// Whether a datagram is DTLS: first byte 20..=63 (RFC 7983 §7).
pub fn is_dtls(pkt: &[u8]) -> bool {
    matches!(pkt.first(), Some(20..=63))
}

/// The transaction ID of a STUN message, to answer even a request that failed checks.
pub fn transaction_id(pkt: &[u8]) -> Option<[u8; 12]> {
    if !is_stun(pkt) {
        return None;
    }
    pkt[8..20].try_into().ok()
}

/// An authenticated binding request (a connectivity check).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindingRequest {
    /// To echo in the response.
    pub transaction_id: [u8; 12],
    /// `USE-CANDIDATE`: the controlling agent nominates this pair.
    pub use_candidate: bool,
    /// `ICE-CONTROLLING` is present (a browser facing a lite agent always controls).
    pub controlling: bool,
    /// `PRIORITY` of the peer-reflexive candidate the peer would learn.
    pub priority: Option<u32>,
}

/// One attribute: its type, its value (without padding) and its offset in the message.
struct Attr<'a> {
    typ: u16,
    value: &'a [u8],
    offset: usize,
}

/// The attributes of a STUN message whose header was checked; `Err` on overruns.
fn attributes(pkt: &[u8]) -> Result<Vec<Attr<'_>>, StunError> {
    let mut out = Vec::new();
    let mut pos = HEADER_LEN;
    while pos < pkt.len() {
        let head = pkt
            .get(pos..pos + 4)
            .ok_or(StunError::Malformed("truncated attribute header"))?;
        let typ = u16::from_be_bytes([head[0], head[1]]);
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let value = pkt
            .get(pos + 4..pos + 4 + len)
            .ok_or(StunError::Malformed("attribute overruns the message"))?;
        out.push(Attr {
            typ,
            value,
            offset: pos,
        });
        pos += 4 + len.next_multiple_of(4);
    }
    Ok(out)
}

/// Checks the header: STUN, the declared length equals the datagram's, 4-aligned.
fn check_header(pkt: &[u8]) -> Result<u16, StunError> {
    if !is_stun(pkt) {
        return Err(StunError::NotStun);
    }
    let len = usize::from(u16::from_be_bytes([pkt[2], pkt[3]]));
    if len % 4 != 0 || HEADER_LEN + len != pkt.len() {
        return Err(StunError::NotStun);
    }
    Ok(u16::from_be_bytes([pkt[0], pkt[1]]))
}

/// CRC-32 (IEEE 802.3, reflected, as in zlib) for `FINGERPRINT`.
pub(crate) fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    let mut c = !0u32;
    for &b in data {
        c = TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

fn hmac_sha1(key: &[u8], parts: &[&[u8]]) -> [u8; 20] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha1>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return [0; 20],
    };
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Verifies `MESSAGE-INTEGRITY` at `offset` (RFC 5389 §15.4): the HMAC covers the
/// message up to the attribute, with the header's length as if it ended right after.
fn integrity_ok(pkt: &[u8], offset: usize, mac: &[u8], key: &[u8]) -> bool {
    let Ok(len) = u16::try_from(offset + 24 - HEADER_LEN) else {
        return false;
    };
    let expected = hmac_sha1(key, &[&pkt[..2], &len.to_be_bytes(), &pkt[4..offset]]);
    mac.len() == 20 && expected[..] == mac[..]
}

/// Verifies `FINGERPRINT` at `offset`: CRC-32 of everything before it XOR "STUN".
fn fingerprint_ok(pkt: &[u8], offset: usize, value: &[u8]) -> bool {
    value.len() == 4 && (crc32(&pkt[..offset]) ^ FINGERPRINT_XOR).to_be_bytes() == value
}

/// Whether `username` is what `expected` asks for: equal, or, when `expected` ends
/// in `:` (their ufrag unknown), anything starting with it.
fn username_ok(username: &[u8], expected: &str) -> bool {
    if expected.ends_with(':') {
        username.len() > expected.len() && username.starts_with(expected.as_bytes())
    } else {
        username == expected.as_bytes()
    }
}

/// Parses and authenticates a binding request. `expected_username` is
/// `"<our ufrag>:<their ufrag>"`, or `"<our ufrag>:"` to accept any remote ufrag;
/// `local_pwd` is our `ice-pwd`. `FINGERPRINT` is checked when present.
pub fn parse_binding_request(
    pkt: &[u8],
    expected_username: &str,
    local_pwd: &str,
) -> Result<BindingRequest, StunError> {
    let typ = check_header(pkt)?;
    if typ != BINDING_REQUEST {
        return Err(StunError::NotBindingRequest(typ));
    }
    let attrs = attributes(pkt)?;
    let mut req = BindingRequest {
        transaction_id: transaction_id(pkt).ok_or(StunError::NotStun)?,
        use_candidate: false,
        controlling: false,
        priority: None,
    };
    let mut username = None;
    let mut integrity = None;
    for (i, a) in attrs.iter().enumerate() {
        if a.typ == ATTR_FINGERPRINT {
            if i + 1 != attrs.len() {
                return Err(StunError::Malformed("attributes after FINGERPRINT"));
            }
            if !fingerprint_ok(pkt, a.offset, a.value) {
                return Err(StunError::BadFingerprint);
            }
            continue;
        }
        if integrity.is_some() {
            continue; // RFC 5389 §15.4: ignore everything after MESSAGE-INTEGRITY.
        }
        match a.typ {
            ATTR_USERNAME => username = Some(a.value),
            ATTR_MESSAGE_INTEGRITY => integrity = Some((a.offset, a.value)),
            ATTR_USE_CANDIDATE => req.use_candidate = true,
            ATTR_ICE_CONTROLLING => req.controlling = true,
            ATTR_PRIORITY => {
                let v: [u8; 4] = a
                    .value
                    .try_into()
                    .map_err(|_| StunError::Malformed("PRIORITY is not 4 bytes"))?;
                req.priority = Some(u32::from_be_bytes(v));
            }
            _ => {}
        }
    }
    let username = username.ok_or(StunError::MissingUsername)?;
    let (offset, mac) = integrity.ok_or(StunError::MissingIntegrity)?;
    if !username_ok(username, expected_username) {
        return Err(StunError::WrongUsername);
    }
    if !integrity_ok(pkt, offset, mac, local_pwd.as_bytes()) {
        return Err(StunError::BadIntegrity);
    }
    Ok(req)
}

/// Builds STUN messages attribute by attribute, keeping the header's length current.
pub(crate) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn new(typ: u16, transaction_id: [u8; 12]) -> Writer {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&typ.to_be_bytes());
        buf.extend_from_slice(&[0, 0]);
        buf.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        buf.extend_from_slice(&transaction_id);
        Writer { buf }
    }

    fn set_len(&mut self, body_len: usize) {
        let len = u16::try_from(body_len).unwrap_or(u16::MAX).to_be_bytes();
        self.buf[2..4].copy_from_slice(&len);
    }

    /// Appends an attribute, zero-padded to 4 bytes.
    pub(crate) fn attr(&mut self, typ: u16, value: &[u8]) -> &mut Writer {
        let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&typ.to_be_bytes());
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(&value[..usize::from(len)]);
        let padded = self.buf.len().next_multiple_of(4);
        self.buf.resize(padded, 0);
        self.set_len(self.buf.len() - HEADER_LEN);
        self
    }

    /// Appends `XOR-MAPPED-ADDRESS` (RFC 5389 §15.2).
    pub(crate) fn xor_mapped_address(&mut self, addr: SocketAddr) -> &mut Writer {
        let mut v = Vec::with_capacity(20);
        v.push(0);
        let port = addr.port() ^ (MAGIC_COOKIE >> 16) as u16;
        let mut key = [0u8; 16];
        key[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        key[4..].copy_from_slice(&self.buf[8..20]);
        match addr {
            SocketAddr::V4(a) => {
                v.push(0x01);
                v.extend_from_slice(&port.to_be_bytes());
                v.extend(a.ip().octets().iter().zip(key).map(|(b, k)| b ^ k));
            }
            SocketAddr::V6(a) => {
                v.push(0x02);
                v.extend_from_slice(&port.to_be_bytes());
                v.extend(a.ip().octets().iter().zip(key).map(|(b, k)| b ^ k));
            }
        }
        self.attr(ATTR_XOR_MAPPED_ADDRESS, &v)
    }

    /// Appends `MESSAGE-INTEGRITY` keyed with `key`.
    pub(crate) fn integrity(&mut self, key: &[u8]) -> &mut Writer {
        self.set_len(self.buf.len() + 24 - HEADER_LEN);
        let mac = hmac_sha1(key, &[&self.buf]);
        self.attr(ATTR_MESSAGE_INTEGRITY, &mac)
    }

    /// Appends `FINGERPRINT`; the last attribute.
    pub(crate) fn fingerprint(&mut self) -> Vec<u8> {
        self.set_len(self.buf.len() + 8 - HEADER_LEN);
        let crc = crc32(&self.buf) ^ FINGERPRINT_XOR;
        self.attr(ATTR_FINGERPRINT, &crc.to_be_bytes());
        std::mem::take(&mut self.buf)
    }

    /// The message as written so far.
    #[cfg(test)]
    pub(crate) fn bytes_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }
}

/// A binding success response: `XOR-MAPPED-ADDRESS` (the request's source),
/// `MESSAGE-INTEGRITY` keyed with our `ice-pwd`, `FINGERPRINT`.
pub fn binding_success(transaction_id: [u8; 12], mapped: SocketAddr, local_pwd: &str) -> Vec<u8> {
    Writer::new(BINDING_SUCCESS, transaction_id)
        .xor_mapped_address(mapped)
        .integrity(local_pwd.as_bytes())
        .fingerprint()
}

/// A binding error response with `ERROR-CODE` (400, 401, 487, …) and `FINGERPRINT`;
/// no `MESSAGE-INTEGRITY`, since the request could not be authenticated.
pub fn binding_error(transaction_id: [u8; 12], code: u16) -> Vec<u8> {
    let reason = match code {
        400 => "Bad Request",
        401 => "Unauthorized",
        420 => "Unknown Attribute",
        487 => "Role Conflict",
        500 => "Server Error",
        _ => "Error",
    };
    let code = code.clamp(300, 699);
    let mut v = vec![0, 0, (code / 100) as u8, (code % 100) as u8];
    v.extend_from_slice(reason.as_bytes());
    Writer::new(BINDING_ERROR, transaction_id)
        .attr(ATTR_ERROR_CODE, &v)
        .fingerprint()
}

#[cfg(test)]
pub(crate) mod tests;
