//! Fuzz harness bodies for ringback.
//!
//! One public function per fuzz target. Each feeds arbitrary bytes through the same
//! production entry points the server uses on untrusted input, in the same order, and
//! asserts the invariants that must hold for *every* input. A panic anywhere (ours,
//! `rsip`'s, `toml`'s) is a finding.
//!
//! The functions are called by two drivers:
//!
//! * `fuzz/fuzz_targets/*.rs` — cargo-fuzz / libFuzzer on nightly, for bounded runs;
//! * `tests/corpus.rs` in this crate — every seed and every minimised crasher under
//!   `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/`, on stable, in CI.
//!
//! The server shell (`src/`) is a binary crate, so the few lines of glue it runs between
//! the library calls (size limit, keep-alive filter, error codes, the answer chosen per
//! method) are mirrored here; everything that parses or builds bytes is the library code
//! itself.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod dialplan;
mod rtp;
mod sdp;
mod sip;

pub use dialplan::dialplan;
pub use rtp::rtp_dtmf;
pub use sdp::sdp;
pub use sip::sip_message;

/// A check function: runs one fuzz input, panics on a finding.
pub type Check = fn(&[u8]);

/// The fuzz targets, by the name used for `fuzz/fuzz_targets/<name>.rs` and the corpus
/// directories, with the check each one runs.
pub const TARGETS: &[(&str, Check)] = &[
    ("sip_message", sip_message),
    ("sdp", sdp),
    ("rtp_dtmf", rtp_dtmf),
    ("dialplan", dialplan),
];
