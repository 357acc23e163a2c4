//! A browser in memory: a `dimpl` peer with its own certificate and hand-built STUN
//! checks, driven against our `Transport` with a fake clock.
// Tests are a shell: they read the clock once to get an `Instant` (issue 12).
#![allow(clippy::disallowed_methods)]

use super::*;
use crate::stun::tests::{parse_success, request};
use ringback_media::srtp::Srtp;

const OUR_UFRAG: &str = "ours";
const OUR_PWD: &str = "our-password-0123456789";
const THEIR_UFRAG: &str = "brws";

struct Browser {
    dtls: Dtls,
    addr: SocketAddr,
    buf: Vec<u8>,
    peer_cert: Option<Vec<u8>>,
    keys: Option<(Vec<u8>, SrtpProfile)>,
    close_notify: bool,
    txid: u8,
}

impl Browser {
    fn new(identity: &DtlsIdentity, dtls_client: bool, dtls12: bool, now: Instant) -> Browser {
        let mut dtls = if dtls12 {
            // Chrome and Firefox as of 2025: DTLS 1.2 only.
            Dtls::new_12(identity.config(), identity.certificate(), now)
        } else {
            Dtls::new_auto(identity.config(), identity.certificate(), now)
        };
        if dtls_client {
            dtls.set_active(true);
        }
        Browser {
            dtls,
            addr: "192.0.2.50:50000".parse().unwrap(),
            buf: vec![0; 4096],
            peer_cert: None,
            keys: None,
            close_notify: false,
            txid: 0,
        }
    }

    fn check(&mut self, use_candidate: bool) -> ([u8; 12], Vec<u8>) {
        self.txid += 1;
        let txid = [self.txid; 12];
        let username = format!("{OUR_UFRAG}:{THEIR_UFRAG}");
        (
            txid,
            request(txid, &username, OUR_PWD, use_candidate, 0x6e00_01ff),
        )
    }

    /// The browser's DTLS datagrams until its next timeout.
    fn poll(&mut self, now: Instant) -> Vec<Vec<u8>> {
        self.dtls.handle_timeout(now).unwrap();
        let mut out = Vec::new();
        loop {
            match self.dtls.poll_output(&mut self.buf) {
                Output::Packet(p) => out.push(p.to_vec()),
                Output::Timeout(_) => return out,
                Output::PeerCert(der) => self.peer_cert = Some(der.to_vec()),
                Output::KeyingMaterial(km, profile) => self.keys = Some((km.to_vec(), profile)),
                Output::CloseNotify => self.close_notify = true,
                _ => {}
            }
        }
    }
}

fn drain(t: &mut Transport) -> Vec<TransportOutput> {
    std::iter::from_fn(|| t.poll_output()).collect()
}

fn config(remote_fingerprint: Fingerprint, dtls_server: bool) -> TransportConfig {
    TransportConfig {
        local_ufrag: OUR_UFRAG.into(),
        local_pwd: OUR_PWD.into(),
        remote_ufrag: THEIR_UFRAG.into(),
        remote_fingerprint,
        dtls_server,
        idle_timeout: TransportConfig::DEFAULT_IDLE_TIMEOUT,
    }
}

/// Sends a check from `from`, returns the outputs after checking the response.
fn stun_check(
    t: &mut Transport,
    b: &mut Browser,
    from: SocketAddr,
    use_candidate: bool,
    now: Instant,
) -> Vec<TransportOutput> {
    let (txid, req) = b.check(use_candidate);
    t.handle_datagram(from, &req, now);
    let mut outs = drain(t);
    match outs.remove(0) {
        TransportOutput::Transmit { to, bytes } => {
            assert_eq!(to, from);
            assert_eq!(parse_success(&bytes, OUR_PWD), Some((txid, from)));
        }
        other => panic!("expected the binding response, got {other:?}"),
    }
    outs
}

