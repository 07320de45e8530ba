//! Request and response bodies (docs/PROTOCOL.md section 4), borrowed from the frame buffer.
//! Field order is the wire order: never reorder within protocol version 1.

use crate::protocol::seq::Seq;
use serde::{Deserialize, Serialize};

/// Ack mode of a produce (wire values 0, 1, 2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "u8", try_from = "u8")]
pub enum WireAcks {
    None,
    Written,
    #[default]
    Durable,
}

impl From<WireAcks> for u8 {
    fn from(a: WireAcks) -> u8 {
        match a {
            WireAcks::None => 0,
            WireAcks::Written => 1,
            WireAcks::Durable => 2,
        }
    }
}

impl TryFrom<u8> for WireAcks {
    type Error = &'static str;
    fn try_from(v: u8) -> Result<Self, Self::Error> {
        match v {
            0 => Ok(WireAcks::None),
            1 => Ok(WireAcks::Written),
            2 => Ok(WireAcks::Durable),
            _ => Err("acks must be 0 (none), 1 (written) or 2 (durable)"),
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Header<'a> {
    pub name: &'a str,
    #[serde(borrow)]
    pub value: &'a [u8],
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct RecordIn<'a> {
    pub timestamp_ms: i64,
    #[serde(borrow)]
    pub key: Option<&'a [u8]>,
    pub value: &'a [u8],
    pub headers: Seq<'a, Header<'a>>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct RecordOut<'a> {
    pub offset: u64,
    pub timestamp_ms: i64,
    #[serde(borrow)]
    pub key: Option<&'a [u8]>,
    pub value: &'a [u8],
    pub headers: Seq<'a, Header<'a>>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct HelloRequest<'a> {
    pub version_min: u8,
    pub version_max: u8,
    pub client: &'a str,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct HelloResponse<'a> {
    pub version: u8,
    pub server: &'a str,
    pub frame_bytes_max: u32,
    pub batch_bytes_max: u32,
    pub inflight_max: u32,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct CreateTopicRequest<'a> {
    pub name: &'a str,
    pub partitions: u32,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct CreateTopicResponse<'a> {
    pub name: &'a str,
    pub partitions: u32,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Empty {}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct TopicInfo<'a> {
    pub name: &'a str,
    pub partitions: u32,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct ListTopicsResponse<'a> {
    #[serde(borrow)]
    pub topics: Seq<'a, TopicInfo<'a>>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct DescribeTopicRequest<'a> {
    pub name: &'a str,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct PartitionInfo {
    pub partition: u32,
    pub earliest: u64,
    pub next: u64,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct DescribeTopicResponse<'a> {
    pub name: &'a str,
    #[serde(borrow)]
    pub partitions: Seq<'a, PartitionInfo>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct ProduceRequest<'a> {
    pub topic: &'a str,
    pub partition: Option<u32>,
    pub acks: WireAcks,
    #[serde(borrow)]
    pub records: Seq<'a, RecordIn<'a>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProduceResponse {
    pub partition: u32,
    pub base_offset: u64,
    pub count: u32,
}

/// INIT_PRODUCER: gives `name` a producer id and its next epoch; an earlier instance with
/// the same name is fenced (docs/SEMANTICS.md).
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct InitProducerRequest<'a> {
    pub name: &'a str,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitProducerResponse {
    pub producer_id: u64,
    pub epoch: u16,
}

/// PRODUCE_IDEMPOTENT: a batch to one partition with the producer's sequence for its first
/// record; always durable before the answer. A retry of a batch stored already is answered
/// with its original offsets (`duplicate = true`).
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct ProduceIdempotentRequest<'a> {
    pub producer_id: u64,
    pub epoch: u16,
    pub topic: &'a str,
    pub partition: u32,
    pub first_sequence: u32,
    #[serde(borrow)]
    pub records: Seq<'a, RecordIn<'a>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProduceIdempotentResponse {
    pub partition: u32,
    pub base_offset: u64,
    pub count: u32,
    pub duplicate: bool,
}

/// One output partition of an ATOMIC_WRITE.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct AtomicOutput<'a> {
    pub topic: &'a str,
    pub partition: u32,
    pub first_sequence: u32,
    #[serde(borrow)]
    pub records: Seq<'a, RecordIn<'a>>,
}

/// The input offsets an ATOMIC_WRITE commits, checked like COMMIT_OFFSETS.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct AtomicCommit<'a> {
    pub group: &'a str,
    #[serde(borrow)]
    pub member: Option<&'a str>,
    pub generation: u32,
    #[serde(borrow)]
    pub offsets: Seq<'a, OffsetCommit<'a>>,
}

/// ATOMIC_WRITE: the outputs (any topics and partitions, with the producer's sequences) and
/// the input offsets of a group, in one batch under one CRC: after a crash all of it is
/// stored or none of it. Durable before the answer.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct AtomicWriteRequest<'a> {
    pub producer_id: u64,
    pub epoch: u16,
    #[serde(borrow)]
    pub outputs: Seq<'a, AtomicOutput<'a>>,
    #[serde(borrow)]
    pub commit: Option<AtomicCommit<'a>>,
}

/// Where one output landed, in request order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AtomicOutputResult<'a> {
    pub topic: &'a str,
    pub partition: u32,
    pub base_offset: u64,
    pub count: u32,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct AtomicWriteResponse<'a> {
    #[serde(borrow)]
    pub outputs: Seq<'a, AtomicOutputResult<'a>>,
    /// A retry of a write stored already: nothing was written again.
    pub duplicate: bool,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct FetchRequest<'a> {
    pub topic: &'a str,
    pub partition: u32,
    pub offset: u64,
    pub bytes_max: u32,
    pub wait_ms_max: u32,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct FetchResponse<'a> {
    pub partition: u32,
    pub earliest: u64,
    pub next: u64,
    #[serde(borrow)]
    pub records: Seq<'a, RecordOut<'a>>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct ListOffsetsRequest<'a> {
    pub topic: &'a str,
    pub partition: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListOffsetsResponse {
    pub earliest: u64,
    pub next: u64,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct PartitionStatus<'a> {
    pub topic: &'a str,
    pub partition: u32,
    pub earliest: u64,
    pub next: u64,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct StatusResponse<'a> {
    pub uptime_ms: u64,
    pub ring_bytes: u64,
    pub ring_used_bytes: u64,
    pub segments_live: u32,
    pub segments_total: u32,
    pub connections: u32,
    #[serde(borrow)]
    pub partitions: Seq<'a, PartitionStatus<'a>>,
}

/// One forwarded edge partition in a FORWARDER_STATUS answer.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct ForwardPartition<'a> {
    /// The edge topic.
    pub topic: &'a str,
    pub partition: u32,
    /// The Kafka topic it is forwarded to.
    pub upstream_topic: &'a str,
    /// The next edge offset to forward (everything below is committed upstream); `None`
    /// until the forwarder has read its cursor back.
    pub position: Option<u64>,
    /// One past the partition's last durable record on the edge.
    pub durable_next: u64,
    /// Estimated stored bytes of the records not yet forwarded.
    pub bytes_behind: u64,
    /// Timestamp (Unix ms) of the oldest record not yet forwarded, if any.
    pub oldest_unforwarded_ms: Option<i64>,
    /// Unix ms of the last upstream commit that carried this partition.
    pub last_commit_ms: Option<i64>,
}

