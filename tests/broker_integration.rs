//! The broker end to end: the real `outpost serve` on 127.0.0.1 port 0 (a 1 MiB ring in a temp
//! dir), spoken to with the client library and, where the order of frames matters, raw frames.
//!
//! - a round trip for each ack mode (`none` is confirmed by fetching until it shows up);
//! - several partitions, addressed explicitly;
//! - keyed routing (Kafka's murmur2 partitioner, `protocol::murmur2::partition_for_key`) and
//!   round-robin of unkeyed batches;
//! - a long-poll FETCH woken by a PRODUCE from another connection, and one that runs out empty;
//! - pipelining: requests on one connection answered in completion order, by request id.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use outpost::client::{ClientError, Produced};
use outpost::protocol::messages::{
    FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse, ProduceRequest,
    ProduceResponse, RecordIn, RecordOut, WireAcks,
};
use outpost::protocol::murmur2::partition_for_key;
use outpost::protocol::{ErrorCode, Kind, Seq};
use outpost::storage::{Acks, Record};
use support::{Server, TempDir, fetch_all, record};

/// A broker on a small board: a 1 MiB ring of 64 KiB segments, batches of at most 4 KiB.
fn start(name: &str) -> (TempDir, Server) {
    let dir = TempDir::new(name);
    let board = dir.board("64 KiB", "1 MiB", "16 KiB", "4 KiB");
    let server = Server::start(&board, &dir.data(), None);
    (dir, server)
}

fn block_on<T>(f: impl Future<Output = T>) -> T {
    smol::block_on(f)
}

fn values(records: &[outpost::client::FetchedRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8(r.record.value.clone()).unwrap())
        .collect()
}

#[test]
fn round_trip_for_each_ack_mode() {
    let (_dir, server) = start("acks");
    let c = server.client();
    block_on(async {
        c.create_topic("acks", 1).await.unwrap();
        let written = Record {
            timestamp_ms: 1_700_000_000_123,
            key: Some(b"k-written".to_vec()),
            value: b"written".to_vec(),
            headers: vec![("h".into(), b"1".to_vec()), ("empty".into(), Vec::new())],
        };
        let durable = [
            Record {
                timestamp_ms: -5,
                key: None,
                value: b"durable-1".to_vec(),
                headers: vec![],
            },
            Record {
                timestamp_ms: i64::MAX,
                key: Some(Vec::new()),
                value: Vec::new(),
                headers: vec![("unit".into(), b"C".to_vec())],
            },
        ];
        let none = Record {
            timestamp_ms: 42,
            key: Some(b"k-none".to_vec()),
            value: b"none".to_vec(),
            headers: vec![("via".into(), b"acks=none".to_vec())],
        };

        // written: acknowledged after the write, with its offset.
        let w = c
            .produce(
                "acks",
                Some(0),
                Acks::Written,
                std::slice::from_ref(&written),
            )
            .await
            .unwrap();
        assert_eq!(
            w,
            Some(Produced {
                partition: 0,
                base_offset: 0,
                count: 1
            })
        );

        // durable: acknowledged after the sync; readable at once.
        let d = c
            .produce("acks", Some(0), Acks::Durable, &durable)
            .await
            .unwrap();
        assert_eq!(
            d,
            Some(Produced {
                partition: 0,
                base_offset: 1,
                count: 2
            })
        );
        let f = c.fetch("acks", 0, 1, 1 << 20, 0).await.unwrap();
        assert_eq!(f.next, 3, "a durable ack means the records are published");
        assert_eq!(f.records.len(), 2);

        // none: no answer at all; it shows up in the partition shortly.
        let n = c
            .produce("acks", Some(0), Acks::None, std::slice::from_ref(&none))
            .await
            .unwrap();
        assert_eq!(n, None);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let f = c.fetch("acks", 0, 3, 1 << 20, 200).await.unwrap();
            if !f.records.is_empty() {
                assert_eq!(f.records[0].offset, 3);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the acks=none record never appeared"
            );
        }
        // The connection still answers after the unanswered request.
        let offsets = c.list_offsets("acks", 0).await.unwrap();
        assert_eq!((offsets.earliest, offsets.next), (0, 4));

        // Every record reads back exactly: offsets, timestamps, keys, values, headers.
        let all = fetch_all(&c, "acks", 0, 0).await;
        let got: Vec<(u64, Record)> = all.into_iter().map(|r| (r.offset, r.record)).collect();
        let want = vec![
            (0, written),
            (1, durable[0].clone()),
            (2, durable[1].clone()),
            (3, none),
        ];
        assert_eq!(got, want);
    });
    // From a second connection too.
    let other = server.client();
    let f = block_on(other.fetch("acks", 0, 0, 1 << 20, 0)).unwrap();
    assert_eq!(
        values(&f.records),
        ["written", "durable-1", "", "none"].map(String::from)
    );
    assert_eq!(server.terminate(), 0);
}

