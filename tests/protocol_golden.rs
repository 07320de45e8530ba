//! Golden bytes for `docs/PROTOCOL.md`: every example of section 8 is pinned here byte for byte,
//! and the dumps in the document are read back and compared with the constants below, so the
//! document, these tests and the codec cannot drift apart. The kind and error-code numbers of
//! sections 3 and 5 are pinned too (against both the code and the document's tables): within
//! protocol version 1 none of this may change (PROTOCOL.md, section 7). If a test here fails,
//! fix whichever of the code or the document drifted; never "update the golden bytes" to match.
//!
//! The header CRC is checked with a bitwise CRC-32C written here from its definition, not with
//! the `crc` crate the codec uses, so a wrong CRC parameter set in the codec would show.

use outpost::protocol::body::{self, BodyError, Response};
use outpost::protocol::frame::{self, Decoded, FLAG_RESPONSE, FrameError, FrameHeader};
use outpost::protocol::messages::*;
use outpost::protocol::{DEFAULT_PORT, ErrorCode, HEADER_BYTES, Kind, Seq, VERSION};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Parses a one-line hex string (whitespace ignored).
fn unhex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(digits.len().is_multiple_of(2), "odd number of hex digits");
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).expect("hex"))
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78, init and xor-out 0xFFFFFFFF), bit by
/// bit from its definition.
fn crc32c_reference(data: &[u8]) -> u32 {
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

/// Checks the 16-byte header of `frame` field by field against the table of section 1, with
/// the CRC recomputed independently; returns the decoded header and the body.
fn check_header(
    frame_bytes: &[u8],
    kind: Kind,
    request_id: u32,
    response: bool,
) -> (FrameHeader, &[u8]) {
    let h = &frame_bytes[..HEADER_BYTES];
    let body_bytes = u32::from_le_bytes(h[0..4].try_into().unwrap());
    assert_eq!(
        body_bytes as usize,
        frame_bytes.len() - HEADER_BYTES,
        "body_bytes"
    );
    assert_eq!(h[4], 1, "version");
    assert_eq!(h[5], kind as u8, "kind");
    let flags = u16::from_le_bytes(h[6..8].try_into().unwrap());
    assert_eq!(flags, u16::from(response), "flags");
    assert_eq!(
        u32::from_le_bytes(h[8..12].try_into().unwrap()),
        request_id,
        "request_id"
    );
    assert_eq!(
        u32::from_le_bytes(h[12..16].try_into().unwrap()),
        crc32c_reference(&h[0..12]),
        "header_crc = CRC-32C of bytes 0..12"
    );

    // The codec agrees, with the exact frame bytes as the limit and with any larger limit.
    for max in [frame_bytes.len() as u32, 1 << 20, u32::MAX] {
        let Decoded::Frame { header, len } = frame::decode(frame_bytes, max).unwrap() else {
            panic!("a whole frame decodes as incomplete")
        };
        assert_eq!(len, frame_bytes.len());
        assert_eq!(
            header,
            FrameHeader {
                body_bytes,
                version: VERSION,
                kind: kind as u8,
                flags,
                request_id,
            }
        );
        assert_eq!(header.is_response(), response);
        assert_eq!(
            header.encode(),
            h,
            "FrameHeader::encode reproduces the header"
        );
    }
    // One byte less of limit: FRAME_TOO_LARGE, from the header alone.
    assert_eq!(
        frame::decode(&frame_bytes[..HEADER_BYTES], frame_bytes.len() as u32 - 1),
        Err(FrameError::TooLarge {
            frame_bytes: frame_bytes.len() as u64,
            frame_bytes_max: frame_bytes.len() as u32 - 1,
            request_id,
        })
    );
    // Every strict prefix is incomplete, and says how much is needed.
    for cut in 0..frame_bytes.len() {
        let needed = if cut < HEADER_BYTES {
            HEADER_BYTES
        } else {
            frame_bytes.len()
        };
        assert_eq!(
            frame::decode(&frame_bytes[..cut], 1 << 20),
            Ok(Decoded::Incomplete { needed }),
            "prefix of {cut} bytes"
        );
    }
    // A following frame's bytes do not change the answer.
    let mut two = frame_bytes.to_vec();
    two.extend_from_slice(frame_bytes);
    assert!(matches!(
        frame::decode(&two, 1 << 20),
        Ok(Decoded::Frame { len, .. }) if len == frame_bytes.len()
    ));
    let Ok(Decoded::Frame { header, .. }) = frame::decode(frame_bytes, u32::MAX) else {
        unreachable!()
    };
    (header, &frame_bytes[HEADER_BYTES..])
}

/// Flips each bit of the header in turn: every flip is a CRC mismatch (CRC-32C detects every
/// single-bit error), reported with request id 0.
fn check_header_bit_flips(frame_bytes: &[u8]) {
    for bit in 0..HEADER_BYTES * 8 {
        let mut f = frame_bytes.to_vec();
        f[bit / 8] ^= 1 << (bit % 8);
        let e = frame::decode(&f, u32::MAX).unwrap_err();
        assert_eq!(e, FrameError::HeaderCrc, "bit {bit}");
        assert_eq!(e.code(), ErrorCode::HeaderCrc);
        assert_eq!(e.request_id(), 0);
    }
}

fn encode_request<T: serde::Serialize>(kind: Kind, request_id: u32, body: &T) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let n = body::encode_request(&mut buf, kind as u8, request_id, body).unwrap();
    buf.truncate(n);
    buf
}

fn encode_ok<T: serde::Serialize>(kind: Kind, request_id: u32, body: &T) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let n = body::encode_ok(&mut buf, kind as u8, request_id, body).unwrap();
    buf.truncate(n);
    buf
}

fn encode_error(kind: Kind, request_id: u32, code: ErrorCode, message: &str) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let n = body::encode_error(&mut buf, kind as u8, request_id, code, message).unwrap();
    buf.truncate(n);
    buf
}

/// Asserts `got` is the golden frame, printing both in hex otherwise.
fn assert_golden(name: &str, got: &[u8], golden: &[u8]) {
    assert!(
        got == golden,
        "{name}: encoding drifted from the golden bytes\n   got {}\ngolden {}",
        hex(got),
        hex(golden)
    );
}

// ---------------------------------------------------------------------------------------------
// The examples of section 8 (each the exact hex of the whole frame: header, then body)
// ---------------------------------------------------------------------------------------------

/// Example 8.1: HELLO request, versions 1..=1, client "outpost-cli", request id 1.
const HELLO_REQUEST: &str = concat!(
    "0e000000",               // body_bytes 14
    "01",                     // version 1
    "01",                     // kind 0x01 HELLO
    "0000",                   // flags 0 (request)
    "01000000",               // request_id 1
    "db615cfe",               // header_crc
    "01",                     // version_min 1 (u8: one byte)
    "01",                     // version_max 1
    "0b",                     // client: length 11
    "6f7574706f73742d636c69", // "outpost-cli"
);

/// Example 8.2: PRODUCE request, topic "sensors", partition None, acks durable, request id 2,
/// one record (timestamp 1700000000000, key "dev-1", value "21.5", header ("unit", "C")).
const PRODUCE_REQUEST: &str = concat!(
    "27000000",         // body_bytes 39
    "01",               // version 1
    "05",               // kind 0x05 PRODUCE
    "0000",             // flags 0
    "02000000",         // request_id 2
    "549edeb4",         // header_crc
    "0773656e736f7273", // topic: length 7, "sensors"
    "00",               // partition: None
    "02",               // acks: durable
    "01",               // records: count 1
    "1b",               // records: byte length 27
    "80a0abfef962",     // timestamp_ms: zigzag(1700000000000) = 3400000000000 as a varint
    "01",               // key: Some
    "056465762d31",     // key: length 5, "dev-1"
    "0432312e35",       // value: length 4, "21.5"
    "01",               // headers: count 1
    "07",               // headers: byte length 7
    "04756e6974",       // name: length 4, "unit"
    "0143",             // value: length 1, "C"
);

