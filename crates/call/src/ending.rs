//! How a call or a leg ended, as types: the shell writes them into call
//! records and metrics with [`Disposition::as_str`] and [`HangupBy::as_str`],
//! so the stored strings stay exactly what the API documents.

/// What became of a call or leg (the CDR's `disposition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Disposition {
    /// Answered and ended normally.
    Completed,
    /// The caller hung up while waiting in a queue.
    Abandoned,
    /// The caller accepted a callback and was hung up on after the
    /// confirmation.
    Callback,
    /// Handed to another destination (REFER accepted or finished).
    Transferred,
    /// One side stopped sending RTP: the phone vanished without a BYE.
    RtpTimeout,
    /// Something went wrong on our side or in the signalling.
    Failed,
    /// The server shut down while the call was up.
    Shutdown,
    /// The caller cancelled before we answered.
    Cancelled,
    /// A leg we placed was never answered.
    NotAnswered,
    /// The caller hung up while their queue wait ran on another node
    /// (one queue across nodes): that node's record tells how it went.
    Hopped,
}

impl Disposition {
    /// The stored and exported spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Completed => "completed",
            Disposition::Abandoned => "abandoned",
            Disposition::Callback => "callback",
            Disposition::Transferred => "transferred",
            Disposition::RtpTimeout => "rtp_timeout",
            Disposition::Failed => "failed",
            Disposition::Shutdown => "shutdown",
            Disposition::Cancelled => "cancelled",
            Disposition::NotAnswered => "not_answered",
            Disposition::Hopped => "hopped",
        }
    }

    /// Read back [`Disposition::as_str`]'s spelling.
    pub fn parse(s: &str) -> Option<Disposition> {
        [
            Disposition::Completed,
            Disposition::Abandoned,
            Disposition::Callback,
            Disposition::Transferred,
            Disposition::RtpTimeout,
            Disposition::Failed,
            Disposition::Shutdown,
            Disposition::Cancelled,
            Disposition::NotAnswered,
            Disposition::Hopped,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }
}

/// Who ended a call or leg (the CDR's `hangup_by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HangupBy {
    /// The person who phoned in.
    Caller,
    /// ringback itself (the dialplan, a timeout, a cancel, shutdown).
    Ringback,
    /// The agent's phone.
    Agent,
    /// The customer called back.
    Customer,
}

impl HangupBy {
    /// The stored and exported spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            HangupBy::Caller => "caller",
            HangupBy::Ringback => "ringback",
            HangupBy::Agent => "agent",
            HangupBy::Customer => "customer",
        }
    }
}

/// The end of a call as the core decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ending {
    /// What became of it.
    pub disposition: Disposition,
    /// Who ended it.
    pub hangup_by: HangupBy,
    /// Whether ringback must send BYE (false when the far end already did).
    pub send_bye: bool,
}

impl Ending {
    /// An end ringback decided: BYE goes out.
    pub fn by_ringback(disposition: Disposition) -> Self {
        Ending {
            disposition,
            hangup_by: HangupBy::Ringback,
            send_bye: true,
        }
    }
}
