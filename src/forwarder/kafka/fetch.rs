//! Reading a partition back with read_committed (the cursor readback, docs/FORWARDING.md
//! section 5 step 3): ListOffsets for the bounds, Fetch, and Kafka's rule for dropping the
//! records of aborted transactions, which a read_committed Fetch still returns.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{
    FetchRequest, ListOffsetsRequest, TopicName,
    fetch_request::{FetchPartition, FetchTopic},
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;

use super::cluster::{Cluster, retriable, version};
use super::error::{KafkaCode, KafkaError};

pub const LATEST: i64 = -1;
pub const EARLIEST: i64 = -2;

/// One record batch as far as read_committed cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    pub last_offset: i64,
    pub producer_id: i64,
    pub transactional: bool,
    /// `Some(true)` a commit marker, `Some(false)` an abort marker, `None` data.
    pub marker: Option<bool>,
    /// `(offset, key, value)`.
    pub records: Vec<(i64, Option<Bytes>, Option<Bytes>)>,
}

/// Splits a Fetch response's record data into complete batches (a fetch may end in a
/// partial batch, which is dropped: the next fetch starts at it). Only the v2 framing fields
/// are read here (base offset, length, last offset delta); `kafka-protocol` decodes the rest.
pub fn split_batches(mut data: Bytes) -> Result<Vec<Batch>, String> {
    let mut out = Vec::new();
    while data.len() >= 27 {
        let be32 = |b: &[u8]| i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let mut base = [0u8; 8];
        base.copy_from_slice(&data[0..8]);
        let base = i64::from_be_bytes(base);
        let len = be32(&data[8..12]);
        let total = usize::try_from(len)
            .ok()
            .and_then(|l| l.checked_add(12))
            .ok_or_else(|| format!("batch at offset {base} has length {len}"))?;
        if data.len() < total {
            break; // partial tail
        }
        let last_delta = be32(&data[23..27]);
        // The decoder reserves room for the claimed record count before reading any record:
        // a count the batch's bytes cannot hold (a record takes at least 7) is refused first.
        let count = data.get(57..61).map_or(0, be32);
        if count < 0 || count as usize > total / 7 {
            return Err(format!(
                "batch at offset {base} claims {count} records in {total} bytes"
            ));
        }
        let mut one = data.split_to(total);
        let set = RecordBatchDecoder::decode(&mut one)
            .map_err(|e| format!("batch at offset {base}: {e:#}"))?;
        let first = set.records.first();
        let marker = match first {
            Some(r) if r.control => {
                // Control record key: version i16, type i16 (0 abort, 1 commit), big-endian.
                let kind = r
                    .key
                    .as_ref()
                    .filter(|k| k.len() >= 4)
                    .map(|k| i16::from_be_bytes([k[2], k[3]]))
                    .ok_or_else(|| format!("control batch at offset {base} without a key"))?;
                Some(kind == 1)
            }
            _ => None,
        };
        out.push(Batch {
            last_offset: base.saturating_add(i64::from(last_delta)),
            producer_id: first.map_or(-1, |r| r.producer_id),
            transactional: first.is_some_and(|r| r.transactional),
            marker,
            records: set
                .records
                .into_iter()
                .filter(|r| !r.control)
                .map(|r| (r.offset, r.key, r.value))
                .collect(),
        });
    }
    Ok(out)
}

/// Kafka's read_committed filter: `aborted` is the response's `(producer id, first offset)`
/// list; a transactional batch of a producer whose aborted transaction started at or before
/// it, and not yet closed by that producer's abort marker, is dropped. Control batches are
/// dropped. Records below `from` are dropped (a fetch may return a batch that starts before
/// the position).
pub fn committed(
    batches: Vec<Batch>,
    mut aborted: Vec<(i64, i64)>,
    from: i64,
) -> Vec<(i64, Option<Bytes>, Option<Bytes>)> {
    aborted.sort_by_key(|&(_, first)| std::cmp::Reverse(first));
    let mut open: HashSet<i64> = HashSet::new();
    let mut out = Vec::new();
    for b in batches {
        while let Some(&(pid, first)) = aborted.last() {
            if first > b.last_offset {
                break;
            }
            open.insert(pid);
            aborted.pop();
        }
        match b.marker {
            Some(false) => {
                open.remove(&b.producer_id);
                continue;
            }
            Some(true) => continue,
            None => {}
        }
        if b.transactional && open.contains(&b.producer_id) {
            continue;
        }
        out.extend(b.records.into_iter().filter(|(o, _, _)| *o >= from));
    }
    out
}

