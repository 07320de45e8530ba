//! The on-medium format: segment headers, batch headers and batch bodies. Pure functions only
//! (bytes in, values out), so every decoder can be fuzzed. `docs/FORMAT.md` is the byte-by-byte
//! specification; the golden tests at the bottom pin it. All integers are little-endian.
//!
//! Invariants the decoders keep: no decoder allocates more than the input it was given, and
//! no decoder panics on any input.

use super::types::{
    GroupSeq, Offset, PartitionId, ProducerEpoch, ProducerId, SegmentSeq, Sequence,
};
use core::fmt;
use crc::{CRC_32_ISCSI, Crc};

/// CRC-32C (Castagnoli), the polynomial of iSCSI, ext4 and SCTP: the `crc` crate's table-driven
/// implementation, kept as the reference the tests and fuzzers compare with. The ring itself
/// computes the same values through [`salted_crc`] and [`crc32c`] (hardware-accelerated).
pub const CRC32C: Crc<u32, crc::Table<16>> = Crc::<u32, crc::Table<16>>::new(&CRC_32_ISCSI);

/// Magic at the start of every segment.
pub const SEGMENT_MAGIC: [u8; 8] = *b"OUTPOST\x00";
/// Format version written by this code; recovery refuses any other.
pub const FORMAT_VERSION: u16 = 1;
/// Bytes of the segment header (it is followed by erased padding up to the program unit).
pub const SEGMENT_HEADER_BYTES: usize = 64;
/// Bytes of a batch header.
pub const BATCH_HEADER_BYTES: usize = 40;
/// `prev_end` value meaning "no previous segment" (the first segment of a fresh ring).
pub const PREV_END_NONE: u64 = u64::MAX;

/// Position of the first batch in a segment: the header rounded up to the program unit.
pub fn first_batch_pos(program_unit_bytes: u64) -> u64 {
    align_up(SEGMENT_HEADER_BYTES as u64, program_unit_bytes)
}

/// Rounds `x` up to a multiple of `unit` (`unit` > 0).
pub fn align_up(x: u64, unit: u64) -> u64 {
    x.div_ceil(unit) * unit
}

/// Upper bound of an encoded checkpoint batch (header included) for these limits.
pub fn checkpoint_bytes_max(partitions_max: u32, meta_bytes_max: u64) -> u64 {
    // header + two counts + 12 bytes per partition + meta entries (each entry's encoded
    // size is what `MetaState` charges against meta_bytes_max).
    // Saturating: the inputs come from config files and must never overflow.
    (BATCH_HEADER_BYTES as u64 + 8 + u64::from(partitions_max) * 12).saturating_add(meta_bytes_max)
}

/// Salted CRC-32C: the segment sequence goes first, so identical bytes written in another
/// segment (or an earlier lap of the same slot) never validate here.
///
/// Computed with the `crc32c` crate (SSE4.2 / ARMv8 CRC instructions when the CPU has them, a
/// software table otherwise): the same CRC-32C as [`CRC32C`], value for value (`tests/format_golden.rs`
/// pins it, `crc32c_matches_the_crc_crate`), several times faster on a batch body.
/// `crc32c_append(crc, b)` continues a finalized CRC over `b`, so feeding the parts one after
/// another equals the CRC of their concatenation.
pub fn salted_crc(seq: SegmentSeq, parts: &[&[u8]]) -> u32 {
    salted_crc_from(salt(seq), parts)
}

/// The CRC state after the salt of segment `seq`: [`salted_crc_from`] with it equals
/// [`salted_crc`] with `seq`. The writer computes it once per segment instead of per batch.
pub fn salt(seq: SegmentSeq) -> u32 {
    crc32c::crc32c(&seq.0.to_le_bytes())
}

/// [`salted_crc`] continued from a precomputed [`salt`].
pub fn salted_crc_from(salt: u32, parts: &[&[u8]]) -> u32 {
    let mut crc = salt;
    for p in parts {
        crc = crc32c::crc32c_append(crc, p);
    }
    crc
}

