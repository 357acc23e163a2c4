//! Turning tapped frames into a stereo WAV: the [`Timeline`] places each
//! leg's audio on one shared clock (the caller left, the agent right,
//! silence wherever a leg sent nothing, zeros for paused frames), and
//! [`Session`] writes what the timeline releases to a `Write + Seek` (a
//! file in the server, memory or a failing writer in tests). No clock is
//! read here: arrival times come with the frames, and "now" is passed in.
//!
//! Placement: a frame that continues its leg's stream (same SSRC, RTP
//! timestamp at or after the expected one) goes right after the previous
//! frame, plus the timestamp gap (lost packets, a DTMF event) as silence;
//! the first frame, a new SSRC or a jump goes where its arrival time says.
//! Network jitter therefore moves nothing, while a leg that drifts more than
//! [`MAX_DRIFT`] from its arrival times is put back on them. Samples
//! already written are never rewritten: a late frame goes after them.

use std::io::{Seek, Write};
use std::time::{Duration, Instant};

use ringback_media::codec::Codec;

use crate::media::tap::{Frame, Side, FRAME_BYTES};

/// Samples per second (and per channel) of a recording.
pub const RATE: u32 = 8000;

/// How long the writer waits for a silent leg before writing silence for
/// it: the slower leg's packets may arrive this late and still line up.
pub const LATENCY: Duration = Duration::from_millis(500);

/// Further from its arrival time than this (in samples), a leg's audio is
/// put back where its arrival says (a sender whose clock drifts, a leg
/// whose frames were dropped without a timestamp gap).
pub const MAX_DRIFT: u64 = RATE as u64;

/// A timestamp jump above this (in samples) is a new start, not a gap.
const MAX_GAP: u32 = 10 * RATE;

/// A frame this far behind its leg's stream (in samples) is a duplicate or
/// a late reordered packet, dropped; further behind, the sender restarted
/// its timestamps and the frame is placed by its arrival.
const MAX_LATE: u32 = 2 * RATE;

/// The largest data chunk a WAV header can describe, in stereo samples
/// (4 GB of 16-bit stereo, less the header): about 37 hours.
const MAX_FRAMES: u64 = (u32::MAX as u64 - 64) / 4;

/// One leg's samples not yet written, and where its stream stands.
#[derive(Debug, Default)]
struct Channel {
    /// Samples from the timeline's `flushed` index on.
    buf: Vec<i16>,
    /// SSRC and the RTP timestamp the next frame should carry.
    next: Option<(u32, u32)>,
}

/// Both legs on one clock, from the recording's start.
#[derive(Debug)]
pub struct Timeline {
    start: Instant,
    /// Samples per channel already released.
    flushed: u64,
    channels: [Channel; 2],
    /// Samples that were paused (both channels count once).
    paused_samples: [u64; 2],
}

impl Timeline {
    /// A timeline whose sample 0 is `start`.
    pub fn new(start: Instant) -> Timeline {
        Timeline {
            start,
            flushed: 0,
            channels: [Channel::default(), Channel::default()],
            paused_samples: [0, 0],
        }
    }

    /// The sample index of an instant.
    fn index(&self, t: Instant) -> u64 {
        let micros = t.saturating_duration_since(self.start).as_micros() as u64;
        micros * u64::from(RATE) / 1_000_000
    }

    fn end(&self, c: usize) -> u64 {
        self.flushed + self.channels[c].buf.len() as u64
    }

    /// Place one frame.
    pub fn push(&mut self, f: &Frame) {
        let c = match f.side {
            Side::Caller => 0,
            Side::Agent => 1,
        };
        let n = usize::from(f.len).min(FRAME_BYTES);
        let arrived = self.index(f.arrival).saturating_sub(n as u64);
        let end = self.end(c);
        let mut at = arrived;
        if let Some((ssrc, next_ts)) = self.channels[c].next {
            let ahead = f.ts.wrapping_sub(next_ts);
            if ssrc == f.ssrc && ahead <= MAX_GAP {
                at = end + u64::from(ahead);
            } else if ssrc == f.ssrc && ahead > u32::MAX - MAX_LATE {
                return; // a duplicate or a packet older than one placed
            }
        }
        if at.abs_diff(arrived) > MAX_DRIFT {
            at = arrived;
        }
        // Never over samples already placed: a late frame goes after them.
        let skip = end.saturating_sub(at).min(n as u64) as usize;
        let at = at.max(end);
        let ch = &mut self.channels[c];
        ch.next = Some((f.ssrc, f.ts.wrapping_add(u32::from(f.len))));
        let gap = (at - end) as usize;
        ch.buf.resize(ch.buf.len() + gap, 0);
        if f.paused {
            ch.buf.resize(ch.buf.len() + (n - skip), 0);
            self.paused_samples[c] += n as u64;
        } else {
            let mut pcm = [0i16; FRAME_BYTES];
            let data = &f.data[skip..n];
            let pcm = &mut pcm[..data.len()];
            decode(f.codec, data, pcm);
            ch.buf.extend_from_slice(pcm);
        }
    }

