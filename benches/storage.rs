//! The storage benchmark (`make bench`, or `cargo bench --bench storage [-- OPTIONS]`).
//!
//! Durable appends (`Acks::Durable`; one record per append unless said otherwise) of 100 B and
//! 1 KiB records through the group-committed [`Log`] on a [`FileFlash`] ring in a fresh file,
//! with at most W appends in flight, driven by W tasks on a one-thread `smol` executor (the
//! group commit's writer, sync and ack threads share the other core). For each workload it prints records/s, payload MB/s, commit latency (submit to
//! ack) percentiles, and — in the same run and the same directory — the raw limit of the disk:
//! the same number of payload bytes written sequentially in 1 MiB `write_all`s with one
//! `fdatasync` per MiB into a preallocated file, once before and once after ours (the table
//! shows the mean: the disk of a VM can change speed between runs). The ring file is
//! preallocated too (by `FileFlash` itself), so both sides overwrite preallocated space;
//! preallocation is not timed.
//!
//! Below the table, per workload: groups, syncs and average group size (from the ring's
//! counters), how busy the medium was (time inside `fdatasync` and `program`, measured around
//! each call of the flash), each thread's time on a CPU and waiting for one, the CPU time per
//! record, both raw runs, and the peak RSS (VmHWM, reset before each workload). Then the same
//! workload once more on no medium at all (every program and sync returns at once): what the
//! CPU alone allows, in records/s and as a share of the raw limit. When that share is not
//! far above the ratio, the run was bound by the CPU, not by the disk.
//!
//! The client tasks reuse their records' buffers (they come back with the answer), as the raw
//! side reuses its one buffer: neither side's figure includes making the data.
//!
//! MB is 10^6 bytes. Payload bytes are the record values only (no key, no headers, no framing):
//! what the ring programs on top of that (batch headers, record framing, padding) is counted
//! against it.
//!
//! Options (each also read from the environment variable in brackets):
//! - `--dir PATH` [`OUTPOST_BENCH_DIR`]: where the files go (default: the system temp dir).
//!   It must be on a real disk: tmpfs and ramfs are refused unless `--any-fs` (or `--quick`).
//! - `--records-100 N` [`OUTPOST_BENCH_RECORDS_100`]: 100 B records (default 1,000,000).
//! - `--records-1k N` [`OUTPOST_BENCH_RECORDS_1K`]: 1 KiB records (default 1,000,000: about a
//!   second of writing here; fewer made the figures swing from run to run).
//! - `--window W` [`OUTPOST_BENCH_WINDOW`]: appends in flight (default 4,096, the ring's
//!   `append_queue_max`).
//! - `--group-bytes-max BYTES` [`OUTPOST_BENCH_GROUP_BYTES_MAX`]: the ring's bound of one
//!   program + sync (default 4 MiB, which beat 1 MiB in our runs; suffixes `KiB`/`MiB`
//!   accepted).
//! - `--per-append N` [`OUTPOST_BENCH_PER_APPEND`]: records per append (default 1: every
//!   record its own append, the costliest case). With 1, the 1 KiB workload also runs with 16
//!   records per append ("durable 1 KiB ×16": a device sending a batch per frame) and W/16
//!   appends in flight (the same records in flight), which shows what the per-append costs are;
//!   and then so once more on a ring of 4 segments under `drop-oldest` ("1 KiB ×16, wraps"),
//!   which the run goes around several times: the steady state of a full ring, where every
//!   segment roll reuses a slot that holds an old segment. A file overwrites in place, so the
//!   roll writes over the old segment instead of erasing it first (docs/FORMAT.md 4.6; the
//!   erase, a write of the whole segment, cost this row ~40% when it was made); the medium
//!   line shows the time in erase, which stays 0.
//! - `--quick` [`OUTPOST_BENCH_QUICK=1`]: a smoke run (20,000 and 5,000 records).

