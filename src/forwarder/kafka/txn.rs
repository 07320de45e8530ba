//! The transactional producer: fence (InitProducerId), then per transaction
//! AddPartitionsToTxn, Produce, EndTxn (docs/FORWARDING.md section 5). It never retries a
//! Produce or an EndTxn: any failure ends the session and the caller starts a new one, whose
//! InitProducerId settles whatever this one left open.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, EndTxnRequest, InitProducerIdRequest, ProduceRequest, ProducerId,
    TopicName, TransactionalId,
    add_partitions_to_txn_request::AddPartitionsToTxnTopic,
    produce_request::{PartitionProduceData, TopicProduceData},
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions};

use super::cluster::{Cluster, retriable, version};
use super::error::{KafkaCode, KafkaError};

/// How long to wait between "try again" answers from the coordinator.
const SETTLE_MS: u64 = 50;

/// An upstream partition.
pub type Tp = (String, i32);

pub struct TxnProducer {
    transactional_id: String,
    producer_id: i64,
    epoch: i16,
    coordinator: i32,
    /// Next sequence number per upstream partition, for this producer epoch.
    sequences: HashMap<Tp, i32>,
    /// Partitions added to the open transaction.
    added: BTreeSet<Tp>,
    request_timeout_ms: i32,
}

fn name(t: &str) -> TopicName {
    TopicName(StrBytes::from_string(t.to_owned()))
}

fn txn_id(t: &str) -> TransactionalId {
    TransactionalId(StrBytes::from_string(t.to_owned()))
}

impl TxnProducer {
    /// Finds the coordinator and calls InitProducerId, retrying "try again" answers until
    /// `deadline`. On return every older incarnation is fenced and its last transaction is
    /// complete (committed or aborted).
    pub fn init(
        cluster: &mut Cluster,
        transactional_id: &str,
        transaction_timeout_ms: u64,
        request_timeout: Duration,
        deadline: Instant,
    ) -> Result<TxnProducer, KafkaError> {
        let timeout_ms = i32::try_from(transaction_timeout_ms).unwrap_or(i32::MAX);
        loop {
            let last = match cluster.find_coordinator(transactional_id)? {
                None => "FindCoordinator: coordinator not available".to_owned(),
                Some(node) => {
                    let req = InitProducerIdRequest::default()
                        .with_transactional_id(Some(txn_id(transactional_id)))
                        .with_transaction_timeout_ms(timeout_ms)
                        .with_producer_id(ProducerId(-1))
                        .with_producer_epoch(-1);
                    let resp = match cluster.conn(node)?.call(
                        "InitProducerId",
                        &req,
                        version::INIT_PRODUCER_ID,
                    ) {
                        Ok(r) => r,
                        Err(e) => {
                            cluster.forget(node);
                            return Err(e);
                        }
                    };
                    let code = KafkaCode(resp.error_code);
                    if code.0 == 0 {
                        return Ok(TxnProducer {
                            transactional_id: transactional_id.to_owned(),
                            producer_id: resp.producer_id.0,
                            epoch: resp.producer_epoch,
                            coordinator: node,
                            sequences: HashMap::new(),
                            added: BTreeSet::new(),
                            request_timeout_ms: i32::try_from(request_timeout.as_millis())
                                .unwrap_or(i32::MAX),
                        });
                    }
                    if !retriable(code) {
                        return Err(KafkaError::Api {
                            api: "InitProducerId",
                            what: format!("for transactional id {transactional_id:?}"),
                            code,
                            message: None,
                        });
                    }
                    format!("InitProducerId: {code}")
                }
            };
            if Instant::now() >= deadline {
                return Err(KafkaError::GaveUp {
                    api: "InitProducerId",
                    detail: last,
                });
            }
            std::thread::sleep(Duration::from_millis(SETTLE_MS));
        }
    }

    pub fn producer_id(&self) -> i64 {
        self.producer_id
    }

    pub fn epoch(&self) -> i16 {
        self.epoch
    }

