//! `outpost consume`: prints a partition's records from an offset on, long-polling for new
//! ones, until `--count` records or `--idle-exit-ms` without a new one (else until killed).
//!
//! With `--group` it consumes as a consumer group ([`GroupConsumer`]): from the group's
//! committed offsets (or `--reset`), as a standalone consumer of the topic's partitions or,
//! with `--join`, as a member the broker assigns partitions to; and it commits as
//! `--semantics` says: at-most-once commits before printing, at-least-once prints, then
//! commits. Exactly-once is refused: it needs outputs to write atomically with the offsets
//! (`outpost pipe`).

use std::collections::BTreeMap;
use std::io::Write;
use std::str::FromStr;
use std::time::{Duration, Instant};

use clap::Args as ClapArgs;

use super::common::{self, AddrArgs, StopSignals};
use super::{CliError, EXIT_OK, json, usage_error};
use crate::client::{
    Client, ClientError, Consumed, ConsumerConfig, Fetched, FetchedRecord, GroupConsumer,
    Membership, OffsetToCommit, ResetPolicy, Semantics,
};

/// Longest single long poll (the broker caps it further with its `fetch_wait_ms_max`).
const WAIT_MS_MAX: u32 = 30_000;
/// A fetch that comes back empty sooner than this did not long-poll: pause before the next.
const EMPTY_PAUSE: Duration = Duration::from_millis(20);

/// Where `consume` starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// The oldest record still stored.
    Earliest,
    /// After the last durable record: only new records.
    Latest,
    /// This offset.
    Offset(u64),
}

impl FromStr for Start {
    type Err = String;
    fn from_str(s: &str) -> Result<Start, String> {
        match s {
            "earliest" => Ok(Start::Earliest),
            "latest" => Ok(Start::Latest),
            n => n.parse().map(Start::Offset).map_err(|_| {
                format!("expected earliest, latest or an offset (a whole number), got {s:?}")
            }),
        }
    }
}

/// How records are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The value, one per line (bytes that are not UTF-8 shown as U+FFFD)
    Text,
    /// One JSON object per line: topic, partition, offset, timestamp_ms, key, headers, value
    Json,
}

#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(flatten)]
    addr: AddrArgs,
    /// Topic to read
    #[arg(long, value_name = "TOPIC")]
    topic: String,
    /// Partition to read. Default 0; with --group, every partition of the topic
    #[arg(long, value_name = "P")]
    partition: Option<u32>,
    /// Where to start: earliest (the oldest stored record), latest (only new records) or an
    /// offset. Not with --group, which starts at the group's committed offsets
    #[arg(
        long,
        value_name = "earliest|latest|N",
        default_value = "earliest",
        conflicts_with = "group"
    )]
    from: Start,
    /// Consume as this consumer group: start at its committed offsets and commit as
    /// --semantics says. Without --join, as the group's standalone consumer of --partition
    /// (default: every partition of the topic); the group must have no joined members
    #[arg(long, value_name = "GROUP")]
    group: Option<String>,
    /// With --group: at-most-once commits the records' offsets before printing them (a crash
    /// may lose some, never repeats one); at-least-once (the default) prints, then commits (a
    /// crash may repeat some, never loses one). exactly-once needs an output topic: see
    /// `outpost pipe`
    #[arg(
        long,
        value_name = "at-most-once|at-least-once|exactly-once",
        requires = "group"
    )]
    semantics: Option<Semantics>,
    /// With --group: where to start a partition the group has no committed offset for, or
    /// whose committed records the ring already reclaimed: earliest (default), latest, or
    /// error (fail)
    #[arg(long, value_name = "earliest|latest|error", requires = "group")]
    reset: Option<ResetPolicy>,
    /// With --group: join the group as a member; the broker assigns the topic's partitions
    /// among the members and moves them when members come and go
    #[arg(long, requires = "group", conflicts_with = "partition")]
    join: bool,
    /// Stop after this many records
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Stop once no new record arrived for this many milliseconds (counted from the start, then
    /// from the last record)
    #[arg(long, value_name = "MS")]
    idle_exit_ms: Option<u64>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Most record bytes per fetch (the broker may cap it)
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20,
          value_parser = clap::value_parser!(u32).range(1..))]
    fetch_bytes_max: u32,
}

