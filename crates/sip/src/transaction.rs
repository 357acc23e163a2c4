//! RFC 3261 §17 transactions as a sans-IO state machine (with the RFC 6026 fixes).
//!
//! The layer owns no socket and reads no clock: the shell feeds it parsed messages
//! ([`TransactionLayer::handle_incoming`]), the TU's answers ([`TransactionLayer::respond`],
//! [`TransactionLayer::send_request`], [`TransactionLayer::cancel`]) and the current time, then
//! drains [`TransactionLayer::poll_transmit`] and [`TransactionLayer::poll_event`] and sleeps
//! until [`TransactionLayer::poll_timeout`]. This keeps every timer of the RFC testable with a
//! synthetic clock and lets one task serve tens of thousands of transactions.
//!
//! Timers live in one binary heap with lazy deletion: arming a timer pushes `(deadline, id,
//! kind)`, and the transaction remembers the deadline it expects per timer kind; a popped entry
//! that no longer matches is stale and ignored. Cost is `O(log n)` per arm/fire, never a scan.
//!
//! Choices worth knowing:
//! * The INVITE server transaction sends `100 Trying` itself if the TU has not sent any
//!   response within 200 ms (RFC 3261 §17.2.1), which stops UAC retransmissions without
//!   costing a packet when the TU answers at once. Non-INVITE server transactions never send
//!   `100` on their own.
//! * A 2xx to INVITE moves the server transaction to RFC 6026 "Accepted": the layer (not the
//!   TU) retransmits the 2xx over UDP at T1, 2·T1, … capped at T2 until an ACK with the same
//!   `Call-ID` and `CSeq` number arrives (RFC 3261 §13.3.1.4), absorbs INVITE retransmissions,
//!   and reports [`TuEvent::AckTimeout`] when no ACK came within 64·T1 (Timer L).
//! * A client INVITE transaction also has an RFC 6026 "Accepted" state (Timer M = 64·T1) in
//!   which retransmitted or forked 2xx responses are passed to the TU, which must (re-)ACK
//!   them with [`TransactionLayer::send_stateless`].
//! * Every request received is stamped with `received`/`rport` ([`stamp_received`]) before the
//!   TU sees it, so responses built with [`crate::message::make_response`] route correctly.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rsip::headers::UntypedHeader;
use rsip::{Header, Method, Request, Response, SipMessage};

use crate::message::{
    self, all_via_values, make_response, new_branch, new_tag, stamp_received, top_via,
};

/// RFC 3261 §17.1.1.1 timer base values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate; base of retransmission intervals and of the 64·T1 timeouts (default 500 ms).
    pub t1: Duration,
    /// Maximum retransmission interval for non-INVITE requests and INVITE responses (4 s).
    pub t2: Duration,
    /// Maximum time a message stays in the network (5 s); wait time of timers I and K.
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerConfig {
    fn t64(&self) -> Duration {
        self.t1 * 64
    }
}

/// Transport a message travels on. Only reliability matters to the transaction layer: on a
/// reliable transport nothing is retransmitted and the "wait for retransmissions" timers are 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// Datagrams: retransmissions are ours to do.
    Udp,
    /// Stream: the transport is reliable.
    Tcp,
    /// A stream inside TLS (RFC 3261 §26.2.1, `sips:` / `transport=tls`):
    /// reliable like TCP, and never downgraded to a clear-text transport.
    Tls,
}

impl TransportKind {
    /// Whether the transport is reliable (RFC 3261 §17.1.1.2 and friends).
    pub fn reliable(self) -> bool {
        matches!(self, TransportKind::Tcp | TransportKind::Tls)
    }

    /// Name used in the `Via` sent-protocol.
    pub fn via_name(self) -> &'static str {
        match self {
            TransportKind::Udp => "UDP",
            TransportKind::Tcp => "TCP",
            TransportKind::Tls => "TLS",
        }
    }
}

/// Identifies a transaction (RFC 3261 §17.1.3 for client, §17.2.3 for server transactions).
///
/// Server keys are `branch + sent-by + method` with ACK mapped to INVITE; CANCEL is its own
/// transaction. Client keys are `branch + CSeq method` (sent-by is left empty: the response
/// carries our own Via back, so the branch suffices).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionKey {
    server: bool,
    branch: String,
    sent_by: String,
    method: Method,
}

impl Hash for TransactionKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.server.hash(state);
        self.branch.hash(state);
        self.sent_by.hash(state);
        std::mem::discriminant(&self.method).hash(state);
    }
}

impl TransactionKey {
    /// Branch parameter of the transaction.
    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// Method of the transaction (INVITE for an INVITE's ACK).
    pub fn method(&self) -> Method {
        self.method
    }

    /// Whether this is a server (UAS) transaction.
    pub fn is_server(&self) -> bool {
        self.server
    }

