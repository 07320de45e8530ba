//! The broker's consumer groups (docs/GROUPS.md): the pure [`Coordinator`] behind a mutex,
//! the JOINs waiting for their rebalance, the timer that applies session and rebalance
//! deadlines with no traffic, and the in-RAM mirror of the committed offsets.
//!
//! Invariants:
//! - the clock is read once per request ([`Groups::now_ms`], monotonic ms since start) and
//!   passed in: the coordinator itself never reads it;
//! - after every coordinator call, still under its lock, the completions are taken and handed
//!   to the waiting JOINs ([`Groups::call`]), so a completion is never lost between a JOIN
//!   registering its ticket and awaiting it;
//! - `waiting` holds an entry only while its JOIN handler waits (its guard removes it, also
//!   when the connection drops the request), so it is bounded by the requests in flight;
//! - `offsets` mirrors the ring's `GROUP_OFFSETS` metadata: loaded at start, updated only
//!   after `append_meta` returned (durable), with commits serialized, so it never holds an
//!   offset the ring does not; its size is bounded by `meta_bytes_max`, which `append_meta`
//!   enforces. The coordinator's lock is never held across an await.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::Broker;
use super::topics::Topics;
use crate::groups::offsets::{self, OffsetCodecError};
use crate::groups::{
    CommittedOffset, Coordinator, GroupConfig, GroupError, GroupId, JoinReply, JoinRequest,
    JoinResult, JoinTicket, PartitionCounts,
};
use crate::storage::flash::Flash;
use crate::storage::meta::{MetaState, namespace};

/// The longest the timer sleeps without looking at the deadlines again (a rebalance started
/// after it went to sleep may have an earlier deadline).
const TICK_MAX: Duration = Duration::from_millis(500);
/// The shortest sleep (deadlines at or before `now` are applied by `expire`).
const TICK_MIN: Duration = Duration::from_millis(2);

/// The partition count of every topic, as the assignors see it (refreshed after every
/// CREATE_TOPIC).
#[derive(Clone, Debug, Default)]
pub(crate) struct TopicCounts(BTreeMap<String, u32>);

impl TopicCounts {
    pub(crate) fn of(topics: &Topics) -> TopicCounts {
        TopicCounts(
            topics
                .list()
                .iter()
                .map(|t| (t.name().to_owned(), t.partitions()))
                .collect(),
        )
    }
}

impl PartitionCounts for TopicCounts {
    fn partitions_of(&self, topic: &str) -> Option<u32> {
        self.0.get(topic).copied()
    }
}

/// A committed-offset entry of the metadata that does not decode: the broker does not start
/// (an entry from a newer outpost is never guessed at).
#[derive(Debug)]
pub struct OffsetsLoadError {
    pub key: Vec<u8>,
    pub error: OffsetCodecError,
}

impl std::fmt::Display for OffsetsLoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "committed-offset entry {:?}: {}",
            String::from_utf8_lossy(&self.key),
            self.error
        )
    }
}

impl std::error::Error for OffsetsLoadError {}

/// One committed offset, as the mirror keeps it.
#[derive(Clone, Debug)]
pub(crate) struct Committed {
    pub topic: String,
    pub partition: u32,
    pub offset: CommittedOffset,
}

type Answer = Result<JoinResult, GroupError>;

