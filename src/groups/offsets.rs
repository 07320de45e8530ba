//! The committed-offset entry of a consumer group, as the broker keeps it in the ring's
//! metadata under namespace `GROUP_OFFSETS` (3) (docs/GROUPS.md section 5; docs/FORMAT.md
//! section 2.9). Pure codec, pinned by a golden test.
//!
//! Key: `group` `00` `topic` `00` `partition` (u32 **big-endian**, so a group's entries sort
//! by topic, then partition number). Neither a group id nor a topic name contains `00`, so all
//! of a group's entries share the prefix `group 00` ([`group_prefix`]).
//!
//! Value (version 1): `version` u8 = 1, `offset` u64 LE, `commit_timestamp_ms` u64 LE,
//! `metadata_len` u16 LE, `metadata` (at most [`METADATA_BYTES_MAX`] bytes).

use super::coordinator::{GroupError, GroupId, TOPIC_NAME_BYTES_MAX};
use crate::storage::Offset;

pub const VERSION: u8 = 1;
/// Bytes of a value before its metadata.
pub const VALUE_HEADER_BYTES: usize = 19;
/// Longest metadata string, in bytes (Kafka's `offset.metadata.max.bytes` default).
pub const METADATA_BYTES_MAX: usize = 4096;
/// Longest key: a 249-byte group, a 249-byte topic, two separators, the partition.
pub const KEY_BYTES_MAX: usize = 249 + 1 + 249 + 1 + 4;

/// Which partition's offset an entry holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetKey {
    pub group: GroupId,
    pub topic: String,
    pub partition: u32,
}

/// A committed offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The next offset the group will consume in the partition (Kafka's meaning): every
    /// record below it is processed.
    pub offset: Offset,
    /// When the broker accepted the commit (wall clock, ms since the Unix epoch).
    pub commit_timestamp_ms: u64,
    /// The client's free-form metadata; empty when it sent none.
    pub metadata: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OffsetCodecError {
    /// Kafka's `OFFSET_METADATA_TOO_LARGE`.
    MetadataTooLarge { bytes: usize },
    /// The topic cannot be in a key (empty, too long, or contains NUL).
    InvalidTopic(&'static str),
    /// A stored key that is not `group 00 topic 00 partition`.
    BadKey(&'static str),
    /// A stored key whose group part is not a group id.
    BadGroupId(GroupError),
    /// A stored value whose length does not match its `metadata_len`.
    ValueLength { bytes: usize },
    /// Written by a newer outpost: never guessed at.
    Version(u8),
}

impl OffsetCodecError {
    /// The name a client sees.
    pub fn name(&self) -> &'static str {
        match self {
            OffsetCodecError::MetadataTooLarge { .. } => "OFFSET_METADATA_TOO_LARGE",
            OffsetCodecError::InvalidTopic(_) => "INVALID_TOPIC_EXCEPTION",
            _ => "CORRUPT_OFFSET_ENTRY",
        }
    }
}

impl std::fmt::Display for OffsetCodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OffsetCodecError::MetadataTooLarge { bytes } => write!(
                f,
                "offset metadata is {bytes} bytes; at most {METADATA_BYTES_MAX}"
            ),
            OffsetCodecError::InvalidTopic(reason) => {
                write!(f, "invalid topic in offset key: {reason}")
            }
            OffsetCodecError::BadKey(reason) => write!(f, "bad group offset key: {reason}"),
            OffsetCodecError::BadGroupId(e) => write!(f, "bad group offset key: {e}"),
            OffsetCodecError::ValueLength { bytes } => write!(
                f,
                "a group offset value of {bytes} bytes does not match its metadata length"
            ),
            OffsetCodecError::Version(v) => write!(
                f,
                "group offset version {v} is newer than this outpost's ({VERSION}): upgrade outpost"
            ),
        }
    }
}

impl std::error::Error for OffsetCodecError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OffsetCodecError::BadGroupId(e) => Some(e),
            _ => None,
        }
    }
}

fn check_topic(topic: &str) -> Result<(), OffsetCodecError> {
    if topic.is_empty() {
        Err(OffsetCodecError::InvalidTopic(
            "a topic name cannot be empty",
        ))
    } else if topic.len() > TOPIC_NAME_BYTES_MAX {
        Err(OffsetCodecError::InvalidTopic(
            "a topic name is at most 249 bytes",
        ))
    } else if topic.contains('\0') {
        Err(OffsetCodecError::InvalidTopic(
            "a topic name cannot contain NUL",
        ))
    } else {
        Ok(())
    }
}

