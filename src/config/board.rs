//! Board profiles: what the gateway's hardware is (flash geometry, RAM budget, where to
//! listen), one TOML file per supported gateway class under `boards/`.
//!
//! The shipped boards are compiled into the binary so that `--board rpi4-sdcard` works on a
//! gateway that only has the binary; any other board is a TOML file given by path.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::bytesize::ByteSize;
use super::error::ConfigFileError;

/// The shipped boards, sorted by name: (name, TOML text).
const EMBEDDED: &[(&str, &str)] = &[
    ("emmc-8g", include_str!("../../boards/emmc-8g.toml")),
    ("rpi4-sdcard", include_str!("../../boards/rpi4-sdcard.toml")),
    ("spi-nor-16m", include_str!("../../boards/spi-nor-16m.toml")),
    ("x86_64-dev", include_str!("../../boards/x86_64-dev.toml")),
];

/// The boards compiled into the binary, sorted by name: (name, TOML text).
pub fn embedded_boards() -> &'static [(&'static str, &'static str)] {
    EMBEDDED
}

/// A gateway class, as read from its board file. Sizes are in bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Board {
    /// The board's name; equal to its file name without `.toml`.
    pub name: String,
    /// The Rust target the broker is built for on this board (informational: shown by
    /// `status`, used by release tooling; the running binary does not check it).
    pub target_triple: String,
    /// Smallest erasable unit of the medium.
    pub erase_block_bytes: u64,
    /// Smallest programmable (writable) unit of the medium.
    pub program_unit_bytes: u64,
    /// Size of the preallocated ring, unless the config file overrides it.
    pub ring_bytes: u64,
    /// Size of one ring segment, unless the config file overrides it.
    pub segment_bytes: u64,
    /// RAM the ring may use at most; the resolved ring's estimate is checked against it.
    pub memory_budget_bytes: u64,
    /// Where the broker listens, unless the config file or `--listen` says otherwise.
    pub listen_addr: SocketAddr,
    /// Storage limits suited to the board, used unless the config file sets them. Small
    /// media need them: on a 256 KiB segment the default 1 MiB group cannot fit.
    pub group_bytes_max: Option<u64>,
    pub batch_bytes_max: Option<u64>,
    pub meta_bytes_max: Option<u64>,
    pub partitions_max: Option<u32>,
}

/// The board file's schema. Unknown keys are refused so a typo is an error, not a silently
/// ignored setting.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BoardFile {
    name: String,
    target_triple: String,
    erase_block_bytes: ByteSize,
    program_unit_bytes: ByteSize,
    ring_bytes: ByteSize,
    segment_bytes: ByteSize,
    memory_budget_bytes: ByteSize,
    listen_addr: String,
    group_bytes_max: Option<ByteSize>,
    batch_bytes_max: Option<ByteSize>,
    meta_bytes_max: Option<ByteSize>,
    partitions_max: Option<u32>,
}

/// Whether a board reference is a path (contains '/' or ends in `.toml`) rather than the name
/// of an embedded board.
pub(crate) fn is_path(reference: &str) -> bool {
    reference.contains('/') || reference.ends_with(".toml")
}

/// Parses a board file. `name_or_path_label` is the embedded board's name or the file's path:
/// the board's `name` must equal it (for a path, its file name without `.toml`), and it labels
/// the errors.
pub fn parse_board(name_or_path_label: &str, text: &str) -> Result<Board, ConfigFileError> {
    let expected = if is_path(name_or_path_label) {
        stem(Path::new(name_or_path_label))
    } else {
        name_or_path_label.to_owned()
    };
    parse_board_at(name_or_path_label, &expected, text)
}

/// Parses a board file, labelling errors with `file` and requiring `name == expected`.
fn parse_board_at(file: &str, expected: &str, text: &str) -> Result<Board, ConfigFileError> {
    let raw: BoardFile = toml::from_str(text).map_err(|source| ConfigFileError::Parse {
        file: file.to_owned(),
        source,
    })?;
    if raw.name != expected {
        return Err(ConfigFileError::BoardNameMismatch {
            file: file.to_owned(),
            name: raw.name,
            expected: expected.to_owned(),
        });
    }
    let listen_addr = raw
        .listen_addr
        .parse()
        .map_err(|source| ConfigFileError::BadAddress {
            file: file.to_owned(),
            key: "listen_addr".to_owned(),
            value: raw.listen_addr.clone(),
            source,
        })?;
    Ok(Board {
        name: raw.name,
        target_triple: raw.target_triple,
        erase_block_bytes: raw.erase_block_bytes.0,
        program_unit_bytes: raw.program_unit_bytes.0,
        ring_bytes: raw.ring_bytes.0,
        segment_bytes: raw.segment_bytes.0,
        memory_budget_bytes: raw.memory_budget_bytes.0,
        listen_addr,
        group_bytes_max: raw.group_bytes_max.map(|b| b.0),
        batch_bytes_max: raw.batch_bytes_max.map(|b| b.0),
        meta_bytes_max: raw.meta_bytes_max.map(|b| b.0),
        partitions_max: raw.partitions_max,
    })
}

