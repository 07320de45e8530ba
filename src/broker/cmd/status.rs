//! `0x08 STATUS`: uptime, ring use, connections, and every partition's offsets by topic.

use super::{Ctx, Failure, decode};
use crate::protocol::Seq;
use crate::protocol::messages::{Empty, PartitionStatus, StatusResponse};
use crate::storage::flash::Flash;

pub(crate) fn apply<F: Flash>(ctx: &Ctx<'_, F>, body: &[u8]) -> Result<Vec<u8>, Failure> {
    let _: Empty = decode(ctx.kind, body)?;
    let b = ctx.broker;
    let ring = b.ring_config();
    let topics = b.topics().list();
    // One consistent view of the segments and the offsets.
    let shared = b.log().reader().snapshot();
    // Each live segment is used up to its durable end (header included).
    let ring_used_bytes = shared.segments.iter().map(|s| s.end).sum();
    let mut partitions = Vec::new();
    for t in &topics {
        for p in 0..t.partitions() {
            if let Some(pid) = t.partition_id(p) {
                partitions.push(PartitionStatus {
                    topic: t.name(),
                    partition: p,
                    earliest: shared.earliest(pid).0,
                    next: shared.durable_next(pid).0,
                });
            }
        }
    }
    ctx.ok(&StatusResponse {
        uptime_ms: b.uptime_ms(),
        ring_bytes: ring.ring_bytes,
        ring_used_bytes,
        segments_live: u32::try_from(shared.segments.len()).unwrap_or(u32::MAX),
        segments_total: u32::try_from(ring.segment_count()).unwrap_or(u32::MAX),
        connections: b.connections(),
        partitions: Seq::Slice(&partitions),
    })
}
