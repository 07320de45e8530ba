//! The ring writer: appends batches in groups (one `program` per group), rolls to the next
//! segment, reclaims the oldest one under the full policy, and publishes durable data to the
//! readers after each sync. There is exactly one writer; it owns a `Ring`.
//!
//! Invariants (docs/FORMAT.md, "Crash analysis", explains why each matters):
//! 1. At most one `program` is not yet covered by a successful `sync` at any time, and it is
//!    at most `group_bytes_max` bytes: only the newest group can be torn by a power cut.
//!    (`write_group` + `sync` keep it by construction; the pipelined `Log` calls
//!    `prepare_group`, which does no I/O but around a roll and then only after its
//!    `before_io` waited until every sealed group was programmed and synced; the groups
//!    `seal_group` closes are programmed and synced one after the other on one thread.)
//! 2. A slot is erased (header block first, synced, then the rest, synced) before its new
//!    header is programmed and synced; no batch is programmed before its header is durable.
//! 3. Every segment's first group starts with a checkpoint of the whole state.
//! 4. Nothing is ever programmed onto bytes that are not erased.
//! 5. After a failed program, erase or sync the ring is poisoned: every later append fails
//!    until the ring is reopened (recovery then decides what the medium really holds).

use super::config::{FullPolicy, RingConfig};
use super::error::{AppendError, OpenError};
use super::flash::{ERASED_BYTE, Flash, FlashError, reads_erased};
use super::format::{
    AtomicPartIn, BATCH_HEADER_BYTES, BatchHeader, BatchKind, Checkpoint, FLAG_LAST_IN_GROUP,
    MetaOp, PREV_END_NONE, Record, SegmentHeader, align_up, atomic_body_bytes, encode_atomic_body,
    encode_checkpoint_body, encode_meta_body, first_batch_pos, salt, salted_crc, salted_crc_from,
};
use super::index::{PartState, SegIndex, Shared};
use super::meta::MetaState;
use super::producer::{self, Check, ProducerError};
use super::reader::Reader;
use super::recovery::{Head, Mode, RecoveryReport, recover};
use super::types::{
    GroupSeq, Offset, PartitionId, ProducerEpoch, ProducerId, SegmentSeq, Sequence,
};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// One append: records for a partition, metadata operations, an idempotent producer's atomic
/// write, or a producer initialisation.
#[derive(Clone, Copy, Debug)]
pub enum AppendBody<'a> {
    Records {
        partition: PartitionId,
        records: &'a [Record],
    },
    Meta(&'a [MetaOp]),
    /// Records for one or more partitions, each with the producer's first sequence, and
    /// metadata operations: one `Atomic` batch, so all of it survives a power cut or none.
    /// Checked against the producer state first: a stale epoch is fenced, a gap refused, a
    /// retry of a batch written already answered with its offsets (`duplicate`) and not
    /// written again.
    Atomic {
        producer: ProducerId,
        epoch: ProducerEpoch,
        parts: &'a [AtomicPartBody],
        meta: &'a [MetaOp],
    },
    /// `INIT_PRODUCER`: a `Meta` batch giving `name` its id and next epoch
    /// (`storage::producer::init`).
    InitProducer {
        name: &'a [u8],
    },
}

/// One partition's records in an atomic write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AtomicPartBody {
    pub partition: PartitionId,
    pub first_seq: Sequence,
    pub records: Vec<Record>,
}

/// Where one partition's records landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartAppended {
    pub partition: PartitionId,
    pub base_offset: Offset,
    pub record_count: u32,
}

/// Where an append landed. For metadata appends `partition` is `PartitionId::NONE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    pub partition: PartitionId,
    pub base_offset: Offset,
    pub record_count: u32,
    /// Atomic writes: every part in request order (the fields above repeat the first part's).
    pub parts: Vec<PartAppended>,
    /// Atomic writes: a retry of a write stored already; nothing was written again, and the
    /// answer still waits for a sync after the original write.
    pub duplicate: bool,
    /// Producer initialisations: the id and epoch handed out.
    pub producer: Option<(ProducerId, ProducerEpoch)>,
}

impl Appended {
    fn single(partition: PartitionId, base_offset: Offset, record_count: u32) -> Appended {
        Appended {
            partition,
            base_offset,
            record_count,
            parts: Vec::new(),
            duplicate: false,
            producer: None,
        }
    }
}

/// What `encode` decided for one append.
enum Encoded {
    /// A batch to place, with this header.
    Batch(BatchHeader),
    /// A retry of an atomic write stored already: answered, not written.
    Duplicate(Appended),
}

/// The outcome of one `write_group`: the first `consumed` appends were handled (each with its
/// own result); the rest did not fit in this group and must be passed again after `sync`.
#[derive(Debug)]
pub struct GroupResult {
    pub consumed: usize,
    pub results: Vec<Result<Appended, AppendError>>,
}

/// Records `drop-oldest` reclaimed before they were released: offsets `[from, to)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DropEvent {
    pub partition: PartitionId,
    pub from: Offset,
    pub to: Offset,
    pub seq: SegmentSeq,
}

/// The largest single program `Ring::erase_tail` makes (bounds its buffer).
const ERASE_TAIL_CHUNK_BYTES: u64 = 1 << 20;

/// How many drop events are kept for `take_drop_events` (the oldest are forgotten first; the
/// counters in `RingStats` keep the totals).
const DROP_EVENTS_MAX: usize = 1024;

/// A group closed by [`Ring::seal_group`], for a program and sync made on another thread.
#[derive(Debug)]
pub(crate) struct Sealed {
    /// The medium offset and the bytes to program there (`None`: nothing new to program, only
    /// earlier programs to sync).
    pub(crate) program: Option<(u64, Vec<u8>)>,
    /// What the programs since the last sync wrote, this one included, to publish after the
    /// sync.
    pub(crate) unsynced: Unsynced,
}

/// What the programs since the last sync wrote: published to readers once a sync covers it.
#[derive(Debug, Default)]
pub(crate) struct Unsynced {
    batches: Vec<Unpublished>,
    /// Segment ends: (seq, end).
    ends: Vec<(SegmentSeq, u64)>,
}

/// A batch programmed but not yet published to readers (waits for the covering sync).
#[derive(Clone, Copy, Debug)]
struct Unpublished {
    seq: SegmentSeq,
    partition: PartitionId,
    base: Offset,
    count: u32,
    pos: u64,
    bytes: u64,
}

