//! Recovery: the read-only scan that finds the live segments, validates every batch, tells a
//! torn tail from corruption, and rebuilds the in-RAM state. `Ring::open` and `outpost fsck`
//! both run it; it never writes to the medium (truncation is logical: see docs/FORMAT.md,
//! "Recovery").

use super::config::{CorruptionPolicy, RingConfig};
use super::error::{DamageAt, OpenError, ScanStop};
use super::flash::{ERASED_BYTE, Flash};
use super::format::{
    BATCH_HEADER_BYTES, BatchHeader, BatchKind, HeaderError, PREV_END_NONE, RecordIter,
    SEGMENT_HEADER_BYTES, SegmentHeader, decode_atomic_body, decode_checkpoint_body,
    decode_meta_body, first_batch_pos,
};
use super::index::{PartState, SegIndex, Shared};
use super::meta::MetaState;
use super::producer;
use super::scan::Scanner;
use super::types::{GroupSeq, Offset, PartitionId, SegmentSeq};
use std::collections::BTreeMap;

/// How recovery treats damage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Opening the ring for use, under a corruption policy.
    Open(CorruptionPolicy),
    /// `outpost fsck`: report every problem, refuse nothing.
    Fsck,
}

/// What recovery found, for logs and `outpost fsck`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// True when the area held no segment at all: a fresh ring, or a format cut short (no
    /// valid header, and only slot 0's header area not erased). The open formats it.
    pub blank: bool,
    pub segments: Vec<SegmentReport>,
    /// `(partition, earliest, next)` for every partition known.
    pub partitions: Vec<(PartitionId, Offset, Offset)>,
    pub torn_tail: Option<TornTail>,
    /// On a medium that overwrites in place: the newest segment's last group is whole, and the
    /// bytes after it are not erased. They are stale bytes of an earlier lap, or what a power
    /// cut left of a group whose first batch did not land whole (the two look alike). Not
    /// damage, and nothing is dropped: `Ring::open` writes `0xFF` over them (and syncs) before
    /// the first append, which then goes at `pos` (docs/FORMAT.md 4.6).
    pub stale_tail: Option<TornTail>,
    /// Corruption that is not a torn tail (reported under every policy; fatal under `refuse`).
    pub damage: Vec<DamageAt>,
    /// Bytes of batches skipped because of damage (`skip-segment` or fsck).
    pub skipped_bytes: u64,
    /// The oldest segment was being reclaimed when the power went (its header survived a cut
    /// erase): it is treated as reclaimed, not as corruption.
    pub interrupted_reclaim: Option<SegmentSeq>,
    /// Metadata entries and their bytes after replay.
    pub meta_entries: usize,
    pub meta_bytes: u64,
}

/// One live segment as recovery saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentReport {
    pub seq: SegmentSeq,
    pub slot: u64,
    /// Bytes of valid data (position where the valid batches end).
    pub valid_end: u64,
    pub batches: u64,
    pub records: u64,
}

/// The newest segment ended in bytes that are not a valid batch and do not prove corruption:
/// the tail of a write a power cut interrupted. Recovery drops it (logically). (Also the shape
/// of [`RecoveryReport::stale_tail`].)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TornTail {
    pub seq: SegmentSeq,
    pub slot: u64,
    pub pos: u64,
    /// Bytes after `pos` that are not erased.
    pub dirty_bytes: u64,
}

/// Where the writer continues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub seq: SegmentSeq,
    pub slot: u64,
    /// End of the valid data: where the next group goes if `appendable`.
    pub pos: u64,
    /// `pos` is at a group boundary and the rest of the segment is erased (or, on a medium that
    /// overwrites in place, holds nothing that must be kept: `Ring::open` erases it). Otherwise
    /// the segment is sealed at `pos` and the next append starts a new segment.
    pub appendable: bool,
    /// The segment already starts with its checkpoint.
    pub has_checkpoint: bool,
}

/// Everything recovery rebuilt.
#[derive(Debug)]
pub struct Recovered {
    pub report: RecoveryReport,
    pub shared: Shared,
    pub parts_next: BTreeMap<PartitionId, Offset>,
    pub meta: MetaState,
    /// `None` for a blank area.
    pub head: Option<Head>,
    pub ring_id: u64,
    pub next_group: GroupSeq,
}

