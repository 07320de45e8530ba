//! The forwarder's cursor records in the upstream cursor topic (docs/FORWARDING.md section 4):
//! key `GATEWAY/TOPIC/PARTITION`, value 24 bytes. Pure codec, pinned by a golden test.

use crate::storage::Offset;

pub const MAGIC: [u8; 4] = *b"OPCR";
pub const VERSION: u8 = 1;
pub const VALUE_BYTES: usize = 24;

/// Where an edge partition's forwarding stands upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// The edge ring the offsets belong to.
    pub ring_id: u64,
    /// Every edge offset below it is upstream (as a record or inside a gap record).
    pub next_offset: Offset,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CursorError {
    Length(usize),
    Magic([u8; 4]),
    /// Written by a newer outpost: never guessed at.
    Version(u8),
}

impl std::fmt::Display for CursorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CursorError::Length(n) => write!(f, "a cursor value is {VALUE_BYTES} bytes, not {n}"),
            CursorError::Magic(m) => write!(f, "bad cursor magic {m:02X?}"),
            CursorError::Version(v) => write!(
                f,
                "cursor version {v} is newer than this outpost's ({VERSION}): upgrade outpost"
            ),
        }
    }
}

impl std::error::Error for CursorError {}

/// The cursor key of an edge partition.
pub fn key(gateway_id: &str, edge_topic: &str, partition: u32) -> String {
    format!("{gateway_id}/{edge_topic}/{partition}")
}

pub fn encode(c: &Cursor) -> [u8; VALUE_BYTES] {
    let mut v = [0u8; VALUE_BYTES];
    v[0..4].copy_from_slice(&MAGIC);
    v[4] = VERSION;
    v[8..16].copy_from_slice(&c.ring_id.to_le_bytes());
    v[16..24].copy_from_slice(&c.next_offset.0.to_le_bytes());
    v
}

pub fn decode(v: &[u8]) -> Result<Cursor, CursorError> {
    let v: &[u8; VALUE_BYTES] = v.try_into().map_err(|_| CursorError::Length(v.len()))?;
    let mut magic = [0u8; 4];
    magic.copy_from_slice(&v[0..4]);
    if magic != MAGIC {
        return Err(CursorError::Magic(magic));
    }
    if v[4] != VERSION {
        return Err(CursorError::Version(v[4]));
    }
    let mut ring = [0u8; 8];
    ring.copy_from_slice(&v[8..16]);
    let mut next = [0u8; 8];
    next.copy_from_slice(&v[16..24]);
    Ok(Cursor {
        ring_id: u64::from_le_bytes(ring),
        next_offset: Offset(u64::from_le_bytes(next)),
    })
}

/// The cursor topic settings the forwarder checks at every session start.
pub const CHECKED_CONFIGS: [&str; 2] = ["cleanup.policy", "compression.type"];

/// Why a cursor topic with these settings would break exactly-once, if it would
/// (docs/FORWARDING.md section 4).
pub fn topic_problem(topic: &str, configs: &[(String, Option<String>)]) -> Option<String> {
    let get = |k: &str| {
        configs
            .iter()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| v.as_deref())
    };
    let cleanup = get("cleanup.policy").unwrap_or("delete");
    if !cleanup.split(',').any(|p| p.trim() == "compact") {
        return Some(format!(
            "cursor topic {topic:?} has cleanup.policy={cleanup}: it must be compacted \
             (cleanup.policy=compact), or an idle partition's cursor expires with retention and \
             its records still in the ring would be forwarded again"
        ));
    }
    let compression = get("compression.type").unwrap_or("producer");
    if !matches!(compression, "producer" | "uncompressed" | "none") {
        return Some(format!(
            "cursor topic {topic:?} has compression.type={compression}: outpost reads its \
             cursors back uncompressed; set compression.type=producer"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/FORWARDING.md section 4's example, byte for byte.
    #[test]
    fn golden_value() {
        let c = Cursor {
            ring_id: 0x0102_0304_0506_0708,
            next_offset: Offset(1000),
        };
        let golden = [
            0x4F, 0x50, 0x43, 0x52, 0x01, 0x00, 0x00, 0x00, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03,
            0x02, 0x01, 0xE8, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ];
        assert_eq!(encode(&c), golden);
        assert_eq!(decode(&golden), Ok(c));
        assert_eq!(key("gw-7", "telemetry", 2), "gw-7/telemetry/2");
    }

    #[test]
    fn cursor_topic_settings() {
        let c = |p: &str, z: &str| {
            vec![
                ("cleanup.policy".to_owned(), Some(p.to_owned())),
                ("compression.type".to_owned(), Some(z.to_owned())),
            ]
        };
        assert_eq!(topic_problem("c", &c("compact", "producer")), None);
        assert_eq!(
            topic_problem("c", &c("compact,delete", "uncompressed")),
            None
        );
        assert!(
            topic_problem("c", &c("delete", "producer"))
                .unwrap()
                .contains("compacted")
        );
        assert!(
            topic_problem("c", &c("compact", "gzip"))
                .unwrap()
                .contains("gzip")
        );
        assert!(
            topic_problem("c", &[]).is_some(),
            "Kafka's default policy is delete"
        );
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        let good = encode(&Cursor {
            ring_id: 1,
            next_offset: Offset(2),
        });
        assert_eq!(decode(&good[..23]), Err(CursorError::Length(23)));
        let mut m = good;
        m[0] = b'X';
        assert!(matches!(decode(&m), Err(CursorError::Magic(_))));
        let mut v = good;
        v[4] = 2;
        assert_eq!(decode(&v), Err(CursorError::Version(2)));
    }
}
