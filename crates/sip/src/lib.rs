//! Sans-IO SIP core of ringback.
//!
//! Nothing in this crate opens a socket, spawns a task or reads a clock: bytes, source
//! addresses and the current [`std::time::Instant`] come in as arguments, and what must be sent
//! comes out of `poll_*` methods. That keeps every RFC timer testable with a synthetic clock and
//! lets the shell (tokio, io_uring, a simulator) drive many thousands of transactions from one
//! task.
//!
//! * [`message`] — parsing/serializing over `rsip` with the gaps of `rsip` 0.4 closed.
//! * [`transaction`] — RFC 3261 §17 client and server transactions (+ RFC 6026).
//! * [`dialog`] — RFC 3261 §12 dialogs: in-dialog requests, ACK, CSeq and target refresh.
//! * [`uac`] — building initial INVITEs for outgoing legs.
//! * [`outgoing`] — the UAC side of an outgoing INVITE: provisionals, PRACK, forks, challenges.
//! * [`session_timer`] — RFC 4028 session timers on the answering side.
//! * [`auth`] — RFC 7616 / RFC 2617 digest authentication, server and client side.
//! * [`client_auth`] — answering 401/407 challenges to our own requests (trunks).
//! * [`registration`] — keeping a trunk registered with its carrier (REGISTER client).

#![deny(missing_docs)]

pub mod auth;
pub mod client_auth;
pub mod dialog;
pub mod message;
pub mod outgoing;
pub mod registrar;
pub mod registration;
pub mod session_timer;
pub mod transaction;
pub mod uac;

/// The exact `rsip` version this crate is built on, so users name the same types.
pub use rsip;
