//! The consume–process–produce bench (`make bench`, or `cargo bench --bench pipeline
//! [-- OPTIONS]`): what exactly-once costs against at-least-once (and at-most-once).
//!
//! One real `outpost serve` (the release binary under `cargo bench`) on a board with a
//! 256 MiB ring. Topic `in` (2 partitions) is filled with N records whose values are 16-digit
//! decimal numbers (durable, batches of 2,000; untimed). Then, one after the other on the same
//! broker and the same input, the worker `examples/squares.rs` (release build) drains `in`
//! into a fresh output topic with each semantics, its own group (so each starts at offset
//! 0), `--batch 500`:
//!
//! - exactly-once: one ATOMIC_WRITE (outputs + input positions, one durable batch) per poll;
//! - at-least-once: one durable PRODUCE per output partition, then one COMMIT_OFFSETS;
//! - at-most-once: the COMMIT_OFFSETS in `poll`, then the durable PRODUCEs.
//!
//! Timed: from the worker's `squares: started` line (connected, producer initialised,
//! positions read) to its exit after `--until N` (every input committed). The table shows
//! input records/s, seconds, rounds (polls with records) and records per round, the output
//! records found afterwards, and the CPU seconds of the worker and of the broker during the
//! drain; then the ratio exactly-once / at-least-once.
//!
//! Options (each also read from the environment variable in brackets):
//! - `--records N` [`OUTPOST_BENCH_PIPE_RECORDS`]: input records (default 200,000);
//! - `--batch N` [`OUTPOST_BENCH_PIPE_BATCH`]: the worker's `--batch` (default 500);
//! - `--quick` [`OUTPOST_BENCH_QUICK=1`, which `make test` sets]: a smoke run (5,000 records).
//!
//! The worker binary is `target/<profile>/examples/squares` (`make bench` builds it first);
//! the bench builds it itself when it is missing or older than its source.

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use outpost::client::{Client, Semantics};
use outpost::storage::{Acks, Record};
use support::{BIN, TempDir};

const PARTITIONS: u32 = 2;
/// Digits of every input number (a 16-byte value).
const DIGITS: u32 = 16;
/// Records per produce call while filling `in`.
const FILL_BATCH: usize = 2000;
/// Longest wait for a start or a drain.
const WAIT: Duration = Duration::from_secs(600);

struct Opts {
    records: u64,
    batch: u32,
    quick: bool,
}

const HELP: &str = "\
pipeline bench: the squares worker (examples/squares.rs) draining a topic with exactly-once vs
at-least-once vs at-most-once, same broker, same input, same run
usage: cargo bench --bench pipeline -- [--quick] [--records N] [--batch N]
env:   OUTPOST_BENCH_PIPE_RECORDS, OUTPOST_BENCH_PIPE_BATCH, OUTPOST_BENCH_QUICK=1";

fn main() -> ExitCode {
    let opts = match parse_opts() {
        Ok(Some(o)) => o,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pipeline bench: {e}");
            eprintln!("(see the options at the top of benches/pipeline.rs, or pass --help)");
            return ExitCode::from(2);
        }
    };
    match run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pipeline bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_opts() -> Result<Option<Opts>, String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut records = env("OUTPOST_BENCH_PIPE_RECORDS");
    let mut batch = env("OUTPOST_BENCH_PIPE_BATCH");
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
            "--batch" => batch = Some(value(&a)?),
            // `cargo test --all-targets -- ARGS` hands test-harness flags to this program too.
            other if quick => eprintln!("pipeline bench: ignoring argument {other:?}"),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let count = |name: &str, v: Option<String>| -> Result<Option<u64>, String> {
        v.map(|v| {
            v.replace('_', "")
                .parse::<u64>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("{name}: {v:?} is not a count of at least 1"))
        })
        .transpose()
    };
    let records = count("records", records)?.unwrap_or(if quick { 5_000 } else { 200_000 });
    let batch = count("batch", batch)?.unwrap_or(500);
    Ok(Some(Opts {
        records,
        batch: u32::try_from(batch).map_err(|_| format!("batch: {batch} is too large"))?,
        quick,
    }))
}

/// One drain.
struct Drain {
    semantics: Semantics,
    seconds: f64,
    rounds: u64,
    outputs: u64,
    cpu_worker_s: Option<f64>,
    cpu_broker_s: Option<f64>,
}

