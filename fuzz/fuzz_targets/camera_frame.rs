//! `cargo fuzz run camera_frame`: see `smolvlm::fuzz_targets::camera_frame` and FUZZING.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| smolvlm::fuzz_targets::camera_frame(data));
