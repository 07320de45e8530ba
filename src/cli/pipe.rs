//! `outpost pipe`: copies every record of one topic to another as a consumer group, with the
//! delivery semantics named on the command line. Record by record the copy keeps the
//! timestamp, key, headers and value; a record of partition P goes to partition P modulo the
//! destination's partition count, in order.
//!
//! How far the copy got is the group's committed offsets, so a pipe that stops (idle, a
//! signal, a crash) goes on where it left off when it runs again:
//!
//! - at-most-once: [`GroupConsumer::poll`] commits, then the records are written (a crash in
//!   between loses them);
//! - at-least-once: the records are written (durably), then committed (a crash in between
//!   writes them again);
//! - exactly-once: the records and the offsets go into one ATOMIC_WRITE
//!   ([`GroupConsumer::commit_with_outputs`]) under an idempotent producer: after a crash
//!   either both are stored or neither, and the next run (same producer name) fences the
//!   crashed one.

use std::time::Instant;

use clap::Args as ClapArgs;

use super::common::{self, AddrArgs, StopSignals};
use super::{CliError, EXIT_OK, usage_error};
use crate::client::{
    Client, ClientError, Consumed, ConsumerConfig, GroupConsumer, Membership, ResetPolicy,
    Semantics,
};
use crate::storage::{Acks, Record};

#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(flatten)]
    addr: AddrArgs,
    /// Consumer group whose committed offsets record how far the copy got
    #[arg(long, value_name = "GROUP")]
    group: String,
    /// Topic to copy from
    #[arg(long, value_name = "TOPIC")]
    from: String,
    /// Topic to copy to (it must exist): a record of partition P goes to partition P modulo
    /// its partition count
    #[arg(long, value_name = "TOPIC")]
    to: String,
    /// at-most-once commits the offsets before writing the copies (a crash may lose some);
    /// at-least-once writes, then commits (a crash may copy some twice);
    /// exactly-once writes the copies and the offsets in one atomic write under an idempotent
    /// producer (neither lost nor repeated)
    #[arg(
        long,
        value_name = "at-most-once|at-least-once|exactly-once",
        default_value = "at-least-once"
    )]
    semantics: Semantics,
    /// Exactly-once: the idempotent producer's name. Keep it the same across runs: a new run
    /// fences a stuck old one. Default pipe.<GROUP>; with --join give every member its own
    #[arg(long, value_name = "NAME")]
    producer_name: Option<String>,
    /// Where to start a partition the group has no committed offset for, or whose committed
    /// records the ring already reclaimed: earliest, latest, or error (fail)
    #[arg(long, value_name = "earliest|latest|error", default_value = "earliest")]
    reset: ResetPolicy,
    /// Join the group as a member: the broker shares --from's partitions among the members.
    /// Default: copy every partition as the group's standalone consumer (the group must have
    /// no joined members)
    #[arg(long)]
    join: bool,
    /// Stop once no new record arrived for this many milliseconds (default: run until SIGINT
    /// or SIGTERM, which finish the step under way first)
    #[arg(long, value_name = "MS")]
    idle_exit_ms: Option<u64>,
}

pub fn run(args: Args) -> Result<i32, CliError> {
    if args.from == args.to {
        return Err(usage_error(
            "pipe",
            format_args!(
                "--from and --to both name {}: the copy would read its own copies forever",
                args.from
            ),
        ));
    }
    if args.producer_name.is_some() && args.semantics != Semantics::ExactlyOnce {
        return Err(usage_error(
            "pipe",
            format_args!(
                "--producer-name names the idempotent producer of --semantics exactly-once; \
                 {} writes with plain produces",
                args.semantics
            ),
        ));
    }
    smol::block_on(async {
        let client = args.addr.connect().await?;
        let result = pipe(&args, &client).await;
        client.close().await;
        result
    })
}

