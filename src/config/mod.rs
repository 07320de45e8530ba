//! Config and board files, resolved into the settings the broker runs with.
//!
//! Two kinds of TOML file, both read through serde with unknown keys refused:
//! - a board file (`boards/NAME.toml`) says what the hardware is: flash geometry, RAM budget,
//!   default listen address, and optionally storage limits that suit it;
//! - the config file (`config/outpost.toml` is the embedded default) says how this gateway
//!   runs: which board, where the data lives, the ring's policies and limits, the log level.
//!
//! Each setting is taken from the first of: command-line flags ([`Overrides`]), the config
//! file, the board, the built-in defaults ([`RingConfig::dev_default`]). The result is
//! validated as a whole (the ring's rules, then the board's memory budget) before anything
//! touches the disk, and an error names the file and key that gave the bad value, so the
//! operator knows which file to edit.

mod board;
mod broker;
mod bytesize;
mod error;
mod file;
mod groups;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use board::{Board, embedded_boards, parse_board};
pub use broker::{
    BrokerConfig, FRAME_SLACK_BYTES_DEFAULT, FRAME_SLACK_BYTES_MIN, frame_bytes_max_default,
};
pub use bytesize::{ACCEPTED_UNITS, ByteSize, ByteSizeError};
pub use error::ConfigFileError;

use crate::forwarder::{ForwarderConfig, Partitioning, Route};
use crate::storage::{ConfigError, RingConfig};
use file::ConfigFile;

/// The embedded default config file, used when no `--config` is given.
pub const DEFAULT_CONFIG_TEXT: &str = include_str!("../../config/outpost.toml");

/// The `config_source` of settings loaded from [`DEFAULT_CONFIG_TEXT`].
pub const EMBEDDED_CONFIG_LABEL: &str = "embedded default";

/// The data directory used when neither `--data` nor the config file gives one.
pub const DEFAULT_DATA_DIR: &str = "./data";

/// What the command line says, each beating the config file and the board.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--config PATH`: the config file; the embedded default when absent.
    pub config: Option<PathBuf>,
    /// `--board NAME|PATH`: an embedded board's name, or a path to a board file (it contains a
    /// '/' or ends in `.toml`; relative to the working directory).
    pub board: Option<String>,
    /// `--listen ADDR`: the address to listen on, as `ip:port`.
    pub listen: Option<String>,
    /// `--data DIR`: the data directory.
    pub data: Option<PathBuf>,
}

/// Everything resolved and validated: what `serve` runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The board, as read from its file.
    pub board: Board,
    /// Where the board came from: `boards/NAME.toml (embedded)` or the path read.
    pub board_source: String,
    /// The data directory (a relative path is relative to the working directory).
    pub data_dir: PathBuf,
    /// The address to listen on.
    pub listen_addr: SocketAddr,
    /// The ring's configuration; `validate()` passed and it fits the memory budget.
    pub ring: RingConfig,
    /// The broker's limits (`[broker]`); `validate()` passed against `ring`.
    pub broker: BrokerConfig,
    /// The log level from the config file (the CLI lets `RUST_LOG` override it).
    pub log_level: log::LevelFilter,
    /// Where the config came from: [`EMBEDDED_CONFIG_LABEL`] or the path read.
    pub config_source: String,
    /// `[forwarder]`, validated; `None` when the file has no such table.
    pub forwarder: Option<ForwarderConfig>,
}

/// Loads the config file named by `overrides.config` (or the embedded default), its board,
/// applies the overrides and validates the result.
pub fn load(overrides: &Overrides) -> Result<Settings, ConfigFileError> {
    match &overrides.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
                path: path.clone(),
                source,
            })?;
            let label = path.display().to_string();
            parse_config(&label, &text, path.parent(), overrides)
        }
        None => parse_config(EMBEDDED_CONFIG_LABEL, DEFAULT_CONFIG_TEXT, None, overrides),
    }
}