/// A batch placed in the group buffer; its header is encoded at flush (when the group's
/// sequence and the last-in-group flag are known).
#[derive(Clone, Copy, Debug)]
struct Draft {
    at: usize,
    header: BatchHeader,
}

pub struct Ring<F: Flash> {
    flash: Arc<F>,
    cfg: RingConfig,
    n: u64,
    shared: Arc<RwLock<Shared>>,
    head: Head,
    next_group: GroupSeq,
    parts_next: BTreeMap<PartitionId, Offset>,
    meta: MetaState,
    ring_id: u64,
    /// Free slots known to read erased without reading them (all of them on a medium this
    /// process created erased, `Flash::take_created_erased`); cleared as each slot is used.
    known_erased: Vec<bool>,
    /// The group being built: encoded batches, headers left blank until flush.
    buf: Vec<u8>,
    drafts: Vec<Draft>,
    /// The parts of the `Atomic` batches in `drafts`: (draft position, partition, base, count).
    atomic_parts: Vec<(usize, PartitionId, Offset, u32)>,
    scratch: Vec<u8>,
    /// The operations `encode` computed for a pending `InitProducer`, for `place`.
    pending_init: Option<producer::Init>,
    /// `(seq, salt(seq))` for the last segment a batch was placed in.
    salt: (SegmentSeq, u32),
    unpublished: Vec<Unpublished>,
    /// Segment ends to publish at the next sync: (seq, end).
    ends: Vec<(SegmentSeq, u64)>,
    drop_events: VecDeque<DropEvent>,
}

/// Why a roll did not happen.
enum RollError {
    Full,
    Flash(FlashError),
}

/// Refuses metadata keys the format cannot hold.
fn check_keys(ops: &[MetaOp]) -> Result<(), AppendError> {
    for op in ops {
        let (MetaOp::Put { key, .. } | MetaOp::Delete { key, .. }) = op;
        if key.len() > u16::MAX as usize {
            return Err(AppendError::MetaKeyTooLong {
                key_bytes: key.len(),
            });
        }
    }
    Ok(())
}

impl<F: Flash> Ring<F> {
    /// Opens the ring on `flash`, running recovery (and formatting a blank area).
    pub fn open(flash: F, cfg: RingConfig) -> Result<(Ring<F>, RecoveryReport), OpenError> {
        let flash = Arc::new(flash);
        let rec = recover(&*flash, &cfg, Mode::Open(cfg.corruption_policy))?;
        let n = cfg.segment_count();
        let created_erased = flash.take_created_erased();
        let mut ring = Ring {
            flash,
            n,
            shared: Arc::new(RwLock::new(rec.shared)),
            head: Head {
                seq: SegmentSeq(0),
                slot: 0,
                pos: 0,
                appendable: false,
                has_checkpoint: false,
            },
            next_group: rec.next_group,
            parts_next: rec.parts_next,
            meta: rec.meta,
            ring_id: rec.ring_id,
            known_erased: vec![created_erased; n as usize],
            buf: Vec::with_capacity(cfg.group_bytes_max as usize),
            drafts: Vec::new(),
            atomic_parts: Vec::new(),
            scratch: Vec::new(),
            pending_init: None,
            salt: (SegmentSeq(0), salt(SegmentSeq(0))),
            unpublished: Vec::new(),
            ends: Vec::new(),
            drop_events: VecDeque::new(),
            cfg,
        };
        match rec.head {
            Some(head) => ring.head = head,
            None => ring.format()?,
        }
        let report = rec.report;
        if let Some(t) = &report.stale_tail {
            ring.erase_tail(t.pos)?;
        }
        if let Some(t) = &report.torn_tail {
            log::info!(
                "storage: torn tail in segment {} at byte {} ({} bytes not erased) dropped; \
                 the next append starts a new segment",
                t.seq,
                t.pos,
                t.dirty_bytes
            );
        }
        if let Some(t) = &report.stale_tail {
            log::info!(
                "storage: segment {} continues at byte {}; the {} bytes after it that were not \
                 erased (stale bytes of an earlier lap, or a write a power cut interrupted) were \
                 overwritten with 0xFF",
                t.seq,
                t.pos,
                t.dirty_bytes
            );
        }
        Ok((ring, report))
    }

    /// On a medium that overwrites in place, the head may continue after a whole group over
    /// bytes that are not erased (recovery's stale tail): stale bytes of an earlier lap, or what
    /// a cut left of a group whose first batch did not land whole, which may include whole
    /// later batches of that group, valid under this segment's salt. Before any append, `0xFF`
    /// is written over `[pos, segment end)` and synced: the tail then reads erased as on raw
    /// flash, so a group written at `pos` can never be followed by a batch that a later
    /// recovery would take for data or for proof of damage. A cut before the sync leaves a
    /// stale tail again, and the next open does the same. Costs at most one segment's write,
    /// once per start of a ring that has wrapped (or was cut mid-group).
    fn erase_tail(&mut self, pos: u64) -> Result<(), FlashError> {
        let base = self.slot_base(self.head.slot);
        let seg = self.cfg.segment_bytes;
        let unit = self.cfg.program_unit_bytes;
        let chunk = (ERASE_TAIL_CHUNK_BYTES / unit).max(1) * unit;
        let ones = vec![ERASED_BYTE; chunk.min(seg.saturating_sub(pos)) as usize];
        let mut at = pos;
        while at < seg {
            let n = (seg - at).min(ones.len() as u64) as usize;
            self.flash.program(base + at, &ones[..n])?;
            at += n as u64;
        }
        self.flash.sync()
    }

    /// Writes the first segment of an area recovery found blank (also after a format cut
    /// short): slot 0 is erased first unless it reads as entirely erased (read in full here).
    fn format(&mut self) -> Result<(), OpenError> {
        self.ring_id = fresh_ring_id();
        self.head = Head {
            seq: SegmentSeq(0),
            slot: 0,
            pos: first_batch_pos(self.cfg.program_unit_bytes),
            appendable: true,
            has_checkpoint: false,
        };
        // Blank headers do not prove blank bodies (an erase may have been cut, or an earlier
        // ring's batches may be there, salted like ours): read it, on every medium.
        let erased = self.known_erased[0] || self.slot_reads_erased(0);
        self.known_erased[0] = false;
        if !erased {
            self.erase_slot(0)?;
        }
        self.program_header(SegmentSeq(0), 0, PREV_END_NONE)?;
        self.flash.sync()?;
        self.write_shared()
            .segments
            .push_back(SegIndex::new(SegmentSeq(0), 0, self.head.pos));
        log::info!(
            "storage: formatted a new ring of {} segments of {} bytes",
            self.n,
            self.cfg.segment_bytes
        );
        Ok(())
    }

