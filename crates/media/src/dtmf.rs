//! DTMF: RFC 4733 telephone-events (receive and send) and SIP INFO bodies.
//!
//! Peers are known to lose digits in three ways (see DESIGN.md "pitfalls"): mismatched
//! payload types, duplicate/missing packets of one event (three redundant end packets,
//! end without start, missing marker), and tools that replay the same capture twice with
//! identical timestamps. [`DtmfReceiver`] therefore identifies a key press by its RTP
//! timestamp and event code, not by packet, and reports it on the first packet seen.

use crate::rtp::RtpSender;
use std::time::{Duration, Instant};

/// Why a telephone-event payload was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DtmfError {
    /// RFC 4733 §2.3 events are 4 bytes; fewer cannot be interpreted.
    #[error("telephone-event payload too short: {0} bytes, need 4")]
    TooShort(usize),
}

/// One RFC 4733 §2.3 event block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TelephoneEvent {
    /// Event code: 0–9 digits, 10 `*`, 11 `#`, 12–15 `A`–`D`, 16 flash (RFC 4733 §3.2).
    pub event: u8,
    /// E bit: this packet ends the event (sent three times for reliability).
    pub end: bool,
    /// Power level in −dBm0 (0–63); informative only.
    pub volume: u8,
    /// Duration so far in timestamp units (8000 Hz), counted from the event timestamp.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Serialises the event block into 4 bytes (R bit zero, volume masked to 6 bits).
    pub fn encode(&self, out: &mut [u8; 4]) {
        out[0] = self.event;
        out[1] = (self.volume & 0x3F) | if self.end { 0x80 } else { 0 };
        out[2..4].copy_from_slice(&self.duration.to_be_bytes());
    }
}

/// Parses the first event block of a telephone-event payload. Extra bytes (RFC 2198
/// redundancy or trailing blocks) are ignored because the first block is the current
/// state and the receiver dedupes by timestamp anyway.
pub fn parse_event(payload: &[u8]) -> Result<TelephoneEvent, DtmfError> {
    match payload {
        [event, flags, d0, d1, ..] => Ok(TelephoneEvent {
            event: *event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3F,
            duration: u16::from_be_bytes([*d0, *d1]),
        }),
        _ => Err(DtmfError::TooShort(payload.len())),
    }
}

/// Maps an RFC 4733 event code to the DTMF key it represents; other events (flash,
/// fax tones, …) are not keys and give `None`.
pub fn event_to_char(event: u8) -> Option<char> {
    match event {
        0..=9 => Some((b'0' + event) as char),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some((b'A' + event - 12) as char),
        _ => None,
    }
}

/// Inverse of [`event_to_char`], for sending digits. Accepts lower-case `a`–`d`.
pub fn char_to_event(c: char) -> Option<u8> {
    match c {
        '0'..='9' => Some(c as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(c as u8 - b'A' + 12),
        'a'..='d' => Some(c as u8 - b'a' + 12),
        _ => None,
    }
}

/// After an event has ended, packets with the same timestamp and code that arrive
/// after this much silence are a *new* press (pcap replays with identical timestamps).
pub const REPEAT_GAP: Duration = Duration::from_millis(250);

/// Even without an end packet, an event not heard of for this long is over; a packet
/// with its timestamp after that is a new press rather than a very late duplicate.
pub const STALE_GAP: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy)]
struct Seen {
    ts: u32,
    event: u8,
    ended: bool,
    last: Instant,
}

/// Turns a stream of telephone-event packets into key presses, each reported exactly
/// once and as early as possible.
///
/// A small history of recent events (not just the last one) makes a late, reordered
/// packet of the previous digit a duplicate instead of a phantom key press.
#[derive(Debug, Clone, Default)]
pub struct DtmfReceiver {
    recent: [Option<Seen>; 4],
    next_slot: usize,
}

impl DtmfReceiver {
    /// Creates a receiver with no history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one received telephone-event (its RTP timestamp, parsed payload and arrival
    /// time). Returns the key on the first packet of a new press, `None` for duplicates,
    /// continuations, redundant end packets and non-key events.
    pub fn on_rtp(&mut self, rtp_ts: u32, ev: &TelephoneEvent, now: Instant) -> Option<char> {
        let found = self
            .recent
            .iter_mut()
            .flatten()
            .find(|s| s.ts == rtp_ts && s.event == ev.event);
        if let Some(seen) = found {
            let idle = now.saturating_duration_since(seen.last);
            let new_press = (seen.ended && idle > REPEAT_GAP) || idle > STALE_GAP;
            seen.last = now;
            if new_press {
                seen.ended = ev.end;
                return event_to_char(ev.event);
            }
            seen.ended |= ev.end;
            return None;
        }
        let slot = self.next_slot % self.recent.len();
        self.recent[slot] = Some(Seen {
            ts: rtp_ts,
            event: ev.event,
            ended: ev.end,
            last: now,
        });
        self.next_slot = slot + 1;
        event_to_char(ev.event)
    }

