//! Basic behaviour of the ring on the simulated flash: append, read back, reopen, roll and
//! wrap, full policies, poisoning after a failed sync.

use outpost::storage::flash::{Fault, Flash, FlashError, Geometry, SimFlash};
use outpost::storage::{
    AppendBody, AppendError, CorruptionPolicy, FullPolicy, MetaOp, Offset, PartitionId, Record,
    Ring, RingConfig,
};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::SeqCst;

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

/// A simulated flash that counts the bytes read and the erases made through it.
struct Counting {
    inner: SimFlash,
    read_bytes: AtomicU64,
    erases: AtomicU64,
}

impl Flash for Counting {
    fn geometry(&self) -> Geometry {
        self.inner.geometry()
    }
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), FlashError> {
        self.read_bytes.fetch_add(buf.len() as u64, SeqCst);
        self.inner.read(offset, buf)
    }
    fn program(&self, offset: u64, data: &[u8]) -> Result<(), FlashError> {
        self.inner.program(offset, data)
    }
    fn erase(&self, block_offset: u64) -> Result<(), FlashError> {
        self.erases.fetch_add(1, SeqCst);
        self.inner.erase(block_offset)
    }
    fn sync(&self) -> Result<(), FlashError> {
        self.inner.sync()
    }
    fn overwrites_in_place(&self) -> bool {
        self.inner.overwrites_in_place()
    }
}

fn append_counting(ring: &mut Ring<Counting>, recs: &[Record]) {
    let body = [AppendBody::Records {
        partition: PartitionId(0),
        records: recs,
    }];
    let g = ring.write_group(&body).unwrap();
    assert_eq!(g.consumed, 1);
    g.results.into_iter().for_each(|r| {
        r.unwrap();
    });
    ring.sync().unwrap();
}

/// Free slots are read when a roll comes to them, not at open (which would read most of a ring
/// that has not wrapped yet at every start): a free slot that reads erased is used without an
/// erase, one that holds anything else is erased first.
#[test]
fn free_slots_are_read_by_the_roll_that_needs_them_not_at_open() {
    // Many free slots, so that reading them would show.
    let c = RingConfig {
        ring_bytes: 32 * 16384,
        ..cfg()
    };
    let n = c.ring_bytes / c.segment_bytes;
    let counting = Counting {
        inner: flash(&c),
        read_bytes: AtomicU64::new(0),
        erases: AtomicU64::new(0),
    };
    // Garbage in slot 3, which the first lap reaches without a reclaim.
    counting
        .inner
        .program(3 * c.segment_bytes + 8192, &[0x5A; 256])
        .unwrap();
    let (mut ring, _) = Ring::open(counting, c.clone()).unwrap();
    // Opening a blank medium formats it: slot 0 is read in full (it reads erased, so it is not
    // erased), the other slots only where recovery looks for headers.
    let f = ring.flash();
    assert!(
        f.read_bytes.load(SeqCst) < c.segment_bytes + n * 2 * c.read_chunk_bytes,
        "opening read {} bytes of a {}-byte ring",
        f.read_bytes.load(SeqCst),
        c.ring_bytes
    );
    assert_eq!(f.erases.load(SeqCst), 0);
    // Slots 1 and 2 are used without an erase, slot 3 is erased (every erase block of it).
    let big = Record {
        timestamp_ms: 0,
        key: None,
        value: vec![1; 1500],
        headers: vec![],
    };
    let mut written = 0u64;
    while ring.reader().snapshot().segments.len() < 3 {
        append_counting(&mut ring, std::slice::from_ref(&big));
        written += 1;
    }
    assert_eq!(ring.flash().erases.load(SeqCst), 0);
    while ring.reader().snapshot().segments.len() < 4 {
        append_counting(&mut ring, std::slice::from_ref(&big));
        written += 1;
    }
    let blocks = c.segment_bytes / c.erase_block_bytes;
    assert_eq!(ring.flash().erases.load(SeqCst), blocks);
    // Everything reads back, also after a reopen, which again reads little.
    let flash = ring_counting_image(&ring);
    drop(ring);
    let reopened = Counting {
        inner: flash,
        read_bytes: AtomicU64::new(0),
        erases: AtomicU64::new(0),
    };
    let (ring, _) = Ring::open(reopened, c.clone()).unwrap();
    assert_eq!(ring.reader().offsets(PartitionId(0)).1, Offset(written));
    // The live segments are scanned (the newest one to its end, twice at most); every slot
    // costs a read chunk or two where recovery looks for headers and batches; the 28 free
    // slots are not read in full (that alone would be 28 segments).
    let live = 4;
    assert!(
        ring.flash().read_bytes.load(SeqCst)
            < (live + 2) * c.segment_bytes + n * 2 * c.read_chunk_bytes,
        "reopening read {} bytes with {live} of {n} slots live",
        ring.flash().read_bytes.load(SeqCst)
    );
}

fn ring_counting_image(ring: &Ring<Counting>) -> SimFlash {
    SimFlash::from_image(ring.flash().inner.geometry(), ring.flash().inner.image())
}

