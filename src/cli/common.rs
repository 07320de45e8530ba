//! What several commands share: the flags that locate the configuration and the storage, and
//! the steps that turn them into settings, a logger and the ring file's path; the broker
//! address of the client commands and their connection.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Args;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

use super::CliError;
use crate::client::{self, Client, ClientError};
use crate::config::{self, Overrides, Settings};
use crate::storage::flash::Geometry;

/// The ring file's name inside the data directory.
pub const RING_FILE_NAME: &str = "ring.dat";

/// `--config`, `--board`, `--data`: where the settings and the storage come from.
#[derive(Debug, Args)]
pub struct StorageArgs {
    /// Config file (TOML); default: the embedded config/outpost.toml.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Board: an embedded board's name (rpi4-sdcard, emmc-8g, spi-nor-16m, x86_64-dev) or a
    /// path to a board file (contains '/' or ends in .toml). Overrides the config file's.
    #[arg(long, value_name = "NAME|PATH")]
    pub board: Option<String>,
    /// Data directory holding the ring file. Overrides the config file's data_dir
    /// (default ./data).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
}

impl StorageArgs {
    /// The overrides these flags make, plus `listen` (only `serve` has that flag).
    pub fn overrides(&self, listen: Option<String>) -> Overrides {
        Overrides {
            config: self.config.clone(),
            board: self.board.clone(),
            listen,
            data: self.data.clone(),
        }
    }
}

/// The environment variable that sets the broker address of the client commands.
pub const ADDR_ENV: &str = "OUTPOST_ADDR";

/// `--addr`: the broker a client command talks to.
#[derive(Debug, Args)]
pub struct AddrArgs {
    /// Broker address (host:port). Default: $OUTPOST_ADDR if set, else 127.0.0.1:7478.
    #[arg(long, value_name = "HOST:PORT")]
    pub addr: Option<String>,
}

impl AddrArgs {
    /// The address to use: `--addr`, else a non-empty `OUTPOST_ADDR`, else the default.
    pub fn resolve(&self) -> String {
        resolve_addr(
            self.addr.as_deref(),
            std::env::var(ADDR_ENV).ok().as_deref(),
        )
    }

    /// Connects to the broker (and logs at warn unless `RUST_LOG` says otherwise).
    pub async fn connect(&self) -> Result<Client, CliError> {
        init_logger(log::LevelFilter::Warn);
        let addr = self.resolve();
        Client::connect(&addr)
            .await
            .map_err(|source| CliError::client("cannot reach the broker", source))
    }
}

/// `flag` beats a non-empty `env`, which beats [`client::DEFAULT_ADDR`].
pub fn resolve_addr(flag: Option<&str>, env: Option<&str>) -> String {
    match (flag, env.map(str::trim).filter(|e| !e.is_empty())) {
        (Some(addr), _) => addr.to_string(),
        (None, Some(addr)) => addr.to_string(),
        (None, None) => client::DEFAULT_ADDR.to_string(),
    }
}

impl CliError {
    /// A client call failed while doing `what`.
    pub fn client(what: impl Into<String>, source: ClientError) -> CliError {
        CliError::Client {
            what: what.into(),
            source,
        }
    }
}

/// Loads and validates the settings.
pub fn load_settings(overrides: &Overrides) -> Result<Settings, CliError> {
    Ok(config::load(overrides)?)
}

/// Starts the logger on stderr at `default`; a non-empty `RUST_LOG` overrides it (env_logger
/// syntax: `warn`, `outpost=debug`, ...), and `RUST_LOG_STYLE` sets the colours.
pub fn init_logger(default: log::LevelFilter) {
    let mut builder = env_logger::Builder::new();
    builder.filter_level(default);
    if let Ok(filters) = std::env::var("RUST_LOG")
        && !filters.trim().is_empty()
    {
        builder.parse_filters(&filters);
    }
    if let Ok(style) = std::env::var("RUST_LOG_STYLE") {
        builder.parse_write_style(&style);
    }
    // Fails only if a logger is already installed (when `cli::run` runs twice in one
    // process, as in tests): the first one keeps working.
    let _ = builder.try_init();
}

/// The ring file of these settings.
pub fn ring_path(settings: &Settings) -> PathBuf {
    settings.data_dir.join(RING_FILE_NAME)
}

