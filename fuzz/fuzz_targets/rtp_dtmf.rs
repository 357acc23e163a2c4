//! cargo-fuzz target `rtp_dtmf`: see [`ringback_fuzz_checks::rtp_dtmf`].
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ringback_fuzz_checks::rtp_dtmf(data));
