//! `outpost produce`: appends `--value`, or every line of stdin, to a topic and prints where
//! each batch landed.
//!
//! Lines are sent as soon as they arrive: each batch takes the lines read while the previous
//! one was in flight (at most `--batch` lines and half the broker's `batch_bytes_max`).
//! Answers are printed in input order.
//!
//! With `--producer-name` the batches go out as PRODUCE_IDEMPOTENT of an
//! [`IdempotentProducer`]: each carries its sequence number, so when the connection breaks
//! (the broker restarts, the network drops) the batch whose answer was lost is sent again,
//! unchanged, on a new connection, and the broker stores it once.

use std::collections::VecDeque;
use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args as ClapArgs;
use smol::channel::{self, Receiver};

use super::common::{self, AcksArg, AddrArgs};
use super::{CliError, EXIT_OK, render_error};
use crate::client::{Client, ClientError, IdempotentProduced, IdempotentProducer, Produced};
use crate::protocol::ErrorCode;
use crate::protocol::murmur2::partition_for_key;
use crate::storage::Record;
use crate::storage::format::BATCH_HEADER_BYTES;

/// Batches sent and not yet answered, at most. One, so that lines keep their order: the
/// broker works on pipelined PRODUCE requests concurrently and appends two to the same
/// partition in the order it finishes them, not the order it received them. (The loop below
/// handles any depth. The broker does keep a connection's order for PRODUCE_IDEMPOTENT, but
/// `--producer-name` sends one batch at a time too: `IdempotentProducer::send` waits for its
/// answer before the next batch gets a sequence number.)
pub const BATCHES_IN_FLIGHT: usize = 1;
/// Lines read ahead of the batches being sent.
const LINES_QUEUED_MAX: usize = 8192;
/// `--producer-name`: how long a batch is resent on new connections after the connection
/// broke, before the command gives up.
const RESEND_FOR: Duration = Duration::from_secs(30);
/// The first pause before reconnecting; it doubles up to [`RESEND_PAUSE_MAX`].
const RESEND_PAUSE_MIN: Duration = Duration::from_millis(100);
const RESEND_PAUSE_MAX: Duration = Duration::from_secs(2);

#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(flatten)]
    addr: AddrArgs,
    /// Topic to append to
    #[arg(long, value_name = "TOPIC")]
    topic: String,
    /// Partition to append to. Default: the partition of --key (Kafka's murmur2 partitioner),
    /// or round-robin per batch without a key
    #[arg(long, value_name = "P")]
    partition: Option<u32>,
    /// Key of every record (UTF-8 text)
    #[arg(long, value_name = "KEY")]
    key: Option<String>,
    /// Header added to every record; repeat for more
    #[arg(long = "header", value_name = "NAME=VALUE", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// When the broker acknowledges: none (fire and forget, nothing printed), written (handed
    /// to the OS) or durable (synced: survives power loss)
    #[arg(long, value_enum, default_value_t = AcksArg::Durable)]
    acks: AcksArg,
    /// Produce idempotently as this producer (1-249 bytes): every batch carries its sequence
    /// number, so a batch resent after a broken connection (for up to 30 s, on a new one) is
    /// stored once. Always durable (no --acks). Another producer initialising the same name
    /// fences this one
    #[arg(long, value_name = "NAME", conflicts_with = "acks")]
    producer_name: Option<String>,
    /// Send one record with this value instead of reading stdin
    #[arg(long, value_name = "VALUE")]
    value: Option<String>,
    /// Most lines per batch (a batch also stays under half the broker's batch_bytes_max)
    #[arg(long, value_name = "N", default_value_t = 500,
          value_parser = clap::value_parser!(u32).range(1..))]
    batch: u32,
}

/// Parses `NAME=VALUE` (the value may contain '='; the name may not be empty).
fn parse_header(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err(format!("expected NAME=VALUE, got {s:?}")),
    }
}

pub fn run(args: Args) -> Result<i32, CliError> {
    smol::block_on(async {
        let client = args.addr.connect().await?;
        match &args.producer_name {
            Some(name) => produce_idempotent(&args, name, client).await,
            None => {
                let client = Arc::new(client);
                let result = produce(&args, &client).await;
                client.close().await;
                result
            }
        }
    })
}

