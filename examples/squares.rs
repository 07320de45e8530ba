//! `squares`: a consume–process–produce worker on the public client library, and a worked
//! example of the three delivery semantics (`outpost::client::GroupConsumer`,
//! docs/SEMANTICS.md).
//!
//! It reads decimal integers (UTF-8 record values) from the topic `--input`, and for each
//! number `n` writes the record `n:n²` to the topic `--output`, to the same partition number
//! as the input record (so `--output` needs at least as many partitions as `--input`). The
//! input key and timestamp are kept. A value that is not an integer (`i64`) is reported on
//! stderr and skipped (its offset is still committed: it was processed).
//!
//! ```text
//! cargo run --example squares -- --addr 127.0.0.1:7478 --group squares \
//!     --semantics exactly-once --input in --output out --until 4000
//! ```
//!
//! Options:
//! - `--addr HOST:PORT` (default `$OUTPOST_ADDR`, else 127.0.0.1:7478), `--group G` (the
//!   consumer group whose committed offsets say where the worker is), `--input T`,
//!   `--output T`;
//! - `--semantics at-most-once|at-least-once|exactly-once` (default at-least-once);
//! - `--producer-name N`: exactly-once only, the idempotent producer's name (default
//!   `squares-<group>`). Keep it the same across restarts: a restarted worker fences the one
//!   before it, so a worker that was thought dead cannot write afterwards;
//! - `--batch N`: about N input records per poll (default 500; the consumer asks each
//!   partition for `N / partitions` small records' worth of bytes);
//! - `--until N`: exit 0 once the committed input offsets add up to N or more (on topics
//!   that start at offset 0: once N input records were processed and committed). Without
//!   it the worker runs until it is killed;
//! - `--wait-ms MS`: how long one poll waits for records (default 500);
//! - `--reconnect-ms MS`: how long it keeps trying to reconnect after losing the broker
//!   (default 10000), before it gives up and exits 1.
//!
//! Output: one line on stdout once it is consuming (`squares: started ...`), one when it is
//! done (`squares: done ...`). Errors: `squares: ` and the whole cause chain on stderr, exit
//! 1; a usage error exits 2.
//!
//! # The three semantics, as this loop uses them
//!
//! Every round is `poll` → compute → write outputs → commit the input positions; what moves
//! is *where the commit happens*, and so what a crash at any instant does:
//!
//! | semantics | the round | a crash (kill -9, power cut) between two steps |
//! |---|---|---|
//! | at-most-once | `poll` commits the positions *before* it returns the records; then `produce` | after the commit, before the outputs are durable: those inputs are **lost** (never repeated) |
//! | at-least-once | `poll`; `produce`; then `commit` | after the outputs, before the commit: the restarted worker polls those inputs again and writes their outputs a **second time** (never lost) |
//! | exactly-once | `poll`; then `commit_with_outputs`: the outputs *and* the positions in ONE atomic write | nothing in between: the write is stored whole or not at all, so each input has **exactly one** output |
//!
//! # Losing the broker (connection errors)
//!
//! The worker reconnects (for up to `--reconnect-ms`) and goes on with the same consumer,
//! whose positions are those it polled up to:
//!
//! - exactly-once: it sends **the same atomic write again** (same outputs, same positions)
//!   before anything else. The idempotent producer numbered it; the broker either stores it
//!   (the first attempt never became durable) or answers `duplicate` with the original
//!   offsets. Never twice, never lost;
//! - at-least-once: it sends the outputs not acknowledged yet again, then commits. An output
//!   whose answer was lost may be stored twice: that is at-least-once;
//! - at-most-once: it does **not** send the outputs again (a retry of a plain produce could
//!   store them twice): they are lost, and counted.
//!
//! Any other error (a refusal, e.g. `PRODUCER_FENCED` because another worker with the same
//! producer name started) ends the worker with exit 1.

use std::collections::BTreeMap;
use std::error::Error;
use std::fmt;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use outpost::client::{
    Client, ClientError, Consumed, ConsumerConfig, DEFAULT_ADDR, GroupConsumer, Membership,
    ResetPolicy, Semantics,
};
use outpost::protocol::ErrorCode;
use outpost::storage::{Acks, Record};

