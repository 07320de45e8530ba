//! The pipelined group commit of `Log` (the writer prepares groups N+1 and N+2 while the sync
//! thread programs and syncs group N) against the crash-safety rules, on the simulated flash:
//!
//! - the medium never sees more than one program that is not covered by a successful sync,
//!   and nothing is programmed or erased while a sync runs (ring invariant 1, which the
//!   torn-tail rule of recovery relies on: docs/FORMAT.md section 6);
//! - power cuts at random operations under many concurrent appenders (records and metadata,
//!   all ack modes, several partitions, segment rolls): after recovery every `durable` ack is
//!   present and byte-identical at its offset, nothing is invented, offsets are contiguous, and
//!   the cut never looks like corruption.
//!
//! A failure prints the seed; `OUTPOST_PIPELINE_CUT_SEED=<seed>` replays that run alone.

use outpost::storage::flash::{Fault, Flash, FlashError, Geometry, SimFlash};
use outpost::storage::{
    Acks, CorruptionPolicy, FullPolicy, Log, MetaOp, Offset, PartitionId, Record, Ring, RingConfig,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[allow(dead_code)] // each test uses a part of it
#[path = "support/rng.rs"]
mod rng;

use rng::Rng;

/// A flash that checks the ordering rules of the ring on every call.
struct Checked {
    inner: Arc<SimFlash>,
    syncing: AtomicBool,
    /// Shared with the test, which reads the violations after the ring is gone.
    state: Arc<Mutex<CheckState>>,
}

#[derive(Default)]
struct CheckState {
    /// Programs since the last successful sync.
    unsynced_programs: u32,
    violations: Vec<String>,
}

impl Checked {
    fn violation(&self, what: String) {
        self.state.lock().unwrap().violations.push(what);
    }
}

impl Flash for Checked {
    fn geometry(&self) -> Geometry {
        self.inner.geometry()
    }
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), FlashError> {
        self.inner.read(offset, buf)
    }
    fn program(&self, offset: u64, data: &[u8]) -> Result<(), FlashError> {
        if self.syncing.load(Ordering::SeqCst) {
            self.violation(format!("program at {offset} while a sync runs"));
        }
        {
            let mut s = self.state.lock().unwrap();
            s.unsynced_programs += 1;
            if s.unsynced_programs > 1 {
                let n = s.unsynced_programs;
                s.violations.push(format!(
                    "program at {offset}: {n} programs not covered by a sync"
                ));
            }
        }
        self.inner.program(offset, data)
    }
    fn erase(&self, block_offset: u64) -> Result<(), FlashError> {
        if self.syncing.load(Ordering::SeqCst) {
            self.violation(format!("erase at {block_offset} while a sync runs"));
        }
        self.inner.erase(block_offset)
    }
    fn sync(&self) -> Result<(), FlashError> {
        if self.syncing.swap(true, Ordering::SeqCst) {
            self.violation("two syncs at once".into());
        }
        // Widen the window in which a concurrent program would be caught.
        std::thread::yield_now();
        let r = self.inner.sync();
        if r.is_ok() {
            self.state.lock().unwrap().unsynced_programs = 0;
        }
        self.syncing.store(false, Ordering::SeqCst);
        r
    }
    fn overwrites_in_place(&self) -> bool {
        self.inner.overwrites_in_place()
    }
}

fn cfg() -> RingConfig {
    RingConfig {
        erase_block_bytes: 4096,
        program_unit_bytes: 256,
        ring_bytes: 24 * 16384,
        segment_bytes: 16384,
        full_policy: FullPolicy::Reject,
        corruption_policy: CorruptionPolicy::Refuse,
        group_bytes_max: 8192,
        batch_bytes_max: 2048,
        meta_bytes_max: 1024,
        partitions_max: 8,
        index_interval_bytes: 1024,
        read_chunk_bytes: 4096,
        append_queue_max: 16,
        producers_max: 64,
    }
}

fn geometry(c: &RingConfig) -> Geometry {
    Geometry::new(c.erase_block_bytes, c.program_unit_bytes, c.ring_bytes).unwrap()
}