/// The FORWARDER_STATUS answer. Without a forwarder configured: `configured = false` and
/// every other field zero, `None` or empty.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct ForwarderStatusResponse<'a> {
    pub configured: bool,
    /// The link: 0 connecting, 1 connected, 2 backing off, 3 fenced.
    pub state: u8,
    /// The error that ended the last session; `None` again after a commit.
    #[serde(borrow)]
    pub last_error: Option<&'a str>,
    /// Unix ms of the last upstream commit.
    pub last_commit_ms: Option<i64>,
    pub commits: u64,
    pub records_forwarded: u64,
    pub gaps: u64,
    #[serde(borrow)]
    pub partitions: Seq<'a, ForwardPartition<'a>>,
}

// ---------------------------------------------------------------------------------------------
// Consumer groups (kinds 0x20–0x27; docs/GROUPS.md, docs/PROTOCOL.md section 4)
// ---------------------------------------------------------------------------------------------

/// One partition of a topic, as assignments and offset requests name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupPartition<'a> {
    pub topic: &'a str,
    pub partition: u32,
}

/// JOIN_GROUP: enter the group (no `member`) or rejoin it. Answered when the rebalance
/// completes (long poll bounded by the rebalance deadline).
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct JoinGroupRequest<'a> {
    pub group: &'a str,
    /// `None` on the first join: the broker gives the member its id.
    #[serde(borrow)]
    pub member: Option<&'a str>,
    pub client_id: &'a str,
    pub session_timeout_ms: u32,
    /// Accepted strategies, most preferred first: `range`, `roundrobin`, `sticky`.
    #[serde(borrow)]
    pub strategies: Seq<'a, &'a str>,
    /// Subscribed topics.
    #[serde(borrow)]
    pub topics: Seq<'a, &'a str>,
}

