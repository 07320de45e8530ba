//! The forwarder thread: sessions against Kafka, one after another, with backoff between
//! them (docs/FORWARDING.md section 5). A session fences, reads the cursors back, then
//! forwards transaction after transaction until an error or shutdown.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use event_listener::Listener;
use kafka_protocol::records::Record as KRecord;

use super::backoff::Backoff;
use super::config::{ForwarderConfig, Partitioning, Route};
use super::cursor::{self, Cursor};
use super::kafka::fetch::{LATEST, list_offset, read_committed};
use super::kafka::txn::Tp;
use super::kafka::{Cluster, KafkaError, TxnProducer};
use super::origin::{self, Origin};
use super::status::{LinkState, Status};
use crate::broker::Broker;
use crate::protocol::murmur2::partition_for_key;
use crate::storage::flash::Flash;
use crate::storage::ring::error_chain;
use crate::storage::{Offset, PartitionId, ReadError};

/// Why a session ended.
#[derive(Debug)]
pub enum SessionError {
    Kafka(KafkaError),
    /// The ring refused a read (other than a reclaim race).
    Read(ReadError),
}

impl std::fmt::Display for SessionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionError::Kafka(e) => write!(f, "{}", error_chain(e)),
            SessionError::Read(e) => write!(f, "reading the ring: {}", error_chain(e)),
        }
    }
}

impl From<KafkaError> for SessionError {
    fn from(e: KafkaError) -> Self {
        SessionError::Kafka(e)
    }
}

/// One forwarded edge partition.
#[derive(Clone, Debug)]
struct EdgePart {
    topic: String,
    partition: u32,
    id: PartitionId,
    route: Route,
}

/// What one transaction carries for one edge partition.
struct Run {
    part: usize,
    /// Offsets `from..=to` reclaimed unforwarded before `records` (a gap record).
    gap: Option<(Offset, Offset)>,
    records: Vec<(Offset, crate::storage::Record)>,
    /// The position after this run.
    next: Offset,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub struct Forwarder<F: Flash> {
    broker: Arc<Broker<F>>,
    cfg: ForwarderConfig,
    status: Arc<Status>,
    /// Forwarded edge partitions, in the order they were found.
    parts: Vec<EdgePart>,
    /// Next edge offset to forward, per `parts` index (valid within a session).
    positions: Vec<Offset>,
    /// Round-robin start for the next transaction.
    turn: usize,
    /// Mean stored bytes per record seen, for the bytes-behind estimate.
    mean_record_bytes: u64,
    /// Per edge partition (topic, partition): an offset in its cursor partition at or
    /// before its latest committed cursor record, so a readback can start there instead of
    /// at the log start (a cursor partition holds every commit's record until compaction).
    /// Kept in RAM: the first session of a process reads from the log start.
    cursor_hints: HashMap<(String, u32), i64>,
    /// Per `parts` index: why the partition is not forwarded in this session (a cursor this
    /// outpost cannot read, no upstream partition for "same"), re-evaluated every session.
    /// A blocked partition keeps its records (never released) and does not stop the others.
    blocked: Vec<Option<String>>,
    /// Record bytes the next transaction may carry: `batch_bytes_max`, halved after a
    /// transaction failed (a slow uplink must fit one into `transaction_timeout_ms`), doubled
    /// back after each commit.
    txn_bytes: u64,
}

impl<F: Flash + 'static> Forwarder<F> {
    pub fn new(broker: Arc<Broker<F>>, cfg: ForwarderConfig, status: Arc<Status>) -> Self {
        let cfg_batch = cfg.batch_bytes_max;
        Forwarder {
            broker,
            cfg,
            status,
            parts: Vec::new(),
            positions: Vec::new(),
            turn: 0,
            mean_record_bytes: 0,
            cursor_hints: HashMap::new(),
            blocked: Vec::new(),
            txn_bytes: cfg_batch,
        }
    }

