//! Recovery regressions found while documenting the format (docs/FORMAT.md, crash analysis):
//! each test is named after the case it guards.

use outpost::storage::error::OpenError;
use outpost::storage::flash::{Fault, Flash, Geometry, SimFlash};
use outpost::storage::format::{
    BATCH_HEADER_BYTES, BatchHeader, CRC32C, SEGMENT_HEADER_BYTES, SegmentHeader, first_batch_pos,
};
use outpost::storage::{
    AppendBody, CorruptionPolicy, FullPolicy, Offset, PartitionId, Record, Ring, RingConfig,
    SegmentSeq,
};
use std::sync::Arc;

fn cfg() -> RingConfig {
    RingConfig {
        erase_block_bytes: 4096,
        program_unit_bytes: 256,
        ring_bytes: 6 * 16384,
        segment_bytes: 16384,
        full_policy: FullPolicy::Reject,
        corruption_policy: CorruptionPolicy::Refuse,
        group_bytes_max: 8192,
        batch_bytes_max: 4096,
        meta_bytes_max: 256,
        partitions_max: 8,
        index_interval_bytes: 1024,
        read_chunk_bytes: 4096,
        append_queue_max: 64,
        producers_max: 64,
    }
}

fn geometry(c: &RingConfig) -> Geometry {
    Geometry::new(c.erase_block_bytes, c.program_unit_bytes, c.ring_bytes).unwrap()
}

fn append(ring: &mut Ring<SimFlash>, value_bytes: usize) -> Offset {
    let recs = [Record {
        value: vec![0x5a; value_bytes],
        ..Record::default()
    }];
    let mut g = ring
        .write_group(&[AppendBody::Records {
            partition: PartitionId(0),
            records: &recs,
        }])
        .unwrap();
    ring.sync().unwrap();
    g.results.remove(0).unwrap().base_offset
}

#[test]
fn power_cut_during_first_format_does_not_brick_the_ring() {
    let c = cfg();
    let mut cut = 0;
    for cut_at in 0..4 {
        for seed in 0..50 {
            let flash = Arc::new(SimFlash::new(geometry(&c)));
            flash.set_fault(Fault::CutAtOp(cut_at));
            if Ring::open(flash.clone(), c.clone()).is_err() {
                cut += 1;
            }
            let image = flash.crash_image(seed);
            let (mut ring, _) = Ring::open(image, c.clone())
                .unwrap_or_else(|e| panic!("cut at op {cut_at}, seed {seed}: {e}"));
            assert_eq!(append(&mut ring, 10), Offset(0));
        }
    }
    assert!(cut >= 100, "the cuts must hit the format ({cut})");
}

#[test]
fn torn_first_header_alone_is_an_interrupted_format() {
    let c = cfg();
    let mut image = vec![0xFF; c.ring_bytes as usize];
    // Half a header in slot 0, nothing anywhere else: what a cut during format leaves.
    let h = SegmentHeader {
        seq: SegmentSeq(0),
        segment_bytes: c.segment_bytes,
        program_unit_bytes: c.program_unit_bytes as u32,
        prev_end: u64::MAX,
        ring_id: 1,
    }
    .encode();
    image[..20].copy_from_slice(&h[..20]);
    let (mut ring, report) = Ring::open(SimFlash::from_image(geometry(&c), image), c).unwrap();
    assert!(report.blank);
    assert_eq!(append(&mut ring, 10), Offset(0));
}

#[test]
fn lowering_batch_bytes_max_keeps_existing_batches() {
    let c = cfg();
    let (mut ring, _) = Ring::open(SimFlash::new(geometry(&c)), c.clone()).unwrap();
    for _ in 0..5 {
        append(&mut ring, 3000);
    }
    let image = ring.flash().durable_image();
    let mut lower = c.clone();
    lower.batch_bytes_max = 1024;
    let (ring, report) = Ring::open(SimFlash::from_image(geometry(&c), image), lower).unwrap();
    assert!(report.torn_tail.is_none() && report.damage.is_empty());
    assert_eq!(
        ring.reader().offsets(PartitionId(0)),
        (Offset(0), Offset(5))
    );
}

#[test]
fn newer_format_version_is_refused_not_overwritten() {
    let c = cfg();
    let (mut ring, _) = Ring::open(SimFlash::new(geometry(&c)), c.clone()).unwrap();
    append(&mut ring, 10);
    let mut image = ring.flash().durable_image();
    // Slot 3 gets a valid header of format version 2.
    let base = 3 * c.segment_bytes as usize;
    let mut h = SegmentHeader {
        seq: SegmentSeq(3),
        segment_bytes: c.segment_bytes,
        program_unit_bytes: c.program_unit_bytes as u32,
        prev_end: u64::MAX,
        ring_id: 1,
    }
    .encode();
    h[8] = 2;
    let crc = CRC32C.checksum(&h[..60]);
    h[60..64].copy_from_slice(&crc.to_le_bytes());
    image[base..base + SEGMENT_HEADER_BYTES].copy_from_slice(&h);
    match Ring::open(SimFlash::from_image(geometry(&c), image), c) {
        Err(OpenError::UnsupportedFormat { slot: 3, .. }) => {}
        other => panic!("expected UnsupportedFormat, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn destroyed_newest_header_is_reported() {
    let c = cfg();
    let (mut ring, _) = Ring::open(SimFlash::new(geometry(&c)), c.clone()).unwrap();
    while ring.reader().snapshot().segments.len() < 3 {
        append(&mut ring, 1000);
    }
    let newest = ring.reader().snapshot().segments.back().unwrap().clone();
    assert!(!newest.parts.is_empty());
    ring.flash().flip_bit(newest.slot * c.segment_bytes + 20, 2);
    match Ring::open(
        SimFlash::from_image(geometry(&c), ring.flash().durable_image()),
        c.clone(),
    ) {
        Err(OpenError::Corrupt(at)) => {
            assert_eq!(at.seq, Some(newest.seq));
            assert!(at.reason.contains("header destroyed"), "{at}");
        }
        other => panic!("expected corruption, got {:?}", other.map(|_| ())),
    }
    // Sanity: the batches the check relies on really validate under the lost sequence.
    let mut b = [0u8; BATCH_HEADER_BYTES];
    ring.flash()
        .read(
            newest.slot * c.segment_bytes + first_batch_pos(c.program_unit_bytes),
            &mut b,
        )
        .unwrap();
    assert!(BatchHeader::decode(&b, newest.seq, u64::MAX).is_ok());
}

#[test]
fn rotted_first_header_with_batches_is_refused_not_formatted() {
    let c = cfg();
    let (mut ring, _) = Ring::open(SimFlash::new(geometry(&c)), c.clone()).unwrap();
    append(&mut ring, 10);
    ring.flash().flip_bit(9, 0); // segment 0's header, while it is the only segment
    match Ring::open(
        SimFlash::from_image(geometry(&c), ring.flash().durable_image()),
        c,
    ) {
        Err(OpenError::NotARing { .. }) => {}
        other => panic!(
            "acknowledged records must not be formatted away: {:?}",
            other.map(|_| ())
        ),
    }
}