/// Example 8.3: PRODUCE OK response to 8.2: partition 0, base_offset 42, count 1.
const PRODUCE_RESPONSE: &str = concat!(
    "04000000", // body_bytes 4
    "01",       // version 1
    "05",       // kind 0x05 PRODUCE
    "0100",     // flags: RESPONSE
    "02000000", // request_id 2
    "3b392f3a", // header_crc
    "00",       // code 0 OK
    "00",       // partition 0
    "2a",       // base_offset 42
    "01",       // count 1
);

const FETCH_ERROR_MESSAGE: &str = "offset 5 is below earliest 10 (next 20)";

/// Example 8.4: FETCH error response OFFSET_OUT_OF_RANGE, request id 3.
const FETCH_ERROR_RESPONSE: &str = concat!(
    "29000000",                             // body_bytes 41
    "01",                                   // version 1
    "06",                                   // kind 0x06 FETCH
    "0100",                                 // flags: RESPONSE
    "03000000",                             // request_id 3
    "7c05e817",                             // header_crc
    "0e",                                   // code 14 OFFSET_OUT_OF_RANGE
    "27",                                   // message: length 39
    "6f66667365742035206973",               // "offset 5 is"
    "2062656c6f77206561726c69657374203130", // " below earliest 10"
    "20286e657874203230",                   // " (next 20"
    "29",                                   // ")"
);

const GOODBYE_MESSAGE: &str = "frame of 2000000 bytes exceeds frame_bytes_max (1114112)";

/// Example 8.5: GOODBYE FRAME_TOO_LARGE, request id 9.
const GOODBYE_FRAME_TOO_LARGE: &str = concat!(
    "3a000000",                         // body_bytes 58
    "01",                               // version 1
    "00",                               // kind 0x00 GOODBYE
    "0100",                             // flags: RESPONSE
    "09000000",                         // request_id 9
    "197d9661",                         // header_crc
    "02",                               // code 2 FRAME_TOO_LARGE
    "38",                               // message: length 56
    "6672616d65206f662032303030303030", // "frame of 2000000"
    "206279746573206578636565647320",   // " bytes exceeds "
    "6672616d655f62797465735f6d6178",   // "frame_bytes_max"
    "20283131313431313229",             // " (1114112)"
);

/// Example 8.6: LIST_OFFSETS request, topic "sensors", partition 0, request id 4.
const LIST_OFFSETS_REQUEST: &str = concat!(
    "09000000",         // body_bytes 9
    "01",               // version 1
    "07",               // kind 0x07 LIST_OFFSETS
    "0000",             // flags 0
    "04000000",         // request_id 4
    "414a88bb",         // header_crc
    "0773656e736f7273", // topic: length 7, "sensors"
    "00",               // partition 0
);

/// Example 8.7: FORWARDER_STATUS OK response, request id 5: backing off after "connection
/// refused", one partition ("sensors"/0 to "edge.sensors").
const FORWARDER_STATUS_RESPONSE: &str = concat!(
    "4c000000",                             // body_bytes 76
    "01",                                   // version 1
    "40",                                   // kind 0x40 FORWARDER_STATUS
    "0100",                                 // flags: RESPONSE
    "05000000",                             // request_id 5
    "afd8be7e",                             // header_crc
    "00",                                   // code 0 OK
    "01",                                   // configured: true
    "02",                                   // state: 2 = backing off
    "01",                                   // last_error: Some
    "12",                                   // length 18
    "636f6e6e656374696f6e2072656675736564", // "connection refused"
    "01",                                   // last_commit_ms: Some
    "80a0abfef962",                         // zigzag(1700000000000) = 3400000000000
    "03",                                   // commits 3
    "2a",                                   // records_forwarded 42
    "00",                                   // gaps 0
    "01",                                   // partitions: count 1
    "29",                                   // partitions: byte length 41
    "0773656e736f7273",                     // topic: length 7, "sensors"
    "00",                                   // partition 0
    "0c656467652e73656e736f7273",           // upstream_topic: length 12, "edge.sensors"
    "012a",                                 // position: Some(42)
    "32",                                   // durable_next 50
    "a006",                                 // bytes_behind 800: 0x20 | 0x80, then 800 >> 7 = 6
    "01",                                   // oldest_unforwarded_ms: Some
    "c0f6a3fef962",                         // zigzag(1699999940000) = 3399999880000
    "01",                                   // last_commit_ms: Some
    "80a0abfef962",                         // zigzag(1700000000000)
);

/// Example 8.8: JOIN_GROUP request, request id 6: a first join (no member id) of group
/// "readers" by client "a", session 10000 ms, strategy "range", topic "sensors".
const JOIN_GROUP_REQUEST: &str = concat!(
    "1f000000",         // body_bytes 31
    "01",               // version 1
    "20",               // kind 0x20 JOIN_GROUP
    "0000",             // flags 0
    "06000000",         // request_id 6
    "477a5c9a",         // header_crc
    "0772656164657273", // group: length 7, "readers"
    "00",               // member: None
    "0161",             // client_id: length 1, "a"
    "904e",             // session_timeout_ms 10000: 0x10 | 0x80, then 10000 >> 7 = 0x4e
    "01",               // strategies: count 1
    "06",               // strategies: byte length 6
    "0572616e6765",     // length 5, "range"
    "01",               // topics: count 1
    "08",               // topics: byte length 8
    "0773656e736f7273", // length 7, "sensors"
);

/// Example 8.9: COMMIT_OFFSETS request, request id 7: member "a-1-0" of generation 3 of
/// "readers" commits offset 42 of "sensors" partition 0, no metadata.
const COMMIT_OFFSETS_REQUEST: &str = concat!(
    "1d000000",         // body_bytes 29
    "01",               // version 1
    "24",               // kind 0x24 COMMIT_OFFSETS
    "0000",             // flags 0
    "07000000",         // request_id 7
    "4ebd1a80",         // header_crc
    "0772656164657273", // group: length 7, "readers"
    "01",               // member: Some
    "05612d312d30",     // length 5, "a-1-0"
    "03",               // generation 3
    "01",               // offsets: count 1
    "0b",               // offsets: byte length 11
    "0773656e736f7273", // topic: length 7, "sensors"
    "00",               // partition 0
    "2a",               // offset 42
    "00",               // metadata: length 0
);

/// Example 8.10: INIT_PRODUCER request, name "pump-7", request id 10.
const INIT_PRODUCER_REQUEST: &str = concat!(
    "07000000",       // body_bytes 7
    "01",             // version 1
    "10",             // kind 0x10 INIT_PRODUCER
    "0000",           // flags 0
    "0a000000",       // request_id 10
    "2b5e7121",       // header_crc
    "0670756d702d37", // name: length 6, "pump-7"
);

/// Example 8.11: INIT_PRODUCER OK response to 8.10: producer_id 3, epoch 1.
const INIT_PRODUCER_RESPONSE: &str = concat!(
    "03000000", // body_bytes 3
    "01",       // version 1
    "10",       // kind 0x10 INIT_PRODUCER
    "0100",     // flags: RESPONSE
    "0a000000", // request_id 10
    "f265860b", // header_crc
    "00",       // code 0 OK
    "03",       // producer_id 3
    "01",       // epoch 1
);