async fn pipe(args: &Args, client: &Client) -> Result<i32, CliError> {
    let semantics = args.semantics;
    let what = || {
        format!(
            "cannot pipe {} to {} as group {} ({semantics})",
            args.from, args.to, args.group
        )
    };
    let fail = |e: ClientError| CliError::client(what(), e);
    let from_partitions = client
        .describe_topic(&args.from)
        .await
        .map_err(fail)?
        .partitions
        .len();
    let to_partitions = client
        .describe_topic(&args.to)
        .await
        .map_err(fail)?
        .partitions
        .len();
    let to_partitions = u32::try_from(to_partitions).unwrap_or(u32::MAX).max(1);
    let membership = if args.join {
        Membership::Join {
            topics: vec![args.from.clone()],
            client_id: "outpost-pipe".into(),
            session_timeout_ms: common::SESSION_TIMEOUT_MS,
        }
    } else {
        Membership::Assign(
            (0..from_partitions as u32)
                .map(|p| (args.from.clone(), p))
                .collect(),
        )
    };
    let cfg = ConsumerConfig {
        group: args.group.clone(),
        membership,
        semantics,
        reset: args.reset,
        producer_name: (semantics == Semantics::ExactlyOnce).then(|| {
            args.producer_name
                .clone()
                .unwrap_or_else(|| format!("pipe.{}", args.group))
        }),
        fetch_bytes_max: fetch_bytes_max(client, from_partitions),
    };
    let stop = StopSignals::install()?;
    let mut consumer = GroupConsumer::start(client, cfg).await.map_err(fail)?;
    let mut copied: u64 = 0;
    let mut last = Instant::now();
    let outcome = loop {
        if stop.requested() {
            break Ok(());
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
                break Ok(());
            }
            continue;
        }
        last = Instant::now();
        let n = polled.len() as u64;
        let outputs = route(polled, &args.to, to_partitions);
        let step = match semantics {
            Semantics::ExactlyOnce => consumer
                .commit_with_outputs(client, outputs)
                .await
                .map(|_| ()),
            // `poll` committed already.
            Semantics::AtMostOnce => write(client, &outputs).await,
            Semantics::AtLeastOnce => match write(client, &outputs).await {
                Ok(()) => consumer.commit(client).await,
                Err(e) => Err(e),
            },
        };
        match step {
            Ok(()) => copied += n,
            // Rebalanced under us: exactly-once stored nothing of this step; at-least-once
            // stored the copies, and the partitions' next owner copies them again. This member
            // rejoins at its next poll.
            Err(e) if args.join && e.is_rebalance() => {
                if semantics == Semantics::AtLeastOnce {
                    copied += n;
                }
            }
            Err(e) => break Err(fail(e)),
        }
    };
    drop(stop);
    if args.join {
        // Its partitions move at once instead of after the session timeout.
        let left = consumer.leave(client).await;
        if let (Ok(()), Err(e)) = (&outcome, left) {
            return Err(CliError::client(
                format!("cannot leave group {}", args.group),
                e,
            ));
        }
    }
    outcome?;
    println!(
        "piped {copied} record{} from {} to {} ({semantics})",
        if copied == 1 { "" } else { "s" },
        args.from,
        args.to
    );
    Ok(EXIT_OK)
}

/// Bytes asked per partition and FETCH: what one poll of every partition returns must fit in
/// one batch (an atomic write is one) and one frame, with room for the batch's own overhead.
fn fetch_bytes_max(client: &Client, partitions: usize) -> u32 {
    let info = client.server_info();
    let budget = info.batch_bytes_max.min(info.frame_bytes_max) / 2;
    (budget / u32::try_from(partitions).unwrap_or(u32::MAX).max(1)).max(1)
}

/// The copies of `records`: one output per destination partition (source partition modulo
/// `partitions`), each in the order polled.
fn route(records: Vec<Consumed>, to: &str, partitions: u32) -> Vec<(String, u32, Vec<Record>)> {
    let mut outputs: Vec<(String, u32, Vec<Record>)> = Vec::new();
    for c in records {
        let p = c.partition % partitions;
        match outputs.iter_mut().find(|o| o.1 == p) {
            Some(o) => o.2.push(c.record),
            None => outputs.push((to.to_string(), p, vec![c.record])),
        }
    }
    outputs
}

