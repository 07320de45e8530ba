//! Power-cut simulation against a model (issue 3, "Proof"): thousands of cuts at random
//! program/erase/sync boundaries with torn writes, random batch sizes, several partitions,
//! ring wrap-arounds, both full policies and metadata. After every cut the ring is reopened on
//! the crash image and checked against the model:
//! - every record acknowledged as durable is present, byte-identical, in order, unless it was
//!   released and reclaimed, or `drop-oldest` announced dropping it;
//! - nothing is invented or corrupt: every record read is one that was appended at that offset;
//! - offsets are contiguous; the metadata state is the acknowledged one (plus, at most, the
//!   operations of the group the cut interrupted).
//!
//! Odd seeds run on a medium that overwrites in place (a ring file, an SD card: the ring never
//! erases, it writes over the stale bytes of earlier laps and, after a cut, over what the
//! interrupted group left), even seeds on raw flash (every reused slot erased first).
//!
//! A failure prints the seed; `OUTPOST_POWER_CUT_SEED=<seed> cargo test --test power_cut`
//! replays exactly that run. `make soak` runs the ignored long variant
//! (`OUTPOST_SOAK_CUTS`, default 200,000 cuts).

use outpost::storage::flash::{Fault, Flash, Geometry, SimFlash};
use outpost::storage::meta::MetaState;
use outpost::storage::{
    AppendBody, AppendError, CorruptionPolicy, FullPolicy, MetaOp, Offset, PartitionId, Record,
    Ring, RingConfig,
};
use std::collections::BTreeMap;

#[allow(dead_code)] // each test uses a part of it
#[path = "support/rng.rs"]
mod rng;

use rng::Rng;

fn random_config(rng: &mut Rng) -> RingConfig {
    let unit = rng.pick(&[16u64, 64, 256, 512]);
    let erase_block = unit * rng.pick(&[1u64, 2, 4, 8]).max(4096 / unit / 4).max(1);
    let segment_bytes = (rng.pick(&[4096u64, 8192, 16384]).div_ceil(erase_block)) * erase_block;
    let segments = 4 + rng.below(5);
    let batch_bytes_max = 1024;
    let meta_bytes_max = 256;
    let partitions_max = 4;
    let checkpoint = outpost::storage::format::checkpoint_bytes_max(partitions_max, meta_bytes_max);
    let group_min = (checkpoint + batch_bytes_max + unit).div_ceil(unit) * unit;
    let usable = segment_bytes - outpost::storage::format::first_batch_pos(unit);
    let group_bytes_max = if rng.chance(50) {
        group_min
    } else {
        (usable / unit * unit).min(group_min * 3)
    };
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
        corruption_policy: CorruptionPolicy::Refuse,
        group_bytes_max,
        batch_bytes_max,
        meta_bytes_max,
        partitions_max,
        index_interval_bytes: rng.pick(&[64u64, 512, 4096]),
        read_chunk_bytes: rng.pick(&[64u64, 1024, 8192]),
        append_queue_max: 64,
        producers_max: 64,
    };
    c.validate()
        .unwrap_or_else(|e| panic!("generated config invalid: {e}: {c:?}"));
    c
}

fn geometry(c: &RingConfig) -> Geometry {
    Geometry::new(c.erase_block_bytes, c.program_unit_bytes, c.ring_bytes).unwrap()
}

fn random_record(rng: &mut Rng, tag: u64) -> Record {
    let len = match rng.below(10) {
        0 => 0,
        1..=6 => rng.below(40) as usize,
        _ => rng.below(300) as usize,
    };
    let mut value = tag.to_le_bytes().to_vec();
    value.extend((0..len).map(|_| rng.next() as u8));
    Record {
        timestamp_ms: rng.next() as i64,
        key: rng
            .chance(30)
            .then(|| (0..rng.below(12)).map(|_| rng.next() as u8).collect()),
        value,
        headers: if rng.chance(15) {
            vec![("trace".to_string(), tag.to_be_bytes().to_vec())]
        } else {
            vec![]
        },
    }
}

