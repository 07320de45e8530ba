//! The forwarder bench (issue 6; `make bench`, or `cargo bench --bench forward [-- OPTIONS]`).
//!
//! One real Kafka 4.1.1 (one KRaft node on loopback, full JIT: `JVM_OPTS_BENCH`), started
//! behind the harness's fault proxy. For each upstream partition count (1 and 4 by default):
//!
//! 1. **Reference**: confluent-kafka's (librdkafka's) own transactional producer
//!    (`tools/py/txn_bench.py`) sends N records of 100 B (no key) to a fresh topic, in
//!    transactions of as many records as one forwarder transaction carries (the forwarder's
//!    `batch_bytes_max` over a 100 B record's stored size: 8,595 for the default 1 MiB),
//!    after untimed warm-up records; the broker itself is warmed first (txn_bench records to
//!    a warm-up topic), so neither side meets a cold JIT.
//! 2. **Forwarder**: a real `outpost serve` (the release binary under `cargo bench`) with a
//!    `[forwarder]` route to another fresh topic, its uplink refused by the proxy. N records
//!    of 100 B (no key) are produced to the edge (durable, batches of 4,096, round-robin over
//!    the edge partitions); nothing may cross. Then the proxy passes, and the drain is timed
//!    from the moment the forwarder reports `connected` (bootstrap, InitProducerId and the
//!    cursor read done: txn_bench's timer likewise starts after `init_transactions`) to the
//!    upstream commit (status `last_commit_ms`) that made every partition's position reach
//!    the edge's end. Completion is polled with FORWARDER_STATUS every 50 ms.
//! 3. **Check**: every upstream record is read back once with librdkafka (read_committed): N
//!    records, each edge partition's `outpost.offset` headers 0, 1, 2, ... without a hole or
//!    a repeat, 100-byte values, no gap record.
//!
//! The table shows records/s and MB/s (value bytes, 10^6 per second) of both, their ratio
//! (the issue's target: the forwarder at least 90% of the reference), transactions, the bytes
//! each record takes in the upstream log (the forwarder's carry four origin headers, about 70
//! bytes more than the reference's), the forwarder settings, the edge's ingest time and the
//! edge's peak RSS (VmHWM of the `outpost` process, reset before the drain).
//!
//! Both clients share the 2 cores with Kafka; the forwarder's bytes also cross the proxy (a
//! thread pair of this process copying in 64 KiB reads), the reference's do not.
//!
//! Options (each also read from the environment variable in brackets):
//! - `--records N` [`OUTPOST_BENCH_FWD_RECORDS`]: records per run (default 1,000,000).
//! - `--partitions LIST` [`OUTPOST_BENCH_FWD_PARTITIONS`]: upstream (and edge) partition
//!   counts, comma-separated (default `1,4`).
//! - `--warmup N` [`OUTPOST_BENCH_FWD_WARMUP`]: untimed records: N sent with txn_bench to
//!   a warm-up topic before anything else (the broker's JIT), and N again in each reference
//!   run before its timed part (default 200,000).
//! - `--batch-bytes-max SIZE` [`OUTPOST_BENCH_FWD_BATCH_BYTES_MAX`],
//!   `--upstream-batch-bytes-max SIZE` [`OUTPOST_BENCH_FWD_UPSTREAM_BATCH_BYTES_MAX`],
//!   `--linger-ms MS` [`OUTPOST_BENCH_FWD_LINGER_MS`]: the forwarder's settings (default: the
//!   forwarder's defaults); sizes as in the config file (`1 MiB`, `524288`).
//! - `--quick` [`OUTPOST_BENCH_QUICK=1`, which `make test` sets]: a smoke run (20,000
//!   records, 1 partition, 1,000 warm-up records, the harness's fast-starting JVM flags).

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "../tests/support/kafka.rs"]
mod kafka;

#[path = "../tests/support/forward.rs"]
mod forward;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use outpost::client::{Client, ForwardLink, ForwarderStatus};
use outpost::config::ByteSize;
use outpost::forwarder::config as fwd_defaults;
use outpost::storage::{Acks, Record};

use forward::Edge;
use kafka::{Fault, JVM_OPTS_BENCH, Kafka, KafkaOptions, Proxy};

