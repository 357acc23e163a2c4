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
    TimerConfig, TransactionKey, TransactionLayer, TransportKind, TuEvent,
};
use rsip::prelude::*;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

use crate::acd_task::{AcdCmd, AcdHandle};
use crate::admission::{Admission, WorstRecent};
use crate::allow::{self, AllowList};
use crate::config::Config;
use crate::media::MediaEngine;
use crate::registrar::Registrar;

mod did;
mod handle;
mod invite;
mod send;
mod setup;
mod tcp;
mod tls;

pub use handle::{EndpointCmd, EndpointHandle, SipInput, ALLOW};
use invite::InboundCalls;
pub use invite::{CallRefused, CallStarter, NewCall};
pub use setup::bind;
use setup::{agent_algorithms, agent_secrets, queued_for};
use tcp::{Conn, TcpEvent};
pub use tls::{TlsClients, TlsServer};

/// What the endpoint needs from the rest of the server, handed over at
/// start-up (it reaches nothing else).
pub struct EndpointDeps {
    /// Configuration (`[sip]`, `[limits]`, agents' secrets).
    pub config: Arc<Config>,
    /// Agent logins, pauses and reachability go to the ACD.
    pub acd: AcdHandle,
    /// Media lateness and load weigh in admission control.
    pub media: Arc<MediaEngine>,
    /// Places the calls it admits.
    pub calls: Arc<dyn CallStarter>,
}

/// Commands waiting for the endpoint task (the receiving side of every
/// [`EndpointHandle`]).
pub struct EndpointInbox(UnboundedReceiver<EndpointCmd>);

/// The endpoint's handle, before its task runs: tasks started earlier
/// (the callback service, trunk registrations) can hold it from the start.
pub fn channel(local: SocketAddr, tls_port: Option<u16>) -> (EndpointHandle, EndpointInbox) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        EndpointHandle {
            tx,
            local,
            tls_port,
        },
        EndpointInbox(rx),
    )
}

/// Datagrams read per wake-up of the endpoint task before it flushes.
const UDP_BURST: usize = 64;

/// A message refused before it reached the transaction layer.
enum Rejected {
    /// Larger than `sip.max_message_bytes` (513).
    TooLarge(String),
    /// [`message::parse`] refused it; the error says how to answer.
    Unparseable(message::ParseError),
}

/// The sockets the endpoint serves, bound before it starts.
pub struct Listeners {
    /// SIP over UDP.
    pub udp: UdpSocket,
    /// SIP over TCP, on the UDP port (`sip.tcp`).
    pub tcp: Option<TcpListener>,
    /// SIP over TLS (`sip.tls_listen`) and its certificate.
    pub tls: Option<(TcpListener, Arc<TlsServer>)>,
}

/// Start the endpoint task.
pub fn spawn(
    deps: EndpointDeps,
    listeners: Listeners,
    handle: EndpointHandle,
    inbox: EndpointInbox,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let (tcp_tx, tcp_rx) = mpsc::channel(tcp::EVENT_QUEUE);
    let config = Arc::clone(&deps.config);
    let tcp_limits = tcp::TcpLimits::from_config(&config);
    let Listeners { udp, tcp, tls } = listeners;
    if let Some(listener) = tcp {
        tokio::spawn(tcp::accept_loop(listener, tcp_tx.clone(), tcp_limits, None));
    }
    if let Some((listener, server)) = tls {
        tokio::spawn(tcp::accept_loop(
            listener,
            tcp_tx.clone(),
            tcp_limits,
            Some(server),
        ));
    }
    let tls_clients = TlsClients::from_config(&config)?;
    let offered = config
        .sip
        .auth_algorithms
        .iter()
        .filter_map(|a| ringback_sip::auth::Algorithm::parse(a))
        .collect();
    let registrar = Registrar::new(&config.sip.realm, agent_secrets(&config), offered)
        .with_agent_algorithms(agent_algorithms(&config));
    // Config::validate has checked it already; this cannot fail after that.
    let allow = AllowList::parse(&config.sip.allow_from).map_err(anyhow::Error::msg)?;
    if !allow.is_empty() {
        tracing::info!(networks = ?config.sip.allow_from, "INVITE/REGISTER only from sip.allow_from");
    }
    let ep = Endpoint {
        registrar,
        allow,
        deps,
        handle,
        udp,
        layer: TransactionLayer::new(TimerConfig::default()),
        calls: HashMap::new(),
        aliases: HashMap::new(),
        tasks: std::collections::HashSet::new(),
        inbound: InboundCalls::default(),
        owners: HashMap::new(),
        tcp_conns: HashMap::new(),
        tls_clients,
        tcp_events: tcp_tx,
        tcp_limits,
        shutting_down: false,
        admission: Admission::new(config.limits.clone(), Instant::now()),
        sip_delay: WorstRecent::default(),
    };
    // Turn on arrival timestamps (the first SIOCGSTAMPNS does).
    let _ = queued_for(&ep.udp);
    let join = tokio::spawn(ep.run(inbox.0, tcp_rx));
    Ok(join)
}

