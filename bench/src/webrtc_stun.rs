//! The browser's side of ICE against an ICE-lite server: STUN binding
//! requests as Chrome sends them (RFC 8445 §7.1.1: USERNAME, PRIORITY,
//! ICE-CONTROLLING, USE-CANDIDATE when nominating, MESSAGE-INTEGRITY keyed
//! with the server's `ice-pwd`, FINGERPRINT) and a check of the success
//! response (transaction ID, MESSAGE-INTEGRITY, FINGERPRINT).

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const ATTR_USERNAME: u16 = 0x0006;
const ATTR_MESSAGE_INTEGRITY: u16 = 0x0008;
const ATTR_PRIORITY: u16 = 0x0024;
const ATTR_USE_CANDIDATE: u16 = 0x0025;
const ATTR_FINGERPRINT: u16 = 0x8028;
const ATTR_ICE_CONTROLLING: u16 = 0x802A;
const FINGERPRINT_XOR: u32 = 0x5354_554E;

/// Chrome's priority for a host candidate (type preference 126).
pub const HOST_PRIORITY: u32 = 2_122_260_223;

fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

fn hmac_sha1(key: &[u8], data: &[u8]) -> [u8; 20] {
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(key) else {
        return [0; 20]; // HMAC takes keys of any length.
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn set_len(buf: &mut [u8], body_len: usize) {
    let len = u16::try_from(body_len).unwrap_or(u16::MAX).to_be_bytes();
    buf[2..4].copy_from_slice(&len);
}

fn attr(buf: &mut Vec<u8>, typ: u16, value: &[u8]) {
    buf.extend_from_slice(&typ.to_be_bytes());
    buf.extend_from_slice(&(value.len() as u16).to_be_bytes());
    buf.extend_from_slice(value);
    buf.resize(buf.len().next_multiple_of(4), 0);
    let body = buf.len() - 20;
    set_len(buf, body);
}

/// A connectivity check: `username` is `"<server ufrag>:<our ufrag>"`,
/// `pwd` the server's `ice-pwd`.
pub fn binding_request(
    txid: [u8; 12],
    username: &str,
    pwd: &str,
    tiebreaker: u64,
    use_candidate: bool,
) -> Vec<u8> {
    let mut b = Vec::with_capacity(128);
    b.extend_from_slice(&BINDING_REQUEST.to_be_bytes());
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(&MAGIC_COOKIE);
    b.extend_from_slice(&txid);
    attr(&mut b, ATTR_USERNAME, username.as_bytes());
    attr(&mut b, ATTR_ICE_CONTROLLING, &tiebreaker.to_be_bytes());
    if use_candidate {
        attr(&mut b, ATTR_USE_CANDIDATE, &[]);
    }
    // Peer-reflexive priority (type preference 110), as RFC 8445 §7.1.1 asks.
    attr(
        &mut b,
        ATTR_PRIORITY,
        &((110u32 << 24) | (HOST_PRIORITY & 0x00FF_FFFF)).to_be_bytes(),
    );
    let body = b.len() + 24 - 20;
    set_len(&mut b, body);
    let mac = hmac_sha1(pwd.as_bytes(), &b);
    attr(&mut b, ATTR_MESSAGE_INTEGRITY, &mac);
    let body = b.len() + 8 - 20;
    set_len(&mut b, body);
    let crc = crc32(&b) ^ FINGERPRINT_XOR;
    attr(&mut b, ATTR_FINGERPRINT, &crc.to_be_bytes());
    b
}

/// What a datagram that looks like STUN is.
#[derive(Debug, PartialEq, Eq)]
pub enum Response {
    /// A binding success for `txid` whose MESSAGE-INTEGRITY and FINGERPRINT verify.
    Success,
    /// A binding error response (the code).
    Error(u16),
    /// Anything else: another transaction, a bad integrity, not STUN.
    Other(&'static str),
}

/// Checks a response to the request `txid`, integrity keyed with `pwd`.
pub fn check_response(pkt: &[u8], txid: &[u8; 12], pwd: &str) -> Response {
    if pkt.len() < 20 || pkt[4..8] != MAGIC_COOKIE || pkt[8..20] != txid[..] {
        return Response::Other("not a response to our check");
    }
    let typ = u16::from_be_bytes([pkt[0], pkt[1]]);
    let declared = usize::from(u16::from_be_bytes([pkt[2], pkt[3]]));
    if declared + 20 != pkt.len() {
        return Response::Other("length mismatch");
    }
    let mut pos = 20;
    let mut integrity_ok = false;
    let mut fingerprint_ok = false;
    let mut error = None;
    while pos + 4 <= pkt.len() {
        let t = u16::from_be_bytes([pkt[pos], pkt[pos + 1]]);
        let len = usize::from(u16::from_be_bytes([pkt[pos + 2], pkt[pos + 3]]));
        let Some(value) = pkt.get(pos + 4..pos + 4 + len) else {
            return Response::Other("attribute overruns the message");
        };
        match t {
            ATTR_MESSAGE_INTEGRITY => {
                let mut head = pkt[..pos].to_vec();
                set_len(&mut head, pos + 24 - 20);
                integrity_ok = value == hmac_sha1(pwd.as_bytes(), &head);
            }
            ATTR_FINGERPRINT => {
                fingerprint_ok = value == (crc32(&pkt[..pos]) ^ FINGERPRINT_XOR).to_be_bytes();
            }
            0x0009 if value.len() >= 4 => {
                error = Some(u16::from(value[2]) * 100 + u16::from(value[3]));
            }
            _ => {}
        }
        pos += 4 + len.next_multiple_of(4);
    }
    match (typ, error) {
        (0x0111, Some(code)) => Response::Error(code),
        (BINDING_SUCCESS, _) if integrity_ok && fingerprint_ok => Response::Success,
        (BINDING_SUCCESS, _) => Response::Other("integrity or fingerprint does not verify"),
        _ => Response::Other("not a binding response"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ringback_accepts_our_check_and_we_accept_its_answer() {
        let txid = [7u8; 12];
        let req = binding_request(txid, "srv:brws", "server-password-0123456789", 42, true);
        let parsed =
            ringback_webrtc::parse_binding_request(&req, "srv:brws", "server-password-0123456789")
                .expect("ringback parses our check");
        assert!(parsed.use_candidate && parsed.controlling);
        let from = "127.0.0.1:5000".parse().expect("addr");
        let resp = ringback_webrtc::binding_success(txid, from, "server-password-0123456789");
        assert_eq!(
            check_response(&resp, &txid, "server-password-0123456789"),
            Response::Success
        );
        assert_ne!(
            check_response(&resp, &txid, "another-password"),
            Response::Success
        );
        let err = ringback_webrtc::binding_error(txid, 401);
        assert_eq!(check_response(&err, &txid, "x"), Response::Error(401));
    }
}
