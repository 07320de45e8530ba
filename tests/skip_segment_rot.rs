//! A real writer under `corruption_policy = "skip-segment"`: power cuts (torn programs and
//! erases, `SimFlash::crash_image`) on both media (raw flash, and a medium that overwrites in
//! place), both full policies, and bit rot flipped into the image before a quarter of the
//! reopens (random bytes, segment headers, first batches: so damage, lost headers and holes).
//!
//! Checks, per cycle:
//! - every reopen succeeds (skip-segment opens whatever rot and cuts left, except the one
//!   case the format cannot tell from a blank area: docs/FORMAT.md 6.9, gap 1);
//! - after a reopen with no new rot, every record acknowledged durable since the previous
//!   open reads back, byte-identical, at its offset, unless the drop-oldest policy dropped it
//!   (counted in the drop events) or it was released and reclaimed.
//!
//! Written from a review of the recovery changes that made skip-segment's verdicts independent
//! of damage a later reclaim erases (docs/FORMAT.md 5, step 3): those changes must never fire
//! on what a real writer leaves. `OUTPOST_ROT_SEEDS` and `OUTPOST_ROT_CYCLES` scale it (the
//! review ran 3,000 seeds x 80 cycles).

use outpost::storage::error::OpenError;
use outpost::storage::flash::{Fault, Geometry, SimFlash};
use outpost::storage::format::{checkpoint_bytes_max, first_batch_pos};
use outpost::storage::{
    AppendBody, CorruptionPolicy, FullPolicy, Offset, PartitionId, Record, Ring, RingConfig,
};

#[allow(dead_code)] // each test uses a part of it
#[path = "support/rng.rs"]
mod rng;

use rng::Rng;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn config(rng: &mut Rng) -> RingConfig {
    let unit = rng.pick(&[16u64, 64, 256]);
    let erase_block = unit * rng.pick(&[1u64, 2, 4, 8]).max(4096 / unit / 4).max(1);
    let segment_bytes = rng.pick(&[4096u64, 8192]).div_ceil(erase_block) * erase_block;
    let segments = 4 + rng.below(4);
    let checkpoint = checkpoint_bytes_max(4, 256);
    let c = RingConfig {
        erase_block_bytes: erase_block,
        program_unit_bytes: unit,
        ring_bytes: segments * segment_bytes,
        segment_bytes,
        full_policy: if rng.chance(50) {
            FullPolicy::Reject
        } else {
            FullPolicy::DropOldest
        },
        corruption_policy: CorruptionPolicy::SkipSegment,
        group_bytes_max: (checkpoint + 1024 + unit).div_ceil(unit) * unit,
        batch_bytes_max: 1024,
        meta_bytes_max: 256,
        partitions_max: 4,
        index_interval_bytes: 64,
        read_chunk_bytes: rng.pick(&[64u64, 1024]),
        append_queue_max: 64,
        producers_max: 64,
    };
    c.validate().expect("the test's ring config is valid");
    c
}

/// A record whose value starts with its tag, so a read-back names what it found.
fn record(tag: u64, pad_bytes: usize) -> Record {
    let mut value = tag.to_le_bytes().to_vec();
    value.extend(std::iter::repeat_n(tag as u8, pad_bytes));
    Record {
        timestamp_ms: tag as i64,
        key: None,
        value,
        headers: vec![],
    }
}

/// (partition, offset, tag) of an acknowledged record.
type Acked = (u32, u64, u64);

#[derive(Default)]
struct Counts {
    reopens: u64,
    with_rot: u64,
    with_damage: u64,
    checked: u64,
}