struct Endpoint {
    deps: EndpointDeps,
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
    /// Inbound calls (admission counts them, the gauge shows them).
    inbound: InboundCalls,
    /// Client transactions by owner Call-ID.
    owners: HashMap<TransactionKey, String>,
    /// Open TCP and TLS connections (accepted and our own), by peer and
    /// transport: replies and in-dialog requests reuse them (RFC 5626 §5).
    tcp_conns: HashMap<Conn, mpsc::Sender<Vec<u8>>>,
    /// Whom to expect at the far end of TLS connections we open.
    tls_clients: TlsClients,
    /// Where connections we open report, like accepted ones.
    tcp_events: mpsc::Sender<TcpEvent>,
    tcp_limits: tcp::TcpLimits,
    shutting_down: bool,
    registrar: Registrar,
    /// `sip.allow_from`: who may start calls and registrations.
    allow: AllowList,
    admission: Admission,
    /// Worst receive-queue wait of SIP datagrams, recently.
    sip_delay: WorstRecent,
}

impl Endpoint {
    async fn run(
        mut self,
        mut cmds: UnboundedReceiver<EndpointCmd>,
        mut tcp_rx: mpsc::Receiver<TcpEvent>,
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
                        self.deps.acd.send(AcdCmd::Reachability(change));
                    }
                }
            }
            self.flush().await;
        }
    }

    fn on_tcp(&mut self, ev: TcpEvent) {
        match ev {
            TcpEvent::Opened { conn, writer } => {
                // An outgoing connection is in the map since it was asked for.
                self.tcp_conns.entry(conn).or_insert(writer);
            }
            TcpEvent::Closed { conn } => {
                self.tcp_conns.remove(&conn);
                // Requests waiting for an answer over it will get none.
                self.layer.connection_closed(conn.peer, conn.transport);
            }
            TcpEvent::Message { conn, bytes } => self.on_bytes(&bytes, conn.peer, conn.transport),
        }
    }

    fn on_bytes(&mut self, bytes: &[u8], src: SocketAddr, transport: TransportKind) {
        if bytes.iter().all(|b| matches!(b, b'\r' | b'\n' | 0)) {
            return; // keep-alive
        }
        if self.refused_unparsed(bytes, src, transport) {
            return;
        }
        let size_limit = self.deps.config.sip.max_message_bytes;
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
                self.inbound.remove(&call_id);
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
            EndpointCmd::Routed { call_ids, reply } => {
                let _ = reply.send(
                    call_ids
                        .iter()
                        .map(|c| self.calls.get(c).is_some_and(|tx| !tx.is_closed()))
                        .collect(),
                );
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
                    self.deps.acd.send(AcdCmd::Reachability(change));
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

    fn options_response(&self, req: &rsip::Request) -> rsip::Response {
        // Final responses outside a dialog carry a To tag (RFC 3261 §8.2.6.2).
        // A draining node answers 503: the proxy's keep-alive probe then
        // takes it out of rotation (src/drain.rs).
        let code = if crate::drain::is_draining() {
            503
        } else {
            200
        };
        let mut resp = message::make_response(req, code, Some(&message::new_tag()));
        resp.headers.push(rsip::headers::Allow::new(ALLOW).into());
        resp.headers.push(
            rsip::headers::Accept::new("application/sdp, application/dtmf-relay, application/dtmf")
                .into(),
        );
        resp.headers.push(rsip::headers::Supported::new("").into());
        resp.headers
            .push(rsip::headers::Server::new(self.deps.config.sip.user_agent.clone()).into());
        resp
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
