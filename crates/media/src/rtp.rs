//! RTP (RFC 3550) header parsing and packet writing without allocation.
//!
//! The server pushes ~500,000 packets a second on two cores, so the per-packet path
//! must be a handful of stores: [`RtpSender::write`] writes a 12-byte header and copies
//! a pre-encoded frame into a caller-provided buffer, and [`parse`] returns a view with
//! offsets into the received datagram instead of copying the payload. Both are
//! cross-checked against `rtc-rtp` in the tests; `rtc-rtp` itself is not used on the
//! hot path because its `Packet` allocates (`Bytes`, `Vec` of CSRCs/extensions).

use crate::dtmf::TelephoneEvent;

/// Size of the fixed RTP header (no CSRC, no extension), which is all we ever send.
pub const HEADER_LEN: usize = 12;

/// Why a datagram was not accepted as RTP. Every malformed input maps to one of these;
/// nothing in [`parse`] can panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    /// Shorter than the header it announces (fixed part, CSRCs or extension).
    #[error("RTP packet truncated: need {needed} bytes, have {have}")]
    Truncated {
        /// Bytes required by the header fields read so far.
        needed: usize,
        /// Bytes actually present.
        have: usize,
    },
    /// Version field is not 2 (STUN, RTCP-less garbage, or an ancient RTP v1 peer).
    #[error("unsupported RTP version {0}")]
    BadVersion(u8),
    /// Padding bit set but the padding count is 0 or larger than the payload area.
    #[error("invalid RTP padding length {0}")]
    BadPadding(u8),
    /// The caller's output buffer cannot hold the packet.
    #[error("output buffer too small: need {needed} bytes, have {have}")]
    BufferTooSmall {
        /// Bytes the packet needs.
        needed: usize,
        /// Bytes the buffer has.
        have: usize,
    },
}

/// A zero-copy view of an RTP header: plain fields plus where the payload lies in the
/// datagram, so the receive path never copies or allocates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeaderView {
    /// RTP version (always 2 after a successful [`parse`]).
    pub version: u8,
    /// Whether the packet carried padding (already excluded from `payload_len`).
    pub padding: bool,
    /// Whether a header extension was present (skipped, not interpreted).
    pub extension: bool,
    /// Number of CSRC identifiers that were skipped.
    pub csrc_count: u8,
    /// Marker bit: start of a talkspurt for audio, first packet of a DTMF event.
    pub marker: bool,
    /// Payload type (7 bits).
    pub pt: u8,
    /// Sequence number.
    pub seq: u16,
    /// Media timestamp in the payload's clock (8000 Hz for G.711 and DTMF).
    pub ts: u32,
    /// Synchronisation source of the sender.
    pub ssrc: u32,
    /// Offset of the payload within the datagram.
    pub payload_offset: usize,
    /// Length of the payload, padding excluded.
    pub payload_len: usize,
}

impl RtpHeaderView {
    /// Returns the payload slice of `pkt` (the same datagram that was parsed). Returns
    /// an empty slice, never panics, if a different/shorter buffer is passed.
    pub fn payload<'a>(&self, pkt: &'a [u8]) -> &'a [u8] {
        pkt.get(self.payload_offset..self.payload_offset + self.payload_len)
            .unwrap_or(&[])
    }
}

#[inline]
fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

#[inline]
fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
        *b.get(at + 2)?,
        *b.get(at + 3)?,
    ]))
}

