//! `cargo fuzz run meta_checkpoint`: see `outpost_fuzz::fuzz_meta_checkpoint` for the input layout and the checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| outpost_fuzz::fuzz_meta_checkpoint(data));