/// Resolves config text into settings: what [`load`] does once it has the text. `label` names
/// the config file in errors and becomes `config_source`; `base_dir` is the directory a
/// relative board path in the file is taken from (`None`: the working directory).
/// `overrides.config` is not looked at.
pub fn parse_config(
    label: &str,
    text: &str,
    base_dir: Option<&Path>,
    overrides: &Overrides,
) -> Result<Settings, ConfigFileError> {
    let file: ConfigFile = toml::from_str(text).map_err(|source| ConfigFileError::Parse {
        file: label.to_owned(),
        source,
    })?;

    // The board: `--board` (relative to the working directory), else the file's `board` key
    // (relative to the file's directory). Not defaulted: the geometry must be stated.
    let (board, board_label) = match (&overrides.board, &file.board) {
        (Some(flag), _) => board::resolve_board(flag, None)?,
        (None, Some(key)) => board::resolve_board(key, base_dir)?,
        (None, None) => {
            return Err(ConfigFileError::Invalid {
                file: label.to_owned(),
                key: "board".to_owned(),
                reason: format!(
                    "missing: set it to an embedded board ({}) or a path to a board file, or \
                     pass --board",
                    board_names().join(", ")
                ),
            });
        }
    };

    let listen_addr = match (&overrides.listen, &file.listen_addr) {
        (Some(flag), _) => parse_addr("command line", "--listen", flag)?,
        (None, Some(key)) => parse_addr(label, "listen_addr", key)?,
        (None, None) => board.listen_addr,
    };

    let data_dir = overrides
        .data
        .clone()
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));

    let (ring, origins) = resolve_ring(&file.storage, &board);
    let blame = Blame {
        config_label: label,
        board_label: &board_label,
        origins: &origins,
    };
    ring.validate().map_err(|e| blame.invalid(e))?;

    let needed = ring.ram_bytes_estimate();
    if needed > board.memory_budget_bytes {
        return Err(ConfigFileError::Invalid {
            file: board_label,
            key: "memory_budget_bytes".to_owned(),
            reason: format!(
                "the ring needs up to {needed} bytes ({}) of RAM with these settings, more than \
                 the board's budget of {} bytes ({}); lower group_bytes_max, read_chunk_bytes, \
                 append_queue_max, meta_bytes_max or partitions_max, or raise \
                 index_interval_bytes or segment_bytes, in the config file's [storage]; or \
                 raise memory_budget_bytes here if the gateway has the RAM to spare",
                approx(needed),
                board.memory_budget_bytes,
                approx(board.memory_budget_bytes),
            ),
        });
    }

    let mut broker = resolve_broker(label, &file.broker, &ring)?;
    broker.groups = groups::resolve_groups(label, &file.groups)?;
    let forwarder = match &file.forwarder {
        None => None,
        Some(f) => Some(resolve_forwarder(label, f, &ring)?),
    };

    Ok(Settings {
        board,
        board_source: board_label,
        data_dir,
        listen_addr,
        ring,
        broker,
        log_level: file.log.level.into(),
        config_source: label.to_owned(),
        forwarder,
    })
}

/// `[forwarder]` with its defaults filled in, validated.
fn resolve_forwarder(
    label: &str,
    f: &file::ForwarderSection,
    ring: &RingConfig,
) -> Result<ForwarderConfig, ConfigFileError> {
    use crate::forwarder::config as d;
    let cfg = ForwarderConfig {
        bootstrap_servers: f.bootstrap_servers.clone(),
        gateway_id: f.gateway_id.clone(),
        transactional_id: f
            .transactional_id
            .clone()
            .unwrap_or_else(|| format!("outpost-{}", f.gateway_id)),
        cursor_topic: f
            .cursor_topic
            .clone()
            .unwrap_or_else(|| d::CURSOR_TOPIC_DEFAULT.to_owned()),
        routes: f
            .route
            .iter()
            .map(|r| Route {
                edge_topic: r.edge_topic.clone(),
                upstream_topic: r.upstream_topic.clone(),
                partitioning: match r.partitioning {
                    file::PartitioningName::Same => Partitioning::Same,
                    file::PartitioningName::KeyHash => Partitioning::KeyHash,
                },
            })
            .collect(),
        batch_bytes_max: f
            .batch_bytes_max
            .map_or(d::BATCH_BYTES_MAX_DEFAULT, u64::from),
        upstream_batch_bytes_max: f
            .upstream_batch_bytes_max
            .map_or(d::UPSTREAM_BATCH_BYTES_MAX_DEFAULT, u64::from),
        linger_ms: f.linger_ms.unwrap_or(d::LINGER_MS_DEFAULT),
        retry_ms_min: f.retry_ms_min.unwrap_or(d::RETRY_MS_MIN_DEFAULT),
        retry_ms_max: f.retry_ms_max.unwrap_or(d::RETRY_MS_MAX_DEFAULT),
        request_timeout_ms: f
            .request_timeout_ms
            .unwrap_or(d::REQUEST_TIMEOUT_MS_DEFAULT),
        transaction_timeout_ms: f
            .transaction_timeout_ms
            .unwrap_or(d::TRANSACTION_TIMEOUT_MS_DEFAULT),
        response_bytes_max: f
            .response_bytes_max
            .map_or(d::RESPONSE_BYTES_MAX_DEFAULT, u64::from),
    };
    cfg.validate().map_err(|e| ConfigFileError::Invalid {
        file: label.to_owned(),
        key: format!("forwarder.{}", e.key),
        reason: e.reason,
    })?;
    // The largest edge record, its origin headers and Kafka's framing must fit in one
    // upstream batch, or it could never be forwarded.
    let floor = ring.batch_bytes_max.saturating_add(4 << 10);
    if cfg.upstream_batch_bytes_max < floor {
        return Err(ConfigFileError::Invalid {
            file: label.to_owned(),
            key: "forwarder.upstream_batch_bytes_max".to_owned(),
            reason: format!(
                "{} is less than [storage] batch_bytes_max + 4 KiB ({floor}): the largest \
                 record a producer may store would not fit in one upstream batch",
                cfg.upstream_batch_bytes_max
            ),
        });
    }
    Ok(cfg)
}

