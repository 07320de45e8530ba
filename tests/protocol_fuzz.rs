//! Deterministic fuzz of the wire-protocol decoders (`src/protocol/`), run by `make test`. The
//! coverage-guided twin is the cargo-fuzz target `fuzz/fuzz_targets/frame.rs`, which includes
//! this file and calls [`fuzz_frame`]: both assert the same properties on inputs of the same
//! layout.
//!
//! The input of [`fuzz_frame`] is one options byte, then a byte stream of concatenated frames:
//!
//! - bit 0 of the options: rewrite the header CRC of every frame met while walking the stream
//!   (without it a random input never gets past the CRC, so the body decoders would never run);
//! - bit 1: decode every well-delimited body with every request and response type, not only
//!   those of its header's kind;
//! - bits 2..8: seed of the chunk sizes and transient errors of the test-only chunked reader.
//!
//! What is checked, for every input:
//!
//! - `frame::decode`, at every frame boundary, for many `frame_bytes_max` and several
//!   prefixes, returns exactly what a reference decoder written from PROTOCOL.md section 1
//!   returns (with its own bitwise CRC-32C), and never a `Frame { len }` beyond the buffer or
//!   `frame_bytes_max`, nor an `Incomplete { needed }` the buffer already holds;
//! - every body of a well-delimited frame goes through `body::decode_request` and
//!   `body::decode_response` of its kind; every `Seq` in what decodes is validated and iterated,
//!   nested ones included, and iteration agrees with `validate`. A reference parser written from
//!   PROTOCOL.md sections 2 and 4 (postcard varints with their overflow rule, zigzag, `Option`
//!   tags, strings, `Seq` = count + byte length + elements) must accept and refuse exactly the
//!   same bodies, shallowly and deeply; that pins the field order of every message to the
//!   document. What decodes is re-encoded: that decodes to the same value and re-encodes to
//!   itself, and it equals the original body exactly when the body used canonical (shortest)
//!   varints outside its sequences' element bytes (a decoded `Seq` re-encodes its bytes
//!   verbatim);
//! - `io::FrameReader` reading the stream (in one go, and in `make test` also in small chunks
//!   with transient `Interrupted` errors that are retried) returns the same frames, then the
//!   same error or end-of-stream, as walking the stream with `frame::decode`.
//!
//! A panic prints the seed, the iteration and the input in hex. Replay one case with
//! `PROTOCOL_FUZZ_REPLAY=<iteration> cargo test --test protocol_fuzz -- --nocapture`, or write
//! the hex as bytes to a file and run `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run frame <file>`.
//! `PROTOCOL_FUZZ_SEED` changes the base seed and `PROTOCOL_FUZZ_SCALE` multiplies the number of
//! iterations, for longer local runs.
//!
//! This file compiles in two crates: here, and in the fuzz crate (through `#[path]`), which
//! depends on `outpost` only. So it names no other crate (`serde`, `postcard`) and works per
//! message type through macros; the chunked reader, which implements `embedded_io::Read`, is
//! `#[cfg(test)]`.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::time::Instant;

use outpost::protocol::body::{self, BodyError, Response};
use outpost::protocol::frame::{self, Decoded, FLAG_RESPONSE, FrameError, FrameHeader};
use outpost::protocol::io::{FrameReader, ReadFrameError};
use outpost::protocol::messages::*;
use outpost::protocol::{ErrorCode, HEADER_BYTES, Kind, Seq};

// ---------------------------------------------------------------------------------------------
// Counters
// ---------------------------------------------------------------------------------------------

/// What the inputs exercised, printed at the end of the run (to see that the mutations reach
/// every outcome, not only the CRC check).
#[derive(Default, Debug)]
pub struct Stats {
    pub inputs: u64,
    pub decode_calls: u64,
    pub frames: u64,
    pub incomplete: u64,
    pub header_crc: u64,
    pub reserved_flags: u64,
    pub too_large: u64,
    pub requests_ok: u64,
    pub requests_deep_ok: u64,
    pub requests_refused: u64,
    pub requests_exact: u64,
    pub requests_canonicalised: u64,
    pub responses_ok: u64,
    pub responses_deep_ok: u64,
    pub responses_error: u64,
    pub responses_refused: u64,
    pub responses_unknown_code: u64,
    pub reader_frames: u64,
    pub reader_interruptions: u64,
}

// ---------------------------------------------------------------------------------------------
// Reference frame decoder (PROTOCOL.md section 1)
// ---------------------------------------------------------------------------------------------