    /// Key of the server transaction a received request belongs to.
    pub fn for_server_request(req: &Request) -> Option<TransactionKey> {
        let via = top_via(req)?;
        let branch = via.branch?;
        let method = match req.method {
            Method::Ack => Method::Invite,
            m => m,
        };
        let sent_by = match via.sent_by_port {
            Some(p) => format!("{}:{p}", via.sent_by_host.to_ascii_lowercase()),
            None => via.sent_by_host.to_ascii_lowercase(),
        };
        Some(TransactionKey {
            server: true,
            branch,
            sent_by,
            method,
        })
    }

    /// Key of the client transaction an outgoing request creates.
    pub fn for_client_request(req: &Request) -> Option<TransactionKey> {
        let branch = top_via(req)?.branch?;
        Some(TransactionKey {
            server: false,
            branch,
            sent_by: String::new(),
            method: req.method,
        })
    }

    /// Key of the client transaction a received response belongs to.
    pub fn for_response(resp: &Response) -> Option<TransactionKey> {
        let branch = top_via(resp)?.branch?;
        let (_, method) = message::cseq(resp)?;
        Some(TransactionKey {
            server: false,
            branch,
            sent_by: String::new(),
            method,
        })
    }

    fn with_method(&self, method: Method) -> TransactionKey {
        TransactionKey {
            method,
            ..self.clone()
        }
    }
}

/// A message the shell must put on the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct Transmit {
    /// Destination address (for server transactions on TCP: the connection's peer).
    pub dest: SocketAddr,
    /// Transport to use.
    pub transport: TransportKind,
    /// The message; serialize with [`crate::message::to_bytes`].
    pub message: SipMessage,
}

/// What the transaction layer tells the TU.
#[derive(Debug, Clone, PartialEq)]
pub enum TuEvent {
    /// A new server transaction's request (INVITE, BYE, OPTIONS, INFO, REGISTER, …). Answer it
    /// with [`TransactionLayer::respond`]. A CANCEL that matches no INVITE transaction arrives
    /// here too: answer it `481`.
    Request {
        /// Server transaction key to answer on.
        key: TransactionKey,
        /// The request, `Via` already stamped with `received`/`rport`.
        request: Request,
        /// Source address of the packet / connection.
        source: SocketAddr,
        /// Transport it arrived on.
        transport: TransportKind,
    },
    /// CANCEL matching a live INVITE server transaction: the layer has ALREADY answered the
    /// CANCEL with 200; the TU must answer the INVITE with 487 (if it has not sent a final
    /// response yet).
    Cancelled {
        /// The INVITE server transaction.
        invite: TransactionKey,
        /// The CANCEL request.
        cancel: Request,
    },
    /// ACK for a 2xx (end-to-end; not part of any transaction) — for the dialog layer. Reported
    /// once per accepted INVITE; ACKs matching no transaction are reported every time.
    Ack {
        /// The ACK.
        request: Request,
        /// Where it came from.
        source: SocketAddr,
    },
    /// A response for one of our client transactions (provisional and final; for INVITE
    /// client, retransmitted or forked 2xx too so the TU re-ACKs).
    Response {
        /// Client transaction key.
        key: TransactionKey,
        /// The response.
        response: Response,
    },
    /// Client transaction timed out (Timer B / F, 64·T1 after a CANCEL) or transport error:
    /// treat as 408.
    Timeout {
        /// Client transaction key.
        key: TransactionKey,
    },
    /// We sent a 2xx to an INVITE and no ACK came within 64·T1 (RFC 3261 §13.3.1.4): the TU
    /// should send BYE.
    AckTimeout {
        /// Call-ID of the INVITE.
        call_id: String,
    },
    /// The transaction is gone; forget any state keyed by it.
    Terminated {
        /// Transaction key.
        key: TransactionKey,
    },
}

/// Errors of [`TransactionLayer::respond`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// No live transaction has this key (it may have timed out).
    #[error("no such transaction")]
    UnknownTransaction,
    /// The key names a client transaction.
    #[error("not a server transaction")]
    NotServer,
    /// A final response was already sent (only further 2xx to INVITE are allowed).
    #[error("a final response was already sent")]
    FinalAlreadySent,
    /// Status code outside 100–699.
    #[error("invalid status code {0}")]
    InvalidStatus(u16),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    InviteClient,
    NonInviteClient,
    InviteServer,
    NonInviteServer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Calling,
    Trying,
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
    Terminated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// INVITE client retransmission.
    A,
    /// INVITE client transaction timeout.
    B,
    /// INVITE client wait for response retransmissions.
    D,
    /// Non-INVITE client retransmission.
    E,
    /// Non-INVITE client transaction timeout.
    F,
    /// Non-INVITE client wait for response retransmissions.
    K,
    /// INVITE server final response retransmission.
    G,
    /// INVITE server wait for ACK.
    H,
    /// INVITE server wait for ACK retransmissions.
    I,
    /// Non-INVITE server wait for request retransmissions.
    J,
    /// RFC 6026 INVITE server Accepted state lifetime (= ACK timeout).
    L,
    /// RFC 6026 INVITE client Accepted state lifetime.
    M,
    /// 2xx retransmission (RFC 3261 §13.3.1.4) while Accepted.
    Retransmit2xx,
    /// Automatic 100 Trying.
    Trying100,
    /// 64·T1 after we sent CANCEL (RFC 3261 §9.1).
    CancelGuard,
}