/// Every record carries a unique tag in its first 8 value bytes.
fn record(rng: &mut Rng, tag: u64) -> Record {
    let mut value = tag.to_le_bytes().to_vec();
    value.extend((0..rng.below(300)).map(|_| rng.next() as u8));
    Record {
        timestamp_ms: tag as i64,
        key: (rng.below(3) == 0).then(|| vec![rng.next() as u8; 5]),
        value,
        headers: vec![],
    }
}

const PARTITIONS: u32 = 3;
const WRITERS: u64 = 12;
const APPENDS_PER_WRITER: u64 = 25;

/// What the appenders did: every record submitted (by tag), and the durable acks.
#[derive(Default)]
struct Outcome {
    submitted: HashMap<u64, Record>,
    /// (partition, base offset, records) of every append acknowledged as durable.
    durable: Vec<(u32, u64, Vec<Record>)>,
    /// Metadata puts acknowledged (append_meta is always durable): key -> value.
    meta: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// Runs the concurrent appenders until they are done or the power is cut; returns what they
/// did and the flash. `cut_at`: the mutating op (counted from after the format) to cut at.
fn run(seed: u64, cut_at: Option<u64>) -> (Outcome, Arc<SimFlash>) {
    let c = cfg();
    // Odd seeds on a medium that overwrites in place (a ring file), even ones on raw flash.
    let sim = Arc::new(SimFlash::new(geometry(&c)).overwriting(seed % 2 == 1));
    let rules = Arc::new(Mutex::new(CheckState::default()));
    let flash = Checked {
        inner: sim.clone(),
        syncing: AtomicBool::new(false),
        state: rules.clone(),
    };
    let (ring, _) = Ring::open(flash, c).unwrap();
    if let Some(k) = cut_at {
        sim.set_fault(Fault::CutAtOp(k));
    }
    let log = Arc::new(Log::start(ring).unwrap());
    let outcome = Arc::new(Mutex::new(Outcome::default()));
    smol::block_on(async {
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let log = log.clone();
            let outcome = outcome.clone();
            tasks.push(smol::spawn(async move {
                let mut rng = Rng(seed.wrapping_mul(1000).wrapping_add(w));
                for i in 0..APPENDS_PER_WRITER {
                    if rng.below(12) == 0 {
                        // Metadata: one put per writer and step, so keys never collide.
                        let key = format!("w{w}-{i}").into_bytes();
                        let value = rng.next().to_le_bytes().to_vec();
                        let op = MetaOp::Put {
                            namespace: 0,
                            key: key.clone(),
                            value: value.clone(),
                        };
                        match log.append_meta(vec![op]).await {
                            Ok(()) => {
                                outcome.lock().unwrap().meta.insert(key, value);
                            }
                            Err(_) => return,
                        }
                        continue;
                    }
                    let p = rng.below(u64::from(PARTITIONS)) as u32;
                    let n = 1 + rng.below(3);
                    let recs: Vec<Record> = (0..n)
                        .map(|k| record(&mut rng, (w << 32) | (i << 8) | k))
                        .collect();
                    {
                        let mut o = outcome.lock().unwrap();
                        for r in &recs {
                            let tag = u64::from_le_bytes(r.value[..8].try_into().unwrap());
                            o.submitted.insert(tag, r.clone());
                        }
                    }
                    let acks = match rng.below(10) {
                        0 => Acks::Written,
                        1 => Acks::None,
                        _ => Acks::Durable,
                    };
                    match log.append(PartitionId(p), recs.clone(), acks).await {
                        Ok(Some(a)) if acks == Acks::Durable => {
                            assert_eq!(a.record_count as usize, recs.len());
                            outcome
                                .lock()
                                .unwrap()
                                .durable
                                .push((p, a.base_offset.0, recs));
                        }
                        Ok(_) => {}
                        Err(_) => return,
                    }
                }
            }));
        }
        for t in tasks {
            t.await;
        }
    });
    log.close();
    let log = Arc::try_unwrap(log).ok().expect("every task finished");
    drop(log);
    let outcome = Arc::try_unwrap(outcome)
        .ok()
        .expect("every task finished")
        .into_inner()
        .unwrap();
    let violations = std::mem::take(&mut rules.lock().unwrap().violations);
    assert!(
        violations.is_empty(),
        "seed {seed}: the pipeline broke the ordering rules: {violations:?}"
    );
    (outcome, sim)
}

