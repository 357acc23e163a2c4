//! Goertzel tone analysis at 8 kHz.
//!
//! The server's interop tests decode the RTP they receive and use these functions to
//! prove that a prompt, a tone or a DTMF digit was really played, instead of trusting
//! packet counts. It can also serve as an in-band DTMF fallback for peers that send
//! neither RFC 4733 nor SIP INFO.

/// Sample rate all analysis assumes (G.711's).
pub const SAMPLE_RATE: f64 = 8000.0;

/// DTMF row (low-group) frequencies, ITU-T Q.23.
pub const DTMF_ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
/// DTMF column (high-group) frequencies, ITU-T Q.23.
pub const DTMF_COLS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
/// Keys indexed by `[row][col]`.
pub const DTMF_KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// Analysis block: 205 samples is the classic choice at 8 kHz (bins ≈ 39 Hz wide, enough
/// to separate the DTMF frequencies) and ~25.6 ms, shorter than the 40 ms minimum tone.
pub const DTMF_BLOCK: usize = 205;

/// Power of the sinusoidal component at `freq` Hz in `samples` (8 kHz), in squared
/// sample units: a sine of peak amplitude `A` at exactly `freq` gives ≈ `A²/2`, the same
/// scale as [`mean_power`], so the two can be compared directly.
pub fn tone_power(samples: &[i16], freq: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let w = 2.0 * std::f64::consts::PI * freq / SAMPLE_RATE;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = x as f64 + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let mag2 = (s1 * s1 + s2 * s2 - coeff * s1 * s2).max(0.0);
    let n = samples.len() as f64;
    2.0 * mag2 / (n * n)
}

/// Mean power (mean square) of `samples`; a full-scale sine is ≈ 5.4e8.
pub fn mean_power(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples
        .iter()
        .map(|&x| (x as f64) * (x as f64))
        .sum::<f64>()
        / samples.len() as f64
}

/// Minimum power per DTMF component (≈ −45 dBFS), below which we call it silence.
const MIN_TONE_POWER: f64 = 1.5e4;

fn strongest(samples: &[i16], freqs: &[f64; 4]) -> (usize, f64, f64) {
    let mut p = [0.0f64; 4];
    for (o, f) in p.iter_mut().zip(freqs) {
        *o = tone_power(samples, *f);
    }
    let mut best = 0;
    for i in 1..4 {
        if p[i] > p[best] {
            best = i;
        }
    }
    let second = (0..4)
        .filter(|&i| i != best)
        .map(|i| p[i])
        .fold(0.0, f64::max);
    (best, p[best], second)
}

/// Detects one DTMF key in a short block (ideally [`DTMF_BLOCK`] samples): both group
/// tones present, dominating the block's energy, each well above its neighbours, and
/// twist (level difference) under 8 dB.
pub fn detect_dtmf_block(block: &[i16]) -> Option<char> {
    if block.len() < 80 {
        return None;
    }
    let (r, rp, r2) = strongest(block, &DTMF_ROWS);
    let (c, cp, c2) = strongest(block, &DTMF_COLS);
    let total = mean_power(block);
    let ok = rp > MIN_TONE_POWER
        && cp > MIN_TONE_POWER
        && rp + cp > 0.6 * total
        && r2 < rp / 8.0
        && c2 < cp / 8.0
        && rp < cp * 6.3
        && cp < rp * 6.3;
    ok.then(|| DTMF_KEYS[r][c])
}

fn block_results(samples: &[i16]) -> Vec<Option<char>> {
    if samples.len() < DTMF_BLOCK {
        return vec![detect_dtmf_block(samples)];
    }
    let hop = DTMF_BLOCK / 2;
    (0..=(samples.len() - DTMF_BLOCK) / hop)
        .map(|i| detect_dtmf_block(&samples[i * hop..i * hop + DTMF_BLOCK]))
        .collect()
}

