//! Golden bytes for `docs/FORMAT.md`: every "Example" of the document is pinned here byte for
//! byte (the hex below is the hex in the document), plus round trips and the decoders'
//! refusals. If one of these tests fails, either the code or the document is wrong: the format
//! is frozen within version 1 (FORMAT.md, section 7), so fix the one that drifted.

use outpost::storage::format::*;
use outpost::storage::{GroupSeq, Offset, PartitionId, SegmentSeq};

/// Parses a hex dump as written in FORMAT.md: bytes as two hex digits, whitespace between them;
/// a line may start with an `offset:` prefix, and `|` separators are ignored.
fn hex(dump: &str) -> Vec<u8> {
    dump.lines()
        .map(|line| line.split_once(':').map_or(line, |(_, rest)| rest))
        .flat_map(|line| line.split_whitespace())
        .filter(|token| *token != "|")
        .map(|token| u8::from_str_radix(token, 16).expect("a two-digit hex byte"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The examples of FORMAT.md
// ---------------------------------------------------------------------------------------------

/// Example 2.2.
const SEGMENT_HEADER_HEX: &str = "
00: 4f 55 54 50 4f 53 54 00 01 00 40 00 00 02 00 00
10: 07 00 00 00 00 00 00 00 00 00 01 00 00 00 00 00
20: 00 04 00 00 00 00 00 00 08 07 06 05 04 03 02 01
30: 00 00 00 00 00 00 00 00 00 00 00 00 30 52 24 aa
";

/// Example 2.3 (salted with segment 7).
const BATCH_HEADER_HEX: &str = "
00: 3d 00 00 00 01 01 00 00 03 00 00 00 02 00 00 00
10: 2a 00 00 00 00 00 00 00 09 00 00 00 00 00 00 00
20: eb 82 6a f5 61 86 89 b3
";

/// Example 2.5.
const RECORDS_BODY_HEX: &str = "
00: 22 00 00 00 00 68 e5 cf 8b 01 00 00 03 00 00 00
10: 6b 65 79 05 00 00 00 76 61 6c 75 65 01 00 01 00
20: 68 01 00 00 00 76 13 00 00 00 01 68 e5 cf 8b 01
30: 00 00 ff ff ff ff 01 00 00 00 78 00 00
";

/// Example 2.6.
const META_BODY_HEX: &str = "
00: 02 00 00 00 01 01 01 00 74 03 00 00 00 63 66 67
10: 02 03 01 00 67
";

/// Example 2.7.
const CHECKPOINT_BODY_HEX: &str = "
00: 02 00 00 00 00 00 00 00 05 00 00 00 00 00 00 00
10: 03 00 00 00 2c 00 00 00 00 00 00 00 01 00 00 00
20: 01 01 00 74 03 00 00 00 63 66 67
";

/// Example 2.4: group 1 of a fresh ring (segment 0, program unit 512), from byte 512 to the
/// end of the records body; 0xFF follows up to byte 1024.
const FIRST_GROUP_HEX: &str = "
0200: 08 00 00 00 03 00 00 00 ff ff ff ff 00 00 00 00
0210: 00 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00
0220: ea 9a 70 42 4f 16 ac 78 00 00 00 00 00 00 00 00
0230: 3d 00 00 00 01 01 00 00 03 00 00 00 02 00 00 00
0240: 00 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00
0250: b2 fb 1e a5 49 dc 75 3e 22 00 00 00 00 68 e5 cf
0260: 8b 01 00 00 03 00 00 00 6b 65 79 05 00 00 00 76
0270: 61 6c 75 65 01 00 01 00 68 01 00 00 00 76 13 00
0280: 00 00 01 68 e5 cf 8b 01 00 00 ff ff ff ff 01 00
0290: 00 00 78 00 00
";

const SEG7: SegmentSeq = SegmentSeq(7);

fn example_segment_header() -> SegmentHeader {
    SegmentHeader {
        seq: SEG7,
        segment_bytes: 65536,
        program_unit_bytes: 512,
        prev_end: 1024,
        ring_id: 0x0102_0304_0506_0708,
    }
}

fn example_records() -> Vec<Record> {
    vec![
        Record {
            timestamp_ms: 1_700_000_000_000,
            key: Some(b"key".to_vec()),
            value: b"value".to_vec(),
            headers: vec![("h".to_string(), b"v".to_vec())],
        },
        Record {
            timestamp_ms: 1_700_000_000_001,
            key: None,
            value: b"x".to_vec(),
            headers: vec![],
        },
    ]
}

fn example_records_body() -> Vec<u8> {
    let mut body = Vec::new();
    for r in example_records() {
        r.encode_into(&mut body);
    }
    body
}

fn example_batch_header() -> BatchHeader {
    let body = example_records_body();
    BatchHeader {
        body_bytes: body.len() as u32,
        kind: BatchKind::Records,
        flags: FLAG_LAST_IN_GROUP,
        partition: PartitionId(3),
        record_count: 2,
        base_offset: Offset(42),
        group: GroupSeq(9),
        body_crc: salted_crc(SEG7, &[&body]),
    }
}

fn example_meta_ops() -> Vec<MetaOp> {
    vec![
        MetaOp::Put {
            namespace: 1,
            key: b"t".to_vec(),
            value: b"cfg".to_vec(),
        },
        MetaOp::Delete {
            namespace: 3,
            key: b"g".to_vec(),
        },
    ]
}

fn example_checkpoint() -> Checkpoint {
    Checkpoint {
        partitions: vec![(PartitionId(0), Offset(5)), (PartitionId(3), Offset(44))],
        meta: vec![(1, b"t".to_vec(), b"cfg".to_vec())],
    }
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b.try_into().unwrap())
}

fn le_u64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b.try_into().unwrap())
}

/// A 40-byte batch header image with a correct salted CRC over whatever bytes 0..36 hold, so
/// the decoder gets past the CRC and must refuse for the reason under test.
fn reseal(mut b: [u8; BATCH_HEADER_BYTES], seq: SegmentSeq) -> [u8; BATCH_HEADER_BYTES] {
    let crc = salted_crc(seq, &[&b[0..36]]);
    b[36..40].copy_from_slice(&crc.to_le_bytes());
    b
}

// ---------------------------------------------------------------------------------------------
// 1.4 Checksums
// ---------------------------------------------------------------------------------------------

#[test]
fn crc32c_check_value() {
    assert_eq!(CRC32C.checksum(b"123456789"), 0xE306_9283);
    // The catalog parameters FORMAT.md names.
    let a = CRC32C.algorithm;
    assert_eq!(a.width, 32);
    assert_eq!(a.poly, 0x1EDC_6F41);
    assert_eq!(a.init, 0xFFFF_FFFF);
    assert!(a.refin && a.refout);
    assert_eq!(a.xorout, 0xFFFF_FFFF);
    assert_eq!(a.check, 0xE306_9283);
}

