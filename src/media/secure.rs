//! SRTP on a stream: the keys agreed in SDP (SDES, RFC 4568) turned into
//! one sending and one receiving context, the two places packets cross
//! them, and the offer/answer of a running stream (a re-INVITE must keep
//! a secure stream secure, with our key). The cryptography and SDES are
//! `ringback_media` (sans-IO); this module only decides where they run.
//!
//! A secure stream never sends or accepts clear RTP: a packet that cannot
//! be sealed is not sent, and a received packet that fails authentication
//! or is a replay is dropped before anything looks at it (not even the
//! symmetric-RTP latch, so forged packets cannot steer the audio), and
//! counted.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use ringback_media::codec::Codec;
use ringback_media::sdp::{self, Negotiated, RemoteSdp, SrtpNegotiated, SrtpOffer, SrtpPolicy};
use ringback_media::srtp::{KeyMaterial, Srtp, SrtpError};

use super::Stream;

/// The keys of one secure stream, as agreed in SDP.
#[derive(Clone)]
pub struct SrtpSession {
    /// Ours: seals what we send; our SDP carries it.
    pub local: KeyMaterial,
    /// The peer's: opens what it sends; its SDP carried it.
    pub remote: KeyMaterial,
}

impl SrtpSession {
    /// As the answerer: a fresh key of the suite the offer's accepted line
    /// named, and the offerer's key.
    pub fn answering(neg: &SrtpNegotiated) -> SrtpSession {
        SrtpSession {
            local: KeyMaterial::random(neg.suite),
            remote: neg.remote.clone(),
        }
    }
}

/// The sending context, shared by the media clock (prompts, silence) and a
/// bridge relaying the other leg's audio out of this stream: never both at
/// once, so the lock is uncontended. `None` on a plain stream.
pub type Outbound = Option<Mutex<Srtp>>;

/// The bytes to put on the wire for `pkt`: `pkt` itself on a plain stream,
/// its SRTP form (in `scratch`) on a secure one. `None` when sealing failed:
/// the packet is then not sent at all.
pub fn seal<'a>(out: &Outbound, pkt: &'a [u8], scratch: &'a mut Vec<u8>) -> Option<&'a [u8]> {
    let Some(ctx) = out else { return Some(pkt) };
    let mut ctx = ctx.lock().unwrap_or_else(|p| p.into_inner());
    match ctx.protect(pkt, scratch) {
        Ok(()) => Some(scratch.as_slice()),
        Err(e) => {
            tracing::debug!(error = %e, "SRTP: packet not sealed; not sent");
            None
        }
    }
}

/// Open a received packet on a secure stream into `scratch`. `None` (and
/// the packet counted) when it is forged, tampered with, replayed or not
/// SRTP at all. When a re-offer brought a new key (`rekey`), the first
/// packet that opens with it makes it the stream's key.
pub fn open<'a>(
    inbound: &mut Srtp,
    pkt: &[u8],
    scratch: &'a mut Vec<u8>,
    rekey: &Mutex<Option<Srtp>>,
) -> Option<&'a [u8]> {
    let first = inbound.unprotect(pkt, scratch);
    let result = match first {
        Err(SrtpError::Auth) => {
            let mut pending = rekey.lock().unwrap_or_else(|p| p.into_inner());
            match pending.as_mut().map(|next| next.unprotect(pkt, scratch)) {
                Some(Ok(())) => {
                    if let Some(next) = pending.take() {
                        *inbound = next;
                    }
                    Ok(())
                }
                _ => first,
            }
        }
        other => other,
    };
    match result {
        Ok(()) => Some(scratch.as_slice()),
        Err(e) => {
            let counter = match e {
                SrtpError::Replay => &crate::metrics::SRTP_REPLAYED_TOTAL,
                SrtpError::Auth => &crate::metrics::SRTP_AUTH_FAILURES_TOTAL,
                _ => &crate::metrics::SRTP_MALFORMED_TOTAL,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            tracing::trace!(error = %e, "SRTP packet dropped");
            None
        }
    }
}

impl Stream {
    /// Whether the stream runs SRTP.
    pub fn is_secure(&self) -> bool {
        self.srtp.is_some()
    }

    /// Negotiate a re-offer (re-INVITE or UPDATE) on this running stream and
    /// apply it (hold, resume, a new address, the peer's new key). The codec
    /// stays (its packets are already being encoded and relayed) and so does
    /// the security: a secure stream refuses a plain re-offer or another
    /// suite, and a plain one an SRTP-only offer, with 488 (the session goes
    /// on unchanged, RFC 3264 §8). Returns the offer and its negotiation for
    /// [`Stream::answer_sdp`].
    pub fn reoffer(&self, body: &[u8]) -> Result<(RemoteSdp, Negotiated), u16> {
        let offer = sdp::parse(&String::from_utf8_lossy(body)).map_err(|e| e.sip_status())?;
        let policy = if self.is_secure() {
            SrtpPolicy::Mandatory
        } else {
            SrtpPolicy::Off
        };
        let neg = sdp::negotiate_srtp(&offer, &[self.codec], policy).map_err(|e| e.sip_status())?;
        if let (Some(keys), Some(agreed)) = (&self.srtp, &neg.srtp) {
            let mut keys = keys.lock().unwrap_or_else(|p| p.into_inner());
            if agreed.suite != keys.local.suite() {
                return Err(488);
            }
            if agreed.remote != keys.remote {
                // Packets with the old key may still be in flight: the
                // receive task switches when the new key first works.
                keys.remote = agreed.remote.clone();
                *self
                    .shared
                    .srtp_rekey
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(Srtp::new(&agreed.remote));
            }
        }
        self.apply_negotiation(&neg);
        Ok((offer, neg))
    }

    /// Our answer to `offer` as negotiated in `neg`: with our key on a
    /// secure stream. `Err(500)` when the two disagree (a bug, not the
    /// peer's fault).
    pub fn answer_sdp(
        &self,
        neg: &Negotiated,
        offer: &RemoteSdp,
        ip: IpAddr,
        session: u64,
        version: u64,
    ) -> Result<String, u16> {
        let local = self.local_key();
        sdp::build_answer_srtp(
            neg,
            offer,
            ip,
            self.local.port(),
            session,
            version,
            local.as_ref(),
        )
        .map_err(|e| e.sip_status())
    }

    /// An offer of the running session (answering an offerless re-INVITE):
    /// `codecs`, and on a secure stream `RTP/SAVP` with our key only.
    pub fn offer_sdp(&self, codecs: &[Codec], ip: IpAddr, session: u64, version: u64) -> String {
        let port = self.local.port();
        match self.local_key() {
            Some(key) => sdp::build_offer_srtp(
                codecs,
                101,
                ip,
                port,
                session,
                version,
                SrtpPolicy::Mandatory,
                &SrtpOffer::new(vec![key]),
            ),
            None => sdp::build_offer(codecs, 101, ip, port, session, version),
        }
    }

    fn local_key(&self) -> Option<KeyMaterial> {
        self.srtp
            .as_ref()
            .map(|k| k.lock().unwrap_or_else(|p| p.into_inner()).local.clone())
    }
}
