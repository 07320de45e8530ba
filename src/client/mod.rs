//! `outpost::client`: a small async client for the native protocol (docs/PROTOCOL.md), used
//! by the CLI, the tests and the bench.
//!
//! One [`Client`] is one TCP connection. It is pipelined: any number of tasks may call it at
//! once (every method takes `&self`; share it with `Arc` or borrow it), each request carries
//! its own id, and a background reader task hands each response to its caller whatever the
//! order the broker answers in. A writer task gathers the queued request frames into few
//! writes. At most the broker's `inflight_max` requests are unanswered at once (later calls
//! wait for a slot), so the client never provokes `TOO_MANY_IN_FLIGHT`.
//!
//! The background tasks run on smol's global executor (`smol::spawn`); the calls are plain
//! futures, usable from `smol::block_on` or any executor.
//!
//! ```no_run
//! use outpost::client::Client;
//! use outpost::storage::{Acks, Record};
//!
//! # fn main() -> Result<(), outpost::client::ClientError> {
//! smol::block_on(async {
//!     let client = Client::connect("127.0.0.1:7478").await?;
//!     client.create_topic("readings", 2).await?;
//!     let record = Record {
//!         timestamp_ms: 0,
//!         key: Some(b"sensor-7".to_vec()),
//!         value: b"21.5".to_vec(),
//!         headers: vec![],
//!     };
//!     let at = client.produce("readings", None, Acks::Durable, &[record]).await?;
//!     println!("{at:?}");
//!     let fetched = client.fetch("readings", 0, 0, 1 << 20, 500).await?;
//!     println!("{} records", fetched.records.len());
//!     client.close().await;
//!     Ok(())
//! })
//! # }
//! ```
//!
//! Keys and partitions: a produce call sends one batch, which lands in one partition. With
//! `partition: None` the broker picks it from the first record's key (Kafka's murmur2
//! partitioner) or round-robin when it has none; so a batch whose records have different
//! keys must be split per key ([`Client::produce_keyed`] does that).
//!
//! Order: the broker works on pipelined requests concurrently, so two produces in flight at
//! once to the same partition may be appended in either order. A caller that needs the
//! order of its batches kept waits for each ack before sending the next batch to that
//! partition (as `outpost produce` does).

mod conn;
mod consumer;
mod error;
mod group_types;
mod groups;
mod producer;
#[cfg(test)]
mod tests;
mod types;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use smol::channel::{self, Sender};
use smol::io::AsyncWriteExt;
use smol::lock::Semaphore;
use smol::net::TcpStream;
use smol::{Task, Timer};

use self::conn::{FrameReader, Shared, Waiter};
pub use self::consumer::{
    Consumed, ConsumerConfig, GroupConsumer, Membership, ResetPolicy, Semantics,
};
pub use self::error::ClientError;
use self::error::Ended;
pub use self::group_types::{
    CommittedOffsetInfo, GroupListing, GroupMemberInfo, GroupPartitionRef, GroupSummary, Joined,
    OffsetToCommit, group_state_name,
};
pub use self::producer::{
    AtomicCommitIn, AtomicOutputIn, AtomicWritten, IdempotentProduced, IdempotentProducer,
    ProducerIdentity,
};
pub use self::types::{
    Fetched, FetchedRecord, ForwardLink, ForwardPartition, ForwarderStatus, Offsets, PartitionInfo,
    PartitionStatus, Produced, ServerInfo, Status, TopicDescription, TopicInfo,
};
use crate::protocol::body::{BodyError, Response, decode_response, encode_request};
use crate::protocol::messages::{
    CreateTopicRequest, CreateTopicResponse, DescribeTopicRequest, DescribeTopicResponse, Empty,
    FetchRequest, FetchResponse, ForwarderStatusResponse, HelloRequest, HelloResponse,
    ListOffsetsRequest, ListOffsetsResponse, ListTopicsResponse, ProduceRequest, ProduceResponse,
    StatusResponse, WireAcks,
};
use crate::protocol::{HEADER_BYTES, Kind, Seq, VERSION};
use crate::storage::{Acks, Record};