#[test]
fn several_partitions_addressed_explicitly() {
    let (_dir, server) = start("partitions");
    let c = server.client();
    block_on(async {
        let created = c.create_topic("multi", 4).await.unwrap();
        assert_eq!(created.partitions, 4);
        // Partition p gets p + 1 batches of two records, interleaved across partitions.
        let mut want: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        for round in 0..4u32 {
            for p in (0..4u32).rev() {
                if round > p {
                    continue;
                }
                let batch: Vec<Record> = (0..2)
                    .map(|i| record(None, format!("p{p}-b{round}-{i}").as_bytes()))
                    .collect();
                let at = c
                    .produce("multi", Some(p), Acks::Durable, &batch)
                    .await
                    .unwrap()
                    .unwrap();
                // Offsets are per partition, contiguous from 0.
                assert_eq!(
                    at,
                    Produced {
                        partition: p,
                        base_offset: u64::from(round) * 2,
                        count: 2
                    }
                );
                want.entry(p).or_default().extend(
                    batch
                        .iter()
                        .map(|r| String::from_utf8(r.value.clone()).unwrap()),
                );
            }
        }
        for p in 0..4u32 {
            let got = fetch_all(&c, "multi", p, 0).await;
            assert_eq!(values(&got), want[&p], "partition {p}");
            let offsets: Vec<u64> = got.iter().map(|r| r.offset).collect();
            assert_eq!(offsets, (0..got.len() as u64).collect::<Vec<_>>());
        }
        let described = c.describe_topic("multi").await.unwrap();
        let ranges: Vec<(u32, u64, u64)> = described
            .partitions
            .iter()
            .map(|p| (p.partition, p.earliest, p.next))
            .collect();
        assert_eq!(ranges, [(0, 0, 2), (1, 0, 4), (2, 0, 6), (3, 0, 8)]);
        let status = c.status().await.unwrap();
        let mut in_status: Vec<(u32, u64)> = status
            .partitions
            .iter()
            .filter(|p| p.topic == "multi")
            .map(|p| (p.partition, p.next))
            .collect();
        in_status.sort();
        assert_eq!(in_status, [(0, 2), (1, 4), (2, 6), (3, 8)]);

        // A partition beyond the count is refused, for produce and fetch alike.
        let e = c
            .produce("multi", Some(4), Acks::Durable, &[record(None, b"x")])
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::UnknownPartition), "{e}");
        let e = c.fetch("multi", 4, 0, 1024, 0).await.unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::UnknownPartition), "{e}");
        // An offset past the end is out of range.
        let e = c.fetch("multi", 0, 3, 1024, 0).await.unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::OffsetOutOfRange), "{e}");
    });
    assert_eq!(server.terminate(), 0);
}

