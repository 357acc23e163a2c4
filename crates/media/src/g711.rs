//! ITU-T G.711 µ-law and A-law, table driven.
//!
//! Why tables: encoding is one indexed load per sample and decoding another, which keeps
//! transcoding (PCMU caller ↔ PCMA agent) and recording cheap. The tables are built at
//! compile time by `const fn`s, so there is no start-up cost and no lazy lock on the
//! hot path. The encode tables are indexed by the bits the standard actually uses
//! (14 bits for µ-law, 12 bits + sign for A-law), which keeps them small (16 KiB + 4 KiB)
//! and cache friendly.
//!
//! The results are bit-exact with the ITU-T G.191 Software Tool Library reference
//! (`ulaw_compress`/`ulaw_expand`, `alaw_compress`/`alaw_expand`); the tests compare all
//! 65,536 inputs and all 256 codes against a literal transcription of that code.

use crate::codec::Codec;

/// µ-law bias added to the 14-bit magnitude (G.711 table 2, 33 in 14-bit units).
const ULAW_BIAS: i32 = 33;
/// Largest biased 14-bit magnitude; anything louder clips to the top code.
const ULAW_CLIP: i32 = 0x1FFF;

const fn ulaw_encode_14(v: i32) -> u8 {
    // `v` is the sample arithmetically shifted right by 2 (14-bit signed). Negative
    // values use the one's complement, as G.191 does, so -1 and 0 map to the two zeros.
    let positive = v >= 0;
    let mut mag = if positive { v } else { !v } + ULAW_BIAS;
    if mag > ULAW_CLIP {
        mag = ULAW_CLIP;
    }
    // Exponent = position of the leading one above bit 5 (0..=7).
    let mut exp = 0;
    let mut t = mag >> 6;
    while t != 0 {
        exp += 1;
        t >>= 1;
    }
    let mant = (mag >> (exp + 1)) & 0x0F;
    let code = ((exp << 4) | mant) as u8;
    if positive {
        code ^ 0xFF
    } else {
        code ^ 0x7F
    }
}

const fn alaw_encode_12(v: i32) -> u8 {
    // `v` is the sample arithmetically shifted right by 4; magnitude 0..2047.
    let positive = v >= 0;
    let mut ix = if positive { v } else { !v };
    if ix > 15 {
        let mut exp = 1;
        while ix > 31 {
            ix >>= 1;
            exp += 1;
        }
        ix = (ix - 16) + (exp << 4);
    }
    let code = if positive { ix | 0x80 } else { ix } as u8;
    code ^ 0x55
}

const fn ulaw_decode_const(code: u8) -> i16 {
    let u = !code;
    let exp = ((u >> 4) & 0x07) as i32;
    let mant = (u & 0x0F) as i32;
    // Reconstruct at the middle of the quantisation step, in 16-bit scale.
    let mag = (((mant << 3) + 0x84) << exp) - 0x84;
    if u & 0x80 != 0 {
        -mag as i16
    } else {
        mag as i16
    }
}

const fn alaw_decode_const(code: u8) -> i16 {
    let a = code ^ 0x55;
    let exp = ((a >> 4) & 0x07) as i32;
    let mut mag = ((a & 0x0F) as i32) << 4;
    mag += 8;
    if exp > 0 {
        mag += 0x100;
    }
    if exp > 1 {
        mag <<= exp - 1;
    }
    if a & 0x80 != 0 {
        mag as i16
    } else {
        -mag as i16
    }
}

static ULAW_ENC: [u8; 1 << 14] = {
    let mut t = [0u8; 1 << 14];
    let mut i = 0;
    while i < (1 << 14) {
        // Sign-extend the 14-bit index.
        let v = ((i as i32) << 18) >> 18;
        t[i] = ulaw_encode_14(v);
        i += 1;
    }
    t
};

static ALAW_ENC: [u8; 1 << 12] = {
    let mut t = [0u8; 1 << 12];
    let mut i = 0;
    while i < (1 << 12) {
        let v = ((i as i32) << 20) >> 20;
        t[i] = alaw_encode_12(v);
        i += 1;
    }
    t
};

static ULAW_DEC: [i16; 256] = {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = ulaw_decode_const(i as u8);
        i += 1;
    }
    t
};

static ALAW_DEC: [i16; 256] = {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = alaw_decode_const(i as u8);
        i += 1;
    }
    t
};

/// Direct µ-law → A-law code conversion (via the linear value), so a B2BUA bridge
/// between a PCMU leg and a PCMA leg costs one lookup per byte.
static ULAW_TO_ALAW: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = alaw_encode_12((ulaw_decode_const(i as u8) as i32) >> 4);
        i += 1;
    }
    t
};

/// Direct A-law → µ-law code conversion, the reverse of [`ULAW_TO_ALAW`].
static ALAW_TO_ULAW: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = ulaw_encode_14((alaw_decode_const(i as u8) as i32) >> 2);
        i += 1;
    }
    t
};