    /// Adds partitions to the open transaction (starting it if none is open). Retries while
    /// the coordinator is still completing the previous transaction.
    pub fn add_partitions(
        &mut self,
        cluster: &mut Cluster,
        parts: &BTreeSet<Tp>,
        deadline: Instant,
    ) -> Result<(), KafkaError> {
        let new: Vec<&Tp> = parts.iter().filter(|p| !self.added.contains(*p)).collect();
        if new.is_empty() {
            return Ok(());
        }
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in &new {
            by_topic.entry(t.as_str()).or_default().push(*p);
        }
        let topics: Vec<AddPartitionsToTxnTopic> = by_topic
            .into_iter()
            .map(|(t, ps)| {
                AddPartitionsToTxnTopic::default()
                    .with_name(name(t))
                    .with_partitions(ps)
            })
            .collect();
        let req = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(txn_id(&self.transactional_id))
            .with_v3_and_below_producer_id(ProducerId(self.producer_id))
            .with_v3_and_below_producer_epoch(self.epoch)
            .with_v3_and_below_topics(topics);
        loop {
            let resp = self.call_coordinator(cluster, "AddPartitionsToTxn", |c| {
                c.call("AddPartitionsToTxn", &req, version::ADD_PARTITIONS_TO_TXN)
            })?;
            let mut again = None;
            let mut top = KafkaCode(resp.error_code);
            for t in &resp.results_by_topic_v3_and_below {
                for p in &t.results_by_partition {
                    let code = KafkaCode(p.partition_error_code);
                    if code.0 == 0 {
                        continue;
                    }
                    // OPERATION_NOT_ATTEMPTED only says another partition failed.
                    if code.error() == Some(kafka_protocol::ResponseError::OperationNotAttempted) {
                        continue;
                    }
                    if retriable(code) {
                        again = Some(format!(
                            "{}/{}: {code}",
                            t.name.0.as_str(),
                            p.partition_index
                        ));
                    } else if top.0 == 0 {
                        top = code;
                    }
                }
            }
            if top.0 != 0 {
                return Err(KafkaError::Api {
                    api: "AddPartitionsToTxn",
                    what: format!("producer {} epoch {}", self.producer_id, self.epoch),
                    code: top,
                    message: None,
                });
            }
            match again {
                None => break,
                Some(why) => {
                    if Instant::now() >= deadline {
                        return Err(KafkaError::GaveUp {
                            api: "AddPartitionsToTxn",
                            detail: why,
                        });
                    }
                    std::thread::sleep(Duration::from_millis(SETTLE_MS / 5));
                }
            }
        }
        for p in new {
            self.added.insert(p.clone());
        }
        Ok(())
    }

    /// Sends the records of each upstream partition in order as transactional batches, and
    /// returns the offset of each partition's first record. Every partition must have been
    /// added first.
    ///
    /// Kafka takes one record batch per partition per Produce request, and refuses a batch
    /// over the topic's `max.message.bytes`: a partition's records are cut into batches of
    /// at most `batch_bytes_max` (estimated from above) sent in successive requests, in order.
    pub fn produce(
        &mut self,
        cluster: &mut Cluster,
        batches: BTreeMap<Tp, Vec<Record>>,
        batch_bytes_max: usize,
    ) -> Result<BTreeMap<Tp, i64>, KafkaError> {
        let mut first: BTreeMap<Tp, i64> = BTreeMap::new();
        let mut chunked: BTreeMap<Tp, std::collections::VecDeque<Vec<Record>>> = BTreeMap::new();
        for (tp, recs) in batches {
            chunked.insert(tp, split_batch(recs, batch_bytes_max).into());
        }
        loop {
            let round: BTreeMap<Tp, Vec<Record>> = chunked
                .iter_mut()
                .filter_map(|(tp, q)| q.pop_front().map(|c| (tp.clone(), c)))
                .collect();
            if round.is_empty() {
                return Ok(first);
            }
            for (tp, base) in self.produce_round(cluster, round)? {
                first.entry(tp).or_insert(base);
            }
        }
    }

