//! `0x21 SYNC_GROUP`, `0x22 HEARTBEAT`, `0x23 LEAVE_GROUP`: a member's calls between joins
//! (docs/GROUPS.md section 2).

use super::group_common::{group_failure, group_id, wire};
use super::{Ctx, Failure, decode};
use crate::groups::{Generation, MemberId};
use crate::protocol::Seq;
use crate::protocol::messages::{Empty, LeaveGroupRequest, MemberRequest, SyncGroupResponse};
use crate::storage::flash::Flash;

pub(crate) fn sync<F: Flash>(ctx: &Ctx<'_, F>, body: &[u8]) -> Result<Vec<u8>, Failure> {
    let req: MemberRequest<'_> = decode(ctx.kind, body)?;
    let group = group_id(req.group)?;
    let member = MemberId::from(req.member);
    let groups = ctx.broker.groups();
    let now = groups.now_ms();
    let assignment = groups
        .call(|c| c.sync(&group, &member, Generation(req.generation), now))
        .map_err(|e| group_failure(&e))?;
    let w = wire(&assignment);
    ctx.ok(&SyncGroupResponse {
        assignment: Seq::Slice(&w),
    })
}

pub(crate) fn heartbeat<F: Flash>(ctx: &Ctx<'_, F>, body: &[u8]) -> Result<Vec<u8>, Failure> {
    let req: MemberRequest<'_> = decode(ctx.kind, body)?;
    let group = group_id(req.group)?;
    let member = MemberId::from(req.member);
    let groups = ctx.broker.groups();
    let now = groups.now_ms();
    groups
        .call(|c| c.heartbeat(&group, &member, Generation(req.generation), now))
        .map_err(|e| group_failure(&e))?;
    ctx.ok(&Empty {})
}

pub(crate) fn leave<F: Flash>(ctx: &Ctx<'_, F>, body: &[u8]) -> Result<Vec<u8>, Failure> {
    let req: LeaveGroupRequest<'_> = decode(ctx.kind, body)?;
    let group = group_id(req.group)?;
    let member = MemberId::from(req.member);
    let groups = ctx.broker.groups();
    let now = groups.now_ms();
    groups
        .call(|c| c.leave(&group, &member, now))
        .map_err(|e| group_failure(&e))?;
    ctx.ok(&Empty {})
}