/// Encodes one 16-bit linear sample to µ-law. Only the top 14 bits matter (G.711).
#[inline]
pub fn ulaw_encode(s: i16) -> u8 {
    // (s >> 2) is in -8192..=8191; masking gives the table index of its 14-bit pattern.
    ULAW_ENC[((s >> 2) as u16 & 0x3FFF) as usize]
}

/// Decodes one µ-law byte to a 16-bit linear sample (middle of the quantisation step).
#[inline]
pub fn ulaw_decode(b: u8) -> i16 {
    ULAW_DEC[b as usize]
}

/// Encodes one 16-bit linear sample to A-law. Only the top 12 bits + sign matter.
#[inline]
pub fn alaw_encode(s: i16) -> u8 {
    ALAW_ENC[((s >> 4) as u16 & 0x0FFF) as usize]
}

/// Decodes one A-law byte to a 16-bit linear sample (middle of the quantisation step).
#[inline]
pub fn alaw_decode(b: u8) -> i16 {
    ALAW_DEC[b as usize]
}

/// Encodes one sample with the given codec; a convenience for generic code.
#[inline]
pub fn encode(codec: Codec, s: i16) -> u8 {
    match codec {
        Codec::Pcmu => ulaw_encode(s),
        Codec::Pcma => alaw_encode(s),
    }
}

/// Decodes one byte with the given codec; a convenience for generic code.
#[inline]
pub fn decode(codec: Codec, b: u8) -> i16 {
    match codec {
        Codec::Pcmu => ulaw_decode(b),
        Codec::Pcma => alaw_decode(b),
    }
}

/// Encodes `min(pcm.len(), out.len())` samples and returns how many were written.
///
/// Taking the output slice from the caller keeps this allocation-free, and returning the
/// count instead of panicking on a length mismatch keeps callers honest without a crash.
pub fn encode_frame(codec: Codec, pcm: &[i16], out: &mut [u8]) -> usize {
    let n = pcm.len().min(out.len());
    match codec {
        Codec::Pcmu => {
            for (o, &s) in out.iter_mut().zip(pcm) {
                *o = ulaw_encode(s);
            }
        }
        Codec::Pcma => {
            for (o, &s) in out.iter_mut().zip(pcm) {
                *o = alaw_encode(s);
            }
        }
    }
    n
}

/// Decodes `min(data.len(), out.len())` bytes and returns how many were written. Used
/// by the recorder and by tests that verify what was really sent.
pub fn decode_frame(codec: Codec, data: &[u8], out: &mut [i16]) -> usize {
    let n = data.len().min(out.len());
    let table = match codec {
        Codec::Pcmu => &ULAW_DEC,
        Codec::Pcma => &ALAW_DEC,
    };
    for (o, &b) in out.iter_mut().zip(data) {
        *o = table[b as usize];
    }
    n
}

/// Decodes a whole payload into a new vector; convenient for tests and analysis, not
/// meant for the per-packet path.
pub fn decode_to_vec(codec: Codec, data: &[u8]) -> Vec<i16> {
    let mut out = vec![0i16; data.len()];
    decode_frame(codec, data, &mut out);
    out
}

