//! RFC 5769 test vectors, round trips and hostile input.

use super::*;

const PWD: &str = "VOkJxbRl1RmTxUk/WvJxBt";
const TXID: [u8; 12] = [
    0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
];

/// RFC 5769 §2.1, "Sample Request" (software "STUN test client", username
/// "evtj:h6vY", PRIORITY, ICE-CONTROLLED, MESSAGE-INTEGRITY, FINGERPRINT).
const SAMPLE_REQUEST: [u8; 108] = [
    0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e, 0x20, 0x74, 0x65, 0x73,
    0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x00, 0x24, 0x00, 0x04, 0x6e, 0x00, 0x01, 0xff,
    0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36, 0x00, 0x06, 0x00, 0x09,
    0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76, 0x59, 0x20, 0x20, 0x20, 0x00, 0x08, 0x00, 0x14,
    0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e, 0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49,
    0xc1, 0xb5, 0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf,
];

/// RFC 5769 §2.2, "Sample IPv4 Response" (192.0.2.1:32853).
const SAMPLE_IPV4_RESPONSE: [u8; 80] = [
    0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63,
    0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43,
    0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3, 0x8c, 0x74, 0x89, 0xf9,
    0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7, 0x80, 0x28, 0x00, 0x04, 0xc0, 0x7d, 0x4c, 0x96,
];

/// RFC 5769 §2.3, "Sample IPv6 Response" ([2001:db8:1234:5678:11:2233:4455:6677]:32853).
const SAMPLE_IPV6_RESPONSE: [u8; 92] = [
    0x01, 0x01, 0x00, 0x48, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63,
    0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47, 0x01, 0x13, 0xa9, 0xfa,
    0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9, 0x00, 0x08, 0x00, 0x14,
    0xa3, 0x82, 0x95, 0x4e, 0x4b, 0xe6, 0x7b, 0xf1, 0x17, 0x84, 0xc9, 0x7c, 0x82, 0x92, 0xc2, 0x75,
    0xbf, 0xe3, 0xed, 0x41, 0x80, 0x28, 0x00, 0x04, 0xc8, 0xfb, 0x0b, 0x4c,
];

const ATTR_SOFTWARE: u16 = 0x8022;
const ATTR_ICE_CONTROLLED: u16 = 0x8029;

/// Appends an attribute whose padding is spaces, as the RFC 5769 vectors have it.
fn attr_space_padded(w: &mut Writer, typ: u16, value: &[u8]) {
    w.attr(typ, value);
    let buf = w.bytes_mut();
    let pad = (4 - value.len() % 4) % 4;
    let n = buf.len();
    buf[n - pad..].fill(b' ');
}

/// A binding request as a browser sends one (test peers use it).
pub(crate) fn request(
    txid: [u8; 12],
    username: &str,
    pwd: &str,
    use_candidate: bool,
    priority: u32,
) -> Vec<u8> {
    let mut w = Writer::new(BINDING_REQUEST, txid);
    w.attr(ATTR_USERNAME, username.as_bytes())
        .attr(ATTR_ICE_CONTROLLING, &[1, 2, 3, 4, 5, 6, 7, 8])
        .attr(ATTR_PRIORITY, &priority.to_be_bytes());
    if use_candidate {
        w.attr(ATTR_USE_CANDIDATE, &[]);
    }
    w.integrity(pwd.as_bytes()).fingerprint()
}

/// Decodes and checks a binding success response: (transaction ID, mapped address),
/// `None` unless MESSAGE-INTEGRITY (with `pwd`) and FINGERPRINT verify.
pub(crate) fn parse_success(pkt: &[u8], pwd: &str) -> Option<([u8; 12], SocketAddr)> {
    if check_header(pkt).ok()? != BINDING_SUCCESS {
        return None;
    }
    let attrs = attributes(pkt).ok()?;
    let mut mapped = None;
    let mut integrity = false;
    let mut fingerprint = false;
    let txid: [u8; 12] = pkt[8..20].try_into().ok()?;
    for a in &attrs {
        match a.typ {
            ATTR_XOR_MAPPED_ADDRESS => mapped = decode_xor(a.value, &txid),
            ATTR_MESSAGE_INTEGRITY => {
                integrity = integrity_ok(pkt, a.offset, a.value, pwd.as_bytes())
            }
            ATTR_FINGERPRINT => fingerprint = fingerprint_ok(pkt, a.offset, a.value),
            _ => {}
        }
    }
    (integrity && fingerprint).then_some((txid, mapped?))
}