/// Runs recovery on `flash` for `cfg`.
pub fn recover<F: Flash + ?Sized>(
    flash: &F,
    cfg: &RingConfig,
    mode: Mode,
) -> Result<Recovered, OpenError> {
    cfg.validate()?;
    let capacity_bytes = flash.geometry().capacity_bytes();
    if capacity_bytes < cfg.ring_bytes {
        return Err(OpenError::TooSmall {
            capacity_bytes,
            ring_bytes: cfg.ring_bytes,
        });
    }
    let r = Recovery {
        flash,
        cfg,
        mode,
        n: cfg.segment_count(),
        report: RecoveryReport::default(),
        parts_next: BTreeMap::new(),
        meta: MetaState::default(),
        group_max: GroupSeq(0),
        tolerate: false,
        tolerated: None,
    };
    r.run()
}

struct Recovery<'a, F: Flash + ?Sized> {
    flash: &'a F,
    cfg: &'a RingConfig,
    mode: Mode,
    n: u64,
    report: RecoveryReport,
    parts_next: BTreeMap<PartitionId, Offset>,
    meta: MetaState,
    /// Highest group of any valid batch seen so far.
    group_max: GroupSeq,
    /// Scanning a segment whose damage may be an interrupted reclaim: damage is noted here
    /// instead of being reported.
    tolerate: bool,
    tolerated: Option<DamageAt>,
}

impl<'a, F: Flash + ?Sized> Recovery<'a, F> {
    fn base(&self, slot: u64) -> u64 {
        slot * self.cfg.segment_bytes
    }

    /// Records damage; under `refuse` it ends recovery with an error. While `tolerate` is set
    /// the first damage is only noted in `tolerated`, for `run` to judge.
    fn damage(&mut self, at: DamageAt) -> Result<(), OpenError> {
        if self.tolerate {
            self.tolerated.get_or_insert(at);
            return Ok(());
        }
        if self
            .report
            .damage
            .last()
            .is_some_and(|d| (d.seq, d.slot, d.pos) == (at.seq, at.slot, at.pos))
        {
            // One place, one entry: an inconsistent batch stops the scan where it stands.
            return Ok(());
        }
        if self.mode == Mode::Open(CorruptionPolicy::Refuse) {
            return Err(OpenError::Corrupt(at));
        }
        log::warn!("storage: skipping damage, {at}");
        self.report.damage.push(at);
        Ok(())
    }