/// Example 8.12: PRODUCE_IDEMPOTENT request, request id 11: producer 3, epoch 1, "sensors"
/// partition 0, first_sequence 5, one record (timestamp 1700000000000, no key, value "21.5",
/// no headers).
const PRODUCE_IDEMPOTENT_REQUEST: &str = concat!(
    "1c000000",         // body_bytes 28
    "01",               // version 1
    "11",               // kind 0x11 PRODUCE_IDEMPOTENT
    "0000",             // flags 0
    "0b000000",         // request_id 11
    "69abee50",         // header_crc
    "03",               // producer_id 3
    "01",               // epoch 1
    "0773656e736f7273", // topic: length 7, "sensors"
    "00",               // partition 0
    "05",               // first_sequence 5
    "01",               // records: count 1
    "0e",               // records: byte length 14
    "80a0abfef962",     // timestamp_ms: zigzag(1700000000000)
    "00",               // key: None
    "0432312e35",       // value: length 4, "21.5"
    "0000",             // headers: count 0, byte length 0
);

/// Example 8.13: PRODUCE_IDEMPOTENT OK response to a retry of 8.12: partition 0, base_offset
/// 42, count 1, duplicate.
const PRODUCE_IDEMPOTENT_RESPONSE: &str = concat!(
    "05000000", // body_bytes 5
    "01",       // version 1
    "11",       // kind 0x11 PRODUCE_IDEMPOTENT
    "0100",     // flags: RESPONSE
    "0b000000", // request_id 11
    "221be419", // header_crc
    "00",       // code 0 OK
    "00",       // partition 0
    "2a",       // base_offset 42
    "01",       // count 1
    "01",       // duplicate: true
);

/// Example 8.14: ATOMIC_WRITE request, request id 12: producer 3, epoch 1, one output ("7" to
/// "totals" partition 0, sequence 0) and the commit of offset 43 of "sensors" partition 0 by
/// member "a-1-0" of generation 3 of "readers".
const ATOMIC_WRITE_REQUEST: &str = concat!(
    "38000000",         // body_bytes 56
    "01",               // version 1
    "30",               // kind 0x30 ATOMIC_WRITE
    "0000",             // flags 0
    "0c000000",         // request_id 12
    "305c22eb",         // header_crc
    "03",               // producer_id 3
    "01",               // epoch 1
    "01",               // outputs: count 1
    "16",               // outputs: byte length 22
    "06746f74616c73",   // topic: length 6, "totals"
    "00",               // partition 0
    "00",               // first_sequence 0
    "010b",             // records: count 1, byte length 11
    "80a0abfef962",     // timestamp_ms: zigzag(1700000000000)
    "00",               // key: None
    "0137",             // value: length 1, "7"
    "0000",             // headers: count 0, byte length 0
    "01",               // commit: Some
    "0772656164657273", // group: length 7, "readers"
    "0105612d312d30",   // member: Some, length 5, "a-1-0"
    "03",               // generation 3
    "010b",             // offsets: count 1, byte length 11
    "0773656e736f7273", // topic: length 7, "sensors"
    "00",               // partition 0
    "2b",               // offset 43
    "00",               // metadata: length 0
);

/// Example 8.15: ATOMIC_WRITE OK response to 8.14: the output at offset 9 of "totals"
/// partition 0, not a duplicate.
const ATOMIC_WRITE_RESPONSE: &str = concat!(
    "0e000000",       // body_bytes 14
    "01",             // version 1
    "30",             // kind 0x30 ATOMIC_WRITE
    "0100",           // flags: RESPONSE
    "0c000000",       // request_id 12
    "bca74c88",       // header_crc
    "00",             // code 0 OK
    "010a",           // outputs: count 1, byte length 10
    "06746f74616c73", // topic: length 6, "totals"
    "00",             // partition 0
    "09",             // base_offset 9
    "01",             // count 1
    "00",             // duplicate: false
);

#[test]
fn example_8_1_hello_request() {
    let golden = unhex(HELLO_REQUEST);
    assert_eq!(golden.len(), 30);
    let req = HelloRequest {
        version_min: 1,
        version_max: 1,
        client: "outpost-cli",
    };
    let got = encode_request(Kind::Hello, 1, &req);
    assert_golden("HELLO request", &got, &golden);

    let (header, body) = check_header(&golden, Kind::Hello, 1, false);
    assert_eq!(header.body_bytes, 14);
    assert_eq!(
        u32::from_le_bytes(golden[12..16].try_into().unwrap()),
        0xFE5C_61DB
    );
    check_header_bit_flips(&golden);
    let d: HelloRequest<'_> = body::decode_request(body).unwrap();
    assert_eq!(d.version_min, 1);
    assert_eq!(d.version_max, 1);
    assert_eq!(d.client, "outpost-cli");
    assert_golden(
        "HELLO re-encoded",
        &encode_request(Kind::Hello, 1, &d),
        &golden,
    );
    // One byte more in the body is BAD_BODY material: trailing bytes.
    let mut longer = body.to_vec();
    longer.push(0);
    assert!(matches!(
        body::decode_request::<HelloRequest<'_>>(&longer),
        Err(BodyError::TrailingBytes)
    ));
}

#[test]
fn example_8_2_produce_request() {
    let golden = unhex(PRODUCE_REQUEST);
    assert_eq!(golden.len(), 55);
    let headers = [Header {
        name: "unit",
        value: b"C",
    }];
    let records = [RecordIn {
        timestamp_ms: 1_700_000_000_000,
        key: Some(b"dev-1"),
        value: b"21.5",
        headers: Seq::Slice(&headers),
    }];
    let req = ProduceRequest {
        topic: "sensors",
        partition: None,
        acks: WireAcks::Durable,
        records: Seq::Slice(&records),
    };
    let got = encode_request(Kind::Produce, 2, &req);
    assert_golden("PRODUCE request", &got, &golden);

    let (header, body) = check_header(&golden, Kind::Produce, 2, false);
    assert_eq!(header.body_bytes, 39);
    check_header_bit_flips(&golden);
    let d: ProduceRequest<'_> = body::decode_request(body).unwrap();
    assert_eq!(d.topic, "sensors");
    assert_eq!(d.partition, None);
    assert_eq!(d.acks, WireAcks::Durable);
    assert_eq!(d.records.len(), 1);
    // The records Seq borrows exactly the 27 element bytes (body bytes 12..39).
    let Seq::Encoded { count, bytes } = d.records else {
        panic!("a decoded Seq is Encoded")
    };
    assert_eq!(count, 1);
    assert_eq!(bytes, &body[12..]);
    d.records.validate().unwrap();
    let recs: Vec<RecordIn<'_>> = d.records.iter().map(Result::unwrap).collect();
    assert_eq!(recs.len(), 1);
    let r = recs[0];
    assert_eq!(r.timestamp_ms, 1_700_000_000_000);
    assert_eq!(r.key, Some(&b"dev-1"[..]));
    assert_eq!(r.value, b"21.5");
    assert_eq!(r.headers.len(), 1);
    let Seq::Encoded { count, bytes } = r.headers else {
        panic!("a decoded Seq is Encoded")
    };
    assert_eq!((count, bytes), (1, &body[32..]));
    r.headers.validate().unwrap();
    let hs: Vec<Header<'_>> = r.headers.iter().map(Result::unwrap).collect();
    assert_eq!(hs.len(), 1);
    assert_eq!(hs[0].name, "unit");
    assert_eq!(hs[0].value, b"C");
    assert_golden(
        "PRODUCE re-encoded",
        &encode_request(Kind::Produce, 2, &d),
        &golden,
    );

    // The timestamp is a zigzag varint: -t encodes as 2t - 1 = 3399999999999.
    let neg = [RecordIn {
        timestamp_ms: -1_700_000_000_000,
        ..records[0]
    }];
    let f = encode_request(
        Kind::Produce,
        2,
        &ProduceRequest {
            records: Seq::Slice(&neg),
            ..req
        },
    );
    assert_eq!(&f[28..34], &unhex("ff9fabfef962")[..]);
}

