//! SIP over TCP: accept connections, frame the byte stream into messages
//! (Content-Length is mandatory on streams, RFC 3261 §18.3), answer CRLF
//! keep-alive pings (RFC 5626 §4.4.1), and write what the endpoint sends.

use std::net::SocketAddr;

use ringback_sip::message::{frame_stream, Frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::{self, UnboundedSender};

use crate::endpoint::TcpEvent;

/// Accept connections until the listener fails.
pub async fn accept_loop(
    listener: TcpListener,
    events: UnboundedSender<TcpEvent>,
    max_message: usize,
) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(connection(stream, peer, events.clone(), max_message));
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    events: UnboundedSender<TcpEvent>,
    max_message: usize,
) {
    let (mut rd, mut wr) = stream.into_split();
    let (wtx, mut wrx) = mpsc::unbounded_channel::<Vec<u8>>();
    if events
        .send(TcpEvent::Opened {
            peer,
            writer: wtx.clone(),
        })
        .is_err()
    {
        return;
    }
    let writer = tokio::spawn(async move {
        while let Some(bytes) = wrx.recv().await {
            if wr.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = vec![0u8; 16_384];
    'read: loop {
        let n = match rd.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
        loop {
            match frame_stream(&buf, max_message) {
                Frame::Message(len) => {
                    let bytes: Vec<u8> = buf.drain(..len.min(buf.len())).collect();
                    if events.send(TcpEvent::Message { peer, bytes }).is_err() {
                        break 'read;
                    }
                }
                Frame::KeepAlive(len, pong) => {
                    buf.drain(..len.min(buf.len()));
                    if pong {
                        let _ = wtx.send(b"\r\n".to_vec());
                    }
                }
                Frame::NeedMore => break,
                Frame::Invalid(reason) => {
                    // A stream cannot be resynchronised after a framing error.
                    tracing::warn!(%peer, %reason, "closing TCP connection: bad framing");
                    crate::metrics::malformed();
                    if let Some(resp) = ringback_sip::message::bad_request(&buf, &reason) {
                        let _ = wtx.send(resp);
                    }
                    break 'read;
                }
            }
        }
    }
    let _ = events.send(TcpEvent::Closed { peer });
    drop(wtx);
    let _ = writer.await;
}