/// What the ring must hold for one partition.
#[derive(Default, Debug)]
struct PartModel {
    /// Every record the ring accepted, by offset (acknowledged or not yet).
    appended: Vec<Record>,
    /// Offsets below this were acknowledged as durable.
    acked_next: u64,
    /// The release watermark the "forwarder" set.
    released: u64,
    /// Ranges `drop-oldest` announced: (from, to, announced in the op the cut hit).
    dropped: Vec<(u64, u64, bool)>,
}

struct Model {
    parts: BTreeMap<u32, PartModel>,
    meta_acked: MetaState,
    meta_pending: Vec<MetaOp>,
    buffer_full: u64,
}

/// What a run exercised, so the test can prove it covered what it claims.
#[derive(Default, Debug)]
struct Coverage {
    cuts: u64,
    torn_tails: u64,
    /// Reopens that continued over bytes that are not erased (overwriting media only).
    stale_tails: u64,
    /// Cuts during a reopen (its only writes: the fill of a stale tail).
    cuts_in_open: u64,
    overwrite_runs: u64,
    dropped_records: u64,
    buffer_full: u64,
    reclaimed_segments: u64,
    reject_runs: u64,
    drop_oldest_runs: u64,
    interrupted_reclaims: u64,
}

/// One simulated life: format, then `cuts` cycles of "run until the power is cut, reopen on the
/// crash image, check".
fn run(seed: u64, cuts: u64, cov: &mut Coverage) {
    let mut rng = Rng(seed);
    let cfg = random_config(&mut rng);
    let partitions = 1 + rng.below(4) as u32;
    let ctx = |what: &str| format!("seed {seed}: {what} (replay: OUTPOST_POWER_CUT_SEED={seed})");
    let overwrites = seed % 2 == 1;
    cov.overwrite_runs += u64::from(overwrites);
    let flash = SimFlash::new(geometry(&cfg)).overwriting(overwrites);
    let (mut ring, _) =
        Ring::open(flash, cfg.clone()).unwrap_or_else(|e| panic!("{}: {e}", ctx("open blank")));
    let mut model = Model {
        parts: (0..partitions).map(|p| (p, PartModel::default())).collect(),
        meta_acked: MetaState::default(),
        meta_pending: Vec::new(),
        buffer_full: 0,
    };
    match cfg.full_policy {
        FullPolicy::Reject => cov.reject_runs += 1,
        FullPolicy::DropOldest => cov.drop_oldest_runs += 1,
    }
    let mut tag = 0u64;
    for cut in 0..cuts {
        // Often soon after the reopen: the first group after a restart is the one that goes
        // over a stale tail.
        let at_op = if rng.chance(25) {
            rng.below(4)
        } else {
            rng.below(40)
        };
        ring.flash().set_fault(Fault::CutAtOp(at_op));
        // Run until the cut (the fault guarantees one within a bounded number of operations).
        for _step in 0..10_000 {
            let err = step(&mut rng, &mut ring, &mut model, partitions, &mut tag);
            for ev in ring.take_drop_events() {
                model.parts.get_mut(&ev.partition.0).unwrap().dropped.push((
                    ev.from.0,
                    ev.to.0,
                    err.is_some(),
                ));
            }
            if err.is_some() {
                break;
            }
        }
        assert!(ring.flash().is_cut(), "{}", ctx("no cut happened"));
        let stats = ring.reader().snapshot().stats;
        cov.reclaimed_segments += stats.segments_reclaimed;
        cov.dropped_records += stats.records_dropped;
        let mut image = ring.flash().crash_image(rng.next());
        drop(ring);
        if rng.chance(20) {
            // The power goes again during the reopen.
            let trial = std::sync::Arc::new(image);
            trial.set_fault(Fault::CutAtOp(rng.below(3)));
            drop(Ring::open(trial.clone(), cfg.clone()));
            image = if trial.is_cut() {
                cov.cuts_in_open += 1;
                trial.crash_image(rng.next())
            } else {
                SimFlash::from_image(geometry(&cfg), trial.durable_image()).overwriting(overwrites)
            };
        }
        let (reopened, report) = Ring::open(image, cfg.clone())
            .unwrap_or_else(|e| panic!("{}: {e:?}", ctx(&format!("reopen after cut {cut}"))));
        ring = reopened;
        assert!(
            report.damage.is_empty(),
            "{}: {:?}",
            ctx("a power cut must never look like corruption"),
            report.damage
        );
        cov.torn_tails += u64::from(report.torn_tail.is_some());
        cov.stale_tails += u64::from(report.stale_tail.is_some());
        assert!(
            overwrites || report.stale_tail.is_none(),
            "{}",
            ctx("raw flash never continues over bytes that are not erased")
        );
        cov.interrupted_reclaims += u64::from(report.interrupted_reclaim.is_some());
        check(&ring, &mut model, &ctx(&format!("after cut {cut}")));
        cov.cuts += 1;
    }
    cov.buffer_full += model.buffer_full;
}

