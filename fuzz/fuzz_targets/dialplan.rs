//! cargo-fuzz target `dialplan`: see [`ringback_fuzz_checks::dialplan`].
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ringback_fuzz_checks::dialplan(data));
