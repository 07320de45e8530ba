//! Consumer-group requests (kinds 0x20–0x27; docs/GROUPS.md): join, sync, heartbeat, leave,
//! commit and fetch offsets, list and describe groups. Results are owned
//! ([`super::group_types`]). A JOIN is a long poll: it returns when the group's rebalance
//! completes.

use super::group_types::{
    CommittedOffsetInfo, GroupListing, GroupMemberInfo, GroupPartitionRef, GroupSummary, Joined,
    OffsetToCommit,
};
use super::{Client, ClientError, answer, collect};
use crate::protocol::messages::{
    CommitOffsetsRequest, DescribeGroupRequest, DescribeGroupResponse, Empty, FetchOffsetsRequest,
    FetchOffsetsResponse, GroupPartition, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    ListGroupsResponse, MemberRequest, OffsetCommit, SyncGroupResponse,
};
use crate::protocol::{Kind, Seq};

/// Offsets to commit in wire form (borrowing them).
pub(super) fn wire_offsets(offsets: &[OffsetToCommit]) -> Vec<OffsetCommit<'_>> {
    offsets
        .iter()
        .map(|o| OffsetCommit {
            topic: &o.topic,
            partition: o.partition,
            offset: o.offset,
            metadata: &o.metadata,
        })
        .collect()
}

fn partitions(
    kind: Kind,
    s: Seq<'_, GroupPartition<'_>>,
) -> Result<Vec<GroupPartitionRef>, ClientError> {
    collect(kind, s, |p| GroupPartitionRef {
        topic: p.topic.to_string(),
        partition: p.partition,
    })
}

impl Client {
    /// JOIN_GROUP: enters `group` (`member = None`) or rejoins it; waits for the rebalance.
    pub async fn join_group(
        &self,
        group: &str,
        member: Option<&str>,
        client_id: &str,
        session_timeout_ms: u32,
        strategies: &[&str],
        topics: &[&str],
    ) -> Result<Joined, ClientError> {
        let kind = Kind::JoinGroup;
        let req = JoinGroupRequest {
            group,
            member,
            client_id,
            session_timeout_ms,
            strategies: Seq::Slice(strategies),
            topics: Seq::Slice(topics),
        };
        let body = self.call(kind, &req).await?;
        let r: JoinGroupResponse<'_> = answer(kind, &body)?;
        Ok(Joined {
            generation: r.generation,
            member: r.member.to_string(),
            leader: r.leader.to_string(),
            strategy: r.strategy.to_string(),
            assignment: partitions(kind, r.assignment)?,
        })
    }

    /// SYNC_GROUP: the member's partitions in `generation`.
    pub async fn sync_group(
        &self,
        group: &str,
        member: &str,
        generation: u32,
    ) -> Result<Vec<GroupPartitionRef>, ClientError> {
        let kind = Kind::SyncGroup;
        let req = MemberRequest {
            group,
            member,
            generation,
        };
        let body = self.call(kind, &req).await?;
        let r: SyncGroupResponse<'_> = answer(kind, &body)?;
        partitions(kind, r.assignment)
    }

    /// HEARTBEAT: `Ok` while the group is Stable in `generation`; `REBALANCE_IN_PROGRESS`
    /// means join again.
    pub async fn heartbeat(
        &self,
        group: &str,
        member: &str,
        generation: u32,
    ) -> Result<(), ClientError> {
        let kind = Kind::Heartbeat;
        let req = MemberRequest {
            group,
            member,
            generation,
        };
        let body = self.call(kind, &req).await?;
        let _: Empty = answer(kind, &body)?;
        Ok(())
    }

    /// LEAVE_GROUP: the member goes at once; the others rebalance.
    pub async fn leave_group(&self, group: &str, member: &str) -> Result<(), ClientError> {
        let kind = Kind::LeaveGroup;
        let body = self
            .call(kind, &LeaveGroupRequest { group, member })
            .await?;
        let _: Empty = answer(kind, &body)?;
        Ok(())
    }

    /// COMMIT_OFFSETS: all or none, durable when it returns. `member = None` commits as a
    /// standalone consumer (accepted while the group has no member).
    pub async fn commit_offsets(
        &self,
        group: &str,
        member: Option<(&str, u32)>,
        offsets: &[OffsetToCommit],
    ) -> Result<(), ClientError> {
        let kind = Kind::CommitOffsets;
        let wire = wire_offsets(offsets);
        let req = CommitOffsetsRequest {
            group,
            member: member.map(|m| m.0),
            generation: member.map_or(0, |m| m.1),
            offsets: Seq::Slice(&wire),
        };
        let body = self.call(kind, &req).await?;
        let _: Empty = answer(kind, &body)?;
        Ok(())
    }

    /// FETCH_OFFSETS: the committed offsets of `partitions` (every committed one if empty).
    pub async fn fetch_offsets(
        &self,
        group: &str,
        member: Option<(&str, u32)>,
        partitions: &[(&str, u32)],
    ) -> Result<Vec<CommittedOffsetInfo>, ClientError> {
        let kind = Kind::FetchOffsets;
        let wire: Vec<GroupPartition<'_>> = partitions
            .iter()
            .map(|(topic, partition)| GroupPartition {
                topic,
                partition: *partition,
            })
            .collect();
        let req = FetchOffsetsRequest {
            group,
            member: member.map(|m| m.0),
            generation: member.map_or(0, |m| m.1),
            partitions: Seq::Slice(&wire),
        };
        let body = self.call(kind, &req).await?;
        let r: FetchOffsetsResponse<'_> = answer(kind, &body)?;
        collect(kind, r.offsets, |o| CommittedOffsetInfo {
            topic: o.topic.to_string(),
            partition: o.partition,
            committed: o.committed,
            metadata: o.metadata.to_string(),
            commit_timestamp_ms: o.commit_timestamp_ms,
            earliest: o.earliest,
            next: o.next,
        })
    }

    /// LIST_GROUPS: every group the broker keeps or has offsets for, by id.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>, ClientError> {
        let kind = Kind::ListGroups;
        let body = self.call(kind, &Empty {}).await?;
        let r: ListGroupsResponse<'_> = answer(kind, &body)?;
        collect(kind, r.groups, |g| GroupListing {
            group: g.group.to_string(),
            state: g.state,
            members: g.members,
        })
    }

    /// DESCRIBE_GROUP: state, generation and members with their assignments.
    pub async fn describe_group(&self, group: &str) -> Result<GroupSummary, ClientError> {
        let kind = Kind::DescribeGroup;
        let body = self.call(kind, &DescribeGroupRequest { group }).await?;
        let r: DescribeGroupResponse<'_> = answer(kind, &body)?;
        let mut members = Vec::with_capacity(r.members.len());
        for m in r.members.iter() {
            let m = m.map_err(|e| super::malformed(kind, e))?;
            members.push(GroupMemberInfo {
                member: m.member.to_string(),
                client_id: m.client_id.to_string(),
                session_timeout_ms: m.session_timeout_ms,
                topics: collect(kind, m.topics, str::to_string)?,
                assignment: partitions(kind, m.assignment)?,
            });
        }
        Ok(GroupSummary {
            group: r.group.to_string(),
            exists: r.exists,
            state: r.state,
            generation: r.generation,
            strategy: r.strategy.map(str::to_string),
            leader: r.leader.map(str::to_string),
            members,
        })
    }
}
