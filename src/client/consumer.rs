//! [`GroupConsumer`]: a consumer of a group's partitions that offers the three delivery
//! semantics by name (docs/SEMANTICS.md):
//!
//! - [`Semantics::AtMostOnce`]: [`GroupConsumer::poll`] commits the new positions *before* it
//!   returns the records; a crash while processing loses them, never repeats them.
//! - [`Semantics::AtLeastOnce`] (the default): `poll` returns records, the caller processes
//!   them, then calls [`GroupConsumer::commit`]; a crash before the commit repeats them, never
//!   loses them.
//! - [`Semantics::ExactlyOnce`]: the caller turns the records into outputs and calls
//!   [`GroupConsumer::commit_with_outputs`]: the outputs and the new positions go into one
//!   ATOMIC_WRITE (one batch, one CRC) under an idempotent producer, so after any crash either
//!   both are stored or neither, and a restarted instance (same producer name) fences the old
//!   one.
//!
//! Membership: [`Membership::Join`] joins the group (the broker assigns partitions, heartbeats
//! are sent from `poll`, a rebalance makes the consumer rejoin and go back to the committed
//! positions); [`Membership::Assign`] consumes the given partitions as a standalone consumer
//! of the group (no members, no rebalances; the group must have no joined members).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use super::producer::{AtomicCommitIn, AtomicWritten, IdempotentProducer};
use super::{Client, ClientError, GroupPartitionRef, OffsetToCommit};
use crate::protocol::ErrorCode;
use crate::storage::Record;

/// The delivery semantics of a consume–process(–produce) loop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Semantics {
    /// Commit, then process: never twice, possibly never.
    AtMostOnce,
    /// Process, then commit: never lost, possibly twice.
    #[default]
    AtLeastOnce,
    /// Outputs and input offsets in one atomic write: exactly once.
    ExactlyOnce,
}

impl Semantics {
    pub fn name(self) -> &'static str {
        match self {
            Semantics::AtMostOnce => "at-most-once",
            Semantics::AtLeastOnce => "at-least-once",
            Semantics::ExactlyOnce => "exactly-once",
        }
    }
}

impl fmt::Display for Semantics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Semantics {
    type Err = String;

    fn from_str(s: &str) -> Result<Semantics, String> {
        match s {
            "at-most-once" => Ok(Semantics::AtMostOnce),
            "at-least-once" => Ok(Semantics::AtLeastOnce),
            "exactly-once" => Ok(Semantics::ExactlyOnce),
            _ => Err(format!(
                "expected at-most-once, at-least-once or exactly-once, got {s:?}"
            )),
        }
    }
}

/// Where to start a partition with no committed offset, or whose committed offset the ring
/// already reclaimed (`committed < earliest`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ResetPolicy {
    /// The oldest record still stored.
    #[default]
    Earliest,
    /// Only records produced from now on.
    Latest,
    /// Refuse: `OFFSET_OUT_OF_RANGE`.
    Error,
}

impl FromStr for ResetPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<ResetPolicy, String> {
        match s {
            "earliest" => Ok(ResetPolicy::Earliest),
            "latest" => Ok(ResetPolicy::Latest),
            "error" => Ok(ResetPolicy::Error),
            _ => Err(format!("expected earliest, latest or error, got {s:?}")),
        }
    }
}

/// How the consumer gets its partitions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Membership {
    /// Join the group, subscribed to `topics`; the broker assigns partitions.
    Join {
        topics: Vec<String>,
        client_id: String,
        session_timeout_ms: u32,
    },
    /// Consume exactly these (topic, partition) as a standalone consumer of the group.
    Assign(Vec<(String, u32)>),
}

/// Everything a [`GroupConsumer`] needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerConfig {
    pub group: String,
    pub membership: Membership,
    pub semantics: Semantics,
    pub reset: ResetPolicy,
    /// Exactly-once only: the idempotent producer's name (the same after a restart, so the
    /// restarted instance fences the old one).
    pub producer_name: Option<String>,
    /// Bytes asked per FETCH.
    pub fetch_bytes_max: u32,
}

/// One record consumed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consumed {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    pub record: Record,
}

/// A consumer of a group. See the [module documentation](self).
pub struct GroupConsumer {
    cfg: ConsumerConfig,
    /// `(member id, generation)` while joined.
    member: Option<(String, u32)>,
    /// Next offset to consume, per assigned partition.
    positions: BTreeMap<(String, u32), u64>,
    /// A rebalance or a fenced commit was seen: rejoin at the next poll.
    rejoin: bool,
    last_heartbeat: Instant,
    /// Where the next poll starts, so every partition gets its turn.
    rotate: usize,
    producer: Option<IdempotentProducer>,
}