/// Writes `outputs` with plain durable produces (at-most-once and at-least-once).
async fn write(client: &Client, outputs: &[(String, u32, Vec<Record>)]) -> Result<(), ClientError> {
    for (topic, partition, records) in outputs {
        client
            .produce(topic, Some(*partition), Acks::Durable, records)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consumed(partition: u32, offset: u64, value: &str) -> Consumed {
        Consumed {
            topic: "in".into(),
            partition,
            offset,
            record: Record {
                timestamp_ms: 7,
                key: Some(b"k".to_vec()),
                value: value.as_bytes().to_vec(),
                headers: vec![("h".into(), b"v".to_vec())],
            },
        }
    }

    #[test]
    fn route_keeps_order_per_destination_partition() {
        let polled = vec![
            consumed(0, 0, "a"),
            consumed(3, 5, "b"),
            consumed(1, 2, "c"),
            consumed(0, 1, "d"),
        ];
        let out = route(polled, "out", 3);
        let shape: Vec<(u32, Vec<&[u8]>)> = out
            .iter()
            .map(|(t, p, rs)| {
                assert_eq!(t, "out");
                (*p, rs.iter().map(|r| r.value.as_slice()).collect())
            })
            .collect();
        assert_eq!(
            shape,
            vec![(0, vec![&b"a"[..], b"b", b"d"]), (1, vec![&b"c"[..]]),]
        );
        // The record is copied whole.
        assert_eq!(out[0].2[0], consumed(0, 0, "a").record);
        assert!(route(Vec::new(), "out", 1).is_empty());
    }
}

#[cfg(test)]
mod parse_tests {
    use super::*;
    use crate::cli::{Command, parse};

    fn pipe(args: &[&str]) -> Result<Args, clap::Error> {
        let mut all = vec!["pipe"];
        all.extend_from_slice(args);
        match parse(&all)? {
            Command::Pipe(a) => Ok(a),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_and_options() {
        let a = pipe(&["--group", "g", "--from", "a", "--to", "b"]).unwrap();
        assert_eq!(
            (a.group.as_str(), a.from.as_str(), a.to.as_str()),
            ("g", "a", "b")
        );
        assert_eq!(a.semantics, Semantics::AtLeastOnce);
        assert_eq!(a.reset, ResetPolicy::Earliest);
        assert_eq!(
            (a.join, a.idle_exit_ms, a.producer_name),
            (false, None, None)
        );
        let a = pipe(&[
            "--group",
            "g",
            "--from",
            "a",
            "--to",
            "b",
            "--semantics",
            "exactly-once",
            "--producer-name",
            "p",
            "--reset",
            "latest",
            "--join",
            "--idle-exit-ms",
            "250",
        ])
        .unwrap();
        assert_eq!(a.semantics, Semantics::ExactlyOnce);
        assert_eq!(a.producer_name.as_deref(), Some("p"));
        assert_eq!(a.reset, ResetPolicy::Latest);
        assert_eq!((a.join, a.idle_exit_ms), (true, Some(250)));
    }

    #[test]
    fn mistakes_are_usage_errors() {
        assert!(
            pipe(&["--from", "a", "--to", "b"]).is_err(),
            "--group is required"
        );
        assert!(pipe(&["--group", "g", "--to", "b"]).is_err());
        let e = pipe(&[
            "--group",
            "g",
            "--from",
            "a",
            "--to",
            "b",
            "--semantics",
            "twice",
        ])
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("at-most-once, at-least-once or exactly-once"),
            "{e}"
        );
        // Checked after parsing: exit code 2 all the same.
        let same = pipe(&["--group", "g", "--from", "a", "--to", "a"]).unwrap();
        assert!(matches!(run(same), Err(CliError::Usage(_))));
        let name_without_eos = pipe(&[
            "--group",
            "g",
            "--from",
            "a",
            "--to",
            "b",
            "--producer-name",
            "p",
        ])
        .unwrap();
        assert!(matches!(run(name_without_eos), Err(CliError::Usage(_))));
    }
}
