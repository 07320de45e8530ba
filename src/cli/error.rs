//! The CLI's errors: each variant says what the command was doing, and keeps the typed cause
//! as its `source()` so the printed chain ends with the precise reason.

use core::fmt;
use std::io;
use std::path::PathBuf;

use crate::client::ClientError;
use crate::config::ConfigFileError;
use crate::storage::OpenError;
use crate::storage::flash::FlashError;

/// Why a command failed (exit code 1; 2 for [`CliError::Usage`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum CliError {
    /// The config file, the board or a flag is wrong (the message names the file and key).
    Config(ConfigFileError),
    /// The ring file could not be opened: wrong size, I/O error, bad geometry.
    Flash { path: PathBuf, source: FlashError },
    /// The ring file is locked by another process: a running broker, or an fsck of it.
    InUse {
        path: PathBuf,
        /// True for `fsck`, which needs the broker stopped.
        read_only: bool,
    },
    /// `fsck` found no ring file to check.
    NoRing { path: PathBuf },
    /// Recovery could not make sense of the ring (corruption under `refuse`, a geometry that
    /// disagrees with the configuration, not a ring at all, a read error).
    Storage { path: PathBuf, source: OpenError },
    /// A plain I/O step failed; `what` says which ("cannot create the data directory ...").
    Io { what: String, source: io::Error },
    /// The SIGTERM/SIGINT handlers could not be installed.
    Signal(io::Error),
    /// A request to the broker failed; `what` says which ("cannot create topic t").
    Client { what: String, source: ClientError },
    /// `bench` could not start, reach or measure the broker it runs.
    Bench(String),
    /// The command line parsed but asks for something the command refuses (a combination of
    /// values clap cannot express): printed like clap's own usage errors, exit code 2. Made
    /// by [`crate::cli::usage_error`].
    Usage(Box<clap::Error>),
}

impl CliError {
    /// Sorts a failure to open the ring file into the variant that explains it best.
    pub(crate) fn opening(path: PathBuf, read_only: bool, source: FlashError) -> CliError {
        match source {
            FlashError::Locked { .. } => CliError::InUse { path, read_only },
            FlashError::Io {
                op: "open", source, ..
            } if read_only && source.kind() == io::ErrorKind::NotFound => CliError::NoRing { path },
            source => CliError::Flash { path, source },
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Config(_) => write!(f, "cannot load the configuration"),
            CliError::Flash { path, source } => {
                // Most flash errors name the file already; say it once.
                if source.to_string().contains(&path.display().to_string()) {
                    write!(f, "cannot open the ring file")
                } else {
                    write!(f, "cannot open the ring file {}", path.display())
                }
            }
            CliError::InUse { path, read_only } => {
                write!(f, "{} is in use by another outpost process", path.display())?;
                if *read_only {
                    write!(
                        f,
                        " (a running broker, probably): stop it before running fsck, which \
                         checks a stopped broker's storage"
                    )
                } else {
                    write!(
                        f,
                        " (another `outpost serve` on this data directory, or an \
                         `outpost fsck` of it): two brokers must never share a ring"
                    )
                }
            }
            CliError::NoRing { path } => write!(
                f,
                "no ring file at {}: nothing to check (is --data, or data_dir in the config, \
                 the broker's data directory?)",
                path.display()
            ),
            CliError::Storage { path, .. } => {
                write!(f, "cannot open the ring in {}", path.display())
            }
            CliError::Io { what, .. } => f.write_str(what),
            CliError::Signal(_) => write!(f, "cannot install the SIGTERM/SIGINT handlers"),
            CliError::Client { what, .. } => f.write_str(what),
            CliError::Bench(what) => f.write_str(what),
            CliError::Usage(e) => {
                let text = e.to_string();
                let first = text.lines().next().unwrap_or_default();
                f.write_str(first.strip_prefix("error: ").unwrap_or(first))
            }
        }
    }
}

impl std::error::Error for CliError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CliError::Config(e) => Some(e),
            CliError::Flash { source, .. } => Some(source),
            CliError::Storage { source, .. } => Some(source),
            CliError::Io { source, .. } => Some(source),
            CliError::Signal(e) => Some(e),
            CliError::Client { source, .. } => Some(source),
            CliError::InUse { .. }
            | CliError::NoRing { .. }
            | CliError::Bench(_)
            | CliError::Usage(_) => None,
        }
    }
}

impl From<ConfigFileError> for CliError {
    fn from(e: ConfigFileError) -> Self {
        CliError::Config(e)
    }
}
