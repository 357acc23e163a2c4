//! In-band DTMF detection: keys sent as tone pairs in the audio itself.
//!
//! Some gateways and old lines never send RFC 4733 telephone-events or SIP INFO: the
//! caller's key presses only exist as ITU-T Q.23 tone pairs in the G.711 audio. The
//! server runs an [`InbandDtmf`] on a stream's received audio when the peer offered no
//! telephone-event payload type, or when a trunk is configured with `dtmf = "inband"`.
//!
//! # How it decides
//!
//! Audio is cut into blocks of [`BLOCK`] samples (12.75 ms at 8 kHz), whatever the frame
//! sizes it arrives in. Each block runs the Goertzel algorithm on the 8 DTMF frequencies
//! and must pass every one of these checks to be a *hit* for one key:
//!
//! - **level**: each of the two tones at least [`MIN_TONE_DBM0`] (quiet line noise and
//!   crosstalk are not key presses);
//! - **twist**: the low (row) tone at most [`NORMAL_TWIST_DB`] louder than the high
//!   (column) tone, the high tone at most [`REVERSE_TWIST_DB`] louder than the low one
//!   (lines attenuate high frequencies, so senders and lines produce normal twist;
//!   strong reverse twist is typical of speech formants and music, not of keypads);
//! - **relative peak**: the strongest row and column each [`RELATIVE_PEAK_DB`] above
//!   every other frequency of its group (speech has energy at several of them);
//! - **purity**: the two tones carry at least [`MIN_TONE_SHARE`] of the block's whole
//!   energy (speech and music spread their energy over many frequencies and harmonics,
//!   a keypad does not).
//!
//! A key is then reported **once per press**: after at least two consecutive hits whose
//! tone lasted at least [`MIN_ON_MS`] (estimated from the Goertzel amplitudes of the
//! hits and of their two neighbouring blocks, which are proportional to how much of each
//! block the tone fills: so a 40 ms press is accepted and a 20 ms blip is not, whatever
//! the block alignment), and the next key,
//! including the same one again, only after [`MIN_OFF_BLOCKS`] blocks (≈ 38 ms) without
//! the reported key. While hits disagree (two keys alternating, speech) nothing is
//! reported.
//!
//! Everything is sans-IO and allocation-free: feed linear 8 kHz samples (or G.711
//! payloads) in any frame length, get digits through a callback. [`InbandRtp`] wraps the
//! detector for received RTP: it turns timestamp gaps (silence suppression, loss) into
//! silence and drops late and duplicate packets.

use crate::codec::Codec;
use crate::g711;
use crate::goertzel::{DTMF_COLS, DTMF_KEYS, DTMF_ROWS};

/// Analysis block length in samples (12.75 ms at 8 kHz).
///
/// Why 102: the bins are then ~78 Hz wide, narrow enough to separate neighbouring rows
/// (697/770 Hz are 73 Hz apart, and leakage from one into the other stays ≈ 12 dB
/// down), while two whole blocks (204 samples) always fit in a 40 ms tone (320
/// samples) and never in a 20 ms one (160), which the duration rule relies on.
pub const BLOCK: usize = 102;

/// Mean-square value (in squared 16-bit sample units) of a sine at 0 dBm0: G.711's
/// full-scale sine is +3.17 dBm0, i.e. 0 dBm0 has a peak of ≈ 22 300 (RMS ≈ 15 770).
/// All levels below are relative to it, so they mean the same on µ-law and A-law.
pub const DBM0_POWER: f32 = 15_770.0 * 15_770.0;

/// Minimum level of each tone, in dBm0.
///
/// Why −36: receivers must accept keys down to about −25 dBm0 per tone, and with
/// 6–8 dB of twist the weaker tone is then near −33; below −36 it is line noise,
/// crosstalk or the tail of something quiet, not a key press.
pub const MIN_TONE_DBM0: f32 = -36.0;

/// How much louder the low (row) tone may be than the high (column) tone, in dB.
///
/// Why 9: telephony allows 8 dB of normal twist; the extra 1 dB covers the estimation
/// error of one block (leakage between the two tones moves a block's measured level by
/// up to ≈ ±1 dB, depending on their phases).
pub const NORMAL_TWIST_DB: f32 = 9.0;

/// How much louder the high (column) tone may be than the low (row) tone, in dB.
///
/// Why 5: 4 dB of reverse twist is the usual limit, plus the same 1 dB of estimation
/// error as [`NORMAL_TWIST_DB`]. Stronger high tones are what speech formants look like.
pub const REVERSE_TWIST_DB: f32 = 5.0;

/// How far the strongest frequency of each group must stand above the other three of
/// the group, in dB. Why 8: a real key's leakage into the neighbouring bins is ≈ 12 dB
/// down; speech and music often have energy at two frequencies of a group.
pub const RELATIVE_PEAK_DB: f32 = 8.0;