const RECORD_BYTES: usize = 100;
/// Records per produce call to the edge (about 244 KB: under the board's 256 KiB batch).
const EDGE_BATCH: usize = 2000;
/// Produce calls to the edge in flight at once.
const EDGE_LANES: usize = 4;
/// The edge board's segment size.
const SEGMENT_BYTES: u64 = 8 << 20;
/// How often completion is polled.
const POLL: Duration = Duration::from_millis(50);
/// Longest wait for the forwarder to connect after the uplink comes back, and for a drain.
const CONNECT_WAIT: Duration = Duration::from_secs(60);
const DRAIN_WAIT: Duration = Duration::from_secs(600);
/// The issue's target: forwarder records/s at least this share of the reference's.
const TARGET_RATIO: f64 = 0.90;
const MB: f64 = 1e6;

struct Opts {
    records: u64,
    partitions: Vec<u32>,
    warmup: u64,
    batch_bytes_max: Option<u64>,
    upstream_batch_bytes_max: Option<u64>,
    linger_ms: Option<u64>,
    quick: bool,
}

const HELP: &str = "\
forward bench: the forwarder's backlog drain to a local Kafka vs confluent-kafka's own
transactional producer, same broker, same run
usage: cargo bench --bench forward -- [--quick] [--records N] [--partitions 1,4] [--warmup N]
                                      [--batch-bytes-max SIZE] [--upstream-batch-bytes-max SIZE]
                                      [--linger-ms MS]
env:   OUTPOST_BENCH_FWD_RECORDS, OUTPOST_BENCH_FWD_PARTITIONS, OUTPOST_BENCH_FWD_WARMUP,
       OUTPOST_BENCH_FWD_BATCH_BYTES_MAX, OUTPOST_BENCH_FWD_UPSTREAM_BATCH_BYTES_MAX,
       OUTPOST_BENCH_FWD_LINGER_MS, OUTPOST_BENCH_QUICK=1
needs: `make kafka venv` (make bench runs them)";

fn main() -> ExitCode {
    let opts = match parse_opts() {
        Ok(Some(o)) => o,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("forward bench: {e}");
            eprintln!("(see the options at the top of benches/forward.rs, or pass --help)");
            return ExitCode::from(2);
        }
    };
    run(&opts);
    ExitCode::SUCCESS
}