/// Parses an RTP header (RFC 3550 §5.1), skipping CSRCs and a header extension and
/// removing padding.
///
/// Rejects version ≠ 2 and any truncation, so garbage on the media port (scanners,
/// STUN, stray RTCP) is discarded cheaply by the caller.
pub fn parse(pkt: &[u8]) -> Result<RtpHeaderView, RtpError> {
    let have = pkt.len();
    let truncated = |needed| RtpError::Truncated { needed, have };
    if have < HEADER_LEN {
        return Err(truncated(HEADER_LEN));
    }
    let b0 = pkt[0];
    let b1 = pkt[1];
    let version = b0 >> 6;
    if version != 2 {
        return Err(RtpError::BadVersion(version));
    }
    let padding = b0 & 0x20 != 0;
    let extension = b0 & 0x10 != 0;
    let csrc_count = b0 & 0x0F;
    let mut offset = HEADER_LEN + 4 * csrc_count as usize;
    if have < offset {
        return Err(truncated(offset));
    }
    if extension {
        // 16-bit profile, 16-bit length in 32-bit words, then the words.
        let words = be16(pkt, offset + 2).ok_or(truncated(offset + 4))? as usize;
        offset += 4 + 4 * words;
        if have < offset {
            return Err(truncated(offset));
        }
    }
    let mut payload_len = have - offset;
    if padding {
        // The last octet counts the padding octets including itself (RFC 3550 §5.1).
        let pad = pkt[have - 1];
        if payload_len == 0 || pad == 0 || pad as usize > payload_len {
            return Err(RtpError::BadPadding(pad));
        }
        payload_len -= pad as usize;
    }
    Ok(RtpHeaderView {
        version,
        padding,
        extension,
        csrc_count,
        marker: b1 & 0x80 != 0,
        pt: b1 & 0x7F,
        seq: be16(pkt, 2).unwrap_or(0),
        ts: be32(pkt, 4).unwrap_or(0),
        ssrc: be32(pkt, 8).unwrap_or(0),
        payload_offset: offset,
        payload_len,
    })
}

/// Heuristic from RFC 5761 §4 to tell RTCP from RTP when both share one port
/// (`a=rtcp-mux`, or peers that send RTCP to the RTP port anyway): RTCP packet types
/// 192–223 fall where RTP's marker+PT byte would be.
pub fn looks_like_rtcp(pkt: &[u8]) -> bool {
    pkt.len() >= 8 && pkt[0] >> 6 == 2 && (192..=223).contains(&pkt[1])
}

/// Sequence/timestamp state of one outgoing RTP stream.
///
/// One per call leg; the media clock calls [`RtpSender::write`] every 20 ms. It never
/// allocates, never reads a clock and keeps the RFC 3550 invariants: seq +1 per packet,
/// timestamp advancing by sampling instants (also across silence via
/// [`RtpSender::skip`]), marker on the first packet of each talkspurt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpSender {
    ssrc: u32,
    seq: u16,
    ts: u32,
    marker_pending: bool,
}

impl RtpSender {
    /// Creates a sender with explicit initial values (tests, or resuming a stream after
    /// a re-INVITE). The first packet carries the marker bit.
    pub fn new(ssrc: u32, initial_seq: u16, initial_ts: u32) -> Self {
        RtpSender {
            ssrc,
            seq: initial_seq,
            ts: initial_ts,
            marker_pending: true,
        }
    }

    /// Creates a sender with random SSRC, sequence number and timestamp, as RFC 3550
    /// §5.1 requires to make known-plaintext attacks and SSRC collisions unlikely.
    pub fn random() -> Self {
        Self::new(rand::random(), rand::random(), rand::random())
    }

    /// Same as [`RtpSender::random`] with a caller-supplied RNG (reproducible tests,
    /// or one cheap RNG shared by the media worker).
    pub fn from_rng<R: rand::Rng + ?Sized>(rng: &mut R) -> Self {
        Self::new(rng.random(), rng.random(), rng.random())
    }

    /// The stream's SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Sequence number the next packet will carry.
    pub fn next_seq(&self) -> u16 {
        self.seq
    }

    /// Timestamp the next audio packet will carry.
    pub fn next_ts(&self) -> u32 {
        self.ts
    }

    /// Whether the next packet will carry the marker bit.
    pub fn marker_pending(&self) -> bool {
        self.marker_pending
    }

    /// Marks the next packet as the first of a talkspurt (after silence suppression, a
    /// hold, or a switch from one prompt source to another), per RFC 3551 §4.1.
    pub fn start_talkspurt(&mut self) {
        self.marker_pending = true;
    }

    /// Advances the timestamp over `samples` of media that are not sent (silence, hold),
    /// keeping the sequence number, so the receiver's jitter buffer sees a gap in time
    /// but no packet loss (RFC 3550 §5.1).
    pub fn skip(&mut self, samples: u32) {
        self.ts = self.ts.wrapping_add(samples);
    }

    /// Writes a G.711 packet (header + `payload`) into `out` and returns its length.
    /// The timestamp advances by `payload.len()` (one byte per sample for G.711).
    ///
    /// Returns 0 and leaves the state untouched if `out` is too small — the caller owns
    /// the buffer, so this is a programming error, but not worth a crash.
    #[inline]
    pub fn write(&mut self, pt: u8, payload: &[u8], out: &mut [u8]) -> usize {
        self.write_with_samples(pt, payload, payload.len() as u32, out)
    }