pub fn run(args: Args) -> Result<i32, CliError> {
    if args.semantics == Some(Semantics::ExactlyOnce) {
        return Err(usage_error(
            "consume",
            "--semantics exactly-once needs an output topic: it writes a consumer's outputs and \
             its input offsets in one atomic write, and consume only prints (a printed record \
             cannot be taken back after a crash). To copy records exactly once, use `outpost \
             pipe --group G --from TOPIC --to OUTPUT --semantics exactly-once`; to print them, \
             --semantics at-least-once (the default) or at-most-once",
        ));
    }
    smol::block_on(async {
        let client = args.addr.connect().await?;
        let result = match &args.group {
            Some(group) => consume_group(&args, group, &client).await,
            None => consume(&args, &client).await,
        };
        client.close().await;
        result
    })
}

async fn consume(args: &Args, client: &Client) -> Result<i32, CliError> {
    let partition = args.partition.unwrap_or(0);
    let what = || format!("cannot consume topic {} partition {partition}", args.topic);
    let mut offset = match args.from {
        Start::Offset(n) => n,
        from => {
            let o = client
                .list_offsets(&args.topic, partition)
                .await
                .map_err(|e| CliError::client(what(), e))?;
            if from == Start::Earliest {
                o.earliest
            } else {
                o.next
            }
        }
    };
    let stdout = std::io::stdout();
    let mut printed: u64 = 0;
    let mut last = Instant::now();
    let mut line = String::new();
    loop {
        if args.count.is_some_and(|n| printed >= n) {
            break;
        }
        let wait_ms = common::wait_ms(args.idle_exit_ms, last, WAIT_MS_MAX);
        let asked = Instant::now();
        let fetched: Fetched = client
            .fetch(
                &args.topic,
                partition,
                offset,
                args.fetch_bytes_max,
                wait_ms,
            )
            .await
            .map_err(|e| CliError::client(what(), e))?;
        let fresh: Vec<_> = fetched
            .records
            .iter()
            .filter(|r| r.offset >= offset)
            .collect();
        if fresh.is_empty() {
            if common::idle_expired(args.idle_exit_ms, last) {
                break;
            }
            if asked.elapsed() < EMPTY_PAUSE && wait_ms > 0 {
                smol::Timer::after(EMPTY_PAUSE).await;
            }
            continue;
        }
        let mut out = stdout.lock();
        for r in fresh {
            if args.count.is_some_and(|n| printed >= n) {
                break;
            }
            line.clear();
            match args.format {
                Format::Text => line.push_str(&String::from_utf8_lossy(&r.record.value)),
                Format::Json => json::record_line(&mut line, &args.topic, partition, r),
            }
            line.push('\n');
            if let Err(e) = out.write_all(line.as_bytes()) {
                return stdout_failed(e);
            }
            printed += 1;
            offset = r.offset + 1;
        }
        if let Err(e) = out.flush() {
            return stdout_failed(e);
        }
        last = Instant::now();
    }
    Ok(EXIT_OK)
}

