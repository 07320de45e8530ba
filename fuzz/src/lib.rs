//! The checks behind every fuzz target, shared by the cargo-fuzz targets (`fuzz_targets/*.rs`,
//! one line each) and by the deterministic fuzz that `make test` runs
//! (`tests/decoder_fuzz.rs` includes this file with `#[path]`), so both assert the same
//! properties.
//!
//! Each `fuzz_*` function takes raw fuzzer bytes and never rejects them: a leading selector
//! byte picks a variant and, for the formats guarded by CRCs, whether to recompute the CRCs
//! after the fuzzer's edits (without that a random input never gets past the CRC check and the
//! logic behind it is never exercised). Each `check_*` function runs one decoder on one input
//! and asserts what must hold: it returns an error instead of panicking (a panic is the
//! finding), and what decodes re-encodes to the same bytes where the format makes that
//! meaningful.
//!
//! The ring images are written by the library itself (`Ring` on a `SimFlash`), then edited by
//! a list of mutations read from the fuzz input: byte sets, bit flips, fills, copies, and
//! structured edits of a batch or segment header field with the CRCs fixed up afterwards.

use std::sync::OnceLock;

use outpost::config::{DEFAULT_CONFIG_TEXT, Overrides, embedded_boards, parse_board, parse_config};
use outpost::storage::flash::{ERASED_BYTE, Geometry, SimFlash};
use outpost::storage::format::{
    ATOMIC_HEAD_BYTES, ATOMIC_PART_HEAD_BYTES, AtomicPartIn, BATCH_HEADER_BYTES, BatchError,
    BatchHeader, BatchKind, CRC32C, Checkpoint, HeaderError, RecordIter, SEGMENT_HEADER_BYTES,
    SegmentHeader, align_up, atomic_body_bytes, decode_atomic_body, decode_checkpoint_body,
    decode_meta_body, encode_atomic_body, encode_checkpoint_body, encode_meta_body,
    first_batch_pos, salted_crc,
};
use outpost::storage::meta::{MetaState, namespace};
use outpost::storage::producer;
use outpost::storage::recovery::{Mode, RecoveryReport, recover};
use outpost::storage::{
    AppendBody, AtomicPartBody, CorruptionPolicy, FullPolicy, MetaOp, Offset, OpenError,
    PartitionId, ProducerEpoch, ProducerId, Record, Ring, RingConfig, SegmentSeq, Sequence,
};

// ---------------------------------------------------------------------------------------------
// Input reader
// ---------------------------------------------------------------------------------------------

/// Reads little-endian integers from fuzz bytes; past the end every read gives 0.
pub struct Input<'a> {
    b: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(b: &'a [u8]) -> Input<'a> {
        Input { b }
    }
    pub fn is_empty(&self) -> bool {
        self.b.is_empty()
    }
    pub fn u8(&mut self) -> u8 {
        match self.b.split_first() {
            Some((&x, rest)) => {
                self.b = rest;
                x
            }
            None => 0,
        }
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    pub fn u32(&mut self) -> u32 {
        u32::from(self.u16()) | (u32::from(self.u16()) << 16)
    }
    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }
    /// Up to `n` bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.b.split_at(n.min(self.b.len()));
        self.b = tail;
        head
    }
    pub fn rest(&mut self) -> &'a [u8] {
        self.take(self.b.len())
    }
}

fn le_u64(b: &[u8]) -> u64 {
    let mut x = [0u8; 8];
    x[..b.len()].copy_from_slice(b);
    u64::from_le_bytes(x)
}

fn put_le(b: &mut [u8], v: u64) {
    let n = b.len();
    b.copy_from_slice(&v.to_le_bytes()[..n]);
}