/// CRC-32C bit by bit from its definition (reflected polynomial 0x82F63B78).
pub fn crc32c_reference(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The decoding rules of section 1, in their order.
fn reference_decode(buf: &[u8], frame_bytes_max: u32) -> Result<Decoded, FrameError> {
    if buf.len() < 16 {
        return Ok(Decoded::Incomplete { needed: 16 });
    }
    let le32 = |i: usize| u32::from_le_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
    if crc32c_reference(&buf[0..12]) != le32(12) {
        return Err(FrameError::HeaderCrc);
    }
    let flags = u16::from_le_bytes([buf[6], buf[7]]);
    let request_id = le32(8);
    if flags & !1 != 0 {
        return Err(FrameError::ReservedFlags { flags, request_id });
    }
    let frame_bytes = 16 + u64::from(le32(0));
    if frame_bytes > u64::from(frame_bytes_max) {
        return Err(FrameError::TooLarge {
            frame_bytes,
            frame_bytes_max,
            request_id,
        });
    }
    if (buf.len() as u64) < frame_bytes {
        return Ok(Decoded::Incomplete {
            needed: frame_bytes as usize,
        });
    }
    Ok(Decoded::Frame {
        header: FrameHeader {
            body_bytes: le32(0),
            version: buf[4],
            kind: buf[5],
            flags,
            request_id,
        },
        len: frame_bytes as usize,
    })
}

/// `frame::decode`, checked against the reference and the invariants callers rely on.
fn checked_decode(buf: &[u8], max: u32, stats: &mut Stats) -> Result<Decoded, FrameError> {
    stats.decode_calls += 1;
    let got = frame::decode(buf, max);
    assert_eq!(
        got,
        reference_decode(buf, max),
        "frame::decode of {} bytes, frame_bytes_max {max}",
        buf.len()
    );
    match got {
        Ok(Decoded::Frame { header, len }) => {
            assert!(len <= buf.len(), "Frame {{ len: {len} }} > buffer");
            assert!(
                len as u64 <= u64::from(max),
                "Frame {{ len: {len} }} > max {max}"
            );
            assert_eq!(len, HEADER_BYTES + header.body_bytes as usize);
            assert_eq!(
                header.encode()[..],
                buf[..HEADER_BYTES],
                "header re-encodes"
            );
        }
        Ok(Decoded::Incomplete { needed }) => {
            assert!(
                needed > buf.len(),
                "Incomplete {{ needed: {needed} }} is buffered"
            );
            assert!(needed >= HEADER_BYTES);
            if buf.len() >= HEADER_BYTES {
                assert!(needed as u64 <= u64::from(max));
            }
        }
        Err(e) => {
            assert!(e.code().closes_connection());
            if let FrameError::TooLarge { frame_bytes, .. } = e {
                assert!(frame_bytes > u64::from(max));
            }
        }
    }
    got
}

// ---------------------------------------------------------------------------------------------
// Reference body parser (PROTOCOL.md sections 2 and 4)
// ---------------------------------------------------------------------------------------------

/// A field type of section 4.
#[derive(Clone, Copy, Debug)]
enum F {
    /// One raw byte.
    U8,
    /// One byte: 0, 1 or 2.
    Acks,
    V16,
    V32,
    V64,
    /// Zigzag varint.
    I64,
    Str,
    Bytes,
    OptBytes,
    OptV32,
    OptV64,
    OptI64,
    OptStr,
    /// One byte: 0 or 1.
    Bool,
    /// `Seq<T>`: varint count, varint byte length, elements.
    Seq(&'static [F]),
    /// `Option<T>` of a struct: tag byte 0, or 1 then the struct's fields.
    Opt(&'static [F]),
}

const HEADER: &[F] = &[F::Str, F::Bytes];
const RECORD_IN: &[F] = &[F::I64, F::OptBytes, F::Bytes, F::Seq(HEADER)];
const RECORD_OUT: &[F] = &[F::V64, F::I64, F::OptBytes, F::Bytes, F::Seq(HEADER)];
const TOPIC_INFO: &[F] = &[F::Str, F::V32];
const PARTITION_INFO: &[F] = &[F::V32, F::V64, F::V64];
const PARTITION_STATUS: &[F] = &[F::Str, F::V32, F::V64, F::V64];
const FORWARD_PARTITION: &[F] = &[
    F::Str,
    F::V32,
    F::Str,
    F::OptV64,
    F::V64,
    F::V64,
    F::OptI64,
    F::OptI64,
];

const STR: &[F] = &[F::Str];
const GROUP_PARTITION: &[F] = &[F::Str, F::V32];
const OFFSET_COMMIT: &[F] = &[F::Str, F::V32, F::V64, F::Str];
const OFFSET_FETCHED: &[F] = &[F::Str, F::V32, F::OptV64, F::Str, F::V64, F::V64, F::V64];
const GROUP_INFO: &[F] = &[F::Str, F::U8, F::V32];
const GROUP_MEMBER: &[F] = &[F::Str, F::Str, F::V32, F::Seq(STR), F::Seq(GROUP_PARTITION)];
const ATOMIC_OUTPUT: &[F] = &[F::Str, F::V32, F::V32, F::Seq(RECORD_IN)];
const ATOMIC_COMMIT: &[F] = &[F::Str, F::OptStr, F::V32, F::Seq(OFFSET_COMMIT)];
const ATOMIC_OUTPUT_RESULT: &[F] = &[F::Str, F::V32, F::V64, F::V32];

const HELLO_REQ: &[F] = &[F::U8, F::U8, F::Str];
const HELLO_RESP: &[F] = &[F::U8, F::Str, F::V32, F::V32, F::V32];
const CREATE_TOPIC_REQ: &[F] = &[F::Str, F::V32];
const CREATE_TOPIC_RESP: &[F] = &[F::Str, F::V32];
const EMPTY: &[F] = &[];
const LIST_TOPICS_RESP: &[F] = &[F::Seq(TOPIC_INFO)];
const DESCRIBE_TOPIC_REQ: &[F] = &[F::Str];
const DESCRIBE_TOPIC_RESP: &[F] = &[F::Str, F::Seq(PARTITION_INFO)];
const PRODUCE_REQ: &[F] = &[F::Str, F::OptV32, F::Acks, F::Seq(RECORD_IN)];
const PRODUCE_RESP: &[F] = &[F::V32, F::V64, F::V32];
const FETCH_REQ: &[F] = &[F::Str, F::V32, F::V64, F::V32, F::V32];
const FETCH_RESP: &[F] = &[F::V32, F::V64, F::V64, F::Seq(RECORD_OUT)];
const LIST_OFFSETS_REQ: &[F] = &[F::Str, F::V32];
const LIST_OFFSETS_RESP: &[F] = &[F::V64, F::V64];
const STATUS_RESP: &[F] = &[
    F::V64,
    F::V64,
    F::V64,
    F::V32,
    F::V32,
    F::V32,
    F::Seq(PARTITION_STATUS),
];
const INIT_PRODUCER_REQ: &[F] = &[F::Str];
const INIT_PRODUCER_RESP: &[F] = &[F::V64, F::V16];
const PRODUCE_IDEMPOTENT_REQ: &[F] = &[F::V64, F::V16, F::Str, F::V32, F::V32, F::Seq(RECORD_IN)];
const PRODUCE_IDEMPOTENT_RESP: &[F] = &[F::V32, F::V64, F::V32, F::Bool];
const ATOMIC_WRITE_REQ: &[F] = &[F::V64, F::V16, F::Seq(ATOMIC_OUTPUT), F::Opt(ATOMIC_COMMIT)];
const ATOMIC_WRITE_RESP: &[F] = &[F::Seq(ATOMIC_OUTPUT_RESULT), F::Bool];
const JOIN_GROUP_REQ: &[F] = &[F::Str, F::OptStr, F::Str, F::V32, F::Seq(STR), F::Seq(STR)];
const JOIN_GROUP_RESP: &[F] = &[F::V32, F::Str, F::Str, F::Str, F::Seq(GROUP_PARTITION)];
const MEMBER_REQ: &[F] = &[F::Str, F::Str, F::V32];
const SYNC_GROUP_RESP: &[F] = &[F::Seq(GROUP_PARTITION)];
const LEAVE_GROUP_REQ: &[F] = &[F::Str, F::Str];
const COMMIT_OFFSETS_REQ: &[F] = &[F::Str, F::OptStr, F::V32, F::Seq(OFFSET_COMMIT)];
const FETCH_OFFSETS_REQ: &[F] = &[F::Str, F::OptStr, F::V32, F::Seq(GROUP_PARTITION)];
const FETCH_OFFSETS_RESP: &[F] = &[F::Seq(OFFSET_FETCHED)];
const LIST_GROUPS_RESP: &[F] = &[F::Seq(GROUP_INFO)];
const DESCRIBE_GROUP_REQ: &[F] = &[F::Str];
const DESCRIBE_GROUP_RESP: &[F] = &[
    F::Str,
    F::Bool,
    F::U8,
    F::V32,
    F::OptStr,
    F::OptStr,
    F::Seq(GROUP_MEMBER),
];
const FORWARDER_STATUS_RESP: &[F] = &[
    F::Bool,
    F::U8,
    F::OptStr,
    F::OptI64,
    F::V64,
    F::V64,
    F::V64,
    F::Seq(FORWARD_PARTITION),
];

/// How the reference judges a body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RefBody {
    /// Decodes. `canonical`: every varint outside sequence elements is in its shortest form.
    /// `deep`: every sequence, nested ones included, holds exactly its elements.
    Ok { canonical: bool, deep: bool },
    /// Does not decode.
    Malformed,
    /// Decodes, with bytes left over.
    Trailing,
    /// A response with an error code this version does not define.
    UnknownCode(u16),
}

struct Parser<'a> {
    b: &'a [u8],
    canonical: bool,
    /// Whether sequences' elements are parsed (deep) or only their count and bytes (shallow).
    deep: bool,
}

impl<'a> Parser<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&x, rest) = self.b.split_first()?;
        self.b = rest;
        Some(x)
    }

    fn take(&mut self, n: u64) -> Option<&'a [u8]> {
        if n > self.b.len() as u64 {
            return None;
        }
        let (x, rest) = self.b.split_at(n as usize);
        self.b = rest;
        Some(x)
    }

    /// A postcard varint of a `bits`-wide integer: at most ceil(bits / 7) bytes, and the last
    /// of a maximal-length one must not carry bits beyond `bits`.
    fn varint(&mut self, bits: u32) -> Option<u64> {
        let max_bytes = bits.div_ceil(7);
        let last_max = (1u64 << (bits - 7 * (max_bytes - 1))) - 1;
        let mut v = 0u64;
        for i in 0..max_bytes {
            let x = self.byte()?;
            v |= u64::from(x & 0x7f) << (7 * i);
            if x & 0x80 == 0 {
                if i == max_bytes - 1 && u64::from(x) > last_max {
                    return None;
                }
                if i > 0 && x == 0 {
                    self.canonical = false;
                }
                return Some(v);
            }
        }
        None
    }

    fn field(&mut self, f: F) -> Option<()> {
        match f {
            F::U8 => {
                self.byte()?;
            }
            F::Acks => {
                if self.byte()? > 2 {
                    return None;
                }
            }
            F::Bool => {
                if self.byte()? > 1 {
                    return None;
                }
            }
            F::V16 => {
                self.varint(16)?;
            }
            F::V32 => {
                self.varint(32)?;
            }
            F::V64 | F::I64 => {
                self.varint(64)?;
            }
            F::Str => {
                let n = self.varint(64)?;
                std::str::from_utf8(self.take(n)?).ok()?;
            }
            F::Bytes => {
                let n = self.varint(64)?;
                self.take(n)?;
            }
            F::OptBytes | F::OptV32 | F::OptV64 | F::OptI64 | F::OptStr => match self.byte()? {
                0 => {}
                1 => self.field(match f {
                    F::OptBytes => F::Bytes,
                    F::OptV32 => F::V32,
                    F::OptV64 => F::V64,
                    F::OptI64 => F::I64,
                    _ => F::Str,
                })?,
                _ => return None,
            },
            F::Opt(fs) => match self.byte()? {
                0 => {}
                1 => self.fields(fs)?,
                _ => return None,
            },
            F::Seq(elem) => {
                let count = self.varint(64)?;
                let n = self.varint(64)?;
                let bytes = self.take(n)?;
                // Every element takes at least one byte.
                if count > bytes.len() as u64 {
                    return None;
                }
                if self.deep {
                    let mut p = Parser {
                        b: bytes,
                        canonical: true,
                        deep: true,
                    };
                    for _ in 0..count {
                        p.fields(elem)?;
                    }
                    if !p.b.is_empty() {
                        return None;
                    }
                }
            }
        }
        Some(())
    }

    fn fields(&mut self, fs: &[F]) -> Option<()> {
        fs.iter().try_for_each(|&f| self.field(f))
    }
}

fn parse_exact(b: &[u8], fs: &[F], deep: bool) -> Result<bool, RefBody> {
    let mut p = Parser {
        b,
        canonical: true,
        deep,
    };
    p.fields(fs).ok_or(RefBody::Malformed)?;
    if !p.b.is_empty() {
        return Err(RefBody::Trailing);
    }
    Ok(p.canonical)
}

fn reference_request(b: &[u8], fs: &[F]) -> RefBody {
    match parse_exact(b, fs, false) {
        Ok(canonical) => RefBody::Ok {
            canonical,
            deep: parse_exact(b, fs, true).is_ok(),
        },
        Err(e) => e,
    }
}

/// The error codes of version 1 (PROTOCOL.md section 5): 0–22, the idempotent producers'
/// 40–47 and the groups' 60–72.
fn known_code(code: u16) -> bool {
    code <= 22 || (40..=47).contains(&code) || (60..=72).contains(&code)
}