#[test]
fn example_8_3_produce_response_ok() {
    let golden = unhex(PRODUCE_RESPONSE);
    assert_eq!(golden.len(), 20);
    let resp = ProduceResponse {
        partition: 0,
        base_offset: 42,
        count: 1,
    };
    assert_golden(
        "PRODUCE response",
        &encode_ok(Kind::Produce, 2, &resp),
        &golden,
    );
    let (header, body) = check_header(&golden, Kind::Produce, 2, true);
    assert_eq!(header.flags, FLAG_RESPONSE);
    check_header_bit_flips(&golden);
    match body::decode_response::<ProduceResponse>(body).unwrap() {
        Response::Ok(r) => assert_eq!(r, resp),
        Response::Err { code, message } => panic!("an error: {code} {message}"),
    }
}

#[test]
fn example_8_4_fetch_error_offset_out_of_range() {
    let golden = unhex(FETCH_ERROR_RESPONSE);
    assert_eq!(golden.len(), 57);
    assert_eq!(FETCH_ERROR_MESSAGE.len(), 39);
    let got = encode_error(
        Kind::Fetch,
        3,
        ErrorCode::OffsetOutOfRange,
        FETCH_ERROR_MESSAGE,
    );
    assert_golden("FETCH error", &got, &golden);
    let (_, body) = check_header(&golden, Kind::Fetch, 3, true);
    check_header_bit_flips(&golden);
    match body::decode_response::<FetchResponse<'_>>(body).unwrap() {
        Response::Err { code, message } => {
            assert_eq!(code, ErrorCode::OffsetOutOfRange);
            assert_eq!(code as u16, 14);
            assert_eq!(message, FETCH_ERROR_MESSAGE);
        }
        Response::Ok(_) => panic!("expected an error"),
    }
}

#[test]
fn example_8_5_goodbye_frame_too_large() {
    let golden = unhex(GOODBYE_FRAME_TOO_LARGE);
    assert_eq!(golden.len(), 74);
    assert_eq!(GOODBYE_MESSAGE.len(), 56);

    // The whole path: a header announcing a 2000000-byte frame, decoded under the limit
    // 1114112, gives the error whose code, id and text the GOODBYE carries.
    let offending = FrameHeader::request(Kind::Produce as u8, 9, 2_000_000 - 16).encode();
    let err = frame::decode(&offending, 1_114_112).unwrap_err();
    assert_eq!(
        err,
        FrameError::TooLarge {
            frame_bytes: 2_000_000,
            frame_bytes_max: 1_114_112,
            request_id: 9,
        }
    );
    assert_eq!(err.code(), ErrorCode::FrameTooLarge);
    assert!(err.code().closes_connection());
    assert_eq!(err.to_string(), GOODBYE_MESSAGE);
    let got = encode_error(
        Kind::Goodbye,
        err.request_id(),
        err.code(),
        &err.to_string(),
    );
    assert_golden("GOODBYE", &got, &golden);

    let (_, body) = check_header(&golden, Kind::Goodbye, 9, true);
    check_header_bit_flips(&golden);
    // A GOODBYE body is an error body: any response type decodes it as an error.
    match body::decode_response::<Empty>(body).unwrap() {
        Response::Err { code, message } => {
            assert_eq!(code, ErrorCode::FrameTooLarge);
            assert_eq!(code as u16, 2);
            assert_eq!(message, GOODBYE_MESSAGE);
        }
        Response::Ok(_) => panic!("expected an error"),
    }
}

#[test]
fn example_8_6_list_offsets_request() {
    let golden = unhex(LIST_OFFSETS_REQUEST);
    assert_eq!(golden.len(), 25);
    let req = ListOffsetsRequest {
        topic: "sensors",
        partition: 0,
    };
    assert_golden(
        "LIST_OFFSETS request",
        &encode_request(Kind::ListOffsets, 4, &req),
        &golden,
    );
    let (_, body) = check_header(&golden, Kind::ListOffsets, 4, false);
    check_header_bit_flips(&golden);
    let d: ListOffsetsRequest<'_> = body::decode_request(body).unwrap();
    assert_eq!(d.topic, "sensors");
    assert_eq!(d.partition, 0);
    assert_golden(
        "LIST_OFFSETS re-encoded",
        &encode_request(Kind::ListOffsets, 4, &d),
        &golden,
    );
}

#[test]
fn example_8_8_join_group_request() {
    let golden = unhex(JOIN_GROUP_REQUEST);
    assert_eq!(golden.len(), 47);
    let strategies = ["range"];
    let topics = ["sensors"];
    let req = JoinGroupRequest {
        group: "readers",
        member: None,
        client_id: "a",
        session_timeout_ms: 10_000,
        strategies: Seq::Slice(&strategies),
        topics: Seq::Slice(&topics),
    };
    assert_golden(
        "JOIN_GROUP request",
        &encode_request(Kind::JoinGroup, 6, &req),
        &golden,
    );
    let (_, body) = check_header(&golden, Kind::JoinGroup, 6, false);
    check_header_bit_flips(&golden);
    let d: JoinGroupRequest<'_> = body::decode_request(body).unwrap();
    assert_eq!((d.group, d.member, d.client_id), ("readers", None, "a"));
    assert_eq!(d.session_timeout_ms, 10_000);
    let s: Vec<&str> = d.strategies.iter().map(Result::unwrap).collect();
    let t: Vec<&str> = d.topics.iter().map(Result::unwrap).collect();
    assert_eq!((s, t), (vec!["range"], vec!["sensors"]));
    assert_golden(
        "JOIN_GROUP re-encoded",
        &encode_request(Kind::JoinGroup, 6, &d),
        &golden,
    );
}

#[test]
fn example_8_9_commit_offsets_request() {
    let golden = unhex(COMMIT_OFFSETS_REQUEST);
    assert_eq!(golden.len(), 45);
    let offsets = [OffsetCommit {
        topic: "sensors",
        partition: 0,
        offset: 42,
        metadata: "",
    }];
    let req = CommitOffsetsRequest {
        group: "readers",
        member: Some("a-1-0"),
        generation: 3,
        offsets: Seq::Slice(&offsets),
    };
    assert_golden(
        "COMMIT_OFFSETS request",
        &encode_request(Kind::CommitOffsets, 7, &req),
        &golden,
    );
    let (_, body) = check_header(&golden, Kind::CommitOffsets, 7, false);
    check_header_bit_flips(&golden);
    let d: CommitOffsetsRequest<'_> = body::decode_request(body).unwrap();
    assert_eq!(
        (d.group, d.member, d.generation),
        ("readers", Some("a-1-0"), 3)
    );
    let o: Vec<OffsetCommit<'_>> = d.offsets.iter().map(Result::unwrap).collect();
    assert_eq!(o.len(), 1);
    assert_eq!(
        (o[0].topic, o[0].partition, o[0].offset, o[0].metadata),
        ("sensors", 0, 42, "")
    );
    assert_golden(
        "COMMIT_OFFSETS re-encoded",
        &encode_request(Kind::CommitOffsets, 7, &d),
        &golden,
    );
}