/// Exchanges DTLS datagrams until both sides have keys (or something closes).
fn handshake(t: &mut Transport, b: &mut Browser, now: &mut Instant) -> Vec<TransportOutput> {
    let mut ours = Vec::new();
    for _ in 0..40 {
        for p in b.poll(*now) {
            t.handle_datagram(b.addr, &p, *now);
        }
        for o in drain(t) {
            match o {
                TransportOutput::Transmit { to, bytes } => {
                    assert_eq!(to, b.addr);
                    b.dtls.handle_packet(&bytes).unwrap();
                }
                other => ours.push(other),
            }
        }
        if b.keys.is_some()
            && ours
                .iter()
                .any(|o| matches!(o, TransportOutput::Keys { .. }))
        {
            break;
        }
        if ours.iter().any(|o| matches!(o, TransportOutput::Closed(_))) {
            break;
        }
        *now += Duration::from_millis(5);
    }
    ours
}

struct Setup {
    t: Transport,
    b: Browser,
    ours: DtlsIdentity,
    now: Instant,
}

fn setup(dtls_server: bool, wrong_fingerprint: bool) -> Setup {
    setup_version(dtls_server, wrong_fingerprint, false)
}

fn setup_version(dtls_server: bool, wrong_fingerprint: bool, dtls12: bool) -> Setup {
    let now = Instant::now();
    let ours = DtlsIdentity::generate().unwrap();
    let theirs = DtlsIdentity::generate().unwrap();
    let fp = if wrong_fingerprint {
        DtlsIdentity::generate().unwrap().fingerprint().clone()
    } else {
        theirs.fingerprint().clone()
    };
    let t = Transport::new(config(fp, dtls_server), &ours, now);
    let b = Browser::new(&theirs, dtls_server, dtls12, now);
    Setup { t, b, ours, now }
}

/// A connected leg: nominated check, then the handshake; returns the keys.
fn connect(s: &mut Setup) -> (KeyMaterial, KeyMaterial) {
    let addr = s.b.addr;
    let outs = stun_check(&mut s.t, &mut s.b, addr, true, s.now);
    let mut rest = Vec::new();
    for o in outs {
        match o {
            TransportOutput::Selected(a) => assert_eq!(a, addr),
            TransportOutput::Transmit { bytes, .. } => {
                // We are the DTLS client: our ClientHello follows the selection.
                assert!(!s.t.cfg.dtls_server && is_dtls(&bytes));
                s.b.dtls.handle_packet(&bytes).unwrap();
            }
            other => rest.push(other),
        }
    }
    assert!(rest.is_empty(), "{rest:?}");
    let outs = handshake(&mut s.t, &mut s.b, &mut s.now);
    assert_eq!(outs.len(), 1, "{outs:?}");
    let Some(TransportOutput::Keys { local, remote }) = outs.into_iter().next() else {
        panic!("no keys");
    };
    assert!(s.t.is_connected());
    (local, remote)
}

fn assert_keys_agree(s: &Setup, local: &KeyMaterial, remote: &KeyMaterial) {
    let (km, profile) = s.b.keys.clone().expect("browser keys");
    let browser_is_server = !s.t.cfg.dtls_server;
    let (b_local, b_remote) = split_keys(&km, profile, browser_is_server).unwrap();
    assert_eq!(&b_local, remote, "the browser seals with what we open with");
    assert_eq!(&b_remote, local, "we seal with what the browser opens with");
    assert_ne!(local, remote);
    // And the browser saw our certificate.
    assert!(s
        .ours
        .fingerprint()
        .matches(s.b.peer_cert.as_ref().unwrap()));
    // SRTP both ways with these keys.
    let rtp = [
        0x80, 0x00, 0x00, 0x01, 0, 0, 0, 160, 0x11, 0x22, 0x33, 0x44, 0xff, 0xff,
    ];
    let (mut sealed, mut opened) = (Vec::new(), Vec::new());
    Srtp::new(local).protect(&rtp, &mut sealed).unwrap();
    Srtp::new(&b_remote)
        .unprotect(&sealed, &mut opened)
        .unwrap();
    assert_eq!(opened, rtp);
}

