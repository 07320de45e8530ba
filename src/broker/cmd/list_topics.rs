//! `0x03 LIST_TOPICS`: every topic and its partition count, ascending by name.

use super::{Ctx, Failure, decode};
use crate::protocol::Seq;
use crate::protocol::messages::{Empty, ListTopicsResponse, TopicInfo};
use crate::storage::flash::Flash;

pub(crate) fn apply<F: Flash>(ctx: &Ctx<'_, F>, body: &[u8]) -> Result<Vec<u8>, Failure> {
    let _: Empty = decode(ctx.kind, body)?;
    let topics = ctx.broker.topics().list();
    let infos: Vec<TopicInfo<'_>> = topics
        .iter()
        .map(|t| TopicInfo {
            name: t.name(),
            partitions: t.partitions(),
        })
        .collect();
    ctx.ok(&ListTopicsResponse {
        topics: Seq::Slice(&infos),
    })
}
