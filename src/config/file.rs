//! The config file's schema (`config/outpost.toml` is the shipped, annotated example).
//!
//! Every table refuses unknown keys: a misspelt `segmnet_bytes` must be an error, not a
//! setting silently left at its default on a gateway nobody is watching.

use std::path::PathBuf;

use serde::Deserialize;

use super::bytesize::ByteSize;
use crate::storage::{CorruptionPolicy, FullPolicy};

/// The whole config file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    /// An embedded board's name or a path to a board file. Optional here only because
    /// `--board` can supply it; one of the two must.
    pub board: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub listen_addr: Option<String>,
    /// Required: the two policies are decisions an operator must make, not defaults to fall
    /// into (promise 6).
    pub storage: StorageSection,
    /// Optional: every key has a default.
    #[serde(default)]
    pub broker: BrokerSection,
    #[serde(default)]
    pub log: LogSection,
    /// Optional: every key has a default (docs/GROUPS.md section 1.5).
    #[serde(default)]
    pub groups: GroupsSection,
    /// Optional: without it nothing is forwarded (every topic is local).
    pub forwarder: Option<ForwarderSection>,
}

/// `[forwarder]` and its `[[forwarder.route]]` tables (docs/FORWARDING.md).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ForwarderSection {
    pub bootstrap_servers: Vec<String>,
    pub gateway_id: String,
    pub transactional_id: Option<String>,
    pub cursor_topic: Option<String>,
    pub batch_bytes_max: Option<ByteSize>,
    pub upstream_batch_bytes_max: Option<ByteSize>,
    pub linger_ms: Option<u64>,
    pub retry_ms_min: Option<u64>,
    pub retry_ms_max: Option<u64>,
    pub request_timeout_ms: Option<u64>,
    pub transaction_timeout_ms: Option<u64>,
    pub response_bytes_max: Option<ByteSize>,
    #[serde(default)]
    pub route: Vec<RouteSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteSection {
    pub edge_topic: String,
    pub upstream_topic: String,
    pub partitioning: PartitioningName,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum PartitioningName {
    Same,
    KeyHash,
}

/// `[storage]`: the ring's policies and limits. All sizes accept a `ByteSize`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StorageSection {
    pub full_policy: FullPolicyName,
    pub corruption_policy: CorruptionPolicyName,
    pub ring_bytes: Option<ByteSize>,
    pub segment_bytes: Option<ByteSize>,
    pub group_bytes_max: Option<ByteSize>,
    pub batch_bytes_max: Option<ByteSize>,
    pub meta_bytes_max: Option<ByteSize>,
    pub partitions_max: Option<u32>,
    pub index_interval_bytes: Option<ByteSize>,
    pub read_chunk_bytes: Option<ByteSize>,
    pub append_queue_max: Option<u32>,
    pub producers_max: Option<u32>,
}

/// `[broker]`: the network server's limits. Every key is optional (defaults in
/// `BrokerConfig`).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct BrokerSection {
    pub connections_max: Option<u32>,
    pub inflight_max: Option<u32>,
    pub frame_bytes_max: Option<ByteSize>,
    pub topics_max: Option<u32>,
    pub partitions_per_topic_max: Option<u32>,
    pub idle_timeout_ms: Option<u64>,
    pub fetch_wait_ms_max: Option<u32>,
    pub fetch_bytes_max: Option<ByteSize>,
}

/// `[groups]`: consumer-group limits and timeouts. Every key is optional (defaults in
/// `GroupConfig`).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct GroupsSection {
    pub session_timeout_ms_min: Option<u64>,
    pub session_timeout_ms_max: Option<u64>,
    pub groups_max: Option<u32>,
    pub members_per_group_max: Option<u32>,
    pub topics_per_member_max: Option<u32>,
    pub rebalance_timeout_ms: Option<u64>,
}

/// `[log]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogSection {
    #[serde(default)]
    pub level: LevelName,
}

/// `full_policy` as written in the file. serde refuses any other string and lists these.
#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum FullPolicyName {
    Reject,
    DropOldest,
}

impl From<FullPolicyName> for FullPolicy {
    fn from(name: FullPolicyName) -> FullPolicy {
        match name {
            FullPolicyName::Reject => FullPolicy::Reject,
            FullPolicyName::DropOldest => FullPolicy::DropOldest,
        }
    }
}

/// `corruption_policy` as written in the file.
#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum CorruptionPolicyName {
    Refuse,
    SkipSegment,
}

impl From<CorruptionPolicyName> for CorruptionPolicy {
    fn from(name: CorruptionPolicyName) -> CorruptionPolicy {
        match name {
            CorruptionPolicyName::Refuse => CorruptionPolicy::Refuse,
            CorruptionPolicyName::SkipSegment => CorruptionPolicy::SkipSegment,
        }
    }
}

/// `[log] level` as written in the file.
#[derive(Deserialize, Clone, Copy, Default)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum LevelName {
    Off,
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl From<LevelName> for log::LevelFilter {
    fn from(name: LevelName) -> log::LevelFilter {
        match name {
            LevelName::Off => log::LevelFilter::Off,
            LevelName::Error => log::LevelFilter::Error,
            LevelName::Warn => log::LevelFilter::Warn,
            LevelName::Info => log::LevelFilter::Info,
            LevelName::Debug => log::LevelFilter::Debug,
            LevelName::Trace => log::LevelFilter::Trace,
        }
    }
}
