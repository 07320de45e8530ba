//! What the group handlers (kinds 0x20–0x27) share: group ids, the wire code of every
//! coordinator error, sequences decoded whole, assignments in wire form.

use serde::Deserialize;

use super::Failure;
use crate::groups::{
    Committer, Generation, GroupError, GroupId, GroupState, MemberId, TopicPartition,
};
use crate::protocol::messages::GroupPartition;
use crate::protocol::{ErrorCode, Kind, Seq};

/// The wire code of a coordinator error (docs/PROTOCOL.md section 5).
pub(crate) fn group_code(e: &GroupError) -> ErrorCode {
    match e {
        GroupError::InvalidGroupId { .. } => ErrorCode::InvalidGroupId,
        GroupError::InvalidSessionTimeout { .. } => ErrorCode::InvalidSessionTimeout,
        GroupError::InvalidClientId { .. } => ErrorCode::InvalidClientId,
        GroupError::InvalidTopic { .. } => ErrorCode::InvalidTopicName,
        GroupError::SubscriptionTooLarge { .. } => ErrorCode::SubscriptionTooLarge,
        GroupError::InconsistentGroupProtocol { .. } => ErrorCode::InconsistentGroupProtocol,
        GroupError::UnknownMemberId { .. } | GroupError::SimpleCommitToActiveGroup { .. } => {
            ErrorCode::UnknownMemberId
        }
        GroupError::IllegalGeneration { .. } => ErrorCode::IllegalGeneration,
        GroupError::RebalanceInProgress { .. } => ErrorCode::RebalanceInProgress,
        GroupError::GroupMaxSizeReached { .. } => ErrorCode::GroupMaxSizeReached,
        GroupError::TooManyGroups { .. } => ErrorCode::TooManyGroups,
    }
}

pub(crate) fn group_failure(e: &GroupError) -> Failure {
    Failure::new(group_code(e), e)
}

/// A group id from the wire, or `INVALID_GROUP_ID`.
/// Who commits or fetches offsets: a member with its generation, or (no member id) a
/// standalone consumer.
pub(crate) fn committer(member: Option<&MemberId>, generation: u32) -> Committer<'_> {
    match member {
        None => Committer::Simple,
        Some(m) => Committer::Member {
            member: m,
            generation: Generation(generation),
        },
    }
}

pub(crate) fn group_id(id: &str) -> Result<GroupId, Failure> {
    GroupId::new(id).map_err(|e| group_failure(&e))
}

/// Every element of a sequence, or `BAD_BODY` naming the field (nothing applied yet).
pub(crate) fn all<'a, T: Deserialize<'a> + Clone>(
    kind: Kind,
    field: &str,
    seq: Seq<'a, T>,
) -> Result<Vec<T>, Failure> {
    seq.validate().map_err(|e| {
        Failure::new(
            ErrorCode::BadBody,
            format_args!("{}: {field}: {e}", kind.name()),
        )
    })?;
    seq.iter().collect::<Result<Vec<T>, _>>().map_err(|e| {
        Failure::new(
            ErrorCode::BadBody,
            format_args!("{}: {field}: {e}", kind.name()),
        )
    })
}

/// An assignment in wire form (borrowing it).
pub(crate) fn wire(assignment: &[TopicPartition]) -> Vec<GroupPartition<'_>> {
    assignment
        .iter()
        .map(|tp| GroupPartition {
            topic: &tp.topic,
            partition: tp.partition,
        })
        .collect()
}

/// A group state's wire number (docs/PROTOCOL.md, LIST_GROUPS).
pub(crate) fn state_code(s: GroupState) -> u8 {
    match s {
        GroupState::Empty => 0,
        GroupState::PreparingRebalance => 1,
        GroupState::Stable => 2,
    }
}
