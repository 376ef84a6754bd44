//! `cargo fuzz run configs`: see `smolvlm::fuzz_targets::configs` and FUZZING.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| smolvlm::fuzz_targets::configs(data));