    fn run(mut self) -> Result<Recovered, OpenError> {
        // 1. Read every slot's header.
        let mut headers: Vec<Option<SegmentHeader>> = Vec::with_capacity(self.n as usize);
        let mut first_problem = None;
        let mut all_blank = true;
        let mut non_blank: Vec<u64> = Vec::new();
        for slot in 0..self.n {
            let mut b = [0u8; SEGMENT_HEADER_BYTES];
            self.flash.read(self.base(slot), &mut b)?;
            match SegmentHeader::decode(&b) {
                Ok(h) => {
                    self.check_geometry(slot, &h)?;
                    all_blank = false;
                    headers.push(Some(h));
                }
                Err(HeaderError::Version(version)) => {
                    // A valid header this build cannot read: never treat it as garbage (that
                    // would reuse and erase a newer build's segments).
                    return Err(OpenError::UnsupportedFormat {
                        slot,
                        detail: format!("segment format version {version}"),
                    });
                }
                Err(e) => {
                    if b.iter().any(|&x| x != ERASED_BYTE) {
                        all_blank = false;
                        non_blank.push(slot);
                        first_problem.get_or_insert(format!("slot {slot}: {e}"));
                    }
                    headers.push(None);
                }
            }
        }
        let Some(newest) = headers.iter().flatten().map(|h| h.seq).max() else {
            // No segment at all. Blank, or a format cut short (only slot 0 was ever written
            // and no append can have been acknowledged before its header was durable).
            if all_blank || (non_blank == [0] && !self.slot0_has_batches()?) {
                return self.blank();
            }
            return Err(OpenError::NotARing {
                detail: first_problem.unwrap_or_default(),
            });
        };
        let ring_id = headers
            .iter()
            .flatten()
            .find(|h| h.seq == newest)
            .map_or(0, |h| h.ring_id);

        // 2. The live segments: consecutive sequences ending at the newest. A missing sequence
        //    with older live ones below it is a destroyed header in the middle of the log.
        let oldest_possible = newest.0.saturating_sub(self.n - 1);
        let mut live: Vec<SegmentHeader> = Vec::new();
        let mut missing: Vec<SegmentSeq> = Vec::new();
        for s in (oldest_possible..=newest.0).rev() {
            match headers[(s % self.n) as usize] {
                Some(h) if h.seq.0 == s => live.push(h),
                _ => missing.push(SegmentSeq(s)),
            }
        }
        live.reverse();
        let oldest = live.first().map_or(newest, |h| h.seq);
        for m in missing.into_iter().rev() {
            if m > oldest {
                self.damage(DamageAt {
                    seq: Some(m),
                    slot: m.0 % self.n,
                    pos: 0,
                    reason: "segment header destroyed between live segments".into(),
                })?;
            }
        }

        // Destroyed newest headers: a slot after the newest segment whose first batch is
        // intact under that slot's next sequence held that segment, so its header rotted.
        self.check_lost_newest(newest, &headers)?;
        // 3. Scan each live segment in order. The oldest segment of a full ring is the next to
        //    be reclaimed: damage inside its first erase block may be that reclaim's erase cut
        //    short (the header survived, the rest of the block did not). It is then dropped as
        //    reclaimed and reported as such, not as corruption.
        let full = live
            .first()
            .is_some_and(|o| o.seq.0.checked_add(self.n) == newest.0.checked_add(1));
        let mut shared = Shared::default();
        let mut head = None;
        for (i, h) in live.iter().enumerate() {
            let next = live.get(i + 1);
            let seg = if let Some(next) = next {
                let known_end = (next.seq == h.seq.next()
                    && next.prev_end != PREV_END_NONE
                    && next.prev_end >= first_batch_pos(self.cfg.program_unit_bytes)
                    && next.prev_end <= self.cfg.segment_bytes)
                    .then_some(next.prev_end);
                self.tolerate = i == 0 && full;
                let seg = self.scan_sealed(h, known_end);
                self.tolerate = false;
                let seg = seg?;
                if let Some(at) = self.tolerated.take() {
                    if at.pos < self.cfg.erase_block_bytes {
                        log::warn!(
                            "storage: segment {} was being reclaimed when the power went \
                             ({at}); treating it as reclaimed",
                            h.seq
                        );
                        self.report.interrupted_reclaim = Some(h.seq);
                        self.report.segments.pop();
                        continue;
                    }
                    self.damage(at)?;
                }
                seg
            } else {
                let (seg, hd) = self.scan_newest(h)?;
                head = Some(hd);
                seg
            };
            shared.segments.push_back(seg);
        }

        for (p, next) in &self.parts_next {
            shared.partitions.insert(
                *p,
                PartState {
                    durable_next: *next,
                    ..PartState::default()
                },
            );
        }
        self.report.partitions = self
            .parts_next
            .iter()
            .map(|(p, next)| (*p, shared.earliest(*p), *next))
            .collect();
        self.report.meta_entries = self.meta.len();
        self.report.meta_bytes = self.meta.bytes();
        Ok(Recovered {
            report: self.report,
            shared,
            parts_next: self.parts_next,
            meta: self.meta,
            head,
            ring_id,
            next_group: GroupSeq(self.group_max.0.saturating_add(1)),
        })
    }