/// The flash geometry of the ring file: the board's erase block and program unit, the ring's
/// size.
pub fn geometry(settings: &Settings) -> Result<Geometry, CliError> {
    let r = &settings.ring;
    Geometry::new(r.erase_block_bytes, r.program_unit_bytes, r.ring_bytes).map_err(|source| {
        CliError::Flash {
            path: ring_path(settings),
            source,
        }
    })
}

/// `--acks`: when the broker acknowledges a produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AcksArg {
    /// Not at all: fire and forget (at-most-once); no offsets are printed.
    None,
    /// Once the records are handed to the OS, before the sync.
    Written,
    /// Once the sync covering the records returned: survives power loss.
    Durable,
}

impl AcksArg {
    pub fn acks(self) -> crate::storage::Acks {
        match self {
            AcksArg::None => crate::storage::Acks::None,
            AcksArg::Written => crate::storage::Acks::Written,
            AcksArg::Durable => crate::storage::Acks::Durable,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            AcksArg::None => "none",
            AcksArg::Written => "written",
            AcksArg::Durable => "durable",
        }
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Whether writing to stdout failed because the reader went away (`| head`): not a failure of
/// the command, which just stops.
pub fn is_broken_pipe(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::BrokenPipe
}

/// SIGINT and SIGTERM for the long-running group commands (`consume --group`, `pipe`): the
/// first one asks the command to stop at its next step boundary (it finishes the step, commits
/// and leaves the group, then exits 0); a second one ends the process at once, with the
/// shell's code for a signal (128 + its number). Dropping it stops listening.
pub struct StopSignals {
    requested: Arc<AtomicBool>,
    handle: Handle,
}

impl StopSignals {
    pub fn install() -> Result<StopSignals, CliError> {
        let mut signals = Signals::new([SIGTERM, SIGINT]).map_err(CliError::Signal)?;
        let handle = signals.handle();
        let requested = Arc::new(AtomicBool::new(false));
        let flag = requested.clone();
        std::thread::Builder::new()
            .name("outpost-signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    if flag.swap(true, Ordering::SeqCst) {
                        std::process::exit(128 + signal);
                    }
                }
            })
            .map_err(|source| CliError::Io {
                what: "cannot start the signal thread".into(),
                source,
            })?;
        Ok(StopSignals { requested, handle })
    }

    /// Whether SIGINT or SIGTERM arrived.
    pub fn requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }
}

impl Drop for StopSignals {
    fn drop(&mut self) {
        self.handle.close();
    }
}

/// Session timeout of a group member the CLI joins (`--join`): a member that stops (killed)
/// has its partitions moved after this long.
pub const SESSION_TIMEOUT_MS: u32 = 10_000;
/// Longest long poll of a group consumer: it also bounds how late a heartbeat, a rebalance
/// or a stop signal is noticed, and how long records of one partition wait while another is
/// long-polled.
pub const GROUP_WAIT_MS: u32 = 500;

/// How long a command that stops after `idle_exit_ms` without a new record may long-poll now
/// (`idle_since`: the start, or the last record), at most `cap`.
pub fn wait_ms(idle_exit_ms: Option<u64>, idle_since: std::time::Instant, cap: u32) -> u32 {
    match idle_exit_ms {
        Some(ms) => {
            let left = u128::from(ms).saturating_sub(idle_since.elapsed().as_millis());
            u32::try_from(left).unwrap_or(u32::MAX).min(cap)
        }
        None => cap,
    }
}

/// Whether `idle_exit_ms` passed since `idle_since`.
pub fn idle_expired(idle_exit_ms: Option<u64>, idle_since: std::time::Instant) -> bool {
    idle_exit_ms.is_some_and(|ms| idle_since.elapsed().as_millis() >= u128::from(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addr_flag_beats_env_beats_default() {
        assert_eq!(resolve_addr(Some("10.0.0.1:1"), Some("h:2")), "10.0.0.1:1");
        assert_eq!(resolve_addr(None, Some("h:2")), "h:2");
        assert_eq!(resolve_addr(None, Some("  ")), "127.0.0.1:7478");
        assert_eq!(resolve_addr(None, None), "127.0.0.1:7478");
    }
}