type BoxError = Box<dyn std::error::Error>;

fn run(o: &Opts) -> Result<(), BoxError> {
    let worker = support::example_bin("squares")?;
    let dir = TempDir::new("pipeline-bench");
    let board = dir.board("4 MiB", "256 MiB", "1 MiB", "256 KiB");
    let config = dir.path().join("outpost.toml");
    std::fs::write(
        &config,
        "[storage]\nfull_policy = \"reject\"\ncorruption_policy = \"refuse\"\n\
         meta_bytes_max = \"64 KiB\"\n",
    )?;
    let mut broker = Broker::start(&board, &dir.data(), &config)?;
    println!(
        "pipeline bench: {} input records of {DIGITS}-digit numbers over {PARTITIONS} \
         partitions, worker --batch {}, acks durable; broker {}{}",
        o.records,
        o.batch,
        BIN,
        if o.quick { " (quick smoke run)" } else { "" }
    );
    let fill_s = fill(&broker.addr, o.records)?;
    println!(
        "-- filled `in` in {fill_s:.2} s ({:.0} records/s durable; not timed)",
        o.records as f64 / fill_s
    );

    let mut rows = Vec::new();
    for semantics in [
        Semantics::ExactlyOnce,
        Semantics::AtLeastOnce,
        Semantics::AtMostOnce,
    ] {
        let d = drain(&broker, &worker, o, semantics)?;
        println!(
            "-- {semantics}: {:.3} s, {} rounds, {} outputs",
            d.seconds, d.rounds, d.outputs
        );
        rows.push(d);
    }
    broker.stop();

    println!();
    println!(
        "squares pipeline (poll -> n:n² -> write + commit), {} input records x {DIGITS} B, \
         {PARTITIONS} partitions, --batch {}, same broker, same run",
        o.records, o.batch
    );
    println!(
        "{:<15} {:>11} {:>9} {:>8} {:>10} {:>9} {:>11} {:>11}",
        "semantics",
        "records/s",
        "seconds",
        "rounds",
        "rec/round",
        "outputs",
        "CPU worker",
        "CPU broker"
    );
    let secs = |v: Option<f64>| v.map_or("?".to_string(), |s| format!("{s:.2} s"));
    for d in &rows {
        println!(
            "{:<15} {:>11.0} {:>9.3} {:>8} {:>10.0} {:>9} {:>11} {:>11}",
            d.semantics.name(),
            o.records as f64 / d.seconds,
            d.seconds,
            d.rounds,
            o.records as f64 / d.rounds.max(1) as f64,
            d.outputs,
            secs(d.cpu_worker_s),
            secs(d.cpu_broker_s),
        );
    }
    let rate = |s: Semantics| {
        rows.iter()
            .find(|d| d.semantics == s)
            .map(|d| o.records as f64 / d.seconds)
    };
    if let (Some(eo), Some(alo)) = (rate(Semantics::ExactlyOnce), rate(Semantics::AtLeastOnce)) {
        println!(
            "{:<15} {:>10.2}x  (exactly-once records/s / at-least-once records/s){}",
            "ratio",
            eo / alo,
            if o.quick {
                " — quick run, not a measurement"
            } else {
                ""
            }
        );
    }
    println!(
        "rounds = polls that returned records; a round writes its outputs and commits once \
         (exactly-once: one ATOMIC_WRITE; at-least-once: {PARTITIONS} PRODUCE + 1 COMMIT_OFFSETS, \
         one after the other); timed from the worker's start line to its exit"
    );
    // Every drain ran without a crash: each input has exactly one output.
    for d in &rows {
        if d.outputs != o.records {
            return Err(format!(
                "{}: {} outputs for {} inputs (no crash happened: expected one each)",
                d.semantics, d.outputs, o.records
            )
            .into());
        }
    }
    Ok(())
}