    /// Reports segments newer than the newest valid header whose header was destroyed while
    /// their batches are intact: for each sequence `newest + 1 ..= newest + n - 1`, a slot
    /// whose batch at `first_batch_pos` validates salted with that sequence (a batch is only
    /// programmed behind a durable header). Damage at byte 0 of the slot. (Legitimately, a
    /// headerless slot holds only erased bytes, garbage from a cut erase or program, or
    /// batches salted with an older sequence.)
    ///
    /// The newest segment's own slot is checked too, for `newest + n`: every slot is checked
    /// for the sequence the writer gives it next. No writer puts a batch of a later lap behind
    /// the newest header (only a forgery does), and without this check the first roll brought
    /// `newest + n` into the range above: a ring that opened cleanly and took one append then
    /// refused to reopen (decoder_fuzz seeds 13 and 17).
    fn check_lost_newest(
        &mut self,
        newest: SegmentSeq,
        headers: &[Option<SegmentHeader>],
    ) -> Result<(), OpenError> {
        for k in 1..=self.n {
            let Some(s) = newest.0.checked_add(k) else {
                break;
            };
            let seq = SegmentSeq(s);
            let slot = s % self.n;
            if headers[slot as usize].is_some_and(|h| h.seq == seq) {
                continue;
            }
            let mut scanner = Scanner::new(
                self.flash,
                seq,
                self.base(slot),
                first_batch_pos(self.cfg.program_unit_bytes),
                self.cfg.segment_bytes,
                self.cfg.program_unit_bytes,
                self.body_bytes_max(),
                self.cfg.read_chunk_bytes,
            );
            if let Ok(found) = scanner.next(|_| true)? {
                let pos = found.pos;
                let reason = if k == self.n {
                    format!(
                        "a batch of segment {seq}, a later lap of this slot, behind the header \
                         of segment {newest} (at byte {pos})"
                    )
                } else {
                    format!(
                        "segment header destroyed, but its batches are intact (first at byte \
                         {pos})"
                    )
                };
                self.damage(DamageAt {
                    seq: Some(seq),
                    slot,
                    pos: 0,
                    reason,
                })?;
            }
        }
        Ok(())
    }

    /// Whether slot 0 holds a valid batch of segment 0: then its header rotted after the
    /// format completed, and formatting again would erase acknowledged records.
    fn slot0_has_batches(&self) -> Result<bool, OpenError> {
        let mut scanner = Scanner::new(
            self.flash,
            SegmentSeq(0),
            0,
            first_batch_pos(self.cfg.program_unit_bytes),
            self.cfg.segment_bytes,
            self.cfg.program_unit_bytes,
            self.body_bytes_max(),
            self.cfg.read_chunk_bytes,
        );
        Ok(scanner.next(|_| true)?.is_ok())
    }

    fn blank(self) -> Result<Recovered, OpenError> {
        Ok(Recovered {
            report: RecoveryReport {
                blank: true,
                ..RecoveryReport::default()
            },
            shared: Shared::default(),
            parts_next: BTreeMap::new(),
            meta: MetaState::default(),
            head: None,
            ring_id: 0,
            next_group: GroupSeq(1),
        })
    }

    fn check_geometry(&self, slot: u64, h: &SegmentHeader) -> Result<(), OpenError> {
        if h.segment_bytes != self.cfg.segment_bytes
            || u64::from(h.program_unit_bytes) != self.cfg.program_unit_bytes
            || h.seq.0 % self.n != slot
        {
            return Err(OpenError::GeometryMismatch {
                slot,
                found: format!(
                    "segment_bytes {}, program_unit_bytes {}, sequence {} (slot {} of {})",
                    h.segment_bytes,
                    h.program_unit_bytes,
                    h.seq,
                    h.seq.0 % self.n,
                    self.n
                ),
                configured: format!(
                    "segment_bytes {}, program_unit_bytes {}, {} segments",
                    self.cfg.segment_bytes, self.cfg.program_unit_bytes, self.n
                ),
            });
        }
        Ok(())
    }

