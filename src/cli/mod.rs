//! The `outpost` command line: one module per command, parsed with clap's derive API.
//!
//! [`main`] parses the arguments, runs the command and turns the outcome into the process exit
//! code: 0 success, 1 a runtime failure (or, for `fsck`, damage found), 2 a usage error. Every
//! failure is printed to stderr as `outpost: <error>: <cause>: ...` (see [`render_error`]).
//!
//! To add a command: write `src/cli/<name>.rs` with an `Args` struct (`clap::Args`) and a
//! `run(Args) -> Result<i32, CliError>`, then add a variant to [`Command`] and an arm to
//! [`run`].

mod bench;
mod common;
mod consume;
mod error;
mod fsck;
mod groups;
mod json;
mod pipe;
mod produce;
mod serve;
mod status;
mod topics;

use std::error::Error;
use std::ffi::OsString;

use clap::{Parser, Subcommand};

pub use error::CliError;

/// Exit code: success (for `fsck`: no damage).
pub const EXIT_OK: i32 = 0;
/// Exit code: a runtime failure, or damage found by `fsck`.
pub const EXIT_FAILURE: i32 = 1;
/// Exit code: the command line itself is wrong (clap's usage errors).
pub const EXIT_USAGE: i32 = 2;

/// outpost: a single-binary edge message broker with a crash-safe log on the gateway's flash.
#[derive(Debug, Parser)]
#[command(
    name = "outpost",
    version,
    propagate_version = true,
    after_help = "Exit codes: 0 success, 1 failure (fsck: damage found), 2 usage error."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the broker until SIGTERM or SIGINT
    ///
    /// Opens the ring file in the data directory (creating and formatting it on first start),
    /// recovers it, and serves until SIGTERM or SIGINT; then it finishes the queued appends,
    /// syncs and exits 0. With no options it runs on the embedded default config: board
    /// x86_64-dev, data under ./data.
    Serve(serve::Args),
    /// Check a stopped broker's storage, read-only
    ///
    /// Scans the ring file the way recovery does, without writing, and prints its segments,
    /// partitions and offset ranges, metadata, the torn tail of an interrupted last write (not
    /// damage: the next open drops it) and every damaged region with its segment and byte
    /// position. Exit 0 when there is no damage, 1 when there is.
    Fsck(fsck::Args),
    /// Append records to a topic: --value, or one record per line of stdin
    ///
    /// Prints where each batch landed: `partition P offset O` for one record,
    /// `partition P offsets A..B` for a batch (A first, B one past the last). Lines are sent
    /// as they arrive, one batch at a time (so they keep their order), each batch taking the
    /// lines read meanwhile. With --acks none nothing is acknowledged, so only a count is
    /// printed (and the broker may append those batches in any order). With
    /// --producer-name the batches are idempotent (always durable): one resent after a broken
    /// connection is stored once.
    Produce(produce::Args),
    /// Print a partition's records, waiting for new ones; or consume as a consumer group
    ///
    /// Long-polls the broker for new records; stops after --count records, or after
    /// --idle-exit-ms without a new one, else runs until interrupted. Text prints each value on
    /// its own line; json prints one object per line with topic, partition, offset,
    /// timestamp_ms, key, headers and value. With --group it starts at the group's committed
    /// offsets and commits what it printed: at-most-once before printing, at-least-once (the
    /// default) after; SIGINT or SIGTERM then stop it after the records being printed.
    Consume(consume::Args),
    /// Copy every record of one topic to another as a consumer group, with chosen semantics
    ///
    /// Copies --from's records (timestamp, key, headers, value) to --to, partition P to
    /// partition P modulo --to's partition count, in order, and commits the group's offsets
    /// as --semantics says; exactly-once writes the copies and the offsets in one atomic
    /// write. A later run goes on from the committed offsets. Runs until SIGINT or SIGTERM
    /// (it finishes the step under way), or --idle-exit-ms without a new record; then prints
    /// `piped N records from A to B (semantics)`.
    Pipe(pipe::Args),
    /// Create, list and describe topics
    Topics(topics::Args),
    /// List and describe consumer groups: members, partitions, committed offsets, lag
    Groups(groups::Args),
    /// Show the broker's uptime, ring use, connections and partition offsets
    Status(status::Args),
    /// Load a broker and print throughput, ack latency, broker RSS and CPU, binary size
    ///
    /// Produces --records records of --record-bytes bytes with at most --window records
    /// unacknowledged (--window / --batch requests of --batch records in flight on one
    /// connection), and measures each request from send to ack. Without --addr it starts a
    /// broker itself (this binary's `serve`, on 127.0.0.1 port 0, in a fresh temp directory)
    /// and stops it with SIGTERM at the end; only then are its RSS and CPU time known.
    Bench(bench::Args),
}