use outpost::storage::flash::{ERASED_BYTE, FileFlash, Flash, FlashError, Geometry};
use outpost::storage::{Acks, FullPolicy, Log, PartitionId, Record, Ring, RingConfig};
use std::cell::{Cell, RefCell};
use std::fs::{self, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;
const MB: f64 = 1e6;
/// The default `group_bytes_max`. Against 1 MiB at 1 KiB (W = 4096): 5–30% more records/s
/// while fdatasync was slow (groups then average 1.3–2.4 MiB, so half the syncs), within ±4%
/// while it was fast; it costs 3 MiB more RSS (the group buffer).
const GROUP_BYTES_MAX_DEFAULT: u64 = 4 * MIB;
/// Segments of the bench ring (a multiple of the 1 MiB erase block).
const SEGMENT_BYTES: u64 = 64 * MIB;
/// The smallest bench ring outside `--quick`; grown when a workload would need more.
const RING_BYTES_MIN: u64 = 512 * MIB;
/// Bytes the ring adds per one-record batch on top of the value: a 40-byte batch header and
/// 22 bytes of record framing (length, timestamp, key length, value length, header count).
const FRAMING_BYTES: u64 = BATCH_HEADER_BYTES + 22;
const BATCH_HEADER_BYTES: u64 = 40;
/// Records per append of the batched 1 KiB workload.
const BATCHED_PER_APPEND: u64 = 16;
const BATCHED_NAME: &str = "durable 1 KiB ×16";
const WRAPPING_NAME: &str = "1 KiB ×16, wraps";
/// The ring of the wrapping workload: 4 segments.
const WRAPPING_RING_BYTES: u64 = 4 * SEGMENT_BYTES;
/// The target: payload MB/s at 1 KiB at least this share of the raw limit.
const TARGET_RATIO: f64 = 0.85;

type BoxError = Box<dyn std::error::Error>;

struct Opts {
    dir: PathBuf,
    records_100: u64,
    records_1k: u64,
    window: usize,
    per_append: u64,
    group_bytes_max: u64,
    quick: bool,
    any_fs: bool,
}

fn main() -> ExitCode {
    let opts = match parse_opts() {
        Ok(Some(o)) => o,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("storage bench: {e}");
            eprintln!("(see the options at the top of benches/storage.rs, or pass --help)");
            return ExitCode::from(2);
        }
    };
    match run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("storage bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}

const HELP: &str = "\
storage bench: durable appends on FileFlash vs the raw disk limit
usage: cargo bench --bench storage -- [--quick] [--dir PATH] [--records-100 N] [--records-1k N]
                                      [--window W] [--group-bytes-max BYTES] [--per-append N]
                                      [--any-fs]
env:   OUTPOST_BENCH_DIR, OUTPOST_BENCH_RECORDS_100, OUTPOST_BENCH_RECORDS_1K,
       OUTPOST_BENCH_WINDOW, OUTPOST_BENCH_GROUP_BYTES_MAX, OUTPOST_BENCH_PER_APPEND,
       OUTPOST_BENCH_QUICK=1";

fn parse_opts() -> Result<Option<Opts>, String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut dir = env("OUTPOST_BENCH_DIR").map(PathBuf::from);
    let mut records_100 = env("OUTPOST_BENCH_RECORDS_100")
        .map(|v| parse_count("OUTPOST_BENCH_RECORDS_100", &v))
        .transpose()?;
    let mut records_1k = env("OUTPOST_BENCH_RECORDS_1K")
        .map(|v| parse_count("OUTPOST_BENCH_RECORDS_1K", &v))
        .transpose()?;
    let mut window = env("OUTPOST_BENCH_WINDOW")
        .map(|v| parse_count("OUTPOST_BENCH_WINDOW", &v))
        .transpose()?;
    let mut per_append = env("OUTPOST_BENCH_PER_APPEND")
        .map(|v| parse_count("OUTPOST_BENCH_PER_APPEND", &v))
        .transpose()?;
    let mut group = env("OUTPOST_BENCH_GROUP_BYTES_MAX")
        .map(|v| parse_bytes("OUTPOST_BENCH_GROUP_BYTES_MAX", &v))
        .transpose()?;
    let mut quick = env("OUTPOST_BENCH_QUICK").is_some_and(|v| v != "0");
    let mut any_fs = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            // `cargo bench` passes `--bench` to every bench binary.
            "--bench" => {}
            "-h" | "--help" => {
                println!("{HELP}");
                return Ok(None);
            }
            "--quick" => quick = true,
            "--any-fs" => any_fs = true,
            "--dir" => dir = Some(PathBuf::from(value("--dir")?)),
            "--records-100" => records_100 = Some(parse_count(&a, &value(&a)?)?),
            "--records-1k" => records_1k = Some(parse_count(&a, &value(&a)?)?),
            "--window" => window = Some(parse_count(&a, &value(&a)?)?),
            "--per-append" => per_append = Some(parse_count(&a, &value(&a)?)?),
            "--group-bytes-max" => group = Some(parse_bytes(&a, &value(&a)?)?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let per_append = per_append.unwrap_or(1);
    if per_append == 0 {
        return Err("--per-append must be at least 1".into());
    }
    let window = window.unwrap_or(4096);
    if window == 0 {
        return Err("the window must be at least 1".into());
    }
    Ok(Some(Opts {
        dir: dir.unwrap_or_else(std::env::temp_dir),
        records_100: records_100.unwrap_or(if quick { 20_000 } else { 1_000_000 }),
        records_1k: records_1k.unwrap_or(if quick { 5_000 } else { 1_000_000 }),
        window: usize::try_from(window).map_err(|_| "window too large".to_string())?,
        per_append,
        group_bytes_max: group.unwrap_or(GROUP_BYTES_MAX_DEFAULT),
        quick,
        any_fs,
    }))
}

fn parse_count(name: &str, v: &str) -> Result<u64, String> {
    v.replace('_', "")
        .parse()
        .map_err(|_| format!("{name}: {v:?} is not a count"))
}

fn parse_bytes(name: &str, v: &str) -> Result<u64, String> {
    let t = v.trim();
    let (num, unit) = if let Some(n) = t.strip_suffix("MiB") {
        (n, MIB)
    } else if let Some(n) = t.strip_suffix("KiB") {
        (n, KIB)
    } else {
        (t, 1)
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(|| format!("{name}: {v:?} is not a byte size (e.g. 1048576, 1MiB, 512KiB)"))
}

/// Wall time spent inside the flash calls (on the sync thread, and on the writer around a
/// segment roll), counted by [`Timed`].
#[derive(Default)]
struct FlashTimes {
    programs: AtomicU64,
    program_ns: AtomicU64,
    syncs: AtomicU64,
    sync_ns: AtomicU64,
    sync_max_ns: AtomicU64,
    erase_ns: AtomicU64,
}

impl FlashTimes {
    fn add(&self, count: &AtomicU64, total: &AtomicU64, since: Instant) -> u64 {
        let ns = u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        count.fetch_add(1, Ordering::Relaxed);
        total.fetch_add(ns, Ordering::Relaxed);
        ns
    }

    fn get(v: &AtomicU64) -> u64 {
        v.load(Ordering::Relaxed)
    }
}

/// `FileFlash` with a stopwatch: every call goes straight to the file (nothing is skipped or
/// deferred); only the time spent in `program`, `erase` and `sync` is added up, so the bench
/// can tell whether the pipeline waits on the disk or on the CPU.
struct Timed {
    inner: Medium,
    times: Arc<FlashTimes>,
    /// `Medium::None` reads erased and is new: told once, like a just-created file.
    fresh: AtomicBool,
}

/// What is under the stopwatch: the ring file, or no medium at all (the CPU ceiling run: every
/// read returns erased bytes, every program, erase and sync returns at once).
enum Medium {
    File(FileFlash),
    None(Geometry),
}

impl Medium {
    fn program(&self, offset: u64, data: &[u8]) -> Result<(), FlashError> {
        match self {
            Medium::File(f) => f.program(offset, data),
            Medium::None(_) => Ok(()),
        }
    }

    fn erase(&self, block_offset: u64) -> Result<(), FlashError> {
        match self {
            Medium::File(f) => f.erase(block_offset),
            Medium::None(_) => Ok(()),
        }
    }

    fn sync(&self) -> Result<(), FlashError> {
        match self {
            Medium::File(f) => f.sync(),
            Medium::None(_) => Ok(()),
        }
    }
}

impl Flash for Timed {
    /// As the ring file does: the no-medium run must make the same calls.
    fn overwrites_in_place(&self) -> bool {
        match &self.inner {
            Medium::File(f) => f.overwrites_in_place(),
            Medium::None(_) => true,
        }
    }

    fn take_created_erased(&self) -> bool {
        match &self.inner {
            Medium::File(f) => f.take_created_erased(),
            Medium::None(_) => self.fresh.swap(false, Ordering::Relaxed),
        }
    }

    fn geometry(&self) -> Geometry {
        match &self.inner {
            Medium::File(f) => f.geometry(),
            Medium::None(g) => *g,
        }
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), FlashError> {
        match &self.inner {
            Medium::File(f) => f.read(offset, buf),
            Medium::None(_) => {
                buf.fill(ERASED_BYTE);
                Ok(())
            }
        }
    }

    fn program(&self, offset: u64, data: &[u8]) -> Result<(), FlashError> {
        let t = Instant::now();
        let r = self.inner.program(offset, data);
        self.times
            .add(&self.times.programs, &self.times.program_ns, t);
        r
    }

    fn erase(&self, block_offset: u64) -> Result<(), FlashError> {
        let t = Instant::now();
        let r = self.inner.erase(block_offset);
        let ns = u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.times.erase_ns.fetch_add(ns, Ordering::Relaxed);
        r
    }

    fn sync(&self) -> Result<(), FlashError> {
        let t = Instant::now();
        let r = self.inner.sync();
        let ns = self.times.add(&self.times.syncs, &self.times.sync_ns, t);
        self.times.sync_max_ns.fetch_max(ns, Ordering::Relaxed);
        r
    }
}

/// One workload of the table.
struct Workload {
    name: &'static str,
    records: u64,
    record_bytes: u64,
    per_append: u64,
    /// Appends in flight.
    window: usize,
    /// A ring of 4 segments under `drop-oldest`, so the run wraps around it several times:
    /// every roll then reuses a slot that holds an old segment, as a full ring does in steady
    /// state.
    wraps: bool,
}

/// One workload's results.
struct Outcome {
    name: &'static str,
    per_append: u64,
    /// Appends in flight.
    window: usize,
    records: u64,
    record_bytes: u64,
    elapsed: Duration,
    latency: Histogram,
    stats: outpost::storage::index::RingStats,
    /// Writer and client thread: (time on a CPU, time runnable but waiting for one).
    writer_sched: Option<Sched>,
    /// The sync thread (fdatasync) and the ack thread (publishing, answering durable appends).
    sync_sched: Option<Sched>,
    ack_sched: Option<Sched>,
    client_sched: Option<Sched>,
    /// Wall time inside the flash calls during the workload: programs, their total, syncs,
    /// their total, the longest sync.
    programs: u64,
    program_time: Duration,
    /// Wall time inside `erase` (on raw flash, a roll into a slot that held data erases it
    /// first; a file is written over instead, so it stays 0 here).
    erase_time: Duration,
    syncs: u64,
    sync_time: Duration,
    sync_max: Duration,
    raw_before: Duration,
    raw_after: Duration,
    raw_bytes: u64,
    peak_rss_bytes: Option<u64>,
}

impl Outcome {
    fn payload_bytes(&self) -> u64 {
        self.records * self.record_bytes
    }

    fn mb_s(&self) -> f64 {
        self.payload_bytes() as f64 / MB / self.elapsed.as_secs_f64()
    }

    /// The raw limit: the mean of the runs before and after ours (total bytes / total time).
    fn raw_mb_s(&self) -> f64 {
        2.0 * self.raw_bytes as f64 / MB / (self.raw_before + self.raw_after).as_secs_f64()
    }
}

fn run(opts: &Opts) -> Result<(), BoxError> {
    fs::create_dir_all(&opts.dir)
        .map_err(|e| format!("cannot create {}: {e}", opts.dir.display()))?;
    let dir = opts.dir.canonicalize()?;
    let (fs_type, device) = filesystem_of(&dir).unwrap_or_else(|| ("unknown".into(), "?".into()));
    // A smoke run (`make test` runs the bench with --quick) checks that the bench works, not
    // what it measures: it runs wherever the temp dir is (tmpfs on many distributions).
    if matches!(fs_type.as_str(), "tmpfs" | "ramfs") && !opts.any_fs && !opts.quick {
        return Err(format!(
            "{} is on {fs_type}, not a disk: the numbers would mean nothing. Point \
             OUTPOST_BENCH_DIR (or --dir) at a directory on a real disk, or pass --any-fs",
            dir.display()
        )
        .into());
    }
    let workdir = dir.join(format!("outpost-bench-{}", std::process::id()));
    fs::create_dir_all(&workdir)?;
    let result = run_in(opts, &workdir, &fs_type, &device);
    let _ = fs::remove_dir_all(&workdir);
    result
}

fn run_in(opts: &Opts, workdir: &Path, fs_type: &str, device: &str) -> Result<(), BoxError> {
    // With one record per append (the default), the 1 KiB workload runs a second time with
    // BATCHED_PER_APPEND records per append: a device that sends a batch per frame.
    // Then that once more on a ring it wraps around several times (steady state).
    // (name, records, record bytes, records per append, wraps, batched: W/16 appends in flight)
    let mut workloads = vec![
        (
            "durable 100 B",
            opts.records_100,
            100,
            opts.per_append,
            false,
            false,
        ),
        (
            "durable 1 KiB",
            opts.records_1k,
            KIB,
            opts.per_append,
            false,
            false,
        ),
    ];
    if opts.per_append == 1 {
        let n = BATCHED_PER_APPEND;
        workloads.push((BATCHED_NAME, opts.records_1k, KIB, n, false, true));
        // Only when the run goes round the 4-segment ring at least twice (not with --quick).
        if opts.records_1k * KIB >= 2 * WRAPPING_RING_BYTES {
            workloads.push((WRAPPING_NAME, opts.records_1k, KIB, n, true, true));
        } else if opts.records_1k > 0 {
            eprintln!(
                "… {WRAPPING_NAME}: skipped, {} records do not go round its ring twice",
                opts.records_1k
            );
        }
    }
    println!(
        "outpost storage bench — dir {} ({fs_type} on {device}), group_bytes_max {}{}, W={}{}{}",
        workdir.display(),
        human_bytes(opts.group_bytes_max),
        if opts.group_bytes_max == GROUP_BYTES_MAX_DEFAULT {
            " (chosen over 1 MiB, see the bench source)"
        } else {
            ""
        },
        opts.window,
        if opts.per_append == 1 {
            String::new()
        } else {
            format!(", {} records per append", opts.per_append)
        },
        if opts.quick { " (quick smoke run)" } else { "" }
    );
    println!(
        "{} CPUs, load average at the start: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    let mut outcomes = Vec::new();
    for (name, records, record_bytes, per_append, wraps, batched) in workloads {
        if records == 0 {
            continue;
        }
        // The batched workloads keep the same records in flight, not 16 times as many.
        let window = if batched {
            (opts.window / BATCHED_PER_APPEND as usize).max(1)
        } else {
            opts.window
        };
        let w = Workload {
            name,
            records,
            record_bytes,
            per_append,
            window,
            wraps,
        };
        eprintln!("… {name}: {records} records");
        let on_disk = run_workload(opts, workdir, &w, false)?;
        eprintln!("… {name}: {records} records, no disk (the CPU ceiling)");
        let ceiling = run_workload(opts, workdir, &w, true)?;
        outcomes.push((on_disk, ceiling));
    }
    print_table(opts, &outcomes);
    println!("load average at the end: {}", load_average());
    Ok(())
}

fn bench_config(opts: &Opts, w: &Workload) -> Result<RingConfig, BoxError> {
    let (records, record_bytes, per_append) = (w.records, w.record_bytes, w.per_append);
    let mut cfg = RingConfig::dev_default();
    cfg.erase_block_bytes = MIB;
    cfg.program_unit_bytes = 4096;
    cfg.segment_bytes = SEGMENT_BYTES;
    cfg.group_bytes_max = opts.group_bytes_max;
    // Enough that the run never wraps: every batch, a third more for padding and checkpoints,
    // and two spare segments; never below 4 segments.
    let need = records * (record_bytes + FRAMING_BYTES);
    let segments = (need + need / 3).div_ceil(SEGMENT_BYTES) + 2;
    cfg.ring_bytes = (segments.max(4) * SEGMENT_BYTES).max(if opts.quick {
        4 * SEGMENT_BYTES
    } else {
        RING_BYTES_MIN
    });
    if w.wraps {
        cfg.ring_bytes = WRAPPING_RING_BYTES;
        cfg.full_policy = FullPolicy::DropOldest;
    }
    cfg.validate()
        .map_err(|e| format!("bench ring config refused: {e}"))?;
    let batch =
        BATCH_HEADER_BYTES + per_append * (record_bytes + FRAMING_BYTES - BATCH_HEADER_BYTES);
    if batch > cfg.batch_bytes_max {
        return Err(format!(
            "{} records of {record_bytes} B per append make a {batch}-byte batch, more than \
             batch_bytes_max ({})",
            per_append, cfg.batch_bytes_max
        )
        .into());
    }
    Ok(cfg)
}

/// Runs one workload: on the disk (with the raw limit measured before and after), or with
/// `no_disk` on no medium at all, which shows what the CPU alone allows.
fn run_workload(
    opts: &Opts,
    workdir: &Path,
    w: &Workload,
    no_disk: bool,
) -> Result<Outcome, BoxError> {
    let &Workload {
        name,
        records,
        record_bytes,
        per_append,
        window: _,
        wraps,
    } = w;
    let cfg = bench_config(opts, w)?;
    let payload = records * record_bytes;

    // The raw limit once before ours (and once after, below)...
    let raw_path = workdir.join(format!("raw-{record_bytes}.bin"));
    let raw_before = if no_disk {
        Duration::ZERO
    } else {
        raw_write(&raw_path, payload)?
    };

    // ...then ours, on a freshly created ring file (creation and recovery are not timed).
    let ring_path = workdir.join(format!("ring-{record_bytes}.bin"));
    let geometry = Geometry::new(
        cfg.erase_block_bytes,
        cfg.program_unit_bytes,
        cfg.ring_bytes,
    )?;
    let medium = if no_disk {
        Medium::None(geometry)
    } else {
        let _ = fs::remove_file(&ring_path);
        let (flash, created) = FileFlash::open_or_create(&ring_path, geometry)?;
        if !created {
            return Err(format!("{} existed already", ring_path.display()).into());
        }
        Medium::File(flash)
    };
    let times = Arc::new(FlashTimes::default());
    let flash = Timed {
        inner: medium,
        times: times.clone(),
        fresh: AtomicBool::new(true),
    };
    let (ring, _report) = Ring::open(flash, cfg.clone())?;
    let log = Log::start(ring)?;
    // Opening formatted the ring (a program and a sync): count only the workload's.
    let t0 = [
        &times.programs,
        &times.program_ns,
        &times.syncs,
        &times.sync_ns,
        &times.erase_ns,
    ]
    .map(FlashTimes::get);
    times.sync_max_ns.store(0, Ordering::Relaxed);
    let rss_reset = reset_peak_rss();

    let value: Vec<u8> = (0..record_bytes).map(|i| (i * 7 + 13) as u8).collect();
    let latency = RefCell::new(Histogram::new());
    let next = Cell::new(0u64);
    let failure: RefCell<Option<String>> = RefCell::new(None);
    let ex = smol::LocalExecutor::new();
    let client_start = sched(Path::new("/proc/thread-self"));
    let start = Instant::now();
    let appends = records.div_ceil(per_append);
    let tasks: Vec<_> = (0..w.window.min(appends as usize))
        .map(|_| {
            ex.spawn(append_loop(
                &log, &next, records, per_append, &value, &latency, &failure,
            ))
        })
        .collect();
    smol::block_on(ex.run(async {
        for t in tasks {
            t.await;
        }
    }));
    let elapsed = start.elapsed();
    drop(ex);
    let client_sched = client_start
        .zip(sched(Path::new("/proc/thread-self")))
        .map(|(a, b)| b.since(a));
    // The writer and sync threads ran nothing before the workload but their start (recovery
    // ran here).
    let writer_sched = task_dir("outpost-writer").as_deref().and_then(sched);
    let sync_sched = task_dir("outpost-sync").as_deref().and_then(sched);
    let ack_sched = task_dir("outpost-ack").as_deref().and_then(sched);
    let t1 = [
        &times.programs,
        &times.program_ns,
        &times.syncs,
        &times.sync_ns,
        &times.erase_ns,
    ]
    .map(FlashTimes::get);
    let sync_max = Duration::from_nanos(FlashTimes::get(&times.sync_max_ns));
    if let Some(e) = failure.into_inner() {
        return Err(format!("{name}: an append failed: {e}").into());
    }

    let snapshot = log.reader().snapshot();
    let durable = log.reader().offsets(PartitionId(0)).1;
    if durable.0 != records {
        return Err(format!("{name}: {records} appended but {durable} durable").into());
    }
    if snapshot.stats.segments_reclaimed != 0 && !wraps {
        return Err(format!("{name}: the ring wrapped; raise ring_bytes").into());
    }
    if snapshot.stats.segments_reclaimed == 0 && wraps {
        return Err(format!("{name}: the ring did not wrap; raise --records-1k").into());
    }
    log.close();
    drop(log);
    let peak_rss_bytes = peak_rss_bytes().filter(|_| rss_reset);
    let raw_after = if no_disk {
        Duration::ZERO
    } else {
        fs::remove_file(&ring_path)?;
        let raw = raw_write(&raw_path, payload)?;
        fs::remove_file(&raw_path)?;
        raw
    };
    Ok(Outcome {
        name,
        per_append,
        window: w.window,
        records,
        record_bytes,
        elapsed,
        latency: latency.into_inner(),
        stats: snapshot.stats,
        writer_sched,
        sync_sched,
        ack_sched,
        client_sched,
        programs: t1[0] - t0[0],
        program_time: Duration::from_nanos(t1[1] - t0[1]),
        erase_time: Duration::from_nanos(t1[4] - t0[4]),
        syncs: t1[2] - t0[2],
        sync_time: Duration::from_nanos(t1[3] - t0[3]),
        sync_max,
        raw_before,
        raw_after,
        raw_bytes: payload,
        peak_rss_bytes,
    })
}

/// One client: appends the next `per_append` records (durable) until all are taken. Like the
/// raw side, which writes from one reused buffer, it reuses its records' buffers (they come
/// back with the answer, `Log::append_returning`): the figures measure the log, not the
/// allocator making a fresh 1 KiB buffer per record. The bytes appended are the same either way.
async fn append_loop(
    log: &Log<Timed>,
    next: &Cell<u64>,
    records: u64,
    per_append: u64,
    value: &[u8],
    latency: &RefCell<Histogram>,
    failure: &RefCell<Option<String>>,
) {
    let mut spare: Vec<Record> = Vec::new();
    loop {
        let first = next.get();
        if first >= records || failure.borrow().is_some() {
            return;
        }
        let end = records.min(first + per_append);
        next.set(end);
        let mut batch = std::mem::take(&mut spare);
        batch.truncate((end - first) as usize);
        for (r, i) in batch.iter_mut().zip(first..end) {
            r.timestamp_ms = i as i64;
        }
        for i in first + batch.len() as u64..end {
            batch.push(Record {
                timestamp_ms: i as i64,
                key: None,
                value: value.to_vec(),
                headers: Vec::new(),
            });
        }
        let submitted = Instant::now();
        let (result, back) = log
            .append_returning(PartitionId(0), batch, Acks::Durable)
            .await;
        let took = submitted.elapsed();
        spare = back;
        match result {
            Ok(Some(a)) if u64::from(a.record_count) == end - first => {
                latency.borrow_mut().record(took)
            }
            Ok(other) => {
                *failure.borrow_mut() = Some(format!("unexpected answer {other:?}"));
                return;
            }
            Err(e) => {
                *failure.borrow_mut() = Some(e.to_string());
                return;
            }
        }
    }
}

/// Writes `bytes` bytes sequentially into a preallocated file, 1 MiB per `write_all` and one
/// `fdatasync` after each, and returns the time taken. The file is first filled with 0xFF and
/// synced (as `FileFlash` creates a ring file), untimed, so this overwrites allocated space
/// exactly as the ring does.
fn raw_write(path: &Path, bytes: u64) -> Result<Duration, BoxError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    let erased = vec![0xFF_u8; MIB as usize];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(MIB) as usize;
        file.write_all(&erased[..n])?;
        left -= n as u64;
    }
    file.sync_data()?;
    file.seek(SeekFrom::Start(0))?;
    let chunk: Vec<u8> = (0..MIB).map(|i| (i * 7 + 13) as u8).collect();
    let start = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(MIB) as usize;
        file.write_all(&chunk[..n])?;
        file.sync_data()?;
        left -= n as u64;
    }
    Ok(start.elapsed())
}

fn print_table(opts: &Opts, runs: &[(Outcome, Outcome)]) {
    let outcomes: Vec<&Outcome> = runs.iter().map(|(o, _)| o).collect();
    println!(
        "{:<18} {:>9} {:>11} {:>8} {:>8} {:>8} {:>9} {:>9} {:>7}",
        "workload",
        "records",
        "records/s",
        "MB/s",
        "p50 µs",
        "p99 µs",
        "p99.9 µs",
        "raw MB/s",
        "ratio"
    );
    for o in &outcomes {
        println!(
            "{:<18} {:>9} {:>11.0} {:>8.1} {:>8.0} {:>8.0} {:>9.0} {:>9.1} {:>6.1}%",
            o.name,
            o.records,
            o.records as f64 / o.elapsed.as_secs_f64(),
            o.mb_s(),
            o.latency.quantile_us(0.50),
            o.latency.quantile_us(0.99),
            o.latency.quantile_us(0.999),
            o.raw_mb_s(),
            100.0 * o.mb_s() / o.raw_mb_s(),
        );
    }
    println!();
    for (o, ceiling) in runs {
        let s = &o.stats;
        let avg_group = s
            .bytes_programmed
            .checked_div(s.groups_written)
            .unwrap_or(0);
        let per_record = s.bytes_programmed as f64 / o.records as f64;
        println!(
            "{}: {:.2} s, {} records per append, W={}; {} groups, {} syncs, avg group {:.0} KiB \
             (~{:.0} records), {:.1} MB programmed ({:.2}× payload); max latency {:.0} µs",
            o.name,
            o.elapsed.as_secs_f64(),
            o.per_append,
            o.window,
            s.groups_written,
            s.syncs,
            avg_group as f64 / KIB as f64,
            avg_group as f64 / per_record.max(1.0),
            s.bytes_programmed as f64 / MB,
            s.bytes_programmed as f64 / o.payload_bytes() as f64,
            o.latency.max_us(),
        );
        println!(
            "  the medium: busy {:.0}% of the run; in fdatasync {:.2} s ({} calls, avg {:.2} ms, \
             max {:.1} ms), in program (pwrite) {:.2} s ({} calls), in erase {:.2} s ({} \
             segments reclaimed)",
            pct(o.sync_time + o.program_time + o.erase_time, o.elapsed),
            o.sync_time.as_secs_f64(),
            o.syncs,
            o.sync_time.as_secs_f64() * 1e3 / o.syncs.max(1) as f64,
            o.sync_max.as_secs_f64() * 1e3,
            o.program_time.as_secs_f64(),
            o.programs,
            o.erase_time.as_secs_f64(),
            s.segments_reclaimed,
        );
        println!(
            "  writer thread (encode, CRC, seal; programs and syncs around a roll): {}",
            share(o.writer_sched, o.elapsed)
        );
        println!(
            "  sync thread (pwrite, fdatasync): {}",
            share(o.sync_sched, o.elapsed)
        );
        println!(
            "  ack thread (publish, durable answers): {}",
            share(o.ack_sched, o.elapsed)
        );
        println!("  client thread: {}", share(o.client_sched, o.elapsed));
        println!("  CPU: {}", cpu_per_record(o));
        println!(
            "  no disk (the same workload with program and sync returning at once: what the CPU \
             alone allows): {:.0} records/s = {:.1} MB/s = {:.0}% of the raw limit; {}",
            ceiling.records as f64 / ceiling.elapsed.as_secs_f64(),
            ceiling.mb_s(),
            100.0 * ceiling.mb_s() / o.raw_mb_s(),
            cpu_per_record(ceiling),
        );
        let busy = [o.writer_sched, o.sync_sched, o.ack_sched, o.client_sched]
            .iter()
            .flatten()
            .any(|s| s.runnable > (o.elapsed / 20).max(Duration::from_millis(20)));
        if busy {
            println!(
                "  WARNING: our threads waited for a CPU for more than 5% of the run: other \
                 processes were using the machine, so this workload's numbers are low"
            );
        }
        println!(
            "  raw: {:.1} MB/s before, {:.1} MB/s after ours = {:.0} records/s of {} B; peak \
             RSS during the workload {}",
            o.raw_bytes as f64 / MB / o.raw_before.as_secs_f64(),
            o.raw_bytes as f64 / MB / o.raw_after.as_secs_f64(),
            o.raw_mb_s() * MB / o.record_bytes as f64,
            o.record_bytes,
            o.peak_rss_bytes
                .map_or("n/a".into(), |b| format!("{:.1} MB", b as f64 / MB)),
        );
    }
    let peak = outcomes
        .iter()
        .filter_map(|o| o.peak_rss_bytes)
        .max()
        .or_else(peak_rss_bytes);
    println!(
        "peak RSS: {} (VmHWM of the bench process, which holds the broker's storage)",
        peak.map_or("n/a".into(), |b| format!("{:.1} MB", b as f64 / MB))
    );
    println!(
        "raw = the workload's payload bytes written with 1 MiB write_all + fdatasync per MiB \
         into a preallocated file, mean of a run before and after ours; ratio = our payload MB/s \
         ÷ raw MB/s; MB = 10^6 B"
    );
    for o in outcomes.iter().filter(|o| o.record_bytes == KIB) {
        let ratio = o.mb_s() / o.raw_mb_s();
        println!(
            "target ≥ {:.0}% at 1 KiB ({}): {} ({:.1}%){}",
            TARGET_RATIO * 100.0,
            o.name,
            if ratio >= TARGET_RATIO {
                "met"
            } else {
                "NOT met"
            },
            ratio * 100.0,
            if opts.quick {
                " — quick run, not a measurement"
            } else {
                ""
            }
        );
    }
}

fn pct(part: Duration, whole: Duration) -> f64 {
    100.0 * part.as_secs_f64() / whole.as_secs_f64()
}

/// The four threads' time on a CPU, summed, per record.
fn cpu_per_record(o: &Outcome) -> String {
    let threads = [o.writer_sched, o.sync_sched, o.ack_sched, o.client_sched];
    if threads.iter().any(Option::is_none) {
        return "CPU per record n/a".into();
    }
    let total: Duration = threads.iter().flatten().map(|s| s.on_cpu).sum();
    format!(
        "{:.2} µs on a CPU per record (writer, sync, ack and client threads)",
        total.as_secs_f64() * 1e6 / o.records.max(1) as f64
    )
}

fn share(s: Option<Sched>, wall: Duration) -> String {
    s.map_or("n/a".into(), |s| {
        format!(
            "on CPU {:.2} s ({:.0}%), runnable-waiting {:.2} s",
            s.on_cpu.as_secs_f64(),
            pct(s.on_cpu, wall),
            s.runnable.as_secs_f64()
        )
    })
}

fn human_bytes(b: u64) -> String {
    if b.is_multiple_of(MIB) {
        format!("{} MiB", b / MIB)
    } else if b.is_multiple_of(KIB) {
        format!("{} KiB", b / KIB)
    } else {
        format!("{b} B")
    }
}

/// A log-linear latency histogram in nanoseconds: 128 sub-buckets per power of two (relative
/// error under 1%), fixed size whatever the number of samples.
struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max_ns: u64,
}

