//! Small value types for the log. Each one is a newtype so an offset can never be passed where a
//! partition or a segment sequence is expected.

use core::fmt;

/// A record's position within its partition. Offsets are per partition, start at 0 and are
/// contiguous: the n-th record ever appended to a partition has offset n-1, forever (they are
/// never reused, even after the ring reclaims the segments that held them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Offset(pub u64);

impl Offset {
    pub const ZERO: Offset = Offset(0);

    /// The offset `n` records after this one. Saturates: 2^64 records cannot be written, so
    /// only a forged checkpoint could get here, and it must not crash the broker.
    pub fn plus(self, n: u64) -> Offset {
        Offset(self.0.saturating_add(n))
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Identifies one partition in the shared ring. The broker maps (topic, partition number) to a
/// `PartitionId`; the storage only sees the id. `PartitionId::NONE` (u32::MAX) is reserved for
/// batches that do not belong to a partition (metadata, checkpoints).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartitionId(pub u32);

impl PartitionId {
    pub const NONE: PartitionId = PartitionId(u32::MAX);
}

impl fmt::Display for PartitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The sequence number of a segment. Every segment ever started in a ring gets the next
/// sequence number; segment `s` always lives in slot `s % segment_count`. The sequence salts every
/// CRC in the segment, so bytes left over from an earlier lap never validate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentSeq(pub u64);

impl SegmentSeq {
    pub fn next(self) -> SegmentSeq {
        SegmentSeq(self.0.saturating_add(1))
    }
}

impl fmt::Display for SegmentSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The sequence number of one `program` call of the ring (a "group"): every batch carries the
/// group it was written in. Recovery uses it to tell a torn tail (only the newest group can be
/// torn) from corruption in the middle of the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupSeq(pub u64);

impl fmt::Display for GroupSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An idempotent producer's id, handed out by `INIT_PRODUCER` (never reused within a ring:
/// the next id is stored with the producer state).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProducerId(pub u64);

impl fmt::Display for ProducerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A producer id's epoch: re-initialising the same producer name bumps it, and batches with
/// an older epoch are fenced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProducerEpoch(pub u16);

impl fmt::Display for ProducerEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A producer's sequence number within one partition: the first record of a producer epoch in
/// a partition has sequence 0, and each record the next one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sequence(pub u32);

impl fmt::Display for Sequence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
