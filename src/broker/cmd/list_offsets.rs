//! `0x07 LIST_OFFSETS`: a partition's earliest stored and next (durable end) offsets.

use super::{Ctx, Failure, decode, partition, topic};
use crate::protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use crate::storage::flash::Flash;

pub(crate) fn apply<F: Flash>(ctx: &Ctx<'_, F>, body: &[u8]) -> Result<Vec<u8>, Failure> {
    let req: ListOffsetsRequest<'_> = decode(ctx.kind, body)?;
    let t = topic(ctx.broker, req.topic)?;
    let pid = partition(&t, req.partition)?;
    let (earliest, next) = ctx.broker.log().reader().offsets(pid);
    ctx.ok(&ListOffsetsResponse {
        earliest: earliest.0,
        next: next.0,
    })
}
