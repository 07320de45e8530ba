//! Bit rot (issue 3, "Proof"): a flipped bit in the middle of the log is reported as corruption
//! with its segment and byte position under the corruption policy; a flipped bit in the torn
//! tail is truncated like any torn tail.

use outpost::storage::error::OpenError;
use outpost::storage::flash::{Geometry, SimFlash};
use outpost::storage::recovery::{Mode, recover};
use outpost::storage::{
    AppendBody, CorruptionPolicy, FullPolicy, Offset, PartitionId, Record, Ring, RingConfig,
};

fn cfg(policy: CorruptionPolicy) -> RingConfig {
    RingConfig {
        erase_block_bytes: 4096,
        program_unit_bytes: 256,
        ring_bytes: 6 * 16384,
        segment_bytes: 16384,
        full_policy: FullPolicy::Reject,
        corruption_policy: policy,
        group_bytes_max: 4096,
        batch_bytes_max: 1024,
        meta_bytes_max: 256,
        partitions_max: 8,
        index_interval_bytes: 1, // one index entry per batch: the tests locate batches by it
        read_chunk_bytes: 4096,
        append_queue_max: 64,
        producers_max: 64,
    }
}

fn geometry(c: &RingConfig) -> Geometry {
    Geometry::new(c.erase_block_bytes, c.program_unit_bytes, c.ring_bytes).unwrap()
}

fn record(i: u64) -> Record {
    Record {
        timestamp_ms: i as i64,
        key: None,
        value: format!("record {i:05} {}", "v".repeat(100)).into_bytes(),
        headers: vec![],
    }
}

/// A ring with `n` single-record appends to partition 0, each in its own synced group.
fn filled(c: &RingConfig, n: u64) -> Ring<SimFlash> {
    let (mut ring, _) = Ring::open(SimFlash::new(geometry(c)), c.clone()).unwrap();
    for i in 0..n {
        let recs = [record(i)];
        let body = [AppendBody::Records {
            partition: PartitionId(0),
            records: &recs,
        }];
        let g = ring.write_group(&body).unwrap();
        assert!(g.results[0].is_ok());
        ring.sync().unwrap();
    }
    ring
}

/// Absolute byte position of the batch holding `offset` of partition 0, and its segment.
fn batch_pos(ring: &Ring<SimFlash>, offset: u64) -> (u64, u64, u64) {
    let snap = ring.reader().snapshot();
    let c = ring.config();
    for seg in &snap.segments {
        let p = &seg.parts[&PartitionId(0)];
        if p.first.0 <= offset && offset < p.next.0 {
            let e = p
                .entries
                .iter()
                .rev()
                .find(|e| e.offset.0 <= offset)
                .unwrap();
            assert_eq!(
                e.offset.0, offset,
                "index interval must give every batch an entry"
            );
            return (seg.seq.0, u64::from(e.pos), seg.slot * c.segment_bytes);
        }
    }
    panic!("offset {offset} not found");
}

fn reopen(image: Vec<u8>, c: &RingConfig) -> Result<Ring<SimFlash>, OpenError> {
    Ring::open(SimFlash::from_image(geometry(c), image), c.clone()).map(|(r, _)| r)
}

fn count(ring: &Ring<SimFlash>) -> u64 {
    let r = ring.reader();
    let (mut at, next) = r.offsets(PartitionId(0));
    let mut n = 0;
    while at < next {
        let b = r.read(PartitionId(0), at, 1 << 20).unwrap();
        n += b.records.len() as u64;
        at = b.next_offset;
    }
    n
}

#[test]
fn flip_in_sealed_segment_is_reported_under_each_policy() {
    let c = cfg(CorruptionPolicy::Refuse);
    let ring = filled(&c, 300); // several segments
    let (seq, pos, base) = batch_pos(&ring, 20);
    assert!(ring.reader().snapshot().segments.back().unwrap().seq.0 > seq + 1);
    let flash = ring.flash();
    flash.flip_bit(base + pos + 40 + 7, 3);
    let image = flash.durable_image();

    // refuse: the error names the segment and byte position.
    match reopen(image.clone(), &c) {
        Err(OpenError::Corrupt(at)) => {
            assert_eq!(at.seq.map(|s| s.0), Some(seq));
            assert_eq!(at.pos, pos);
            assert!(at.reason.contains("CRC"), "{at}");
        }
        other => panic!("expected corruption, got {:?}", other.map(|_| ())),
    }

    // fsck: reports it, refuses nothing.
    let sim = SimFlash::from_image(geometry(&c), image.clone());
    let rec = recover(&sim, &c, Mode::Fsck).unwrap();
    assert_eq!(rec.report.damage.len(), 1);
    assert_eq!(rec.report.damage[0].pos, pos);
    assert!(rec.report.skipped_bytes > 0);

    // skip-segment: opens, the rest of that segment is skipped and counted, all else is kept.
    let skip = cfg(CorruptionPolicy::SkipSegment);
    let (ring2, report) =
        Ring::open(SimFlash::from_image(geometry(&skip), image), skip.clone()).unwrap();
    assert_eq!(report.damage.len(), 1);
    let kept = count(&ring2);
    assert!(kept < 300 && kept > 200, "kept {kept}");
    // Offsets stay where they were: the partition still ends at 300.
    assert_eq!(ring2.reader().offsets(PartitionId(0)).1, Offset(300));
    assert_eq!(ring2.next_offset(PartitionId(0)), Offset(300));
}