/// Fills `in` with `records` distinct 16-digit numbers, round-robin over the partitions;
/// creates the output topics. Returns the seconds it took.
fn fill(addr: &str, records: u64) -> Result<f64, BoxError> {
    smol::block_on(async {
        let c = Client::connect(addr).await?;
        c.create_topic("in", PARTITIONS).await?;
        for s in ["exactly-once", "at-least-once", "at-most-once"] {
            c.create_topic(&format!("out-{s}"), PARTITIONS).await?;
        }
        let started = Instant::now();
        let first = 10u64.pow(DIGITS - 1);
        let mut next = 0u64;
        while next < records {
            let n = (records - next).min((FILL_BATCH * PARTITIONS as usize) as u64);
            for p in 0..PARTITIONS {
                let batch: Vec<Record> = (next..next + n)
                    .filter(|i| i % u64::from(PARTITIONS) == u64::from(p))
                    // Distinct, spread over the 16-digit range.
                    .map(|i| Record {
                        timestamp_ms: 1_700_000_000_000,
                        key: None,
                        value: (first + i * 7_919_317).to_string().into_bytes(),
                        headers: Vec::new(),
                    })
                    .collect();
                if !batch.is_empty() {
                    c.produce("in", Some(p), Acks::Durable, &batch).await?;
                }
            }
            next += n;
        }
        c.close().await;
        Ok(started.elapsed().as_secs_f64())
    })
}

/// Runs the worker with `semantics` until it committed every input; times it.
fn drain(
    broker: &Broker,
    worker: &Path,
    o: &Opts,
    semantics: Semantics,
) -> Result<Drain, BoxError> {
    let name = semantics.name();
    let mut child = Command::new(worker)
        .args(["--addr", &broker.addr, "--semantics", name])
        .args(["--group", &format!("bench-{name}"), "--input", "in"])
        .args(["--output", &format!("out-{name}")])
        .args(["--batch", &o.batch.to_string()])
        .args(["--until", &o.records.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let lines = lines_of(&mut child);
    let line = lines.recv_timeout(WAIT)?;
    let (started, cpu0) = (Instant::now(), cpu_s(broker.child.id()));
    if !line.starts_with("squares: started") {
        let _ = child.kill();
        return Err(format!("{name}: the worker's first line is {line:?}").into());
    }
    let cpu_children0 = children_cpu_s();
    let status = child.wait()?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu_broker_s = cpu_s(broker.child.id()).zip(cpu0).map(|(b, a)| b - a);
    let cpu_worker_s = children_cpu_s().zip(cpu_children0).map(|(b, a)| b - a);
    if !status.success() {
        return Err(format!("{name}: the worker failed: {status}").into());
    }
    let done = lines
        .recv_timeout(Duration::from_secs(5))
        .unwrap_or_default();
    // "squares: done: N input records committed; this run: R rounds, ..."
    let rounds = done
        .split("this run: ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|r| r.parse().ok())
        .ok_or_else(|| format!("{name}: no round count in the worker's last line {done:?}"))?;
    let outputs = smol::block_on(async {
        let c = Client::connect(&broker.addr).await?;
        let mut n = 0;
        for p in 0..PARTITIONS {
            let off = c.list_offsets(&format!("out-{name}"), p).await?;
            n += off.next - off.earliest;
        }
        c.close().await;
        Ok::<u64, outpost::client::ClientError>(n)
    })?;
    Ok(Drain {
        semantics,
        seconds,
        rounds,
        outputs,
        cpu_worker_s,
        cpu_broker_s,
    })
}

/// The child's stdout lines, as they come.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    if let Some(stdout) = child.stdout.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    rx
}

/// `outpost serve` on a free port.
struct Broker {
    child: Child,
    addr: String,
}

impl Broker {
    fn start(board: &Path, data: &Path, config: &Path) -> Result<Broker, BoxError> {
        let mut child = Command::new(BIN)
            .arg("serve")
            .arg("--config")
            .arg(config)
            .args(["--listen", "127.0.0.1:0", "--board"])
            .arg(board)
            .arg("--data")
            .arg(data)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let line = lines_of(&mut child)
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_default();
        match line.strip_prefix("listening on ") {
            Some(addr) => Ok(Broker {
                addr: addr.trim().to_string(),
                child,
            }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("outpost serve's first line is {line:?}").into())
            }
        }
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// CPU time (user + system) of `pid` so far, seconds (Linux; 100 ticks per second).
fn cpu_s(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name in parentheses: state is field 3, utime 14, stime 15.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// CPU time of this process's reaped children so far (cutime + cstime), seconds.
fn children_cpu_s() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks = f.get(13)?.parse::<u64>().ok()? + f.get(14)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}