/// The embedded boards' names, for messages.
fn board_names() -> Vec<&'static str> {
    embedded_boards().iter().map(|(name, _)| *name).collect()
}

fn parse_addr(file: &str, key: &str, value: &str) -> Result<SocketAddr, ConfigFileError> {
    value.parse().map_err(|source| ConfigFileError::BadAddress {
        file: file.to_owned(),
        key: key.to_owned(),
        value: value.to_owned(),
        source,
    })
}

/// A size in the largest binary unit, rounded down, for messages ("~3 MiB").
fn approx(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (name, size) in UNITS {
        if bytes >= size {
            let exact = if bytes.is_multiple_of(size) { "" } else { "~" };
            return format!("{exact}{} {name}", bytes / size);
        }
    }
    format!("{bytes} B")
}

/// Which layer a ring setting came from, to point an error at the file to edit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    ConfigFile,
    Board,
    BuiltIn,
}

/// Picks the first layer that has a value: config file, board, built-in default.
fn layered<T>(
    origins: &mut Vec<(&'static str, Origin)>,
    key: &'static str,
    config: Option<T>,
    board: Option<T>,
    default: T,
) -> T {
    let (value, origin) = match (config, board) {
        (Some(v), _) => (v, Origin::ConfigFile),
        (None, Some(v)) => (v, Origin::Board),
        (None, None) => (default, Origin::BuiltIn),
    };
    origins.push((key, origin));
    value
}

/// Builds the ring's configuration from the `[storage]` table and the board, recording where
/// each value came from.
fn resolve_ring(
    storage: &file::StorageSection,
    board: &Board,
) -> (RingConfig, Vec<(&'static str, Origin)>) {
    let d = RingConfig::dev_default();
    let mut o = Vec::with_capacity(12);
    let bytes = |b: Option<ByteSize>| b.map(u64::from);
    // The medium's geometry can only come from the board.
    o.push(("erase_block_bytes", Origin::Board));
    o.push(("program_unit_bytes", Origin::Board));
    let ring = RingConfig {
        erase_block_bytes: board.erase_block_bytes,
        program_unit_bytes: board.program_unit_bytes,
        ring_bytes: layered(
            &mut o,
            "ring_bytes",
            bytes(storage.ring_bytes),
            Some(board.ring_bytes),
            d.ring_bytes,
        ),
        segment_bytes: layered(
            &mut o,
            "segment_bytes",
            bytes(storage.segment_bytes),
            Some(board.segment_bytes),
            d.segment_bytes,
        ),
        full_policy: storage.full_policy.into(),
        corruption_policy: storage.corruption_policy.into(),
        group_bytes_max: layered(
            &mut o,
            "group_bytes_max",
            bytes(storage.group_bytes_max),
            board.group_bytes_max,
            d.group_bytes_max,
        ),
        batch_bytes_max: layered(
            &mut o,
            "batch_bytes_max",
            bytes(storage.batch_bytes_max),
            board.batch_bytes_max,
            d.batch_bytes_max,
        ),
        meta_bytes_max: layered(
            &mut o,
            "meta_bytes_max",
            bytes(storage.meta_bytes_max),
            board.meta_bytes_max,
            d.meta_bytes_max,
        ),
        partitions_max: layered(
            &mut o,
            "partitions_max",
            storage.partitions_max,
            board.partitions_max,
            d.partitions_max,
        ),
        index_interval_bytes: layered(
            &mut o,
            "index_interval_bytes",
            bytes(storage.index_interval_bytes),
            None,
            d.index_interval_bytes,
        ),
        read_chunk_bytes: layered(
            &mut o,
            "read_chunk_bytes",
            bytes(storage.read_chunk_bytes),
            None,
            d.read_chunk_bytes,
        ),
        append_queue_max: layered(
            &mut o,
            "append_queue_max",
            storage.append_queue_max,
            None,
            d.append_queue_max,
        ),
        producers_max: layered(
            &mut o,
            "producers_max",
            storage.producers_max,
            None,
            d.producers_max,
        ),
    };
    (ring, o)
}

/// Builds the broker's limits from the `[broker]` table (defaults for keys left out) and
/// validates them against the ring. Errors name `broker.<key>` in the config file.
fn resolve_broker(
    label: &str,
    section: &file::BrokerSection,
    ring: &RingConfig,
) -> Result<BrokerConfig, ConfigFileError> {
    let invalid = |key: &str, reason: String| ConfigFileError::Invalid {
        file: label.to_owned(),
        key: format!("broker.{key}"),
        reason,
    };
    let bytes_u32 = |key: &str, value: Option<ByteSize>, default: u32| match value {
        None => Ok(default),
        Some(b) => u32::try_from(b.bytes())
            .map_err(|_| invalid(key, format!("{} is larger than 4 GiB - 1", b.bytes()))),
    };
    let d = BrokerConfig::defaults_for(ring);
    let broker = BrokerConfig {
        connections_max: section.connections_max.unwrap_or(d.connections_max),
        inflight_max: section.inflight_max.unwrap_or(d.inflight_max),
        frame_bytes_max: bytes_u32(
            "frame_bytes_max",
            section.frame_bytes_max,
            d.frame_bytes_max,
        )?,
        topics_max: section.topics_max.unwrap_or(d.topics_max),
        partitions_per_topic_max: section
            .partitions_per_topic_max
            .unwrap_or(d.partitions_per_topic_max),
        idle_timeout_ms: section.idle_timeout_ms.unwrap_or(d.idle_timeout_ms),
        fetch_wait_ms_max: section.fetch_wait_ms_max.unwrap_or(d.fetch_wait_ms_max),
        fetch_bytes_max: bytes_u32(
            "fetch_bytes_max",
            section.fetch_bytes_max,
            d.fetch_bytes_max,
        )?,
        groups: d.groups,
    };
    broker.validate(ring).map_err(|e| {
        let reason = if e.key == "frame_bytes_max" && section.frame_bytes_max.is_none() {
            format!(
                "{} (this is the default, batch_bytes_max + 64 KiB; set broker.frame_bytes_max)",
                e.reason
            )
        } else {
            e.reason
        };
        invalid(e.key, reason)
    })?;
    Ok(broker)
}

/// The storage limits a board file may set.
const BOARD_LIMITS: [&str; 4] = [
    "group_bytes_max",
    "batch_bytes_max",
    "meta_bytes_max",
    "partitions_max",
];

/// Turns the ring's `ConfigError` into an error about the file the bad value came from.
struct Blame<'a> {
    config_label: &'a str,
    board_label: &'a str,
    origins: &'a [(&'static str, Origin)],
}

impl Blame<'_> {
    fn invalid(&self, e: ConfigError) -> ConfigFileError {
        let origin = self
            .origins
            .iter()
            .find(|(key, _)| *key == e.key)
            .map_or(Origin::Board, |(_, origin)| *origin);
        let key = e.key;
        match origin {
            Origin::ConfigFile => ConfigFileError::Invalid {
                file: self.config_label.to_owned(),
                key: format!("storage.{key}"),
                reason: e.reason,
            },
            Origin::Board => ConfigFileError::Invalid {
                file: self.board_label.to_owned(),
                key: key.to_owned(),
                reason: e.reason,
            },
            Origin::BuiltIn => {
                let board_too = if BOARD_LIMITS.contains(&key) {
                    format!(", or {key} in the board file {}", self.board_label)
                } else {
                    String::new()
                };
                ConfigFileError::Invalid {
                    file: self.config_label.to_owned(),
                    key: format!("storage.{key}"),
                    reason: format!(
                        "{} (this is the built-in default; set storage.{key} in the config \
                         file{board_too})",
                        e.reason
                    ),
                }
            }
        }
    }
}