#[test]
fn flip_in_newest_segment_before_later_groups_is_corruption() {
    let c = cfg(CorruptionPolicy::Refuse);
    let ring = filled(&c, 300);
    let newest = ring.reader().snapshot().segments.back().unwrap().seq.0;
    // The first record batch of the newest segment, followed by later synced groups.
    let snap = ring.reader().snapshot();
    let first = snap.segments.back().unwrap().parts[&PartitionId(0)].first.0;
    let (seq, pos, base) = batch_pos(&ring, first);
    assert_eq!(seq, newest);
    ring.flash().flip_bit(base + pos + 40 + 1, 0);
    match reopen(ring.flash().durable_image(), &c) {
        Err(OpenError::Corrupt(at)) => {
            assert_eq!(at.seq.map(|s| s.0), Some(newest));
            assert_eq!(at.pos, pos);
            assert!(at.reason.contains("not a torn tail"), "{at}");
        }
        other => panic!("expected corruption, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn flip_in_torn_tail_is_truncated() {
    let c = cfg(CorruptionPolicy::Refuse);
    let mut ring = filled(&c, 50);
    // One more group, programmed but never synced; the cut leaves it on the medium with a
    // flipped bit (a torn write can look exactly like that).
    let recs = [record(50), record(51)];
    let body = [AppendBody::Records {
        partition: PartitionId(0),
        records: &recs,
    }];
    ring.write_group(&body).unwrap();
    let snap_before = ring.reader().snapshot();
    let seg = snap_before.segments.back().unwrap();
    let end = seg.end; // durable end: the unsynced group starts here
    let base = seg.slot * c.segment_bytes;
    let mut image = ring.flash().image();
    image[(base + end + 40 + 9) as usize] ^= 0x10;
    let sim = SimFlash::from_image(geometry(&c), image);
    let (ring2, report) = Ring::open(sim, c.clone()).unwrap();
    assert!(report.damage.is_empty());
    let torn = report.torn_tail.expect("a torn tail");
    assert_eq!(torn.pos, end);
    assert!(torn.dirty_bytes > 0);
    assert_eq!(
        count(&ring2),
        50,
        "every synced record kept, the torn group dropped"
    );
    // The next append starts a new segment (nothing is programmed over torn bytes).
    let mut ring2 = ring2;
    let seq_before = ring2.reader().snapshot().segments.back().unwrap().seq;
    let recs = [record(99)];
    ring2
        .write_group(&[AppendBody::Records {
            partition: PartitionId(0),
            records: &recs,
        }])
        .unwrap();
    ring2.sync().unwrap();
    let seq_after = ring2.reader().snapshot().segments.back().unwrap().seq;
    assert_eq!(seq_after.0, seq_before.0 + 1);
    // And the sealed torn segment is read back cleanly after another reopen.
    let (ring3, report) = Ring::open(
        SimFlash::from_image(geometry(&c), ring2.flash().durable_image()),
        c.clone(),
    )
    .unwrap();
    assert!(report.damage.is_empty() && report.torn_tail.is_none());
    assert_eq!(count(&ring3), 51);
}

#[test]
fn destroyed_header_between_live_segments_is_corruption() {
    let c = cfg(CorruptionPolicy::Refuse);
    let ring = filled(&c, 300);
    let snap = ring.reader().snapshot();
    assert!(snap.segments.len() >= 3);
    let middle = &snap.segments[1];
    ring.flash().flip_bit(middle.slot * c.segment_bytes + 17, 1);
    match reopen(ring.flash().durable_image(), &c) {
        Err(OpenError::Corrupt(at)) => {
            assert_eq!(at.seq, Some(middle.seq));
            assert!(at.reason.contains("header"), "{at}");
        }
        other => panic!("expected corruption, got {:?}", other.map(|_| ())),
    }
}
