//! Frame kinds (docs/PROTOCOL.md section 3). Numbers are never reused; ranges are reserved for
//! later layers.

/// What a frame is. `#[non_exhaustive]`: later layers add kinds in their reserved ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
#[non_exhaustive]
pub enum Kind {
    /// Server → client: connection-level error, then close.
    Goodbye = 0x00,
    Hello = 0x01,
    CreateTopic = 0x02,
    ListTopics = 0x03,
    DescribeTopic = 0x04,
    Produce = 0x05,
    Fetch = 0x06,
    ListOffsets = 0x07,
    Status = 0x08,
    /// Idempotent producers (0x10–0x1F; docs/SEMANTICS.md).
    InitProducer = 0x10,
    ProduceIdempotent = 0x11,
    /// Consumer groups (0x20–0x2F; docs/GROUPS.md).
    JoinGroup = 0x20,
    SyncGroup = 0x21,
    Heartbeat = 0x22,
    LeaveGroup = 0x23,
    CommitOffsets = 0x24,
    FetchOffsets = 0x25,
    ListGroups = 0x26,
    DescribeGroup = 0x27,
    /// The forwarder's link and per-partition backlog (first kind of the 0x40–0x4F range).
    /// Exactly-once: outputs and input offsets in one atomic write (0x30–0x3F).
    AtomicWrite = 0x30,
    ForwarderStatus = 0x40,
}

impl Kind {
    /// The kind with this number, if this build knows it.
    pub fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            0x00 => Kind::Goodbye,
            0x01 => Kind::Hello,
            0x02 => Kind::CreateTopic,
            0x03 => Kind::ListTopics,
            0x04 => Kind::DescribeTopic,
            0x05 => Kind::Produce,
            0x06 => Kind::Fetch,
            0x07 => Kind::ListOffsets,
            0x08 => Kind::Status,
            0x10 => Kind::InitProducer,
            0x11 => Kind::ProduceIdempotent,
            0x20 => Kind::JoinGroup,
            0x21 => Kind::SyncGroup,
            0x22 => Kind::Heartbeat,
            0x23 => Kind::LeaveGroup,
            0x24 => Kind::CommitOffsets,
            0x25 => Kind::FetchOffsets,
            0x26 => Kind::ListGroups,
            0x27 => Kind::DescribeGroup,
            0x30 => Kind::AtomicWrite,
            0x40 => Kind::ForwarderStatus,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Goodbye => "GOODBYE",
            Kind::Hello => "HELLO",
            Kind::CreateTopic => "CREATE_TOPIC",
            Kind::ListTopics => "LIST_TOPICS",
            Kind::DescribeTopic => "DESCRIBE_TOPIC",
            Kind::Produce => "PRODUCE",
            Kind::Fetch => "FETCH",
            Kind::ListOffsets => "LIST_OFFSETS",
            Kind::Status => "STATUS",
            Kind::InitProducer => "INIT_PRODUCER",
            Kind::ProduceIdempotent => "PRODUCE_IDEMPOTENT",
            Kind::AtomicWrite => "ATOMIC_WRITE",
            Kind::JoinGroup => "JOIN_GROUP",
            Kind::SyncGroup => "SYNC_GROUP",
            Kind::Heartbeat => "HEARTBEAT",
            Kind::LeaveGroup => "LEAVE_GROUP",
            Kind::CommitOffsets => "COMMIT_OFFSETS",
            Kind::FetchOffsets => "FETCH_OFFSETS",
            Kind::ListGroups => "LIST_GROUPS",
            Kind::DescribeGroup => "DESCRIBE_GROUP",
            Kind::ForwarderStatus => "FORWARDER_STATUS",
        }
    }
}
