//! The storage layer's errors: one enum per kind of caller (opening, appending, reading).

use super::ConfigError;
use super::flash::FlashError;
use super::format::BatchError;
use super::producer::ProducerError;
use super::types::{Offset, PartitionId, SegmentSeq};
use core::fmt;

/// Where damage was found: the segment, its slot, and the byte position inside the segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DamageAt {
    pub seq: Option<SegmentSeq>,
    pub slot: u64,
    pub pos: u64,
    pub reason: String,
}

impl fmt::Display for DamageAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.seq {
            Some(seq) => write!(
                f,
                "segment {seq} (slot {}) at byte {}: {}",
                self.slot, self.pos, self.reason
            ),
            None => write!(
                f,
                "slot {} at byte {}: {}",
                self.slot, self.pos, self.reason
            ),
        }
    }
}

/// Opening (recovering) a ring failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum OpenError {
    Config(ConfigError),
    Flash(FlashError),
    /// The medium is smaller than the configured ring.
    TooSmall {
        capacity_bytes: u64,
        ring_bytes: u64,
    },
    /// A valid segment header disagrees with the configured geometry.
    GeometryMismatch {
        slot: u64,
        found: String,
        configured: String,
    },
    /// No valid segment header anywhere, and the area is neither blank nor a format cut short
    /// (only slot 0's header area not erased).
    NotARing {
        detail: String,
    },
    /// Corruption that is not a torn tail, under `corruption_policy = "refuse"`.
    Corrupt(DamageAt),
    /// Valid data this build cannot read (written by a newer outpost): a segment header with a
    /// valid CRC and another format version, or a batch with a valid header CRC and an unknown
    /// kind. Refused in every mode, never overwritten.
    UnsupportedFormat {
        slot: u64,
        detail: String,
    },
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Config(_) => write!(f, "invalid ring configuration"),
            OpenError::Flash(_) => write!(f, "cannot access the flash area"),
            OpenError::TooSmall {
                capacity_bytes,
                ring_bytes,
            } => write!(
                f,
                "the flash area holds {capacity_bytes} bytes but the ring needs {ring_bytes}"
            ),
            OpenError::GeometryMismatch {
                slot,
                found,
                configured,
            } => write!(
                f,
                "the segment in slot {slot} was written with {found}, but the configuration \
                 says {configured}: a ring's geometry never changes"
            ),
            OpenError::NotARing { detail } => {
                write!(f, "not an outpost ring (no valid segment header): {detail}")
            }
            OpenError::UnsupportedFormat { slot, detail } => write!(
                f,
                "slot {slot} holds a valid {detail} that this build cannot read (written by a \
                 newer outpost?); refusing to open rather than overwrite it"
            ),
            OpenError::Corrupt(at) => write!(
                f,
                "corruption in the middle of the log, {at} (corruption_policy = \"refuse\"; \
                 run `outpost fsck` for a full report, or open with \
                 corruption_policy = \"skip-segment\" to skip the damaged segment)"
            ),
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OpenError::Config(e) => Some(e),
            OpenError::Flash(e) => Some(e),
            _ => None,
        }
    }
}

impl From<FlashError> for OpenError {
    fn from(e: FlashError) -> Self {
        OpenError::Flash(e)
    }
}

impl From<ConfigError> for OpenError {
    fn from(e: ConfigError) -> Self {
        OpenError::Config(e)
    }
}

/// Why one append was refused. The ring itself stays usable (unless the error is
/// [`AppendError::Poisoned`] or [`AppendError::Flash`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum AppendError {
    /// The ring is full of records nobody released, and `full_policy = "reject"`.
    BufferFull,
    /// The encoded batch is larger than `batch_bytes_max`; or, with `group_bytes_max` in
    /// `batch_bytes_max`, the batch and the segment's checkpoint can never fit in one group
    /// (the checkpoint outgrew lowered limits).
    BatchTooLarge {
        batch_bytes: u64,
        batch_bytes_max: u64,
    },
    /// A batch with no records.
    EmptyBatch,
    /// A record breaks a format limit (too many headers, a name too long, ...).
    BadRecord { index: usize, reason: &'static str },
    /// The partition would be one more than `partitions_max`.
    TooManyPartitions { partitions_max: u32 },
    /// The metadata state would exceed `meta_bytes_max`.
    MetaFull { meta_bytes_max: u64 },
    /// A metadata key is longer than 65,535 bytes.
    MetaKeyTooLong { key_bytes: usize },
    /// An earlier write or sync failed; the ring refuses appends until it is reopened.
    Poisoned { cause: String },
    /// The write covering this append failed.
    Flash(FlashError),
    /// The sync covering this append failed: it may or may not survive a power cut.
    SyncFailed { cause: String },
    /// The log was closed before the append was written.
    Closed,
    /// The partition's offsets would pass 2^64 - 1 (only a forged checkpoint can cause it).
    OffsetsExhausted { partition: PartitionId },
    /// The append queue is full (`append_queue_max`).
    QueueFull { append_queue_max: u32 },
    /// An idempotent producer's write or initialisation was refused by the producer state
    /// (fenced, out of order, unknown id, ...).
    Producer(ProducerError),
    /// An atomic write names the same partition twice.
    RepeatedPartition { partition: PartitionId },
    /// An atomic write has more than 65,535 parts.
    TooManyParts { parts: usize },
}

