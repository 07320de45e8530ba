//! Wire error codes (docs/PROTOCOL.md section 5). Every number is explicit and never reused.

use core::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
#[non_exhaustive]
pub enum ErrorCode {
    Ok = 0,
    Malformed = 1,
    FrameTooLarge = 2,
    HeaderCrc = 3,
    UnsupportedVersion = 4,
    UnknownKind = 5,
    BadBody = 6,
    UnknownTopic = 7,
    UnknownPartition = 8,
    TopicExists = 9,
    InvalidTopicName = 10,
    InvalidPartitionCount = 11,
    BatchTooLarge = 12,
    BufferFull = 13,
    OffsetOutOfRange = 14,
    TooManyTopics = 15,
    TooManyPartitions = 16,
    TooManyConnections = 17,
    TooManyInFlight = 18,
    StorageFailed = 19,
    ShuttingDown = 20,
    InvalidRecord = 21,
    EmptyBatch = 22,
    // Idempotent producers (40–59; docs/SEMANTICS.md).
    OutOfOrderSequence = 40,
    ProducerFenced = 41,
    UnknownProducerId = 42,
    DuplicateSequence = 43,
    InvalidProducerName = 44,
    SequenceExhausted = 45,
    ProducerStateFull = 46,
    InvalidAtomicWrite = 47,
    // Consumer groups (60–79; docs/GROUPS.md).
    UnknownMemberId = 60,
    IllegalGeneration = 61,
    RebalanceInProgress = 62,
    InconsistentGroupProtocol = 63,
    GroupMaxSizeReached = 64,
    InvalidSessionTimeout = 65,
    InvalidGroupId = 66,
    TooManyGroups = 67,
    OffsetMetadataTooLarge = 68,
    OffsetAheadOfLog = 69,
    SubscriptionTooLarge = 70,
    InvalidClientId = 71,
    OffsetStoreFull = 72,
}

impl ErrorCode {
    /// Every code this build knows, for tests and docs.
    pub const ALL: [ErrorCode; 44] = [
        ErrorCode::Ok,
        ErrorCode::Malformed,
        ErrorCode::FrameTooLarge,
        ErrorCode::HeaderCrc,
        ErrorCode::UnsupportedVersion,
        ErrorCode::UnknownKind,
        ErrorCode::BadBody,
        ErrorCode::UnknownTopic,
        ErrorCode::UnknownPartition,
        ErrorCode::TopicExists,
        ErrorCode::InvalidTopicName,
        ErrorCode::InvalidPartitionCount,
        ErrorCode::BatchTooLarge,
        ErrorCode::BufferFull,
        ErrorCode::OffsetOutOfRange,
        ErrorCode::TooManyTopics,
        ErrorCode::TooManyPartitions,
        ErrorCode::TooManyConnections,
        ErrorCode::TooManyInFlight,
        ErrorCode::StorageFailed,
        ErrorCode::ShuttingDown,
        ErrorCode::InvalidRecord,
        ErrorCode::EmptyBatch,
        ErrorCode::OutOfOrderSequence,
        ErrorCode::ProducerFenced,
        ErrorCode::UnknownProducerId,
        ErrorCode::DuplicateSequence,
        ErrorCode::InvalidProducerName,
        ErrorCode::SequenceExhausted,
        ErrorCode::ProducerStateFull,
        ErrorCode::InvalidAtomicWrite,
        ErrorCode::UnknownMemberId,
        ErrorCode::IllegalGeneration,
        ErrorCode::RebalanceInProgress,
        ErrorCode::InconsistentGroupProtocol,
        ErrorCode::GroupMaxSizeReached,
        ErrorCode::InvalidSessionTimeout,
        ErrorCode::InvalidGroupId,
        ErrorCode::TooManyGroups,
        ErrorCode::OffsetMetadataTooLarge,
        ErrorCode::OffsetAheadOfLog,
        ErrorCode::SubscriptionTooLarge,
        ErrorCode::InvalidClientId,
        ErrorCode::OffsetStoreFull,
    ];