/// splitmix64 (Steele, Lea, Flood 2014): tiny, fast, and every seed gives a good stream.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n` > 0; the bias is irrelevant here).
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
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.u8()).collect()
    }
    /// 0 to `max` random bytes.
    pub fn some_bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.upto(max);
        self.bytes(n)
    }
    /// A u64 that is often an edge value.
    pub fn edgy(&mut self) -> u64 {
        match self.below(8) {
            0 => 0,
            1 => u64::MAX - self.below(3),
            2 => u64::from(u32::MAX) - self.below(3),
            3 => self.below(300),
            4 => 1 << self.below(64),
            _ => self.next_u64(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Segment header
// ---------------------------------------------------------------------------------------------

/// `SegmentHeader::decode` on `b`.
pub fn check_segment_header(b: &[u8]) {
    match SegmentHeader::decode(b) {
        Ok(h) => {
            assert!(b.len() >= SEGMENT_HEADER_BYTES);
            let e = h.encode();
            // Every field round-trips. Bytes 48..60 are reserved: `decode` does not require
            // them to be zero (they are covered by the CRC), so the re-encoding (which writes
            // zeros) equals the input exactly when they are zero.
            assert_eq!(e[..48], b[..48], "segment header fields do not round-trip");
            if b[48..60].iter().all(|&x| x == 0) {
                assert_eq!(
                    e[..],
                    b[..SEGMENT_HEADER_BYTES],
                    "segment header re-encoding"
                );
            }
            assert_eq!(SegmentHeader::decode(&e), Ok(h));
        }
        Err(e) => {
            assert_eq!(e == HeaderError::Short, b.len() < SEGMENT_HEADER_BYTES);
            let _ = e.to_string();
        }
    }
}

/// Input: `[flags][header bytes...]`. Flags bit 0: write the magic; bit 1: recompute the CRC
/// (over bytes 0..60, into 60..64); bit 2: write version 1 and the 64-byte size field.
pub fn fuzz_segment_header(data: &[u8]) {
    let mut inp = Input::new(data);
    let flags = inp.u8();
    let mut b = inp.rest().to_vec();
    if b.len() >= SEGMENT_HEADER_BYTES {
        if flags & 1 != 0 {
            b[0..8].copy_from_slice(b"OUTPOST\x00");
        }
        if flags & 4 != 0 {
            b[8..10].copy_from_slice(&1u16.to_le_bytes());
            b[10..12].copy_from_slice(&(SEGMENT_HEADER_BYTES as u16).to_le_bytes());
        }
        if flags & 2 != 0 {
            let crc = CRC32C.checksum(&b[0..60]);
            b[60..64].copy_from_slice(&crc.to_le_bytes());
        }
    }
    check_segment_header(&b);
}

// ---------------------------------------------------------------------------------------------
// Batch header and body
// ---------------------------------------------------------------------------------------------

/// `BatchHeader::decode(b, seq, body_bytes_max)`, then `check_body` on the rest of `b` and, if
/// the body is valid, the body decoder of the batch's kind.
pub fn check_batch(b: &[u8], seq: SegmentSeq, body_bytes_max: u64) {
    match BatchHeader::decode(b, seq, body_bytes_max) {
        Ok(h) => {
            assert!(b.len() >= BATCH_HEADER_BYTES);
            assert_eq!(
                h.encode(seq)[..],
                b[..BATCH_HEADER_BYTES],
                "batch header re-encoding"
            );
            assert!(u64::from(h.body_bytes) <= body_bytes_max);
            assert_eq!(h.total_bytes(), 40 + u64::from(h.body_bytes));
            let body = &b[BATCH_HEADER_BYTES..];
            let r = h.check_body(seq, body);
            if body.len() != h.body_bytes as usize {
                assert_eq!(r, Err(BatchError::Truncated));
            }
            // The body the header describes, when the input is long enough.
            let want = (h.body_bytes as usize).min(body.len());
            if h.check_body(seq, &body[..want]).is_ok() {
                assert_eq!(want, h.body_bytes as usize);
                let body = &body[..want];
                match h.kind {
                    BatchKind::Records => check_records(body, h.record_count),
                    BatchKind::Meta => check_meta_body(body),
                    BatchKind::Checkpoint => check_checkpoint_body(body),
                    BatchKind::Atomic => check_atomic_body(body),
                }
            }
        }
        Err(e) => {
            assert_eq!(e == BatchError::Truncated, b.len() < BATCH_HEADER_BYTES);
            let _ = e.to_string();
        }
    }
}

/// An `Atomic` body (`decode_atomic_body`): decoding never panics and allocates at most what
/// the input could hold; a decoded body's parts lie inside it, back to back, and its records
/// and operations decode (or fail) without panicking; a body whose every part holds exactly
/// its records and whose operations decode re-encodes (`encode_atomic_body`) to the same bytes.
pub fn check_atomic_body(body: &[u8]) {
    match decode_atomic_body(body) {
        Ok(view) => {
            assert!(view.parts.len() <= body.len() / ATOMIC_PART_HEAD_BYTES);
            let mut inside = ATOMIC_HEAD_BYTES;
            let mut decoded = Vec::with_capacity(view.parts.len());
            for p in &view.parts {
                inside += ATOMIC_PART_HEAD_BYTES + p.records.len();
                check_records(p.records, p.record_count);
                let mut it = RecordIter::new(p.records, p.record_count);
                let records: Result<Vec<Record>, _> = it.by_ref().collect();
                match records {
                    Ok(r) if it.finished_cleanly() => decoded.push(r),
                    _ => {}
                }
            }
            assert_eq!(inside + view.meta.len(), body.len());
            check_meta_body(view.meta);
            let ops = decode_meta_body(view.meta);
            if let (true, Ok(ops)) = (decoded.len() == view.parts.len(), ops) {
                let parts: Vec<AtomicPartIn<'_>> = view
                    .parts
                    .iter()
                    .zip(&decoded)
                    .map(|(p, records)| AtomicPartIn {
                        partition: p.partition,
                        base_offset: p.base_offset,
                        first_seq: p.first_seq,
                        records,
                    })
                    .collect();
                let mut enc = Vec::new();
                encode_atomic_body(view.producer, view.epoch, &parts, &ops, &mut enc);
                assert_eq!(enc, body, "atomic body re-encoding");
                let mut meta = Vec::new();
                encode_meta_body(&ops, &mut meta);
                assert_eq!(
                    atomic_body_bytes(&parts, meta.len() as u64),
                    body.len() as u64
                );
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// Input: `[flags][seq: 8][body_bytes_max: 4][header and body...]`. Flags bit 0: set
/// `body_bytes` to the length of the rest; bit 1: recompute the body CRC (over `body_bytes`
/// bytes, as far as present); bit 2: recompute the header CRC; bit 3: `body_bytes_max` is
/// `u64::MAX`; bit 4: `seq` is the single byte after the flags (the rest of the 8 bytes is
/// still consumed).
pub fn fuzz_batch(data: &[u8]) {
    let mut inp = Input::new(data);
    let flags = inp.u8();
    let seq_bytes = inp.take(8);
    let seq = if flags & 16 != 0 {
        u64::from(seq_bytes.first().copied().unwrap_or(0))
    } else {
        le_u64(seq_bytes)
    };
    let seq = SegmentSeq(seq);
    let max = if flags & 8 != 0 {
        u64::MAX
    } else {
        u64::from(inp.u32())
    };
    let mut b = inp.rest().to_vec();
    if b.len() >= BATCH_HEADER_BYTES {
        if flags & 1 != 0 {
            let n = (b.len() - BATCH_HEADER_BYTES) as u32;
            b[0..4].copy_from_slice(&n.to_le_bytes());
        }
        if flags & 2 != 0 {
            fix_body_crc(&mut b, seq);
        }
        if flags & 4 != 0 {
            fix_header_crc(&mut b, seq);
        }
    }
    check_batch(&b, seq, max);
}

/// Recomputes the salted header CRC of the batch header at the start of `b` (≥ 40 bytes).
pub fn fix_header_crc(b: &mut [u8], seq: SegmentSeq) {
    let crc = salted_crc(seq, &[&b[0..36]]);
    b[36..40].copy_from_slice(&crc.to_le_bytes());
}

/// Recomputes the salted body CRC of the batch at the start of `b` over its `body_bytes`
/// (clamped to what `b` holds).
pub fn fix_body_crc(b: &mut [u8], seq: SegmentSeq) {
    let n = le_u64(&b[0..4]) as usize;
    let end = BATCH_HEADER_BYTES.saturating_add(n).min(b.len());
    let crc = salted_crc(seq, &[&b[BATCH_HEADER_BYTES..end]]);
    b[32..36].copy_from_slice(&crc.to_le_bytes());
}

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

/// `RecordIter` over `body` claiming `record_count` records, once with `next` and once with
/// `skip_record`: both stop at the first error, never yield more than `record_count` items,
/// agree on the size of every record `next` decoded, and every decoded record re-encodes to
/// exactly the bytes it was read from.
pub fn check_records(body: &[u8], record_count: u32) {
    let mut sizes = Vec::new();
    let mut pos = 0usize;
    let mut failed = false;
    let mut it = RecordIter::new(body, record_count);
    let mut items = 0u64;
    for r in it.by_ref() {
        items += 1;
        assert!(
            items <= u64::from(record_count),
            "RecordIter::next past record_count"
        );
        match r {
            Ok(rec) => {
                assert!(!failed, "RecordIter::next went on after an error");
                assert_eq!(rec.check_limits(), Ok(()));
                let mut enc = Vec::new();
                rec.encode_into(&mut enc);
                assert_eq!(enc.len() as u64, rec.encoded_bytes());
                assert!(pos + enc.len() <= body.len());
                assert_eq!(enc[..], body[pos..pos + enc.len()], "record re-encoding");
                pos += enc.len();
                sizes.push(enc.len());
            }
            Err(e) => {
                failed = true;
                let _ = e.to_string();
            }
        }
    }
    assert!(it.next().is_none());
    let all_decoded = sizes.len() as u64 == u64::from(record_count);
    if all_decoded {
        assert!(!failed);
        assert_eq!(it.finished_cleanly(), pos == body.len());
    } else {
        assert!(
            failed || record_count == 0,
            "RecordIter::next stopped early without error"
        );
        assert!(!it.finished_cleanly());
    }

    let mut sk = RecordIter::new(body, record_count);
    let mut spos = 0usize;
    let mut i = 0usize;
    let mut skip_failed = false;
    while let Some(r) = sk.skip_record() {
        assert!(
            (i as u64) < u64::from(record_count),
            "skip_record past record_count"
        );
        assert!(!skip_failed, "skip_record went on after an error");
        match r {
            Ok(used) => {
                assert!(used >= 4);
                spos += used;
                assert!(spos <= body.len());
                if let Some(&s) = sizes.get(i) {
                    assert_eq!(
                        used, s,
                        "skip_record and next disagree on record {i}'s size"
                    );
                }
            }
            Err(_) => {
                // `skip_record` only checks the length prefix: where it fails, `next` did too.
                assert!(
                    i >= sizes.len(),
                    "skip_record failed on a record next decoded"
                );
                skip_failed = true;
            }
        }
        i += 1;
    }
    assert!(sk.skip_record().is_none());
    if all_decoded {
        assert!(!skip_failed);
        assert_eq!(spos, pos);
        assert_eq!(sk.finished_cleanly(), it.finished_cleanly());
    }
}

/// Input: `[count][body...]`; a count byte of 0xF0 or more means the next 4 bytes are a u32
/// count (and the count byte's low nibble 0xF means `u32::MAX`).
pub fn fuzz_records(data: &[u8]) {
    let mut inp = Input::new(data);
    let c = inp.u8();
    let count = match c {
        0xFF => u32::MAX,
        0xF0..=0xFE => inp.u32(),
        _ => u32::from(c),
    };
    check_records(inp.rest(), count);
}

// ---------------------------------------------------------------------------------------------
// Metadata and checkpoint bodies
// ---------------------------------------------------------------------------------------------

/// `decode_meta_body`: what decodes re-encodes to the same bytes, and applying it to a
/// `MetaState` gives the size `bytes_after` predicted.
pub fn check_meta_body(b: &[u8]) {
    match decode_meta_body(b) {
        Ok(ops) => {
            assert!(ops.len() <= b.len() / 4);
            let mut enc = Vec::new();
            encode_meta_body(&ops, &mut enc);
            assert_eq!(enc, b, "meta body re-encoding");
            let mut m = MetaState::default();
            let predicted = m.bytes_after(&ops);
            m.apply(&ops);
            assert_eq!(m.bytes(), predicted);
            let predicted = m.bytes_after(&ops);
            m.apply(&ops);
            assert_eq!(m.bytes(), predicted);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// `decode_checkpoint_body`: what decodes re-encodes to the same bytes.
pub fn check_checkpoint_body(b: &[u8]) {
    match decode_checkpoint_body(b) {
        Ok(cp) => {
            assert!(cp.partitions.len() <= b.len() / 12);
            assert!(cp.meta.len() <= b.len() / 7);
            let mut enc = Vec::new();
            encode_checkpoint_body(&cp, &mut enc);
            assert_eq!(enc, b, "checkpoint body re-encoding");
            let mut m = MetaState::default();
            m.replace(&cp.meta);
            assert!(m.bytes() <= b.len() as u64);
            assert!(m.len() <= cp.meta.len());
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// Input: a body, decoded as a metadata body, as a checkpoint body and as an `Atomic` body.
pub fn fuzz_meta_checkpoint(data: &[u8]) {
    check_meta_body(data);
    check_checkpoint_body(data);
    check_atomic_body(data);
}

/// Encodes a checkpoint (for the deterministic fuzz's generators).
pub fn encode_checkpoint(cp: &Checkpoint) -> Vec<u8> {
    let mut v = Vec::new();
    encode_checkpoint_body(cp, &mut v);
    v
}

// ---------------------------------------------------------------------------------------------
// Ring images and recovery
// ---------------------------------------------------------------------------------------------

/// One small ring geometry, with images written by the library.
pub struct Setup {
    pub name: &'static str,
    /// The configuration the images were written with.
    pub cfg: RingConfig,
    pub geometry: Geometry,
    pub images: Vec<Image>,
}

/// One ring image and where its batches are (found by scanning it before any mutation).
pub struct Image {
    pub name: &'static str,
    pub bytes: Vec<u8>,
    pub batches: Vec<BatchLoc>,
}

/// A batch of an unmutated image: its segment's sequence, its absolute position and size.
#[derive(Clone, Copy, Debug)]
pub struct BatchLoc {
    pub seq: SegmentSeq,
    pub at: usize,
    pub total: usize,
}

/// The ring id written into every image, so images (and so replays) are reproducible.
pub const FIXED_RING_ID: u64 = 0x0123_4567_89AB_CDEF;

#[allow(clippy::too_many_arguments)]
fn ring_config(
    erase: u64,
    unit: u64,
    segment: u64,
    segments: u64,
    group: u64,
    batch: u64,
    meta: u64,
    partitions: u32,
    chunk: u64,
) -> RingConfig {
    let c = RingConfig {
        erase_block_bytes: erase,
        program_unit_bytes: unit,
        ring_bytes: segment * segments,
        segment_bytes: segment,
        full_policy: FullPolicy::DropOldest,
        corruption_policy: CorruptionPolicy::Refuse,
        group_bytes_max: group,
        batch_bytes_max: batch,
        meta_bytes_max: meta,
        partitions_max: partitions,
        index_interval_bytes: 256,
        read_chunk_bytes: chunk,
        append_queue_max: 16,
        producers_max: 4,
    };
    c.validate().expect("fuzz ring config");
    c
}

/// The setups, built once per process.
pub fn setups() -> &'static [Setup] {
    static SETUPS: OnceLock<Vec<Setup>> = OnceLock::new();
    SETUPS.get_or_init(|| {
        vec![
            // 6 segments of 4 KiB, 64-byte program unit.
            build_setup("u64", ring_config(512, 64, 4096, 6, 1280, 512, 512, 4, 256)),
            // 4 segments of 2 KiB, 16-byte program unit, a read chunk barely above a header.
            build_setup("u16", ring_config(256, 16, 2048, 4, 768, 256, 384, 3, 64)),
            // 4 segments of 8 KiB, 1 KiB program unit (the first batch is not at byte 64).
            build_setup(
                "u1k",
                ring_config(1024, 1024, 8192, 4, 4096, 1024, 512, 4, 1024),
            ),
        ]
    })
}

fn geometry(cfg: &RingConfig) -> Geometry {
    Geometry::new(
        cfg.erase_block_bytes,
        cfg.program_unit_bytes,
        cfg.ring_bytes,
    )
    .expect("fuzz geometry")
}

fn sample_record(i: u64) -> Record {
    Record {
        timestamp_ms: i as i64 * 1000,
        key: i.is_multiple_of(3).then(|| format!("k{i}").into_bytes()),
        value: vec![b'a' + (i % 26) as u8; (i % 37) as usize],
        headers: if i.is_multiple_of(4) {
            vec![("h".to_string(), vec![i as u8; (i % 5) as usize])]
        } else {
            vec![]
        },
    }
}

fn meta_ops(i: u64) -> Vec<MetaOp> {
    let key = format!("key{}", i % 5).into_bytes();
    if i.is_multiple_of(7) {
        vec![MetaOp::Delete { namespace: 1, key }]
    } else {
        vec![MetaOp::Put {
            namespace: (i % 3) as u8,
            key,
            value: vec![i as u8; (i % 11) as usize],
        }]
    }
}

/// The idempotent producer of the images: initialised once per ring (a `Meta` batch).
fn fuzz_producer(ring: &mut Ring<SimFlash>) -> (ProducerId, ProducerEpoch) {
    let meta = ring.meta();
    if let Some(pid) = producer::id_of(meta, b"fuzz")
        && let Some(p) = producer::producer(meta, pid)
    {
        return (pid, p.epoch);
    }
    let g = ring
        .write_group(&[AppendBody::InitProducer { name: b"fuzz" }])
        .expect("init on a fresh sim flash");
    ring.sync().expect("sync on a fresh sim flash");
    match g.results.first() {
        Some(Ok(a)) => a.producer.expect("an init answers with the producer"),
        other => panic!("init refused on a fresh ring: {other:?}"),
    }
}

/// The parts of the atomic write of group `g`: one or two partitions, the producer's next
/// sequences, one record each.
fn atomic_parts(ring: &Ring<SimFlash>, cfg: &RingConfig, g: u64) -> Vec<AtomicPartBody> {
    let (pid, epoch) = {
        let meta = ring.meta();
        let pid = producer::id_of(meta, b"fuzz").expect("the producer was initialised");
        let epoch = producer::producer(meta, pid).map_or(ProducerEpoch(0), |p| p.epoch);
        (pid, epoch)
    };
    let n = u64::from(cfg.partitions_max);
    let partitions = if g.is_multiple_of(2) && n > 1 {
        vec![g % n, (g + 1) % n]
    } else {
        vec![(g + 1) % n]
    };
    partitions
        .into_iter()
        .map(|p| {
            let partition = PartitionId(p as u32);
            let next = producer::seq_state(ring.meta(), pid, partition)
                .filter(|s| s.epoch == epoch)
                .map_or(0, |s| s.next_seq());
            AtomicPartBody {
                partition,
                first_seq: Sequence(next as u32),
                records: vec![sample_record(g * 3 + 2)],
            }
        })
        .collect()
}

/// Writes `groups` groups (records over all partitions, some metadata, and every third group
/// an idempotent producer's `Atomic` batch, sometimes with an operation) and syncs each.
fn write_groups(ring: &mut Ring<SimFlash>, cfg: &RingConfig, from: u64, groups: u64, sync: bool) {
    let (pid, epoch) = fuzz_producer(ring);
    for g in from..from + groups {
        let recs: Vec<Record> = (0..1 + g % 2).map(|j| sample_record(g * 3 + j)).collect();
        let ops = meta_ops(g);
        let parts = atomic_parts(ring, cfg, g);
        let atomic_ops = if g.is_multiple_of(6) {
            vec![MetaOp::Put {
                namespace: namespace::GROUP_OFFSETS,
                key: format!("g{}", g % 3).into_bytes(),
                value: g.to_le_bytes().to_vec(),
            }]
        } else {
            vec![]
        };
        let p = PartitionId((g % u64::from(cfg.partitions_max)) as u32);
        let mut appends = vec![AppendBody::Records {
            partition: p,
            records: &recs,
        }];
        if g.is_multiple_of(4) {
            appends.push(AppendBody::Meta(&ops));
        }
        if g % 3 == 1 {
            appends.push(AppendBody::Atomic {
                producer: pid,
                epoch,
                parts: &parts,
                meta: &atomic_ops,
            });
        }
        let mut rest = &appends[..];
        while !rest.is_empty() {
            let r = ring
                .write_group(rest)
                .expect("write_group on a fresh sim flash");
            for (x, a) in r.results.iter().zip(rest) {
                // Metadata may be refused when the state is full; records never are.
                if let AppendBody::Records { .. } = a {
                    x.as_ref().expect("append on a fresh sim flash");
                }
            }
            rest = &rest[r.consumed..];
            if sync || !rest.is_empty() {
                ring.sync().expect("sync on a fresh sim flash");
            }
        }
    }
}

fn build_setup(name: &'static str, cfg: RingConfig) -> Setup {
    let geo = geometry(&cfg);
    let mut images = Vec::new();
    // A fresh ring with a few groups in its first segment.
    {
        let (mut ring, _) = Ring::open(SimFlash::new(geo), cfg.clone()).expect("fresh ring");
        write_groups(&mut ring, &cfg, 0, 6, true);
        images.push(("fresh", ring.flash().durable_image()));
    }
    // A ring that wrapped: every slot holds a segment, the oldest ones were dropped.
    let segment_groups = cfg.segment_bytes / 128;
    let (mut ring, _) = Ring::open(SimFlash::new(geo), cfg.clone()).expect("fresh ring");
    write_groups(
        &mut ring,
        &cfg,
        0,
        segment_groups * (cfg.segment_count() + 2),
        true,
    );
    images.push(("wrapped", ring.flash().durable_image()));
    // The same with a last group that a power cut tore.
    write_groups(&mut ring, &cfg, 10_000, 2, true);
    write_groups(&mut ring, &cfg, 10_002, 1, false);
    images.push(("torn", ring.flash().crash_image(7).durable_image()));
    // A blank area.
    images.push(("blank", vec![ERASED_BYTE; cfg.ring_bytes as usize]));

    let images = images
        .into_iter()
        .map(|(name, mut bytes)| {
            fix_ring_id(&mut bytes, &cfg);
            let batches = find_batches(&bytes, &cfg);
            Image {
                name,
                bytes,
                batches,
            }
        })
        .collect();
    Setup {
        name,
        cfg,
        geometry: geo,
        images,
    }
}

/// Rewrites every valid segment header with [`FIXED_RING_ID`] (the ring id is the time).
fn fix_ring_id(image: &mut [u8], cfg: &RingConfig) {
    let seg = cfg.segment_bytes as usize;
    for base in (0..image.len()).step_by(seg) {
        let hb = &mut image[base..base + SEGMENT_HEADER_BYTES];
        if let Ok(mut h) = SegmentHeader::decode(hb) {
            h.ring_id = FIXED_RING_ID;
            hb.copy_from_slice(&h.encode());
        }
    }
}

/// The batches of every segment with a valid header, as a scan from the first batch finds them.
fn find_batches(image: &[u8], cfg: &RingConfig) -> Vec<BatchLoc> {
    let seg = cfg.segment_bytes as usize;
    let mut out = Vec::new();
    for base in (0..image.len()).step_by(seg) {
        let Ok(h) = SegmentHeader::decode(&image[base..base + SEGMENT_HEADER_BYTES]) else {
            continue;
        };
        let mut pos = first_batch_pos(cfg.program_unit_bytes) as usize;
        while pos + BATCH_HEADER_BYTES <= seg {
            let at = base + pos;
            let Ok(bh) = BatchHeader::decode(&image[at..at + BATCH_HEADER_BYTES], h.seq, u64::MAX)
            else {
                break;
            };
            let total = bh.total_bytes() as usize;
            if pos + total > seg {
                break;
            }
            out.push(BatchLoc {
                seq: h.seq,
                at,
                total,
            });
            pos += total;
            if bh.last_in_group() {
                pos = align_up(pos as u64, cfg.program_unit_bytes) as usize;
            }
        }
    }
    out
}

/// A configuration to read an image with: the one it was written with, or a variant.
pub fn read_config(setup: &Setup, variant: u8) -> RingConfig {
    let mut c = setup.cfg.clone();
    match variant % 8 {
        // Smaller limits than the writer had (still valid).
        1 => {
            c.batch_bytes_max = 64;
            c.meta_bytes_max = 16;
            c.partitions_max = 1;
        }
        // The smallest read chunk.
        2 => c.read_chunk_bytes = BATCH_HEADER_BYTES as u64,
        // A read chunk larger than a segment.
        3 => c.read_chunk_bytes = c.segment_bytes * 2,
        // Fewer segments than were written: slots no longer match sequences.
        4 => c.ring_bytes = c.segment_bytes * 4,
        // Reject when full.
        5 => c.full_policy = FullPolicy::Reject,
        _ => {}
    }
    c
}

/// Applies the mutation list `ops` (see [`fuzz_recovery`]) to `image`.
pub fn mutate_image(image: &mut [u8], setup: &Setup, batches: &[BatchLoc], ops: &[u8]) {
    let len = image.len();
    if len == 0 {
        return;
    }
    let seg = setup.cfg.segment_bytes as usize;
    let slots = len / seg;
    let mut inp = Input::new(ops);
    while !inp.is_empty() {
        let op = inp.u8();
        match op % 8 {
            // Set one byte.
            0 => {
                let at = usize::from(inp.u16()) % len;
                image[at] = inp.u8();
            }
            // Flip one bit.
            1 => {
                let at = usize::from(inp.u16()) % len;
                image[at] ^= 1 << (inp.u8() % 8);
            }
            // Fill up to 256 bytes, or up to the end of the segment (a torn tail or an erase).
            2 => {
                let at = usize::from(inp.u16()) % len;
                let n = usize::from(inp.u8()) + 1;
                let v = inp.u8();
                let end = if op & 0x80 != 0 {
                    (at / seg + 1) * seg
                } else {
                    (at + n).min(len)
                };
                image[at..end].fill(v);
            }
            // Copy a range elsewhere (a stale lap, a replayed batch).
            3 => {
                let from = usize::from(inp.u16()) % len;
                let to = usize::from(inp.u16()) % len;
                let n = (usize::from(inp.u16()) % seg + 1)
                    .min(len - from)
                    .min(len - to);
                image.copy_within(from..from + n, to);
            }
            // Edit a batch header field, then fix both CRCs.
            4 => {
                let (i, field, value) = (inp.u8(), inp.u8(), edit_value(&mut inp));
                if batches.is_empty() {
                    continue;
                }
                let b = batches[usize::from(i) % batches.len()];
                let (off, width) = match field % 8 {
                    0 => (0, 4),  // body_bytes
                    1 => (4, 1),  // kind
                    2 => (5, 1),  // flags
                    3 => (6, 2),  // reserved
                    4 => (8, 4),  // partition
                    5 => (12, 4), // record_count
                    6 => (16, 8), // base_offset
                    _ => (24, 8), // group
                };
                let f = &mut image[b.at + off..b.at + off + width];
                let v = value.apply(le_u64(f));
                put_le(f, v);
                let end = (b.at / seg + 1) * seg;
                fix_body_crc(&mut image[b.at..end], b.seq);
                fix_header_crc(&mut image[b.at..end], b.seq);
            }
            // Edit a byte of a batch body, then fix both CRCs (the body decoders see it).
            5 => {
                let (i, at, v) = (inp.u8(), usize::from(inp.u16()), inp.u8());
                if batches.is_empty() {
                    continue;
                }
                let b = batches[usize::from(i) % batches.len()];
                if b.total > BATCH_HEADER_BYTES {
                    let i = b.at + BATCH_HEADER_BYTES + at % (b.total - BATCH_HEADER_BYTES);
                    image[i] = v;
                }
                let end = (b.at / seg + 1) * seg;
                fix_body_crc(&mut image[b.at..end], b.seq);
                fix_header_crc(&mut image[b.at..end], b.seq);
            }
            // Edit a segment header field, then fix its CRC.
            6 => {
                let base = (usize::from(inp.u8()) % slots) * seg;
                let field = inp.u8();
                let value = edit_value(&mut inp);
                let (off, width) = match field % 8 {
                    0 => (8, 2),   // version
                    1 => (10, 2),  // header size
                    2 => (12, 4),  // program_unit_bytes
                    3 => (16, 8),  // seq
                    4 => (24, 8),  // segment_bytes
                    5 => (32, 8),  // prev_end
                    6 => (40, 8),  // ring_id
                    _ => (48, 12), // reserved (only 8 bytes are set)
                };
                let width = width.min(8);
                let f = &mut image[base + off..base + off + width];
                let v = value.apply(le_u64(f));
                put_le(f, v);
                let crc = CRC32C.checksum(&image[base..base + 60]);
                image[base + 60..base + 64].copy_from_slice(&crc.to_le_bytes());
            }
            // Move a segment to another sequence: its header and every batch in it are
            // re-salted, so the segment is valid under the new sequence.
            _ => {
                let slot = usize::from(inp.u8()) % slots;
                let base = slot * seg;
                let (k, any) = if op & 0x80 != 0 {
                    (0, inp.u64())
                } else {
                    (u64::from(inp.u8() % 8), 0)
                };
                let Ok(mut h) = SegmentHeader::decode(&image[base..base + SEGMENT_HEADER_BYTES])
                else {
                    continue;
                };
                let old = h.seq;
                let n = slots as u64;
                // Stay in the same slot (±k laps), or (op bit 7) any sequence at all.
                h.seq = SegmentSeq(if op & 0x80 != 0 {
                    any
                } else if op & 0x40 != 0 {
                    old.0.saturating_sub(k * n)
                } else {
                    old.0.saturating_add(k * n)
                });
                image[base..base + SEGMENT_HEADER_BYTES].copy_from_slice(&h.encode());
                for b in batches
                    .iter()
                    .filter(|b| b.at / seg == slot && b.seq == old)
                {
                    let end = base + seg;
                    fix_body_crc(&mut image[b.at..end], h.seq);
                    fix_header_crc(&mut image[b.at..end], h.seq);
                }
            }
        }
    }
}

/// How a structured edit changes a field.
enum EditValue {
    Set(u64),
    Add(i64),
    FromMax(u64),
}

impl EditValue {
    fn apply(&self, cur: u64) -> u64 {
        match *self {
            EditValue::Set(v) => v,
            EditValue::Add(d) => cur.wrapping_add(d as u64),
            EditValue::FromMax(d) => u64::MAX - d,
        }
    }
}

fn edit_value(inp: &mut Input<'_>) -> EditValue {
    let mode = inp.u8();
    match mode % 4 {
        0 => EditValue::Set(inp.u64()),
        1 => EditValue::Add(i64::from(inp.u8() as i8)),
        2 => EditValue::FromMax(u64::from(inp.u8() % 4)),
        _ => EditValue::Set(u64::from(inp.u8())),
    }
}

/// 1 to 5 random mutations (in [`mutate_image`]'s encoding) for the image `pick` selects;
/// positions favour segment headers and batches.
pub fn recovery_ops(rng: &mut Rng, pick: u8) -> Vec<u8> {
    let setups = setups();
    let setup = &setups[usize::from(pick) % setups.len()];
    let image = &setup.images[usize::from(pick) / setups.len() % setup.images.len()];
    let len = image.bytes.len();
    let seg = setup.cfg.segment_bytes as usize;
    let mut ops = Vec::new();
    let pos = |rng: &mut Rng| -> u16 {
        let p = match rng.below(4) {
            0 if !image.batches.is_empty() => {
                let b = image.batches[rng.below(image.batches.len() as u64) as usize];
                b.at + rng.below(b.total as u64 + 8) as usize
            }
            1 => rng.below((len / seg) as u64) as usize * seg + rng.below(80) as usize,
            _ => rng.below(len as u64) as usize,
        };
        (p % len) as u16
    };
    for _ in 0..1 + rng.below(5) {
        let op = rng.u8();
        ops.push(op);
        match op % 8 {
            0 | 1 => {
                let p = pos(rng);
                ops.extend_from_slice(&p.to_le_bytes());
                ops.push(rng.u8());
            }
            2 => {
                let p = pos(rng);
                ops.extend_from_slice(&p.to_le_bytes());
                ops.push(rng.u8());
                ops.push(if rng.chance(1, 2) { 0xff } else { rng.u8() });
            }
            3 => {
                // Mostly whole batches or segments copied over others.
                let (from, to) = (pos(rng), pos(rng));
                ops.extend_from_slice(&from.to_le_bytes());
                ops.extend_from_slice(&to.to_le_bytes());
                let n = if rng.chance(1, 3) {
                    seg as u16
                } else {
                    rng.below(600) as u16
                };
                ops.extend_from_slice(&n.to_le_bytes());
            }
            4 | 6 => {
                ops.push(rng.u8());
                ops.push(rng.u8());
                // An edit (see `edit_value`): mode 0 takes an 8-byte value, the others 1 byte.
                let mode = rng.u8();
                ops.push(mode);
                if mode & 3 == 0 {
                    ops.extend_from_slice(&rng.edgy().to_le_bytes());
                } else {
                    ops.push(rng.u8());
                }
            }
            5 => {
                ops.push(rng.u8());
                ops.extend_from_slice(&(rng.below(1 << 16) as u16).to_le_bytes());
                ops.push(rng.u8());
            }
            _ => {
                ops.push(rng.u8());
                if op & 0x80 != 0 {
                    ops.extend_from_slice(&rng.edgy().to_le_bytes());
                } else {
                    ops.push(rng.u8());
                }
            }
        }
    }
    ops
}

/// What one image did, for the deterministic fuzz's summary.
#[derive(Clone, Copy, Debug, Default)]
pub struct ImageOutcome {
    pub fsck_ok: bool,
    pub damaged: bool,
    pub refuse_ok: bool,
    pub skip_ok: bool,
    /// An append after a successful open was accepted and synced.
    pub appended: bool,
    /// `write_group` after a successful open consumed nothing (the caller would retry forever).
    pub append_stuck: bool,
    /// A read failed on a ring that opened with no damage reported (recovery checks records
    /// only as far as their length prefixes; the reader decodes them fully).
    pub read_failed_clean: bool,
}

/// Recovery of one image with `cfg`: `recover(.., Mode::Fsck)` and `Ring::open` under both
/// corruption policies. Checks: no panic; fsck never refuses for corruption; the three agree
/// (open under `refuse` succeeds exactly when fsck found no damage, open under `skip-segment`
/// exactly when fsck succeeds, and the reports are fsck's); the report is bounded by the
/// image (no segment past its end, no more records than its bytes can encode). After an open:
/// every partition is read back from its earliest offset, then one record is appended and
/// synced, and the ring is reopened.
pub fn check_image(geo: Geometry, cfg: &RingConfig, image: &[u8]) -> ImageOutcome {
    let mut out = ImageOutcome::default();
    for overwrites in [false, true] {
        check_image_on(geo, cfg, image, overwrites, &mut out);
    }
    out
}

/// `check_image` on raw flash, or on a medium that overwrites in place (where a stale tail is
/// erased at open and appended to).
fn check_image_on(
    geo: Geometry,
    cfg: &RingConfig,
    image: &[u8],
    overwrites: bool,
    out: &mut ImageOutcome,
) {
    let sim = |bytes: Vec<u8>| SimFlash::from_image(geo, bytes).overwriting(overwrites);
    let fsck = recover(&sim(image.to_vec()), cfg, Mode::Fsck);
    let fsck_report = match &fsck {
        Ok(r) => {
            check_report(cfg, &r.report);
            out.fsck_ok = true;
            out.damaged = !r.report.damage.is_empty();
            Some(r.report.clone())
        }
        Err(e) => {
            assert!(
                !matches!(e, OpenError::Corrupt(_)),
                "fsck refused for corruption: {e}"
            );
            let _ = outpost::storage::ring::error_chain(e);
            None
        }
    };
    drop(fsck);
    for policy in [CorruptionPolicy::Refuse, CorruptionPolicy::SkipSegment] {
        let mut c = cfg.clone();
        c.corruption_policy = policy;
        let opened = Ring::open(sim(image.to_vec()), c.clone());
        match (&opened, &fsck_report) {
            (Ok((_, report)), Some(f)) => {
                assert_eq!(report, f, "Ring::open ({policy:?}) and fsck disagree");
                if policy == CorruptionPolicy::Refuse {
                    assert!(f.damage.is_empty(), "refuse opened a damaged ring");
                }
            }
            (Ok(_), None) => panic!("Ring::open ({policy:?}) succeeded where fsck failed"),
            (Err(e), Some(f)) => {
                let _ = outpost::storage::ring::error_chain(e);
                assert!(
                    policy == CorruptionPolicy::Refuse
                        && !f.damage.is_empty()
                        && matches!(e, OpenError::Corrupt(_)),
                    "Ring::open ({policy:?}) failed where fsck succeeded: {e}"
                );
            }
            (Err(e), None) => {
                let _ = outpost::storage::ring::error_chain(e);
            }
        }
        let Ok((mut ring, report)) = opened else {
            continue;
        };
        match policy {
            CorruptionPolicy::Refuse => out.refuse_ok = true,
            CorruptionPolicy::SkipSegment => out.skip_ok = true,
        }
        if read_back(&ring, &report) && report.damage.is_empty() {
            out.read_failed_clean = true;
        }
        let (appended, stuck) = append_one(&mut ring);
        out.appended |= appended.is_some();
        out.append_stuck |= stuck;
        let durable = ring.flash().durable_image();
        drop(ring);
        let again = Ring::open(sim(durable), c);
        if let Some(at) = appended {
            // The ring opened and acknowledged a durable append: it must open again, and the
            // record must read back at its offset.
            let (ring, report) = match again {
                Ok(x) => x,
                Err(e) => panic!(
                    "the ring opened ({policy:?}), took an append, then refused to reopen: {}",
                    outpost::storage::ring::error_chain(&e)
                ),
            };
            check_report(cfg, &report);
            let got = ring.reader().read(PartitionId(0), at, 1);
            assert!(
                matches!(&got, Ok(b) if b.records.first() == Some(&(at, appended_record()))),
                "the record acknowledged at offset {at} does not read back after reopen: {got:?}"
            );
            read_back(&ring, &report);
        }
    }
}

fn check_report(cfg: &RingConfig, r: &RecoveryReport) {
    let n = cfg.segment_count();
    let first = first_batch_pos(cfg.program_unit_bytes);
    assert!(
        r.segments.len() as u64 <= n,
        "more live segments than slots"
    );
    if r.blank {
        assert!(r.segments.is_empty() && r.partitions.is_empty());
    }
    let mut records = 0u64;
    for s in &r.segments {
        assert!(s.slot < n && s.seq.0 % n == s.slot);
        assert!(
            first <= s.valid_end && s.valid_end <= cfg.segment_bytes,
            "segment {} valid_end {} outside [{first}, {}]",
            s.seq,
            s.valid_end,
            cfg.segment_bytes
        );
        // Every batch takes a 40-byte header and every record at least its 4-byte length.
        assert!(
            s.batches * BATCH_HEADER_BYTES as u64 + s.records * 4 <= s.valid_end - first,
            "segment {} reports {} batches and {} records in {} bytes",
            s.seq,
            s.batches,
            s.records,
            s.valid_end - first
        );
        records += s.records;
    }
    assert!(
        records <= cfg.ring_bytes / 44,
        "more records than the image can hold"
    );
    for w in r.segments.windows(2) {
        // Ascending; a gap is a destroyed header, reported as damage.
        assert!(w[0].seq < w[1].seq, "live segments are not ascending");
        assert!(w[0].seq.next() == w[1].seq || !r.damage.is_empty());
    }
    for w in r.partitions.windows(2) {
        assert!(w[0].0 < w[1].0);
    }
    for &(p, earliest, next) in &r.partitions {
        assert!(
            earliest <= next,
            "partition {p}: earliest {earliest} > next {next}"
        );
    }
    if let Some(t) = &r.torn_tail {
        assert!(t.pos <= cfg.segment_bytes);
        assert!(t.dirty_bytes <= cfg.segment_bytes - t.pos);
    }
    assert!(r.skipped_bytes <= cfg.ring_bytes);
    assert!(r.damage.len() as u64 <= 2 * n);
    for d in &r.damage {
        let _ = d.to_string();
    }
    assert!(r.meta_bytes <= cfg.ring_bytes);
}

/// Reads every partition from its earliest offset to its end (errors allowed, panics not).
/// Returns whether a read failed.
fn read_back(ring: &Ring<SimFlash>, report: &RecoveryReport) -> bool {
    let mut failed = false;
    let reader = ring.reader();
    for &(p, earliest, next) in &report.partitions {
        let mut at = earliest;
        for _ in 0..10_000 {
            if at >= next {
                break;
            }
            match reader.read(p, at, 300) {
                Ok(b) => {
                    let mut prev = None;
                    for (o, rec) in &b.records {
                        assert!(*o >= at && *o < next, "read {o} outside [{at}, {next})");
                        assert!(prev < Some(*o), "offsets not ascending");
                        prev = Some(*o);
                        let _ = rec.encoded_bytes();
                    }
                    if b.records.is_empty() || b.next_offset <= at {
                        break;
                    }
                    at = b.next_offset;
                }
                Err(e) => {
                    let _ = e.to_string();
                    failed = true;
                    break;
                }
            }
        }
    }
    failed
}

/// The record [`append_one`] appends.
fn appended_record() -> Record {
    Record {
        timestamp_ms: 1,
        key: Some(b"k".to_vec()),
        value: b"fuzz".to_vec(),
        headers: vec![],
    }
}

/// Appends one record to partition 0 and syncs. Returns its offset if it was accepted and
/// synced, and whether `write_group` consumed nothing (a caller would retry forever).
fn append_one(ring: &mut Ring<SimFlash>) -> (Option<Offset>, bool) {
    let rec = [appended_record()];
    let body = [AppendBody::Records {
        partition: PartitionId(0),
        records: &rec,
    }];
    match ring.write_group(&body) {
        Ok(g) if g.consumed == 0 => (None, true),
        Ok(g) => match g.results.first() {
            Some(Ok(a)) if ring.sync().is_ok() => (Some(a.base_offset), false),
            _ => (None, false),
        },
        Err(e) => {
            let _ = e.to_string();
            (None, false)
        }
    }
}

/// Input: `[setup and image][read config variant][mutations...]`. The first byte picks the
/// setup (`% 3`) and its image (`/ 3 % 4`: fresh, wrapped, torn, blank); the second the
/// configuration recovery reads with (see [`read_config`]; bit 7: the next 8 bytes (or fewer)
/// seed [`recovery_ops`], whose mutations go before the rest). Each mutation is an op byte
/// (`% 8`) and its arguments, read as needed (missing bytes read as 0): 0 set byte `[pos: 2]
/// [value]`; 1 flip bit `[pos: 2][bit]`; 2 fill `[pos: 2][len - 1][value]` (op bit 7: to the
/// end of the segment); 3 copy `[from: 2][to: 2][len: 2]`; 4 batch header field `[batch]
/// [field][edit]` with both CRCs fixed; 5 batch body byte `[batch][pos: 2][value]` with both
/// CRCs fixed; 6 segment header field `[slot][field][edit]` with its CRC fixed; 7 re-sequence
/// a segment `[slot][laps]` (op bit 6: backwards; bit 7: `[seq: 8]` instead), re-salting it.
/// An edit is `[mode]` then: 0 `[value: 8]` set; 1 `[delta: i8]` add; 2 `[d]` `u64::MAX - d%4`;
/// 3 `[value]` set.
pub fn fuzz_recovery(data: &[u8]) {
    let mut inp = Input::new(data);
    let pick = inp.u8();
    let variant = inp.u8();
    if variant & 0x80 != 0 {
        // Seeded: short inputs reach deep too (libFuzzer starts with 4-byte inputs, and this
        // target is slow enough that they stay short for a while).
        let seed = le_u64(inp.take(8));
        let mut ops = recovery_ops(&mut Rng(seed), pick);
        ops.extend_from_slice(inp.rest());
        run_recovery_case(pick, variant, &ops);
    } else {
        run_recovery_case(pick, variant, inp.rest());
    }
}

/// [`fuzz_recovery`] with its input already split; returns what happened.
pub fn run_recovery_case(pick: u8, variant: u8, ops: &[u8]) -> ImageOutcome {
    let all = setups();
    let setup = &all[usize::from(pick) % all.len()];
    let image = &setup.images[usize::from(pick) / all.len() % setup.images.len()];
    let mut bytes = image.bytes.clone();
    mutate_image(&mut bytes, setup, &image.batches, ops);
    let cfg = read_config(setup, variant);
    check_image(setup.geometry, &cfg, &bytes)
}

// ---------------------------------------------------------------------------------------------
// Config and board files
// ---------------------------------------------------------------------------------------------

/// `parse_config` on `text`: an error (with a message), or settings that pass the ring's rules
/// and the board's memory budget. The config's `board` key can name a file; to keep the fuzz
/// off the filesystem (`board = "/dev/zero"` would read forever) a text whose `board` is a
/// path, or that is not TOML at all, is parsed with `--board x86_64-dev` instead.
pub fn check_config(text: &str) {
    let safe = match toml::from_str::<toml::Table>(text) {
        Ok(t) => match t.get("board") {
            Some(toml::Value::String(s)) => !(s.contains('/') || s.ends_with(".toml")),
            _ => true,
        },
        Err(_) => false,
    };
    let mut overrides = Overrides::default();
    if !safe {
        overrides.board = Some("x86_64-dev".to_owned());
    }
    check_config_with(text, &overrides);
}

fn check_config_with(text: &str, overrides: &Overrides) {
    match parse_config("fuzz.toml", text, None, overrides) {
        Ok(s) => {
            assert_eq!(s.ring.validate(), Ok(()));
            assert!(s.ring.segment_count() >= 4);
            assert!(s.ring.ram_bytes_estimate() <= s.board.memory_budget_bytes);
        }
        Err(e) => {
            let _ = outpost::storage::ring::error_chain(&e);
        }
    }
}

/// `parse_board(label, text)`: an error, or a board whose name matches the label.
pub fn check_board(label: &str, text: &str) {
    match parse_board(label, text) {
        Ok(b) => {
            let expected = label
                .rsplit('/')
                .next()
                .unwrap_or(label)
                .trim_end_matches(".toml");
            if label.contains('/') || label.ends_with(".toml") {
                assert_eq!(b.name, expected);
            } else {
                assert_eq!(b.name, label);
            }
        }
        Err(e) => {
            let _ = outpost::storage::ring::error_chain(&e);
        }
    }
}

/// A board text, written to a file of this process and thread, then resolved by `parse_config`
/// (the shipped config with `--board PATH`), so a board's values go through the ring's rules.
pub fn check_board_file(name: &str, text: &str) {
    let dir = std::env::temp_dir().join(format!(
        "outpost-fuzz-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let path = dir.join(format!("{name}.toml"));
    if std::fs::write(&path, text).is_err() {
        return;
    }
    let overrides = Overrides {
        board: Some(path.display().to_string()),
        ..Overrides::default()
    };
    check_config_with(DEFAULT_CONFIG_TEXT, &overrides);
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_dir(&dir);
}

/// The keys of the config and board files.
pub const CONFIG_KEYS: &[&str] = &[
    "board",
    "data_dir",
    "listen_addr",
    "full_policy",
    "corruption_policy",
    "ring_bytes",
    "segment_bytes",
    "group_bytes_max",
    "batch_bytes_max",
    "meta_bytes_max",
    "partitions_max",
    "index_interval_bytes",
    "read_chunk_bytes",
    "append_queue_max",
    "level",
    "name",
    "target_triple",
    "erase_block_bytes",
    "program_unit_bytes",
    "memory_budget_bytes",
    "storage",
    "log",
];

/// Values at and past every limit, and of every wrong type.
pub const CONFIG_VALUES: &[&str] = &[
    "0",
    "1",
    "-1",
    "40",
    "512",
    "4096",
    "65536",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "18446744073709551615",
    "\"18446744073709551615 B\"",
    "\"18446744073709551600 B\"",
    "\"16777215 TiB\"",
    "\"16777216 TiB\"",
    "\"16383 TiB\"",
    "\"4 GiB\"",
    "\"4095 MiB\"",
    "\"64 MiB\"",
    "\"4 MiB\"",
    "\"64 KiB\"",
    "\"1 KiB\"",
    "\"256 B\"",
    "\"1 B\"",
    "\"0 B\"",
    "\"1 MB\"",
    "\"1.5 KiB\"",
    "\"KiB\"",
    "\"\"",
    "\" \"",
    "\"x86_64-dev\"",
    "\"spi-nor-16m\"",
    "\"rpi4-sdcard\"",
    "\"emmc-8g\"",
    "\"no-such-board\"",
    "\"reject\"",
    "\"drop-oldest\"",
    "\"refuse\"",
    "\"skip-segment\"",
    "\"trace\"",
    "\"off\"",
    "\"127.0.0.1:7478\"",
    "\"0.0.0.0:0\"",
    "\"[::1]:65535\"",
    "\"[::1]:65536\"",
    "\"localhost:7478\"",
    "true",
    "1.5",
    "nan",
    "[]",
    "{}",
    "[1, 2]",
    "{ a = 1 }",
    "1979-05-27T07:32:00Z",
];

/// TOML syntax and odd text.
pub const CONFIG_SYNTAX: &[&str] = &[
    "'''",
    "\"\"\"",
    "\"\\u0000\"",
    "\"é\"",
    "\n",
    "\n[storage]\n",
    "\n[log]\n",
    "\n[board]\n",
    "\n[[storage]]\n",
    "\n[storage.x]\n",
    " = ",
    "#",
    ".",
    "\"",
];

fn token(i: u8) -> &'static str {
    let i = usize::from(i);
    let all = CONFIG_KEYS.len() + CONFIG_VALUES.len() + CONFIG_SYNTAX.len();
    let i = i % all;
    if i < CONFIG_KEYS.len() {
        CONFIG_KEYS[i]
    } else if i < CONFIG_KEYS.len() + CONFIG_VALUES.len() {
        CONFIG_VALUES[i - CONFIG_KEYS.len()]
    } else {
        CONFIG_SYNTAX[i - CONFIG_KEYS.len() - CONFIG_VALUES.len()]
    }
}

/// The shipped texts the structured config fuzz starts from: the default config, then each
/// embedded board (with its name as the label).
pub fn shipped_texts() -> Vec<(&'static str, &'static str)> {
    let mut v = vec![("", DEFAULT_CONFIG_TEXT)];
    v.extend(embedded_boards().iter().copied());
    v
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The byte ranges of the lines of `s` (without their '\n').
fn lines(s: &str) -> Vec<(usize, usize)> {
    let mut v = Vec::new();
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if c == '\n' {
            v.push((start, i));
            start = i + 1;
        }
    }
    v.push((start, s.len()));
    v
}

/// Applies text mutations read from `inp` to `s` (at most 64). Each is an op byte (`% 10`) and
/// its arguments: 0 insert a token `[pos: 2][token]`; 1 delete `[pos: 2][len]`; 2 replace a
/// line's value (after its first '=') with a value `[line][value]`; 3 duplicate a line
/// `[line]`; 4 insert raw bytes (lossy UTF-8) `[pos: 2][len % 16][bytes]`; 5 uncomment a line
/// `[line]`; 6 delete a line `[line]`; 7 truncate `[pos: 2]`; 8 set a key `[key][value]`: the
/// line `key = value` replaces the key's line (commented out or not), or is added (after
/// `[storage]` if there is one); 9 as 8 with a size built from `[number: 8][unit]`.
/// Tokens: `[token]` indexes keys, values and syntax together; `[value]` only values.
pub fn mutate_text(s: &mut String, inp: &mut Input<'_>) {
    let mut steps = 0;
    while !inp.is_empty() && steps < 64 {
        steps += 1;
        let op = inp.u8();
        let ls = lines(s);
        match op % 10 {
            0 => {
                let at = floor_char_boundary(s, usize::from(inp.u16()) % (s.len() + 1));
                s.insert_str(at, token(inp.u8()));
            }
            1 => {
                let at = floor_char_boundary(s, usize::from(inp.u16()) % (s.len() + 1));
                let end = floor_char_boundary(s, at + usize::from(inp.u8()));
                s.replace_range(at..end.max(at), "");
            }
            2 => {
                let (a, b) = ls[usize::from(inp.u8()) % ls.len()];
                let v = CONFIG_VALUES[usize::from(inp.u8()) % CONFIG_VALUES.len()];
                if let Some(eq) = s[a..b].find('=') {
                    s.replace_range(a + eq + 1..b, &format!(" {v}"));
                }
            }
            3 => {
                let (a, b) = ls[usize::from(inp.u8()) % ls.len()];
                let line = format!("{}\n", &s[a..b]);
                s.insert_str(a, &line);
            }
            4 => {
                let at = floor_char_boundary(s, usize::from(inp.u16()) % (s.len() + 1));
                let n = usize::from(inp.u8() % 16);
                let raw = String::from_utf8_lossy(inp.take(n)).into_owned();
                s.insert_str(at, &raw);
            }
            5 => {
                let (a, b) = ls[usize::from(inp.u8()) % ls.len()];
                let new = s[a..b].trim_start_matches('#').trim_start().to_owned();
                s.replace_range(a..b, &new);
            }
            6 => {
                let (a, b) = ls[usize::from(inp.u8()) % ls.len()];
                let end = (b + 1).min(s.len());
                s.replace_range(a..end, "");
            }
            7 => {
                let at = floor_char_boundary(s, usize::from(inp.u16()) % (s.len() + 1));
                s.truncate(at);
            }
            _ => {
                let key = CONFIG_KEYS[usize::from(inp.u8()) % CONFIG_KEYS.len()];
                let value = if op % 10 == 8 {
                    CONFIG_VALUES[usize::from(inp.u8()) % CONFIG_VALUES.len()].to_owned()
                } else {
                    let n = inp.u64();
                    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "b"];
                    format!("\"{n} {}\"", UNITS[usize::from(inp.u8()) % UNITS.len()])
                };
                set_key(s, &ls, key, &value);
            }
        }
    }
}

/// Sets `key = value` in `s`: replaces the first line that assigns `key` (commented out or
/// not), else adds the line after `[storage]` (or at the end when there is none).
fn set_key(s: &mut String, ls: &[(usize, usize)], key: &str, value: &str) {
    let line = format!("{key} = {value}");
    let assigns = |l: &str| {
        let l = l.trim_start_matches('#').trim_start();
        l.strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with('='))
    };
    if let Some(&(a, b)) = ls.iter().find(|&&(a, b)| assigns(&s[a..b])) {
        s.replace_range(a..b, &line);
    } else if let Some(&(_, b)) = ls.iter().find(|&&(a, b)| s[a..b].trim() == "[storage]") {
        s.insert_str(b, &format!("\n{line}"));
    } else {
        s.push('\n');
        s.push_str(&line);
        s.push('\n');
    }
}

/// Input: `[selector][...]`. Selector bits 0-2 (`% 5`): 0 the config file, 1-4 an embedded
/// board (its name is the label; bit 5: a path label `boards/NAME.toml` instead; bit 6: also
/// resolve it through `parse_config` from a file, see [`check_board_file`]). Bit 7 clear: the
/// rest is the text (lossy UTF-8); set: the rest is text mutations (see [`mutate_text`])
/// applied to the shipped text of that file (bit 3: the next 8 bytes, or fewer, seed
/// [`config_ops`], applied first).
pub fn fuzz_config(data: &[u8]) {
    let mut inp = Input::new(data);
    let sel = inp.u8();
    let which = usize::from(sel & 7) % 5;
    let texts = shipped_texts();
    let text = if sel & 0x80 != 0 {
        let mut s = texts[which].1.to_owned();
        if sel & 8 != 0 {
            let ops = config_ops(&mut Rng(le_u64(inp.take(8))));
            mutate_text(&mut s, &mut Input::new(&ops));
        }
        mutate_text(&mut s, &mut inp);
        s
    } else {
        String::from_utf8_lossy(inp.rest()).into_owned()
    };
    check_text(which, sel & 0x20 != 0, sel & 0x40 != 0, &text);
}

/// Parses `text` as the config file (`which == 0`) or as embedded board `which - 1`.
pub fn check_text(which: usize, path_label: bool, via_file: bool, text: &str) {
    if which == 0 {
        check_config(text);
        return;
    }
    let name = shipped_texts()[which].0;
    if path_label {
        check_board(&format!("boards/{name}.toml"), text);
    } else {
        check_board(name, text);
    }
    if via_file {
        check_board_file(name, text);
    }
}

/// 1 to 5 random text mutations in [`mutate_text`]'s encoding, favouring "set a key".
pub fn config_ops(rng: &mut Rng) -> Vec<u8> {
    let mut ops = Vec::new();
    for _ in 0..1 + rng.below(5) {
        let op = match rng.below(10) {
            0..=2 => 8, // set a key to an edge value
            3 => 9,     // set a key to a size
            4 => 5,     // uncomment a line
            5 => 2,     // replace a value
            _ => rng.u8(),
        };
        ops.push(op);
        if op % 10 == 9 {
            ops.push(rng.u8());
            ops.extend_from_slice(&rng.edgy().to_le_bytes());
            ops.push(rng.u8());
        } else {
            ops.extend(rng.bytes(3));
        }
    }
    ops
}
