//! Idempotent producer state: pure functions over the metadata state (namespace `PRODUCERS`,
//! `docs/FORMAT.md` section 2.11).
//!
//! Where it lives and why it is exact: the state is metadata, so the checkpoint at the start
//! of every segment carries it forward (reclaiming the segment a producer last wrote in loses
//! nothing). Initialisations are ordinary `Meta` batches (their operations are written out).
//! The per-partition sequence state is *derived*: an `Atomic` batch carries the producer id,
//! epoch and each part's first sequence, and both the writer (when it places the batch) and
//! recovery (when it replays it) apply [`appended_op`] to the same prior state with the same
//! group number, so they reach the same state byte for byte. Nothing is a cache or a TTL.
//!
//! Keys (big-endian ids, so one producer's entries are adjacent and ordered):
//! - `'N' name`            → `pid u64`: the producer name's current id;
//! - `'P' pid`             → `epoch u16, stamp u64, name`: a live producer;
//! - `'S' pid partition`   → `epoch u16, stamp u64, n u8, n × (first_seq u32, count u32,
//!   base_offset u64)`: its last `n ≤ BATCHES_KEPT` batches in that partition, oldest first;
//! - `'C'`                 → `next_pid u64`: ids are never handed out twice.
//!
//! Values are little-endian like the rest of the format. `stamp` is the group number of the
//! last initialisation or write: the producer with the smallest stamp is the oldest idle one,
//! expired when `producers_max` producers exist and a new name initialises.

use super::format::MetaOp;
use super::meta::{MetaState, namespace};
use super::types::{GroupSeq, Offset, PartitionId, ProducerEpoch, ProducerId, Sequence};
use core::fmt;

/// Batches remembered per producer and partition: a retry of any of the last five is answered
/// with its original offsets (Kafka keeps five too, matching its `max.in.flight`).
pub const BATCHES_KEPT: usize = 5;

/// Longest producer name, in bytes (Kafka's limit for a transactional id is the same as for a
/// topic name).
pub const NAME_BYTES_MAX: usize = 249;

const NS: u8 = namespace::PRODUCERS;
const TAG_NAME: u8 = b'N';
const TAG_PRODUCER: u8 = b'P';
const TAG_SEQ: u8 = b'S';
const NEXT_ID_KEY: &[u8] = b"C";

/// One batch a producer wrote to a partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchMeta {
    pub first_seq: Sequence,
    pub count: u32,
    pub base_offset: Offset,
}

/// A live producer (`'P'` entry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: ProducerEpoch,
    pub stamp: GroupSeq,
    pub name: Vec<u8>,
}

/// A producer's state in one partition (`'S'` entry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeqEntry {
    pub epoch: ProducerEpoch,
    pub stamp: GroupSeq,
    /// Oldest first; at most [`BATCHES_KEPT`].
    pub batches: Vec<BatchMeta>,
}

impl SeqEntry {
    /// The sequence the next batch must start at.
    pub fn next_seq(&self) -> u64 {
        self.batches
            .last()
            .map_or(0, |b| u64::from(b.first_seq.0) + u64::from(b.count))
    }
}

/// What a produce with sequence numbers should do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// The batch is new and next in line: write it.
    Append,
    /// The batch was written already (a retry): answer with its original offsets, write nothing.
    Duplicate(BatchMeta),
}

/// Why a produce with sequence numbers is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProducerError {
    /// No such producer id (never issued, or expired to make room for another).
    UnknownProducerId { producer: ProducerId },
    /// The epoch is not the producer's current one: a newer instance initialised the same
    /// name (or the epoch was never issued).
    Fenced {
        producer: ProducerId,
        epoch: ProducerEpoch,
        current: ProducerEpoch,
    },
    /// The batch does not start where the last one ended.
    OutOfOrder {
        partition: PartitionId,
        expected: u64,
        got: Sequence,
    },
    /// The batch lies before the next sequence but is not one of the batches remembered:
    /// it was stored long ago (or never, with these bounds); its offsets are no longer known.
    DuplicateTooOld {
        partition: PartitionId,
        got: Sequence,
        next: u64,
    },
    /// Sequences would pass 2^32 - 1 in this partition: initialise again (a new epoch starts
    /// at 0).
    SequenceExhausted { partition: PartitionId },
    /// A producer name must be 1 to 249 bytes.
    InvalidName { name_bytes: usize },
    /// Producer ids would pass 2^64 - 1 (only a forged state can cause it).
    IdsExhausted,
    /// Some parts of an atomic write were stored before and others were not: the parts of a
    /// write are stored together, so this is not a retry of it.
    PartialRetry { partition: PartitionId },
}

