//! `outpost produce`: appends `--value`, or every line of stdin, to a topic and prints where
//! each batch landed.
//!
//! Lines are sent as soon as they arrive: each batch takes the lines read while the previous
//! one was in flight (at most `--batch` lines and half the broker's `batch_bytes_max`).
//! Answers are printed in input order.

use std::collections::VecDeque;
use std::io::{BufRead, Write};
use std::sync::Arc;

use clap::Args as ClapArgs;
use smol::channel::{self, Receiver};

use super::common::{self, AcksArg, AddrArgs};
use super::{CliError, EXIT_OK};
use crate::client::{Client, ClientError, Produced};
use crate::storage::Record;
use crate::storage::format::BATCH_HEADER_BYTES;

/// Batches sent and not yet answered, at most. One, so that lines keep their order: the
/// broker works on pipelined requests concurrently and appends two produces to the same
/// partition in the order it finishes them, not the order it received them. (The loop below
/// handles any depth, should the broker come to keep a connection's order per partition.)
pub const BATCHES_IN_FLIGHT: usize = 1;
/// Lines read ahead of the batches being sent.
const LINES_QUEUED_MAX: usize = 8192;

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
        let client = Arc::new(args.addr.connect().await?);
        let result = produce(&args, &client).await;
        client.close().await;
        result
    })
}

async fn produce(args: &Args, client: &Arc<Client>) -> Result<i32, CliError> {
    let template = Record {
        timestamp_ms: 0,
        key: args.key.as_ref().map(|k| k.as_bytes().to_vec()),
        value: Vec::new(),
        headers: args
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), v.as_bytes().to_vec()))
            .collect(),
    };
    let mut out = Output::new(args.acks);
    if let Some(value) = &args.value {
        let record = Record {
            timestamp_ms: common::now_ms(),
            value: value.as_bytes().to_vec(),
            ..template
        };
        let r = client
            .produce(&args.topic, args.partition, args.acks.acks(), &[record])
            .await;
        out.answer(1, r, &args.topic)?;
        return out.finish();
    }

    let lines = read_lines();
    // Half the broker's batch limit, so a batch is never refused for its size unless one line
    // alone is too big.
    let bytes_budget = u64::from(client.server_info().batch_bytes_max / 2);
    let mut inflight: VecDeque<(Sending, usize)> = VecDeque::new();
    let mut carry: Option<Vec<u8>> = None;
    let mut input_error: Option<CliError> = None;
    let mut eof = false;
    loop {
        let idle = carry.is_none() && lines.is_empty();
        let must_wait = inflight.len() >= BATCHES_IN_FLIGHT
            || ((eof || input_error.is_some() || out.failed() || idle) && !inflight.is_empty());
        if must_wait {
            if let Some((task, n)) = inflight.pop_front() {
                out.answer(n, task.await, &args.topic)?;
            }
            continue;
        }
        if eof || input_error.is_some() || out.failed() {
            break;
        }
        let first = match carry.take() {
            Some(line) => line,
            None => match lines.recv().await {
                Ok(Ok(line)) => line,
                Ok(Err(e)) => {
                    input_error = Some(CliError::Io {
                        what: "cannot read stdin".into(),
                        source: e,
                    });
                    continue;
                }
                Err(_) => {
                    eof = true;
                    continue;
                }
            },
        };
        let now = common::now_ms();
        let record = |value: Vec<u8>| Record {
            timestamp_ms: now,
            value,
            ..template.clone()
        };
        let mut batch = vec![record(first)];
        let mut bytes = BATCH_HEADER_BYTES as u64 + batch[0].encoded_bytes();
        while batch.len() < args.batch as usize {
            match lines.try_recv() {
                Ok(Ok(line)) => {
                    let r = record(line);
                    if bytes + r.encoded_bytes() > bytes_budget {
                        carry = Some(r.value);
                        break;
                    }
                    bytes += r.encoded_bytes();
                    batch.push(r);
                }
                Ok(Err(e)) => {
                    input_error = Some(CliError::Io {
                        what: "cannot read stdin".into(),
                        source: e,
                    });
                    break;
                }
                Err(_) => break,
            }
        }
        let n = batch.len();
        let client = client.clone();
        let topic = args.topic.clone();
        let (partition, acks) = (args.partition, args.acks.acks());
        let task =
            smol::spawn(async move { client.produce(&topic, partition, acks, &batch).await });
        inflight.push_back((task, n));
    }
    if let Some(e) = input_error {
        out.finish()?;
        return Err(e);
    }
    out.finish()
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
            Ok(Some(p)) => {
                let line = if p.count == 1 {
                    format!("partition {} offset {}\n", p.partition, p.base_offset)
                } else {
                    format!(
                        "partition {} offsets {}..{}\n",
                        p.partition,
                        p.base_offset,
                        p.next_offset()
                    )
                };
                self.print(&line)?;
                self.sent += u64::from(p.count);
            }
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
    fn mistakes_are_usage_errors() {
        assert!(produce(&[]).is_err(), "--topic is required");
        assert!(produce(&["--topic", "t", "--acks", "maybe"]).is_err());
        assert!(produce(&["--topic", "t", "--batch", "0"]).is_err());
        assert!(produce(&["--topic", "t", "--partition", "-1"]).is_err());
        assert!(produce(&["--topic", "t", "--header", "novalue"]).is_err());
    }
}
