//! The topic registry: which topics exist, how many partitions each has, and which storage
//! partitions hold them. Durable in the ring's metadata (namespace `TOPICS`); kept in RAM,
//! bounded by `topics_max` (docs/BROKER.md, "Topic registry").
//!
//! Entry: key = the topic name's bytes; value = 8 bytes, `first: u32 LE` (the storage
//! `PartitionId` of partition 0) then `partitions: u32 LE`. Partition `p` of the topic is the
//! storage partition `first + p`. Ids are allocated contiguously: a new topic starts at the
//! largest `first + partitions` of all topics.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use crate::protocol::ErrorCode;
use crate::storage::flash::Flash;
use crate::storage::meta::{MetaState, namespace};
use crate::storage::ring::error_chain;
use crate::storage::{AppendError, Log, MetaOp, PartitionId};

/// Longest topic name, in bytes (Kafka's rule).
pub const TOPIC_NAME_BYTES_MAX: usize = 249;
/// Bytes of a registry entry's value.
pub const ENTRY_VALUE_BYTES: usize = 8;

/// Whether every byte is one of Kafka's name characters, `[A-Za-z0-9._-]` (topic names; the
/// forwarder's gateway ids follow the same rule).
pub fn is_name(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// Checks a topic name: 1–249 bytes of `[A-Za-z0-9._-]`, not `.` or `..`. Returns why not.
pub fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("a topic name cannot be empty");
    }
    if name.len() > TOPIC_NAME_BYTES_MAX {
        return Err("a topic name is at most 249 bytes");
    }
    if name == "." || name == ".." {
        return Err("a topic name cannot be \".\" or \"..\"");
    }
    if !is_name(name) {
        return Err("a topic name may only contain ASCII letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

/// The registry value of a topic.
pub fn encode_entry(first: PartitionId, partitions: u32) -> [u8; ENTRY_VALUE_BYTES] {
    let mut v = [0u8; ENTRY_VALUE_BYTES];
    v[0..4].copy_from_slice(&first.0.to_le_bytes());
    v[4..8].copy_from_slice(&partitions.to_le_bytes());
    v
}

/// `(first, partitions)` from a registry value, if it has the right length.
pub fn decode_entry(value: &[u8]) -> Option<(PartitionId, u32)> {
    let v: &[u8; ENTRY_VALUE_BYTES] = value.try_into().ok()?;
    let first = u32::from_le_bytes([v[0], v[1], v[2], v[3]]);
    let partitions = u32::from_le_bytes([v[4], v[5], v[6], v[7]]);
    Some((PartitionId(first), partitions))
}

/// One topic.
#[derive(Debug)]
pub struct Topic {
    name: String,
    first: u32,
    partitions: u32,
    /// Next partition for an unkeyed batch without an explicit partition.
    round_robin: AtomicU32,
    /// Per partition: released for reclaim up to the end of time since start (local topics
    /// are released at once; see `release.rs`).
    released: Box<[AtomicBool]>,
}

impl Topic {
    fn new(name: String, first: u32, partitions: u32) -> Topic {
        Topic {
            name,
            first,
            partitions,
            round_robin: AtomicU32::new(0),
            released: (0..partitions).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// The storage partition of partition 0.
    pub fn first(&self) -> PartitionId {
        PartitionId(self.first)
    }

    /// The storage partition of partition `p`, if the topic has it.
    pub fn partition_id(&self, p: u32) -> Option<PartitionId> {
        (p < self.partitions).then(|| PartitionId(self.first + p))
    }

    /// The partition for the next unkeyed batch (round robin, per topic).
    pub fn next_round_robin(&self) -> u32 {
        self.round_robin.fetch_add(1, Ordering::Relaxed) % self.partitions
    }

    pub(crate) fn is_released(&self, p: u32) -> bool {
        self.released
            .get(p as usize)
            .is_some_and(|r| r.load(Ordering::Relaxed))
    }

    /// Marks partition `p` released; true if it was not yet.
    fn set_released(&self, p: u32) -> bool {
        self.released
            .get(p as usize)
            .is_some_and(|r| !r.swap(true, Ordering::Relaxed))
    }
}

/// The limits creation checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub topics_max: u32,
    pub partitions_per_topic_max: u32,
    /// The ring's `partitions_max`: storage partition ids stay below it.
    pub partitions_max: u32,
}

/// A registry entry in the ring's metadata that does not make sense (the broker refuses to
/// start rather than guess which topic owns which records).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryError {
    /// The entry's key, lossily as text.
    pub topic: String,
    pub reason: String,
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "topic registry entry {:?} in the ring's metadata is invalid: {}",
            self.topic, self.reason
        )
    }
}

