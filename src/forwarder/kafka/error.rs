//! What can go wrong talking to Kafka. Every variant names the API and the broker address, so
//! a status line or a log line says where the forwarder stopped.

use std::fmt;
use std::io;

use kafka_protocol::ResponseError;

/// A Kafka error code, with its protocol name (`PRODUCER_FENCED`-style, from
/// `kafka-protocol`'s table) and description.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KafkaCode(pub i16);

impl KafkaCode {
    pub fn error(self) -> Option<ResponseError> {
        ResponseError::try_from_code(self.0)
    }

    /// The producer lost its right to write: another incarnation holds the transactional id,
    /// or the coordinator expired the transaction and bumped the epoch.
    pub fn is_fenced(self) -> bool {
        matches!(
            self.error(),
            Some(
                ResponseError::ProducerFenced
                    | ResponseError::InvalidProducerEpoch
                    | ResponseError::TransactionalIdAuthorizationFailed
            )
        )
    }
}

impl fmt::Display for KafkaCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.error() {
            None => write!(f, "NONE (0)"),
            Some(ResponseError::Unknown(c)) => write!(f, "unknown error code {c}"),
            Some(e) => write!(f, "{e:?} ({}): {e}", self.0),
        }
    }
}

#[derive(Debug)]
#[non_exhaustive]
pub enum KafkaError {
    /// No TCP connection to the address.
    Connect { addr: String, source: io::Error },
    /// The connection failed or timed out during a call.
    Io {
        addr: String,
        api: &'static str,
        source: io::Error,
    },
    /// `kafka-protocol` could not encode a request (a value out of the protocol's range).
    Encode { api: &'static str, detail: String },
    /// The response did not decode.
    Decode {
        addr: String,
        api: &'static str,
        detail: String,
    },
    /// The response's size prefix is negative or above `response_bytes_max`.
    ResponseSize {
        addr: String,
        api: &'static str,
        bytes: i64,
        max: usize,
    },
    /// The response answers another request: the connection is out of step.
    Correlation {
        addr: String,
        api: &'static str,
        sent: i32,
        got: i32,
    },
    /// The broker does not support the version of an API the forwarder uses.
    Unsupported {
        addr: String,
        api: &'static str,
        version: i16,
        broker_min: i16,
        broker_max: i16,
    },
    /// The broker answered with an error code. `what` says which part of the request.
    Api {
        api: &'static str,
        what: String,
        code: KafkaCode,
        message: Option<String>,
    },
    /// The cluster's metadata cannot serve a route: a missing topic, too few partitions, no
    /// leader, an unknown node.
    Metadata(String),
    /// A request did not get a usable answer within its deadline (e.g. the coordinator kept
    /// answering "try again").
    GaveUp { api: &'static str, detail: String },
}

impl KafkaError {
    /// The producer was fenced (see [`KafkaCode::is_fenced`]).
    pub fn is_fenced(&self) -> bool {
        matches!(self, KafkaError::Api { code, .. } if code.is_fenced())
    }
}

impl fmt::Display for KafkaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KafkaError::Connect { addr, .. } => write!(f, "cannot connect to Kafka at {addr}"),
            KafkaError::Io { addr, api, .. } => write!(f, "{api} to {addr} failed"),
            KafkaError::Encode { api, detail } => write!(f, "cannot encode {api}: {detail}"),
            KafkaError::Decode { addr, api, detail } => {
                write!(f, "cannot decode the {api} response of {addr}: {detail}")
            }
            KafkaError::ResponseSize {
                addr,
                api,
                bytes,
                max,
            } => write!(
                f,
                "the {api} response of {addr} claims {bytes} bytes (limit {max}: \
                 response_bytes_max)"
            ),
            KafkaError::Correlation {
                addr,
                api,
                sent,
                got,
            } => write!(
                f,
                "{addr} answered {api} correlation id {sent} with id {got}: connection out of step"
            ),
            KafkaError::Unsupported {
                addr,
                api,
                version,
                broker_min,
                broker_max,
            } => write!(
                f,
                "Kafka at {addr} does not support {api} v{version} (it supports \
                 v{broker_min}..=v{broker_max}); docs/FORWARDING.md section 7 lists the versions \
                 outpost needs"
            ),
            KafkaError::Api {
                api,
                what,
                code,
                message,
            } => {
                write!(f, "{api} {what}: {code}")?;
                if let Some(m) = message {
                    write!(f, " ({m})")?;
                }
                Ok(())
            }
            KafkaError::Metadata(m) => f.write_str(m),
            KafkaError::GaveUp { api, detail } => write!(f, "{api} gave up: {detail}"),
        }
    }
}

impl std::error::Error for KafkaError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            KafkaError::Connect { source, .. } | KafkaError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
