//! The `outpost` command line: one module per command, parsed with clap's derive API.
//!
//! [`main`] parses the arguments, runs the command and turns the outcome into the process exit
//! code: 0 success, 1 a runtime failure (or, for `fsck`, damage found), 2 a usage error. Every
//! failure is printed to stderr as `outpost: <error>: <cause>: ...` (see [`render_error`]).
//!
//! To add a command: write `src/cli/<name>.rs` with an `Args` struct (`clap::Args`) and a
//! `run(Args) -> Result<i32, CliError>`, then add a variant to [`Command`] and an arm to
//! [`run`].

mod common;
mod error;
mod fsck;
mod serve;

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
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("outpost: {}", render_error(&e));
            EXIT_FAILURE
        }
    }
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
