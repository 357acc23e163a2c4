//! In-band DTMF end to end: a caller whose SDP offers no telephone-event
//! (an old gateway) presses keys as tones in its PCMU audio, and the real
//! server's IVR follows them; speech and music sent the same way press
//! nothing; and where telephone-event *was* negotiated, tones in the audio
//! are not a second source of digits.
//!
//! SIP is done by hand over UDP (SIPp's scenarios here always offer
//! telephone-event) and RTP is sent from a plain socket, paced like a phone.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::{poll_until, Server, ServerOpts};
use ringback_media::codec::Codec;
use ringback_media::g711;
use ringback_media::goertzel::{DTMF_COLS, DTMF_KEYS, DTMF_ROWS};

/// The demo's support line (dialplans/support-direct.toml): `1` → queue
/// `support` through the `internet` node.
const SUPPORT_DIRECT: &str = "2000";

/// A call placed by hand over UDP, with its own RTP socket.
struct RawCall {
    sip: UdpSocket,
    srv: SocketAddr,
    call_id: String,
    from: String,
    to: String,
    target: String,
    rtp: UdpSocket,
    /// The server's RTP address from its SDP answer.
    server_rtp: SocketAddr,
}

fn header(msg: &str, name: &str) -> Option<String> {
    msg.split("\r\n\r\n").next()?.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

fn status(msg: &str) -> Option<u16> {
    msg.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

impl RawCall {
    /// INVITE `number` offering PCMU only, or PCMU + telephone-event/8000 as
    /// payload type 101; wait for the 200, ACK it.
    fn invite(srv: SocketAddr, number: &str, telephone_event: bool, tag: &str) -> RawCall {
        let sip = UdpSocket::bind("127.0.0.1:0").expect("bind sip");
        let rtp = UdpSocket::bind("127.0.0.1:0").expect("bind rtp");
        let me = sip.local_addr().expect("addr");
        let port = rtp.local_addr().expect("addr").port();
        let id = format!("inband-{tag}-{}", std::process::id());
        let call_id = format!("{id}@test");
        let from = format!("<sip:+15550123@{me}>;tag=f-{id}");
        let sdp = if telephone_event {
            format!(
                "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                 m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
                 a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\n"
            )
        } else {
            format!(
                "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                 m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\n"
            )
        };
        let invite = format!(
            "INVITE sip:{number}@{srv} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{id}-inv;rport\r\n\
             Max-Forwards: 70\r\nFrom: {from}\r\nTo: <sip:{number}@{srv}>\r\nCall-ID: {call_id}\r\n\
             CSeq: 1 INVITE\r\nContact: <sip:caller@{me}>\r\nContent-Type: application/sdp\r\n\
             Content-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        );
        sip.set_read_timeout(Some(Duration::from_millis(500)))
            .expect("timeout");
        let mut buf = vec![0u8; 65_536];
        // Sent again whenever 500 ms pass without an answer.
        let ok = poll_until(
            Duration::from_secs(10),
            Duration::ZERO,
            || {
                sip.send_to(invite.as_bytes(), srv).expect("send INVITE");
                while let Ok((n, _)) = sip.recv_from(&mut buf) {
                    let text = String::from_utf8_lossy(&buf[..n]).to_string();
                    match status(&text) {
                        Some(100..=199) => continue,
                        Some(200) => return Some(text),
                        other => panic!("INVITE answered {other:?}:\n{text}"),
                    }
                }
                None
            },
            || "no 200 OK to the INVITE".into(),
        );
        let answer = ok.split("\r\n\r\n").nth(1).unwrap_or_default();
        let ip = answer
            .lines()
            .find_map(|l| l.trim().strip_prefix("c=IN IP4 "))
            .expect("c= in answer")
            .trim()
            .to_string();
        let m = answer
            .lines()
            .find_map(|l| l.trim().strip_prefix("m=audio "))
            .expect("m=audio in answer");
        let rport: u16 = m
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .expect("m=audio port");
        assert_eq!(
            m.split_whitespace().any(|f| f == "101"),
            telephone_event,
            "telephone-event in the answer only if offered: {answer}"
        );
        let target = header(&ok, "Contact")
            .map(|c| {
                c.trim_start_matches('<')
                    .split('>')
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
            .unwrap_or_else(|| format!("sip:{number}@{srv}"));
        let call = RawCall {
            sip,
            srv,
            call_id,
            from,
            to: header(&ok, "To").expect("To"),
            target,
            rtp,
            server_rtp: format!("{ip}:{rport}").parse().expect("rtp addr"),
        };
        call.in_dialog("ACK", 1, &format!("z9hG4bK-{id}-ack"));
        call
    }

    fn in_dialog(&self, method: &str, cseq: u32, branch: &str) {
        let me = self.sip.local_addr().expect("addr");
        let msg = format!(
            "{method} {} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={branch};rport\r\nFrom: {}\r\nTo: {}\r\n\
             Call-ID: {}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            self.target, self.from, self.to, self.call_id
        );
        self.sip.send_to(msg.as_bytes(), self.srv).expect("send");
    }

    fn bye(&self) {
        let branch = format!("z9hG4bK-{}-bye", self.call_id.replace('@', "-"));
        let mut buf = vec![0u8; 65_536];
        for _ in 0..8 {
            self.in_dialog("BYE", 2, &branch);
            while let Ok((n, _)) = self.sip.recv_from(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]);
                if header(&text, "CSeq").is_some_and(|c| c.ends_with("BYE")) {
                    assert_eq!(status(&text), Some(200), "BYE answered:\n{text}");
                    return;
                }
            }
        }
        panic!("BYE not answered");
    }
}

/// Audio a phone would send, built at 8 kHz and cut into 20 ms PCMU packets.
struct Audio {
    pcm: Vec<f64>,
    seed: u32,
}

/// Peak amplitude of a sine at `dbm0` (0 dBm0 ≈ 22 300 peak in 16 bits).
fn peak(dbm0: f64) -> f64 {
    22_300.0 * 10f64.powf(dbm0 / 20.0)
}

impl Audio {
    fn new() -> Audio {
        Audio {
            pcm: Vec::new(),
            seed: 12_345,
        }
    }

    fn silence(mut self, ms: usize) -> Audio {
        self.pcm.extend(std::iter::repeat_n(0.0, ms * 8));
        self
    }

    /// Key `key` as a keypad sends it: low tone −8 dBm0, high tone −6 dBm0
    /// (2 dB reverse twist, what most phones do), 2 ms ramps.
    fn key(mut self, key: char, ms: usize) -> Audio {
        let (r, c) = DTMF_KEYS
            .iter()
            .enumerate()
            .find_map(|(r, row)| row.iter().position(|&k| k == key).map(|c| (r, c)))
            .expect("a DTMF key");
        let n = ms * 8;
        for i in 0..n {
            let edge = i.min(n - 1 - i) as f64;
            let g = (edge / 16.0).min(1.0);
            let t = i as f64 / 8000.0;
            let tau = 2.0 * std::f64::consts::PI;
            self.pcm.push(
                g * (peak(-8.0) * (tau * DTMF_ROWS[r] * t).sin()
                    + peak(-6.0) * (tau * DTMF_COLS[c] * t).sin()),
            );
        }
        self
    }

    /// Linear samples as they are (a prompt, music).
    fn samples(mut self, pcm: &[i16]) -> Audio {
        self.pcm.extend(pcm.iter().map(|&s| f64::from(s)));
        self
    }

    /// Add line noise at about −60 dBm0 and encode 20 ms PCMU packets.
    fn packets(mut self) -> Vec<Vec<u8>> {
        let noise = peak(-60.0) / std::f64::consts::SQRT_2;
        let pcm: Vec<i16> = self
            .pcm
            .iter()
            .map(|&v| {
                self.seed = self.seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                let u = f64::from(self.seed >> 16) / 65_536.0 - 0.5;
                (v + u * noise * 3.46).round().clamp(-32_768.0, 32_767.0) as i16
            })
            .collect();
        let mut enc = vec![0u8; pcm.len()];
        g711::encode_frame(Codec::Pcmu, &pcm, &mut enc);
        enc.chunks(160).map(<[u8]>::to_vec).collect()
    }
}

/// An RTP packet (version 2, our SSRC).
fn rtp(pt: u8, marker: bool, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&0x1D7E_F00Du32.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// An RFC 4733 event for `key` sent alongside audio packet number `at`:
/// start, continuation, then three end packets, all with one timestamp.
struct Event {
    pt: u8,
    key: u8,
    at: usize,
}

/// Send `packets` (PCMU, PT 0) from the call's RTP socket, one every
/// `interval`, with `events` interleaved where they start.
fn stream(call: &RawCall, packets: &[Vec<u8>], interval: Duration, events: &[Event]) {
    let mut seq: u16 = 4000;
    let mut next = Instant::now();
    for (i, p) in packets.iter().enumerate() {
        let ts = 80_000 + i as u32 * 160;
        seq = seq.wrapping_add(1);
        call.rtp
            .send_to(&rtp(0, i == 0, seq, ts, p), call.server_rtp)
            .expect("send rtp");
        for ev in events.iter().filter(|e| e.at == i) {
            for (k, end) in [false, false, true, true, true].into_iter().enumerate() {
                let dur = (160 * (k as u16 + 1)).to_be_bytes();
                let payload = [ev.key, if end { 0x80 | 10 } else { 10 }, dur[0], dur[1]];
                seq = seq.wrapping_add(1);
                call.rtp
                    .send_to(&rtp(ev.pt, k == 0, seq, ts, &payload), call.server_rtp)
                    .expect("send event");
            }
        }
        next += interval;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
}

const PACED: Duration = Duration::from_millis(20);

#[test]
fn keys_sent_as_tones_walk_the_ivr_when_no_telephone_event_is_offered() {
    let srv = Server::start(ServerOpts::default());
    let call = RawCall::invite(srv.sip, SUPPORT_DIRECT, false, "tones");
    // A second into the welcome prompt the caller presses 1 (barge-in). The
    // gateway also leaks an RFC 4733 '2' on a payload type nobody
    // negotiated: it must not count.
    let audio = Audio::new()
        .silence(1000)
        .key('1', 120)
        .silence(1500)
        .packets();
    stream(
        &call,
        &audio,
        PACED,
        &[Event {
            pt: 101,
            key: 2,
            at: 60,
        }],
    );
    assert!(
        srv.wait_log("DTMF (in-band)", 1, Duration::from_secs(5)),
        "no in-band digit detected; log:\n{}",
        srv.log()
    );
    // Let the IVR route it (`1` → internet → support queue) before hanging up.
    std::thread::sleep(Duration::from_millis(500));
    call.bye();
    let cdr = srv.wait_cdr(&call.call_id, Duration::from_secs(5));
    assert_eq!(
        cdr.digits, "1",
        "exactly one digit, from the tones: {cdr:?}"
    );
    assert!(cdr.path.starts_with("support > internet"), "{cdr:?}");
    assert_eq!(cdr.queue.as_deref(), Some("support"), "{cdr:?}");
    assert_eq!(srv.log().matches("DTMF (in-band)").count(), 1);
}

#[test]
fn speech_and_music_sent_as_rtp_press_no_keys() {
    let srv = Server::start(ServerOpts::default());
    let call = RawCall::invite(srv.sip, SUPPORT_DIRECT, false, "speech");
    // The menu itself ("... press 1 ...") and the hold music, as if the
    // caller's line played them back to us; sent at 4x real time so the call
    // stays shorter than the menu's prompts (no timeout, no re-prompt).
    let mut audio = Audio::new();
    for name in ["main-menu", "hold-music", "support-menu"] {
        let path = common::repo().join(format!("prompts/{name}.wav"));
        let bytes = std::fs::read(&path).expect("read prompt");
        let p = ringback_media::prompt::decode_wav(&path, &bytes).expect("load prompt");
        audio = audio.samples(&p.to_pcm());
    }
    let packets = audio.packets();
    assert!(packets.len() > 1000, "{} packets", packets.len());
    stream(&call, &packets, Duration::from_millis(5), &[]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        srv.log().matches("DTMF (in-band)").count(),
        0,
        "speech and music are not key presses"
    );
    // The same stream was being analysed all along: a real key press now
    // (continuing its timestamps) is heard, once.
    let key = Audio::new()
        .silence(200)
        .key('1', 100)
        .silence(400)
        .packets();
    let mut seq: u16 = 60_000;
    for (i, p) in key.iter().enumerate() {
        seq = seq.wrapping_add(1);
        let ts = 80_000 + (packets.len() + i) as u32 * 160;
        call.rtp
            .send_to(&rtp(0, false, seq, ts, p), call.server_rtp)
            .expect("send rtp");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        srv.wait_log("DTMF (in-band)", 1, Duration::from_secs(5)),
        "{}",
        srv.log()
    );
    std::thread::sleep(Duration::from_millis(300));
    call.bye();
    let cdr = srv.wait_cdr(&call.call_id, Duration::from_secs(5));
    assert_eq!(cdr.digits, "1", "only the real key press: {cdr:?}");
    assert!(cdr.path.starts_with("support > internet"), "{cdr:?}");
    assert_eq!(srv.log().matches("DTMF (in-band)").count(), 1);
}

#[test]
fn with_telephone_event_negotiated_only_events_count() {
    let srv = Server::start(ServerOpts::default());
    let call = RawCall::invite(srv.sip, SUPPORT_DIRECT, true, "events");
    // The phone plays the key's tones in its audio *and* sends the RFC 4733
    // event (many do, for a moment): one digit, from the event. A tone for a
    // different key without an event shows the audio is not analysed.
    let audio = Audio::new()
        .silence(800)
        .key('1', 120)
        .silence(600)
        .key('2', 120)
        .silence(1000)
        .packets();
    stream(
        &call,
        &audio,
        PACED,
        &[Event {
            pt: 101,
            key: 1,
            at: 40,
        }],
    );
    assert!(
        srv.wait_log("DTMF (RFC 4733)", 1, Duration::from_secs(5)),
        "{}",
        srv.log()
    );
    std::thread::sleep(Duration::from_millis(500));
    call.bye();
    let cdr = srv.wait_cdr(&call.call_id, Duration::from_secs(5));
    assert_eq!(cdr.digits, "1", "{cdr:?}");
    assert_eq!(cdr.queue.as_deref(), Some("support"), "{cdr:?}");
    assert_eq!(srv.log().matches("DTMF (in-band)").count(), 0);
}
