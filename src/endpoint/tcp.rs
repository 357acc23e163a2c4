//! SIP over TCP and TLS: accept connections, frame the byte stream into
//! messages (Content-Length is mandatory on streams, RFC 3261 §18.3),
//! answer CRLF keep-alive pings (RFC 5626 §4.4.1), and write what the
//! endpoint sends. A TLS connection is a TCP one with a handshake first
//! (bounded by the same message timeout, so a slow handshake is a
//! slow-loris too) and an encrypted stream after; limits are shared.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringback_sip::message::{frame_stream, Frame};
use ringback_sip::transaction::TransportKind;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::{self, Receiver, Sender};

use super::tls::{TlsServer, TlsTarget};

/// Messages queued for one connection's writer. A peer that lets this many
/// of our messages pile up is not reading: its connection is given up
/// (the transactions on it time out) instead of buffering without bound.
pub const WRITE_QUEUE: usize = 256;

/// Messages from all connections waiting for the endpoint. When full, the
/// connection tasks stop reading (TCP pushes back on the senders) instead
/// of queueing without bound.
pub const EVENT_QUEUE: usize = 1024;

/// One stream connection: its peer and whether it is TCP or TLS. A phone
/// may hold one of each to the same address; they are different connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conn {
    /// Peer address.
    pub peer: SocketAddr,
    /// `Tcp` or `Tls`.
    pub transport: TransportKind,
}

/// Stream connection events from the connection tasks.
#[derive(Debug)]
pub enum TcpEvent {
    /// A connection opened; `writer` sends bytes on it.
    Opened {
        /// Which connection.
        conn: Conn,
        /// Writer channel.
        writer: Sender<Vec<u8>>,
    },
    /// A complete SIP message arrived.
    Message {
        /// Which connection.
        conn: Conn,
        /// The message bytes.
        bytes: Vec<u8>,
    },
    /// The connection closed.
    Closed {
        /// Which connection.
        conn: Conn,
    },
}

/// Limits on SIP TCP connections (from `[limits]` and `[sip]`).
#[derive(Debug, Clone, Copy)]
pub struct TcpLimits {
    /// Largest message, bytes.
    pub max_message: usize,
    /// Open connections in total.
    pub max_connections: usize,
    /// Open connections per source IP.
    pub max_per_source: usize,
    /// Close after this long without a byte.
    pub idle: Duration,
    /// Close when a started message is not complete within this long.
    pub message: Duration,
}

impl TcpLimits {
    /// From the server configuration.
    pub fn from_config(cfg: &crate::config::Config) -> TcpLimits {
        let l = &cfg.limits;
        // 0 disables a timeout: ten years, which `Instant + Duration` can
        // still represent (a "never" of u64::MAX seconds would overflow).
        const NEVER_SECS: u64 = 10 * 365 * 86_400;
        let secs = |s: u64| {
            Duration::from_secs(if s == 0 {
                NEVER_SECS
            } else {
                s.min(NEVER_SECS)
            })
        };
        TcpLimits {
            max_message: cfg.sip.max_message_bytes,
            max_connections: nonzero(l.max_tcp_connections),
            max_per_source: nonzero(l.max_tcp_connections_per_source),
            idle: secs(l.tcp_idle_secs),
            message: secs(l.tcp_message_secs),
        }
    }
}

fn nonzero(n: usize) -> usize {
    if n == 0 {
        usize::MAX
    } else {
        n
    }
}

/// Open connections, in total and per source IP.
#[derive(Debug, Default)]
struct Census {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
}

/// A counted connection; uncounts itself when dropped.
struct Seat {
    census: Arc<Mutex<Census>>,
    ip: IpAddr,
}

impl Drop for Seat {
    fn drop(&mut self) {
        let mut c = self.census.lock().unwrap_or_else(|p| p.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.by_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.by_ip.remove(&self.ip);
            }
        }
    }
}

/// Count a new connection from `ip`, or refuse it (`None`) over a limit.
fn take_seat(census: &Arc<Mutex<Census>>, ip: IpAddr, limits: &TcpLimits) -> Option<Seat> {
    let mut c = census.lock().unwrap_or_else(|p| p.into_inner());
    let from_ip = c.by_ip.get(&ip).copied().unwrap_or(0);
    if c.total >= limits.max_connections || from_ip >= limits.max_per_source {
        return None;
    }
    c.total += 1;
    c.by_ip.insert(ip, from_ip + 1);
    Some(Seat {
        census: Arc::clone(census),
        ip,
    })
}