#[test]
fn full_handshake_as_dtls_server() {
    let mut s = setup(true, false);
    let (local, remote) = connect(&mut s);
    assert_keys_agree(&s, &local, &remote);
    // Keys once; later checks only get responses.
    let addr = s.b.addr;
    assert!(stun_check(&mut s.t, &mut s.b, addr, true, s.now).is_empty());
}

#[test]
fn full_handshake_as_dtls_client() {
    let mut s = setup(false, false);
    let (local, remote) = connect(&mut s);
    assert_keys_agree(&s, &local, &remote);
}

#[test]
fn full_handshakes_with_a_dtls12_browser() {
    for dtls_server in [true, false] {
        let mut s = setup_version(dtls_server, false, true);
        let (local, remote) = connect(&mut s);
        assert_keys_agree(&s, &local, &remote);
        assert_eq!(s.t.dtls.protocol_version(), Some(ProtocolVersion::DTLS1_2));
        // Close notify in epoch 1 passes the record check; DTLS 1.2 answers it.
        s.b.dtls.close().unwrap();
        for p in s.b.poll(s.now) {
            s.t.handle_datagram(s.b.addr, &p, s.now);
        }
        let outs = drain(&mut s.t);
        assert!(
            matches!(
                &outs[..],
                [
                    TransportOutput::Transmit { .. },
                    TransportOutput::Closed(CloseReason::PeerClosed)
                ]
            ),
            "{outs:?}"
        );
    }
}

#[test]
fn wrong_fingerprint_of_a_dtls12_browser() {
    for dtls_server in [true, false] {
        let mut s = setup_version(dtls_server, true, true);
        let addr = s.b.addr;
        let outs = stun_check(&mut s.t, &mut s.b, addr, true, s.now);
        for o in outs {
            if let TransportOutput::Transmit { bytes, .. } = o {
                s.b.dtls.handle_packet(&bytes).unwrap();
            }
        }
        let outs = handshake(&mut s.t, &mut s.b, &mut s.now);
        assert!(
            matches!(
                &outs[..],
                [TransportOutput::Closed(CloseReason::FingerprintMismatch)]
            ),
            "{outs:?}"
        );
    }
}

#[test]
fn selection_follows_first_check_then_nomination() {
    let mut s = setup(true, false);
    let relay: SocketAddr = "198.51.100.9:3478".parse().unwrap();
    let host = s.b.addr;
    let now = s.now;
    let outs = stun_check(&mut s.t, &mut s.b, relay, false, now);
    assert!(matches!(outs[..], [TransportOutput::Selected(a)] if a == relay));
    // Another un-nominated check does not switch.
    assert!(stun_check(&mut s.t, &mut s.b, host, false, now).is_empty());
    // USE-CANDIDATE does.
    let outs = stun_check(&mut s.t, &mut s.b, host, true, now);
    assert!(matches!(outs[..], [TransportOutput::Selected(a)] if a == host));
    assert!(stun_check(&mut s.t, &mut s.b, relay, false, now).is_empty());
    assert_eq!(s.t.selected(), Some(host));
    // The handshake may run from the validated address.
    let outs = handshake(&mut s.t, &mut s.b, &mut s.now);
    assert!(
        matches!(outs[..], [TransportOutput::Keys { .. }]),
        "{outs:?}"
    );
}

#[test]
fn wrong_fingerprint_closes_without_keys() {
    let mut s = setup(true, true);
    let addr = s.b.addr;
    stun_check(&mut s.t, &mut s.b, addr, true, s.now);
    let outs = handshake(&mut s.t, &mut s.b, &mut s.now);
    assert!(
        matches!(
            &outs[..],
            [TransportOutput::Closed(CloseReason::FingerprintMismatch)]
        ),
        "{outs:?}"
    );
    assert!(!s.t.is_connected());
    // Nothing after Closed, whatever arrives.
    let (_, req) = s.b.check(true);
    s.t.handle_datagram(addr, &req, s.now);
    s.t.handle_timeout(s.now + Duration::from_secs(60));
    s.t.close(s.now);
    assert!(s.t.poll_output().is_none());
    assert_eq!(s.t.poll_timeout(), None);
}