/// The record every value is sent in: `--key` and `--header`s, no timestamp yet.
fn template(args: &Args) -> Record {
    Record {
        timestamp_ms: 0,
        key: args.key.as_ref().map(|k| k.as_bytes().to_vec()),
        value: Vec::new(),
        headers: args
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), v.as_bytes().to_vec()))
            .collect(),
    }
}

/// Where the batches come from: `--value` (one batch of one record), or stdin's lines.
fn batches(args: &Args, client: &Client) -> Batcher {
    let template = template(args);
    match &args.value {
        Some(value) => Batcher::one(template, value.as_bytes().to_vec()),
        // Half the broker's batch limit, so a batch is never refused for its size unless one
        // line alone is too big.
        None => Batcher::lines(
            template,
            args.batch as usize,
            u64::from(client.server_info().batch_bytes_max / 2),
        ),
    }
}

async fn produce(args: &Args, client: &Arc<Client>) -> Result<i32, CliError> {
    let mut out = Output::new(args.acks);
    let mut batcher = batches(args, client);
    let mut inflight: VecDeque<(Sending, usize)> = VecDeque::new();
    loop {
        let must_wait = inflight.len() >= BATCHES_IN_FLIGHT
            || ((batcher.ended() || out.failed() || batcher.idle()) && !inflight.is_empty());
        if must_wait {
            if let Some((task, n)) = inflight.pop_front() {
                out.answer(n, task.await, &args.topic)?;
            }
            continue;
        }
        if batcher.ended() || out.failed() {
            break;
        }
        let Some(batch) = batcher.next().await else {
            continue;
        };
        let n = batch.len();
        let client = client.clone();
        let topic = args.topic.clone();
        let (partition, acks) = (args.partition, args.acks.acks());
        let task =
            smol::spawn(async move { client.produce(&topic, partition, acks, &batch).await });
        inflight.push_back((task, n));
    }
    if let Some(e) = batcher.error.take() {
        out.finish()?;
        return Err(e);
    }
    out.finish()
}

/// `--producer-name`: one batch at a time through an [`IdempotentProducer`], each resent on a
/// new connection while the connection is broken (see [`send_resending`]). The partition is
/// chosen here, as PRODUCE_IDEMPOTENT names it: `--partition`, else the key's (Kafka's murmur2
/// partitioner, as the broker's), else round-robin per batch.
async fn produce_idempotent(args: &Args, name: &str, client: Client) -> Result<i32, CliError> {
    let mut client = client;
    let result = produce_idempotent_on(args, name, &mut client).await;
    client.close().await;
    result
}

async fn produce_idempotent_on(
    args: &Args,
    name: &str,
    client: &mut Client,
) -> Result<i32, CliError> {
    let what = || format!("cannot produce to topic {}", args.topic);
    let partitions = client
        .describe_topic(&args.topic)
        .await
        .map_err(|e| CliError::client(what(), e))?
        .partitions
        .len();
    let partitions = u32::try_from(partitions).unwrap_or(u32::MAX).max(1);
    let mut producer = IdempotentProducer::init(client, name)
        .await
        .map_err(|e| CliError::client(format!("cannot initialise producer {name}"), e))?;
    let mut out = Output::new(AcksArg::Durable);
    let mut batcher = batches(args, client);
    let mut round_robin = 0u32;
    while !out.failed() {
        let Some(batch) = batcher.next().await else {
            break;
        };
        let partition = match (args.partition, &args.key) {
            (Some(p), _) => p,
            (None, Some(key)) => partition_for_key(key.as_bytes(), partitions),
            (None, None) => {
                let p = round_robin % partitions;
                round_robin = round_robin.wrapping_add(1);
                p
            }
        };
        let r = send_resending(
            client,
            &args.addr,
            &mut producer,
            &args.topic,
            partition,
            &batch,
        )
        .await;
        out.answer_idempotent(batch.len(), r, &args.topic)?;
    }
    if let Some(e) = batcher.error.take() {
        out.finish()?;
        return Err(e);
    }
    out.finish()
}

