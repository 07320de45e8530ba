//! What several commands share: the flags that locate the configuration and the storage, and
//! the steps that turn them into settings, a logger and the ring file's path.

use std::path::PathBuf;

use clap::Args;

use super::CliError;
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
