//! `outpost serve`: opens (or creates) the ring in the data directory, recovers it, starts the
//! group-commit log, and runs until SIGTERM or SIGINT, then finishes the queued appends,
//! syncs and exits 0.
//!
//! The network protocol arrives with the broker issue: the listen address is resolved and
//! validated now, but nothing is bound yet.

use clap::Args as ClapArgs;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::common::{self, StorageArgs};
use super::{CliError, EXIT_OK};
use crate::config::Settings;
use crate::storage::flash::FileFlash;
use crate::storage::{Log, RecoveryReport, Ring};

#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(flatten)]
    storage: StorageArgs,
    /// Address to listen on (ip:port). Overrides the config file's listen_addr and the
    /// board's.
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
}

pub fn run(args: Args) -> Result<i32, CliError> {
    let settings = common::load_settings(&args.storage.overrides(args.listen))?;
    common::init_logger(settings.log_level);
    // Installed before the storage opens, so a signal during start-up is not lost: it ends
    // the run as soon as the log is up, cleanly.
    let mut signals = Signals::new([SIGTERM, SIGINT]).map_err(CliError::Signal)?;

    log::info!(
        "outpost {}: config {}, board {} ({}), data {}, listen {}",
        env!("CARGO_PKG_VERSION"),
        settings.config_source,
        settings.board.name,
        settings.board_source,
        settings.data_dir.display(),
        settings.listen_addr,
    );
    let log = open_log(&settings)?;
    log::info!(
        "outpost serving storage in {} (ring {} bytes, {} segments); the network protocol \
         arrives with the broker issue",
        settings.data_dir.display(),
        settings.ring.ring_bytes,
        settings.ring.segment_count(),
    );

    let signal = signals.forever().next();
    let name = match signal {
        Some(SIGTERM) => "SIGTERM",
        Some(SIGINT) => "SIGINT",
        _ => "a signal",
    };
    log::info!("{name} received: finishing queued appends and syncing");
    log.close();
    log::info!("stopped cleanly");
    Ok(EXIT_OK)
}

/// Creates the data directory if needed, opens the ring file (creating it on first use),
/// recovers the ring and starts its writer.
fn open_log(settings: &Settings) -> Result<Log<FileFlash>, CliError> {
    let dir = &settings.data_dir;
    if !dir.is_dir() {
        std::fs::create_dir_all(dir).map_err(|source| CliError::Io {
            what: format!("cannot create the data directory {}", dir.display()),
            source,
        })?;
        log::info!("created the data directory {}", dir.display());
    }
    let path = common::ring_path(settings);
    let geometry = common::geometry(settings)?;
    let (flash, created) = FileFlash::open_or_create(&path, geometry)
        .map_err(|e| CliError::opening(path.clone(), false, e))?;
    if created {
        log::info!(
            "created the ring file {} ({} bytes, erased)",
            path.display(),
            geometry.capacity_bytes()
        );
    }
    let (ring, report) =
        Ring::open(flash, settings.ring.clone()).map_err(|source| CliError::Storage {
            path: path.clone(),
            source,
        })?;
    log_report(&report);
    Log::start(ring).map_err(|source| CliError::Io {
        what: "cannot start the log writer thread".into(),
        source,
    })
}

/// Logs what recovery found: a summary at info, skipped damage at warn. (Recovery itself logs
/// each damaged region as it skips it, and `Ring::open` the torn tail it drops.)
fn log_report(report: &RecoveryReport) {
    if report.blank {
        return; // `Ring::open` logged that it formatted the ring.
    }
    let (oldest, newest) = match (report.segments.first(), report.segments.last()) {
        (Some(first), Some(last)) => (first.seq, last.seq),
        _ => Default::default(),
    };
    let records: u64 = report.segments.iter().map(|s| s.records).sum();
    log::info!(
        "storage: recovered {} segment(s) (sequences {oldest}..={newest}), {records} \
         record(s) in {} partition(s), {} metadata entr{} ({} bytes){}",
        report.segments.len(),
        report.partitions.len(),
        report.meta_entries,
        if report.meta_entries == 1 { "y" } else { "ies" },
        report.meta_bytes,
        if report.torn_tail.is_some() {
            "; a torn tail was dropped"
        } else {
            ""
        },
    );
    for (partition, earliest, next) in &report.partitions {
        log::debug!("storage: partition {partition}: offsets {earliest}..{next}");
    }
    if !report.damage.is_empty() {
        log::warn!(
            "storage: {} damaged region(s) skipped under corruption_policy = \"skip-segment\" \
             ({} bytes of batches lost); stop the broker and run `outpost fsck` for the full \
             report",
            report.damage.len(),
            report.skipped_bytes
        );
    }
}