/// One random operation. Returns the error if the power was cut during it.
fn step(
    rng: &mut Rng,
    ring: &mut Ring<SimFlash>,
    model: &mut Model,
    partitions: u32,
    tag: &mut u64,
) -> Option<AppendError> {
    if rng.chance(8) {
        // The forwarder releases some acknowledged records.
        let p = rng.below(u64::from(partitions)) as u32;
        let m = model.parts.get_mut(&p).unwrap();
        if m.acked_next > m.released {
            let upto = m.released + 1 + rng.below(m.acked_next - m.released);
            m.released = upto;
            ring.release(PartitionId(p), Offset(upto));
        }
        return None;
    }
    // A group of appends: records for random partitions, sometimes metadata.
    let n = 1 + rng.below(5) as usize;
    let mut bodies: Vec<(u32, Vec<Record>)> = Vec::new();
    let mut metas: Vec<Vec<MetaOp>> = Vec::new();
    for _ in 0..n {
        if rng.chance(10) {
            let key = format!("k{}", rng.below(6)).into_bytes();
            let op = if rng.chance(25) {
                MetaOp::Delete { namespace: 0, key }
            } else {
                let len = rng.below(30) as usize;
                MetaOp::Put {
                    namespace: 0,
                    key,
                    value: (0..len).map(|_| rng.next() as u8).collect(),
                }
            };
            metas.push(vec![op]);
        } else {
            let p = rng.below(u64::from(partitions)) as u32;
            let count = 1 + rng.below(4);
            let mut recs: Vec<Record> = (0..count)
                .map(|_| {
                    *tag += 1;
                    random_record(rng, *tag)
                })
                .collect();
            // Keep the batch within batch_bytes_max (1024 here, header included).
            while recs.len() > 1 && 40 + recs.iter().map(|r| r.encoded_bytes()).sum::<u64>() > 1024
            {
                recs.pop();
            }
            bodies.push((p, recs));
        }
    }
    let mut appends: Vec<AppendBody<'_>> = bodies
        .iter()
        .map(|(p, r)| AppendBody::Records {
            partition: PartitionId(*p),
            records: r,
        })
        .collect();
    appends.extend(metas.iter().map(|ops| AppendBody::Meta(ops)));
    let mut start = 0;
    while start < appends.len() {
        let group = match ring.write_group(&appends[start..]) {
            Ok(g) => g,
            Err(e) => {
                // The power went during this group: any prefix of it may have reached the
                // medium (a roll syncs what was programmed before it). Every append from here
                // was placed in order, so each gets the next offsets of its partition.
                for body in &appends[start..] {
                    match body {
                        AppendBody::Records { partition, records } => model
                            .parts
                            .get_mut(&partition.0)
                            .unwrap()
                            .appended
                            .extend(records.iter().cloned()),
                        AppendBody::Meta(ops) => model.meta_pending.extend(ops.iter().cloned()),
                        _ => unreachable!("this model writes records and metadata only"),
                    }
                }
                return Some(e);
            }
        };
        let mut acked_parts: Vec<(u32, u64)> = Vec::new();
        let mut acked_meta: Vec<MetaOp> = Vec::new();
        for (i, r) in group.results.into_iter().enumerate() {
            let body = &appends[start + i];
            match (r, body) {
                (Ok(a), AppendBody::Records { partition, records }) => {
                    let m = model.parts.get_mut(&partition.0).unwrap();
                    assert_eq!(
                        a.base_offset.0,
                        m.appended.len() as u64,
                        "offsets contiguous"
                    );
                    m.appended.extend(records.iter().cloned());
                    acked_parts.push((partition.0, m.appended.len() as u64));
                }
                (Ok(_), AppendBody::Meta(ops)) => {
                    model.meta_pending.extend(ops.iter().cloned());
                    acked_meta.extend(ops.iter().cloned());
                }
                (Err(AppendError::BufferFull), _) => model.buffer_full += 1,
                (Err(AppendError::MetaFull { .. }), AppendBody::Meta(_)) => {}
                (Err(e), _) => return Some(e),
                (Ok(_), _) => unreachable!("this model writes records and metadata only"),
            }
        }
        start += group.consumed;
        if let Err(e) = ring.sync() {
            return Some(e);
        }
        for (p, next) in acked_parts {
            let m = model.parts.get_mut(&p).unwrap();
            m.acked_next = m.acked_next.max(next);
        }
        model.meta_acked.apply(&acked_meta);
        model.meta_pending.clear();
    }
    None
}