impl std::error::Error for RegistryError {}

/// Why a topic was not created.
#[derive(Debug)]
#[non_exhaustive]
pub enum CreateError {
    InvalidName(&'static str),
    InvalidPartitionCount {
        partitions: u32,
        max: u32,
    },
    Exists,
    TooManyTopics {
        topics_max: u32,
    },
    TooManyPartitions {
        needed: u64,
        partitions_max: u32,
    },
    /// The metadata append failed; nothing was created.
    Storage(AppendError),
}

impl CreateError {
    /// The wire error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            CreateError::InvalidName(_) => ErrorCode::InvalidTopicName,
            CreateError::InvalidPartitionCount { .. } => ErrorCode::InvalidPartitionCount,
            CreateError::Exists => ErrorCode::TopicExists,
            CreateError::TooManyTopics { .. } => ErrorCode::TooManyTopics,
            CreateError::TooManyPartitions { .. } => ErrorCode::TooManyPartitions,
            CreateError::Storage(AppendError::MetaFull { .. }) => ErrorCode::TooManyTopics,
            CreateError::Storage(AppendError::Closed) => ErrorCode::ShuttingDown,
            CreateError::Storage(_) => ErrorCode::StorageFailed,
        }
    }
}

impl fmt::Display for CreateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CreateError::InvalidName(why) => f.write_str(why),
            CreateError::InvalidPartitionCount { partitions, max } => write!(
                f,
                "a topic has 1 to {max} partitions (partitions_per_topic_max), not {partitions}"
            ),
            CreateError::Exists => write!(f, "the topic exists"),
            CreateError::TooManyTopics { topics_max } => {
                write!(f, "topics_max ({topics_max}) topics exist")
            }
            CreateError::TooManyPartitions {
                needed,
                partitions_max,
            } => write!(
                f,
                "the ring's partitions_max ({partitions_max}) would be exceeded ({needed} \
                 partitions over all topics)"
            ),
            CreateError::Storage(e) => write!(f, "cannot record the topic: {}", error_chain(e)),
        }
    }
}

impl std::error::Error for CreateError {}

/// The registry. Lookups take a read lock on a map; creations are serialized by an async
/// mutex held across the durable metadata append, and the map is updated only after it.
pub struct Topics {
    map: RwLock<BTreeMap<String, Arc<Topic>>>,
    create: smol::lock::Mutex<()>,
    limits: Limits,
    /// Partitions (of all topics) not marked released yet.
    unreleased: AtomicUsize,
}

impl fmt::Debug for Topics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Topics")
            .field("topics", &self.list())
            .field("limits", &self.limits)
            .finish()
    }
}

