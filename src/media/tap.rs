//! A bridge's recording tap: the only part of call recording on the media
//! path. A relay with a tap copies each audio payload it forwards (G.711
//! bytes, not decoded) into a [`Frame`] stamped with the packet's arrival
//! time and `try_send`s it to the recording's writer (`crate::recording`),
//! which decodes, aligns and writes the file off the media path. A full
//! queue drops the frame and counts it
//! (`ringback_recordings_dropped_frames_total`); nothing here waits, locks
//! or touches a file. A relay without a tap pays one branch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use ringback_media::codec::Codec;
use ringback_media::rtp::RtpHeaderView;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::mpsc::Sender;

use crate::metrics;

/// G.711 bytes (= samples) one frame carries: 20 ms. A longer packet is
/// sent as several frames.
pub const FRAME_BYTES: usize = 160;

/// Which channel of the stereo recording a leg's audio goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The caller (or the callback customer): the left channel.
    Caller,
    /// The agent: the right channel.
    Agent,
}

/// One packet's audio, as a tap saw it.
#[derive(Clone)]
pub struct Frame {
    /// The leg it came from.
    pub side: Side,
    /// When the packet arrived (the receive path's clock read, once per
    /// batch of datagrams).
    pub arrival: Instant,
    /// The sender's SSRC and the RTP timestamp of the first sample, which
    /// tell a gap (lost packets, a DTMF event) from a late packet.
    pub ssrc: u32,
    /// RTP timestamp of the first sample.
    pub ts: u32,
    /// How `data` is encoded.
    pub codec: Codec,
    /// The recording was paused: `data` is not filled, the writer writes
    /// `len` samples of silence.
    pub paused: bool,
    /// Samples in `data`.
    pub len: u16,
    /// G.711 bytes (the first `len`).
    pub data: [u8; FRAME_BYTES],
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("side", &self.side)
            .field("ts", &self.ts)
            .field("len", &self.len)
            .field("paused", &self.paused)
            .finish_non_exhaustive()
    }
}

/// What a relay holds while its bridge is recorded: the writer's queue,
/// the channel it fills and the recording's pause switch.
#[derive(Debug, Clone)]
pub struct Tap {
    tx: Sender<Frame>,
    side: Side,
    paused: Arc<AtomicBool>,
}

impl Tap {
    /// A tap for `side` feeding `tx`; `paused` is shared with whoever
    /// pauses the recording.
    pub fn new(tx: Sender<Frame>, side: Side, paused: Arc<AtomicBool>) -> Tap {
        Tap { tx, side, paused }
    }

    /// Queue one packet's audio for the writer, never waiting: a full
    /// queue drops it (counted), a closed one (the writer has finished or
    /// failed) ignores it.
    pub fn push(&self, codec: Codec, hdr: &RtpHeaderView, pkt: &[u8], arrival: Instant) {
        let paused = self.paused.load(Ordering::Relaxed);
        let mut ts = hdr.ts;
        for chunk in hdr.payload(pkt).chunks(FRAME_BYTES) {
            let mut frame = Frame {
                side: self.side,
                arrival,
                ssrc: hdr.ssrc,
                ts,
                codec,
                paused,
                len: chunk.len() as u16,
                data: [0; FRAME_BYTES],
            };
            if !paused {
                frame.data[..chunk.len()].copy_from_slice(chunk);
            }
            ts = ts.wrapping_add(chunk.len() as u32);
            match self.tx.try_send(frame) {
                Ok(()) | Err(TrySendError::Closed(_)) => {}
                Err(TrySendError::Full(_)) => {
                    metrics::RECORDINGS_DROPPED_FRAMES_TOTAL.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(ts: u32, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, 0, 0, 1];
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&7u32.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn long_packets_are_split_and_a_full_queue_drops() {
        let (tx, mut rx) = tokio::sync::mpsc::channel(2);
        let paused = Arc::new(AtomicBool::new(false));
        let tap = Tap::new(tx, Side::Agent, Arc::clone(&paused));
        let pkt = packet(1000, &[0x55; 240]);
        let hdr = ringback_media::rtp::parse(&pkt).unwrap();
        let before = metrics::RECORDINGS_DROPPED_FRAMES_TOTAL.load(Ordering::Relaxed);
        tap.push(Codec::Pcma, &hdr, &pkt, Instant::now());
        let a = rx.try_recv().unwrap();
        let b = rx.try_recv().unwrap();
        assert_eq!((a.ts, a.len, a.side), (1000, 160, Side::Agent));
        assert_eq!((b.ts, b.len), (1160, 80));
        assert!(a.data.iter().all(|&x| x == 0x55));
        paused.store(true, Ordering::Relaxed);
        for _ in 0..3 {
            tap.push(Codec::Pcma, &hdr, &pkt, Instant::now());
        }
        let c = rx.try_recv().unwrap();
        assert!(c.paused && c.data.iter().all(|&x| x == 0));
        assert!(metrics::RECORDINGS_DROPPED_FRAMES_TOTAL.load(Ordering::Relaxed) >= before + 4);
        drop(rx);
        tap.push(Codec::Pcma, &hdr, &pkt, Instant::now());
    }
}