/// Accept connections until the listener fails. With `tls`, each one does
/// a TLS handshake first (with the certificate current at that moment).
pub async fn accept_loop(
    listener: TcpListener,
    events: Sender<TcpEvent>,
    limits: TcpLimits,
    tls: Option<Arc<TlsServer>>,
) {
    let census = Arc::new(Mutex::new(Census::default()));
    let name = if tls.is_some() { "TLS" } else { "TCP" };
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let Some(seat) = take_seat(&census, peer.ip(), &limits) else {
                    // Closing at once (RST via linger 0) costs the attacker a
                    // reconnect and us nothing; no SIP answer is possible
                    // before a message arrives.
                    tracing::warn!(%peer, transport = name, "SIP connection refused: connection limit");
                    crate::metrics::refused("tcp_connections");
                    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let events = events.clone();
                let tls = tls.as_ref().map(|t| t.config());
                tokio::spawn(async move {
                    match tls {
                        None => {
                            let conn = Conn {
                                peer,
                                transport: TransportKind::Tcp,
                            };
                            connection(stream, conn, events, limits).await;
                        }
                        Some(config) => {
                            let acceptor = tokio_rustls::TlsAcceptor::from(config);
                            let handshake =
                                tokio::time::timeout(limits.message, acceptor.accept(stream)).await;
                            match handshake {
                                Ok(Ok(stream)) => {
                                    let conn = Conn {
                                        peer,
                                        transport: TransportKind::Tls,
                                    };
                                    connection(stream, conn, events, limits).await;
                                }
                                Ok(Err(e)) => {
                                    tracing::info!(%peer, error = %e, "TLS handshake failed");
                                    crate::metrics::refused("tls_handshake");
                                }
                                Err(_) => {
                                    tracing::info!(%peer, "TLS handshake not completed in time");
                                    crate::metrics::refused("tls_handshake");
                                }
                            }
                        }
                    }
                    drop(seat);
                });
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, transport = name, "SIP accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Open a connection to `peer` (a trunk, or a phone whose connection is
/// gone), over TLS when `tls` says whom to expect there. Returns the writer
/// at once: messages queue until the connection is up and are then sent in
/// order. The connection then behaves like an accepted one (same framing,
/// limits and events); if it cannot be opened, or the peer's certificate is
/// refused, `Closed` is reported and the transactions time out.
pub fn connect(
    peer: SocketAddr,
    events: Sender<TcpEvent>,
    limits: TcpLimits,
    tls: Option<TlsTarget>,
) -> Sender<Vec<u8>> {
    let (wtx, wrx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
    let writer = wtx.clone();
    let conn = Conn {
        peer,
        transport: if tls.is_some() {
            TransportKind::Tls
        } else {
            TransportKind::Tcp
        },
    };
    tokio::spawn(async move {
        let opened = tokio::time::timeout(limits.message, async {
            let stream = TcpStream::connect(peer).await?;
            let _ = stream.set_nodelay(true);
            anyhow::Ok(stream)
        })
        .await;
        let stream = match opened {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::warn!(%peer, error = %e, "cannot open SIP connection");
                let _ = events.send(TcpEvent::Closed { conn }).await;
                return;
            }
            Err(_) => {
                tracing::warn!(%peer, "SIP connection timed out");
                let _ = events.send(TcpEvent::Closed { conn }).await;
                return;
            }
        };
        match tls {
            None => {
                tracing::debug!(%peer, "SIP TCP connection opened");
                connection_with(stream, conn, events, limits, wtx, wrx).await;
            }
            Some(target) => {
                let connector = tokio_rustls::TlsConnector::from(target.config);
                let handshake =
                    tokio::time::timeout(limits.message, connector.connect(target.name, stream))
                        .await;
                match handshake {
                    Ok(Ok(stream)) => {
                        tracing::debug!(%peer, "SIP TLS connection opened");
                        connection_with(stream, conn, events, limits, wtx, wrx).await;
                    }
                    Ok(Err(e)) => {
                        // A refused certificate lands here: say so plainly,
                        // it is the first thing an admin must fix.
                        tracing::warn!(%peer, error = %e, "SIP TLS handshake failed");
                        crate::metrics::refused("tls_handshake");
                        let _ = events.send(TcpEvent::Closed { conn }).await;
                    }
                    Err(_) => {
                        tracing::warn!(%peer, "SIP TLS handshake timed out");
                        let _ = events.send(TcpEvent::Closed { conn }).await;
                    }
                }
            }
        }
    });
    writer
}

async fn connection<S>(stream: S, conn: Conn, events: Sender<TcpEvent>, limits: TcpLimits)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (wtx, wrx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
    connection_with(stream, conn, events, limits, wtx, wrx).await;
}

async fn connection_with<S>(
    stream: S,
    conn: Conn,
    events: Sender<TcpEvent>,
    limits: TcpLimits,
    wtx: Sender<Vec<u8>>,
    mut wrx: Receiver<Vec<u8>>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let peer = conn.peer;
    let max_message = limits.max_message;
    let (mut rd, mut wr) = tokio::io::split(stream);
    if events
        .send(TcpEvent::Opened {
            conn,
            writer: wtx.clone(),
        })
        .await
        .is_err()
    {
        return;
    }
    let writer = tokio::spawn(async move {
        while let Some(bytes) = wrx.recv().await {
            // TLS buffers records: flush so each message leaves at once.
            if wr.write_all(&bytes).await.is_err() || wr.flush().await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = vec![0u8; 16_384];
    // When the current message started (bytes buffered but not complete).
    let mut partial_since: Option<tokio::time::Instant> = None;
    'read: loop {
        let deadline = match partial_since {
            Some(t) => t + limits.message,
            None => tokio::time::Instant::now() + limits.idle,
        };
        let n = match tokio::time::timeout_at(deadline, rd.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => n,
            Err(_) => {
                let why = if partial_since.is_some() {
                    "message not completed in time"
                } else {
                    "idle"
                };
                tracing::info!(%peer, why, "closing SIP stream connection");
                break;
            }
        };
        buf.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
        loop {
            match frame_stream(&buf, max_message) {
                Frame::Message(len) => {
                    partial_since = None;
                    let bytes: Vec<u8> = buf.drain(..len.min(buf.len())).collect();
                    if events
                        .send(TcpEvent::Message { conn, bytes })
                        .await
                        .is_err()
                    {
                        break 'read;
                    }
                }
                Frame::KeepAlive(len, pong) => {
                    buf.drain(..len.min(buf.len()));
                    if pong {
                        let _ = wtx.try_send(b"\r\n".to_vec());
                    }
                }
                Frame::NeedMore => {
                    if buf.is_empty() {
                        partial_since = None;
                    } else if partial_since.is_none() {
                        partial_since = Some(tokio::time::Instant::now());
                    }
                    break;
                }
                Frame::Invalid(reason) => {
                    // A stream cannot be resynchronised after a framing error.
                    tracing::warn!(%peer, %reason, "closing SIP stream connection: bad framing");
                    crate::metrics::malformed();
                    if let Some(resp) = ringback_sip::message::bad_request(&buf, &reason) {
                        let _ = wtx.try_send(resp);
                    }
                    break 'read;
                }
            }
        }
    }
    let _ = events.send(TcpEvent::Closed { conn }).await;
    drop(wtx);
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_or_huge_timeouts_never_overflow_a_deadline() {
        for secs in [0, 1, u64::MAX] {
            let mut cfg = crate::config::Config::default();
            cfg.limits.tcp_idle_secs = secs;
            cfg.limits.tcp_message_secs = secs;
            let l = TcpLimits::from_config(&cfg);
            let now = tokio::time::Instant::now();
            assert!(now.checked_add(l.idle).is_some(), "{secs}");
            assert!(now.checked_add(l.message).is_some(), "{secs}");
        }
    }

    #[test]
    fn seats_are_counted_per_source_and_given_back() {
        let census = Arc::new(Mutex::new(Census::default()));
        let limits = TcpLimits {
            max_message: 65_535,
            max_connections: 3,
            max_per_source: 2,
            idle: Duration::from_secs(1),
            message: Duration::from_secs(1),
        };
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let s1 = take_seat(&census, a, &limits).expect("first");
        let _s2 = take_seat(&census, a, &limits).expect("second");
        assert!(take_seat(&census, a, &limits).is_none(), "per source");
        let _s3 = take_seat(&census, b, &limits).expect("other source");
        assert!(take_seat(&census, b, &limits).is_none(), "in total");
        drop(s1);
        assert!(take_seat(&census, a, &limits).is_some(), "seat given back");
    }
}
