//! The endpoint's vocabulary for the rest of the server: what a call task
//! receives ([`SipInput`]), what it may ask ([`EndpointCmd`]), and the cheap
//! handle it asks through.

use std::net::SocketAddr;

use ringback_sip::transaction::{TransactionKey, TransportKind};
use tokio::sync::mpsc::UnboundedSender;

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
    /// Which of these Call-IDs are still routed to a live task (the
    /// watchdog's question).
    Routed {
        /// Call-IDs to look up.
        call_ids: Vec<String>,
        /// One answer per Call-ID, in order.
        reply: tokio::sync::oneshot::Sender<Vec<bool>>,
    },
}

/// Cheap handle for call tasks.
#[derive(Clone, Debug)]
pub struct EndpointHandle {
    pub(super) tx: UnboundedSender<EndpointCmd>,
    /// Bound SIP address (UDP and TCP share the port).
    pub local: SocketAddr,
    /// Bound SIP-over-TLS port, when `sip.tls_listen` is set.
    pub tls_port: Option<u16>,
}

impl EndpointHandle {
    /// The port to name in Via and Contact for `transport`: a TLS dialog
    /// must come back to the TLS listener, not the clear-text port.
    pub fn port_for(&self, transport: TransportKind) -> u16 {
        match (transport, self.tls_port) {
            (TransportKind::Tls, Some(p)) => p,
            _ => self.local.port(),
        }
    }

    /// Send a command to the endpoint (dropped silently if it has stopped,
    /// which only happens at shutdown).
    pub fn send(&self, cmd: EndpointCmd) {
        let _ = self.tx.send(cmd);
    }
}
