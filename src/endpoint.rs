//! The SIP endpoint: one task that owns the transaction layer, the UDP
//! socket and the TCP connections, and routes what the layer emits to call
//! tasks.
//!
//! All protocol decisions are in `ringback-sip` (sans-IO); this task only
//! feeds it bytes and time and carries its output to sockets and calls. One
//! task owning the layer means no locks on the signalling hot path; call
//! tasks talk to it through a channel.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use ringback_sip::message;
use ringback_sip::transaction::{
    TimerConfig, TransactionKey, TransactionLayer, Transmit, TransportKind, TuEvent,
};
use rsip::prelude::*;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

use crate::acd_task::AcdCmd;
use crate::admission::{Admission, Load, Refusal, WorstRecent};
use crate::allow::{self, AllowList};
use crate::call::{self, CallSetup};
use crate::registrar::{Registrar, Secret};
use crate::server::ServerCtx;
use crate::tcp;

mod did;

/// Datagrams read per wake-up of the endpoint task before it flushes.
const UDP_BURST: usize = 64;

/// Methods ringback answers; sent in `Allow` headers.
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, NOTIFY, REFER, UPDATE, REGISTER";

/// What the endpoint forwards to a call task.
#[derive(Debug)]
pub enum SipInput {
    /// An in-dialog request (BYE, INFO, re-INVITE, NOTIFY, …) to answer.
    Request {
        /// Server transaction to respond on.
        key: TransactionKey,
        /// The request, boxed: every call's channel allocates blocks of 32
        /// slots of this enum, so its size is memory per call (272 → 80 bytes).
        request: Box<rsip::Request>,
    },
    /// The caller cancelled the INVITE; the layer already answered the CANCEL.
    Cancelled,
    /// ACK for our 2xx arrived.
    Ack,
    /// A response to a request this call sent.
    Response {
        /// Client transaction.
        key: TransactionKey,
        /// The response (boxed for the same reason as requests).
        response: Box<rsip::Response>,
    },
    /// A request this call sent got no final response (408 equivalent).
    Timeout {
        /// Client transaction.
        key: TransactionKey,
    },
    /// Our 2xx was never ACKed.
    AckTimeout,
    /// The server is shutting down: hang up.
    Shutdown,
}

/// Commands from calls (and the server) to the endpoint task.
#[derive(Debug)]
pub enum EndpointCmd {
    /// Answer a server transaction.
    Respond {
        /// Transaction.
        key: TransactionKey,
        /// Response to send.
        response: rsip::Response,
    },
    /// Start a client transaction; responses go to the call `owner`.
    Request {
        /// Request (with a fresh Via branch).
        request: rsip::Request,
        /// Where to send it.
        dest: SocketAddr,
        /// Transport to use.
        transport: TransportKind,
        /// Call-ID of the call that gets the responses.
        owner: String,
    },
    /// Route everything for `call_id` to a task that is not an inbound call
    /// (a callback attempt placing its own legs).
    Register {
        /// The task's Call-ID (owner of its legs' transactions).
        call_id: String,
        /// Where its SIP inputs go.
        tx: UnboundedSender<SipInput>,
    },
    /// Route in-dialog requests for another Call-ID (a B2BUA leg) to the
    /// call task that owns `of`.
    Alias {
        /// The leg's Call-ID.
        call_id: String,
        /// The owning call's Call-ID.
        of: String,
    },
    /// Send without a transaction (ACK for a 2xx).
    Stateless {
        /// The message.
        message: rsip::SipMessage,
        /// Where.
        dest: SocketAddr,
        /// How.
        transport: TransportKind,
    },
    /// CANCEL a pending INVITE client transaction.
    Cancel {
        /// The INVITE's transaction.
        key: TransactionKey,
    },
    /// A call has ended; stop routing to it.
    CallEnded {
        /// Its Call-ID.
        call_id: String,
    },
    /// Hang up every call (graceful shutdown).
    HangupAll,
}