    /// One Produce request per leader, one batch per partition; returns each batch's base
    /// offset.
    fn produce_round(
        &mut self,
        cluster: &mut Cluster,
        batches: BTreeMap<Tp, Vec<Record>>,
    ) -> Result<Vec<(Tp, i64)>, KafkaError> {
        let mut bases = Vec::new();
        let mut by_leader: BTreeMap<i32, Vec<(Tp, Vec<Record>)>> = BTreeMap::new();
        for (tp, recs) in batches {
            if recs.is_empty() {
                continue;
            }
            let leader = cluster.leader(&tp.0, tp.1)?;
            by_leader.entry(leader).or_default().push((tp, recs));
        }
        for (leader, parts) in by_leader {
            let mut topics: BTreeMap<String, Vec<PartitionProduceData>> = BTreeMap::new();
            let mut advanced = Vec::with_capacity(parts.len());
            for ((topic, partition), mut recs) in parts {
                let seq = *self
                    .sequences
                    .get(&(topic.clone(), partition))
                    .unwrap_or(&0);
                let n = i32::try_from(recs.len()).map_err(|_| KafkaError::Encode {
                    api: "Produce",
                    detail: "too many records in one batch".into(),
                })?;
                for (i, r) in (0i32..).zip(recs.iter_mut()) {
                    r.transactional = true;
                    r.producer_id = self.producer_id;
                    r.producer_epoch = self.epoch;
                    r.offset = i64::from(i);
                    r.sequence = seq.wrapping_add(i);
                }
                let mut buf = BytesMut::new();
                RecordBatchEncoder::encode(
                    &mut buf,
                    recs.iter(),
                    &RecordEncodeOptions {
                        version: 2,
                        compression: Compression::None,
                    },
                )
                .map_err(|e| KafkaError::Encode {
                    api: "Produce",
                    detail: format!("{e:#}"),
                })?;
                topics.entry(topic.clone()).or_default().push(
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(buf.freeze())),
                );
                // Sequences wrap at i32::MAX as Kafka's do.
                advanced.push(((topic, partition), seq.wrapping_add(n) & i32::MAX));
            }
            let req = ProduceRequest::default()
                .with_transactional_id(Some(txn_id(&self.transactional_id)))
                .with_acks(-1)
                .with_timeout_ms(self.request_timeout_ms)
                .with_topic_data(
                    topics
                        .into_iter()
                        .map(|(t, ps)| {
                            TopicProduceData::default()
                                .with_name(name(&t))
                                .with_partition_data(ps)
                        })
                        .collect(),
                );
            let resp = match cluster
                .conn(leader)?
                .call("Produce", &req, version::PRODUCE)
            {
                Ok(r) => r,
                Err(e) => {
                    cluster.forget(leader);
                    return Err(e);
                }
            };
            let mut answered = 0usize;
            for t in &resp.responses {
                for p in &t.partition_responses {
                    let tp = (t.name.0.to_string(), p.index);
                    if !advanced.iter().any(|(a, _)| *a == tp) {
                        return Err(KafkaError::Decode {
                            addr: String::new(),
                            api: "Produce",
                            detail: format!("an answer for {}/{}, which was not sent", tp.0, tp.1),
                        });
                    }
                    if p.error_code != 0 {
                        let code = KafkaCode(p.error_code);
                        return Err(KafkaError::Api {
                            api: "Produce",
                            what: format!("to {}/{}", t.name.0.as_str(), p.index),
                            code,
                            message: p
                                .error_message
                                .as_ref()
                                .map(|m| m.to_string())
                                .or_else(|| hint(code).map(str::to_owned)),
                        });
                    }
                    if p.base_offset < 0 {
                        return Err(KafkaError::Decode {
                            addr: String::new(),
                            api: "Produce",
                            detail: format!("base offset {} for {}/{}", p.base_offset, tp.0, tp.1),
                        });
                    }
                    answered += 1;
                    bases.push((tp, p.base_offset));
                }
            }
            // A partition left out of the answer is not known to be written: the commit
            // must not happen.
            if answered != advanced.len() {
                return Err(KafkaError::Decode {
                    addr: String::new(),
                    api: "Produce",
                    detail: format!(
                        "{} partition answers for {} partitions sent",
                        answered,
                        advanced.len()
                    ),
                });
            }
            for (tp, next) in advanced {
                self.sequences.insert(tp, next);
            }
        }
        Ok(bases)
    }

    /// Commits the open transaction. `Ok` means the coordinator decided commit: the records
    /// and cursors are (or will be, once the markers land) in the read_committed view.
    pub fn commit(&mut self, cluster: &mut Cluster) -> Result<(), KafkaError> {
        if self.added.is_empty() {
            return Ok(());
        }
        let req = EndTxnRequest::default()
            .with_transactional_id(txn_id(&self.transactional_id))
            .with_producer_id(ProducerId(self.producer_id))
            .with_producer_epoch(self.epoch)
            .with_committed(true);
        let resp = self.call_coordinator(cluster, "EndTxn", |c| {
            c.call("EndTxn", &req, version::END_TXN)
        })?;
        if resp.error_code != 0 {
            return Err(KafkaError::Api {
                api: "EndTxn",
                what: format!("commit, producer {} epoch {}", self.producer_id, self.epoch),
                code: KafkaCode(resp.error_code),
                message: None,
            });
        }
        self.added.clear();
        Ok(())
    }

    fn call_coordinator<T>(
        &self,
        cluster: &mut Cluster,
        _api: &'static str,
        f: impl FnOnce(&mut super::conn::Conn) -> Result<T, KafkaError>,
    ) -> Result<T, KafkaError> {
        let node = self.coordinator;
        let r = f(cluster.conn(node)?);
        if r.is_err() {
            cluster.forget(node);
        }
        r
    }
}