    /// Where everything up to now may be written: as far as both legs have
    /// audio, and at least up to [`LATENCY`] before `now` (a leg that sent
    /// nothing by then gets silence).
    pub fn ready(&self, now: Instant) -> u64 {
        let lag = LATENCY.as_millis() as u64 * u64::from(RATE) / 1000;
        let both = self.end(0).min(self.end(1));
        both.max(self.index(now).saturating_sub(lag))
    }

    /// Where the recording ends when stopped at `at`: every sample placed,
    /// and silence up to `at`.
    pub fn last(&self, at: Instant) -> u64 {
        self.end(0).max(self.end(1)).max(self.index(at))
    }

    /// Release the samples before index `upto`, interleaved (left, right),
    /// into `out`; a leg without audio there gets silence.
    pub fn take(&mut self, upto: u64, out: &mut Vec<i16>) {
        if upto <= self.flushed {
            return;
        }
        let n = (upto - self.flushed) as usize;
        for ch in &mut self.channels {
            if ch.buf.len() < n {
                ch.buf.resize(n, 0);
            }
        }
        let [left, right] = &mut self.channels;
        out.reserve(2 * n);
        for (l, r) in left.buf.iter().zip(&right.buf).take(n) {
            out.push(*l);
            out.push(*r);
        }
        left.buf.drain(..n);
        right.buf.drain(..n);
        self.flushed = upto;
    }

    /// Milliseconds of paused audio (the longer of the two legs).
    pub fn paused_ms(&self) -> u64 {
        self.paused_samples[0].max(self.paused_samples[1]) * 1000 / u64::from(RATE)
    }
}

fn decode(codec: Codec, data: &[u8], out: &mut [i16]) {
    for (o, b) in out.iter_mut().zip(data) {
        *o = ringback_media::g711::decode(codec, *b);
    }
}

/// How a recording ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Samples per channel written (duration × [`RATE`]).
    pub frames: u64,
    /// `None`: complete; otherwise why it failed (the file holds what was
    /// written before, with its header finished when that was possible).
    pub error: Option<String>,
    /// Audio that arrived while paused and was written as silence, in ms.
    pub paused_audio_ms: u64,
}

impl Outcome {
    /// The recording's length in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        self.frames * 1000 / u64::from(RATE)
    }
}

/// One recording being written: its timeline and its WAV.
pub struct Session<W: Write + Seek> {
    timeline: Timeline,
    wav: Option<hound::WavWriter<W>>,
    frames: u64,
    error: Option<String>,
    scratch: Vec<i16>,
}

/// The format of every recording: 8 kHz, two channels, 16-bit PCM.
pub fn spec() -> hound::WavSpec {
    hound::WavSpec {
        channels: 2,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    }
}

impl<W: Write + Seek> Session<W> {
    /// Start writing to `out` (the header is written at once, so a writer
    /// that cannot take it fails here) with sample 0 at `start`.
    pub fn new(out: W, start: Instant) -> Result<Session<W>, String> {
        let wav = hound::WavWriter::new(out, spec()).map_err(|e| e.to_string())?;
        Ok(Session {
            timeline: Timeline::new(start),
            wav: Some(wav),
            frames: 0,
            error: None,
            scratch: Vec::new(),
        })
    }

    /// Place a frame (cheap: no I/O).
    pub fn push(&mut self, f: &Frame) {
        self.timeline.push(f);
    }

    /// Why writing failed, once it has.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Write what is ready at `now` (the blocking part). After an error
    /// nothing more is written.
    pub fn flush(&mut self, now: Instant) {
        let upto = self.timeline.ready(now);
        self.write_until(upto);
    }

    fn write_until(&mut self, upto: u64) {
        if upto > MAX_FRAMES && self.error.is_none() {
            // Written up to the limit below; nothing after it.
            self.write_until(MAX_FRAMES);
            self.error = Some("the recording reached the WAV size limit (about 37 hours)".into());
        }
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        self.timeline.take(upto, &mut out);
        if let (Some(wav), None) = (self.wav.as_mut(), &self.error) {
            match write_samples(wav, &out) {
                Ok(()) => self.frames += (out.len() / 2) as u64,
                Err(e) => self.error = Some(e),
            }
        }
        self.scratch = out;
    }

    /// Write everything up to `at` and finish the header.
    pub fn finish(mut self, at: Instant) -> Outcome {
        let last = self.timeline.last(at);
        self.write_until(last);
        let finished = self
            .wav
            .take()
            .map(|w| w.finalize().map_err(|e| e.to_string()));
        let error = match (self.error.take(), finished) {
            (Some(e), _) | (None, Some(Err(e))) => Some(e),
            (None, _) => None,
        };
        Outcome {
            frames: self.frames,
            error,
            paused_audio_ms: self.timeline.paused_ms(),
        }
    }
}

/// Interleaved samples through hound's buffered 16-bit writer.
fn write_samples<W: Write + Seek>(
    wav: &mut hound::WavWriter<W>,
    samples: &[i16],
) -> Result<(), String> {
    if samples.is_empty() {
        return Ok(());
    }
    let n = u32::try_from(samples.len()).map_err(|_| "too many samples at once".to_string())?;
    let mut w = wav.get_i16_writer(n);
    for s in samples {
        w.write_sample(*s);
    }
    w.flush().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