#[test]
fn idle_after_selection_closes_and_media_keeps_alive() {
    let mut s = setup(true, false);
    connect(&mut s);
    let t0 = s.now;
    assert_eq!(
        s.t.poll_timeout(),
        Some(t0 + Duration::from_secs(4)).min(s.t.poll_timeout())
    );
    s.t.media_received(s.b.addr, t0 + Duration::from_secs(3));
    s.t.handle_timeout(t0 + Duration::from_secs(5));
    assert!(drain(&mut s.t).is_empty());
    assert!(s.t.poll_timeout().unwrap() <= t0 + Duration::from_secs(7));
    s.t.handle_timeout(t0 + Duration::from_secs(7));
    let outs = drain(&mut s.t);
    assert!(
        matches!(&outs[..], [TransportOutput::Closed(CloseReason::Idle)]),
        "{outs:?}"
    );
    assert!(!s.t.is_connected());
}

#[test]
fn no_check_means_connect_timeout() {
    let mut s = setup(true, false);
    assert_eq!(s.t.poll_timeout(), Some(s.now + CONNECT_TIMEOUT));
    s.t.handle_timeout(s.now + Duration::from_secs(14));
    assert!(drain(&mut s.t).is_empty());
    s.t.handle_timeout(s.now + CONNECT_TIMEOUT);
    let outs = drain(&mut s.t);
    assert!(matches!(
        &outs[..],
        [TransportOutput::Closed(CloseReason::ConnectTimeout)]
    ));
    assert_eq!(s.t.poll_timeout(), None);
}

#[test]
fn close_notify_from_the_browser() {
    let mut s = setup(true, false);
    connect(&mut s);
    s.b.dtls.close().unwrap();
    for p in s.b.poll(s.now) {
        s.t.handle_datagram(s.b.addr, &p, s.now);
    }
    let outs = drain(&mut s.t);
    assert!(
        matches!(
            &outs[..],
            [TransportOutput::Closed(CloseReason::PeerClosed)]
        ),
        "{outs:?}"
    );
}

#[test]
fn local_close_sends_close_notify() {
    let mut s = setup(true, false);
    connect(&mut s);
    s.t.close(s.now);
    let outs = drain(&mut s.t);
    let [TransportOutput::Transmit { to, bytes }, TransportOutput::Closed(CloseReason::Local)] =
        &outs[..]
    else {
        panic!("{outs:?}");
    };
    assert_eq!(*to, s.b.addr);
    s.b.dtls.handle_packet(bytes).unwrap();
    s.b.poll(s.now);
    assert!(s.b.close_notify);
}

