//! cargo-fuzz target `sdp`: see [`ringback_fuzz_checks::sdp`].
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ringback_fuzz_checks::sdp(data));