    /// The flash area (tests use it to inject faults and take crash images).
    pub fn flash(&self) -> &F {
        &self.flash
    }

    pub fn config(&self) -> &RingConfig {
        &self.cfg
    }

    /// A handle for concurrent reads.
    pub fn reader(&self) -> Reader<F> {
        Reader::new(self.flash.clone(), self.shared.clone(), &self.cfg)
    }

    /// The metadata state as written so far (including appends not yet synced).
    pub fn meta(&self) -> &MetaState {
        &self.meta
    }

    /// The next offset the writer will assign in `partition`.
    pub fn next_offset(&self, partition: PartitionId) -> Offset {
        self.parts_next
            .get(&partition)
            .copied()
            .unwrap_or(Offset::ZERO)
    }

    pub fn ring_id(&self) -> u64 {
        self.ring_id
    }

    /// Lets records of `partition` below `upto` be reclaimed (the forwarder calls this after
    /// an upstream commit). The watermark only moves forward.
    pub fn release(&self, partition: PartitionId, upto: Offset) {
        release(&self.shared, partition, upto);
    }

    /// A clone of the shared state handle (for the group-commit thread's observers).
    pub fn shared(&self) -> Arc<RwLock<Shared>> {
        self.shared.clone()
    }

    /// Drop events recorded since the last call (at most the last 1,024).
    pub fn take_drop_events(&mut self) -> Vec<DropEvent> {
        self.drop_events.drain(..).collect()
    }