const USAGE: &str = "\
usage: squares --group G --input T --output T [--addr HOST:PORT]
               [--semantics at-most-once|at-least-once|exactly-once] [--producer-name N]
               [--batch N] [--until N] [--wait-ms MS] [--reconnect-ms MS]";

/// The stored size of a small number record (no key, no header, a 10-digit value): what
/// `--batch` records are converted to bytes with.
const SMALL_RECORD_BYTES: u32 = 32;
/// Reconnections in a row for one step before the worker gives up (a broker that accepts
/// connections but fails every attempt at the step). The n-th waits n × `RECONNECT_PAUSE`
/// first (capped at 1 s), so giving up takes about 10 s, not the few milliseconds a flapping
/// link needs to fail twenty quick attempts.
const RETRIES_MAX: u32 = 20;
/// The longest pause before a reconnection.
const RETRY_PAUSE_MAX: Duration = Duration::from_secs(1);
/// Pause between two connection attempts.
const RECONNECT_PAUSE: Duration = Duration::from_millis(50);

/// The command line.
struct Args {
    addr: String,
    group: String,
    semantics: Semantics,
    input: String,
    output: String,
    producer_name: Option<String>,
    batch: u32,
    until: Option<u64>,
    wait_ms: u32,
    reconnect_ms: u64,
}

/// The arguments, or `None` for `--help`.
fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut addr = std::env::var("OUTPOST_ADDR")
        .ok()
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| DEFAULT_ADDR.to_string());
    let (mut group, mut input, mut output, mut producer_name) = (None, None, None, None);
    let mut semantics = Semantics::default();
    let (mut batch, mut until, mut wait_ms, mut reconnect_ms) = (500u32, None, 500u32, 10_000u64);
    while let Some(flag) = argv.next() {
        let mut value = || argv.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => addr = value()?,
            "--group" => group = Some(value()?),
            "--input" => input = Some(value()?),
            "--output" => output = Some(value()?),
            "--producer-name" => producer_name = Some(value()?),
            "--semantics" => {
                semantics = value()?
                    .parse()
                    .map_err(|e: String| format!("--semantics: {e}"))?;
            }
            "--batch" => batch = number(&flag, value()?)?,
            "--until" => until = Some(number(&flag, value()?)?),
            "--wait-ms" => wait_ms = number(&flag, value()?)?,
            "--reconnect-ms" => reconnect_ms = number(&flag, value()?)?,
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let need = |v: Option<String>, flag: &str| v.ok_or_else(|| format!("{flag} is required"));
    let group = need(group, "--group")?;
    if batch == 0 {
        return Err("--batch must be at least 1".into());
    }
    Ok(Some(Args {
        producer_name: match semantics {
            Semantics::ExactlyOnce => Some(producer_name.unwrap_or(format!("squares-{group}"))),
            _ => None,
        },
        addr,
        input: need(input, "--input")?,
        output: need(output, "--output")?,
        group,
        semantics,
        batch,
        until,
        wait_ms,
        reconnect_ms,
    }))
}

fn number<T: std::str::FromStr>(flag: &str, v: String) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("{flag}: {v:?} is not a number"))
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("squares: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match smol::block_on(Worker::run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The whole chain: what failed, then each cause.
            let mut line = format!("squares: {e}");
            let mut cause = e.source();
            while let Some(c) = cause {
                line.push_str(&format!(": {c}"));
                cause = c.source();
            }
            eprintln!("{line}");
            ExitCode::FAILURE
        }
    }
}

/// What the worker was doing when it failed, and the client error that made it fail (none
/// for a check of the worker's own).
#[derive(Debug)]
struct Failed {
    doing: String,
    source: Option<ClientError>,
}

impl Failed {
    /// See [`lost_connection`].
    fn lost_connection(&self) -> bool {
        self.source.as_ref().is_some_and(lost_connection)
    }
}

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.doing)
    }
}

