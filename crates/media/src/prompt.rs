//! Prompts: WAV files converted once at load to 8 kHz and pre-encoded in both G.711
//! laws, split into shared 20 ms frames.
//!
//! Why: 10,000 concurrent calls cannot afford to decode, resample or encode audio per
//! call. A [`Prompt`] is immutable and reference-counted; playing it is copying a
//! 160-byte slice into an RTP packet. Decoding accepts whatever rate/format a prompt was
//! produced in (espeak-ng writes 22.05 kHz, studios 44.1/48 kHz, telephony packs 8 kHz
//! G.711 WAV) and resamples with a band-limited FFT resampler (`rubato`), because naive
//! decimation would fold everything above 4 kHz back into the voice band.
//!
//! This module only decodes bytes it is handed ([`decode_wav`]): listing the prompt
//! directory, reading and stat'ing files, the reload cache keyed by file stamp and the
//! decoding threads belong to the server (`src/prompt_loader.rs`), like every other
//! clock and file access of ringback.

use crate::codec::Codec;
use crate::g711;
use rubato::{FftFixedIn, Resampler};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Samples per 20 ms frame at 8 kHz: the packetisation every call uses.
pub const FRAME_SAMPLES: usize = 160;
/// Output sample rate of all prompts.
pub const SAMPLE_RATE: u32 = 8000;
/// Longest prompt accepted (1 hour), so a stray huge file cannot exhaust memory.
pub const MAX_PROMPT_SECONDS: u64 = 3600;

static SILENCE_PCMU: [u8; FRAME_SAMPLES] = [0xFF; FRAME_SAMPLES];
static SILENCE_PCMA: [u8; FRAME_SAMPLES] = [0xD5; FRAME_SAMPLES];

/// A silent 20 ms frame for `codec`, without allocation (also used for out-of-range
/// frame requests and for keeping RTP flowing while nothing plays).
pub fn silence_frame(codec: Codec) -> &'static [u8] {
    match codec {
        Codec::Pcmu => &SILENCE_PCMU,
        Codec::Pcma => &SILENCE_PCMA,
    }
}

/// Why a prompt could not be loaded. Every variant names the file, so `ringback check`
/// and the log can point the operator at it directly.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    /// The file or directory could not be read.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The file is not a well-formed WAV file.
    #[error("{}: invalid WAV file: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A valid WAV file in an encoding we do not decode (e.g. MP3-in-WAV, 64-bit float).
    #[error("{}: unsupported WAV format: {reason}", path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// Which format it is.
        reason: String,
    },
}

impl PromptError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            PromptError::Io { path, .. }
            | PromptError::Invalid { path, .. }
            | PromptError::Unsupported { path, .. } => path,
        }
    }
}

/// An immutable prompt, pre-encoded in PCMU and PCMA, padded to whole 20 ms frames with
/// the codec's silence byte. Cloning is cheap (the audio is shared via `Arc`).
#[derive(Debug, Clone)]
pub struct Prompt {
    /// Name the dialplan refers to (file stem for loaded files).
    pub name: String,
    pcmu: Arc<[u8]>,
    pcma: Arc<[u8]>,
    /// Real length in 8 kHz samples, before padding to whole frames.
    pub samples: usize,
}

impl Prompt {
    /// Builds a prompt from 8 kHz linear samples: pads to a whole frame with zeros (which
    /// encode to exactly the codecs' silence bytes) and encodes both laws once.
    pub fn from_samples_8k(name: impl Into<String>, pcm: &[i16]) -> Prompt {
        let frames = pcm.len().div_ceil(FRAME_SAMPLES);
        let padded = frames * FRAME_SAMPLES;
        let mut pcmu = vec![Codec::Pcmu.silence_byte(); padded];
        let mut pcma = vec![Codec::Pcma.silence_byte(); padded];
        g711::encode_frame(Codec::Pcmu, pcm, &mut pcmu);
        g711::encode_frame(Codec::Pcma, pcm, &mut pcma);
        Prompt {
            name: name.into(),
            pcmu: pcmu.into(),
            pcma: pcma.into(),
            samples: pcm.len(),
        }
    }