fn decode_xor(v: &[u8], txid: &[u8; 12]) -> Option<SocketAddr> {
    let port = u16::from_be_bytes([*v.get(2)?, *v.get(3)?]) ^ 0x2112;
    let mut key = MAGIC_COOKIE.to_be_bytes().to_vec();
    key.extend_from_slice(txid);
    let ip: std::net::IpAddr = match v.get(1)? {
        1 => {
            let b: [u8; 4] = v.get(4..8)?.try_into().ok()?;
            let x: Vec<u8> = b.iter().zip(&key).map(|(b, k)| b ^ k).collect();
            std::net::Ipv4Addr::from(<[u8; 4]>::try_from(x).ok()?).into()
        }
        2 => {
            let b: [u8; 16] = v.get(4..20)?.try_into().ok()?;
            let x: Vec<u8> = b.iter().zip(&key).map(|(b, k)| b ^ k).collect();
            std::net::Ipv6Addr::from(<[u8; 16]>::try_from(x).ok()?).into()
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[test]
fn crc32_check_value() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(crc32(b""), 0);
}

#[test]
fn rfc5769_sample_request_parses_and_authenticates() {
    let req = parse_binding_request(&SAMPLE_REQUEST, "evtj:h6vY", PWD).unwrap();
    assert_eq!(
        req,
        BindingRequest {
            transaction_id: TXID,
            use_candidate: false,
            controlling: false,
            priority: Some(0x6e00_01ff),
        }
    );
    // Their ufrag unknown: any suffix after "<our ufrag>:".
    assert!(parse_binding_request(&SAMPLE_REQUEST, "evtj:", PWD).is_ok());
    assert_eq!(
        parse_binding_request(&SAMPLE_REQUEST, "evtj:other", PWD),
        Err(StunError::WrongUsername)
    );
    assert_eq!(
        parse_binding_request(&SAMPLE_REQUEST, "h6vY:", PWD),
        Err(StunError::WrongUsername)
    );
    assert_eq!(
        parse_binding_request(&SAMPLE_REQUEST, "evtj:h6vY", "wrong password"),
        Err(StunError::BadIntegrity)
    );
    assert_eq!(StunError::BadIntegrity.error_code(), Some(401));
}

#[test]
fn rfc5769_sample_request_is_reproduced_byte_for_byte() {
    let mut w = Writer::new(BINDING_REQUEST, TXID);
    w.attr(ATTR_SOFTWARE, b"STUN test client")
        .attr(ATTR_PRIORITY, &0x6e00_01ffu32.to_be_bytes())
        .attr(
            ATTR_ICE_CONTROLLED,
            &[0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36],
        );
    attr_space_padded(&mut w, ATTR_USERNAME, b"evtj:h6vY");
    let built = w.integrity(PWD.as_bytes()).fingerprint();
    assert_eq!(built, SAMPLE_REQUEST);
}

#[test]
fn rfc5769_sample_responses_are_reproduced_byte_for_byte() {
    let cases: [(&[u8], &str); 2] = [
        (&SAMPLE_IPV4_RESPONSE, "192.0.2.1:32853"),
        (
            &SAMPLE_IPV6_RESPONSE,
            "[2001:db8:1234:5678:11:2233:4455:6677]:32853",
        ),
    ];
    for (vector, addr) in cases {
        let addr: SocketAddr = addr.parse().unwrap();
        assert_eq!(parse_success(vector, PWD), Some((TXID, addr)));
        assert_eq!(parse_success(vector, "other"), None);
        let mut w = Writer::new(BINDING_SUCCESS, TXID);
        attr_space_padded(&mut w, ATTR_SOFTWARE, b"test vector");
        let built = w
            .xor_mapped_address(addr)
            .integrity(PWD.as_bytes())
            .fingerprint();
        assert_eq!(built, vector, "{addr}");
    }
}

#[test]
fn binding_success_carries_address_integrity_and_fingerprint() {
    for addr in ["203.0.113.7:54321", "[2001:db8::1]:9"] {
        let addr: SocketAddr = addr.parse().unwrap();
        let resp = binding_success(TXID, addr, "localpwd-0123456789abcd");
        assert!(is_stun(&resp));
        assert_eq!(
            parse_success(&resp, "localpwd-0123456789abcd"),
            Some((TXID, addr))
        );
    }
}

#[test]
fn binding_error_has_code_and_fingerprint() {
    let resp = binding_error(TXID, 401);
    assert_eq!(&resp[..2], &[0x01, 0x11]);
    assert_eq!(check_header(&resp), Ok(BINDING_ERROR));
    let attrs = attributes(&resp).unwrap();
    assert_eq!(attrs[0].typ, ATTR_ERROR_CODE);
    assert_eq!(&attrs[0].value[..4], &[0, 0, 4, 1]);
    assert_eq!(&attrs[0].value[4..], b"Unauthorized");
    assert_eq!(attrs[1].typ, ATTR_FINGERPRINT);
    assert!(fingerprint_ok(&resp, attrs[1].offset, attrs[1].value));
    let attrs_487 = binding_error(TXID, 487);
    assert_eq!(
        &attributes(&attrs_487).unwrap()[0].value[..4],
        &[0, 0, 4, 87]
    );
}

#[test]
fn our_requests_parse_with_use_candidate_and_controlling() {
    let pkt = request(TXID, "ours:theirs", "pwd-pwd-pwd-pwd-pwd-pwd", true, 7);
    let req = parse_binding_request(&pkt, "ours:theirs", "pwd-pwd-pwd-pwd-pwd-pwd").unwrap();
    assert!(req.use_candidate && req.controlling);
    assert_eq!(req.priority, Some(7));
}

#[test]
fn missing_and_broken_attributes_have_typed_errors() {
    let no_integrity = {
        let mut w = Writer::new(BINDING_REQUEST, TXID);
        w.attr(ATTR_USERNAME, b"a:b");
        w.fingerprint()
    };
    assert_eq!(
        parse_binding_request(&no_integrity, "a:b", "p"),
        Err(StunError::MissingIntegrity)
    );
    assert_eq!(StunError::MissingIntegrity.error_code(), Some(400));
    let no_username = Writer::new(BINDING_REQUEST, TXID)
        .integrity(b"p")
        .fingerprint();
    assert_eq!(
        parse_binding_request(&no_username, "a:b", "p"),
        Err(StunError::MissingUsername)
    );
    let mut bad_fp = SAMPLE_REQUEST;
    bad_fp[107] ^= 1;
    assert_eq!(
        parse_binding_request(&bad_fp, "evtj:h6vY", PWD),
        Err(StunError::BadFingerprint)
    );
    assert_eq!(StunError::BadFingerprint.error_code(), None);
    let mut tampered = SAMPLE_REQUEST;
    tampered[30] ^= 1; // inside SOFTWARE: integrity and fingerprint both break
    assert!(parse_binding_request(&tampered, "evtj:h6vY", PWD).is_err());
    assert_eq!(
        parse_binding_request(&SAMPLE_IPV4_RESPONSE, "evtj:h6vY", PWD),
        Err(StunError::NotBindingRequest(0x0101))
    );
}

#[test]
fn demultiplexing_follows_rfc_7983() {
    assert!(is_stun(&SAMPLE_REQUEST));
    assert!(!is_dtls(&SAMPLE_REQUEST));
    assert!(!is_stun(&SAMPLE_REQUEST[..19]));
    let mut no_cookie = SAMPLE_REQUEST;
    no_cookie[5] = 0;
    assert!(!is_stun(&no_cookie));
    assert!(is_dtls(&[22, 0xfe, 0xfd]));
    assert!(is_dtls(&[20]) && is_dtls(&[63]));
    assert!(!is_dtls(&[64]) && !is_dtls(&[0x80, 0]) && !is_dtls(&[]));
    assert_eq!(transaction_id(&SAMPLE_REQUEST), Some(TXID));
    assert_eq!(transaction_id(&[0; 10]), None);
}

#[test]
fn hostile_input_never_panics() {
    for n in 0..SAMPLE_REQUEST.len() {
        let _ = parse_binding_request(&SAMPLE_REQUEST[..n], "evtj:h6vY", PWD);
    }
    // Length fields pointing past the end, at every position.
    for i in 20..SAMPLE_REQUEST.len() {
        let mut p = SAMPLE_REQUEST;
        p[i] = 0xff;
        let _ = parse_binding_request(&p, "evtj:h6vY", PWD);
    }
    let mut header_lies = SAMPLE_REQUEST;
    header_lies[3] = 0x5c;
    assert_eq!(
        parse_binding_request(&header_lies, "evtj:h6vY", PWD),
        Err(StunError::NotStun)
    );
    let mut state = 0x1234_5678u32;
    for _ in 0..2000 {
        let mut p = SAMPLE_REQUEST.to_vec();
        for _ in 0..4 {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let i = 20 + (state as usize) % (104 - 20); // FINGERPRINT covers these
            p[i] = (state >> 24) as u8;
        }
        assert!(parse_binding_request(&p, "evtj:h6vY", PWD).is_err() || p == SAMPLE_REQUEST);
    }
}
