//! Bridging two legs: what one leg receives leaves from the other leg's
//! socket, with that leg's SSRC, payload types, codec (G.711 laws are
//! transcoded in place) and, on a secure leg, its SRTP key. The numbering
//! continues across bridges on the same leg, because SRTP never sends an
//! index twice. A recorded bridge's relays carry a [`Tap`] that copies the
//! audio they forward to the recording's writer.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use ringback_media::codec::Codec;
use ringback_media::prompt::FRAME_SAMPLES;
use ringback_media::rtp;

use super::clock::StreamShared;
use super::tap::Tap;
use super::{secure, RtpSocket, Stream};

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("from", &self.from_codec)
            .field("to", &self.to_codec)
            .finish_non_exhaustive()
    }
}

/// Relay state of one direction of a bridge: packets received on one leg
/// leave from the other leg's socket with that leg's SSRC, payload types and
/// (if needed) codec.
pub struct Relay {
    socket: Arc<RtpSocket>,
    to: Arc<StreamShared>,
    from_codec: Codec,
    to_codec: Codec,
    from_pt: u8,
    to_pt: u8,
    from_dtmf: Option<u8>,
    to_dtmf: Option<u8>,
    ssrc: u32,
    seq_offset: u16,
    ts_offset: u32,
    started: bool,
    /// Sequence number and timestamp after the last packet relayed.
    next: Option<(u16, u32)>,
    /// Sealed form of the packet on a secure outgoing leg.
    sealed: Vec<u8>,
    /// The recording this leg's audio goes to, while one runs.
    tap: Option<Tap>,
}

impl Drop for Relay {
    /// Leave the numbering where it stopped for the leg's next bridge.
    fn drop(&mut self) {
        if let (Some(next), Ok(mut slot)) = (self.next, self.to.relay_next.lock()) {
            *slot = Some(next);
        }
    }
}

impl Relay {
    /// Rewrite and forward one packet that arrived at `arrival`. Returns
    /// false when it is not media of this bridge (other payload types are
    /// dropped, not forwarded).
    pub(super) fn forward(
        &mut self,
        pkt: &[u8],
        hdr: &rtp::RtpHeaderView,
        arrival: Instant,
    ) -> bool {
        let (pt, transcode) = if hdr.pt == self.from_pt {
            if let Some(tap) = &self.tap {
                tap.push(self.from_codec, hdr, pkt, arrival);
            }
            (self.to_pt, self.from_codec != self.to_codec)
        } else if Some(hdr.pt) == self.from_dtmf {
            match self.to_dtmf {
                Some(p) => (p, false),
                None => return false, // the other leg negotiated no telephone-event
            }
        } else {
            return false;
        };
        if !self.started {
            // Go on with the leg's own numbering: where an earlier bridge
            // stopped, else where the clock's prompts stopped (one SSRC,
            // no jump back: SRTP never reuses an index, and phones' jitter
            // buffers drop "late" packets), else random bases as RFC 3550
            // wants. Offsets keep the peer's spacing so RFC 4733 events
            // keep their shared timestamp.
            let relayed = self.to.relay_next.lock().ok().and_then(|n| *n);
            let clocked = unpack_next(self.to.clock_next.load(Ordering::Relaxed));
            let (seq, ts) = relayed
                .or(clocked)
                .unwrap_or_else(|| (rand::random(), rand::random()));
            self.seq_offset = seq.wrapping_sub(hdr.seq);
            self.ts_offset = ts.wrapping_sub(hdr.ts);
            self.started = true;
        }
        let mut buf = [0u8; 1500];
        let Some(out) = buf.get_mut(..pkt.len()) else {
            return false;
        };
        out.copy_from_slice(pkt);
        out[1] = (out[1] & 0x80) | (pt & 0x7f);
        let (seq, ts) = (
            hdr.seq.wrapping_add(self.seq_offset),
            hdr.ts.wrapping_add(self.ts_offset),
        );
        out[2..4].copy_from_slice(&seq.to_be_bytes());
        out[4..8].copy_from_slice(&ts.to_be_bytes());
        self.next = Some((seq.wrapping_add(1), ts.wrapping_add(FRAME_SAMPLES as u32)));
        out[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        if transcode {
            if let Some(payload) =
                out.get_mut(hdr.payload_offset..hdr.payload_offset + hdr.payload_len)
            {
                ringback_media::g711::transcode_in_place(self.from_codec, self.to_codec, payload);
            }
        }
        let dest = self.to.remote.lock().ok().and_then(|r| *r);
        let muted = self.to.mute.load(Ordering::Relaxed);
        let Some(wire) = secure::seal(&self.to.srtp_out, out, &mut self.sealed) else {
            return true;
        };
        if let (Some(dest), false) = (dest, muted) {
            if self.socket.get_ref().send_to(wire, dest).is_ok() {
                self.to.sent.fetch_add(1, Ordering::Relaxed);
            }
        }
        true
    }
}

/// Connect two legs: what one receives, the other sends (B2BUA media
/// anchored in ringback). Prompts and silence stop on both legs.
pub fn bridge(a: &Stream, b: &Stream) {
    let relay = |from: &Stream, to: &Stream| Relay {
        socket: Arc::clone(&to.socket),
        to: Arc::clone(&to.shared),
        from_codec: from.codec,
        to_codec: to.codec,
        from_pt: from.pt,
        to_pt: to.pt,
        from_dtmf: from.dtmf_pt,
        to_dtmf: to.dtmf_pt,
        ssrc: to.out_ssrc,
        seq_offset: 0,
        ts_offset: 0,
        started: false,
        next: None,
        sealed: Vec::new(),
        tap: None,
    };
    if let Ok(mut r) = a.shared.relay.lock() {
        *r = Some(relay(a, b));
    }
    if let Ok(mut r) = b.shared.relay.lock() {
        *r = Some(relay(b, a));
    }
    a.stop();
    b.stop();
    a.shared.bridged.store(true, Ordering::Relaxed);
    b.shared.bridged.store(true, Ordering::Relaxed);
}

impl Stream {
    /// Undo [`bridge`] on this leg: the clock serves it again.
    pub fn unbridge(&self) {
        if let Ok(mut r) = self.shared.relay.lock() {
            *r = None;
        }
        self.shared.bridged.store(false, Ordering::Relaxed);
    }

    /// Record what this leg receives while it is bridged (`None`: stop).
    /// Call after [`bridge`]; the next bridge starts without a tap.
    pub fn record(&self, tap: Option<Tap>) {
        if let Ok(mut r) = self.shared.relay.lock() {
            if let Some(relay) = r.as_mut() {
                relay.tap = tap;
            }
        }
    }
}

/// `StreamShared::clock_next` packing: a set bit 48 says "something was sent".
pub(super) fn pack_next(seq: u16, ts: u32) -> u64 {
    (1 << 48) | (u64::from(seq) << 32) | u64::from(ts)
}

/// The (sequence, timestamp) packed by [`pack_next`], if any.
fn unpack_next(v: u64) -> Option<(u16, u32)> {
    (v >> 48 != 0).then_some(((v >> 32) as u16, v as u32))
}

#[cfg(test)]
mod tests {
    use super::{pack_next, unpack_next};

    #[test]
    fn packed_numbering_round_trips_and_zero_means_nothing_sent() {
        assert_eq!(unpack_next(0), None);
        assert_eq!(
            unpack_next(pack_next(65_535, u32::MAX)),
            Some((65_535, u32::MAX))
        );
        assert_eq!(unpack_next(pack_next(0, 0)), Some((0, 0)));
    }
}