    fn write_shared(&self) -> RwLockWriteGuard<'_, Shared> {
        self.shared
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn read_shared(&self) -> RwLockReadGuard<'_, Shared> {
        self.shared
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn check_poisoned(&self) -> Result<(), AppendError> {
        match &self.read_shared().poisoned {
            Some(cause) => Err(AppendError::Poisoned {
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    fn poison(&self, e: FlashError) -> AppendError {
        poison(&self.shared, &e);
        AppendError::Flash(e)
    }

    fn slot_base(&self, slot: u64) -> u64 {
        slot * self.cfg.segment_bytes
    }

    /// Writes as many of `appends` as fit in one group, in order, with one `program` (or two,
    /// around a segment roll, the first of which the roll syncs). The caller must call `sync`
    /// next, and pass `appends[consumed..]` again afterwards. An append that cannot fit even in
    /// an empty group (with the segment's checkpoint) is consumed with `BatchTooLarge`.
    pub fn write_group(&mut self, appends: &[AppendBody<'_>]) -> Result<GroupResult, AppendError> {
        debug_assert!(self.buf.is_empty() && self.drafts.is_empty());
        let group = self.prepare_group(appends, &mut || Ok(()))?;
        self.flush()?;
        Ok(group)
    }

    /// The first half of [`Ring::write_group`], for the pipelined writer of `Log`: places as
    /// many of `appends` as fit into the group being built (encoded, CRCs computed, offsets
    /// assigned, metadata applied) **without touching the medium**, except around a segment
    /// roll. It may be called again to add more appends to the same group, until
    /// [`Ring::seal_group`] closes it.
    ///
    /// `before_io` runs before any `program`, `erase` or `sync` this call would make (only a
    /// roll makes any): the pipelined writer waits there until every group it handed over is
    /// programmed and synced, so that at most one program is ever unsynced (invariant 1). If it
    /// fails, nothing is written
    /// and its error is returned (the caller must then `discard_group`).
    pub(crate) fn prepare_group(
        &mut self,
        appends: &[AppendBody<'_>],
        before_io: &mut dyn FnMut() -> Result<(), AppendError>,
    ) -> Result<GroupResult, AppendError> {
        self.check_poisoned()?;
        let mut results = Vec::with_capacity(appends.len());
        let mut full = false;
        let mut consumed = 0;
        for body in appends {
            let header = match self.encode(body) {
                Ok(Encoded::Batch(h)) => h,
                Ok(Encoded::Duplicate(a)) => {
                    results.push(Ok(a));
                    consumed += 1;
                    continue;
                }
                Err(e) => {
                    results.push(Err(e));
                    consumed += 1;
                    continue;
                }
            };
            if full {
                results.push(Err(AppendError::BufferFull));
                consumed += 1;
                continue;
            }
            let total = header.total_bytes();
            let checkpoint = if self.head.has_checkpoint && self.head.appendable {
                0
            } else {
                self.checkpoint_bytes()
            };
            if self.buf.len() as u64 + checkpoint + total > self.cfg.group_bytes_max {
                if self.buf.is_empty() {
                    // Could never fit (a checkpoint grown past what the limits were validated
                    // for, after a limit was lowered): refuse it rather than stall the writer.
                    results.push(Err(AppendError::BatchTooLarge {
                        batch_bytes: checkpoint + total,
                        batch_bytes_max: self.cfg.group_bytes_max,
                    }));
                    consumed += 1;
                    continue;
                }
                break; // the group is full: the rest goes in the next one
            }
            let end = self.head.pos
                + align_up(
                    self.buf.len() as u64 + checkpoint + total,
                    self.cfg.program_unit_bytes,
                );
            if !self.head.appendable || end > self.cfg.segment_bytes {
                before_io()?;
                self.flush()?;
                match self.roll() {
                    Ok(()) if self.checkpoint_bytes() + total > self.cfg.group_bytes_max => {
                        // The new segment's first group must also hold the checkpoint, which
                        // can outgrow the validated bound after a limit was lowered.
                        results.push(Err(AppendError::BatchTooLarge {
                            batch_bytes: self.checkpoint_bytes() + total,
                            batch_bytes_max: self.cfg.group_bytes_max,
                        }));
                        consumed += 1;
                        continue;
                    }
                    Ok(()) => {}
                    Err(RollError::Full) => {
                        full = true;
                        results.push(Err(AppendError::BufferFull));
                        consumed += 1;
                        continue;
                    }
                    Err(RollError::Flash(e)) => return Err(self.poison(e)),
                }
            }
            if !self.head.has_checkpoint {
                self.push_checkpoint();
            }
            results.push(Ok(self.place(header, body)));
            consumed += 1;
        }
        Ok(GroupResult { consumed, results })
    }

    /// Whether appends were placed that [`Ring::seal_group`] has not sealed yet.
    pub(crate) fn has_prepared(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Forgets a group that was prepared but will never be programmed (the ring is poisoned:
    /// the offsets and metadata it applied in RAM are never used again before a reopen).
    pub(crate) fn discard_group(&mut self) {
        self.buf.clear();
        self.drafts.clear();
        self.atomic_parts.clear();
    }

    /// What the programs since the last sync wrote, to publish after the next sync.
    fn take_unsynced(&mut self) -> Unsynced {
        Unsynced {
            batches: std::mem::take(&mut self.unpublished),
            ends: std::mem::take(&mut self.ends),
        }
    }

    /// The flash handle (the pipelined writer's sync thread programs and syncs through a clone).
    pub(crate) fn flash_handle(&self) -> Arc<F> {
        self.flash.clone()
    }

    /// Makes everything written so far durable, then publishes it to readers.
    pub fn sync(&mut self) -> Result<(), AppendError> {
        self.check_poisoned()?;
        if let Err(e) = self.flash.sync() {
            return Err(self.poison(e));
        }
        let unsynced = self.take_unsynced();
        publish(&self.shared, unsynced, self.cfg.index_interval_bytes);
        Ok(())
    }

    /// Checks one append and returns its header (`body_bytes` exact, offsets not yet
    /// assigned), or why it is refused. Nothing is changed on refusal. A `Meta` body is encoded
    /// into `scratch`; a `Records` body is encoded later by `place`, straight into the group
    /// buffer (one copy of the record bytes, not two).
    fn encode(&mut self, body: &AppendBody<'_>) -> Result<Encoded, AppendError> {
        self.scratch.clear();
        self.pending_init = None;
        let header = match body {
            AppendBody::Records { partition, records } => {
                if records.is_empty() {
                    return Err(AppendError::EmptyBatch);
                }
                if *partition == PartitionId::NONE {
                    return Err(AppendError::TooManyPartitions {
                        partitions_max: self.cfg.partitions_max,
                    });
                }
                if !self.parts_next.contains_key(partition)
                    && self.parts_next.len() >= self.cfg.partitions_max as usize
                {
                    return Err(AppendError::TooManyPartitions {
                        partitions_max: self.cfg.partitions_max,
                    });
                }
                // Offsets never wrap: 2^64 records cannot be written, so only a forged checkpoint
                // gets here; refuse rather than acknowledge offsets that cannot be stored.
                let next = self
                    .parts_next
                    .get(partition)
                    .copied()
                    .unwrap_or(Offset::ZERO);
                if next.0.checked_add(records.len() as u64).is_none() {
                    return Err(AppendError::OffsetsExhausted {
                        partition: *partition,
                    });
                }
                let mut bytes = BATCH_HEADER_BYTES as u64;
                for (index, r) in records.iter().enumerate() {
                    r.check_limits()
                        .map_err(|reason| AppendError::BadRecord { index, reason })?;
                    bytes += r.encoded_bytes();
                }
                let body_bytes = u32::try_from(bytes - BATCH_HEADER_BYTES as u64);
                let body_bytes = match body_bytes {
                    Ok(b)
                        if bytes <= self.cfg.batch_bytes_max
                            && records.len() <= u32::MAX as usize =>
                    {
                        b
                    }
                    _ => {
                        return Err(AppendError::BatchTooLarge {
                            batch_bytes: bytes,
                            batch_bytes_max: self.cfg.batch_bytes_max,
                        });
                    }
                };
                BatchHeader {
                    body_bytes,
                    kind: BatchKind::Records,
                    flags: 0,
                    partition: *partition,
                    record_count: records.len() as u32,
                    base_offset: Offset::ZERO,
                    group: GroupSeq(0),
                    body_crc: 0,
                }
            }
            AppendBody::Meta(ops) => self.encode_meta(ops)?,
            AppendBody::InitProducer { name } => {
                let init =
                    producer::init(&self.meta, name, self.cfg.producers_max, self.next_group)
                        .map_err(AppendError::Producer)?;
                let header = self.encode_meta(&init.ops)?;
                self.pending_init = Some(init);
                header
            }
            AppendBody::Atomic {
                producer,
                epoch,
                parts,
                meta,
            } => return self.encode_atomic(*producer, *epoch, parts, meta),
        };
        Ok(Encoded::Batch(header))
    }

    /// Checks metadata operations (key lengths, `meta_bytes_max`) and encodes them into
    /// `scratch` as a `Meta` body.
    fn encode_meta(&mut self, ops: &[MetaOp]) -> Result<BatchHeader, AppendError> {
        check_keys(ops)?;
        if self.meta.bytes_after(ops) > self.cfg.meta_bytes_max {
            return Err(AppendError::MetaFull {
                meta_bytes_max: self.cfg.meta_bytes_max,
            });
        }
        encode_meta_body(ops, &mut self.scratch);
        let bytes = BATCH_HEADER_BYTES as u64 + self.scratch.len() as u64;
        if bytes > self.cfg.batch_bytes_max || ops.len() > u32::MAX as usize {
            return Err(AppendError::BatchTooLarge {
                batch_bytes: bytes,
                batch_bytes_max: self.cfg.batch_bytes_max,
            });
        }
        Ok(BatchHeader {
            body_bytes: self.scratch.len() as u32,
            kind: BatchKind::Meta,
            flags: 0,
            partition: PartitionId::NONE,
            record_count: ops.len() as u32,
            base_offset: Offset::ZERO,
            group: GroupSeq(0),
            body_crc: 0,
        })
    }

    /// Checks an atomic write against the producer state and the limits. A retry of a write
    /// stored already is answered from the state. Nothing changes here; `place` writes.
    fn encode_atomic(
        &mut self,
        pid: ProducerId,
        epoch: ProducerEpoch,
        parts: &[AtomicPartBody],
        ops: &[MetaOp],
    ) -> Result<Encoded, AppendError> {
        if parts.is_empty() && ops.is_empty() {
            return Err(AppendError::EmptyBatch);
        }
        if parts.len() > usize::from(u16::MAX) {
            return Err(AppendError::TooManyParts { parts: parts.len() });
        }
        producer::check_producer(&self.meta, pid, epoch).map_err(AppendError::Producer)?;
        let mut new_partitions = 0usize;
        let mut records = 0u64;
        let mut dups = Vec::new();
        let mut first_append = None;
        for (i, part) in parts.iter().enumerate() {
            if part.records.is_empty() {
                return Err(AppendError::EmptyBatch);
            }
            if part.partition == PartitionId::NONE {
                return Err(AppendError::TooManyPartitions {
                    partitions_max: self.cfg.partitions_max,
                });
            }
            if parts[..i].iter().any(|p| p.partition == part.partition) {
                return Err(AppendError::RepeatedPartition {
                    partition: part.partition,
                });
            }
            let next = match self.parts_next.get(&part.partition) {
                Some(n) => *n,
                None => {
                    new_partitions += 1;
                    Offset::ZERO
                }
            };
            let count = part.records.len() as u64;
            if count > u64::from(u32::MAX) || next.0.checked_add(count).is_none() {
                return Err(AppendError::OffsetsExhausted {
                    partition: part.partition,
                });
            }
            records += count;
            let check = producer::check(
                &self.meta,
                pid,
                epoch,
                part.partition,
                part.first_seq,
                count as u32,
            )
            .map_err(AppendError::Producer)?;
            match check {
                Check::Append => first_append = first_append.or(Some(part.partition)),
                Check::Duplicate(b) => dups.push(PartAppended {
                    partition: part.partition,
                    base_offset: b.base_offset,
                    record_count: b.count,
                }),
            }
        }
        if !dups.is_empty() {
            // Written together, retried together: a write is a duplicate in every part or in
            // none.
            if let Some(partition) = first_append {
                return Err(AppendError::Producer(ProducerError::PartialRetry {
                    partition,
                }));
            }
            let mut a =
                Appended::single(dups[0].partition, dups[0].base_offset, dups[0].record_count);
            a.parts = dups;
            a.duplicate = true;
            return Ok(Encoded::Duplicate(a));
        }
        if self.parts_next.len() + new_partitions > self.cfg.partitions_max as usize {
            return Err(AppendError::TooManyPartitions {
                partitions_max: self.cfg.partitions_max,
            });
        }
        check_keys(ops)?;
        let mut all_ops = ops.to_vec();
        for part in parts {
            // The stamp and offsets do not change the size: `place` computes the real ones.
            all_ops.push(producer::appended_op(
                &self.meta,
                pid,
                epoch,
                part.partition,
                part.first_seq,
                part.records.len() as u32,
                Offset::ZERO,
                GroupSeq(0),
            ));
        }
        if self.meta.bytes_after(&all_ops) > self.cfg.meta_bytes_max {
            return Err(AppendError::MetaFull {
                meta_bytes_max: self.cfg.meta_bytes_max,
            });
        }
        let mut bytes = BATCH_HEADER_BYTES as u64;
        for part in parts {
            for (index, r) in part.records.iter().enumerate() {
                r.check_limits()
                    .map_err(|reason| AppendError::BadRecord { index, reason })?;
            }
        }
        encode_meta_body(ops, &mut self.scratch);
        let ins: Vec<AtomicPartIn<'_>> = parts
            .iter()
            .map(|p| AtomicPartIn {
                partition: p.partition,
                base_offset: Offset::ZERO,
                first_seq: p.first_seq,
                records: &p.records,
            })
            .collect();
        bytes += atomic_body_bytes(&ins, self.scratch.len() as u64);
        self.scratch.clear();
        let body_bytes = match u32::try_from(bytes - BATCH_HEADER_BYTES as u64) {
            Ok(b) if bytes <= self.cfg.batch_bytes_max && records <= u64::from(u32::MAX) => b,
            _ => {
                return Err(AppendError::BatchTooLarge {
                    batch_bytes: bytes,
                    batch_bytes_max: self.cfg.batch_bytes_max,
                });
            }
        };
        let single = parts.len() == 1;
        Ok(Encoded::Batch(BatchHeader {
            body_bytes,
            kind: BatchKind::Atomic,
            flags: 0,
            partition: if single {
                parts[0].partition
            } else {
                PartitionId::NONE
            },
            record_count: records as u32,
            base_offset: Offset::ZERO,
            group: GroupSeq(0),
            body_crc: 0,
        }))
    }

    /// Assigns offsets, applies metadata, and puts the batch into the group buffer: its body
    /// encoded (`Records`, `Atomic`) or copied from `scratch` (`Meta`), its header left blank
    /// until flush.
    fn place(&mut self, mut header: BatchHeader, body: &AppendBody<'_>) -> Appended {
        if let AppendBody::Records { partition, records } = body
            && let Some(a) = self.merge_records(*partition, records, &header)
        {
            return a;
        }
        let at = self.buf.len();
        self.buf.resize(at + BATCH_HEADER_BYTES, 0);
        let appended = match body {
            AppendBody::Records { partition, records } => {
                for r in records.iter() {
                    r.encode_into(&mut self.buf);
                }
                let next = self.parts_next.entry(*partition).or_insert(Offset::ZERO);
                header.base_offset = *next;
                *next = next.plus(u64::from(header.record_count));
                Appended::single(*partition, header.base_offset, header.record_count)
            }
            AppendBody::Meta(ops) => {
                self.buf.extend_from_slice(&self.scratch);
                self.meta.apply(ops);
                Appended::single(PartitionId::NONE, Offset::ZERO, 0)
            }
            AppendBody::InitProducer { .. } => {
                self.buf.extend_from_slice(&self.scratch);
                let mut a = Appended::single(PartitionId::NONE, Offset::ZERO, 0);
                if let Some(init) = self.pending_init.take() {
                    self.meta.apply(&init.ops);
                    a.producer = Some((init.producer, init.epoch));
                }
                a
            }
            AppendBody::Atomic {
                producer,
                epoch,
                parts,
                meta,
            } => self.place_atomic(at, &mut header, *producer, *epoch, parts, meta),
        };
        // `encode` computed the size from the same records: the header must describe the body.
        debug_assert_eq!(
            (self.buf.len() - at - BATCH_HEADER_BYTES) as u64,
            u64::from(header.body_bytes)
        );
        let salt = self.head_salt();
        header.body_crc = salted_crc_from(salt, &[&self.buf[at + BATCH_HEADER_BYTES..]]);
        self.encode_draft(at, header, salt);
        appended
    }

    /// Appends a `Records` append to the batch placed just before it in this group when that
    /// batch holds records of the same partition and stays within `batch_bytes_max`: one
    /// header and one CRC for a run of small appends instead of one each (a 100 B record then
    /// costs its 22 bytes of framing, not 62). The append keeps its own offsets (the next ones
    /// of the partition, as always) and is still whole or absent after a cut: it never spans
    /// two batches. Returns `None` (nothing changed) when it cannot merge.
    fn merge_records(
        &mut self,
        partition: PartitionId,
        records: &[Record],
        header: &BatchHeader,
    ) -> Option<Appended> {
        let salt = self.head_salt();
        let group = self.next_group;
        let d = self.drafts.last_mut()?;
        let merged_body = u64::from(d.header.body_bytes) + u64::from(header.body_bytes);
        let merged_count = d.header.record_count.checked_add(header.record_count)?;
        if d.header.kind != BatchKind::Records
            || d.header.partition != partition
            || BATCH_HEADER_BYTES as u64 + merged_body > self.cfg.batch_bytes_max
        {
            return None;
        }
        // The draft is the last batch of the buffer: its body ends where the buffer does.
        debug_assert_eq!(
            d.at + BATCH_HEADER_BYTES + d.header.body_bytes as usize,
            self.buf.len()
        );
        let start = self.buf.len();
        for r in records {
            r.encode_into(&mut self.buf);
        }
        debug_assert_eq!(
            (self.buf.len() - start) as u64,
            u64::from(header.body_bytes)
        );
        // The salted CRC continues over the new bytes (salted_crc_from folds part by part).
        d.header.body_crc = salted_crc_from(d.header.body_crc, &[&self.buf[start..]]);
        d.header.body_bytes = merged_body as u32;
        d.header.record_count = merged_count;
        d.header.group = group;
        d.header.flags = 0;
        let h = d.header.encode_salted(salt);
        self.buf[d.at..d.at + BATCH_HEADER_BYTES].copy_from_slice(&h);
        let next = self.parts_next.entry(partition).or_insert(Offset::ZERO);
        let base = *next;
        *next = next.plus(u64::from(header.record_count));
        Some(Appended::single(partition, base, header.record_count))
    }

    /// `place` for an atomic write: offsets for every part, the body, then the metadata: the
    /// batch's operations, then the producer state for each part in order (recovery applies
    /// them in the same order, `recovery::apply`).
    fn place_atomic(
        &mut self,
        at: usize,
        header: &mut BatchHeader,
        pid: ProducerId,
        epoch: ProducerEpoch,
        parts: &[AtomicPartBody],
        ops: &[MetaOp],
    ) -> Appended {
        let mut ins = Vec::with_capacity(parts.len());
        let mut out = Vec::with_capacity(parts.len());
        for p in parts {
            let count = p.records.len() as u32;
            let next = self.parts_next.entry(p.partition).or_insert(Offset::ZERO);
            let base = *next;
            *next = next.plus(u64::from(count));
            ins.push(AtomicPartIn {
                partition: p.partition,
                base_offset: base,
                first_seq: p.first_seq,
                records: &p.records,
            });
            out.push(PartAppended {
                partition: p.partition,
                base_offset: base,
                record_count: count,
            });
            self.atomic_parts.push((at, p.partition, base, count));
        }
        encode_atomic_body(pid, epoch, &ins, ops, &mut self.buf);
        let group = self.next_group;
        let mut all_ops = ops.to_vec();
        for (p, o) in parts.iter().zip(&out) {
            all_ops.push(producer::appended_op(
                &self.meta,
                pid,
                epoch,
                p.partition,
                p.first_seq,
                o.record_count,
                o.base_offset,
                group,
            ));
        }
        self.meta.apply(&all_ops);
        if let [only] = out.as_slice() {
            header.base_offset = only.base_offset;
        }
        let mut a = match out.first() {
            Some(f) => Appended::single(f.partition, f.base_offset, f.record_count),
            None => Appended::single(PartitionId::NONE, Offset::ZERO, 0),
        };
        a.parts = out;
        a
    }

    /// The salt of the head segment, computed once per segment.
    fn head_salt(&mut self) -> u32 {
        if self.salt.0 != self.head.seq {
            self.salt = (self.head.seq, salt(self.head.seq));
        }
        self.salt.1
    }

    /// Writes a placed batch's header into the group buffer now, with the group's number and
    /// no `LAST_IN_GROUP` flag (flush re-encodes only the last one), so that the headers'
    /// CRCs are computed while the previous group's sync runs, not between two syncs. The group
    /// number is right: `next_group` only changes when `flush` programs the group.
    fn encode_draft(&mut self, at: usize, mut header: BatchHeader, salt: u32) {
        header.group = self.next_group;
        header.flags = 0;
        let h = header.encode_salted(salt);
        self.buf[at..at + BATCH_HEADER_BYTES].copy_from_slice(&h);
        self.drafts.push(Draft { at, header });
    }

    fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            partitions: self.parts_next.iter().map(|(p, o)| (*p, *o)).collect(),
            meta: self.meta.to_entries(),
        }
    }

    fn checkpoint_bytes(&self) -> u64 {
        // Exact size of the encoded checkpoint batch.
        BATCH_HEADER_BYTES as u64 + 8 + 12 * self.parts_next.len() as u64 + self.meta.bytes()
    }

    /// Puts the checkpoint batch at the front of the (empty) group buffer.
    fn push_checkpoint(&mut self) {
        debug_assert!(self.buf.is_empty());
        // Encoded straight into the group buffer (`scratch` may hold the pending append's body).
        let cp = self.checkpoint();
        self.buf.resize(BATCH_HEADER_BYTES, 0);
        encode_checkpoint_body(&cp, &mut self.buf);
        let body = &self.buf[BATCH_HEADER_BYTES..];
        let header = BatchHeader {
            body_bytes: body.len() as u32,
            kind: BatchKind::Checkpoint,
            flags: 0,
            partition: PartitionId::NONE,
            record_count: 0,
            base_offset: Offset::ZERO,
            group: GroupSeq(0),
            body_crc: salted_crc(self.head.seq, &[body]),
        };
        debug_assert_eq!(header.total_bytes(), self.checkpoint_bytes());
        let salt = self.head_salt();
        self.encode_draft(0, header, salt);
        self.head.has_checkpoint = true;
    }

    /// Programs the group buffer (padded with erased bytes to the program unit) at the head,
    /// here, on the caller's thread: [`Ring::seal`], then the `program`.
    fn flush(&mut self) -> Result<(), AppendError> {
        let Some(at) = self.seal()? else {
            return Ok(());
        };
        let result = self.flash.program(at, &self.buf);
        let len = self.buf.len();
        self.buf.clear();
        match result {
            Ok(()) => {
                count_program(&self.shared, len);
                Ok(())
            }
            Err(e) => Err(self.poison(e)),
        }
    }

    /// Closes the group being built for a program made elsewhere (the pipelined `Log`'s sync
    /// thread): everything [`Ring::flush`] does but the `program` itself. Returns the group:
    /// its medium offset and bytes (padded to the program unit; none if nothing was placed),
    /// and what it adds to the readers' index once synced. The group buffer is
    /// swapped for `spare` (cleared), so the caller can go on preparing the next group while
    /// this one is programmed.
    ///
    /// The caller must program the bytes at the offset before anything else is programmed
    /// after them, and sync them (with everything programmed before) before any later program
    /// (invariant 1); the returned `unsynced` also holds what earlier programs since the last
    /// sync wrote (a group flushed before a roll), so publishing it after that sync is right.
    pub(crate) fn seal_group(&mut self, mut spare: Vec<u8>) -> Result<Sealed, AppendError> {
        self.check_poisoned()?;
        let program = match self.seal()? {
            Some(at) => {
                spare.clear();
                Some((at, std::mem::replace(&mut self.buf, spare)))
            }
            None => None,
        };
        Ok(Sealed {
            program,
            unsynced: self.take_unsynced(),
        })
    }

    /// The bookkeeping of a program, without it: the last header gets `LAST_IN_GROUP`, the
    /// buffer is padded with erased bytes to the program unit, the batches are recorded for
    /// publishing after the covering sync, and the head moves past the group. Returns the
    /// medium offset at which `self.buf` must be programmed, or `None` if it is empty. The
    /// caller programs (and then clears) `self.buf`.
    fn seal(&mut self) -> Result<Option<u64>, AppendError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let seq = self.head.seq;
        let group = self.next_group;
        let salt = self.head_salt();
        // Every header is encoded already (`encode_draft`); the last one gets its flag.
        if let Some(d) = self.drafts.last_mut() {
            debug_assert_eq!(d.header.group, group);
            d.header.flags = FLAG_LAST_IN_GROUP;
            let h = d.header.encode_salted(salt);
            self.buf[d.at..d.at + BATCH_HEADER_BYTES].copy_from_slice(&h);
        }
        let len = align_up(self.buf.len() as u64, self.cfg.program_unit_bytes) as usize;
        if self.head.pos + len as u64 > self.cfg.segment_bytes {
            // Never program past the segment (into the next slot's live data): the checks in
            // `write_group` rule it out; this is the backstop.
            let e = FlashError::OutOfBounds {
                offset: self.head.pos,
                len: len as u64,
                capacity_bytes: self.cfg.segment_bytes,
            };
            self.buf.clear();
            self.drafts.clear();
            self.atomic_parts.clear();
            return Err(self.poison(e));
        }
        self.buf.resize(len, ERASED_BYTE);
        let at = self.slot_base(self.head.slot) + self.head.pos;
        // In batch order, as recovery indexes them: a partition's batches must reach the index
        // in offset order, also when `Records` and `Atomic` batches of one partition share the
        // group. Each part of an atomic batch is indexed at the batch (readers pick their part
        // out).
        let mut parts = self.atomic_parts.iter().peekable();
        for d in &self.drafts {
            match d.header.kind {
                BatchKind::Records => self.unpublished.push(Unpublished {
                    seq,
                    partition: d.header.partition,
                    base: d.header.base_offset,
                    count: d.header.record_count,
                    pos: self.head.pos + d.at as u64,
                    bytes: d.header.total_bytes(),
                }),
                BatchKind::Atomic => {
                    while let Some(&(_, partition, base, count)) =
                        parts.next_if(|(at, ..)| *at == d.at)
                    {
                        self.unpublished.push(Unpublished {
                            seq,
                            partition,
                            base,
                            count,
                            pos: self.head.pos + d.at as u64,
                            bytes: d.header.total_bytes(),
                        });
                    }
                }
                _ => {}
            }
        }
        debug_assert!(parts.next().is_none(), "atomic parts without their batch");
        self.head.pos += len as u64;
        self.ends.push((seq, self.head.pos));
        self.next_group = GroupSeq(group.0.saturating_add(1));
        self.drafts.clear();
        self.atomic_parts.clear();
        Ok(Some(at))
    }

    /// Starts the next segment in the next slot, reclaiming the segment there if the ring is
    /// full (under the full policy).
    fn roll(&mut self) -> Result<(), RollError> {
        let seq = self.head.seq.next();
        let slot = seq.0 % self.n;
        let prev_end = self.head.pos;
        let occupied = {
            let shared = self.read_shared();
            shared.segments.front().filter(|s| s.slot == slot).cloned()
        };
        let reclaims = occupied.is_some();
        // The slot holds exactly segment `seq - n`, so everything in it is salted with an
        // older sequence of this ring. (Not so only when the sequence cannot grow: a forged
        // header at `u64::MAX` makes `next` saturate, and the slot is the head's own.)
        let reclaims_older = occupied
            .as_ref()
            .is_some_and(|o| o.seq.0.checked_add(self.n) == Some(seq.0));
        if let Some(oldest) = occupied {
            let lost = self.unreleased(&oldest);
            if !lost.is_empty() && self.cfg.full_policy == FullPolicy::Reject {
                return Err(RollError::Full);
            }
            let mut shared = self.write_shared();
            shared.segments.pop_front();
            shared.stats.segments_reclaimed += 1;
            if !lost.is_empty() {
                shared.stats.segments_dropped += 1;
                for ev in &lost {
                    let n = ev.to.0 - ev.from.0;
                    shared.stats.records_dropped += n;
                    shared
                        .partitions
                        .entry(ev.partition)
                        .or_default()
                        .dropped_records += n;
                    log::warn!(
                        "storage: full_policy drop-oldest reclaimed segment {}: partition {} \
                         offsets {}..{} ({} records) were never released",
                        ev.seq,
                        ev.partition,
                        ev.from,
                        ev.to,
                        n
                    );
                }
            }
            drop(shared);
            for ev in lost {
                if self.drop_events.len() == DROP_EVENTS_MAX {
                    self.drop_events.pop_front();
                }
                self.drop_events.push_back(ev);
            }
        }
        // On a medium that overwrites in place (a file, an SD card) a reclaimed slot is not
        // erased: the new header and batches are programmed over the old segment, and
        // everything in the slot is salted with an older sequence of this ring, which never
        // validates under the new one (docs/FORMAT.md 4.6). A free slot (never used, or freed by
        // an interrupted reclaim or damage) may hold anything, even batches salted with this
        // very sequence (an earlier ring on the same area, a destroyed header): on every medium
        // it is used as it is only if it reads erased. On a fresh area that spares writing
        // every segment twice in the first lap. It is read here, when it is needed, not at
        // open: a ring that has not wrapped yet would otherwise be read in full at every start.
        // Nothing writes a free slot before its roll, so reading it now or at open gives the
        // same answer.
        let erased = if reclaims {
            self.flash.overwrites_in_place() && reclaims_older
        } else {
            self.known_erased[slot as usize] || self.slot_reads_erased(slot)
        };
        self.known_erased[slot as usize] = false;
        if !erased {
            self.erase_slot(slot).map_err(RollError::Flash)?;
        } else {
            // Seal the current segment first: its last group must be durable before a newer
            // header exists, or recovery would see a torn sealed segment (invariant 1).
            self.flash.sync().map_err(RollError::Flash)?;
        }
        self.program_header(seq, slot, prev_end)
            .map_err(RollError::Flash)?;
        self.flash.sync().map_err(RollError::Flash)?;
        let pos = first_batch_pos(self.cfg.program_unit_bytes);
        self.write_shared()
            .segments
            .push_back(SegIndex::new(seq, slot, pos));
        self.head = Head {
            seq,
            slot,
            pos,
            appendable: true,
            has_checkpoint: false,
        };
        Ok(())
    }

    /// The records in `seg` that are not released yet, per partition.
    fn unreleased(&self, seg: &SegIndex) -> Vec<DropEvent> {
        let shared = self.read_shared();
        seg.parts
            .iter()
            .filter_map(|(p, sp)| {
                let released = shared
                    .partitions
                    .get(p)
                    .map_or(Offset::ZERO, |s| s.released);
                (sp.next > released).then(|| DropEvent {
                    partition: *p,
                    from: sp.first.max(released),
                    to: sp.next,
                    seq: seg.seq,
                })
            })
            .collect()
    }

    /// Erases a slot: the block holding the header first (synced, so no later cut can leave
    /// the old header in front of erased blocks), then the rest (synced). A cut during the
    /// first erase can leave the old header intact and the rest of its block torn: recovery
    /// takes damage there, in the oldest segment of a full ring, for an interrupted reclaim.
    fn erase_slot(&mut self, slot: u64) -> Result<(), FlashError> {
        let base = self.slot_base(slot);
        let block = self.cfg.erase_block_bytes;
        self.flash.erase(base)?;
        self.flash.sync()?;
        let mut at = block;
        while at < self.cfg.segment_bytes {
            self.flash.erase(base + at)?;
            at += block;
        }
        self.flash.sync()?;
        Ok(())
    }

    /// Whether every byte of `slot` reads erased (stops at the first chunk that does not). A
    /// read that fails counts as "not erased": the slot is then erased, which is always
    /// correct and may well cure what failed the read, rather than failing the roll.
    fn slot_reads_erased(&self, slot: u64) -> bool {
        let at = self.slot_base(slot);
        match reads_erased(
            &*self.flash,
            at,
            self.cfg.segment_bytes,
            self.cfg.read_chunk_bytes,
        ) {
            Ok(erased) => erased,
            Err(e) => {
                log::warn!(
                    "storage: reading free slot {slot} failed ({}); erasing it",
                    error_chain(&e)
                );
                false
            }
        }
    }

    fn program_header(&self, seq: SegmentSeq, slot: u64, prev_end: u64) -> Result<(), FlashError> {
        let header = SegmentHeader {
            seq,
            segment_bytes: self.cfg.segment_bytes,
            program_unit_bytes: self.cfg.program_unit_bytes as u32,
            prev_end,
            ring_id: self.ring_id,
        };
        let mut b = vec![ERASED_BYTE; first_batch_pos(self.cfg.program_unit_bytes) as usize];
        b[..header.encode().len()].copy_from_slice(&header.encode());
        self.flash.program(self.slot_base(slot), &b)
    }
}

/// Publishes to readers what a successful sync made durable: the batches enter the segment
/// index, segment ends and partitions' durable ends move forward. Syncs are published in the
/// order they were made, each after its own sync returned `Ok`.
pub(crate) fn publish(shared: &RwLock<Shared>, unsynced: Unsynced, interval_bytes: u64) {
    let mut shared = shared
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    shared.stats.syncs += 1;
    for u in &unsynced.batches {
        if let Some(seg) = shared.segments.iter_mut().rev().find(|s| s.seq == u.seq) {
            seg.add_batch(u.partition, u.base, u.count, u.pos, u.bytes, interval_bytes);
        }
    }
    for (seq, end) in unsynced.ends {
        if let Some(seg) = shared.segments.iter_mut().rev().find(|s| s.seq == seq) {
            seg.end = seg.end.max(end);
        }
    }
    for u in &unsynced.batches {
        let next = u.base.plus(u64::from(u.count));
        let p = shared.partitions.entry(u.partition).or_default();
        p.durable_next = p.durable_next.max(next);
    }
}

/// Counts a group programmed (`len` bytes, padding included) in the ring's stats.
pub(crate) fn count_program(shared: &RwLock<Shared>, len: usize) {
    let mut shared = shared
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    shared.stats.groups_written += 1;
    shared.stats.bytes_programmed += len as u64;
}

/// Poisons the ring after a failed program, erase or sync (invariant 5) and returns the cause.
pub(crate) fn poison(shared: &RwLock<Shared>, e: &FlashError) -> String {
    let cause = error_chain(e);
    log::error!("storage: {cause}; refusing appends until restart");
    shared
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .poisoned = Some(cause.clone());
    cause
}

/// Moves `partition`'s release watermark forward to `upto`. A partition that holds no durable
/// record yet has nothing to release (and is not added: the partition table stays bounded by
/// `partitions_max`).
pub(crate) fn release(shared: &RwLock<Shared>, partition: PartitionId, upto: Offset) {
    let mut s = shared
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(p) = s.partitions.get_mut(&partition) {
        let p: &mut PartState = p;
        p.released = p.released.max(upto);
    }
}

/// An id for a new ring: not secret, only distinct between formats of the same medium.
fn fresh_ring_id() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

/// `e` and all its sources, joined by ": ".
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
