//! `cargo fuzz run config`: see `outpost_fuzz::fuzz_config` for the input layout and the checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| outpost_fuzz::fuzz_config(data));