/// Sends `batch` as the producer's next batch of `partition`. When the connection breaks (or
/// the broker is shutting down) it is unknown whether the batch was stored: it is sent again,
/// unchanged, on a new connection, until it is answered or [`RESEND_FOR`] passed. The broker
/// stores it once either way: a resent batch it stored already is answered with its first
/// offsets, as a duplicate. A refusal (a bad record, a fenced producer, ...) is returned as is.
async fn send_resending(
    client: &mut Client,
    addr: &AddrArgs,
    producer: &mut IdempotentProducer,
    topic: &str,
    partition: u32,
    batch: &[Record],
) -> Result<IdempotentProduced, ClientError> {
    let deadline = Instant::now() + RESEND_FOR;
    let mut pause = RESEND_PAUSE_MIN;
    loop {
        let mut error = match producer.send(client, topic, partition, batch).await {
            Ok(r) => return Ok(r),
            Err(e) if !resend_after(&e) => return Err(e),
            Err(e) => e,
        };
        loop {
            if Instant::now() + pause > deadline {
                return Err(error);
            }
            eprintln!(
                "outpost: {}: sending the batch again in {} ms, on a new connection",
                render_error(&error),
                pause.as_millis()
            );
            smol::Timer::after(pause).await;
            pause = (pause * 2).min(RESEND_PAUSE_MAX);
            match Client::connect(addr.resolve()).await {
                Ok(fresh) => {
                    std::mem::replace(client, fresh).close().await;
                    break;
                }
                Err(e) => error = e,
            }
        }
    }
}

/// Whether an idempotent batch that failed so is sent again: the connection is gone (the
/// answer may have been lost), or the broker is stopping (a restarted one will take it).
fn resend_after(e: &ClientError) -> bool {
    !e.connection_usable() || e.code() == Some(ErrorCode::ShuttingDown)
}

/// Batches of records to send: the one `--value` record, or stdin's lines as they arrive.
struct Batcher {
    lines: Receiver<std::io::Result<Vec<u8>>>,
    /// A line read that did not fit in the previous batch.
    carry: Option<Vec<u8>>,
    template: Record,
    batch_max: usize,
    bytes_budget: u64,
    eof: bool,
    /// Reading stdin failed: no more batches.
    error: Option<CliError>,
}

impl Batcher {
    /// Stdin's lines, at most `batch_max` per batch and within `bytes_budget` (a batch's
    /// first line is taken whatever its size).
    fn lines(template: Record, batch_max: usize, bytes_budget: u64) -> Batcher {
        Batcher {
            lines: read_lines(),
            carry: None,
            template,
            batch_max,
            bytes_budget,
            eof: false,
            error: None,
        }
    }

    /// One batch of one record with this value.
    fn one(template: Record, value: Vec<u8>) -> Batcher {
        // No line will come: the channel is closed, the value waits as if carried over.
        let (_, lines) = channel::bounded(1);
        Batcher {
            lines,
            carry: Some(value),
            template,
            batch_max: 1,
            bytes_budget: u64::MAX,
            eof: false,
            error: None,
        }
    }

    /// No more batches: the input ended or failed.
    fn ended(&self) -> bool {
        self.eof || self.error.is_some()
    }

    /// No line is waiting: [`Batcher::next`] would wait for input.
    fn idle(&self) -> bool {
        self.carry.is_none() && self.lines.is_empty()
    }

    /// The next batch: waits for its first line, then takes the lines read meanwhile. `None`
    /// at the end of the input, or when reading it failed (`error`); a batch is still
    /// returned when the failure came after its first line.
    async fn next(&mut self) -> Option<Vec<Record>> {
        if self.ended() {
            return None;
        }
        let first = match self.carry.take() {
            Some(line) => line,
            None => match self.lines.recv().await {
                Ok(Ok(line)) => line,
                Ok(Err(e)) => {
                    self.failed(e);
                    return None;
                }
                Err(_) => {
                    self.eof = true;
                    return None;
                }
            },
        };
        let now = common::now_ms();
        let record = |value: Vec<u8>| Record {
            timestamp_ms: now,
            value,
            ..self.template.clone()
        };
        let mut batch = vec![record(first)];
        let mut bytes = BATCH_HEADER_BYTES as u64 + batch[0].encoded_bytes();
        while batch.len() < self.batch_max {
            match self.lines.try_recv() {
                Ok(Ok(line)) => {
                    let r = record(line);
                    if bytes + r.encoded_bytes() > self.bytes_budget {
                        self.carry = Some(r.value);
                        break;
                    }
                    bytes += r.encoded_bytes();
                    batch.push(r);
                }
                Ok(Err(e)) => {
                    self.failed(e);
                    break;
                }
                Err(_) => break,
            }
        }
        Some(batch)
    }