const SUB_BITS: u32 = 7;
const SUB: u64 = 1 << SUB_BITS;

impl Histogram {
    fn new() -> Histogram {
        Histogram {
            counts: vec![0; (65 * SUB) as usize],
            total: 0,
            max_ns: 0,
        }
    }

    fn bucket(ns: u64) -> usize {
        if ns < SUB {
            return ns as usize;
        }
        let exp = 63 - ns.leading_zeros() - SUB_BITS + 1; // >= 1
        let mantissa = (ns >> (exp - 1)) - SUB; // in 0..SUB
        (u64::from(exp) * SUB + mantissa) as usize
    }

    /// The upper bound of a bucket, in ns.
    fn bucket_high(i: usize) -> u64 {
        let (exp, mantissa) = (i as u64 / SUB, i as u64 % SUB);
        if exp == 0 {
            return mantissa;
        }
        ((SUB + mantissa + 1) << (exp - 1)) - 1
    }

    fn record(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.counts[Histogram::bucket(ns)] += 1;
        self.total += 1;
        self.max_ns = self.max_ns.max(ns);
    }

    fn quantile_us(&self, q: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Histogram::bucket_high(i).min(self.max_ns) as f64 / 1e3;
            }
        }
        self.max_ns as f64 / 1e3
    }

    fn max_us(&self) -> f64 {
        self.max_ns as f64 / 1e3
    }
}