    /// Like [`RtpSender::write`] for codecs where bytes ≠ samples: `samples` is how far
    /// the timestamp advances after this packet.
    #[inline]
    pub fn write_with_samples(
        &mut self,
        pt: u8,
        payload: &[u8],
        samples: u32,
        out: &mut [u8],
    ) -> usize {
        let n = HEADER_LEN + payload.len();
        let Some(dst) = out.get_mut(..n) else {
            return 0;
        };
        let marker = self.marker_pending;
        write_header(dst, marker, pt, self.seq, self.ts, self.ssrc);
        dst[HEADER_LEN..].copy_from_slice(payload);
        self.marker_pending = false;
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(samples);
        n
    }

    /// Writes one RFC 4733 telephone-event packet and returns its length (0 if `out` is
    /// shorter than 16 bytes).
    ///
    /// Events share the audio stream's SSRC and sequence space, but every packet of one
    /// event carries the event's *start* timestamp (`event_ts`), so the audio timestamp
    /// is not advanced here: when the event is over, call [`RtpSender::skip`] with its
    /// duration (the [`crate::dtmf::DtmfSender`] does that). `marker` must be set on the
    /// first packet of an event only (RFC 4733 §2.5.1.1).
    pub fn write_telephone_event(
        &mut self,
        pt: u8,
        event_ts: u32,
        ev: &TelephoneEvent,
        marker: bool,
        out: &mut [u8],
    ) -> usize {
        let n = HEADER_LEN + 4;
        let Some(dst) = out.get_mut(..n) else {
            return 0;
        };
        write_header(dst, marker, pt, self.seq, event_ts, self.ssrc);
        let mut body = [0u8; 4];
        ev.encode(&mut body);
        dst[HEADER_LEN..].copy_from_slice(&body);
        self.seq = self.seq.wrapping_add(1);
        n
    }
}

#[inline]
fn write_header(dst: &mut [u8], marker: bool, pt: u8, seq: u16, ts: u32, ssrc: u32) {
    let mut h = [0u8; HEADER_LEN];
    h[0] = 0x80; // V=2, P=0, X=0, CC=0
    h[1] = (pt & 0x7F) | if marker { 0x80 } else { 0 };
    h[2..4].copy_from_slice(&seq.to_be_bytes());
    h[4..8].copy_from_slice(&ts.to_be_bytes());
    h[8..12].copy_from_slice(&ssrc.to_be_bytes());
    if let Some(d) = dst.get_mut(..HEADER_LEN) {
        d.copy_from_slice(&h);
    }
}

/// Receive-side statistics of one RTP stream (RFC 3550 §6.4.1 / appendix A.1, A.3, A.8):
/// extended highest sequence number, loss, interarrival jitter, and when the last
/// packet arrived (for a configurable, hold-aware inactivity timeout).
///
/// Arrival times come in as `Instant`s from the caller; nothing here reads a clock.
#[derive(Debug, Clone, Default)]
pub struct RtpStats {
    ssrc: Option<u32>,
    base_seq: u32,
    max_seq: u16,
    cycles: u32,
    received: u64,
    jitter: f64,
    transit: Option<i64>,
    epoch: Option<std::time::Instant>,
    last_arrival: Option<std::time::Instant>,
    clock_rate: u32,
}

/// A jump of more than this many sequence numbers restarts the sequence (RFC 3550 A.1
/// `MAX_DROPOUT`): the peer restarted its stream without changing SSRC.
const MAX_DROPOUT: u16 = 3000;
/// Sequence numbers up to this far behind are late/duplicate packets (`MAX_MISORDER`).
const MAX_MISORDER: u16 = 100;

impl RtpStats {
    /// Statistics for a stream with the given RTP clock rate (8000 for G.711).
    pub fn new(clock_rate: u32) -> Self {
        RtpStats {
            clock_rate: clock_rate.max(1),
            ..Default::default()
        }
    }

