//! Why a configuration could not be loaded.
//!
//! Each variant is one thing an operator got wrong, and its message names the file and the key
//! to fix (promise 8: a bad config file gets a precise error). The message already includes the
//! cause's text, so printing the `Display` alone is enough; `source()` still returns the cause
//! for callers that want the typed error.

use core::fmt;
use std::io;
use std::net::AddrParseError;
use std::path::PathBuf;

/// A config or board file that could not be read, parsed, or resolved into a valid ring.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConfigFileError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    Read { path: PathBuf, source: io::Error },
    /// The file is not valid TOML for its schema: a syntax error, an unknown key, a missing key,
    /// a wrong type or a refused value (bad unit, unknown policy). toml's message carries the
    /// key, line and column.
    Parse {
        file: String,
        source: toml::de::Error,
    },
    /// A board name that is neither embedded nor a path.
    UnknownBoard { name: String, known: Vec<String> },
    /// A board file whose `name` is not its file name; refused so that the name shown in logs
    /// and `status` is always the file an operator would go and edit.
    BoardNameMismatch {
        file: String,
        name: String,
        expected: String,
    },
    /// A value that parses but that the ring or the board's memory budget cannot work with.
    /// `key` is written as in `file` (e.g. `storage.segment_bytes` in a config file,
    /// `segment_bytes` in a board file).
    Invalid {
        file: String,
        key: String,
        reason: String,
    },
    /// A listen address that is not `ip:port`. `file` is where it came from ("command line"
    /// for the `--listen` flag) and `key` is the flag or key.
    BadAddress {
        file: String,
        key: String,
        value: String,
        source: AddrParseError,
    },
}

impl fmt::Display for ConfigFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigFileError::Read { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            ConfigFileError::Parse { file, source } => {
                write!(f, "{file}: {}", source.to_string().trim_end())
            }
            ConfigFileError::UnknownBoard { name, known } => write!(
                f,
                "unknown board {name:?}: the embedded boards are {}; to use another board, \
                 give the path to its TOML file (containing '/' or ending in .toml)",
                known.join(", ")
            ),
            ConfigFileError::BoardNameMismatch {
                file,
                name,
                expected,
            } => write!(
                f,
                "{file}: name = {name:?} does not match the file name; it must be {expected:?}"
            ),
            ConfigFileError::Invalid { file, key, reason } => {
                write!(f, "{file}: {key}: {reason}")
            }
            ConfigFileError::BadAddress {
                file,
                key,
                value,
                source,
            } => write!(
                f,
                "{file}: {key} = {value:?} is not a socket address (expected ip:port, e.g. \
                 \"0.0.0.0:7478\" or \"[::1]:7478\"): {source}"
            ),
        }
    }
}

impl std::error::Error for ConfigFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigFileError::Read { source, .. } => Some(source),
            ConfigFileError::Parse { source, .. } => Some(source),
            ConfigFileError::BadAddress { source, .. } => Some(source),
            ConfigFileError::UnknownBoard { .. }
            | ConfigFileError::BoardNameMismatch { .. }
            | ConfigFileError::Invalid { .. } => None,
        }
    }
}
