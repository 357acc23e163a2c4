//! The call cores: what happens to an inbound call ([`inbound`]) and to a
//! callback attempt ([`attempt`]), as sans-IO state machines in the shape of
//! [`ringback_sansio::Core`].
//!
//! They decide phases, timeouts, questions asked in the queue and how a call
//! ends; the shell (`src/`) carries their outputs into SIP, RTP, the ACD and
//! the store, and feeds back what happened. Neither reads a clock.

pub mod attempt;
pub mod csat;
pub mod ending;
pub mod inbound;

pub use ending::{Disposition, Ending, HangupBy};

/// Prompt names that say a number digit by digit (12 → `digit-1`, `digit-2`).
pub fn number_prompts(n: u64) -> Vec<String> {
    n.to_string()
        .chars()
        .map(|c| format!("digit-{c}"))
        .collect()
}