    pub fn from_u16(v: u16) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|c| *c as u16 == v)
    }

    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::Ok => "OK",
            ErrorCode::Malformed => "MALFORMED",
            ErrorCode::FrameTooLarge => "FRAME_TOO_LARGE",
            ErrorCode::HeaderCrc => "HEADER_CRC",
            ErrorCode::UnsupportedVersion => "UNSUPPORTED_VERSION",
            ErrorCode::UnknownKind => "UNKNOWN_KIND",
            ErrorCode::BadBody => "BAD_BODY",
            ErrorCode::UnknownTopic => "UNKNOWN_TOPIC",
            ErrorCode::UnknownPartition => "UNKNOWN_PARTITION",
            ErrorCode::TopicExists => "TOPIC_EXISTS",
            ErrorCode::InvalidTopicName => "INVALID_TOPIC_NAME",
            ErrorCode::InvalidPartitionCount => "INVALID_PARTITION_COUNT",
            ErrorCode::BatchTooLarge => "BATCH_TOO_LARGE",
            ErrorCode::BufferFull => "BUFFER_FULL",
            ErrorCode::OffsetOutOfRange => "OFFSET_OUT_OF_RANGE",
            ErrorCode::TooManyTopics => "TOO_MANY_TOPICS",
            ErrorCode::TooManyPartitions => "TOO_MANY_PARTITIONS",
            ErrorCode::TooManyConnections => "TOO_MANY_CONNECTIONS",
            ErrorCode::TooManyInFlight => "TOO_MANY_IN_FLIGHT",
            ErrorCode::StorageFailed => "STORAGE_FAILED",
            ErrorCode::ShuttingDown => "SHUTTING_DOWN",
            ErrorCode::InvalidRecord => "INVALID_RECORD",
            ErrorCode::EmptyBatch => "EMPTY_BATCH",
            ErrorCode::OutOfOrderSequence => "OUT_OF_ORDER_SEQUENCE",
            ErrorCode::ProducerFenced => "PRODUCER_FENCED",
            ErrorCode::UnknownProducerId => "UNKNOWN_PRODUCER_ID",
            ErrorCode::DuplicateSequence => "DUPLICATE_SEQUENCE",
            ErrorCode::InvalidProducerName => "INVALID_PRODUCER_NAME",
            ErrorCode::SequenceExhausted => "SEQUENCE_EXHAUSTED",
            ErrorCode::ProducerStateFull => "PRODUCER_STATE_FULL",
            ErrorCode::InvalidAtomicWrite => "INVALID_ATOMIC_WRITE",
            ErrorCode::UnknownMemberId => "UNKNOWN_MEMBER_ID",
            ErrorCode::IllegalGeneration => "ILLEGAL_GENERATION",
            ErrorCode::RebalanceInProgress => "REBALANCE_IN_PROGRESS",
            ErrorCode::InconsistentGroupProtocol => "INCONSISTENT_GROUP_PROTOCOL",
            ErrorCode::GroupMaxSizeReached => "GROUP_MAX_SIZE_REACHED",
            ErrorCode::InvalidSessionTimeout => "INVALID_SESSION_TIMEOUT",
            ErrorCode::InvalidGroupId => "INVALID_GROUP_ID",
            ErrorCode::TooManyGroups => "TOO_MANY_GROUPS",
            ErrorCode::OffsetMetadataTooLarge => "OFFSET_METADATA_TOO_LARGE",
            ErrorCode::OffsetAheadOfLog => "OFFSET_AHEAD_OF_LOG",
            ErrorCode::SubscriptionTooLarge => "SUBSCRIPTION_TOO_LARGE",
            ErrorCode::InvalidClientId => "INVALID_CLIENT_ID",
            ErrorCode::OffsetStoreFull => "OFFSET_STORE_FULL",
        }
    }

    /// Whether the server closes the connection after sending this error.
    pub fn closes_connection(self) -> bool {
        matches!(
            self,
            ErrorCode::Malformed
                | ErrorCode::FrameTooLarge
                | ErrorCode::HeaderCrc
                | ErrorCode::TooManyConnections
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), *self as u16)
    }
}