/// Minimum share of the block's total energy carried by the two tones.
///
/// Why 0.7: a clean key gives ≈ 0.92–1.0 (the rest is leakage), still > 0.8 with line
/// noise 10 dB below the tones; voiced speech puts its energy into many harmonics, and a
/// block only partly filled with tone (the start or end of a press) scores about its
/// filled fraction, so a block less than ~70 % tone is not a hit.
pub const MIN_TONE_SHARE: f32 = 0.7;

/// Minimum duration of a key press, in milliseconds.
///
/// Why 30: keypads send ≥ 40 ms and receivers must accept 40 ms; tones of ≤ 20–23 ms
/// must be ignored (speech and music contain short DTMF-like bursts). The midpoint gives
/// a margin of ≥ 4 ms on both sides for any block alignment, and 5 ms ramps at the
/// tone's ends still leave a 40 ms press at ≈ 35 ms.
pub const MIN_ON_MS: u32 = 30;

/// Blocks without the reported key before another key (or the same one again) can be
/// reported: 3 blocks ≈ 38 ms, which a 40 ms pause between key presses always produces
/// (two whole silent blocks plus at least one block less than half filled by a tone),
/// while a single bad block in the middle of a long press (a burst of noise, a phase
/// jump from a lost packet) does not split it into two digits.
pub const MIN_OFF_BLOCKS: u32 = 3;

/// Hits (consecutive blocks showing the same key) needed before a key can be reported,
/// on top of [`MIN_ON_MS`]: one block that happens to look like a key is not enough.
pub const MIN_HITS: u32 = 2;

fn db(x: f32) -> f32 {
    10f32.powf(x / 10.0)
}

/// Streaming in-band DTMF detector for one direction of one call.
///
/// Feed it the received audio in order (any frame length, linear 8 kHz samples or G.711
/// payloads); it calls back once per key press. Allocation-free and a few hundred bytes of
/// state, so one per stream is cheap; the server only creates it for streams that need it.
#[derive(Debug, Clone)]
pub struct InbandDtmf {
    coeff: [f32; 8],
    s1: [f32; 8],
    s2: [f32; 8],
    energy: i64,
    n: usize,
    min_power: f32,
    normal_twist: f32,
    reverse_twist: f32,
    relative_peak: f32,
    /// Goertzel powers of the previous block (the lead neighbour of a new candidate).
    prev: [f32; 8],
    /// Key index (row * 4 + col) being confirmed, with its evidence.
    cand: Option<usize>,
    hits: u32,
    /// Amplitude of the block before the first hit, at the candidate's frequencies.
    lead_amp: f32,
    /// Sum and maximum of the hits' amplitudes.
    sum_amp: f32,
    max_amp: f32,
    /// Key reported and not yet released, and the blocks since it was last seen.
    latched: Option<usize>,
    off: u32,
}

impl Default for InbandDtmf {
    fn default() -> Self {
        Self::new()
    }
}

/// What one block showed: the hit (if any) and the 8 Goertzel powers (rows then
/// columns, mean-square units).
struct BlockResult {
    key: Option<usize>,
    power: [f32; 8],
}

impl InbandDtmf {
    /// A detector with the documented parameters, in its idle state.
    pub fn new() -> Self {
        let mut coeff = [0.0f32; 8];
        for (c, f) in coeff
            .iter_mut()
            .zip(DTMF_ROWS.iter().chain(DTMF_COLS.iter()))
        {
            *c = (2.0 * (2.0 * std::f64::consts::PI * f / 8000.0).cos()) as f32;
        }
        InbandDtmf {
            coeff,
            s1: [0.0; 8],
            s2: [0.0; 8],
            energy: 0,
            n: 0,
            min_power: DBM0_POWER * db(MIN_TONE_DBM0),
            normal_twist: db(NORMAL_TWIST_DB),
            reverse_twist: db(REVERSE_TWIST_DB),
            relative_peak: db(RELATIVE_PEAK_DB),
            prev: [0.0; 8],
            cand: None,
            hits: 0,
            lead_amp: 0.0,
            sum_amp: 0.0,
            max_amp: 0.0,
            latched: None,
            off: 0,
        }
    }

    /// Forget everything (partial block, candidate, latched key), e.g. when the stream's
    /// source changes. A key held across the reset would be reported again.
    pub fn reset(&mut self) {
        *self = InbandDtmf::new();
    }

    /// Analyse linear 8 kHz samples, continuing from the previous call; `on_digit` gets
    /// each detected key (`0-9`, `*`, `#`, `A-D`) once; presses are at least five
    /// blocks (64 ms) apart, so a 20 ms frame yields at most one.
    pub fn process(&mut self, pcm: &[i16], mut on_digit: impl FnMut(char)) {
        let mut rest = pcm;
        while !rest.is_empty() {
            let take = (BLOCK - self.n).min(rest.len());
            let (now, later) = rest.split_at(take);
            self.accumulate(now);
            self.n += take;
            rest = later;
            if self.n == BLOCK {
                let r = self.finish_block();
                self.on_block(&r, &mut on_digit);
            }
        }
    }