    /// Forgets all history, e.g. when the remote SSRC changes after a re-INVITE.
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

/// Generates the RFC 4733 packet train for one outgoing key press.
///
/// Call [`DtmfSender::next_packet`] once per packet interval (20 ms) *instead of* an
/// audio frame until it returns `None`. It sends the first packet with the marker bit,
/// continuation packets with growing duration, then the end packet three times
/// (RFC 4733 §2.5.1.4), and finally advances the audio timestamp over the time the event
/// took and flags a new talkspurt, so audio resumes with consistent timing.
#[derive(Debug, Clone)]
pub struct DtmfSender {
    event: u8,
    volume: u8,
    total: u16,
    event_ts: u32,
    ticks: u32,
    ends_sent: u8,
    done: bool,
}

/// Samples per packet interval while sending events (20 ms at 8 kHz).
const EVENT_TICK: u32 = 160;

impl DtmfSender {
    /// Creates a sender for `event` lasting `duration_samples` (at least one interval)
    /// at `volume` −dBm0 (10 is typical).
    pub fn new(event: u8, duration_samples: u16, volume: u8) -> Self {
        DtmfSender {
            event,
            volume: volume & 0x3F,
            total: duration_samples.max(EVENT_TICK as u16),
            event_ts: 0,
            ticks: 0,
            ends_sent: 0,
            done: false,
        }
    }

    /// Creates a sender for a key (`0-9*#A-D`) lasting `ms` milliseconds.
    pub fn for_digit(digit: char, ms: u32) -> Option<Self> {
        let samples = (ms.saturating_mul(8)).min(u16::MAX as u32) as u16;
        Some(Self::new(char_to_event(digit)?, samples, 10))
    }

    /// Whether the whole train including the three end packets has been sent.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Writes the next packet of the train into `out` using `rtp`'s SSRC/sequence and
    /// payload type `pt`; `None` when finished (or if `out` is shorter than 16 bytes).
    pub fn next_packet(&mut self, rtp: &mut RtpSender, pt: u8, out: &mut [u8]) -> Option<usize> {
        if self.done {
            return None;
        }
        if self.ticks == 0 {
            self.event_ts = rtp.next_ts();
        }
        let elapsed = (self.ticks + 1).saturating_mul(EVENT_TICK);
        let end = elapsed >= self.total as u32;
        let ev = TelephoneEvent {
            event: self.event,
            end,
            volume: self.volume,
            duration: elapsed.min(self.total as u32) as u16,
        };
        let n = rtp.write_telephone_event(pt, self.event_ts, &ev, self.ticks == 0, out);
        if n == 0 {
            return None;
        }
        self.ticks += 1;
        if end {
            self.ends_sent += 1;
            if self.ends_sent >= 3 {
                self.done = true;
                rtp.skip(self.ticks * EVENT_TICK);
                rtp.start_talkspurt();
            }
        }
        Some(n)
    }
}

/// Extracts a key from a SIP INFO request body (the DTMF fallback many PBXes and SIPp
/// scenarios use). Supports `application/dtmf-relay` (`Signal=5` / `Duration=160` lines)
/// and `application/dtmf` (a bare key or event code). Tolerant of case, whitespace, LF
/// or CRLF, content-type parameters, and numeric codes (`10` = `*`, `11` = `#`).
pub fn parse_sip_info(content_type: &str, body: &[u8]) -> Option<char> {
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    let body = std::str::from_utf8(body).ok()?;
    if media_type.eq_ignore_ascii_case("application/dtmf-relay") {
        body.lines().find_map(|line| {
            let (key, value) = line.split_once('=')?;
            if key.trim().eq_ignore_ascii_case("signal") {
                parse_signal(value)
            } else {
                None
            }
        })
    } else if media_type.eq_ignore_ascii_case("application/dtmf") {
        parse_signal(body)
    } else {
        None
    }
}

fn parse_signal(value: &str) -> Option<char> {
    let v = value.trim();
    if let Ok(code) = v.parse::<u8>() {
        return event_to_char(code);
    }
    let mut chars = v.chars();
    let c = chars.next()?;
    if chars.next().is_some() {
        return None;
    }
    char_to_event(c).and_then(event_to_char)
}

#[cfg(test)]
// Tests are a shell: they may read the clock (issue 12).
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use crate::rtp;