/// Converts G.711 bytes in place from one law to the other, so a bridge between a PCMU
/// leg and a PCMA leg needs no intermediate linear buffer. A no-op when `from == to`.
pub fn transcode_in_place(from: Codec, to: Codec, data: &mut [u8]) {
    let table = match (from, to) {
        (Codec::Pcmu, Codec::Pcma) => &ULAW_TO_ALAW,
        (Codec::Pcma, Codec::Pcmu) => &ALAW_TO_ULAW,
        _ => return,
    };
    for b in data {
        *b = table[*b as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // ---- Literal transcription of ITU-T G.191 STL g711.c (reference) ----

    fn g191_alaw_compress(lin: i16) -> u8 {
        let l = lin as i32;
        let mut ix: i32 = if l < 0 { (!l) >> 4 } else { l >> 4 };
        if ix > 15 {
            let mut iexp = 1;
            while ix > 16 + 15 {
                ix >>= 1;
                iexp += 1;
            }
            ix -= 16;
            ix += iexp << 4;
        }
        if l >= 0 {
            ix |= 0x0080;
        }
        (ix ^ 0x0055) as u8
    }

    fn g191_alaw_expand(log: u8) -> i16 {
        let logv = log as i32;
        let mut ix = logv ^ 0x0055;
        ix &= 0x007F;
        let iexp = ix >> 4;
        let mut mant = ix & 0x000F;
        if iexp > 0 {
            mant += 16;
        }
        mant = (mant << 4) + 0x0008;
        if iexp > 1 {
            mant <<= iexp - 1;
        }
        (if logv > 127 { mant } else { -mant }) as i16
    }

    fn g191_ulaw_compress(lin: i16) -> u8 {
        let l = lin as i32;
        let mut absno: i32 = if l < 0 {
            ((!l) >> 2) + 33
        } else {
            (l >> 2) + 33
        };
        if absno > 0x1FFF {
            absno = 0x1FFF;
        }
        let mut i = absno >> 6;
        let mut segno = 1;
        while i != 0 {
            segno += 1;
            i >>= 1;
        }
        let high_nibble = 0x0008 - segno;
        let mut low_nibble = (absno >> segno) & 0x000F;
        low_nibble = 0x000F - low_nibble;
        let mut out = (high_nibble << 4) | low_nibble;
        if l >= 0 {
            out |= 0x0080;
        }
        out as u8
    }

    fn g191_ulaw_expand(log: u8) -> i16 {
        let logv = log as i16;
        let sign: i32 = if logv < 0x0080 { -1 } else { 1 };
        let mut mantissa: i16 = !logv;
        let exponent = ((mantissa >> 4) & 0x0007) as i32;
        let segment = exponent + 1;
        mantissa &= 0x000F;
        let step: i32 = 4 << segment;
        (sign * ((0x0080 << exponent) + step * mantissa as i32 + step / 2 - 4 * 33)) as i16
    }

    #[test]
    fn ulaw_encode_matches_g191_for_all_inputs() {
        for s in i16::MIN..=i16::MAX {
            assert_eq!(ulaw_encode(s), g191_ulaw_compress(s), "sample {s}");
        }
    }

    #[test]
    fn alaw_encode_matches_g191_for_all_inputs() {
        for s in i16::MIN..=i16::MAX {
            assert_eq!(alaw_encode(s), g191_alaw_compress(s), "sample {s}");
        }
    }

    #[test]
    fn decode_matches_g191_for_all_codes() {
        for b in 0..=255u8 {
            assert_eq!(ulaw_decode(b), g191_ulaw_expand(b), "ulaw code {b:#04x}");
            assert_eq!(alaw_decode(b), g191_alaw_expand(b), "alaw code {b:#04x}");
        }
    }

    #[test]
    fn known_values() {
        // Well-known points of the G.711 tables.
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_encode(-1), 0x55);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
    }

    #[test]
    fn decode_encode_roundtrip_is_identity_on_codes() {
        // Every code except µ-law's negative zero (0x7F decodes to 0 → 0xFF) round-trips.
        for b in 0..=255u8 {
            if b != 0x7F {
                assert_eq!(ulaw_encode(ulaw_decode(b)), b, "ulaw {b:#04x}");
            }
            assert_eq!(alaw_encode(alaw_decode(b)), b, "alaw {b:#04x}");
        }
    }

    #[test]
    fn quantisation_error_is_bounded() {
        // Error stays below half a step of the coarsest segment; relative error of a
        // log codec stays small for loud samples.
        for s in (i16::MIN + 1..=i16::MAX).step_by(7) {
            let eu = (ulaw_decode(ulaw_encode(s)) as i32 - s as i32).abs();
            let ea = (alaw_decode(alaw_encode(s)) as i32 - s as i32).abs();
            assert!(eu <= 1024, "ulaw {s}: {eu}");
            assert!(ea <= 1024, "alaw {s}: {ea}");
            if s.unsigned_abs() > 1000 && s.unsigned_abs() < 32000 {
                assert!(eu as f64 / (s as f64).abs() < 0.07, "ulaw rel {s}");
                assert!(ea as f64 / (s as f64).abs() < 0.07, "alaw rel {s}");
            }
        }
    }

    #[test]
    fn frame_helpers_and_transcoding() {
        let pcm: Vec<i16> = (0..160)
            .map(|i| ((i * 409) % 65536 - 32768) as i16)
            .collect();
        let mut u = [0u8; 160];
        let mut a = [0u8; 160];
        assert_eq!(encode_frame(Codec::Pcmu, &pcm, &mut u), 160);
        assert_eq!(encode_frame(Codec::Pcma, &pcm, &mut a), 160);
        for i in 0..160 {
            assert_eq!(u[i], ulaw_encode(pcm[i]));
            assert_eq!(a[i], encode(Codec::Pcma, pcm[i]));
        }
        // Short output: no panic, count reported.
        let mut short = [0u8; 10];
        assert_eq!(encode_frame(Codec::Pcmu, &pcm, &mut short), 10);
        let mut back = [0i16; 160];
        assert_eq!(decode_frame(Codec::Pcmu, &u, &mut back), 160);
        assert_eq!(back[5], ulaw_decode(u[5]));
        assert_eq!(decode_to_vec(Codec::Pcma, &a)[7], alaw_decode(a[7]));

        // Transcoding equals decode + re-encode.
        let mut t = u;
        transcode_in_place(Codec::Pcmu, Codec::Pcma, &mut t);
        for i in 0..160 {
            assert_eq!(t[i], alaw_encode(ulaw_decode(u[i])));
        }
        let mut t = a;
        transcode_in_place(Codec::Pcma, Codec::Pcmu, &mut t);
        for i in 0..160 {
            assert_eq!(t[i], ulaw_encode(alaw_decode(a[i])));
        }
        let mut same = u;
        transcode_in_place(Codec::Pcmu, Codec::Pcmu, &mut same);
        assert_eq!(same, u);
    }
}