    /// Decode a G.711 payload (`codec`) and analyse it like [`process`](Self::process),
    /// without allocating: what the server does with each received RTP packet.
    pub fn process_g711(&mut self, codec: Codec, payload: &[u8], mut on_digit: impl FnMut(char)) {
        let mut pcm = [0i16; 160];
        for chunk in payload.chunks(pcm.len()) {
            let n = g711::decode_frame(codec, chunk, &mut pcm);
            self.process(&pcm[..n], &mut on_digit);
        }
    }

    /// `samples` of silence, e.g. for a gap in the RTP timestamps (discontinuous
    /// transmission, lost packets), so a pause the peer did not send still counts as one.
    pub fn process_silence(&mut self, samples: usize, mut on_digit: impl FnMut(char)) {
        const ZERO: [i16; BLOCK] = [0; BLOCK];
        let mut left = samples;
        while left > 0 {
            let n = left.min(BLOCK);
            self.process(&ZERO[..n], &mut on_digit);
            left -= n;
        }
    }

    #[inline]
    fn accumulate(&mut self, xs: &[i16]) {
        let c = self.coeff;
        let mut s1 = self.s1;
        let mut s2 = self.s2;
        // Integer energy: exact, and its 1-cycle adds stay off the critical path.
        let mut e: i64 = 0;
        for &x in xs {
            e += i64::from(x) * i64::from(x);
            let x = f32::from(x);
            for k in 0..8 {
                // (x - s2) does not wait for the multiply: a shorter dependency chain.
                let s0 = (x - s2[k]) + c[k] * s1[k];
                s2[k] = s1[k];
                s1[k] = s0;
            }
        }
        self.s1 = s1;
        self.s2 = s2;
        self.energy += e;
    }

    /// Close the current block: Goertzel powers, checks, reset the accumulators.
    fn finish_block(&mut self) -> BlockResult {
        let n2 = (BLOCK * BLOCK) as f32;
        let mut power = [0.0f32; 8];
        for (k, p) in power.iter_mut().enumerate() {
            let (a, b, c) = (self.s1[k], self.s2[k], self.coeff[k]);
            // |X(f)|² of the block; 2/N² puts it on the mean-square scale (A²/2).
            *p = (a * a + b * b - c * a * b).max(0.0) * 2.0 / n2;
        }
        let total = self.energy as f32 / BLOCK as f32;
        self.s1 = [0.0; 8];
        self.s2 = [0.0; 8];
        self.energy = 0;
        self.n = 0;
        BlockResult {
            key: self.classify(&power, total),
            power,
        }
    }

    /// The key one block shows, if it passes level, twist, relative-peak and purity.
    fn classify(&self, p: &[f32; 8], total: f32) -> Option<usize> {
        let best = |g: &[f32]| {
            let mut b = 0;
            for i in 1..4 {
                if g[i] > g[b] {
                    b = i;
                }
            }
            b
        };
        let (rows, cols) = p.split_at(4);
        let r = best(rows);
        let c = best(cols);
        let (rp, cp) = (rows[r], cols[c]);
        if rp < self.min_power || cp < self.min_power {
            return None;
        }
        if rp > cp * self.normal_twist || cp > rp * self.reverse_twist {
            return None;
        }
        for i in 0..4 {
            if (i != r && rows[i] * self.relative_peak > rp)
                || (i != c && cols[i] * self.relative_peak > cp)
            {
                return None;
            }
        }
        if rp + cp < MIN_TONE_SHARE * total {
            return None;
        }
        Some(r * 4 + c)
    }

    /// Amplitude of key `k`'s two tones in a block (∝ how much of the block they fill).
    fn amp(p: &[f32; 8], k: usize) -> f32 {
        (p[k / 4] + p[4 + k % 4]).sqrt()
    }

    /// Estimated duration of the candidate in blocks: the hits plus the lead and (if
    /// given) trail neighbours, each block weighted by its amplitude relative to the
    /// strongest hit. A block half filled with tone has half the Goertzel amplitude, so
    /// this counts samples of tone, independent of where the block edges fall.
    fn duration_blocks(&self, trail: f32) -> f32 {
        if self.max_amp <= 0.0 {
            return 0.0;
        }
        (self.sum_amp + self.lead_amp.min(self.max_amp) + trail.min(self.max_amp)) / self.max_amp
    }

    fn long_enough(&self, trail: f32) -> bool {
        let min_blocks = (MIN_ON_MS * 8) as f32 / BLOCK as f32;
        self.hits >= MIN_HITS && self.duration_blocks(trail) >= min_blocks
    }

    fn report(&mut self, k: usize, off: u32, on_digit: &mut impl FnMut(char)) {
        on_digit(DTMF_KEYS[k / 4][k % 4]);
        self.latched = Some(k);
        self.off = off;
        self.cand = None;
        self.hits = 0;
    }