fn reference_response(b: &[u8], fs: &[F]) -> RefBody {
    let mut p = Parser {
        b,
        canonical: true,
        deep: false,
    };
    let Some(code) = p.varint(16) else {
        return RefBody::Malformed;
    };
    let code = code as u16;
    if !known_code(code) {
        return RefBody::UnknownCode(code);
    }
    let payload: &[F] = if code == 0 { fs } else { &[F::Str] };
    match reference_request(p.b, payload) {
        RefBody::Ok { canonical, deep } => RefBody::Ok {
            canonical: canonical && p.canonical,
            deep,
        },
        other => other,
    }
}

// ---------------------------------------------------------------------------------------------
// The codec side: deep validation, per message type
// ---------------------------------------------------------------------------------------------

/// Validates and iterates `$seq` (a decoded `Seq`), evaluating `$nested` for each element
/// `$e` that decodes; checks that iteration agrees with `Seq::validate`. Evaluates to whether
/// the sequence and everything nested in it is valid.
macro_rules! seq_deep {
    ($seq:expr, |$e:ident| $nested:expr) => {{
        let seq = $seq;
        let count = seq.len();
        let mut items = 0usize;
        let mut failed = false;
        let mut nested_ok = true;
        for item in seq.iter() {
            assert!(!failed, "a Seq iterator went on after an error");
            match item {
                Ok($e) => {
                    items += 1;
                    if !$nested {
                        nested_ok = false;
                    }
                }
                Err(_) => failed = true,
            }
        }
        assert!(items <= count, "a Seq yielded {items} > {count} elements");
        let valid = seq.validate().is_ok();
        if valid {
            assert!(!failed && items == count, "Seq::validate passed, iteration failed");
        }
        if failed {
            assert!(!valid, "iteration failed, Seq::validate passed");
        }
        valid && nested_ok
    }};
}

trait Deep {
    /// Validates and iterates every `Seq` inside, nested ones included.
    fn deep(&self) -> bool;
}

macro_rules! flat {
    ($($t:ty),*) => {$(impl Deep for $t { fn deep(&self) -> bool { true } })*};
}
flat!(
    Empty,
    HelloRequest<'_>,
    HelloResponse<'_>,
    CreateTopicRequest<'_>,
    CreateTopicResponse<'_>,
    DescribeTopicRequest<'_>,
    ProduceResponse,
    InitProducerRequest<'_>,
    InitProducerResponse,
    ProduceIdempotentResponse,
    FetchRequest<'_>,
    ListOffsetsRequest<'_>,
    ListOffsetsResponse,
    MemberRequest<'_>,
    LeaveGroupRequest<'_>,
    DescribeGroupRequest<'_>
);

impl Deep for JoinGroupRequest<'_> {
    fn deep(&self) -> bool {
        let a = seq_deep!(self.strategies, |_s| true);
        let b = seq_deep!(self.topics, |_t| true);
        a && b
    }
}

impl Deep for JoinGroupResponse<'_> {
    fn deep(&self) -> bool {
        seq_deep!(self.assignment, |_p| true)
    }
}

impl Deep for SyncGroupResponse<'_> {
    fn deep(&self) -> bool {
        seq_deep!(self.assignment, |_p| true)
    }
}

impl Deep for CommitOffsetsRequest<'_> {
    fn deep(&self) -> bool {
        seq_deep!(self.offsets, |_o| true)
    }
}

impl Deep for FetchOffsetsRequest<'_> {
    fn deep(&self) -> bool {
        seq_deep!(self.partitions, |_p| true)
    }
}

impl Deep for FetchOffsetsResponse<'_> {
    fn deep(&self) -> bool {
        seq_deep!(self.offsets, |_o| true)
    }
}

impl Deep for ListGroupsResponse<'_> {
    fn deep(&self) -> bool {
        seq_deep!(self.groups, |_g| true)
    }
}

impl Deep for DescribeGroupResponse<'_> {
    fn deep(&self) -> bool {
        seq_deep!(self.members, |m| {
            let a = seq_deep!(m.topics, |_t| true);
            let b = seq_deep!(m.assignment, |_p| true);
            a && b
        })
    }
}

impl Deep for ProduceRequest<'_> {
    fn deep(&self) -> bool {
        seq_deep!(self.records, |r| seq_deep!(r.headers, |_h| true))
    }
}

impl Deep for ProduceIdempotentRequest<'_> {
    fn deep(&self) -> bool {
        seq_deep!(self.records, |r| seq_deep!(r.headers, |_h| true))
    }
}

impl Deep for AtomicWriteRequest<'_> {
    fn deep(&self) -> bool {
        let outputs = seq_deep!(self.outputs, |o| {
            seq_deep!(o.records, |r| seq_deep!(r.headers, |_h| true))
        });
        let offsets = self.commit.is_none_or(|c| seq_deep!(c.offsets, |_o| true));
        outputs && offsets
    }
}

impl Deep for AtomicWriteResponse<'_> {
    fn deep(&self) -> bool {
        seq_deep!(self.outputs, |_o| true)
    }
}

impl Deep for FetchResponse<'_> {
    fn deep(&self) -> bool {
        seq_deep!(self.records, |r| seq_deep!(r.headers, |_h| true))
    }
}

impl Deep for ListTopicsResponse<'_> {
    fn deep(&self) -> bool {
        seq_deep!(self.topics, |_t| true)
    }
}

impl Deep for DescribeTopicResponse<'_> {
    fn deep(&self) -> bool {
        seq_deep!(self.partitions, |_p| true)
    }
}

impl Deep for StatusResponse<'_> {
    fn deep(&self) -> bool {
        seq_deep!(self.partitions, |_p| true)
    }
}

impl Deep for ForwarderStatusResponse<'_> {
    fn deep(&self) -> bool {
        seq_deep!(self.partitions, |_p| true)
    }
}

/// Decodes `$body` as the request type `$t` and compares with the reference (`$schema`);
/// re-encodes what decodes.
macro_rules! check_request {
    ($t:ty, $schema:expr, $body:expr, $stats:expr) => {{
        let body: &[u8] = $body;
        let stats: &mut Stats = $stats;
        let expected = reference_request(body, $schema);
        match body::decode_request::<$t>(body) {
            Ok(v) => {
                let RefBody::Ok { canonical, deep } = expected else {
                    panic!(
                        "{} decodes, the reference says {expected:?}: {v:?}",
                        stringify!($t)
                    )
                };
                stats.requests_ok += 1;
                assert_eq!(v.deep(), deep, "{}: deep validation", stringify!($t));
                stats.requests_deep_ok += u64::from(deep);
                let mut buf = vec![0u8; body.len() + 64];
                let n = body::encode_request(&mut buf, 0, 0, &v).expect("re-encode");
                let again = &buf[HEADER_BYTES..n];
                assert!(again.len() <= body.len(), "re-encoding grew");
                assert_eq!(
                    again == body,
                    canonical,
                    "{}: re-encoding reproduces the body iff its varints are canonical",
                    stringify!($t)
                );
                if canonical {
                    stats.requests_exact += 1;
                } else {
                    stats.requests_canonicalised += 1;
                }
                let w = body::decode_request::<$t>(again).expect("re-encoded body decodes");
                assert_eq!(format!("{v:?}"), format!("{w:?}"));
                let mut buf2 = vec![0u8; again.len() + 64];
                let m = body::encode_request(&mut buf2, 0, 0, &w).expect("re-encode");
                assert_eq!(
                    &buf2[HEADER_BYTES..m],
                    again,
                    "re-encoding is a fixed point"
                );
            }
            Err(e) => {
                stats.requests_refused += 1;
                match (&e, expected) {
                    (BodyError::Malformed(_), RefBody::Malformed)
                    | (BodyError::TrailingBytes, RefBody::Trailing) => {}
                    _ => panic!(
                        "{} refused with {e:?}, the reference says {expected:?}",
                        stringify!($t)
                    ),
                }
            }
        }
    }};
}

/// Decodes `$body` as a response carrying `$t` and compares with the reference.
macro_rules! check_response {
    ($t:ty, $schema:expr, $body:expr, $stats:expr) => {{
        let body: &[u8] = $body;
        let stats: &mut Stats = $stats;
        let expected = reference_response(body, $schema);
        match body::decode_response::<$t>(body) {
            Ok(r) => {
                let RefBody::Ok { canonical, deep } = expected else {
                    panic!(
                        "response {} decodes, the reference says {expected:?}: {r:?}",
                        stringify!($t)
                    )
                };
                let mut buf = vec![0u8; body.len() + 64];
                let n = match r {
                    Response::Ok(v) => {
                        stats.responses_ok += 1;
                        assert_eq!(v.deep(), deep, "response {}: deep", stringify!($t));
                        stats.responses_deep_ok += u64::from(deep);
                        body::encode_ok(&mut buf, 0, 0, &v).expect("re-encode")
                    }
                    Response::Err { code, message } => {
                        stats.responses_error += 1;
                        assert_ne!(code, ErrorCode::Ok);
                        assert!(deep);
                        body::encode_error(&mut buf, 0, 0, code, message).expect("re-encode")
                    }
                };
                let again = &buf[HEADER_BYTES..n];
                assert!(again.len() <= body.len(), "re-encoding grew");
                assert_eq!(
                    again == body,
                    canonical,
                    "response {}: re-encoding reproduces the body iff canonical",
                    stringify!($t)
                );
                let s = body::decode_response::<$t>(again).expect("re-encoded body decodes");
                assert_eq!(format!("{r:?}"), format!("{s:?}"));
            }
            Err(BodyError::UnknownCode(c)) => {
                stats.responses_unknown_code += 1;
                assert_eq!(RefBody::UnknownCode(c), expected);
                assert!(ErrorCode::from_u16(c).is_none());
            }
            Err(e) => {
                stats.responses_refused += 1;
                match (&e, expected) {
                    (BodyError::Malformed(_), RefBody::Malformed)
                    | (BodyError::TrailingBytes, RefBody::Trailing) => {}
                    _ => panic!(
                        "response {} refused with {e:?}, the reference says {expected:?}",
                        stringify!($t)
                    ),
                }
            }
        }
    }};
}

