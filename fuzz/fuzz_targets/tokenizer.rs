//! `cargo fuzz run tokenizer`: see `smolvlm::fuzz_targets::tokenizer` and FUZZING.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| smolvlm::fuzz_targets::tokenizer(data));