    fn on_block(&mut self, b: &BlockResult, on_digit: &mut impl FnMut(char)) {
        if let Some(d) = self.latched {
            // Reported: wait for a pause before anything else.
            if b.key == Some(d) {
                self.off = 0;
            } else {
                self.off += 1;
                if self.off >= MIN_OFF_BLOCKS {
                    self.latched = None;
                }
            }
        } else {
            match (b.key, self.cand) {
                (Some(k), Some(c)) if k == c => {
                    let a = Self::amp(&b.power, k);
                    self.hits += 1;
                    self.sum_amp += a;
                    self.max_amp = self.max_amp.max(a);
                    if self.long_enough(0.0) {
                        self.report(k, 0, on_digit);
                    }
                }
                (key, Some(c)) => {
                    // The candidate's tone ended (or changed): this block is its trail.
                    if self.long_enough(Self::amp(&b.power, c)) {
                        self.report(c, 1, on_digit);
                    } else {
                        self.cand = None;
                        self.hits = 0;
                        if let Some(k) = key {
                            self.start(k, &b.power);
                        }
                    }
                }
                (Some(k), None) => self.start(k, &b.power),
                (None, None) => {}
            }
        }
        self.prev = b.power;
    }

    fn start(&mut self, k: usize, power: &[f32; 8]) {
        let a = Self::amp(power, k);
        self.cand = Some(k);
        self.hits = 1;
        self.lead_amp = Self::amp(&self.prev, k);
        self.sum_amp = a;
        self.max_amp = a;
    }
}

/// Up to this many missing samples (two 20 ms packets) are bridged over, not treated as
/// a pause: a key press with a lost packet or two is still one press.
pub const MAX_BRIDGED_GAP: u32 = 320;

/// A timestamp jump larger than this (4 s, either way) is a new timeline (the peer
/// restarted its stream or a new source took over), not late or lost packets.
const MAX_JUMP: i32 = 4 * 8000;

/// In-band detection on one received G.711 RTP stream.
///
/// Why a wrapper: RTP is not a continuous sample stream. Peers stop sending during
/// silence (discontinuous transmission), packets get lost, duplicated and reordered.
/// Feeding packets as they come would glue two presses of the same key separated by
/// suppressed silence into one, and count a duplicated packet twice. So this follows
/// the sender's SSRC and timestamps: a gap of more than [`MAX_BRIDGED_GAP`] samples
/// becomes silence (enough to end a press), a packet older than what was already
/// analysed is dropped, and a new SSRC or a huge jump starts a new timeline.
#[derive(Debug, Clone, Default)]
pub struct InbandRtp {
    det: InbandDtmf,
    /// SSRC and the RTP timestamp that should come next.
    next: Option<(u32, u32)>,
}

impl InbandRtp {
    /// Idle state, nothing received yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// One received audio packet (`codec`'s static or negotiated payload type only; not
    /// telephone-events or comfort noise): SSRC, RTP timestamp, G.711 payload. Calls
    /// `on_digit` for each key press completed.
    pub fn on_packet(
        &mut self,
        codec: Codec,
        ssrc: u32,
        ts: u32,
        payload: &[u8],
        mut on_digit: impl FnMut(char),
    ) {
        let pause = (MIN_OFF_BLOCKS as usize + 1) * BLOCK;
        match self.next {
            Some((s, next)) if s == ssrc => {
                let gap = ts.wrapping_sub(next) as i32;
                if (-MAX_JUMP..0).contains(&gap) {
                    return; // late or duplicate: that audio was already analysed
                }
                if gap > MAX_BRIDGED_GAP as i32 {
                    self.det
                        .process_silence((gap as usize).min(pause), &mut on_digit);
                }
            }
            Some(_) => self.det.process_silence(pause, &mut on_digit),
            None => {}
        }
        self.det.process_g711(codec, payload, &mut on_digit);
        self.next = Some((ssrc, ts.wrapping_add(payload.len() as u32)));
    }

    /// Forget the stream (e.g. detection was switched off and on again).
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

/// All keys in a recording (8 kHz linear), in order: a fresh [`InbandDtmf`] over
/// `pcm`, followed by enough silence to finish a key still sounding at the end. For
/// tests and offline analysis; allocates the result.
pub fn detect_digits(pcm: &[i16]) -> String {
    let mut out = String::new();
    let mut d = InbandDtmf::new();
    d.process(pcm, |c| out.push(c));
    d.process_silence(BLOCK * (MIN_OFF_BLOCKS as usize + 1), |c| out.push(c));
    out
}

#[cfg(test)]
// Tests are a shell: they may read the clock and the shipped files (issue 12).
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    /// Peak amplitude of a sine at `dbm0`.
    fn peak(dbm0: f64) -> f64 {
        (2.0 * f64::from(DBM0_POWER) * 10f64.powf(dbm0 / 10.0)).sqrt()
    }

    fn rc(key: char) -> (usize, usize) {
        for (r, row) in DTMF_KEYS.iter().enumerate() {
            if let Some(c) = row.iter().position(|&k| k == key) {
                return (r, c);
            }
        }
        panic!("not a key: {key}")
    }

