//! `cargo fuzz run image_decode`: see `smolvlm::fuzz_targets::image_decode` and FUZZING.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| smolvlm::fuzz_targets::image_decode(data));