impl GroupConsumer {
    /// Joins (or assigns), initialises the producer for exactly-once, and positions every
    /// partition at its committed offset (or per the reset policy).
    pub async fn start(client: &Client, cfg: ConsumerConfig) -> Result<GroupConsumer, ClientError> {
        let producer = match (cfg.semantics, &cfg.producer_name) {
            (Semantics::ExactlyOnce, Some(name)) => {
                Some(IdempotentProducer::init(client, name).await?)
            }
            (Semantics::ExactlyOnce, None) => {
                return Err(ClientError::Protocol {
                    detail: "exactly-once needs a producer name".into(),
                });
            }
            _ => None,
        };
        let mut c = GroupConsumer {
            cfg,
            member: None,
            positions: BTreeMap::new(),
            rejoin: true,
            last_heartbeat: Instant::now(),
            rotate: 0,
            producer,
        };
        c.join(client).await?;
        Ok(c)
    }

    pub fn semantics(&self) -> Semantics {
        self.cfg.semantics
    }

    /// The partitions this consumer owns now, with their next offsets.
    pub fn positions(&self) -> &BTreeMap<(String, u32), u64> {
        &self.positions
    }

    /// `(member id, generation)` while joined.
    pub fn member(&self) -> Option<(&str, u32)> {
        self.member.as_ref().map(|(m, g)| (m.as_str(), *g))
    }

    /// (Re)joins and reloads the committed positions: progress not committed is dropped.
    async fn join(&mut self, client: &Client) -> Result<(), ClientError> {
        let assignment: Vec<(String, u32)> = match &self.cfg.membership {
            Membership::Assign(parts) => parts.clone(),
            Membership::Join {
                topics,
                client_id,
                session_timeout_ms,
            } => {
                let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
                let member = self.member.as_ref().map(|m| m.0.as_str());
                let j = client
                    .join_group(
                        &self.cfg.group,
                        member,
                        client_id,
                        *session_timeout_ms,
                        &["range"],
                        &topics,
                    )
                    .await?;
                self.member = Some((j.member, j.generation));
                self.last_heartbeat = Instant::now();
                j.assignment
                    .into_iter()
                    .map(|GroupPartitionRef { topic, partition }| (topic, partition))
                    .collect()
            }
        };
        let wanted: Vec<(&str, u32)> = assignment.iter().map(|(t, p)| (t.as_str(), *p)).collect();
        let member = self.member.as_ref().map(|(m, g)| (m.as_str(), *g));
        let committed = if wanted.is_empty() {
            Vec::new()
        } else {
            client
                .fetch_offsets(&self.cfg.group, member, &wanted)
                .await?
        };
        self.positions.clear();
        for o in committed {
            let start = match o.committed {
                Some(c) if c >= o.earliest && c <= o.next => c,
                committed => match self.cfg.reset {
                    ResetPolicy::Earliest => o.earliest,
                    ResetPolicy::Latest => o.next,
                    ResetPolicy::Error => {
                        return Err(ClientError::Server {
                            code: ErrorCode::OffsetOutOfRange,
                            message: format!(
                                "{}/{}: committed offset {committed:?} is outside the stored \
                                 range {}..{} and the reset policy is error",
                                o.topic, o.partition, o.earliest, o.next
                            ),
                        });
                    }
                },
            };
            self.positions.insert((o.topic, o.partition), start);
        }
        self.rejoin = false;
        Ok(())
    }

