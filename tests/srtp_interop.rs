//! SRTP interop with a real SIP stack: PJSIP (pjsua2, driven by
//! `tests/peers/pjsua_peer.py`) plays the caller and agent alice's phone
//! against a real ringback whose legs use SRTP with SDES keys (RFC 4568
//! `a=crypto` lines in SDP, RFC 3711 packets), signalled over SIP/TLS.
//!
//! What is checked, and how:
//!
//! 1. A secure call end to end: a TLS caller with SRTP mandatory navigates
//!    the IVR by DTMF (carried in SRTP) and reaches alice, whose phone is
//!    also on TLS and SRTP mandatory; both hear each other's tone (by
//!    content, Goertzel), the INVITE to alice offers `RTP/SAVP` with
//!    `a=crypto`, and the call record is right.
//! 2. Encryption, not silence, hides the audio: `tests/peers/rtp_capture.py`
//!    captures the media on the loopback interface (AF_PACKET raw socket)
//!    and decodes the payloads as PCMU: in the secure call no tone shows in
//!    any of the four flows while the phones hear the tones; the same
//!    capture of a plain call finds them (the check can fail).
//! 3. A plain offer to a server that requires SRTP gets 488 and no call.
//! 4. Forged, replayed and tampered SRTP packets sent to ringback's RTP port
//!    are dropped and counted (`ringback_srtp_*_total`), never steal the
//!    symmetric-RTP latch, and the call goes on (DTMF, audio both ways).
//! 5. Hold and resume (re-INVITEs from both phones) keep the legs secure
//!    (`a=crypto` in every answer) and the audio flowing.
//! 6. A secure caller reaches a plain agent phone: ringback decrypts one leg
//!    and sends the other in the clear, tones both ways.
//!
//! Every test starts its own ringback (with a TLS listener and a lab CA
//! made with openssl) and its own PJSIP processes on free ports; everything
//! is bounded by the peers' `--timeout`s and killed by PID when a test
//! ends. A missing pjsua2, or a capture socket that cannot be opened, fails
//! the tests (they do not skip).

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use ringback_media::srtp::{KeyMaterial, Srtp, Suite};
use serde_json::Value;

use common::certs::{path_str, tls_addr, Lab};
use common::peer::{
    args, assert_queued_call_invite, finish_queued_call, uri, wait_agent_state, Bye, PeerScript,
    PyPeer, AGENT_CONFIG, AGENT_TONE, CALLER_TONE, PJSUA,
};
use common::{Server, ServerOpts};

// ---------------------------------------------------------------------------------------------
// The server: SRTP policies, a TLS listener with the lab certificate.
// ---------------------------------------------------------------------------------------------

/// The SRTP policies of a server (`off`, `optional`, `mandatory`; `None`
/// leaves the key out, so the default applies).
#[derive(Clone, Copy, Debug)]
struct Policies {
    /// `[sip] srtp`: callers' media (default optional).
    callers: Option<&'static str>,
    /// `[agents.alice] srtp`: calls to alice's phone (default off).
    alice: Option<&'static str>,
}

/// SRTP required on both legs.
const ALL_SECURE: Policies = Policies {
    callers: Some("mandatory"),
    alice: Some("mandatory"),
};

/// SRTP off on both legs.
const ALL_PLAIN: Policies = Policies {
    callers: Some("off"),
    alice: Some("off"),
};

/// A server with the demo dialplans, the `support` queue served by alice
/// ([`AGENT_CONFIG`]), a TLS listener with the lab's certificate, and these
/// SRTP policies.
fn srtp_server(lab: &Lab, policies: Policies) -> Server {
    let mut sip = lab.tls_listener();
    if let Some(p) = policies.callers {
        sip.push_str(&format!("srtp = \"{p}\"\n"));
    }
    // AGENT_CONFIG ends inside `[agents.alice]`: a line appended is alice's.
    assert!(
        AGENT_CONFIG
            .rsplit("\n[")
            .next()
            .is_some_and(|t| t.starts_with("agents.alice]")),
        "AGENT_CONFIG must end with alice's table"
    );
    let mut config = AGENT_CONFIG.to_string();
    if let Some(p) = policies.alice {
        config.push_str(&format!("srtp = \"{p}\"\n"));
    }
    Server::start(ServerOpts {
        extra_config: config,
        sip_extra: sip,
        ..ServerOpts::default()
    })
}

// ---------------------------------------------------------------------------------------------
// PJSIP phones.
// ---------------------------------------------------------------------------------------------

/// How a PJSIP phone talks: its SIP transport and its SRTP use
/// (`pjsua_peer.py --srtp`).
#[derive(Clone, Copy, Debug)]
struct Phone {
    /// `udp`, `tcp` or `tls` (TLS verifies ringback with the lab CA).
    transport: &'static str,
    /// `disabled`, `optional` or `mandatory`.
    srtp: &'static str,
}

/// SIP over TLS, SRTP only (`RTP/SAVP` offers, refuses plain answers).
const TLS_SRTP: Phone = Phone {
    transport: "tls",
    srtp: "mandatory",
};

/// SIP over TLS, plain RTP.
const TLS_PLAIN: Phone = Phone {
    transport: "tls",
    srtp: "disabled",
};

/// SIP over UDP, plain RTP.
const UDP_PLAIN: Phone = Phone {
    transport: "udp",
    srtp: "disabled",
};

/// A PJSIP caller dialing `number` on `srv` as `phone`, with `extra`
/// arguments.
fn caller(srv: &Server, lab: &Lab, phone: Phone, number: &str, extra: &[&str]) -> PyPeer {
    let mut a = if phone.transport == "tls" {
        let target = format!("sip:{number}@{};transport=tls", tls_addr(srv));
        args(&[
            "--transport",
            "tls",
            "--ca",
            path_str(&lab.ca.cert),
            "--uri",
            &target,
        ])
    } else {
        args(&["--transport", phone.transport, "--uri", &uri(srv, number)])
    };
    a.extend(args(&["--srtp", phone.srtp]));
    a.extend(args(extra));
    PJSUA.spawn("caller", "caller", &a)
}