impl fmt::Display for ProducerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProducerError::UnknownProducerId { producer } => write!(
                f,
                "producer id {producer} is unknown (never issued, or expired to make room: \
                 initialise again)"
            ),
            ProducerError::Fenced {
                producer,
                epoch,
                current,
            } => write!(
                f,
                "producer {producer} epoch {epoch} is fenced: the current epoch is {current} \
                 (another instance initialised the same producer name)"
            ),
            ProducerError::OutOfOrder {
                partition,
                expected,
                got,
            } => write!(
                f,
                "partition {partition}: batch starts at sequence {got} but {expected} was \
                 expected (a batch before it is missing)"
            ),
            ProducerError::DuplicateTooOld {
                partition,
                got,
                next,
            } => write!(
                f,
                "partition {partition}: sequence {got} was stored already (next is {next}) but \
                 is older than the last {BATCHES_KEPT} batches, so its offsets are no longer \
                 known"
            ),
            ProducerError::SequenceExhausted { partition } => write!(
                f,
                "partition {partition}: sequence numbers would pass 4294967295; initialise the \
                 producer again to start a new epoch"
            ),
            ProducerError::InvalidName { name_bytes } => write!(
                f,
                "producer name of {name_bytes} bytes: it must be 1 to {NAME_BYTES_MAX} bytes"
            ),
            ProducerError::IdsExhausted => write!(f, "producer ids are exhausted"),
            ProducerError::PartialRetry { partition } => write!(
                f,
                "partition {partition}'s part is new but other parts of this atomic write were \
                 stored already: an atomic write is retried whole, with the same sequences"
            ),
        }
    }
}

impl std::error::Error for ProducerError {}

// ---------------------------------------------------------------------------------------------
// Keys and values
// ---------------------------------------------------------------------------------------------

fn name_key(name: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + name.len());
    k.push(TAG_NAME);
    k.extend_from_slice(name);
    k
}

fn producer_key(pid: ProducerId) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(TAG_PRODUCER);
    k.extend_from_slice(&pid.0.to_be_bytes());
    k
}

fn seq_key(pid: ProducerId, partition: PartitionId) -> Vec<u8> {
    let mut k = Vec::with_capacity(13);
    k.push(TAG_SEQ);
    k.extend_from_slice(&pid.0.to_be_bytes());
    k.extend_from_slice(&partition.0.to_be_bytes());
    k
}

fn seq_prefix(pid: ProducerId) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(TAG_SEQ);
    k.extend_from_slice(&pid.0.to_be_bytes());
    k
}

fn be_u64(b: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(..8)?.try_into().ok()?))
}

fn le_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

pub fn encode_producer(e: &ProducerEntry) -> Vec<u8> {
    let mut v = Vec::with_capacity(10 + e.name.len());
    v.extend_from_slice(&e.epoch.0.to_le_bytes());
    v.extend_from_slice(&e.stamp.0.to_le_bytes());
    v.extend_from_slice(&e.name);
    v
}

pub fn decode_producer(v: &[u8]) -> Option<ProducerEntry> {
    Some(ProducerEntry {
        epoch: ProducerEpoch(le_u16(v, 0)?),
        stamp: GroupSeq(le_u64(v, 2)?),
        name: v.get(10..)?.to_vec(),
    })
}