/// A file's name without its extension, as the board name it must carry.
fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The label errors use for an embedded board: where its source lives in the repository.
pub(crate) fn embedded_label(name: &str) -> String {
    format!("boards/{name}.toml (embedded)")
}

/// Finds a board by reference: an embedded board's name, or a path to a board file. A
/// relative path is taken relative to `base_dir` (the directory of the config file that named
/// it) when given, else to the working directory. Returns the board and the label of its file.
pub(crate) fn resolve_board(
    reference: &str,
    base_dir: Option<&Path>,
) -> Result<(Board, String), ConfigFileError> {
    if is_path(reference) {
        let given = PathBuf::from(reference);
        let path = match base_dir {
            Some(base) if given.is_relative() => base.join(given),
            _ => given,
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigFileError::Read {
            path: path.clone(),
            source,
        })?;
        let label = path.display().to_string();
        let board = parse_board_at(&label, &stem(&path), &text)?;
        return Ok((board, label));
    }
    match EMBEDDED.iter().find(|(name, _)| *name == reference) {
        Some((name, text)) => {
            let label = embedded_label(name);
            Ok((parse_board_at(&label, name, text)?, label))
        }
        None => Err(ConfigFileError::UnknownBoard {
            name: reference.to_owned(),
            known: EMBEDDED
                .iter()
                .map(|(name, _)| (*name).to_owned())
                .collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        name = "test-board"
        target_triple = "x86_64-unknown-linux-gnu"
        erase_block_bytes = "64 KiB"
        program_unit_bytes = 512
        ring_bytes = "64 MiB"
        segment_bytes = "4 MiB"
        memory_budget_bytes = "32 MiB"
        listen_addr = "127.0.0.1:7478"
    "#;

    #[test]
    fn every_embedded_board_parses_and_is_named_after_its_file() {
        let names: Vec<&str> = embedded_boards().iter().map(|(n, _)| *n).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted, "EMBEDDED must stay sorted");
        for required in ["rpi4-sdcard", "emmc-8g", "spi-nor-16m", "x86_64-dev"] {
            assert!(names.contains(&required), "{required} missing");
        }
        for (name, text) in embedded_boards() {
            let board = parse_board(name, text).unwrap();
            assert_eq!(board.name, *name);
            assert!(
                text.trim_start().starts_with('#'),
                "{name}: no header comment"
            );
        }
    }

    #[test]
    fn parses_sizes_and_address() {
        let b = parse_board("test-board", GOOD).unwrap();
        assert_eq!(b.erase_block_bytes, 64 * 1024);
        assert_eq!(b.program_unit_bytes, 512);
        assert_eq!(b.ring_bytes, 64 << 20);
        assert_eq!(b.listen_addr, "127.0.0.1:7478".parse().unwrap());
        assert_eq!(b.group_bytes_max, None);
    }

    #[test]
    fn refuses_unknown_key() {
        let text = format!("{GOOD}\nflash_speed = 3\n");
        let e = parse_board("test-board", &text).unwrap_err();
        assert!(matches!(e, ConfigFileError::Parse { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains("flash_speed"), "{msg}");
        assert!(msg.contains("test-board"), "{msg}");
    }

    #[test]
    fn refuses_missing_key() {
        let text = GOOD.replace("program_unit_bytes = 512", "");
        let msg = parse_board("test-board", &text).unwrap_err().to_string();
        assert!(msg.contains("program_unit_bytes"), "{msg}");
    }

    #[test]
    fn refuses_name_not_matching_file() {
        let e = parse_board("boards/other.toml", GOOD).unwrap_err();
        assert!(
            matches!(e, ConfigFileError::BoardNameMismatch { .. }),
            "{e:?}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains("\"other\"") && msg.contains("test-board"),
            "{msg}"
        );
        parse_board("some/dir/test-board.toml", GOOD).unwrap();
    }

    #[test]
    fn refuses_bad_listen_address() {
        let text = GOOD.replace("127.0.0.1:7478", "localhost");
        let e = parse_board("test-board", &text).unwrap_err();
        assert!(matches!(e, ConfigFileError::BadAddress { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains("listen_addr") && msg.contains("localhost"),
            "{msg}"
        );
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn unknown_board_lists_the_known_ones() {
        let e = resolve_board("rpi5", None).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("rpi5"), "{msg}");
        for (name, _) in embedded_boards() {
            assert!(msg.contains(name), "{msg}");
        }
    }

    #[test]
    fn board_path_that_does_not_exist_is_a_read_error() {
        let e = resolve_board("/nonexistent/dir/b.toml", None).unwrap_err();
        assert!(matches!(e, ConfigFileError::Read { .. }), "{e:?}");
        assert!(e.to_string().contains("/nonexistent/dir/b.toml"), "{e}");
    }
}