    /// A tiny deterministic PRNG (xorshift) for noise and phases.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
        /// Roughly Gaussian, unit variance.
        fn gauss(&mut self) -> f64 {
            (0..12).map(|_| self.next()).sum::<f64>() - 6.0
        }
    }

    /// Audio under construction, in f64, converted once at the end.
    struct Signal {
        x: Vec<f64>,
        rng: Rng,
    }

    impl Signal {
        fn new(seed: u64) -> Signal {
            Signal {
                x: Vec::new(),
                rng: Rng(seed | 1),
            }
        }

        fn ms(n: u32) -> usize {
            n as usize * 8
        }

        fn silence(&mut self, samples: usize) -> &mut Self {
            self.x.extend(std::iter::repeat_n(0.0, samples));
            self
        }

        /// Key `key` for `samples`, row at `row_dbm0`, column `twist` dB relative to it
        /// (positive = column louder, reverse twist), random phases, optional ramps.
        fn key(
            &mut self,
            key: char,
            samples: usize,
            row_dbm0: f64,
            twist: f64,
            ramp: usize,
        ) -> &mut Self {
            let (r, c) = rc(key);
            let (a, b) = (peak(row_dbm0), peak(row_dbm0 + twist));
            let (pa, pb) = (self.rng.next() * 2.0 * PI, self.rng.next() * 2.0 * PI);
            let (wa, wb) = (
                2.0 * PI * DTMF_ROWS[r] / 8000.0,
                2.0 * PI * DTMF_COLS[c] / 8000.0,
            );
            for i in 0..samples {
                let mut g = 1.0;
                let edge = i.min(samples - 1 - i);
                if edge < ramp {
                    g = 0.5 - 0.5 * (PI * edge as f64 / ramp as f64).cos();
                }
                let t = i as f64;
                self.x
                    .push(g * (a * (wa * t + pa).sin() + b * (wb * t + pb).sin()));
            }
            self
        }

        /// Add Gaussian noise at `dbm0` over everything so far.
        fn noise(&mut self, dbm0: f64) -> &mut Self {
            let rms = (f64::from(DBM0_POWER) * 10f64.powf(dbm0 / 10.0)).sqrt();
            for v in self.x.iter_mut() {
                *v += rms * self.rng.gauss();
            }
            self
        }

        fn pcm(&self) -> Vec<i16> {
            self.x
                .iter()
                .map(|v| v.round().clamp(-32768.0, 32767.0) as i16)
                .collect()
        }
    }

    /// Through a codec and back, as the samples would arrive over RTP.
    fn g711_roundtrip(codec: Codec, pcm: &[i16]) -> Vec<i16> {
        let mut enc = vec![0u8; pcm.len()];
        g711::encode_frame(codec, pcm, &mut enc);
        g711::decode_to_vec(codec, &enc)
    }

    /// Feed as 20 ms G.711 packets through `process_g711`.
    fn detect_g711(codec: Codec, pcm: &[i16]) -> String {
        let mut enc = vec![0u8; pcm.len()];
        g711::encode_frame(codec, pcm, &mut enc);
        let mut out = String::new();
        let mut d = InbandDtmf::new();
        for frame in enc.chunks(160) {
            d.process_g711(codec, frame, |c| out.push(c));
        }
        d.process_silence(BLOCK * 4, |c| out.push(c));
        out
    }

    const KEYS: &str = "123A456B789C*0#D";

    #[test]
    fn every_key_once_at_low_level_with_noise_and_twist() {
        let mut seed = 7;
        for key in KEYS.chars() {
            for twist in [-6.0, -4.0, -2.0, 0.0, 2.0, 4.0] {
                for (level, len_ms) in [(-25.0, 60), (-25.0, 500), (-6.0, 45), (-28.0, 100)] {
                    seed += 1;
                    let mut s = Signal::new(seed);
                    s.silence(Signal::ms(100) + seed as usize % 97)
                        .key(key, Signal::ms(len_ms), level, twist, 0)
                        .silence(Signal::ms(100))
                        .noise(-50.0);
                    let pcm = s.pcm();
                    let what = format!("{key} twist {twist} dB, {level} dBm0, {len_ms} ms");
                    assert_eq!(detect_digits(&pcm), key.to_string(), "linear: {what}");
                    assert_eq!(
                        detect_g711(Codec::Pcmu, &pcm),
                        key.to_string(),
                        "PCMU: {what}"
                    );
                    assert_eq!(
                        detect_g711(Codec::Pcma, &pcm),
                        key.to_string(),
                        "PCMA: {what}"
                    );
                }
            }
        }
    }

    #[test]
    fn detects_through_line_noise_ten_db_below_the_tones() {
        for (i, key) in KEYS.chars().enumerate() {
            let mut s = Signal::new(100 + i as u64);
            s.silence(800)
                .key(key, Signal::ms(80), -20.0, -2.0, 8)
                .silence(800)
                .noise(-31.0);
            assert_eq!(detect_digits(&s.pcm()), key.to_string(), "{key}");
        }
    }

    #[test]
    fn accepts_keypads_off_frequency_by_one_and_a_half_percent() {
        // ITU-T Q.24: receivers must operate with each tone within ±1.5 %.
        for (i, key) in KEYS.chars().enumerate() {
            let (r, c) = rc(key);
            for dev in [-0.015, 0.015] {
                for twist in [-4.0, 0.0, 3.0] {
                    let (a, b) = (peak(-22.0), peak(-22.0 + twist));
                    let (wa, wb) = (
                        2.0 * PI * DTMF_ROWS[r] * (1.0 + dev) / 8000.0,
                        2.0 * PI * DTMF_COLS[c] * (1.0 - dev) / 8000.0,
                    );
                    let mut pcm = vec![0i16; 300 + i * 7];
                    pcm.extend((0..Signal::ms(60)).map(|n| {
                        let t = n as f64;
                        (a * (wa * t).sin() + b * (wb * t + 1.0).sin()) as i16
                    }));
                    assert_eq!(
                        detect_digits(&pcm),
                        key.to_string(),
                        "{key} off by {dev}, twist {twist}"
                    );
                }
            }
        }
    }

    #[test]
    fn forty_ms_is_a_key_and_twenty_ms_is_not_whatever_the_alignment() {
        let mut seed = 1000;
        for key in KEYS.chars() {
            for offset in (0..BLOCK).step_by(5) {
                seed += 1;
                for (ms, ramp, want) in [(40, 0, 1), (40, 40, 1), (20, 0, 0), (22, 0, 0)] {
                    let mut s = Signal::new(seed);
                    s.silence(400 + offset)
                        .key(key, Signal::ms(ms), -15.0, -1.0, ramp)
                        .silence(400)
                        .noise(-55.0);
                    let got = detect_digits(&s.pcm());
                    assert_eq!(
                        got.len(),
                        want,
                        "{key}: {ms} ms (ramp {ramp}) at offset {offset} gave {got:?}"
                    );
                }
            }
        }
        // The server's own in-band dialling tones (5 ms ramps, −10 dBFS) at 40 ms.
        for key in KEYS.chars() {
            let p = crate::prompt::dtmf_tone(key, 40).expect("tone");
            let mut pcm = vec![0i16; 333];
            pcm.extend(p.to_pcm());
            assert_eq!(detect_digits(&pcm), key.to_string());
        }
    }

    #[test]
    fn sequence_with_50ms_gaps_gives_exactly_those_digits() {
        for (tone_ms, gap_ms) in [(50, 50), (40, 50), (100, 50), (70, 40)] {
            let mut s = Signal::new(tone_ms as u64 * 31 + gap_ms as u64);
            s.silence(Signal::ms(80));
            for key in "1234#".chars() {
                s.key(key, Signal::ms(tone_ms), -20.0, -2.0, 0)
                    .silence(Signal::ms(gap_ms));
            }
            s.noise(-55.0);
            let pcm = s.pcm();
            assert_eq!(detect_digits(&pcm), "1234#", "{tone_ms}/{gap_ms} ms");
            assert_eq!(
                detect_g711(Codec::Pcmu, &pcm),
                "1234#",
                "{tone_ms}/{gap_ms}"
            );
        }
    }

    #[test]
    fn same_key_twice_needs_a_gap() {
        for gap_ms in [40, 50, 200] {
            let mut s = Signal::new(gap_ms as u64);
            s.silence(500)
                .key('5', Signal::ms(80), -20.0, 0.0, 0)
                .silence(Signal::ms(gap_ms))
                .key('5', Signal::ms(80), -20.0, 0.0, 0)
                .silence(500)
                .noise(-55.0);
            assert_eq!(detect_digits(&s.pcm()), "55", "gap {gap_ms} ms");
        }
        // A 5 ms dropout in one long press is not a second press.
        let mut s = Signal::new(9);
        s.silence(500)
            .key('5', Signal::ms(200), -20.0, 0.0, 0)
            .silence(Signal::ms(5))
            .key('5', Signal::ms(200), -20.0, 0.0, 0)
            .silence(500);
        assert_eq!(detect_digits(&s.pcm()), "5");
        // A long press is one digit.
        let mut s = Signal::new(10);
        s.key('#', Signal::ms(3000), -20.0, 0.0, 0);
        assert_eq!(detect_digits(&s.pcm()), "#");
    }

    #[test]
    fn no_digit_while_keys_alternate() {
        // Two keys swapping every 10 ms: never stable for two blocks.
        let mut s = Signal::new(3);
        for i in 0..40 {
            let key = if i % 2 == 0 { '1' } else { '9' };
            s.key(key, Signal::ms(10), -20.0, 0.0, 0);
        }
        assert_eq!(detect_digits(&s.pcm()), "");
    }

    #[test]
    fn rejects_quiet_tones_single_tones_bad_twist_and_noise() {
        fn one(key: char, level: f64, twist: f64) -> String {
            let mut s = Signal::new(42);
            s.silence(400)
                .key(key, Signal::ms(200), level, twist, 0)
                .silence(400);
            detect_digits(&s.pcm())
        }
        // Below the minimum level.
        assert_eq!(one('5', -40.0, 0.0), "");
        // Too much twist either way.
        assert_eq!(one('5', -10.0, -11.0), "");
        assert_eq!(one('5', -15.0, 7.0), "");
        // ...but the same key within the limits is found.
        assert_eq!(one('5', -10.0, -7.0), "5");
        assert_eq!(one('5', -15.0, 3.5), "5");
        // A single tone of a pair (row only, column only).
        for f in [697.0, 1336.0] {
            let w = 2.0 * PI * f / 8000.0;
            let a = peak(-10.0);
            let pcm: Vec<i16> = (0..4000)
                .map(|i| (a * (w * i as f64).sin()) as i16)
                .collect();
            assert_eq!(detect_digits(&pcm), "", "{f} Hz alone");
        }
        // Dial tone (350 + 440 Hz) and ringback (440 + 480 Hz).
        for (f1, f2) in [(350.0, 440.0), (440.0, 480.0)] {
            let pcm: Vec<i16> = (0..8000)
                .map(|i| {
                    let t = i as f64 / 8000.0;
                    (peak(-13.0) * ((2.0 * PI * f1 * t).sin() + (2.0 * PI * f2 * t).sin())) as i16
                })
                .collect();
            assert_eq!(detect_digits(&pcm), "");
        }
        // Loud white noise.
        let mut s = Signal::new(5);
        s.silence(80_000).noise(-10.0);
        assert_eq!(detect_digits(&s.pcm()), "");
        // A key buried in noise louder than itself.
        let mut s = Signal::new(6);
        s.key('8', Signal::ms(200), -25.0, 0.0, 0).noise(-15.0);
        assert_eq!(detect_digits(&s.pcm()), "");
        assert_eq!(detect_digits(&[]), "");
    }

    #[test]
    fn frame_length_does_not_matter() {
        let mut s = Signal::new(77);
        s.silence(333);
        for key in "90*AD".chars() {
            s.key(key, Signal::ms(60), -22.0, -3.0, 0)
                .silence(Signal::ms(60));
        }
        s.noise(-50.0);
        let pcm = s.pcm();
        for frame in [1, 7, 80, 102, 160, 240, 1000, pcm.len()] {
            let mut out = String::new();
            let mut d = InbandDtmf::new();
            for f in pcm.chunks(frame) {
                d.process(f, |c| out.push(c));
            }
            d.process_silence(1000, |c| out.push(c));
            assert_eq!(out, "90*AD", "frames of {frame}");
        }
        // reset() forgets a half-confirmed key.
        let mut d = InbandDtmf::new();
        let mut out = String::new();
        d.process(&pcm[..333 + 200], |c| out.push(c));
        d.reset();
        d.process_silence(2000, |c| out.push(c));
        assert_eq!(out, "");
    }

    fn prompt_files() -> Vec<std::path::PathBuf> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../prompts");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .expect("prompts/")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "wav"))
            .collect();
        files.sort();
        assert!(files.len() >= 40, "expected the shipped prompts in {dir:?}");
        files
    }

    /// A shipped prompt as the server loads it: read here, decoded by the crate.
    fn load_prompt(path: &std::path::Path) -> crate::prompt::Prompt {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        crate::prompt::decode_wav(path, &bytes).expect("load")
    }

    /// The file as linear 8 kHz samples, without G.711: hound + the crate's resampler.
    fn linear_8k(path: &std::path::Path) -> Vec<i16> {
        let mut r = hound::WavReader::open(path).expect("wav");
        let spec = r.spec();
        assert_eq!((spec.channels, spec.bits_per_sample), (1, 16), "{path:?}");
        let x: Vec<f32> = r
            .samples::<i16>()
            .map(|s| f32::from(s.expect("sample")) / 32768.0)
            .collect();
        crate::prompt::resample_to_8k(&x, spec.sample_rate)
            .expect("resample")
            .iter()
            .map(|v| (v * 32768.0).round().clamp(-32768.0, 32767.0) as i16)
            .collect()
    }

    #[test]
    fn shipped_prompts_and_hold_music_give_no_digits() {
        let mut seconds = 0.0;
        for path in prompt_files() {
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            let lin = linear_8k(&path);
            seconds += lin.len() as f64 / 8000.0;
            assert_eq!(detect_digits(&lin), "", "{name} (linear)");
            // As the server plays it (loaded, resampled and pre-encoded)...
            let p = load_prompt(&path);
            assert_eq!(detect_digits(&p.to_pcm()), "", "{name} (PCMU)");
            // ...and as a caller's phone would send it, in 20 ms packets.
            for codec in [Codec::Pcmu, Codec::Pcma] {
                let mut out = String::new();
                let mut d = InbandDtmf::new();
                for f in p.data(codec).chunks(160) {
                    d.process_g711(codec, f, |c| out.push(c));
                }
                assert_eq!(out, "", "{name} ({codec:?} packets)");
            }
            // Louder (+6 dB, clipping allowed) and quieter (−12 dB) versions.
            for gain in [2.0f32, 0.25] {
                let g: Vec<i16> = lin
                    .iter()
                    .map(|&s| (f32::from(s) * gain).clamp(-32768.0, 32767.0) as i16)
                    .collect();
                assert_eq!(
                    detect_digits(&g711_roundtrip(Codec::Pcmu, &g)),
                    "",
                    "{name} at gain {gain}"
                );
            }
        }
        assert!(seconds > 60.0, "only {seconds:.0} s of audio checked");
    }

    #[test]
    fn keys_are_found_over_speech_pauses_but_not_in_speech() {
        // A digit pressed during a prompt's pause is still heard; the prompt itself adds
        // nothing (what a caller typing ahead over the menu sounds like).
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../prompts/main-menu.wav");
        let speech = linear_8k(&path);
        let mut s = Signal::new(11);
        s.x.extend(speech.iter().map(|&v| f64::from(v)));
        s.key('2', Signal::ms(100), -12.0, -2.0, 0);
        s.x.extend(speech.iter().map(|&v| f64::from(v)));
        assert_eq!(detect_digits(&s.pcm()), "2");
    }

    /// 20 ms PCMU packets of `pcm` as (ts, payload), timestamps from `ts0`.
    fn packets(pcm: &[i16], ts0: u32) -> Vec<(u32, Vec<u8>)> {
        pcm.chunks(160)
            .enumerate()
            .map(|(i, c)| {
                let mut b = vec![0u8; c.len()];
                g711::encode_frame(Codec::Pcmu, c, &mut b);
                (ts0.wrapping_add(i as u32 * 160), b)
            })
            .collect()
    }

    fn run_rtp(rx: &mut InbandRtp, pkts: &[(u32, Vec<u8>)], ssrc: u32) -> String {
        let mut out = String::new();
        for (ts, p) in pkts {
            rx.on_packet(Codec::Pcmu, ssrc, *ts, p, |c| out.push(c));
        }
        out
    }

    #[test]
    fn rtp_gaps_duplicates_and_new_sources() {
        let mut s = Signal::new(21);
        s.silence(320).key('7', Signal::ms(200), -20.0, 0.0, 0);
        let tone = s.pcm();
        // The same key twice with the silence between them suppressed (DTX): the
        // timestamps jump by 1 s, no packet in between. Two presses.
        let mut rx = InbandRtp::new();
        let mut pkts = packets(&tone, u32::MAX - 500); // wraps around, too
        pkts.extend(packets(&tone, (u32::MAX - 500).wrapping_add(8000)));
        assert_eq!(run_rtp(&mut rx, &pkts, 1), "77");
        // One lost packet in a press: still one press.
        let mut rx = InbandRtp::new();
        let mut pkts = packets(&tone, 1000);
        pkts.remove(6);
        assert_eq!(run_rtp(&mut rx, &pkts, 1), "7");
        // Every packet duplicated, and a few reordered: one press.
        let mut rx = InbandRtp::new();
        let mut dup: Vec<_> = packets(&tone, 1000)
            .into_iter()
            .flat_map(|p| [p.clone(), p])
            .collect();
        dup.swap(9, 10);
        dup.swap(14, 12);
        assert_eq!(run_rtp(&mut rx, &dup, 1), "7");
        // A new SSRC starts a new timeline: its press counts on its own.
        let mut rx = InbandRtp::new();
        assert_eq!(run_rtp(&mut rx, &packets(&tone, 1000), 1), "7");
        assert_eq!(run_rtp(&mut rx, &packets(&tone, 99_000), 2), "7");
        rx.reset();
        assert_eq!(run_rtp(&mut rx, &packets(&tone, 5), 2), "7");
    }

    /// Cost of the server's per-packet work when detection is on: decode one 20 ms
    /// G.711 frame and run the detector on it. `cargo test -p ringback-media --release
    /// inband_cost -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn inband_cost_per_frame() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../prompts/main-menu.wav");
        let p = load_prompt(&path);
        let data = p.data(Codec::Pcmu);
        let frames: Vec<&[u8]> = data.chunks(160).collect();
        let mut d = InbandDtmf::new();
        let mut n = 0usize;
        let iters = 200_000;
        let t = std::time::Instant::now();
        for i in 0..iters {
            d.process_g711(Codec::Pcmu, frames[i % frames.len()], |_| n += 1);
        }
        let ns = t.elapsed().as_nanos() as f64 / iters as f64;
        let mut pcm = [0i16; 160];
        let t = std::time::Instant::now();
        for i in 0..iters {
            g711::decode_frame(Codec::Pcmu, frames[i % frames.len()], &mut pcm);
            std::hint::black_box(&pcm);
        }
        let dec = t.elapsed().as_nanos() as f64 / iters as f64;
        eprintln!("in-band DTMF: {ns:.0} ns per 20 ms frame (of which G.711 decode {dec:.0} ns); {n} digits");
        assert_eq!(n, 0);
    }
}
