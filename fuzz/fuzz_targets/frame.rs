//! `cargo fuzz run frame`: the wire-protocol decoders (`outpost::protocol`) on one input: an
//! options byte, then a stream of frames. `frame::decode` at every frame boundary against a
//! reference decoder, every well-delimited body through the request and response decoders of
//! its kind against a reference parser (with every `Seq` validated and iterated, and what
//! decodes re-encoded), and `io::FrameReader` over the stream. The checks and the input layout
//! are those of the deterministic fuzz that `make test` runs, `tests/protocol_fuzz.rs`,
//! included here so both assert the same properties.
#![no_main]

#[allow(dead_code, unused_imports)]
#[path = "../../tests/protocol_fuzz.rs"]
mod protocol_fuzz;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    protocol_fuzz::fuzz_frame(data, &mut protocol_fuzz::Stats::default())
});