/// Every decoder of `kind` on `body`: its request type (none for GOODBYE, server to client
/// only) and its response type (an error body for GOODBYE).
fn check_body(kind: u8, body: &[u8], stats: &mut Stats) {
    match kind {
        0x00 => check_response!(Empty, EMPTY, body, stats),
        0x01 => {
            check_request!(HelloRequest<'_>, HELLO_REQ, body, stats);
            check_response!(HelloResponse<'_>, HELLO_RESP, body, stats);
        }
        0x02 => {
            check_request!(CreateTopicRequest<'_>, CREATE_TOPIC_REQ, body, stats);
            check_response!(CreateTopicResponse<'_>, CREATE_TOPIC_RESP, body, stats);
        }
        0x03 => {
            check_request!(Empty, EMPTY, body, stats);
            check_response!(ListTopicsResponse<'_>, LIST_TOPICS_RESP, body, stats);
        }
        0x04 => {
            check_request!(DescribeTopicRequest<'_>, DESCRIBE_TOPIC_REQ, body, stats);
            check_response!(DescribeTopicResponse<'_>, DESCRIBE_TOPIC_RESP, body, stats);
        }
        0x05 => {
            check_request!(ProduceRequest<'_>, PRODUCE_REQ, body, stats);
            check_response!(ProduceResponse, PRODUCE_RESP, body, stats);
        }
        0x06 => {
            check_request!(FetchRequest<'_>, FETCH_REQ, body, stats);
            check_response!(FetchResponse<'_>, FETCH_RESP, body, stats);
        }
        0x07 => {
            check_request!(ListOffsetsRequest<'_>, LIST_OFFSETS_REQ, body, stats);
            check_response!(ListOffsetsResponse, LIST_OFFSETS_RESP, body, stats);
        }
        0x08 => {
            check_request!(Empty, EMPTY, body, stats);
            check_response!(StatusResponse<'_>, STATUS_RESP, body, stats);
        }
        0x10 => {
            check_request!(InitProducerRequest<'_>, INIT_PRODUCER_REQ, body, stats);
            check_response!(InitProducerResponse, INIT_PRODUCER_RESP, body, stats);
        }
        0x11 => {
            check_request!(
                ProduceIdempotentRequest<'_>,
                PRODUCE_IDEMPOTENT_REQ,
                body,
                stats
            );
            check_response!(
                ProduceIdempotentResponse,
                PRODUCE_IDEMPOTENT_RESP,
                body,
                stats
            );
        }
        0x30 => {
            check_request!(AtomicWriteRequest<'_>, ATOMIC_WRITE_REQ, body, stats);
            check_response!(AtomicWriteResponse<'_>, ATOMIC_WRITE_RESP, body, stats);
        }
        0x20 => {
            check_request!(JoinGroupRequest<'_>, JOIN_GROUP_REQ, body, stats);
            check_response!(JoinGroupResponse<'_>, JOIN_GROUP_RESP, body, stats);
        }
        0x21 => {
            check_request!(MemberRequest<'_>, MEMBER_REQ, body, stats);
            check_response!(SyncGroupResponse<'_>, SYNC_GROUP_RESP, body, stats);
        }
        0x22 => {
            check_request!(MemberRequest<'_>, MEMBER_REQ, body, stats);
            check_response!(Empty, EMPTY, body, stats);
        }
        0x23 => {
            check_request!(LeaveGroupRequest<'_>, LEAVE_GROUP_REQ, body, stats);
            check_response!(Empty, EMPTY, body, stats);
        }
        0x24 => {
            check_request!(CommitOffsetsRequest<'_>, COMMIT_OFFSETS_REQ, body, stats);
            check_response!(Empty, EMPTY, body, stats);
        }
        0x25 => {
            check_request!(FetchOffsetsRequest<'_>, FETCH_OFFSETS_REQ, body, stats);
            check_response!(FetchOffsetsResponse<'_>, FETCH_OFFSETS_RESP, body, stats);
        }
        0x26 => {
            check_request!(Empty, EMPTY, body, stats);
            check_response!(ListGroupsResponse<'_>, LIST_GROUPS_RESP, body, stats);
        }
        0x27 => {
            check_request!(DescribeGroupRequest<'_>, DESCRIBE_GROUP_REQ, body, stats);
            check_response!(DescribeGroupResponse<'_>, DESCRIBE_GROUP_RESP, body, stats);
        }
        0x40 => {
            check_request!(Empty, EMPTY, body, stats);
            check_response!(
                ForwarderStatusResponse<'_>,
                FORWARDER_STATUS_RESP,
                body,
                stats
            );
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Frame readers
// ---------------------------------------------------------------------------------------------

/// How walking a stream with `frame::decode` ends.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// Not a frame: the error.
    Invalid(FrameError),
    /// The stream ends inside a frame (or between two): this many bytes are left.
    Partial(usize),
}

/// Walks `stream` frame by frame with `frame::decode`: the frames, and how it ends.
fn walk(stream: &[u8], max: u32, stats: &mut Stats) -> (Vec<(FrameHeader, usize, usize)>, End) {
    let mut frames = Vec::new();
    let mut pos = 0;
    loop {
        match checked_decode(&stream[pos..], max, stats) {
            Ok(Decoded::Frame { header, len }) => {
                frames.push((header, pos + HEADER_BYTES, pos + len));
                pos += len;
            }
            Ok(Decoded::Incomplete { .. }) => return (frames, End::Partial(stream.len() - pos)),
            Err(e) => return (frames, End::Invalid(e)),
        }
    }
}

/// Reads `$stream` through a `FrameReader<$n>` from the reader `$src`, retrying transient I/O
/// errors, and compares with walking it. (A macro, not a function: a generic one would name
/// `embedded_io`, which the fuzz crate does not depend on.)
macro_rules! check_reader {
    ($n:literal, $stream:expr, $src:expr, $stats:expr) => {{
        let stream: &[u8] = $stream;
        let stats: &mut Stats = $stats;
        let mut src = $src;
        let (frames, end) = walk(stream, $n, stats);
        let mut reader = FrameReader::<$n>::new();
        let mut i = 0;
        let mut interruptions = 0u64;
        loop {
            match reader.read_frame(&mut src) {
                Ok((header, body)) => {
                    let Some(&(h, start, stop)) = frames.get(i) else {
                        panic!(
                            "FrameReader<{}> returned frame {i}, walking found {}",
                            $n,
                            frames.len()
                        )
                    };
                    assert_eq!(header, h, "FrameReader<{}> frame {i}", $n);
                    assert_eq!(body, &stream[start..stop], "FrameReader<{}> body {i}", $n);
                    stats.reader_frames += 1;
                    i += 1;
                }
                Err(ReadFrameError::Io(_)) => {
                    interruptions += 1;
                    assert!(
                        interruptions < 100_000,
                        "FrameReader<{}> makes no progress",
                        $n
                    );
                }
                Err(ReadFrameError::Frame(e)) => {
                    assert_eq!(i, frames.len(), "FrameReader<{}> stopped early: {e:?}", $n);
                    assert_eq!(End::Invalid(e), end, "FrameReader<{}>", $n);
                    break;
                }
                Err(ReadFrameError::Eof { partial }) => {
                    assert_eq!(i, frames.len(), "FrameReader<{}> hit EOF early", $n);
                    assert_eq!(End::Partial(partial), end, "FrameReader<{}>", $n);
                    break;
                }
            }
        }
        stats.reader_interruptions += interruptions;
    }};
}

/// Hands out a stream a few bytes at a time, with a transient `Interrupted` error now and then
/// (never twice in a row).
#[cfg(test)]
struct Chunked<'a> {
    rest: &'a [u8],
    rng: Rng,
    interrupted: bool,
}

#[cfg(test)]
impl embedded_io::ErrorType for Chunked<'_> {
    type Error = embedded_io::ErrorKind;
}

#[cfg(test)]
impl embedded_io::Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        if !self.interrupted && self.rng.chance(1, 8) {
            self.interrupted = true;
            return Err(embedded_io::ErrorKind::Interrupted);
        }
        self.interrupted = false;
        let n = (1 + self.rng.below(40) as usize)
            .min(buf.len())
            .min(self.rest.len());
        buf[..n].copy_from_slice(&self.rest[..n]);
        self.rest = &self.rest[n..];
        Ok(n)
    }
}

// ---------------------------------------------------------------------------------------------
// The fuzz entry point (shared with fuzz/fuzz_targets/frame.rs)
// ---------------------------------------------------------------------------------------------

/// Every kind of version 1 (PROTOCOL.md section 3).
const KNOWN_KINDS: [u8; 21] = [
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x10, 0x11, 0x20, 0x21, 0x22, 0x23, 0x24,
    0x25, 0x26, 0x27, 0x30, 0x40,
];

/// Option bit: rewrite the header CRC of every frame met while walking the stream.
pub const OPT_FIX_CRC: u8 = 1;
/// Option bit: decode every body with the decoders of every kind.
pub const OPT_ALL_KINDS: u8 = 2;

/// Limits `frame::decode` is tried with at every frame boundary, besides ones derived from the
/// frame at hand.
const MAXES: [u32; 9] = [0, 15, 16, 17, 64, 1024, 1 << 20, u32::MAX - 15, u32::MAX];

/// One fuzz input: an options byte, then a stream of frames (see the module documentation).
pub fn fuzz_frame(data: &[u8], stats: &mut Stats) {
    stats.inputs += 1;
    let Some((&opts, stream)) = data.split_first() else {
        return;
    };
    let mut stream = stream.to_vec();
    if opts & OPT_FIX_CRC != 0 {
        let mut pos = 0;
        while stream.len() - pos >= HEADER_BYTES {
            let crc = crc32c_reference(&stream[pos..pos + 12]);
            stream[pos + 12..pos + 16].copy_from_slice(&crc.to_le_bytes());
            match frame::decode(&stream[pos..], u32::MAX) {
                Ok(Decoded::Frame { len, .. }) => pos += len,
                _ => break,
            }
        }
    }

    // Every frame boundary of the stream (and where the walk stops), against many limits and
    // on several prefixes.
    let (frames, end) = walk(&stream, u32::MAX, stats);
    match end {
        End::Invalid(FrameError::HeaderCrc) => stats.header_crc += 1,
        End::Invalid(FrameError::ReservedFlags { .. }) => stats.reserved_flags += 1,
        End::Invalid(FrameError::TooLarge { .. }) => stats.too_large += 1,
        End::Partial(0) => {}
        End::Partial(_) => stats.incomplete += 1,
    }
    stats.frames += frames.len() as u64;
    let mut starts: Vec<usize> = frames.iter().map(|f| f.1 - HEADER_BYTES).collect();
    starts.push(frames.last().map_or(0, |f| f.2));
    for &start in &starts {
        let buf = &stream[start..];
        let announced = if buf.len() >= HEADER_BYTES {
            16 + u64::from(u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]))
        } else {
            0
        };
        let derived = [announced, announced.saturating_sub(1), buf.len() as u64];
        for max in MAXES.into_iter().chain(
            derived
                .into_iter()
                .map(|m| m.min(u64::from(u32::MAX)) as u32),
        ) {
            let _ = checked_decode(buf, max, stats);
        }
        let len = buf.len();
        for cut in [0, 1, 15, 16, 17, len / 2, len.saturating_sub(1)] {
            if cut < len {
                let _ = checked_decode(&buf[..cut], u32::MAX, stats);
                let _ = checked_decode(&buf[..cut], 1024, stats);
            }
        }
    }

    // Every well-delimited body through the decoders of its kind (or of every kind).
    for &(header, start, stop) in &frames {
        let body = &stream[start..stop];
        if opts & OPT_ALL_KINDS != 0 {
            for kind in KNOWN_KINDS {
                check_body(kind, body, stats);
            }
        } else {
            check_body(header.kind, body, stats);
        }
    }

    // The device-side reader over the same stream.
    check_reader!(64, &stream, &stream[..], stats);
    check_reader!(4096, &stream, &stream[..], stats);
    #[cfg(test)]
    check_reader!(
        4096,
        &stream,
        Chunked {
            rest: &stream,
            rng: Rng(u64::from(opts >> 2)),
            interrupted: false,
        },
        stats
    );
}

// ---------------------------------------------------------------------------------------------
// PRNG
// ---------------------------------------------------------------------------------------------

/// splitmix64.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform enough in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn upto(&mut self, n: usize) -> usize {
        self.below(n as u64 + 1) as usize
    }
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }
    pub fn u8(&mut self) -> u8 {
        self.next_u64() as u8
    }
    /// Values at the varint length boundaries as often as random ones of random width.
    pub fn interesting(&mut self) -> u64 {
        const EDGES: [u64; 12] = [
            0,
            1,
            0x7f,
            0x80,
            0x3fff,
            0x4000,
            0xffff,
            0x1_0000,
            u32::MAX as u64,
            1 << 32,
            i64::MAX as u64,
            u64::MAX,
        ];
        if self.chance(1, 2) {
            EDGES[self.below(EDGES.len() as u64) as usize]
        } else {
            let bits = self.below(65);
            if bits == 64 {
                self.next_u64()
            } else {
                self.next_u64() & ((1u64 << bits) - 1)
            }
        }
    }
    fn u32(&mut self) -> u32 {
        self.interesting() as u32
    }
    fn i64(&mut self) -> i64 {
        match self.below(4) {
            0 => i64::MIN,
            1 => -(self.interesting() as i64 & i64::MAX),
            _ => self.interesting() as i64,
        }
    }
    fn size(&mut self) -> usize {
        match self.below(16) {
            0..=9 => self.upto(8),
            10..=14 => self.upto(40),
            _ => 100 + self.upto(200),
        }
    }
    fn bytes(&mut self) -> Vec<u8> {
        let n = self.size();
        (0..n).map(|_| self.u8()).collect()
    }
    fn string(&mut self) -> String {
        const PIECES: [&str; 10] = ["a", "Z", "0", "-", ".", "_", "é", "日本", "😀", "sensors"];
        let n = self.size();
        let mut s = String::new();
        while s.len() < n {
            s.push_str(PIECES[self.below(PIECES.len() as u64) as usize]);
        }
        s
    }
}

// ---------------------------------------------------------------------------------------------
// Valid frames of every kind
// ---------------------------------------------------------------------------------------------

/// A record's owned parts.
struct Rec {
    offset: u64,
    timestamp_ms: i64,
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
}

fn gen_records(rng: &mut Rng) -> Vec<Rec> {
    let n = match rng.below(8) {
        0 => 0,
        1..=5 => 1,
        _ => 2 + rng.upto(3),
    };
    (0..n)
        .map(|_| Rec {
            offset: rng.interesting(),
            timestamp_ms: rng.i64(),
            key: rng.chance(2, 3).then(|| rng.bytes()),
            value: rng.bytes(),
            headers: (0..rng.upto(3))
                .map(|_| (rng.string(), rng.bytes()))
                .collect(),
        })
        .collect()
}

fn headers_of(recs: &[Rec]) -> Vec<Vec<Header<'_>>> {
    recs.iter()
        .map(|r| {
            r.headers
                .iter()
                .map(|(n, v)| Header { name: n, value: v })
                .collect()
        })
        .collect()
}

/// A valid frame: a request, an OK response or an error response of a random kind, or a
/// GOODBYE.
fn gen_frame(rng: &mut Rng) -> Vec<u8> {
    let mut buf = vec![0u8; 1 << 16];
    let kind = KNOWN_KINDS[rng.below(KNOWN_KINDS.len() as u64) as usize];
    let id = if rng.chance(1, 2) {
        rng.below(16) as u32
    } else {
        rng.next_u64() as u32
    };
    let what = if kind == Kind::Goodbye as u8 {
        2
    } else {
        rng.below(7)
    };
    let n = match what {
        // An error response (a GOODBYE is always one).
        2 => {
            let code = ErrorCode::ALL[1 + rng.below(ErrorCode::ALL.len() as u64 - 1) as usize];
            let message = rng.string();
            body::encode_error(&mut buf, kind, id, code, &message)
        }
        // A request.
        0 | 1 | 3 => gen_request(rng, &mut buf, kind, id),
        // An OK response.
        _ => gen_ok(rng, &mut buf, kind, id),
    }
    .expect("a generated frame encodes");
    buf.truncate(n);
    buf
}

fn gen_request(rng: &mut Rng, buf: &mut [u8], kind: u8, id: u32) -> Result<usize, BodyError> {
    let s = rng.string();
    match kind {
        0x01 => body::encode_request(
            buf,
            kind,
            id,
            &HelloRequest {
                version_min: rng.u8(),
                version_max: rng.u8(),
                client: &s,
            },
        ),
        0x02 => body::encode_request(
            buf,
            kind,
            id,
            &CreateTopicRequest {
                name: &s,
                partitions: rng.u32(),
            },
        ),
        0x03 | 0x08 | 0x26 | 0x40 => body::encode_request(buf, kind, id, &Empty {}),
        0x20..=0x25 | 0x27 => gen_group_request(rng, buf, kind, id, &s),
        0x10 | 0x11 | 0x30 => gen_producer_request(rng, buf, kind, id, &s),
        0x04 => body::encode_request(buf, kind, id, &DescribeTopicRequest { name: &s }),
        0x05 => {
            let recs = gen_records(rng);
            let hs = headers_of(&recs);
            let ins = records_in(&recs, &hs);
            let acks =
                [WireAcks::None, WireAcks::Written, WireAcks::Durable][rng.below(3) as usize];
            body::encode_request(
                buf,
                kind,
                id,
                &ProduceRequest {
                    topic: &s,
                    partition: rng.chance(1, 2).then(|| rng.u32()),
                    acks,
                    records: Seq::Slice(&ins),
                },
            )
        }
        0x06 => body::encode_request(
            buf,
            kind,
            id,
            &FetchRequest {
                topic: &s,
                partition: rng.u32(),
                offset: rng.interesting(),
                bytes_max: rng.u32(),
                wait_ms_max: rng.u32(),
            },
        ),
        _ => body::encode_request(
            buf,
            kind,
            id,
            &ListOffsetsRequest {
                topic: &s,
                partition: rng.u32(),
            },
        ),
    }
}

/// `recs` as wire records borrowing their headers (`hs = headers_of(recs)`).
fn records_in<'a>(recs: &'a [Rec], hs: &'a [Vec<Header<'a>>]) -> Vec<RecordIn<'a>> {
    recs.iter()
        .zip(hs)
        .map(|(r, h)| RecordIn {
            timestamp_ms: r.timestamp_ms,
            key: r.key.as_deref(),
            value: &r.value,
            headers: Seq::Slice(h),
        })
        .collect()
}

/// A request of an idempotent producer kind (0x10, 0x11, 0x30).
fn gen_producer_request(
    rng: &mut Rng,
    buf: &mut [u8],
    kind: u8,
    id: u32,
    s: &str,
) -> Result<usize, BodyError> {
    let producer_id = rng.interesting();
    let epoch = rng.u32() as u16;
    match kind {
        0x10 => body::encode_request(buf, kind, id, &InitProducerRequest { name: s }),
        0x11 => {
            let recs = gen_records(rng);
            let hs = headers_of(&recs);
            let ins = records_in(&recs, &hs);
            body::encode_request(
                buf,
                kind,
                id,
                &ProduceIdempotentRequest {
                    producer_id,
                    epoch,
                    topic: s,
                    partition: rng.u32(),
                    first_sequence: rng.u32(),
                    records: Seq::Slice(&ins),
                },
            )
        }
        _ => {
            let topics: Vec<String> = (0..rng.upto(3)).map(|_| rng.string()).collect();
            let recs: Vec<Vec<Rec>> = topics.iter().map(|_| gen_records(rng)).collect();
            let hs: Vec<Vec<Vec<Header<'_>>>> = recs.iter().map(|r| headers_of(r)).collect();
            let ins: Vec<Vec<RecordIn<'_>>> = recs
                .iter()
                .zip(&hs)
                .map(|(r, h)| records_in(r, h))
                .collect();
            let outputs: Vec<AtomicOutput<'_>> = topics
                .iter()
                .zip(&ins)
                .map(|(t, r)| AtomicOutput {
                    topic: t,
                    partition: rng.u32(),
                    first_sequence: rng.u32(),
                    records: Seq::Slice(r),
                })
                .collect();
            let offsets: Vec<OffsetCommit<'_>> = topics
                .iter()
                .map(|t| OffsetCommit {
                    topic: t,
                    partition: rng.u32(),
                    offset: rng.interesting(),
                    metadata: s,
                })
                .collect();
            let member = rng.string();
            let commit = rng.chance(2, 3).then(|| AtomicCommit {
                group: s,
                member: rng.chance(1, 2).then_some(member.as_str()),
                generation: rng.u32(),
                offsets: Seq::Slice(&offsets),
            });
            body::encode_request(
                buf,
                kind,
                id,
                &AtomicWriteRequest {
                    producer_id,
                    epoch,
                    outputs: Seq::Slice(&outputs),
                    commit,
                },
            )
        }
    }
}

/// A request of a group kind (0x20–0x25, 0x27).
fn gen_group_request(
    rng: &mut Rng,
    buf: &mut [u8],
    kind: u8,
    id: u32,
    s: &str,
) -> Result<usize, BodyError> {
    let names: Vec<String> = (0..rng.upto(4)).map(|_| rng.string()).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let member = rng.string();
    let opt = rng.chance(1, 2).then_some(member.as_str());
    let parts: Vec<GroupPartition<'_>> = refs
        .iter()
        .map(|t| GroupPartition {
            topic: t,
            partition: rng.u32(),
        })
        .collect();
    match kind {
        0x20 => body::encode_request(
            buf,
            kind,
            id,
            &JoinGroupRequest {
                group: s,
                member: opt,
                client_id: &member,
                session_timeout_ms: rng.u32(),
                strategies: Seq::Slice(&refs),
                topics: Seq::Slice(&refs),
            },
        ),
        0x21 | 0x22 => body::encode_request(
            buf,
            kind,
            id,
            &MemberRequest {
                group: s,
                member: &member,
                generation: rng.u32(),
            },
        ),
        0x23 => body::encode_request(
            buf,
            kind,
            id,
            &LeaveGroupRequest {
                group: s,
                member: &member,
            },
        ),
        0x24 => {
            let offsets: Vec<OffsetCommit<'_>> = refs
                .iter()
                .map(|t| OffsetCommit {
                    topic: t,
                    partition: rng.u32(),
                    offset: rng.interesting(),
                    metadata: t,
                })
                .collect();
            body::encode_request(
                buf,
                kind,
                id,
                &CommitOffsetsRequest {
                    group: s,
                    member: opt,
                    generation: rng.u32(),
                    offsets: Seq::Slice(&offsets),
                },
            )
        }
        0x25 => body::encode_request(
            buf,
            kind,
            id,
            &FetchOffsetsRequest {
                group: s,
                member: opt,
                generation: rng.u32(),
                partitions: Seq::Slice(&parts),
            },
        ),
        _ => body::encode_request(buf, kind, id, &DescribeGroupRequest { group: s }),
    }
}

/// An OK response of a group kind (0x20–0x27).
fn gen_group_ok(rng: &mut Rng, buf: &mut [u8], kind: u8, id: u32) -> Result<usize, BodyError> {
    let s = rng.string();
    let names: Vec<String> = (0..rng.upto(4)).map(|_| rng.string()).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let parts: Vec<GroupPartition<'_>> = refs
        .iter()
        .map(|t| GroupPartition {
            topic: t,
            partition: rng.u32(),
        })
        .collect();
    match kind {
        0x20 => body::encode_ok(
            buf,
            kind,
            id,
            &JoinGroupResponse {
                generation: rng.u32(),
                member: &s,
                leader: &s,
                strategy: &s,
                assignment: Seq::Slice(&parts),
            },
        ),
        0x21 => body::encode_ok(
            buf,
            kind,
            id,
            &SyncGroupResponse {
                assignment: Seq::Slice(&parts),
            },
        ),
        0x22..=0x24 => body::encode_ok(buf, kind, id, &Empty {}),
        0x25 => {
            let offsets: Vec<OffsetFetched<'_>> = refs
                .iter()
                .map(|t| OffsetFetched {
                    topic: t,
                    partition: rng.u32(),
                    committed: rng.chance(1, 2).then(|| rng.interesting()),
                    metadata: t,
                    commit_timestamp_ms: rng.interesting(),
                    earliest: rng.interesting(),
                    next: rng.interesting(),
                })
                .collect();
            body::encode_ok(
                buf,
                kind,
                id,
                &FetchOffsetsResponse {
                    offsets: Seq::Slice(&offsets),
                },
            )
        }
        0x26 => {
            let groups: Vec<GroupInfo<'_>> = refs
                .iter()
                .map(|g| GroupInfo {
                    group: g,
                    state: rng.u8(),
                    members: rng.u32(),
                })
                .collect();
            body::encode_ok(
                buf,
                kind,
                id,
                &ListGroupsResponse {
                    groups: Seq::Slice(&groups),
                },
            )
        }
        _ => {
            let members: Vec<GroupMember<'_>> = refs
                .iter()
                .map(|m| GroupMember {
                    member: m,
                    client_id: m,
                    session_timeout_ms: rng.u32(),
                    topics: Seq::Slice(&refs),
                    assignment: Seq::Slice(&parts),
                })
                .collect();
            body::encode_ok(
                buf,
                kind,
                id,
                &DescribeGroupResponse {
                    group: &s,
                    exists: rng.chance(1, 2),
                    state: rng.u8(),
                    generation: rng.u32(),
                    strategy: rng.chance(1, 2).then_some(s.as_str()),
                    leader: rng.chance(1, 2).then_some(s.as_str()),
                    members: Seq::Slice(&members),
                },
            )
        }
    }
}

fn gen_ok(rng: &mut Rng, buf: &mut [u8], kind: u8, id: u32) -> Result<usize, BodyError> {
    if (0x20..=0x27).contains(&kind) {
        return gen_group_ok(rng, buf, kind, id);
    }
    let s = rng.string();
    let names: Vec<String> = (0..rng.upto(4)).map(|_| rng.string()).collect();
    match kind {
        0x01 => body::encode_ok(
            buf,
            kind,
            id,
            &HelloResponse {
                version: rng.u8(),
                server: &s,
                frame_bytes_max: rng.u32(),
                batch_bytes_max: rng.u32(),
                inflight_max: rng.u32(),
            },
        ),
        0x02 => body::encode_ok(
            buf,
            kind,
            id,
            &CreateTopicResponse {
                name: &s,
                partitions: rng.u32(),
            },
        ),
        0x03 => {
            let topics: Vec<TopicInfo<'_>> = names
                .iter()
                .map(|n| TopicInfo {
                    name: n,
                    partitions: rng.u32(),
                })
                .collect();
            body::encode_ok(
                buf,
                kind,
                id,
                &ListTopicsResponse {
                    topics: Seq::Slice(&topics),
                },
            )
        }
        0x04 => {
            let parts: Vec<PartitionInfo> = (0..rng.upto(4))
                .map(|_| PartitionInfo {
                    partition: rng.u32(),
                    earliest: rng.interesting(),
                    next: rng.interesting(),
                })
                .collect();
            body::encode_ok(
                buf,
                kind,
                id,
                &DescribeTopicResponse {
                    name: &s,
                    partitions: Seq::Slice(&parts),
                },
            )
        }
        0x05 => body::encode_ok(
            buf,
            kind,
            id,
            &ProduceResponse {
                partition: rng.u32(),
                base_offset: rng.interesting(),
                count: rng.u32(),
            },
        ),
        0x06 => {
            let recs = gen_records(rng);
            let hs = headers_of(&recs);
            let outs: Vec<RecordOut<'_>> = recs
                .iter()
                .zip(&hs)
                .map(|(r, h)| RecordOut {
                    offset: r.offset,
                    timestamp_ms: r.timestamp_ms,
                    key: r.key.as_deref(),
                    value: &r.value,
                    headers: Seq::Slice(h),
                })
                .collect();
            body::encode_ok(
                buf,
                kind,
                id,
                &FetchResponse {
                    partition: rng.u32(),
                    earliest: rng.interesting(),
                    next: rng.interesting(),
                    records: Seq::Slice(&outs),
                },
            )
        }
        0x10 => body::encode_ok(
            buf,
            kind,
            id,
            &InitProducerResponse {
                producer_id: rng.interesting(),
                epoch: rng.u32() as u16,
            },
        ),
        0x11 => body::encode_ok(
            buf,
            kind,
            id,
            &ProduceIdempotentResponse {
                partition: rng.u32(),
                base_offset: rng.interesting(),
                count: rng.u32(),
                duplicate: rng.chance(1, 2),
            },
        ),
        0x30 => {
            let results: Vec<AtomicOutputResult<'_>> = names
                .iter()
                .map(|n| AtomicOutputResult {
                    topic: n,
                    partition: rng.u32(),
                    base_offset: rng.interesting(),
                    count: rng.u32(),
                })
                .collect();
            body::encode_ok(
                buf,
                kind,
                id,
                &AtomicWriteResponse {
                    outputs: Seq::Slice(&results),
                    duplicate: rng.chance(1, 2),
                },
            )
        }
        0x07 => body::encode_ok(
            buf,
            kind,
            id,
            &ListOffsetsResponse {
                earliest: rng.interesting(),
                next: rng.interesting(),
            },
        ),
        0x40 => {
            let upstream: Vec<String> = names.iter().map(|_| rng.string()).collect();
            let parts: Vec<ForwardPartition<'_>> = names
                .iter()
                .zip(&upstream)
                .map(|(n, u)| ForwardPartition {
                    topic: n,
                    partition: rng.u32(),
                    upstream_topic: u,
                    position: rng.chance(1, 2).then(|| rng.interesting()),
                    durable_next: rng.interesting(),
                    bytes_behind: rng.interesting(),
                    oldest_unforwarded_ms: rng.chance(1, 2).then(|| rng.interesting() as i64),
                    last_commit_ms: rng.chance(1, 2).then(|| rng.interesting() as i64),
                })
                .collect();
            body::encode_ok(
                buf,
                kind,
                id,
                &ForwarderStatusResponse {
                    configured: rng.chance(1, 2),
                    state: rng.u8(),
                    last_error: rng.chance(1, 2).then_some(s.as_str()),
                    last_commit_ms: rng.chance(1, 2).then(|| rng.interesting() as i64),
                    commits: rng.interesting(),
                    records_forwarded: rng.interesting(),
                    gaps: rng.interesting(),
                    partitions: Seq::Slice(&parts),
                },
            )
        }
        _ => {
            let parts: Vec<PartitionStatus<'_>> = names
                .iter()
                .map(|n| PartitionStatus {
                    topic: n,
                    partition: rng.u32(),
                    earliest: rng.interesting(),
                    next: rng.interesting(),
                })
                .collect();
            body::encode_ok(
                buf,
                kind,
                id,
                &StatusResponse {
                    uptime_ms: rng.interesting(),
                    ring_bytes: rng.interesting(),
                    ring_used_bytes: rng.interesting(),
                    segments_live: rng.u32(),
                    segments_total: rng.u32(),
                    connections: rng.u32(),
                    partitions: Seq::Slice(&parts),
                },
            )
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Mutations
// ---------------------------------------------------------------------------------------------

fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

/// A position, biased towards the body (past the header) when there is one.
fn pos_in(rng: &mut Rng, f: &[u8]) -> usize {
    if f.len() > HEADER_BYTES && rng.chance(3, 4) {
        HEADER_BYTES + rng.below((f.len() - HEADER_BYTES) as u64) as usize
    } else {
        rng.below(f.len().max(1) as u64) as usize
    }
}

/// One random edit of a frame.
fn mutate(rng: &mut Rng, f: &mut Vec<u8>, donor: &[u8]) {
    if f.is_empty() {
        f.push(rng.u8());
        return;
    }
    let p = pos_in(rng, f);
    match rng.below(15) {
        0 | 1 => f[p] ^= 1 << rng.below(8),
        2 => f[p] = [0x00, 0x01, 0x02, 0x7f, 0x80, 0xff][rng.below(6) as usize],
        3 => f[p] = rng.u8(),
        4 => {
            let n = rng.upto(f.len());
            f.truncate(n);
        }
        5 => {
            for _ in 0..1 + rng.below(24) {
                f.push(rng.u8());
            }
        }
        6 => {
            let b = rng.u8();
            f.insert(p, b);
        }
        7 => {
            let n = rng.upto(8).min(f.len() - p);
            f.drain(p..p + n);
        }
        8 => {
            // The body_bytes field: off by a little, or anything.
            if f.len() >= 4 {
                let actual = f.len().saturating_sub(HEADER_BYTES) as i64;
                let v = match rng.below(4) {
                    0 => (actual + rng.below(7) as i64 - 3).max(0) as u32,
                    1 => rng.u32(),
                    2 => u32::MAX - rng.below(32) as u32,
                    _ => 0,
                };
                f[0..4].copy_from_slice(&v.to_le_bytes());
            }
        }
        9 => {
            // The kind (another kind's decoders see this body), version or flags.
            if f.len() >= 8 {
                match rng.below(4) {
                    0 => f[5] = rng.below(10) as u8,
                    1 => f[5] = rng.u8(),
                    2 => f[4] = rng.u8(),
                    _ => {
                        let flags = if rng.chance(1, 2) {
                            FLAG_RESPONSE ^ u16::from_le_bytes([f[6], f[7]])
                        } else {
                            1 << rng.below(16)
                        };
                        f[6..8].copy_from_slice(&flags.to_le_bytes());
                    }
                }
            }
        }
        10 => {
            // A varint of an edge value, over or into the body.
            let v = varint(rng.interesting());
            if rng.chance(1, 2) {
                let end = (p + v.len()).min(f.len());
                f.splice(p..end, v);
            } else {
                f.splice(p..p, v);
            }
        }
        11 => {
            // A non-canonical varint (a zero continuation group): accepted, not reproduced.
            let v = rng.below(128) as u8;
            let nc = if rng.chance(1, 2) {
                vec![v | 0x80, 0x00]
            } else {
                vec![v | 0x80, 0x80, 0x00]
            };
            let take = if rng.chance(1, 2) { 1 } else { 0 };
            let end = (p + take).min(f.len());
            f.splice(p..end, nc);
        }
        12 => {
            // Copy a chunk of the frame elsewhere in it.
            let from = rng.below(f.len() as u64) as usize;
            let n = rng.upto(16).min(f.len() - from);
            let chunk = f[from..from + n].to_vec();
            let end = (p + n).min(f.len());
            f.splice(p..end, chunk);
        }
        13 => {
            // Splice in part of another valid frame's body.
            if donor.len() > HEADER_BYTES {
                let from = HEADER_BYTES + rng.below((donor.len() - HEADER_BYTES) as u64) as usize;
                let n = rng.upto(24).min(donor.len() - from);
                let end = (p + rng.upto(n)).min(f.len());
                f.splice(p..end, donor[from..from + n].iter().copied());
            }
        }
        _ => {
            // A count or a length one off: bump a small byte of the body up or down.
            if f[p] & 0x80 == 0 {
                f[p] = if rng.chance(1, 2) {
                    f[p].wrapping_add(1) & 0x7f
                } else {
                    f[p].wrapping_sub(1) & 0x7f
                };
            }
        }
    }
}

/// Sets `body_bytes` to the bytes actually there and recomputes the header CRC.
fn fix_header(f: &mut [u8], fix_len: bool, fix_crc: bool) {
    if f.len() < HEADER_BYTES {
        return;
    }
    if fix_len {
        let n = (f.len() - HEADER_BYTES) as u32;
        f[0..4].copy_from_slice(&n.to_le_bytes());
    }
    if fix_crc {
        let crc = crc32c_reference(&f[0..12]);
        f[12..16].copy_from_slice(&crc.to_le_bytes());
    }
}

/// One input in the layout of [`fuzz_frame`]: options, then 1..=4 frames, each valid or edited.
fn gen_input(rng: &mut Rng) -> Vec<u8> {
    let mut opts = rng.u8() & !(OPT_FIX_CRC | OPT_ALL_KINDS);
    if rng.chance(1, 4) {
        opts |= OPT_FIX_CRC;
    }
    if rng.chance(1, 4) {
        opts |= OPT_ALL_KINDS;
    }
    let mut input = vec![opts];
    let frames = match rng.below(8) {
        0..=4 => 1,
        5 | 6 => 2,
        _ => 3 + rng.upto(1),
    };
    for _ in 0..frames {
        let mut f = gen_frame(rng);
        if rng.chance(7, 8) {
            let donor = gen_frame(rng);
            let edits = match rng.below(8) {
                0..=4 => 1,
                5 | 6 => 2,
                _ => 3 + rng.upto(5),
            };
            for _ in 0..edits {
                mutate(rng, &mut f, &donor);
            }
            // Mostly with the header made consistent again, so the body decoders see the edits.
            let fix_len = rng.chance(3, 4);
            let fix_crc = rng.chance(7, 8);
            fix_header(&mut f, fix_len, fix_crc);
        }
        input.extend_from_slice(&f);
    }
    if rng.chance(1, 16) {
        let n = 1 + rng.upto(input.len() - 1);
        input.truncate(n);
    }
    input
}

// ---------------------------------------------------------------------------------------------
// Driver
// ---------------------------------------------------------------------------------------------

const BASE_SEED: u64 = 0x7072_6f74_6f63_6f6c; // "protocol"
/// Iterations of `make test` (each one input of one to four frames).
const ITERATIONS: u64 = 150_000;

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The seed of iteration `i`: independent of every other, so one iteration replays alone.
fn case_seed(base: u64, i: u64) -> u64 {
    Rng(base ^ Rng(i).next_u64()).next_u64()
}

/// Runs the iterations; a panic prints the seed, the iteration and the input.
fn run(base: u64, iterations: impl Iterator<Item = u64>, verbose: bool) -> Stats {
    let mut stats = Stats::default();
    for i in iterations {
        let seed = case_seed(base, i);
        let input = gen_input(&mut Rng(seed));
        if verbose {
            println!("iteration {i} (seed {seed:#018x}) input: {}", hex(&input));
        }
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| fuzz_frame(&input, &mut stats))) {
            eprintln!(
                "\nprotocol_fuzz: panic at iteration {i} (base seed {base:#018x}, case seed \
                 {seed:#018x}).\n\
                 replay: PROTOCOL_FUZZ_SEED={base:#x} PROTOCOL_FUZZ_REPLAY={i} cargo test --test \
                 protocol_fuzz -- --nocapture\n\
                 input ({} bytes, the `frame` cargo-fuzz target's layout): {}\n",
                input.len(),
                hex(&input)
            );
            resume_unwind(p);
        }
    }
    stats
}

#[test]
fn protocol_decoders_survive_mutated_frames() {
    let base = env_u64("PROTOCOL_FUZZ_SEED").unwrap_or(BASE_SEED);
    let start = Instant::now();
    if let Some(i) = env_u64("PROTOCOL_FUZZ_REPLAY") {
        let stats = run(base, i..i + 1, true);
        println!("protocol_fuzz: replayed iteration {i}: {stats:#?}");
        return;
    }
    let iterations = ITERATIONS * env_u64("PROTOCOL_FUZZ_SCALE").unwrap_or(1).max(1);
    let stats = run(base, 0..iterations, false);
    println!(
        "protocol_fuzz: {iterations} inputs in {:.2?} (seed {base:#x}): {stats:#?}",
        start.elapsed()
    );
    // The mutations must reach every outcome, or the test proves little.
    assert_eq!(stats.inputs, iterations);
    for (what, n) in [
        ("frames", stats.frames),
        ("incomplete", stats.incomplete),
        ("header CRC errors", stats.header_crc),
        ("reserved flags", stats.reserved_flags),
        ("too large", stats.too_large),
        ("requests decoded", stats.requests_ok),
        ("requests deeply valid", stats.requests_deep_ok),
        ("requests refused", stats.requests_refused),
        ("requests re-encoded exactly", stats.requests_exact),
        ("requests canonicalised", stats.requests_canonicalised),
        ("OK responses", stats.responses_ok),
        ("error responses", stats.responses_error),
        ("responses refused", stats.responses_refused),
        ("unknown codes", stats.responses_unknown_code),
        ("reader frames", stats.reader_frames),
        ("reader interruptions", stats.reader_interruptions),
    ] {
        assert!(n >= 100, "only {n} {what}: the mutations miss an outcome");
    }
}

/// The valid encodings themselves: every generated frame decodes, fully, and re-encodes to the
/// same bytes.
#[test]
fn generated_frames_are_valid() {
    let mut stats = Stats::default();
    let mut rng = Rng(BASE_SEED);
    for _ in 0..5_000 {
        let f = gen_frame(&mut rng);
        let Ok(Decoded::Frame { header, len }) = frame::decode(&f, u32::MAX) else {
            panic!("a generated frame does not decode: {}", hex(&f))
        };
        assert_eq!(len, f.len());
        let before = (
            stats.requests_exact,
            stats.responses_ok,
            stats.responses_error,
        );
        check_body(header.kind, &f[HEADER_BYTES..], &mut stats);
        let after = (
            stats.requests_exact,
            stats.responses_ok,
            stats.responses_error,
        );
        assert_ne!(before, after, "nothing decoded: {}", hex(&f));
    }
    assert_eq!(stats.requests_canonicalised, 0);
}

/// A few hand-made bodies the reference and the codec must judge alike (and that the random
/// mutations might rarely build).
#[test]
fn edge_bodies() {
    let mut stats = Stats::default();
    let cases: &[&[u8]] = &[
        // PRODUCE: empty topic, no partition, acks 2, empty records.
        &[0x00, 0x00, 0x02, 0x00, 0x00],
        // Records count 1 with zero bytes: the count exceeds the bytes.
        &[0x00, 0x00, 0x02, 0x01, 0x00],
        // Count 0 with one stray byte: validate refuses it.
        &[0x00, 0x00, 0x02, 0x00, 0x01, 0x00],
        // Byte length beyond the body.
        &[0x00, 0x00, 0x02, 0x01, 0x7f, 0x00],
        // Partition Some(u32::MAX), then a u32 varint with an overflowing last byte.
        &[0x00, 0x01, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x02, 0x00, 0x00],
        &[0x00, 0x01, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x02, 0x00, 0x00],
        // Option tag 2.
        &[0x00, 0x02, 0x02, 0x00, 0x00],
        // acks 3.
        &[0x00, 0x00, 0x03, 0x00, 0x00],
        // Non-canonical topic length (0 as two bytes).
        &[0x80, 0x00, 0x00, 0x02, 0x00, 0x00],
        // A u64 varint of 11 bytes, and one of 10 with a last byte over 1.
        &[
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ],
        &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
        &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
        // Invalid UTF-8 in a string.
        &[0x02, 0xc3, 0x28, 0x00],
        // Response codes: u16 max, one past it, and a known code with an empty message.
        &[0xff, 0xff, 0x03],
        &[0xff, 0xff, 0x04],
        &[0x0e, 0x00],
        &[0x0e, 0x00, 0x00],
        &[],
    ];
    for body in cases {
        for kind in KNOWN_KINDS {
            check_body(kind, body, &mut stats);
        }
    }
    // A FETCH response with one record whose header sequence lies about its count: the outer
    // sequence validates (each element decodes), the nested one does not.
    let resp: &[u8] = &[
        0x00, // code OK
        0x00, 0x00, 0x00, // partition, earliest, next
        0x01, 0x08, // records: 1 element, 8 bytes
        0x00, 0x00, 0x00, 0x00, // offset, timestamp, key None, value empty
        0x02, 0x02, 0x00, 0x00, // headers: count 2 in 2 bytes: one header ("", b"")
    ];
    let before = stats.responses_ok;
    check_body(Kind::Fetch as u8, resp, &mut stats);
    assert_eq!(stats.responses_ok, before + 1);
    match body::decode_response::<FetchResponse<'_>>(resp).unwrap() {
        Response::Ok(r) => {
            r.records.validate().unwrap();
            let rec = r.records.iter().next().unwrap().unwrap();
            assert!(rec.headers.validate().is_err());
            assert!(!r.deep());
        }
        Response::Err { .. } => panic!("an OK response"),
    }
}