impl Error for Failed {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_ref().map(|e| e as &(dyn Error + 'static))
    }
}

/// `.doing("...")` on a client result: the error says what failed.
trait Doing<T> {
    fn doing(self, what: impl fmt::Display) -> Result<T, Failed>;
}

impl<T> Doing<T> for Result<T, ClientError> {
    fn doing(self, what: impl fmt::Display) -> Result<T, Failed> {
        self.map_err(|source| Failed {
            doing: what.to_string(),
            source: Some(source),
        })
    }
}

/// Whether the error means "the broker went away" (crash, restart, network), so that the
/// step is worth trying again on a new connection. A refusal (`Server`) is an answer, not a
/// lost connection: it is final, except SHUTTING_DOWN (a broker stopping cleanly).
fn lost_connection(e: &ClientError) -> bool {
    match e {
        ClientError::Connect { .. } | ClientError::Io(_) | ClientError::Closed => true,
        ClientError::Server { code, .. } | ClientError::Goodbye { code, .. } => {
            *code == ErrorCode::ShuttingDown
        }
        _ => false,
    }
}

/// The client error under `e`, for a log line.
fn cause(e: &Failed) -> String {
    e.source
        .as_ref()
        .map_or_else(String::new, ToString::to_string)
}

/// Counters of one run, printed at the end.
#[derive(Default)]
struct Stats {
    /// Polls that returned records.
    rounds: u64,
    inputs: u64,
    outputs: u64,
    skipped: u64,
    reconnects: u64,
    /// Exactly-once: atomic writes the broker answered as a retry of a stored one.
    duplicates_answered: u64,
    /// At-most-once: outputs not written because the connection was lost.
    lost: u64,
}

struct Worker<'a> {
    args: &'a Args,
    client: Client,
    consumer: GroupConsumer,
    stats: Stats,
}

impl<'a> Worker<'a> {
    async fn run(args: &'a Args) -> Result<(), Failed> {
        let mut w = Worker::start(args).await?;
        println!(
            "squares: started: {} group {:?}, {} -> {}, positions {}",
            args.semantics,
            args.group,
            args.input,
            args.output,
            w.positions_text()
        );
        // A test (or a supervisor) waits for this line: flush it now.
        let _ = std::io::stdout().flush();
        while !w.done() {
            w.round().await?;
        }
        let s = &w.stats;
        println!(
            "squares: done: {} input records committed; this run: {} rounds, {} inputs, {} \
             outputs, {} skipped, {} reconnects, {} retried writes answered as duplicates, {} \
             outputs lost",
            w.committed(),
            s.rounds,
            s.inputs,
            s.outputs,
            s.skipped,
            s.reconnects,
            s.duplicates_answered,
            s.lost
        );
        w.client.close().await;
        Ok(())
    }

