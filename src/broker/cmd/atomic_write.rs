//! `0x30 ATOMIC_WRITE`: exactly-once's one step. An idempotent producer's outputs (any topics
//! and partitions, each with its first sequence) and, optionally, a group's input offsets go
//! into ONE `Atomic` batch under one CRC: after a crash all of it is stored or none of it
//! (docs/SEMANTICS.md). Durable before the answer.
//!
//! Order: the body decodes whole; outputs are checked (topics, partitions, records, size) and
//! the commit's offsets like COMMIT_OFFSETS; then, on the connection's turn, under the group
//! commit lock, the coordinator authorizes the committer (a fenced generation is refused) and
//! the batch is queued; the storage then checks the producer (fenced epoch, sequence gap, or
//! a retry answered with the original offsets). The commit lock is held until the batch is
//! durable: FETCH_OFFSETS takes it too, so a member that takes over the partitions reads the
//! offsets only after the write landed or failed — never the offsets from before a write that
//! then lands (which would process its inputs twice).

use super::commit_offsets::commit_ops;
use super::group_common::{all, committer, group_failure, group_id};
use super::produce::{check_batch_bytes, check_records, copy_records};
use super::produce_idempotent::queue_in_turn;
use super::{Ctx, Failure, append_failure, decode, partition, topic};
use crate::broker::lane::Turn;
use crate::groups::MemberId;
use crate::protocol::messages::{AtomicOutputResult, AtomicWriteRequest, AtomicWriteResponse};
use crate::protocol::{ErrorCode, Seq};
use crate::storage::flash::Flash;
use crate::storage::format::{ATOMIC_HEAD_BYTES, ATOMIC_PART_HEAD_BYTES, BATCH_HEADER_BYTES};
use crate::storage::{AppendError, AtomicPartBody, ProducerEpoch, ProducerId, Sequence};

/// Most outputs in one write (the batch format's part count is a `u16`; this keeps the
/// per-request work small on a gateway).
pub(crate) const OUTPUTS_MAX: usize = 1024;

pub(crate) async fn apply<F: Flash>(
    ctx: &Ctx<'_, F>,
    body: &[u8],
    mut turn: Option<Turn>,
) -> Result<Vec<u8>, Failure> {
    let req: AtomicWriteRequest<'_> = decode(ctx.kind, body)?;
    let outputs = all(ctx.kind, "outputs", req.outputs)?;
    if outputs.len() > OUTPUTS_MAX {
        return Err(Failure::new(
            ErrorCode::InvalidAtomicWrite,
            format_args!("{} outputs; at most {OUTPUTS_MAX}", outputs.len()),
        ));
    }
    let mut batch_bytes = (BATCH_HEADER_BYTES + ATOMIC_HEAD_BYTES + 4) as u64;
    let mut parts = Vec::with_capacity(outputs.len());
    for o in &outputs {
        let (bytes, _) = check_records(ctx.kind, &o.records)?;
        let t = topic(ctx.broker, o.topic)?;
        let pid = partition(&t, o.partition)?;
        if parts.iter().any(|p: &AtomicPartBody| p.partition == pid) {
            return Err(Failure::new(
                ErrorCode::InvalidAtomicWrite,
                format_args!(
                    "{}/{} appears twice: one output per partition",
                    o.topic, o.partition
                ),
            ));
        }
        batch_bytes = batch_bytes.saturating_add(ATOMIC_PART_HEAD_BYTES as u64 + bytes);
        check_batch_bytes(ctx, batch_bytes)?;
        parts.push(AtomicPartBody {
            partition: pid,
            first_seq: Sequence(o.first_sequence),
            records: Vec::new(),
        });
    }
    // Checked before anything is copied: the copies are bounded by batch_bytes_max.
    for (p, o) in parts.iter_mut().zip(&outputs) {
        p.records = copy_records(ctx.kind, &o.records)?;
    }
    let commit = match &req.commit {
        None => None,
        Some(c) => {
            let group = group_id(c.group)?;
            let list = all(ctx.kind, "offsets", c.offsets)?;
            let (ops, entries) = commit_ops(ctx, &group, &list)?;
            Some((
                group,
                c.member.map(MemberId::from),
                c.generation,
                ops,
                entries,
            ))
        }
    };
    if parts.is_empty() && commit.as_ref().is_none_or(|c| c.3.is_empty()) {
        return Err(Failure::new(
            ErrorCode::EmptyBatch,
            "an atomic write needs an output or an offset to commit",
        ));
    }

    if let Some(t) = &turn {
        t.wait().await;
    }
    let groups = ctx.broker.groups();
    let _serial = match &commit {
        Some(_) => Some(groups.commit_lock().await),
        None => None,
    };
    let (ops, entries) = match commit {
        None => (Vec::new(), Vec::new()),
        Some((group, member, generation, ops, entries)) => {
            let now = groups.now_ms();
            groups
                .call(|c| c.check_commit(&group, committer(member.as_ref(), generation), now))
                .map_err(|e| group_failure(&e))?;
            (ops, entries)
        }
    };
    let producer = (ProducerId(req.producer_id), ProducerEpoch(req.epoch));
    let a = queue_in_turn(ctx, &mut turn, producer, parts, ops)
        .await
        .map_err(|e| atomic_failure(&e))?;
    if !a.duplicate {
        // A retry's offsets were mirrored by the original (or loaded at start); a later
        // commit may have moved them on since.
        groups.committed_now(entries);
    }
    let results: Vec<AtomicOutputResult<'_>> = outputs
        .iter()
        .zip(&a.parts)
        .map(|(o, p)| AtomicOutputResult {
            topic: o.topic,
            partition: o.partition,
            base_offset: p.base_offset.0,
            count: p.record_count,
        })
        .collect();
    ctx.ok(&AtomicWriteResponse {
        outputs: Seq::Slice(&results),
        duplicate: a.duplicate,
    })
}

fn atomic_failure(e: &AppendError) -> Failure {
    match e {
        AppendError::MetaFull { meta_bytes_max } => Failure::new(
            ErrorCode::ProducerStateFull,
            format_args!(
                "the producer state and committed offsets would exceed meta_bytes_max \
                 ({meta_bytes_max}): nothing written"
            ),
        ),
        e => append_failure(e),
    }
}
