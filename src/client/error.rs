//! The client's error: one variant per way a request can fail, each with one deliberate
//! message; the I/O cause is kept as `source()` so the CLI prints the whole chain.

use core::fmt;
use std::io;

use crate::protocol::ErrorCode;

/// Why a [`Client`](super::Client) call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// The TCP connection to the broker could not be opened.
    Connect { addr: String, source: io::Error },
    /// Reading from or writing to the connection failed (it is unusable now), or the broker
    /// did not answer the HELLO in time.
    Io(io::Error),
    /// The broker answered the request with an error code; the connection stays usable.
    Server { code: ErrorCode, message: String },
    /// The broker sent a GOODBYE (a connection-level error) and closed the connection. Every
    /// request pending at that moment, and every later one, fails with it.
    Goodbye { code: ErrorCode, message: String },
    /// The broker sent something that breaks docs/PROTOCOL.md (a frame or body that does not
    /// decode, a response of the wrong kind). The connection is closed.
    Protocol { detail: String },
    /// The request would not fit in one frame of the broker's `frame_bytes_max`; nothing was
    /// sent.
    TooLarge { bytes: u64, frame_bytes_max: u32 },
    /// The connection is closed: the broker closed it (end of stream) or the client was
    /// closed.
    Closed,
}

impl ClientError {
    /// The wire error code, for errors the broker sent (`Server` and `Goodbye`).
    ///
    /// ```
    /// use outpost::client::ClientError;
    /// use outpost::protocol::ErrorCode;
    /// let e = ClientError::Server { code: ErrorCode::UnknownTopic, message: "no topic t".into() };
    /// assert_eq!(e.code(), Some(ErrorCode::UnknownTopic));
    /// assert_eq!(e.to_string(), "server refused: UNKNOWN_TOPIC (7): no topic t");
    /// ```
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server { code, .. } | ClientError::Goodbye { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether the connection can still be used after this error (only a refused request
    /// leaves it open).
    pub fn connection_usable(&self) -> bool {
        matches!(
            self,
            ClientError::Server { .. } | ClientError::TooLarge { .. }
        )
    }

    /// Whether a group call was refused because the group rebalanced or fenced this member
    /// (`REBALANCE_IN_PROGRESS`, `ILLEGAL_GENERATION`, `UNKNOWN_MEMBER_ID`): join again and go
    /// on from the committed offsets.
    pub fn is_rebalance(&self) -> bool {
        matches!(
            self.code(),
            Some(
                ErrorCode::RebalanceInProgress
                    | ErrorCode::IllegalGeneration
                    | ErrorCode::UnknownMemberId
            )
        )
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect { addr, .. } => write!(
                f,
                "cannot connect to the broker at {addr} (is `outpost serve` running there? \
                 --addr or OUTPOST_ADDR choose another address)"
            ),
            ClientError::Io(_) => write!(f, "the connection to the broker failed"),
            ClientError::Server { code, message } => {
                write!(f, "server refused: {code}")?;
                if !message.is_empty() {
                    write!(f, ": {message}")?;
                }
                Ok(())
            }
            ClientError::Goodbye { code, message } => {
                write!(f, "the broker closed the connection: {code}")?;
                if !message.is_empty() {
                    write!(f, ": {message}")?;
                }
                Ok(())
            }
            ClientError::Protocol { detail } => {
                write!(f, "protocol violation by the broker: {detail}")
            }
            ClientError::TooLarge {
                bytes,
                frame_bytes_max,
            } => write!(
                f,
                "request of {bytes} bytes exceeds the broker's frame_bytes_max \
                 ({frame_bytes_max} bytes); nothing was sent"
            ),
            ClientError::Closed => write!(f, "the connection to the broker is closed"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Connect { source, .. } => Some(source),
            ClientError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Why the connection ended, kept to fail every later request the same way. (`ClientError`
/// is not `Clone`: `io::Error` is not.)
#[derive(Clone, Debug)]
pub(crate) enum Ended {
    Io { kind: io::ErrorKind, text: String },
    Goodbye { code: ErrorCode, message: String },
    Protocol { detail: String },
    Closed,
}

impl Ended {
    pub(crate) fn from_io(e: &io::Error) -> Ended {
        Ended::Io {
            kind: e.kind(),
            text: e.to_string(),
        }
    }

    pub(crate) fn error(&self) -> ClientError {
        match self {
            Ended::Io { kind, text } => ClientError::Io(io::Error::new(*kind, text.clone())),
            Ended::Goodbye { code, message } => ClientError::Goodbye {
                code: *code,
                message: message.clone(),
            },
            Ended::Protocol { detail } => ClientError::Protocol {
                detail: detail.clone(),
            },
            Ended::Closed => ClientError::Closed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_code_and_message() {
        let e = ClientError::Server {
            code: ErrorCode::OffsetOutOfRange,
            message: "offset 9 is above next 5".into(),
        };
        assert_eq!(
            e.to_string(),
            "server refused: OFFSET_OUT_OF_RANGE (14): offset 9 is above next 5"
        );
        assert_eq!(e.code(), Some(ErrorCode::OffsetOutOfRange));
        let g = ClientError::Goodbye {
            code: ErrorCode::TooManyConnections,
            message: String::new(),
        };
        assert_eq!(
            g.to_string(),
            "the broker closed the connection: TOO_MANY_CONNECTIONS (17)"
        );
        assert_eq!(ClientError::Closed.code(), None);
    }

    #[test]
    fn ended_rebuilds_the_same_error() {
        let io = io::Error::new(io::ErrorKind::ConnectionReset, "reset by peer");
        match Ended::from_io(&io).error() {
            ClientError::Io(e) => {
                assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
                assert_eq!(e.to_string(), "reset by peer");
            }
            other => panic!("{other:?}"),
        }
    }
}