    /// Accounts one received packet. Returns `true` when it starts a new source (first
    /// packet, or an SSRC change, e.g. after a re-INVITE or a transfer on the far end):
    /// the caller may want to reset its DTMF receiver then.
    pub fn on_packet(&mut self, h: &RtpHeaderView, now: std::time::Instant) -> bool {
        let new_source = self.ssrc != Some(h.ssrc);
        if new_source {
            let rate = self.clock_rate.max(1);
            *self = RtpStats::new(rate);
            self.ssrc = Some(h.ssrc);
            self.base_seq = h.seq as u32;
            self.max_seq = h.seq;
            self.epoch = Some(now);
        } else {
            let delta = h.seq.wrapping_sub(self.max_seq);
            if delta != 0 && delta < MAX_DROPOUT {
                if h.seq < self.max_seq {
                    self.cycles = self.cycles.wrapping_add(1 << 16);
                }
                self.max_seq = h.seq;
            } else if delta != 0 && delta <= u16::MAX - MAX_MISORDER {
                // Big jump: the sender restarted; start counting afresh.
                self.base_seq = h.seq as u32;
                self.max_seq = h.seq;
                self.cycles = 0;
                self.received = 0;
            }
        }
        self.received += 1;
        self.last_arrival = Some(now);
        // Interarrival jitter (A.8) in timestamp units.
        let epoch = self.epoch.unwrap_or(now);
        let arrival = (now.saturating_duration_since(epoch).as_micros() as u64
            * self.clock_rate as u64
            / 1_000_000) as i64;
        let transit = arrival - h.ts as i64;
        if let Some(prev) = self.transit {
            // Wrap-safe difference of two transit values.
            let d = ((transit - prev) as i32 as i64).abs() as f64;
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.transit = Some(transit);
        new_source
    }

    /// The SSRC being tracked.
    pub fn ssrc(&self) -> Option<u32> {
        self.ssrc
    }

    /// Packets received (including duplicates), since the last restart.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Extended highest sequence number received (cycles + seq).
    pub fn extended_max_seq(&self) -> u32 {
        self.cycles.wrapping_add(self.max_seq as u32)
    }

    /// Packets expected from the sequence numbers.
    pub fn expected(&self) -> u64 {
        if self.ssrc.is_none() {
            return 0;
        }
        (self.extended_max_seq().wrapping_sub(self.base_seq) as u64) + 1
    }

    /// Cumulative packets lost (negative with duplicates, as RFC 3550 allows).
    pub fn lost(&self) -> i64 {
        self.expected() as i64 - self.received as i64
    }

    /// Interarrival jitter in milliseconds.
    pub fn jitter_ms(&self) -> f64 {
        self.jitter * 1000.0 / self.clock_rate as f64
    }

    /// Time since the last packet, `None` before the first. Compare with the configured
    /// RTP timeout only while [`crate::sdp::Negotiated::is_hold`] is false.
    pub fn idle(&self, now: std::time::Instant) -> Option<std::time::Duration> {
        self.last_arrival.map(|t| now.saturating_duration_since(t))
    }
}

#[cfg(test)]
// Tests are a shell: they may read the clock (issue 12).
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rtc_shared::marshal::{Marshal, Unmarshal};

    fn rtc_packet(marker: bool, pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
        let pkt = rtc_rtp::packet::Packet {
            header: rtc_rtp::header::Header {
                version: 2,
                marker,
                payload_type: pt,
                sequence_number: seq,
                timestamp: ts,
                ssrc,
                ..Default::default()
            },
            payload: payload.to_vec().into(),
        };
        pkt.marshal().expect("marshal").to_vec()
    }

    fn view(seq: u16, ts: u32, ssrc: u32) -> RtpHeaderView {
        let mut s = RtpSender::new(ssrc, seq, ts);
        let mut buf = [0u8; 32];
        let n = s.write(0, &[0xFF; 4], &mut buf);
        parse(&buf[..n]).unwrap()
    }