/// The JOIN_GROUP answer: the generation, the member's id, and its partitions in it.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct JoinGroupResponse<'a> {
    pub generation: u32,
    pub member: &'a str,
    pub leader: &'a str,
    pub strategy: &'a str,
    #[serde(borrow)]
    pub assignment: Seq<'a, GroupPartition<'a>>,
}

/// SYNC_GROUP and HEARTBEAT: a member of a generation.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct MemberRequest<'a> {
    pub group: &'a str,
    pub member: &'a str,
    pub generation: u32,
}

/// The SYNC_GROUP answer: the member's partitions in the generation.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct SyncGroupResponse<'a> {
    #[serde(borrow)]
    pub assignment: Seq<'a, GroupPartition<'a>>,
}

/// LEAVE_GROUP.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct LeaveGroupRequest<'a> {
    pub group: &'a str,
    pub member: &'a str,
}

/// One offset to commit.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct OffsetCommit<'a> {
    pub topic: &'a str,
    pub partition: u32,
    /// The next offset to consume (everything below is processed).
    pub offset: u64,
    /// At most 4096 bytes.
    pub metadata: &'a str,
}

/// COMMIT_OFFSETS: all offsets or none, durable before the answer (an `Empty` body).
/// `member = None` is a standalone commit (accepted while the group has no member;
/// `generation` is then ignored).
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct CommitOffsetsRequest<'a> {
    pub group: &'a str,
    #[serde(borrow)]
    pub member: Option<&'a str>,
    pub generation: u32,
    #[serde(borrow)]
    pub offsets: Seq<'a, OffsetCommit<'a>>,
}

/// FETCH_OFFSETS: the committed offsets of `partitions`, or of every partition the group
/// committed when it is empty. `member = None`: a standalone reader (always allowed).
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct FetchOffsetsRequest<'a> {
    pub group: &'a str,
    #[serde(borrow)]
    pub member: Option<&'a str>,
    pub generation: u32,
    #[serde(borrow)]
    pub partitions: Seq<'a, GroupPartition<'a>>,
}

/// One partition in a FETCH_OFFSETS answer.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct OffsetFetched<'a> {
    pub topic: &'a str,
    pub partition: u32,
    /// `None`: nothing committed for this partition.
    pub committed: Option<u64>,
    pub metadata: &'a str,
    /// Unix ms when the broker accepted the commit (0 with nothing committed).
    pub commit_timestamp_ms: u64,
    /// The partition's earliest stored offset: `committed < earliest` means the records
    /// from `committed` were reclaimed (the consumer applies its reset policy).
    pub earliest: u64,
    /// One past the partition's last durable record (lag = `next - committed`).
    pub next: u64,
}

/// The FETCH_OFFSETS answer, ascending by topic then partition.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct FetchOffsetsResponse<'a> {
    #[serde(borrow)]
    pub offsets: Seq<'a, OffsetFetched<'a>>,
}

/// One group in a LIST_GROUPS answer.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct GroupInfo<'a> {
    pub group: &'a str,
    /// 0 `Empty`, 1 `PreparingRebalance`, 2 `Stable`.
    pub state: u8,
    pub members: u32,
}

/// The LIST_GROUPS answer, ascending by group id.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct ListGroupsResponse<'a> {
    #[serde(borrow)]
    pub groups: Seq<'a, GroupInfo<'a>>,
}

/// DESCRIBE_GROUP.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct DescribeGroupRequest<'a> {
    pub group: &'a str,
}

/// One member in a DESCRIBE_GROUP answer.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct GroupMember<'a> {
    pub member: &'a str,
    pub client_id: &'a str,
    pub session_timeout_ms: u32,
    #[serde(borrow)]
    pub topics: Seq<'a, &'a str>,
    #[serde(borrow)]
    pub assignment: Seq<'a, GroupPartition<'a>>,
}

/// The DESCRIBE_GROUP answer. A group the broker does not keep: `exists = false`, state 0,
/// generation 0, no member.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct DescribeGroupResponse<'a> {
    pub group: &'a str,
    pub exists: bool,
    /// As in [`GroupInfo`].
    pub state: u8,
    pub generation: u32,
    #[serde(borrow)]
    pub strategy: Option<&'a str>,
    #[serde(borrow)]
    pub leader: Option<&'a str>,
    #[serde(borrow)]
    pub members: Seq<'a, GroupMember<'a>>,
}
