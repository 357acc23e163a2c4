//! One browser leg's transport task (an agent's browser phone or a web
//! caller): the sans-IO [`Transport`] fed with the ICE and DTLS packets the
//! stream's receive task hands over and with time; its datagrams leave from
//! the stream's port, its keys and selected address go into the stream, and
//! its end (a closed tab, a DTLS failure) goes to the leg's owner.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ringback_webrtc::{
    CloseReason, RemoteDescription, Transport, TransportConfig, TransportOutput,
};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;

use super::messages::{BrowserEvent, EventKind};
use super::BrowserPhones;
use crate::media::browser::{Datagram, Wire};
use crate::media::Stream;

/// Start the transport task of a browser leg whose `stream` just opened:
/// ICE with our `local_ice` (ufrag, password) for the browser of `remote`,
/// DTLS as server or client as the offer/answer says (`we_offered`). Its
/// end goes to `owner` as `leg`. The returned sender closes it (DTLS
/// close_notify).
pub fn start(
    phones: &BrowserPhones,
    local_ice: (&str, &str),
    remote: &RemoteDescription,
    we_offered: bool,
    stream: &Stream,
    packets: UnboundedReceiver<Datagram>,
    (leg, owner): (String, UnboundedSender<BrowserEvent>),
) -> oneshot::Sender<()> {
    let transport = Transport::new(
        TransportConfig {
            local_ufrag: local_ice.0.to_string(),
            local_pwd: local_ice.1.to_string(),
            remote_ufrag: remote.ice_ufrag.clone(),
            remote_fingerprint: remote.fingerprint.clone(),
            dtls_server: ringback_webrtc::we_are_dtls_server(remote, we_offered),
            idle_timeout: Duration::from_millis(phones.config.idle_timeout_ms),
        },
        &phones.identity,
        Instant::now(),
    );
    let (close_tx, close_rx) = oneshot::channel();
    tokio::spawn(run(transport, stream.wire(), packets, close_rx, leg, owner));
    close_tx
}

/// How often the transport task looks at the media counter (liveness).
const MEDIA_CHECK: Duration = Duration::from_millis(250);

/// One leg's transport task: ICE and DTLS packets and time into the
/// [`Transport`]; its datagrams out of the stream's port, its keys and
/// selected address into the stream; its end to the leg's owner.
pub async fn run(
    mut t: Transport,
    wire: Wire,
    mut packets: UnboundedReceiver<Datagram>,
    mut close: oneshot::Receiver<()>,
    leg: String,
    owner: UnboundedSender<BrowserEvent>,
) {
    let mut selected: Option<SocketAddr> = None;
    let mut keyed = false;
    let mut media_seen = wire.packets_received();
    loop {
        while let Some(out) = t.poll_output() {
            match out {
                TransportOutput::Transmit { to, bytes } => wire.send(&bytes, to),
                TransportOutput::Selected(addr) => {
                    selected = Some(addr);
                    if keyed {
                        wire.aim(addr);
                    }
                }
                TransportOutput::Keys { local, remote } => match selected {
                    Some(addr) => {
                        tracing::info!(%leg, %addr, suite = ?local.suite(), "browser leg: DTLS-SRTP up");
                        wire.install_keys(&local, &remote, addr);
                        keyed = true;
                    }
                    None => tracing::warn!(%leg, "DTLS keys before ICE selected an address"),
                },
                TransportOutput::Closed(reason) => {
                    tracing::info!(%leg, ?reason, "browser leg transport closed");
                    if reason != CloseReason::Local {
                        let _ = owner.send(BrowserEvent {
                            leg,
                            kind: EventKind::Gone(format!("{reason:?}")),
                        });
                    }
                    return;
                }
            }
        }
        let now = Instant::now();
        let wake = t
            .poll_timeout()
            .map_or(now + MEDIA_CHECK, |d| d.min(now + MEDIA_CHECK));
        tokio::select! {
            p = packets.recv() => match p {
                Some((pkt, from)) => t.handle_datagram(from, &pkt, Instant::now()),
                None => return,
            },
            _ = tokio::time::sleep_until(wake.into()) => {
                let now = Instant::now();
                let seen = wire.packets_received();
                if seen != media_seen {
                    media_seen = seen;
                    if let Some(addr) = selected {
                        t.media_received(addr, now);
                    }
                }
                t.handle_timeout(now);
            }
            _ = &mut close => {
                t.close(Instant::now());
                while let Some(out) = t.poll_output() {
                    if let TransportOutput::Transmit { to, bytes } = out {
                        wire.send(&bytes, to);
                    }
                }
                return;
            }
        }
    }
}