/// Alice's PJSIP phone as `phone`, registered (digest) and `available`.
fn alice(srv: &Server, lab: &Lab, phone: Phone, extra: &[&str]) -> PyPeer {
    let registrar = if phone.transport == "tls" {
        tls_addr(srv)
    } else {
        srv.sip.to_string()
    };
    let mut a = args(&[
        "--transport",
        phone.transport,
        "--registrar",
        &registrar,
        "--user",
        "alice",
        "--password",
        "alice-secret",
        "--srtp",
        phone.srtp,
    ]);
    if phone.transport == "tls" {
        a.extend(args(&["--ca", path_str(&lab.ca.cert)]));
    }
    a.extend(args(extra));
    let agent = PJSUA.spawn("agent alice", "agent", &a);
    agent.expect("registered", Duration::from_secs(10), srv);
    wait_agent_state(srv, "alice", "available");
    agent
}

/// The caller's Call-ID, as PJSIP reported it.
fn call_id(peer: &PyPeer, srv: &Server) -> String {
    peer.expect_where(
        "call_state",
        |e| e["call_id"].as_str().is_some_and(|s| !s.is_empty()),
        Duration::from_secs(10),
        srv,
    )["call_id"]
        .as_str()
        .expect("call_id")
        .to_string()
}

/// Ringback's RTP address for this phone's call: the `remote_rtp` of its
/// `media_active` event.
fn ringback_rtp(peer: &PyPeer, srv: &Server) -> SocketAddr {
    let media = peer.expect("media_active", Duration::from_secs(15), srv);
    media["remote_rtp"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no remote_rtp in {media}"))
}

// ---------------------------------------------------------------------------------------------
// A queued call: the caller dials 2000, presses 1 (support > internet), and
// alice's phone takes the call from the support queue.
// ---------------------------------------------------------------------------------------------

/// How a queued call is set up. The caller plays [`CALLER_TONE`] from 2 s
/// after its media is up and listens for [`AGENT_TONE`]; alice answers
/// after 0.5 s of ringing, plays [`AGENT_TONE`] and listens for
/// [`CALLER_TONE`]. The caller hangs up `hangup_delay` seconds after it
/// heard alice (so alice has heard it by then too).
struct Plan {
    policies: Policies,
    caller: Phone,
    agent: Phone,
    /// When the caller presses 1 (seconds after CONFIRMED).
    dtmf_at: f64,
    hangup_delay: f64,
    /// More `pjsua_peer.py` arguments (single-valued options given here
    /// override the defaults above).
    caller_extra: Vec<String>,
    agent_extra: Vec<String>,
}

impl Plan {
    fn new(policies: Policies, caller: Phone, agent: Phone) -> Plan {
        Plan {
            policies,
            caller,
            agent,
            dtmf_at: 1.5,
            hangup_delay: 2.0,
            caller_extra: Vec::new(),
            agent_extra: Vec::new(),
        }
    }

    fn caller_args(mut self, extra: &[&str]) -> Plan {
        self.caller_extra.extend(args(extra));
        self
    }

    fn agent_args(mut self, extra: &[&str]) -> Plan {
        self.agent_extra.extend(args(extra));
        self
    }

    /// Start the server and both phones: alice registered, the caller in
    /// the IVR (alice is not rung yet).
    fn start(self) -> QueuedCall {
        let lab = Lab::new();
        let srv = srtp_server(&lab, self.policies);
        let (agent_tone, caller_tone) = (AGENT_TONE.to_string(), CALLER_TONE.to_string());
        let mut agent_args = args(&[
            "--ring-delay",
            "0.5",
            "--play",
            &agent_tone,
            "--detect",
            &caller_tone,
            "--timeout",
            "40",
        ]);
        agent_args.extend(self.agent_extra.iter().cloned());
        let agent_refs: Vec<&str> = agent_args.iter().map(String::as_str).collect();
        let agent = alice(&srv, &lab, self.agent, &agent_refs);

        let dtmf = format!("1@{}", self.dtmf_at);
        let hangup_delay = self.hangup_delay.to_string();
        let mut caller_args = args(&[
            "--dtmf",
            &dtmf,
            "--play",
            &caller_tone,
            "--play-at",
            "2",
            "--detect",
            &agent_tone,
            "--hangup-on-tone",
            &agent_tone,
            "--hangup-delay",
            &hangup_delay,
            "--timeout",
            "35",
        ]);
        caller_args.extend(self.caller_extra.iter().cloned());
        let caller_refs: Vec<&str> = caller_args.iter().map(String::as_str).collect();
        let caller = caller(&srv, &lab, self.caller, "2000", &caller_refs);
        let id = call_id(&caller, &srv);
        QueuedCall {
            agent_transport: self.agent.transport,
            _lab: lab,
            srv,
            caller,
            agent,
            id,
        }
    }
}

/// A queued call in progress.
struct QueuedCall {
    agent_transport: &'static str,
    _lab: Lab,
    srv: Server,
    caller: PyPeer,
    agent: PyPeer,
    /// The caller's Call-ID.
    id: String,
}

impl QueuedCall {
    /// Wait for alice's phone to ring with the caller's context and to
    /// answer; returns its `incoming` event (the INVITE).
    fn agent_answers(&self) -> Value {
        let inv = self
            .agent
            .expect("incoming", Duration::from_secs(20), &self.srv);
        assert_queued_call_invite(&inv, &self.id, self.agent_transport);
        self.agent.expect_where(
            "call_state",
            |e| e["state"] == "CONFIRMED",
            Duration::from_secs(10),
            &self.srv,
        );
        inv
    }

    /// Let both phones finish; assert tones both ways, that the caller hung
    /// up, and the call records (see `finish_queued_call`).
    fn finish(&mut self) {
        finish_queued_call(
            &self.srv,
            &self.id,
            &mut self.agent,
            &mut self.caller,
            Bye::Caller,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// What PJSIP logged: SIP messages, SDP, its SRTP keys.
// ---------------------------------------------------------------------------------------------

/// One SIP message in a PJSIP log (level 5 logs every message it sends and
/// receives).
#[derive(Debug)]
struct LoggedMsg {
    /// `TX` (sent) or `RX` (received).
    dir: String,
    /// `Request msg INVITE/cseq=8211`, `Response msg 200/INVITE/cseq=8211`.
    summary: String,
    /// The whole message.
    text: String,
}

impl LoggedMsg {
    /// A received 200 OK to an INVITE (initial or re-INVITE).
    fn is_rx_200_invite(&self) -> bool {
        self.dir == "RX" && self.summary.starts_with("Response msg 200/INVITE/")
    }

    /// A sent INVITE request (initial or re-INVITE).
    fn is_tx_invite(&self) -> bool {
        self.dir == "TX" && self.summary.starts_with("Request msg INVITE/")
    }

    /// Its SDP body (empty when there is none).
    fn sdp(&self) -> &str {
        let t = &self.text;
        t.find("\n\n")
            .map(|i| &t[i + 2..])
            .unwrap_or_default()
            .trim()
    }
}

/// Every SIP message of a PJSIP log, in order. A message starts after a
/// line `... TX 1625 bytes Request msg INVITE/cseq=8211 (tdta...) to TLS
/// 127.0.0.1:5061:` and ends with `--end msg--`.
fn pjsip_messages(log: &str) -> Vec<LoggedMsg> {
    let mut out = Vec::new();
    let mut lines = log.lines();
    while let Some(line) = lines.next() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(i) = words.iter().position(|w| {
            (w.ends_with("TX") || w.ends_with("RX")) && w.trim_start_matches('.').len() == 2
        }) else {
            continue;
        };
        if words.get(i + 2) != Some(&"bytes") || words.len() < i + 6 {
            continue;
        }
        let dir = words[i].trim_start_matches('.').to_string();
        let summary = words[i + 3..i + 6].join(" ");
        let mut text = String::new();
        for l in lines.by_ref() {
            if l.starts_with("--end msg--") {
                break;
            }
            text.push_str(l);
            text.push('\n');
        }
        out.push(LoggedMsg { dir, summary, text });
    }
    out
}

/// The `m=audio` line of an SDP body.
fn audio_line(sdp: &str) -> &str {
    sdp.lines()
        .find(|l| l.starts_with("m=audio"))
        .unwrap_or_default()
}

/// The `a=crypto:` lines of an SDP body.
fn crypto_lines(sdp: &str) -> Vec<&str> {
    sdp.lines()
        .filter(|l| l.starts_with("a=crypto:"))
        .map(str::trim)
        .collect()
}

/// Assert that `sdp` (`what` in messages) is a secure offer or answer: an
/// `RTP/SAVP` audio stream with `a=crypto` lines whose suites ringback and
/// PJSIP know. Returns the crypto lines.
fn assert_secure_sdp<'a>(sdp: &'a str, what: &str) -> Vec<&'a str> {
    let m = audio_line(sdp);
    assert!(
        m.split_whitespace().nth(2) == Some("RTP/SAVP"),
        "{what}: the audio stream must be RTP/SAVP: `{m}`\n{sdp}"
    );
    let lines = crypto_lines(sdp);
    assert!(!lines.is_empty(), "{what}: no a=crypto line\n{sdp}");
    for l in &lines {
        let suite = l.split_whitespace().nth(1).unwrap_or_default();
        assert!(
            Suite::from_sdes_name(suite).is_some(),
            "{what}: unknown suite in `{l}`"
        );
        assert!(
            l.contains(" inline:"),
            "{what}: SDES keys are inline: `{l}`"
        );
    }
    lines
}

/// Assert that `sdp` is a plain one: `RTP/AVP`, no key.
fn assert_plain_sdp(sdp: &str, what: &str) {
    let m = audio_line(sdp);
    assert!(
        m.split_whitespace().nth(2) == Some("RTP/AVP"),
        "{what}: the audio stream must be RTP/AVP: `{m}`\n{sdp}"
    );
    assert!(
        crypto_lines(sdp).is_empty(),
        "{what}: a plain leg carries no key\n{sdp}"
    );
}

/// The SDP bodies of the 200 OKs `peer` received for its INVITEs (the
/// first answers its INVITE, the others its re-INVITEs).
fn answers_received(peer: &PyPeer) -> Vec<String> {
    pjsip_messages(&peer.log())
        .into_iter()
        .filter(|m| m.is_rx_200_invite() && !m.sdp().is_empty())
        .map(|m| m.sdp().to_string())
        .collect()
}

/// Assert that PJSIP itself ran SRTP on this phone's call (its log says
/// `SRTP started, keying=SDES`).
fn assert_pjsip_srtp_started(peer: &PyPeer) {
    assert!(
        peer.log().contains("SRTP started, keying=SDES"),
        "PJSIP {} never started SRTP:\n{}",
        peer.name,
        peer.diagnostics()
    );
}

/// The key `peer` protects its packets with, from its log (`TX:
/// AES_256_CM_HMAC_SHA1_80 key=...`, the last one if it re-keyed).
fn pjsip_tx_key(peer: &PyPeer) -> KeyMaterial {
    let log = peer.log();
    let line = log
        .lines()
        .rev()
        .find_map(|l| {
            l.split_once("TX: ")
                .map(|(_, r)| r)
                .filter(|r| r.contains(" key="))
        })
        .unwrap_or_else(|| panic!("no SRTP TX key in PJSIP's log:\n{}", peer.diagnostics()));
    let (suite, key) = line.trim().split_once(" key=").expect("`SUITE key=BASE64`");
    let suite = Suite::from_sdes_name(suite).unwrap_or_else(|| panic!("suite {suite}"));
    KeyMaterial::from_inline(suite, &format!("inline:{key}"))
        .unwrap_or_else(|e| panic!("PJSIP's key `{key}`: {e}"))
}

// ---------------------------------------------------------------------------------------------
// SRTP drop counters.
// ---------------------------------------------------------------------------------------------

/// The server's SRTP drop counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Drops {
    auth: u64,
    replayed: u64,
    malformed: u64,
}