pub fn encode_seq(e: &SeqEntry) -> Vec<u8> {
    let mut v = Vec::with_capacity(11 + 16 * e.batches.len());
    v.extend_from_slice(&e.epoch.0.to_le_bytes());
    v.extend_from_slice(&e.stamp.0.to_le_bytes());
    v.push(e.batches.len() as u8);
    for b in &e.batches {
        v.extend_from_slice(&b.first_seq.0.to_le_bytes());
        v.extend_from_slice(&b.count.to_le_bytes());
        v.extend_from_slice(&b.base_offset.0.to_le_bytes());
    }
    v
}

/// `None` for a value that is not exactly a sequence entry (a forged state: treated as no
/// state, so the producer must start again at sequence 0).
pub fn decode_seq(v: &[u8]) -> Option<SeqEntry> {
    let n = usize::from(*v.get(10)?);
    if n > BATCHES_KEPT || v.len() != 11 + 16 * n {
        return None;
    }
    let mut batches = Vec::with_capacity(n);
    for i in 0..n {
        let at = 11 + 16 * i;
        batches.push(BatchMeta {
            first_seq: Sequence(le_u32(v, at)?),
            count: le_u32(v, at + 4)?,
            base_offset: Offset(le_u64(v, at + 8)?),
        });
    }
    Some(SeqEntry {
        epoch: ProducerEpoch(le_u16(v, 0)?),
        stamp: GroupSeq(le_u64(v, 2)?),
        batches,
    })
}

// ---------------------------------------------------------------------------------------------
// Reading the state
// ---------------------------------------------------------------------------------------------

/// The live producer `pid`, if any.
pub fn producer(meta: &MetaState, pid: ProducerId) -> Option<ProducerEntry> {
    meta.get(NS, &producer_key(pid)).and_then(decode_producer)
}

/// The producer id a name currently maps to.
pub fn id_of(meta: &MetaState, name: &[u8]) -> Option<ProducerId> {
    meta.get(NS, &name_key(name))
        .and_then(|v| v.get(..8))
        .and_then(|b| b.try_into().ok())
        .map(|b| ProducerId(u64::from_le_bytes(b)))
}

/// A producer's state in one partition.
pub fn seq_state(meta: &MetaState, pid: ProducerId, partition: PartitionId) -> Option<SeqEntry> {
    meta.get(NS, &seq_key(pid, partition)).and_then(decode_seq)
}

/// One live producer with its per-partition states.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerState {
    pub producer: ProducerId,
    pub entry: ProducerEntry,
    pub partitions: Vec<(PartitionId, SeqEntry)>,
}

/// Every live producer with its per-partition states, ascending by id (for status and tests).
pub fn all(meta: &MetaState) -> Vec<ProducerState> {
    let mut out = Vec::new();
    for (k, v) in meta.iter_prefix(NS, &[TAG_PRODUCER]) {
        let (Some(pid), Some(entry)) = (be_u64(&k[1..]), decode_producer(v)) else {
            continue;
        };
        let pid = ProducerId(pid);
        let parts = meta
            .iter_prefix(NS, &seq_prefix(pid))
            .filter_map(|(k, v)| {
                let p = u32::from_be_bytes(k.get(9..13)?.try_into().ok()?);
                Some((PartitionId(p), decode_seq(v)?))
            })
            .collect();
        out.push(ProducerState {
            producer: pid,
            entry,
            partitions: parts,
        });
    }
    out
}

/// The number of live producers.
pub fn count(meta: &MetaState) -> usize {
    meta.iter_prefix(NS, &[TAG_PRODUCER]).count()
}

// ---------------------------------------------------------------------------------------------
// Decisions and changes
// ---------------------------------------------------------------------------------------------

/// Checks that `pid` is live at exactly `epoch`.
pub fn check_producer(
    meta: &MetaState,
    pid: ProducerId,
    epoch: ProducerEpoch,
) -> Result<(), ProducerError> {
    let entry = producer(meta, pid).ok_or(ProducerError::UnknownProducerId { producer: pid })?;
    if entry.epoch != epoch {
        return Err(ProducerError::Fenced {
            producer: pid,
            epoch,
            current: entry.epoch,
        });
    }
    Ok(())
}