#[test]
fn example_8_7_forwarder_status_response() {
    let golden = unhex(FORWARDER_STATUS_RESPONSE);
    assert_eq!(golden.len(), 92);
    let parts = [ForwardPartition {
        topic: "sensors",
        partition: 0,
        upstream_topic: "edge.sensors",
        position: Some(42),
        durable_next: 50,
        bytes_behind: 800,
        oldest_unforwarded_ms: Some(1_699_999_940_000),
        last_commit_ms: Some(1_700_000_000_000),
    }];
    let resp = ForwarderStatusResponse {
        configured: true,
        state: 2,
        last_error: Some("connection refused"),
        last_commit_ms: Some(1_700_000_000_000),
        commits: 3,
        records_forwarded: 42,
        gaps: 0,
        partitions: Seq::Slice(&parts),
    };
    assert_golden(
        "FORWARDER_STATUS response",
        &encode_ok(Kind::ForwarderStatus, 5, &resp),
        &golden,
    );
    let (header, body) = check_header(&golden, Kind::ForwarderStatus, 5, true);
    assert_eq!(header.body_bytes, 76);
    check_header_bit_flips(&golden);
    let Response::Ok(d) = body::decode_response::<ForwarderStatusResponse<'_>>(body).unwrap()
    else {
        panic!("expected OK")
    };
    assert!(d.configured);
    assert_eq!(d.state, 2);
    assert_eq!(d.last_error, Some("connection refused"));
    assert_eq!(d.last_commit_ms, Some(1_700_000_000_000));
    assert_eq!((d.commits, d.records_forwarded, d.gaps), (3, 42, 0));
    // The partitions Seq borrows exactly the 41 element bytes (body bytes 35..76).
    let Seq::Encoded { count, bytes } = d.partitions else {
        panic!("a decoded Seq is Encoded")
    };
    assert_eq!((count, bytes), (1, &body[35..]));
    d.partitions.validate().unwrap();
    let ps: Vec<ForwardPartition<'_>> = d.partitions.iter().map(Result::unwrap).collect();
    assert_eq!(ps.len(), 1);
    let p = ps[0];
    assert_eq!(
        (p.topic, p.partition, p.upstream_topic),
        ("sensors", 0, "edge.sensors")
    );
    assert_eq!(
        (p.position, p.durable_next, p.bytes_behind),
        (Some(42), 50, 800)
    );
    assert_eq!(p.oldest_unforwarded_ms, Some(1_699_999_940_000));
    assert_eq!(p.last_commit_ms, Some(1_700_000_000_000));
    assert_golden(
        "FORWARDER_STATUS re-encoded",
        &encode_ok(Kind::ForwarderStatus, 5, &d),
        &golden,
    );

    // A bool is exactly 0 or 1: any other `configured` byte does not decode.
    for b in 2..=u8::MAX {
        let mut bad = body.to_vec();
        bad[1] = b;
        assert!(matches!(
            body::decode_response::<ForwarderStatusResponse<'_>>(&bad),
            Err(BodyError::Malformed(_))
        ));
    }

    // No forwarder: configured false, everything else zero, None or empty: 10 body bytes,
    // the code included.
    let none = ForwarderStatusResponse {
        configured: false,
        state: 0,
        last_error: None,
        last_commit_ms: None,
        commits: 0,
        records_forwarded: 0,
        gaps: 0,
        partitions: Seq::Slice(&[]),
    };
    let f = encode_ok(Kind::ForwarderStatus, 5, &none);
    assert_eq!(
        &f[HEADER_BYTES..],
        &unhex("00 00 00 00 00 00 00 00 00 00")[..]
    );

    // The state numbers of section 4 are the forwarder's own.
    use outpost::forwarder::LinkState;
    for (n, state) in [
        (0, LinkState::Connecting),
        (1, LinkState::Connected),
        (2, LinkState::BackingOff),
        (3, LinkState::Fenced),
    ] {
        assert_eq!(state.code(), n, "{state:?}");
        assert_eq!(LinkState::from_code(n), Some(state));
    }
    assert_eq!(LinkState::from_code(4), None);
}

#[test]
fn example_8_10_init_producer_request() {
    let golden = unhex(INIT_PRODUCER_REQUEST);
    assert_eq!(golden.len(), 23);
    let req = InitProducerRequest { name: "pump-7" };
    assert_golden(
        "INIT_PRODUCER request",
        &encode_request(Kind::InitProducer, 10, &req),
        &golden,
    );
    let (_, body) = check_header(&golden, Kind::InitProducer, 10, false);
    check_header_bit_flips(&golden);
    let d: InitProducerRequest<'_> = body::decode_request(body).unwrap();
    assert_eq!(d.name, "pump-7");
    assert_golden(
        "INIT_PRODUCER re-encoded",
        &encode_request(Kind::InitProducer, 10, &d),
        &golden,
    );
}

#[test]
fn example_8_11_init_producer_response_ok() {
    let golden = unhex(INIT_PRODUCER_RESPONSE);
    assert_eq!(golden.len(), 19);
    let resp = InitProducerResponse {
        producer_id: 3,
        epoch: 1,
    };
    assert_golden(
        "INIT_PRODUCER response",
        &encode_ok(Kind::InitProducer, 10, &resp),
        &golden,
    );
    let (_, body) = check_header(&golden, Kind::InitProducer, 10, true);
    check_header_bit_flips(&golden);
    let Response::Ok(d) = body::decode_response::<InitProducerResponse>(body).unwrap() else {
        panic!("expected OK")
    };
    assert_eq!(d, resp);
    // The epoch is a u16 varint: 65535 takes three bytes, one more does not decode.
    let max = encode_ok(
        Kind::InitProducer,
        10,
        &InitProducerResponse {
            producer_id: 3,
            epoch: u16::MAX,
        },
    );
    assert_eq!(&max[HEADER_BYTES..], &unhex("00 03 ff ff 03")[..]);
    assert!(matches!(
        body::decode_response::<InitProducerResponse>(&unhex("00 03 80 80 04")),
        Err(BodyError::Malformed(_))
    ));
}

#[test]
fn example_8_12_produce_idempotent_request() {
    let golden = unhex(PRODUCE_IDEMPOTENT_REQUEST);
    assert_eq!(golden.len(), 44);
    let records = [RecordIn {
        timestamp_ms: 1_700_000_000_000,
        key: None,
        value: b"21.5",
        headers: Seq::Slice(&[]),
    }];
    let req = ProduceIdempotentRequest {
        producer_id: 3,
        epoch: 1,
        topic: "sensors",
        partition: 0,
        first_sequence: 5,
        records: Seq::Slice(&records),
    };
    assert_golden(
        "PRODUCE_IDEMPOTENT request",
        &encode_request(Kind::ProduceIdempotent, 11, &req),
        &golden,
    );
    let (_, body) = check_header(&golden, Kind::ProduceIdempotent, 11, false);
    check_header_bit_flips(&golden);
    let d: ProduceIdempotentRequest<'_> = body::decode_request(body).unwrap();
    assert_eq!((d.producer_id, d.epoch), (3, 1));
    assert_eq!((d.topic, d.partition, d.first_sequence), ("sensors", 0, 5));
    // The records Seq borrows exactly its 14 element bytes (body bytes 14..28).
    let Seq::Encoded { count, bytes } = d.records else {
        panic!("a decoded Seq is Encoded")
    };
    assert_eq!((count, bytes), (1, &body[14..]));
    let rs: Vec<RecordIn<'_>> = d.records.iter().map(Result::unwrap).collect();
    assert_eq!(rs.len(), 1);
    assert_eq!(
        (rs[0].timestamp_ms, rs[0].key, rs[0].value),
        (1_700_000_000_000, None, &b"21.5"[..])
    );
    assert!(rs[0].headers.is_empty());
    assert_golden(
        "PRODUCE_IDEMPOTENT re-encoded",
        &encode_request(Kind::ProduceIdempotent, 11, &d),
        &golden,
    );
}