    fn failed(&mut self, e: std::io::Error) {
        self.error = Some(CliError::Io {
            what: "cannot read stdin".into(),
            source: e,
        });
    }
}

/// A batch on its way: the answer, once it comes.
type Sending = smol::Task<Result<Option<Produced>, ClientError>>;

/// Reads stdin on a thread, one message per line (bytes, without the `\n` or `\r\n`).
fn read_lines() -> Receiver<std::io::Result<Vec<u8>>> {
    let (tx, rx) = channel::bounded(LINES_QUEUED_MAX);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut stdin = stdin.lock();
        loop {
            let mut line = Vec::new();
            match stdin.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(_) => {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                        if line.last() == Some(&b'\r') {
                            line.pop();
                        }
                    }
                    if tx.send_blocking(Ok(line)).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.send_blocking(Err(e));
                    break;
                }
            }
        }
    });
    rx
}

/// Prints the answers in order and keeps the first failure.
struct Output {
    acks: AcksArg,
    stdout: std::io::Stdout,
    sent: u64,
    error: Option<CliError>,
    closed: bool,
}

impl Output {
    fn new(acks: AcksArg) -> Output {
        Output {
            acks,
            stdout: std::io::stdout(),
            sent: 0,
            error: None,
            closed: false,
        }
    }

    fn failed(&self) -> bool {
        self.error.is_some()
    }

    /// Prints one batch's answer. Only a failed write to stdout is returned at once; a
    /// refused batch is kept and returned by `finish`, after every batch in flight.
    fn answer(
        &mut self,
        n: usize,
        r: Result<Option<Produced>, ClientError>,
        topic: &str,
    ) -> Result<(), CliError> {
        match r {
            Ok(Some(p)) => self.landed(&p, "")?,
            Ok(None) => self.sent += n as u64,
            Err(e) => {
                if self.error.is_none() {
                    self.error = Some(CliError::client(
                        format!("cannot produce to topic {topic}"),
                        e,
                    ));
                }
            }
        }
        Ok(())
    }

    /// Prints one idempotent batch's answer, marking a duplicate (a resent batch the broker
    /// had stored already: the offsets are the first attempt's).
    fn answer_idempotent(
        &mut self,
        n: usize,
        r: Result<IdempotentProduced, ClientError>,
        topic: &str,
    ) -> Result<(), CliError> {
        match r {
            Ok(IdempotentProduced {
                produced,
                duplicate: true,
            }) => self.landed(&produced, " (resent: stored once)"),
            r => self.answer(n, r.map(|p| Some(p.produced)), topic),
        }
    }

    /// Prints where a batch landed: `partition P offset O` or `partition P offsets A..B`.
    fn landed(&mut self, p: &Produced, note: &str) -> Result<(), CliError> {
        let line = if p.count == 1 {
            format!("partition {} offset {}{note}\n", p.partition, p.base_offset)
        } else {
            format!(
                "partition {} offsets {}..{}{note}\n",
                p.partition,
                p.base_offset,
                p.next_offset()
            )
        };
        self.print(&line)?;
        self.sent += u64::from(p.count);
        Ok(())
    }

    fn print(&mut self, line: &str) -> Result<(), CliError> {
        if self.closed {
            return Ok(());
        }
        let mut out = self.stdout.lock();
        match out.write_all(line.as_bytes()).and_then(|()| out.flush()) {
            Ok(()) => Ok(()),
            Err(e) if common::is_broken_pipe(&e) => {
                self.closed = true;
                Ok(())
            }
            Err(source) => Err(CliError::Io {
                what: "cannot write to stdout".into(),
                source,
            }),
        }
    }