#[test]
fn keyed_records_follow_murmur2_and_unkeyed_batches_round_robin() {
    let (_dir, server) = start("keyed");
    let c = server.client();
    block_on(async {
        for (topic, n) in [("keyed4", 4u32), ("keyed3", 3)] {
            c.create_topic(topic, n).await.unwrap();
            let keys: Vec<String> = (0..40).map(|i| format!("device-{i}")).collect();
            let mut used = BTreeSet::new();
            // Three rounds over every key: the same key lands on the same partition each
            // time, the one Kafka's default partitioner picks.
            for round in 0..3 {
                for key in &keys {
                    let value = format!("{key}/{round}");
                    let at = c
                        .produce(
                            topic,
                            None,
                            Acks::Durable,
                            &[record(Some(key.as_bytes()), value.as_bytes())],
                        )
                        .await
                        .unwrap()
                        .unwrap();
                    let want = partition_for_key(key.as_bytes(), n);
                    assert_eq!(at.partition, want, "{topic}: key {key:?} round {round}");
                    used.insert(at.partition);
                }
            }
            assert_eq!(
                used.len(),
                n as usize,
                "{topic}: 40 keys use every partition"
            );
            // Read back: each key's records are all in its partition, in produce order.
            let mut seen = 0;
            for p in 0..n {
                let mut per_key: BTreeMap<Vec<u8>, Vec<String>> = BTreeMap::new();
                for r in fetch_all(&c, topic, p, 0).await {
                    let key = r.record.key.clone().expect("a keyed record");
                    assert_eq!(partition_for_key(&key, n), p, "{topic}: {r:?}");
                    per_key
                        .entry(key)
                        .or_default()
                        .push(String::from_utf8(r.record.value).unwrap());
                    seen += 1;
                }
                for (key, vals) in per_key {
                    let key = String::from_utf8(key).unwrap();
                    let want: Vec<String> = (0..3).map(|r| format!("{key}/{r}")).collect();
                    assert_eq!(vals, want, "{topic}: partition {p}");
                }
            }
            assert_eq!(seen, 120);
        }

        // produce_keyed: records of different keys in one call, each on its key's partition
        // and in order within its key (however the client splits them into batches).
        let keys = ["a", "a", "b", "c", "c", "c", "a"];
        let mixed: Vec<Record> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| record(Some(k.as_bytes()), format!("mixed-{i}").as_bytes()))
            .collect();
        let answers = c
            .produce_keyed("keyed4", Acks::Durable, &mixed)
            .await
            .unwrap();
        let key_partitions: BTreeSet<u32> = keys
            .iter()
            .map(|k| partition_for_key(k.as_bytes(), 4))
            .collect();
        let mut acked = 0;
        for a in &answers {
            let a = a.expect("a durable answer");
            assert!(key_partitions.contains(&a.partition), "{a:?}");
            acked += a.count;
        }
        assert_eq!(acked, 7);
        let mut per_key: BTreeMap<Vec<u8>, Vec<(u32, String)>> = BTreeMap::new();
        for p in 0..4 {
            for r in fetch_all(&c, "keyed4", p, 0).await {
                let value = String::from_utf8(r.record.value).unwrap();
                if value.starts_with("mixed-") {
                    per_key
                        .entry(r.record.key.unwrap())
                        .or_default()
                        .push((p, value));
                }
            }
        }
        for k in ["a", "b", "c"] {
            let want: Vec<(u32, String)> = keys
                .iter()
                .enumerate()
                .filter(|(_, key)| **key == k)
                .map(|(i, _)| (partition_for_key(k.as_bytes(), 4), format!("mixed-{i}")))
                .collect();
            assert_eq!(per_key[k.as_bytes()], want, "key {k}");
        }

        // Unkeyed batches: round robin over the partitions, one step per batch, each batch
        // contiguous in one partition.
        c.create_topic("rr", 4).await.unwrap();
        let mut partitions = Vec::new();
        for b in 0..12 {
            let batch = [
                record(None, format!("rr-{b}-0").as_bytes()),
                record(None, format!("rr-{b}-1").as_bytes()),
            ];
            let at = c
                .produce("rr", None, Acks::Durable, &batch)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(at.count, 2);
            partitions.push(at.partition);
        }
        let first = partitions[0];
        let want: Vec<u32> = (0..12).map(|i| (first + i) % 4).collect();
        assert_eq!(partitions, want, "unkeyed batches go round robin");
        for p in 0..4u32 {
            let got = values(&fetch_all(&c, "rr", p, 0).await);
            let want: Vec<String> = (0..12u32)
                .filter(|b| (first + b) % 4 == p)
                .flat_map(|b| [format!("rr-{b}-0"), format!("rr-{b}-1")])
                .collect();
            assert_eq!(got, want, "partition {p}");
        }
    });
    assert_eq!(server.terminate(), 0);
}