/// `consume --group`: polls the group consumer, prints, and commits per `--semantics`, until
/// `--count`, `--idle-exit-ms`, or SIGINT/SIGTERM (then it commits what it printed and leaves
/// the group).
async fn consume_group(args: &Args, group: &str, client: &Client) -> Result<i32, CliError> {
    let semantics = args.semantics.unwrap_or_default();
    let what = || {
        format!(
            "cannot consume topic {} as group {group} ({semantics})",
            args.topic
        )
    };
    let fail = |e: ClientError| CliError::client(what(), e);
    let membership = if args.join {
        Membership::Join {
            topics: vec![args.topic.clone()],
            client_id: "outpost-consume".into(),
            session_timeout_ms: common::SESSION_TIMEOUT_MS,
        }
    } else {
        let partitions = match args.partition {
            Some(p) => vec![p],
            None => {
                let d = client.describe_topic(&args.topic).await.map_err(fail)?;
                d.partitions.iter().map(|p| p.partition).collect()
            }
        };
        Membership::Assign(
            partitions
                .into_iter()
                .map(|p| (args.topic.clone(), p))
                .collect(),
        )
    };
    let stop = StopSignals::install()?;
    let cfg = ConsumerConfig {
        group: group.to_string(),
        membership,
        semantics,
        reset: args.reset.unwrap_or_default(),
        producer_name: None,
        fetch_bytes_max: args.fetch_bytes_max,
    };
    let mut consumer = GroupConsumer::start(client, cfg).await.map_err(fail)?;
    let stdout = std::io::stdout();
    let mut printed: u64 = 0;
    let mut last = Instant::now();
    let outcome = loop {
        if args.count.is_some_and(|n| printed >= n) || stop.requested() {
            break Ok(EXIT_OK);
        }
        let wait_ms = common::wait_ms(args.idle_exit_ms, last, common::GROUP_WAIT_MS);
        let polled = match consumer.poll(client, wait_ms).await {
            Ok(p) => p,
            // A member goes on: the next poll rejoins from the committed offsets.
            Err(e) if args.join && e.is_rebalance() => continue,
            Err(e) => break Err(fail(e)),
        };
        if polled.is_empty() {
            if common::idle_expired(args.idle_exit_ms, last) {
                break Ok(EXIT_OK);
            }
            continue;
        }
        last = Instant::now();
        let wanted = args.count.map_or(polled.len(), |n| {
            usize::try_from(n - printed).map_or(polled.len(), |left| left.min(polled.len()))
        });
        let (shown, write_error) = print_consumed(&stdout, &polled[..wanted], args.format);
        printed += shown as u64;
        let unprinted = &polled[shown..];
        let commit = if !unprinted.is_empty() {
            // Stopping inside this poll (--count, or stdout went away): the commit covers what
            // was printed and goes back to the first record that was not (at-most-once
            // committed past it in `poll`; it was never printed, so it is not repeated).
            let offsets = commit_point(consumer.positions(), unprinted);
            client
                .commit_offsets(group, consumer.member(), &offsets)
                .await
        } else if semantics == Semantics::AtLeastOnce {
            consumer.commit(client).await
        } else {
            Ok(())
        };
        match commit {
            Ok(()) => {}
            // The partitions moved on: their next owner gets these records again (at least
            // once), and this member rejoins at its next poll.
            Err(e) if args.join && e.is_rebalance() => {}
            Err(e) => break Err(fail(e)),
        }
        if let Some(e) = write_error {
            break stdout_failed(e);
        }
        if !unprinted.is_empty() {
            break Ok(EXIT_OK);
        }
    };
    drop(stop);
    if args.join {
        // Its partitions move at once instead of after the session timeout.
        if let Err(e) = consumer.leave(client).await
            && outcome.is_ok()
        {
            return Err(CliError::client(format!("cannot leave group {group}"), e));
        }
    }
    outcome
}

/// Prints `records` as `format` lines; returns how many were written, and the write error
/// that stopped it, if any.
fn print_consumed(
    stdout: &std::io::Stdout,
    records: &[Consumed],
    format: Format,
) -> (usize, Option<std::io::Error>) {
    let mut out = stdout.lock();
    let mut line = String::new();
    for (i, c) in records.iter().enumerate() {
        line.clear();
        match format {
            Format::Text => line.push_str(&String::from_utf8_lossy(&c.record.value)),
            Format::Json => {
                let r = FetchedRecord {
                    offset: c.offset,
                    record: c.record.clone(),
                };
                json::record_line(&mut line, &c.topic, c.partition, &r);
            }
        }
        line.push('\n');
        if let Err(e) = out.write_all(line.as_bytes()) {
            return (i, Some(e));
        }
    }
    // Flushed before anything is committed: a record counts as printed once it left.
    match out.flush() {
        Ok(()) => (records.len(), None),
        Err(e) => (0, Some(e)),
    }
}

/// The offsets to commit when only part of a poll was printed: every owned partition's
/// position, except those with records in `unprinted`, which go back to the first of them.
fn commit_point(
    positions: &BTreeMap<(String, u32), u64>,
    unprinted: &[Consumed],
) -> Vec<OffsetToCommit> {
    let mut at = positions.clone();
    for c in unprinted.iter().rev() {
        at.insert((c.topic.clone(), c.partition), c.offset);
    }
    at.into_iter()
        .map(|((topic, partition), offset)| OffsetToCommit {
            topic,
            partition,
            offset,
            metadata: String::new(),
        })
        .collect()
}