/// Compares the reopened ring with the model, then adopts what survived as the new truth.
fn check(ring: &Ring<SimFlash>, model: &mut Model, ctx: &str) {
    let reader = ring.reader();
    for (p, m) in model.parts.iter_mut() {
        let pid = PartitionId(*p);
        let (earliest, next) = reader.offsets(pid);
        let (earliest, next) = (earliest.0, next.0);
        assert!(
            next >= m.acked_next,
            "{ctx}: partition {p} ends at {next} but {} were acknowledged",
            m.acked_next
        );
        assert!(
            next <= m.appended.len() as u64,
            "{ctx}: partition {p} ends at {next} but only {} were ever appended (invented)",
            m.appended.len()
        );
        // Everything missing at the front must have been released or announced as dropped.
        for off in 0..earliest.min(m.acked_next) {
            let justified =
                off < m.released || m.dropped.iter().any(|(a, b, _)| (*a..*b).contains(&off));
            assert!(
                justified,
                "{ctx}: partition {p} lost acknowledged offset {off} (earliest now {earliest}, \
                 released {}, dropped {:?})",
                m.released, m.dropped
            );
        }
        // Every completed drop really happened.
        for (a, b, in_cut) in &m.dropped {
            if !in_cut && a < b {
                assert!(
                    *b <= earliest,
                    "{ctx}: partition {p}: drop of {a}..{b} was announced but offsets remain \
                     from {earliest}"
                );
            }
        }
        // Read everything back: contiguous, byte-identical.
        let mut at = earliest;
        while at < next {
            let batch = reader
                .read(pid, Offset(at), 2048)
                .unwrap_or_else(|e| panic!("{ctx}: read partition {p} at {at}: {e}"));
            assert!(
                !batch.records.is_empty(),
                "{ctx}: empty read at {at} < {next}"
            );
            for (off, rec) in batch.records {
                assert_eq!(off.0, at, "{ctx}: partition {p} offsets not contiguous");
                assert_eq!(
                    &rec, &m.appended[at as usize],
                    "{ctx}: partition {p} offset {at} differs from what was appended"
                );
                at += 1;
            }
        }
        // Adopt: what is present is durable now; what is not will be reassigned.
        m.appended.truncate(next as usize);
        m.acked_next = next;
        for d in m.dropped.iter_mut() {
            d.2 = false;
            d.0 = d.0.min(earliest);
            d.1 = d.1.min(earliest);
        }
        m.dropped.retain(|(a, b, _)| a < b);
        // The release watermark lives in RAM: the forwarder sets it again after a restart.
        ring.release(pid, Offset(m.released));
    }
    // Metadata: the acknowledged state plus a prefix of the interrupted group's operations.
    let matches = (0..=model.meta_pending.len()).any(|k| {
        let mut m = model.meta_acked.clone();
        m.apply(&model.meta_pending[..k]);
        *ring.meta() == m
    });
    assert!(matches, "{ctx}: metadata differs from the model");
    model.meta_acked = ring.meta().clone();
    model.meta_pending.clear();
}

