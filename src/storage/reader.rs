//! Reads: records of one partition from an offset, up to a byte budget, straight from the
//! medium through a bounded buffer. Readers never see past a partition's durable end, so a
//! record a reader saw can never vanish in a power cut.

use super::config::RingConfig;
use super::error::{DamageAt, ReadError, ScanStop};
use super::flash::Flash;
use super::format::{BatchKind, Record, RecordIter, decode_atomic_body};
use super::index::{Located, Shared};
use super::scan::Scanner;
use super::types::{Offset, PartitionId};
use std::sync::{Arc, RwLock};

/// Records read from one partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadBatch {
    /// `(offset, record)` ascending. Offsets are contiguous except across damage that
    /// `skip-segment` skipped.
    pub records: Vec<(Offset, Record)>,
    /// The offset to read from next.
    pub next_offset: Offset,
    /// The partition's earliest stored offset and durable end when the read started.
    pub earliest: Offset,
    pub durable_next: Offset,
}

/// A cloneable read handle.
pub struct Reader<F: Flash> {
    flash: Arc<F>,
    shared: Arc<RwLock<Shared>>,
    segment_bytes: u64,
    unit: u64,
    body_bytes_max: u64,
    chunk_bytes: u64,
}

impl<F: Flash> Clone for Reader<F> {
    fn clone(&self) -> Self {
        Reader {
            flash: self.flash.clone(),
            shared: self.shared.clone(),
            segment_bytes: self.segment_bytes,
            unit: self.unit,
            body_bytes_max: self.body_bytes_max,
            chunk_bytes: self.chunk_bytes,
        }
    }
}

/// A reclaim can race a read at most this many times before the read gives up and reports
/// the offset as out of range.
const RACE_RETRIES: usize = 4;

impl<F: Flash> Reader<F> {
    pub(crate) fn new(flash: Arc<F>, shared: Arc<RwLock<Shared>>, cfg: &RingConfig) -> Self {
        Reader {
            flash,
            shared,
            segment_bytes: cfg.segment_bytes,
            unit: cfg.program_unit_bytes,
            // Structural, like recovery's: a batch written before `batch_bytes_max` was lowered
            // stays readable.
            body_bytes_max: cfg.segment_bytes
                - crate::storage::format::first_batch_pos(cfg.program_unit_bytes),
            chunk_bytes: cfg.read_chunk_bytes,
        }
    }

    fn shared(&self) -> std::sync::RwLockReadGuard<'_, Shared> {
        self.shared
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `(earliest, durable_next)` of a partition (both 0 for a partition never written).
    pub fn offsets(&self, partition: PartitionId) -> (Offset, Offset) {
        let s = self.shared();
        (s.earliest(partition), s.durable_next(partition))
    }

    /// A copy of the shared state (segments, partitions, counters) for status and tests.
    pub fn snapshot(&self) -> Shared {
        self.shared().clone()
    }