#[test]
fn garbage_is_ignored_and_bad_checks_get_errors() {
    let mut s = setup(true, false);
    let addr = s.b.addr;
    let stranger: SocketAddr = "203.0.113.99:4444".parse().unwrap();
    let now = s.now;
    // Not STUN, not DTLS; DTLS from an address that never passed a check.
    for pkt in [
        &[][..],
        &[0u8; 3][..],
        &[0x80, 0x00, 0x00, 0x01, 0, 0, 0, 0, 1, 2, 3, 4][..],
        &[0xff; 64][..],
        &[22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4, 5][..],
    ] {
        s.t.handle_datagram(stranger, pkt, now);
        s.t.handle_datagram(addr, pkt, now);
    }
    assert!(drain(&mut s.t).is_empty());
    // A check with the wrong password: 401, no selection.
    let bad = request([9; 12], "ours:brws", "not-our-password-at-all", true, 1);
    s.t.handle_datagram(addr, &bad, now);
    let outs = drain(&mut s.t);
    let [TransportOutput::Transmit { bytes, .. }] = &outs[..] else {
        panic!("{outs:?}");
    };
    assert_eq!(&bytes[..2], &[0x01, 0x11]);
    assert_eq!(&bytes[24..28], &[0, 0, 4, 1]);
    // A check for another ufrag: 401 too.
    let other = request([8; 12], "nope:brws", OUR_PWD, true, 1);
    s.t.handle_datagram(addr, &other, now);
    assert_eq!(drain(&mut s.t).len(), 1);
    // Truncated checks: nothing at all.
    let (_, good) = s.b.check(true);
    for n in 0..good.len() {
        s.t.handle_datagram(addr, &good[..n], now);
    }
    assert!(drain(&mut s.t).is_empty());
    assert_eq!(s.t.selected(), None);
    // The leg still connects; garbage in the middle of the handshake does not hurt.
    stun_check(&mut s.t, &mut s.b, addr, true, now);
    s.t.handle_datagram(
        addr,
        &[22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4, 5],
        now,
    );
    s.t.handle_datagram(addr, &[23; 40], now);
    let mut epoch5 = vec![23, 0xfe, 0xfd, 0, 5, 0, 0, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4];
    s.t.handle_datagram(addr, &epoch5, now);
    epoch5[4] = 1; // epoch 1 garbage: dimpl fails to decrypt it and drops it
    s.t.handle_datagram(addr, &epoch5, now);
    s.t.handle_datagram(addr, &[0x2c; 30], now); // a DTLS 1.3 unified header
    let outs = handshake(&mut s.t, &mut s.b, &mut s.now);
    assert!(
        matches!(outs[..], [TransportOutput::Keys { .. }]),
        "{outs:?}"
    );
}

#[test]
fn dtls_record_headers_are_checked_before_dimpl() {
    let hello = [22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1, 2];
    let hello = [
        &hello[..11],
        &[0, 14, 1, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2, 7, 7],
    ]
    .concat();
    assert!(!plausible_dtls(
        &[22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1, 2],
        false
    ));
    for dtls12 in [false, true] {
        assert!(plausible_dtls(&hello, dtls12));
        assert!(plausible_dtls(&[&hello[..], &hello[..]].concat(), dtls12));
        assert!(!plausible_dtls(&hello[..14], dtls12));
        assert!(!plausible_dtls(&[23; 40], dtls12));
        assert!(plausible_dtls(&[0x2c; 30], dtls12));
    }
    let mut app_data = hello.clone();
    app_data[0] = 23;
    assert!(
        !plausible_dtls(&app_data, true),
        "no application data in epoch 0"
    );
    app_data[4] = 1;
    assert!(plausible_dtls(&app_data, true));
    assert!(
        !plausible_dtls(&app_data, false),
        "DTLS 1.3 has no plaintext epoch 1"
    );
    app_data[4] = 2;
    assert!(!plausible_dtls(&app_data, true));
}

#[test]
fn keying_material_layout_follows_rfc_5764() {
    let km: Vec<u8> = (0u8..60).collect();
    let (server_local, server_remote) =
        split_keys(&km, SrtpProfile::AES128_CM_SHA1_80, true).unwrap();
    assert_eq!(server_local.key(), &km[16..32]);
    assert_eq!(server_local.salt(), &km[46..60]);
    assert_eq!(server_remote.key(), &km[..16]);
    assert_eq!(server_remote.salt(), &km[32..46]);
    let (client_local, _) = split_keys(&km, SrtpProfile::AES128_CM_SHA1_80, false).unwrap();
    assert_eq!(client_local, server_remote);
    let gcm: Vec<u8> = (0u8..88).collect();
    let (l, _) = split_keys(&gcm, SrtpProfile::AEAD_AES_256_GCM, true).unwrap();
    assert_eq!(
        (l.suite(), l.key(), l.salt()),
        (Suite::AeadAes256Gcm, &gcm[32..64], &gcm[76..88])
    );
    assert!(split_keys(&km[..59], SrtpProfile::AES128_CM_SHA1_80, true).is_err());
    assert_eq!(
        suite_of(SrtpProfile::AEAD_AES_128_GCM),
        Some(Suite::AeadAes128Gcm)
    );
}