const TIMER_COUNT: usize = 15;
const TRYING_DELAY: Duration = Duration::from_millis(200);

impl Timer {
    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug)]
struct Tx {
    key: TransactionKey,
    kind: Kind,
    state: State,
    request: Request,
    peer: SocketAddr,
    transport: TransportKind,
    last_response: Option<Response>,
    ack: Option<Request>,
    interval: Duration,
    deadlines: [Option<Instant>; TIMER_COUNT],
    acked: bool,
    accepted_key: Option<(String, u32)>,
    cancel_sent: bool,
}

#[derive(Debug, Default)]
struct Io {
    transmits: VecDeque<Transmit>,
    events: VecDeque<TuEvent>,
    timers: BinaryHeap<Reverse<(Instant, u64, u64, Timer)>>,
    seq: u64,
}

impl Io {
    fn send(&mut self, tx: &Tx, message: SipMessage) {
        self.transmits.push_back(Transmit {
            dest: tx.peer,
            transport: tx.transport,
            message,
        });
    }

    fn arm(&mut self, id: u64, tx: &mut Tx, timer: Timer, at: Instant) {
        if let Some(slot) = tx.deadlines.get_mut(timer.index()) {
            *slot = Some(at);
        }
        self.seq += 1;
        self.timers.push(Reverse((at, self.seq, id, timer)));
    }

    fn cancel(tx: &mut Tx, timer: Timer) {
        if let Some(slot) = tx.deadlines.get_mut(timer.index()) {
            *slot = None;
        }
    }
}

/// All transactions of one SIP endpoint. See the module documentation.
#[derive(Debug)]
pub struct TransactionLayer {
    cfg: TimerConfig,
    txs: HashMap<u64, Tx>,
    by_key: HashMap<TransactionKey, u64>,
    /// (Call-ID, CSeq number) of INVITE server transactions in Accepted, for 2xx ACK matching.
    accepted: HashMap<(String, u32), u64>,
    next_id: u64,
    io: Io,
}

impl TransactionLayer {
    /// A layer with the given timer values.
    pub fn new(cfg: TimerConfig) -> Self {
        TransactionLayer {
            cfg,
            txs: HashMap::new(),
            by_key: HashMap::new(),
            accepted: HashMap::new(),
            next_id: 1,
            io: Io::default(),
        }
    }

    /// Number of live transactions (for limits and metrics).
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// Whether there is no live transaction.
    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    /// Whether a transaction with this key is alive.
    pub fn contains(&self, key: &TransactionKey) -> bool {
        self.by_key.contains_key(key)
    }

    /// The request that created a live transaction (useful to build a late response).
    pub fn request(&self, key: &TransactionKey) -> Option<&Request> {
        let id = self.by_key.get(key)?;
        self.txs.get(id).map(|t| &t.request)
    }