#[test]
fn ten_thousand_power_cuts() {
    let mut cov = Coverage::default();
    if let Ok(seed) = std::env::var("OUTPOST_POWER_CUT_SEED") {
        let seed: u64 = seed.parse().expect("OUTPOST_POWER_CUT_SEED is a number");
        // As many cuts as a soak run makes per seed (a run's first 50 are the test's 50).
        run(seed, 100, &mut cov);
        eprintln!("{cov:?}");
        return;
    }
    let runs = 200;
    for seed in 0..runs {
        run(seed, 50, &mut cov);
    }
    eprintln!("power-cut simulation over {runs} runs: {cov:?}");
    // The simulation must have exercised what it claims to prove.
    assert!(cov.cuts >= 10_000, "{cov:?}");
    assert!(cov.torn_tails >= 500, "{cov:?}");
    assert!(cov.stale_tails >= 200, "{cov:?}");
    assert!(cov.cuts_in_open >= 50, "{cov:?}");
    assert!(cov.overwrite_runs == runs / 2, "{cov:?}");
    assert!(cov.reclaimed_segments >= 1_000, "{cov:?}");
    assert!(cov.dropped_records >= 1_000, "{cov:?}");
    assert!(cov.buffer_full >= 100, "{cov:?}");
    assert!(
        cov.reject_runs >= 50 && cov.drop_oldest_runs >= 50,
        "{cov:?}"
    );
}

#[test]
#[ignore = "long soak: make soak"]
fn soak_power_cuts() {
    let cuts: u64 = std::env::var("OUTPOST_SOAK_CUTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_secs());
    let mut cov = Coverage::default();
    let mut seed = base;
    while cov.cuts < cuts {
        run(seed, 100, &mut cov);
        seed += 1;
    }
    eprintln!("soak: seeds {base}..{seed}: {cov:?}");
}

/// A sanity check of the harness itself: with no fault, reopening the durable image gives
/// back exactly what was acknowledged.
#[test]
fn clean_reopen_matches_model() {
    let mut rng = Rng(42);
    let cfg = random_config(&mut rng);
    let (mut ring, _) = Ring::open(SimFlash::new(geometry(&cfg)), cfg.clone()).unwrap();
    let mut model = Model {
        parts: (0..2).map(|p| (p, PartModel::default())).collect(),
        meta_acked: MetaState::default(),
        meta_pending: Vec::new(),
        buffer_full: 0,
    };
    let mut tag = 0;
    for _ in 0..300 {
        if let Some(e) = step(&mut rng, &mut ring, &mut model, 2, &mut tag) {
            panic!("no fault was set, yet: {e:?}");
        }
        for ev in ring.take_drop_events() {
            model
                .parts
                .get_mut(&ev.partition.0)
                .unwrap()
                .dropped
                .push((ev.from.0, ev.to.0, false));
        }
    }
    let image = SimFlash::from_image(geometry(&cfg), ring.flash().durable_image());
    let mut buf = vec![0u8; 16];
    image.read(0, &mut buf).unwrap();
    drop(ring);
    let (ring, report) = Ring::open(image, cfg).unwrap();
    assert!(report.damage.is_empty() && report.torn_tail.is_none());
    check(&ring, &mut model, "clean reopen");
}
