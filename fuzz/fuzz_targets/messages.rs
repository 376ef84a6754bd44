//! `cargo fuzz run messages`: see `smolvlm::fuzz_targets::messages` and FUZZING.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| smolvlm::fuzz_targets::messages(data));