    /// Next message to put on the wire.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.io.transmits.pop_front()
    }

    /// Next event for the TU.
    pub fn poll_event(&mut self) -> Option<TuEvent> {
        self.io.events.pop_front()
    }

    /// Earliest timer deadline (may be a cancelled timer's; firing it early is harmless).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.io.timers.peek().map(|Reverse((at, ..))| *at)
    }

    fn new_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Drop cancelled timer entries at the top of the heap so `poll_timeout` stays accurate.
    fn prune(&mut self) {
        while let Some(Reverse((at, _, id, timer))) = self.io.timers.peek() {
            let live = self
                .txs
                .get(id)
                .and_then(|t| t.deadlines.get(timer.index()).copied().flatten())
                == Some(*at);
            if live {
                break;
            }
            self.io.timers.pop();
        }
    }

    /// Remove a transaction that reached Terminated and tell the TU.
    fn reap(&mut self, id: u64) {
        let terminated = self
            .txs
            .get(&id)
            .is_some_and(|t| t.state == State::Terminated);
        if !terminated {
            return;
        }
        if let Some(tx) = self.txs.remove(&id) {
            if self.by_key.get(&tx.key) == Some(&id) {
                self.by_key.remove(&tx.key);
            }
            if let Some(k) = &tx.accepted_key {
                if self.accepted.get(k) == Some(&id) {
                    self.accepted.remove(k);
                }
            }
            self.io
                .events
                .push_back(TuEvent::Terminated { key: tx.key });
        }
    }

    /// Feed a parsed message that arrived (request or response). Retransmitted requests are
    /// absorbed (last response re-sent); stray responses dropped; ACK for non-2xx absorbed by
    /// the INVITE server transaction (Completed→Confirmed).
    pub fn handle_incoming(
        &mut self,
        msg: SipMessage,
        source: SocketAddr,
        transport: TransportKind,
        now: Instant,
    ) {
        match msg {
            SipMessage::Request(mut req) => {
                stamp_received(&mut req, source);
                if req.method == Method::Ack {
                    self.on_ack(req, source, now);
                } else {
                    self.on_request(req, source, transport, now);
                }
            }
            SipMessage::Response(resp) => self.on_response(resp, now),
        }
        self.prune();
    }

    fn on_request(
        &mut self,
        req: Request,
        source: SocketAddr,
        transport: TransportKind,
        now: Instant,
    ) {
        let Some(key) = TransactionKey::for_server_request(&req) else {
            tracing::debug!("request without usable Via branch dropped");
            return;
        };
        if let Some(&id) = self.by_key.get(&key) {
            self.on_retransmitted_request(id);
            return;
        }
        let peer = if transport.reliable() {
            source
        } else {
            match top_via(&req) {
                Some(via) => message::response_destination(&via, source),
                None => source,
            }
        };
        let id = self.new_id();
        let kind = if req.method == Method::Invite {
            Kind::InviteServer
        } else {
            Kind::NonInviteServer
        };
        let mut tx = Tx {
            key: key.clone(),
            kind,
            state: if kind == Kind::InviteServer {
                State::Proceeding
            } else {
                State::Trying
            },
            request: req.clone(),
            peer,
            transport,
            last_response: None,
            ack: None,
            interval: self.cfg.t1,
            deadlines: [None; TIMER_COUNT],
            acked: false,
            accepted_key: None,
            cancel_sent: false,
        };
        if kind == Kind::InviteServer {
            self.io
                .arm(id, &mut tx, Timer::Trying100, now + TRYING_DELAY);
        }
        self.txs.insert(id, tx);
        self.by_key.insert(key.clone(), id);

        if req.method == Method::Cancel {
            let invite_key = key.with_method(Method::Invite);
            if let Some(&invite_id) = self.by_key.get(&invite_key) {
                self.on_cancel(id, invite_id, req, now);
                return;
            }
        }
        self.io.events.push_back(TuEvent::Request {
            key,
            request: req,
            source,
            transport,
        });
    }

    fn on_cancel(&mut self, cancel_id: u64, invite_id: u64, cancel: Request, now: Instant) {
        let Some(invite) = self.txs.get(&invite_id) else {
            return;
        };
        let pending = invite.kind == Kind::InviteServer && invite.state == State::Proceeding;
        let tag = invite
            .last_response
            .as_ref()
            .and_then(message::to_tag)
            .unwrap_or_else(new_tag);
        let invite_key = invite.key.clone();
        let Some(cancel_key) = self.txs.get(&cancel_id).map(|t| t.key.clone()) else {
            return;
        };
        let ok = make_response(&cancel, 200, Some(&tag));
        // Infallible here: the CANCEL transaction was just created in Trying.
        if let Err(e) = self.respond(&cancel_key, ok, now) {
            tracing::warn!(error = %e, "could not answer CANCEL");
        }
        if pending {
            self.io.events.push_back(TuEvent::Cancelled {
                invite: invite_key,
                cancel,
            });
        }
    }

    fn on_retransmitted_request(&mut self, id: u64) {
        let Some(tx) = self.txs.get(&id) else { return };
        let resend = match (tx.kind, tx.state) {
            (Kind::InviteServer, State::Proceeding)
            | (Kind::NonInviteServer, State::Proceeding)
            | (Kind::InviteServer, State::Completed)
            | (Kind::NonInviteServer, State::Completed) => tx.last_response.clone(),
            _ => None,
        };
        if let Some(resp) = resend {
            self.io.send(tx, resp.into());
        }
    }

    fn on_ack(&mut self, req: Request, source: SocketAddr, now: Instant) {
        // 1. ACK for a non-2xx final response: same branch as the INVITE.
        if let Some(key) = TransactionKey::for_server_request(&req) {
            if let Some(&id) = self.by_key.get(&key) {
                let cfg = self.cfg;
                if let Some(tx) = self.txs.get_mut(&id) {
                    match tx.state {
                        State::Completed => {
                            Io::cancel(tx, Timer::G);
                            Io::cancel(tx, Timer::H);
                            if tx.transport.reliable() {
                                tx.state = State::Terminated;
                            } else {
                                tx.state = State::Confirmed;
                                self.io.arm(id, tx, Timer::I, now + cfg.t4);
                            }
                            self.reap(id);
                            return;
                        }
                        State::Confirmed | State::Proceeding => return,
                        _ => {} // Accepted: a UA reusing the INVITE branch for the 2xx ACK.
                    }
                }
            }
        }
        // 2. ACK for a 2xx we are retransmitting: matched by Call-ID and CSeq number.
        let ck = message::call_id(&req).zip(message::cseq(&req).map(|(n, _)| n));
        if let Some(&id) = ck.as_ref().and_then(|k| self.accepted.get(k)) {
            if let Some(tx) = self.txs.get_mut(&id) {
                if tx.acked {
                    return;
                }
                tx.acked = true;
                Io::cancel(tx, Timer::Retransmit2xx);
            }
        }
        self.io.events.push_back(TuEvent::Ack {
            request: req,
            source,
        });
    }

    fn on_response(&mut self, resp: Response, now: Instant) {
        let Some(key) = TransactionKey::for_response(&resp) else {
            tracing::debug!("response without usable Via/CSeq dropped");
            return;
        };
        let Some(&id) = self.by_key.get(&key) else {
            tracing::debug!(branch = key.branch(), "stray response dropped");
            return;
        };
        let cfg = self.cfg;
        let code = resp.status_code.code();
        let Some(tx) = self.txs.get_mut(&id) else {
            return;
        };
        match tx.kind {
            Kind::InviteClient => match (code, tx.state) {
                (100..=199, State::Calling | State::Proceeding) => {
                    tx.state = State::Proceeding;
                    Io::cancel(tx, Timer::A);
                    Io::cancel(tx, Timer::B);
                    self.io.events.push_back(TuEvent::Response {
                        key,
                        response: resp,
                    });
                }
                (200..=299, State::Calling | State::Proceeding) => {
                    tx.state = State::Accepted;
                    Io::cancel(tx, Timer::A);
                    Io::cancel(tx, Timer::B);
                    Io::cancel(tx, Timer::CancelGuard);
                    self.io.arm(id, tx, Timer::M, now + cfg.t64());
                    self.io.events.push_back(TuEvent::Response {
                        key,
                        response: resp,
                    });
                }
                (200..=299, State::Accepted) => {
                    self.io.events.push_back(TuEvent::Response {
                        key,
                        response: resp,
                    });
                }
                (300..=699, State::Calling | State::Proceeding) => {
                    let ack = build_ack(&tx.request, &resp);
                    self.io.send(tx, ack.clone().into());
                    tx.ack = Some(ack);
                    Io::cancel(tx, Timer::A);
                    Io::cancel(tx, Timer::B);
                    Io::cancel(tx, Timer::CancelGuard);
                    if tx.transport.reliable() {
                        tx.state = State::Terminated;
                    } else {
                        tx.state = State::Completed;
                        self.io.arm(id, tx, Timer::D, now + Duration::from_secs(32));
                    }
                    self.io.events.push_back(TuEvent::Response {
                        key,
                        response: resp,
                    });
                }
                (300..=699, State::Completed) => {
                    if let Some(ack) = tx.ack.clone() {
                        self.io.send(tx, ack.into());
                    }
                }
                _ => {}
            },
            Kind::NonInviteClient => match (code, tx.state) {
                (100..=199, State::Trying | State::Proceeding) => {
                    tx.state = State::Proceeding;
                    self.io.events.push_back(TuEvent::Response {
                        key,
                        response: resp,
                    });
                }
                (200..=699, State::Trying | State::Proceeding) => {
                    Io::cancel(tx, Timer::E);
                    Io::cancel(tx, Timer::F);
                    if tx.transport.reliable() {
                        tx.state = State::Terminated;
                    } else {
                        tx.state = State::Completed;
                        self.io.arm(id, tx, Timer::K, now + cfg.t4);
                    }
                    self.io.events.push_back(TuEvent::Response {
                        key,
                        response: resp,
                    });
                }
                _ => {}
            },
            Kind::InviteServer | Kind::NonInviteServer => {}
        }
        self.reap(id);
    }

    /// TU answers a server transaction. A 1xx/2xx/3xx–6xx drives the state machine; for a 2xx
    /// to INVITE the layer (RFC 6026 Accepted state) retransmits the 2xx at T1, 2T1…T2 over UDP
    /// until an ACK with the same Call-ID and CSeq number arrives, absorbs INVITE
    /// retransmissions, and emits [`TuEvent::AckTimeout`] after 64·T1. Further 2xx (e.g. with a
    /// different body) may be sent while Accepted; anything else after a final is an error.
    pub fn respond(
        &mut self,
        key: &TransactionKey,
        response: Response,
        now: Instant,
    ) -> Result<(), TxError> {
        let id = *self.by_key.get(key).ok_or(TxError::UnknownTransaction)?;
        let cfg = self.cfg;
        let tx = self.txs.get_mut(&id).ok_or(TxError::UnknownTransaction)?;
        if !matches!(tx.kind, Kind::InviteServer | Kind::NonInviteServer) {
            return Err(TxError::NotServer);
        }
        let code = response.status_code.code();
        if !(100..=699).contains(&code) {
            return Err(TxError::InvalidStatus(code));
        }
        let reliable = tx.transport.reliable();
        match tx.kind {
            Kind::InviteServer => match (tx.state, code) {
                (State::Proceeding, 100..=199) => {
                    Io::cancel(tx, Timer::Trying100);
                    self.io.send(tx, response.clone().into());
                    tx.last_response = Some(response);
                }
                (State::Proceeding, 200..=299) => {
                    Io::cancel(tx, Timer::Trying100);
                    self.io.send(tx, response.clone().into());
                    tx.last_response = Some(response);
                    tx.state = State::Accepted;
                    tx.interval = cfg.t1;
                    if !reliable {
                        self.io.arm(id, tx, Timer::Retransmit2xx, now + cfg.t1);
                    }
                    self.io.arm(id, tx, Timer::L, now + cfg.t64());
                    let ck = message::call_id(&tx.request)
                        .zip(message::cseq(&tx.request).map(|(n, _)| n));
                    if let Some(ck) = ck {
                        tx.accepted_key = Some(ck.clone());
                        self.accepted.insert(ck, id);
                    }
                }
                (State::Proceeding, _) => {
                    Io::cancel(tx, Timer::Trying100);
                    self.io.send(tx, response.clone().into());
                    tx.last_response = Some(response);
                    tx.state = State::Completed;
                    tx.interval = cfg.t1;
                    if !reliable {
                        self.io.arm(id, tx, Timer::G, now + cfg.t1);
                    }
                    self.io.arm(id, tx, Timer::H, now + cfg.t64());
                }
                (State::Accepted, 200..=299) => {
                    self.io.send(tx, response.clone().into());
                    tx.last_response = Some(response);
                }
                _ => return Err(TxError::FinalAlreadySent),
            },
            Kind::NonInviteServer => match (tx.state, code) {
                (State::Trying | State::Proceeding, 100..=199) => {
                    self.io.send(tx, response.clone().into());
                    tx.last_response = Some(response);
                    tx.state = State::Proceeding;
                }
                (State::Trying | State::Proceeding, _) => {
                    self.io.send(tx, response.clone().into());
                    tx.last_response = Some(response);
                    if reliable {
                        tx.state = State::Terminated;
                    } else {
                        tx.state = State::Completed;
                        self.io.arm(id, tx, Timer::J, now + cfg.t64());
                    }
                }
                _ => return Err(TxError::FinalAlreadySent),
            },
            _ => return Err(TxError::NotServer),
        }
        self.reap(id);
        self.prune();
        Ok(())
    }

    /// Start a client transaction (INVITE or non-INVITE) and send the request.
    ///
    /// The request must already carry a `Via` with a fresh branch
    /// ([`crate::message::add_via`]); if its top `Via` has no branch one is appended, and if it
    /// has no `Via` at all a placeholder `Via` is added and a warning logged. An ACK is not a
    /// transaction: it is sent statelessly and its (untracked) key returned. Reusing the key of
    /// a live transaction replaces it.
    pub fn send_request(
        &mut self,
        mut request: Request,
        dest: SocketAddr,
        transport: TransportKind,
        now: Instant,
    ) -> TransactionKey {
        ensure_branch(&mut request, transport);
        let key = TransactionKey::for_client_request(&request).unwrap_or_else(|| TransactionKey {
            server: false,
            branch: new_branch(),
            sent_by: String::new(),
            method: request.method,
        });
        if request.method == Method::Ack {
            self.send_stateless(request.into(), dest, transport);
            return key;
        }
        if let Some(old) = self.by_key.remove(&key) {
            tracing::warn!(
                branch = key.branch(),
                "branch reused; replacing transaction"
            );
            self.txs.remove(&old);
        }
        let cfg = self.cfg;
        let id = self.new_id();
        let invite = request.method == Method::Invite;
        let mut tx = Tx {
            key: key.clone(),
            kind: if invite {
                Kind::InviteClient
            } else {
                Kind::NonInviteClient
            },
            state: if invite {
                State::Calling
            } else {
                State::Trying
            },
            request,
            peer: dest,
            transport,
            last_response: None,
            ack: None,
            interval: cfg.t1,
            deadlines: [None; TIMER_COUNT],
            acked: false,
            accepted_key: None,
            cancel_sent: false,
        };
        self.io.send(&tx, tx.request.clone().into());
        if invite {
            if !transport.reliable() {
                self.io.arm(id, &mut tx, Timer::A, now + cfg.t1);
            }
            self.io.arm(id, &mut tx, Timer::B, now + cfg.t64());
        } else {
            if !transport.reliable() {
                self.io.arm(id, &mut tx, Timer::E, now + cfg.t1);
            }
            self.io.arm(id, &mut tx, Timer::F, now + cfg.t64());
        }
        self.txs.insert(id, tx);
        self.by_key.insert(key.clone(), id);
        self.prune();
        key
    }

    /// Send a message outside any transaction (ACK for a 2xx, stateless responses).
    pub fn send_stateless(&mut self, msg: SipMessage, dest: SocketAddr, transport: TransportKind) {
        self.io.transmits.push_back(Transmit {
            dest,
            transport,
            message: msg,
        });
    }

    /// Build and send CANCEL for a pending INVITE client transaction, returning the CANCEL's
    /// key. Per RFC 3261 §9.1 this only works once a provisional response was received (`None`
    /// before that, after a final response, or if a CANCEL was already sent): CANCEL before a
    /// provisional could overtake the INVITE. If no final response follows within 64·T1, the
    /// INVITE transaction ends with [`TuEvent::Timeout`].
    pub fn cancel(&mut self, invite: &TransactionKey, now: Instant) -> Option<TransactionKey> {
        let id = *self.by_key.get(invite)?;
        let cfg = self.cfg;
        let tx = self.txs.get_mut(&id)?;
        if tx.kind != Kind::InviteClient || tx.state != State::Proceeding || tx.cancel_sent {
            return None;
        }
        tx.cancel_sent = true;
        let cancel = build_cancel(&tx.request);
        let (dest, transport) = (tx.peer, tx.transport);
        self.io.arm(id, tx, Timer::CancelGuard, now + cfg.t64());
        Some(self.send_request(cancel, dest, transport, now))
    }

    /// The transport could not deliver a message of this transaction (ICMP error, TCP connect
    /// failure, RFC 3261 §17.1.4 / §17.2.4): client transactions report [`TuEvent::Timeout`];
    /// all end.
    pub fn transport_error(&mut self, key: &TransactionKey) {
        let Some(&id) = self.by_key.get(key) else {
            return;
        };
        if let Some(tx) = self.txs.get_mut(&id) {
            if matches!(tx.kind, Kind::InviteClient | Kind::NonInviteClient) {
                self.io.events.push_back(TuEvent::Timeout {
                    key: tx.key.clone(),
                });
            }
            tx.state = State::Terminated;
        }
        self.reap(id);
        self.prune();
    }

    /// A stream connection to `peer` closed, or could not be opened (TCP
    /// refused, TLS certificate rejected): every client transaction still
    /// waiting for an answer over it has a transport error now, instead of
    /// a silent 32 s Timer B or F (the callback then tries its next trunk at
    /// once). Server transactions stay: their responses may go over a new
    /// connection. Nothing happens for UDP.
    pub fn connection_closed(&mut self, peer: SocketAddr, transport: TransportKind) {
        if !transport.reliable() {
            return;
        }
        let waiting: Vec<TransactionKey> = self
            .txs
            .values()
            .filter(|tx| {
                tx.peer == peer
                    && tx.transport == transport
                    && matches!(tx.kind, Kind::InviteClient | Kind::NonInviteClient)
                    && matches!(tx.state, State::Calling | State::Trying | State::Proceeding)
            })
            .map(|tx| tx.key.clone())
            .collect();
        for key in waiting {
            self.transport_error(&key);
        }
    }

    /// Fire every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, _, id, timer))) = self.io.timers.peek().copied() {
            if at > now {
                break;
            }
            self.io.timers.pop();
            let Some(tx) = self.txs.get_mut(&id) else {
                continue;
            };
            if tx.deadlines.get(timer.index()).copied().flatten() != Some(at) {
                continue;
            }
            Io::cancel(tx, timer);
            self.fire(id, timer, at, now);
            self.reap(id);
        }
        self.prune();
    }

    fn fire(&mut self, id: u64, timer: Timer, at: Instant, now: Instant) {
        let cfg = self.cfg;
        let Some(tx) = self.txs.get_mut(&id) else {
            return;
        };
        // Schedule from the nominal deadline; if we were woken very late, from now.
        let next = |interval: Duration| {
            let n = at + interval;
            if n <= now {
                now + interval
            } else {
                n
            }
        };
        match (timer, tx.state) {
            (Timer::A, State::Calling) => {
                self.io.send(tx, tx.request.clone().into());
                tx.interval = tx.interval.saturating_mul(2);
                let n = next(tx.interval);
                self.io.arm(id, tx, Timer::A, n);
            }
            (Timer::B, State::Calling) | (Timer::F, State::Trying | State::Proceeding) => {
                self.io.events.push_back(TuEvent::Timeout {
                    key: tx.key.clone(),
                });
                tx.state = State::Terminated;
            }
            (Timer::CancelGuard, State::Calling | State::Proceeding) => {
                self.io.events.push_back(TuEvent::Timeout {
                    key: tx.key.clone(),
                });
                tx.state = State::Terminated;
            }
            (Timer::E, State::Trying | State::Proceeding) => {
                self.io.send(tx, tx.request.clone().into());
                tx.interval = if tx.state == State::Trying {
                    tx.interval.saturating_mul(2).min(cfg.t2)
                } else {
                    cfg.t2
                };
                let n = next(tx.interval);
                self.io.arm(id, tx, Timer::E, n);
            }
            (Timer::G, State::Completed) => {
                if let Some(r) = tx.last_response.clone() {
                    self.io.send(tx, r.into());
                }
                tx.interval = tx.interval.saturating_mul(2).min(cfg.t2);
                let n = next(tx.interval);
                self.io.arm(id, tx, Timer::G, n);
            }
            (Timer::Retransmit2xx, State::Accepted) if !tx.acked => {
                if let Some(r) = tx.last_response.clone() {
                    self.io.send(tx, r.into());
                }
                tx.interval = tx.interval.saturating_mul(2).min(cfg.t2);
                let n = next(tx.interval);
                self.io.arm(id, tx, Timer::Retransmit2xx, n);
            }
            (Timer::H, State::Completed) => {
                tracing::debug!(
                    branch = tx.key.branch(),
                    "Timer H: no ACK for final response"
                );
                tx.state = State::Terminated;
            }
            (Timer::L, State::Accepted) => {
                if !tx.acked {
                    if let Some(call_id) = message::call_id(&tx.request) {
                        self.io.events.push_back(TuEvent::AckTimeout { call_id });
                    }
                }
                tx.state = State::Terminated;
            }
            (Timer::D, State::Completed)
            | (Timer::K, State::Completed)
            | (Timer::J, State::Completed)
            | (Timer::I, State::Confirmed)
            | (Timer::M, State::Accepted) => {
                tx.state = State::Terminated;
            }
            (Timer::Trying100, State::Proceeding) if tx.last_response.is_none() => {
                let trying = make_response(&tx.request, 100, None);
                self.io.send(tx, trying.clone().into());
                tx.last_response = Some(trying);
            }
            _ => {}
        }
    }
}