/// Decides what a batch of `count` records starting at `first_seq` from `(pid, epoch)` to
/// `partition` is: next in line, a retry of a remembered batch, or refused. The producer's
/// epoch is checked by [`check_producer`] first.
pub fn check(
    meta: &MetaState,
    pid: ProducerId,
    epoch: ProducerEpoch,
    partition: PartitionId,
    first_seq: Sequence,
    count: u32,
) -> Result<Check, ProducerError> {
    check_producer(meta, pid, epoch)?;
    // A state from an older epoch does not count: a new epoch starts at sequence 0.
    let state = seq_state(meta, pid, partition).filter(|s| s.epoch == epoch);
    let next = state.as_ref().map_or(0, SeqEntry::next_seq);
    let got = u64::from(first_seq.0);
    if got == next {
        if got + u64::from(count) > u64::from(u32::MAX) + 1 {
            return Err(ProducerError::SequenceExhausted { partition });
        }
        return Ok(Check::Append);
    }
    if got > next {
        return Err(ProducerError::OutOfOrder {
            partition,
            expected: next,
            got: first_seq,
        });
    }
    // Before the next sequence: a retry, if it is exactly a remembered batch.
    let remembered = state
        .iter()
        .flat_map(|s| s.batches.iter())
        .find(|b| b.first_seq == first_seq && b.count == count);
    match remembered {
        Some(b) => Ok(Check::Duplicate(*b)),
        None => Err(ProducerError::DuplicateTooOld {
            partition,
            got: first_seq,
            next,
        }),
    }
}

/// The state change for a batch written at `base_offset` in group `stamp`: applied by the
/// writer when it places the batch and by recovery when it replays it (so it must depend on
/// nothing but its arguments and `meta`).
#[allow(clippy::too_many_arguments)]
pub fn appended_op(
    meta: &MetaState,
    pid: ProducerId,
    epoch: ProducerEpoch,
    partition: PartitionId,
    first_seq: Sequence,
    count: u32,
    base_offset: Offset,
    stamp: GroupSeq,
) -> MetaOp {
    let mut batches = seq_state(meta, pid, partition)
        .filter(|s| s.epoch == epoch)
        .map(|s| s.batches)
        .unwrap_or_default();
    batches.push(BatchMeta {
        first_seq,
        count,
        base_offset,
    });
    if batches.len() > BATCHES_KEPT {
        batches.drain(..batches.len() - BATCHES_KEPT);
    }
    MetaOp::Put {
        namespace: NS,
        key: seq_key(pid, partition),
        value: encode_seq(&SeqEntry {
            epoch,
            stamp,
            batches,
        }),
    }
}

/// The operations that delete every entry of `pid` (its name entry too, if it still maps to
/// `pid`).
fn forget_ops(meta: &MetaState, pid: ProducerId, entry: &ProducerEntry, ops: &mut Vec<MetaOp>) {
    if id_of(meta, &entry.name) == Some(pid) {
        ops.push(MetaOp::Delete {
            namespace: NS,
            key: name_key(&entry.name),
        });
    }
    ops.push(MetaOp::Delete {
        namespace: NS,
        key: producer_key(pid),
    });
    forget_sequences(meta, pid, ops);
}

/// The operations that delete `pid`'s sequence state in every partition.
fn forget_sequences(meta: &MetaState, pid: ProducerId, ops: &mut Vec<MetaOp>) {
    for (k, _) in meta.iter_prefix(NS, &seq_prefix(pid)) {
        ops.push(MetaOp::Delete {
            namespace: NS,
            key: k.to_vec(),
        });
    }
}

/// The most idle producer (smallest last stamp, then smallest id), other than `except`.
fn most_idle(meta: &MetaState, except: Option<ProducerId>) -> Option<(ProducerId, ProducerEntry)> {
    all(meta)
        .into_iter()
        .filter(|s| Some(s.producer) != except)
        .map(|s| {
            let last = s
                .partitions
                .iter()
                .map(|(_, q)| q.stamp)
                .max()
                .unwrap_or(s.entry.stamp)
                .max(s.entry.stamp);
            (last, s.producer, s.entry)
        })
        .min_by_key(|(last, pid, _)| (*last, *pid))
        .map(|(_, pid, e)| (pid, e))
}