/// The DTMF key present in `samples_8k` (the one detected in most analysis blocks), or
/// `None` if there is none. Use it on a recording of one tone burst.
pub fn detect_dtmf(samples_8k: &[i16]) -> Option<char> {
    let results = block_results(samples_8k);
    let mut counts: Vec<(char, usize)> = Vec::new();
    for c in results.into_iter().flatten() {
        match counts.iter_mut().find(|(k, _)| *k == c) {
            Some((_, n)) => *n += 1,
            None => counts.push((c, 1)),
        }
    }
    // max_by_key keeps the last maximum; iterate reversed so ties favour the first key.
    counts.iter().rev().max_by_key(|(_, n)| *n).map(|(c, _)| *c)
}

/// All DTMF keys in `samples_8k`, in order, for checking a digit sequence (e.g. the
/// digits ringback sent in-band or the caller ID it read out). A key counts when two
/// consecutive half-overlapping blocks agree (≈ 38 ms), and a repeat of the same key
/// needs a gap without detection in between.
pub fn detect_dtmf_sequence(samples_8k: &[i16]) -> String {
    let mut out = String::new();
    let mut prev: Option<char> = None;
    let mut current: Option<char> = None;
    for r in block_results(samples_8k) {
        if r.is_some() && r == prev && current != r {
            if let Some(c) = r {
                out.push(c);
            }
            current = r;
        }
        if r.is_none() && prev.is_none() {
            current = None;
        }
        prev = r;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f64, amp: f64, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                (amp * (2.0 * std::f64::consts::PI * freq * i as f64 / SAMPLE_RATE).sin()) as i16
            })
            .collect()
    }

    fn key(c: char, n: usize) -> Vec<i16> {
        for (r, row) in DTMF_KEYS.iter().enumerate() {
            for (k, &kc) in row.iter().enumerate() {
                if kc == c {
                    let a = sine(DTMF_ROWS[r], 8000.0, n);
                    let b = sine(DTMF_COLS[k], 8000.0, n);
                    return a.iter().zip(&b).map(|(x, y)| x + y).collect();
                }
            }
        }
        unreachable!()
    }

    #[test]
    fn tone_power_scale() {
        let s = sine(1000.0, 10000.0, 800);
        let p = tone_power(&s, 1000.0);
        assert!((p / 5.0e7 - 1.0).abs() < 0.02, "{p}");
        assert!((mean_power(&s) / 5.0e7 - 1.0).abs() < 0.02);
        assert!(tone_power(&s, 2000.0) < p * 1e-3);
        assert_eq!(tone_power(&[], 1000.0), 0.0);
    }

    #[test]
    fn detects_every_key_and_rejects_noise() {
        for c in "0123456789*#ABCD".chars() {
            assert_eq!(detect_dtmf(&key(c, 800)), Some(c), "{c}");
            assert_eq!(detect_dtmf_block(&key(c, DTMF_BLOCK)), Some(c), "{c}");
        }
        assert_eq!(detect_dtmf(&vec![0i16; 800]), None);
        assert_eq!(
            detect_dtmf(&sine(1000.0, 10000.0, 800)),
            None,
            "single tone"
        );
        assert_eq!(detect_dtmf(&sine(697.0, 10000.0, 800)), None, "row only");
        // Pseudo-random noise.
        let mut x: u32 = 1;
        let noise: Vec<i16> = (0..4000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                ((x >> 16) as i16) / 4
            })
            .collect();
        assert_eq!(detect_dtmf(&noise), None);
        assert_eq!(detect_dtmf(&[]), None);
    }

    #[test]
    fn sequence_detection() {
        let mut s = Vec::new();
        for c in "1559#".chars() {
            s.extend(key(c, 480)); // 60 ms tone
            s.extend(vec![0i16; 480]); // 60 ms pause
        }
        assert_eq!(detect_dtmf_sequence(&s), "1559#");
        assert_eq!(detect_dtmf_sequence(&[]), "");
    }
}