/// Consecutive appends of one partition in one group share a batch (one header, one CRC);
/// each keeps its own offsets, and a batch of another partition in between starts a new one.
#[test]
fn consecutive_appends_of_one_partition_share_a_batch() {
    use outpost::storage::SegmentSeq;
    use outpost::storage::format::{BATCH_HEADER_BYTES, BatchHeader, BatchKind, align_up};
    let c = cfg();
    let (mut ring, _) = Ring::open(flash(&c), c.clone()).unwrap();
    let recs: Vec<Record> = (0..5).map(rec).collect();
    fn body(p: u32, r: &[Record]) -> AppendBody<'_> {
        AppendBody::Records {
            partition: PartitionId(p),
            records: r,
        }
    }
    let g = ring
        .write_group(&[
            body(0, &recs[0..1]),
            body(0, &recs[1..3]),
            body(1, &recs[3..4]),
            body(0, &recs[4..5]),
        ])
        .unwrap();
    ring.sync().unwrap();
    let bases: Vec<(u32, u64, u32)> = g
        .results
        .into_iter()
        .map(|r| {
            let a = r.unwrap();
            (a.partition.0, a.base_offset.0, a.record_count)
        })
        .collect();
    assert_eq!(bases, [(0, 0, 1), (0, 1, 2), (1, 0, 1), (0, 3, 1)]);
    // On the medium: the checkpoint, then p0 [0, 1, 2], p1 [3], p0 [4].
    let image = ring.flash().image();
    let mut pos = align_up(64, c.program_unit_bytes) as usize;
    let mut found = Vec::new();
    loop {
        let h = BatchHeader::decode(
            &image[pos..pos + BATCH_HEADER_BYTES],
            SegmentSeq(0),
            1 << 20,
        )
        .unwrap();
        found.push((h.kind, h.partition.0, h.base_offset.0, h.record_count));
        pos += h.total_bytes() as usize;
        if h.last_in_group() {
            break;
        }
    }
    assert_eq!(
        found,
        [
            (BatchKind::Checkpoint, u32::MAX, 0, 0),
            (BatchKind::Records, 0, 0, 3),
            (BatchKind::Records, 1, 0, 1),
            (BatchKind::Records, 0, 3, 1),
        ]
    );
    // Read back, and again after a reopen (recovery validates the merged batch's CRC).
    let want0: Vec<(Offset, Record)> = [0, 1, 2, 4]
        .iter()
        .enumerate()
        .map(|(o, &i)| (Offset(o as u64), recs[i].clone()))
        .collect();
    assert_eq!(read_all(&ring, 0), want0);
    let image = ring_image(&ring);
    let (ring, report) =
        Ring::open(SimFlash::from_image(ring.flash().geometry(), image), c).unwrap();
    assert!(report.damage.is_empty(), "{report:?}");
    assert_eq!(read_all(&ring, 0), want0);
    assert_eq!(read_all(&ring, 1), [(Offset(0), recs[3].clone())]);
}

/// Merging under load: 300 groups of 1–30 appends of 1–4 records over 3 partitions with
/// metadata batches in between, segment rolls inside groups and wraps under drop-oldest; every
/// answer's offsets match a model, everything retained reads back, also after a reopen,
/// without damage.
#[test]
fn merged_batches_survive_rolls_wraps_and_reopen() {
    let mut c = cfg();
    c.full_policy = FullPolicy::DropOldest;
    let (mut ring, _) = Ring::open(flash(&c), c.clone()).unwrap();
    let mut seed = 12345u64;
    let mut rnd = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut model: Vec<Vec<(Offset, Record)>> = vec![Vec::new(); 3];
    let ops = [MetaOp::Put {
        namespace: 0,
        key: b"k".to_vec(),
        value: b"v".to_vec(),
    }];
    let mut i = 0u64;
    for _round in 0..300 {
        let n = 1 + rnd(30) as usize;
        let mut sets: Vec<(u32, Vec<Record>)> = Vec::new();
        for _ in 0..n {
            let p = rnd(3) as u32;
            let k = 1 + rnd(4) as usize;
            let rs: Vec<Record> = (0..k)
                .map(|_| {
                    i += 1;
                    rec(i)
                })
                .collect();
            sets.push((p, rs));
        }
        let mut bodies: Vec<AppendBody<'_>> = Vec::new();
        for (j, (p, rs)) in sets.iter().enumerate() {
            if j % 7 == 3 {
                bodies.push(AppendBody::Meta(&ops));
            }
            bodies.push(AppendBody::Records {
                partition: PartitionId(*p),
                records: rs,
            });
        }
        let mut start = 0;
        while start < bodies.len() {
            let g = ring.write_group(&bodies[start..]).unwrap();
            ring.sync().unwrap();
            for (k, r) in g.results.into_iter().enumerate() {
                let a = r.unwrap();
                if let AppendBody::Records { partition, records } = &bodies[start + k] {
                    let m = &mut model[partition.0 as usize];
                    let exp = m.last().map_or(Offset(0), |(o, _)| Offset(o.0 + 1));
                    assert_eq!(a.base_offset, exp);
                    assert_eq!(a.record_count as usize, records.len());
                    for (x, r) in records.iter().enumerate() {
                        m.push((Offset(exp.0 + x as u64), r.clone()));
                    }
                }
            }
            start += g.consumed;
        }
    }
    let check = |ring: &Ring<SimFlash>| {
        for p in 0..3u32 {
            let got = read_all(ring, p);
            let m = &model[p as usize];
            assert!(!got.is_empty());
            let first = got[0].0.0 as usize;
            assert_eq!(&got[..], &m[first..], "partition {p}");
        }
    };
    check(&ring);
    let image = ring.flash().image();
    let (ring2, report) =
        Ring::open(SimFlash::from_image(ring.flash().geometry(), image), c).unwrap();
    assert!(report.damage.is_empty(), "{report:?}");
    check(&ring2);
}
