//! One module per request kind (docs/PROTOCOL.md section 4): each decodes its body (`BAD_BODY`
//! on failure, nested sequences validated before any side effect), applies it, and encodes the
//! response frame. This module dispatches by kind and holds what they share: the request
//! context, the error type, frame encoding, topic lookup and the storage error mapping.

mod atomic_write;
mod commit_offsets;
mod create_topic;
mod describe_topic;
mod fetch;
mod fetch_offsets;
mod forwarder_status;
mod group_common;
mod group_member;
mod hello;
mod init_producer;
mod join_group;
mod list_groups;
mod list_offsets;
mod list_topics;
mod produce;
mod produce_idempotent;
mod status;

use std::fmt::Display;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::Broker;
use super::lane::Turn;
use super::topics::Topic;
use crate::protocol::body::{decode_request, encode_error, encode_ok};
use crate::protocol::{ErrorCode, HEADER_BYTES, Kind};
use crate::storage::flash::Flash;
use crate::storage::producer::ProducerError;
use crate::storage::ring::error_chain;
use crate::storage::{AppendError, PartitionId};

/// Longest error message sent (longer ones are cut at a character boundary).
const MESSAGE_BYTES_MAX: usize = 1024;

/// A request that failed: the wire code and a message for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub code: ErrorCode,
    pub message: String,
}

impl Failure {
    pub(crate) fn new(code: ErrorCode, message: impl Display) -> Failure {
        Failure {
            code,
            message: message.to_string(),
        }
    }
}

/// What a command returns: a response frame, or none (`acks = none`), or a failure.
pub(crate) type Outcome = Result<Option<Vec<u8>>, Failure>;

/// The request being served.
pub(crate) struct Ctx<'a, F: Flash> {
    pub broker: &'a Broker<F>,
    pub kind: Kind,
    pub request_id: u32,
}

impl<F: Flash> Ctx<'_, F> {
    /// An OK response frame carrying `body`, sized exactly. A response that would exceed
    /// `frame_bytes_max` (a listing of more topics or partitions than it can hold) is a
    /// failure instead.
    pub(crate) fn ok<T: Serialize>(&self, body: &T) -> Result<Vec<u8>, Failure> {
        let size = postcard::serialize_with_flavor(body, postcard::ser_flavors::Size::default())
            .map_err(|e| Failure::new(ErrorCode::StorageFailed, e))?;
        // The OK code is one varint byte.
        let frame_bytes = HEADER_BYTES + 1 + size;
        let limit = self.broker.config().frame_bytes_max;
        if frame_bytes as u64 > u64::from(limit) {
            let code = match self.kind {
                Kind::ListTopics | Kind::ListGroups => ErrorCode::TooManyTopics,
                Kind::FetchOffsets | Kind::DescribeGroup => ErrorCode::TooManyPartitions,
                Kind::Status | Kind::DescribeTopic | Kind::ForwarderStatus => {
                    ErrorCode::TooManyPartitions
                }
                _ => ErrorCode::StorageFailed,
            };
            return Err(Failure::new(
                code,
                format_args!(
                    "the response ({frame_bytes} bytes) would exceed frame_bytes_max ({limit}); \
                     raise broker.frame_bytes_max"
                ),
            ));
        }
        let mut buf = vec![0u8; frame_bytes];
        let n = encode_ok(&mut buf, self.kind as u8, self.request_id, body)
            .map_err(|e| Failure::new(ErrorCode::StorageFailed, e))?;
        buf.truncate(n);
        Ok(buf)
    }
}

/// An error response frame (`kind` is the request's raw kind, known or not).
pub(crate) fn error_frame(kind: u8, request_id: u32, code: ErrorCode, message: &str) -> Vec<u8> {
    let cut = message.len().min(MESSAGE_BYTES_MAX);
    // encode_error needs 8 bytes for the code and the message's length prefix.
    let mut buf = vec![0u8; HEADER_BYTES + 8 + cut];
    match encode_error(&mut buf, kind, request_id, code, message) {
        Ok(n) => buf.truncate(n),
        Err(e) => {
            // Cannot happen with the room reserved above; send the code alone.
            log::error!("broker: cannot encode an error response: {e}");
            buf.truncate(HEADER_BYTES + 8);
            let n = encode_error(&mut buf, kind, request_id, code, "").unwrap_or(0);
            buf.truncate(n);
        }
    }
    buf
}

/// Decodes a request body exactly; `BAD_BODY` otherwise.
pub(crate) fn decode<'a, T: Deserialize<'a>>(kind: Kind, body: &'a [u8]) -> Result<T, Failure> {
    decode_request(body)
        .map_err(|e| Failure::new(ErrorCode::BadBody, format_args!("{}: {e}", kind.name())))
}

/// The topic named `name`, or `UNKNOWN_TOPIC`.
pub(crate) fn topic<F: Flash>(broker: &Broker<F>, name: &str) -> Result<Arc<Topic>, Failure> {
    broker.topics().get(name).ok_or_else(|| {
        Failure::new(
            ErrorCode::UnknownTopic,
            format_args!("unknown topic {name:?}"),
        )
    })
}

