//! Group commit through the async `Log`: many writers share one program and one sync; a
//! `durable` ack is sent only after the covering sync returned Ok; `written` acks after the
//! program; `none` does not wait.

use outpost::storage::flash::{Fault, Geometry, SimFlash};
use outpost::storage::{
    Acks, AppendError, CorruptionPolicy, FullPolicy, Log, Offset, PartitionId, Record, Ring,
    RingConfig,
};
use std::sync::Arc;

fn cfg() -> RingConfig {
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
        append_queue_max: 256,
        producers_max: 64,
    }
}

fn open() -> Arc<Log<SimFlash>> {
    let c = cfg();
    let g = Geometry::new(c.erase_block_bytes, c.program_unit_bytes, c.ring_bytes).unwrap();
    let (ring, _) = Ring::open(SimFlash::new(g), c).unwrap();
    Arc::new(Log::start(ring).unwrap())
}

fn rec(i: u64) -> Record {
    Record {
        timestamp_ms: i as i64,
        key: None,
        value: i.to_le_bytes().to_vec(),
        headers: vec![],
    }
}

#[test]
fn concurrent_appends_share_syncs_and_all_land_in_order() {
    let log = open();
    let writers = 64u64;
    let per_writer = 50u64;
    smol::block_on(async {
        let mut tasks = Vec::new();
        for w in 0..writers {
            let log = log.clone();
            tasks.push(smol::spawn(async move {
                let mut last = None;
                for i in 0..per_writer {
                    let a = log
                        .append(
                            PartitionId((w % 4) as u32),
                            vec![rec(w * 1000 + i)],
                            Acks::Durable,
                        )
                        .await
                        .unwrap()
                        .unwrap();
                    // A writer's own appends get increasing offsets.
                    if let Some(prev) = last {
                        assert!(a.base_offset > prev);
                    }
                    last = Some(a.base_offset);
                }
            }));
        }
        for t in tasks {
            t.await;
        }
    });
    let snap = log.reader().snapshot();
    let total: u64 = (0..4)
        .map(|p| log.reader().offsets(PartitionId(p)).1.0)
        .sum();
    assert_eq!(total, writers * per_writer);
    assert!(
        snap.stats.syncs < writers * per_writer / 4,
        "group commit must share syncs: {} syncs for {} appends",
        snap.stats.syncs,
        writers * per_writer
    );
    log.close();
}

#[test]
fn durable_ack_waits_for_the_sync_and_reports_its_failure() {
    let c = cfg();
    let g = Geometry::new(c.erase_block_bytes, c.program_unit_bytes, c.ring_bytes).unwrap();
    let flash = SimFlash::new(g);
    let (ring, _) = Ring::open(flash, c).unwrap();
    ring.flash().set_fault(Fault::FailSyncAt(1));
    let log = Log::start(ring).unwrap();
    smol::block_on(async {
        // First group: synced fine.
        let a = log
            .append(PartitionId(0), vec![rec(1)], Acks::Durable)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a.base_offset, Offset(0));
        // Second group: the program works, the sync fails: a durable ack must not be
        // sent, the append learns that its sync failed.
        let d = log
            .append(PartitionId(0), vec![rec(2)], Acks::Durable)
            .await;
        assert!(matches!(d, Err(AppendError::SyncFailed { .. })), "{d:?}");
        // From now on the log refuses appends until it is reopened.
        let after = log
            .append(PartitionId(0), vec![rec(4)], Acks::Written)
            .await;
        assert!(
            matches!(after, Err(AppendError::Poisoned { .. })),
            "{after:?}"
        );
        // acks=none never waits, even now.
        assert!(
            log.append(PartitionId(0), vec![rec(5)], Acks::None)
                .await
                .unwrap()
                .is_none()
        );
    });
    // Readers never saw the unsynced record.
    assert_eq!(log.reader().offsets(PartitionId(0)).1, Offset(1));
}