/// The address clients use when none is given (`OUTPOST_ADDR`, `--addr`).
pub const DEFAULT_ADDR: &str = "127.0.0.1:7478";
/// How long [`Client::connect`] waits for the TCP connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`Client::connect`] then waits for the HELLO answer.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest frame accepted before the broker has said its own limit (the HELLO answer).
const HELLO_FRAME_BYTES_MAX: u32 = 64 * 1024;
/// The id of the HELLO request; the others count up from the next one.
const HELLO_REQUEST_ID: u32 = 1;
/// What the client calls itself in HELLO.
const CLIENT_NAME: &str = concat!("outpost-client/", env!("CARGO_PKG_VERSION"));
/// Room kept for a FETCH answer's own fields when its `bytes_max` is capped to the frame.
const FETCH_FRAME_OVERHEAD_BYTES: u32 = 4096;

/// A connection to an outpost broker. See the [module documentation](self).
pub struct Client {
    addr: String,
    info: ServerInfo,
    frames: Sender<Vec<u8>>,
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
    next_id: AtomicU32,
    writer: smol::lock::Mutex<Option<Task<()>>>,
    _reader: Task<()>,
}

impl Client {
    /// Connects to the broker at `addr` (`host:port`), then says HELLO (protocol version 1)
    /// and keeps the broker's limits.
    pub async fn connect(addr: impl AsRef<str>) -> Result<Client, ClientError> {
        let addr = addr.as_ref().to_string();
        let connect = async { TcpStream::connect(addr.as_str()).await };
        let give_up = async {
            Timer::after(CONNECT_TIMEOUT).await;
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
            ))
        };
        let mut stream =
            smol::future::or(connect, give_up)
                .await
                .map_err(|source| ClientError::Connect {
                    addr: addr.clone(),
                    source,
                })?;
        // Requests are small and latency matters: no Nagle delay.
        stream.set_nodelay(true).map_err(ClientError::Io)?;

        let mut reader = FrameReader::new(HELLO_FRAME_BYTES_MAX);
        let hello = HelloRequest {
            version_min: VERSION,
            version_max: VERSION,
            client: CLIENT_NAME,
        };
        let frame = encode(Kind::Hello, HELLO_REQUEST_ID, &hello, HELLO_FRAME_BYTES_MAX)?;
        let exchange = async {
            stream.write_all(&frame).await.map_err(ClientError::Io)?;
            let (header, body) = reader
                .read_frame(&mut stream)
                .await
                .map_err(|e| e.error())?;
            if header.kind == Kind::Goodbye as u8 {
                return Err(conn::goodbye(&body).error());
            }
            if header.kind != Kind::Hello as u8 || !header.is_response() {
                return Err(ClientError::Protocol {
                    detail: format!(
                        "HELLO was answered by a frame of kind {:#04x} (flags {:#06x})",
                        header.kind, header.flags
                    ),
                });
            }
            let r: HelloResponse<'_> = answer(Kind::Hello, &body)?;
            Ok(ServerInfo {
                version: r.version,
                server: r.server.to_string(),
                frame_bytes_max: r.frame_bytes_max,
                batch_bytes_max: r.batch_bytes_max,
                inflight_max: r.inflight_max,
            })
        };
        let timeout = async {
            Timer::after(HELLO_TIMEOUT).await;
            Err(ClientError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "no HELLO answer from {addr} within {} s (is it an outpost broker?)",
                    HELLO_TIMEOUT.as_secs()
                ),
            )))
        };
        let info = smol::future::or(exchange, timeout).await?;
        if info.version != VERSION {
            return Err(ClientError::Protocol {
                detail: format!(
                    "the broker chose protocol version {} (this client speaks {VERSION})",
                    info.version
                ),
            });
        }
        if (info.frame_bytes_max as usize) <= HEADER_BYTES || info.inflight_max == 0 {
            return Err(ClientError::Protocol {
                detail: format!(
                    "the broker's limits are unusable (frame_bytes_max {}, inflight_max {})",
                    info.frame_bytes_max, info.inflight_max
                ),
            });
        }
        reader.set_limit(info.frame_bytes_max);

        let shared = Arc::new(Shared::default());
        // Enough queued frames to keep every in-flight slot busy; beyond it callers wait.
        let queue = (info.inflight_max as usize).clamp(1, 4096);
        let (frames, queued) = channel::bounded::<Vec<u8>>(queue);
        let writer = {
            let shared = shared.clone();
            let stream = stream.clone();
            smol::spawn(async move { conn::writer(stream, queued, &shared).await })
        };
        let reader = {
            let shared = shared.clone();
            smol::spawn(async move { conn::reader(stream, reader, &shared).await })
        };
        Ok(Client {
            addr,
            permits: Arc::new(Semaphore::new(info.inflight_max as usize)),
            info,
            frames,
            shared,
            next_id: AtomicU32::new(HELLO_REQUEST_ID + 1),
            writer: smol::lock::Mutex::new(Some(writer)),
            _reader: reader,
        })
    }

    /// The address this client connected to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The broker's HELLO answer: its name and limits.
    pub fn server_info(&self) -> &ServerInfo {
        &self.info
    }

    /// Sends what is queued, then closes the connection. Produces sent with `acks = none`
    /// are only guaranteed to have left the client once this returns. Pending and later
    /// calls fail with [`ClientError::Closed`]. Dropping a client closes it without flushing.
    pub async fn close(&self) {
        self.frames.close();
        let writer = self.writer.lock().await.take();
        if let Some(writer) = writer {
            writer.await;
        }
        self.shared.end(Ended::Closed);
    }

    /// Creates a topic with `partitions` partitions (durable before the answer).
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: u32,
    ) -> Result<TopicInfo, ClientError> {
        let body = self
            .call(Kind::CreateTopic, &CreateTopicRequest { name, partitions })
            .await?;
        let r: CreateTopicResponse<'_> = answer(Kind::CreateTopic, &body)?;
        Ok(TopicInfo {
            name: r.name.to_string(),
            partitions: r.partitions,
        })
    }

    /// Every topic, ascending by name.
    pub async fn list_topics(&self) -> Result<Vec<TopicInfo>, ClientError> {
        let body = self.call(Kind::ListTopics, &Empty {}).await?;
        let r: ListTopicsResponse<'_> = answer(Kind::ListTopics, &body)?;
        collect(Kind::ListTopics, r.topics, |t| TopicInfo {
            name: t.name.to_string(),
            partitions: t.partitions,
        })
    }

    /// A topic's partitions and their offset ranges.
    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription, ClientError> {
        let body = self
            .call(Kind::DescribeTopic, &DescribeTopicRequest { name })
            .await?;
        let r: DescribeTopicResponse<'_> = answer(Kind::DescribeTopic, &body)?;
        Ok(TopicDescription {
            name: r.name.to_string(),
            partitions: collect(Kind::DescribeTopic, r.partitions, |p| PartitionInfo {
                partition: p.partition,
                earliest: p.earliest,
                next: p.next,
            })?,
        })
    }

    /// Appends `records` as one batch to one partition of `topic`: `partition`, or (with
    /// `None`) the partition of the first record's key, or round-robin when it has none.
    /// Returns where the batch landed once `acks` is satisfied; `None` with `Acks::None`,
    /// which returns as soon as the request is queued (see [`Client::close`]).
    ///
    /// One call is one batch: nothing is split. Its encoded size must stay within the
    /// broker's `batch_bytes_max` ([`ServerInfo`]; [`Record::encoded_bytes`] plus a 40-byte
    /// batch header), else the broker answers `BATCH_TOO_LARGE`.
    pub async fn produce(
        &self,
        topic: &str,
        partition: Option<u32>,
        acks: Acks,
        records: &[Record],
    ) -> Result<Option<Produced>, ClientError> {
        let wire_acks = match acks {
            Acks::None => WireAcks::None,
            Acks::Written => WireAcks::Written,
            Acks::Durable => WireAcks::Durable,
        };
        let frame = {
            let headers = producer::headers_of(records);
            let records_in = producer::records_in(records, &headers);
            let request = ProduceRequest {
                topic,
                partition,
                acks: wire_acks,
                records: Seq::Slice(&records_in),
            };
            let id = self.request_id();
            (
                id,
                encode(Kind::Produce, id, &request, self.info.frame_bytes_max)?,
            )
        };
        if acks == Acks::None {
            self.send_unanswered(frame.1).await?;
            return Ok(None);
        }
        let body = self.send(Kind::Produce, frame.0, frame.1).await?;
        let r: ProduceResponse = answer(Kind::Produce, &body)?;
        Ok(Some(Produced {
            partition: r.partition,
            base_offset: r.base_offset,
            count: r.count,
        }))
    }

    /// Appends `records` with `partition: None`, one batch per distinct key (records without
    /// a key form one batch too), so each key lands on its own partition; all batches are
    /// pipelined. Records keep their order within a key; records of different keys may
    /// interleave. Returns one answer per batch, keys in order of first appearance (`None`
    /// for each with `Acks::None`): a key's n-th record is at its batch's `base_offset + n`.
    /// The first failure is returned after every batch was answered; other batches may have
    /// been stored.
    pub async fn produce_keyed(
        &self,
        topic: &str,
        acks: Acks,
        records: &[Record],
    ) -> Result<Vec<Option<Produced>>, ClientError> {
        let mut index: HashMap<Option<&[u8]>, usize> = HashMap::new();
        let mut batches: Vec<Vec<Record>> = Vec::new();
        for r in records {
            let i = *index.entry(r.key.as_deref()).or_insert_with(|| {
                batches.push(Vec::new());
                batches.len() - 1
            });
            batches[i].push(r.clone());
        }
        let calls: Vec<_> = batches
            .iter()
            .map(|batch| self.produce(topic, None, acks, batch))
            .collect();
        // Polled together: the requests are all in flight at once.
        let mut out = Vec::with_capacity(calls.len());
        let mut first_error = None;
        for r in join_all(calls).await {
            match r {
                Ok(p) => out.push(p),
                Err(e) => {
                    if first_error.is_none() {
                        first_error = Some(e);
                    }
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// Records of `partition` from `offset` on, up to about `bytes_max` bytes (at least one
    /// record when one is available; capped to what fits in a frame). When none is available
    /// yet, the broker waits up to `wait_ms_max` ms (capped by its `fetch_wait_ms_max`) for
    /// one, then answers, possibly with none.
    pub async fn fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        bytes_max: u32,
        wait_ms_max: u32,
    ) -> Result<Fetched, ClientError> {
        let cap = self
            .info
            .frame_bytes_max
            .saturating_sub(FETCH_FRAME_OVERHEAD_BYTES)
            .max(1);
        let request = FetchRequest {
            topic,
            partition,
            offset,
            bytes_max: bytes_max.min(cap),
            wait_ms_max,
        };
        let body = self.call(Kind::Fetch, &request).await?;
        let r: FetchResponse<'_> = answer(Kind::Fetch, &body)?;
        let mut records = Vec::with_capacity(r.records.len());
        for item in r.records.iter() {
            let out = item.map_err(|e| malformed(Kind::Fetch, e))?;
            let headers = collect(Kind::Fetch, out.headers, |h| {
                (h.name.to_string(), h.value.to_vec())
            })?;
            records.push(FetchedRecord {
                offset: out.offset,
                record: Record {
                    timestamp_ms: out.timestamp_ms,
                    key: out.key.map(<[u8]>::to_vec),
                    value: out.value.to_vec(),
                    headers,
                },
            });
        }
        Ok(Fetched {
            partition: r.partition,
            earliest: r.earliest,
            next: r.next,
            records,
        })
    }

    /// The partition's earliest stored offset and next (one past the last durable record).
    pub async fn list_offsets(&self, topic: &str, partition: u32) -> Result<Offsets, ClientError> {
        let body = self
            .call(Kind::ListOffsets, &ListOffsetsRequest { topic, partition })
            .await?;
        let r: ListOffsetsResponse = answer(Kind::ListOffsets, &body)?;
        Ok(Offsets {
            earliest: r.earliest,
            next: r.next,
        })
    }

    /// The broker's uptime, ring use, connection count and every partition's offsets.
    pub async fn status(&self) -> Result<Status, ClientError> {
        let body = self.call(Kind::Status, &Empty {}).await?;
        let r: StatusResponse<'_> = answer(Kind::Status, &body)?;
        Ok(Status {
            uptime_ms: r.uptime_ms,
            ring_bytes: r.ring_bytes,
            ring_used_bytes: r.ring_used_bytes,
            segments_live: r.segments_live,
            segments_total: r.segments_total,
            connections: r.connections,
            partitions: collect(Kind::Status, r.partitions, |p| PartitionStatus {
                topic: p.topic.to_string(),
                partition: p.partition,
                earliest: p.earliest,
                next: p.next,
            })?,
        })
    }

    /// The forwarder's link state, counters and every forwarded partition's backlog
    /// (`configured` false when the broker runs no forwarder). A broker older than this
    /// request answers `UNKNOWN_KIND` ([`ClientError::code`]).
    pub async fn forwarder_status(&self) -> Result<ForwarderStatus, ClientError> {
        let kind = Kind::ForwarderStatus;
        let body = self.call(kind, &Empty {}).await?;
        let r: ForwarderStatusResponse<'_> = answer(kind, &body)?;
        Ok(ForwarderStatus {
            configured: r.configured,
            link: ForwardLink::from_code(r.state),
            last_error: r.last_error.map(str::to_string),
            last_commit_ms: r.last_commit_ms,
            commits: r.commits,
            records_forwarded: r.records_forwarded,
            gaps: r.gaps,
            partitions: collect(kind, r.partitions, |p| ForwardPartition {
                topic: p.topic.to_string(),
                partition: p.partition,
                upstream_topic: p.upstream_topic.to_string(),
                position: p.position,
                durable_next: p.durable_next,
                bytes_behind: p.bytes_behind,
                oldest_unforwarded_ms: p.oldest_unforwarded_ms,
                last_commit_ms: p.last_commit_ms,
            })?,
        })
    }

    /// A fresh request id (never 0: a GOODBYE about a broken header carries 0).
    fn request_id(&self) -> u32 {
        loop {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            if id != 0 {
                return id;
            }
        }
    }

    /// Encodes and sends a request, and waits for its answer's body.
    async fn call<T: Serialize>(&self, kind: Kind, request: &T) -> Result<Vec<u8>, ClientError> {
        let id = self.request_id();
        let frame = encode(kind, id, request, self.info.frame_bytes_max)?;
        self.send(kind, id, frame).await
    }

    /// Sends an encoded request frame and waits for its answer's body.
    async fn send(&self, kind: Kind, id: u32, frame: Vec<u8>) -> Result<Vec<u8>, ClientError> {
        let permit = self.permits.acquire_arc().await;
        let (reply, answer) = channel::bounded(1);
        {
            let mut state = self.shared.lock();
            if let Some(ended) = &state.ended {
                return Err(ended.error());
            }
            if state.pending.contains_key(&id) {
                // Ids wrapped around onto a request still pending (4 billion later).
                return Err(ClientError::Protocol {
                    detail: format!("request id {id} is still pending"),
                });
            }
            state.pending.insert(
                id,
                Waiter {
                    kind: kind as u8,
                    reply,
                    _permit: permit,
                },
            );
        }
        // If this future is dropped before the frame is queued, the broker never sees the
        // request: forget it (and return its permit).
        let unsent = Unsent {
            shared: &self.shared,
            id,
        };
        if self.frames.send(frame).await.is_err() {
            drop(unsent);
            return Err(self.shared.ended_error().error());
        }
        core::mem::forget(unsent);
        match answer.recv().await {
            Ok(result) => result,
            Err(_) => Err(self.shared.ended_error().error()),
        }
    }

    /// Sends a request the broker does not answer (a produce with acks = none).
    async fn send_unanswered(&self, frame: Vec<u8>) -> Result<(), ClientError> {
        if let Some(ended) = &self.shared.lock().ended {
            return Err(ended.error());
        }
        self.frames
            .send(frame)
            .await
            .map_err(|_| self.shared.ended_error().error())
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // The tasks are cancelled with the handle; fail whoever still waits.
        self.shared.end(Ended::Closed);
    }
}

/// Removes a registered request that never reached the writer.
struct Unsent<'a> {
    shared: &'a Shared,
    id: u32,
}

impl Drop for Unsent<'_> {
    fn drop(&mut self) {
        self.shared.forget(self.id);
    }
}