/// What an operator should look at for a Produce error that repeats until fixed upstream or
/// on the edge.
fn hint(code: KafkaCode) -> Option<&'static str> {
    use kafka_protocol::ResponseError as E;
    match code.error()? {
        E::InvalidTimestamp => Some(
            "is the edge clock right? Kafka refuses record timestamps further from its own \
             clock than log.message.timestamp.before/after.max.ms (1 hour ahead in Kafka 4)",
        ),
        E::MessageTooLarge | E::RecordListTooLarge => Some(
            "a batch exceeds the upstream topic's max.message.bytes: lower \
             [forwarder] upstream_batch_bytes_max",
        ),
        _ => None,
    }
}

/// Batch framing in the v2 format (base offset .. record count): 61 bytes.
const BATCH_OVERHEAD_BYTES: usize = 61;

/// An upper bound of a record's size in a v2 batch: every varint at its longest.
pub fn record_bytes_max(r: &Record) -> usize {
    let len = |b: &Option<bytes::Bytes>| b.as_ref().map_or(0, |b| b.len());
    // length, attributes, timestamp delta, offset delta, key length, value length, header
    // count: 5 + 1 + 10 + 5 + 5 + 5 + 5.
    let mut n = 36 + len(&r.key) + len(&r.value);
    for (k, v) in &r.headers {
        n += 10 + k.len() + v.as_ref().map_or(0, |v| v.len());
    }
    n
}

/// Cuts records into runs whose batch stays within `batch_bytes_max` (a record larger than
/// that goes alone: Kafka then decides).
pub fn split_batch(records: Vec<Record>, batch_bytes_max: usize) -> Vec<Vec<Record>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut bytes = BATCH_OVERHEAD_BYTES;
    for r in records {
        let n = record_bytes_max(&r);
        if !cur.is_empty() && bytes + n > batch_bytes_max {
            out.push(std::mem::take(&mut cur));
            bytes = BATCH_OVERHEAD_BYTES;
        }
        bytes += n;
        cur.push(r);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::{RecordBatchEncoder, RecordEncodeOptions};

    fn rec(i: usize) -> Record {
        crate::forwarder::origin::plain(vec![b'k'; i % 7], vec![b'v'; i * 13 % 300], 1)
    }

    #[test]
    fn split_batches_stay_within_the_limit_and_keep_order() {
        let recs: Vec<Record> = (0..1000).map(rec).collect();
        let chunks = split_batch(recs.clone(), 4096);
        assert!(chunks.len() > 1);
        let flat: Vec<Record> = chunks.iter().flatten().cloned().collect();
        assert_eq!(flat, recs);
        for c in &chunks {
            let mut buf = bytes::BytesMut::new();
            RecordBatchEncoder::encode(
                &mut buf,
                c.iter(),
                &RecordEncodeOptions {
                    version: 2,
                    compression: Compression::None,
                },
            )
            .unwrap();
            assert!(buf.len() <= 4096, "{} bytes", buf.len());
        }
        // A record over the limit goes alone.
        let big = crate::forwarder::origin::plain(vec![], vec![0; 10_000], 1);
        let chunks = split_batch(vec![rec(1), big, rec(2)], 4096);
        assert_eq!(
            chunks.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![1, 1, 1]
        );
    }
}