    fn ev(event: u8, end: bool, duration: u16) -> TelephoneEvent {
        TelephoneEvent {
            event,
            end,
            volume: 10,
            duration,
        }
    }

    /// Feeds a realistic train for one press: start, continuations, 3 end packets.
    fn press(rx: &mut DtmfReceiver, ts: u32, event: u8, t0: Instant) -> Vec<char> {
        let mut got = vec![];
        let mut t = t0;
        for d in [160u16, 320, 480, 640] {
            got.extend(rx.on_rtp(ts, &ev(event, false, d), t));
            t += Duration::from_millis(20);
        }
        for _ in 0..3 {
            got.extend(rx.on_rtp(ts, &ev(event, true, 800), t));
            t += Duration::from_millis(20);
        }
        got
    }

    #[test]
    fn parse_and_encode_event() {
        let e = parse_event(&[5, 0x8A, 0x03, 0x20]).unwrap();
        assert_eq!(
            e,
            TelephoneEvent {
                event: 5,
                end: true,
                volume: 10,
                duration: 800
            }
        );
        let mut b = [0u8; 4];
        e.encode(&mut b);
        assert_eq!(b, [5, 0x8A, 0x03, 0x20]);
        // Reserved bit ignored, redundant trailing blocks ignored.
        let e = parse_event(&[11, 0x4A, 0, 160, 9, 9, 9, 9]).unwrap();
        assert_eq!((e.event, e.end, e.volume, e.duration), (11, false, 10, 160));
        assert_eq!(parse_event(&[1, 2, 3]), Err(DtmfError::TooShort(3)));
        assert_eq!(parse_event(&[]), Err(DtmfError::TooShort(0)));
    }

    #[test]
    fn event_codes_map_to_keys() {
        let keys: String = (0..=15).filter_map(event_to_char).collect();
        assert_eq!(keys, "0123456789*#ABCD");
        assert_eq!(event_to_char(16), None);
        assert_eq!(event_to_char(255), None);
        for (i, c) in keys.chars().enumerate() {
            assert_eq!(char_to_event(c), Some(i as u8));
        }
        assert_eq!(char_to_event('b'), Some(13));
        assert_eq!(char_to_event('x'), None);
    }

    #[test]
    fn full_press_with_three_end_packets_reports_once() {
        let mut rx = DtmfReceiver::new();
        assert_eq!(press(&mut rx, 1000, 5, Instant::now()), vec!['5']);
    }

    #[test]
    fn end_packets_without_start_report_once() {
        let mut rx = DtmfReceiver::new();
        let t = Instant::now();
        assert_eq!(rx.on_rtp(4000, &ev(11, true, 800), t), Some('#'));
        assert_eq!(
            rx.on_rtp(4000, &ev(11, true, 800), t + Duration::from_millis(20)),
            None
        );
        assert_eq!(
            rx.on_rtp(4000, &ev(11, true, 800), t + Duration::from_millis(40)),
            None
        );
    }

    #[test]
    fn continuation_without_marker_or_start_reports_once() {
        // The receiver never looks at the marker; a press first seen mid-way counts.
        let mut rx = DtmfReceiver::new();
        let t = Instant::now();
        assert_eq!(rx.on_rtp(7, &ev(1, false, 480), t), Some('1'));
        assert_eq!(
            rx.on_rtp(7, &ev(1, false, 640), t + Duration::from_millis(20)),
            None
        );
        assert_eq!(
            rx.on_rtp(7, &ev(1, true, 800), t + Duration::from_millis(40)),
            None
        );
    }

    #[test]
    fn same_digit_twice_with_different_timestamps() {
        let mut rx = DtmfReceiver::new();
        let t = Instant::now();
        let mut got = press(&mut rx, 1000, 3, t);
        // Second press 60 ms after the first one ended: quick, but new timestamp.
        got.extend(press(&mut rx, 3000, 3, t + Duration::from_millis(200)));
        assert_eq!(got, vec!['3', '3']);
    }

