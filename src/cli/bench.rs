//! `outpost bench`: a load generator. It produces N records of S bytes with at most W
//! records unacknowledged (W/B pipelined produce requests of B records each, on one
//! connection), then prints throughput, ack latency (per request, from send to ack), and —
//! when it started the broker itself — the broker's peak RSS and CPU time, and the binary's
//! size.
//!
//! Without `--addr` it starts `outpost serve` (this very binary, embedded default config,
//! `--board x86_64-dev` unless told otherwise) on 127.0.0.1 port 0 with a fresh data
//! directory in the system temp dir, its log in a file there, and stops it with SIGTERM at
//! the end (then deletes the directory). The bench topic is not forwarded upstream, so the
//! broker releases its records as soon as they are durable and the ring wraps: a run may be
//! larger than the ring.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args as ClapArgs;

use super::common::{self, AcksArg};
use super::{CliError, EXIT_OK};
use crate::client::{Client, ClientError};
use crate::protocol::ErrorCode;
use crate::storage::Record;
use crate::storage::format::BATCH_HEADER_BYTES;

/// How long a started broker may take to say `listening on`.
const BROKER_START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a started broker may take to exit after SIGTERM before it is killed.
const BROKER_STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// With acks none: how long the stored offsets may stand still before the bench stops
/// waiting for the rest of the records.
const ACKS_NONE_SETTLE: Duration = Duration::from_secs(5);
/// Linux reports CPU time in clock ticks of 1/100 s (USER_HZ) on every architecture.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;
/// Records per produce request unless --batch says otherwise.
pub const DEFAULT_BATCH: u32 = 100;
/// Lines of a started broker's log quoted when it fails.
const LOG_TAIL_LINES: usize = 20;

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Broker to load (host:port). Default: start one (this binary's `serve`) in a fresh temp
    /// directory, and stop and delete it at the end. OUTPOST_ADDR is not used here
    #[arg(long, value_name = "HOST:PORT")]
    addr: Option<String>,
    /// Records to produce
    #[arg(long, value_name = "N", default_value_t = 1_000_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    records: u64,
    /// Bytes of each record's value (no key, no headers)
    #[arg(long, value_name = "S", default_value_t = 100)]
    record_bytes: u32,
    /// Most records sent and not yet acknowledged
    #[arg(long, value_name = "W", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..))]
    window: u32,
    /// Records per produce request; W/B requests are in flight (capped by the broker's
    /// inflight_max). Default: 100, or fewer if 100 would exceed the broker's batch_bytes_max
    #[arg(long, value_name = "B", value_parser = clap::value_parser!(u32).range(1..))]
    batch: Option<u32>,
    /// When the broker acknowledges: none (no latency measured; the run ends when the records
    /// are stored), written or durable
    #[arg(long, value_enum, default_value_t = AcksArg::Durable)]
    acks: AcksArg,
    /// Topic to produce to (created if missing)
    #[arg(long, value_name = "TOPIC", default_value = "bench")]
    topic: String,
    /// Partitions of the topic; requests go round-robin over them
    #[arg(long, value_name = "P", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    partitions: u32,
    /// Board of the broker the bench starts (name or path; ignored with --addr)
    #[arg(long, value_name = "NAME|PATH", default_value = "x86_64-dev")]
    board: String,
}

pub fn run(args: Args) -> Result<i32, CliError> {
    common::init_logger(log::LevelFilter::Warn);
    let (addr, mut broker) = match &args.addr {
        Some(addr) => (addr.clone(), None),
        None => {
            let b = OwnedBroker::start(&args.board)?;
            (b.addr.clone(), Some(b))
        }
    };
    let outcome = smol::block_on(load(&args, &addr));
    // Measured just before the stop, so the peak covers the whole run.
    let usage = broker.as_ref().map(|b| b.usage());
    let stopped = broker.as_mut().map(OwnedBroker::stop);
    let result = outcome?;
    let mut out = report(&args, &addr, broker.as_ref(), &result);
    out.push_str(&broker_lines(usage, stopped));
    out.push_str(&binary_line());
    print!("{out}");
    Ok(EXIT_OK)
}