fn drops(srv: &Server) -> Drops {
    Drops {
        auth: srv.metric("ringback_srtp_auth_failures_total") as u64,
        replayed: srv.metric("ringback_srtp_replayed_total") as u64,
        malformed: srv.metric("ringback_srtp_malformed_total") as u64,
    }
}

/// Poll the counters (up to 5 s) until `done` holds; the last reading.
fn wait_drops(srv: &Server, done: impl Fn(&Drops) -> bool) -> Drops {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let d = drops(srv);
        if done(&d) || Instant::now() > until {
            return d;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The counters once they stopped moving (two equal readings 300 ms apart).
fn settled_drops(srv: &Server) -> Drops {
    let mut last = drops(srv);
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(300));
        let now = drops(srv);
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

const NO_DROPS: Drops = Drops {
    auth: 0,
    replayed: 0,
    malformed: 0,
};

// ---------------------------------------------------------------------------------------------
// Capturing the media: `tests/peers/rtp_capture.py`.
// ---------------------------------------------------------------------------------------------

/// `python3 tests/peers/rtp_capture.py capture --dir D --log D/capture.log
/// ...`: an AF_PACKET capture on the loopback interface. It reports
/// `started` once its socket is open (or `error`: the spawn then fails).
const CAPTURE: PeerScript = PeerScript {
    label: "rtp_capture",
    script: "tests/peers/rtp_capture.py",
    require: || {},
    pick_port: || 0,
    place_args: |_, dir, log| vec!["--dir".into(), dir.into(), "--log".into(), log.into()],
    log_file: "capture.log",
    omit_field: "flows",
    log_tail: 40,
    skip_log_line: |_| false,
    term_grace: Duration::ZERO,
};

/// Start capturing UDP from or to `ports` for `secs` seconds, looking for
/// both test tones in the PCMU payloads; `extra` arguments for the script.
fn start_capture(ports: &[u16], secs: f64, extra: &[&str]) -> PyPeer {
    let mut a = args(&[
        "--duration",
        &secs.to_string(),
        "--tone",
        &CALLER_TONE.to_string(),
        "--tone",
        &AGENT_TONE.to_string(),
    ]);
    for p in ports {
        a.extend(args(&["--port", &p.to_string()]));
    }
    a.extend(args(extra));
    CAPTURE.spawn("capture", "capture", &a)
}

/// The capture's report once its time is up (it must exit cleanly).
fn capture_report(cap: &mut PyPeer, srv: &Server) -> Value {
    let report = cap.expect("capture", Duration::from_secs(60), srv);
    assert_eq!(
        cap.wait_exit(Duration::from_secs(10)),
        Some(0),
        "{}",
        cap.diagnostics()
    );
    report
}

/// The port of an `ip:port` string.
fn port_of(addr: &Value) -> u16 {
    addr.as_str()
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("not ip:port: {addr}"))
}

/// The flow (with the most packets) from port `src` or to port `dst`.
fn flow(report: &Value, src: Option<u16>, dst: Option<u16>) -> Value {
    report["flows"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| src.is_none_or(|p| port_of(&f["src"]) == p))
        .filter(|f| dst.is_none_or(|p| port_of(&f["dst"]) == p))
        .max_by_key(|f| f["packets"].as_u64())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "no flow from {src:?} to {dst:?} in the capture:\n{}",
                summary(report)
            )
        })
}