/// Make sure the top Via carries a branch so the transaction can be keyed.
fn ensure_branch(request: &mut Request, transport: TransportKind) {
    let mut has_via = false;
    for h in request.headers.iter_mut() {
        if let Header::Via(via) = h {
            has_via = true;
            let value = via.value().to_string();
            let mut list = message::split_header_list(&value);
            if let Some(first) = list.first_mut() {
                if top_via_branch(first).is_none() {
                    first.push_str(";branch=");
                    first.push_str(&new_branch());
                    via.replace(list.join(", "));
                }
            }
            break;
        }
    }
    if !has_via {
        tracing::warn!("request without Via handed to send_request; adding a placeholder Via");
        let mut headers: Vec<Header> = std::mem::take(&mut request.headers).into();
        headers.insert(
            0,
            Header::Via(rsip::headers::Via::new(format!(
                "SIP/2.0/{} invalid;branch={};rport",
                transport.via_name(),
                new_branch()
            ))),
        );
        request.headers = headers.into();
    }
}

fn top_via_branch(via_value: &str) -> Option<String> {
    message::parse_via(via_value)?
        .branch
        .filter(|b| !b.is_empty())
}

/// ACK for a non-2xx final response (RFC 3261 §17.1.1.3): same Request-URI, Call-ID, From,
/// CSeq number and top Via as the INVITE, To from the response, the INVITE's Route headers.
fn build_ack(invite: &Request, resp: &Response) -> Request {
    let mut headers: Vec<Header> = Vec::new();
    if let Some(v) = all_via_values(invite).into_iter().next() {
        headers.push(Header::Via(rsip::headers::Via::new(v)));
    }
    headers.push(Header::MaxForwards(rsip::headers::MaxForwards::new("70")));
    for h in invite.headers.iter() {
        if let Header::Route(_) = h {
            headers.push(h.clone());
        }
    }
    for h in invite.headers.iter() {
        match h {
            Header::From(_) | Header::CallId(_) => headers.push(h.clone()),
            _ => {}
        }
    }
    if let Some(to) = resp.headers.iter().find(|h| matches!(h, Header::To(_))) {
        headers.push(to.clone());
    }
    let seq = message::cseq(invite).map(|(n, _)| n).unwrap_or(1);
    headers.push(Header::CSeq(rsip::headers::CSeq::new(format!("{seq} ACK"))));
    headers.push(Header::ContentLength(rsip::headers::ContentLength::new(
        "0",
    )));
    Request {
        method: Method::Ack,
        uri: invite.uri.clone(),
        version: rsip::Version::V2,
        headers: headers.into(),
        body: Vec::new(),
    }
}

