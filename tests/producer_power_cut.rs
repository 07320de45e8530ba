//! Regressions of the idempotent-producer storage layer (the power-cut simulation follows).

use outpost::storage::flash::{Geometry, SimFlash};
use outpost::storage::{
    AppendBody, AtomicPartBody, CorruptionPolicy, FullPolicy, Offset, PartitionId, Record, Ring,
    RingConfig, Sequence,
};

fn small_record(i: u32) -> Record {
    Record {
        timestamp_ms: i64::from(i),
        key: None,
        value: format!("v{i}").into_bytes(),
        headers: vec![],
    }
}

fn regression_config() -> RingConfig {
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

/// An `Atomic` batch and a `Records` batch of the same partition in one group: the writer
/// published the group's `Records` batches to the index before its `Atomic` parts, so the
/// partition's index went out of offset order and the atomic write's acknowledged records could
/// not be read (`OffsetOutOfRange`, earliest 1) until a restart rebuilt the index.
#[test]
fn atomic_and_records_batches_of_one_partition_in_one_group_read_back() {
    let c = regression_config();
    let flash = SimFlash::new(Geometry::new(4096, 256, c.ring_bytes).unwrap());
    let (mut ring, _) = Ring::open(flash, c).unwrap();
    let g = ring
        .write_group(&[AppendBody::InitProducer { name: b"a" }])
        .unwrap();
    ring.sync().unwrap();
    let (producer, epoch) = g.results[0].as_ref().unwrap().producer.unwrap();
    let parts = [AtomicPartBody {
        partition: PartitionId(0),
        first_seq: Sequence(0),
        records: vec![small_record(0)],
    }];
    let plain = [small_record(1), small_record(2)];
    let g = ring
        .write_group(&[
            AppendBody::Atomic {
                producer,
                epoch,
                parts: &parts,
                meta: &[],
            },
            AppendBody::Records {
                partition: PartitionId(0),
                records: &plain,
            },
        ])
        .unwrap();
    assert_eq!(g.consumed, 2);
    ring.sync().unwrap();
    let r = ring.reader();
    assert_eq!(r.offsets(PartitionId(0)), (Offset(0), Offset(3)));
    for from in 0..3 {
        let b = r.read(PartitionId(0), Offset(from), 1 << 20).unwrap();
        let got: Vec<u64> = b.records.iter().map(|(o, _)| o.0).collect();
        assert_eq!(got, (from..3).collect::<Vec<_>>(), "read from {from}");
    }
}

/// An `Atomic` batch whose CRCs are right but whose second part is malformed is damage, and it
/// changes nothing: recovery used to apply the first part's offsets before it checked the
/// second, so fsck and `skip-segment` reported (and used) a next offset for a partition whose
/// records were never indexed.
#[test]
fn an_inconsistent_atomic_batch_is_applied_not_at_all() {
    use outpost::storage::SegmentSeq;
    use outpost::storage::format::{
        BATCH_HEADER_BYTES, BatchHeader, BatchKind, decode_atomic_body, first_batch_pos, salted_crc,
    };
    use outpost::storage::recovery::{Mode, recover};

    let c = regression_config();
    let geo = Geometry::new(4096, 256, c.ring_bytes).unwrap();
    let (mut ring, _) = Ring::open(SimFlash::new(geo), c.clone()).unwrap();
    let g = ring
        .write_group(&[AppendBody::InitProducer { name: b"a" }])
        .unwrap();
    ring.sync().unwrap();
    let (producer, epoch) = g.results[0].as_ref().unwrap().producer.unwrap();
    let parts = [0, 1].map(|p| AtomicPartBody {
        partition: PartitionId(p),
        first_seq: Sequence(0),
        records: vec![small_record(p)],
    });
    ring.write_group(&[AppendBody::Atomic {
        producer,
        epoch,
        parts: &parts,
        meta: &[],
    }])
    .unwrap();
    ring.sync().unwrap();
    let mut image = ring.flash().durable_image();
    drop(ring);

    // Find the atomic batch in segment 0 and break the length prefix of part 1's record.
    let seq = SegmentSeq(0);
    let mut pos = first_batch_pos(c.program_unit_bytes) as usize;
    let at = loop {
        let h = BatchHeader::decode(&image[pos..pos + BATCH_HEADER_BYTES], seq, 1 << 20).unwrap();
        if h.kind == BatchKind::Atomic {
            break pos;
        }
        pos += h.total_bytes() as usize;
        if h.last_in_group() {
            pos = pos.next_multiple_of(c.program_unit_bytes as usize);
        }
    };
    let body_at = at + BATCH_HEADER_BYTES;
    let h = BatchHeader::decode(&image[at..body_at], seq, 1 << 20).unwrap();
    let body_end = body_at + h.body_bytes as usize;
    let view = decode_atomic_body(&image[body_at..body_end]).unwrap();
    let second = body_at + 12 + 24 + view.parts[0].records.len() + 24;
    image[second..second + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let body_crc = salted_crc(seq, &[&image[body_at..body_end]]);
    image[at + 32..at + 36].copy_from_slice(&body_crc.to_le_bytes());
    let header_crc = salted_crc(seq, &[&image[at..at + 36]]);
    image[at + 36..at + 40].copy_from_slice(&header_crc.to_le_bytes());

    let rec = recover(&SimFlash::from_image(geo, image), &c, Mode::Fsck).unwrap();
    assert_eq!(rec.report.damage.len(), 1, "{:?}", rec.report.damage);
    assert_eq!(rec.report.damage[0].pos, at as u64);
    assert_eq!(
        rec.report.partitions,
        vec![],
        "a part of the batch was applied"
    );
    assert!(rec.parts_next.is_empty());
}