    #[test]
    fn pcap_replayed_with_identical_timestamps() {
        let mut rx = DtmfReceiver::new();
        let t = Instant::now();
        let mut got = press(&mut rx, 1000, 1, t);
        got.extend(press(&mut rx, 1000, 1, t + Duration::from_secs(1)));
        assert_eq!(got, vec!['1', '1']);
    }

    #[test]
    fn late_redundant_end_packet_is_not_a_new_press() {
        let mut rx = DtmfReceiver::new();
        let t = Instant::now();
        assert_eq!(press(&mut rx, 1000, 1, t), vec!['1']);
        // A delayed copy within the repeat gap of the last packet.
        assert_eq!(
            rx.on_rtp(1000, &ev(1, true, 800), t + Duration::from_millis(300)),
            None
        );
        // Without an end packet, a long gap is tolerated as continuation up to STALE_GAP.
        assert_eq!(rx.on_rtp(50, &ev(2, false, 160), t), Some('2'));
        assert_eq!(
            rx.on_rtp(50, &ev(2, false, 320), t + Duration::from_millis(900)),
            None
        );
        assert_eq!(
            rx.on_rtp(50, &ev(2, false, 160), t + Duration::from_secs(4)),
            Some('2')
        );
    }

    #[test]
    fn rapid_different_digits_and_reordering() {
        let mut rx = DtmfReceiver::new();
        let t = Instant::now();
        let ms = |n| t + Duration::from_millis(n);
        let mut got = vec![];
        got.extend(rx.on_rtp(100, &ev(1, false, 160), ms(0)));
        got.extend(rx.on_rtp(100, &ev(1, true, 320), ms(20)));
        got.extend(rx.on_rtp(500, &ev(2, false, 160), ms(40)));
        // Late duplicate end of the previous digit arrives after the next one started.
        got.extend(rx.on_rtp(100, &ev(1, true, 320), ms(45)));
        got.extend(rx.on_rtp(500, &ev(2, true, 320), ms(60)));
        // Buggy sender reusing one timestamp for different keys: code differs → new.
        got.extend(rx.on_rtp(500, &ev(3, true, 320), ms(80)));
        got.extend(rx.on_rtp(900, &ev(16, false, 160), ms(100))); // flash: not a key
        got.extend(rx.on_rtp(1300, &ev(12, false, 160), ms(120)));
        assert_eq!(got.iter().collect::<String>(), "123A");
        rx.reset();
        assert_eq!(rx.on_rtp(1300, &ev(12, false, 320), ms(140)), Some('A'));
    }

    /// The packet trains of SIPp's shipped `dtmf_2833_1.pcap` and `dtmf_2833_pound.pcap`
    /// (as replayed by `play_pcap_audio`): (µs offset, RTP packet). Note the marker on
    /// the first packet only, the constant timestamp, and the three end packets sent
    /// within 100 µs with the *same* sequence number.
    const SIPP_1: [(u64, &str); 10] = [
        (0, "80e51f30000033e00e05384e010a0000"),
        (19992, "80651f31000033e00e05384e010a0140"),
        (39881, "80651f32000033e00e05384e010a0280"),
        (59911, "80651f33000033e00e05384e010a03c0"),
        (79983, "80651f34000033e00e05384e010a0500"),
        (99925, "80651f35000033e00e05384e010a0640"),
        (119865, "80651f36000033e00e05384e010a0780"),
        (139846, "80651f37000033e00e05384e018a08c0"),
        (139888, "80651f37000033e00e05384e018a08c0"),
        (139929, "80651f37000033e00e05384e018a08c0"),
    ];
    const SIPP_POUND: [(u64, &str); 10] = [
        (0, "80e520f4000169e00e05384e0b0a0000"),
        (19871, "806520f5000169e00e05384e0b0a0140"),
        (39830, "806520f6000169e00e05384e0b0a0280"),
        (59828, "806520f7000169e00e05384e0b0a03c0"),
        (79899, "806520f8000169e00e05384e0b0a0500"),
        (99970, "806520f9000169e00e05384e0b0a0640"),
        (119846, "806520fa000169e00e05384e0b0a0780"),
        (139803, "806520fb000169e00e05384e0b8a08c0"),
        (139883, "806520fb000169e00e05384e0b8a08c0"),
        (139894, "806520fb000169e00e05384e0b8a08c0"),
    ];

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn sipp_pcap_replays() {
        let mut rx = DtmfReceiver::new();
        let t0 = Instant::now();
        let mut got = String::new();
        // "1", the same pcap again 1 s later, then "#", then "1" 300 ms after that.
        for (start_ms, train) in [
            (0, &SIPP_1),
            (1000, &SIPP_1),
            (2000, &SIPP_POUND),
            (2440, &SIPP_1),
        ] {
            for (us, pkt) in train.iter() {
                let bytes = hex(pkt);
                let h = rtp::parse(&bytes).unwrap();
                assert_eq!(h.pt, 101);
                let e = parse_event(h.payload(&bytes)).unwrap();
                let now = t0 + Duration::from_millis(start_ms) + Duration::from_micros(*us);
                got.extend(rx.on_rtp(h.ts, &e, now));
            }
        }
        assert_eq!(got, "11#1");
    }