    fn scanner(&self, h: &SegmentHeader, limit: u64) -> Scanner<'a, F> {
        Scanner::new(
            self.flash,
            h.seq,
            self.base(h.seq.0 % self.n),
            first_batch_pos(self.cfg.program_unit_bytes),
            limit,
            self.cfg.program_unit_bytes,
            self.body_bytes_max(),
            self.cfg.read_chunk_bytes,
        )
    }

    /// The largest body a valid batch can have: whatever fits in a segment. Not the configured
    /// `batch_bytes_max`: lowering a limit must never make data already written look invalid.
    fn body_bytes_max(&self) -> u64 {
        self.cfg.segment_bytes - first_batch_pos(self.cfg.program_unit_bytes)
    }

    /// Scans the valid batches of a segment, applying each to the state; returns the index,
    /// the report line, where and why the scan stopped, whether the last batch closed its
    /// group, and whether the segment starts with its checkpoint. A batch with a valid header
    /// CRC but an unknown kind ends recovery with `UnsupportedFormat`.
    fn scan_batches(
        &mut self,
        h: &SegmentHeader,
        limit: u64,
        sealed: bool,
    ) -> Result<(SegIndex, SegmentReport, u64, ScanStop, bool, bool), OpenError> {
        let slot = h.seq.0 % self.n;
        let mut idx = SegIndex::new(h.seq, slot, limit);
        let mut rep = SegmentReport {
            seq: h.seq,
            slot,
            valid_end: first_batch_pos(self.cfg.program_unit_bytes),
            batches: 0,
            records: 0,
        };
        let mut scanner = self.scanner(h, limit);
        let mut last_closed = true;
        let mut has_checkpoint = false;
        let stop = loop {
            let found = match scanner.next(|_| true)? {
                Ok(f) => f,
                Err(stop) => break stop,
            };
            let (pos, header) = (found.pos, found.header);
            let body = found.body.unwrap_or_default();
            let mut parts = Vec::new();
            if let Err(reason) = self.apply(
                &header,
                body,
                rep.batches == 0,
                &mut has_checkpoint,
                &mut parts,
            ) {
                // A batch whose CRC is right but whose contents break the log's invariants.
                self.damage(DamageAt {
                    seq: Some(h.seq),
                    slot,
                    pos,
                    reason,
                })?;
                scanner.pos = pos;
                // Not where the oldest segment of a full ring may be a reclaim cut short: if it
                // is, the whole segment is dropped, and its offsets are in the next checkpoint.
                let maybe_reclaim = self.tolerate && pos < self.cfg.erase_block_bytes;
                if sealed && !maybe_reclaim {
                    // Whether the scan stops at this batch depends on the state the earlier
                    // segments built, and a later reclaim can change that state: a later
                    // recovery may then accept this batch and the ones after it. So both are
                    // taken into account now, without applying them.
                    self.look_past(&mut scanner, slot)?;
                    scanner.pos = pos;
                }
                break ScanStop::Invalid(super::format::BatchError::Body("inconsistent batch"));
            }
            if header.kind == BatchKind::Records {
                idx.add_batch(
                    header.partition,
                    header.base_offset,
                    header.record_count,
                    pos,
                    header.total_bytes(),
                    self.cfg.index_interval_bytes,
                );
                rep.records += u64::from(header.record_count);
            }
            for (partition, base, count) in parts {
                idx.add_batch(
                    partition,
                    base,
                    count,
                    pos,
                    header.total_bytes(),
                    self.cfg.index_interval_bytes,
                );
                rep.records += u64::from(count);
            }
            rep.batches += 1;
            self.group_max = self.group_max.max(header.group);
            last_closed = header.last_in_group();
            rep.valid_end = scanner.pos;
        };
        let stopped_at = scanner.pos;
        if let ScanStop::Invalid(super::format::BatchError::Kind(kind)) = stop {
            // The header's CRC was right: a batch kind from a newer build, not garbage.
            return Err(unknown_kind(slot, kind, stopped_at));
        }
        idx.end = stopped_at;
        Ok((idx, rep, stopped_at, stop, last_closed, has_checkpoint))
    }

    /// After an inconsistent batch in a sealed segment: follows the valid batches from it (that
    /// one included) to where a scan would stop without the log's checks, applying none of them.
    /// Every offset they hold is reserved (each partition's next offset rises to cover it), so
    /// the writer's next checkpoint is not below what a later recovery reads here once the
    /// damage that stopped this scan is reclaimed; and a batch of an unknown kind among them
    /// refuses the ring now, as that later recovery would.
    fn look_past(&mut self, scanner: &mut Scanner<'a, F>, slot: u64) -> Result<(), OpenError> {
        loop {
            let found = match scanner.next(|_| true)? {
                Ok(f) => f,
                Err(ScanStop::Invalid(super::format::BatchError::Kind(kind))) => {
                    return Err(unknown_kind(slot, kind, scanner.pos));
                }
                Err(_) => return Ok(()),
            };
            let (h, body) = (found.header, found.body.unwrap_or_default());
            let mut claims = Vec::new();
            match h.kind {
                BatchKind::Checkpoint => {
                    if let Ok(cp) = decode_checkpoint_body(body) {
                        claims = cp.partitions;
                    }
                }
                BatchKind::Records => {
                    claims.extend(Self::claim(h.partition, h.base_offset, h.record_count));
                }
                BatchKind::Atomic => {
                    if let Ok(view) = decode_atomic_body(body) {
                        for p in &view.parts {
                            claims.extend(Self::claim(p.partition, p.base_offset, p.record_count));
                        }
                    }
                }
                BatchKind::Meta => {}
            }
            for (p, next) in claims {
                let e = self.parts_next.entry(p).or_insert(next);
                *e = (*e).max(next);
            }
        }
    }

    /// The next offset a batch of `count` records at `base` claims for `partition`, if any.
    fn claim(partition: PartitionId, base: Offset, count: u32) -> Option<(PartitionId, Offset)> {
        let end = base.0.checked_add(u64::from(count))?;
        (count > 0 && partition != PartitionId::NONE).then_some((partition, Offset(end)))
    }

    /// Applies one valid batch to the rebuilt state, checking the log's invariants.
    fn apply(
        &mut self,
        h: &BatchHeader,
        body: &[u8],
        first_in_segment: bool,
        has_checkpoint: &mut bool,
        atomic_parts: &mut Vec<(PartitionId, Offset, u32)>,
    ) -> Result<(), String> {
        match h.kind {
            BatchKind::Checkpoint => {
                let cp = decode_checkpoint_body(body).map_err(|e| e.to_string())?;
                // Offsets never go back, also past a checkpoint refused as inconsistent (a
                // forgery or a bug: one of the two sides is wrong, and recovery cannot tell
                // which): every partition moves to the higher of the two, in list order (so a
                // partition listed twice with a falling offset is refused too). The writer's
                // next checkpoint then covers whatever this one claims, so a later recovery
                // that accepts this one (once the segment that contradicted it is reclaimed)
                // does not find the writer's checkpoint below the log. (Before, the checkpoint
                // was applied partition by partition up to the first one below the log, and
                // the writer's checkpoint could be below what the next recovery read: it
                // refused it, with the acknowledged records behind it.)
                let mut below = None;
                for &(p, next) in &cp.partitions {
                    let e = self.parts_next.entry(p).or_insert(next);
                    if *e > next {
                        below.get_or_insert((p, next, *e));
                    }
                    *e = (*e).max(next);
                }
                if let Some((p, next, e)) = below {
                    return Err(format!(
                        "checkpoint says partition {p} ends at {next}, but the log already \
                         holds offsets up to {e}"
                    ));
                }
                self.meta.replace(&cp.meta);
                if first_in_segment {
                    *has_checkpoint = true;
                }
            }
            BatchKind::Meta => {
                let ops = decode_meta_body(body).map_err(|e| e.to_string())?;
                self.meta.apply(&ops);
            }
            BatchKind::Records => {
                self.apply_records(h.partition, h.base_offset, h.record_count, body)?;
            }
            BatchKind::Atomic => {
                let view = decode_atomic_body(body).map_err(|e| e.to_string())?;
                let ops = decode_meta_body(view.meta).map_err(|e| e.to_string())?;
                let total: u64 = view.parts.iter().map(|p| u64::from(p.record_count)).sum();
                if total != u64::from(h.record_count) {
                    return Err(format!(
                        "atomic batch header counts {} records but its parts hold {total}",
                        h.record_count
                    ));
                }
                // Readers skip batches by the header (reader.rs): it must describe the body.
                let (partition, base) = match view.parts.as_slice() {
                    [only] => (only.partition, only.base_offset),
                    _ => (PartitionId::NONE, Offset::ZERO),
                };
                if h.partition != partition || h.base_offset != base {
                    return Err(format!(
                        "atomic batch header names partition {} at offset {} but its body \
                         holds {} part(s)",
                        h.partition,
                        h.base_offset,
                        view.parts.len()
                    ));
                }
                // Every part is checked before any is applied: a batch is applied whole or
                // not at all, also when it is refused as inconsistent.
                for (i, p) in view.parts.iter().enumerate() {
                    if view.parts[..i].iter().any(|q| q.partition == p.partition) {
                        return Err(format!(
                            "atomic batch names partition {} twice",
                            p.partition
                        ));
                    }
                    self.check_records(p.partition, p.base_offset, p.record_count, p.records)?;
                }
                for p in &view.parts {
                    self.parts_next
                        .insert(p.partition, p.base_offset.plus(u64::from(p.record_count)));
                    atomic_parts.push((p.partition, p.base_offset, p.record_count));
                }
                // The same order as the writer (`Ring::place_atomic`): the batch's operations,
                // then each part's producer state.
                let mut all_ops = ops;
                for p in &view.parts {
                    all_ops.push(producer::appended_op(
                        &self.meta,
                        view.producer,
                        view.epoch,
                        p.partition,
                        p.first_seq,
                        p.record_count,
                        p.base_offset,
                        h.group,
                    ));
                }
                self.meta.apply(&all_ops);
            }
        }
        Ok(())
    }

    /// Checks one partition's records (framing, offsets contiguous with what the log holds)
    /// and moves its next offset.
    fn apply_records(
        &mut self,
        partition: PartitionId,
        base: Offset,
        count: u32,
        body: &[u8],
    ) -> Result<(), String> {
        self.check_records(partition, base, count, body)?;
        self.parts_next
            .insert(partition, base.plus(u64::from(count)));
        Ok(())
    }

    /// The checks of [`Recovery::apply_records`], changing nothing.
    fn check_records(
        &self,
        partition: PartitionId,
        base: Offset,
        count: u32,
        body: &[u8],
    ) -> Result<(), String> {
        if count == 0 {
            return Err("records batch with no records".into());
        }
        if partition == PartitionId::NONE {
            return Err("records for the reserved partition id".into());
        }
        if base.0.checked_add(u64::from(count)).is_none() {
            return Err("records batch offsets overflow".into());
        }
        let mut it = RecordIter::new(body, count);
        while let Some(r) = it.skip_record() {
            r.map_err(|e| e.to_string())?;
        }
        if !it.finished_cleanly() {
            return Err("records batch has trailing bytes".into());
        }
        let expected = self.parts_next.get(&partition).copied();
        match expected {
            // No jump forward, not even after damage: damage ends its segment's scan, and the
            // next segment starts with a checkpoint, which restores the offsets over what was
            // lost. (Damage used to excuse a jump later in the log, which only a forgery
            // writes; the verdict on it then depended on damage the next reclaim erases.)
            Some(e) if base != e => {
                return Err(format!(
                    "partition {partition} batch starts at offset {base} but {e} was expected"
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// A segment that is not the newest: it was synced before the next one started, so every
    /// invalid byte before its known end is corruption (unless `run` takes it, in the oldest
    /// segment of a full ring, for an interrupted reclaim).
    fn scan_sealed(
        &mut self,
        h: &SegmentHeader,
        known_end: Option<u64>,
    ) -> Result<SegIndex, OpenError> {
        let limit = known_end.unwrap_or(self.cfg.segment_bytes);
        let (idx, rep, stopped_at, stop, _, _) = self.scan_batches(h, limit, true)?;
        if let Some(end) = known_end
            && stopped_at < end
        {
            if !self.tolerate {
                self.report.skipped_bytes += end - stopped_at;
            }
            self.damage(DamageAt {
                seq: Some(h.seq),
                slot: h.seq.0 % self.n,
                pos: stopped_at,
                reason: format!("{stop} (the segment's data ends at {end})"),
            })?;
        }
        self.report.segments.push(rep);
        Ok(idx)
    }

    /// The newest segment: the scan ends at the first invalid position `p`. It is a torn tail
    /// unless a later group is valid after it (only the last, unsynced group can be torn).
    fn scan_newest(&mut self, h: &SegmentHeader) -> Result<(SegIndex, Head), OpenError> {
        let (idx, rep, p, stop, last_closed, has_checkpoint) =
            self.scan_batches(h, self.cfg.segment_bytes, false)?;
        let slot = h.seq.0 % self.n;
        // The group allowed after `p`: the one `p` is in.
        let in_segment = rep.batches > 0;
        let torn_group = if !in_segment || last_closed {
            GroupSeq(self.group_max.0.saturating_add(1))
        } else {
            self.group_max
        };
        let (dirty_bytes, foreign) = self.inspect_tail(h, p, torn_group)?;
        self.report.segments.push(rep);
        // On raw flash the writer can only continue onto erased bytes. On a medium that
        // overwrites in place it continues after a whole group whatever follows: `Ring::open`
        // first writes `0xFF` over the tail (stale bytes, or whole later batches that an
        // interrupted group left behind `p`), so that nothing there can ever pass for a group
        // written after `p`.
        // Never over damage, though (an inconsistent batch right after a whole group, under
        // `skip-segment`): the head is sealed there, on every medium.
        let overwrites = self.flash.overwrites_in_place();
        let damaged_at_p = self
            .report
            .damage
            .iter()
            .any(|d| d.seq == Some(h.seq) && d.pos == p);
        let mut appendable = !damaged_at_p && last_closed && (dirty_bytes == 0 || overwrites);
        if let Some((q, g)) = foreign {
            appendable = false;
            self.report.skipped_bytes += self.cfg.segment_bytes - p;
            self.damage(DamageAt {
                seq: Some(h.seq),
                slot,
                pos: p,
                reason: format!(
                    "{stop}, but a later group ({g}) is intact at byte {q}: this is not a \
                     torn tail"
                ),
            })?;
        } else if !appendable {
            self.report.torn_tail = Some(TornTail {
                seq: h.seq,
                slot,
                pos: p,
                dirty_bytes,
            });
        } else if dirty_bytes > 0 {
            self.report.stale_tail = Some(TornTail {
                seq: h.seq,
                slot,
                pos: p,
                dirty_bytes,
            });
        }
        Ok((
            idx,
            Head {
                seq: h.seq,
                slot,
                pos: p,
                appendable,
                has_checkpoint,
            },
        ))
    }

    /// Looks at `[p, segment end)` of the newest segment: counts bytes that are not erased and
    /// finds the first valid batch at a program-unit boundary whose group is not `torn_group`
    /// (proof that the damage at `p` was synced before: corruption, not a torn tail).
    fn inspect_tail(
        &mut self,
        h: &SegmentHeader,
        p: u64,
        torn_group: GroupSeq,
    ) -> Result<(u64, Option<(u64, GroupSeq)>), OpenError> {
        let seg = self.cfg.segment_bytes;
        let unit = self.cfg.program_unit_bytes;
        let base = self.base(h.seq.0 % self.n);
        let chunk = super::format::align_up(self.cfg.read_chunk_bytes, unit);
        let mut buf = vec![0u8; (chunk + BATCH_HEADER_BYTES as u64) as usize];
        let mut dirty = 0u64;
        let mut foreign = None;
        let mut at = p;
        while at < seg {
            let n = (chunk.min(seg - at) + BATCH_HEADER_BYTES as u64).min(seg - at) as usize;
            let b = &mut buf[..n];
            self.flash.read(base + at, b)?;
            let counted = chunk.min(seg - at) as usize;
            dirty += b[..counted].iter().filter(|&&x| x != ERASED_BYTE).count() as u64;
            if foreign.is_none() {
                let mut q = super::format::align_up(at.max(p + 1), unit);
                while q < at + counted as u64 && q + BATCH_HEADER_BYTES as u64 <= seg {
                    let i = (q - at) as usize;
                    let hb = &b[i..(i + BATCH_HEADER_BYTES).min(n)];
                    if hb.len() == BATCH_HEADER_BYTES
                        && hb.iter().any(|&x| x != ERASED_BYTE)
                        && let Ok(bh) = BatchHeader::decode(hb, h.seq, self.body_bytes_max())
                        && bh.group != torn_group
                        && self.body_valid(h, q, &bh)?
                    {
                        foreign = Some((q, bh.group));
                        break;
                    }
                    q += unit;
                }
            }
            at += counted as u64;
        }
        Ok((dirty, foreign))
    }

    fn body_valid(&self, h: &SegmentHeader, q: u64, bh: &BatchHeader) -> Result<bool, OpenError> {
        let end = q + bh.total_bytes();
        if end > self.cfg.segment_bytes {
            return Ok(false);
        }
        let mut body = vec![0u8; bh.body_bytes as usize];
        self.flash.read(
            self.base(h.seq.0 % self.n) + q + BATCH_HEADER_BYTES as u64,
            &mut body,
        )?;
        Ok(bh.check_body(h.seq, &body).is_ok())
    }
}

/// A batch whose header CRC is right but whose kind this build does not know: written by a
/// newer build, never garbage.
fn unknown_kind(slot: u64, kind: u8, pos: u64) -> OpenError {
    OpenError::UnsupportedFormat {
        slot,
        detail: format!("batch of kind {kind} at byte {pos}"),
    }
}