pub(crate) struct Groups {
    coordinator: Mutex<Coordinator<TopicCounts>>,
    /// Answers of pending JOINs by ticket: `None` until the completion arrives.
    waiting: Mutex<HashMap<u64, Option<Answer>>>,
    /// Notified whenever `waiting` received an answer.
    completed: event_listener::Event,
    /// The committed offsets by metadata key (see the module invariants).
    offsets: Mutex<BTreeMap<Vec<u8>, Committed>>,
    /// Serializes commits: `append_meta`, then the mirror update.
    commits: smol::lock::Mutex<()>,
    clock: Instant,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Groups {
    /// The coordinator (member ids carry `incarnation`, the start time in Unix ms) and the
    /// committed offsets read from the ring's metadata.
    pub(crate) fn load(
        config: GroupConfig,
        topics: &Topics,
        meta: &MetaState,
    ) -> Result<Groups, OffsetsLoadError> {
        let mut mirror = BTreeMap::new();
        for (key, value) in meta.iter_namespace(namespace::GROUP_OFFSETS) {
            let bad = |error| OffsetsLoadError {
                key: key.to_vec(),
                error,
            };
            let k = offsets::decode_key(key).map_err(bad)?;
            let offset = offsets::decode_value(value).map_err(bad)?;
            mirror.insert(
                key.to_vec(),
                Committed {
                    topic: k.topic,
                    partition: k.partition,
                    offset,
                },
            );
        }
        let incarnation = unix_ms();
        Ok(Groups {
            coordinator: Mutex::new(Coordinator::new(
                config,
                TopicCounts::of(topics),
                incarnation,
            )),
            waiting: Mutex::new(HashMap::new()),
            completed: event_listener::Event::new(),
            offsets: Mutex::new(mirror),
            commits: smol::lock::Mutex::new(()),
            clock: Instant::now(),
        })
    }

    /// The coordinator's clock: monotonic ms since the broker started. Read once per request.
    pub(crate) fn now_ms(&self) -> u64 {
        u64::try_from(self.clock.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub(crate) fn config(&self) -> GroupConfig {
        lock(&self.coordinator).config().clone()
    }

    /// Runs `f` on the coordinator, then hands the completions it produced to the waiting
    /// JOINs (still under the lock).
    pub(crate) fn call<R>(&self, f: impl FnOnce(&mut Coordinator<TopicCounts>) -> R) -> R {
        let mut c = lock(&self.coordinator);
        let r = f(&mut c);
        self.distribute(&mut c);
        r
    }

    fn distribute(&self, c: &mut Coordinator<TopicCounts>) {
        let done = c.take_completions();
        if done.is_empty() {
            return;
        }
        let mut waiting = lock(&self.waiting);
        let mut any = false;
        for d in done {
            // A ticket nobody waits for any more (the connection went) is dropped.
            if let Some(slot) = waiting.get_mut(&d.ticket.get()) {
                *slot = Some(d.result);
                any = true;
            }
        }
        drop(waiting);
        if any {
            self.completed.notify(usize::MAX);
        }
    }

    /// JOIN: a pending answer's ticket is registered before the lock is released.
    pub(crate) fn join(&self, req: JoinRequest<'_>, now_ms: u64) -> Result<JoinReply, GroupError> {
        self.call(|c| {
            let r = c.join(req, now_ms);
            if let Ok(JoinReply::Pending { ticket, .. }) = &r {
                lock(&self.waiting).insert(ticket.get(), None);
            }
            r
        })
    }

    /// Waits for the answer to a pending JOIN, at most until `deadline`; `None` if none came
    /// (or shutdown began).
    pub(crate) async fn wait_join<F: Flash>(
        &self,
        broker: &Broker<F>,
        ticket: JoinTicket,
        deadline: Instant,
    ) -> Option<Answer> {
        let _guard = Waiting(self, ticket.get());
        loop {
            let completed = self.completed.listen();
            let stop = broker.listen_shutdown();
            if let Some(Some(answer)) = lock(&self.waiting).get_mut(&ticket.get()).map(Option::take)
            {
                return Some(answer);
            }
            if broker.is_shutting_down() || Instant::now() >= deadline {
                return None;
            }
            let timer = async {
                smol::Timer::at(deadline).await;
            };
            smol::future::or(smol::future::or(completed, stop), timer).await;
        }
    }

    /// Applies every timeout; returns when the next one falls due.
    pub(crate) fn expire(&self, now_ms: u64) -> Option<u64> {
        self.call(|c| {
            c.expire(now_ms);
            c.next_deadline_ms()
        })
    }

    /// After CREATE_TOPIC: new partition counts; Stable groups that subscribe rebalance.
    pub(crate) fn topics_changed(&self, topics: &Topics) {
        let now = self.now_ms();
        self.call(|c| {
            *c.topics_mut() = TopicCounts::of(topics);
            c.topics_changed(now);
        });
    }

    /// The committed offsets of `group`, ascending by topic then partition.
    pub(crate) fn committed(&self, group: &GroupId) -> Vec<Committed> {
        let prefix = offsets::group_prefix(group);
        lock(&self.offsets)
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(_, c)| c.clone())
            .collect()
    }

    /// Groups that have committed offsets (with or without a coordinator entry).
    pub(crate) fn groups_with_offsets(&self) -> BTreeSet<String> {
        lock(&self.offsets)
            .keys()
            .filter_map(|k| offsets::decode_key(k).ok())
            .map(|k| k.group.as_str().to_owned())
            .collect()
    }

    /// Serializes a commit: hold the guard across `append_meta` and [`Groups::committed_now`].
    pub(crate) async fn commit_lock(&self) -> smol::lock::MutexGuard<'_, ()> {
        self.commits.lock().await
    }

    /// Records entries `append_meta` made durable.
    pub(crate) fn committed_now(&self, entries: Vec<(Vec<u8>, Committed)>) {
        let mut m = lock(&self.offsets);
        for (k, c) in entries {
            m.insert(k, c);
        }
    }
}

/// Removes a JOIN's entry from `waiting` when its handler ends (answered or dropped).
struct Waiting<'a>(&'a Groups, u64);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        lock(&self.0.waiting).remove(&self.1);
    }
}

/// Wall-clock Unix ms (commit timestamps, the incarnation).
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The timer: applies session and rebalance deadlines when they fall due, so a dead member's
/// partitions move even when no request arrives. Runs until shutdown begins.
pub(crate) async fn run<F: Flash>(broker: Arc<Broker<F>>) {
    let groups = broker.groups();
    loop {
        let stop = broker.listen_shutdown();
        if broker.is_shutting_down() {
            return;
        }
        let now = groups.now_ms();
        let next = groups.expire(now);
        let wait = next
            .map_or(TICK_MAX, |d| Duration::from_millis(d.saturating_sub(now)))
            .clamp(TICK_MIN, TICK_MAX);
        let timer = async {
            smol::Timer::after(wait).await;
        };
        smol::future::or(timer, stop).await;
    }
}