impl fmt::Display for AppendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppendError::BufferFull => write!(
                f,
                "buffer full: the ring holds only records not yet released (forwarded); \
                 full_policy = \"reject\""
            ),
            AppendError::BatchTooLarge {
                batch_bytes,
                batch_bytes_max,
            } => write!(
                f,
                "batch of {batch_bytes} bytes exceeds batch_bytes_max ({batch_bytes_max})"
            ),
            AppendError::EmptyBatch => write!(f, "a batch needs at least one record"),
            AppendError::BadRecord { index, reason } => write!(f, "record {index}: {reason}"),
            AppendError::TooManyPartitions { partitions_max } => {
                write!(f, "partitions_max ({partitions_max}) reached")
            }
            AppendError::MetaFull { meta_bytes_max } => {
                write!(f, "metadata would exceed meta_bytes_max ({meta_bytes_max})")
            }
            AppendError::MetaKeyTooLong { key_bytes } => {
                write!(f, "metadata key of {key_bytes} bytes exceeds 65,535")
            }
            AppendError::Poisoned { cause } => write!(
                f,
                "the log refuses appends after an earlier I/O failure ({cause}); restart to \
                 recover"
            ),
            AppendError::Flash(_) => write!(f, "writing the log failed"),
            AppendError::SyncFailed { cause } => write!(
                f,
                "the sync covering this append failed ({cause}); it may or may not survive a \
                 power cut, and the log refuses appends until restart"
            ),
            AppendError::Closed => write!(f, "the log is closed"),
            AppendError::OffsetsExhausted { partition } => {
                write!(f, "partition {partition} has no offsets left")
            }
            AppendError::Producer(e) => write!(f, "{e}"),
            AppendError::RepeatedPartition { partition } => write!(
                f,
                "an atomic write names partition {partition} twice (one part per partition)"
            ),
            AppendError::TooManyParts { parts } => {
                write!(f, "an atomic write of {parts} parts exceeds 65,535")
            }
            AppendError::QueueFull { append_queue_max } => {
                write!(
                    f,
                    "append queue full (append_queue_max = {append_queue_max})"
                )
            }
        }
    }
}

impl std::error::Error for AppendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AppendError::Flash(e) => Some(e),
            _ => None,
        }
    }
}

/// A read could not be served.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReadError {
    /// The offset is below the earliest retained or above the durable end.
    OffsetOutOfRange {
        partition: PartitionId,
        offset: Offset,
        earliest: Offset,
        next: Offset,
    },
    /// Data that does not validate for the reader: bit rot after open, a record whose fields
    /// do not decode, or a batch longer than the reader's configured limit (written before
    /// `batch_bytes_max` was lowered; recovery accepts it).
    Corrupt(DamageAt),
    Flash(FlashError),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::OffsetOutOfRange {
                partition,
                offset,
                earliest,
                next,
            } => write!(
                f,
                "offset {offset} is out of range for partition {partition} (earliest \
                 {earliest}, next {next})"
            ),
            ReadError::Corrupt(at) => write!(f, "corrupt batch while reading, {at}"),
            ReadError::Flash(_) => write!(f, "reading the log failed"),
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReadError::Flash(e) => Some(e),
            _ => None,
        }
    }
}

impl From<FlashError> for ReadError {
    fn from(e: FlashError) -> Self {
        ReadError::Flash(e)
    }
}

/// Why a scan stopped inside a segment (used by recovery and reads).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanStop {
    /// Not enough room left for a batch header before the limit.
    End,
    /// The bytes at this position are not a valid batch.
    Invalid(BatchError),
}

impl fmt::Display for ScanStop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScanStop::End => write!(f, "end of segment"),
            ScanStop::Invalid(e) => e.fmt(f),
        }
    }
}