/// Reopens `image` and checks it against what the appenders were told.
/// Returns how many segments the ring holds and whether a torn tail was dropped.
fn check(seed: u64, image: SimFlash, outcome: &Outcome) -> (usize, bool) {
    let ctx = format!("seed {seed} (replay: OUTPOST_PIPELINE_CUT_SEED={seed})");
    let (ring, report) =
        Ring::open(image, cfg()).unwrap_or_else(|e| panic!("{ctx}: reopen failed: {e}"));
    assert!(
        report.damage.is_empty(),
        "{ctx}: a power cut must never look like corruption: {:?}",
        report.damage
    );
    let reader = ring.reader();
    for p in 0..PARTITIONS {
        let pid = PartitionId(p);
        let (earliest, next) = reader.offsets(pid);
        assert_eq!(earliest, Offset(0), "{ctx}: nothing was released");
        let mut got = Vec::new();
        let mut at = 0;
        while at < next.0 {
            let batch = reader
                .read(pid, Offset(at), 1 << 20)
                .unwrap_or_else(|e| panic!("{ctx}: read partition {p} at {at}: {e}"));
            assert!(!batch.records.is_empty(), "{ctx}: empty read at {at}");
            for (off, rec) in batch.records {
                assert_eq!(off.0, at, "{ctx}: partition {p}: offsets not contiguous");
                let tag = u64::from_le_bytes(rec.value[..8].try_into().unwrap());
                assert_eq!(
                    outcome.submitted.get(&tag),
                    Some(&rec),
                    "{ctx}: partition {p} offset {at}: a record nobody appended"
                );
                got.push(rec);
                at += 1;
            }
        }
        for (dp, base, recs) in &outcome.durable {
            if *dp != p {
                continue;
            }
            for (k, r) in recs.iter().enumerate() {
                let off = *base as usize + k;
                assert_eq!(
                    got.get(off),
                    Some(r),
                    "{ctx}: partition {p}: durable record at offset {off} lost or changed"
                );
            }
        }
    }
    for (key, value) in &outcome.meta {
        assert_eq!(
            ring.meta().get(0, key),
            Some(value.as_slice()),
            "{ctx}: durable metadata {key:?} lost"
        );
    }
    (report.segments.len(), report.torn_tail.is_some())
}

/// One run cut at a random op; returns (the cut happened, recovery dropped a torn tail).
fn one(seed: u64, ops_without_cut: u64) -> (bool, bool) {
    let mut rng = Rng(seed);
    // Groups (so ops) vary with timing from run to run: cut within the first three quarters
    // of the reference run, so that nearly every run is cut.
    let cut_at = rng.below(ops_without_cut * 3 / 4 + 1);
    let (outcome, sim) = run(seed, Some(cut_at));
    let (_, torn) = check(seed, sim.crash_image(rng.next()), &outcome);
    (sim.is_cut(), torn)
}

#[test]
fn pipelined_log_survives_power_cuts() {
    // Learn how many mutating ops a run makes without a cut.
    let (outcome, sim) = run(0, None);
    let ops = sim.ops_count();
    assert!(
        outcome.durable.len() as u64 > WRITERS * APPENDS_PER_WRITER / 2,
        "the run without a cut must append"
    );
    let image = SimFlash::from_image(geometry(&cfg()), sim.durable_image());
    let (segments, _) = check(0, image, &outcome);
    assert!(segments >= 4, "the run must roll segments: {segments}");
    if let Ok(seed) = std::env::var("OUTPOST_PIPELINE_CUT_SEED") {
        one(seed.parse().expect("a number"), ops);
        return;
    }
    let (mut cuts, mut torn) = (0, 0);
    for seed in 1..=300 {
        let (c, t) = one(seed, ops);
        cuts += u32::from(c);
        torn += u32::from(t);
    }
    eprintln!("300 runs: {cuts} cut, {torn} torn tails dropped");
    assert!(cuts >= 240 && torn >= 15, "{cuts} cuts, {torn} torn tails");
}
