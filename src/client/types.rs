//! Owned answers of the client's calls (the wire structs borrow from a frame buffer; these
//! outlive it).

use crate::storage::Record;

/// What the broker said about itself in the HELLO answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerInfo {
    /// The protocol version both sides speak.
    pub version: u8,
    /// The broker's free-text name and version.
    pub server: String,
    /// Largest frame (header included) the broker accepts.
    pub frame_bytes_max: u32,
    /// Largest produce batch the storage accepts (its encoded size, header included).
    pub batch_bytes_max: u32,
    /// Most requests the broker lets one connection have unanswered.
    pub inflight_max: u32,
}

/// A topic and its partition count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub partitions: u32,
}

/// One partition's offset range: `earliest` is the oldest record still stored, `next` is one
/// past the last durable record (so the partition holds `next - earliest` records).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: u32,
    pub earliest: u64,
    pub next: u64,
}

/// A topic with each partition's offset range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicDescription {
    pub name: String,
    pub partitions: Vec<PartitionInfo>,
}

/// Where an acknowledged batch landed: offsets `base_offset..base_offset + count` of
/// `partition`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Produced {
    pub partition: u32,
    pub base_offset: u64,
    pub count: u32,
}

impl Produced {
    /// One past the batch's last offset.
    pub fn next_offset(&self) -> u64 {
        self.base_offset + u64::from(self.count)
    }
}

/// A partition's offset range, as LIST_OFFSETS answers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offsets {
    pub earliest: u64,
    pub next: u64,
}

/// A stored record and its offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedRecord {
    pub offset: u64,
    pub record: Record,
}

/// A FETCH answer: the partition's range at the time and the records from the requested
/// offset on (possibly none, when the long poll ran out).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    pub partition: u32,
    pub earliest: u64,
    pub next: u64,
    pub records: Vec<FetchedRecord>,
}

impl Fetched {
    /// The offset to fetch next: one past the last record returned, or the requested offset
    /// when none was returned (pass it back to [`Client::fetch`](super::Client::fetch)).
    pub fn next_fetch_offset(&self, requested: u64) -> u64 {
        self.records.last().map_or(requested, |r| r.offset + 1)
    }
}

/// One partition in a STATUS answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionStatus {
    pub topic: String,
    pub partition: u32,
    pub earliest: u64,
    pub next: u64,
}

/// The broker's STATUS answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub uptime_ms: u64,
    pub ring_bytes: u64,
    pub ring_used_bytes: u64,
    pub segments_live: u32,
    pub segments_total: u32,
    pub connections: u32,
    pub partitions: Vec<PartitionStatus>,
}

/// The forwarder's link to Kafka in a FORWARDER_STATUS answer (wire `state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForwardLink {
    /// Bootstrapping, fencing and reading the cursors back (0).
    Connecting,
    /// In a session: forwarding (1).
    Connected,
    /// Waiting before the next attempt after an error (2).
    BackingOff,
    /// Another producer holds the transactional id, or the transaction expired (3).
    Fenced,
    /// A state number this client does not know (a newer broker).
    Other(u8),
}

impl ForwardLink {
    /// The state with wire number `code`.
    pub fn from_code(code: u8) -> ForwardLink {
        match code {
            0 => ForwardLink::Connecting,
            1 => ForwardLink::Connected,
            2 => ForwardLink::BackingOff,
            3 => ForwardLink::Fenced,
            n => ForwardLink::Other(n),
        }
    }

    /// The wire number.
    pub fn code(self) -> u8 {
        match self {
            ForwardLink::Connecting => 0,
            ForwardLink::Connected => 1,
            ForwardLink::BackingOff => 2,
            ForwardLink::Fenced => 3,
            ForwardLink::Other(n) => n,
        }
    }

    /// How `outpost status` names it.
    pub fn name(self) -> &'static str {
        match self {
            ForwardLink::Connecting => "connecting",
            ForwardLink::Connected => "connected",
            ForwardLink::BackingOff => "backing off",
            ForwardLink::Fenced => "fenced",
            ForwardLink::Other(_) => "unknown state",
        }
    }
}

/// One forwarded edge partition in a FORWARDER_STATUS answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardPartition {
    /// The edge topic.
    pub topic: String,
    pub partition: u32,
    /// The Kafka topic it goes to.
    pub upstream_topic: String,
    /// The next edge offset to forward (everything below is committed upstream); `None`
    /// until the forwarder has read its cursor back.
    pub position: Option<u64>,
    /// One past the last durable record of the edge partition.
    pub durable_next: u64,
    /// Estimated stored bytes of the records not yet forwarded.
    pub bytes_behind: u64,
    /// Timestamp (Unix ms) of the oldest record not yet forwarded, if any.
    pub oldest_unforwarded_ms: Option<i64>,
    /// Unix ms of the last upstream commit that carried this partition.
    pub last_commit_ms: Option<i64>,
}

impl ForwardPartition {
    /// Durable records not yet committed upstream; `None` while the position is unknown.
    pub fn records_behind(&self) -> Option<u64> {
        self.position.map(|p| self.durable_next.saturating_sub(p))
    }
}

/// The broker's FORWARDER_STATUS answer. `configured` is false when the broker runs no
/// forwarder; everything else is then zero, `None` or empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwarderStatus {
    pub configured: bool,
    pub link: ForwardLink,
    /// The error that ended the last session; `None` again after a commit.
    pub last_error: Option<String>,
    /// Unix ms of the last upstream commit.
    pub last_commit_ms: Option<i64>,
    pub commits: u64,
    pub records_forwarded: u64,
    pub gaps: u64,
    /// By edge topic, then partition.
    pub partitions: Vec<ForwardPartition>,
}