    #[test]
    fn stats_loss_wrap_jitter_and_ssrc_change() {
        use std::time::{Duration, Instant};
        let t0 = Instant::now();
        let mut st = RtpStats::new(8000);
        assert_eq!((st.expected(), st.idle(t0)), (0, None));
        // 65530..=65535, 0..=9 with 3 and 7 missing; perfectly timed: zero jitter.
        let mut first = true;
        for (i, seq) in (65530u16..=65535).chain(0..10).enumerate() {
            if seq == 3 || seq == 7 {
                continue;
            }
            let t = t0 + Duration::from_millis(20 * i as u64);
            assert_eq!(st.on_packet(&view(seq, 160 * i as u32, 9), t), first);
            first = false;
        }
        assert_eq!(st.expected(), 16);
        assert_eq!(st.received(), 14);
        assert_eq!(st.lost(), 2);
        assert_eq!(st.extended_max_seq(), 65536 + 9);
        assert!(st.jitter_ms() < 0.2, "{}", st.jitter_ms());
        // A late duplicate does not move the max.
        st.on_packet(&view(5, 160 * 11, 9), t0 + Duration::from_millis(320));
        assert_eq!(st.extended_max_seq(), 65536 + 9);
        assert_eq!(
            st.idle(t0 + Duration::from_millis(1320)),
            Some(Duration::from_secs(1))
        );
        // Packets arriving 10 ms early/late alternately → jitter grows towards ~10 ms.
        let mut st = RtpStats::new(8000);
        for i in 0..200u32 {
            let wobble = if i % 2 == 0 { 0 } else { 10 };
            st.on_packet(
                &view(i as u16, 160 * i, 1),
                t0 + Duration::from_millis(20 * i as u64 + wobble),
            );
        }
        assert!((st.jitter_ms() - 10.0).abs() < 1.0, "{}", st.jitter_ms());
        // New SSRC restarts the statistics.
        assert!(st.on_packet(&view(40000, 0, 2), t0 + Duration::from_secs(5)));
        assert_eq!((st.ssrc(), st.received(), st.expected()), (Some(2), 1, 1));
        // A big jump within the same SSRC restarts the sequence.
        st.on_packet(&view(50000, 160, 2), t0 + Duration::from_secs(6));
        assert_eq!((st.received(), st.expected()), (1, 1));
    }

    #[test]
    fn writes_same_bytes_as_rtc_rtp() {
        let mut s = RtpSender::new(0xDEADBEEF, 65534, 0xFFFF_FF00);
        let frame = [0x55u8; 160];
        let mut buf = [0u8; 1500];
        for i in 0..5u32 {
            let seq = s.next_seq();
            let ts = s.next_ts();
            let n = s.write(8, &frame, &mut buf);
            assert_eq!(n, 172);
            let expect = rtc_packet(i == 0, 8, seq, ts, 0xDEADBEEF, &frame);
            assert_eq!(&buf[..n], &expect[..], "packet {i}");
        }
    }

    #[test]
    fn sequence_wraps_and_timestamp_advances_160_per_frame() {
        let mut s = RtpSender::new(1, 65533, u32::MAX - 200);
        let frame = [0xFFu8; 160];
        let mut buf = [0u8; 200];
        let mut seqs = vec![];
        let mut tss = vec![];
        for _ in 0..5 {
            let n = s.write(0, &frame, &mut buf);
            let h = parse(&buf[..n]).unwrap();
            seqs.push(h.seq);
            tss.push(h.ts);
        }
        assert_eq!(seqs, vec![65533, 65534, 65535, 0, 1]);
        for w in tss.windows(2) {
            assert_eq!(w[1].wrapping_sub(w[0]), 160);
        }
        assert!(tss[2] < tss[1], "timestamp wrapped");
    }

    #[test]
    fn marker_only_at_talkspurt_start_and_skip_keeps_seq() {
        let mut s = RtpSender::new(7, 100, 1000);
        let frame = [0xFFu8; 160];
        let mut buf = [0u8; 200];
        let mut markers = vec![];
        for i in 0..6 {
            if i == 3 {
                s.skip(800); // 100 ms of silence not sent
                s.start_talkspurt();
            }
            let n = s.write(0, &frame, &mut buf);
            let h = parse(&buf[..n]).unwrap();
            markers.push(h.marker);
            if i == 3 {
                assert_eq!(h.seq, 103, "skip must not consume sequence numbers");
                assert_eq!(h.ts, 1000 + 3 * 160 + 800);
            }
        }
        assert_eq!(markers, vec![true, false, false, true, false, false]);
    }

    #[test]
    fn too_small_buffer_writes_nothing() {
        let mut s = RtpSender::new(7, 100, 1000);
        let mut buf = [0u8; 100];
        assert_eq!(s.write(0, &[0u8; 160], &mut buf), 0);
        assert_eq!(
            (s.next_seq(), s.next_ts(), s.marker_pending()),
            (100, 1000, true)
        );
        assert_eq!(
            s.write_telephone_event(101, 5, &TelephoneEvent::default(), true, &mut buf[..15]),
            0
        );
    }