/// The filesystem type and device of the mount holding `path` (longest matching mount point
/// in /proc/mounts).
fn filesystem_of(path: &Path) -> Option<(String, String)> {
    let mounts = fs::read_to_string("/proc/mounts").ok()?;
    let mut best: Option<(usize, String, String)> = None;
    for line in mounts.lines() {
        let mut f = line.split(' ');
        let (Some(dev), Some(mnt), Some(ty)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let mnt = unescape_mount(mnt);
        if path.starts_with(&mnt) {
            let len = mnt.len();
            // Later lines win on ties: they are mounted over the earlier ones.
            if best.as_ref().is_none_or(|(l, _, _)| len >= *l) {
                best = Some((len, ty.to_string(), dev.to_string()));
            }
        }
    }
    best.map(|(_, ty, dev)| (ty, dev))
}

/// /proc/mounts writes space, tab, newline and backslash as `\ooo` octal escapes.
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && let Some(v) = b
                .get(i + 1..i + 4)
                .and_then(|o| std::str::from_utf8(o).ok())
                .and_then(|o| u8::from_str_radix(o, 8).ok())
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Resets VmHWM to the current RSS (Linux: `5` into /proc/self/clear_refs).
fn reset_peak_rss() -> bool {
    fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// VmHWM (peak resident set size) of this process, in bytes.
fn peak_rss_bytes() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * KIB)
}

