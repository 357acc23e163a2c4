//! What a stream does with each packet it receives: latch the peer's
//! address, open SRTP, relay while bridged, detect digits (RFC 4733 events,
//! or tones in the audio), and notice RTP silence.
//!
//! A plain state machine fed packets and time, so it is tested without
//! sockets; the receive thread of the stream's clock (`rx_thread.rs`)
//! reads the socket in batches and hands each packet to it.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringback_media::codec::Codec;
use ringback_media::dtmf::{event_to_char, parse_event, DtmfReceiver};
use ringback_media::inband::InbandRtp;
use ringback_media::rtp;
use ringback_media::srtp::Srtp;
use tokio::sync::mpsc::UnboundedSender;

use super::clock::StreamShared;
use super::{secure, MediaEvent};

/// How long the latched RTP source must be silent before another source may
/// take its place.
pub(super) const RELATCH_AFTER: Duration = Duration::from_secs(1);

/// What finding digits needs: the negotiated audio codec and payload type
/// (for in-band detection) and the telephone-event payload type, if any.
#[derive(Debug, Clone, Copy)]
pub(super) struct Digits {
    pub(super) codec: Codec,
    pub(super) pt: u8,
    pub(super) dtmf_pt: Option<u8>,
}

/// One stream's receive side. See the module documentation.
pub struct Receiver {
    shared: Arc<StreamShared>,
    digits: Digits,
    srtp_in: Option<Srtp>,
    timeout: Option<Duration>,
    events: UnboundedSender<MediaEvent>,
    /// Opened packets of a secure stream.
    opened: Vec<u8>,
    dtmf: DtmfReceiver,
    /// Created on the first audio packet that needs it: streams with
    /// telephone-event never decode their audio.
    inband: Option<Box<InbandRtp>>,
    latched: Option<SocketAddr>,
    last_rx: Instant,
    timed_out: bool,
    /// The call no longer listens: nothing more to do.
    closed: bool,
}

impl Receiver {
    /// A receiver for a stream just opened (the RTP timeout counts from now).
    pub(super) fn new(
        shared: Arc<StreamShared>,
        digits: Digits,
        srtp_in: Option<Srtp>,
        timeout: Option<Duration>,
        events: UnboundedSender<MediaEvent>,
    ) -> Receiver {
        Receiver {
            shared,
            digits,
            srtp_in,
            timeout,
            events,
            opened: Vec::new(),
            dtmf: DtmfReceiver::default(),
            inband: None,
            latched: None,
            last_rx: Instant::now(),
            timed_out: false,
            closed: false,
        }
    }

    /// Tell the call, unless it stopped listening (then stop too).
    fn tell(&mut self, ev: MediaEvent) {
        if self.events.send(ev).is_err() {
            self.closed = true;
        }
    }

    /// Called every tick: report [`MediaEvent::RtpTimeout`] once the peer
    /// has been silent for the timeout while not on hold (on hold, the
    /// silence does not count).
    pub(super) fn check_timeout(&mut self, now: Instant) {
        let Some(timeout) = self.timeout else { return };
        if self.closed || self.timed_out {
            return;
        }
        if self.shared.on_hold.load(Ordering::Relaxed) {
            self.last_rx = now;
            return;
        }
        if now.saturating_duration_since(self.last_rx) >= timeout {
            self.timed_out = true;
            self.tell(MediaEvent::RtpTimeout);
        }
    }

    /// One datagram from `from`, received at `now`.
    pub(super) fn on_datagram(&mut self, pkt: &[u8], from: SocketAddr, now: Instant) {
        if self.closed {
            return;
        }
        // A browser stream's ICE checks and DTLS records (RFC 7983: RTP and
        // RTCP start with 128..=191) belong to its transport task.
        if let Some(tx) = self.shared.transport.get() {
            if !(128..=191).contains(&pkt.first().copied().unwrap_or(0)) {
                if tx.send((pkt.to_vec(), from)).is_err() {
                    self.closed = true;
                }
                return;
            }
        }
        // A secure stream looks only at packets that authenticate.
        let mut opened = std::mem::take(&mut self.opened);
        let pkt = match self.srtp_in.as_mut() {
            None => Some(pkt),
            // SRTCP multiplexed on the RTP port: nothing ringback uses.
            Some(_) if rtp::looks_like_rtcp(pkt) => None,
            Some(ctx) => secure::open(ctx, pkt, &mut opened, &self.shared.srtp_rekey),
        };
        if let Some(pkt) = pkt {
            self.on_rtp(pkt, from, now);
        }
        self.opened = opened;
    }

    fn on_rtp(&mut self, pkt: &[u8], from: SocketAddr, now: Instant) {
        let Ok(hdr) = rtp::parse(pkt) else {
            return; // not RTP (or RTCP multiplexed): ignore, never crash
        };
        // Symmetric RTP: answer to where the peer's media really comes
        // from — but latch once. Another source may take over only after
        // the latched one has been silent for RELATCH_AFTER (a phone that
        // changed address); until then its packets are not our peer's and
        // are dropped, so nobody can hijack a call's audio or inject digits.
        match self.latched {
            Some(l) if l == from => {}
            Some(_) if now.saturating_duration_since(self.last_rx) < RELATCH_AFTER => return,
            _ => {
                self.latched = Some(from);
                if let Ok(mut r) = self.shared.remote.lock() {
                    *r = Some(from);
                }
            }
        }
        self.last_rx = now;
        self.timed_out = false;
        self.shared.received.fetch_add(1, Ordering::Relaxed);
        if self.shared.bridged.load(Ordering::Relaxed) {
            if let Ok(mut relay) = self.shared.relay.lock() {
                if let Some(r) = relay.as_mut() {
                    r.forward(pkt, &hdr, now);
                }
            }
        }
        let Digits { codec, pt, dtmf_pt } = self.digits;
        // One source of digits per stream: in-band when there is no
        // telephone-event or the owner forced it, RFC 4733 otherwise.
        if dtmf_pt.is_none() || self.shared.inband_dtmf.load(Ordering::Relaxed) {
            if hdr.pt == pt {
                let det = self.inband.get_or_insert_with(Box::default);
                let mut found = Vec::new();
                det.on_packet(codec, hdr.ssrc, hdr.ts, hdr.payload(pkt), |d| found.push(d));
                for d in found {
                    tracing::debug!(digit = %d, "DTMF (in-band)");
                    crate::metrics::DTMF_INBAND_TOTAL.fetch_add(1, Ordering::Relaxed);
                    self.tell(MediaEvent::Digit(d));
                }
            }
            return;
        }
        // Switched back from forced in-band: start afresh if it returns.
        self.inband = None;
        if Some(hdr.pt) != dtmf_pt {
            return;
        }
        let payload = pkt
            .get(hdr.payload_offset..hdr.payload_offset + hdr.payload_len)
            .unwrap_or(&[]);
        let Ok(ev) = parse_event(payload) else { return };
        if let Some(d) = self.dtmf.on_rtp(hdr.ts, &ev, now) {
            tracing::debug!(digit = %d, "DTMF (RFC 4733)");
            crate::metrics::DTMF_RFC4733_TOTAL.fetch_add(1, Ordering::Relaxed);
            self.tell(MediaEvent::Digit(d));
        } else if event_to_char(ev.event).is_none() {
            tracing::trace!(event = ev.event, "ignoring non-DTMF telephone-event");
        }
    }
}

#[cfg(test)]
mod tests;