/// Unsalted CRC-32C (the segment header's), hardware-accelerated like [`salted_crc`].
pub fn crc32c(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

// ---------------------------------------------------------------------------------------------
// Segment header
// ---------------------------------------------------------------------------------------------

/// The header at byte 0 of every segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    pub seq: SegmentSeq,
    pub segment_bytes: u64,
    pub program_unit_bytes: u32,
    /// Where the valid data of segment `seq - 1` ends (byte position inside that segment), or
    /// [`PREV_END_NONE`]. Written when this segment is started, so a sealed segment's end is
    /// known exactly even if its tail holds torn bytes.
    pub prev_end: u64,
    /// Chosen when the ring is formatted; all segments of one ring carry the same id.
    pub ring_id: u64,
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_BYTES] {
        let mut b = [0u8; SEGMENT_HEADER_BYTES];
        b[0..8].copy_from_slice(&SEGMENT_MAGIC);
        b[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[10..12].copy_from_slice(&(SEGMENT_HEADER_BYTES as u16).to_le_bytes());
        b[12..16].copy_from_slice(&self.program_unit_bytes.to_le_bytes());
        b[16..24].copy_from_slice(&self.seq.0.to_le_bytes());
        b[24..32].copy_from_slice(&self.segment_bytes.to_le_bytes());
        b[32..40].copy_from_slice(&self.prev_end.to_le_bytes());
        b[40..48].copy_from_slice(&self.ring_id.to_le_bytes());
        // 48..60 reserved, zero.
        let crc = crc32c(&b[0..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Result<SegmentHeader, HeaderError> {
        if b.len() < SEGMENT_HEADER_BYTES {
            return Err(HeaderError::Short);
        }
        if b[0..8] != SEGMENT_MAGIC {
            return Err(HeaderError::Magic);
        }
        let crc = le_u32(&b[60..64]);
        if crc32c(&b[0..60]) != crc {
            return Err(HeaderError::Crc);
        }
        let version = le_u16(&b[8..10]);
        if version != FORMAT_VERSION {
            return Err(HeaderError::Version(version));
        }
        if le_u16(&b[10..12]) as usize != SEGMENT_HEADER_BYTES || b[48..60].iter().any(|&x| x != 0)
        {
            return Err(HeaderError::Layout);
        }
        Ok(SegmentHeader {
            program_unit_bytes: le_u32(&b[12..16]),
            seq: SegmentSeq(le_u64(&b[16..24])),
            segment_bytes: le_u64(&b[24..32]),
            prev_end: le_u64(&b[32..40]),
            ring_id: le_u64(&b[40..48]),
        })
    }
}

/// Why bytes are not a valid segment header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    Short,
    Magic,
    Crc,
    Version(u16),
    Layout,
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::Short => write!(f, "segment header is truncated"),
            HeaderError::Magic => write!(f, "no segment magic"),
            HeaderError::Crc => write!(f, "segment header CRC mismatch"),
            HeaderError::Version(v) => write!(
                f,
                "segment format version {v} is not supported (this build reads version \
                 {FORMAT_VERSION})"
            ),
            HeaderError::Layout => write!(f, "segment header size field is wrong"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Batch header
// ---------------------------------------------------------------------------------------------

/// What a batch holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum BatchKind {
    /// Records of one partition.
    Records = 1,
    /// Metadata operations (put/delete in the metadata key/value state).
    Meta = 2,
    /// The full state carried forward: first batch of every segment.
    Checkpoint = 3,
    /// One atomic write of an idempotent producer: records for one or more partitions (each
    /// with the producer's sequence) and metadata operations, under one CRC (section 2.10).
    Atomic = 4,
}

impl BatchKind {
    fn from_u8(v: u8) -> Option<BatchKind> {
        match v {
            1 => Some(BatchKind::Records),
            2 => Some(BatchKind::Meta),
            3 => Some(BatchKind::Checkpoint),
            4 => Some(BatchKind::Atomic),
            _ => None,
        }
    }
}

/// Flag: this batch is the last one of its group (its `program` call); the next group starts
/// at the next program-unit boundary.
pub const FLAG_LAST_IN_GROUP: u8 = 1;

/// The fixed header in front of every batch body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub body_bytes: u32,
    pub kind: BatchKind,
    pub flags: u8,
    pub partition: PartitionId,
    pub record_count: u32,
    pub base_offset: Offset,
    pub group: GroupSeq,
    pub body_crc: u32,
}

impl BatchHeader {
    pub fn last_in_group(&self) -> bool {
        self.flags & FLAG_LAST_IN_GROUP != 0
    }

    /// Bytes of header plus body.
    pub fn total_bytes(&self) -> u64 {
        BATCH_HEADER_BYTES as u64 + u64::from(self.body_bytes)
    }

    pub fn encode(&self, seq: SegmentSeq) -> [u8; BATCH_HEADER_BYTES] {
        self.encode_salted(salt(seq))
    }

    /// [`BatchHeader::encode`] with the segment's [`salt`] precomputed.
    pub fn encode_salted(&self, salt: u32) -> [u8; BATCH_HEADER_BYTES] {
        let mut b = [0u8; BATCH_HEADER_BYTES];
        b[0..4].copy_from_slice(&self.body_bytes.to_le_bytes());
        b[4] = self.kind as u8;
        b[5] = self.flags;
        // 6..8 reserved, zero.
        b[8..12].copy_from_slice(&self.partition.0.to_le_bytes());
        b[12..16].copy_from_slice(&self.record_count.to_le_bytes());
        b[16..24].copy_from_slice(&self.base_offset.0.to_le_bytes());
        b[24..32].copy_from_slice(&self.group.0.to_le_bytes());
        b[32..36].copy_from_slice(&self.body_crc.to_le_bytes());
        let crc = salted_crc_from(salt, &[&b[0..36]]);
        b[36..40].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and validates a header read from segment `seq`. Checked here, before anything
    /// is allocated for the body: the salted header CRC, the kind, reserved bytes, and that
    /// the body is at most `body_bytes_max`.
    pub fn decode(
        b: &[u8],
        seq: SegmentSeq,
        body_bytes_max: u64,
    ) -> Result<BatchHeader, BatchError> {
        if b.len() < BATCH_HEADER_BYTES {
            return Err(BatchError::Truncated);
        }
        let crc = le_u32(&b[36..40]);
        if salted_crc(seq, &[&b[0..36]]) != crc {
            return Err(BatchError::HeaderCrc);
        }
        let kind = BatchKind::from_u8(b[4]).ok_or(BatchError::Kind(b[4]))?;
        if b[5] & !FLAG_LAST_IN_GROUP != 0 || b[6] != 0 || b[7] != 0 {
            return Err(BatchError::Reserved);
        }
        let body_bytes = le_u32(&b[0..4]);
        if u64::from(body_bytes) > body_bytes_max {
            return Err(BatchError::TooLong {
                body_bytes,
                body_bytes_max,
            });
        }
        Ok(BatchHeader {
            body_bytes,
            kind,
            flags: b[5],
            partition: PartitionId(le_u32(&b[8..12])),
            record_count: le_u32(&b[12..16]),
            base_offset: Offset(le_u64(&b[16..24])),
            group: GroupSeq(le_u64(&b[24..32])),
            body_crc: le_u32(&b[32..36]),
        })
    }

    /// Checks the body against the header's salted body CRC.
    pub fn check_body(&self, seq: SegmentSeq, body: &[u8]) -> Result<(), BatchError> {
        if body.len() != self.body_bytes as usize {
            return Err(BatchError::Truncated);
        }
        if salted_crc(seq, &[body]) != self.body_crc {
            return Err(BatchError::BodyCrc);
        }
        Ok(())
    }
}

/// Why bytes are not a valid batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchError {
    Truncated,
    HeaderCrc,
    BodyCrc,
    Kind(u8),
    Reserved,
    TooLong {
        body_bytes: u32,
        body_bytes_max: u64,
    },
    /// The body's CRC is right but its contents do not parse: a bug or a forged batch.
    Body(&'static str),
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchError::Truncated => write!(f, "batch is truncated"),
            BatchError::HeaderCrc => write!(f, "batch header CRC mismatch"),
            BatchError::BodyCrc => write!(f, "batch body CRC mismatch"),
            BatchError::Kind(k) => write!(f, "unknown batch kind {k}"),
            BatchError::Reserved => write!(f, "reserved batch header bits are set"),
            BatchError::TooLong {
                body_bytes,
                body_bytes_max,
            } => write!(
                f,
                "batch body of {body_bytes} bytes exceeds the limit of {body_bytes_max}"
            ),
            BatchError::Body(why) => write!(f, "batch body is malformed: {why}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

/// One record as stored: timestamp, optional key, value and headers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub timestamp_ms: i64,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// `key_len` value meaning "no key".
pub const KEY_NONE: u32 = u32::MAX;

impl Record {
    /// Encoded size of this record (including its own length prefix).
    pub fn encoded_bytes(&self) -> u64 {
        let mut n = 4 + 8 + 4 + self.key.as_ref().map_or(0, |k| k.len() as u64) + 4;
        n += self.value.len() as u64 + 2;
        for (name, value) in &self.headers {
            n += 2 + name.len() as u64 + 4 + value.len() as u64;
        }
        n
    }

    /// Appends the encoding to `out`. The caller has checked the limits (`encoded_bytes` fits
    /// the batch, at most 65,535 headers, names at most 65,535 bytes, parts below 4 GiB).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let len = (self.encoded_bytes() - 4) as u32;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&self.timestamp_ms.to_le_bytes());
        match &self.key {
            Some(k) => {
                out.extend_from_slice(&(k.len() as u32).to_le_bytes());
                out.extend_from_slice(k);
            }
            None => out.extend_from_slice(&KEY_NONE.to_le_bytes()),
        }
        out.extend_from_slice(&(self.value.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.value);
        out.extend_from_slice(&(self.headers.len() as u16).to_le_bytes());
        for (name, value) in &self.headers {
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
            out.extend_from_slice(value);
        }
    }

    /// Checks the shape limits that `encode_into` relies on.
    pub fn check_limits(&self) -> Result<(), &'static str> {
        if self.headers.len() > u16::MAX as usize {
            return Err("more than 65,535 headers");
        }
        if self
            .headers
            .iter()
            .any(|(n, _)| n.len() > u16::MAX as usize)
        {
            return Err("a header name is longer than 65,535 bytes");
        }
        if self.encoded_bytes() > u64::from(u32::MAX) {
            return Err("record is 4 GiB or larger");
        }
        Ok(())
    }
}

/// Iterates over the records of a `Records` body without copying it. Each item is the record's
/// index in the batch and its decoded value, or the first error (then iteration stops).
pub struct RecordIter<'a> {
    rest: &'a [u8],
    remaining: u32,
    failed: bool,
}

impl<'a> RecordIter<'a> {
    pub fn new(body: &'a [u8], record_count: u32) -> RecordIter<'a> {
        RecordIter {
            rest: body,
            remaining: record_count,
            failed: false,
        }
    }

    /// Skips one record without decoding it; returns its encoded size.
    pub fn skip_record(&mut self) -> Option<Result<usize, BatchError>> {
        if self.remaining == 0 || self.failed {
            return None;
        }
        let r = (|| {
            let mut c = Cursor::new(self.rest);
            let len = c.u32()? as usize;
            check_record(c.bytes(len)?)?;
            let used = 4 + len;
            self.rest = &self.rest[used..];
            Ok(used)
        })();
        self.remaining -= 1;
        self.failed = r.is_err();
        Some(r)
    }

    /// True when every record was consumed and no byte is left over.
    pub fn finished_cleanly(&self) -> bool {
        self.remaining == 0 && self.rest.is_empty() && !self.failed
    }
}

impl Iterator for RecordIter<'_> {
    type Item = Result<Record, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 || self.failed {
            return None;
        }
        let r = decode_record(self.rest);
        self.remaining -= 1;
        match r {
            Ok((rec, used)) => {
                self.rest = &self.rest[used..];
                Some(Ok(rec))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Checks a record's structure (everything `decode_record` checks) without allocating.
fn check_record(inner: &[u8]) -> Result<(), BatchError> {
    let mut c = Cursor::new(inner);
    c.u64()?;
    let key_len = c.u32()?;
    if key_len != KEY_NONE {
        c.bytes(key_len as usize)?;
    }
    let value_len = c.u32()? as usize;
    c.bytes(value_len)?;
    for _ in 0..c.u16()? {
        let name_len = c.u16()? as usize;
        core::str::from_utf8(c.bytes(name_len)?)
            .map_err(|_| BatchError::Body("header name is not UTF-8"))?;
        let value_len = c.u32()? as usize;
        c.bytes(value_len)?;
    }
    if !c.rest().is_empty() {
        return Err(BatchError::Body("record has trailing bytes"));
    }
    Ok(())
}

fn decode_record(b: &[u8]) -> Result<(Record, usize), BatchError> {
    let mut outer = Cursor::new(b);
    let len = outer.u32()? as usize;
    let inner = outer.bytes(len)?;
    let mut c = Cursor::new(inner);
    let timestamp_ms = c.u64()? as i64;
    let key_len = c.u32()?;
    let key = if key_len == KEY_NONE {
        None
    } else {
        Some(c.bytes(key_len as usize)?.to_vec())
    };
    let value_len = c.u32()? as usize;
    let value = c.bytes(value_len)?.to_vec();
    let header_count = c.u16()?;
    let mut headers = Vec::with_capacity(usize::from(header_count).min(inner.len() / 6));
    for _ in 0..header_count {
        let name_len = c.u16()? as usize;
        let name = core::str::from_utf8(c.bytes(name_len)?)
            .map_err(|_| BatchError::Body("header name is not UTF-8"))?
            .to_owned();
        let value_len = c.u32()? as usize;
        headers.push((name, c.bytes(value_len)?.to_vec()));
    }
    if !c.rest().is_empty() {
        return Err(BatchError::Body("record has trailing bytes"));
    }
    Ok((
        Record {
            timestamp_ms,
            key,
            value,
            headers,
        },
        4 + len,
    ))
}

// ---------------------------------------------------------------------------------------------
// Metadata and checkpoints
// ---------------------------------------------------------------------------------------------

/// One operation on the metadata key/value state. `namespace` separates owners (topics,
/// producers, group offsets, ...) so keys never collide; see `docs/FORMAT.md` for the registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetaOp {
    Put {
        namespace: u8,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        namespace: u8,
        key: Vec<u8>,
    },
}

const META_PUT: u8 = 1;
const META_DELETE: u8 = 2;

/// Encodes a `Meta` body: a count, then each op.
pub fn encode_meta_body(ops: &[MetaOp], out: &mut Vec<u8>) {
    out.extend_from_slice(&(ops.len() as u32).to_le_bytes());
    for op in ops {
        match op {
            MetaOp::Put {
                namespace,
                key,
                value,
            } => {
                out.push(META_PUT);
                encode_kv(*namespace, key, Some(value), out);
            }
            MetaOp::Delete { namespace, key } => {
                out.push(META_DELETE);
                encode_kv(*namespace, key, None, out);
            }
        }
    }
}

fn encode_kv(namespace: u8, key: &[u8], value: Option<&Vec<u8>>, out: &mut Vec<u8>) {
    out.push(namespace);
    out.extend_from_slice(&(key.len() as u16).to_le_bytes());
    out.extend_from_slice(key);
    if let Some(v) = value {
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        out.extend_from_slice(v);
    }
}

/// Decodes a `Meta` body.
pub fn decode_meta_body(b: &[u8]) -> Result<Vec<MetaOp>, BatchError> {
    let mut c = Cursor::new(b);
    let count = c.u32()?;
    let mut ops = Vec::with_capacity((count as usize).min(b.len() / 4));
    for _ in 0..count {
        let op = c.u8()?;
        let namespace = c.u8()?;
        let key_len = c.u16()? as usize;
        let key = c.bytes(key_len)?.to_vec();
        match op {
            META_PUT => {
                let len = c.u32()? as usize;
                let value = c.bytes(len)?.to_vec();
                ops.push(MetaOp::Put {
                    namespace,
                    key,
                    value,
                });
            }
            META_DELETE => ops.push(MetaOp::Delete { namespace, key }),
            _ => return Err(BatchError::Body("unknown metadata op")),
        }
    }
    if !c.rest().is_empty() {
        return Err(BatchError::Body("metadata body has trailing bytes"));
    }
    Ok(ops)
}

// ---------------------------------------------------------------------------------------------
// Atomic batches
// ---------------------------------------------------------------------------------------------

/// Bytes of an `Atomic` body's fixed head: producer id, epoch, part count.
pub const ATOMIC_HEAD_BYTES: usize = 12;
/// Bytes in front of each part's records: partition, base offset, first sequence, record
/// count, records bytes.
pub const ATOMIC_PART_HEAD_BYTES: usize = 24;

/// One part of an `Atomic` batch as written: a partition's records with the producer's first
/// sequence for them, at `base_offset`.
#[derive(Clone, Copy, Debug)]
pub struct AtomicPartIn<'a> {
    pub partition: PartitionId,
    pub base_offset: Offset,
    pub first_seq: Sequence,
    pub records: &'a [Record],
}

/// Encodes an `Atomic` body (section 2.10): head, parts, then the metadata operations exactly
/// as a `Meta` body.
pub fn encode_atomic_body(
    producer: ProducerId,
    epoch: ProducerEpoch,
    parts: &[AtomicPartIn<'_>],
    ops: &[MetaOp],
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(&producer.0.to_le_bytes());
    out.extend_from_slice(&epoch.0.to_le_bytes());
    out.extend_from_slice(&(parts.len() as u16).to_le_bytes());
    for p in parts {
        out.extend_from_slice(&p.partition.0.to_le_bytes());
        out.extend_from_slice(&p.base_offset.0.to_le_bytes());
        out.extend_from_slice(&p.first_seq.0.to_le_bytes());
        out.extend_from_slice(&(p.records.len() as u32).to_le_bytes());
        let len_at = out.len();
        out.extend_from_slice(&[0; 4]);
        for r in p.records {
            r.encode_into(out);
        }
        let len = (out.len() - len_at - 4) as u32;
        out[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
    }
    encode_meta_body(ops, out);
}

/// The encoded size of an `Atomic` body.
pub fn atomic_body_bytes(parts: &[AtomicPartIn<'_>], meta_body_bytes: u64) -> u64 {
    let mut n = ATOMIC_HEAD_BYTES as u64;
    for p in parts {
        n += ATOMIC_PART_HEAD_BYTES as u64;
        n += p.records.iter().map(Record::encoded_bytes).sum::<u64>();
    }
    n + meta_body_bytes
}

/// One part of a decoded `Atomic` body; `records` is its records' bytes (a `Records` body).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AtomicPart<'a> {
    pub partition: PartitionId,
    pub base_offset: Offset,
    pub first_seq: Sequence,
    pub record_count: u32,
    pub records: &'a [u8],
}

/// A decoded `Atomic` body, borrowing the input. `meta` is the operations in `Meta` body form
/// (decode them with [`decode_meta_body`]; readers of records never need to).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AtomicView<'a> {
    pub producer: ProducerId,
    pub epoch: ProducerEpoch,
    pub parts: Vec<AtomicPart<'a>>,
    pub meta: &'a [u8],
}

/// Decodes an `Atomic` body's framing: the head and every part's bounds. Record framing inside
/// a part is checked by [`RecordIter`] (recovery does), the operations by [`decode_meta_body`].
pub fn decode_atomic_body(b: &[u8]) -> Result<AtomicView<'_>, BatchError> {
    let mut c = Cursor::new(b);
    let producer = ProducerId(c.u64()?);
    let epoch = ProducerEpoch(c.u16()?);
    let n = usize::from(c.u16()?);
    let mut parts = Vec::with_capacity(n.min(b.len() / ATOMIC_PART_HEAD_BYTES));
    for _ in 0..n {
        let partition = PartitionId(c.u32()?);
        let base_offset = Offset(c.u64()?);
        let first_seq = Sequence(c.u32()?);
        let record_count = c.u32()?;
        let len = c.u32()? as usize;
        parts.push(AtomicPart {
            partition,
            base_offset,
            first_seq,
            record_count,
            records: c.bytes(len)?,
        });
    }
    Ok(AtomicView {
        producer,
        epoch,
        parts,
        meta: c.rest(),
    })
}

/// The state carried forward at the start of every segment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// Every partition's next offset, ascending by partition.
    pub partitions: Vec<(PartitionId, Offset)>,
    /// Every metadata entry: (namespace, key, value), ascending.
    pub meta: Vec<(u8, Vec<u8>, Vec<u8>)>,
}

pub fn encode_checkpoint_body(cp: &Checkpoint, out: &mut Vec<u8>) {
    out.extend_from_slice(&(cp.partitions.len() as u32).to_le_bytes());
    for (p, next) in &cp.partitions {
        out.extend_from_slice(&p.0.to_le_bytes());
        out.extend_from_slice(&next.0.to_le_bytes());
    }
    out.extend_from_slice(&(cp.meta.len() as u32).to_le_bytes());
    for (ns, k, v) in &cp.meta {
        encode_kv(*ns, k, Some(v), out);
    }
}

pub fn decode_checkpoint_body(b: &[u8]) -> Result<Checkpoint, BatchError> {
    let mut c = Cursor::new(b);
    let n = c.u32()? as usize;
    let mut partitions = Vec::with_capacity(n.min(b.len() / 12));
    for _ in 0..n {
        let p = PartitionId(c.u32()?);
        let next = Offset(c.u64()?);
        partitions.push((p, next));
    }
    let m = c.u32()? as usize;
    let mut meta = Vec::with_capacity(m.min(b.len() / 7));
    for _ in 0..m {
        let ns = c.u8()?;
        let key_len = c.u16()? as usize;
        let key = c.bytes(key_len)?.to_vec();
        let len = c.u32()? as usize;
        meta.push((ns, key, c.bytes(len)?.to_vec()));
    }
    if !c.rest().is_empty() {
        return Err(BatchError::Body("checkpoint body has trailing bytes"));
    }
    Ok(Checkpoint { partitions, meta })
}

/// The bytes one metadata entry is charged against `meta_bytes_max` (its encoded size).
pub fn meta_entry_bytes(key: &[u8], value: &[u8]) -> u64 {
    1 + 2 + key.len() as u64 + 4 + value.len() as u64
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A bounds-checked little-endian reader over a byte slice.
struct Cursor<'a> {
    b: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn new(b: &'a [u8]) -> Cursor<'a> {
        Cursor { b }
    }
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], BatchError> {
        if self.b.len() < n {
            return Err(BatchError::Body("field runs past the end of the body"));
        }
        let (head, tail) = self.b.split_at(n);
        self.b = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, BatchError> {
        Ok(self.bytes(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, BatchError> {
        Ok(le_u16(self.bytes(2)?))
    }
    fn u32(&mut self) -> Result<u32, BatchError> {
        Ok(le_u32(self.bytes(4)?))
    }
    fn u64(&mut self) -> Result<u64, BatchError> {
        Ok(le_u64(self.bytes(8)?))
    }
    fn rest(&self) -> &'a [u8] {
        self.b
    }
}

// The callers pass slices of exactly the right length, sliced from fixed-size buffers.
fn le_u16(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}
fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}
fn le_u64(b: &[u8]) -> u64 {
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}
