//! `0x06 FETCH`: records of one partition from an offset, long-polling up to `wait_ms_max`
//! (capped by `fetch_wait_ms_max`) when none is durable yet.

use std::time::{Duration, Instant};

use super::{Ctx, Failure, decode, partition, topic};
use crate::protocol::messages::{FetchRequest, FetchResponse, Header, RecordOut};
use crate::protocol::{ErrorCode, HEADER_BYTES, Seq};
use crate::storage::flash::Flash;
use crate::storage::ring::error_chain;
use crate::storage::{Offset, ReadBatch, ReadError};

/// Largest size of a FETCH response without its records: header, code, partition, earliest,
/// next, and the records sequence's count and byte length (varints at their longest).
const FIXED_BYTES_MAX: usize = HEADER_BYTES + 1 + 5 + 10 + 10 + 5 + 5;

pub(crate) async fn apply<F: Flash>(ctx: &Ctx<'_, F>, body: &[u8]) -> Result<Vec<u8>, Failure> {
    let req: FetchRequest<'_> = decode(ctx.kind, body)?;
    let b = ctx.broker;
    let t = topic(b, req.topic)?;
    let pid = partition(&t, req.partition)?;
    let cfg = b.config();
    let bytes_max = u64::from(req.bytes_max.min(cfg.fetch_bytes_max));
    let wait_ms = req.wait_ms_max.min(cfg.fetch_wait_ms_max);
    let deadline = Instant::now().checked_add(Duration::from_millis(u64::from(wait_ms)));
    let log = b.log();
    let from = Offset(req.offset);
    let batch = loop {
        // Registered before the read, so a publish between the read and the wait is seen.
        let published = log.listen_published();
        let stop = b.listen_shutdown();
        let batch = log
            .reader()
            .read(pid, from, bytes_max)
            .map_err(|e| read_failure(&e, t.name(), req.partition))?;
        let caught_up = batch.records.is_empty() && from == batch.durable_next;
        let Some(deadline) = deadline.filter(|d| *d > Instant::now()) else {
            break batch;
        };
        if !caught_up || wait_ms == 0 || b.is_shutting_down() {
            break batch;
        }
        smol::future::or(smol::future::or(published, stop), async {
            smol::Timer::at(deadline).await;
        })
        .await;
    };
    encode(ctx, req.partition, &batch)
}

fn read_failure(e: &ReadError, topic: &str, p: u32) -> Failure {
    match e {
        ReadError::OffsetOutOfRange {
            offset,
            earliest,
            next,
            ..
        } => Failure::new(
            ErrorCode::OffsetOutOfRange,
            format_args!(
                "offset {offset} is out of range for partition {p} of topic {topic:?}: \
                 earliest {earliest}, next {next}"
            ),
        ),
        _ => Failure::new(ErrorCode::StorageFailed, error_chain(e)),
    }
}

/// The response frame: records in order until the frame would exceed `frame_bytes_max` (the
/// first record always fits: `frame_bytes_max` is at least `batch_bytes_max` + 4 KiB).
fn encode<F: Flash>(ctx: &Ctx<'_, F>, p: u32, batch: &ReadBatch) -> Result<Vec<u8>, Failure> {
    let limit = ctx.broker.config().frame_bytes_max as usize;
    let mut records: Vec<u8> = Vec::new();
    let mut count = 0u32;
    let mut headers: Vec<Header<'_>> = Vec::new();
    for (offset, r) in &batch.records {
        headers.clear();
        headers.extend(r.headers.iter().map(|(name, value)| Header {
            name: name.as_str(),
            value: value.as_slice(),
        }));
        let out = RecordOut {
            offset: offset.0,
            timestamp_ms: r.timestamp_ms,
            key: r.key.as_deref(),
            value: &r.value,
            headers: Seq::Slice(&headers),
        };
        let before = records.len();
        records = postcard::to_extend(&out, records)
            .map_err(|e| Failure::new(ErrorCode::StorageFailed, e))?;
        if count > 0 && FIXED_BYTES_MAX + records.len() > limit {
            records.truncate(before);
            break;
        }
        count += 1;
    }
    ctx.ok(&FetchResponse {
        partition: p,
        earliest: batch.earliest.0,
        next: batch.durable_next.0,
        records: Seq::Encoded {
            count,
            bytes: &records,
        },
    })
}