    #[test]
    fn random_senders_differ() {
        let a = RtpSender::random();
        let b = RtpSender::random();
        assert_ne!(
            (a.ssrc(), a.next_seq(), a.next_ts()),
            (b.ssrc(), b.next_seq(), b.next_ts())
        );
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let c = RtpSender::from_rng(&mut rng);
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        assert_eq!(c, RtpSender::from_rng(&mut rng));
    }

    #[test]
    fn parse_handles_csrc_extension_padding() {
        // V=2 P=1 X=1 CC=2, M=1 PT=96
        let mut p = vec![
            0xB2, 0xE0, 0x12, 0x34, 0, 0, 0x01, 0x00, 0xAA, 0xBB, 0xCC, 0xDD,
        ];
        p.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2]); // CSRCs
        p.extend_from_slice(&[0x10, 0x00, 0x00, 0x01, 1, 2, 3, 4]); // ext: 1 word
        p.extend_from_slice(b"hello"); // payload
        p.extend_from_slice(&[0, 0, 3]); // 3 bytes padding
        let h = parse(&p).unwrap();
        assert_eq!(
            (h.version, h.padding, h.extension, h.csrc_count),
            (2, true, true, 2)
        );
        assert_eq!(
            (h.marker, h.pt, h.seq, h.ts, h.ssrc),
            (true, 96, 0x1234, 256, 0xAABBCCDD)
        );
        assert_eq!(h.payload(&p), b"hello");
        assert_eq!(h.payload_offset, 28);
    }

    #[test]
    fn parse_rejects_bad_input() {
        assert!(matches!(parse(&[]), Err(RtpError::Truncated { .. })));
        assert!(matches!(
            parse(&[0x80; 11]),
            Err(RtpError::Truncated { .. })
        ));
        let mut p = [0u8; 20];
        p[0] = 0x40; // version 1
        assert_eq!(parse(&p), Err(RtpError::BadVersion(1)));
        p[0] = 0x8F; // CC=15 needs 72 bytes
        assert!(matches!(
            parse(&p),
            Err(RtpError::Truncated { needed: 72, .. })
        ));
        p[0] = 0x90; // extension header, length claims 255 words
        p[14] = 0;
        p[15] = 255;
        assert!(matches!(parse(&p), Err(RtpError::Truncated { .. })));
        let mut q = [0u8; 14];
        q[0] = 0xA0; // padding 0 is invalid
        assert_eq!(parse(&q), Err(RtpError::BadPadding(0)));
        q[13] = 3; // more padding than payload
        assert_eq!(parse(&q), Err(RtpError::BadPadding(3)));
        q[13] = 2; // exactly the payload: empty payload is fine
        assert_eq!(parse(&q).unwrap().payload_len, 0);
        // Extension flag with no room for the extension header.
        let r = [0x90u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(
            parse(&r),
            Err(RtpError::Truncated { needed: 16, .. })
        ));
    }

    /// Compares our view with rtc-rtp's full parse for the same bytes.
    fn cross_check(bytes: &[u8]) -> bool {
        let ours = parse(bytes);
        let mut buf = bytes;
        let theirs = rtc_rtp::packet::Packet::unmarshal(&mut buf);
        match ours {
            Ok(h) => {
                let t = theirs.unwrap_or_else(|e| panic!("rtc-rtp rejected {bytes:02x?}: {e}"));
                assert_eq!(t.header.version, h.version);
                assert_eq!(t.header.padding, h.padding);
                assert_eq!(t.header.extension, h.extension);
                assert_eq!(t.header.marker, h.marker);
                assert_eq!(t.header.payload_type, h.pt);
                assert_eq!(t.header.sequence_number, h.seq);
                assert_eq!(t.header.timestamp, h.ts);
                assert_eq!(t.header.ssrc, h.ssrc);
                assert_eq!(t.header.csrc.len(), h.csrc_count as usize);
                assert_eq!(&t.payload[..], h.payload(bytes));
                true
            }
            Err(_) => false,
        }
    }

    #[test]
    fn parse_agrees_with_rtc_rtp_on_structured_random_packets() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5EED);
        let mut accepted = 0;
        for _ in 0..20_000 {
            let cc: u8 = rng.random_range(0..=15);
            let ext = rng.random_bool(0.3);
            let pad = rng.random_bool(0.3);
            let mut p =
                vec![0x80 | (cc & 0x0F) | if ext { 0x10 } else { 0 } | if pad { 0x20 } else { 0 }];
            p.push(rng.random());
            for _ in 0..10 {
                p.push(rng.random());
            }
            for _ in 0..cc * 4 {
                p.push(rng.random());
            }
            if ext {
                // A profile rtc-rtp treats as an opaque RFC 3550 extension.
                p.extend_from_slice(&[0x12, 0x34]);
                let words: u16 = rng.random_range(0..4);
                p.extend_from_slice(&words.to_be_bytes());
                for _ in 0..words * 4 {
                    p.push(rng.random());
                }
            }
            let plen = rng.random_range(0..200);
            for _ in 0..plen {
                p.push(rng.random());
            }
            if pad {
                let n: u8 = rng.random_range(1..=4);
                p.extend(std::iter::repeat_n(0, n as usize - 1));
                p.push(n);
            }
            // Occasionally truncate to exercise error paths.
            if rng.random_bool(0.1) {
                let cut = rng.random_range(0..p.len());
                p.truncate(cut);
            }
            if cross_check(&p) {
                accepted += 1;
            }
        }
        assert!(accepted > 15_000, "only {accepted} accepted");
    }

    #[test]
    fn parse_never_panics_on_random_bytes() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        for _ in 0..50_000 {
            let len = rng.random_range(0..64);
            let mut p: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            if let Some(b) = p.first_mut() {
                // Mostly version 2 with no one/two-byte (RFC 8285) extension profile.
                *b = (*b & 0x3F) | 0x80;
            }
            if let Ok(h) = parse(&p) {
                assert!(h.payload_offset + h.payload_len <= p.len());
                let profile = be16(&p, HEADER_LEN + 4 * h.csrc_count as usize);
                let rfc8285 = h.extension && matches!(profile, Some(0xBEDE) | Some(0x1000));
                if !rfc8285 {
                    assert!(cross_check(&p));
                }
            }
        }
    }

    #[test]
    fn telephone_event_packet_layout() {
        let mut s = RtpSender::new(9, 10, 5000);
        let mut buf = [0u8; 64];
        let ev = TelephoneEvent {
            event: 11,
            end: true,
            volume: 10,
            duration: 800,
        };
        let n = s.write_telephone_event(101, 4840, &ev, false, &mut buf);
        assert_eq!(n, 16);
        let h = parse(&buf[..n]).unwrap();
        assert_eq!((h.pt, h.seq, h.ts, h.marker), (101, 10, 4840, false));
        assert_eq!(h.payload(&buf), &[11, 0x8A, 0x03, 0x20]);
        assert_eq!(s.next_seq(), 11);
        assert_eq!(s.next_ts(), 5000, "audio timestamp untouched");
    }

    #[test]
    fn rtcp_detection() {
        assert!(looks_like_rtcp(&[0x80, 200, 0, 6, 0, 0, 0, 1]));
        assert!(!looks_like_rtcp(&[0x80, 0, 0, 6, 0, 0, 0, 1]));
        assert!(!looks_like_rtcp(&[0x80, 0xE5, 0, 6, 0, 0, 0, 1])); // M=1 PT=101
        assert!(!looks_like_rtcp(&[0x80, 200]));
    }
}

