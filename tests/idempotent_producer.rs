//! Idempotent producers and atomic writes end to end against the real `outpost serve`
//! (DESIGN.md promise 2, issue 5):
//!
//! - every batch sent 1 to 5 times is stored once and every answer carries the same offsets;
//! - batches pipelined on one connection are stored in sequence order;
//! - a gap gets OUT_OF_ORDER_SEQUENCE, a batch older than the five remembered
//!   DUPLICATE_SEQUENCE, a stale epoch PRODUCER_FENCED, an unknown id UNKNOWN_PRODUCER_ID;
//! - after SIGKILL + restart the last batches are still recognised as retries (same offsets);
//! - an atomic write (outputs to two partitions + group offsets) is stored and committed
//!   together, its retry is answered as a duplicate, half a retry is refused.

mod support;

use outpost::client::{AtomicCommitIn, AtomicOutputIn, Client, OffsetToCommit, ProducerIdentity};
use outpost::protocol::ErrorCode;
use outpost::storage::Record;
use support::{Server, TempDir, fetch_all};

const TOPIC: &str = "t";

fn config(dir: &TempDir) -> std::path::PathBuf {
    let path = dir.path().join("outpost.toml");
    std::fs::write(
        &path,
        "[storage]\nfull_policy = \"reject\"\ncorruption_policy = \"refuse\"\n\
         meta_bytes_max = \"32 KiB\"\nproducers_max = 8\n",
    )
    .unwrap();
    path
}

fn batch(tag: &str, k: u32, n: u32) -> Vec<Record> {
    (0..n)
        .map(|i| Record {
            timestamp_ms: 1_700_000_000_000,
            key: None,
            value: format!("{tag}-{k}-{i}").into_bytes(),
            headers: vec![("k".into(), k.to_le_bytes().to_vec())],
        })
        .collect()
}

fn code<T: std::fmt::Debug>(r: Result<T, outpost::client::ClientError>) -> ErrorCode {
    r.unwrap_err().code().unwrap()
}

#[test]
fn retries_are_stored_once_in_order_across_restarts_and_fenced() {
    let dir = TempDir::new("idempotent");
    let board = dir.board("256 KiB", "4 MiB", "128 KiB", "16 KiB");
    let cfg = config(&dir);
    let server = Server::start(&board, &dir.data(), Some(&cfg));
    let c = server.client();
    let (sent, seq) = smol::block_on(async {
        c.create_topic(TOPIC, 3).await.unwrap();
        let p = c.init_producer("sensor-hub").await.unwrap();
        assert_eq!(p.epoch, 0);
        // 1. Every batch 1 to 5 times: one copy stored, one answer.
        let mut seq = [0u32; 3];
        let mut sent: Vec<(u32, u32, u32, u64)> = Vec::new(); // (partition, k, seq, base)
        for k in 0..30u32 {
            let part = k % 3;
            let records = batch("a", k, 1 + k % 4);
            let mut first = None;
            for attempt in 0..=(k % 5) {
                let r = c
                    .produce_idempotent(p, TOPIC, part, seq[part as usize], &records)
                    .await
                    .unwrap();
                assert_eq!(r.duplicate, attempt > 0, "batch {k} attempt {attempt}");
                match first {
                    None => first = Some(r.produced),
                    Some(f) => assert_eq!(r.produced, f, "batch {k}: same offsets"),
                }
            }
            let f = first.unwrap();
            sent.push((part, k, seq[part as usize], f.base_offset));
            seq[part as usize] += records.len() as u32;
        }
        // 2. Pipelined on one connection: stored in sequence order.
        let pipelined: Vec<Vec<Record>> = (100..140).map(|k| batch("pipe", k, 2)).collect();
        let mut calls = Vec::new();
        let mut s = seq[0];
        for records in &pipelined {
            calls.push(c.produce_idempotent(p, TOPIC, 0, s, records));
            s += 2;
        }
        let answers = futures_lite_join(calls).await;
        let mut expect_base = answers[0].as_ref().unwrap().produced.base_offset;
        for a in answers {
            let a = a.unwrap();
            assert!(!a.duplicate);
            assert_eq!(a.produced.base_offset, expect_base);
            expect_base += 2;
        }
        seq[0] = s;
        // 3. Refusals.
        let gap = c
            .produce_idempotent(p, TOPIC, 1, seq[1] + 1, &batch("gap", 0, 1))
            .await;
        assert_eq!(code(gap), ErrorCode::OutOfOrderSequence);
        let old = c
            .produce_idempotent(p, TOPIC, 1, 0, &batch("a", 1, 2))
            .await;
        assert_eq!(code(old), ErrorCode::DuplicateSequence);
        let unknown = ProducerIdentity { id: 999, epoch: 0 };
        let r = c
            .produce_idempotent(unknown, TOPIC, 1, 0, &batch("u", 0, 1))
            .await;
        assert_eq!(code(r), ErrorCode::UnknownProducerId);
        assert_eq!(
            code(c.init_producer("").await),
            ErrorCode::InvalidProducerName
        );
        (sent, seq)
    });
    // 4. SIGKILL and restart: the last batches are still known, with their offsets.
    server.kill9();
    let server = Server::start(&board, &dir.data(), Some(&cfg));
    let c = server.client();
    smol::block_on(async {
        let p = ProducerIdentity { id: 0, epoch: 0 };
        // Partition 0 got 40 pipelined batches since: only 1 and 2 have these among their last 5.
        for &(part, k, s, base) in sent.iter().rev().filter(|s| s.0 != 0).take(8) {
            let r = c
                .produce_idempotent(p, TOPIC, part, s, &batch("a", k, 1 + k % 4))
                .await
                .unwrap();
            assert!(r.duplicate, "batch {k} after restart");
            assert_eq!(r.produced.base_offset, base);
        }
        // Stored once, in order: partition 2 holds exactly its batches.
        let stored: Vec<String> = fetch_all(&c, TOPIC, 2, 0)
            .await
            .into_iter()
            .map(|r| String::from_utf8(r.record.value).unwrap())
            .collect();
        let expected: Vec<String> = sent
            .iter()
            .filter(|s| s.0 == 2)
            .flat_map(|&(_, k, _, _)| batch("a", k, 1 + k % 4))
            .map(|r| String::from_utf8(r.value).unwrap())
            .collect();
        assert_eq!(stored, expected);
        // 5. A second instance fences the first.
        let p2 = c.init_producer("sensor-hub").await.unwrap();
        assert_eq!((p2.id, p2.epoch), (0, 1));
        let stale = c
            .produce_idempotent(p, TOPIC, 0, seq[0], &batch("z", 0, 1))
            .await;
        assert_eq!(code(stale), ErrorCode::ProducerFenced);
        let r = c
            .produce_idempotent(p2, TOPIC, 0, 0, &batch("new", 0, 1))
            .await
            .unwrap();
        assert!(!r.duplicate);
    });
    assert_eq!(server.terminate(), 0);
}