/// TCP connection events from the connection tasks.
#[derive(Debug)]
pub enum TcpEvent {
    /// A connection opened; `writer` sends bytes on it.
    Opened {
        /// Peer address.
        peer: SocketAddr,
        /// Writer channel.
        writer: UnboundedSender<Vec<u8>>,
    },
    /// A complete SIP message arrived.
    Message {
        /// Peer address.
        peer: SocketAddr,
        /// The message bytes.
        bytes: Vec<u8>,
    },
    /// The connection closed.
    Closed {
        /// Peer address.
        peer: SocketAddr,
    },
}

/// A message refused before it reached the transaction layer.
enum Rejected {
    /// Larger than `sip.max_message_bytes` (513).
    TooLarge(String),
    /// [`message::parse`] refused it; the error says how to answer.
    Unparseable(message::ParseError),
}

/// Cheap handle for call tasks.
#[derive(Clone, Debug)]
pub struct EndpointHandle {
    tx: UnboundedSender<EndpointCmd>,
    /// Bound SIP address (UDP and TCP share the port).
    pub local: SocketAddr,
}

impl EndpointHandle {
    /// Send a command to the endpoint (dropped silently if it has stopped,
    /// which only happens at shutdown).
    pub fn send(&self, cmd: EndpointCmd) {
        let _ = self.tx.send(cmd);
    }
}

/// Bind UDP and TCP on the same port. Port 0 picks one that is free for both.
pub async fn bind(
    addr: SocketAddr,
    with_tcp: bool,
) -> anyhow::Result<(UdpSocket, Option<TcpListener>)> {
    for _ in 0..20 {
        let udp = UdpSocket::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot bind SIP UDP {addr}: {e}"))?;
        if !with_tcp {
            return Ok((udp, None));
        }
        let local = udp.local_addr()?;
        match TcpListener::bind(local).await {
            Ok(tcp) => return Ok((udp, Some(tcp))),
            Err(e) if addr.port() != 0 => {
                anyhow::bail!("cannot bind SIP TCP {local}: {e}")
            }
            Err(_) => continue, // port 0: try another pair
        }
    }
    anyhow::bail!("no port free for both UDP and TCP on {}", addr.ip())
}

/// Start the endpoint task.
pub fn spawn(
    ctx: Arc<ServerCtx>,
    udp: UdpSocket,
    tcp_listener: Option<TcpListener>,
) -> anyhow::Result<(EndpointHandle, tokio::task::JoinHandle<()>)> {
    let local = udp.local_addr()?;
    let (tx, rx) = mpsc::unbounded_channel();
    let (tcp_tx, tcp_rx) = mpsc::unbounded_channel();
    let tcp_limits = tcp::TcpLimits::from_config(&ctx.config);
    if let Some(listener) = tcp_listener {
        tokio::spawn(tcp::accept_loop(listener, tcp_tx.clone(), tcp_limits));
    }
    let handle = EndpointHandle { tx, local };
    let offered = ctx
        .config
        .sip
        .auth_algorithms
        .iter()
        .filter_map(|a| ringback_sip::auth::Algorithm::parse(a))
        .collect();
    let registrar = Registrar::new(&ctx.config.sip.realm, agent_secrets(&ctx.config), offered)
        .with_agent_algorithms(agent_algorithms(&ctx.config));
    // Config::validate has checked it already; this cannot fail after that.
    let allow = AllowList::parse(&ctx.config.sip.allow_from).map_err(anyhow::Error::msg)?;
    if !allow.is_empty() {
        tracing::info!(networks = ?ctx.config.sip.allow_from, "INVITE/REGISTER only from sip.allow_from");
    }
    let ctx_limits = ctx.config.limits.clone();
    let ep = Endpoint {
        registrar,
        allow,
        ctx,
        handle: handle.clone(),
        udp,
        layer: TransactionLayer::new(TimerConfig::default()),
        calls: HashMap::new(),
        aliases: HashMap::new(),
        tasks: std::collections::HashSet::new(),
        owners: HashMap::new(),
        tcp_conns: HashMap::new(),
        tcp_events: tcp_tx,
        tcp_limits,
        shutting_down: false,
        admission: Admission::new(ctx_limits, Instant::now()),
        sip_delay: WorstRecent::default(),
    };
    // Turn on arrival timestamps (the first SIOCGSTAMPNS does).
    let _ = queued_for(&ep.udp);
    let join = tokio::spawn(ep.run(rx, tcp_rx));
    Ok((handle, join))
}

