//! `0x26 LIST_GROUPS` and `0x27 DESCRIBE_GROUP`: the coordinator's view, for tools
//! (`outpost groups`). Groups known only by their committed offsets (none of their members
//! since the broker started) are listed as `Empty` with no member.

use super::group_common::{group_id, state_code, wire};
use super::{Ctx, Failure, decode};
use crate::protocol::Seq;
use crate::protocol::messages::{
    DescribeGroupRequest, DescribeGroupResponse, Empty, GroupInfo, GroupMember, ListGroupsResponse,
};
use crate::storage::flash::Flash;

pub(crate) fn list<F: Flash>(ctx: &Ctx<'_, F>, body: &[u8]) -> Result<Vec<u8>, Failure> {
    let _: Empty = decode(ctx.kind, body)?;
    let groups = ctx.broker.groups();
    let live = groups.call(|c| c.list());
    let mut all: Vec<(String, u8, u32)> = live
        .iter()
        .map(|(g, s, n)| {
            let members = u32::try_from(*n).unwrap_or(u32::MAX);
            (g.as_str().to_owned(), state_code(*s), members)
        })
        .collect();
    for g in groups.groups_with_offsets() {
        if !all.iter().any(|(n, _, _)| *n == g) {
            all.push((g, 0, 0));
        }
    }
    all.sort_unstable();
    let infos: Vec<GroupInfo<'_>> = all
        .iter()
        .map(|(g, state, members)| GroupInfo {
            group: g,
            state: *state,
            members: *members,
        })
        .collect();
    ctx.ok(&ListGroupsResponse {
        groups: Seq::Slice(&infos),
    })
}

pub(crate) fn describe<F: Flash>(ctx: &Ctx<'_, F>, body: &[u8]) -> Result<Vec<u8>, Failure> {
    let req: DescribeGroupRequest<'_> = decode(ctx.kind, body)?;
    let group = group_id(req.group)?;
    let Some(d) = ctx.broker.groups().call(|c| c.describe(&group)) else {
        return ctx.ok(&DescribeGroupResponse {
            group: req.group,
            exists: false,
            state: 0,
            generation: 0,
            strategy: None,
            leader: None,
            members: Seq::Slice(&[]),
        });
    };
    let topics: Vec<Vec<&str>> = d
        .members
        .iter()
        .map(|m| m.topics.iter().map(String::as_str).collect())
        .collect();
    let assignments: Vec<_> = d.members.iter().map(|m| wire(&m.assignment)).collect();
    let members: Vec<GroupMember<'_>> = d
        .members
        .iter()
        .zip(topics.iter().zip(&assignments))
        .map(|(m, (t, a))| GroupMember {
            member: m.member.as_str(),
            client_id: &m.client_id,
            session_timeout_ms: u32::try_from(m.session_timeout_ms).unwrap_or(u32::MAX),
            topics: Seq::Slice(t),
            assignment: Seq::Slice(a),
        })
        .collect();
    ctx.ok(&DescribeGroupResponse {
        group: req.group,
        exists: true,
        state: state_code(d.state),
        generation: d.generation.0,
        strategy: d.strategy.map(|s| s.name()),
        leader: d.leader.as_ref().map(|l| l.as_str()),
        members: Seq::Slice(&members),
    })
}