/// Whether the flow's PCMU payloads carry tone `freq`.
fn tone_in(flow: &Value, freq: f64) -> bool {
    flow["tones"][format!("{freq:.1}")]["detected"] == true
}

/// The capture without its raw packets, for messages.
fn summary(report: &Value) -> String {
    let mut r = report.clone();
    if let Some(flows) = r["flows"].as_array_mut() {
        for f in flows {
            if let Some(o) = f.as_object_mut() {
                o.remove("raw");
            }
        }
    }
    serde_json::to_string_pretty(&r).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// RTP packets by hand.
// ---------------------------------------------------------------------------------------------

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn rtp_seq(pkt: &[u8]) -> u16 {
    u16::from_be_bytes([pkt[2], pkt[3]])
}

fn rtp_ssrc(pkt: &[u8]) -> u32 {
    u32::from_be_bytes([pkt[8], pkt[9], pkt[10], pkt[11]])
}

/// Length of the RTP header with CSRCs and extension.
fn rtp_header_len(pkt: &[u8]) -> usize {
    let mut n = 12 + 4 * usize::from(pkt[0] & 0x0f);
    if pkt[0] & 0x10 != 0 {
        n += 4 + 4 * usize::from(u16::from_be_bytes([pkt[n + 2], pkt[n + 3]]));
    }
    n
}

/// RTP version 2 and not an RTCP packet type.
fn looks_like_rtp(pkt: &[u8]) -> bool {
    pkt.len() >= 12 && pkt[0] >> 6 == 2 && !(192..=223).contains(&pkt[1])
}

/// A forged SRTP packet: a valid RTP header (PCMU) and random bytes where
/// the encrypted payload and the tag go.
fn forged(ssrc: u32, seq: u16, tail: usize) -> Vec<u8> {
    let mut p = vec![0x80, 0];
    p.extend(seq.to_be_bytes());
    p.extend(rand::random::<u32>().to_be_bytes());
    p.extend(ssrc.to_be_bytes());
    p.extend((0..tail).map(|_| rand::random::<u8>()));
    p
}

/// Sample `n` of a full-scale-ish sine at `freq` (8 kHz), as PCMU (G.711
/// mu-law).
fn pcmu_tone_sample(freq: f64, n: usize) -> u8 {
    let x = 10_000.0 * (2.0 * std::f64::consts::PI * freq * n as f64 / 8_000.0).sin();
    let (sign, mut v) = if x < 0.0 {
        (0x80u8, (-x) as i32)
    } else {
        (0, x as i32)
    };
    v = v.min(32_635) + 0x84;
    let exp = (7 - (v.leading_zeros() as i32 - 17)).clamp(0, 7);
    let mant = ((v >> (exp + 3)) & 0x0f) as u8;
    !(sign | ((exp as u8) << 4) | mant)
}

/// `pkt` with one bit of its payload flipped (well before the tag).
fn bit_flipped(pkt: &[u8]) -> Vec<u8> {
    let mut p = pkt.to_vec();
    let at = rtp_header_len(pkt) + 7;
    p[at] ^= 0x10;
    p
}

/// Send `pkts` to `to`, a little apart (no loss on loopback).
fn send_all(sock: &UdpSocket, to: SocketAddr, pkts: &[Vec<u8>]) {
    for p in pkts {
        sock.send_to(p, to).expect("send");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Assert that ringback sent nothing to the forger's socket: its packets
/// did not steal the symmetric-RTP latch (ringback sends every 20 ms to
/// whatever it latched on).
fn assert_latch_kept(sock: &UdpSocket, what: &str, srv: &Server) {
    sock.set_read_timeout(Some(Duration::from_millis(400)))
        .expect("timeout");
    let mut buf = [0u8; 2048];
    if let Ok((n, from)) = sock.recv_from(&mut buf) {
        panic!(
            "after {what}, ringback sent media ({n} bytes from {from}) to the forger: the latch moved\n{}",
            srv.log()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 1. A secure call end to end.
// ---------------------------------------------------------------------------------------------

/// TLS + SRTP mandatory on every leg: the caller navigates the IVR by DTMF
/// (RFC 4733 events inside SRTP) into the support queue; alice's phone is
/// offered `RTP/SAVP` with keys, and both hear each other's tone.
#[test]
fn srtp_caller_reaches_srtp_agent_through_the_ivr_over_tls() {
    let mut call = Plan::new(ALL_SECURE, TLS_SRTP, TLS_SRTP).start();
    let media = call
        .caller
        .expect("media_active", Duration::from_secs(10), &call.srv);
    assert_eq!(media["codec"], "PCMU", "{media}");

    let inv = call.agent_answers();
    let msg = inv["message"].as_str().unwrap_or_default();
    let sdp = msg
        .replace("\r\n", "\n")
        .split_once("\n\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    let offered = assert_secure_sdp(&sdp, "ringback's INVITE to alice");
    // A mandatory offer has no plain stream beside the secure one.
    assert_eq!(
        sdp.lines().filter(|l| l.starts_with("m=audio")).count(),
        1,
        "{sdp}"
    );
    call.finish();

    // The caller's answer was secure too, with the one key ringback chose.
    let answers = answers_received(&call.caller);
    assert_eq!(answers.len(), 1, "{answers:?}");
    let chosen = assert_secure_sdp(&answers[0], "ringback's answer to the caller");
    assert_eq!(chosen.len(), 1, "an answer carries one key: {chosen:?}");
    // Ringback's offer to alice includes the suite every SDES phone has.
    assert!(
        offered
            .iter()
            .any(|l| l.contains(" AES_CM_128_HMAC_SHA1_80 ")),
        "{offered:?}"
    );
    assert_pjsip_srtp_started(&call.caller);
    assert_pjsip_srtp_started(&call.agent);
    // Nothing genuine was dropped: both PJSIP streams authenticated.
    assert_eq!(drops(&call.srv), NO_DROPS);
}

// ---------------------------------------------------------------------------------------------
// 2. What an eavesdropper on the wire gets.
// ---------------------------------------------------------------------------------------------

/// The four media flows of a queued call (caller ↔ ringback ↔ alice), as
/// captured while both tones play.
struct Wire {
    call: QueuedCall,
    report: Value,
    to_ringback_from_caller: Value,
    to_caller: Value,
    to_ringback_from_agent: Value,
    to_agent: Value,
}

/// A queued call under `policies` with both phones as `phone`, its media
/// captured for 3 s from alice's answer on; the phones finish (tones heard
/// both ways, records checked) before this returns.
fn captured_call(policies: Policies, phone: Phone) -> Wire {
    // The caller stays 4 s after hearing alice: the capture ends first.
    let mut plan = Plan::new(policies, phone, phone);
    plan.hangup_delay = 4.0;
    let mut call = plan.start();
    let rb_caller = ringback_rtp(&call.caller, &call.srv);
    call.agent_answers();
    let rb_agent = ringback_rtp(&call.agent, &call.srv);
    let mut cap = start_capture(&[rb_caller.port(), rb_agent.port()], 3.0, &[]);
    let report = capture_report(&mut cap, &call.srv);
    call.finish();
    let (c, a) = (rb_caller.port(), rb_agent.port());
    Wire {
        to_ringback_from_caller: flow(&report, None, Some(c)),
        to_caller: flow(&report, Some(c), None),
        to_ringback_from_agent: flow(&report, None, Some(a)),
        to_agent: flow(&report, Some(a), None),
        report,
        call,
    }
}

impl Wire {
    fn flows(&self) -> [(&'static str, &Value); 4] {
        [
            ("caller -> ringback", &self.to_ringback_from_caller),
            ("ringback -> caller", &self.to_caller),
            ("alice -> ringback", &self.to_ringback_from_agent),
            ("ringback -> alice", &self.to_agent),
        ]
    }

    /// Every flow has a steady stream of PCMU packets (the check looks at
    /// real media, not at an empty capture).
    fn assert_media_everywhere(&self) {
        for (name, f) in self.flows() {
            assert!(
                f["audio_packets"].as_u64().unwrap_or(0) >= 75,
                "{name}: too few PCMU packets captured ({f})\n{}",
                summary(&self.report)
            );
        }
    }
}

/// In a call with SRTP on both legs, the captured payloads show neither
/// tone in any direction, although both phones hear them: the audio is
/// encrypted, not missing.
#[test]
fn srtp_media_on_the_wire_reveals_no_tone() {
    let wire = captured_call(ALL_SECURE, TLS_SRTP);
    wire.assert_media_everywhere();
    for (name, f) in wire.flows() {
        // Decoded as PCMU the ciphertext is loud noise, not silence.
        let voiced = f["tones"][format!("{CALLER_TONE:.1}")]["voiced_blocks"]
            .as_u64()
            .unwrap_or(0);
        assert!(
            voiced >= 100,
            "{name}: the SRTP payloads should decode to noise: {f}"
        );
        for tone in [CALLER_TONE, AGENT_TONE] {
            assert!(
                !tone_in(f, tone),
                "{name}: {tone} Hz is audible in the captured SRTP payloads:\n{}",
                summary(&wire.report)
            );
        }
    }
    // The phones heard the tones (`finish_queued_call` asserted it), over
    // SRTP they both ran.
    assert_pjsip_srtp_started(&wire.call.caller);
    assert_pjsip_srtp_started(&wire.call.agent);
}

/// The control for the test above: the same capture of the same call with
/// SRTP off everywhere finds each tone in both flows that carry it, so the
/// check can fail.
#[test]
fn plain_rtp_media_on_the_wire_reveals_both_tones() {
    let wire = captured_call(ALL_PLAIN, TLS_PLAIN);
    wire.assert_media_everywhere();
    let expect = [
        (
            &wire.to_ringback_from_caller,
            CALLER_TONE,
            "caller -> ringback",
        ),
        (&wire.to_agent, CALLER_TONE, "ringback -> alice"),
        (
            &wire.to_ringback_from_agent,
            AGENT_TONE,
            "alice -> ringback",
        ),
        (&wire.to_caller, AGENT_TONE, "ringback -> caller"),
    ];
    for (f, tone, name) in expect {
        assert!(
            tone_in(f, tone),
            "{name}: {tone} Hz not found in plain PCMU payloads:\n{}",
            summary(&wire.report)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 3. A plain offer where SRTP is required.
// ---------------------------------------------------------------------------------------------

/// A PJSIP caller with SRTP disabled (a plain `RTP/AVP` offer) to a server
/// with `sip.srtp = "mandatory"` is refused with 488 and never connected.
#[test]
fn plain_offer_to_mandatory_srtp_gets_488() {
    let lab = Lab::new();
    let srv = srtp_server(&lab, ALL_SECURE);
    let mut c = caller(&srv, &lab, UDP_PLAIN, "2000", &["--timeout", "15"]);
    let end = c.expect_where(
        "call_state",
        |e| e["state"] == "DISCONNECTED",
        Duration::from_secs(15),
        &srv,
    );
    assert_eq!(end["code"], 488, "{end}\n{}", c.diagnostics());
    c.finish(&srv);
    assert!(
        c.events().iter().all(
            |e| !(e["event"] == "call_state" && e["state"] == "CONFIRMED")
                && e["event"] != "media_active"
        ),
        "the plain caller must never be connected:\n{}",
        c.diagnostics()
    );
    let offer = pjsip_messages(&c.log())
        .into_iter()
        .find(|m| m.is_tx_invite())
        .expect("PJSIP's INVITE in its log");
    assert_plain_sdp(offer.sdp(), "the caller's offer");
    assert!(
        srv.cdrs().iter().all(|r| r.answered_at.is_none()),
        "no call may be answered: {:?}",
        srv.cdrs()
    );
    assert_eq!(srv.metric("ringback_calls_answered_total"), 0.0);
    common::peer::assert_no_active_calls(&srv);
}

// ---------------------------------------------------------------------------------------------
// 4. Forged, replayed and tampered packets.
// ---------------------------------------------------------------------------------------------

/// During the IVR of a secure call, the test sends ringback's RTP port for
/// the caller (from its own UDP socket):
///
/// (a) forged packets (valid RTP header, random payload and tag; half with
///     the caller's SSRC ahead of its sequence, half with random SSRCs):
///     each counts as an authentication failure;
/// (b) genuine packets of the caller, captured on the wire and replayed:
///     each counts as a replay;
/// (c) genuine packets with one payload bit flipped: a copy of a captured
///     packet is caught by the replay check first (RFC 3711 §3.3 checks the
///     index before the tag), so it counts as a replay; to reach the tag
///     check, the test re-seals a captured packet's plaintext with the
///     caller's own key (from PJSIP's log) under a fresh SSRC, flips one
///     payload bit and sends it: each counts as an authentication failure,
///     while the same packets unflipped authenticate (no counter moves);
/// (d) clear RTP carrying a tone, and packets too short for SRTP or not RTP
///     at all: all dropped (the short and non-RTP ones as malformed).
///
/// Nothing of this moves the symmetric-RTP latch (ringback sends nothing
/// to the forger), and the call goes on: the caller's DTMF after all this
/// still works, alice takes the call, tones both ways, and no genuine
/// packet is dropped later.
#[test]
fn forged_replayed_and_tampered_srtp_is_dropped_and_counted() {
    // The caller presses 1 only after the attack.
    let mut plan = Plan::new(ALL_SECURE, TLS_SRTP, TLS_SRTP);
    plan.dtmf_at = 9.0;
    let mut call = plan.start();
    let srv = &call.srv;
    let rb = ringback_rtp(&call.caller, srv);

    // Genuine packets caller -> ringback, as an eavesdropper sees them.
    let mut cap = start_capture(
        &[rb.port()],
        1.5,
        &["--dump-dst-port", &rb.port().to_string()],
    );
    let report = capture_report(&mut cap, srv);
    let genuine: Vec<Vec<u8>> = flow(&report, None, Some(rb.port()))["raw"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .map(unhex)
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .filter(|p: &Vec<u8>| looks_like_rtp(p))
        .collect();
    assert!(
        genuine.len() >= 40,
        "too few genuine packets captured: {}",
        summary(&report)
    );
    let ssrc = rtp_ssrc(&genuine[0]);
    let last_seq = rtp_seq(genuine.last().expect("a packet"));
    let before = settled_drops(srv);
    assert_eq!(before, NO_DROPS, "a genuine SRTP call drops nothing");

    let forger = UdpSocket::bind("127.0.0.1:0").expect("bind");

    // (a) Forged packets: 20 on the caller's SSRC ahead of its sequence
    // (they pass the replay check, the tag rejects them), 20 on new SSRCs.
    let tail = 160 + 10;
    let mut forgeries: Vec<Vec<u8>> = (0..20u16)
        .map(|i| forged(ssrc, last_seq.wrapping_add(1_000 + i), tail))
        .collect();
    forgeries.extend((0..20u16).map(|i| forged(rand::random(), i.wrapping_mul(97), tail)));
    send_all(&forger, rb, &forgeries);
    let after_a = wait_drops(srv, |d| d.auth >= before.auth + 40);
    assert_eq!(
        after_a,
        Drops {
            auth: before.auth + 40,
            ..before
        },
        "40 forged packets: 40 authentication failures, nothing else"
    );
    assert_latch_kept(&forger, "forged packets", srv);

    // (b) Replays of 20 genuine packets.
    send_all(&forger, rb, &genuine[..20]);
    let after_b = wait_drops(srv, |d| d.replayed >= after_a.replayed + 20);
    assert_eq!(
        after_b,
        Drops {
            replayed: after_a.replayed + 20,
            ..after_a
        },
        "20 replayed packets: 20 replays, nothing else"
    );
    assert_latch_kept(&forger, "replayed packets", srv);

    // (c1) Copies of genuine packets with a payload bit flipped: their index
    // was seen, so the replay check drops them before the tag is looked at.
    let flipped: Vec<Vec<u8>> = genuine[20..30].iter().map(|p| bit_flipped(p)).collect();
    send_all(&forger, rb, &flipped);
    let after_c1 = wait_drops(srv, |d| d.replayed >= after_b.replayed + 10);
    assert_eq!(
        after_c1,
        Drops {
            replayed: after_b.replayed + 10,
            ..after_b
        },
        "10 tampered copies of packets already received: dropped as replays"
    );

    // (c2) The tag check on genuine ciphertext: the caller's own key opens
    // its captured packet (the one with the highest sequence number: no
    // rollover before it); its plaintext, sealed again with that key under
    // a new SSRC, is genuine SRTP at an index ringback never saw.
    let key = pjsip_tx_key(&call.caller);
    let sample = genuine.iter().max_by_key(|p| rtp_seq(p)).expect("a packet");
    let mut plain = Vec::new();
    Srtp::new(&key)
        .unprotect(sample, &mut plain)
        .unwrap_or_else(|e| panic!("the caller's key (from its log) opens its packets: {e:?}"));
    assert_eq!(plain[1] & 0x7f, 0, "PCMU inside");
    let fresh_ssrc = rand::random::<u32>() | 1;
    let mut seal = Srtp::new(&key);
    let resealed: Vec<Vec<u8>> = (0..10u16)
        .map(|i| {
            let mut p = plain.clone();
            p[2..4].copy_from_slice(&(500 + i).to_be_bytes());
            p[8..12].copy_from_slice(&fresh_ssrc.to_be_bytes());
            let mut out = Vec::new();
            seal.protect(&p, &mut out).expect("protect");
            out
        })
        .collect();
    let tampered: Vec<Vec<u8>> = resealed.iter().map(|p| bit_flipped(p)).collect();
    send_all(&forger, rb, &tampered);
    let after_c2 = wait_drops(srv, |d| d.auth >= after_c1.auth + 10);
    assert_eq!(
        after_c2,
        Drops {
            auth: after_c1.auth + 10,
            ..after_c1
        },
        "10 genuine packets with one payload bit flipped: 10 authentication failures"
    );
    // Unflipped, the very same packets authenticate: no counter moves. They
    // come from the forger's address while the phone is talking, so the
    // latch drops them all the same.
    send_all(&forger, rb, &resealed);
    assert_eq!(
        settled_drops(srv),
        after_c2,
        "the untampered twins authenticate"
    );
    assert_latch_kept(&forger, "authentic packets from another address", srv);

    // (d) Clear RTP (a PCMU frame of the agent's tone) on the secure
    // stream: indistinguishable from SRTP with a wrong tag, so the tag
    // check drops it (counted with the authentication failures today; the
    // sum is asserted), and packets too short for a header and a tag, or
    // not RTP at all, are malformed.
    let clear: Vec<Vec<u8>> = (0..10u16)
        .map(|i| {
            let mut p = vec![0x80, 0];
            p.extend(last_seq.wrapping_add(2_000 + i).to_be_bytes());
            p.extend((u32::from(i) * 160).to_be_bytes());
            p.extend(ssrc.to_be_bytes());
            p.extend((0..160).map(|n| pcmu_tone_sample(AGENT_TONE, n)));
            p
        })
        .collect();
    send_all(&forger, rb, &clear);
    let after_d1 = wait_drops(srv, |d| {
        d.auth + d.malformed >= after_c2.auth + after_c2.malformed + 10
    });
    assert_eq!(
        (after_d1.auth + after_d1.malformed, after_d1.replayed),
        (after_c2.auth + after_c2.malformed + 10, after_c2.replayed),
        "10 clear RTP packets on a secure stream: all dropped ({after_d1:?} after {after_c2:?})"
    );
    let mut junk: Vec<Vec<u8>> = (0..5).map(|_| forged(ssrc, last_seq, 0)).collect();
    junk.extend((0..5).map(|_| (0..40).map(|_| rand::random::<u8>() & 0x3f).collect()));
    send_all(&forger, rb, &junk);
    let after_d2 = wait_drops(srv, |d| d.malformed >= after_d1.malformed + 10);
    assert_eq!(
        after_d2,
        Drops {
            malformed: after_d1.malformed + 10,
            ..after_d1
        },
        "10 short or non-RTP packets: 10 malformed"
    );
    assert_latch_kept(&forger, "clear and malformed packets", srv);
    assert!(
        call.caller
            .events()
            .iter()
            .all(|e| e["event"] != "dtmf_sent"),
        "the attack took too long: the caller pressed 1 during it"
    );

    // The call goes on: the DTMF at 9 s, alice, tones both ways.
    call.agent_answers();
    call.finish();
    assert_eq!(
        settled_drops(&call.srv),
        after_d2,
        "no genuine packet was dropped after the attack"
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Hold and resume.
// ---------------------------------------------------------------------------------------------

/// On a call with SRTP on both legs, alice's phone puts the call on hold
/// and resumes it, then the caller does the same (re-INVITEs with new
/// SDP). Every answer ringback gives keeps the stream `RTP/SAVP` with its
/// own unchanged key, and both tones start only after the last resume, so
/// both phones hear each other only if media flows after it.
#[test]
fn srtp_hold_and_resume_keep_audio_and_keys() {
    let mut call = Plan::new(ALL_SECURE, TLS_SRTP, TLS_SRTP)
        .agent_args(&["--hold-at", "1", "--unhold-at", "3", "--play-at", "8"])
        .caller_args(&["--hold-at", "7", "--unhold-at", "9", "--play-at", "10"])
        .start();
    call.agent_answers();
    for peer in [&call.agent, &call.caller] {
        peer.expect("hold_sent", Duration::from_secs(15), &call.srv);
        peer.expect("unhold_sent", Duration::from_secs(15), &call.srv);
    }
    call.finish();
    // Each phone heard the other's tone only after its own resume (same
    // process clock), and played its own only after it too.
    for peer in [&call.agent, &call.caller] {
        let t = |event: &str| {
            peer.expect(event, Duration::from_secs(1), &call.srv)["t"]
                .as_f64()
                .unwrap_or_default()
        };
        let resumed = t("unhold_sent");
        assert!(
            t("tone") > resumed && t("playing") > resumed,
            "{}: tones must start after the resume:\n{}",
            peer.name,
            peer.diagnostics()
        );
    }

    // Alice's re-INVITEs got 2 answers; the caller's INVITE and re-INVITEs 3.
    for (peer, n) in [(&call.agent, 2), (&call.caller, 3)] {
        let answers = answers_received(peer);
        assert_eq!(
            answers.len(),
            n,
            "{}: answers to its INVITEs: {answers:#?}",
            peer.name
        );
        let keys: Vec<String> = answers
            .iter()
            .map(|sdp| {
                let lines = assert_secure_sdp(sdp, &format!("ringback's answer to {}", peer.name));
                assert_eq!(lines.len(), 1, "{sdp}");
                lines[0]
                    .split_whitespace()
                    .nth(2)
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        assert!(
            keys.windows(2).all(|w| w[0] == w[1]),
            "{}: ringback's key changed across re-INVITEs: {keys:?}",
            peer.name
        );
        // The hold was answered as a hold, the resume as a resume.
        let held = &answers[answers.len() - 2];
        let resumed = &answers[answers.len() - 1];
        assert!(held.contains("a=recvonly"), "answer to hold: {held}");
        assert!(
            resumed.contains("a=sendrecv"),
            "answer to resume: {resumed}"
        );
    }
    assert_eq!(
        settled_drops(&call.srv),
        NO_DROPS,
        "no genuine packet dropped across the re-INVITEs"
    );
}

// ---------------------------------------------------------------------------------------------
// 6. A secure caller, a plain agent phone.
// ---------------------------------------------------------------------------------------------

/// Default policies (callers optional, alice off): a TLS caller with SRTP
/// mandatory reaches alice's plain UDP phone. The caller's leg is `RTP/SAVP`,
/// the INVITE to alice plain `RTP/AVP`; ringback decrypts one leg and sends
/// the other in the clear, and both tones get through.
#[test]
fn srtp_caller_reaches_plain_agent_phone() {
    let policies = Policies {
        callers: None,
        alice: None,
    };
    let mut call = Plan::new(policies, TLS_SRTP, UDP_PLAIN).start();
    let inv = call.agent_answers();
    let msg = inv["message"]
        .as_str()
        .unwrap_or_default()
        .replace("\r\n", "\n");
    let sdp = msg.split_once("\n\n").map(|(_, b)| b).unwrap_or_default();
    assert_plain_sdp(sdp, "ringback's INVITE to alice (srtp off)");
    call.finish();
    let answers = answers_received(&call.caller);
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_secure_sdp(&answers[0], "ringback's answer to the caller");
    assert_pjsip_srtp_started(&call.caller);
    assert!(
        !call.agent.log().contains("SRTP started"),
        "alice's phone runs plain RTP"
    );
    assert_eq!(settled_drops(&call.srv), NO_DROPS);
}