    fn finish(mut self) -> Result<i32, CliError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if self.acks == AcksArg::None {
            let line = format!(
                "sent {} record(s) with acks none (not acknowledged: no offsets)\n",
                self.sent
            );
            self.print(&line)?;
        }
        Ok(EXIT_OK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_parsing() {
        assert_eq!(
            parse_header("a=b=c"),
            Ok(("a".to_string(), "b=c".to_string()))
        );
        assert_eq!(parse_header("a="), Ok(("a".to_string(), String::new())));
        assert!(parse_header("=b").is_err());
        assert!(parse_header("ab").is_err());
    }
}

#[cfg(test)]
mod parse_tests {
    use super::*;
    use crate::cli::{Command, parse};

    fn produce(args: &[&str]) -> Result<Args, clap::Error> {
        let mut all = vec!["produce"];
        all.extend_from_slice(args);
        match parse(&all)? {
            Command::Produce(a) => Ok(a),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let a = produce(&["--topic", "t"]).unwrap();
        assert_eq!(a.topic, "t");
        assert_eq!(a.acks, AcksArg::Durable);
        assert_eq!(a.batch, 500);
        assert_eq!((a.partition, a.key, a.value), (None, None, None));
        assert!(a.headers.is_empty());
        assert_eq!(a.addr.addr, None);
    }

    #[test]
    fn every_option() {
        let a = produce(&[
            "--topic",
            "t",
            "--partition",
            "2",
            "--key",
            "k",
            "--acks",
            "none",
            "--value",
            "v",
            "--header",
            "a=1",
            "--header",
            "b=x=y",
            "--batch",
            "7",
            "--addr",
            "h:1",
        ])
        .unwrap();
        assert_eq!(a.partition, Some(2));
        assert_eq!(a.key.as_deref(), Some("k"));
        assert_eq!(a.acks, AcksArg::None);
        assert_eq!(a.value.as_deref(), Some("v"));
        assert_eq!(
            a.headers,
            vec![("a".into(), "1".into()), ("b".into(), "x=y".into())]
        );
        assert_eq!(a.batch, 7);
        assert_eq!(a.addr.resolve(), "h:1");
        assert_eq!(
            produce(&["--topic", "t", "--acks", "written"])
                .unwrap()
                .acks,
            AcksArg::Written
        );
    }

    #[test]
    fn producer_name() {
        let a = produce(&["--topic", "t", "--producer-name", "pump-7"]).unwrap();
        assert_eq!(a.producer_name.as_deref(), Some("pump-7"));
        assert_eq!(a.acks, AcksArg::Durable);
        // Idempotent batches are always durable: --acks is refused with it.
        for acks in ["none", "written", "durable"] {
            let e = produce(&["--topic", "t", "--producer-name", "p", "--acks", acks]).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict, "{e}");
        }
    }

    #[test]
    fn only_broken_connections_and_shutdowns_are_resent() {
        let refused = |code| ClientError::Server {
            code,
            message: String::new(),
        };
        assert!(resend_after(&ClientError::Closed));
        assert!(resend_after(&ClientError::Io(std::io::Error::other(
            "reset"
        ))));
        assert!(resend_after(&refused(ErrorCode::ShuttingDown)));
        for code in [
            ErrorCode::ProducerFenced,
            ErrorCode::OutOfOrderSequence,
            ErrorCode::UnknownTopic,
            ErrorCode::BufferFull,
        ] {
            assert!(!resend_after(&refused(code)), "{code}");
        }
    }

    #[test]
    fn mistakes_are_usage_errors() {
        assert!(produce(&[]).is_err(), "--topic is required");
        assert!(produce(&["--topic", "t", "--acks", "maybe"]).is_err());
        assert!(produce(&["--topic", "t", "--batch", "0"]).is_err());
        assert!(produce(&["--topic", "t", "--partition", "-1"]).is_err());
        assert!(produce(&["--topic", "t", "--header", "novalue"]).is_err());
    }
}
