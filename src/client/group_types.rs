//! Owned results of the consumer-group requests.

/// One partition of a topic.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupPartitionRef {
    pub topic: String,
    pub partition: u32,
}

/// A completed JOIN_GROUP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Joined {
    pub generation: u32,
    pub member: String,
    pub leader: String,
    pub strategy: String,
    /// This member's partitions in `generation`, sorted.
    pub assignment: Vec<GroupPartitionRef>,
}

/// One offset to commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetToCommit {
    pub topic: String,
    pub partition: u32,
    /// The next offset to consume.
    pub offset: u64,
    pub metadata: String,
}

/// One partition in a FETCH_OFFSETS answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedOffsetInfo {
    pub topic: String,
    pub partition: u32,
    /// `None`: nothing committed.
    pub committed: Option<u64>,
    pub metadata: String,
    pub commit_timestamp_ms: u64,
    pub earliest: u64,
    pub next: u64,
}

impl CommittedOffsetInfo {
    /// Durable records after the committed offset (`None` with nothing committed).
    pub fn lag(&self) -> Option<u64> {
        self.committed.map(|c| self.next.saturating_sub(c))
    }

    /// The committed offset's records were reclaimed: the consumer applies its reset policy.
    pub fn reclaimed(&self) -> bool {
        self.committed.is_some_and(|c| c < self.earliest)
    }
}

/// A group's state name from its wire number.
pub fn group_state_name(state: u8) -> &'static str {
    match state {
        0 => "Empty",
        1 => "PreparingRebalance",
        2 => "Stable",
        _ => "unknown state",
    }
}

/// One group in a LIST_GROUPS answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupListing {
    pub group: String,
    /// 0 Empty, 1 PreparingRebalance, 2 Stable ([`group_state_name`]).
    pub state: u8,
    pub members: u32,
}

/// One member in a DESCRIBE_GROUP answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMemberInfo {
    pub member: String,
    pub client_id: String,
    pub session_timeout_ms: u32,
    pub topics: Vec<String>,
    pub assignment: Vec<GroupPartitionRef>,
}

/// A DESCRIBE_GROUP answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupSummary {
    pub group: String,
    /// `false`: the broker keeps no such group (it may still have committed offsets).
    pub exists: bool,
    pub state: u8,
    pub generation: u32,
    pub strategy: Option<String>,
    pub leader: Option<String>,
    pub members: Vec<GroupMemberInfo>,
}
