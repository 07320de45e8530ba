//! `cargo fuzz run batch`: see `outpost_fuzz::fuzz_batch` for the input layout and the checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| outpost_fuzz::fuzz_batch(data));