/// CANCEL for an INVITE (RFC 3261 §9.1): same Request-URI, Call-ID, To, From, CSeq number and
/// top Via (so the same branch) as the INVITE, and its Route headers.
fn build_cancel(invite: &Request) -> Request {
    let mut headers: Vec<Header> = Vec::new();
    if let Some(v) = all_via_values(invite).into_iter().next() {
        headers.push(Header::Via(rsip::headers::Via::new(v)));
    }
    headers.push(Header::MaxForwards(rsip::headers::MaxForwards::new("70")));
    for h in invite.headers.iter() {
        if let Header::Route(_) = h {
            headers.push(h.clone());
        }
    }
    for h in invite.headers.iter() {
        match h {
            Header::From(_) | Header::To(_) | Header::CallId(_) => headers.push(h.clone()),
            _ => {}
        }
    }
    let seq = message::cseq(invite).map(|(n, _)| n).unwrap_or(1);
    headers.push(Header::CSeq(rsip::headers::CSeq::new(format!(
        "{seq} CANCEL"
    ))));
    headers.push(Header::ContentLength(rsip::headers::ContentLength::new(
        "0",
    )));
    Request {
        method: Method::Cancel,
        uri: invite.uri.clone(),
        version: rsip::Version::V2,
        headers: headers.into(),
        body: Vec::new(),
    }
}

#[cfg(test)]
mod tests;