#[test]
fn atomic_write_stores_outputs_and_offsets_together() {
    let dir = TempDir::new("atomic");
    let board = dir.board("256 KiB", "4 MiB", "128 KiB", "16 KiB");
    let cfg = config(&dir);
    let server = Server::start(&board, &dir.data(), Some(&cfg));
    let c = server.client();
    smol::block_on(async {
        c.create_topic("in", 1).await.unwrap();
        c.create_topic("out", 2).await.unwrap();
        c.produce(
            "in",
            Some(0),
            outpost::storage::Acks::Durable,
            &batch("in", 0, 5),
        )
        .await
        .unwrap();
        let p = c.init_producer("worker").await.unwrap();
        let outputs = vec![
            AtomicOutputIn {
                topic: "out".into(),
                partition: 0,
                first_sequence: 0,
                records: batch("o", 0, 3),
            },
            AtomicOutputIn {
                topic: "out".into(),
                partition: 1,
                first_sequence: 0,
                records: batch("o", 1, 2),
            },
        ];
        let commit = AtomicCommitIn {
            group: "g".into(),
            member: None,
            offsets: vec![OffsetToCommit {
                topic: "in".into(),
                partition: 0,
                offset: 5,
                metadata: String::new(),
            }],
        };
        let w = c.atomic_write(p, &outputs, Some(&commit)).await.unwrap();
        assert!(!w.duplicate);
        assert_eq!(w.outputs.len(), 2);
        assert_eq!((w.outputs[0].1.base_offset, w.outputs[1].1.count), (0, 2));
        let again = c.atomic_write(p, &outputs, Some(&commit)).await.unwrap();
        assert!(again.duplicate);
        assert_eq!(again.outputs, w.outputs);
        let half = [
            outputs[0].clone(),
            AtomicOutputIn {
                topic: "in".into(),
                partition: 0,
                first_sequence: 0,
                records: batch("x", 0, 1),
            },
        ];
        assert_eq!(
            code(c.atomic_write(p, &half, None).await),
            ErrorCode::InvalidAtomicWrite
        );
        // An offset past the durable end writes nothing, outputs included.
        let ahead = AtomicCommitIn {
            offsets: vec![OffsetToCommit {
                offset: 6,
                ..commit.offsets[0].clone()
            }],
            ..commit.clone()
        };
        let next = [AtomicOutputIn {
            first_sequence: 3,
            ..outputs[0].clone()
        }];
        assert_eq!(
            code(c.atomic_write(p, &next, Some(&ahead)).await),
            ErrorCode::OffsetAheadOfLog
        );
        assert_eq!(c.list_offsets("out", 0).await.unwrap().next, 3);
        let off = c.fetch_offsets("g", None, &[("in", 0)]).await.unwrap();
        assert_eq!(off[0].committed, Some(5));
    });
    // After SIGKILL both the outputs and the offsets are there.
    server.kill9();
    let server = Server::start(&board, &dir.data(), Some(&cfg));
    let c: Client = server.client();
    smol::block_on(async {
        let off = c.fetch_offsets("g", None, &[("in", 0)]).await.unwrap();
        assert_eq!(off[0].committed, Some(5));
        assert_eq!(fetch_all(&c, "out", 0, 0).await.len(), 3);
        assert_eq!(fetch_all(&c, "out", 1, 0).await.len(), 2);
    });
}

/// Polls every future together (they are all in flight at once), answers in input order.
async fn futures_lite_join<T>(futs: Vec<impl std::future::Future<Output = T>>) -> Vec<T> {
    let mut pinned: Vec<_> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<T>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in pinned.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|o| o.unwrap()).collect()
}