#[test]
fn salted_crc_feeds_the_sequence_first() {
    assert_eq!(salted_crc(SEG7, &[b"123456789"]), 0x185C_3AA5);
    let mut plain = 7u64.to_le_bytes().to_vec();
    plain.extend_from_slice(b"123456789");
    assert_eq!(CRC32C.checksum(&plain), 0x185C_3AA5);
    // Parts are concatenated; the salt changes the result.
    assert_eq!(
        salted_crc(SEG7, &[b"1234", b"", b"56789"]),
        salted_crc(SEG7, &[b"123456789"])
    );
    assert_ne!(
        salted_crc(SegmentSeq(8), &[b"123456789"]),
        salted_crc(SEG7, &[b"123456789"])
    );
}

/// The hardware-accelerated CRC the ring writes and checks with (`crc32c` crate, behind
/// `salted_crc` and `format::crc32c`) equals the `crc` crate's table-driven CRC-32C on every
/// length (the accelerated code works in 8-byte words and three interleaved streams, so short,
/// unaligned and long inputs take different paths), at every start alignment and with the
/// input split into parts anywhere.
#[test]
fn crc32c_matches_the_crc_crate() {
    let mut x = 0x9E37_79B9_7F4A_7C15_u64;
    let data: Vec<u8> = (0..20_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let lens = (0..300).chain([
        511, 512, 513, 1023, 1024, 1025, 4096, 8191, 8192, 8193, 19_000,
    ]);
    for len in lens {
        for start in [0, 1, 3, 7, 8] {
            let d = &data[start..start + len];
            assert_eq!(crc32c(d), CRC32C.checksum(d), "len {len} start {start}");
            let mut salted = 7u64.to_le_bytes().to_vec();
            salted.extend_from_slice(d);
            let want = CRC32C.checksum(&salted);
            assert_eq!(salted_crc(SEG7, &[d]), want, "len {len} start {start}");
            assert_eq!(
                salted_crc_from(salt(SEG7), &[d]),
                want,
                "len {len} start {start}"
            );
            let cut = len / 3;
            assert_eq!(
                salted_crc(SEG7, &[&d[..cut], &d[cut..]]),
                want,
                "len {len} split {cut}"
            );
        }
    }
}

/// The bit-at-a-time reference of FORMAT.md section 1.4 agrees with the table-driven CRC.
#[test]
fn reference_crc_in_the_document_agrees() {
    fn reference(data: &[u8]) -> u32 {
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
        crc ^ 0xFFFF_FFFF
    }
    assert_eq!(reference(b"123456789"), 0xE306_9283);
    let header = hex(SEGMENT_HEADER_HEX);
    assert_eq!(reference(&header[0..60]), le_u32(&header[60..64]));
    let body = hex(RECORDS_BODY_HEX);
    let mut salted = 7u64.to_le_bytes().to_vec();
    salted.extend_from_slice(&body);
    assert_eq!(reference(&salted), 0xF56A_82EB);
}

// ---------------------------------------------------------------------------------------------
// 2.2 Segment header
// ---------------------------------------------------------------------------------------------

#[test]
fn segment_header_golden() {
    let golden = hex(SEGMENT_HEADER_HEX);
    assert_eq!(golden.len(), SEGMENT_HEADER_BYTES);
    let encoded = example_segment_header().encode();
    assert_eq!(encoded.as_slice(), golden.as_slice());

    // Every field at its documented offset.
    assert_eq!(&golden[0..8], b"OUTPOST\0");
    assert_eq!(&golden[0..8], &SEGMENT_MAGIC);
    assert_eq!(u16::from_le_bytes([golden[8], golden[9]]), 1);
    assert_eq!(u16::from_le_bytes([golden[10], golden[11]]), 64);
    assert_eq!(le_u32(&golden[12..16]), 512);
    assert_eq!(le_u64(&golden[16..24]), 7);
    assert_eq!(le_u64(&golden[24..32]), 65536);
    assert_eq!(le_u64(&golden[32..40]), 1024);
    assert_eq!(le_u64(&golden[40..48]), 0x0102_0304_0506_0708);
    assert!(golden[48..60].iter().all(|&b| b == 0));
    // Not salted: a plain CRC-32C of bytes 0..60.
    assert_eq!(le_u32(&golden[60..64]), 0xAA24_5230);
    assert_eq!(CRC32C.checksum(&golden[0..60]), 0xAA24_5230);

    assert_eq!(SegmentHeader::decode(&golden), Ok(example_segment_header()));
}

#[test]
fn segment_header_round_trips_edge_values() {
    for h in [
        SegmentHeader {
            seq: SegmentSeq(0),
            segment_bytes: 4096,
            program_unit_bytes: 16,
            prev_end: PREV_END_NONE,
            ring_id: 0,
        },
        SegmentHeader {
            seq: SegmentSeq(u64::MAX),
            segment_bytes: u64::from(u32::MAX),
            program_unit_bytes: 65536,
            prev_end: 0,
            ring_id: u64::MAX,
        },
    ] {
        assert_eq!(SegmentHeader::decode(&h.encode()), Ok(h));
    }
}

#[test]
fn segment_header_refusals() {
    let good = example_segment_header().encode();

    assert_eq!(SegmentHeader::decode(&good[..63]), Err(HeaderError::Short));
    assert_eq!(SegmentHeader::decode(&[0xFF; 64]), Err(HeaderError::Magic));

    let mut bad = good;
    bad[0] ^= 0x20; // "oUTPOST"
    assert_eq!(SegmentHeader::decode(&bad), Err(HeaderError::Magic));

    // Any flipped bit after the magic breaks the CRC, reserved bytes included.
    for byte in 8..64 {
        let mut bad = good;
        bad[byte] ^= 0x01;
        assert_eq!(
            SegmentHeader::decode(&bad),
            Err(HeaderError::Crc),
            "byte {byte}"
        );
    }

    // Another version with a valid CRC: refused by version, not by CRC.
    let mut v2 = good;
    v2[8] = 2;
    let crc = CRC32C.checksum(&v2[0..60]);
    v2[60..64].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(SegmentHeader::decode(&v2), Err(HeaderError::Version(2)));

    // A header size other than 64 with a valid CRC.
    let mut wide = good;
    wide[10] = 65;
    let crc = CRC32C.checksum(&wide[0..60]);
    wide[60..64].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(SegmentHeader::decode(&wide), Err(HeaderError::Layout));

    // Reserved bytes must be zero, even under a valid CRC (FORMAT.md 2.2, 7.2).
    let mut reserved = good;
    reserved[50] = 0xAB;
    let crc = CRC32C.checksum(&reserved[0..60]);
    reserved[60..64].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(SegmentHeader::decode(&reserved), Err(HeaderError::Layout));
}

// ---------------------------------------------------------------------------------------------
// 2.3 Batch header
// ---------------------------------------------------------------------------------------------

#[test]
fn batch_header_golden() {
    let golden = hex(BATCH_HEADER_HEX);
    assert_eq!(golden.len(), BATCH_HEADER_BYTES);
    let h = example_batch_header();
    assert_eq!(h.encode(SEG7).as_slice(), golden.as_slice());

    assert_eq!(le_u32(&golden[0..4]), 61);
    assert_eq!(golden[4], 1); // Records
    assert_eq!(golden[5], 0x01); // LAST_IN_GROUP
    assert_eq!(&golden[6..8], &[0, 0]);
    assert_eq!(le_u32(&golden[8..12]), 3);
    assert_eq!(le_u32(&golden[12..16]), 2);
    assert_eq!(le_u64(&golden[16..24]), 42);
    assert_eq!(le_u64(&golden[24..32]), 9);
    assert_eq!(le_u32(&golden[32..36]), 0xF56A_82EB);
    assert_eq!(
        le_u32(&golden[32..36]),
        salted_crc(SEG7, &[&example_records_body()])
    );
    assert_eq!(le_u32(&golden[36..40]), 0xB389_8661);
    assert_eq!(le_u32(&golden[36..40]), salted_crc(SEG7, &[&golden[0..36]]));

    let decoded = BatchHeader::decode(&golden, SEG7, 1024).unwrap();
    assert_eq!(decoded, h);
    assert!(decoded.last_in_group());
    assert_eq!(decoded.total_bytes(), 40 + 61);
    assert_eq!(decoded.check_body(SEG7, &example_records_body()), Ok(()));
}

#[test]
fn batch_header_refuses_wrong_crc() {
    let good = example_batch_header().encode(SEG7);
    for byte in 0..BATCH_HEADER_BYTES {
        let mut bad = good;
        bad[byte] ^= 0x80;
        assert_eq!(
            BatchHeader::decode(&bad, SEG7, 1024),
            Err(BatchError::HeaderCrc),
            "byte {byte}"
        );
    }
    // An erased area never validates.
    assert_eq!(
        BatchHeader::decode(&[0xFF; BATCH_HEADER_BYTES], SEG7, 1024),
        Err(BatchError::HeaderCrc)
    );
}

#[test]
fn batch_header_refuses_another_segments_salt() {
    let good = example_batch_header().encode(SEG7);
    for other in [
        SegmentSeq(6),
        SegmentSeq(8),
        SegmentSeq(7 + 4),
        SegmentSeq(0),
    ] {
        assert_eq!(
            BatchHeader::decode(&good, other, 1024),
            Err(BatchError::HeaderCrc),
            "segment {other}"
        );
    }
    // The body CRC is salted too: the same body does not validate for another segment.
    let h = example_batch_header();
    let body = example_records_body();
    assert_eq!(h.check_body(SegmentSeq(8), &body), Err(BatchError::BodyCrc));
    // Segment 0 salts the same body differently (FORMAT.md example 2.4).
    assert_eq!(salted_crc(SegmentSeq(0), &[&body]), 0xA51E_FBB2);
}

#[test]
fn batch_header_refuses_unknown_kinds() {
    let good = example_batch_header().encode(SEG7);
    for kind in [0u8, 5, 6, 0x7F, 0xFF] {
        let mut b = good;
        b[4] = kind;
        let b = reseal(b, SEG7);
        assert_eq!(
            BatchHeader::decode(&b, SEG7, 1024),
            Err(BatchError::Kind(kind))
        );
    }
}

#[test]
fn batch_header_refuses_reserved_bits() {
    let good = example_batch_header().encode(SEG7);
    for bit in 1..8 {
        let mut b = good;
        b[5] |= 1 << bit;
        let b = reseal(b, SEG7);
        assert_eq!(
            BatchHeader::decode(&b, SEG7, 1024),
            Err(BatchError::Reserved),
            "flag bit {bit}"
        );
    }
    for byte in [6, 7] {
        let mut b = good;
        b[byte] = 1;
        let b = reseal(b, SEG7);
        assert_eq!(
            BatchHeader::decode(&b, SEG7, 1024),
            Err(BatchError::Reserved),
            "byte {byte}"
        );
    }
}

/// The length is refused on the header alone: the decoder is given the 40 header bytes and
/// nothing else, so it cannot have read (or allocated) the body.
#[test]
fn batch_header_refuses_too_long_body_before_reading_it() {
    let mut b = example_batch_header().encode(SEG7);
    b[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
    let b = reseal(b, SEG7);
    assert_eq!(
        BatchHeader::decode(&b, SEG7, 1 << 20),
        Err(BatchError::TooLong {
            body_bytes: u32::MAX,
            body_bytes_max: 1 << 20,
        })
    );
    // The limit is inclusive.
    let good = example_batch_header().encode(SEG7);
    assert!(BatchHeader::decode(&good, SEG7, 61).is_ok());
    assert_eq!(
        BatchHeader::decode(&good, SEG7, 60),
        Err(BatchError::TooLong {
            body_bytes: 61,
            body_bytes_max: 60,
        })
    );
}

#[test]
fn batch_header_refuses_short_input_and_bad_bodies() {
    let good = example_batch_header().encode(SEG7);
    assert_eq!(
        BatchHeader::decode(&good[..39], SEG7, 1024),
        Err(BatchError::Truncated)
    );
    let h = example_batch_header();
    let body = example_records_body();
    assert_eq!(h.check_body(SEG7, &body[..60]), Err(BatchError::Truncated));
    let mut flipped = body.clone();
    flipped[30] ^= 0x04;
    assert_eq!(h.check_body(SEG7, &flipped), Err(BatchError::BodyCrc));
}

#[test]
fn batch_kind_and_flag_numbers() {
    assert_eq!(BatchKind::Records as u8, 1);
    assert_eq!(BatchKind::Meta as u8, 2);
    assert_eq!(BatchKind::Checkpoint as u8, 3);
    assert_eq!(BatchKind::Atomic as u8, 4);
    assert_eq!(FLAG_LAST_IN_GROUP, 0x01);
    assert_eq!(PartitionId::NONE, PartitionId(0xFFFF_FFFF));
}

// ---------------------------------------------------------------------------------------------
// 2.4 Layout constants and the first group of a fresh ring
// ---------------------------------------------------------------------------------------------

#[test]
fn layout_constants() {
    assert_eq!(SEGMENT_HEADER_BYTES, 64);
    assert_eq!(BATCH_HEADER_BYTES, 40);
    assert_eq!(FORMAT_VERSION, 1);
    assert_eq!(
        SEGMENT_MAGIC,
        [0x4F, 0x55, 0x54, 0x50, 0x4F, 0x53, 0x54, 0x00]
    );
    assert_eq!(PREV_END_NONE, u64::MAX);
    assert_eq!(KEY_NONE, 0xFFFF_FFFF);
    assert_eq!(first_batch_pos(16), 64);
    assert_eq!(first_batch_pos(64), 64);
    assert_eq!(first_batch_pos(256), 256);
    assert_eq!(first_batch_pos(512), 512);
    assert_eq!(align_up(661, 512), 1024);
    assert_eq!(align_up(1024, 512), 1024);
    assert_eq!(align_up(0, 512), 0);
}

/// Example 2.4, produced by the writer itself on the simulated flash: the segment header at 0,
/// `0xFF` to the program unit, group 1 = an empty checkpoint then the records batch, `0xFF`
/// after it to the end of the segment.
#[test]
fn first_group_of_a_fresh_ring() {
    use outpost::storage::flash::{Geometry, SimFlash};
    use outpost::storage::{AppendBody, CorruptionPolicy, FullPolicy, Ring, RingConfig};

    let cfg = RingConfig {
        erase_block_bytes: 4096,
        program_unit_bytes: 512,
        ring_bytes: 4 * 65536,
        segment_bytes: 65536,
        full_policy: FullPolicy::Reject,
        corruption_policy: CorruptionPolicy::Refuse,
        group_bytes_max: 8192,
        batch_bytes_max: 4096,
        meta_bytes_max: 1024,
        partitions_max: 16,
        index_interval_bytes: 4096,
        read_chunk_bytes: 4096,
        append_queue_max: 16,
        producers_max: 64,
    };
    let flash = SimFlash::new(Geometry::new(4096, 512, cfg.ring_bytes).unwrap());
    let (mut ring, report) = Ring::open(flash, cfg).unwrap();
    assert!(report.blank);
    let records = example_records();
    let group = ring
        .write_group(&[AppendBody::Records {
            partition: PartitionId(3),
            records: &records,
        }])
        .unwrap();
    assert_eq!(group.consumed, 1);
    ring.sync().unwrap();
    let image = ring.flash().image();

    let header = SegmentHeader {
        seq: SegmentSeq(0),
        segment_bytes: 65536,
        program_unit_bytes: 512,
        prev_end: PREV_END_NONE,
        ring_id: ring.ring_id(),
    };
    assert_eq!(&image[0..64], header.encode().as_slice());
    assert_eq!(&image[32..40], &[0xFF; 8]); // prev_end = PREV_END_NONE
    assert!(image[64..512].iter().all(|&b| b == 0xFF));

    let group = hex(FIRST_GROUP_HEX);
    assert_eq!(group.len(), 661 - 512);
    assert_eq!(&image[512..661], group.as_slice());
    assert!(image[661..65536].iter().all(|&b| b == 0xFF));

    // The same bytes from the codecs: an empty checkpoint (flags 0) and the records batch
    // (LAST_IN_GROUP), both in group 1 and salted with segment 0.
    let seg0 = SegmentSeq(0);
    let mut cp_body = Vec::new();
    encode_checkpoint_body(&Checkpoint::default(), &mut cp_body);
    assert_eq!(cp_body, [0u8; 8]);
    let cp = BatchHeader {
        body_bytes: 8,
        kind: BatchKind::Checkpoint,
        flags: 0,
        partition: PartitionId::NONE,
        record_count: 0,
        base_offset: Offset(0),
        group: GroupSeq(1),
        body_crc: salted_crc(seg0, &[&cp_body]),
    };
    let body = example_records_body();
    let records_header = BatchHeader {
        body_bytes: 61,
        kind: BatchKind::Records,
        flags: FLAG_LAST_IN_GROUP,
        partition: PartitionId(3),
        record_count: 2,
        base_offset: Offset(0),
        group: GroupSeq(1),
        body_crc: salted_crc(seg0, &[&body]),
    };
    let mut expected = cp.encode(seg0).to_vec();
    expected.extend_from_slice(&cp_body);
    expected.extend_from_slice(&records_header.encode(seg0));
    expected.extend_from_slice(&body);
    assert_eq!(expected, group);
    assert_eq!(le_u32(&group[32..36]), 0x4270_9AEA);
    assert_eq!(le_u32(&group[36..40]), 0x78AC_164F);
    assert_eq!(le_u32(&group[80..84]), 0xA51E_FBB2);
    assert_eq!(le_u32(&group[84..88]), 0x3E75_DC49);
}

// ---------------------------------------------------------------------------------------------
// 2.5 Records
// ---------------------------------------------------------------------------------------------

#[test]
fn records_body_golden() {
    let golden = hex(RECORDS_BODY_HEX);
    assert_eq!(golden.len(), 61);
    assert_eq!(example_records_body(), golden);

    let records = example_records();
    assert_eq!(records[0].encoded_bytes(), 38);
    assert_eq!(records[1].encoded_bytes(), 23);
    // Record 1: record_len 34 = 38 - 4; record 2 starts at 38 with record_len 19.
    assert_eq!(le_u32(&golden[0..4]), 34);
    assert_eq!(le_u64(&golden[4..12]) as i64, 1_700_000_000_000);
    assert_eq!(le_u32(&golden[12..16]), 3);
    assert_eq!(&golden[16..19], b"key");
    assert_eq!(le_u32(&golden[19..23]), 5);
    assert_eq!(&golden[23..28], b"value");
    assert_eq!(u16::from_le_bytes([golden[28], golden[29]]), 1);
    assert_eq!(u16::from_le_bytes([golden[30], golden[31]]), 1);
    assert_eq!(golden[32], b'h');
    assert_eq!(le_u32(&golden[33..37]), 1);
    assert_eq!(golden[37], b'v');
    assert_eq!(le_u32(&golden[38..42]), 19);
    assert_eq!(le_u64(&golden[42..50]) as i64, 1_700_000_000_001);
    assert_eq!(le_u32(&golden[50..54]), KEY_NONE);
    assert_eq!(le_u32(&golden[54..58]), 1);
    assert_eq!(golden[58], b'x');
    assert_eq!(&golden[59..61], &[0, 0]);

    let decoded: Vec<Record> = RecordIter::new(&golden, 2)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(decoded, records);

    let mut it = RecordIter::new(&golden, 2);
    assert_eq!(it.skip_record(), Some(Ok(38)));
    assert_eq!(it.skip_record(), Some(Ok(23)));
    assert_eq!(it.skip_record(), None);
    assert!(it.finished_cleanly());
}

#[test]
fn records_round_trip_edge_values() {
    let records = vec![
        Record::default(),
        Record {
            timestamp_ms: -1,
            key: Some(Vec::new()), // an empty key is not "no key"
            value: Vec::new(),
            headers: vec![
                (String::new(), Vec::new()),
                ("ünïcode".to_string(), vec![0xFF; 3]),
            ],
        },
        Record {
            timestamp_ms: i64::MAX,
            key: Some(vec![0xFF; 4]), // a key of four 0xFF bytes is not KEY_NONE
            value: vec![0; 1000],
            headers: (0..300).map(|i| (format!("h{i}"), vec![i as u8])).collect(),
        },
    ];
    let mut body = Vec::new();
    for r in &records {
        assert_eq!(r.check_limits(), Ok(()));
        let before = body.len();
        r.encode_into(&mut body);
        assert_eq!((body.len() - before) as u64, r.encoded_bytes());
    }
    assert_eq!(&body[12..16], &KEY_NONE.to_le_bytes()); // Record::default has no key
    let decoded: Vec<Record> = RecordIter::new(&body, 3).collect::<Result<_, _>>().unwrap();
    assert_eq!(decoded, records);
}

#[test]
fn records_refusals() {
    let golden = hex(RECORDS_BODY_HEX);

    // More records announced than the body holds.
    let mut it = RecordIter::new(&golden, 3);
    assert!(it.next().unwrap().is_ok());
    assert!(it.next().unwrap().is_ok());
    assert!(matches!(it.next(), Some(Err(BatchError::Body(_)))));
    assert!(it.next().is_none()); // iteration stops after the first error
    assert!(!it.finished_cleanly());

    // Fewer announced than the body holds: the leftover bytes are not a clean finish.
    let mut it = RecordIter::new(&golden, 1);
    assert!(it.skip_record().unwrap().is_ok());
    assert!(!it.finished_cleanly());

    // A record_len that runs past the body.
    let mut long = golden.clone();
    long[0..4].copy_from_slice(&1000u32.to_le_bytes());
    assert!(matches!(
        RecordIter::new(&long, 2).next(),
        Some(Err(BatchError::Body(_)))
    ));
    assert!(matches!(
        RecordIter::new(&long, 2).skip_record(),
        Some(Err(BatchError::Body(_)))
    ));

    // Trailing bytes inside a record: record_len 35 with one extra byte.
    let mut trailing = 35u32.to_le_bytes().to_vec();
    trailing.extend_from_slice(&golden[4..38]);
    trailing.push(0);
    assert_eq!(
        RecordIter::new(&trailing, 1).next(),
        Some(Err(BatchError::Body("record has trailing bytes")))
    );

    // A key length that runs past the record.
    let mut key = golden[..38].to_vec();
    key[12..16].copy_from_slice(&100u32.to_le_bytes());
    assert!(matches!(
        RecordIter::new(&key, 1).next(),
        Some(Err(BatchError::Body(_)))
    ));

    // A header name that is not UTF-8.
    let mut name = golden[..38].to_vec();
    name[32] = 0xFF;
    assert_eq!(
        RecordIter::new(&name, 1).next(),
        Some(Err(BatchError::Body("header name is not UTF-8")))
    );

    // A huge header count in a tiny record fails without allocating for it.
    let mut count = golden[..38].to_vec();
    count[28..30].copy_from_slice(&u16::MAX.to_le_bytes());
    assert!(matches!(
        RecordIter::new(&count, 1).next(),
        Some(Err(BatchError::Body(_)))
    ));
}

#[test]
fn record_limits() {
    let many = Record {
        headers: vec![(String::new(), Vec::new()); 65_536],
        ..Record::default()
    };
    assert!(many.check_limits().is_err());
    let long_name = Record {
        headers: vec![("n".repeat(65_536), Vec::new())],
        ..Record::default()
    };
    assert!(long_name.check_limits().is_err());
    let fine = Record {
        headers: vec![("n".repeat(65_535), Vec::new())],
        ..Record::default()
    };
    assert_eq!(fine.check_limits(), Ok(()));
}

// ---------------------------------------------------------------------------------------------
// 2.6 Meta
// ---------------------------------------------------------------------------------------------

#[test]
fn meta_body_golden() {
    let golden = hex(META_BODY_HEX);
    assert_eq!(golden.len(), 21);
    let mut body = Vec::new();
    encode_meta_body(&example_meta_ops(), &mut body);
    assert_eq!(body, golden);

    assert_eq!(le_u32(&golden[0..4]), 2);
    assert_eq!(&golden[4..6], &[1, 1]); // put, namespace 1
    assert_eq!(u16::from_le_bytes([golden[6], golden[7]]), 1);
    assert_eq!(golden[8], b't');
    assert_eq!(le_u32(&golden[9..13]), 3);
    assert_eq!(&golden[13..16], b"cfg");
    assert_eq!(&golden[16..18], &[2, 3]); // delete, namespace 3
    assert_eq!(u16::from_le_bytes([golden[18], golden[19]]), 1);
    assert_eq!(golden[20], b'g');

    assert_eq!(decode_meta_body(&golden), Ok(example_meta_ops()));
    let mut empty = Vec::new();
    encode_meta_body(&[], &mut empty);
    assert_eq!(empty, [0, 0, 0, 0]);
    assert_eq!(decode_meta_body(&empty), Ok(Vec::new()));
}

#[test]
fn meta_body_refusals() {
    let golden = hex(META_BODY_HEX);
    let mut op = golden.clone();
    op[16] = 3;
    assert_eq!(
        decode_meta_body(&op),
        Err(BatchError::Body("unknown metadata op"))
    );
    let mut trailing = golden.clone();
    trailing.push(0);
    assert_eq!(
        decode_meta_body(&trailing),
        Err(BatchError::Body("metadata body has trailing bytes"))
    );
    assert!(decode_meta_body(&golden[..20]).is_err());
    assert!(decode_meta_body(&[]).is_err());
    // A count of 2^32 - 1 with no operations behind it: an error, not a huge allocation.
    assert!(decode_meta_body(&u32::MAX.to_le_bytes()).is_err());
}

// ---------------------------------------------------------------------------------------------
// 2.7 Checkpoint
// ---------------------------------------------------------------------------------------------

#[test]
fn checkpoint_body_golden() {
    let golden = hex(CHECKPOINT_BODY_HEX);
    assert_eq!(golden.len(), 43);
    let mut body = Vec::new();
    encode_checkpoint_body(&example_checkpoint(), &mut body);
    assert_eq!(body, golden);

    assert_eq!(le_u32(&golden[0..4]), 2);
    assert_eq!(le_u32(&golden[4..8]), 0);
    assert_eq!(le_u64(&golden[8..16]), 5);
    assert_eq!(le_u32(&golden[16..20]), 3);
    assert_eq!(le_u64(&golden[20..28]), 44);
    assert_eq!(le_u32(&golden[28..32]), 1);
    assert_eq!(golden[32], 1);
    assert_eq!(u16::from_le_bytes([golden[33], golden[34]]), 1);
    assert_eq!(golden[35], b't');
    assert_eq!(le_u32(&golden[36..40]), 3);
    assert_eq!(&golden[40..43], b"cfg");

    assert_eq!(decode_checkpoint_body(&golden), Ok(example_checkpoint()));

    // Size rules of FORMAT.md 2.7 and 2.8: 8 + 12 per partition + the entries' charged size.
    let entry = meta_entry_bytes(b"t", b"cfg");
    assert_eq!(entry, 1 + 2 + 1 + 4 + 3);
    assert_eq!(golden.len() as u64, 8 + 12 * 2 + entry);
    assert_eq!(checkpoint_bytes_max(16, 1024), 40 + 8 + 12 * 16 + 1024);
}

#[test]
fn checkpoint_body_refusals() {
    let golden = hex(CHECKPOINT_BODY_HEX);
    let mut trailing = golden.clone();
    trailing.push(0);
    assert_eq!(
        decode_checkpoint_body(&trailing),
        Err(BatchError::Body("checkpoint body has trailing bytes"))
    );
    for cut in 0..golden.len() {
        assert!(
            decode_checkpoint_body(&golden[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    // Huge counts with nothing behind them: errors, not huge allocations.
    assert!(decode_checkpoint_body(&u32::MAX.to_le_bytes()).is_err());
    let mut entries = 0u32.to_le_bytes().to_vec();
    entries.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(decode_checkpoint_body(&entries).is_err());
}

// ---------------------------------------------------------------------------------------------
// 2.9 Namespaces
// ---------------------------------------------------------------------------------------------

/// These numbers are on the medium: never change or reuse one (FORMAT.md 2.9).
#[test]
fn namespace_registry() {
    use outpost::storage::meta::namespace;
    assert_eq!(namespace::TEST, 0);
    assert_eq!(namespace::TOPICS, 1);
    assert_eq!(namespace::PRODUCERS, 2);
    assert_eq!(namespace::GROUP_OFFSETS, 3);
    assert_eq!(namespace::FORWARDER, 4);
}

// ---------------------------------------------------------------------------------------------
// 2.10 Atomic
// ---------------------------------------------------------------------------------------------

/// Example 2.10: the `Atomic` body.
const ATOMIC_BODY_HEX: &str = "
00: 07 00 00 00 00 00 00 00 02 00 02 00 03 00 00 00
10: 2a 00 00 00 00 00 00 00 0a 00 00 00 02 00 00 00
20: 3d 00 00 00 22 00 00 00 00 68 e5 cf 8b 01 00 00
30: 03 00 00 00 6b 65 79 05 00 00 00 76 61 6c 75 65
40: 01 00 01 00 68 01 00 00 00 76 13 00 00 00 01 68
50: e5 cf 8b 01 00 00 ff ff ff ff 01 00 00 00 78 00
60: 00 05 00 00 00 00 00 00 00 00 00 00 00 00 00 00
70: 00 01 00 00 00 17 00 00 00 13 00 00 00 02 68 e5
80: cf 8b 01 00 00 ff ff ff ff 01 00 00 00 79 00 00
90: 01 00 00 00 01 03 03 00 67 2f 33 08 00 00 00 2c
a0: 00 00 00 00 00 00 00
";

/// Example 2.10: its batch header, salted with segment 7, in group 9, `LAST_IN_GROUP`.
const ATOMIC_HEADER_HEX: &str = "
00: a7 00 00 00 04 01 00 00 ff ff ff ff 03 00 00 00
10: 00 00 00 00 00 00 00 00 09 00 00 00 00 00 00 00
20: f8 1f 10 19 72 17 f0 88
";

/// The second part's one record: no key, value "y", no headers.
fn example_atomic_record() -> Vec<Record> {
    vec![Record {
        timestamp_ms: 1_700_000_000_002,
        key: None,
        value: b"y".to_vec(),
        headers: vec![],
    }]
}

/// A committed offset: `put(GROUP_OFFSETS, "g/3", 44 as u64)`.
fn example_atomic_ops() -> Vec<MetaOp> {
    vec![MetaOp::Put {
        namespace: 3,
        key: b"g/3".to_vec(),
        value: 44u64.to_le_bytes().to_vec(),
    }]
}

/// Producer 7, epoch 2: example 2.5's two records to partition 3 at offset 42 (sequences
/// 10..12), one record to partition 5 at offset 0 (sequence 0), and the committed offset.
fn example_atomic_body() -> Vec<u8> {
    use outpost::storage::{ProducerEpoch, ProducerId, Sequence};
    let (first, second) = (example_records(), example_atomic_record());
    let parts = [
        AtomicPartIn {
            partition: PartitionId(3),
            base_offset: Offset(42),
            first_seq: Sequence(10),
            records: &first,
        },
        AtomicPartIn {
            partition: PartitionId(5),
            base_offset: Offset(0),
            first_seq: Sequence(0),
            records: &second,
        },
    ];
    let mut body = Vec::new();
    encode_atomic_body(
        ProducerId(7),
        ProducerEpoch(2),
        &parts,
        &example_atomic_ops(),
        &mut body,
    );
    let mut meta = Vec::new();
    encode_meta_body(&example_atomic_ops(), &mut meta);
    assert_eq!(
        atomic_body_bytes(&parts, meta.len() as u64),
        body.len() as u64
    );
    body
}

#[test]
fn atomic_body_golden() {
    use outpost::storage::{ProducerEpoch, ProducerId, Sequence};
    let golden = hex(ATOMIC_BODY_HEX);
    assert_eq!(golden.len(), 167);
    assert_eq!(example_atomic_body(), golden);
    assert_eq!(ATOMIC_HEAD_BYTES, 12);
    assert_eq!(ATOMIC_PART_HEAD_BYTES, 24);

    // Head: producer id, epoch, part count.
    assert_eq!(le_u64(&golden[0..8]), 7);
    assert_eq!(u16::from_le_bytes([golden[8], golden[9]]), 2);
    assert_eq!(u16::from_le_bytes([golden[10], golden[11]]), 2);
    // Part 1 at 12: partition 3, base offset 42, first sequence 10, 2 records of 61 bytes,
    // which are exactly example 2.5's `Records` body.
    assert_eq!(le_u32(&golden[12..16]), 3);
    assert_eq!(le_u64(&golden[16..24]), 42);
    assert_eq!(le_u32(&golden[24..28]), 10);
    assert_eq!(le_u32(&golden[28..32]), 2);
    assert_eq!(le_u32(&golden[32..36]), 61);
    assert_eq!(&golden[36..97], hex(RECORDS_BODY_HEX).as_slice());
    // Part 2 at 97: partition 5, base offset 0, first sequence 0, 1 record of 23 bytes.
    assert_eq!(le_u32(&golden[97..101]), 5);
    assert_eq!(le_u64(&golden[101..109]), 0);
    assert_eq!(le_u32(&golden[109..113]), 0);
    assert_eq!(le_u32(&golden[113..117]), 1);
    assert_eq!(le_u32(&golden[117..121]), 23);
    let mut second = Vec::new();
    example_atomic_record()[0].encode_into(&mut second);
    assert_eq!(&golden[121..144], second.as_slice());
    // The rest is exactly a `Meta` body (section 2.6).
    let mut meta = Vec::new();
    encode_meta_body(&example_atomic_ops(), &mut meta);
    assert_eq!(&golden[144..], meta.as_slice());

    let view = decode_atomic_body(&golden).unwrap();
    assert_eq!(view.producer, ProducerId(7));
    assert_eq!(view.epoch, ProducerEpoch(2));
    assert_eq!(
        view.parts,
        vec![
            AtomicPart {
                partition: PartitionId(3),
                base_offset: Offset(42),
                first_seq: Sequence(10),
                record_count: 2,
                records: &golden[36..97],
            },
            AtomicPart {
                partition: PartitionId(5),
                base_offset: Offset(0),
                first_seq: Sequence(0),
                record_count: 1,
                records: &golden[121..144],
            },
        ]
    );
    assert_eq!(view.meta, &golden[144..]);
    let first: Vec<Record> = RecordIter::new(view.parts[0].records, 2)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(first, example_records());
    let second: Vec<Record> = RecordIter::new(view.parts[1].records, 1)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(second, example_atomic_record());
    assert_eq!(decode_meta_body(view.meta), Ok(example_atomic_ops()));

    // No parts, no operations: the head and an empty `Meta` body.
    let mut empty = Vec::new();
    encode_atomic_body(ProducerId(1), ProducerEpoch(0), &[], &[], &mut empty);
    assert_eq!(
        empty,
        hex("01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00")
    );
    let view = decode_atomic_body(&empty).unwrap();
    assert!(view.parts.is_empty());
    assert_eq!(decode_meta_body(view.meta), Ok(Vec::new()));
}

/// The header of an `Atomic` batch (section 2.3): `partition` and `base_offset` are the only
/// part's when there is exactly one part, `NONE` and 0 otherwise; `record_count` counts the
/// records of every part.
#[test]
fn atomic_header_golden() {
    let golden = hex(ATOMIC_HEADER_HEX);
    assert_eq!(golden.len(), BATCH_HEADER_BYTES);
    let body = hex(ATOMIC_BODY_HEX);
    let h = BatchHeader {
        body_bytes: 167,
        kind: BatchKind::Atomic,
        flags: FLAG_LAST_IN_GROUP,
        partition: PartitionId::NONE,
        record_count: 3,
        base_offset: Offset(0),
        group: GroupSeq(9),
        body_crc: salted_crc(SEG7, &[&body]),
    };
    assert_eq!(h.encode(SEG7).as_slice(), golden.as_slice());
    assert_eq!(golden[4], 4);
    assert_eq!(le_u32(&golden[32..36]), 0x1910_1FF8);
    assert_eq!(le_u32(&golden[36..40]), 0x88F0_1772);
    let decoded = BatchHeader::decode(&golden, SEG7, 1024).unwrap();
    assert_eq!(decoded, h);
    assert_eq!(decoded.check_body(SEG7, &body), Ok(()));
}

/// The writer applies the header rule: one part, several parts, no part (operations only).
#[test]
fn atomic_header_rule_on_the_medium() {
    use outpost::storage::flash::{Geometry, SimFlash};
    use outpost::storage::{
        AppendBody, AtomicPartBody, CorruptionPolicy, FullPolicy, Ring, RingConfig, Sequence,
    };

    let cfg = RingConfig {
        erase_block_bytes: 4096,
        program_unit_bytes: 512,
        ring_bytes: 4 * 65536,
        segment_bytes: 65536,
        full_policy: FullPolicy::Reject,
        corruption_policy: CorruptionPolicy::Refuse,
        group_bytes_max: 8192,
        batch_bytes_max: 4096,
        meta_bytes_max: 2048,
        partitions_max: 16,
        index_interval_bytes: 4096,
        read_chunk_bytes: 4096,
        append_queue_max: 16,
        producers_max: 64,
    };
    let flash = SimFlash::new(Geometry::new(4096, 512, cfg.ring_bytes).unwrap());
    let (mut ring, _) = Ring::open(flash, cfg).unwrap();
    // Partition 3 holds 42 records first, so the atomic write's part lands at offset 42.
    let filler: Vec<Record> = (0..42).map(|_| Record::default()).collect();
    ring.write_group(&[AppendBody::Records {
        partition: PartitionId(3),
        records: &filler,
    }])
    .unwrap();
    ring.sync().unwrap();
    let g = ring
        .write_group(&[AppendBody::InitProducer { name: b"app-1" }])
        .unwrap();
    ring.sync().unwrap();
    let (producer, epoch) = g.results[0].as_ref().unwrap().producer.unwrap();
    let part = |p: u32, seq: u32, records: Vec<Record>| AtomicPartBody {
        partition: PartitionId(p),
        first_seq: Sequence(seq),
        records,
    };
    let one = [part(3, 0, example_records())];
    let two = [
        part(3, 2, example_records()),
        part(5, 0, example_atomic_record()),
    ];
    let ops = example_atomic_ops();
    let g = ring
        .write_group(&[
            AppendBody::Atomic {
                producer,
                epoch,
                parts: &one,
                meta: &[],
            },
            AppendBody::Atomic {
                producer,
                epoch,
                parts: &two,
                meta: &ops,
            },
            AppendBody::Atomic {
                producer,
                epoch,
                parts: &[],
                meta: &ops,
            },
        ])
        .unwrap();
    assert_eq!(g.consumed, 3);
    ring.sync().unwrap();
    let image = ring.flash().image();

    // Segment 0 from byte 512: group 1 (checkpoint, records), group 2 (init), group 3.
    let seq = SegmentSeq(0);
    let mut pos = 512;
    let mut atomic = Vec::new();
    while atomic.len() < 3 {
        let h = BatchHeader::decode(&image[pos..pos + BATCH_HEADER_BYTES], seq, 65536).unwrap();
        let body = &image[pos + BATCH_HEADER_BYTES..pos + h.total_bytes() as usize];
        assert_eq!(h.check_body(seq, body), Ok(()));
        if h.kind == BatchKind::Atomic {
            let view = decode_atomic_body(body).unwrap();
            let parts: Vec<(PartitionId, Offset, u32)> = view
                .parts
                .iter()
                .map(|p| (p.partition, p.base_offset, p.record_count))
                .collect();
            atomic.push((h.partition, h.base_offset, h.record_count, parts));
        }
        pos += h.total_bytes() as usize;
        if h.last_in_group() {
            pos = align_up(pos as u64, 512) as usize;
        }
    }
    assert_eq!(
        atomic,
        vec![
            (
                PartitionId(3),
                Offset(42),
                2,
                vec![(PartitionId(3), Offset(42), 2)]
            ),
            (
                PartitionId::NONE,
                Offset(0),
                3,
                vec![
                    (PartitionId(3), Offset(44), 2),
                    (PartitionId(5), Offset(0), 1)
                ]
            ),
            (PartitionId::NONE, Offset(0), 0, vec![]),
        ]
    );
}

#[test]
fn atomic_body_refusals() {
    let golden = hex(ATOMIC_BODY_HEX);
    // Every truncation fails: in the head or a part (`decode_atomic_body`), or in the
    // operations (`decode_meta_body` of what is left).
    for cut in 0..golden.len() {
        let r = decode_atomic_body(&golden[..cut]).and_then(|v| decode_meta_body(v.meta));
        assert!(r.is_err(), "cut at {cut}");
    }
    // A part whose records run past the body.
    let mut long = golden.clone();
    long[32..36].copy_from_slice(&1000u32.to_le_bytes());
    assert!(decode_atomic_body(&long).is_err());
    // Trailing bytes after the operations.
    let mut trailing = golden.clone();
    trailing.push(0);
    let view = decode_atomic_body(&trailing).unwrap();
    assert_eq!(
        decode_meta_body(view.meta),
        Err(BatchError::Body("metadata body has trailing bytes"))
    );
    // 65,535 parts announced with nothing behind them: an error, not a huge allocation.
    let mut many = golden[..12].to_vec();
    many[10..12].copy_from_slice(&u16::MAX.to_le_bytes());
    assert!(decode_atomic_body(&many).is_err());
    // A record count that disagrees with a part's bytes decodes here (framing only); the
    // records are checked with `RecordIter`, as recovery does.
    let mut count = golden.clone();
    count[28..32].copy_from_slice(&3u32.to_le_bytes());
    let view = decode_atomic_body(&count).unwrap();
    let mut it = RecordIter::new(view.parts[0].records, view.parts[0].record_count);
    while let Some(r) = it.skip_record() {
        if r.is_err() {
            break;
        }
    }
    assert!(!it.finished_cleanly());
}

// ---------------------------------------------------------------------------------------------
// 2.11 The PRODUCERS namespace
// ---------------------------------------------------------------------------------------------

/// Example 2.11: producer "app-1" with id 7, at epoch 2 since group 9, whose last two batches
/// in partition 3 (sequences 0..2 at offset 42 in group 12, sequence 2 at offset 44 in group
/// 13) are remembered; the next id is 8. `(key, value)` of every entry, ascending.
const PRODUCERS_HEX: [(&str, &str); 4] = [
    ("43", "08 00 00 00 00 00 00 00"),
    ("4e 61 70 70 2d 31", "07 00 00 00 00 00 00 00"),
    (
        "50 00 00 00 00 00 00 00 07",
        "02 00 09 00 00 00 00 00 00 00 61 70 70 2d 31",
    ),
    (
        "53 00 00 00 00 00 00 00 07 00 00 00 03",
        "02 00 0d 00 00 00 00 00 00 00 02
         00 00 00 00 02 00 00 00 2a 00 00 00 00 00 00 00
         02 00 00 00 01 00 00 00 2c 00 00 00 00 00 00 00",
    ),
];

/// The entries of Example 2.11, produced by the library's own functions: `init` (three times:
/// epochs 0, 1, 2) and `appended_op` (what the writer and recovery apply for each part of an
/// `Atomic` batch).
#[test]
fn producers_namespace_golden() {
    use outpost::storage::meta::{MetaState, namespace};
    use outpost::storage::producer::{self, BatchMeta, ProducerEntry, SeqEntry};
    use outpost::storage::{ProducerEpoch, ProducerId, Sequence};

    let mut meta = MetaState::default();
    // Ids 0..7 were handed out before.
    meta.apply(&[MetaOp::Put {
        namespace: namespace::PRODUCERS,
        key: b"C".to_vec(),
        value: 7u64.to_le_bytes().to_vec(),
    }]);
    for stamp in [3, 5, 9] {
        let init = producer::init(&meta, b"app-1", 64, GroupSeq(stamp)).unwrap();
        assert_eq!(init.producer, ProducerId(7));
        meta.apply(&init.ops);
    }
    let (pid, epoch) = (ProducerId(7), ProducerEpoch(2));
    for (seq, count, base, group) in [(0, 2, 42, 12), (2, 1, 44, 13)] {
        let op = producer::appended_op(
            &meta,
            pid,
            epoch,
            PartitionId(3),
            Sequence(seq),
            count,
            Offset(base),
            GroupSeq(group),
        );
        meta.apply(&[op]);
    }
    let entries: Vec<(Vec<u8>, Vec<u8>)> = meta
        .iter_namespace(namespace::PRODUCERS)
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect();
    let golden: Vec<(Vec<u8>, Vec<u8>)> = PRODUCERS_HEX
        .iter()
        .map(|(k, v)| (hex(k), hex(v)))
        .collect();
    assert_eq!(entries, golden);

    // The value codecs.
    let entry = ProducerEntry {
        epoch,
        stamp: GroupSeq(9),
        name: b"app-1".to_vec(),
    };
    assert_eq!(producer::encode_producer(&entry), golden[2].1);
    assert_eq!(producer::decode_producer(&golden[2].1), Some(entry));
    let seq = SeqEntry {
        epoch,
        stamp: GroupSeq(13),
        batches: vec![
            BatchMeta {
                first_seq: Sequence(0),
                count: 2,
                base_offset: Offset(42),
            },
            BatchMeta {
                first_seq: Sequence(2),
                count: 1,
                base_offset: Offset(44),
            },
        ],
    };
    assert_eq!(producer::encode_seq(&seq), golden[3].1);
    assert_eq!(producer::decode_seq(&golden[3].1), Some(seq.clone()));
    assert_eq!(seq.next_seq(), 3);
    assert_eq!(producer::seq_state(&meta, pid, PartitionId(3)), Some(seq));
    assert_eq!(producer::id_of(&meta, b"app-1"), Some(pid));
    // A sequence entry is charged 1 + 2 + 13 + 4 + (11 + 16 n) bytes: 111 with five batches.
    assert_eq!(meta_entry_bytes(&golden[3].0, &golden[3].1), 63);
    assert_eq!(producer::BATCHES_KEPT, 5);
}

/// `decode_seq` takes exactly `11 + 16 n` bytes with `n <= 5`; anything else is no state.
#[test]
fn producers_seq_value_refusals() {
    use outpost::storage::producer::{self, BatchMeta, SeqEntry};
    use outpost::storage::{ProducerEpoch, Sequence};

    let golden = hex(PRODUCERS_HEX[3].1);
    for cut in 0..golden.len() {
        assert_eq!(producer::decode_seq(&golden[..cut]), None, "cut at {cut}");
    }
    let mut longer = golden.clone();
    longer.push(0);
    assert_eq!(producer::decode_seq(&longer), None);
    let six = SeqEntry {
        epoch: ProducerEpoch(0),
        stamp: GroupSeq(1),
        batches: vec![
            BatchMeta {
                first_seq: Sequence(0),
                count: 1,
                base_offset: Offset(0),
            };
            6
        ],
    };
    assert_eq!(producer::decode_seq(&producer::encode_seq(&six)), None);
    let five = SeqEntry {
        batches: six.batches[..5].to_vec(),
        ..six
    };
    let v = producer::encode_seq(&five);
    assert_eq!(v.len(), 11 + 16 * 5);
    assert_eq!(producer::decode_seq(&v), Some(five));
    // A producer value is at least epoch and stamp; the name may be empty.
    assert_eq!(producer::decode_producer(&[0; 9]), None);
    assert!(producer::decode_producer(&[0; 10]).is_some());
}