    /// Number of 20 ms frames to play.
    pub fn frames(&self, codec: Codec) -> usize {
        self.data(codec).len() / FRAME_SAMPLES
    }

    /// Frame `index` (160 bytes) encoded for `codec`. Out of range gives a silence frame
    /// rather than a panic, so a racing player can never crash the media worker.
    #[inline]
    pub fn frame(&self, codec: Codec, index: usize) -> &[u8] {
        let start = index.saturating_mul(FRAME_SAMPLES);
        self.data(codec)
            .get(start..start.saturating_add(FRAME_SAMPLES))
            .unwrap_or_else(|| silence_frame(codec))
    }

    /// The whole encoded prompt (a multiple of 160 bytes).
    pub fn data(&self, codec: Codec) -> &[u8] {
        match codec {
            Codec::Pcmu => &self.pcmu,
            Codec::Pcma => &self.pcma,
        }
    }

    /// Real duration (unpadded), used for `PromptDone` timing and position announcements.
    pub fn duration(&self) -> Duration {
        Duration::from_nanos(self.samples as u64 * 1_000_000_000 / SAMPLE_RATE as u64)
    }

    /// The prompt decoded back to linear 8 kHz samples (from the µ-law copy), e.g. to mix
    /// a whisper or to analyse what is being played. Allocates; not for the hot path.
    pub fn to_pcm(&self) -> Vec<i16> {
        let mut v = g711::decode_to_vec(Codec::Pcmu, &self.pcmu);
        v.truncate(self.samples);
        v
    }
}

/// A silent prompt of the given duration (rounded to whole samples), e.g. for pauses
/// between announcements.
pub fn silence(duration: Duration) -> Prompt {
    let samples = (duration.as_micros() * SAMPLE_RATE as u128 / 1_000_000) as usize;
    let mut p = Prompt::from_samples_8k(format!("silence-{}ms", duration.as_millis()), &[]);
    let frames = samples.div_ceil(FRAME_SAMPLES);
    p.pcmu = vec![Codec::Pcmu.silence_byte(); frames * FRAME_SAMPLES].into();
    p.pcma = vec![Codec::Pcma.silence_byte(); frames * FRAME_SAMPLES].into();
    p.samples = samples;
    p
}

fn sine_into(out: &mut [f64], freq_hz: f64, amplitude: f64) {
    let w = 2.0 * std::f64::consts::PI * freq_hz / SAMPLE_RATE as f64;
    for (i, o) in out.iter_mut().enumerate() {
        *o += amplitude * (w * i as f64).sin();
    }
}

fn tone_from(out: &mut [f64], name: String) -> Prompt {
    // 5 ms raised-cosine ramps so tones start and stop without clicks.
    let ramp = (SAMPLE_RATE as usize / 200).min(out.len() / 2);
    let n = out.len();
    for i in 0..ramp {
        let g = 0.5 - 0.5 * (std::f64::consts::PI * i as f64 / ramp as f64).cos();
        out[i] *= g;
        out[n - 1 - i] *= g;
    }
    let pcm: Vec<i16> = out
        .iter()
        .map(|x| (x * 32767.0).round().clamp(-32768.0, 32767.0) as i16)
        .collect();
    Prompt::from_samples_8k(name, &pcm)
}

/// A sine tone of `freq_hz` for `ms` milliseconds at `amplitude` (fraction of full
/// scale, clamped to 0..=1). Built-in fallback for hold music and beeps, so a missing
/// prompt file never means dead air.
pub fn tone(freq_hz: f64, ms: u32, amplitude: f64) -> Prompt {
    let mut buf = vec![0.0f64; ms as usize * SAMPLE_RATE as usize / 1000];
    sine_into(&mut buf, freq_hz, amplitude.clamp(0.0, 1.0));
    tone_from(&mut buf, format!("tone-{freq_hz}hz-{ms}ms"))
}

