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