    #[test]
    fn sender_train_is_understood_by_receiver() {
        let mut tx = rtp::RtpSender::new(1, 500, 8000);
        let mut d = DtmfSender::for_digit('#', 100).unwrap();
        let mut rx = DtmfReceiver::new();
        let t = Instant::now();
        let mut buf = [0u8; 64];
        let mut packets = vec![];
        while let Some(n) = d.next_packet(&mut tx, 101, &mut buf) {
            let h = rtp::parse(&buf[..n]).unwrap();
            let e = parse_event(h.payload(&buf[..n])).unwrap();
            packets.push((h, e));
        }
        assert!(d.is_done());
        // 100 ms = 800 samples: 5 ticks, the 5th being the first end, + 2 more ends.
        assert_eq!(packets.len(), 7);
        assert!(packets[0].0.marker);
        assert!(packets[1..].iter().all(|(h, _)| !h.marker));
        assert!(packets.iter().all(|(h, _)| h.ts == 8000 && h.pt == 101));
        let seqs: Vec<u16> = packets.iter().map(|(h, _)| h.seq).collect();
        assert_eq!(seqs, (500..507).collect::<Vec<u16>>());
        let durs: Vec<u16> = packets.iter().map(|(_, e)| e.duration).collect();
        assert_eq!(durs, vec![160, 320, 480, 640, 800, 800, 800]);
        let ends = packets.iter().filter(|(_, e)| e.end).count();
        assert_eq!(ends, 3);
        let keys: Vec<char> = packets
            .iter()
            .enumerate()
            .filter_map(|(i, (h, e))| rx.on_rtp(h.ts, e, t + Duration::from_millis(20 * i as u64)))
            .collect();
        assert_eq!(keys, vec!['#']);
        // Audio resumes after the 7 intervals the event occupied, with a marker.
        assert_eq!(tx.next_ts(), 8000 + 7 * 160);
        assert!(tx.marker_pending());
        assert_eq!(d.next_packet(&mut tx, 101, &mut buf), None);
    }

    #[test]
    fn sip_info_dtmf_relay() {
        let ct = "application/dtmf-relay";
        assert_eq!(
            parse_sip_info(ct, b"Signal=5\r\nDuration=160\r\n"),
            Some('5')
        );
        assert_eq!(parse_sip_info(ct, b"signal = *\nduration=100"), Some('*'));
        assert_eq!(
            parse_sip_info("Application/DTMF-Relay; charset=x", b"Signal= #\r\n"),
            Some('#')
        );
        assert_eq!(
            parse_sip_info(ct, b"Duration=160\r\nSignal=10\r\n"),
            Some('*')
        );
        assert_eq!(parse_sip_info(ct, b"Signal=11"), Some('#'));
        assert_eq!(parse_sip_info(ct, b"Signal=d"), Some('D'));
        assert_eq!(parse_sip_info(ct, b"Signal=16"), None);
        assert_eq!(parse_sip_info(ct, b"Signal=55"), None);
        assert_eq!(parse_sip_info(ct, b"Signal=\r\n"), None);
        assert_eq!(parse_sip_info(ct, b"Duration=160"), None);
        assert_eq!(parse_sip_info(ct, &[0xFF, 0xFE]), None);
    }

    #[test]
    fn sip_info_dtmf_and_other_types() {
        assert_eq!(parse_sip_info("application/dtmf", b"5"), Some('5'));
        assert_eq!(parse_sip_info("application/dtmf", b" 11\r\n"), Some('#'));
        assert_eq!(parse_sip_info("application/dtmf", b"#"), Some('#'));
        assert_eq!(parse_sip_info("application/dtmf", b"55"), None);
        assert_eq!(parse_sip_info("application/dtmf", b""), None);
        assert_eq!(parse_sip_info("text/plain", b"Signal=5"), None);
        assert_eq!(parse_sip_info("application/sdp", b"5"), None);
    }
}