    /// Runs sessions until the broker shuts down.
    pub fn run(mut self) {
        let seed = now_ms() as u64 ^ u64::from(std::process::id()).rotate_left(32);
        let mut backoff = Backoff::new(self.cfg.retry_ms_min, self.cfg.retry_ms_max, seed);
        while !self.broker.is_shutting_down() {
            self.status.update(|s| s.state = LinkState::Connecting);
            // Status shows the backlog even while the uplink is down.
            self.discover();
            self.refresh_lag();
            let err = match self.session(&mut backoff) {
                Ok(()) => return,
                Err(e) => e,
            };
            let fenced = matches!(&err, SessionError::Kafka(k) if k.is_fenced());
            let wait_ms = if fenced {
                log::warn!(
                    "forwarder: fenced: another process uses transactional id {:?}, or a \
                     transaction outlived transaction_timeout_ms ({err}); starting again in {} ms",
                    self.cfg.transactional_id,
                    self.cfg.retry_ms_max
                );
                self.cfg.retry_ms_max
            } else {
                let w = backoff.next_ms();
                log::warn!(
                    "forwarder: session ended ({err}); attempt {} in {w} ms",
                    backoff.failures()
                );
                w
            };
            self.status.update(|s| {
                s.state = if fenced {
                    LinkState::Fenced
                } else {
                    LinkState::BackingOff
                };
                s.last_error = Some(err.to_string());
            });
            self.refresh_lag();
            self.sleep(Duration::from_millis(wait_ms));
        }
    }

    /// Waits up to `d`, returning early at shutdown.
    fn sleep(&self, d: Duration) {
        let stop = self.broker.listen_shutdown();
        if self.broker.is_shutting_down() {
            return;
        }
        let _ = stop.wait_timeout(d);
    }

    fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.cfg.request_timeout_ms)
    }

    /// Adds edge partitions of routed topics that appeared since the last look.
    fn discover(&mut self) {
        for t in self.broker.topics().list() {
            let Some(route) = self.cfg.route(t.name()) else {
                continue;
            };
            for p in 0..t.partitions() {
                let Some(id) = t.partition_id(p) else {
                    continue;
                };
                if self.parts.iter().any(|e| e.id == id) {
                    continue;
                }
                self.parts.push(EdgePart {
                    topic: t.name().to_owned(),
                    partition: p,
                    id,
                    route: route.clone(),
                });
                // A partition found in a session is new (topics keep their partitions for
                // life): no cursor of this ring can exist for it.
                self.positions.push(Offset::ZERO);
                self.blocked.push(None);
                self.status.update(|s| {
                    s.partitions
                        .entry((t.name().to_owned(), p))
                        .or_default()
                        .upstream_topic = route.upstream_topic.clone();
                });
            }
        }
    }

    fn session(&mut self, backoff: &mut Backoff) -> Result<(), SessionError> {
        let timeout = self.request_timeout();
        let response_max = usize::try_from(self.cfg.response_bytes_max).unwrap_or(usize::MAX);
        let mut cluster = Cluster::bootstrap(&self.cfg.bootstrap_servers, timeout, response_max)?;
        let mut upstream: Vec<String> = self
            .cfg
            .routes
            .iter()
            .map(|r| r.upstream_topic.clone())
            .collect();
        upstream.push(self.cfg.cursor_topic.clone());
        upstream.sort();
        upstream.dedup();
        cluster.refresh(&upstream)?;
        let configs = cluster.topic_configs(&self.cfg.cursor_topic, &cursor::CHECKED_CONFIGS)?;
        if let Some(why) = cursor::topic_problem(&self.cfg.cursor_topic, &configs) {
            return Err(KafkaError::Metadata(why).into());
        }
        let settle =
            Instant::now() + Duration::from_millis(self.cfg.transaction_timeout_ms) + timeout;
        let mut producer = TxnProducer::init(
            &mut cluster,
            &self.cfg.transactional_id,
            self.cfg.transaction_timeout_ms,
            timeout,
            settle,
        )?;
        log::info!(
            "forwarder: producer id {} epoch {} for transactional id {:?}",
            producer.producer_id(),
            producer.epoch(),
            self.cfg.transactional_id
        );
        self.discover();
        for b in &mut self.blocked {
            *b = None;
        }
        self.check_routes(&cluster);
        self.read_cursors(&mut cluster, settle)?;
        self.status.update(|s| {
            s.state = LinkState::Connected;
        });
        log::info!(
            "forwarder: connected; {} edge partition(s) resume at their committed cursors",
            self.parts.len()
        );
        loop {
            if self.broker.is_shutting_down() {
                return Ok(());
            }
            self.discover();
            self.check_routes(&cluster);
            let runs = self.gather()?;
            if runs.is_empty() {
                self.refresh_lag();
                // Nothing to send: wait for new records (or shutdown), then look again.
                let published = self.broker.log().listen_published();
                let stop = self.broker.listen_shutdown();
                if self.broker.is_shutting_down() {
                    return Ok(());
                }
                if self.has_backlog() {
                    continue;
                }
                let _ = published.wait_timeout(Duration::from_millis(500));
                drop(stop);
                continue;
            }
            if let Err(e) = self.transact(&mut cluster, &mut producer, runs) {
                self.txn_bytes = (self.txn_bytes / 2).max(1024);
                return Err(e);
            }
            self.txn_bytes = self
                .txn_bytes
                .saturating_mul(2)
                .min(self.cfg.batch_bytes_max);
            backoff.reset();
        }
    }

    /// Blocks the "same"-routed partitions the upstream topic has no partition for.
    fn check_routes(&mut self, cluster: &Cluster) {
        for (i, p) in self.parts.iter().enumerate() {
            if p.route.partitioning != Partitioning::Same || self.blocked[i].is_some() {
                continue;
            }
            let up = &p.route.upstream_topic;
            let n = cluster.topic(up).map_or(0, |t| t.partitions());
            if p.partition >= n {
                let why = format!(
                    "edge {}/{} is not forwarded: upstream topic {up:?} has {n} partition(s),                      and partitioning = \"same\" needs partition {}",
                    p.topic, p.partition, p.partition
                );
                log::error!("forwarder: {why}");
                self.status.update(|s| s.last_error = Some(why.clone()));
                self.blocked[i] = Some(why);
            }
        }
    }

    fn has_backlog(&self) -> bool {
        let r = self.broker.log().reader();
        self.parts
            .iter()
            .zip(&self.positions)
            .zip(&self.blocked)
            .any(|((p, &pos), b)| b.is_none() && r.offsets(p.id).1 > pos)
    }

    /// Step 3: the committed cursors, read back with read_committed; then the positions and
    /// the release watermark follow them.
    fn read_cursors(
        &mut self,
        cluster: &mut Cluster,
        deadline: Instant,
    ) -> Result<(), SessionError> {
        let gateway = self.cfg.gateway_id.clone();
        let ctopic = self.cfg.cursor_topic.clone();
        let n = cluster.topic(&ctopic).map_or(0, |t| t.partitions());
        if n == 0 {
            return Err(
                KafkaError::Metadata(format!("cursor topic {ctopic:?} has no partitions")).into(),
            );
        }
        let keys: HashMap<String, usize> = self
            .parts
            .iter()
            .enumerate()
            .map(|(i, p)| (cursor::key(&gateway, &p.topic, p.partition), i))
            .collect();
        let mut cursor_parts: BTreeSet<i32> = BTreeSet::new();
        for k in keys.keys() {
            let cp = partition_for_key(k.as_bytes(), n) as i32;
            cursor_parts.insert(cp);
        }
        let mut found: HashMap<usize, Cursor> = HashMap::new();
        let mut found_at: HashMap<usize, i64> = HashMap::new();
        let mut bad: HashMap<usize, String> = HashMap::new();
        let bytes_max = i32::try_from(self.cfg.response_bytes_max / 2).unwrap_or(i32::MAX);
        for &cp in &cursor_parts {
            let until = list_offset(cluster, &ctopic, cp, LATEST)?;
            // Start at the oldest hint of the partition's keys, if every key has one.
            let mine: Vec<usize> = keys
                .iter()
                .filter(|(k, _)| partition_for_key(k.as_bytes(), n) as i32 == cp)
                .map(|(_, &i)| i)
                .collect();
            let from = mine
                .iter()
                .map(|&i| {
                    let p = &self.parts[i];
                    self.cursor_hints
                        .get(&(p.topic.clone(), p.partition))
                        .copied()
                })
                .try_fold(i64::MAX, |m, h| h.map(|h| m.min(h)));
            read_committed(
                cluster,
                &ctopic,
                cp,
                from,
                until,
                bytes_max,
                deadline,
                |o, k, v| {
                    let Some(k) = k else { return Ok(()) };
                    let Ok(k) = std::str::from_utf8(&k) else {
                        return Ok(());
                    };
                    let Some(&i) = keys.get(k) else { return Ok(()) };
                    found_at.insert(i, o);
                    // The last value per key wins, a bad one included.
                    match v.as_deref().map(cursor::decode) {
                        Some(Ok(c)) => {
                            found.insert(i, c);
                            bad.remove(&i);
                        }
                        // A tombstone: the operator deleted the cursor.
                        None => {
                            found.remove(&i);
                            bad.remove(&i);
                        }
                        Some(Err(e)) => {
                            found.remove(&i);
                            bad.insert(i, format!("cursor {k:?} upstream: {e}"));
                        }
                    }
                    Ok(())
                },
            )?;
            for i in mine {
                let p = &self.parts[i];
                let hint = found_at.get(&i).copied().unwrap_or(until);
                self.cursor_hints
                    .insert((p.topic.clone(), p.partition), hint);
            }
        }
        for (i, why) in bad {
            log::error!("forwarder: {why}; that partition is not forwarded");
            self.status.update(|s| s.last_error = Some(why.clone()));
            self.blocked[i] = Some(why);
        }
        let ring_id = self.broker.ring_id();
        let reader = self.broker.log().reader().clone();
        for (i, p) in self.parts.iter().enumerate() {
            if self.blocked[i].is_some() {
                continue;
            }
            let pos = match found.get(&i) {
                Some(c) if c.ring_id == ring_id => {
                    let (_, durable_next) = reader.offsets(p.id);
                    if c.next_offset > durable_next {
                        // Upstream holds edge offsets this ring no longer has (a corruption
                        // skipped under skip-segment, say): records stored from here on are
                        // new, so they are forwarded, not taken for copies.
                        log::error!(
                            "forwarder: the cursor of {}/{} says {} but the partition ends at                              {}; forwarding from {}",
                            p.topic,
                            p.partition,
                            c.next_offset.0,
                            durable_next.0,
                            durable_next.0
                        );
                        durable_next
                    } else {
                        c.next_offset
                    }
                }
                Some(c) => {
                    log::warn!(
                        "forwarder: the cursor of {}/{} belongs to ring {:016x}, not this ring \
                         ({ring_id:016x}): the edge log was recreated; forwarding it from \
                         offset 0",
                        p.topic,
                        p.partition,
                        c.ring_id,
                    );
                    Offset::ZERO
                }
                // Never forwarded from this ring: from offset 0, so records reclaimed before
                // the route existed are announced by a gap record.
                None => Offset::ZERO,
            };
            self.positions[i] = pos;
            if pos > Offset::ZERO {
                self.broker.log().release(p.id, pos);
            }
            self.status.update(|s| {
                if let Some(ps) = s.partitions.get_mut(&(p.topic.clone(), p.partition)) {
                    ps.position = Some(pos.0);
                }
            });
        }
        Ok(())
    }

    /// Step 5: what the next transaction carries, oldest first per partition, partitions
    /// round-robin, at most `batch_bytes_max` (at least one record), waiting up to
    /// `linger_ms` for more when less is available.
    fn gather(&mut self) -> Result<Vec<Run>, SessionError> {
        let budget = self.txn_bytes;
        let linger_end = Instant::now() + Duration::from_millis(self.cfg.linger_ms);
        let mut runs: Vec<Run> = Vec::new();
        let mut used = 0u64;
        let reader = self.broker.log().reader().clone();
        loop {
            let n = self.parts.len();
            for k in 0..n {
                if used >= budget {
                    break;
                }
                let i = (self.turn + k) % n.max(1);
                if self.blocked[i].is_some() {
                    continue;
                }
                let part = &self.parts[i];
                let pos = runs
                    .iter()
                    .rev()
                    .find(|r| r.part == i)
                    .map_or(self.positions[i], |r| r.next);
                let (earliest, next) = reader.offsets(part.id);
                if pos >= next && pos >= earliest {
                    continue;
                }
                let (gap, from) = if pos < earliest {
                    (Some((pos, Offset(earliest.0 - 1))), earliest)
                } else {
                    (None, pos)
                };
                let mut records = Vec::new();
                let mut to = from;
                if from < next {
                    match reader.read(part.id, from, (budget - used).max(1)) {
                        Ok(b) => {
                            to = b.next_offset;
                            records = b.records;
                        }
                        // Reclaimed between offsets() and read(): the next round sees the gap.
                        Err(ReadError::OffsetOutOfRange { .. }) => continue,
                        Err(e) => return Err(SessionError::Read(e)),
                    }
                }
                if records.is_empty() && gap.is_none() {
                    continue;
                }
                let bytes: u64 = records.iter().map(|(_, r)| r.encoded_bytes()).sum();
                if !records.is_empty() {
                    let mean = bytes / records.len() as u64;
                    self.mean_record_bytes = if self.mean_record_bytes == 0 {
                        mean
                    } else {
                        (self.mean_record_bytes * 7 + mean) / 8
                    };
                }
                used = used.saturating_add(bytes.max(1));
                runs.push(Run {
                    part: i,
                    gap,
                    records,
                    next: to,
                });
            }
            if used >= budget || Instant::now() >= linger_end || self.broker.is_shutting_down() {
                break;
            }
            // Less than a full transaction: wait for more within linger_ms.
            let published = self.broker.log().listen_published();
            if self.has_backlog_beyond(&runs) {
                continue;
            }
            let left = linger_end.saturating_duration_since(Instant::now());
            if runs.is_empty() {
                break;
            }
            let _ = published.wait_timeout(left);
        }
        self.turn = self.turn.wrapping_add(1);
        Ok(runs)
    }

    fn has_backlog_beyond(&self, runs: &[Run]) -> bool {
        let r = self.broker.log().reader();
        self.parts.iter().enumerate().any(|(i, p)| {
            if self.blocked[i].is_some() {
                return false;
            }
            let pos = runs
                .iter()
                .rev()
                .find(|r| r.part == i)
                .map_or(self.positions[i], |r| r.next);
            r.offsets(p.id).1 > pos
        })
    }

    /// Steps 5 and 6: one transaction with the runs and their cursors; after the commit,
    /// positions, release and status move.
    fn transact(
        &mut self,
        cluster: &mut Cluster,
        producer: &mut TxnProducer,
        runs: Vec<Run>,
    ) -> Result<(), SessionError> {
        let ring_id = self.broker.ring_id();
        let now = now_ms();
        let mut batches: BTreeMap<Tp, Vec<KRecord>> = BTreeMap::new();
        let mut last_next: BTreeMap<usize, Offset> = BTreeMap::new();
        let mut records = 0u64;
        let mut gaps = 0u64;
        for run in runs {
            let part = &self.parts[run.part];
            let up = &part.route.upstream_topic;
            let n = cluster.topic(up).map_or(0, |t| t.partitions());
            if n == 0 {
                return Err(KafkaError::Metadata(format!(
                    "upstream topic {up:?} has no partitions"
                ))
                .into());
            }
            if part.route.partitioning == Partitioning::Same && part.partition >= n {
                return Err(KafkaError::Metadata(format!(
                    "edge topic {:?} partition {} has no upstream partition: {up:?} has {n} \
                     (partitioning = \"same\" needs at least as many upstream partitions)",
                    part.topic, part.partition
                ))
                .into());
            }
            let o = Origin {
                gateway_id: &self.cfg.gateway_id,
                topic: &part.topic,
                partition: part.partition,
            };
            if let Some((from, to)) = run.gap {
                gaps += 1;
                log::warn!(
                    "forwarder: {}/{} offsets {}..={} were reclaimed before they were \
                     forwarded; sending a gap record",
                    part.topic,
                    part.partition,
                    from.0,
                    to.0
                );
                let targets: Vec<u32> = match part.route.partitioning {
                    Partitioning::Same => vec![part.partition],
                    Partitioning::KeyHash => (0..n).collect(),
                };
                for t in targets {
                    batches
                        .entry((up.clone(), t as i32))
                        .or_default()
                        .push(origin::gap(&o, from, to, now));
                }
            }
            for (off, r) in run.records {
                let target = match (part.route.partitioning, &r.key) {
                    (Partitioning::Same, _) => part.partition,
                    (Partitioning::KeyHash, Some(k)) => partition_for_key(k, n),
                    (Partitioning::KeyHash, None) => part.partition % n,
                };
                records += 1;
                batches
                    .entry((up.clone(), target as i32))
                    .or_default()
                    .push(origin::forwarded(r, &o, off));
            }
            last_next.insert(run.part, run.next);
        }
        // One cursor record per partition carried.
        let ctopic = self.cfg.cursor_topic.clone();
        let cn = cluster.topic(&ctopic).map_or(0, |t| t.partitions());
        if cn == 0 {
            return Err(
                KafkaError::Metadata(format!("cursor topic {ctopic:?} has no partitions")).into(),
            );
        }
        for (&i, &next) in &last_next {
            let p = &self.parts[i];
            let key = cursor::key(&self.cfg.gateway_id, &p.topic, p.partition);
            let cp = partition_for_key(key.as_bytes(), cn) as i32;
            let value = cursor::encode(&Cursor {
                ring_id,
                next_offset: next,
            });
            let rec = origin::plain(key.into_bytes(), value.to_vec(), now);
            batches.entry((ctopic.clone(), cp)).or_default().push(rec);
        }
        let deadline = Instant::now() + self.request_timeout();
        let parts: BTreeSet<Tp> = batches.keys().cloned().collect();
        producer.add_partitions(cluster, &parts, deadline)?;
        let bases = producer.produce(
            cluster,
            batches,
            usize::try_from(self.cfg.upstream_batch_bytes_max).unwrap_or(usize::MAX),
        )?;
        producer.commit(cluster)?;
        // Each carried partition's latest committed cursor is at or after its cursor
        // partition's first offset in this transaction.
        for &i in last_next.keys() {
            let p = &self.parts[i];
            let key = cursor::key(&self.cfg.gateway_id, &p.topic, p.partition);
            let cp = partition_for_key(key.as_bytes(), cn) as i32;
            if let Some(&base) = bases.get(&(ctopic.clone(), cp)) {
                self.cursor_hints
                    .insert((p.topic.clone(), p.partition), base);
            }
        }
        // Committed: the records and cursors are upstream. Only now may the ring reclaim them.
        let now = now_ms();
        for (&i, &next) in &last_next {
            self.positions[i] = next;
            let p = &self.parts[i];
            self.broker.log().release(p.id, next);
            self.status.update(|s| {
                if let Some(ps) = s.partitions.get_mut(&(p.topic.clone(), p.partition)) {
                    ps.position = Some(next.0);
                    ps.last_commit_ms = Some(now);
                }
            });
        }
        self.status.update(|s| {
            s.commits += 1;
            s.records_forwarded += records;
            s.gaps += gaps;
            s.last_commit_ms = Some(now);
            s.last_error = None;
        });
        self.refresh_lag();
        Ok(())
    }

    /// Status: each partition's durable end, bytes behind and oldest unforwarded record.
    fn refresh_lag(&self) {
        let reader = self.broker.log().reader();
        for (i, p) in self.parts.iter().enumerate() {
            // Before the cursor is read back the position is 0: every stored record counts.
            let pos = self.positions[i];
            let (earliest, next) = reader.offsets(p.id);
            let oldest = if next > pos {
                reader
                    .read(p.id, pos.max(earliest), 1)
                    .ok()
                    .and_then(|b| b.records.into_iter().next())
                    .map(|(_, r)| r)
            } else {
                None
            };
            // Nothing forwarded yet to average over: the oldest record's size stands in.
            let mean = match (self.mean_record_bytes, &oldest) {
                (0, Some(r)) => r.encoded_bytes(),
                (m, _) => m,
            };
            let behind = next.0.saturating_sub(pos.max(earliest).0);
            self.status.update(|s| {
                if let Some(ps) = s.partitions.get_mut(&(p.topic.clone(), p.partition)) {
                    ps.durable_next = next.0;
                    ps.bytes_behind = behind.saturating_mul(mean);
                    ps.oldest_unforwarded_ms = oldest.as_ref().map(|r| r.timestamp_ms);
                }
            });
        }
    }
}
