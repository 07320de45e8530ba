//! The crash-safe ring log. See `docs/FORMAT.md` for every byte on the medium and the crash
//! analysis this code follows.

pub mod config;
pub mod error;
pub mod flash;
pub mod format;
pub mod index;
pub mod log;
pub mod meta;
pub mod producer;
pub mod reader;
pub mod recovery;
pub mod ring;
mod scan;
pub mod types;

pub use config::{ConfigError, CorruptionPolicy, FullPolicy, RingConfig};
pub use error::{AppendError, DamageAt, OpenError, ReadError};
pub use format::{MetaOp, Record};
pub use log::{Acks, Log, Pending};
pub use reader::{ReadBatch, Reader};
pub use recovery::RecoveryReport;
pub use ring::{AppendBody, Appended, AtomicPartBody, DropEvent, GroupResult, PartAppended, Ring};
pub use types::{GroupSeq, Offset, PartitionId, ProducerEpoch, ProducerId, SegmentSeq, Sequence};