/// Partition `p` of `topic` as a storage partition, or `UNKNOWN_PARTITION`.
pub(crate) fn partition(topic: &Topic, p: u32) -> Result<PartitionId, Failure> {
    topic.partition_id(p).ok_or_else(|| {
        Failure::new(
            ErrorCode::UnknownPartition,
            format_args!(
                "topic {:?} has partitions 0..{}, not {p}",
                topic.name(),
                topic.partitions()
            ),
        )
    })
}

/// The wire code of a refused append.
pub(crate) fn append_code(e: &AppendError) -> ErrorCode {
    match e {
        AppendError::BufferFull | AppendError::QueueFull { .. } => ErrorCode::BufferFull,
        AppendError::BatchTooLarge { .. } => ErrorCode::BatchTooLarge,
        AppendError::EmptyBatch => ErrorCode::EmptyBatch,
        AppendError::BadRecord { .. } => ErrorCode::InvalidRecord,
        AppendError::TooManyPartitions { .. } => ErrorCode::TooManyPartitions,
        AppendError::Closed => ErrorCode::ShuttingDown,
        AppendError::Producer(p) => producer_code(p),
        AppendError::RepeatedPartition { .. } | AppendError::TooManyParts { .. } => {
            ErrorCode::InvalidAtomicWrite
        }
        AppendError::MetaFull { .. } => ErrorCode::ProducerStateFull,
        // Poisoned, Flash, SyncFailed, and the metadata errors a produce cannot hit.
        _ => ErrorCode::StorageFailed,
    }
}

/// The wire code of a producer state refusal.
fn producer_code(e: &ProducerError) -> ErrorCode {
    match e {
        ProducerError::UnknownProducerId { .. } => ErrorCode::UnknownProducerId,
        ProducerError::Fenced { .. } => ErrorCode::ProducerFenced,
        ProducerError::OutOfOrder { .. } => ErrorCode::OutOfOrderSequence,
        ProducerError::DuplicateTooOld { .. } => ErrorCode::DuplicateSequence,
        ProducerError::SequenceExhausted { .. } => ErrorCode::SequenceExhausted,
        ProducerError::InvalidName { .. } => ErrorCode::InvalidProducerName,
        ProducerError::IdsExhausted => ErrorCode::ProducerStateFull,
        ProducerError::PartialRetry { .. } => ErrorCode::InvalidAtomicWrite,
    }
}

/// A refused append as a failure.
pub(crate) fn append_failure(e: &AppendError) -> Failure {
    Failure::new(append_code(e), error_chain(e))
}

/// Serves one request of a known kind; returns the response frame, if any.
pub(crate) async fn dispatch<F: Flash>(
    broker: &Broker<F>,
    kind: Kind,
    request_id: u32,
    body: &[u8],
    turn: Option<Turn>,
) -> Option<Vec<u8>> {
    let ctx = Ctx {
        broker,
        kind,
        request_id,
    };
    let outcome = match kind {
        Kind::Hello => hello::apply(&ctx, body).map(Some),
        Kind::CreateTopic => create_topic::apply(&ctx, body).await.map(Some),
        Kind::ListTopics => list_topics::apply(&ctx, body).map(Some),
        Kind::DescribeTopic => describe_topic::apply(&ctx, body).map(Some),
        Kind::Produce => produce::apply(&ctx, body).await,
        Kind::Fetch => fetch::apply(&ctx, body).await.map(Some),
        Kind::InitProducer => init_producer::apply(&ctx, body).await.map(Some),
        Kind::ProduceIdempotent => produce_idempotent::apply(&ctx, body, turn).await.map(Some),
        Kind::AtomicWrite => atomic_write::apply(&ctx, body, turn).await.map(Some),
        Kind::ListOffsets => list_offsets::apply(&ctx, body).map(Some),
        Kind::Status => status::apply(&ctx, body).map(Some),
        Kind::ForwarderStatus => forwarder_status::apply(&ctx, body).map(Some),
        Kind::JoinGroup => join_group::apply(&ctx, body).await.map(Some),
        Kind::SyncGroup => group_member::sync(&ctx, body).map(Some),
        Kind::Heartbeat => group_member::heartbeat(&ctx, body).map(Some),
        Kind::LeaveGroup => group_member::leave(&ctx, body).map(Some),
        Kind::CommitOffsets => commit_offsets::apply(&ctx, body).await.map(Some),
        Kind::FetchOffsets => fetch_offsets::apply(&ctx, body).await.map(Some),
        Kind::ListGroups => list_groups::list(&ctx, body).map(Some),
        Kind::DescribeGroup => list_groups::describe(&ctx, body).map(Some),
        Kind::Goodbye => Err(Failure::new(
            ErrorCode::UnknownKind,
            "GOODBYE is sent by the server only",
        )),
    };
    match outcome {
        Ok(frame) => frame,
        Err(f) => {
            log::debug!(
                "broker: {} request {request_id} refused: {} {}",
                kind.name(),
                f.code,
                f.message
            );
            Some(error_frame(kind as u8, request_id, f.code, &f.message))
        }
    }
}
