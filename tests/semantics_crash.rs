//! The three delivery semantics under `kill -9` (DESIGN.md promise 2, "How we know": process
//! crash tests of the real binaries).
//!
//! For each semantics: a fresh `outpost serve`; topic `in` (2 partitions) pre-filled with
//! distinct integers, topic `out` (2 partitions). The worker `examples/squares.rs` (the public
//! client library only) turns each `n` of `in` into `n:n²` in `out`, same partition. It is
//! SIGKILLed at seeded random instants at least [`KILLS`] times (restarted at once each
//! time), then one last instance runs until every input is committed. Then `out` is read
//! whole and checked against `in`:
//!
//! - at-most-once: no output twice (inputs lost: counted, printed);
//! - at-least-once: no input without an output (duplicates: counted, printed);
//! - exactly-once: every input has exactly one output, and each partition of `out` holds its
//!   input partition's numbers in input order. The broker itself is also SIGKILLed
//!   [`BROKER_KILLS`] times under the running worker and restarted on the same data directory
//!   and port; the worker must reconnect, resend its atomic write and go on (checked: it
//!   makes progress after each broker restart).
//!
//! Kill instants: a delay after the worker says it started, uniform in `0..delay_max`, where
//! `delay_max` adapts to the machine's speed so that each life consumes about
//! `INPUTS / (2 × KILLS)` inputs (the kills spread over the whole input on any machine).
//! `OUTPOST_SEMANTICS_SEED=<n>` replays a run's delays (timing itself varies).
//!
//! The same three checks again with one worker process whose connections the fault proxy
//! (`support/proxy.rs`) resets after a random number of response bytes, up to [`CUTS`] times:
//! the worker reconnects and goes on; exactly once, a write stored whose answer was cut is
//! resent and answered as a duplicate (counted and printed).
//!
//! And a regression test of `GroupConsumer::poll` (a poll cut by a lost connection must not
//! move the positions of the records it dropped).
//!
//! The worker binary is `target/<profile>/examples/squares`: `cargo test` builds examples;
//! with only `--test semantics_crash` the test builds it itself when it is missing or older
//! than its source.

mod support;

#[path = "support/proxy.rs"]
mod proxy;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use outpost::client::{Client, ConsumerConfig, GroupConsumer, Membership, ResetPolicy, Semantics};
use outpost::storage::{Acks, Record};
use proxy::{Fault, Proxy};
use support::{BIN, Rng, Server, TempDir, WAIT, fetch_all};

/// Input records, over [`PARTITIONS`] partitions.
const INPUTS: usize = 4000;
const PARTITIONS: u32 = 2;
/// Worker SIGKILLs per semantics (at least).
const KILLS: u32 = 50;
/// Exactly-once: broker SIGKILLs during the worker's lives (in addition to the worker kills).
const BROKER_KILLS: u32 = 5;
/// Records per poll: small, so a life is many rounds and a kill falls anywhere in one.
const BATCH: u32 = 4;
/// Connection cuts per semantics (at most: the worker may finish first).
const CUTS: u32 = 60;
/// How long the last worker instance may take to finish.
const FINISH_WAIT: Duration = Duration::from_secs(60);
const GROUP: &str = "squares";

/// The three tests share 2 cores: one at a time, so the kill timing means the same thing.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn at_most_once_loses_but_never_repeats_under_kill9() {
    run(Semantics::AtMostOnce, 1);
}

#[test]
fn at_least_once_repeats_but_never_loses_under_kill9() {
    run(Semantics::AtLeastOnce, 2);
}

#[test]
fn exactly_once_neither_loses_nor_repeats_under_kill9_of_worker_and_broker() {
    run(Semantics::ExactlyOnce, 3);
}