#[test]
fn long_poll_fetch_wakes_on_append_and_runs_out_empty() {
    let (_dir, server) = start("longpoll");
    let consumer = server.client();
    let producer = server.client();
    block_on(async {
        consumer.create_topic("poll", 2).await.unwrap();

        // Nothing arrives: the fetch answers empty once its wait is over.
        let started = Instant::now();
        let f = consumer.fetch("poll", 0, 0, 1 << 20, 400).await.unwrap();
        let waited = started.elapsed();
        assert!(f.records.is_empty(), "{f:?}");
        assert_eq!(f.next, 0);
        assert!(
            waited >= Duration::from_millis(380),
            "an empty long poll returned after {waited:?}, before its 400 ms"
        );
        assert!(waited < Duration::from_secs(4), "took {waited:?}");

        // A 5 s long poll at the end of partition 0 is woken by a produce from another
        // connection, with that record.
        let started = Instant::now();
        let poll = async {
            let f = consumer.fetch("poll", 0, 0, 1 << 20, 5_000).await.unwrap();
            (f, Instant::now())
        };
        let produce = async {
            smol::Timer::after(Duration::from_millis(300)).await;
            let sent = Instant::now();
            let at = producer
                .produce("poll", Some(0), Acks::Durable, &[record(None, b"wake up")])
                .await
                .unwrap()
                .unwrap();
            (at, sent, Instant::now())
        };
        let ((f, woken), (at, sent, acked)) = smol::future::zip(poll, produce).await;
        assert_eq!(at.base_offset, 0);
        assert_eq!(values(&f.records), ["wake up"]);
        let after_send = woken.saturating_duration_since(sent);
        let after_ack = woken.saturating_duration_since(acked);
        eprintln!(
            "long poll: woken {after_send:?} after the produce was sent, {after_ack:?} after \
             its ack (whole poll {:?})",
            woken - started
        );
        assert!(
            after_send < Duration::from_millis(1_500),
            "the long poll was woken {after_send:?} after the produce"
        );
        assert!(woken - started < Duration::from_millis(4_500));

        // A long poll on partition 1 is not answered by an append to partition 0: it runs
        // out empty.
        let started = Instant::now();
        let poll = consumer.fetch("poll", 1, 0, 1 << 20, 600);
        let produce = async {
            smol::Timer::after(Duration::from_millis(100)).await;
            producer
                .produce(
                    "poll",
                    Some(0),
                    Acks::Durable,
                    &[record(None, b"elsewhere")],
                )
                .await
                .unwrap()
        };
        let (f, _) = smol::future::zip(poll, produce).await;
        let f = f.unwrap();
        assert!(f.records.is_empty(), "{f:?}");
        assert!(started.elapsed() >= Duration::from_millis(580));

        // In the middle of a partition a long poll answers at once.
        let started = Instant::now();
        let f = consumer.fetch("poll", 0, 0, 1 << 20, 5_000).await.unwrap();
        assert_eq!(values(&f.records), ["wake up", "elsewhere"]);
        assert!(started.elapsed() < Duration::from_secs(2));
    });
    assert_eq!(server.terminate(), 0);
}

fn fetch_request(partition: u32, offset: u64, wait_ms_max: u32) -> FetchRequest<'static> {
    FetchRequest {
        topic: "pipe",
        partition,
        offset,
        bytes_max: 1 << 20,
        wait_ms_max,
    }
}

fn fetched_values(f: &support::Frame) -> Vec<(u64, Vec<u8>)> {
    let r: FetchResponse<'_> = f.ok();
    r.records
        .iter()
        .map(|r| {
            let r: RecordOut<'_> = r.unwrap();
            (r.offset, r.value.to_vec())
        })
        .collect()
}

