//! The writer: both legs on one clock, gaps and pauses as silence, a
//! failing disk reported, never a panic.

use std::io::{Cursor, Seek, SeekFrom, Write};
use std::time::{Duration, Instant};

use ringback_media::codec::Codec;
use ringback_media::g711;

use super::*;
use crate::media::tap::{Frame, Side, FRAME_BYTES};

const MS: Duration = Duration::from_millis(1);

/// Frame `k` of a leg (RTP timestamp from `ts0`), arriving at `at`, all
/// samples `value`.
fn frame(side: Side, ts: u32, at: Instant, value: i16) -> Frame {
    let b = g711::encode(Codec::Pcmu, value);
    Frame {
        side,
        arrival: at,
        ssrc: if side == Side::Caller { 11 } else { 22 },
        ts,
        codec: Codec::Pcmu,
        paused: false,
        len: FRAME_BYTES as u16,
        data: [b; FRAME_BYTES],
    }
}

/// The decoded value of `value` (G.711 rounds).
fn g(value: i16) -> i16 {
    g711::decode(Codec::Pcmu, g711::encode(Codec::Pcmu, value))
}

/// Frame `k` of a 20 ms stream arriving on time after `t0`.
fn on_time(side: Side, k: u32, t0: Instant, value: i16) -> Frame {
    frame(side, 1000 + k * 160, t0 + MS * (20 * (k + 1)), value)
}

/// Left and right channels of everything released up to `upto`.
fn split(tl: &mut Timeline, upto: u64) -> (Vec<i16>, Vec<i16>) {
    let mut out = Vec::new();
    tl.take(upto, &mut out);
    (
        out.iter().step_by(2).copied().collect(),
        out.iter().skip(1).step_by(2).copied().collect(),
    )
}

#[test]
fn legs_are_aligned_by_arrival_and_a_late_starter_gets_silence_first() {
    let t0 = Instant::now();
    let mut tl = Timeline::new(t0);
    for k in 0..50 {
        tl.push(&on_time(Side::Caller, k, t0, 1000));
    }
    // The agent's first packet arrives 300 ms in: its 20 ms start at 280 ms.
    for k in 0..20 {
        let f = frame(Side::Agent, 5000 + k * 160, t0 + MS * (300 + 20 * k), -2000);
        tl.push(&f);
    }
    let (l, r) = split(&mut tl, 8000);
    assert_eq!(l.len(), 8000);
    assert!(l.iter().all(|&s| s == g(1000)), "the caller from the start");
    assert!(
        r[..2240].iter().all(|&s| s == 0),
        "silence before the agent"
    );
    assert!(r[2240..2240 + 20 * 160].iter().all(|&s| s == g(-2000)));
    assert!(r[2240 + 20 * 160..].iter().all(|&s| s == 0), "and after");
}

#[test]
fn lost_packets_are_silence_and_jitter_moves_nothing() {
    let t0 = Instant::now();
    let mut tl = Timeline::new(t0);
    for k in 0..10u32 {
        if k == 3 || k == 4 {
            continue; // lost: the timestamps jump by 480
        }
        // 6, 7 and 8 are held up and arrive together with 8.
        let at = if (6..=8).contains(&k) { 8 } else { k };
        tl.push(&frame(
            Side::Caller,
            1000 + k * 160,
            t0 + MS * (20 * (at + 1)),
            700,
        ));
    }
    let (l, _) = split(&mut tl, 1600);
    assert!(l[..480].iter().all(|&s| s == g(700)));
    assert!(l[480..800].iter().all(|&s| s == 0), "the two lost frames");
    assert!(
        l[800..1600].iter().all(|&s| s == g(700)),
        "no gap for late ones"
    );
    // A duplicate is dropped, not written twice.
    tl.push(&on_time(Side::Caller, 9, t0, -5));
    tl.push(&on_time(Side::Caller, 10, t0, 700));
    let (l, _) = split(&mut tl, 1760);
    assert!(l.iter().all(|&s| s == g(700)), "{:?}", &l[..4]);
}

#[test]
fn timestamps_restarted_far_back_are_placed_by_arrival() {
    let t0 = Instant::now();
    let mut tl = Timeline::new(t0);
    for k in 0..5 {
        tl.push(&frame(
            Side::Agent,
            100_000 + k * 160,
            t0 + MS * (20 * (k + 1)),
            900,
        ));
    }
    // Same SSRC, timestamps 5 s back (a phone that restarted them): not a
    // duplicate, the audio goes on where it arrives.
    for k in 5..10 {
        tl.push(&frame(
            Side::Agent,
            60_000 + k * 160,
            t0 + MS * (20 * (k + 1)),
            900,
        ));
    }
    let (_, r) = split(&mut tl, 1600);
    assert!(r.iter().all(|&s| s == g(900)), "{:?}", &r[780..820]);
}