fn parse_opts() -> Result<Option<Opts>, String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut records = env("OUTPOST_BENCH_FWD_RECORDS");
    let mut partitions = env("OUTPOST_BENCH_FWD_PARTITIONS");
    let mut warmup = env("OUTPOST_BENCH_FWD_WARMUP");
    let mut batch = env("OUTPOST_BENCH_FWD_BATCH_BYTES_MAX");
    let mut upstream_batch = env("OUTPOST_BENCH_FWD_UPSTREAM_BATCH_BYTES_MAX");
    let mut linger = env("OUTPOST_BENCH_FWD_LINGER_MS");
    let mut quick = env("OUTPOST_BENCH_QUICK").is_some_and(|v| v != "0");
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
            "--records" => records = Some(value(&a)?),
            "--partitions" => partitions = Some(value(&a)?),
            "--warmup" => warmup = Some(value(&a)?),
            "--batch-bytes-max" => batch = Some(value(&a)?),
            "--upstream-batch-bytes-max" => upstream_batch = Some(value(&a)?),
            "--linger-ms" => linger = Some(value(&a)?),
            // `cargo test --all-targets -- ARGS` hands test-harness flags to this program too.
            other if quick => eprintln!("forward bench: ignoring argument {other:?}"),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let count = |name: &str, v: Option<String>| -> Result<Option<u64>, String> {
        v.map(|v| {
            v.replace('_', "")
                .parse::<u64>()
                .map_err(|_| format!("{name}: {v:?} is not a count"))
        })
        .transpose()
    };
    let size = |name: &str, v: Option<String>| -> Result<Option<u64>, String> {
        v.map(|v| {
            v.parse::<ByteSize>()
                .map(ByteSize::bytes)
                .map_err(|e| format!("{name}: {e}"))
        })
        .transpose()
    };
    let records = count("records", records)?.unwrap_or(if quick { 20_000 } else { 1_000_000 });
    if records == 0 {
        return Err("records must be at least 1".into());
    }
    let partitions: Vec<u32> = match partitions {
        None if quick => vec![1],
        None => vec![1, 4],
        Some(list) => list
            .split(',')
            .map(|p| {
                p.trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|&n| (1..=64).contains(&n))
                    .ok_or_else(|| format!("partitions: {p:?} is not a count in 1..=64"))
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(Some(Opts {
        records,
        partitions,
        warmup: count("warmup", warmup)?.unwrap_or(if quick { 1_000 } else { 200_000 }),
        batch_bytes_max: size("batch-bytes-max", batch)?,
        upstream_batch_bytes_max: size("upstream-batch-bytes-max", upstream_batch)?,
        linger_ms: count("linger-ms", linger)?,
        quick,
    }))
}

/// One forwarder drain.
struct Drain {
    seconds: f64,
    /// From the proxy passing again to the forwarder reporting `connected` (not timed).
    connect_s: f64,
    commits: u64,
    ingest_s: f64,
    rss_ingest_kib: Option<u64>,
    rss_drain_kib: Option<u64>,
    upstream_bytes: u64,
    proxy_bytes_up: u64,
    /// CPU seconds of the edge process and of Kafka's JVM during the drain.
    cpu_edge_s: Option<f64>,
    cpu_kafka_s: Option<f64>,
    verified: String,
}

fn run(o: &Opts) {
    let batch_bytes_max = o
        .batch_bytes_max
        .unwrap_or(fwd_defaults::BATCH_BYTES_MAX_DEFAULT);
    let upstream_batch_bytes_max = o
        .upstream_batch_bytes_max
        .unwrap_or(fwd_defaults::UPSTREAM_BATCH_BYTES_MAX_DEFAULT);
    let linger_ms = o.linger_ms.unwrap_or(fwd_defaults::LINGER_MS_DEFAULT);
    // As many reference records per transaction as one forwarder transaction carries: the
    // forwarder fills batch_bytes_max with stored record bytes.
    let stored = value_record(0).encoded_bytes();
    let txn_records = batch_bytes_max.div_ceil(stored).max(1);

    let jvm = if o.quick {
        None
    } else {
        Some(JVM_OPTS_BENCH.to_string())
    };
    let kopts = KafkaOptions {
        jvm_opts: jvm.clone(),
        ..KafkaOptions::default()
    };
    let (k, proxy) = Kafka::start_behind_proxy_with("fwd-bench", &kopts);
    println!(
        "forward bench: Kafka {} (1 KRaft node, JVM {}) started in {:.1} s; {} records x {RECORD_BYTES} B per run{}",
        kafka::KAFKA_VERSION,
        jvm.as_deref().unwrap_or("harness default (fast start)"),
        k.start_time.as_secs_f64(),
        o.records,
        if o.quick { " (quick)" } else { "" }
    );
    k.create_topic("cursors", 1, true);
    // Warm the broker (JIT) before anything is timed.
    k.create_topic("warm", 1, false);
    let w = k.txn_bench("warm", o.warmup.max(1), RECORD_BYTES as u32, txn_records, 0);
    println!("-- broker warm-up: {}", w.line);

    let mut rows = Vec::new();
    for &parts in &o.partitions {
        let ref_topic = format!("ref-{parts}");
        let up_topic = format!("up-{parts}");
        k.create_topic(&ref_topic, parts, false);
        k.create_topic(&up_topic, parts, false);
        println!(
            "-- {parts} partition(s): reference (txn_bench.py, {txn_records} records per transaction, {} warm-up)",
            o.warmup
        );
        let cpu0 = (children_cpu_s(), k.pid().and_then(cpu_s));
        let r = k.txn_bench(
            &ref_topic,
            o.records,
            RECORD_BYTES as u32,
            txn_records,
            o.warmup,
        );
        println!("   {}", r.line);
        let ref_cpu = (
            children_cpu_s() - cpu0.0,
            k.pid().and_then(cpu_s).zip(cpu0.1).map(|(a, b)| a - b),
        );
        let ref_bytes = log_bytes(&k, &ref_topic);
        println!("-- {parts} partition(s): forwarder");
        let forwarder = [
            format!("batch_bytes_max = {batch_bytes_max}"),
            format!("upstream_batch_bytes_max = {upstream_batch_bytes_max}"),
            format!("linger_ms = {linger_ms}"),
            "retry_ms_min = 20".to_string(),
            "retry_ms_max = 200".to_string(),
            format!(
                "request_timeout_ms = {}",
                fwd_defaults::REQUEST_TIMEOUT_MS_DEFAULT
            ),
            format!(
                "transaction_timeout_ms = {}",
                fwd_defaults::TRANSACTION_TIMEOUT_MS_DEFAULT
            ),
        ];
        let d = drain(&k, &proxy, parts, o.records, &up_topic, &forwarder);
        println!("   {}", d.verified);
        rows.push((parts, r, ref_bytes, ref_cpu, d));
    }

    println!();
    println!(
        "forwarder backlog drain vs confluent-kafka's transactional producer: {} records x {RECORD_BYTES} B, \
         no key, same Kafka {} (loopback), same run",
        o.records,
        kafka::KAFKA_VERSION
    );
    println!(
        "{:>5}  {:<32} {:>10} {:>8} {:>8} {:>6} {:>9} {:>10}",
        "parts", "", "records/s", "MB/s", "seconds", "txns", "rec/txn", "B/rec up"
    );
    for (parts, r, ref_bytes, _, d) in &rows {
        let n = o.records as f64;
        let ref_txns = o.records.div_ceil(txn_records);
        println!(
            "{:>5}  {:<32} {:>10.0} {:>8.2} {:>8.3} {:>6} {:>9.0} {:>10.1}",
            parts,
            "confluent-kafka txn producer",
            r.records_per_s,
            r.mb_per_s,
            r.seconds,
            ref_txns,
            n / ref_txns as f64,
            // The reference topic also holds the warm-up records.
            *ref_bytes as f64 / (o.records + o.warmup) as f64
        );
        let fwd_rps = n / d.seconds;
        println!(
            "{:>5}  {:<32} {:>10.0} {:>8.2} {:>8.3} {:>6} {:>9.0} {:>10.1}",
            parts,
            "outpost forwarder (drain)",
            fwd_rps,
            n * RECORD_BYTES as f64 / d.seconds / MB,
            d.seconds,
            d.commits,
            n / d.commits.max(1) as f64,
            d.upstream_bytes as f64 / n
        );
        let ratio = fwd_rps / r.records_per_s;
        println!(
            "{:>5}  {:<32} {:>9.1}%  (target >= {:.0}%: {})",
            parts,
            "ratio forwarder / reference",
            ratio * 100.0,
            TARGET_RATIO * 100.0,
            if ratio >= TARGET_RATIO {
                "met"
            } else {
                "NOT met"
            }
        );
    }
    println!();
    let tag = |set: bool| if set { "" } else { " (default)" };
    println!(
        "forwarder: batch_bytes_max = {batch_bytes_max}{}, upstream_batch_bytes_max = {upstream_batch_bytes_max}{}, \
         linger_ms = {linger_ms}{}; reference: {txn_records} records per transaction \
         (= batch_bytes_max / {stored} B stored per record), linger.ms 5",
        tag(o.batch_bytes_max.is_some()),
        tag(o.upstream_batch_bytes_max.is_some()),
        tag(o.linger_ms.is_some())
    );
    for (parts, r, _, (py, kf), d) in &rows {
        println!(
            "reference, {parts} partition(s): {:.2} s wall for warm-up and timed records; CPU: \
             txn_bench.py (Python + librdkafka) {py:.2} s, Kafka {}",
            r.seconds * (o.records + o.warmup) as f64 / o.records as f64,
            kf.map_or("?".to_string(), |s| format!("{s:.2} s"))
        );
        let secs = |v: Option<f64>| v.map_or("?".to_string(), |s| format!("{s:.2} s"));
        let kib =
            |v: Option<u64>| v.map_or("?".to_string(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
        println!(
            "edge, {parts} partition(s): ingest {:.2} s ({:.0} records/s durable); uplink back -> \
             connected {:.3} s (not timed); peak RSS ingest {}, drain {}; {:.1} B/record through the proxy; \
             CPU during the drain: outpost {}, Kafka {}",
            d.ingest_s,
            o.records as f64 / d.ingest_s,
            d.connect_s,
            kib(d.rss_ingest_kib),
            kib(d.rss_drain_kib),
            d.proxy_bytes_up as f64 / o.records as f64,
            secs(d.cpu_edge_s),
            secs(d.cpu_kafka_s)
        );
    }
}

/// The bench's record: 100 bytes, no key, no headers, a recent timestamp.
fn value_record(i: u64) -> Record {
    Record {
        timestamp_ms: now_ms(),
        key: None,
        value: (0..RECORD_BYTES)
            .map(|j| ((j as u64 * 7 + 13 + i) % 256) as u8)
            .collect(),
        headers: Vec::new(),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The edge's ring must hold the whole backlog: twice its stored bytes, in whole segments.
fn ring_bytes(records: u64) -> u64 {
    let stored = records * (value_record(0).encoded_bytes() + 8);
    (stored * 2).div_ceil(SEGMENT_BYTES).max(8) * SEGMENT_BYTES
}

fn drain(
    k: &Kafka,
    proxy: &Proxy,
    parts: u32,
    records: u64,
    up_topic: &str,
    forwarder: &[String],
) -> Drain {
    let edge_topic = format!("edge-{parts}");
    let gateway = format!("gw-bench-{parts}");
    let ring = ring_bytes(records);
    let fwd: Vec<&str> = forwarder.iter().map(String::as_str).collect();
    let mut edge = Edge::new(
        &format!("fwd-bench-{parts}"),
        &k.edge_bootstrap(),
        &gateway,
        &[(&edge_topic, up_topic, "same")],
        ("8 MiB", "64 MiB"),
        &[],
        &fwd,
    );
    // Edge::new's board is small (16 MiB budget, 32 KiB batches): this one holds the
    // backlog and takes big produce batches. Same file name (the board's name is its stem).
    std::fs::write(
        &edge.board,
        format!(
            r#"name = "it-small"
target_triple = "x86_64-unknown-linux-gnu"
erase_block_bytes = "64 KiB"
program_unit_bytes = "512 B"
segment_bytes = {SEGMENT_BYTES}
ring_bytes = {ring}
memory_budget_bytes = "64 MiB"
listen_addr = "127.0.0.1:7478"
group_bytes_max = "4 MiB"
batch_bytes_max = "256 KiB"
meta_bytes_max = "4 KiB"
partitions_max = 64
"#
        ),
    )
    .unwrap();
    proxy.set(Fault::Refuse);
    let refused_before = proxy.connections_refused();
    edge.start();
    let pid = find_pid(&edge.config);
    let c = edge.client();
    smol::block_on(c.create_topic(&edge_topic, parts)).unwrap();

    // The backlog, produced while the uplink is down.
    let t0 = Instant::now();
    produce(&c, &edge_topic, parts, records);
    let ingest_s = t0.elapsed().as_secs_f64();
    let ends: Vec<u64> = (0..parts)
        .map(|p| {
            smol::block_on(c.list_offsets(&edge_topic, p))
                .expect("LIST_OFFSETS")
                .next
        })
        .collect();
    assert_eq!(
        ends.iter().sum::<u64>(),
        records,
        "the edge holds the backlog"
    );
    // Let the forwarder retry at least once against the refusing uplink.
    let deadline = Instant::now() + Duration::from_secs(10);
    while proxy.connections_refused() == refused_before {
        assert!(
            Instant::now() < deadline,
            "the forwarder never tried the uplink"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = status(&c);
    assert_eq!(st.records_forwarded, 0, "nothing crossed a refusing uplink");
    assert!(
        k.consume_all(up_topic, false).is_empty(),
        "nothing crossed a refusing uplink"
    );
    let commits_before = st.commits;
    let rss_ingest_kib = pid.and_then(vm_hwm_kib);
    if let Some(pid) = pid {
        // Resets VmHWM, so the next reading is the drain's peak.
        let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
    }
    let (up_before, _) = proxy.bytes();
    let cpu_before = (pid.and_then(cpu_s), k.pid().and_then(cpu_s));

    // Uplink back: wait for the session, then time the drain.
    proxy.set(Fault::Pass);
    let t_pass = Instant::now();
    let (connected_ms, connect_s) = loop {
        let st = status(&c);
        if st.link == ForwardLink::Connected || st.records_forwarded > 0 {
            break (now_ms(), t_pass.elapsed().as_secs_f64());
        }
        assert!(
            t_pass.elapsed() < CONNECT_WAIT,
            "the forwarder did not connect within {CONNECT_WAIT:?}: {st:?}\nedge log:\n{}",
            edge.log()
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    let t_conn = Instant::now();
    let st = loop {
        let st = status(&c);
        let done = (0..parts).all(|p| {
            st.partitions
                .iter()
                .find(|fp| fp.topic == edge_topic && fp.partition == p)
                .and_then(|fp| fp.position)
                == Some(ends[p as usize])
        });
        if done {
            break st;
        }
        assert!(
            t_conn.elapsed() < DRAIN_WAIT,
            "the backlog did not drain within {DRAIN_WAIT:?}: {st:?}\nedge log:\n{}",
            edge.log()
        );
        std::thread::sleep(POLL);
    };
    let polled_s = t_conn.elapsed().as_secs_f64();
    let last_commit_ms = st.last_commit_ms.expect("a commit");
    // The commit's own timestamp ends the drain (the poll would add up to 50 ms).
    let seconds = ((last_commit_ms - connected_ms) as f64 / 1000.0).max(0.001);
    let rss_drain_kib = pid.and_then(vm_hwm_kib);
    let cpu_edge_s = pid.and_then(cpu_s).zip(cpu_before.0).map(|(a, b)| a - b);
    let cpu_kafka_s = k
        .pid()
        .and_then(cpu_s)
        .zip(cpu_before.1)
        .map(|(a, b)| a - b);
    let (up_after, _) = proxy.bytes();
    assert_eq!(st.records_forwarded, records, "{st:?}");
    assert_eq!(st.gaps, 0, "{st:?}");
    println!(
        "   drained in {seconds:.3} s (polled: {polled_s:.3} s), {} transactions",
        st.commits - commits_before
    );
    let verified = verify(k, up_topic, parts, &ends);
    let upstream_bytes = log_bytes(k, up_topic);
    drop(c);
    edge.kill();
    Drain {
        seconds,
        connect_s,
        commits: st.commits - commits_before,
        ingest_s,
        rss_ingest_kib,
        rss_drain_kib,
        upstream_bytes,
        proxy_bytes_up: up_after - up_before,
        cpu_edge_s,
        cpu_kafka_s,
        verified,
    }
}

fn status(c: &Client) -> ForwarderStatus {
    smol::block_on(c.forwarder_status()).expect("FORWARDER_STATUS")
}

/// Produces `records` bench records to `topic`, durable, [`EDGE_BATCH`] per call, the calls
/// round-robin over the partitions, [`EDGE_LANES`] calls in flight.
fn produce(c: &Client, topic: &str, parts: u32, records: u64) {
    let batches = records.div_ceil(EDGE_BATCH as u64);
    let ex = smol::LocalExecutor::new();
    let lane = |l: u64| async move {
        let mut b = l;
        while b < batches {
            let from = b * EDGE_BATCH as u64;
            let n = (EDGE_BATCH as u64).min(records - from);
            let recs: Vec<Record> = (from..from + n).map(value_record).collect();
            let p = (b % u64::from(parts)) as u32;
            c.produce(topic, Some(p), Acks::Durable, &recs)
                .await
                .unwrap_or_else(|e| panic!("produce to the edge {topic}/{p}: {e}"));
            b += EDGE_LANES as u64;
        }
    };
    smol::block_on(ex.run(async {
        let tasks: Vec<_> = (0..EDGE_LANES as u64).map(|l| ex.spawn(lane(l))).collect();
        for t in tasks {
            t.await;
        }
    }));
}

/// Reads `topic` back with librdkafka (read_committed) and checks it holds exactly the edge
/// records: per partition p, `outpost.offset` 0..ends[p] in order, 100-byte values, no gap
/// record. Returns the summary line; panics on any mismatch.
fn verify(k: &Kafka, topic: &str, parts: u32, ends: &[u64]) -> String {
    const SCRIPT: &str = r#"
import sys, time
from confluent_kafka import Consumer, KafkaError, TopicPartition
bs, topic, nparts, vbytes = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
c = Consumer({"bootstrap.servers": bs, "group.id": "outpost-bench-verify",
              "enable.auto.commit": False, "enable.auto.offset.store": False,
              "isolation.level": "read_committed", "enable.partition.eof": True,
              "auto.offset.reset": "earliest"})
ends = {}
for p in range(nparts):
    ends[p] = c.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
pending = {p for p in ends if ends[p][1] > ends[p][0]}
c.assign([TopicPartition(topic, p, ends[p][0]) for p in sorted(pending)])
nxt = {p: 0 for p in range(nparts)}
count = bad = 0
first_bad = ""
deadline = time.monotonic() + 600
while pending:
    if time.monotonic() > deadline:
        sys.exit("verify: end not reached; left: %s" % sorted(pending))
    msgs = c.consume(10000, 0.2)
    if not msgs:
        for tp in c.position([TopicPartition(topic, p) for p in sorted(pending)]):
            if tp.offset >= ends[tp.partition][1]:
                pending.discard(tp.partition)
        continue
    for m in msgs:
        p = m.partition()
        if m.error() is not None:
            if m.error().code() == KafkaError._PARTITION_EOF:
                if m.offset() >= ends[p][1]:
                    pending.discard(p)
                continue
            sys.exit("verify: %s" % m.error())
        if m.offset() >= ends[p][1]:
            continue
        count += 1
        h = dict(m.headers() or [])
        ok = ("outpost.gap" not in h and m.key() is None and len(m.value() or b"") == vbytes
              and h.get("outpost.partition") == str(p).encode()
              and h.get("outpost.offset") == str(nxt[p]).encode())
        if not ok:
            bad += 1
            if not first_bad:
                first_bad = "partition %d offset %d headers %r" % (p, m.offset(), h)
        nxt[p] = int(h.get("outpost.offset", b"-1")) + 1
        if m.offset() + 1 >= ends[p][1]:
            pending.discard(p)
c.close()
print("VERIFY count=%d bad=%d next=%s %s" % (count, bad, ",".join(str(nxt[p]) for p in range(nparts)), first_bad))
"#;
    let t0 = Instant::now();
    let out = Command::new(kafka::python_bin())
        .arg("-c")
        .arg(SCRIPT)
        .args([
            &k.bootstrap(),
            topic,
            &parts.to_string(),
            &RECORD_BYTES.to_string(),
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run the verifying Python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("VERIFY "))
        .unwrap_or_else(|| {
            panic!(
                "verify failed ({}):\n{stdout}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let want_next: Vec<String> = ends.iter().map(u64::to_string).collect();
    let want = format!(
        "VERIFY count={} bad=0 next={}",
        ends.iter().sum::<u64>(),
        want_next.join(",")
    );
    assert_eq!(
        line.trim_end(),
        want,
        "upstream {topic} is not exactly the edge records"
    );
    format!(
        "verified upstream (librdkafka, read_committed, {:.1} s): {} records, each edge \
         offset once and in order per partition, no gap record",
        t0.elapsed().as_secs_f64(),
        ends.iter().sum::<u64>()
    )
}

/// Bytes of `topic`'s log segments in the broker's data directory (records, batch headers
/// and transaction markers).
fn log_bytes(k: &Kafka, topic: &str) -> u64 {
    let Ok(dirs) = std::fs::read_dir(k.dir().join("data")) else {
        return 0;
    };
    let prefix = format!("{topic}-");
    let mut total = 0;
    for d in dirs.flatten() {
        let name = d.file_name().to_string_lossy().into_owned();
        let is_ours = name
            .strip_prefix(&prefix)
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if !is_ours {
            continue;
        }
        for f in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
            if f.path().extension().is_some_and(|e| e == "log") {
                total += f.metadata().map_or(0, |m| m.len());
            }
        }
    }
    total
}

/// The pid of the `outpost serve` started with `config` (its command line names the file).
fn find_pid(config: &Path) -> Option<u32> {
    let want = config.as_os_str().as_encoded_bytes();
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmd) = std::fs::read(PathBuf::from("/proc").join(pid.to_string()).join("cmdline"))
        else {
            continue;
        };
        if cmd.split(|&b| b == 0).any(|a| a == want) {
            return Some(pid);
        }
    }
    None
}

/// CPU time (user + system) `pid` used so far, seconds (clock ticks of 10 ms).
fn cpu_s(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name in parentheses: state is field 3, utime 14, stime 15.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// CPU time (user + system) of this process's reaped children so far, seconds.
fn children_cpu_s() -> f64 {
    /// `struct rusage` on 64-bit Linux: two timevals, then 14 longs.
    #[repr(C)]
    struct Rusage {
        utime: [i64; 2],
        stime: [i64; 2],
        rest: [i64; 14],
    }
    unsafe extern "C" {
        fn getrusage(who: i32, usage: *mut Rusage) -> i32;
    }
    const RUSAGE_CHILDREN: i32 = -1;
    let mut u = Rusage {
        utime: [0; 2],
        stime: [0; 2],
        rest: [0; 14],
    };
    // SAFETY: getrusage(2) fills the struct it is given, which has the kernel's layout.
    if unsafe { getrusage(RUSAGE_CHILDREN, &mut u) } != 0 {
        return 0.0;
    }
    let t = |tv: [i64; 2]| tv[0] as f64 + tv[1] as f64 / 1e6;
    t(u.utime) + t(u.stime)
}

/// Peak resident set size (VmHWM) of `pid`, KiB.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
