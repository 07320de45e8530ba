//! `0x11 PRODUCE_IDEMPOTENT`: a batch to one partition with the producer's id, epoch and the
//! sequence of its first record, durable before the answer. The storage checks the sequence
//! against the producer state in the order requests are queued, and a connection queues its
//! idempotent writes in frame order (`broker/lane.rs`), so a client may pipeline them.

use super::produce::{check_batch_bytes, check_records, copy_records};
use super::{Ctx, Failure, append_failure, decode, partition, topic};
use crate::broker::lane::Turn;
use crate::protocol::messages::{ProduceIdempotentRequest, ProduceIdempotentResponse};
use crate::storage::flash::Flash;
use crate::storage::format::{ATOMIC_HEAD_BYTES, ATOMIC_PART_HEAD_BYTES, BATCH_HEADER_BYTES};
use crate::storage::{
    AppendError, Appended, AtomicPartBody, MetaOp, ProducerEpoch, ProducerId, Sequence,
};

pub(crate) async fn apply<F: Flash>(
    ctx: &Ctx<'_, F>,
    body: &[u8],
    mut turn: Option<Turn>,
) -> Result<Vec<u8>, Failure> {
    let req: ProduceIdempotentRequest<'_> = decode(ctx.kind, body)?;
    let (bytes, _) = check_records(ctx.kind, &req.records)?;
    let t = topic(ctx.broker, req.topic)?;
    let pid = partition(&t, req.partition)?;
    check_batch_bytes(
        ctx,
        (BATCH_HEADER_BYTES + ATOMIC_HEAD_BYTES + ATOMIC_PART_HEAD_BYTES + 4) as u64 + bytes,
    )?;
    let part = AtomicPartBody {
        partition: pid,
        first_seq: Sequence(req.first_sequence),
        records: copy_records(ctx.kind, &req.records)?,
    };
    if let Some(t) = &turn {
        t.wait().await;
    }
    let producer = (ProducerId(req.producer_id), ProducerEpoch(req.epoch));
    let a = queue_in_turn(ctx, &mut turn, producer, vec![part], Vec::new())
        .await
        .map_err(|e| append_failure(&e))?;
    ctx.ok(&ProduceIdempotentResponse {
        partition: req.partition,
        base_offset: a.base_offset.0,
        count: a.record_count,
        duplicate: a.duplicate,
    })
}

/// Queues an atomic write (the caller waited for its `turn`), passes the turn on as soon as it
/// is queued, then waits until it is durable. Shared with ATOMIC_WRITE.
pub(crate) async fn queue_in_turn<F: Flash>(
    ctx: &Ctx<'_, F>,
    turn: &mut Option<Turn>,
    (producer, epoch): (ProducerId, ProducerEpoch),
    parts: Vec<AtomicPartBody>,
    ops: Vec<MetaOp>,
) -> Result<Appended, AppendError> {
    let queued = ctx
        .broker
        .log()
        .queue_atomic(producer, epoch, parts, ops)
        .await;
    if let Some(t) = turn {
        t.release();
    }
    queued?.wait().await?.ok_or(AppendError::Closed)
}
