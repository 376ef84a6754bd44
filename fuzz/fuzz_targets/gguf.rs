//! `cargo fuzz run gguf`: see `smolvlm::fuzz_targets::gguf` and FUZZING.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| smolvlm::fuzz_targets::gguf(data));