impl Topics {
    /// Loads the registry from the ring's metadata (before `Log::start`). Topics beyond the
    /// current limits (written under larger ones) are kept: they exist.
    pub fn load(meta: &MetaState, limits: Limits) -> Result<Topics, RegistryError> {
        let mut map = BTreeMap::new();
        let mut ranges: Vec<(u64, u64, String)> = Vec::new();
        for (key, value) in meta.iter_namespace(namespace::TOPICS) {
            let bad = |reason: String| RegistryError {
                topic: String::from_utf8_lossy(key).into_owned(),
                reason,
            };
            let name = std::str::from_utf8(key)
                .map_err(|_| bad("the name is not UTF-8".into()))?
                .to_owned();
            check_name(&name).map_err(|why| bad(why.into()))?;
            let (first, partitions) = decode_entry(value).ok_or_else(|| {
                bad(format!(
                    "the value has {} bytes, expected {ENTRY_VALUE_BYTES}",
                    value.len()
                ))
            })?;
            if partitions == 0 {
                return Err(bad("zero partitions".into()));
            }
            let end = u64::from(first.0) + u64::from(partitions);
            if end > u64::from(PartitionId::NONE.0) {
                return Err(bad(format!(
                    "partitions {}..{end} run past the largest partition id",
                    first.0
                )));
            }
            if let Some((_, _, other)) = ranges
                .iter()
                .find(|(s, e, _)| u64::from(first.0) < *e && *s < end)
            {
                return Err(bad(format!(
                    "its storage partitions {}..{end} overlap those of topic {other:?}",
                    first.0
                )));
            }
            ranges.push((u64::from(first.0), end, name.clone()));
            if end > u64::from(limits.partitions_max) {
                log::warn!(
                    "topic {name:?} uses storage partitions {}..{end}, beyond partitions_max \
                     ({}): appends to the partitions past it will be refused",
                    first.0,
                    limits.partitions_max
                );
            }
            let topic = Arc::new(Topic::new(name.clone(), first.0, partitions));
            map.insert(name, topic);
        }
        if map.len() > limits.topics_max as usize {
            log::warn!(
                "{} topics exist, more than topics_max ({}): no topic can be created",
                map.len(),
                limits.topics_max
            );
        }
        let unreleased = map.values().map(|t| t.partitions as usize).sum();
        Ok(Topics {
            map: RwLock::new(map),
            create: smol::lock::Mutex::new(()),
            limits,
            unreleased: AtomicUsize::new(unreleased),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Topic>>> {
        self.map
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.read().get(name).cloned()
    }

    /// Every topic, ascending by name.
    pub fn list(&self) -> Vec<Arc<Topic>> {
        self.read().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Partitions not marked released yet (see [`Topics::mark_released`]).
    pub(crate) fn unreleased(&self) -> usize {
        self.unreleased.load(Ordering::Relaxed)
    }

    /// Marks partition `p` of `topic` released for the rest of the run.
    pub(crate) fn mark_released(&self, topic: &Topic, p: u32) {
        if topic.set_released(p) {
            self.unreleased.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The storage partition id the next topic starts at.
    fn next_first(map: &BTreeMap<String, Arc<Topic>>) -> u64 {
        map.values()
            .map(|t| u64::from(t.first) + u64::from(t.partitions))
            .max()
            .unwrap_or(0)
    }

    /// Creates a topic: validates, then records it durably (`append_meta` returns after the
    /// sync), then makes it visible. Creations are serialized.
    pub async fn create<F: Flash>(
        &self,
        log: &Log<F>,
        name: &str,
        partitions: u32,
    ) -> Result<Arc<Topic>, CreateError> {
        check_name(name).map_err(CreateError::InvalidName)?;
        let max = self.limits.partitions_per_topic_max;
        if partitions == 0 || partitions > max {
            return Err(CreateError::InvalidPartitionCount { partitions, max });
        }
        let _serial = self.create.lock().await;
        let first = {
            let map = self.read();
            if map.contains_key(name) {
                return Err(CreateError::Exists);
            }
            if map.len() >= self.limits.topics_max as usize {
                return Err(CreateError::TooManyTopics {
                    topics_max: self.limits.topics_max,
                });
            }
            let first = Self::next_first(&map);
            let needed = first + u64::from(partitions);
            if needed > u64::from(self.limits.partitions_max) {
                return Err(CreateError::TooManyPartitions {
                    needed,
                    partitions_max: self.limits.partitions_max,
                });
            }
            // Below partitions_max, a u32: checked just above.
            first as u32
        };
        let op = MetaOp::Put {
            namespace: namespace::TOPICS,
            key: name.as_bytes().to_vec(),
            value: encode_entry(PartitionId(first), partitions).to_vec(),
        };
        log.append_meta(vec![op])
            .await
            .map_err(CreateError::Storage)?;
        let topic = Arc::new(Topic::new(name.to_owned(), first, partitions));
        self.unreleased
            .fetch_add(partitions as usize, Ordering::Relaxed);
        self.map
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name.to_owned(), topic.clone());
        log::info!(
            "created topic {name:?} with {partitions} partition(s) (storage partitions \
             {first}..{})",
            u64::from(first) + u64::from(partitions)
        );
        Ok(topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::flash::{Geometry, SimFlash};
    use crate::storage::{CorruptionPolicy, FullPolicy, Ring, RingConfig};

    fn limits() -> Limits {
        Limits {
            topics_max: 3,
            partitions_per_topic_max: 4,
            partitions_max: 8,
        }
    }

    fn put(name: &[u8], value: &[u8]) -> MetaOp {
        MetaOp::Put {
            namespace: namespace::TOPICS,
            key: name.to_vec(),
            value: value.to_vec(),
        }
    }

    #[test]
    fn names_follow_kafka_rules() {
        for ok in ["a", "orders", "a.b_c-D9", &"x".repeat(249)] {
            assert_eq!(check_name(ok), Ok(()), "{ok}");
        }
        for bad in ["", ".", "..", "a b", "é", "a/b", &"x".repeat(250)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn entry_round_trips_and_pins_its_bytes() {
        let v = encode_entry(PartitionId(0x0102_0304), 7);
        assert_eq!(v, [4, 3, 2, 1, 7, 0, 0, 0]);
        assert_eq!(decode_entry(&v), Some((PartitionId(0x0102_0304), 7)));
        assert_eq!(decode_entry(&v[..7]), None);
    }

    #[test]
    fn load_reads_entries_and_refuses_nonsense() {
        let mut meta = MetaState::default();
        meta.apply(&[
            put(b"b", &encode_entry(PartitionId(2), 3)),
            put(b"a", &encode_entry(PartitionId(0), 2)),
        ]);
        let t = Topics::load(&meta, limits()).unwrap();
        let names: Vec<_> = t.list().iter().map(|t| t.name().to_owned()).collect();
        assert_eq!(names, ["a", "b"]);
        let b = t.get("b").unwrap();
        assert_eq!(b.partition_id(2), Some(PartitionId(4)));
        assert_eq!(b.partition_id(3), None);

        let mut overlap = meta.clone();
        overlap.apply(&[put(b"c", &encode_entry(PartitionId(1), 1))]);
        let e = Topics::load(&overlap, limits()).unwrap_err();
        assert!(e.reason.contains("overlap"), "{e}");

        let mut short = MetaState::default();
        short.apply(&[put(b"c", &[1, 2, 3])]);
        assert!(Topics::load(&short, limits()).is_err());

        let mut bad_name = MetaState::default();
        bad_name.apply(&[put(b"a b", &encode_entry(PartitionId(0), 1))]);
        assert!(Topics::load(&bad_name, limits()).is_err());
    }

    fn ring_config() -> RingConfig {
        RingConfig {
            erase_block_bytes: 4096,
            program_unit_bytes: 512,
            ring_bytes: 8 * 65536,
            segment_bytes: 65536,
            full_policy: FullPolicy::Reject,
            corruption_policy: CorruptionPolicy::Refuse,
            group_bytes_max: 32768,
            batch_bytes_max: 4096,
            meta_bytes_max: 1024,
            partitions_max: 8,
            index_interval_bytes: 4096,
            read_chunk_bytes: 8192,
            append_queue_max: 64,
            producers_max: 64,
        }
    }

    #[test]
    fn create_is_durable_contiguous_and_limited() {
        let c = ring_config();
        let g = Geometry::new(c.erase_block_bytes, c.program_unit_bytes, c.ring_bytes).unwrap();
        let flash = Arc::new(SimFlash::new(g));
        let (ring, _) = Ring::open(flash.clone(), c.clone()).unwrap();
        let topics = Topics::load(ring.meta(), limits()).unwrap();
        let log = Log::start(ring).unwrap();
        smol::block_on(async {
            let a = topics.create(&log, "a", 4).await.unwrap();
            assert_eq!(a.first(), PartitionId(0));
            let b = topics.create(&log, "b", 3).await.unwrap();
            assert_eq!(b.first(), PartitionId(4));
            let code = |r: Result<Arc<Topic>, CreateError>| r.unwrap_err().code();
            assert_eq!(
                code(topics.create(&log, "a", 1).await),
                ErrorCode::TopicExists
            );
            assert_eq!(
                code(topics.create(&log, "c", 2).await),
                ErrorCode::TooManyPartitions
            );
            assert_eq!(
                code(topics.create(&log, "c", 5).await),
                ErrorCode::InvalidPartitionCount
            );
            assert_eq!(
                code(topics.create(&log, "c", 0).await),
                ErrorCode::InvalidPartitionCount
            );
            assert_eq!(
                code(topics.create(&log, "c/d", 1).await),
                ErrorCode::InvalidTopicName
            );
            topics.create(&log, "c", 1).await.unwrap();
            assert_eq!(
                code(topics.create(&log, "d", 1).await),
                ErrorCode::TooManyTopics
            );
        });
        log.close();
        // The entries are durable in the ring's metadata: a restart loads them.
        let image = SimFlash::from_image(g, flash.durable_image());
        let (ring, _) = Ring::open(image, c).unwrap();
        let again = Topics::load(ring.meta(), limits()).unwrap();
        let loaded: Vec<_> = again
            .list()
            .iter()
            .map(|t| (t.name().to_owned(), t.first(), t.partitions()))
            .collect();
        assert_eq!(
            loaded,
            [
                ("a".to_owned(), PartitionId(0), 4),
                ("b".to_owned(), PartitionId(4), 3),
                ("c".to_owned(), PartitionId(7), 1),
            ]
        );
    }
}