fn run(seed: u64, cycles: u64, counts: &mut Counts) {
    let mut rng = Rng(seed);
    let cfg = config(&mut rng);
    let geometry = Geometry::new(
        cfg.erase_block_bytes,
        cfg.program_unit_bytes,
        cfg.ring_bytes,
    )
    .expect("geometry");
    let overwrites = seed % 2 == 1;
    let partitions = 1 + rng.below(3);
    let sim = |image: Vec<u8>| SimFlash::from_image(geometry, image).overwriting(overwrites);
    let (mut ring, _) = Ring::open(SimFlash::new(geometry).overwriting(overwrites), cfg.clone())
        .unwrap_or_else(|e| panic!("seed {seed}: format failed: {e}"));
    let mut tag = 0u64;
    for cycle in 0..cycles {
        let mut acked: Vec<Acked> = Vec::new();
        // (partition, from, to) of every range drop-oldest dropped.
        let mut dropped: Vec<(u32, u64, u64)> = Vec::new();
        ring.flash().set_fault(Fault::CutAtOp(rng.below(60)));
        'writing: for _ in 0..10_000 {
            if rng.chance(10) {
                let p = PartitionId(rng.below(partitions) as u32);
                let (_, next) = ring.reader().offsets(p);
                ring.release(p, next);
                continue;
            }
            let bodies: Vec<(u32, Vec<Record>)> = (0..1 + rng.below(4))
                .map(|_| {
                    let p = rng.below(partitions) as u32;
                    let records = (0..1 + rng.below(3))
                        .map(|_| {
                            tag += 1;
                            record(tag, rng.below(200) as usize)
                        })
                        .collect();
                    (p, records)
                })
                .collect();
            let appends: Vec<AppendBody<'_>> = bodies
                .iter()
                .map(|(p, records)| AppendBody::Records {
                    partition: PartitionId(*p),
                    records,
                })
                .collect();
            let mut start = 0;
            while start < appends.len() {
                let Ok(group) = ring.write_group(&appends[start..]) else {
                    break 'writing; // the cut (or a full ring under reject: same thing here)
                };
                let mut these = Vec::new();
                for (i, result) in group.results.iter().enumerate() {
                    if let Ok(a) = result {
                        let (p, records) = &bodies[start + i];
                        for (j, r) in records.iter().enumerate() {
                            let t = u64::from_le_bytes(r.value[..8].try_into().expect("8 bytes"));
                            these.push((*p, a.base_offset.0 + j as u64, t));
                        }
                    }
                }
                start += group.consumed;
                if group.consumed == 0 || ring.sync().is_err() {
                    break 'writing;
                }
                acked.extend(these);
                for ev in ring.take_drop_events() {
                    dropped.push((ev.partition.0, ev.from.0, ev.to.0));
                }
            }
        }
        for ev in ring.take_drop_events() {
            dropped.push((ev.partition.0, ev.from.0, ev.to.0));
        }
        let crash = ring.flash().crash_image(rng.next());
        drop(ring);
        let mut image = crash.durable_image();
        let rot = rng.chance(25);
        if rot {
            counts.with_rot += 1;
            for _ in 0..1 + rng.below(2) {
                let slot = rng.below(cfg.segment_count());
                let at = match rng.below(3) {
                    0 => rng.below(image.len() as u64),
                    1 => slot * cfg.segment_bytes + rng.below(64),
                    _ => {
                        slot * cfg.segment_bytes
                            + first_batch_pos(cfg.program_unit_bytes)
                            + rng.below(40)
                    }
                } as usize;
                image[at] ^= 1 << rng.below(8);
            }
        }
        let (reopened, report) = match Ring::open(sim(image), cfg.clone()) {
            Ok(x) => x,
            // Rot in the only header of a young ring: 6.9, gap 1.
            Err(OpenError::NotARing { .. }) if rot => return,
            Err(e) => panic!(
                "seed {seed} cycle {cycle} (rot {rot}, overwrites {overwrites}): skip-segment \
                 refused to open: {e}"
            ),
        };
        ring = reopened;
        counts.reopens += 1;
        counts.with_damage += u64::from(!report.damage.is_empty());
        if rot {
            continue; // rot may take acknowledged records with it (skip-segment's trade)
        }
        let reader = ring.reader();
        for &(p, offset, t) in &acked {
            if dropped
                .iter()
                .any(|&(dp, from, to)| dp == p && (from..to).contains(&offset))
            {
                continue;
            }
            let (earliest, _) = reader.offsets(PartitionId(p));
            if offset < earliest.0 {
                continue; // released, then reclaimed
            }
            let got = reader.read(PartitionId(p), Offset(offset), 1);
            let found = got
                .as_ref()
                .ok()
                .and_then(|b| b.records.first())
                .is_some_and(|(o, r)| o.0 == offset && r.value[..8] == t.to_le_bytes());
            assert!(
                found,
                "seed {seed} cycle {cycle} (overwrites {overwrites}): the record acknowledged \
                 at partition {p} offset {offset} (tag {t}) is lost after a reopen without new \
                 rot: read {got:?}; damage reported {:?}",
                report.damage
            );
            counts.checked += 1;
        }
    }
}

#[test]
fn acknowledged_records_survive_cuts_under_skip_segment_with_rot_in_between() {
    let seeds = env_u64("OUTPOST_ROT_SEEDS", 500);
    let cycles = env_u64("OUTPOST_ROT_CYCLES", 60);
    let mut counts = Counts::default();
    for seed in 1..=seeds {
        run(seed, cycles, &mut counts);
    }
    println!(
        "skip_segment_rot: {seeds} seeds x {cycles} cycles: {} reopens, {} after rot, {} with \
         damage reported, {} acknowledged records read back",
        counts.reopens, counts.with_rot, counts.with_damage, counts.checked
    );
    // The run must have exercised what it claims to.
    assert!(counts.with_damage > 0 && counts.checked > 0);
}
