//! `0x20 JOIN_GROUP`: enter or rejoin a group. Long poll: the answer is sent when the
//! rebalance completes (another member's JOIN, a LEAVE, an expiry, the deadline), at the
//! latest at the rebalance deadline the coordinator fixed, which is at most the largest
//! allowed session timeout (or `rebalance_timeout_ms`) after this request.

use std::time::{Duration, Instant};

use super::group_common::{all, group_failure, group_id, wire};
use super::{Ctx, Failure, decode};
use crate::groups::{JoinReply, JoinRequest, JoinResult, MemberId, Strategy};
use crate::protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use crate::protocol::{ErrorCode, Seq};
use crate::storage::flash::Flash;

/// Waited past the coordinator's own deadline before giving up (the timer applies the
/// deadline; this only covers its scheduling delay).
const GRACE: Duration = Duration::from_secs(2);

pub(crate) async fn apply<F: Flash>(ctx: &Ctx<'_, F>, body: &[u8]) -> Result<Vec<u8>, Failure> {
    let req: JoinGroupRequest<'_> = decode(ctx.kind, body)?;
    let group = group_id(req.group)?;
    let names = all(ctx.kind, "strategies", req.strategies)?;
    let topics = all(ctx.kind, "topics", req.topics)?;
    let mut strategies = Vec::with_capacity(names.len());
    for name in names {
        let s = Strategy::from_name(name).ok_or_else(|| {
            Failure::new(
                ErrorCode::InconsistentGroupProtocol,
                format_args!("unknown assignment strategy {name:?}: range, roundrobin or sticky"),
            )
        })?;
        strategies.push(s);
    }
    let member = req.member.map(MemberId::from);
    let groups = ctx.broker.groups();
    let config = groups.config();
    let now = groups.now_ms();
    let reply = groups
        .join(
            JoinRequest {
                group: &group,
                member: member.as_ref(),
                client_id: req.client_id,
                strategies: &strategies,
                topics: &topics,
                session_timeout_ms: u64::from(req.session_timeout_ms),
            },
            now,
        )
        .map_err(|e| group_failure(&e))?;
    let result = match reply {
        JoinReply::Joined(r) => r,
        JoinReply::Pending { ticket, member } => {
            let bound = config
                .rebalance_timeout_ms
                .unwrap_or(config.session_timeout_ms_max);
            let deadline = Instant::now() + Duration::from_millis(bound) + GRACE;
            match groups.wait_join(ctx.broker, ticket, deadline).await {
                Some(answer) => answer.map_err(|e| group_failure(&e))?,
                None if ctx.broker.is_shutting_down() => {
                    return Err(Failure::new(
                        ErrorCode::ShuttingDown,
                        "the broker is stopping: join again",
                    ));
                }
                None => {
                    return Err(Failure::new(
                        ErrorCode::RebalanceInProgress,
                        format_args!(
                            "group {:?}: the rebalance did not complete in time; join again \
                             with member id {:?}",
                            req.group,
                            member.as_str()
                        ),
                    ));
                }
            }
        }
    };
    answer(ctx, &result)
}

fn answer<F: Flash>(ctx: &Ctx<'_, F>, r: &JoinResult) -> Result<Vec<u8>, Failure> {
    let assignment = wire(&r.assignment);
    ctx.ok(&JoinGroupResponse {
        generation: r.generation.0,
        member: r.member.as_str(),
        leader: r.leader.as_str(),
        strategy: r.strategy.name(),
        assignment: Seq::Slice(&assignment),
    })
}
