//! `outpost serve`: opens (or creates) the ring in the data directory, recovers it, starts the
//! broker on it (topic registry, group-commit log), binds the listen address, prints
//! `listening on <addr>` on stdout, and serves until SIGTERM or SIGINT; then it stops
//! accepting, lets the requests in flight finish, finishes the queued appends, syncs and
//! exits 0.

use std::io::Write as _;
use std::sync::Arc;

use clap::Args as ClapArgs;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::common::{self, StorageArgs};
use super::{CliError, EXIT_OK};
use crate::broker::{Broker, server};
use crate::config::Settings;
use crate::forwarder;
use crate::storage::flash::FileFlash;
use crate::storage::{RecoveryReport, Ring};

#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(flatten)]
    storage: StorageArgs,
    /// Address to listen on (ip:port; port 0 picks a free port). Overrides the config file's
    /// listen_addr and the board's. The address bound is printed on stdout as
    /// `listening on <addr>`.
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
}

pub fn run(args: Args) -> Result<i32, CliError> {
    let settings = common::load_settings(&args.storage.overrides(args.listen))?;
    common::init_logger(settings.log_level);
    // Installed before the storage opens, so a signal during start-up is not lost: it ends
    // the run as soon as the server is up, cleanly.
    let signals = Signals::new([SIGTERM, SIGINT]).map_err(CliError::Signal)?;

    log::info!(
        "outpost {}: config {}, board {} ({}), data {}, listen {}",
        env!("CARGO_PKG_VERSION"),
        settings.config_source,
        settings.board.name,
        settings.board_source,
        settings.data_dir.display(),
        settings.listen_addr,
    );
    let ring = open_ring(&settings)?;
    let forwarding = settings
        .forwarder
        .as_ref()
        .map(|_| Arc::new(forwarder::Status::default()));
    let forwarded = settings
        .forwarder
        .iter()
        .flat_map(|f| f.routes.iter().map(|r| r.edge_topic.clone()))
        .collect();
    let broker =
        Broker::start_forwarding(ring, settings.broker.clone(), forwarded, forwarding.clone())
            .map_err(|e| CliError::Io {
                what: "cannot start the broker".into(),
                source: std::io::Error::other(e),
            })?;
    // The forwarder thread is not joined at shutdown: it may be blocked in a Kafka request
    // for up to request_timeout_ms, and whatever it leaves open upstream is settled by the
    // next start's InitProducerId (docs/FORWARDING.md section 6).
    if let (Some(cfg), Some(status)) = (settings.forwarder.clone(), forwarding) {
        log::info!(
            "forwarder: to {} as gateway {:?}, transactional id {:?}, {} route(s)",
            cfg.bootstrap_servers.join(","),
            cfg.gateway_id,
            cfg.transactional_id,
            cfg.routes.len()
        );
        if let Err(source) = forwarder::spawn(broker.clone(), cfg, status) {
            broker.close();
            return Err(CliError::Io {
                what: "cannot start the forwarder thread".into(),
                source,
            });
        }
    }
    log::info!(
        "outpost serving storage in {} (ring {} bytes, {} segments)",
        settings.data_dir.display(),
        settings.ring.ring_bytes,
        settings.ring.segment_count(),
    );

    let bound = smol::block_on(smol::net::TcpListener::bind(settings.listen_addr))
        .and_then(|l| l.local_addr().map(|a| (l, a)));
    let (listener, addr) = match bound {
        Ok(bound) => bound,
        Err(source) => {
            broker.close();
            return Err(CliError::Io {
                what: format!("cannot listen on {}", settings.listen_addr),
                source,
            });
        }
    };
    // The one line on stdout: tests and `outpost bench` read the address from it.
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "listening on {addr}").and_then(|()| out.flush()) {
        log::warn!("cannot print the listen address on stdout: {e}");
    }
    drop(out);
    log::info!("listening on {addr}");

    // Signals arrive on their own thread and end the server through a channel.
    let handle = signals.handle();
    let (signal_tx, signal_rx) = smol::channel::bounded::<i32>(1);
    let mut signals = signals;
    std::thread::Builder::new()
        .name("outpost-signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                let _ = signal_tx.send_blocking(signal);
            }
        })
        .map_err(|source| CliError::Io {
            what: "cannot start the signal thread".into(),
            source,
        })?;
    let shutdown = async move {
        let name = match signal_rx.recv().await {
            Ok(SIGTERM) => "SIGTERM",
            Ok(SIGINT) => "SIGINT",
            _ => "a signal",
        };
        log::info!("{name} received: stopping; finishing requests in flight");
    };
    let served = smol::block_on(server::run(listener, broker.clone(), shutdown));
    handle.close();
    log::info!("finishing queued appends and syncing");
    broker.close();
    served.map_err(|source| CliError::Io {
        what: format!("serving {addr} failed"),
        source,
    })?;
    log::info!("stopped cleanly");
    Ok(EXIT_OK)
}

/// Creates the data directory if needed, opens the ring file (creating it on first use) and
/// recovers the ring.
fn open_ring(settings: &Settings) -> Result<Ring<FileFlash>, CliError> {
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
    Ok(ring)
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