/// The prefix every key of `group` starts with (`group 00`), for scanning or deleting a group.
pub fn group_prefix(group: &GroupId) -> Vec<u8> {
    let mut k = Vec::with_capacity(group.as_str().len() + 1);
    k.extend_from_slice(group.as_str().as_bytes());
    k.push(0);
    k
}

/// The key of `group`'s offset in `topic`'s `partition`; at most [`KEY_BYTES_MAX`] bytes.
pub fn encode_key(
    group: &GroupId,
    topic: &str,
    partition: u32,
) -> Result<Vec<u8>, OffsetCodecError> {
    check_topic(topic)?;
    let mut k = group_prefix(group);
    k.extend_from_slice(topic.as_bytes());
    k.push(0);
    k.extend_from_slice(&partition.to_be_bytes());
    Ok(k)
}

pub fn decode_key(key: &[u8]) -> Result<OffsetKey, OffsetCodecError> {
    let sep = key
        .iter()
        .position(|&b| b == 0)
        .ok_or(OffsetCodecError::BadKey("no separator after the group id"))?;
    let group = std::str::from_utf8(&key[..sep])
        .map_err(|_| OffsetCodecError::BadKey("the group id is not UTF-8"))?;
    let group = GroupId::new(group).map_err(OffsetCodecError::BadGroupId)?;
    let rest = &key[sep + 1..];
    // topic (≥ 1 byte), 00, partition (4 bytes).
    if rest.len() < 6 || rest[rest.len() - 5] != 0 {
        return Err(OffsetCodecError::BadKey(
            "the key does not end in 00 and a 4-byte partition",
        ));
    }
    let (topic, tail) = rest.split_at(rest.len() - 5);
    let topic = std::str::from_utf8(topic)
        .map_err(|_| OffsetCodecError::BadKey("the topic is not UTF-8"))?;
    check_topic(topic)?;
    let mut p = [0u8; 4];
    p.copy_from_slice(&tail[1..]);
    Ok(OffsetKey {
        group,
        topic: topic.to_string(),
        partition: u32::from_be_bytes(p),
    })
}

pub fn encode_value(c: &CommittedOffset) -> Result<Vec<u8>, OffsetCodecError> {
    let n = c.metadata.len();
    if n > METADATA_BYTES_MAX {
        return Err(OffsetCodecError::MetadataTooLarge { bytes: n });
    }
    let mut v = Vec::with_capacity(VALUE_HEADER_BYTES + n);
    v.push(VERSION);
    v.extend_from_slice(&c.offset.0.to_le_bytes());
    v.extend_from_slice(&c.commit_timestamp_ms.to_le_bytes());
    // n ≤ 4096 fits a u16.
    v.extend_from_slice(&(n as u16).to_le_bytes());
    v.extend_from_slice(&c.metadata);
    Ok(v)
}

