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
