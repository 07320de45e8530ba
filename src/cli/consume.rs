//! `outpost consume`: prints a partition's records from an offset on, long-polling for new
//! ones, until `--count` records or `--idle-exit-ms` without a new one (else until killed).

use std::io::Write;
use std::str::FromStr;
use std::time::{Duration, Instant};

use clap::Args as ClapArgs;

use super::common::{self, AddrArgs};
use super::{CliError, EXIT_OK, json};
use crate::client::{Client, Fetched};

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
    /// Partition to read
    #[arg(long, value_name = "P", default_value_t = 0)]
    partition: u32,
    /// Where to start: earliest (the oldest stored record), latest (only new records) or an
    /// offset
    #[arg(long, value_name = "earliest|latest|N", default_value = "earliest")]
    from: Start,
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
    smol::block_on(async {
        let client = args.addr.connect().await?;
        let result = consume(&args, &client).await;
        client.close().await;
        result
    })
}

async fn consume(args: &Args, client: &Client) -> Result<i32, CliError> {
    let what = || {
        format!(
            "cannot consume topic {} partition {}",
            args.topic, args.partition
        )
    };
    let mut offset = match args.from {
        Start::Offset(n) => n,
        from => {
            let o = client
                .list_offsets(&args.topic, args.partition)
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
        let wait_ms = match args.idle_exit_ms {
            Some(ms) => {
                let left = u128::from(ms).saturating_sub(last.elapsed().as_millis());
                u32::try_from(left).unwrap_or(u32::MAX).min(WAIT_MS_MAX)
            }
            None => WAIT_MS_MAX,
        };
        let asked = Instant::now();
        let fetched: Fetched = client
            .fetch(
                &args.topic,
                args.partition,
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
            if args
                .idle_exit_ms
                .is_some_and(|ms| last.elapsed().as_millis() >= u128::from(ms))
            {
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
                Format::Json => json::record_line(&mut line, &args.topic, args.partition, r),
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
            (0, Start::Earliest, Format::Text)
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
            (3, Start::Offset(42), Format::Json)
        );
        assert_eq!((a.count, a.idle_exit_ms), (Some(5), Some(250)));
        assert_eq!(
            consume(&["--topic", "t", "--from", "latest"]).unwrap().from,
            Start::Latest
        );
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
