//! `cargo fuzz run records`: see `outpost_fuzz::fuzz_records` for the input layout and the checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| outpost_fuzz::fuzz_records(data));
