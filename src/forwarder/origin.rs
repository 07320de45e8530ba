//! Edge records as Kafka records: key, value, timestamp and headers kept, origin headers
//! added; and gap records (docs/FORWARDING.md section 3). Pure.

use bytes::Bytes;
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE, Record as KRecord,
    TimestampType,
};

use crate::storage::{Offset, Record};

pub const H_GATEWAY: &str = "outpost.gateway";
pub const H_TOPIC: &str = "outpost.topic";
pub const H_PARTITION: &str = "outpost.partition";
pub const H_OFFSET: &str = "outpost.offset";
pub const H_GAP: &str = "outpost.gap";
pub const H_GAP_REASON: &str = "outpost.gap.reason";
/// Header names a producer may not use (the broker refuses them: INVALID_RECORD).
pub const RESERVED_PREFIX: &str = "outpost.";

/// Where an edge record came from.
#[derive(Clone, Copy, Debug)]
pub struct Origin<'a> {
    pub gateway_id: &'a str,
    pub topic: &'a str,
    pub partition: u32,
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

fn b(v: String) -> Option<Bytes> {
    Some(Bytes::from(v.into_bytes()))
}

fn blank(timestamp_ms: i64) -> KRecord {
    KRecord {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
        producer_id: NO_PRODUCER_ID,
        producer_epoch: NO_PRODUCER_EPOCH,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: NO_SEQUENCE,
        timestamp: timestamp_ms,
        key: None,
        value: None,
        headers: IndexMap::new(),
    }
}

fn add_origin(headers: &mut IndexMap<StrBytes, Option<Bytes>>, o: &Origin<'_>, offset: Offset) {
    headers.insert(s(H_GATEWAY), b(o.gateway_id.to_owned()));
    headers.insert(s(H_TOPIC), b(o.topic.to_owned()));
    headers.insert(s(H_PARTITION), b(o.partition.to_string()));
    headers.insert(s(H_OFFSET), b(offset.0.to_string()));
}

/// The Kafka record for an edge record (producer fields are filled in when it is sent).
pub fn forwarded(r: Record, o: &Origin<'_>, offset: Offset) -> KRecord {
    let mut k = blank(r.timestamp_ms);
    k.key = r.key.map(Bytes::from);
    k.value = Some(Bytes::from(r.value));
    let mut headers = IndexMap::with_capacity(r.headers.len() + 4);
    for (name, value) in r.headers {
        headers.insert(StrBytes::from_string(name), Some(Bytes::from(value)));
    }
    add_origin(&mut headers, o, offset);
    k.headers = headers;
    k
}

/// The gap record announcing that edge offsets `from..=to` were reclaimed unforwarded.
pub fn gap(o: &Origin<'_>, from: Offset, to: Offset, now_ms: i64) -> KRecord {
    let mut k = blank(now_ms);
    k.value = b(format!(
        "outpost gap: edge offsets {}..={} of {}/{} were reclaimed before they were forwarded",
        from.0, to.0, o.topic, o.partition
    ));
    let mut headers = IndexMap::with_capacity(6);
    headers.insert(s(H_GAP), b(format!("{}-{}", from.0, to.0)));
    headers.insert(s(H_GAP_REASON), b("reclaimed".to_owned()));
    add_origin(&mut headers, o, from);
    k.headers = headers;
    k
}

/// A record with just a key and a value (the cursor records).
pub fn plain(key: Vec<u8>, value: Vec<u8>, timestamp_ms: i64) -> KRecord {
    let mut k = blank(timestamp_ms);
    k.key = Some(Bytes::from(key));
    k.value = Some(Bytes::from(value));
    k
}

/// Why a produced record cannot be forwarded as it is: repeated header names (a Kafka
/// header list survives, the producer codec keeps one value per name) or a reserved name.
pub fn check_headers(names: &[&str]) -> Result<(), String> {
    for (i, n) in names.iter().enumerate() {
        if n.starts_with(RESERVED_PREFIX) {
            return Err(format!(
                "header name {n:?} is reserved (names starting with \"{RESERVED_PREFIX}\" are \
                 added by the forwarder)"
            ));
        }
        if names[..i].contains(n) {
            return Err(format!("header name {n:?} appears twice in one record"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hv<'a>(k: &'a KRecord, name: &str) -> Option<&'a [u8]> {
        k.headers
            .get(&StrBytes::from_string(name.to_owned()))
            .and_then(|v| v.as_deref())
    }

    #[test]
    fn keeps_everything_and_adds_origin() {
        let r = Record {
            timestamp_ms: 1_700_000_000_123,
            key: Some(b"k".to_vec()),
            value: Vec::new(),
            headers: vec![("a".into(), b"1".to_vec()), ("b".into(), Vec::new())],
        };
        let o = Origin {
            gateway_id: "gw",
            topic: "t",
            partition: 3,
        };
        let k = forwarded(r, &o, Offset(42));
        assert_eq!(k.timestamp, 1_700_000_000_123);
        assert_eq!(k.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(
            k.value.as_deref(),
            Some(&b""[..]),
            "empty value is not null"
        );
        let names: Vec<&str> = k.headers.keys().map(|n| n.as_str()).collect();
        assert_eq!(
            names,
            ["a", "b", H_GATEWAY, H_TOPIC, H_PARTITION, H_OFFSET],
            "user headers first, in order"
        );
        assert_eq!(hv(&k, "b"), Some(&b""[..]));
        assert_eq!(hv(&k, H_PARTITION), Some(&b"3"[..]));
        assert_eq!(hv(&k, H_OFFSET), Some(&b"42"[..]));
    }

    #[test]
    fn gap_names_the_range() {
        let o = Origin {
            gateway_id: "gw",
            topic: "t",
            partition: 0,
        };
        let k = gap(&o, Offset(10), Offset(19), 5);
        assert_eq!(k.key, None);
        assert_eq!(hv(&k, H_GAP), Some(&b"10-19"[..]));
        assert_eq!(hv(&k, H_GAP_REASON), Some(&b"reclaimed"[..]));
        assert_eq!(hv(&k, H_OFFSET), Some(&b"10"[..]));
    }

    #[test]
    fn header_rules() {
        assert!(check_headers(&["a", "b"]).is_ok());
        assert!(check_headers(&["a", "a"]).is_err());
        assert!(check_headers(&["outpost.offset"]).is_err());
    }
}