fn name(t: &str) -> TopicName {
    TopicName(StrBytes::from_string(t.to_owned()))
}

/// The partition's offset for `timestamp` ([`LATEST`]: the high watermark, read_uncommitted;
/// [`EARLIEST`]: the log start), asked of its leader.
pub fn list_offset(
    cluster: &mut Cluster,
    topic: &str,
    partition: i32,
    timestamp: i64,
) -> Result<i64, KafkaError> {
    let leader = cluster.leader(topic, partition)?;
    let req = ListOffsetsRequest::default()
        .with_isolation_level(0)
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(partition)
                        .with_timestamp(timestamp),
                ]),
        ]);
    let resp = match cluster
        .conn(leader)?
        .call("ListOffsets", &req, version::LIST_OFFSETS)
    {
        Ok(r) => r,
        Err(e) => {
            cluster.forget(leader);
            return Err(e);
        }
    };
    let p = resp
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.partition_index == partition)
        .ok_or_else(|| KafkaError::Decode {
            addr: String::new(),
            api: "ListOffsets",
            detail: format!("no answer for {topic}/{partition}"),
        })?;
    if p.error_code != 0 {
        return Err(KafkaError::Api {
            api: "ListOffsets",
            what: format!("for {topic}/{partition}"),
            code: KafkaCode(p.error_code),
            message: None,
        });
    }
    Ok(p.offset)
}

