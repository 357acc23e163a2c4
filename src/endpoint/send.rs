//! Putting the endpoint's messages on the wire: UDP datagrams, or the TCP
//! or TLS connection to the peer, opened on demand (RFC 3261 §18.1.1) and
//! given up when the peer stops reading.

use std::net::SocketAddr;

use ringback_sip::message;
use ringback_sip::transaction::{Transmit, TransportKind};
use tokio::sync::mpsc;

use super::tcp::{self, Conn};
use super::Endpoint;

impl Endpoint {
    pub(super) async fn transmit(&mut self, t: Transmit) {
        crate::metrics::sip_out(&t.message);
        let bytes = message::to_bytes(&t.message);
        match t.transport {
            TransportKind::Udp => {
                let sent = match self.udp.try_send_to(&bytes, t.dest) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        self.udp.send_to(&bytes, t.dest).await
                    }
                    other => other,
                };
                if let Err(e) = sent {
                    tracing::debug!(dest = %t.dest, error = %e, "SIP UDP send failed");
                }
            }
            stream => self.send_raw(bytes, t.dest, stream),
        }
    }

    pub(super) fn send_raw(&mut self, bytes: Vec<u8>, dest: SocketAddr, transport: TransportKind) {
        match transport {
            TransportKind::Udp => {
                if let Err(e) = self.udp.try_send_to(&bytes, dest) {
                    tracing::debug!(%dest, error = %e, "SIP UDP send failed");
                }
            }
            TransportKind::Tcp | TransportKind::Tls => {
                let conn = Conn {
                    peer: dest,
                    transport,
                };
                self.send_stream(bytes, conn)
            }
        }
    }

    fn send_stream(&mut self, bytes: Vec<u8>, conn: Conn) {
        let dest = conn.peer;
        match self.tcp_conns.get(&conn) {
            Some(w) => match w.try_send(bytes) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    // The peer does not read what we send: give the
                    // connection up rather than buffer without bound.
                    tracing::warn!(%dest, "SIP stream peer not reading; connection given up");
                    crate::metrics::refused("tcp_write_queue_full");
                    self.tcp_conns.remove(&conn);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.tcp_conns.remove(&conn);
                }
            },
            None => {
                // No connection to this peer yet (a trunk, or a phone whose
                // connection closed): open one (RFC 3261 §18.1.1); what is
                // sent meanwhile waits in its queue. TLS is never quietly
                // replaced by clear text.
                let tls =
                    (conn.transport == TransportKind::Tls).then(|| self.tls_clients.target(dest));
                let writer = tcp::connect(dest, self.tcp_events.clone(), self.tcp_limits, tls);
                if writer.try_send(bytes).is_ok() {
                    self.tcp_conns.insert(conn, writer);
                }
            }
        }
    }
}