#[test]
fn a_leg_that_drifts_from_its_arrival_times_is_put_back_on_them() {
    let t0 = Instant::now();
    let mut tl = Timeline::new(t0);
    tl.push(&on_time(Side::Caller, 0, t0, 300));
    // The next frame continues the timestamps but arrives 3 s later (a
    // phone that stopped sending without a jump): it goes at its arrival.
    tl.push(&frame(Side::Caller, 1160, t0 + MS * 3020, 300));
    let (l, _) = split(&mut tl, 24_160);
    assert!(l[..160].iter().all(|&s| s == g(300)));
    assert!(l[160..24_000].iter().all(|&s| s == 0));
    assert!(l[24_000..].iter().all(|&s| s == g(300)));
}

#[test]
fn paused_frames_are_silence_and_keep_the_timeline() {
    let t0 = Instant::now();
    let mut tl = Timeline::new(t0);
    for k in 0..10 {
        let mut f = on_time(Side::Agent, k, t0, 1200);
        if (3..7).contains(&k) {
            f.paused = true;
            f.data = [0; FRAME_BYTES];
        }
        tl.push(&f);
    }
    assert_eq!(tl.paused_ms(), 80);
    let (_, r) = split(&mut tl, 1600);
    assert!(r[..480].iter().all(|&s| s == g(1200)));
    assert!(r[480..1120].iter().all(|&s| s == 0));
    assert!(r[1120..].iter().all(|&s| s == g(1200)));
}

#[test]
fn a_silent_leg_does_not_hold_the_other_back() {
    let t0 = Instant::now();
    let mut tl = Timeline::new(t0);
    for k in 0..100 {
        tl.push(&on_time(Side::Caller, k, t0, 50));
    }
    // Nothing from the agent: two seconds in, 1.5 s may be written.
    assert_eq!(tl.ready(t0 + MS * 2000), 12_000);
    // With audio on both legs, as far as both go.
    tl.push(&on_time(Side::Agent, 0, t0, 50));
    assert_eq!(tl.ready(t0 + MS * 100), 160);
    // Stopped at 3 s: every sample placed and silence up to then.
    assert_eq!(tl.last(t0 + MS * 3000), 24_000);
}

#[test]
fn a_session_writes_a_stereo_wav_that_reads_back() {
    let t0 = Instant::now();
    let mut s = Session::new(Cursor::new(Vec::new()), t0).unwrap();
    for k in 0..25 {
        s.push(&on_time(Side::Caller, k, t0, 1000));
        s.push(&on_time(Side::Agent, k, t0, -1000));
    }
    s.flush(t0 + MS * 400);
    let out = s.finish(t0 + MS * 600);
    assert_eq!(out.error, None);
    assert_eq!(out.frames, 4800, "up to the stop");
    assert_eq!(out.duration_ms(), 600);
}

#[test]
fn the_file_is_a_valid_wav() {
    let t0 = Instant::now();
    let path = tempfile::tempdir().unwrap();
    let file = path.path().join("r.wav");
    let f = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
    let mut s = Session::new(f, t0).unwrap();
    for k in 0..5 {
        s.push(&on_time(Side::Caller, k, t0, 1000));
        s.push(&on_time(Side::Agent, k, t0, -1000));
    }
    assert_eq!(s.finish(t0 + MS * 100).error, None);
    let r = hound::WavReader::open(&file).unwrap();
    assert_eq!(r.spec(), spec());
    let samples: Vec<i16> = r.into_samples().map(Result::unwrap).collect();
    assert_eq!(samples.len(), 1600);
    assert_eq!(&samples[..2], &[g(1000), g(-1000)]);
}

/// A disk that takes `room` bytes and then says it is full.
struct FullDisk {
    inner: Cursor<Vec<u8>>,
    room: usize,
}

impl Write for FullDisk {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let pos = self.inner.position() as usize;
        if pos + buf.len() > self.room {
            return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
        }
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Seek for FullDisk {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(to)
    }
}

#[test]
fn a_full_disk_fails_the_recording_without_panicking() {
    let t0 = Instant::now();
    let disk = FullDisk {
        inner: Cursor::new(Vec::new()),
        room: 44 + 4 * 1000,
    };
    let mut s = Session::new(disk, t0).unwrap();
    for k in 0..50 {
        s.push(&on_time(Side::Caller, k, t0, 1));
        s.push(&on_time(Side::Agent, k, t0, 2));
    }
    s.flush(t0 + MS * 1000);
    let e = s.error().map(str::to_string).expect("an error");
    assert!(e.contains("No space left on device"), "{e}");
    // More audio after the failure is placed but never written.
    s.push(&on_time(Side::Caller, 50, t0, 1));
    s.flush(t0 + MS * 1100);
    let out = s.finish(t0 + MS * 1200);
    assert!(
        out.error.as_deref().is_some_and(|e| e.contains("No space")),
        "{out:?}"
    );
    assert_eq!(out.frames, 0, "the one write that failed wrote nothing");
    // A disk with no room even for the header fails at the start.
    let none = FullDisk {
        inner: Cursor::new(Vec::new()),
        room: 0,
    };
    assert!(Session::new(none, t0).is_err());
}
