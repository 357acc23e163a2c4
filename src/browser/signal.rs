//! One agent page's signalling WebSocket: frames in and out, keep-alive,
//! and the page's phone leaving the ACD when the socket goes (a closed tab,
//! a lost network: the agent is unreachable from then on).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};

use super::messages::{self, ToBrowser};
use super::BrowserPhones;

/// How often the server pings the page.
const PING_EVERY: Duration = Duration::from_secs(10);

/// A page silent for this long (no frame, no pong) is gone.
const SILENT_LIMIT: Duration = Duration::from_secs(25);

/// Largest frame a page may send (an SDP answer is a few KiB).
pub const MAX_FRAME: usize = 64 * 1024;

/// Serve `agent`'s page on `socket` until either side leaves.
pub async fn run(mut socket: WebSocket, phones: Arc<BrowserPhones>, agent: String) {
    let mut conn = phones.connect(&agent);
    tracing::info!(%agent, conn = conn.id, "browser phone connected");
    let hello = ToBrowser::Hello {
        agent: agent.clone(),
        ice_servers: phones.config.ice_servers.clone(),
    };
    if send(&mut socket, &hello).await.is_err() {
        phones.disconnect(&agent, conn.id);
        return;
    }
    let mut ping = tokio::time::interval(PING_EVERY);
    let mut last_heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            out = conn.rx.recv() => match out {
                Some(msg) => {
                    let replaced = msg == ToBrowser::Replaced;
                    if send(&mut socket, &msg).await.is_err() || replaced {
                        break;
                    }
                }
                None => break,
            },
            frame = socket.recv() => {
                last_heard = tokio::time::Instant::now();
                match frame {
                    Some(Ok(Message::Text(text))) => {
                        let result = messages::parse(text.as_str())
                            .and_then(|m| phones.on_page_frame(&agent, conn.id, m));
                        if let Err(message) = result {
                            tracing::debug!(%agent, %message, "browser phone: frame refused");
                            if send(&mut socket, &ToBrowser::Error { message }).await.is_err() {
                                break;
                            }
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        let message = "frames are JSON text".to_string();
                        if send(&mut socket, &ToBrowser::Error { message }).await.is_err() {
                            break;
                        }
                    }
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                    Some(Ok(_)) => {} // ping, pong
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > SILENT_LIMIT {
                    tracing::info!(%agent, "browser phone silent: dropped");
                    break;
                }
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
        }
    }
    tracing::info!(%agent, conn = conn.id, "browser phone disconnected");
    phones.disconnect(&agent, conn.id);
}

async fn send(socket: &mut WebSocket, msg: &ToBrowser) -> Result<(), ()> {
    let text = serde_json::to_string(msg).map_err(|_| ())?;
    socket
        .send(Message::Text(text.into()))
        .await
        .map_err(|_| ())
}