/// The in-band DTMF tone pair (ITU-T Q.23) for `digit`, `ms` long, each component at
/// −10 dBFS. Used for in-band dialling to peers without RFC 4733 and in tests.
pub fn dtmf_tone(digit: char, ms: u32) -> Option<Prompt> {
    use crate::goertzel::{DTMF_COLS, DTMF_KEYS, DTMF_ROWS};
    let d = digit.to_ascii_uppercase();
    let (r, c) = DTMF_KEYS
        .iter()
        .enumerate()
        .find_map(|(r, row)| row.iter().position(|&k| k == d).map(|c| (r, c)))?;
    let mut buf = vec![0.0f64; ms as usize * SAMPLE_RATE as usize / 1000];
    sine_into(&mut buf, DTMF_ROWS[r], 0.316);
    sine_into(&mut buf, DTMF_COLS[c], 0.316);
    Some(tone_from(&mut buf, format!("dtmf-{d}")))
}

/// Largest WAV file we read (a 1-hour 48 kHz stereo 32-bit file is ~1.4 GB; prompts are
/// much smaller, and this keeps a misplaced file from taking the server down).
pub const MAX_FILE_BYTES: u64 = 512 * 1024 * 1024;

/// What a minimal RIFF walk found: enough to decode G.711 WAVs (which `hound` does not
/// support) and to explain unsupported formats by name.
struct RiffInfo {
    tag: u16,
    channels: u16,
    rate: u32,
    bits: u16,
    data: Option<(usize, usize)>,
}

fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn riff_info(bytes: &[u8]) -> Option<RiffInfo> {
    if bytes.get(0..4)? != b"RIFF" || bytes.get(8..12)? != b"WAVE" {
        return None;
    }
    let mut pos = 12usize;
    let mut fmt: Option<(u16, u16, u32, u16)> = None;
    let mut data = None;
    while pos.checked_add(8)? <= bytes.len() {
        let id = bytes.get(pos..pos + 4)?;
        let size = le32(bytes, pos + 4)? as usize;
        let body = pos + 8;
        if id == b"fmt " {
            let mut tag = le16(bytes, body)?;
            if tag == 0xFFFE {
                // WAVE_FORMAT_EXTENSIBLE: the real tag starts the SubFormat GUID.
                tag = le16(bytes, body + 24).unwrap_or(tag);
            }
            fmt = Some((
                tag,
                le16(bytes, body + 2)?,
                le32(bytes, body + 4)?,
                le16(bytes, body + 14)?,
            ));
        } else if id == b"data" {
            // Tolerate a data chunk whose size overruns the file (truncated recording).
            let len = size.min(bytes.len().saturating_sub(body));
            data = Some((body, len));
        }
        pos = body.checked_add(size)?.checked_add(size & 1)?;
    }
    let (tag, channels, rate, bits) = fmt?;
    Some(RiffInfo {
        tag,
        channels,
        rate,
        bits,
        data,
    })
}

fn tag_name(tag: u16) -> String {
    let name = match tag {
        0x0001 => "PCM",
        0x0002 => "MS ADPCM",
        0x0003 => "IEEE float",
        0x0006 => "A-law",
        0x0007 => "µ-law",
        0x0011 => "IMA ADPCM",
        0x0031 => "GSM 6.10",
        0x0055 => "MP3",
        _ => "unknown",
    };
    format!("{name} (format tag 0x{tag:04x})")
}

/// The prompt name of a file: its stem, which must be valid UTF-8 (dialplans refer to
/// prompts by name). The shell checks it before reading the file, so a badly named file
/// is reported as such rather than by an I/O error.
pub fn prompt_name(path: &Path) -> Result<String, PromptError> {
    path.file_stem()
        .and_then(|s| s.to_str())
        .map(str::to_string)
        .ok_or_else(|| PromptError::Invalid {
            path: path.to_path_buf(),
            reason: "file name is not valid UTF-8".into(),
        })
}

/// Refuses a prompt file of `size` bytes when it is larger than [`MAX_FILE_BYTES`]. The
/// shell calls this with the size it stat'ed before reading the file;
/// [`decode_wav`] checks the bytes it is given again.
pub fn check_size(path: &Path, size: u64) -> Result<(), PromptError> {
    if size > MAX_FILE_BYTES {
        return Err(PromptError::Unsupported {
            path: path.to_path_buf(),
            reason: format!("file is {size} bytes, limit {MAX_FILE_BYTES}"),
        });
    }
    Ok(())
}