pub fn decode_value(v: &[u8]) -> Result<CommittedOffset, OffsetCodecError> {
    let Some(&version) = v.first() else {
        return Err(OffsetCodecError::ValueLength { bytes: 0 });
    };
    if version != VERSION {
        return Err(OffsetCodecError::Version(version));
    }
    if v.len() < VALUE_HEADER_BYTES {
        return Err(OffsetCodecError::ValueLength { bytes: v.len() });
    }
    let u64_at = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&v[at..at + 8]);
        u64::from_le_bytes(b)
    };
    let n = usize::from(u16::from_le_bytes([v[17], v[18]]));
    if n > METADATA_BYTES_MAX {
        return Err(OffsetCodecError::MetadataTooLarge { bytes: n });
    }
    if v.len() != VALUE_HEADER_BYTES + n {
        return Err(OffsetCodecError::ValueLength { bytes: v.len() });
    }
    Ok(CommittedOffset {
        offset: Offset(u64_at(1)),
        commit_timestamp_ms: u64_at(9),
        metadata: v[VALUE_HEADER_BYTES..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(s: &str) -> GroupId {
        GroupId::new(s).unwrap()
    }

    /// docs/GROUPS.md section 5's example, byte for byte.
    #[test]
    fn golden_entry() {
        let key = encode_key(&g("g1"), "t", 2).unwrap();
        assert_eq!(key, [0x67, 0x31, 0x00, 0x74, 0x00, 0x00, 0x00, 0x00, 0x02]);
        assert_eq!(
            decode_key(&key),
            Ok(OffsetKey {
                group: g("g1"),
                topic: "t".into(),
                partition: 2
            })
        );
        let c = CommittedOffset {
            offset: Offset(1000),
            commit_timestamp_ms: 1_700_000_000_000,
            metadata: b"ab".to_vec(),
        };
        let golden = [
            0x01, // version
            0xE8, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // offset 1000
            0x00, 0x68, 0xE5, 0xCF, 0x8B, 0x01, 0x00, 0x00, // 1700000000000 ms
            0x02, 0x00, // metadata_len 2
            0x61, 0x62, // "ab"
        ];
        assert_eq!(encode_value(&c).unwrap(), golden);
        assert_eq!(decode_value(&golden), Ok(c));
        assert_eq!(group_prefix(&g("g1")), b"g1\0");
    }

    #[test]
    fn keys_sort_by_group_then_topic_then_partition_number() {
        let mut keys = [
            encode_key(&g("g"), "t", 256).unwrap(),
            encode_key(&g("g"), "t", 2).unwrap(),
            encode_key(&g("g2"), "a", 0).unwrap(),
            encode_key(&g("g"), "u", 0).unwrap(),
            encode_key(&g("g"), "t", 10).unwrap(),
        ];
        keys.sort();
        let decoded: Vec<(String, String, u32)> = keys
            .iter()
            .map(|k| decode_key(k).unwrap())
            .map(|k| (k.group.as_str().to_string(), k.topic, k.partition))
            .collect();
        let want = [
            ("g", "t", 2),
            ("g", "t", 10),
            ("g", "t", 256),
            ("g", "u", 0),
            ("g2", "a", 0),
        ];
        let want: Vec<(String, String, u32)> = want
            .iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), *c))
            .collect();
        assert_eq!(decoded, want);
        // Every key of "g" starts with its prefix, no key of "g2" does.
        let p = group_prefix(&g("g"));
        assert_eq!(keys.iter().filter(|k| k.starts_with(&p)).count(), 4);
        // A partition whose bytes contain 00 still decodes.
        let k = encode_key(&g("g"), "t", 0).unwrap();
        assert_eq!(decode_key(&k).unwrap().partition, 0);
        let longest = encode_key(&g(&"x".repeat(249)), &"y".repeat(249), u32::MAX).unwrap();
        assert_eq!(longest.len(), KEY_BYTES_MAX);
    }

    #[test]
    fn refuses_what_it_cannot_write_or_read() {
        assert_eq!(
            encode_key(&g("g"), "", 0),
            Err(OffsetCodecError::InvalidTopic(
                "a topic name cannot be empty"
            ))
        );
        assert!(encode_key(&g("g"), "a\0b", 0).is_err());
        assert!(encode_key(&g("g"), &"t".repeat(250), 0).is_err());
        let big = CommittedOffset {
            offset: Offset(0),
            commit_timestamp_ms: 0,
            metadata: vec![0; METADATA_BYTES_MAX + 1],
        };
        let e = encode_value(&big).unwrap_err();
        assert_eq!(e, OffsetCodecError::MetadataTooLarge { bytes: 4097 });
        assert_eq!(e.name(), "OFFSET_METADATA_TOO_LARGE");
        let mut max = big;
        max.metadata.pop();
        assert_eq!(decode_value(&encode_value(&max).unwrap()), Ok(max));

        for bad in [
            &b"g"[..],
            b"g\0t",
            b"g\0t\0\0\0\0",
            b"g\0\0\0\0\0\0",
            b"\0t\0\0\0\0\0",
        ] {
            assert!(decode_key(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(
            decode_key(b"\0t\0\0\0\0\0"),
            Err(OffsetCodecError::BadGroupId(_))
        ));
        let good = encode_value(&CommittedOffset {
            offset: Offset(5),
            commit_timestamp_ms: 6,
            metadata: b"m".to_vec(),
        })
        .unwrap();
        assert_eq!(
            decode_value(&[]),
            Err(OffsetCodecError::ValueLength { bytes: 0 })
        );
        assert_eq!(
            decode_value(&good[..19]),
            Err(OffsetCodecError::ValueLength { bytes: 19 })
        );
        let mut long = good.clone();
        long.push(0);
        assert_eq!(
            decode_value(&long),
            Err(OffsetCodecError::ValueLength { bytes: 21 })
        );
        let mut newer = good;
        newer[0] = 2;
        assert_eq!(decode_value(&newer), Err(OffsetCodecError::Version(2)));
    }
}
