//! cargo-fuzz target `sip_message`: see [`ringback_fuzz_checks::sip_message`].
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ringback_fuzz_checks::sip_message(data));
