//! `cargo fuzz run chat_template`: see `smolvlm::fuzz_targets::chat_template` and FUZZING.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| smolvlm::fuzz_targets::chat_template(data));