/// Reads `topic/partition` with read_committed from `from` (its log start if `None`, or if
/// `from` is no longer in the log) until the position reaches `until` (or `deadline`
/// passes: an error), calling `each(offset, key, value)` for every committed record in order.
#[allow(clippy::too_many_arguments)]
pub fn read_committed(
    cluster: &mut Cluster,
    topic: &str,
    partition: i32,
    from: Option<i64>,
    until: i64,
    bytes_max: i32,
    deadline: Instant,
    mut each: impl FnMut(i64, Option<Bytes>, Option<Bytes>) -> Result<(), KafkaError>,
) -> Result<(), KafkaError> {
    let mut pos = match from {
        Some(f) => f,
        None => list_offset(cluster, topic, partition, EARLIEST)?,
    };
    while pos < until {
        if Instant::now() >= deadline {
            return Err(KafkaError::GaveUp {
                api: "Fetch",
                detail: format!(
                    "read_committed of {topic}/{partition} reached {pos} of {until} (an open \
                     transaction may hold the last stable offset back)"
                ),
            });
        }
        let leader = cluster.leader(topic, partition)?;
        let req = FetchRequest::default()
            .with_max_wait_ms(100)
            .with_min_bytes(1)
            .with_max_bytes(bytes_max)
            .with_isolation_level(1)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(name(topic))
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(partition)
                            .with_fetch_offset(pos)
                            .with_partition_max_bytes(bytes_max),
                    ]),
            ]);
        let resp = match cluster.conn(leader)?.call("Fetch", &req, version::FETCH) {
            Ok(r) => r,
            Err(e) => {
                cluster.forget(leader);
                return Err(e);
            }
        };
        let top = KafkaCode(resp.error_code);
        if top.0 != 0 {
            return Err(KafkaError::Api {
                api: "Fetch",
                what: format!("for {topic}/{partition}"),
                code: top,
                message: None,
            });
        }
        let Some(p) = resp
            .responses
            .into_iter()
            .flat_map(|t| t.partitions.into_iter())
            .find(|p| p.partition_index == partition)
        else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        let code = KafkaCode(p.error_code);
        if code.error() == Some(kafka_protocol::ResponseError::OffsetOutOfRange) {
            // Retention or compaction moved the log start past the position.
            pos = list_offset(cluster, topic, partition, EARLIEST)?;
            continue;
        }
        if code.0 != 0 {
            if retriable(code) {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            return Err(KafkaError::Api {
                api: "Fetch",
                what: format!("for {topic}/{partition}"),
                code,
                message: None,
            });
        }
        let batches = match p.records {
            Some(data) => split_batches(data).map_err(|detail| KafkaError::Decode {
                addr: String::new(),
                api: "Fetch",
                detail,
            })?,
            None => Vec::new(),
        };
        let next = batches.last().map(|b| b.last_offset.saturating_add(1));
        let aborted = p
            .aborted_transactions
            .unwrap_or_default()
            .into_iter()
            .map(|a| (a.producer_id.0, a.first_offset))
            .collect();
        for (o, k, v) in committed(batches, aborted, pos) {
            each(o, k, v)?;
        }
        match next {
            Some(n) if n > pos => pos = n,
            // Nothing new below the last stable offset yet: the broker waited max_wait_ms.
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(last: i64, pid: i64, txn: bool, marker: Option<bool>, offs: &[i64]) -> Batch {
        Batch {
            last_offset: last,
            producer_id: pid,
            transactional: txn,
            marker,
            records: offs
                .iter()
                .map(|&o| (o, None, Some(Bytes::from(o.to_string()))))
                .collect(),
        }
    }

    fn offsets(v: &[(i64, Option<Bytes>, Option<Bytes>)]) -> Vec<i64> {
        v.iter().map(|r| r.0).collect()
    }

    #[test]
    fn drops_aborted_and_markers_keeps_committed() {
        // pid 7: 0-1 committed (marker 2); pid 8: 3-4 aborted (marker 7), interleaved with
        // pid 7: 5-6 committed (marker 8); non-transactional 9.
        let batches = vec![
            data(1, 7, true, None, &[0, 1]),
            data(2, 7, true, Some(true), &[]),
            data(4, 8, true, None, &[3, 4]),
            data(6, 7, true, None, &[5, 6]),
            data(7, 8, true, Some(false), &[]),
            data(8, 7, true, Some(true), &[]),
            data(9, -1, false, None, &[9]),
        ];
        let out = committed(batches, vec![(8, 3)], 0);
        assert_eq!(offsets(&out), vec![0, 1, 5, 6, 9]);
    }

    #[test]
    fn a_producer_aborting_twice_is_dropped_both_times_only() {
        let batches = vec![
            data(0, 8, true, None, &[0]),
            data(1, 8, true, Some(false), &[]),
            data(2, 8, true, None, &[2]),
            data(3, 8, true, Some(true), &[]),
            data(4, 8, true, None, &[4]),
            data(5, 8, true, Some(false), &[]),
        ];
        let out = committed(batches, vec![(8, 4), (8, 0)], 0);
        assert_eq!(offsets(&out), vec![2]);
    }

    #[test]
    fn records_before_the_position_are_skipped() {
        let out = committed(vec![data(3, -1, false, None, &[0, 1, 2, 3])], vec![], 2);
        assert_eq!(offsets(&out), vec![2, 3]);
    }

    #[test]
    fn split_drops_a_partial_tail_and_refuses_garbage() {
        assert_eq!(split_batches(Bytes::from_static(&[0u8; 20])), Ok(vec![]));
        let mut bad = vec![0u8; 30];
        bad[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(split_batches(Bytes::from(bad)).is_err());
        // A record count the bytes cannot hold is refused before the decoder reserves room.
        let mut huge = vec![0u8; 70];
        huge[8..12].copy_from_slice(&58i32.to_be_bytes());
        huge[57..61].copy_from_slice(&1_000_000_000i32.to_be_bytes());
        let e = split_batches(Bytes::from(huge)).unwrap_err();
        assert!(e.contains("claims 1000000000 records"), "{e}");
    }
}
