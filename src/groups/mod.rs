//! Consumer groups (DESIGN.md promise 4; docs/GROUPS.md): the coordinator of Kafka's classic
//! group protocol with broker-side assignment, as a pure state machine, and the codec of the
//! committed-offset entries the broker keeps in the ring's metadata.
//!
//! - [`coordinator`]: groups, members, generations, joins, heartbeats, leaves, session expiry,
//!   commit authorization; time comes in as `now_ms`;
//! - [`assign`]: the `range`, `roundrobin` and `sticky` assignors (pure functions);
//! - [`offsets`]: the `GROUP_OFFSETS` metadata entry (key and value bytes).
//!
//! Not here: the request handlers (kinds 0x20–0x2F), the wire messages, and the storage of
//! offsets; the broker drives this module.

pub mod assign;
pub mod coordinator;
pub mod offsets;

pub use assign::{Assignment, PartitionCounts, Strategy, Subscription, TopicPartition};
pub use coordinator::{
    Committer, Completion, Coordinator, Generation, GroupConfig, GroupDescription, GroupError,
    GroupId, GroupState, JoinReply, JoinRequest, JoinResult, JoinTicket, MemberDescription,
    MemberId,
};
pub use offsets::{CommittedOffset, OffsetCodecError};