/// What a load run measured.
struct Measured {
    elapsed: Duration,
    records: u64,
    requests: u64,
    /// Requests in flight at most (W/B, capped by the broker's inflight_max).
    requests_in_flight: u32,
    /// Records per request.
    batch: u32,
    inflight_max: u32,
    server: String,
    /// Per request, send to ack, µs (sorted). Empty with acks none.
    latencies_us: Vec<u32>,
}

async fn load(args: &Args, addr: &str) -> Result<Measured, CliError> {
    let client = Arc::new(
        Client::connect(addr)
            .await
            .map_err(|e| CliError::client("cannot reach the broker", e))?,
    );
    let result = load_on(args, &client).await;
    client.close().await;
    result
}

/// What the in-flight slots share.
struct Load {
    client: Arc<Client>,
    topic: String,
    partitions: u32,
    acks: AcksArg,
    records_total: u64,
    /// One request's records (the last request sends fewer).
    batch: Vec<Record>,
    requests_total: u64,
    /// The next request number to send.
    next: AtomicU64,
    /// Set by the first slot that fails: the others stop.
    stop: AtomicBool,
}

async fn load_on(args: &Args, client: &Arc<Client>) -> Result<Measured, CliError> {
    let info = client.server_info().clone();
    ensure_topic(client, &args.topic, args.partitions).await?;

    let record = Record {
        timestamp_ms: common::now_ms(),
        key: None,
        value: (0..args.record_bytes)
            .map(|i| b'a' + (i % 26) as u8)
            .collect(),
        headers: Vec::new(),
    };
    let fits = (u64::from(info.batch_bytes_max).saturating_sub(BATCH_HEADER_BYTES as u64)
        / record.encoded_bytes())
    .clamp(1, u64::from(u32::MAX)) as u32;
    let batch = args
        .batch
        .unwrap_or_else(|| DEFAULT_BATCH.min(fits))
        .min(args.window);
    let batch_bytes = BATCH_HEADER_BYTES as u64 + u64::from(batch) * record.encoded_bytes();
    if batch_bytes > u64::from(info.batch_bytes_max) {
        return Err(CliError::Bench(format!(
            "a batch of {batch} records of {} bytes is {batch_bytes} bytes encoded, more than \
             the broker's batch_bytes_max ({} bytes): lower --batch",
            args.record_bytes, info.batch_bytes_max
        )));
    }
    let records: Vec<Record> = (0..batch).map(|_| record.clone()).collect();
    let requests_total = args.records.div_ceil(u64::from(batch));
    let workers = (args.window / batch).clamp(1, info.inflight_max.max(1));
    let workers = u64::from(workers).min(requests_total) as u32;

    let start_offsets = if args.acks == AcksArg::None {
        Some(stored(client, &args.topic, args.partitions).await?)
    } else {
        None
    };

    let load = Arc::new(Load {
        client: client.clone(),
        topic: args.topic.clone(),
        partitions: args.partitions,
        acks: args.acks,
        records_total: args.records,
        batch: records,
        requests_total,
        next: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let started = Instant::now();
    // On smol's executor thread, with the client's reader and writer tasks: an ack wakes its
    // slot without a hop to another thread.
    let tasks: Vec<_> = (0..workers)
        .map(|_| smol::spawn(worker(load.clone())))
        .collect();
    let mut results = Vec::with_capacity(tasks.len());
    for t in tasks {
        results.push(t.await);
    }
    let mut latencies_us = Vec::with_capacity(requests_total.min(10_000_000) as usize);
    let mut first_error = None;
    for r in results {
        match r {
            Ok(l) => latencies_us.extend(l),
            Err(e) => {
                if first_error.is_none() {
                    first_error = Some(e);
                }
            }
        }
    }
    if let Some(e) = first_error {
        return Err(CliError::client(
            format!("produce to topic {} failed during the bench", args.topic),
            e,
        ));
    }
    if let Some(before) = start_offsets {
        wait_stored(client, args, before + args.records).await?;
    }
    let elapsed = started.elapsed();
    latencies_us.sort_unstable();
    Ok(Measured {
        elapsed,
        records: args.records,
        requests: requests_total,
        requests_in_flight: workers,
        batch,
        inflight_max: info.inflight_max,
        server: info.server,
        latencies_us,
    })
}

/// One in-flight slot: takes the next request number until all are sent.
async fn worker(load: Arc<Load>) -> Result<Vec<u32>, ClientError> {
    let batch = load.batch.len() as u64;
    let mut latencies = Vec::new();
    while !load.stop.load(Ordering::Relaxed) {
        let i = load.next.fetch_add(1, Ordering::Relaxed);
        if i >= load.requests_total {
            break;
        }
        let n = (load.records_total - i * batch).min(batch) as usize;
        let partition = (i % u64::from(load.partitions)) as u32;
        let sent = Instant::now();
        let r = load
            .client
            .produce(
                &load.topic,
                Some(partition),
                load.acks.acks(),
                &load.batch[..n],
            )
            .await;
        if let Err(e) = r {
            load.stop.store(true, Ordering::Relaxed);
            return Err(e);
        }
        if load.acks != AcksArg::None {
            latencies.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
        }
    }
    Ok(latencies)
}

/// Creates the topic, or checks that an existing one has enough partitions.
async fn ensure_topic(client: &Client, topic: &str, partitions: u32) -> Result<(), CliError> {
    match client.create_topic(topic, partitions).await {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some(ErrorCode::TopicExists) => {
            let d = client
                .describe_topic(topic)
                .await
                .map_err(|e| CliError::client(format!("cannot describe topic {topic}"), e))?;
            if (d.partitions.len() as u64) < u64::from(partitions) {
                return Err(CliError::Bench(format!(
                    "topic {topic} exists with {} partitions, fewer than --partitions {partitions}",
                    d.partitions.len()
                )));
            }
            Ok(())
        }
        Err(e) => Err(CliError::client(format!("cannot create topic {topic}"), e)),
    }
}

/// Records stored in the first `partitions` partitions of `topic` (sum of `next`).
async fn stored(client: &Client, topic: &str, partitions: u32) -> Result<u64, CliError> {
    let mut sum = 0;
    for p in 0..partitions {
        let o = client
            .list_offsets(topic, p)
            .await
            .map_err(|e| CliError::client(format!("cannot list the offsets of {topic}"), e))?;
        sum += o.next;
    }
    Ok(sum)
}

/// With acks none: waits until `target` records are stored, or the count stops moving.
async fn wait_stored(client: &Client, args: &Args, target: u64) -> Result<(), CliError> {
    let mut last = 0;
    let mut moved = Instant::now();
    loop {
        let now = stored(client, &args.topic, args.partitions).await?;
        if now >= target {
            return Ok(());
        }
        if now != last {
            last = now;
            moved = Instant::now();
        } else if moved.elapsed() > ACKS_NONE_SETTLE {
            return Err(CliError::Bench(format!(
                "with acks none, {} of the {} records sent were stored (acks none is \
                 at-most-once)",
                args.records - (target - now),
                args.records
            )));
        }
        smol::Timer::after(Duration::from_millis(5)).await;
    }
}

/// The value at quantile `q` of sorted `v` (nearest rank).
fn percentile(v: &[u32], q: f64) -> Option<u32> {
    if v.is_empty() {
        return None;
    }
    let rank = (q * v.len() as f64).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}

fn report(args: &Args, addr: &str, broker: Option<&OwnedBroker>, m: &Measured) -> String {
    let secs = m.elapsed.as_secs_f64().max(1e-9);
    let batch = m.batch;
    let mut out = format!(
        "outpost bench: {} records of {} B, window {} records ({} requests of {} records in \
         flight{}), acks {}, topic {} ({} partition{})\n",
        m.records,
        args.record_bytes,
        args.window,
        m.requests_in_flight,
        batch,
        if m.requests_in_flight < args.window / batch {
            format!(", capped by the broker's inflight_max {}", m.inflight_max)
        } else {
            String::new()
        },
        args.acks.name(),
        args.topic,
        args.partitions,
        if args.partitions == 1 { "" } else { "s" },
    );
    match broker {
        Some(b) => out.push_str(&format!(
            "broker: {} at {addr}, started by the bench (pid {}, board {}, data in {})\n",
            m.server,
            b.pid,
            args.board,
            b.dir.display()
        )),
        None => out.push_str(&format!("broker: {} at {addr}\n", m.server)),
    }
    let row = |out: &mut String, name: &str, value: String| {
        out.push_str(&format!("  {name:<20} {value}\n"));
    };
    row(&mut out, "records", m.records.to_string());
    row(&mut out, "produce requests", m.requests.to_string());
    row(&mut out, "elapsed s", format!("{secs:.3}"));
    row(
        &mut out,
        "records/s",
        format!("{:.0}", m.records as f64 / secs),
    );
    row(
        &mut out,
        "MB/s",
        format!(
            "{:.1} (values; 1 MB = 10^6 B)",
            m.records as f64 * f64::from(args.record_bytes) / secs / 1e6
        ),
    );
    let us = |q: f64| match percentile(&m.latencies_us, q) {
        Some(v) => v.to_string(),
        None => "n/a (acks none)".into(),
    };
    row(&mut out, "ack p50 µs", us(0.50));
    row(&mut out, "ack p99 µs", us(0.99));
    row(&mut out, "ack p99.9 µs", us(0.999));
    row(&mut out, "ack max µs", us(1.0));
    out
}

/// The broker's peak RSS and CPU time, or why they are not known.
fn broker_lines(usage: Option<Usage>, stopped: Option<Result<String, String>>) -> String {
    let mut out = String::new();
    let row = |out: &mut String, name: &str, value: String| {
        out.push_str(&format!("  {name:<20} {value}\n"));
    };
    match usage {
        None => {
            row(
                &mut out,
                "broker peak RSS",
                "n/a (broker not started by the bench)".into(),
            );
            row(
                &mut out,
                "broker CPU s",
                "n/a (broker not started by the bench)".into(),
            );
        }
        Some(u) => {
            row(
                &mut out,
                "broker peak RSS",
                match u.peak_rss_bytes {
                    Ok(b) => format!("{:.1} MiB ({b} bytes, VmHWM)", b as f64 / 1048576.0),
                    Err(e) => format!("n/a ({e})"),
                },
            );
            row(
                &mut out,
                "broker CPU s",
                match u.cpu_seconds {
                    Ok(s) => format!("{s:.2} (user + system)"),
                    Err(e) => format!("n/a ({e})"),
                },
            );
        }
    }
    if let Some(Err(e)) = stopped {
        row(&mut out, "broker stop", format!("failed: {e}"));
    }
    out
}

fn binary_line() -> String {
    match std::env::current_exe().and_then(|p| std::fs::metadata(&p).map(|m| (p, m.len()))) {
        Ok((path, bytes)) => format!(
            "  {:<20} {:.2} MiB ({bytes} bytes, {})\n",
            "binary size",
            bytes as f64 / 1048576.0,
            path.display()
        ),
        Err(e) => format!("  {:<20} n/a ({e})\n", "binary size"),
    }
}

/// A broker the bench started: stopped (SIGTERM, then SIGKILL after a timeout) and its data
/// directory deleted when dropped.
struct OwnedBroker {
    child: Option<Child>,
    pid: u32,
    addr: String,
    dir: PathBuf,
}

/// The broker's resource use, read from /proc.
struct Usage {
    peak_rss_bytes: Result<u64, String>,
    cpu_seconds: Result<f64, String>,
}

impl OwnedBroker {
    fn start(board: &str) -> Result<OwnedBroker, CliError> {
        let exe = std::env::current_exe().map_err(|source| CliError::Io {
            what: "cannot find this executable to start a broker".into(),
            source,
        })?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir =
            std::env::temp_dir().join(format!("outpost-bench-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|source| CliError::Io {
            what: format!("cannot create the bench directory {}", dir.display()),
            source,
        })?;
        // From here on, dropping `broker` deletes the directory (and stops the child).
        let mut broker = OwnedBroker {
            child: None,
            pid: 0,
            addr: String::new(),
            dir,
        };
        let log_path = broker.log_path();
        let log = std::fs::File::create(&log_path).map_err(|source| CliError::Io {
            what: format!("cannot create {}", log_path.display()),
            source,
        })?;
        let board = board_arg(board);
        let mut child = Command::new(&exe)
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data")
            .arg(broker.dir.join("data"))
            .arg("--board")
            .arg(&board)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|source| CliError::Io {
                what: format!("cannot start {} serve", exe.display()),
                source,
            })?;
        broker.pid = child.id();
        let stdout = child.stdout.take();
        broker.child = Some(child);
        let Some(stdout) = stdout else {
            return Err(CliError::Bench("the broker's stdout is not piped".into()));
        };
        let (tx, rx) = mpsc::channel();
        // Reads every line (so the broker never blocks on a full pipe), reporting the first
        // `listening on`.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("listening on ")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addr.trim().to_string());
                }
            }
        });
        let deadline = Instant::now() + BROKER_START_TIMEOUT;
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(addr) => {
                    broker.addr = addr;
                    return Ok(broker);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // stdout closed without the line: the broker is exiting.
                    let status = match broker.wait_exit(Duration::from_secs(5)) {
                        Ok(status) => status.to_string(),
                        Err(e) => e,
                    };
                    return Err(CliError::Bench(format!(
                        "the broker the bench started ({} serve) ended without saying \
                         `listening on` ({status}); its log:\n{}",
                        exe.display(),
                        broker.log_tail()
                    )));
                }
            }
            if Instant::now() > deadline {
                return Err(CliError::Bench(format!(
                    "the broker the bench started ({} serve, pid {}) did not say `listening \
                     on` within {} s; its log:\n{}",
                    exe.display(),
                    broker.pid,
                    BROKER_START_TIMEOUT.as_secs(),
                    broker.log_tail()
                )));
            }
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("broker.log")
    }

    /// The last lines of the broker's log (its stderr), for an error message.
    fn log_tail(&self) -> String {
        match std::fs::read_to_string(self.log_path()) {
            Ok(text) => {
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
                if tail.is_empty() {
                    "(empty)".into()
                } else {
                    tail.join("\n")
                }
            }
            Err(e) => format!("(cannot read {}: {e})", self.log_path().display()),
        }
    }

    /// Reads VmHWM and utime + stime from /proc (Linux).
    fn usage(&self) -> Usage {
        let pid = self.pid;
        let peak_rss_bytes = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .map_err(|e| format!("cannot read /proc/{pid}/status: {e}"))
            .and_then(|s| parse_vm_hwm(&s).ok_or_else(|| "no VmHWM line".to_string()));
        let cpu_seconds = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_err(|e| format!("cannot read /proc/{pid}/stat: {e}"))
            .and_then(|s| parse_cpu_ticks(&s).ok_or_else(|| "cannot parse it".to_string()))
            .map(|ticks| ticks as f64 / CLOCK_TICKS_PER_SECOND);
        Usage {
            peak_rss_bytes,
            cpu_seconds,
        }
    }

    /// Stops the broker with SIGTERM (it syncs and exits 0), or SIGKILL if it does not exit
    /// in time. Returns how it ended, or what went wrong.
    fn stop(&mut self) -> Result<String, String> {
        let Some(child) = self.child.as_mut() else {
            return Ok("not running".into());
        };
        if let Ok(Some(status)) = child.try_wait() {
            self.child = None;
            return Err(format!("the broker had already exited ({status})"));
        }
        // std has no kill(2) with a signal; the `kill` utility is on every Linux.
        let term = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !term.is_ok_and(|s| s.success()) {
            let _ = child.kill();
            let _ = child.wait();
            self.child = None;
            return Err("could not send SIGTERM (`kill` failed): killed it".into());
        }
        match self.wait_exit(BROKER_STOP_TIMEOUT) {
            Ok(status) if status.success() => Ok(status.to_string()),
            Ok(status) => Err(format!("after SIGTERM: {status}")),
            Err(e) => Err(format!("after SIGTERM: {e}")),
        }
    }

    /// Waits for the child to exit (SIGKILL after `timeout`).
    fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, String> {
        let Some(child) = self.child.as_mut() else {
            return Err("not running".into());
        };
        let deadline = Instant::now() + timeout;
        let outcome = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break Err(format!(
                        "still running after {} s: killed",
                        timeout.as_secs()
                    ));
                }
                Err(e) => break Err(format!("cannot wait for it: {e}")),
            }
        };
        self.child = None;
        outcome
    }
}

