//! A browser's media stream (WebRTC): the same RTP stream, clock and
//! bridge as a SIP leg's, with three differences. Its port also carries
//! ICE connectivity checks and DTLS records, which the receive task hands
//! to the leg's transport task (the sans-IO `ringback_webrtc::Transport`);
//! its SRTP keys come from the DTLS handshake, after the stream opened; and
//! it sends nothing until then, to the address ICE selected.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use ringback_media::sdp::Negotiated;
use ringback_media::srtp::{KeyMaterial, Srtp, Suite};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

use super::clock::StreamShared;
use super::ports::RtpPort;
use super::secure::SrtpSession;
use super::{MediaEngine, MediaEvent, RtpSocket, Stream};

/// A datagram for the transport task and where it came from.
pub type Datagram = (Vec<u8>, SocketAddr);

/// Where the receive task sends a browser stream's ICE and DTLS packets.
pub type TransportTx = UnboundedSender<Datagram>;

impl MediaEngine {
    /// Open a browser stream on `port`, sending as `ssrc` (the one our SDP
    /// announced: a browser plays only the SSRC its track was signalled
    /// with): silent and keyless until [`Wire::install_keys`]. Returns the
    /// stream and the receiver of its ICE and DTLS packets.
    pub fn open_browser_stream(
        &self,
        port: RtpPort,
        neg: &Negotiated,
        ssrc: u32,
        events: UnboundedSender<MediaEvent>,
    ) -> std::io::Result<(Stream, UnboundedReceiver<Datagram>)> {
        let (tx, rx) = mpsc::unbounded_channel();
        // Placeholder keys nobody knows: the stream is secure from its first
        // packet, and no clear RTP is ever accepted or sent. The handshake's
        // keys replace them.
        let placeholder = SrtpSession {
            local: KeyMaterial::random(Suite::AesCm128HmacSha1_80),
            remote: KeyMaterial::random(Suite::AesCm128HmacSha1_80),
        };
        let stream = self.open_stream_with(port, neg, Some(placeholder), events, Some(tx), ssrc)?;
        stream.shared.mute.store(true, Ordering::Relaxed);
        Ok((stream, rx))
    }
}

/// What a browser leg's transport task holds of its stream: the socket to
/// answer ICE and DTLS on, and the shared state to key and aim it.
#[derive(Clone)]
pub struct Wire {
    socket: Arc<RtpSocket>,
    shared: Arc<StreamShared>,
}

impl Stream {
    /// The stream's [`Wire`].
    pub fn wire(&self) -> Wire {
        Wire {
            socket: Arc::clone(&self.socket),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Wire {
    /// Send one datagram (a STUN response, a DTLS record) from the stream's
    /// port. Best effort, like every UDP send.
    pub fn send(&self, bytes: &[u8], to: SocketAddr) {
        if let Err(e) = self.socket.get_ref().send_to(bytes, to) {
            tracing::debug!(error = %e, %to, "browser transport: send failed");
        }
    }

    /// The handshake's keys: seal with `local`, open with `remote`, send
    /// to `to` (the ICE-selected address) from now on.
    pub fn install_keys(&self, local: &KeyMaterial, remote: &KeyMaterial, to: SocketAddr) {
        if let Some(out) = &self.shared.srtp_out {
            *out.lock().unwrap_or_else(|p| p.into_inner()) = Srtp::new(local);
        }
        // The receive task switches to this key with the first packet that
        // opens with it (and never back to the placeholder).
        *self
            .shared
            .srtp_rekey
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(Srtp::new(remote));
        self.aim(to);
        self.shared.mute.store(false, Ordering::Relaxed);
    }

    /// Send media to `to` (ICE selected another pair).
    pub fn aim(&self, to: SocketAddr) {
        if let Ok(mut r) = self.shared.remote.lock() {
            *r = Some(to);
        }
    }

    /// The agent put the call on hold in the page (`true`) or resumed: as
    /// with a SIP phone's `sendonly` re-offer, nothing is sent to the
    /// browser meanwhile and its silence is no RTP timeout.
    pub fn set_hold(&self, on: bool) {
        self.shared.on_hold.store(on, Ordering::Relaxed);
        self.shared.mute.store(on, Ordering::Relaxed);
    }

    /// Media packets that authenticated so far (the transport's liveness).
    pub fn packets_received(&self) -> u64 {
        self.shared.received.load(Ordering::Relaxed)
    }
}