#[test]
fn example_8_13_produce_idempotent_response_duplicate() {
    let golden = unhex(PRODUCE_IDEMPOTENT_RESPONSE);
    assert_eq!(golden.len(), 21);
    let resp = ProduceIdempotentResponse {
        partition: 0,
        base_offset: 42,
        count: 1,
        duplicate: true,
    };
    assert_golden(
        "PRODUCE_IDEMPOTENT response",
        &encode_ok(Kind::ProduceIdempotent, 11, &resp),
        &golden,
    );
    let (_, body) = check_header(&golden, Kind::ProduceIdempotent, 11, true);
    check_header_bit_flips(&golden);
    let Response::Ok(d) = body::decode_response::<ProduceIdempotentResponse>(body).unwrap() else {
        panic!("expected OK")
    };
    assert_eq!(d, resp);
    // `duplicate` is a bool: 0 or 1, nothing else.
    let mut bad = body.to_vec();
    for b in 2..=u8::MAX {
        bad[4] = b;
        assert!(matches!(
            body::decode_response::<ProduceIdempotentResponse>(&bad),
            Err(BodyError::Malformed(_))
        ));
    }
}

#[test]
fn example_8_14_atomic_write_request() {
    let golden = unhex(ATOMIC_WRITE_REQUEST);
    assert_eq!(golden.len(), 72);
    let records = [RecordIn {
        timestamp_ms: 1_700_000_000_000,
        key: None,
        value: b"7",
        headers: Seq::Slice(&[]),
    }];
    let outputs = [AtomicOutput {
        topic: "totals",
        partition: 0,
        first_sequence: 0,
        records: Seq::Slice(&records),
    }];
    let offsets = [OffsetCommit {
        topic: "sensors",
        partition: 0,
        offset: 43,
        metadata: "",
    }];
    let req = AtomicWriteRequest {
        producer_id: 3,
        epoch: 1,
        outputs: Seq::Slice(&outputs),
        commit: Some(AtomicCommit {
            group: "readers",
            member: Some("a-1-0"),
            generation: 3,
            offsets: Seq::Slice(&offsets),
        }),
    };
    assert_golden(
        "ATOMIC_WRITE request",
        &encode_request(Kind::AtomicWrite, 12, &req),
        &golden,
    );
    let (_, body) = check_header(&golden, Kind::AtomicWrite, 12, false);
    check_header_bit_flips(&golden);
    let d: AtomicWriteRequest<'_> = body::decode_request(body).unwrap();
    assert_eq!((d.producer_id, d.epoch), (3, 1));
    let os: Vec<AtomicOutput<'_>> = d.outputs.iter().map(Result::unwrap).collect();
    assert_eq!(os.len(), 1);
    assert_eq!(
        (os[0].topic, os[0].partition, os[0].first_sequence),
        ("totals", 0, 0)
    );
    let rs: Vec<RecordIn<'_>> = os[0].records.iter().map(Result::unwrap).collect();
    assert_eq!((rs.len(), rs[0].value), (1, &b"7"[..]));
    let c = d.commit.expect("a commit");
    assert_eq!(
        (c.group, c.member, c.generation),
        ("readers", Some("a-1-0"), 3)
    );
    let o: Vec<OffsetCommit<'_>> = c.offsets.iter().map(Result::unwrap).collect();
    assert_eq!(
        (o[0].topic, o[0].partition, o[0].offset, o[0].metadata),
        ("sensors", 0, 43, "")
    );
    assert_golden(
        "ATOMIC_WRITE re-encoded",
        &encode_request(Kind::AtomicWrite, 12, &d),
        &golden,
    );
    // Without the commit: the same outputs, then the Option tag 0 and nothing after it.
    let bare = AtomicWriteRequest {
        commit: None,
        ..req
    };
    let f = encode_request(Kind::AtomicWrite, 12, &bare);
    assert_eq!(
        &f[HEADER_BYTES..],
        &[&golden[16..0x2a], &[0x00][..]].concat()[..]
    );
}

#[test]
fn example_8_15_atomic_write_response_ok() {
    let golden = unhex(ATOMIC_WRITE_RESPONSE);
    assert_eq!(golden.len(), 30);
    let results = [AtomicOutputResult {
        topic: "totals",
        partition: 0,
        base_offset: 9,
        count: 1,
    }];
    let resp = AtomicWriteResponse {
        outputs: Seq::Slice(&results),
        duplicate: false,
    };
    assert_golden(
        "ATOMIC_WRITE response",
        &encode_ok(Kind::AtomicWrite, 12, &resp),
        &golden,
    );
    let (_, body) = check_header(&golden, Kind::AtomicWrite, 12, true);
    check_header_bit_flips(&golden);
    let Response::Ok(d) = body::decode_response::<AtomicWriteResponse<'_>>(body).unwrap() else {
        panic!("expected OK")
    };
    assert!(!d.duplicate);
    let rs: Vec<AtomicOutputResult<'_>> = d.outputs.iter().map(Result::unwrap).collect();
    assert_eq!(rs, results);
    assert_golden(
        "ATOMIC_WRITE response re-encoded",
        &encode_ok(Kind::AtomicWrite, 12, &d),
        &golden,
    );
}

// ---------------------------------------------------------------------------------------------
// The document itself
// ---------------------------------------------------------------------------------------------

const PROTOCOL_MD: &str = include_str!("../docs/PROTOCOL.md");

/// The text of section `## {n}.` up to the next `## ` heading.
fn doc_section(n: u32) -> &'static str {
    let start = PROTOCOL_MD
        .find(&format!("\n## {n}. "))
        .unwrap_or_else(|| panic!("PROTOCOL.md has no section {n}"));
    let rest = &PROTOCOL_MD[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |e| e + 3);
    &rest[..end]
}

/// Parses a dump of section 8: `off: xx xx ...   commentary`. The bytes end at the first run of
/// two spaces; each line's offset must be the number of bytes before it.
fn parse_doc_dump(block: &str, example: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for line in block.lines().filter(|l| !l.trim().is_empty()) {
        let (off, rest) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("{example}: no offset in {line:?}"));
        let off = usize::from_str_radix(off.trim(), 16)
            .unwrap_or_else(|_| panic!("{example}: bad offset in {line:?}"));
        assert_eq!(off, out.len(), "{example}: wrong offset in {line:?}");
        let rest = rest.strip_prefix(' ').unwrap_or(rest);
        let bytes = rest.split("  ").next().unwrap();
        for tok in bytes.split_whitespace() {
            assert_eq!(tok.len(), 2, "{example}: not a byte: {tok:?} in {line:?}");
            out.push(
                u8::from_str_radix(tok, 16)
                    .unwrap_or_else(|_| panic!("{example}: not a hex byte: {tok:?} in {line:?}")),
            );
        }
    }
    out
}