impl Drop for OwnedBroker {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A relative board path would be resolved in the broker's working directory, which is ours;
/// made absolute anyway so the command line in `ps` says exactly which file.
fn board_arg(board: &str) -> String {
    let is_path = board.contains('/') || board.ends_with(".toml");
    if is_path
        && Path::new(board).is_relative()
        && let Ok(cwd) = std::env::current_dir()
    {
        return cwd.join(board).display().to_string();
    }
    board.to_string()
}

/// `VmHWM:   12345 kB` → bytes.
fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let mut parts = line["VmHWM:".len()..].split_whitespace();
    let n: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") => Some(n * 1024),
        _ => None,
    }
}

/// utime + stime (fields 14 and 15 of /proc/<pid>/stat), in clock ticks. The command name
/// (field 2) is in parentheses and may contain spaces, so fields are counted after the last
/// ')'.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): field k is fields[k - 3].
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let v: Vec<u32> = (1..=1000).collect();
        assert_eq!(percentile(&v, 0.5), Some(500));
        assert_eq!(percentile(&v, 0.99), Some(990));
        assert_eq!(percentile(&v, 0.999), Some(999));
        assert_eq!(percentile(&v, 1.0), Some(1000));
        assert_eq!(percentile(&[7], 0.999), Some(7));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn proc_parsing() {
        let status =
            "Name:\toutpost\nVmPeak:\t  20000 kB\nVmHWM:\t    12288 kB\nVmRSS:\t 9000 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(12288 * 1024));
        assert_eq!(parse_vm_hwm("Name: x\n"), None);
        let stat = "4242 (out post) S 1 4242 4242 0 -1 4194560 900 0 0 0 123 45 0 0 20 0 3 0 \
                    100 2000000 3000 18446744073709551615";
        assert_eq!(parse_cpu_ticks(stat), Some(168));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn board_paths_become_absolute() {
        assert_eq!(board_arg("x86_64-dev"), "x86_64-dev");
        assert_eq!(board_arg("/b/x.toml"), "/b/x.toml");
        assert!(Path::new(&board_arg("b/x.toml")).is_absolute());
    }
}

