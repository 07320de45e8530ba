//! `0x24 COMMIT_OFFSETS`: all of a request's offsets or none, durable before the answer.
//!
//! Order: the body decodes whole; the coordinator authorizes the committer (a fenced
//! generation is refused); every partition exists, every metadata fits, every offset is at
//! most the partition's durable end (promise 4: a committed offset never points past it);
//! then ONE `append_meta` writes every entry, so the commit is atomic and durable; then the
//! in-RAM mirror is updated. Nothing is written when any check fails.

use super::group_common::{all, committer, group_failure, group_id};
use super::{Ctx, Failure, append_failure, decode, partition, topic};
use crate::broker::groups::{Committed, unix_ms};
use crate::groups::offsets::{self, METADATA_BYTES_MAX};
use crate::groups::{CommittedOffset, GroupId, MemberId};
use crate::protocol::ErrorCode;
use crate::protocol::messages::{CommitOffsetsRequest, Empty, OffsetCommit};
use crate::storage::flash::Flash;
use crate::storage::meta::namespace;
use crate::storage::{AppendError, MetaOp, Offset};

pub(crate) async fn apply<F: Flash>(ctx: &Ctx<'_, F>, body: &[u8]) -> Result<Vec<u8>, Failure> {
    let req: CommitOffsetsRequest<'_> = decode(ctx.kind, body)?;
    let group = group_id(req.group)?;
    let list = all(ctx.kind, "offsets", req.offsets)?;
    let member = req.member.map(MemberId::from);
    let committer = committer(member.as_ref(), req.generation);
    let groups = ctx.broker.groups();
    let now = groups.now_ms();
    groups
        .call(|c| c.check_commit(&group, committer, now))
        .map_err(|e| group_failure(&e))?;

    let (ops, entries) = commit_ops(ctx, &group, &list)?;
    if ops.is_empty() {
        return ctx.ok(&Empty {});
    }
    // Held across the append so the mirror is updated in the order the ring applied them.
    let _serial = groups.commit_lock().await;
    ctx.broker
        .log()
        .append_meta(ops)
        .await
        .map_err(|e| match e {
            AppendError::MetaFull { meta_bytes_max } => Failure::new(
                ErrorCode::OffsetStoreFull,
                format_args!(
                    "committing would exceed the metadata limit (meta_bytes_max = \
                     {meta_bytes_max}): nothing committed"
                ),
            ),
            e => append_failure(&e),
        })?;
    groups.committed_now(entries);
    ctx.ok(&Empty {})
}

/// A commit's metadata operations and the mirror entries they become, after checking every
/// partition exists, every metadata fits, and every offset is at most the partition's durable
/// end. Shared with ATOMIC_WRITE.
pub(crate) type CommitOps = (Vec<MetaOp>, Vec<(Vec<u8>, Committed)>);

pub(crate) fn commit_ops<F: Flash>(
    ctx: &Ctx<'_, F>,
    group: &GroupId,
    list: &[OffsetCommit<'_>],
) -> Result<CommitOps, Failure> {
    let stamp = unix_ms();
    let mut ops = Vec::with_capacity(list.len());
    let mut entries = Vec::with_capacity(list.len());
    for c in list {
        let t = topic(ctx.broker, c.topic)?;
        let pid = partition(&t, c.partition)?;
        if c.metadata.len() > METADATA_BYTES_MAX {
            return Err(Failure::new(
                ErrorCode::OffsetMetadataTooLarge,
                format_args!(
                    "{}/{}: metadata is {} bytes; at most {METADATA_BYTES_MAX}",
                    c.topic,
                    c.partition,
                    c.metadata.len()
                ),
            ));
        }
        let (_, end) = ctx.broker.log().reader().offsets(pid);
        if Offset(c.offset) > end {
            return Err(Failure::new(
                ErrorCode::OffsetAheadOfLog,
                format_args!(
                    "{}/{}: offset {} is past the durable end {}: nothing committed",
                    c.topic, c.partition, c.offset, end.0
                ),
            ));
        }
        let value = CommittedOffset {
            offset: Offset(c.offset),
            commit_timestamp_ms: stamp,
            metadata: c.metadata.as_bytes().to_vec(),
        };
        let codec = |e: offsets::OffsetCodecError| {
            Failure::new(
                ErrorCode::OffsetMetadataTooLarge,
                format_args!("{}/{}: {e}", c.topic, c.partition),
            )
        };
        let key = offsets::encode_key(group, c.topic, c.partition).map_err(codec)?;
        ops.push(MetaOp::Put {
            namespace: namespace::GROUP_OFFSETS,
            key: key.clone(),
            value: offsets::encode_value(&value).map_err(codec)?,
        });
        entries.push((
            key,
            Committed {
                topic: c.topic.to_owned(),
                partition: c.partition,
                offset: value,
            },
        ));
    }
    Ok((ops, entries))
}
