//! One leg to an agent's browser phone: the offer sent over the page's
//! WebSocket, the answer, and then the leg's transport task — the sans-IO
//! [`Transport`] (ICE-lite checks, DTLS, SRTP keys, liveness) fed with the
//! ICE and DTLS packets the stream's receive task hands over, and with
//! time. The media itself is an ordinary [`Stream`], bridged like a SIP
//! leg's.
//!
//! Invariant, as for SIP legs: a leg is ringing (the page is told to stop
//! when it is no longer wanted), answered (the page is told to hang up,
//! DTLS is closed) or gone.

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use ringback_media::codec::Codec;
use ringback_media::sdp::Direction;
use ringback_webrtc::LocalDescription;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::oneshot;

use super::messages::{BrowserEvent, ToBrowser};
use super::BrowserPhones;
use crate::media::ports::RtpPort;
use crate::media::{MediaEngine, MediaEvent, Stream};

/// Our side of one browser leg's SDP.
struct Local {
    ufrag: String,
    pwd: String,
    session_id: u64,
    ssrc: u32,
}

/// Why a browser could not be rung.
#[derive(Debug, thiserror::Error)]
pub enum RingError {
    /// The RTP range is exhausted.
    #[error("no RTP port free")]
    NoPort,
    /// The agent's page is not (or no longer) connected.
    #[error("{0}: no agent page connected")]
    NoPage(String),
}

/// A leg to an agent's browser phone.
pub struct BrowserLeg {
    /// The leg's id: its call record's Call-ID too.
    pub id: String,
    phones: Arc<BrowserPhones>,
    port: Option<RtpPort>,
    local: Local,
    /// Media once answered.
    pub stream: Option<Stream>,
    /// When the page was rung.
    pub started_at: DateTime<Utc>,
    /// When the agent answered.
    pub answered_at: Option<DateTime<Utc>>,
    /// Stops the transport task (DTLS close_notify) when the leg goes.
    close: Option<oneshot::Sender<()>>,
    owner: UnboundedSender<BrowserEvent>,
}

impl BrowserLeg {
    /// Ring `agent`'s page with our offer and `context`.
    pub fn ring(
        phones: &Arc<BrowserPhones>,
        media: &MediaEngine,
        ip: IpAddr,
        agent: &str,
        context: Vec<(String, String)>,
        prefer: Codec,
        owner: UnboundedSender<BrowserEvent>,
    ) -> Result<BrowserLeg, RingError> {
        let port = media.allocate_port().ok_or(RingError::NoPort)?;
        let (ufrag, pwd) = ringback_webrtc::random_ice_credentials();
        let local = Local {
            ufrag,
            pwd,
            session_id: rand::random::<u32>().into(),
            ssrc: rand::random(),
        };
        let id = format!("web-{:016x}", rand::random::<u64>());
        let other = match prefer {
            Codec::Pcmu => Codec::Pcma,
            Codec::Pcma => Codec::Pcmu,
        };
        let sdp = ringback_webrtc::build_offer(
            &LocalDescription {
                ice_ufrag: &local.ufrag,
                ice_pwd: &local.pwd,
                fingerprint: phones.identity.fingerprint(),
                ip,
                port: port.addr.port(),
                session_id: local.session_id,
                ssrc: local.ssrc,
                cname: "ringback",
            },
            &[prefer, other],
        );
        let context = context
            .into_iter()
            .map(|(k, v)| (k.trim_start_matches("X-Ringback-").to_string(), v))
            .collect();
        let msg = ToBrowser::Ring {
            leg: id.clone(),
            sdp,
            context,
        };
        if !phones.ring(agent, &id, owner.clone(), msg) {
            return Err(RingError::NoPage(agent.to_string()));
        }
        Ok(BrowserLeg {
            id,
            phones: Arc::clone(phones),
            port: Some(port),
            local,
            stream: None,
            started_at: Utc::now(),
            answered_at: None,
            close: None,
            owner,
        })
    }

    /// Still ringing (not answered, not let go).
    pub fn is_ringing(&self) -> bool {
        self.port.is_some() && self.answered_at.is_none()
    }

    /// The page answered with `sdp`: open media and start the transport.
    /// `Err` (the leg is then over) when the answer is unusable.
    pub fn on_answer(
        &mut self,
        media: &MediaEngine,
        sdp: &str,
        leg_media: UnboundedSender<MediaEvent>,
    ) -> Result<(), String> {
        let Some(port) = self.port.take() else {
            return Err("answered twice".into());
        };
        let remote = ringback_webrtc::parse(sdp).map_err(|e| format!("SDP answer: {e}"))?;
        let choice = ringback_webrtc::choose_audio(&remote, &[Codec::Pcmu, Codec::Pcma])
            .map_err(|e| format!("SDP answer: {e}"))?;
        let neg = ringback_webrtc::negotiated(&choice, Direction::SendRecv);
        let (stream, packets) = media
            .open_browser_stream(port, &neg, self.local.ssrc, leg_media)
            .map_err(|e| format!("media: {e}"))?;
        let close_tx = super::transport::start(
            &self.phones,
            (&self.local.ufrag, &self.local.pwd),
            &remote,
            true,
            &stream,
            packets,
            (self.id.clone(), self.owner.clone()),
        );
        self.close = Some(close_tx);
        self.stream = Some(stream);
        self.answered_at = Some(Utc::now());
        Ok(())
    }

    /// Hold or resume from the page.
    pub fn set_hold(&self, on: bool) {
        if let Some(s) = &self.stream {
            s.wire().set_hold(on);
        }
    }

    /// Let the leg go: a ringing page stops ringing, an answered one hangs
    /// up and DTLS closes.
    pub fn hang_up(&mut self) {
        let msg = if self.answered_at.is_some() {
            ToBrowser::Hangup {
                leg: self.id.clone(),
            }
        } else {
            ToBrowser::Cancel {
                leg: self.id.clone(),
            }
        };
        self.phones.send_to_leg(&self.id, msg);
        self.finish();
    }

    /// The leg is over (whoever ended it): stop its transport and routing.
    pub fn finish(&mut self) {
        self.port = None;
        if let Some(c) = self.close.take() {
            let _ = c.send(());
        }
        self.phones.forget_leg(&self.id);
    }
}

impl Drop for BrowserLeg {
    fn drop(&mut self) {
        self.finish();
    }
}