/// Encodes a request frame, refusing one larger than `frame_bytes_max` before allocating it.
fn encode<T: Serialize>(
    kind: Kind,
    request_id: u32,
    request: &T,
    frame_bytes_max: u32,
) -> Result<Vec<u8>, ClientError> {
    let body_bytes =
        postcard::serialize_with_flavor(request, postcard::ser_flavors::Size::default()).map_err(
            |e| ClientError::Protocol {
                detail: format!("cannot encode the {} request: {e}", kind.name()),
            },
        )?;
    let bytes = (HEADER_BYTES + body_bytes) as u64;
    if bytes > u64::from(frame_bytes_max) {
        return Err(ClientError::TooLarge {
            bytes,
            frame_bytes_max,
        });
    }
    let mut buf = vec![0u8; HEADER_BYTES + body_bytes];
    let n = encode_request(&mut buf, kind as u8, request_id, request).map_err(|e| {
        ClientError::Protocol {
            detail: format!("cannot encode the {} request: {e}", kind.name()),
        }
    })?;
    buf.truncate(n);
    Ok(buf)
}

/// Decodes an answer body: the kind's struct, or the broker's error.
fn answer<'a, T: Deserialize<'a>>(kind: Kind, body: &'a [u8]) -> Result<T, ClientError> {
    match decode_response::<T>(body) {
        Ok(Response::Ok(v)) => Ok(v),
        Ok(Response::Err { code, message }) => Err(ClientError::Server {
            code,
            message: message.to_string(),
        }),
        Err(e) => Err(body_error(kind, e)),
    }
}

fn body_error(kind: Kind, e: BodyError) -> ClientError {
    ClientError::Protocol {
        detail: format!("the {} answer does not decode: {e}", kind.name()),
    }
}

fn malformed(kind: Kind, e: postcard::Error) -> ClientError {
    body_error(kind, BodyError::Malformed(e))
}

/// Decodes every element of a sequence into an owned value.
fn collect<'a, T, U>(
    kind: Kind,
    seq: Seq<'a, T>,
    mut f: impl FnMut(T) -> U,
) -> Result<Vec<U>, ClientError>
where
    T: Deserialize<'a> + Clone,
{
    let mut out = Vec::with_capacity(seq.len());
    for item in seq.iter() {
        out.push(f(item.map_err(|e| malformed(kind, e))?));
    }
    Ok(out)
}

/// Polls every future together until all are done; results in order.
async fn join_all<F: core::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.into_iter().map(|f| Some(Box::pin(f))).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    core::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, out) in futures.iter_mut().zip(outputs.iter_mut()) {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    core::task::Poll::Ready(v) => {
                        *out = Some(v);
                        *slot = None;
                    }
                    core::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            core::task::Poll::Pending
        } else {
            core::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}
