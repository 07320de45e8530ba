//! Basic behaviour of the ring on the simulated flash: append, read back, reopen, roll and
//! wrap, full policies, poisoning after a failed sync.

use outpost::storage::flash::{Fault, Geometry, SimFlash};
use outpost::storage::{
    AppendBody, AppendError, CorruptionPolicy, FullPolicy, MetaOp, Offset, PartitionId, Record,
    Ring, RingConfig,
};

fn cfg() -> RingConfig {
    RingConfig {
        erase_block_bytes: 4096,
        program_unit_bytes: 256,
        ring_bytes: 6 * 16384,
        segment_bytes: 16384,
        full_policy: FullPolicy::Reject,
        corruption_policy: CorruptionPolicy::Refuse,
        group_bytes_max: 8192,
        batch_bytes_max: 2048,
        meta_bytes_max: 1024,
        partitions_max: 16,
        index_interval_bytes: 1024,
        read_chunk_bytes: 4096,
        append_queue_max: 64,
        producers_max: 64,
    }
}

fn flash(c: &RingConfig) -> SimFlash {
    SimFlash::new(Geometry::new(c.erase_block_bytes, c.program_unit_bytes, c.ring_bytes).unwrap())
}

fn rec(i: u64) -> Record {
    Record {
        timestamp_ms: i as i64,
        key: i.is_multiple_of(3).then(|| format!("k{i}").into_bytes()),
        value: format!("value-{i}-{}", "x".repeat((i % 50) as usize)).into_bytes(),
        headers: if i.is_multiple_of(5) {
            vec![("h".to_string(), vec![i as u8])]
        } else {
            vec![]
        },
    }
}

fn append(ring: &mut Ring<SimFlash>, p: u32, recs: &[Record]) -> Result<Offset, AppendError> {
    let body = [AppendBody::Records {
        partition: PartitionId(p),
        records: recs,
    }];
    let mut g = ring.write_group(&body)?;
    assert_eq!(g.consumed, 1);
    ring.sync()?;
    g.results.remove(0).map(|a| a.base_offset)
}

fn read_all(ring: &Ring<SimFlash>, p: u32) -> Vec<(Offset, Record)> {
    let r = ring.reader();
    let (mut at, next) = r.offsets(PartitionId(p));
    let mut out = Vec::new();
    while at < next {
        let b = r.read(PartitionId(p), at, 1000).unwrap();
        assert!(!b.records.is_empty());
        at = b.next_offset;
        out.extend(b.records);
    }
    out
}

#[test]
fn append_read_reopen_roundtrip() {
    let c = cfg();
    let (mut ring, report) = Ring::open(flash(&c), c.clone()).unwrap();
    assert!(report.blank);
    let mut expected = Vec::new();
    for i in 0..200u64 {
        let base = append(&mut ring, (i % 3) as u32, &[rec(i)]).unwrap();
        expected.push(((i % 3) as u32, base, rec(i)));
    }
    for p in 0..3 {
        let got = read_all(&ring, p);
        let want: Vec<_> = expected
            .iter()
            .filter(|(q, _, _)| *q == p)
            .map(|(_, o, r)| (*o, r.clone()))
            .collect();
        assert_eq!(got, want);
    }
    // Reopen on the durable image.
    let snapshot = outpost::storage::flash::SimFlash::from_image(
        Geometry::new(c.erase_block_bytes, c.program_unit_bytes, c.ring_bytes).unwrap(),
        ring_image(&ring),
    );
    let (ring2, report) = Ring::open(snapshot, c.clone()).unwrap();
    assert!(!report.blank);
    assert!(report.damage.is_empty());
    assert_eq!(report.torn_tail, None);
    for p in 0..3 {
        assert_eq!(read_all(&ring2, p), read_all(&ring, p));
    }
}

fn ring_image(ring: &Ring<SimFlash>) -> Vec<u8> {
    ring.flash().durable_image()
}

#[test]
fn reject_when_full_then_release_frees_space() {
    let c = cfg();
    let (mut ring, _) = Ring::open(flash(&c), c.clone()).unwrap();
    let big = Record {
        value: vec![7u8; 1500],
        ..Record::default()
    };
    let mut n = 0u64;
    let full_at = loop {
        match append(&mut ring, 0, std::slice::from_ref(&big)) {
            Ok(_) => n += 1,
            Err(AppendError::BufferFull) => break n,
            Err(e) => panic!("{e}"),
        }
        assert!(n < 1000, "never filled");
    };
    assert!(full_at > 20);
    // Nothing acknowledged was lost.
    assert_eq!(read_all(&ring, 0).len() as u64, full_at);
    ring.release(PartitionId(0), Offset(full_at / 2));
    append(&mut ring, 0, std::slice::from_ref(&big)).unwrap();
    let (earliest, next) = ring.reader().offsets(PartitionId(0));
    assert!(earliest > Offset(0) && earliest <= Offset(full_at / 2));
    assert_eq!(next, Offset(full_at + 1));
}

#[test]
fn drop_oldest_counts_what_it_drops() {
    let mut c = cfg();
    c.full_policy = FullPolicy::DropOldest;
    let (mut ring, _) = Ring::open(flash(&c), c.clone()).unwrap();
    for i in 0..400 {
        append(&mut ring, 0, &[rec(i)]).unwrap();
    }
    let events = ring.take_drop_events();
    assert!(!events.is_empty());
    let dropped: u64 = events.iter().map(|e| e.to.0 - e.from.0).sum();
    let (earliest, next) = ring.reader().offsets(PartitionId(0));
    assert_eq!(next, Offset(400));
    assert_eq!(earliest, Offset(dropped));
    assert_eq!(read_all(&ring, 0).len() as u64, 400 - dropped);
}

#[test]
fn failed_sync_poisons_the_ring() {
    let c = cfg();
    let (mut ring, _) = Ring::open(flash(&c), c.clone()).unwrap();
    append(&mut ring, 0, &[rec(1)]).unwrap();
    ring.flash().set_fault(Fault::FailSyncAt(0));
    assert!(matches!(
        append(&mut ring, 0, &[rec(2)]),
        Err(AppendError::Flash(_))
    ));
    assert!(matches!(
        append(&mut ring, 0, &[rec(3)]),
        Err(AppendError::Poisoned { .. })
    ));
}

#[test]
fn metadata_survives_wrap_and_reopen() {
    let mut c = cfg();
    c.full_policy = FullPolicy::DropOldest;
    let (mut ring, _) = Ring::open(flash(&c), c.clone()).unwrap();
    let ops = [MetaOp::Put {
        namespace: 0,
        key: b"topic/a".to_vec(),
        value: b"3".to_vec(),
    }];
    ring.write_group(&[AppendBody::Meta(&ops)]).unwrap();
    ring.sync().unwrap();
    for i in 0..600 {
        append(&mut ring, 1, &[rec(i)]).unwrap();
    }
    assert!(
        !ring.take_drop_events().is_empty(),
        "the ring must have wrapped"
    );
    let image = ring_image(&ring);
    let g = Geometry::new(c.erase_block_bytes, c.program_unit_bytes, c.ring_bytes).unwrap();
    let (ring2, _) = Ring::open(SimFlash::from_image(g, image), c.clone()).unwrap();
    assert_eq!(ring2.meta().get(0, b"topic/a"), Some(&b"3"[..]));
    assert_eq!(ring2.next_offset(PartitionId(1)), Offset(600));
}