/// The /proc task directory of the thread named `name` (the group commit's `outpost-writer`
/// and `outpost-sync`).
fn task_dir(name: &str) -> Option<PathBuf> {
    fs::read_dir("/proc/self/task")
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| fs::read_to_string(p.join("comm")).is_ok_and(|c| c.trim() == name))
}

/// The 1, 5 and 15 minute load averages from /proc/loadavg.
fn load_average() -> String {
    fs::read_to_string("/proc/loadavg").map_or("n/a".into(), |s| {
        s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    })
}

/// A thread's scheduler accounting.
#[derive(Clone, Copy, Debug)]
struct Sched {
    /// Time on a CPU (user and kernel).
    on_cpu: Duration,
    /// Time runnable but waiting for a CPU.
    runnable: Duration,
}

impl Sched {
    fn since(self, earlier: Sched) -> Sched {
        Sched {
            on_cpu: self.on_cpu.saturating_sub(earlier.on_cpu),
            runnable: self.runnable.saturating_sub(earlier.runnable),
        }
    }
}

/// A thread's `schedstat`: nanoseconds on the CPU, then nanoseconds waiting on a run queue.
fn sched(task: &Path) -> Option<Sched> {
    let s = fs::read_to_string(task.join("schedstat")).ok()?;
    let mut f = s.split_whitespace().map(|v| v.parse::<u64>().ok());
    Some(Sched {
        on_cpu: Duration::from_nanos(f.next()??),
        runnable: Duration::from_nanos(f.next()??),
    })
}
