//! The in-RAM view of the ring shared by the writer and the readers: which segments are live,
//! where each partition's records are in them (a sparse index), and each partition's offsets.
//!
//! RAM bound: per segment, per partition present in it, one entry at its first batch and then
//! one per `index_interval_bytes` of that partition's data — at most
//! `ring_bytes / index_interval_bytes + segment_count * partitions_max` entries in all.

use super::types::{Offset, PartitionId, SegmentSeq};
use std::collections::{BTreeMap, VecDeque};

/// A sparse index entry: the batch holding `offset` (as its first record or later) starts at
/// byte `pos` of the segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    pub offset: Offset,
    pub pos: u32,
}

/// One partition's records inside one segment: offsets `[first, next)` (a hole is possible only
/// after `skip-segment` skipped damage).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegPart {
    pub first: Offset,
    pub next: Offset,
    pub entries: Vec<IndexEntry>,
    bytes_since_entry: u64,
}

impl SegPart {
    /// The position to start scanning from to find `offset`.
    pub fn seek(&self, offset: Offset) -> u32 {
        let i = self.entries.partition_point(|e| e.offset <= offset);
        // entries[0] is the first batch; `offset >= first` is checked by the caller.
        self.entries[i.saturating_sub(1)].pos
    }
}

/// One live segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegIndex {
    pub seq: SegmentSeq,
    pub slot: u64,
    /// End of the durable data in this segment (byte position).
    pub end: u64,
    pub parts: BTreeMap<PartitionId, SegPart>,
}

impl SegIndex {
    pub fn new(seq: SegmentSeq, slot: u64, end: u64) -> SegIndex {
        SegIndex {
            seq,
            slot,
            end,
            parts: BTreeMap::new(),
        }
    }

    /// Records that a batch of `count` records for `partition` starting at `base` lies at
    /// `pos` and takes `bytes` bytes.
    pub fn add_batch(
        &mut self,
        partition: PartitionId,
        base: Offset,
        count: u32,
        pos: u64,
        bytes: u64,
        interval_bytes: u64,
    ) {
        let next = base.plus(u64::from(count));
        let entry = IndexEntry {
            offset: base,
            pos: pos as u32,
        };
        match self.parts.get_mut(&partition) {
            None => {
                self.parts.insert(
                    partition,
                    SegPart {
                        first: base,
                        next,
                        entries: vec![entry],
                        bytes_since_entry: bytes,
                    },
                );
            }
            Some(p) => {
                if p.bytes_since_entry >= interval_bytes {
                    p.entries.push(entry);
                    p.bytes_since_entry = 0;
                }
                p.bytes_since_entry += bytes;
                p.next = next;
            }
        }
    }
}

/// A partition's offsets as the readers see them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PartState {
    /// One past the last durable record: readers never see beyond it.
    pub durable_next: Offset,
    /// Records below this offset may be reclaimed (the forwarder moves it).
    pub released: Offset,
    /// Records of this partition that `drop-oldest` reclaimed before release, since open.
    pub dropped_records: u64,
}

/// Counters for status and tests (since open).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingStats {
    pub segments_reclaimed: u64,
    pub segments_dropped: u64,
    pub records_dropped: u64,
    pub groups_written: u64,
    pub syncs: u64,
    pub bytes_programmed: u64,
}

/// Everything readers need, behind one `RwLock`.
#[derive(Clone, Debug, Default)]
pub struct Shared {
    /// Live segments, ascending by sequence.
    pub segments: VecDeque<SegIndex>,
    pub partitions: BTreeMap<PartitionId, PartState>,
    pub stats: RingStats,
    /// Set when a write or sync failed: the reason; the ring refuses appends.
    pub poisoned: Option<String>,
}

impl Shared {
    /// The earliest offset still stored for `partition` (its durable next if none is).
    pub fn earliest(&self, partition: PartitionId) -> Offset {
        self.segments
            .iter()
            .find_map(|s| s.parts.get(&partition).map(|p| p.first))
            .unwrap_or_else(|| self.durable_next(partition))
    }

    pub fn durable_next(&self, partition: PartitionId) -> Offset {
        self.partitions
            .get(&partition)
            .map_or(Offset::ZERO, |p| p.durable_next)
    }

    /// Where to start scanning for `offset`: the first segment holding records of `partition`
    /// at or after `offset`, and the position in it. `None` if there is none.
    pub fn locate(&self, partition: PartitionId, offset: Offset) -> Option<Located> {
        self.segments.iter().find_map(|s| {
            let p = s.parts.get(&partition)?;
            if p.next <= offset {
                return None;
            }
            let pos = if offset < p.first {
                p.entries[0].pos
            } else {
                p.seek(offset)
            };
            Some(Located {
                seq: s.seq,
                slot: s.slot,
                pos: u64::from(pos),
                end: s.end,
            })
        })
    }

    pub fn is_live(&self, seq: SegmentSeq) -> bool {
        self.segments.iter().any(|s| s.seq == seq)
    }
}

/// A place to start reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Located {
    pub seq: SegmentSeq,
    pub slot: u64,
    pub pos: u64,
    pub end: u64,
}
