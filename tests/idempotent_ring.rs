//! Idempotent producers in the ring itself (simulated flash): initialisation and fencing,
//! sequences, retries answered with their original offsets, multi-partition atomic batches
//! read back per partition, and the producer state surviving a reopen and the ring wrapping
//! past every segment a producer wrote in.

use outpost::storage::flash::{Geometry, SimFlash};
use outpost::storage::meta::namespace;
use outpost::storage::producer::{self, ProducerError};
use outpost::storage::{
    AppendBody, AppendError, Appended, AtomicPartBody, CorruptionPolicy, FullPolicy, MetaOp,
    Offset, PartitionId, ProducerEpoch, ProducerId, Record, Ring, RingConfig, Sequence,
};

fn cfg() -> RingConfig {
    RingConfig {
        erase_block_bytes: 4096,
        program_unit_bytes: 256,
        ring_bytes: 6 * 32768,
        segment_bytes: 32768,
        full_policy: FullPolicy::DropOldest,
        corruption_policy: CorruptionPolicy::Refuse,
        group_bytes_max: 8192,
        batch_bytes_max: 2048,
        meta_bytes_max: 4096,
        partitions_max: 16,
        index_interval_bytes: 1024,
        read_chunk_bytes: 4096,
        append_queue_max: 64,
        producers_max: 4,
    }
}

fn rec(tag: &str, i: u32) -> Record {
    Record {
        timestamp_ms: i64::from(i),
        key: None,
        value: format!("{tag}-{i}").into_bytes(),
        headers: vec![],
    }
}

fn write(ring: &mut Ring<SimFlash>, body: AppendBody<'_>) -> Result<Appended, AppendError> {
    let mut g = ring.write_group(&[body])?;
    assert_eq!(g.consumed, 1);
    ring.sync()?;
    g.results.remove(0)
}

fn init(ring: &mut Ring<SimFlash>, name: &str) -> (ProducerId, ProducerEpoch) {
    write(
        ring,
        AppendBody::InitProducer {
            name: name.as_bytes(),
        },
    )
    .unwrap()
    .producer
    .unwrap()
}

fn part(p: u32, seq: u32, recs: Vec<Record>) -> AtomicPartBody {
    AtomicPartBody {
        partition: PartitionId(p),
        first_seq: Sequence(seq),
        records: recs,
    }
}

fn atomic(
    ring: &mut Ring<SimFlash>,
    (pid, epoch): (ProducerId, ProducerEpoch),
    parts: &[AtomicPartBody],
    meta: &[MetaOp],
) -> Result<Appended, AppendError> {
    write(
        ring,
        AppendBody::Atomic {
            producer: pid,
            epoch,
            parts,
            meta,
        },
    )
}

fn values(ring: &Ring<SimFlash>, p: u32) -> Vec<(u64, String)> {
    let r = ring.reader();
    let (mut at, next) = r.offsets(PartitionId(p));
    let mut out = Vec::new();
    while at < next {
        let b = r.read(PartitionId(p), at, 300).unwrap();
        assert!(!b.records.is_empty());
        at = b.next_offset;
        out.extend(
            b.records
                .into_iter()
                .map(|(o, r)| (o.0, String::from_utf8(r.value).unwrap())),
        );
    }
    out
}

fn reopen(ring: Ring<SimFlash>) -> Ring<SimFlash> {
    let image = ring.flash().crash_image(7);
    drop(ring);
    Ring::open(image, cfg()).unwrap().0
}