/// Decodes the contents of a WAV file, already read by the caller, as a prompt named
/// after the file stem of `path`: any sample rate, mono or multi-channel (averaged to
/// mono), 8/16/24/32-bit integer PCM, 32-bit float, or 8-bit A-law/µ-law; resampled to
/// 8 kHz with anti-aliasing and pre-encoded. `path` is only used for the name and for
/// error messages; nothing is read here (the server's `prompt_loader` reads the files).
pub fn decode_wav(path: &Path, bytes: &[u8]) -> Result<Prompt, PromptError> {
    let invalid = |reason: String| PromptError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let unsupported = |reason: String| PromptError::Unsupported {
        path: path.to_path_buf(),
        reason,
    };
    let name = prompt_name(path)?;
    check_size(path, bytes.len() as u64)?;
    let info = riff_info(bytes);

    let (mono, rate) = match &info {
        Some(i) if i.tag == 0x0006 || i.tag == 0x0007 => {
            if i.bits != 8 || i.channels == 0 {
                return Err(unsupported(format!(
                    "{} with {} bits and {} channels",
                    tag_name(i.tag),
                    i.bits,
                    i.channels
                )));
            }
            let (off, len) = i.data.ok_or_else(|| invalid("no data chunk".into()))?;
            let data = bytes.get(off..off + len).unwrap_or(&[]);
            let codec = if i.tag == 0x0006 {
                Codec::Pcma
            } else {
                Codec::Pcmu
            };
            let ch = i.channels as usize;
            let mono: Vec<f32> = data
                .chunks_exact(ch)
                .map(|f| {
                    f.iter()
                        .map(|&b| g711::decode(codec, b) as f32)
                        .sum::<f32>()
                        / (ch as f32 * 32768.0)
                })
                .collect();
            (mono, i.rate)
        }
        _ => decode_with_hound(bytes, info.as_ref(), &invalid, &unsupported)?,
    };
    if rate == 0 || rate > 768_000 {
        return Err(unsupported(format!("sample rate {rate} Hz")));
    }
    if mono.len() as u64 > MAX_PROMPT_SECONDS * rate as u64 {
        return Err(unsupported(format!("longer than {MAX_PROMPT_SECONDS} s")));
    }
    let resampled = resample_to_8k(&mono, rate).map_err(|e| invalid(format!("resampling: {e}")))?;
    let pcm: Vec<i16> = resampled
        .iter()
        .map(|x| (x * 32767.0).round().clamp(-32768.0, 32767.0) as i16)
        .collect();
    Ok(Prompt::from_samples_8k(name, &pcm))
}

type ErrFn<'a> = &'a dyn Fn(String) -> PromptError;

fn decode_with_hound(
    bytes: &[u8],
    info: Option<&RiffInfo>,
    invalid: ErrFn<'_>,
    unsupported: ErrFn<'_>,
) -> Result<(Vec<f32>, u32), PromptError> {
    let describe = || match info {
        Some(i) => format!(
            "{}, {} bits, {} channels",
            tag_name(i.tag),
            i.bits,
            i.channels
        ),
        None => "not a RIFF/WAVE file".to_string(),
    };
    let map_err = |e: hound::Error| match e {
        hound::Error::Unsupported | hound::Error::TooWide | hound::Error::InvalidSampleFormat => {
            unsupported(describe())
        }
        hound::Error::IoError(ref io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            invalid("file is truncated".into())
        }
        other => invalid(other.to_string()),
    };
    let mut reader = hound::WavReader::new(Cursor::new(bytes)).map_err(map_err)?;
    let spec = reader.spec();
    let ch = spec.channels as usize;
    if ch == 0 {
        return Err(invalid("zero channels".into()));
    }
    let frames = reader.duration() as u64;
    if spec.sample_rate == 0 || frames > MAX_PROMPT_SECONDS * spec.sample_rate as u64 {
        return Err(unsupported(format!(
            "{} frames at {} Hz",
            frames, spec.sample_rate
        )));
    }
    let interleaved: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => reader
            .samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(map_err)?,
        (hound::SampleFormat::Int, bits @ (8 | 16 | 24 | 32)) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f64;
            reader
                .samples::<i32>()
                .map(|s| s.map(|v| (v as f64 * scale) as f32))
                .collect::<Result<_, _>>()
                .map_err(map_err)?
        }
        (fmt, bits) => return Err(unsupported(format!("{bits}-bit {fmt:?} samples"))),
    };
    let mono = interleaved
        .chunks_exact(ch)
        .map(|f| f.iter().sum::<f32>() / ch as f32)
        .collect();
    Ok((mono, spec.sample_rate))
}

