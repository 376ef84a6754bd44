//! `cargo fuzz run safetensors`: see `smolvlm::fuzz_targets::safetensors` and FUZZING.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| smolvlm::fuzz_targets::safetensors(data));