#[cfg(test)]
// Tests are a shell: they may read the clock (issue 12).
#[allow(clippy::disallowed_methods)]
mod bench {
    use super::*;

    /// Rough cost of the per-packet send path (frame lookup + header + copy). Run with
    /// `cargo test --release -p ringback-media -- --ignored --nocapture rtp_write_cost`.
    #[test]
    #[ignore]
    fn rtp_write_cost() {
        let p = crate::prompt::tone(440.0, 2000, 0.5);
        let mut senders: Vec<RtpSender> = (0..10_000).map(|i| RtpSender::new(i, 0, 0)).collect();
        let mut buf = vec![0u8; 172 * 10_000];
        let start = std::time::Instant::now();
        let rounds = 200;
        for r in 0..rounds {
            for (i, (s, out)) in senders.iter_mut().zip(buf.chunks_mut(172)).enumerate() {
                let f = p.frame(crate::Codec::Pcmu, (r + i) % 100);
                std::hint::black_box(s.write(0, f, out));
            }
            std::hint::black_box(&mut buf);
        }
        let ns = start.elapsed().as_nanos() as f64 / (rounds * 10_000) as f64;
        println!(
            "rtp write: {ns:.1} ns/packet ({:.1} M packets/s on one core)",
            1e3 / ns
        );
    }
}