/// Resamples mono audio from `rate` to 8 kHz with rubato's FFT resampler (band-limited,
/// so content above 4 kHz is removed instead of aliased), compensating its delay so the
/// output is time-aligned and exactly `len * 8000 / rate` samples long.
pub fn resample_to_8k(input: &[f32], rate: u32) -> Result<Vec<f32>, String> {
    if rate == SAMPLE_RATE {
        return Ok(input.to_vec());
    }
    if rate == 0 {
        return Err("sample rate 0".into());
    }
    let expected =
        ((input.len() as u64 * SAMPLE_RATE as u64 + rate as u64 / 2) / rate as u64) as usize;
    if expected == 0 {
        return Ok(Vec::new());
    }
    const CHUNK: usize = 1024;
    let mut r = FftFixedIn::<f32>::new(rate as usize, SAMPLE_RATE as usize, CHUNK, 1, 1)
        .map_err(|e| e.to_string())?;
    let delay = r.output_delay();
    let target = delay + expected;
    let mut out: Vec<f32> = Vec::with_capacity(target + r.output_frames_max());
    let mut inbuf = vec![vec![0.0f32; CHUNK]];
    let mut outbuf = r.output_buffer_allocate(true);
    let mut pos = 0usize;
    // Bound the loop: input chunks plus enough zero chunks to flush the FFT block and
    // the delay line, whatever the rate ratio.
    let max_iters = input.len() / CHUNK + 2 * (rate as usize / CHUNK + 2) + 2 * (delay / 8 + 2);
    let mut iters = 0;
    while out.len() < target {
        iters += 1;
        if iters > max_iters {
            return Err(format!(
                "resampler produced {} of {} samples",
                out.len(),
                target
            ));
        }
        let n = CHUNK.min(input.len().saturating_sub(pos));
        let chunk = &mut inbuf[0];
        chunk[..n].copy_from_slice(&input[pos..pos + n]);
        chunk[n..].fill(0.0);
        pos += n;
        let (_, written) = r
            .process_into_buffer(&inbuf, &mut outbuf, None)
            .map_err(|e| e.to_string())?;
        out.extend_from_slice(&outbuf[0][..written]);
    }
    out.drain(..delay);
    out.truncate(expected);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goertzel;

    fn sine(freq: f64, rate: u32, secs: f64, amp: f64) -> Vec<f64> {
        let n = (rate as f64 * secs) as usize;
        (0..n)
            .map(|i| amp * (2.0 * std::f64::consts::PI * freq * i as f64 / rate as f64).sin())
            .collect()
    }

    /// `mono` (−1..1) as the bytes of a WAV file with the given layout; every channel
    /// gets the signal.
    fn wav(mono: &[f64], rate: u32, channels: u16, bits: u16, float: bool) -> Vec<u8> {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: if float {
                hound::SampleFormat::Float
            } else {
                hound::SampleFormat::Int
            },
        };
        let mut out = Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut out, spec).unwrap();
        for &x in mono {
            for _ in 0..channels {
                if float {
                    w.write_sample(x as f32).unwrap();
                } else {
                    let max = ((1i64 << (bits - 1)) - 1) as f64;
                    w.write_sample((x * max).round() as i32).unwrap();
                }
            }
        }
        w.finalize().unwrap();
        out.into_inner()
    }

    /// Decodes `bytes` as the file `name` would be.
    fn decode(name: &str, bytes: &[u8]) -> Result<Prompt, PromptError> {
        decode_wav(Path::new(name), bytes)
    }

    fn zero_crossings(s: &[i16]) -> usize {
        s.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count()
    }

    #[test]
    fn loads_all_layouts_and_preserves_duration() {
        let cases: &[(u32, u16, u16, bool)] = &[
            (8000, 1, 16, false),
            (11025, 1, 16, false),
            (16000, 1, 16, false),
            (22050, 1, 16, false),
            (44100, 2, 16, false),
            (48000, 1, 16, false),
            (22050, 1, 8, false),
            (48000, 2, 24, false),
            (16000, 1, 32, false),
            (44100, 1, 32, true),
        ];
        for (i, &(rate, ch, bits, float)) in cases.iter().enumerate() {
            let secs = 0.73;
            let bytes = wav(&sine(440.0, rate, secs, 0.5), rate, ch, bits, float);
            let p = decode(&format!("prompts/p{i}.wav"), &bytes).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(p.name, format!("p{i}"));
            let want = (secs * 8000.0) as i64;
            assert!(
                (p.samples as i64 - want).abs() <= FRAME_SAMPLES as i64,
                "{rate}/{ch}/{bits}: {}",
                p.samples
            );
            assert!((p.duration().as_secs_f64() - secs).abs() < 0.02);
            assert_eq!(p.frames(Codec::Pcmu), p.samples.div_ceil(FRAME_SAMPLES));
            // Level preserved: 0.5 full scale sine → power ≈ (0.5·32767)²/2.
            let pcm = p.to_pcm();
            let mid = &pcm[800..pcm.len() - 800];
            let power = goertzel::tone_power(mid, 440.0);
            let expect = (0.5f64 * 32767.0).powi(2) / 2.0;
            assert!(
                (power / expect - 1.0).abs() < 0.1,
                "{rate}/{ch}/{bits}/{float}: {power} vs {expect}"
            );
        }
    }

    #[test]
    fn one_khz_at_22050_stays_one_khz() {
        let bytes = wav(&sine(1000.0, 22050, 1.0, 0.5), 22050, 1, 16, false);
        let p = decode("beep.wav", &bytes).unwrap();
        let pcm = p.to_pcm();
        assert_eq!(pcm.len(), 8000);
        // 1 kHz for 1 s → ~2000 zero crossings.
        let zc = zero_crossings(&pcm);
        assert!((1990..=2010).contains(&zc), "{zc}");
        let on = goertzel::tone_power(&pcm, 1000.0);
        assert!(on > 0.9 * goertzel::mean_power(&pcm));
        assert!(goertzel::tone_power(&pcm, 1200.0) < on * 1e-3);
    }

    #[test]
    fn six_khz_at_48k_is_filtered_not_aliased() {
        let input = sine(6000.0, 48000, 1.0, 0.5);
        let p = decode("hiss.wav", &wav(&input, 48000, 1, 16, false)).unwrap();
        let pcm = p.to_pcm();
        let in_power = (0.5f64 * 32767.0).powi(2) / 2.0;
        // Naive decimation (every 6th sample) would put a full-level 2 kHz alias here.
        let naive: Vec<i16> = input
            .iter()
            .step_by(6)
            .map(|x| (x * 32767.0) as i16)
            .collect();
        assert!(
            goertzel::tone_power(&naive, 2000.0) > 0.5 * in_power,
            "test premise"
        );
        let alias = goertzel::tone_power(&pcm, 2000.0);
        let total = goertzel::mean_power(&pcm[400..pcm.len() - 400]);
        assert!(
            alias < in_power * 1e-4,
            "alias at -{:.0} dB only",
            10.0 * (in_power / alias).log10()
        );
        assert!(total < in_power * 1e-3, "residual {total}");
    }

    #[test]
    fn passband_is_flat_and_timing_is_aligned() {
        // 0.5 s silence, then a 3 kHz tone (near the top of the telephone band).
        let mut sig = vec![0.0; 22050];
        sig.extend(sine(3000.0, 44100, 0.5, 0.5));
        let pcm = decode("edge.wav", &wav(&sig, 44100, 1, 16, false))
            .unwrap()
            .to_pcm();
        assert_eq!(pcm.len(), 8000);
        let expect = (0.5f64 * 32767.0).powi(2) / 2.0;
        let p = goertzel::tone_power(&pcm[4400..7600], 3000.0);
        assert!(
            (10.0 * (p / expect).log10()).abs() < 1.0,
            "3 kHz level off by > 1 dB: {p}"
        );
        // Delay compensated: the onset is where it was in the source (±2 ms).
        let onset = pcm.iter().position(|s| s.unsigned_abs() > 2000).unwrap();
        assert!((3984..=4016).contains(&onset), "onset at {onset}");
    }

    #[test]
    fn frames_are_padded_with_codec_silence() {
        let pcm: Vec<i16> = (0..100).map(|i| (i * 300) as i16).collect();
        let p = Prompt::from_samples_8k("x", &pcm);
        assert_eq!(p.samples, 100);
        assert_eq!(p.frames(Codec::Pcmu), 1);
        assert_eq!(p.frames(Codec::Pcma), 1);
        let u = p.frame(Codec::Pcmu, 0);
        let a = p.frame(Codec::Pcma, 0);
        assert_eq!((u.len(), a.len()), (160, 160));
        assert!(u[100..].iter().all(|&b| b == 0xFF));
        assert!(a[100..].iter().all(|&b| b == 0xD5));
        assert_eq!(u[50], g711::ulaw_encode(pcm[50]));
        assert_eq!(a[50], g711::alaw_encode(pcm[50]));
        // Out of range: silence, no panic.
        assert_eq!(p.frame(Codec::Pcmu, 1), &[0xFF; 160][..]);
        assert_eq!(p.frame(Codec::Pcma, usize::MAX), &[0xD5; 160][..]);
        let empty = Prompt::from_samples_8k("e", &[]);
        assert_eq!(
            (empty.frames(Codec::Pcmu), empty.duration()),
            (0, Duration::ZERO)
        );
        let exact = Prompt::from_samples_8k("e", &[1; 320]);
        assert_eq!(exact.frames(Codec::Pcma), 2);
    }

    #[test]
    fn silence_and_tones() {
        let s = silence(Duration::from_millis(250));
        assert_eq!((s.samples, s.frames(Codec::Pcmu)), (2000, 13));
        assert!(s.data(Codec::Pcma).iter().all(|&b| b == 0xD5));
        assert!(s.data(Codec::Pcmu).iter().all(|&b| b == 0xFF));
        let t = tone(425.0, 1000, 0.3);
        assert_eq!(t.samples, 8000);
        let pcm = t.to_pcm();
        let p = goertzel::tone_power(&pcm, 425.0);
        assert!(
            (p / (0.3f64 * 32767.0).powi(2) * 2.0 - 1.0).abs() < 0.05,
            "{p}"
        );
        assert_eq!(pcm[0], 0, "ramped in");
        for d in "0123456789*#ABCDa".chars() {
            let p = dtmf_tone(d, 80).unwrap();
            assert_eq!(
                goertzel::detect_dtmf(&p.to_pcm()),
                Some(d.to_ascii_uppercase())
            );
            // And after A-law coding, as a peer would receive it.
            let a = g711::decode_to_vec(Codec::Pcma, p.data(Codec::Pcma));
            assert_eq!(goertzel::detect_dtmf(&a), Some(d.to_ascii_uppercase()));
        }
        assert!(dtmf_tone('x', 80).is_none());
    }

    fn g711_wav(tag: u16, data: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(b"RIFF");
        v.extend_from_slice(&(4 + 26 + 8 + data.len() as u32).to_le_bytes());
        v.extend_from_slice(b"WAVEfmt ");
        v.extend_from_slice(&18u32.to_le_bytes());
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&1u16.to_le_bytes()); // mono
        v.extend_from_slice(&8000u32.to_le_bytes());
        v.extend_from_slice(&8000u32.to_le_bytes());
        v.extend_from_slice(&1u16.to_le_bytes()); // block align
        v.extend_from_slice(&8u16.to_le_bytes()); // bits
        v.extend_from_slice(&0u16.to_le_bytes()); // cbSize
        v.extend_from_slice(b"data");
        v.extend_from_slice(&(data.len() as u32).to_le_bytes());
        v.extend_from_slice(data);
        if data.len() % 2 == 1 {
            v.push(0);
        }
        v
    }

    #[test]
    fn g711_wav_files_load_bit_exact() {
        let pcm: Vec<i16> = sine(700.0, 8000, 0.5, 0.4)
            .iter()
            .map(|x| (x * 32767.0) as i16)
            .collect();
        let ulaw: Vec<u8> = pcm.iter().map(|&s| g711::ulaw_encode(s)).collect();
        let alaw: Vec<u8> = pcm.iter().map(|&s| g711::alaw_encode(s)).collect();
        let u = decode("u.wav", &g711_wav(7, &ulaw)).unwrap();
        assert_eq!(
            &u.data(Codec::Pcmu)[..ulaw.len()],
            &ulaw[..],
            "µ-law passes through unchanged"
        );
        let a = decode("a.wav", &g711_wav(6, &alaw)).unwrap();
        assert_eq!(&a.data(Codec::Pcma)[..alaw.len()], &alaw[..]);
        assert_eq!(a.samples, 4000);
    }

    #[test]
    fn bad_files_give_clear_errors() {
        // (An unreadable file is the shell's error: see src/prompt_loader.rs.)
        let garbage = Path::new("prompts/garbage.wav");
        let e = decode_wav(garbage, b"this is not a wav file at all, just text").unwrap_err();
        assert_eq!(e.path(), garbage);
        let msg = e.to_string();
        assert!(msg.starts_with(&garbage.display().to_string()), "{msg}");
        assert!(
            matches!(
                e,
                PromptError::Invalid { .. } | PromptError::Unsupported { .. }
            ),
            "{msg}"
        );

        // Valid header, truncated samples.
        let bytes = wav(&sine(440.0, 16000, 0.5, 0.5), 16000, 1, 16, false);
        assert!(decode("cut.wav", &bytes[..30]).is_err());
        assert!(decode("cut2.wav", &bytes[..bytes.len() - 1001]).is_err());

        // MP3-in-WAV: named in the message.
        let msg = decode("mp3.wav", &g711_wav(0x0055, &[0u8; 100]))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("unsupported WAV format: MP3"), "{msg}");
        // 16-bit µ-law is not a thing.
        let mut odd = g711_wav(7, &[0u8; 100]);
        odd[34] = 16;
        let msg = decode("mp3.wav", &odd).unwrap_err().to_string();
        assert!(msg.contains("unsupported WAV format: µ-law"), "{msg}");

        // Too large, whether stat'ed by the shell or handed over.
        let big = Path::new("big.wav");
        let msg = check_size(big, MAX_FILE_BYTES + 1).unwrap_err().to_string();
        assert_eq!(
            msg,
            format!(
                "big.wav: unsupported WAV format: file is {} bytes, limit {MAX_FILE_BYTES}",
                MAX_FILE_BYTES + 1
            )
        );
        assert!(check_size(big, MAX_FILE_BYTES).is_ok());

        // A name a dialplan cannot refer to.
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            let bad = Path::new(std::ffi::OsStr::from_bytes(b"caf\xe9.wav"));
            let e = decode_wav(bad, &bytes).unwrap_err();
            assert!(matches!(e, PromptError::Invalid { .. }), "{e}");
            assert!(
                e.to_string().ends_with("file name is not valid UTF-8"),
                "{e}"
            );
            assert!(prompt_name(bad).is_err());
        }
        assert_eq!(prompt_name(Path::new("dir/menu.WAV")).unwrap(), "menu");

        // Random mutations of a valid file never panic.
        let mut state: u64 = 99;
        for _ in 0..200 {
            let mut b = bytes.clone();
            for _ in 0..8 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let at = (state % 64) as usize;
                b[at] = (state >> 32) as u8;
            }
            let _ = decode("fuzz.wav", &b);
        }
    }

    #[test]
    fn resampler_edge_cases() {
        assert_eq!(resample_to_8k(&[], 44100).unwrap(), Vec::<f32>::new());
        assert_eq!(resample_to_8k(&[0.5; 3], 48000).unwrap().len(), 1);
        assert!(resample_to_8k(&[0.5; 3], 0).is_err());
        // Odd rate with gcd 1 still works and keeps length.
        let out = resample_to_8k(&vec![0.25; 7919], 7919).unwrap();
        assert_eq!(out.len(), 8000);
        assert!((out[4000] - 0.25).abs() < 0.01);
    }
}