#[test]
fn pipelined_requests_are_answered_in_completion_order_by_id() {
    let (_dir, server) = start("pipeline");
    let c = server.client();
    block_on(c.create_topic("pipe", 2)).unwrap();

    let mut raw = server.raw();
    let one = [RecordIn {
        timestamp_ms: 1,
        key: None,
        value: b"first",
        headers: Seq::Slice(&[]),
    }];
    let produce = ProduceRequest {
        topic: "pipe",
        partition: Some(0),
        acks: WireAcks::Durable,
        records: Seq::Slice(&one),
    };

    // A long-poll FETCH (partition 1, 2.5 s), then a PRODUCE (partition 0) on the same
    // connection: the PRODUCE is answered first, the FETCH when its wait runs out.
    let mut bytes = support::request_frame(Kind::Fetch as u8, 10, &fetch_request(1, 0, 2_500));
    bytes.extend(support::request_frame(Kind::Produce as u8, 11, &produce));
    let sent = Instant::now();
    raw.write(&bytes).unwrap();
    let first = raw.frame();
    let first_at = sent.elapsed();
    assert_eq!(
        (first.header.kind, first.header.request_id),
        (Kind::Produce as u8, 11),
        "the PRODUCE must not wait behind the long poll: {first:?}"
    );
    let at: ProduceResponse = first.ok();
    assert_eq!((at.partition, at.base_offset, at.count), (0, 0, 1));
    assert!(
        first_at < Duration::from_millis(2_000),
        "PRODUCE answered after {first_at:?}"
    );
    let second = raw.response(Kind::Fetch as u8, 10);
    assert!(fetched_values(&second).is_empty());
    assert!(sent.elapsed() >= Duration::from_millis(2_450));

    // Four requests in one write, answered in the order they complete, each by its id: the
    // LIST_OFFSETS at once, then the long polls shortest wait first.
    let ids = [7u32, 3_000_000_000, 5, 42];
    let mut bytes = Vec::new();
    for (id, wait) in ids[..3].iter().zip([900, 500, 100]) {
        bytes.extend(support::request_frame(
            Kind::Fetch as u8,
            *id,
            &fetch_request(1, 0, wait),
        ));
    }
    bytes.extend(support::request_frame(
        Kind::ListOffsets as u8,
        ids[3],
        &ListOffsetsRequest {
            topic: "pipe",
            partition: 0,
        },
    ));
    raw.write(&bytes).unwrap();
    let order: Vec<(u8, u32)> = (0..4)
        .map(|_| {
            let f = raw.frame();
            assert!(f.header.is_response());
            assert_eq!(f.code(), ErrorCode::Ok, "{}", f.message());
            if f.header.kind == Kind::ListOffsets as u8 {
                let r: ListOffsetsResponse = f.ok();
                assert_eq!((r.earliest, r.next), (0, 1));
            } else {
                assert!(fetched_values(&f).is_empty());
            }
            (f.header.kind, f.header.request_id)
        })
        .collect();
    assert_eq!(
        order,
        [
            (Kind::ListOffsets as u8, 42),
            (Kind::Fetch as u8, 5),
            (Kind::Fetch as u8, 3_000_000_000),
            (Kind::Fetch as u8, 7),
        ]
    );

    // A long poll at the end of partition 0 and a PRODUCE to it: both answered by id (in
    // either order: the sync that acks the PRODUCE is what wakes the FETCH), the FETCH with
    // the new record.
    let mut bytes = support::request_frame(Kind::Fetch as u8, 100, &fetch_request(0, 1, 5_000));
    let second_record = [RecordIn {
        value: b"second",
        ..one[0]
    }];
    bytes.extend(support::request_frame(
        Kind::Produce as u8,
        101,
        &ProduceRequest {
            records: Seq::Slice(&second_record),
            ..produce
        },
    ));
    let sent = Instant::now();
    raw.write(&bytes).unwrap();
    let (a, b) = (raw.frame(), raw.frame());
    let (p, f) = if a.header.request_id == 101 {
        (a, b)
    } else {
        (b, a)
    };
    assert_eq!(
        (p.header.kind, p.header.request_id),
        (Kind::Produce as u8, 101)
    );
    assert_eq!(
        (f.header.kind, f.header.request_id),
        (Kind::Fetch as u8, 100)
    );
    let at: ProduceResponse = p.ok();
    assert_eq!(at.base_offset, 1);
    assert_eq!(fetched_values(&f), [(1, b"second".to_vec())]);
    assert!(
        sent.elapsed() < Duration::from_secs(3),
        "{:?}",
        sent.elapsed()
    );

    // The client library pipelines too: 200 produce calls in flight on one connection, each
    // answered with its own offsets, together covering 2.. contiguously.
    let c = Arc::new(c);
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let c = c.clone();
            smol::spawn(async move {
                let v = format!("pipelined-{i}");
                let at = c
                    .produce(
                        "pipe",
                        Some(0),
                        Acks::Durable,
                        &[record(None, v.as_bytes())],
                    )
                    .await?;
                Ok::<_, ClientError>((at.unwrap().base_offset, v))
            })
        })
        .collect();
    let mut acked: Vec<(u64, String)> = block_on(async {
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    acked.sort();
    let offsets: Vec<u64> = acked.iter().map(|a| a.0).collect();
    assert_eq!(offsets, (2..202).collect::<Vec<u64>>());
    let stored = block_on(fetch_all(&c, "pipe", 0, 2));
    let stored: Vec<(u64, String)> = stored
        .into_iter()
        .map(|r| (r.offset, String::from_utf8(r.record.value).unwrap()))
        .collect();
    assert_eq!(stored, acked);
    drop(c);
    drop(raw);
    assert_eq!(server.terminate(), 0);
}