#[test]
fn sequences_retries_fencing_and_restart() {
    let c = cfg();
    let flash = SimFlash::new(
        Geometry::new(c.erase_block_bytes, c.program_unit_bytes, c.ring_bytes).unwrap(),
    );
    let (mut ring, _) = Ring::open(flash, c).unwrap();
    let a = init(&mut ring, "a");
    let b = init(&mut ring, "b");
    assert_eq!(a, (ProducerId(0), ProducerEpoch(0)));
    assert_eq!(b, (ProducerId(1), ProducerEpoch(0)));

    let first = [part(0, 0, vec![rec("a", 0), rec("a", 1), rec("a", 2)])];
    let w = atomic(&mut ring, a, &first, &[]).unwrap();
    assert_eq!(
        (w.base_offset, w.record_count, w.duplicate),
        (Offset(0), 3, false)
    );
    // A retry, up to five times: the same offsets, stored once.
    for _ in 0..5 {
        let again = atomic(&mut ring, a, &first, &[]).unwrap();
        assert!(again.duplicate);
        assert_eq!((again.base_offset, again.record_count), (Offset(0), 3));
    }
    // A gap.
    let gap = atomic(&mut ring, a, &[part(0, 5, vec![rec("a", 5)])], &[]);
    assert!(matches!(
        gap,
        Err(AppendError::Producer(ProducerError::OutOfOrder {
            expected: 3,
            ..
        }))
    ));
    // Two partitions and a metadata operation in one batch.
    let op = MetaOp::Put {
        namespace: namespace::TEST,
        key: b"k".to_vec(),
        value: b"v".to_vec(),
    };
    let multi = [
        part(0, 0, vec![rec("b", 0), rec("b", 1)]),
        part(1, 0, vec![rec("b", 2)]),
    ];
    let w = atomic(&mut ring, b, &multi, std::slice::from_ref(&op)).unwrap();
    assert_eq!(w.parts.len(), 2);
    assert_eq!(
        (w.parts[0].base_offset, w.parts[1].base_offset),
        (Offset(3), Offset(0))
    );
    let w = atomic(&mut ring, a, &[part(0, 3, vec![rec("a", 3)])], &[]).unwrap();
    assert_eq!(w.base_offset, Offset(5));
    let expect0 = vec![
        (0, "a-0".to_string()),
        (1, "a-1".into()),
        (2, "a-2".into()),
        (3, "b-0".into()),
        (4, "b-1".into()),
        (5, "a-3".into()),
    ];
    assert_eq!(values(&ring, 0), expect0);
    assert_eq!(values(&ring, 1), vec![(0, "b-2".to_string())]);

    // Restart: records, producer state and the batch's metadata are all back.
    let state = producer::all(ring.meta());
    let mut ring = reopen(ring);
    assert_eq!(producer::all(ring.meta()), state);
    assert_eq!(ring.meta().get(namespace::TEST, b"k"), Some(&b"v"[..]));
    assert_eq!(values(&ring, 0), expect0);
    let again = atomic(&mut ring, b, &multi, std::slice::from_ref(&op)).unwrap();
    assert!(again.duplicate);
    assert_eq!(
        (again.parts[0].base_offset, again.parts[1].base_offset),
        (Offset(3), Offset(0))
    );
    // Half a retry is not a retry.
    let half = [multi[0].clone(), part(2, 0, vec![rec("b", 9)])];
    assert!(matches!(
        atomic(&mut ring, b, &half, &[]),
        Err(AppendError::Producer(ProducerError::PartialRetry { .. }))
    ));

    // A second instance of "a" fences the first.
    let a2 = init(&mut ring, "a");
    assert_eq!(a2, (ProducerId(0), ProducerEpoch(1)));
    assert!(matches!(
        atomic(&mut ring, a, &[part(0, 4, vec![rec("a", 4)])], &[]),
        Err(AppendError::Producer(ProducerError::Fenced { .. }))
    ));
    let w = atomic(&mut ring, a2, &[part(0, 0, vec![rec("a2", 0)])], &[]).unwrap();
    assert_eq!(w.base_offset, Offset(6));

    // The ring wraps many times (drop-oldest) past every segment "b" wrote in: its state is
    // carried in every checkpoint, so its retry is still recognised, after a restart too.
    let filler: Vec<Record> = (0..10).map(|i| rec(&"x".repeat(100), i)).collect();
    for _ in 0..400 {
        write(
            &mut ring,
            AppendBody::Records {
                partition: PartitionId(5),
                records: &filler,
            },
        )
        .unwrap();
    }
    assert!(
        ring.reader().offsets(PartitionId(1)).0 > Offset(0),
        "not wrapped"
    );
    let mut ring = reopen(ring);
    let again = atomic(&mut ring, b, &multi, std::slice::from_ref(&op)).unwrap();
    assert!(again.duplicate);
    assert_eq!(again.parts[1].base_offset, Offset(0));
    let w = atomic(&mut ring, b, &[part(1, 1, vec![rec("b", 3)])], &[]).unwrap();
    assert_eq!(w.base_offset, Offset(1));
}

#[test]
fn the_most_idle_producer_expires_at_producers_max() {
    let c = cfg();
    let flash = SimFlash::new(
        Geometry::new(c.erase_block_bytes, c.program_unit_bytes, c.ring_bytes).unwrap(),
    );
    let (mut ring, _) = Ring::open(flash, c).unwrap();
    let ids: Vec<_> = ["p0", "p1", "p2", "p3"]
        .iter()
        .map(|n| init(&mut ring, n))
        .collect();
    // p0 writes, so p1 is the most idle.
    atomic(&mut ring, ids[0], &[part(0, 0, vec![rec("p0", 0)])], &[]).unwrap();
    let p4 = init(&mut ring, "p4");
    assert_eq!(p4.0, ProducerId(4));
    assert!(matches!(
        atomic(&mut ring, ids[1], &[part(0, 0, vec![rec("p1", 0)])], &[]),
        Err(AppendError::Producer(
            ProducerError::UnknownProducerId { .. }
        ))
    ));
    atomic(&mut ring, ids[0], &[part(0, 1, vec![rec("p0", 1)])], &[]).unwrap();
    let ring = reopen(ring);
    assert_eq!(producer::count(ring.meta()), 4);
}