/// A reader that went away (`| head`) ends the command successfully; any other write error is
/// a failure.
fn stdout_failed(e: std::io::Error) -> Result<i32, CliError> {
    if common::is_broken_pipe(&e) {
        Ok(EXIT_OK)
    } else {
        Err(CliError::Io {
            what: "cannot write to stdout".into(),
            source: e,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_parses_names_and_offsets() {
        assert_eq!("earliest".parse(), Ok(Start::Earliest));
        assert_eq!("latest".parse(), Ok(Start::Latest));
        assert_eq!("17".parse(), Ok(Start::Offset(17)));
        assert!("-1".parse::<Start>().is_err());
        assert!("Earliest".parse::<Start>().is_err());
        assert!("".parse::<Start>().is_err());
    }
}

#[cfg(test)]
mod parse_tests {
    use super::*;
    use crate::cli::{Command, parse};

    fn consume(args: &[&str]) -> Result<Args, clap::Error> {
        let mut all = vec!["consume"];
        all.extend_from_slice(args);
        match parse(&all)? {
            Command::Consume(a) => Ok(a),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_and_options() {
        let a = consume(&["--topic", "t"]).unwrap();
        assert_eq!(
            (a.partition, a.from, a.format),
            (None, Start::Earliest, Format::Text)
        );
        assert_eq!((a.count, a.idle_exit_ms), (None, None));
        let a = consume(&[
            "--topic",
            "t",
            "--partition",
            "3",
            "--from",
            "42",
            "--count",
            "5",
            "--idle-exit-ms",
            "250",
            "--format",
            "json",
        ])
        .unwrap();
        assert_eq!(
            (a.partition, a.from, a.format),
            (Some(3), Start::Offset(42), Format::Json)
        );
        assert_eq!((a.count, a.idle_exit_ms), (Some(5), Some(250)));
        assert_eq!(
            consume(&["--topic", "t", "--from", "latest"]).unwrap().from,
            Start::Latest
        );
    }

    #[test]
    fn group_options() {
        let a = consume(&["--topic", "t", "--group", "g"]).unwrap();
        assert_eq!(a.group.as_deref(), Some("g"));
        assert_eq!((a.semantics, a.reset, a.join), (None, None, false));
        let a = consume(&[
            "--topic",
            "t",
            "--group",
            "g",
            "--semantics",
            "at-most-once",
            "--reset",
            "latest",
            "--join",
        ])
        .unwrap();
        assert_eq!(a.semantics, Some(Semantics::AtMostOnce));
        assert_eq!((a.reset, a.join), (Some(ResetPolicy::Latest), true));
        let a = consume(&["--topic", "t", "--group", "g", "--partition", "2"]).unwrap();
        assert_eq!(a.partition, Some(2));
        // Parsed, then refused with exit code 2 before connecting.
        let a = consume(&[
            "--topic",
            "t",
            "--group",
            "g",
            "--semantics",
            "exactly-once",
        ])
        .unwrap();
        let Err(CliError::Usage(e)) = run(a) else {
            panic!("exactly-once is a usage error")
        };
        let text = e.to_string();
        assert!(text.contains("outpost pipe"), "{text}");
        assert!(text.contains("Usage: outpost consume"), "{text}");
    }

    #[test]
    fn group_mistakes_are_usage_errors() {
        for args in [
            // The group's offsets say where to start.
            &["--topic", "t", "--group", "g", "--from", "3"][..],
            // Group options without a group.
            &["--topic", "t", "--semantics", "at-most-once"],
            &["--topic", "t", "--reset", "latest"],
            &["--topic", "t", "--join"],
            // A member gets the partitions the broker assigns.
            &["--topic", "t", "--group", "g", "--join", "--partition", "1"],
            &["--topic", "t", "--group", "g", "--semantics", "twice"],
            &["--topic", "t", "--group", "g", "--reset", "never"],
        ] {
            assert!(consume(args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn mistakes_are_usage_errors() {
        let e = consume(&["--topic", "t", "--from", "soon"]).unwrap_err();
        assert!(
            e.to_string()
                .contains("expected earliest, latest or an offset"),
            "{e}"
        );
        assert!(consume(&["--topic", "t", "--format", "xml"]).is_err());
        assert!(consume(&["--topic", "t", "--count", "many"]).is_err());
        assert!(consume(&[]).is_err());
    }
}