#[cfg(test)]
mod parse_tests {
    use super::*;
    use crate::cli::{Command, parse};

    fn bench(args: &[&str]) -> Result<Args, clap::Error> {
        let mut all = vec!["bench"];
        all.extend_from_slice(args);
        match parse(&all)? {
            Command::Bench(a) => Ok(a),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_are_the_issues_bench() {
        let a = bench(&[]).unwrap();
        assert_eq!(a.addr, None);
        assert_eq!(
            (a.records, a.record_bytes, a.window),
            (1_000_000, 100, 1000)
        );
        assert_eq!(a.batch, None);
        assert_eq!(a.acks, AcksArg::Durable);
        assert_eq!((a.topic.as_str(), a.partitions), ("bench", 1));
        assert_eq!(a.board, "x86_64-dev");
        let a = bench(&[
            "--addr",
            "h:1",
            "--records",
            "2000",
            "--record-bytes",
            "1024",
            "--window",
            "10",
            "--batch",
            "1",
            "--acks",
            "written",
            "--topic",
            "b2",
            "--partitions",
            "4",
        ])
        .unwrap();
        assert_eq!(a.addr.as_deref(), Some("h:1"));
        assert_eq!((a.records, a.record_bytes, a.window), (2000, 1024, 10));
        assert_eq!(a.batch, Some(1));
        assert_eq!(
            (a.acks, a.topic.as_str(), a.partitions),
            (AcksArg::Written, "b2", 4)
        );
        assert!(bench(&["--window", "0"]).is_err());
        assert!(bench(&["--records", "0"]).is_err());
        assert!(bench(&["--partitions", "0"]).is_err());
    }
}