struct Endpoint {
    ctx: Arc<ServerCtx>,
    handle: EndpointHandle,
    udp: UdpSocket,
    layer: TransactionLayer,
    /// Where SIP for a Call-ID goes: inbound calls, registered tasks and
    /// their legs' Call-IDs (aliases), all by Call-ID.
    calls: HashMap<String, UnboundedSender<SipInput>>,
    /// Leg Call-ID → the Call-ID of the task that owns the leg.
    aliases: HashMap<String, String>,
    /// Registered tasks that are not inbound calls (callback attempts,
    /// trunk registrations).
    tasks: std::collections::HashSet<String>,
    /// Client transactions by owner Call-ID.
    owners: HashMap<TransactionKey, String>,
    tcp_conns: HashMap<SocketAddr, UnboundedSender<Vec<u8>>>,
    /// Where connections we open report, like accepted ones.
    tcp_events: UnboundedSender<TcpEvent>,
    tcp_limits: tcp::TcpLimits,
    shutting_down: bool,
    registrar: Registrar,
    /// `sip.allow_from`: who may start calls and registrations.
    allow: AllowList,
    admission: Admission,
    /// Worst receive-queue wait of SIP datagrams, recently.
    sip_delay: WorstRecent,
}

/// How long the datagram just read from `udp` waited in the kernel's
/// receive queue (`SIOCGSTAMPNS`: its arrival time, `CLOCK_REALTIME`).
/// `None` until timestamping is on (the first call turns it on).
fn queued_for(udp: &UdpSocket) -> Option<std::time::Duration> {
    use std::os::fd::AsRawFd;
    /// `SIOCGSTAMPNS` from linux/sockios.h (not in the libc crate).
    const SIOCGSTAMPNS: libc::c_ulong = 0x8907;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: an ioctl on our own socket with a valid timespec out-pointer.
    let rc = unsafe { libc::ioctl(udp.as_raw_fd(), SIOCGSTAMPNS, &mut ts) };
    if rc != 0 || ts.tv_sec <= 0 {
        return None;
    }
    let arrived = std::time::UNIX_EPOCH
        + std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec.clamp(0, 999_999_999) as u32);
    std::time::SystemTime::now().duration_since(arrived).ok()
}

fn retry_after(secs: u32) -> rsip::Header {
    rsip::headers::RetryAfter::new(secs.to_string()).into()
}

/// Agents' digest secrets from the configuration.
/// `[agents.NAME] auth_algorithms`, for the agents that set one.
fn agent_algorithms(
    cfg: &crate::config::Config,
) -> HashMap<String, Vec<ringback_sip::auth::Algorithm>> {
    cfg.agents
        .iter()
        .filter_map(|(id, a)| {
            let list = a.auth_algorithms.as_ref()?;
            let parsed = list
                .iter()
                .filter_map(|x| ringback_sip::auth::Algorithm::parse(x))
                .collect();
            Some((id.clone(), parsed))
        })
        .collect()
}

fn agent_secrets(cfg: &crate::config::Config) -> HashMap<String, Secret> {
    cfg.agents
        .iter()
        .filter_map(|(id, a)| {
            let secret = match (&a.password, &a.ha1) {
                (Some(p), _) => Secret::Password(p.clone()),
                (None, Some(h)) => Secret::Md5Ha1(h.clone()),
                (None, None) => return None,
            };
            Some((id.clone(), secret))
        })
        .collect()
}