    /// Reads records of `partition` from `from`, stopping once `bytes_max` bytes of encoded
    /// records were returned (at least one record is returned if any is available, so a
    /// reader always progresses) or at the durable end.
    pub fn read(
        &self,
        partition: PartitionId,
        from: Offset,
        bytes_max: u64,
    ) -> Result<ReadBatch, ReadError> {
        let mut out = ReadBatch::default();
        let mut at = from;
        let mut bytes = 0u64;
        let mut races = 0;
        loop {
            let (earliest, next, loc) = {
                let s = self.shared();
                let next = s.durable_next(partition);
                // A caught-up reader (at == next) needs no index walk.
                let loc = if at < next {
                    s.locate(partition, at)
                } else {
                    None
                };
                (s.earliest(partition), next, loc)
            };
            if out.records.is_empty() && at == from {
                out.earliest = earliest;
                out.durable_next = next;
                if from < earliest || from > next {
                    return Err(ReadError::OffsetOutOfRange {
                        partition,
                        offset: from,
                        earliest,
                        next,
                    });
                }
            }
            out.next_offset = at;
            let Some(loc) = loc.filter(|_| at < next) else {
                return Ok(out);
            };
            match self.scan(
                partition, loc, &mut at, next, bytes_max, &mut bytes, &mut out,
            )? {
                Scanned::Done => {
                    out.next_offset = at;
                    return Ok(out);
                }
                Scanned::SegmentEnd => continue,
                Scanned::Raced => {
                    races += 1;
                    if races > RACE_RETRIES || !out.records.is_empty() {
                        out.next_offset = at;
                        return Ok(out);
                    }
                    // The segment was reclaimed under us: start over from the new earliest.
                    let earliest = self.shared().earliest(partition);
                    if at < earliest {
                        return Err(ReadError::OffsetOutOfRange {
                            partition,
                            offset: at,
                            earliest,
                            next,
                        });
                    }
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn scan(
        &self,
        partition: PartitionId,
        loc: Located,
        at: &mut Offset,
        next: Offset,
        bytes_max: u64,
        bytes: &mut u64,
        out: &mut ReadBatch,
    ) -> Result<Scanned, ReadError> {
        let mut scanner = Scanner::new(
            &*self.flash,
            loc.seq,
            loc.slot * self.segment_bytes,
            loc.pos,
            loc.end,
            self.unit,
            self.body_bytes_max,
            self.chunk_bytes,
        );
        loop {
            let want = *at;
            let found = match scanner.next(|h| {
                let ours = h.partition == partition
                    && h.base_offset.plus(u64::from(h.record_count)) > want;
                match h.kind {
                    BatchKind::Records => ours,
                    // A multi-part atomic batch does not say which partitions it holds in its
                    // header: its body is read to find out.
                    BatchKind::Atomic => ours || h.partition == PartitionId::NONE,
                    _ => false,
                }
            })? {
                Ok(f) => f,
                Err(ScanStop::End) => return Ok(Scanned::SegmentEnd),
                Err(ScanStop::Invalid(e)) => {
                    if !self.shared().is_live(loc.seq) {
                        return Ok(Scanned::Raced);
                    }
                    return Err(ReadError::Corrupt(DamageAt {
                        seq: Some(loc.seq),
                        slot: loc.slot,
                        pos: scanner.pos,
                        reason: e.to_string(),
                    }));
                }
            };
            let Some(body) = found.body else { continue };
            let h = found.header;
            let corrupt = |reason: String| {
                ReadError::Corrupt(DamageAt {
                    seq: Some(loc.seq),
                    slot: loc.slot,
                    pos: found.pos,
                    reason,
                })
            };
            let (records, base, count) = match h.kind {
                BatchKind::Atomic => {
                    let view = decode_atomic_body(body).map_err(|e| corrupt(e.to_string()))?;
                    match view.parts.iter().find(|p| p.partition == partition) {
                        Some(p) => (p.records, p.base_offset, p.record_count),
                        None => continue,
                    }
                }
                _ => (body, h.base_offset, h.record_count),
            };
            if base.plus(u64::from(count)) <= *at {
                continue;
            }
            for (i, rec) in RecordIter::new(records, count).enumerate() {
                let offset = base.plus(i as u64);
                if offset < *at {
                    continue;
                }
                if offset >= next {
                    return Ok(Scanned::Done);
                }
                let rec = rec.map_err(|e| corrupt(e.to_string()))?;
                let size = rec.encoded_bytes();
                if !out.records.is_empty() && *bytes + size > bytes_max {
                    return Ok(Scanned::Done);
                }
                *bytes += size;
                out.records.push((offset, rec));
                *at = offset.plus(1);
            }
            if *at >= next {
                return Ok(Scanned::Done);
            }
        }
    }
}

enum Scanned {
    Done,
    SegmentEnd,
    Raced,
}
