//! Idempotent producers and atomic writes (kinds 0x10, 0x11, 0x30; docs/SEMANTICS.md): the
//! wire calls, and [`IdempotentProducer`], which numbers batches per partition.

use std::collections::HashMap;

use super::group_types::OffsetToCommit;
use super::groups::wire_offsets;
use super::types::Produced;
use super::{Client, ClientError, answer, collect};
use crate::protocol::messages::{
    AtomicCommit, AtomicOutput, AtomicWriteRequest, AtomicWriteResponse, Header,
    InitProducerRequest, InitProducerResponse, ProduceIdempotentRequest, ProduceIdempotentResponse,
    RecordIn,
};
use crate::protocol::{Kind, Seq};
use crate::storage::Record;

/// A producer id and epoch from INIT_PRODUCER.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerIdentity {
    pub id: u64,
    pub epoch: u16,
}

/// Where an idempotent batch landed; `duplicate` when it was a retry of a batch stored
/// already (the offsets are the original ones).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdempotentProduced {
    pub produced: Produced,
    pub duplicate: bool,
}

/// One output of an atomic write: records for one partition, with the producer's sequence of
/// the first one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AtomicOutputIn {
    pub topic: String,
    pub partition: u32,
    pub first_sequence: u32,
    pub records: Vec<Record>,
}

/// The input offsets an atomic write commits: a group member's (`member = Some((id,
/// generation))`) or a standalone consumer's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AtomicCommitIn {
    pub group: String,
    pub member: Option<(String, u32)>,
    pub offsets: Vec<OffsetToCommit>,
}

/// What an atomic write stored: each output's offsets in request order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AtomicWritten {
    pub outputs: Vec<(String, Produced)>,
    pub duplicate: bool,
}

/// Every record's headers, back to back, for [`records_in`].
pub(super) fn headers_of(records: &[Record]) -> Vec<Header<'_>> {
    records
        .iter()
        .flat_map(|r| r.headers.iter())
        .map(|(name, value)| Header { name, value })
        .collect()
}

/// Wire records borrowing `records` and their headers (`headers_of(records)`).
pub(super) fn records_in<'a>(
    records: &'a [Record],
    headers: &'a [Header<'a>],
) -> Vec<RecordIn<'a>> {
    let mut at = 0;
    records
        .iter()
        .map(|r| {
            let h = &headers[at..at + r.headers.len()];
            at += r.headers.len();
            RecordIn {
                timestamp_ms: r.timestamp_ms,
                key: r.key.as_deref(),
                value: &r.value,
                headers: Seq::Slice(h),
            }
        })
        .collect()
}

impl Client {
    /// INIT_PRODUCER: the id and next epoch of producer `name` (1–249 bytes). An earlier
    /// instance with the same name is fenced from now on.
    pub async fn init_producer(&self, name: &str) -> Result<ProducerIdentity, ClientError> {
        let kind = Kind::InitProducer;
        let body = self.call(kind, &InitProducerRequest { name }).await?;
        let r: InitProducerResponse = answer(kind, &body)?;
        Ok(ProducerIdentity {
            id: r.producer_id,
            epoch: r.epoch,
        })
    }

    /// PRODUCE_IDEMPOTENT: `records` as one batch to `topic`/`partition`, numbered from
    /// `first_sequence`; durable before it returns. Requests pipelined on one connection are
    /// checked in the order they were sent.
    pub async fn produce_idempotent(
        &self,
        producer: ProducerIdentity,
        topic: &str,
        partition: u32,
        first_sequence: u32,
        records: &[Record],
    ) -> Result<IdempotentProduced, ClientError> {
        let kind = Kind::ProduceIdempotent;
        let headers = headers_of(records);
        let wire = records_in(records, &headers);
        let req = ProduceIdempotentRequest {
            producer_id: producer.id,
            epoch: producer.epoch,
            topic,
            partition,
            first_sequence,
            records: Seq::Slice(&wire),
        };
        let body = self.call(kind, &req).await?;
        let r: ProduceIdempotentResponse = answer(kind, &body)?;
        Ok(IdempotentProduced {
            produced: Produced {
                partition: r.partition,
                base_offset: r.base_offset,
                count: r.count,
            },
            duplicate: r.duplicate,
        })
    }