impl Endpoint {
    async fn run(
        mut self,
        mut cmds: UnboundedReceiver<EndpointCmd>,
        mut tcp_rx: UnboundedReceiver<TcpEvent>,
    ) {
        let mut buf = vec![0u8; 65_536];
        let mut housekeeping = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            let deadline = self.layer.poll_timeout();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = self.udp.recv_from(&mut buf) => match r {
                    Ok((n, src)) => {
                        // The first datagram of a wake-up waited longest:
                        // its queueing time says how far signalling is behind.
                        if let Some(waited) = queued_for(&self.udp) {
                            self.sip_delay.record(waited, Instant::now());
                        }
                        self.on_bytes(buf.get(..n).unwrap_or(&[]), src, TransportKind::Udp);
                        // Take what else is already queued before flushing:
                        // under load one wake-up serves a burst of requests.
                        for _ in 1..UDP_BURST {
                            match self.udp.try_recv_from(&mut buf) {
                                Ok((n, src)) => {
                                    self.on_bytes(buf.get(..n).unwrap_or(&[]), src, TransportKind::Udp)
                                }
                                Err(_) => break,
                            }
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "SIP UDP receive error"),
                },
                Some(ev) = tcp_rx.recv() => self.on_tcp(ev),
                cmd = cmds.recv() => match cmd {
                    Some(cmd) => self.on_cmd(cmd),
                    None => return,
                },
                _ = sleep => self.layer.handle_timeout(Instant::now()),
                _ = housekeeping.tick() => {
                    self.admission.expire(Instant::now());
                    for change in self.registrar.expire(Instant::now()) {
                        self.ctx.acd.send(AcdCmd::Reachability(change));
                    }
                }
            }
            self.flush().await;
        }
    }

    fn on_tcp(&mut self, ev: TcpEvent) {
        match ev {
            TcpEvent::Opened { peer, writer } => {
                // An outgoing connection is in the map since it was asked for.
                self.tcp_conns.entry(peer).or_insert(writer);
            }
            TcpEvent::Closed { peer } => {
                self.tcp_conns.remove(&peer);
            }
            TcpEvent::Message { peer, bytes } => self.on_bytes(&bytes, peer, TransportKind::Tcp),
        }
    }

    fn on_bytes(&mut self, bytes: &[u8], src: SocketAddr, transport: TransportKind) {
        if bytes.iter().all(|b| matches!(b, b'\r' | b'\n' | 0)) {
            return; // keep-alive
        }
        let size_limit = self.ctx.config.sip.max_message_bytes;
        let parsed = if bytes.len() > size_limit {
            Err(Rejected::TooLarge(format!(
                "message of {} bytes exceeds the {size_limit}-byte limit",
                bytes.len()
            )))
        } else {
            message::parse(bytes).map_err(Rejected::Unparseable)
        };
        match parsed {
            Ok(mut msg) => {
                if let rsip::SipMessage::Request(req) = &mut msg {
                    message::stamp_received(req, src);
                }
                crate::metrics::sip_in(&msg);
                self.layer
                    .handle_incoming(msg, src, transport, Instant::now());
            }
            Err(rejected) => {
                // 400 naming a missing header, 505 for another SIP version,
                // 416 for a tel:/mailto: Request-URI, 501 for an unknown
                // method; nothing when there is no top Via to answer by.
                let (code, reason, resp) = match rejected {
                    Rejected::TooLarge(reason) => {
                        let resp = message::error_response(bytes, 513, &reason);
                        (513, reason, resp)
                    }
                    Rejected::Unparseable(e) => (
                        e.status(),
                        e.reason(),
                        message::error_response_for(bytes, &e),
                    ),
                };
                tracing::warn!(%src, code, %reason, answered = resp.is_some(), "SIP message rejected before parsing");
                crate::metrics::malformed();
                if let Some(resp) = resp {
                    self.send_raw(resp, src, transport);
                }
            }
        }
    }

    fn on_cmd(&mut self, cmd: EndpointCmd) {
        let now = Instant::now();
        match cmd {
            EndpointCmd::Respond { key, response } => {
                if let Err(e) = self.layer.respond(&key, response, now) {
                    tracing::debug!(error = %e, "response for a finished transaction dropped");
                }
            }
            EndpointCmd::Request {
                request,
                dest,
                transport,
                owner,
            } => {
                let key = self.layer.send_request(request, dest, transport, now);
                self.owners.insert(key, owner);
            }
            EndpointCmd::Register { call_id, tx } => {
                self.tasks.insert(call_id.clone());
                self.calls.insert(call_id, tx);
                self.publish_counts();
            }
            EndpointCmd::Alias { call_id, of } => {
                if let Some(tx) = self.calls.get(&of).cloned() {
                    self.aliases.insert(call_id.clone(), of);
                    self.calls.insert(call_id, tx);
                }
            }
            EndpointCmd::Stateless {
                message,
                dest,
                transport,
            } => self.layer.send_stateless(message, dest, transport),
            EndpointCmd::Cancel { key } => {
                if self.layer.cancel(&key, now).is_none() {
                    tracing::debug!("CANCEL not possible (no provisional yet or already final)");
                }
            }
            EndpointCmd::CallEnded { call_id } => {
                self.calls.remove(&call_id);
                self.tasks.remove(&call_id);
                self.aliases.remove(&call_id);
                // Legs of a task that ended stop being routed with it.
                let orphans: Vec<String> = self
                    .aliases
                    .iter()
                    .filter(|(_, owner)| **owner == call_id)
                    .map(|(leg, _)| leg.clone())
                    .collect();
                for leg in orphans {
                    self.aliases.remove(&leg);
                    self.calls.remove(&leg);
                }
                self.publish_counts();
            }
            EndpointCmd::HangupAll => {
                self.shutting_down = true;
                for tx in self.calls.values() {
                    let _ = tx.send(SipInput::Shutdown);
                }
            }
        }
    }

    /// Send what the layer produced and deliver its events.
    async fn flush(&mut self) {
        while let Some(t) = self.layer.poll_transmit() {
            self.transmit(t).await;
        }
        while let Some(ev) = self.layer.poll_event() {
            self.on_event(ev);
            // Events may have produced responses (e.g. 404, 200 to OPTIONS).
            while let Some(t) = self.layer.poll_transmit() {
                self.transmit(t).await;
            }
        }
    }

    async fn transmit(&mut self, t: Transmit) {
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
            TransportKind::Tcp => self.send_raw(bytes, t.dest, TransportKind::Tcp),
        }
    }

    fn send_raw(&mut self, bytes: Vec<u8>, dest: SocketAddr, transport: TransportKind) {
        match transport {
            TransportKind::Udp => {
                if let Err(e) = self.udp.try_send_to(&bytes, dest) {
                    tracing::debug!(%dest, error = %e, "SIP UDP send failed");
                }
            }
            TransportKind::Tcp => match self.tcp_conns.get(&dest) {
                Some(w) => {
                    if w.send(bytes).is_err() {
                        self.tcp_conns.remove(&dest);
                    }
                }
                None => {
                    // No connection to this peer yet (a trunk, or a phone
                    // whose connection closed): open one (RFC 3261 §18.1.1);
                    // what is sent meanwhile waits in its queue.
                    let writer = tcp::connect(dest, self.tcp_events.clone(), self.tcp_limits);
                    if writer.send(bytes).is_ok() {
                        self.tcp_conns.insert(dest, writer);
                    }
                }
            },
        }
    }

    fn respond(&mut self, key: &TransactionKey, resp: rsip::Response) {
        if let Err(e) = self.layer.respond(key, resp, Instant::now()) {
            tracing::debug!(error = %e, "response dropped");
        }
    }

    fn on_event(&mut self, ev: TuEvent) {
        match ev {
            TuEvent::Request {
                key,
                request,
                source,
                transport,
            } => self.on_request(key, request, source, transport),
            TuEvent::Cancelled { invite: _, cancel } => {
                if let Some(tx) = message::call_id(&cancel).and_then(|c| self.calls.get(&c)) {
                    let _ = tx.send(SipInput::Cancelled);
                }
            }
            TuEvent::Ack { request, .. } => {
                if let Some(tx) = message::call_id(&request).and_then(|c| self.calls.get(&c)) {
                    let _ = tx.send(SipInput::Ack);
                }
            }
            TuEvent::Response { key, response } => {
                if let Some(tx) = self.owners.get(&key).and_then(|o| self.calls.get(o)) {
                    let _ = tx.send(SipInput::Response {
                        key,
                        response: Box::new(response),
                    });
                }
            }
            TuEvent::Timeout { key } => {
                if let Some(tx) = self.owners.get(&key).and_then(|o| self.calls.get(o)) {
                    let _ = tx.send(SipInput::Timeout { key: key.clone() });
                }
                self.owners.remove(&key);
            }
            TuEvent::AckTimeout { call_id } => {
                if let Some(tx) = self.calls.get(&call_id) {
                    let _ = tx.send(SipInput::AckTimeout);
                }
            }
            TuEvent::Terminated { key } => {
                self.owners.remove(&key);
            }
        }
    }

    fn on_request(
        &mut self,
        key: TransactionKey,
        req: rsip::Request,
        source: SocketAddr,
        transport: TransportKind,
    ) {
        let call_id = message::call_id(&req).unwrap_or_default();
        let has_to_tag = message::to_tag(&req).is_some();
        if allow::screened(&req.method, has_to_tag) && !self.allow.permits(source.ip()) {
            // sip.allow_from: before admission, dialplan or digest work.
            // No Warning: a scanner learns nothing from the refusal.
            if req.method == rsip::Method::Invite {
                crate::metrics::rejected("not_allowed");
            } else {
                crate::metrics::refused("not_allowed");
            }
            tracing::debug!(%source, method = %req.method, "request from outside sip.allow_from refused");
            self.reject(&key, &req, 403, None);
            return;
        }
        match req.method {
            rsip::Method::Invite if !has_to_tag => {
                if self.calls.contains_key(&call_id) {
                    // A second INVITE with the same Call-ID and no To-tag but
                    // a new branch: a merged request (RFC 3261 §8.2.2.2).
                    let resp = message::make_response(&req, 482, Some(&message::new_tag()));
                    self.respond(&key, resp);
                    return;
                }
                self.new_call(key, req, call_id, source, transport);
            }
            rsip::Method::Cancel => {
                // A CANCEL the layer could not match to a live INVITE.
                let resp = message::make_response(&req, 481, Some(&message::new_tag()));
                self.respond(&key, resp);
            }
            rsip::Method::Options if !has_to_tag || !self.calls.contains_key(&call_id) => {
                let resp = self.options_response(&req);
                self.respond(&key, resp);
            }
            rsip::Method::Register => {
                let load = self.load();
                if let Err(r) = self
                    .admission
                    .admit_register(source.ip(), load, Instant::now())
                {
                    self.refuse(&key, &req, r);
                    return;
                }
                let unix = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let (resp, change) =
                    self.registrar
                        .handle(&req, source, transport, Instant::now(), unix);
                self.respond(&key, resp);
                if let Some(change) = change {
                    self.ctx.acd.send(AcdCmd::Reachability(change));
                }
            }
            rsip::Method::Subscribe | rsip::Method::Publish | rsip::Method::Message
                if !has_to_tag =>
            {
                let mut resp = message::make_response(&req, 405, Some(&message::new_tag()));
                resp.headers.push(rsip::headers::Allow::new(ALLOW).into());
                self.respond(&key, resp);
            }
            _ => match self.calls.get(&call_id) {
                Some(tx) if has_to_tag => {
                    let _ = tx.send(SipInput::Request {
                        key,
                        request: Box::new(req),
                    });
                }
                _ => {
                    // In-dialog request for a dialog we do not know (or an
                    // out-of-dialog BYE/INFO): 481 (RFC 3261 §12.2.2).
                    let resp = message::make_response(&req, 481, Some(&message::new_tag()));
                    self.respond(&key, resp);
                }
            },
        }
    }

    /// `*11` login, `*12` logout, `*13` pause/unpause, dialed from an agent's
    /// own registered phone: apply it and return the confirmation prompt.
    /// The caller must be the agent (From user) *and* come from the address
    /// its REGISTER came from, so nobody else can change an agent's state.
    fn feature_code(&self, req: &rsip::Request, source: SocketAddr) -> Option<&'static str> {
        use ringback_acd::{AgentId, Input};
        let dialed = req.uri.auth.as_ref().map(|a| a.user.as_str())?;
        if !matches!(dialed, "*11" | "*12" | "*13") {
            return None;
        }
        let agent = req
            .from_header()
            .ok()
            .and_then(|h| h.typed().ok())
            .and_then(|f| f.uri.auth.map(|a| a.user))?;
        let binding = self.registrar.binding(&agent, Instant::now())?;
        if binding.source != source {
            tracing::warn!(%agent, %source, "feature code from an address the agent did not register from");
            return None;
        }
        let id = AgentId::from(agent.as_str());
        tracing::info!(%agent, code = dialed, "agent feature code");
        Some(match dialed {
            "*11" => {
                self.ctx.acd.input(Input::AgentLogin(id));
                "agent-logged-in"
            }
            "*12" => {
                self.ctx.acd.input(Input::AgentLogout(id));
                "agent-logged-out"
            }
            _ => {
                self.ctx.acd.send(AcdCmd::TogglePause { agent });
                "agent-paused-or-available"
            }
        })
    }

    /// Carrier DIDs (see [`did`]): when the number that selects the dialplan
    /// is not the Request-URI user (a trunk delivering `sip:trunkuser@…`
    /// with the DID in `To`, or `+1-555-0100` for a plan that answers
    /// `+15550100`), the INVITE's Request-URI user is set to that number
    /// before admission, so the dialplan lookup, the call's logs and the
    /// CDR's `dialed` column all carry the DID. With no plan answering
    /// either user the request is left alone (catch-all, or 404).
    fn select_did(&self, req: &mut rsip::Request, call_id: &str) {
        let snapshot = self.ctx.snapshot();
        // Fast path, the usual case: a plan lists the Request-URI user.
        if let Some(user) = req.uri.auth.as_ref().map(|a| a.user.as_str()) {
            let listed = |p: &ringback_dialplan::Dialplan| p.numbers.iter().any(|n| n == user);
            if user != "*" && snapshot.plans.for_number(user).is_some_and(|p| listed(&p)) {
                return;
            }
        }
        let numbers: Vec<&str> = snapshot
            .plans
            .plans()
            .flat_map(|p| p.numbers.iter().map(String::as_str))
            .collect();
        let ruri_user = req.uri.auth.as_ref().map(|a| a.user.clone());
        let to_user = message::header_value(req, "To")
            .and_then(|v| message::NameAddr::parse(&v))
            .and_then(|n| n.user().map(str::to_string));
        let Some(chosen) = did::select(
            numbers.iter().copied(),
            ruri_user.as_deref(),
            to_user.as_deref(),
        ) else {
            return;
        };
        if ruri_user.as_deref() == Some(chosen.number.as_str()) {
            return;
        }
        tracing::info!(
            %call_id,
            request_uri_user = ruri_user.as_deref().unwrap_or(""),
            to_user = to_user.as_deref().unwrap_or(""),
            number = %chosen.number,
            source = ?chosen.source,
            exact = chosen.exact,
            "dialplan selected by DID"
        );
        match req.uri.auth.as_mut() {
            Some(auth) => auth.user = chosen.number,
            None => {
                req.uri.auth = Some(rsip::Auth {
                    user: chosen.number,
                    password: None,
                })
            }
        }
    }

    fn options_response(&self, req: &rsip::Request) -> rsip::Response {
        // Final responses outside a dialog carry a To tag (RFC 3261 §8.2.6.2).
        let mut resp = message::make_response(req, 200, Some(&message::new_tag()));
        resp.headers.push(rsip::headers::Allow::new(ALLOW).into());
        resp.headers.push(
            rsip::headers::Accept::new("application/sdp, application/dtmf-relay, application/dtmf")
                .into(),
        );
        resp.headers.push(rsip::headers::Supported::new("").into());
        resp.headers
            .push(rsip::headers::Server::new(self.ctx.config.sip.user_agent.clone()).into());
        resp
    }

    /// Inbound calls: routed Call-IDs that are neither a leg (alias) nor a
    /// registered task (callback attempt, trunk registration).
    fn inbound_calls(&self) -> usize {
        self.calls
            .len()
            .saturating_sub(self.aliases.len() + self.tasks.len())
    }

    fn publish_counts(&self) {
        crate::metrics::active_calls(
            self.inbound_calls(),
            self.calls.len().saturating_sub(self.aliases.len()),
        );
    }

    /// What admission control weighs: calls, transactions, media lateness,
    /// signalling backlog.
    fn load(&mut self) -> Load {
        Load {
            calls: self.inbound_calls(),
            transactions: self.layer.len(),
            media_lag: self.ctx.media.recent_lag(),
            media_load_pct: self.ctx.media.recent_load_pct(),
            sip_delay: self.sip_delay.recent(Instant::now()),
        }
    }

    /// Answer an overload refusal: 503 with `Retry-After`, counted by reason.
    fn refuse(&mut self, key: &TransactionKey, req: &rsip::Request, r: Refusal) {
        if req.method == rsip::Method::Invite {
            crate::metrics::rejected(r.reason);
        } else {
            crate::metrics::refused(r.reason);
        }
        tracing::debug!(
            reason = r.reason,
            code = r.code,
            "request refused by admission control"
        );
        self.reject(key, req, r.code, Some(retry_after(r.retry_after)));
    }

    fn reject(
        &mut self,
        key: &TransactionKey,
        req: &rsip::Request,
        code: u16,
        extra: Option<rsip::Header>,
    ) {
        let mut resp = message::make_response(req, code, Some(&message::new_tag()));
        if let Some(h) = extra {
            resp.headers.push(h);
        }
        self.respond(key, resp);
    }

    fn new_call(
        &mut self,
        key: TransactionKey,
        req: rsip::Request,
        call_id: String,
        source: SocketAddr,
        transport: TransportKind,
    ) {
        if self.shutting_down {
            crate::metrics::rejected("shutting_down");
            self.reject(&key, &req, 503, Some(retry_after(5)));
            return;
        }
        let load = self.load();
        if let Err(r) = self.admission.admit_call(load, Instant::now()) {
            self.refuse(&key, &req, r);
            return;
        }
        let feature = self.feature_code(&req, source);
        let mut req = req;
        if feature.is_none() {
            self.select_did(&mut req, &call_id);
        }
        let admitted = match call::admit(&self.ctx, &req, feature) {
            Ok(a) => a,
            Err(rej) => {
                crate::metrics::rejected(rej.metric);
                tracing::info!(%call_id, code = rej.code, reason = %rej.reason, "INVITE rejected");
                let warning = rsip::Header::Other(
                    "Warning".into(),
                    format!("399 ringback \"{}\"", rej.reason),
                );
                self.reject(&key, &req, rej.code, Some(warning));
                return;
            }
        };
        let (tx, rx) = mpsc::unbounded_channel();
        self.calls.insert(call_id.clone(), tx);
        self.publish_counts();
        let setup = CallSetup {
            admitted,
            key,
            invite: req,
            call_id,
            source,
            transport,
            endpoint: self.handle.clone(),
        };
        tokio::spawn(call::run(Arc::clone(&self.ctx), setup, rx));
    }
}

#[cfg(test)]
mod tests {
    /// A call's SIP channel allocates 32 of these at a time: keep it small.
    #[test]
    fn sip_input_stays_small() {
        assert!(std::mem::size_of::<super::SipInput>() <= 128);
    }
}
