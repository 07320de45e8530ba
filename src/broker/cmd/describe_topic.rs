//! `0x04 DESCRIBE_TOPIC`: a topic's partitions with their earliest and next offsets.

use super::{Ctx, Failure, decode, topic};
use crate::protocol::Seq;
use crate::protocol::messages::{DescribeTopicRequest, DescribeTopicResponse, PartitionInfo};
use crate::storage::flash::Flash;

pub(crate) fn apply<F: Flash>(ctx: &Ctx<'_, F>, body: &[u8]) -> Result<Vec<u8>, Failure> {
    let req: DescribeTopicRequest<'_> = decode(ctx.kind, body)?;
    let t = topic(ctx.broker, req.name)?;
    let reader = ctx.broker.log().reader();
    let partitions: Vec<PartitionInfo> = (0..t.partitions())
        .filter_map(|p| {
            let pid = t.partition_id(p)?;
            let (earliest, next) = reader.offsets(pid);
            Some(PartitionInfo {
                partition: p,
                earliest: earliest.0,
                next: next.0,
            })
        })
        .collect();
    ctx.ok(&DescribeTopicResponse {
        name: t.name(),
        partitions: Seq::Slice(&partitions),
    })
}
