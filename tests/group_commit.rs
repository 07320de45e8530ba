//! Group commit through the async `Log`: many writers share one program and one sync; a
//! `durable` ack is sent only after the covering sync returned Ok; `written` acks after the
//! program; `none` does not wait.

use outpost::storage::flash::{Fault, Flash, FlashError, Geometry, SimFlash};
use outpost::storage::{
    Acks, AppendError, CorruptionPolicy, FullPolicy, Log, Offset, PartitionId, Record, Ring,
    RingConfig,
};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::SeqCst;

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

/// `append_returning` hands the records back with the answer (for the caller to reuse their
/// buffers), after the same durable ack as `append`; `acks = none` keeps nothing to hand back.
#[test]
fn append_returning_hands_the_records_back_after_the_ack() {
    let log = open();
    smol::block_on(async {
        let records = vec![rec(1), rec(2)];
        let (a, back) = log
            .append_returning(PartitionId(3), records.clone(), Acks::Durable)
            .await;
        let a = a.unwrap().unwrap();
        assert_eq!((a.base_offset, a.record_count), (Offset(0), 2));
        assert_eq!(back, records);
        assert_eq!(log.reader().offsets(PartitionId(3)).1, Offset(2));
        let (none, back) = log
            .append_returning(PartitionId(3), records.clone(), Acks::None)
            .await;
        assert!(none.unwrap().is_none());
        assert!(back.is_empty());
    });
}

/// What [`PanicsInSync`] counts, shared with the test.
#[derive(Default)]
struct SyncCounters {
    panic_at: AtomicU64,
    syncs: AtomicU64,
    writes_after: AtomicU64,
}

/// A flash that panics in its `panic_at`-th sync (counted from 1), and counts every program and
/// erase made after that.
struct PanicsInSync {
    inner: SimFlash,
    n: Arc<SyncCounters>,
}

impl PanicsInSync {
    fn count_write(&self) {
        if self.n.syncs.load(SeqCst) >= self.n.panic_at.load(SeqCst) {
            self.n.writes_after.fetch_add(1, SeqCst);
        }
    }
}

impl Flash for PanicsInSync {
    fn geometry(&self) -> Geometry {
        self.inner.geometry()
    }
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), FlashError> {
        self.inner.read(offset, buf)
    }
    fn program(&self, offset: u64, data: &[u8]) -> Result<(), FlashError> {
        self.count_write();
        self.inner.program(offset, data)
    }
    fn erase(&self, block_offset: u64) -> Result<(), FlashError> {
        self.count_write();
        self.inner.erase(block_offset)
    }
    fn sync(&self) -> Result<(), FlashError> {
        let n = self.n.syncs.fetch_add(1, SeqCst) + 1;
        if n == self.n.panic_at.load(SeqCst) {
            panic!("test: the flash driver panics in sync {n}");
        }
        self.inner.sync()
    }
    fn overwrites_in_place(&self) -> bool {
        self.inner.overwrites_in_place()
    }
}

/// The flash driver panics in a sync on the sync thread, right after programming a group: the
/// appends waiting for it are answered, the ring is poisoned, every later append gets
/// `Poisoned` (none `Closed`: a group handed over while the panic unwound was once dropped
/// unanswered, in about a quarter of the runs), and nothing is programmed or erased after
/// that — also not by the writer's own segment roll, which would otherwise leave a second
/// unsynced program on the medium (invariant 1).
#[test]
fn a_panic_on_the_sync_thread_poisons_the_ring_and_answers_every_append() {
    let c = cfg();
    let g = Geometry::new(c.erase_block_bytes, c.program_unit_bytes, c.ring_bytes).unwrap();
    let n = Arc::new(SyncCounters {
        panic_at: AtomicU64::new(u64::MAX),
        ..SyncCounters::default()
    });
    let flash = PanicsInSync {
        inner: SimFlash::new(g),
        n: n.clone(),
    };
    let (ring, _) = Ring::open(flash, c.clone()).unwrap();
    // The first sync after opening panics.
    n.panic_at.store(n.syncs.load(SeqCst) + 1, SeqCst);
    let log = Log::start(ring).unwrap();
    smol::block_on(async {
        let first = log
            .append(PartitionId(0), vec![rec(1)], Acks::Durable)
            .await;
        assert!(first.is_err(), "{first:?}");
        // Enough appends to need segment rolls: every one is refused, none hangs.
        let big = Record {
            timestamp_ms: 0,
            key: None,
            value: vec![7; 3000],
            headers: vec![],
        };
        for _ in 0..(2 * c.segment_bytes / 3000) {
            let r = log
                .append(PartitionId(0), vec![big.clone()], Acks::Durable)
                .await;
            assert!(
                matches!(r, Err(AppendError::Poisoned { .. })),
                "an append after the sync thread died: {r:?}"
            );
        }
    });
    log.close();
    assert_eq!(log.reader().offsets(PartitionId(0)).1, Offset(0));
    assert_eq!(
        n.writes_after.load(SeqCst),
        0,
        "programs or erases after the sync thread died"
    );
}