#[test]
fn section_8_dumps_are_the_golden_bytes() {
    let section = doc_section(8);
    let pinned = [
        ("Example 8.1:", HELLO_REQUEST),
        ("Example 8.2:", PRODUCE_REQUEST),
        ("Example 8.3:", PRODUCE_RESPONSE),
        ("Example 8.4:", FETCH_ERROR_RESPONSE),
        ("Example 8.5:", GOODBYE_FRAME_TOO_LARGE),
        ("Example 8.6:", LIST_OFFSETS_REQUEST),
        ("Example 8.7:", FORWARDER_STATUS_RESPONSE),
        ("Example 8.8:", JOIN_GROUP_REQUEST),
        ("Example 8.9:", COMMIT_OFFSETS_REQUEST),
        ("Example 8.10:", INIT_PRODUCER_REQUEST),
        ("Example 8.11:", INIT_PRODUCER_RESPONSE),
        ("Example 8.12:", PRODUCE_IDEMPOTENT_REQUEST),
        ("Example 8.13:", PRODUCE_IDEMPOTENT_RESPONSE),
        ("Example 8.14:", ATOMIC_WRITE_REQUEST),
        ("Example 8.15:", ATOMIC_WRITE_RESPONSE),
    ];
    assert_eq!(
        section.matches("#### Example 8.").count(),
        pinned.len(),
        "every example of section 8 is pinned here"
    );
    for (title, golden) in pinned {
        let at = section
            .find(&format!("#### {title}"))
            .unwrap_or_else(|| panic!("PROTOCOL.md section 8 has no {title}"));
        let after = &section[at..];
        let open = after.find("```\n").expect("a code block") + 4;
        let close = open + after[open..].find("```").expect("a closed code block");
        let dump = parse_doc_dump(&after[open..close], title);
        assert!(
            dump == unhex(golden),
            "{title} in PROTOCOL.md differs from the golden bytes\n   doc {}\ngolden {}",
            hex(&dump),
            hex(&unhex(golden))
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Numbers that never change: kinds, error codes, header constants
// ---------------------------------------------------------------------------------------------

/// Section 3, spelled out.
const KINDS: [(u8, &str); 21] = [
    (0x00, "GOODBYE"),
    (0x01, "HELLO"),
    (0x02, "CREATE_TOPIC"),
    (0x03, "LIST_TOPICS"),
    (0x04, "DESCRIBE_TOPIC"),
    (0x05, "PRODUCE"),
    (0x06, "FETCH"),
    (0x07, "LIST_OFFSETS"),
    (0x08, "STATUS"),
    (0x10, "INIT_PRODUCER"),
    (0x11, "PRODUCE_IDEMPOTENT"),
    (0x20, "JOIN_GROUP"),
    (0x21, "SYNC_GROUP"),
    (0x22, "HEARTBEAT"),
    (0x23, "LEAVE_GROUP"),
    (0x24, "COMMIT_OFFSETS"),
    (0x25, "FETCH_OFFSETS"),
    (0x26, "LIST_GROUPS"),
    (0x27, "DESCRIBE_GROUP"),
    (0x30, "ATOMIC_WRITE"),
    (0x40, "FORWARDER_STATUS"),
];

#[test]
fn kind_numbers_are_pinned() {
    let by_variant = [
        (Kind::Goodbye, 0x00),
        (Kind::Hello, 0x01),
        (Kind::CreateTopic, 0x02),
        (Kind::ListTopics, 0x03),
        (Kind::DescribeTopic, 0x04),
        (Kind::Produce, 0x05),
        (Kind::Fetch, 0x06),
        (Kind::ListOffsets, 0x07),
        (Kind::Status, 0x08),
        (Kind::InitProducer, 0x10),
        (Kind::ProduceIdempotent, 0x11),
        (Kind::JoinGroup, 0x20),
        (Kind::SyncGroup, 0x21),
        (Kind::Heartbeat, 0x22),
        (Kind::LeaveGroup, 0x23),
        (Kind::CommitOffsets, 0x24),
        (Kind::FetchOffsets, 0x25),
        (Kind::ListGroups, 0x26),
        (Kind::DescribeGroup, 0x27),
        (Kind::AtomicWrite, 0x30),
        (Kind::ForwarderStatus, 0x40),
    ];
    for ((kind, n), (m, name)) in by_variant.into_iter().zip(KINDS) {
        assert_eq!(kind as u8, n, "{kind:?}");
        assert_eq!(n, m);
        assert_eq!(kind.name(), name);
        assert_eq!(Kind::from_u8(n), Some(kind));
    }
    // Every other number, the rest of the reserved ranges 0x10..=0x4F included, is unknown
    // to this build.
    for n in 0x09..=0xFFu8 {
        if KINDS.iter().any(|(k, _)| *k == n) {
            continue;
        }
        assert_eq!(Kind::from_u8(n), None, "kind {n:#04x}");
    }
}

#[test]
fn kind_table_of_the_document_matches() {
    let mut rows = Vec::new();
    for line in doc_section(3).lines() {
        // | `0x05` | `PRODUCE` | ... |
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 3 {
            continue;
        }
        let (Some(num), Some(name)) = (
            cells[1]
                .strip_prefix("`0x")
                .and_then(|s| s.strip_suffix('`')),
            cells[2].strip_prefix('`').and_then(|s| s.strip_suffix('`')),
        ) else {
            continue;
        };
        rows.push((u8::from_str_radix(num, 16).unwrap(), name.to_string()));
    }
    let expected: Vec<(u8, String)> = KINDS.iter().map(|(n, s)| (*n, s.to_string())).collect();
    assert_eq!(rows, expected, "section 3 of PROTOCOL.md");
}

/// Section 5, spelled out: number, name, whether the server closes the connection.
const ERROR_CODES: [(u16, &str, bool); 44] = [
    (0, "OK", false),
    (1, "MALFORMED", true),
    (2, "FRAME_TOO_LARGE", true),
    (3, "HEADER_CRC", true),
    (4, "UNSUPPORTED_VERSION", false),
    (5, "UNKNOWN_KIND", false),
    (6, "BAD_BODY", false),
    (7, "UNKNOWN_TOPIC", false),
    (8, "UNKNOWN_PARTITION", false),
    (9, "TOPIC_EXISTS", false),
    (10, "INVALID_TOPIC_NAME", false),
    (11, "INVALID_PARTITION_COUNT", false),
    (12, "BATCH_TOO_LARGE", false),
    (13, "BUFFER_FULL", false),
    (14, "OFFSET_OUT_OF_RANGE", false),
    (15, "TOO_MANY_TOPICS", false),
    (16, "TOO_MANY_PARTITIONS", false),
    (17, "TOO_MANY_CONNECTIONS", true),
    (18, "TOO_MANY_IN_FLIGHT", false),
    (19, "STORAGE_FAILED", false),
    (20, "SHUTTING_DOWN", false),
    (21, "INVALID_RECORD", false),
    (22, "EMPTY_BATCH", false),
    (40, "OUT_OF_ORDER_SEQUENCE", false),
    (41, "PRODUCER_FENCED", false),
    (42, "UNKNOWN_PRODUCER_ID", false),
    (43, "DUPLICATE_SEQUENCE", false),
    (44, "INVALID_PRODUCER_NAME", false),
    (45, "SEQUENCE_EXHAUSTED", false),
    (46, "PRODUCER_STATE_FULL", false),
    (47, "INVALID_ATOMIC_WRITE", false),
    (60, "UNKNOWN_MEMBER_ID", false),
    (61, "ILLEGAL_GENERATION", false),
    (62, "REBALANCE_IN_PROGRESS", false),
    (63, "INCONSISTENT_GROUP_PROTOCOL", false),
    (64, "GROUP_MAX_SIZE_REACHED", false),
    (65, "INVALID_SESSION_TIMEOUT", false),
    (66, "INVALID_GROUP_ID", false),
    (67, "TOO_MANY_GROUPS", false),
    (68, "OFFSET_METADATA_TOO_LARGE", false),
    (69, "OFFSET_AHEAD_OF_LOG", false),
    (70, "SUBSCRIPTION_TOO_LARGE", false),
    (71, "INVALID_CLIENT_ID", false),
    (72, "OFFSET_STORE_FULL", false),
];

#[test]
fn error_code_numbers_are_pinned() {
    let by_variant = [
        (ErrorCode::Ok, 0),
        (ErrorCode::Malformed, 1),
        (ErrorCode::FrameTooLarge, 2),
        (ErrorCode::HeaderCrc, 3),
        (ErrorCode::UnsupportedVersion, 4),
        (ErrorCode::UnknownKind, 5),
        (ErrorCode::BadBody, 6),
        (ErrorCode::UnknownTopic, 7),
        (ErrorCode::UnknownPartition, 8),
        (ErrorCode::TopicExists, 9),
        (ErrorCode::InvalidTopicName, 10),
        (ErrorCode::InvalidPartitionCount, 11),
        (ErrorCode::BatchTooLarge, 12),
        (ErrorCode::BufferFull, 13),
        (ErrorCode::OffsetOutOfRange, 14),
        (ErrorCode::TooManyTopics, 15),
        (ErrorCode::TooManyPartitions, 16),
        (ErrorCode::TooManyConnections, 17),
        (ErrorCode::TooManyInFlight, 18),
        (ErrorCode::StorageFailed, 19),
        (ErrorCode::ShuttingDown, 20),
        (ErrorCode::InvalidRecord, 21),
        (ErrorCode::EmptyBatch, 22),
        (ErrorCode::OutOfOrderSequence, 40),
        (ErrorCode::ProducerFenced, 41),
        (ErrorCode::UnknownProducerId, 42),
        (ErrorCode::DuplicateSequence, 43),
        (ErrorCode::InvalidProducerName, 44),
        (ErrorCode::SequenceExhausted, 45),
        (ErrorCode::ProducerStateFull, 46),
        (ErrorCode::InvalidAtomicWrite, 47),
        (ErrorCode::UnknownMemberId, 60),
        (ErrorCode::IllegalGeneration, 61),
        (ErrorCode::RebalanceInProgress, 62),
        (ErrorCode::InconsistentGroupProtocol, 63),
        (ErrorCode::GroupMaxSizeReached, 64),
        (ErrorCode::InvalidSessionTimeout, 65),
        (ErrorCode::InvalidGroupId, 66),
        (ErrorCode::TooManyGroups, 67),
        (ErrorCode::OffsetMetadataTooLarge, 68),
        (ErrorCode::OffsetAheadOfLog, 69),
        (ErrorCode::SubscriptionTooLarge, 70),
        (ErrorCode::InvalidClientId, 71),
        (ErrorCode::OffsetStoreFull, 72),
    ];
    assert_eq!(ErrorCode::ALL.len(), ERROR_CODES.len());
    for (i, ((code, n), (m, name, closes))) in by_variant.into_iter().zip(ERROR_CODES).enumerate() {
        assert_eq!(code as u16, n, "{code:?}");
        assert_eq!(n, m);
        assert_eq!(ErrorCode::ALL[i], code, "ErrorCode::ALL is in number order");
        assert_eq!(code.name(), name);
        assert_eq!(code.closes_connection(), closes, "{name}");
        assert_eq!(ErrorCode::from_u16(n), Some(code));
        assert_eq!(code.to_string(), format!("{name} ({n})"));
        // On the wire: the varint of the number, first in every response body.
        let mut buf = [0u8; 64];
        let len = body::encode_error(&mut buf, Kind::Status as u8, 0, code, "").unwrap();
        assert_eq!(&buf[16..len], &[n as u8, 0][..], "{name}");
    }
    // No other number is known; a response carrying one is refused as such.
    for n in 0..=u16::MAX {
        if ERROR_CODES.iter().any(|(m, _, _)| *m == n) {
            continue;
        }
        assert_eq!(ErrorCode::from_u16(n), None, "code {n}");
    }
    assert_eq!(
        body::decode_response::<Empty>(&[23, 0]).unwrap_err(),
        BodyError::UnknownCode(23)
    );
    assert_eq!(
        body::decode_response::<Empty>(&[0xff, 0xff, 0x03]).unwrap_err(),
        BodyError::UnknownCode(u16::MAX)
    );
}

#[test]
fn error_code_table_of_the_document_matches() {
    let mut rows = Vec::new();
    for line in doc_section(5).lines() {
        // | 14 | `OFFSET_OUT_OF_RANGE` | ... | open |
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 6 {
            continue;
        }
        let (Ok(num), Some(name)) = (
            cells[1].parse::<u16>(),
            cells[2].strip_prefix('`').and_then(|s| s.strip_suffix('`')),
        ) else {
            continue;
        };
        let closes = match cells[4] {
            "closed" => true,
            "open" | "" => false,
            other => panic!("code {num}: connection column {other:?}"),
        };
        rows.push((num, name.to_string(), closes));
    }
    let expected: Vec<(u16, String, bool)> = ERROR_CODES
        .iter()
        .map(|(n, s, c)| (*n, s.to_string(), *c))
        .collect();
    assert_eq!(rows, expected, "section 5 of PROTOCOL.md");
}

#[test]
fn header_constants_and_acks_are_pinned() {
    assert_eq!(HEADER_BYTES, 16);
    assert_eq!(VERSION, 1);
    assert_eq!(FLAG_RESPONSE, 1);
    assert_eq!(DEFAULT_PORT, 7478);
    assert_eq!(
        crc32c_reference(b"123456789"),
        0xE306_9283,
        "CRC-32C check value"
    );
    // acks on the wire: one byte 0, 1 or 2; anything else does not decode.
    for (acks, n) in [
        (WireAcks::None, 0u8),
        (WireAcks::Written, 1),
        (WireAcks::Durable, 2),
    ] {
        assert_eq!(u8::from(acks), n);
        assert_eq!(WireAcks::try_from(n), Ok(acks));
    }
    assert_eq!(WireAcks::default(), WireAcks::Durable);
    for n in 3..=u8::MAX {
        assert!(WireAcks::try_from(n).is_err());
        // The PRODUCE body of example 8.2 with another acks byte.
        let mut body = unhex(PRODUCE_REQUEST)[16..].to_vec();
        body[9] = n;
        assert!(matches!(
            body::decode_request::<ProduceRequest<'_>>(&body),
            Err(BodyError::Malformed(_))
        ));
    }
    // Reserved flag bits: each one alone is MALFORMED, carrying the frame's id.
    for bit in 1..16 {
        let mut h = FrameHeader::request(Kind::Status as u8, 77, 0);
        h.flags = 1 << bit;
        let e = frame::decode(&h.encode(), 1024).unwrap_err();
        assert_eq!(
            e,
            FrameError::ReservedFlags {
                flags: 1 << bit,
                request_id: 77
            }
        );
        assert_eq!(e.code(), ErrorCode::Malformed);
        assert_eq!(e.request_id(), 77);
    }
}
