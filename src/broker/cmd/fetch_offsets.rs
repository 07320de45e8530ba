//! `0x25 FETCH_OFFSETS`: a group's committed offsets with each partition's earliest stored
//! and durable end offsets, so a consumer sees an offset the ring already reclaimed
//! (`committed < earliest`) and applies its own reset policy.

use super::group_common::{all, committer, group_failure, group_id};
use super::{Ctx, Failure, decode, partition, topic};
use crate::groups::MemberId;
use crate::protocol::Seq;
use crate::protocol::messages::{FetchOffsetsRequest, FetchOffsetsResponse, OffsetFetched};
use crate::storage::flash::Flash;

pub(crate) async fn apply<F: Flash>(ctx: &Ctx<'_, F>, body: &[u8]) -> Result<Vec<u8>, Failure> {
    let req: FetchOffsetsRequest<'_> = decode(ctx.kind, body)?;
    let group = group_id(req.group)?;
    let wanted = all(ctx.kind, "partitions", req.partitions)?;
    let member = req.member.map(MemberId::from);
    let committer = committer(member.as_ref(), req.generation);
    let groups = ctx.broker.groups();
    let now = groups.now_ms();
    groups
        .call(|c| c.check_fetch(&group, committer, now))
        .map_err(|e| group_failure(&e))?;
    // Stable offsets: a commit or an atomic write holds this lock until it is durable, so
    // the offsets read here are never older than a write that then lands.
    let committed = {
        let _serial = groups.commit_lock().await;
        groups.committed(&group)
    };
    // (topic, partition, committed entry if any), ascending.
    let mut rows: Vec<(&str, u32, Option<usize>)> = if wanted.is_empty() {
        committed
            .iter()
            .enumerate()
            .map(|(i, c)| (c.topic.as_str(), c.partition, Some(i)))
            .collect()
    } else {
        wanted
            .iter()
            .map(|w| {
                let i = committed
                    .iter()
                    .position(|c| c.topic == w.topic && c.partition == w.partition);
                (w.topic, w.partition, i)
            })
            .collect()
    };
    rows.sort_unstable();
    rows.dedup();
    let mut out = Vec::with_capacity(rows.len());
    for (t, p, i) in rows {
        // A committed partition whose topic is gone is still reported (earliest = next = 0).
        let (earliest, next) = match topic(ctx.broker, t).and_then(|t| partition(&t, p)) {
            Ok(pid) => {
                let (e, n) = ctx.broker.log().reader().offsets(pid);
                (e.0, n.0)
            }
            Err(f) if i.is_none() => return Err(f),
            Err(_) => (0, 0),
        };
        let c = i.map(|i| &committed[i]);
        out.push(OffsetFetched {
            topic: t,
            partition: p,
            committed: c.map(|c| c.offset.offset.0),
            metadata: c
                .and_then(|c| std::str::from_utf8(&c.offset.metadata).ok())
                .unwrap_or(""),
            commit_timestamp_ms: c.map_or(0, |c| c.offset.commit_timestamp_ms),
            earliest,
            next,
        });
    }
    ctx.ok(&FetchOffsetsResponse {
        offsets: Seq::Slice(&out),
    })
}