/// The result of initialising a producer name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Init {
    pub producer: ProducerId,
    pub epoch: ProducerEpoch,
    /// The producer expired to make room, if any.
    pub expired: Option<ProducerId>,
    /// Written as one `Meta` batch.
    pub ops: Vec<MetaOp>,
}

/// Initialises `name`: a known name keeps its id with the next epoch (fencing the older
/// instance) and forgets its sequences; a new name gets the next id, expiring the most idle
/// producer first when `producers_max` are live. When a name's epoch reaches 65,535 it gets a
/// new id at epoch 0 (as Kafka does).
pub fn init(
    meta: &MetaState,
    name: &[u8],
    producers_max: u32,
    stamp: GroupSeq,
) -> Result<Init, ProducerError> {
    if name.is_empty() || name.len() > NAME_BYTES_MAX {
        return Err(ProducerError::InvalidName {
            name_bytes: name.len(),
        });
    }
    let mut ops = Vec::new();
    let current = id_of(meta, name).and_then(|pid| Some((pid, producer(meta, pid)?)));
    let (pid, epoch, expired) = match current {
        Some((pid, e)) if e.epoch.0 < u16::MAX => {
            forget_sequences(meta, pid, &mut ops);
            (pid, ProducerEpoch(e.epoch.0 + 1), None)
        }
        other => {
            // A new id: for a new name, or a name whose epochs ran out.
            let mut expired = None;
            if let Some((old, e)) = &other {
                forget_ops(meta, *old, e, &mut ops);
            } else if count(meta) >= producers_max as usize
                && let Some((victim, e)) = most_idle(meta, None)
            {
                forget_ops(meta, victim, &e, &mut ops);
                expired = Some(victim);
            }
            let next = meta
                .get(NS, NEXT_ID_KEY)
                .and_then(|v| le_u64(v, 0))
                .unwrap_or(0);
            let after = next.checked_add(1).ok_or(ProducerError::IdsExhausted)?;
            ops.push(MetaOp::Put {
                namespace: NS,
                key: NEXT_ID_KEY.to_vec(),
                value: after.to_le_bytes().to_vec(),
            });
            (ProducerId(next), ProducerEpoch(0), expired)
        }
    };
    ops.push(MetaOp::Put {
        namespace: NS,
        key: name_key(name),
        value: pid.0.to_le_bytes().to_vec(),
    });
    ops.push(MetaOp::Put {
        namespace: NS,
        key: producer_key(pid),
        value: encode_producer(&ProducerEntry {
            epoch,
            stamp,
            name: name.to_vec(),
        }),
    });
    Ok(Init {
        producer: pid,
        epoch,
        expired,
        ops,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(meta: &mut MetaState, ops: &[MetaOp]) {
        meta.apply(ops);
    }

    fn write(
        meta: &mut MetaState,
        pid: ProducerId,
        epoch: u16,
        p: u32,
        seq: u32,
        n: u32,
        base: u64,
    ) {
        let op = appended_op(
            meta,
            pid,
            ProducerEpoch(epoch),
            PartitionId(p),
            Sequence(seq),
            n,
            Offset(base),
            GroupSeq(base),
        );
        meta.apply(&[op]);
    }

    #[test]
    fn sequences_retries_gaps_and_fencing() {
        let mut m = MetaState::default();
        let i = init(&m, b"a", 8, GroupSeq(1)).unwrap();
        apply(&mut m, &i.ops);
        assert_eq!((i.producer, i.epoch), (ProducerId(0), ProducerEpoch(0)));
        let (pid, e0, p) = (i.producer, ProducerEpoch(0), PartitionId(3));
        assert_eq!(check(&m, pid, e0, p, Sequence(0), 2), Ok(Check::Append));
        assert_eq!(
            check(&m, pid, e0, p, Sequence(1), 2),
            Err(ProducerError::OutOfOrder {
                partition: p,
                expected: 0,
                got: Sequence(1)
            })
        );
        write(&mut m, pid, 0, 3, 0, 2, 10);
        write(&mut m, pid, 0, 3, 2, 3, 12);
        assert_eq!(
            check(&m, pid, e0, p, Sequence(0), 2),
            Ok(Check::Duplicate(BatchMeta {
                first_seq: Sequence(0),
                count: 2,
                base_offset: Offset(10)
            }))
        );
        assert_eq!(check(&m, pid, e0, p, Sequence(5), 1), Ok(Check::Append));
        assert!(matches!(
            check(&m, pid, e0, p, Sequence(1), 1),
            Err(ProducerError::DuplicateTooOld { .. })
        ));
        // Only the last five batches are remembered.
        for k in 0..6 {
            write(&mut m, pid, 0, 3, 5 + k, 1, 15 + u64::from(k));
        }
        assert_eq!(seq_state(&m, pid, p).unwrap().batches.len(), BATCHES_KEPT);
        assert!(matches!(
            check(&m, pid, e0, p, Sequence(5), 1),
            Err(ProducerError::DuplicateTooOld { .. })
        ));
        // Re-initialising fences epoch 0 and starts the sequences again.
        let j = init(&m, b"a", 8, GroupSeq(2)).unwrap();
        apply(&mut m, &j.ops);
        assert_eq!((j.producer, j.epoch), (pid, ProducerEpoch(1)));
        assert_eq!(
            check(&m, pid, e0, p, Sequence(11), 1),
            Err(ProducerError::Fenced {
                producer: pid,
                epoch: e0,
                current: ProducerEpoch(1)
            })
        );
        assert_eq!(
            check(&m, pid, ProducerEpoch(1), p, Sequence(0), 1),
            Ok(Check::Append)
        );
        assert_eq!(
            check(&m, ProducerId(9), e0, p, Sequence(0), 1),
            Err(ProducerError::UnknownProducerId {
                producer: ProducerId(9)
            })
        );
    }

    #[test]
    fn the_most_idle_producer_expires_when_full() {
        let mut m = MetaState::default();
        for (n, name) in [b"a", b"b", b"c"].iter().enumerate() {
            let i = init(&m, *name, 3, GroupSeq(n as u64)).unwrap();
            apply(&mut m, &i.ops);
        }
        // "a" writes last: "b" is now the most idle.
        write(&mut m, ProducerId(0), 0, 0, 0, 1, 100);
        let d = init(&m, b"d", 3, GroupSeq(200)).unwrap();
        assert_eq!(d.expired, Some(ProducerId(1)));
        apply(&mut m, &d.ops);
        assert_eq!(d.producer, ProducerId(3));
        assert_eq!(count(&m), 3);
        assert_eq!(id_of(&m, b"b"), None);
        assert!(producer(&m, ProducerId(1)).is_none());
        // Ids are never reused.
        let b = init(&m, b"b", 3, GroupSeq(201)).unwrap();
        assert_eq!(b.producer, ProducerId(4));
    }

    #[test]
    fn bad_names_and_forged_values() {
        let m = MetaState::default();
        assert!(matches!(
            init(&m, b"", 1, GroupSeq(0)),
            Err(ProducerError::InvalidName { name_bytes: 0 })
        ));
        assert!(init(&m, &[b'x'; NAME_BYTES_MAX + 1], 1, GroupSeq(0)).is_err());
        assert_eq!(decode_seq(&[0; 10]), None);
        assert_eq!(decode_seq(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 6]), None);
        let e = SeqEntry {
            epoch: ProducerEpoch(2),
            stamp: GroupSeq(7),
            batches: vec![BatchMeta {
                first_seq: Sequence(4),
                count: 2,
                base_offset: Offset(9),
            }],
        };
        assert_eq!(decode_seq(&encode_seq(&e)), Some(e));
    }
}
