//! `0x02 CREATE_TOPIC`: the topic is durable before the response is sent.

use super::{Ctx, Failure, decode};
use crate::protocol::messages::{CreateTopicRequest, CreateTopicResponse};
use crate::storage::flash::Flash;

pub(crate) async fn apply<F: Flash>(ctx: &Ctx<'_, F>, body: &[u8]) -> Result<Vec<u8>, Failure> {
    let req: CreateTopicRequest<'_> = decode(ctx.kind, body)?;
    let b = ctx.broker;
    let topic = b
        .topics()
        .create(b.log(), req.name, req.partitions)
        .await
        .map_err(|e| Failure::new(e.code(), format_args!("topic {:?}: {e}", req.name)))?;
    // Groups subscribed to it get its partitions at their next rebalance (started now).
    b.groups().topics_changed(b.topics());
    ctx.ok(&CreateTopicResponse {
        name: topic.name(),
        partitions: topic.partitions(),
    })
}