/// Regression (src/client/consumer.rs): `poll` moved each partition's position as soon as
/// that partition's FETCH returned, so a poll that failed on a later partition (or, at most
/// once, on its commit) dropped records it had fetched but kept their positions: the next
/// poll and commit passed over them, and they were never processed. Now the positions move
/// only with a successful poll. Every cut point of one poll's responses is tried (the
/// connection is reset after `k` response bytes); the consumer then goes on on a new
/// connection and must return every record exactly once.
#[test]
fn a_poll_cut_by_a_lost_connection_skips_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("semantics-cut");
    let board = dir.board("256 KiB", "4 MiB", "128 KiB", "16 KiB");
    let server = Server::start(&board, &dir.data(), Some(&config(&dir)));
    let proxy = Proxy::start(server.addr);
    let per_partition = 20u64;
    smol::block_on(async {
        let c = server.client();
        c.create_topic("in", 2).await.unwrap();
        for p in 0..2u32 {
            let records: Vec<Record> = (0..per_partition)
                .map(|i| support::record(None, format!("{p}-{i}").as_bytes()))
                .collect();
            c.produce("in", Some(p), Acks::Durable, &records)
                .await
                .unwrap();
        }
    });
    let mut cuts = 0;
    for semantics in [Semantics::AtLeastOnce, Semantics::AtMostOnce] {
        // Two FETCH answers of 20 small records each and (at most once) a commit answer:
        // well under 2,000 bytes.
        for k in (1..2000).step_by(23) {
            let group = format!("cut-{}-{k}", semantics.name());
            let returned = smol::block_on(async {
                let mut client = Client::connect(proxy.bootstrap()).await.unwrap();
                let cfg = ConsumerConfig {
                    group: group.clone(),
                    membership: Membership::Assign(vec![("in".into(), 0), ("in".into(), 1)]),
                    semantics,
                    reset: ResetPolicy::Earliest,
                    producer_name: None,
                    fetch_bytes_max: 1 << 20,
                };
                let mut consumer = GroupConsumer::start(&client, cfg).await.unwrap();
                proxy.set(Fault::CutResponse { after_bytes: k });
                let mut returned: Vec<(u32, u64)> = Vec::new();
                while consumer.positions().values().sum::<u64>() < 2 * per_partition {
                    match consumer.poll(&client, 0).await {
                        Ok(records) => {
                            returned.extend(records.iter().map(|r| (r.partition, r.offset)));
                            if semantics == Semantics::AtLeastOnce {
                                // The cut may fall here too: then poll again from where
                                // the commit failed (at least once: possibly repeated).
                                if consumer.commit(&client).await.is_err() {
                                    proxy.set(Fault::Pass);
                                    client = Client::connect(proxy.bootstrap()).await.unwrap();
                                    consumer.commit(&client).await.unwrap();
                                }
                            }
                        }
                        Err(e) => {
                            assert!(!e.connection_usable(), "{group}: {e}");
                            cuts += 1;
                            proxy.set(Fault::Pass);
                            client = Client::connect(proxy.bootstrap()).await.unwrap();
                        }
                    }
                }
                proxy.set(Fault::Pass);
                returned
            });
            let mut sorted = returned.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(
                sorted.len(),
                returned.len(),
                "{group}: a record returned twice"
            );
            assert_eq!(
                sorted.len() as u64,
                2 * per_partition,
                "{group}: records skipped: returned {sorted:?}"
            );
        }
    }
    assert!(cuts > 40, "only {cuts} polls were cut");
}

/// The run's seed: `OUTPOST_SEMANTICS_SEED`, else the clock.
fn seed() -> u64 {
    match std::env::var("OUTPOST_SEMANTICS_SEED") {
        Ok(s) if !s.is_empty() => s
            .parse()
            .unwrap_or_else(|_| panic!("OUTPOST_SEMANTICS_SEED={s:?} is not a u64")),
        _ => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
    }
}