    /// ATOMIC_WRITE: `outputs` and the `commit` offsets in one batch under one CRC, durable
    /// before it returns: after a crash all of it is stored or none of it.
    pub async fn atomic_write(
        &self,
        producer: ProducerIdentity,
        outputs: &[AtomicOutputIn],
        commit: Option<&AtomicCommitIn>,
    ) -> Result<AtomicWritten, ClientError> {
        let kind = Kind::AtomicWrite;
        let headers: Vec<Vec<Header<'_>>> =
            outputs.iter().map(|o| headers_of(&o.records)).collect();
        let records: Vec<Vec<RecordIn<'_>>> = outputs
            .iter()
            .zip(&headers)
            .map(|(o, h)| records_in(&o.records, h))
            .collect();
        let wire: Vec<AtomicOutput<'_>> = outputs
            .iter()
            .zip(&records)
            .map(|(o, r)| AtomicOutput {
                topic: &o.topic,
                partition: o.partition,
                first_sequence: o.first_sequence,
                records: Seq::Slice(r),
            })
            .collect();
        let offsets = commit.map(|c| wire_offsets(&c.offsets)).unwrap_or_default();
        let req = AtomicWriteRequest {
            producer_id: producer.id,
            epoch: producer.epoch,
            outputs: Seq::Slice(&wire),
            commit: commit.map(|c| AtomicCommit {
                group: &c.group,
                member: c.member.as_ref().map(|m| m.0.as_str()),
                generation: c.member.as_ref().map_or(0, |m| m.1),
                offsets: Seq::Slice(&offsets),
            }),
        };
        let body = self.call(kind, &req).await?;
        let r: AtomicWriteResponse<'_> = answer(kind, &body)?;
        let outputs = collect(kind, r.outputs, |o| {
            (
                o.topic.to_string(),
                Produced {
                    partition: o.partition,
                    base_offset: o.base_offset,
                    count: o.count,
                },
            )
        })?;
        Ok(AtomicWritten {
            outputs,
            duplicate: r.duplicate,
        })
    }
}

/// An idempotent producer: a name, the id and epoch the broker gave it, and the next sequence
/// of every partition it writes. It does not own a connection, so a caller that lost one
/// (broker restart, network) connects again and goes on with the same producer.
///
/// The rule that makes a retry safe: after a call failed, send **the same batch again** (same
/// records, to the same partition) before any other batch to that partition. The broker then
/// either stores it (the first attempt never landed) or answers with the offsets of the first
/// attempt (`duplicate`), and never stores it twice. Sequences advance only on success.
#[derive(Clone, Debug)]
pub struct IdempotentProducer {
    name: String,
    identity: ProducerIdentity,
    next: HashMap<(String, u32), u32>,
}

impl IdempotentProducer {
    /// Initialises producer `name` (fencing any earlier instance with the same name).
    pub async fn init(client: &Client, name: &str) -> Result<IdempotentProducer, ClientError> {
        let identity = client.init_producer(name).await?;
        Ok(IdempotentProducer {
            name: name.to_string(),
            identity,
            next: HashMap::new(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn identity(&self) -> ProducerIdentity {
        self.identity
    }

    /// The sequence the next batch to `topic`/`partition` gets.
    pub fn next_sequence(&self, topic: &str, partition: u32) -> u32 {
        self.next
            .get(&(topic.to_string(), partition))
            .copied()
            .unwrap_or(0)
    }

    /// Sends `records` as the next batch of `topic`/`partition` (see the retry rule above).
    pub async fn send(
        &mut self,
        client: &Client,
        topic: &str,
        partition: u32,
        records: &[Record],
    ) -> Result<IdempotentProduced, ClientError> {
        let seq = self.next_sequence(topic, partition);
        let r = client
            .produce_idempotent(self.identity, topic, partition, seq, records)
            .await?;
        self.advance(topic, partition, records.len());
        Ok(r)
    }

    /// Writes `outputs` (records per topic/partition, numbered by this producer) and commits
    /// `commit` in one atomic write (see the retry rule above: retry with the same outputs).
    pub async fn send_atomic(
        &mut self,
        client: &Client,
        outputs: Vec<(String, u32, Vec<Record>)>,
        commit: Option<&AtomicCommitIn>,
    ) -> Result<AtomicWritten, ClientError> {
        let outs: Vec<AtomicOutputIn> = outputs
            .into_iter()
            .map(|(topic, partition, records)| AtomicOutputIn {
                first_sequence: self.next_sequence(&topic, partition),
                topic,
                partition,
                records,
            })
            .collect();
        let r = client.atomic_write(self.identity, &outs, commit).await?;
        for o in &outs {
            self.advance(&o.topic, o.partition, o.records.len());
        }
        Ok(r)
    }

    fn advance(&mut self, topic: &str, partition: u32, records: usize) {
        let n = self.next.entry((topic.to_string(), partition)).or_insert(0);
        *n = n.wrapping_add(records as u32);
    }
}