    /// Heartbeats when a third of the session passed; notes a rebalance.
    async fn heartbeat(&mut self, client: &Client) -> Result<(), ClientError> {
        let (
            Membership::Join {
                session_timeout_ms, ..
            },
            Some((member, generation)),
        ) = (&self.cfg.membership, &self.member)
        else {
            return Ok(());
        };
        let every = Duration::from_millis(u64::from(*session_timeout_ms) / 3);
        if self.last_heartbeat.elapsed() < every {
            return Ok(());
        }
        match client.heartbeat(&self.cfg.group, member, *generation).await {
            Ok(()) => {
                self.last_heartbeat = Instant::now();
                Ok(())
            }
            Err(e) if e.is_rebalance() => {
                self.rejoin = true;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// The next records of the owned partitions (possibly none after `wait_ms`). At most once:
    /// their offsets are committed before they are returned.
    pub async fn poll(
        &mut self,
        client: &Client,
        wait_ms: u32,
    ) -> Result<Vec<Consumed>, ClientError> {
        self.heartbeat(client).await?;
        if self.rejoin {
            self.join(client).await?;
        }
        let keys: Vec<(String, u32)> = self.positions.keys().cloned().collect();
        if keys.is_empty() {
            // Nothing assigned: wait a little so a caller's loop does not spin.
            smol::Timer::after(Duration::from_millis(u64::from(wait_ms.min(100)))).await;
            return Ok(Vec::new());
        }
        // The positions move only once the whole poll succeeded (and, at most once, its
        // commit): after an error the records fetched so far are dropped, so their positions
        // must stay where they were, or a later commit would pass over records never returned.
        let mut positions = self.positions.clone();
        let mut out = Vec::new();
        let n = keys.len();
        for i in 0..n {
            let (topic, partition) = &keys[(self.rotate + i) % n];
            let at = positions[&(topic.clone(), *partition)];
            // Only the last partition of an empty round long-polls.
            let wait = if out.is_empty() && i + 1 == n {
                wait_ms
            } else {
                0
            };
            let f = match client
                .fetch(topic, *partition, at, self.cfg.fetch_bytes_max, wait)
                .await
            {
                Ok(f) => f,
                Err(e) if e.code() == Some(ErrorCode::OffsetOutOfRange) => {
                    // Reclaimed under us (drop-oldest): apply the reset policy.
                    let o = client.list_offsets(topic, *partition).await?;
                    let to = match self.cfg.reset {
                        ResetPolicy::Earliest => o.earliest,
                        ResetPolicy::Latest => o.next,
                        ResetPolicy::Error => return Err(e),
                    };
                    positions.insert((topic.clone(), *partition), to);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let next = f.next_fetch_offset(at);
            positions.insert((topic.clone(), *partition), next);
            out.extend(f.records.into_iter().map(|r| Consumed {
                topic: topic.clone(),
                partition: *partition,
                offset: r.offset,
                record: r.record,
            }));
        }
        self.rotate = (self.rotate + 1) % n;
        let before = std::mem::replace(&mut self.positions, positions);
        if self.cfg.semantics == Semantics::AtMostOnce
            && !out.is_empty()
            && let Err(e) = self.commit(client).await
        {
            // Not returned, so not processed: the next poll returns them again (whether or
            // not the commit landed, they are processed at most once).
            self.positions = before;
            return Err(e);
        }
        Ok(out)
    }

    fn offsets(&self) -> Vec<OffsetToCommit> {
        self.positions
            .iter()
            .map(|((topic, partition), offset)| OffsetToCommit {
                topic: topic.clone(),
                partition: *partition,
                offset: *offset,
                metadata: String::new(),
            })
            .collect()
    }

    /// Commits the positions of everything polled so far (at-least-once: call it after
    /// processing). A fenced commit (rebalance) makes the next poll rejoin and go back to the
    /// committed positions, and is returned as the error.
    pub async fn commit(&mut self, client: &Client) -> Result<(), ClientError> {
        if self.positions.is_empty() {
            return Ok(());
        }
        let member = self.member.as_ref().map(|(m, g)| (m.as_str(), *g));
        match client
            .commit_offsets(&self.cfg.group, member, &self.offsets())
            .await
        {
            Err(e) if e.is_rebalance() => {
                self.rejoin = true;
                Err(e)
            }
            r => r,
        }
    }

    /// Exactly-once: writes `outputs` (records per topic and partition) and commits the
    /// positions of everything polled so far in ONE atomic write. On a refusal because of a
    /// rebalance the next poll rejoins and goes back to the committed positions (nothing of
    /// this write was stored). After a connection error, call it again with the same outputs
    /// (on a new connection): the broker answers a retry of a stored write as a duplicate.
    pub async fn commit_with_outputs(
        &mut self,
        client: &Client,
        outputs: Vec<(String, u32, Vec<Record>)>,
    ) -> Result<AtomicWritten, ClientError> {
        let commit = AtomicCommitIn {
            group: self.cfg.group.clone(),
            member: self.member.clone(),
            offsets: self.offsets(),
        };
        let Some(producer) = self.producer.as_mut() else {
            return Err(ClientError::Protocol {
                detail: format!(
                    "commit_with_outputs needs exactly-once semantics; this consumer is {}",
                    self.cfg.semantics
                ),
            });
        };
        let outputs: Vec<_> = outputs.into_iter().filter(|o| !o.2.is_empty()).collect();
        match producer.send_atomic(client, outputs, Some(&commit)).await {
            Err(e) if e.is_rebalance() => {
                self.rejoin = true;
                Err(e)
            }
            r => r,
        }
    }

    /// Leaves the group (members only), so its partitions move at once.
    pub async fn leave(self, client: &Client) -> Result<(), ClientError> {
        if let Some((member, _)) = &self.member {
            client.leave_group(&self.cfg.group, member).await?;
        }
        Ok(())
    }
}