    /// Connects and starts the consumer, trying again for up to `--reconnect-ms` while the
    /// broker is unreachable.
    async fn start(args: &'a Args) -> Result<Worker<'a>, Failed> {
        let deadline = Instant::now() + Duration::from_millis(args.reconnect_ms);
        loop {
            match Worker::try_start(args).await {
                Ok(w) => return Ok(w),
                Err(e) if e.lost_connection() && Instant::now() < deadline => {
                    smol::Timer::after(RECONNECT_PAUSE).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn try_start(args: &'a Args) -> Result<Worker<'a>, Failed> {
        let client = Client::connect(&args.addr)
            .await
            .doing(format_args!("connecting to {}", args.addr))?;
        let input = client
            .describe_topic(&args.input)
            .await
            .doing(format_args!("describing the input topic {:?}", args.input))?;
        let output = client
            .describe_topic(&args.output)
            .await
            .doing(format_args!(
                "describing the output topic {:?}",
                args.output
            ))?;
        if output.partitions.len() < input.partitions.len() {
            return Err(Failed {
                doing: format!(
                    "the output topic {:?} has {} partitions, fewer than the input's {} (each \
                     output goes to its input record's partition number)",
                    args.output,
                    output.partitions.len(),
                    input.partitions.len()
                ),
                source: None,
            });
        }
        // Standalone consumer of every input partition (no group membership: no rebalance,
        // a restart is a reconnect and a FETCH_OFFSETS).
        let partitions: Vec<(String, u32)> = input
            .partitions
            .iter()
            .map(|p| (args.input.clone(), p.partition))
            .collect();
        let parts = partitions.len().max(1) as u32;
        let mut fetch_bytes_max = (args.batch.saturating_mul(SMALL_RECORD_BYTES) / parts).max(1);
        if args.semantics == Semantics::ExactlyOnce {
            // One poll's outputs go into ONE atomic write, which must fit the broker's
            // batch_bytes_max; an output record is at most about twice its input's size.
            let fit = client.server_info().batch_bytes_max / (3 * parts);
            fetch_bytes_max = fetch_bytes_max.min(fit.max(1));
        }
        let cfg = ConsumerConfig {
            group: args.group.clone(),
            membership: Membership::Assign(partitions),
            semantics: args.semantics,
            // A group with nothing committed starts at the oldest record.
            reset: ResetPolicy::Earliest,
            // Exactly-once: initialising the producer fences the previous worker of this
            // name BEFORE the consumer reads the committed positions. So no write of the old
            // worker can land after the positions were read (it would be PRODUCER_FENCED),
            // and one still in flight is waited for by FETCH_OFFSETS.
            producer_name: args.producer_name.clone(),
            fetch_bytes_max,
        };
        let consumer = GroupConsumer::start(&client, cfg)
            .await
            .doing(format_args!(
                "starting the consumer of group {:?}",
                args.group
            ))?;
        Ok(Worker {
            args,
            client,
            consumer,
            stats: Stats::default(),
        })
    }

    /// The committed input positions, added up (the consumer's positions are the committed
    /// ones between rounds).
    fn committed(&self) -> u64 {
        self.consumer.positions().values().sum()
    }

    fn done(&self) -> bool {
        self.args.until.is_some_and(|n| self.committed() >= n)
    }

    fn positions_text(&self) -> String {
        let p: Vec<String> = self
            .consumer
            .positions()
            .iter()
            .map(|((t, p), o)| format!("{t}/{p}@{o}"))
            .collect();
        p.join(" ")
    }

    /// Replaces the lost connection (see [`reconnect`]).
    async fn reconnect(&mut self, retries: &mut u32, e: Failed) -> Result<(), Failed> {
        if *retries >= RETRIES_MAX {
            return Err(e);
        }
        if *retries > 0 {
            smol::Timer::after((RECONNECT_PAUSE * *retries).min(RETRY_PAUSE_MAX)).await;
        }
        *retries += 1;
        eprintln!("squares: {e}: {}; reconnecting", cause(&e));
        self.client = reconnect(self.args).await?;
        self.stats.reconnects += 1;
        Ok(())
    }

    /// One round: poll, compute, write, commit — the order the semantics ask for.
    async fn round(&mut self) -> Result<(), Failed> {
        // 1. Poll. At most once, this also commits the new positions, before returning.
        let mut retries = 0;
        let polled = loop {
            match self
                .consumer
                .poll(&self.client, self.args.wait_ms)
                .await
                .doing("polling")
            {
                Ok(p) => break p,
                // The positions did not move: the next poll returns the same records.
                Err(e) if e.lost_connection() => self.reconnect(&mut retries, e).await?,
                Err(e) => return Err(e),
            }
        };
        if polled.is_empty() {
            return Ok(());
        }
        self.stats.rounds += 1;
        // 2. Compute: the outputs of each partition, in input order.
        let outputs = self.squares(&polled);
        // 3. Write the outputs and commit, per the semantics.
        match self.args.semantics {
            Semantics::AtMostOnce => self.write_at_most_once(outputs).await,
            Semantics::AtLeastOnce => self.write_then_commit(outputs).await,
            Semantics::ExactlyOnce => self.write_and_commit_atomically(outputs).await,
        }
    }

    /// `n:n²` for every integer input; per output partition, in input order.
    fn squares(&mut self, polled: &[Consumed]) -> Vec<(String, u32, Vec<Record>)> {
        let mut by_partition: BTreeMap<u32, Vec<Record>> = BTreeMap::new();
        for c in polled {
            self.stats.inputs += 1;
            let n = std::str::from_utf8(&c.record.value)
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok());
            let Some(n) = n else {
                self.stats.skipped += 1;
                eprintln!(
                    "squares: {}/{} offset {}: value {:?} is not an integer; skipped",
                    c.topic,
                    c.partition,
                    c.offset,
                    String::from_utf8_lossy(&c.record.value)
                );
                continue;
            };
            let square = i128::from(n) * i128::from(n);
            by_partition.entry(c.partition).or_default().push(Record {
                timestamp_ms: c.record.timestamp_ms,
                key: c.record.key.clone(),
                value: format!("{n}:{square}").into_bytes(),
                headers: Vec::new(),
            });
        }
        by_partition
            .into_iter()
            .map(|(p, records)| (self.args.output.clone(), p, records))
            .collect()
    }

    /// At most once: `poll` already committed. A crash from here until the outputs are
    /// durable loses them; and a lost connection is not retried (a plain produce sent twice
    /// may be stored twice).
    async fn write_at_most_once(
        &mut self,
        outputs: Vec<(String, u32, Vec<Record>)>,
    ) -> Result<(), Failed> {
        for (topic, partition, records) in &outputs {
            match self
                .client
                .produce(topic, Some(*partition), Acks::Durable, records)
                .await
                .doing(format_args!("writing outputs to {topic}/{partition}"))
            {
                Ok(_) => self.stats.outputs += records.len() as u64,
                Err(e) if e.lost_connection() => {
                    self.stats.lost += records.len() as u64;
                    eprintln!(
                        "squares: {e}: {}; at most once: {} outputs are not sent again",
                        cause(&e),
                        records.len()
                    );
                    self.client = reconnect(self.args).await?;
                    self.stats.reconnects += 1;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// At least once: the outputs (each acknowledged durable), THEN the commit. A crash in
    /// between repeats the inputs; never loses them.
    async fn write_then_commit(
        &mut self,
        outputs: Vec<(String, u32, Vec<Record>)>,
    ) -> Result<(), Failed> {
        let mut written = vec![false; outputs.len()];
        let mut retries = 0;
        loop {
            let step = async {
                for (i, (topic, partition, records)) in outputs.iter().enumerate() {
                    if written[i] {
                        continue;
                    }
                    self.client
                        .produce(topic, Some(*partition), Acks::Durable, records)
                        .await
                        .doing(format_args!("writing outputs to {topic}/{partition}"))?;
                    written[i] = true;
                    self.stats.outputs += records.len() as u64;
                }
                self.consumer
                    .commit(&self.client)
                    .await
                    .doing("committing the input positions")
            };
            match step.await {
                Ok(()) => return Ok(()),
                Err(e) if e.lost_connection() => self.reconnect(&mut retries, e).await?,
                Err(e) => return Err(e),
            }
        }
    }

    /// Exactly once: the outputs and the new input positions in ONE atomic write. After a
    /// lost connection, the SAME write again (the retry rule of `IdempotentProducer`).
    async fn write_and_commit_atomically(
        &mut self,
        outputs: Vec<(String, u32, Vec<Record>)>,
    ) -> Result<(), Failed> {
        let count: u64 = outputs.iter().map(|o| o.2.len() as u64).sum();
        let mut retries = 0;
        loop {
            match self
                .consumer
                .commit_with_outputs(&self.client, outputs.clone())
                .await
                .doing("writing outputs and input positions atomically")
            {
                Ok(w) => {
                    if w.duplicate {
                        // The earlier attempt had landed: its offsets came back, nothing new
                        // was stored.
                        self.stats.duplicates_answered += 1;
                        eprintln!(
                            "squares: the resent atomic write had been stored already: \
                             answered as a duplicate, nothing stored twice"
                        );
                    }
                    self.stats.outputs += count;
                    return Ok(());
                }
                Err(e) if e.lost_connection() => self.reconnect(&mut retries, e).await?,
                Err(e) => return Err(e),
            }
        }
    }
}

/// A new connection to `--addr`, trying every 50 ms for up to `--reconnect-ms`.
async fn reconnect(args: &Args) -> Result<Client, Failed> {
    let deadline = Instant::now() + Duration::from_millis(args.reconnect_ms);
    loop {
        match Client::connect(&args.addr).await {
            Ok(c) => return Ok(c),
            Err(_) if Instant::now() < deadline => {
                smol::Timer::after(RECONNECT_PAUSE).await;
            }
            Err(e) => {
                return Err(Failed {
                    doing: format!(
                        "reconnecting to {} (gave up after {} ms)",
                        args.addr, args.reconnect_ms
                    ),
                    source: Some(e),
                });
            }
        }
    }
}