/// Runs the command line of this process and returns the exit code.
pub fn main() -> i32 {
    run(std::env::args_os())
}

/// Runs `outpost` with these arguments (the first is the program name) and returns the exit
/// code. Errors and reports are printed to stderr and stdout.
pub fn run<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // `--help` and `--version` come here too, with exit code 0 and output on stdout.
            let code = e.exit_code();
            let _ = e.print();
            return if code == 0 { EXIT_OK } else { EXIT_USAGE };
        }
    };
    let outcome = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Fsck(args) => fsck::run(args),
        Command::Produce(args) => produce::run(args),
        Command::Consume(args) => consume::run(args),
        Command::Pipe(args) => pipe::run(args),
        Command::Topics(args) => topics::run(args),
        Command::Groups(args) => groups::run(args),
        Command::Status(args) => status::run(args),
        Command::Bench(args) => bench::run(args),
    };
    match outcome {
        Ok(code) => code,
        Err(CliError::Usage(e)) => {
            let _ = e.print();
            EXIT_USAGE
        }
        Err(e) => {
            eprintln!("outpost: {}", render_error(&e));
            EXIT_FAILURE
        }
    }
}

/// A usage error of `outpost <subcommand>` found after parsing: `message`, then the
/// subcommand's usage line, as clap prints its own (exit code 2).
pub(crate) fn usage_error(subcommand: &str, message: impl std::fmt::Display) -> CliError {
    use clap::CommandFactory;
    let mut cli = Cli::command();
    // Builds the subcommands' usage lines (`outpost consume ...`).
    cli.build();
    let kind = clap::error::ErrorKind::ArgumentConflict;
    let e = match cli.find_subcommand_mut(subcommand) {
        Some(sub) => sub.error(kind, message),
        None => cli.error(kind, message),
    };
    CliError::Usage(Box::new(e))
}

/// Parses `outpost <args>` (for the commands' tests).
#[cfg(test)]
fn parse(args: &[&str]) -> Result<Command, clap::Error> {
    Cli::try_parse_from(std::iter::once("outpost").chain(args.iter().copied())).map(|c| c.command)
}

/// `e` followed by each of its sources, joined by ": ". A source whose text the message
/// already contains is left out: some errors (the config module's) put their cause's text in
/// their own message, and saying it twice helps nobody.
pub fn render_error(e: &dyn Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(source) = cur {
        let text = source.to_string();
        let text = text.trim_end();
        if !text.is_empty() && !out.contains(text) {
            out.push_str(": ");
            out.push_str(text);
        }
        cur = source.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use std::fmt;

    #[derive(Debug)]
    struct Chain(&'static str, Option<Box<Chain>>);

    impl fmt::Display for Chain {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Chain {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref().map(|c| c as &(dyn Error + 'static))
        }
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_client_command_takes_addr_and_help() {
        let commands: [&[&str]; 9] = [
            &["produce", "--topic", "t"],
            &["consume", "--topic", "t"],
            &["consume", "--topic", "t", "--group", "g"],
            &["pipe", "--group", "g", "--from", "a", "--to", "b"],
            &["topics", "create", "t"],
            &["topics", "list"],
            &["topics", "describe", "t"],
            &["status"],
            &["bench"],
        ];
        for c in commands {
            let mut args = c.to_vec();
            args.extend(["--addr", "10.1.2.3:9"]);
            assert!(parse(&args).is_ok(), "{args:?}");
            let mut help = c[..c.len().min(2)].to_vec();
            if help.first() != Some(&"topics") {
                help.truncate(1);
            }
            help.push("--help");
            let e = parse(&help).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::DisplayHelp, "{help:?}");
        }
        // topics alone needs a subcommand.
        assert!(parse(&["topics"]).is_err());
    }

    #[test]
    fn error_chain_is_joined_and_repeats_are_skipped() {
        let leaf = Chain("disk on fire", None);
        let mid = Chain("cannot read x.toml: disk on fire", Some(Box::new(leaf)));
        let top = Chain("cannot load the configuration", Some(Box::new(mid)));
        assert_eq!(
            render_error(&top),
            "cannot load the configuration: cannot read x.toml: disk on fire"
        );
        let plain = Chain(
            "a",
            Some(Box::new(Chain("b", Some(Box::new(Chain("c", None)))))),
        );
        assert_eq!(render_error(&plain), "a: b: c");
    }
}
