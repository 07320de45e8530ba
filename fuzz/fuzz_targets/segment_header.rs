//! `cargo fuzz run segment_header`: see `outpost_fuzz::fuzz_segment_header` for the input layout and the checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| outpost_fuzz::fuzz_segment_header(data));