fn run(semantics: Semantics, salt: u64) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let seed = seed();
    println!(
        "semantics {semantics}: seed {seed} (replay the delays with OUTPOST_SEMANTICS_SEED={seed})"
    );
    let mut rng = Rng::new(seed ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let started = Instant::now();

    let dir = TempDir::new(&format!("semantics-{salt}"));
    let board = dir.board("1 MiB", "16 MiB", "256 KiB", "64 KiB");
    let config = config(&dir);
    let mut broker = Broker::start(&board, &dir.data(), &config, free_port());
    let addr = broker.addr.clone();

    // The input: distinct numbers (negative ones too), so each output names its input.
    let inputs = fill(&addr, &mut rng);

    let worker_args = worker_args(&addr, semantics);
    let bin = squares_bin();

    // Kill lives (broker kills at evenly spread lives, exactly-once only).
    let broker_kill_lives: Vec<u32> = if semantics == Semantics::ExactlyOnce {
        (1..=BROKER_KILLS)
            .map(|i| i * KILLS / (BROKER_KILLS + 1))
            .collect()
    } else {
        Vec::new()
    };
    let per_life = (INPUTS as u64 / (2 * u64::from(KILLS))).max(1);
    let mut delay_max_us: u64 = 20_000;
    let mut kills = 0u32;
    let mut broker_kills = 0u32;
    // (reconnections, resent atomic writes answered as duplicates)
    let mut reconnects = (0usize, 0usize);
    let add = |sum: &mut (usize, usize), (r, d): (usize, usize)| {
        sum.0 += r;
        sum.1 += d;
    };
    let mut done_early = false;
    let mut life = 0u32;
    while kills < KILLS {
        life += 1;
        let before = committed(&addr);
        let remaining = INPUTS as u64 - before;
        let mut w = Worker::spawn(&bin, &worker_args);
        if !w.wait_started() {
            let status = w.wait_exit(WAIT);
            assert!(
                status.success(),
                "life {life}: the worker exited before it started: {status}\n{}",
                w.stderr()
            );
            done_early = true;
            break;
        }
        if broker_kill_lives.contains(&kills) && broker_kills < BROKER_KILLS {
            // The broker dies under the running worker, and comes back on the same data
            // directory and port: the worker must reconnect and go on.
            sleep_us(rng.range(0, delay_max_us + 1));
            let at_kill = committed(&addr);
            broker.kill9();
            broker_kills += 1;
            sleep_us(rng.range(0, 200_000));
            broker = Broker::start(&board, &dir.data(), &config, broker.port);
            let deadline = Instant::now() + WAIT;
            loop {
                let now = committed(&addr);
                if now > at_kill || now >= INPUTS as u64 {
                    break;
                }
                if let Some(status) = w.try_exit() {
                    panic!(
                        "the worker exited after broker kill {broker_kills}: {status}\n{}",
                        w.stderr()
                    );
                }
                assert!(
                    Instant::now() < deadline,
                    "the worker made no progress within {WAIT:?} of broker restart \
                     {broker_kills}\nworker stderr:\n{}\nbroker log:\n{}",
                    w.stderr(),
                    broker.log()
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        // Nearly done: kill at once, so the remaining kills still have inputs to fall on.
        let delay = if remaining < u64::from(KILLS - kills) * 4 {
            0
        } else {
            rng.range(0, delay_max_us + 1)
        };
        sleep_us(delay);
        if let Some(status) = w.try_exit() {
            assert!(
                status.success(),
                "life {life}: the worker failed: {status}\n{}",
                w.stderr()
            );
            add(&mut reconnects, w.reconnects());
            done_early = true;
            break;
        }
        w.kill9();
        add(&mut reconnects, w.reconnects());
        kills += 1;
        // Adapt the delays to the machine: about `per_life` inputs per life.
        let progress = committed(&addr) - before;
        if progress > per_life * 3 / 2 {
            delay_max_us = (delay_max_us * 2 / 3).max(200);
        } else if progress < per_life / 2 {
            delay_max_us = (delay_max_us * 3 / 2).min(300_000);
        }
    }
    assert!(
        !done_early,
        "the worker finished all {INPUTS} inputs after only {kills} of {KILLS} kills \
         (the adaptive delays should have prevented it)"
    );

    // The last instance runs to the end.
    let mut w = Worker::spawn(&bin, &worker_args);
    let status = w.wait_exit(FINISH_WAIT);
    assert!(
        status.success(),
        "the last worker failed: {status}\n{}",
        w.stderr()
    );
    add(&mut reconnects, w.reconnects());
    assert_eq!(committed(&addr), INPUTS as u64, "every input committed");

    let check = check(&addr, &inputs);
    println!(
        "semantics {semantics}: kills {kills}{}, inputs {INPUTS}, lost {}, duplicated {} \
         ({:.1} s, {life} lives, worker reconnects {}, resent writes answered as duplicates {}, \
         last delay_max {} ms)",
        if broker_kills > 0 {
            format!(" (+{broker_kills} broker kills)")
        } else {
            String::new()
        },
        check.lost,
        check.duplicated,
        started.elapsed().as_secs_f64(),
        reconnects.0,
        reconnects.1,
        delay_max_us / 1000
    );
    assert_promise(semantics, &check);
    if semantics == Semantics::ExactlyOnce {
        assert_eq!(broker_kills, BROKER_KILLS);
    }
    assert_eq!(broker.terminate(), 0);
}

/// Each semantics with its worker's connections cut (reset) after a random number of
/// response bytes, at random instants, through the fault proxy: the worker reconnects and
/// goes on in the same process. A cut after the broker stored a write but before its answer
/// arrived makes the exactly-once worker resend the same atomic write, which must be answered
/// as a duplicate; at least once resends plain outputs (duplicates); at most once drops them
/// (losses).
#[test]
fn the_three_semantics_through_connections_cut_at_random_response_bytes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let seed = seed();
    println!("connection cuts: seed {seed} (replay with OUTPOST_SEMANTICS_SEED={seed})");
    let bin = squares_bin();
    for (salt, semantics) in [
        (11u64, Semantics::AtMostOnce),
        (12, Semantics::AtLeastOnce),
        (13, Semantics::ExactlyOnce),
    ] {
        let mut rng = Rng::new(seed ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let started = Instant::now();
        let dir = TempDir::new(&format!("semantics-cut-{salt}"));
        let board = dir.board("1 MiB", "16 MiB", "256 KiB", "64 KiB");
        let server = Server::start(&board, &dir.data(), Some(&config(&dir)));
        let proxy = Proxy::start(server.addr);
        let inputs = fill(&server.addr_string(), &mut rng);
        let mut w = Worker::spawn(&bin, &worker_args(&proxy.bootstrap(), semantics));
        assert!(w.wait_started(), "the worker ended before it started");
        let mut cuts = 0u32;
        while w.try_exit().is_none() && cuts < CUTS {
            // A FETCH answer of a few records, a PRODUCE or ATOMIC_WRITE answer: tens to a
            // few hundred bytes; HELLO's about 60.
            proxy.set(Fault::CutResponse {
                after_bytes: rng.range(0, 1500) as usize,
            });
            sleep_us(rng.range(1_000, 20_000));
            proxy.set(Fault::Pass);
            sleep_us(rng.range(1_000, 30_000));
            cuts += 1;
        }
        let status = w.wait_exit(FINISH_WAIT);
        assert!(
            status.success(),
            "the worker failed: {status}\n{}",
            w.stderr()
        );
        let (reconnects, duplicates) = w.reconnects();
        let check = check(&server.addr_string(), &inputs);
        println!(
            "semantics {semantics} through cut connections: cuts {cuts}, inputs {INPUTS}, lost \
             {}, duplicated {} ({:.1} s, worker reconnects {reconnects}, resent writes \
             answered as duplicates {duplicates}, proxy resets {})",
            check.lost,
            check.duplicated,
            started.elapsed().as_secs_f64(),
            proxy.connections_killed()
        );
        assert!(
            reconnects > 0,
            "no cut reached the worker: the test exercised nothing"
        );
        assert_promise(semantics, &check);
        assert_eq!(server.terminate(), 0);
    }
}

/// The worker's command line: `addr`, `semantics`, small batches, until every input is
/// committed; a long reconnect window (the broker restarts, the proxy cuts).
fn worker_args(addr: &str, semantics: Semantics) -> Vec<String> {
    [
        "--addr",
        addr,
        "--group",
        GROUP,
        "--semantics",
        semantics.name(),
        "--input",
        "in",
        "--output",
        "out",
        "--producer-name",
        "squares-test",
        "--batch",
        &BATCH.to_string(),
        "--until",
        &INPUTS.to_string(),
        "--wait-ms",
        "100",
        "--reconnect-ms",
        "20000",
    ]
    .iter()
    .map(ToString::to_string)
    .collect()
}

/// What each semantics promises, on the checked output.
fn assert_promise(semantics: Semantics, check: &Checked) {
    match semantics {
        Semantics::AtMostOnce => {
            assert_eq!(check.duplicated, 0, "at most once: an input was repeated");
            if check.lost == 0 {
                println!(
                    "semantics {semantics}: no fault fell between a commit and its outputs \
                     this run (nothing lost; not a failure)"
                );
            }
        }
        Semantics::AtLeastOnce => {
            assert_eq!(check.lost, 0, "at least once: an input was lost");
        }
        Semantics::ExactlyOnce => {
            assert_eq!(check.lost, 0, "exactly once: an input was lost");
            assert_eq!(check.duplicated, 0, "exactly once: an input was repeated");
            assert!(
                check.in_order,
                "exactly once: an output partition is not its input partition in order"
            );
        }
    }
}

/// The broker's config: room for the committed offsets of many groups and a producer.
fn config(dir: &TempDir) -> PathBuf {
    let path = dir.path().join("outpost.toml");
    std::fs::write(
        &path,
        "[storage]\nfull_policy = \"reject\"\ncorruption_policy = \"refuse\"\n\
         meta_bytes_max = \"64 KiB\"\nproducers_max = 8\n",
    )
    .unwrap();
    path
}

/// The input: `INPUTS` distinct numbers, round-robin over the partitions, in batches.
/// Returns each partition's numbers in offset order.
fn fill(addr: &str, rng: &mut Rng) -> Vec<Vec<i64>> {
    let mut seen = std::collections::HashSet::new();
    let mut parts: Vec<Vec<i64>> = vec![Vec::new(); PARTITIONS as usize];
    let mut i = 0;
    while i < INPUTS {
        let n = rng.range(0, 2_000_000_000_000) as i64 - 1_000_000_000_000;
        if seen.insert(n) {
            parts[i % PARTITIONS as usize].push(n);
            i += 1;
        }
    }
    smol::block_on(async {
        let c = Client::connect(addr).await.unwrap();
        c.create_topic("in", PARTITIONS).await.unwrap();
        c.create_topic("out", PARTITIONS).await.unwrap();
        for (p, numbers) in parts.iter().enumerate() {
            for chunk in numbers.chunks(500) {
                let records: Vec<Record> = chunk
                    .iter()
                    .map(|n| Record {
                        timestamp_ms: 1_700_000_000_000,
                        key: None,
                        value: n.to_string().into_bytes(),
                        headers: Vec::new(),
                    })
                    .collect();
                c.produce("in", Some(p as u32), Acks::Durable, &records)
                    .await
                    .unwrap();
            }
        }
        c.close().await;
    });
    parts
}

/// The group's committed input offsets, added up.
fn committed(addr: &str) -> u64 {
    smol::block_on(async {
        let c = Client::connect(addr).await.unwrap();
        let wanted: Vec<(&str, u32)> = (0..PARTITIONS).map(|p| ("in", p)).collect();
        let offsets = c.fetch_offsets(GROUP, None, &wanted).await.unwrap();
        c.close().await;
        offsets.iter().map(|o| o.committed.unwrap_or(0)).sum()
    })
}

struct Checked {
    /// Inputs with no output.
    lost: usize,
    /// Outputs beyond the first of their input.
    duplicated: usize,
    /// Every output partition is exactly its input partition's numbers, in order.
    in_order: bool,
}

/// Reads `out` whole and compares it with the inputs.
fn check(addr: &str, inputs: &[Vec<i64>]) -> Checked {
    let outputs: Vec<Vec<i64>> = smol::block_on(async {
        let c = Client::connect(addr).await.unwrap();
        let mut all = Vec::new();
        for p in 0..PARTITIONS {
            let records = fetch_all(&c, "out", p, 0).await;
            all.push(
                records
                    .iter()
                    .map(|r| {
                        let text = std::str::from_utf8(&r.record.value).unwrap();
                        let (n, square) = text
                            .split_once(':')
                            .unwrap_or_else(|| panic!("output {text:?} is not n:n²"));
                        let n: i64 = n.parse().unwrap();
                        let square: i128 = square.parse().unwrap();
                        assert_eq!(square, i128::from(n) * i128::from(n), "output {text:?}");
                        n
                    })
                    .collect(),
            );
        }
        c.close().await;
        all
    });
    let mut count: HashMap<i64, usize> = HashMap::new();
    for (p, numbers) in outputs.iter().enumerate() {
        for n in numbers {
            let home = inputs.iter().position(|ins| ins.contains(n));
            assert_eq!(
                home,
                Some(p),
                "output {n} in out/{p}: its input is not in in/{p}"
            );
            *count.entry(*n).or_default() += 1;
        }
    }
    let lost = inputs
        .iter()
        .flatten()
        .filter(|n| !count.contains_key(n))
        .count();
    let duplicated = count.values().map(|c| c - 1).sum();
    Checked {
        lost,
        duplicated,
        in_order: outputs.as_slice() == inputs,
    }
}

fn sleep_us(us: u64) {
    if us > 0 {
        std::thread::sleep(Duration::from_micros(us));
    }
}

/// A port free now (the broker keeps it across its restarts).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `target/<profile>/examples/squares` (built if missing or stale).
fn squares_bin() -> PathBuf {
    let bin = support::example_bin("squares").unwrap();
    assert!(bin.exists(), "{} is missing", bin.display());
    bin
}

/// A worker process.
struct Worker {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Worker {
    fn spawn(bin: &Path, args: &[String]) -> Worker {
        let mut child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = stderr.clone();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Worker {
            child,
            lines,
            stderr,
        }
    }

    /// Waits for the `squares: started` line; false if the worker ended without it.
    fn wait_started(&mut self) -> bool {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with("squares: started") => return true,
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return false,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!(
                        "the worker did not start within {WAIT:?}\n{}",
                        self.stderr()
                    )
                }
            }
        }
    }

    fn try_exit(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = self.try_exit() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "the worker did not exit within {within:?}\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn stderr(&self) -> String {
        // Let the reader thread catch up with the last lines.
        std::thread::sleep(Duration::from_millis(50));
        self.stderr.lock().unwrap().join("\n")
    }

    /// How many times it said it was reconnecting, and how many of its resent atomic writes
    /// were answered as duplicates (stored before the connection was lost).
    fn reconnects(&self) -> (usize, usize) {
        let lines = self.stderr.lock().unwrap();
        let count = |what: &str| lines.iter().filter(|l| l.contains(what)).count();
        (count("reconnecting"), count("answered as a duplicate"))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// `outpost serve` on a fixed port, so that a restarted broker is where the worker
/// reconnects to. Killed on drop if still running.
struct Broker {
    child: Child,
    port: u16,
    addr: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Broker {
    fn start(board: &Path, data: &Path, config: &Path, port: u16) -> Broker {
        // The port was just released (or the previous broker on it was just killed): a
        // bind failure is retried a few times.
        let mut attempts = 0;
        loop {
            attempts += 1;
            match Broker::try_start(board, data, config, port) {
                Ok(b) => return b,
                Err(log) if attempts < 20 && log.contains("in use") => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(log) => panic!("outpost serve did not start on port {port}:\n{log}"),
            }
        }
    }

    fn try_start(board: &Path, data: &Path, config: &Path, port: u16) -> Result<Broker, String> {
        let addr = format!("127.0.0.1:{port}");
        let mut child = Command::new(BIN)
            .arg("serve")
            .arg("--config")
            .arg(config)
            .args(["--listen", &addr, "--board"])
            .arg(board)
            .arg("--data")
            .arg(data)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next().and_then(Result::ok).unwrap_or_default();
            let _ = tx.send(first);
            for _ in lines.map_while(Result::ok) {}
        });
        let line = rx.recv_timeout(WAIT).unwrap_or_default();
        if line.trim_end() == format!("listening on {addr}") {
            return Ok(Broker {
                child,
                port,
                addr,
                log,
            });
        }
        let _ = child.kill();
        let _ = child.wait();
        std::thread::sleep(Duration::from_millis(50));
        let text = log.lock().unwrap().join("\n");
        Err(format!("first stdout line {line:?}; stderr:\n{text}"))
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM; the exit code.
    fn terminate(mut self) -> i32 {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "no exit within {WAIT:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill9();
        }
    }
}
