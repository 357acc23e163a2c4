//! Browser phones (WebRTC, issue 14): the agent page's softphone and, later,
//! the public "call us" page. One [`BrowserPhones`] per server holds the
//! connected agent pages (one signalling WebSocket each), routes what a page
//! says about a leg to the task that owns the leg, and tells the ACD when an
//! agent's browser phone comes and goes.
//!
//! The protocol work (ICE-lite, DTLS, SRTP keys, SDP) is the sans-IO
//! `ringback-webrtc` crate; `leg.rs` runs one leg's transport beside its
//! media stream, `signal.rs` is the WebSocket.

pub mod caller;
pub mod leg;
pub mod messages;
pub mod signal;
pub mod transport;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ringback_webrtc::DtlsIdentity;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

use crate::acd_task::{AcdCmd, AcdHandle};
use crate::config::WebRtcConfig;
use messages::{BrowserEvent, EventKind, FromBrowser, ToBrowser};

/// Every connected agent page, and which page holds which leg.
pub struct BrowserPhones {
    /// Our DTLS certificate: made once at start, its fingerprint in every
    /// SDP we send to a browser.
    pub identity: Arc<DtlsIdentity>,
    /// `[webrtc]`.
    pub config: WebRtcConfig,
    /// Tokens of the public call page.
    pub web_tokens: caller::WebTokens,
    /// Starts the public page's calls (set at start-up, once the calls'
    /// handles exist).
    pub web_calls: std::sync::OnceLock<Arc<dyn caller::WebCallStarter>>,
    acd: AcdHandle,
    next_conn: AtomicU64,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Agent → its page's connection.
    phones: HashMap<String, Phone>,
    /// Leg id → the page ringing it and the task that owns it.
    legs: HashMap<String, Route>,
}

struct Phone {
    conn: u64,
    tx: UnboundedSender<ToBrowser>,
}

struct Route {
    agent: String,
    conn: u64,
    owner: UnboundedSender<BrowserEvent>,
}

/// One page's connection, as [`BrowserPhones::connect`] gives it.
pub struct Connection {
    /// Identifies this connection (a reload makes a new one).
    pub id: u64,
    /// What to send to the page.
    pub rx: UnboundedReceiver<ToBrowser>,
}

impl BrowserPhones {
    /// A registry with a fresh DTLS identity.
    pub fn new(config: WebRtcConfig, acd: AcdHandle) -> anyhow::Result<BrowserPhones> {
        let identity = DtlsIdentity::generate()
            .map_err(|e| anyhow::anyhow!("cannot make the DTLS certificate: {e}"))?;
        Ok(BrowserPhones {
            identity: Arc::new(identity),
            config,
            web_tokens: caller::WebTokens::default(),
            web_calls: std::sync::OnceLock::new(),
            acd,
            next_conn: AtomicU64::new(1),
            inner: Mutex::new(Inner::default()),
        })
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `agent`'s page connected: it is the agent's browser phone from now
    /// on (a second tab replaces the first, which is told so).
    pub fn connect(&self, agent: &str) -> Connection {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        let old = self
            .inner()
            .phones
            .insert(agent.to_string(), Phone { conn: id, tx });
        if let Some(old) = old {
            let _ = old.tx.send(ToBrowser::Replaced);
            self.drop_legs_of(old.conn, "the agent page was opened again");
        }
        self.acd.send(AcdCmd::BrowserPhone {
            agent: agent.to_string(),
            connected: true,
        });
        Connection { id, rx }
    }

    /// A page's connection `conn` ended: the agent's browser phone is gone
    /// (unless a newer page replaced it), and each leg it held ends.
    pub fn disconnect(&self, agent: &str, conn: u64) {
        let current = {
            let mut inner = self.inner();
            let current = inner.phones.get(agent).is_some_and(|p| p.conn == conn);
            if current {
                inner.phones.remove(agent);
            }
            current
        };
        if current {
            self.acd.send(AcdCmd::BrowserPhone {
                agent: agent.to_string(),
                connected: false,
            });
        }
        self.drop_legs_of(conn, "the agent page closed");
    }

    fn drop_legs_of(&self, conn: u64, why: &str) {
        let gone: Vec<(String, Route)> = {
            let mut inner = self.inner();
            let ids: Vec<String> = inner
                .legs
                .iter()
                .filter(|(_, r)| r.conn == conn)
                .map(|(id, _)| id.clone())
                .collect();
            ids.into_iter()
                .filter_map(|id| inner.legs.remove(&id).map(|r| (id, r)))
                .collect()
        };
        for (leg, r) in gone {
            let _ = r.owner.send(BrowserEvent {
                leg,
                kind: EventKind::Gone(why.to_string()),
            });
        }
    }

    /// Ring `agent`'s page with `msg` (a [`ToBrowser::Ring`] for `leg`);
    /// what the page answers goes to `owner`. False when the agent has no
    /// page connected.
    pub fn ring(
        &self,
        agent: &str,
        leg: &str,
        owner: UnboundedSender<BrowserEvent>,
        msg: ToBrowser,
    ) -> bool {
        let mut inner = self.inner();
        let Some(phone) = inner.phones.get(agent) else {
            return false;
        };
        let conn = phone.conn;
        if phone.tx.send(msg).is_err() {
            return false;
        }
        inner.legs.insert(
            leg.to_string(),
            Route {
                agent: agent.to_string(),
                conn,
                owner,
            },
        );
        true
    }

    /// Tell the page holding `leg` something (cancel, hang up).
    pub fn send_to_leg(&self, leg: &str, msg: ToBrowser) {
        let inner = self.inner();
        if let Some(r) = inner.legs.get(leg) {
            if let Some(p) = inner.phones.get(&r.agent).filter(|p| p.conn == r.conn) {
                let _ = p.tx.send(msg);
            }
        }
    }

    /// The leg ended: forget its route.
    pub fn forget_leg(&self, leg: &str) {
        self.inner().legs.remove(leg);
    }

    /// What connection `conn` of `agent`'s page said. `Err` (to show the
    /// page) when it names a leg that is not its own.
    pub fn on_page_frame(&self, agent: &str, conn: u64, msg: FromBrowser) -> Result<(), String> {
        let (leg, kind) = match msg {
            FromBrowser::Answer { leg, sdp } => (leg, EventKind::Answer(sdp)),
            FromBrowser::Reject { leg } => (leg, EventKind::Reject),
            FromBrowser::Hangup { leg } => (leg, EventKind::HangUp),
            FromBrowser::Hold { leg, on } => (leg, EventKind::Hold(on)),
            FromBrowser::Ping => return Ok(()),
        };
        let inner = self.inner();
        match inner.legs.get(&leg) {
            Some(r) if r.agent == agent && r.conn == conn => {
                let _ = r.owner.send(BrowserEvent { leg, kind });
                Ok(())
            }
            _ => Err(format!("no call `{leg}` on this phone (it may have ended)")),
        }
    }
}
