//! The group coordinator: Kafka's classic group protocol, simplified for broker-side
//! assignment, as a pure state machine (docs/GROUPS.md sections 1–2 and 4).
//!
//! No sockets, threads or clock: every call takes `now_ms` (any monotonic millisecond clock)
//! and the caller's partition counts are read through [`PartitionCounts`]. A JOIN that has to
//! wait for the other members returns [`JoinReply::Pending`] with a [`JoinTicket`]; when the
//! rebalance completes (during a later call of any kind) the answer is queued as a
//! [`Completion`], which the caller takes with [`Coordinator::take_completions`] after every
//! call. [`Coordinator::expire`] applies the timeouts; [`Coordinator::next_deadline_ms`] says
//! when it next has something to do. Every call on a group applies that group's timeouts first,
//! so answers never depend on how often the caller runs `expire`.
//!
//! Invariants (checked by the tests after every step):
//! - `Empty` ⇔ no members (outside a call);
//! - `Stable` ⇒ every member is in the current generation (`generation == Some(current)`), has
//!   not rejoined, has no pending join, and the members' assignments are one assignment of the
//!   group's strategy: every partition of every subscribed topic to exactly one subscriber;
//! - `PreparingRebalance` ⇒ some member has not rejoined yet (when the last one rejoins, the
//!   rebalance completes within the same call); a pending join implies a rejoined member;
//! - the strategies all members accept intersect (checked at every join), so a strategy exists;
//! - a group's generation only grows; member ids are never reused (a counter, plus the
//!   caller's `incarnation`, which differs on every broker start);
//! - at most `groups_max` groups, `members_per_group_max` members per group,
//!   `topics_per_member_max` topics per member, three strategies per member.

use super::assign::{self, Assignment, PartitionCounts, Strategy, Subscription, TopicPartition};
use std::collections::{BTreeMap, BTreeSet};

/// Longest group id, in bytes (same as a topic name).
pub const GROUP_ID_BYTES_MAX: usize = 249;
/// Longest client id, in bytes (the HELLO `client` limit).
pub const CLIENT_ID_BYTES_MAX: usize = 64;
/// Longest subscribed topic name, in bytes.
pub const TOPIC_NAME_BYTES_MAX: usize = 249;

/// A consumer group's id: 1–249 bytes of UTF-8 without control characters (so `\0` can
/// separate it from the topic in offset keys, docs/GROUPS.md section 5).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupId(String);

impl std::fmt::Debug for GroupId {
    /// As the string itself, quoted: error messages print ids this way.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.0, f)
    }
}

impl GroupId {
    pub fn new(id: &str) -> Result<GroupId, GroupError> {
        if id.is_empty() {
            return Err(GroupError::InvalidGroupId {
                reason: "a group id cannot be empty",
            });
        }
        if id.len() > GROUP_ID_BYTES_MAX {
            return Err(GroupError::InvalidGroupId {
                reason: "a group id is at most 249 bytes",
            });
        }
        if id.chars().any(char::is_control) {
            return Err(GroupError::InvalidGroupId {
                reason: "a group id cannot contain control characters",
            });
        }
        Ok(GroupId(id.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for GroupId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A member id. The coordinator makes them (`{client_id}-{incarnation}-{n}`); a client echoes
/// them back, so any string converts (an unknown one is `UNKNOWN_MEMBER_ID`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemberId(String);

impl std::fmt::Debug for MemberId {
    /// As the string itself, quoted: error messages print ids this way.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.0, f)
    }
}

impl MemberId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for MemberId {
    fn from(s: &str) -> MemberId {
        MemberId(s.to_string())
    }
}

impl From<String> for MemberId {
    fn from(s: String) -> MemberId {
        MemberId(s)
    }
}

impl std::fmt::Display for MemberId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A group generation: 0 for a new group, +1 per completed rebalance (also one that ends with
/// no member, as in Kafka).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Generation(pub u32);

impl Generation {
    /// The next generation. Saturates at `u32::MAX`, four billion rebalances away.
    fn next(self) -> Generation {
        Generation(self.0.saturating_add(1))
    }
}

impl std::fmt::Display for Generation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Names one pending JOIN; its answer comes back as a [`Completion`] with the same ticket.
/// Unique for the coordinator's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JoinTicket(u64);

impl JoinTicket {
    pub fn get(self) -> u64 {
        self.0
    }
}

/// A group's state, with Kafka's names. There is no `CompletingRebalance`: the broker computes
/// the assignment itself when the last member rejoins, so the group goes straight to `Stable`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    Stable,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

/// Limits and timeouts (docs/GROUPS.md section 1.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupConfig {
    /// Groups kept at once (members or not). A new group beyond it evicts the least recently
    /// active empty group, or is refused with `TOO_MANY_GROUPS`.
    pub groups_max: usize,
    /// Members per group (Kafka's `group.max.size`): `GROUP_MAX_SIZE_REACHED` beyond it.
    pub members_per_group_max: usize,
    /// Topics one member may subscribe to.
    pub topics_per_member_max: usize,
    /// Kafka's `group.min.session.timeout.ms`.
    pub session_timeout_ms_min: u64,
    /// Kafka's `group.max.session.timeout.ms`.
    pub session_timeout_ms_max: u64,
    /// How long a rebalance waits for the members to rejoin. `None`: the largest session
    /// timeout of the group's members when the rebalance starts.
    pub rebalance_timeout_ms: Option<u64>,
}

impl Default for GroupConfig {
    fn default() -> GroupConfig {
        GroupConfig {
            groups_max: 64,
            members_per_group_max: 32,
            topics_per_member_max: 32,
            session_timeout_ms_min: 6_000,
            session_timeout_ms_max: 300_000,
            rebalance_timeout_ms: None,
        }
    }
}

/// A JOIN_GROUP request.
#[derive(Clone, Copy, Debug)]
pub struct JoinRequest<'a> {
    pub group: &'a GroupId,
    /// `None` on the first join: the coordinator assigns an id.
    pub member: Option<&'a MemberId>,
    pub client_id: &'a str,
    /// Accepted strategies, most preferred first (1–3; duplicates ignored).
    pub strategies: &'a [Strategy],
    /// Subscribed topics (at most `topics_per_member_max`; duplicates ignored).
    pub topics: &'a [&'a str],
    pub session_timeout_ms: u64,
}

/// What a completed JOIN answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinResult {
    pub generation: Generation,
    pub member: MemberId,
    /// Informational (the broker assigns): the previous generation's leader if it is still a
    /// member, else the smallest member id.
    pub leader: MemberId,
    pub strategy: Strategy,
    /// This member's partitions in `generation`, sorted.
    pub assignment: Vec<TopicPartition>,
}

/// The immediate answer to a JOIN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JoinReply {
    /// The join completed (it completed the rebalance, or changed nothing): answer now.
    Joined(JoinResult),
    /// Wait for the rebalance: the answer will be a [`Completion`] with `ticket`. `member` is
    /// the member's id (new on a first join).
    Pending {
        ticket: JoinTicket,
        member: MemberId,
    },
}

/// The answer to a pending JOIN, produced by a later call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    pub ticket: JoinTicket,
    pub group: GroupId,
    pub member: MemberId,
    /// `Ok` when the rebalance completed; `UNKNOWN_MEMBER_ID` when the member left meanwhile;
    /// `REBALANCE_IN_PROGRESS` when the same member joined again before this one completed.
    pub result: Result<JoinResult, GroupError>,
}

/// Who commits (or fetches) offsets.
#[derive(Clone, Copy, Debug)]
pub enum Committer<'a> {
    /// A standalone consumer (Kafka: no member id, generation -1): accepted while the group
    /// has no member.
    Simple,
    /// A member of the group, with the generation it was assigned in.
    Member {
        member: &'a MemberId,
        generation: Generation,
    },
}

/// One member, as `outpost groups describe` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberDescription {
    pub member: MemberId,
    pub client_id: String,
    pub topics: Vec<String>,
    pub session_timeout_ms: u64,
    /// Its partitions in the current generation (empty while it has none yet).
    pub assignment: Vec<TopicPartition>,
}

/// A group, as `outpost groups describe` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDescription {
    pub group: GroupId,
    pub state: GroupState,
    pub generation: Generation,
    /// The current generation's strategy (`None` while the group never was Stable or is Empty).
    pub strategy: Option<Strategy>,
    pub leader: Option<MemberId>,
    /// Sorted by member id.
    pub members: Vec<MemberDescription>,
}

/// Errors, with Kafka's names where Kafka has one ([`GroupError::name`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupError {
    InvalidGroupId {
        reason: &'static str,
    },
    InvalidSessionTimeout {
        session_timeout_ms: u64,
        min_ms: u64,
        max_ms: u64,
    },
    InvalidClientId {
        bytes: usize,
    },
    /// Subscribed topic number `index` (from 0) cannot be a topic name.
    InvalidTopic {
        index: usize,
        reason: &'static str,
    },
    SubscriptionTooLarge {
        topics: usize,
        max: usize,
    },
    /// The member's strategies share none with the other members' (or it offered none).
    InconsistentGroupProtocol {
        group: GroupId,
        offered: Vec<Strategy>,
        accepted: Vec<Strategy>,
    },
    UnknownMemberId {
        group: GroupId,
        member: MemberId,
    },
    /// A commit without member id while the group has members (Kafka answers it
    /// `UNKNOWN_MEMBER_ID` too).
    SimpleCommitToActiveGroup {
        group: GroupId,
        members: usize,
    },
    IllegalGeneration {
        group: GroupId,
        generation: Generation,
        current: Generation,
    },
    RebalanceInProgress {
        group: GroupId,
        generation: Generation,
    },
    GroupMaxSizeReached {
        group: GroupId,
        max: usize,
    },
    TooManyGroups {
        max: usize,
    },
}

impl GroupError {
    /// The error's name: Kafka's where Kafka has the case, else outpost's own.
    pub fn name(&self) -> &'static str {
        match self {
            GroupError::InvalidGroupId { .. } => "INVALID_GROUP_ID",
            GroupError::InvalidSessionTimeout { .. } => "INVALID_SESSION_TIMEOUT",
            GroupError::InvalidClientId { .. } => "INVALID_CLIENT_ID",
            GroupError::InvalidTopic { .. } => "INVALID_TOPIC_EXCEPTION",
            GroupError::SubscriptionTooLarge { .. } => "SUBSCRIPTION_TOO_LARGE",
            GroupError::InconsistentGroupProtocol { .. } => "INCONSISTENT_GROUP_PROTOCOL",
            GroupError::UnknownMemberId { .. } | GroupError::SimpleCommitToActiveGroup { .. } => {
                "UNKNOWN_MEMBER_ID"
            }
            GroupError::IllegalGeneration { .. } => "ILLEGAL_GENERATION",
            GroupError::RebalanceInProgress { .. } => "REBALANCE_IN_PROGRESS",
            GroupError::GroupMaxSizeReached { .. } => "GROUP_MAX_SIZE_REACHED",
            GroupError::TooManyGroups { .. } => "TOO_MANY_GROUPS",
        }
    }
}

fn names(list: &[Strategy]) -> String {
    let v: Vec<&str> = list.iter().map(|s| s.name()).collect();
    format!("[{}]", v.join(", "))
}

impl std::fmt::Display for GroupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GroupError::InvalidGroupId { reason } => write!(f, "invalid group id: {reason}"),
            GroupError::InvalidSessionTimeout {
                session_timeout_ms,
                min_ms,
                max_ms,
            } => write!(
                f,
                "session timeout {session_timeout_ms} ms is outside the broker's range \
                 {min_ms}..={max_ms} ms (group.min/max.session.timeout.ms)"
            ),
            GroupError::InvalidClientId { bytes } => write!(
                f,
                "client id is {bytes} bytes; at most {CLIENT_ID_BYTES_MAX}"
            ),
            GroupError::InvalidTopic { index, reason } => {
                write!(f, "subscribed topic #{index}: {reason}")
            }
            GroupError::SubscriptionTooLarge { topics, max } => write!(
                f,
                "subscription names {topics} topics; at most {max} (topics_per_member_max)"
            ),
            GroupError::InconsistentGroupProtocol {
                group,
                offered,
                accepted,
            } => {
                if offered.is_empty() {
                    write!(f, "join to group {group:?} names no assignment strategy")
                } else {
                    write!(
                        f,
                        "group {group:?} members all accept {}; this member offers {}",
                        names(accepted),
                        names(offered)
                    )
                }
            }
            GroupError::UnknownMemberId { group, member } => write!(
                f,
                "group {group:?} has no member {member:?} (it left, its session expired, or the \
                 broker restarted): join again without a member id"
            ),
            GroupError::SimpleCommitToActiveGroup { group, members } => write!(
                f,
                "group {group:?} has {members} active members: a commit without member id and \
                 generation is accepted only while the group is Empty"
            ),
            GroupError::IllegalGeneration {
                group,
                generation,
                current,
            } => write!(
                f,
                "generation {generation} of group {group:?} is not the current one ({current}): \
                 join again"
            ),
            GroupError::RebalanceInProgress { group, generation } => write!(
                f,
                "group {group:?} is rebalancing after generation {generation}: join again"
            ),
            GroupError::GroupMaxSizeReached { group, max } => write!(
                f,
                "group {group:?} already has {max} members (members_per_group_max)"
            ),
            GroupError::TooManyGroups { max } => write!(
                f,
                "the broker already keeps {max} groups with members (groups_max)"
            ),
        }
    }
}

impl std::error::Error for GroupError {}

/// One member. Invariant: `pending.is_some()` ⇒ `rejoined`.
#[derive(Clone, Debug)]
struct Member {
    client_id: String,
    /// Most preferred first, no duplicates, 1–3.
    strategies: Vec<Strategy>,
    /// Sorted, no duplicates.
    topics: Vec<String>,
    session_timeout_ms: u64,
    /// Last join, heartbeat, sync or commit; the session expires at `last_seen_ms +
    /// session_timeout_ms`.
    last_seen_ms: u64,
    /// Joined during the current rebalance (meaningful in `PreparingRebalance` only).
    rejoined: bool,
    /// The JOIN waiting for the rebalance to complete.
    pending: Option<JoinTicket>,
    /// The generation it was assigned in; `None` until its first rebalance completes.
    generation: Option<Generation>,
    assignment: Vec<TopicPartition>,
}

impl Member {
    fn session_deadline_ms(&self) -> u64 {
        self.last_seen_ms.saturating_add(self.session_timeout_ms)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Empty,
    /// Members that have not rejoined by `deadline_ms` are dropped then.
    Preparing {
        deadline_ms: u64,
    },
    Stable,
}

#[derive(Clone, Debug)]
struct Group {
    id: GroupId,
    generation: Generation,
    phase: Phase,
    strategy: Option<Strategy>,
    leader: Option<MemberId>,
    members: BTreeMap<MemberId, Member>,
    /// The partition counts of the subscribed topics the current generation was assigned
    /// with (sorted by topic): `topics_changed` compares against them.
    assigned_with: Vec<(String, Option<u32>)>,
    /// For evicting the least recently active empty group.
    last_active_ms: u64,
}

impl Group {
    fn new(id: GroupId, now_ms: u64) -> Group {
        Group {
            id,
            generation: Generation(0),
            phase: Phase::Empty,
            strategy: None,
            leader: None,
            members: BTreeMap::new(),
            assigned_with: Vec::new(),
            last_active_ms: now_ms,
        }
    }

    fn state(&self) -> GroupState {
        match self.phase {
            Phase::Empty => GroupState::Empty,
            Phase::Preparing { .. } => GroupState::PreparingRebalance,
            Phase::Stable => GroupState::Stable,
        }
    }

    /// The strategies every member but `except` accepts; `None` when there is no such member
    /// (then anything is accepted).
    fn candidates(&self, except: Option<&MemberId>) -> Option<Vec<Strategy>> {
        let mut others = self
            .members
            .iter()
            .filter(|(id, _)| Some(*id) != except)
            .peekable();
        others.peek()?;
        let others: Vec<&Member> = others.map(|(_, m)| m).collect();
        Some(
            Strategy::ALL
                .into_iter()
                .filter(|s| others.iter().all(|m| m.strategies.contains(s)))
                .collect(),
        )
    }

    /// Enters `PreparingRebalance` (from `Empty` or `Stable`; a rebalance in progress keeps
    /// its deadline).
    fn start_rebalance(&mut self, now_ms: u64, config: &GroupConfig) {
        if matches!(self.phase, Phase::Preparing { .. }) {
            return;
        }
        let timeout_ms = config.rebalance_timeout_ms.unwrap_or_else(|| {
            self.members
                .values()
                .map(|m| m.session_timeout_ms)
                .max()
                .unwrap_or(0)
        });
        self.phase = Phase::Preparing {
            deadline_ms: now_ms.saturating_add(timeout_ms),
        };
        self.last_active_ms = now_ms;
    }

    /// Completes the rebalance if every member has rejoined.
    fn maybe_complete(
        &mut self,
        now_ms: u64,
        topics: &dyn PartitionCounts,
        out: &mut Vec<Completion>,
    ) {
        if matches!(self.phase, Phase::Preparing { .. })
            && self.members.values().all(|m| m.rejoined)
        {
            self.complete(now_ms, topics, out);
        }
    }

    /// Completes the rebalance: drops the members that did not rejoin, bumps the generation,
    /// assigns, answers the pending joins, and restarts every session clock at `now_ms`.
    fn complete(&mut self, now_ms: u64, topics: &dyn PartitionCounts, out: &mut Vec<Completion>) {
        // Members that did not rejoin have no pending join (pending ⇒ rejoined).
        self.members.retain(|_, m| m.rejoined);
        self.generation = self.generation.next();
        self.last_active_ms = now_ms;
        if self.members.is_empty() {
            self.phase = Phase::Empty;
            self.strategy = None;
            self.leader = None;
            self.assigned_with.clear();
            return;
        }
        let strategy = self.choose_strategy();
        let previous: Assignment = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.assignment.clone()))
            .collect();
        let subs: Vec<Subscription<'_>> = self
            .members
            .iter()
            .map(|(id, m)| Subscription {
                member: id,
                topics: &m.topics,
            })
            .collect();
        let mut assignment = assign::assign(strategy, &subs, topics, &previous);
        let leader = match &self.leader {
            Some(l) if self.members.contains_key(l) => l.clone(),
            // Non-empty: checked above.
            _ => self
                .members
                .keys()
                .next()
                .cloned()
                .unwrap_or_else(|| MemberId::from("")),
        };
        let subscribed: BTreeSet<&String> = self.members.values().flat_map(|m| &m.topics).collect();
        self.assigned_with = subscribed
            .into_iter()
            .map(|t| (t.clone(), topics.partitions_of(t)))
            .collect();
        for (id, m) in self.members.iter_mut() {
            m.assignment = assignment.remove(id).unwrap_or_default();
            m.generation = Some(self.generation);
            m.rejoined = false;
            m.last_seen_ms = now_ms;
            if let Some(ticket) = m.pending.take() {
                out.push(Completion {
                    ticket,
                    group: self.id.clone(),
                    member: id.clone(),
                    result: Ok(JoinResult {
                        generation: self.generation,
                        member: id.clone(),
                        leader: leader.clone(),
                        strategy,
                        assignment: m.assignment.clone(),
                    }),
                });
            }
        }
        self.leader = Some(leader);
        self.strategy = Some(strategy);
        self.phase = Phase::Stable;
    }

    /// Kafka's vote: among the strategies every member accepts, the one most members prefer
    /// most; ties go to the earliest of `Strategy::ALL`.
    fn choose_strategy(&self) -> Strategy {
        // Never empty while there are members (checked at every join); `Range` is only the
        // type's answer for an impossible case.
        let candidates = self.candidates(None).unwrap_or_default();
        let votes = |s: Strategy| {
            self.members
                .values()
                .filter(|m| m.strategies.iter().find(|c| candidates.contains(c)) == Some(&s))
                .count()
        };
        candidates
            .iter()
            .copied()
            .max_by_key(|s| (votes(*s), std::cmp::Reverse(*s)))
            .unwrap_or(Strategy::Range)
    }

    /// Removes a member; a pending join of it is answered `UNKNOWN_MEMBER_ID`.
    fn remove(&mut self, id: &MemberId, out: &mut Vec<Completion>) -> bool {
        let Some(m) = self.members.remove(id) else {
            return false;
        };
        if let Some(ticket) = m.pending {
            out.push(Completion {
                ticket,
                group: self.id.clone(),
                member: id.clone(),
                result: Err(GroupError::UnknownMemberId {
                    group: self.id.clone(),
                    member: id.clone(),
                }),
            });
        }
        if self.leader.as_ref() == Some(id) {
            self.leader = None;
        }
        true
    }

    /// Applies the timeouts at `now_ms` (docs/GROUPS.md section 1.3).
    fn expire(
        &mut self,
        now_ms: u64,
        config: &GroupConfig,
        topics: &dyn PartitionCounts,
        out: &mut Vec<Completion>,
    ) {
        match self.phase {
            Phase::Empty => {}
            Phase::Stable => {
                let expired: Vec<MemberId> = self
                    .members
                    .iter()
                    .filter(|(_, m)| now_ms >= m.session_deadline_ms())
                    .map(|(id, _)| id.clone())
                    .collect();
                if expired.is_empty() {
                    return;
                }
                for id in &expired {
                    self.remove(id, out);
                }
                self.start_rebalance(now_ms, config);
                self.maybe_complete(now_ms, topics, out);
            }
            Phase::Preparing { deadline_ms } => {
                // A member that rejoined waits for the rebalance, not for its session.
                let expired: Vec<MemberId> = self
                    .members
                    .iter()
                    .filter(|(_, m)| !m.rejoined && now_ms >= m.session_deadline_ms())
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in &expired {
                    self.remove(id, out);
                }
                if now_ms >= deadline_ms {
                    self.complete(now_ms, topics, out);
                } else {
                    self.maybe_complete(now_ms, topics, out);
                }
            }
        }
    }

    fn next_deadline_ms(&self) -> Option<u64> {
        match self.phase {
            Phase::Empty => None,
            Phase::Stable => self.members.values().map(Member::session_deadline_ms).min(),
            Phase::Preparing { deadline_ms } => self
                .members
                .values()
                .filter(|m| !m.rejoined)
                .map(Member::session_deadline_ms)
                .chain(std::iter::once(deadline_ms))
                .min(),
        }
    }

    fn result_for(&self, id: &MemberId) -> Option<JoinResult> {
        let m = self.members.get(id)?;
        Some(JoinResult {
            generation: self.generation,
            member: id.clone(),
            leader: self.leader.clone()?,
            strategy: self.strategy?,
            assignment: m.assignment.clone(),
        })
    }

    fn unknown(&self, member: &MemberId) -> GroupError {
        GroupError::UnknownMemberId {
            group: self.id.clone(),
            member: member.clone(),
        }
    }
}

/// The coordinator of every group of one broker.
pub struct Coordinator<P> {
    config: GroupConfig,
    topics: P,
    /// Differs on every broker start, so member ids never repeat across restarts.
    incarnation: u64,
    next_member: u64,
    next_ticket: u64,
    groups: BTreeMap<GroupId, Group>,
    /// Answers to pending joins, in the order they were produced; the caller drains them
    /// after every call (at most one per JOIN call since the last drain).
    completions: Vec<Completion>,
}

impl<P: PartitionCounts> Coordinator<P> {
    /// `incarnation` must differ on every broker start (the start time in ms will do): it is
    /// part of every member id, so a member id from before a restart is never given out again
    /// and its late commits are refused.
    pub fn new(config: GroupConfig, topics: P, incarnation: u64) -> Coordinator<P> {
        Coordinator {
            config,
            topics,
            incarnation,
            next_member: 0,
            next_ticket: 0,
            groups: BTreeMap::new(),
            completions: Vec::new(),
        }
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// The partition counts the assignments are computed from.
    pub fn topics(&self) -> &P {
        &self.topics
    }

    /// Changing them takes effect at the next rebalance; call [`Coordinator::topics_changed`]
    /// to start one where it matters.
    pub fn topics_mut(&mut self) -> &mut P {
        &mut self.topics
    }

    /// JOIN_GROUP (docs/GROUPS.md section 1.2).
    pub fn join(&mut self, req: JoinRequest<'_>, now_ms: u64) -> Result<JoinReply, GroupError> {
        let cfg = &self.config;
        if req.session_timeout_ms < cfg.session_timeout_ms_min
            || req.session_timeout_ms > cfg.session_timeout_ms_max
        {
            return Err(GroupError::InvalidSessionTimeout {
                session_timeout_ms: req.session_timeout_ms,
                min_ms: cfg.session_timeout_ms_min,
                max_ms: cfg.session_timeout_ms_max,
            });
        }
        if req.client_id.len() > CLIENT_ID_BYTES_MAX {
            return Err(GroupError::InvalidClientId {
                bytes: req.client_id.len(),
            });
        }
        let strategies = dedup_strategies(req.strategies);
        if strategies.is_empty() {
            return Err(GroupError::InconsistentGroupProtocol {
                group: req.group.clone(),
                offered: Vec::new(),
                accepted: Vec::new(),
            });
        }
        let topics = check_topics(req.topics, cfg.topics_per_member_max)?;

        if req.member.is_none() {
            self.ensure_group(req.group, now_ms)?;
        }
        let Some(group) = self.groups.get_mut(req.group) else {
            // Only a join with a member id gets here: the group is gone, so is the member.
            return Err(GroupError::UnknownMemberId {
                group: req.group.clone(),
                member: req.member.cloned().unwrap_or_else(|| MemberId::from("")),
            });
        };
        let out = &mut self.completions;
        group.expire(now_ms, &self.config, &self.topics, out);
        group.last_active_ms = now_ms;
        if let Some(id) = req.member
            && !group.members.contains_key(id)
        {
            return Err(group.unknown(id));
        }

        if let Some(c) = group.candidates(req.member)
            && !strategies.iter().any(|s| c.contains(s))
        {
            return Err(GroupError::InconsistentGroupProtocol {
                group: req.group.clone(),
                offered: strategies,
                accepted: c,
            });
        }
        let ticket = JoinTicket(self.next_ticket);
        let id = match req.member {
            None => {
                if group.members.len() >= self.config.members_per_group_max {
                    return Err(GroupError::GroupMaxSizeReached {
                        group: req.group.clone(),
                        max: self.config.members_per_group_max,
                    });
                }
                let client = if req.client_id.is_empty() {
                    "member"
                } else {
                    req.client_id
                };
                let id = MemberId(format!(
                    "{client}-{}-{}",
                    self.incarnation, self.next_member
                ));
                self.next_member += 1;
                group.members.insert(
                    id.clone(),
                    Member {
                        client_id: req.client_id.to_string(),
                        strategies,
                        topics,
                        session_timeout_ms: req.session_timeout_ms,
                        last_seen_ms: now_ms,
                        rejoined: true,
                        pending: Some(ticket),
                        generation: None,
                        assignment: Vec::new(),
                    },
                );
                group.start_rebalance(now_ms, &self.config);
                id
            }
            Some(id) => {
                let phase = group.phase;
                let Some(m) = group.members.get_mut(id) else {
                    return Err(group.unknown(id));
                };
                let unchanged = m.topics == topics && m.strategies == strategies;
                m.session_timeout_ms = req.session_timeout_ms;
                m.last_seen_ms = now_ms;
                if phase == Phase::Stable && unchanged {
                    // A retried or redundant join: the current generation, no rebalance.
                    return group
                        .result_for(id)
                        .map(JoinReply::Joined)
                        .ok_or_else(|| group.unknown(id));
                }
                if let Some(old) = m.pending.take() {
                    out.push(Completion {
                        ticket: old,
                        group: req.group.clone(),
                        member: id.clone(),
                        result: Err(GroupError::RebalanceInProgress {
                            group: req.group.clone(),
                            generation: group.generation,
                        }),
                    });
                }
                m.strategies = strategies;
                m.topics = topics;
                m.rejoined = true;
                m.pending = Some(ticket);
                group.start_rebalance(now_ms, &self.config);
                id.clone()
            }
        };
        self.next_ticket += 1;
        group.maybe_complete(now_ms, &self.topics, out);
        // If this join completed the rebalance, answer it now rather than through the queue.
        match out.iter().position(|c| c.ticket == ticket) {
            Some(i) => out.remove(i).result.map(JoinReply::Joined),
            None => Ok(JoinReply::Pending { ticket, member: id }),
        }
    }

    /// SYNC_GROUP: the member's assignment in `generation` (which must be current). Counts as
    /// a heartbeat.
    pub fn sync(
        &mut self,
        group: &GroupId,
        member: &MemberId,
        generation: Generation,
        now_ms: u64,
    ) -> Result<Vec<TopicPartition>, GroupError> {
        let g = self.live_member(group, member, generation, now_ms)?;
        g.members
            .get(member)
            .map(|m| m.assignment.clone())
            .ok_or_else(|| g.unknown(member))
    }

    /// HEARTBEAT: `Ok` while the group is Stable in `generation`; `REBALANCE_IN_PROGRESS`
    /// (the member must rejoin) while it is rebalancing. Either way the session is extended.
    pub fn heartbeat(
        &mut self,
        group: &GroupId,
        member: &MemberId,
        generation: Generation,
        now_ms: u64,
    ) -> Result<(), GroupError> {
        self.live_member(group, member, generation, now_ms)
            .map(|_| ())
    }

    /// The checks of HEARTBEAT and SYNC: the member exists, `generation` is current, the group
    /// is Stable; extends the session when the generation is right.
    fn live_member(
        &mut self,
        group: &GroupId,
        member: &MemberId,
        generation: Generation,
        now_ms: u64,
    ) -> Result<&Group, GroupError> {
        let Some(g) = self.groups.get_mut(group) else {
            return Err(GroupError::UnknownMemberId {
                group: group.clone(),
                member: member.clone(),
            });
        };
        g.expire(now_ms, &self.config, &self.topics, &mut self.completions);
        let current = g.generation;
        let phase = g.phase;
        let Some(m) = g.members.get_mut(member) else {
            return Err(g.unknown(member));
        };
        if generation != current {
            return Err(GroupError::IllegalGeneration {
                group: group.clone(),
                generation,
                current,
            });
        }
        m.last_seen_ms = now_ms;
        g.last_active_ms = now_ms;
        match phase {
            Phase::Stable => Ok(g),
            Phase::Preparing { .. } | Phase::Empty => Err(GroupError::RebalanceInProgress {
                group: group.clone(),
                generation: current,
            }),
        }
    }

    /// LEAVE_GROUP: the member goes at once; the others rebalance (a pending join of the
    /// member is answered `UNKNOWN_MEMBER_ID`).
    pub fn leave(
        &mut self,
        group: &GroupId,
        member: &MemberId,
        now_ms: u64,
    ) -> Result<(), GroupError> {
        let Some(g) = self.groups.get_mut(group) else {
            return Err(GroupError::UnknownMemberId {
                group: group.clone(),
                member: member.clone(),
            });
        };
        let out = &mut self.completions;
        g.expire(now_ms, &self.config, &self.topics, out);
        if !g.remove(member, out) {
            return Err(g.unknown(member));
        }
        g.start_rebalance(now_ms, &self.config);
        g.maybe_complete(now_ms, &self.topics, out);
        Ok(())
    }

    /// May `committer` commit offsets for `group` now? (docs/GROUPS.md section 4.) A member's
    /// successful check counts as a heartbeat, as in Kafka. Offsets themselves are not kept
    /// here.
    pub fn check_commit(
        &mut self,
        group: &GroupId,
        committer: Committer<'_>,
        now_ms: u64,
    ) -> Result<(), GroupError> {
        self.check_offsets_access(group, committer, now_ms, true)
    }

    /// May `committer` read the group's committed offsets? The same rules as a commit, except
    /// that a standalone reader (`Committer::Simple`: tools, `outpost groups describe`) is
    /// always allowed.
    pub fn check_fetch(
        &mut self,
        group: &GroupId,
        committer: Committer<'_>,
        now_ms: u64,
    ) -> Result<(), GroupError> {
        match committer {
            Committer::Simple => Ok(()),
            Committer::Member { .. } => self.check_offsets_access(group, committer, now_ms, false),
        }
    }

    fn check_offsets_access(
        &mut self,
        group: &GroupId,
        committer: Committer<'_>,
        now_ms: u64,
        heartbeat: bool,
    ) -> Result<(), GroupError> {
        let g = self.groups.get_mut(group);
        let (member, generation) = match committer {
            Committer::Simple => {
                let Some(g) = g else {
                    return Ok(());
                };
                g.expire(now_ms, &self.config, &self.topics, &mut self.completions);
                g.last_active_ms = now_ms;
                return if g.members.is_empty() {
                    Ok(())
                } else {
                    Err(GroupError::SimpleCommitToActiveGroup {
                        group: group.clone(),
                        members: g.members.len(),
                    })
                };
            }
            Committer::Member { member, generation } => (member, generation),
        };
        let Some(g) = g else {
            return Err(GroupError::UnknownMemberId {
                group: group.clone(),
                member: member.clone(),
            });
        };
        g.expire(now_ms, &self.config, &self.topics, &mut self.completions);
        let current = g.generation;
        let Some(m) = g.members.get_mut(member) else {
            return Err(g.unknown(member));
        };
        if generation != current {
            return Err(GroupError::IllegalGeneration {
                group: group.clone(),
                generation,
                current,
            });
        }
        if m.generation != Some(current) {
            // It joined during this rebalance: it owns nothing yet.
            return Err(GroupError::RebalanceInProgress {
                group: group.clone(),
                generation: current,
            });
        }
        // Accepted in Stable and also in PreparingRebalance: the member still owns its
        // partitions until the next generation exists (Kafka consumers commit in
        // onPartitionsRevoked, before rejoining).
        if heartbeat {
            m.last_seen_ms = now_ms;
            g.last_active_ms = now_ms;
        }
        Ok(())
    }

    /// Applies every group's timeouts: expired sessions leave (the others rebalance),
    /// rebalances past their deadline complete without the members that did not rejoin.
    pub fn expire(&mut self, now_ms: u64) {
        for g in self.groups.values_mut() {
            g.expire(now_ms, &self.config, &self.topics, &mut self.completions);
        }
    }

    /// Starts a rebalance in every Stable group whose subscribed topics' partition counts
    /// differ from the ones its generation was assigned with (a topic was created or grew).
    pub fn topics_changed(&mut self, now_ms: u64) {
        for g in self.groups.values_mut() {
            if g.phase != Phase::Stable {
                continue;
            }
            let changed = g
                .assigned_with
                .iter()
                .any(|(t, n)| self.topics.partitions_of(t) != *n);
            if changed {
                g.start_rebalance(now_ms, &self.config);
            }
        }
    }

    /// When [`Coordinator::expire`] next has something to do (`None`: nothing is timed).
    pub fn next_deadline_ms(&self) -> Option<u64> {
        self.groups
            .values()
            .filter_map(Group::next_deadline_ms)
            .min()
    }

    /// The answers to pending joins produced since the last call, oldest first.
    pub fn take_completions(&mut self) -> Vec<Completion> {
        std::mem::take(&mut self.completions)
    }

    pub fn describe(&self, group: &GroupId) -> Option<GroupDescription> {
        let g = self.groups.get(group)?;
        Some(GroupDescription {
            group: g.id.clone(),
            state: g.state(),
            generation: g.generation,
            strategy: g.strategy,
            leader: g.leader.clone(),
            members: g
                .members
                .iter()
                .map(|(id, m)| MemberDescription {
                    member: id.clone(),
                    client_id: m.client_id.clone(),
                    topics: m.topics.clone(),
                    session_timeout_ms: m.session_timeout_ms,
                    assignment: m.assignment.clone(),
                })
                .collect(),
        })
    }

    /// Every group with its state and member count, by id.
    pub fn list(&self) -> Vec<(GroupId, GroupState, usize)> {
        self.groups
            .values()
            .map(|g| (g.id.clone(), g.state(), g.members.len()))
            .collect()
    }

    /// Creates the group if needed, evicting the least recently active empty group when
    /// `groups_max` is reached.
    fn ensure_group(&mut self, id: &GroupId, now_ms: u64) -> Result<(), GroupError> {
        if self.groups.contains_key(id) {
            return Ok(());
        }
        if self.config.members_per_group_max == 0 {
            return Err(GroupError::GroupMaxSizeReached {
                group: id.clone(),
                max: 0,
            });
        }
        if self.groups.len() >= self.config.groups_max {
            let victim = self
                .groups
                .values()
                .filter(|g| g.members.is_empty())
                .min_by_key(|g| (g.last_active_ms, &g.id))
                .map(|g| g.id.clone());
            match victim {
                Some(v) => {
                    self.groups.remove(&v);
                }
                None => {
                    return Err(GroupError::TooManyGroups {
                        max: self.config.groups_max,
                    });
                }
            }
        }
        self.groups
            .insert(id.clone(), Group::new(id.clone(), now_ms));
        Ok(())
    }
}

/// The strategies in order, duplicates dropped (so at most three).
fn dedup_strategies(list: &[Strategy]) -> Vec<Strategy> {
    let mut out: Vec<Strategy> = Vec::with_capacity(Strategy::ALL.len());
    for s in list {
        if !out.contains(s) {
            out.push(*s);
        }
    }
    out
}

/// Checks a subscription (count first, so the work is bounded) and returns it sorted, without
/// duplicates.
fn check_topics(topics: &[&str], max: usize) -> Result<Vec<String>, GroupError> {
    if topics.len() > max {
        return Err(GroupError::SubscriptionTooLarge {
            topics: topics.len(),
            max,
        });
    }
    for (index, t) in topics.iter().enumerate() {
        let reason = if t.is_empty() {
            "a topic name cannot be empty"
        } else if t.len() > TOPIC_NAME_BYTES_MAX {
            "a topic name is at most 249 bytes"
        } else if t.contains('\0') {
            "a topic name cannot contain NUL"
        } else {
            continue;
        };
        return Err(GroupError::InvalidTopic { index, reason });
    }
    let mut v: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
    v.sort_unstable();
    v.dedup();
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Topics = BTreeMap<String, u32>;

    const SESSION_MS: u64 = 10_000;

    fn g(s: &str) -> GroupId {
        GroupId::new(s).unwrap()
    }

    fn tp(t: &str, p: u32) -> TopicPartition {
        TopicPartition::new(t, p)
    }

    fn coordinator(config: GroupConfig) -> Coordinator<Topics> {
        let topics: Topics = [("t".to_string(), 6), ("u".to_string(), 3)]
            .into_iter()
            .collect();
        Coordinator::new(config, topics, 7)
    }

    fn req<'a>(
        group: &'a GroupId,
        member: Option<&'a MemberId>,
        strategies: &'a [Strategy],
        topics: &'a [&'a str],
    ) -> JoinRequest<'a> {
        JoinRequest {
            group,
            member,
            client_id: "app",
            strategies,
            topics,
            session_timeout_ms: SESSION_MS,
        }
    }

    fn join(
        c: &mut Coordinator<Topics>,
        group: &GroupId,
        member: Option<&MemberId>,
        strategy: Strategy,
        now: u64,
    ) -> Result<JoinReply, GroupError> {
        let r = c.join(req(group, member, &[strategy], &["t"]), now);
        check_invariants(c);
        r
    }

    fn joined(r: Result<JoinReply, GroupError>) -> JoinResult {
        match r {
            Ok(JoinReply::Joined(j)) => j,
            other => panic!("expected Joined, got {other:?}"),
        }
    }

    fn pending(r: Result<JoinReply, GroupError>) -> (JoinTicket, MemberId) {
        match r {
            Ok(JoinReply::Pending { ticket, member }) => (ticket, member),
            other => panic!("expected Pending, got {other:?}"),
        }
    }

    /// The module doc's invariants, on the private state.
    fn check_invariants<P: PartitionCounts>(c: &Coordinator<P>) {
        assert!(c.groups.len() <= c.config.groups_max);
        for (id, grp) in &c.groups {
            assert_eq!(id, &grp.id);
            assert!(grp.members.len() <= c.config.members_per_group_max);
            assert_eq!(
                grp.phase == Phase::Empty,
                grp.members.is_empty(),
                "{id}: Empty ⇔ no members"
            );
            for m in grp.members.values() {
                assert!(m.pending.is_none() || m.rejoined, "pending ⇒ rejoined");
                assert!(m.topics.len() <= c.config.topics_per_member_max);
                assert!(!m.strategies.is_empty() && m.strategies.len() <= 3);
            }
            if !grp.members.is_empty() {
                assert!(
                    !grp.candidates(None).unwrap().is_empty(),
                    "a strategy exists"
                );
            }
            match grp.phase {
                Phase::Empty => {}
                Phase::Preparing { .. } => {
                    assert!(
                        grp.members.values().any(|m| !m.rejoined),
                        "{id}: would be complete"
                    );
                }
                Phase::Stable => {
                    let mut owned = BTreeSet::new();
                    for (mid, m) in &grp.members {
                        assert_eq!(m.generation, Some(grp.generation));
                        assert!(!m.rejoined && m.pending.is_none());
                        for p in &m.assignment {
                            assert!(m.topics.contains(&p.topic), "{mid} owns {p} unsubscribed");
                            assert!(owned.insert(p.clone()), "{p} owned twice");
                        }
                    }
                    let subscribed: BTreeSet<&String> =
                        grp.members.values().flat_map(|m| &m.topics).collect();
                    let mut all = BTreeSet::new();
                    for t in subscribed {
                        for p in 0..c.topics.partitions_of(t).unwrap_or(0) {
                            all.insert(tp(t, p));
                        }
                    }
                    assert_eq!(owned, all, "{id}: every partition owned exactly once");
                    assert!(grp.strategy.is_some() && grp.leader.is_some());
                }
            }
        }
    }

    /// Members m[0..n] in one Stable group, all joined at `now`; returns their ids and the
    /// generation.
    fn stable_group(
        c: &mut Coordinator<Topics>,
        group: &GroupId,
        n: usize,
        strategy: Strategy,
        now: u64,
    ) -> (Vec<MemberId>, Generation) {
        let mut ids = Vec::new();
        for _ in 0..n {
            let r = join(c, group, None, strategy, now).unwrap();
            let id = match r {
                JoinReply::Joined(j) => j.member,
                JoinReply::Pending { member, .. } => member,
            };
            // Everyone else rejoins, as heartbeats would tell them to.
            for other in &ids {
                let _ = join(c, group, Some(other), strategy, now).unwrap();
            }
            ids.push(id);
        }
        c.take_completions();
        let d = c.describe(group).unwrap();
        assert_eq!(d.state, GroupState::Stable);
        (ids, d.generation)
    }

    fn owned(c: &Coordinator<Topics>, group: &GroupId, m: &MemberId) -> Vec<TopicPartition> {
        let d = c.describe(group).unwrap();
        d.members
            .into_iter()
            .find(|x| &x.member == m)
            .unwrap()
            .assignment
    }

    #[test]
    fn first_join_completes_at_once_in_generation_1() {
        let mut c = coordinator(GroupConfig::default());
        let grp = g("g");
        let r = joined(join(&mut c, &grp, None, Strategy::Range, 0));
        assert_eq!(r.generation, Generation(1));
        assert_eq!(r.member.as_str(), "app-7-0");
        assert_eq!(r.leader, r.member);
        assert_eq!(r.strategy, Strategy::Range);
        assert_eq!(r.assignment, (0..6).map(|p| tp("t", p)).collect::<Vec<_>>());
        let d = c.describe(&grp).unwrap();
        assert_eq!((d.state, d.generation), (GroupState::Stable, Generation(1)));
        assert_eq!(c.list(), vec![(grp.clone(), GroupState::Stable, 1)]);
        assert!(c.take_completions().is_empty());
        assert_eq!(c.next_deadline_ms(), Some(SESSION_MS));
    }

    #[test]
    fn a_second_member_starts_a_rebalance_that_completes_when_all_rejoined() {
        let mut c = coordinator(GroupConfig::default());
        let grp = g("g");
        let m1 = joined(join(&mut c, &grp, None, Strategy::Range, 0)).member;
        let (ticket, m2) = pending(join(&mut c, &grp, None, Strategy::Range, 100));
        assert_eq!(
            c.describe(&grp).unwrap().state,
            GroupState::PreparingRebalance
        );
        // m1 learns it from its heartbeat, which still extends its session.
        let e = c.heartbeat(&grp, &m1, Generation(1), 200).unwrap_err();
        assert_eq!(e.name(), "REBALANCE_IN_PROGRESS");
        // The generation is checked first.
        let e = c.heartbeat(&grp, &m1, Generation(0), 200).unwrap_err();
        assert_eq!(e.name(), "ILLEGAL_GENERATION");
        let r1 = joined(join(&mut c, &grp, Some(&m1), Strategy::Range, 300));
        assert_eq!(r1.generation, Generation(2));
        assert_eq!(r1.assignment, vec![tp("t", 0), tp("t", 1), tp("t", 2)]);
        let done = c.take_completions();
        assert_eq!(done.len(), 1);
        assert_eq!((done[0].ticket, &done[0].member), (ticket, &m2));
        let r2 = done[0].result.clone().unwrap();
        assert_eq!(r2.generation, Generation(2));
        assert_eq!(r2.assignment, vec![tp("t", 3), tp("t", 4), tp("t", 5)]);
        assert_eq!(r2.leader, m1);
        // SYNC is a fetch of the same assignment; heartbeats are fine now.
        assert_eq!(c.sync(&grp, &m2, Generation(2), 400), Ok(r2.assignment));
        assert_eq!(c.heartbeat(&grp, &m1, Generation(2), 400), Ok(()));
        assert_eq!(
            c.heartbeat(&grp, &m1, Generation(1), 400),
            Err(GroupError::IllegalGeneration {
                group: grp.clone(),
                generation: Generation(1),
                current: Generation(2)
            })
        );
        let ghost = MemberId::from("ghost");
        assert_eq!(
            c.heartbeat(&grp, &ghost, Generation(2), 400)
                .unwrap_err()
                .name(),
            "UNKNOWN_MEMBER_ID"
        );
        assert_eq!(
            c.heartbeat(&g("nope"), &m1, Generation(2), 400)
                .unwrap_err()
                .name(),
            "UNKNOWN_MEMBER_ID"
        );
        assert_eq!(
            c.sync(&grp, &m1, Generation(1), 400).unwrap_err().name(),
            "ILLEGAL_GENERATION"
        );
        check_invariants(&c);
    }

    /// Issue 5's proof at the coordinator level: 3 members over 6 partitions, one stops
    /// heart-beating; within its session timeout (plus one heartbeat interval of the others)
    /// the two survivors own all 6; its late commit and an old-generation commit are refused.
    #[test]
    fn a_member_that_stops_heartbeating_loses_its_partitions_within_the_session_timeout() {
        for strategy in Strategy::ALL {
            let mut c = coordinator(GroupConfig::default());
            let grp = g("g");
            let (ids, gen1) = stable_group(&mut c, &grp, 3, strategy, 0);
            for id in &ids {
                assert_eq!(owned(&c, &grp, id).len(), 2, "{strategy}");
            }
            let dead = ids[2].clone();
            let before: Vec<Vec<TopicPartition>> =
                ids[..2].iter().map(|m| owned(&c, &grp, m)).collect();
            let interval = 3_000;
            let mut now = 0;
            let mut gens = [gen1; 2];
            let moved_at = loop {
                now += interval;
                assert!(
                    now <= SESSION_MS + 2 * interval,
                    "{strategy}: partitions never moved"
                );
                c.expire(now);
                for (i, m) in ids[..2].iter().enumerate() {
                    match c.heartbeat(&grp, m, gens[i], now) {
                        Ok(()) => {}
                        Err(GroupError::RebalanceInProgress { .. }) => {
                            match join(&mut c, &grp, Some(m), strategy, now).unwrap() {
                                JoinReply::Joined(r) => gens[i] = r.generation,
                                JoinReply::Pending { .. } => {}
                            }
                        }
                        Err(e) => panic!("{strategy}: {e}"),
                    }
                }
                for done in c.take_completions() {
                    let i = ids.iter().position(|m| *m == done.member).unwrap();
                    gens[i] = done.result.unwrap().generation;
                }
                let d = c.describe(&grp).unwrap();
                if d.state == GroupState::Stable && d.generation > gen1 {
                    break now;
                }
            };
            // Session 10 s from its last heartbeat at 0: expired at 12 s (the first expire
            // call at or after 10 s), the survivors rejoin at their next heartbeat.
            assert!(
                moved_at <= SESSION_MS + interval,
                "{strategy}: moved at {moved_at}"
            );
            let d = c.describe(&grp).unwrap();
            assert_eq!(d.generation, Generation(gen1.0 + 1));
            assert_eq!(d.members.len(), 2);
            let mut all: Vec<TopicPartition> = d
                .members
                .iter()
                .flat_map(|m| m.assignment.clone())
                .collect();
            all.sort();
            assert_eq!(
                all,
                (0..6).map(|p| tp("t", p)).collect::<Vec<_>>(),
                "{strategy}"
            );
            assert!(d.members.iter().all(|m| m.assignment.len() == 3));
            if strategy == Strategy::Sticky {
                for (i, m) in ids[..2].iter().enumerate() {
                    let now_owned = owned(&c, &grp, m);
                    assert!(
                        before[i].iter().all(|p| now_owned.contains(p)),
                        "sticky keeps"
                    );
                }
            }
            // The dead member comes back late: unknown. A survivor's old-generation commit:
            // illegal. The current generation's commit: accepted.
            let late = c.check_commit(
                &grp,
                Committer::Member {
                    member: &dead,
                    generation: gen1,
                },
                now,
            );
            assert_eq!(late.unwrap_err().name(), "UNKNOWN_MEMBER_ID");
            let stale = c.check_commit(
                &grp,
                Committer::Member {
                    member: &ids[0],
                    generation: gen1,
                },
                now,
            );
            assert_eq!(stale.unwrap_err().name(), "ILLEGAL_GENERATION");
            let ok = c.check_commit(
                &grp,
                Committer::Member {
                    member: &ids[0],
                    generation: d.generation,
                },
                now,
            );
            assert_eq!(ok, Ok(()));
            check_invariants(&c);
        }
    }

    /// The exact rule: a rebalance waits until every member has rejoined or until its
    /// deadline (the largest session timeout when it started); then the members that did not
    /// rejoin are dropped, heartbeats or not.
    #[test]
    fn the_rebalance_deadline_drops_members_that_do_not_rejoin() {
        let mut c = coordinator(GroupConfig::default());
        let grp = g("g");
        let (ids, _) = stable_group(&mut c, &grp, 2, Strategy::Range, 0);
        // m0 changes its subscription at 1000: a rebalance with deadline 11000.
        let (ticket, _) = pending(c.join(
            req(&grp, Some(&ids[0]), &[Strategy::Range], &["t", "u"]),
            1_000,
        ));
        assert_eq!(c.next_deadline_ms(), Some(SESSION_MS));
        // m1 keeps heart-beating (its session stays alive) but never rejoins.
        for now in [4_000, 8_000, 10_999] {
            assert_eq!(
                c.heartbeat(&grp, &ids[1], Generation(2), now)
                    .unwrap_err()
                    .name(),
                "REBALANCE_IN_PROGRESS"
            );
            c.expire(now);
            assert!(c.take_completions().is_empty());
        }
        assert_eq!(c.next_deadline_ms(), Some(11_000));
        c.expire(11_000);
        check_invariants(&c);
        let done = c.take_completions();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].ticket, ticket);
        let r = done[0].result.clone().unwrap();
        assert_eq!(r.generation, Generation(3));
        assert_eq!(r.assignment.len(), 9, "t and u, alone");
        assert_eq!(
            c.heartbeat(&grp, &ids[1], Generation(3), 11_001)
                .unwrap_err()
                .name(),
            "UNKNOWN_MEMBER_ID"
        );
        // A configured rebalance timeout replaces the session-derived one.
        let mut c = coordinator(GroupConfig {
            rebalance_timeout_ms: Some(500),
            ..GroupConfig::default()
        });
        let (ids, _) = stable_group(&mut c, &grp, 2, Strategy::Range, 0);
        pending(join(&mut c, &grp, None, Strategy::Range, 1_000));
        assert_eq!(c.next_deadline_ms(), Some(1_500));
        // Any call on the group applies it (here a heartbeat, no expire needed).
        assert_eq!(
            c.heartbeat(&grp, &ids[0], Generation(2), 1_500)
                .unwrap_err()
                .name(),
            "UNKNOWN_MEMBER_ID"
        );
        let d = c.describe(&grp).unwrap();
        assert_eq!(
            (d.state, d.members.len(), d.generation),
            (GroupState::Stable, 1, Generation(3))
        );
    }

    #[test]
    fn a_rejoined_member_is_not_expired_while_it_waits() {
        let mut c = coordinator(GroupConfig {
            rebalance_timeout_ms: Some(60_000),
            ..GroupConfig::default()
        });
        let grp = g("g");
        let (ids, _) = stable_group(&mut c, &grp, 2, Strategy::Range, 0);
        let (_, m2) = pending(join(&mut c, &grp, None, Strategy::Range, 1_000));
        pending(join(&mut c, &grp, Some(&ids[0]), Strategy::Range, 1_000));
        // ids[1] never heartbeats: expired at 10 s; the two waiting joins complete then.
        c.expire(9_999);
        assert!(c.take_completions().is_empty());
        c.expire(10_000);
        let done = c.take_completions();
        assert_eq!(done.len(), 2);
        assert!(
            done.iter()
                .all(|d| d.result.as_ref().unwrap().generation == Generation(3))
        );
        let d = c.describe(&grp).unwrap();
        let members: Vec<&MemberId> = d.members.iter().map(|m| &m.member).collect();
        assert_eq!(members, [&ids[0], &m2]);
        check_invariants(&c);
    }

    #[test]
    fn leave_rebalances_the_others_and_the_last_leave_empties_the_group() {
        let mut c = coordinator(GroupConfig::default());
        let grp = g("g");
        let (ids, cur) = stable_group(&mut c, &grp, 2, Strategy::RoundRobin, 0);
        assert_eq!(cur, Generation(2));
        c.leave(&grp, &ids[1], 100).unwrap();
        check_invariants(&c);
        assert_eq!(
            c.leave(&grp, &ids[1], 100).unwrap_err().name(),
            "UNKNOWN_MEMBER_ID"
        );
        assert_eq!(
            c.heartbeat(&grp, &ids[0], cur, 200).unwrap_err().name(),
            "REBALANCE_IN_PROGRESS"
        );
        let r = joined(join(&mut c, &grp, Some(&ids[0]), Strategy::RoundRobin, 300));
        assert_eq!((r.generation, r.assignment.len()), (Generation(3), 6));
        c.leave(&grp, &ids[0], 400).unwrap();
        check_invariants(&c);
        let d = c.describe(&grp).unwrap();
        // As in Kafka, the rebalance to no member is a generation too.
        assert_eq!(
            (d.state, d.generation, d.members.len()),
            (GroupState::Empty, Generation(4), 0)
        );
        assert_eq!(c.next_deadline_ms(), None);
        // A new member continues the generations.
        let r = joined(join(&mut c, &grp, None, Strategy::Range, 500));
        assert_eq!(r.generation, Generation(5));
    }

    #[test]
    fn leaving_while_waiting_answers_the_pending_join() {
        let mut c = coordinator(GroupConfig::default());
        let grp = g("g");
        let (ids, _) = stable_group(&mut c, &grp, 1, Strategy::Range, 0);
        let (ticket, m2) = pending(join(&mut c, &grp, None, Strategy::Range, 10));
        c.leave(&grp, &m2, 20).unwrap();
        let done = c.take_completions();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].ticket, ticket);
        assert_eq!(
            done[0].result.as_ref().unwrap_err().name(),
            "UNKNOWN_MEMBER_ID"
        );
        // The group still waits for ids[0], which rejoins alone.
        let r = joined(join(&mut c, &grp, Some(&ids[0]), Strategy::Range, 30));
        assert_eq!(r.generation, Generation(2));
    }

    #[test]
    fn a_second_join_of_the_same_member_supersedes_the_first() {
        let mut c = coordinator(GroupConfig::default());
        let grp = g("g");
        let (ids, _) = stable_group(&mut c, &grp, 2, Strategy::Range, 0);
        pending(join(&mut c, &grp, None, Strategy::Range, 0));
        let (t1, _) = pending(join(&mut c, &grp, Some(&ids[0]), Strategy::Range, 0));
        // The client retries (or changes its mind) before the answer: the first join is
        // answered REBALANCE_IN_PROGRESS, the second one waits.
        let (t2, _) = pending(c.join(
            req(&grp, Some(&ids[0]), &[Strategy::Range], &["t", "u"]),
            10,
        ));
        assert_ne!(t1, t2);
        let done = c.take_completions();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].ticket, t1);
        assert_eq!(
            done[0].result.as_ref().unwrap_err().name(),
            "REBALANCE_IN_PROGRESS"
        );
        check_invariants(&c);
    }

    #[test]
    fn rejoining_a_stable_group_unchanged_returns_the_current_assignment() {
        let mut c = coordinator(GroupConfig::default());
        let grp = g("g");
        let (ids, cur) = stable_group(&mut c, &grp, 2, Strategy::Range, 0);
        let r = joined(join(&mut c, &grp, Some(&ids[1]), Strategy::Range, 50));
        assert_eq!(r.generation, cur);
        assert_eq!(r.assignment, owned(&c, &grp, &ids[1]));
        assert_eq!(c.describe(&grp).unwrap().state, GroupState::Stable);
        // A changed subscription rebalances.
        pending(c.join(req(&grp, Some(&ids[1]), &[Strategy::Range], &["u"]), 60));
        assert_eq!(
            c.describe(&grp).unwrap().state,
            GroupState::PreparingRebalance
        );
        // An unknown member id: refused, nothing created.
        let ghost = MemberId::from("app-7-99");
        assert_eq!(
            join(&mut c, &grp, Some(&ghost), Strategy::Range, 70)
                .unwrap_err()
                .name(),
            "UNKNOWN_MEMBER_ID"
        );
        assert_eq!(
            join(&mut c, &g("other"), Some(&ghost), Strategy::Range, 70)
                .unwrap_err()
                .name(),
            "UNKNOWN_MEMBER_ID"
        );
        assert!(c.describe(&g("other")).is_none());
    }

    #[test]
    fn commits_need_the_current_generation_of_a_current_member() {
        let mut c = coordinator(GroupConfig::default());
        let grp = g("g");
        // A standalone consumer may commit to a group that does not exist or is Empty.
        assert_eq!(c.check_commit(&grp, Committer::Simple, 0), Ok(()));
        let (ids, cur) = stable_group(&mut c, &grp, 2, Strategy::Range, 0);
        let e = c.check_commit(&grp, Committer::Simple, 1).unwrap_err();
        assert_eq!(
            e,
            GroupError::SimpleCommitToActiveGroup {
                group: grp.clone(),
                members: 2
            }
        );
        assert_eq!(e.name(), "UNKNOWN_MEMBER_ID");
        // Tools may always read offsets.
        assert_eq!(c.check_fetch(&grp, Committer::Simple, 1), Ok(()));
        let as_member = |m: &MemberId, generation| (m.clone(), generation);
        let (m0, g0) = as_member(&ids[0], cur);
        assert_eq!(
            c.check_commit(
                &grp,
                Committer::Member {
                    member: &m0,
                    generation: g0
                },
                2
            ),
            Ok(())
        );
        // A rebalance starts: the members may still commit in the current generation (their
        // partitions are theirs until the next one exists); a newcomer may not.
        let (_, m2) = pending(join(&mut c, &grp, None, Strategy::Range, 3));
        assert_eq!(
            c.check_commit(
                &grp,
                Committer::Member {
                    member: &m0,
                    generation: g0
                },
                4
            ),
            Ok(())
        );
        let e = c
            .check_commit(
                &grp,
                Committer::Member {
                    member: &m2,
                    generation: g0,
                },
                4,
            )
            .unwrap_err();
        assert_eq!(e.name(), "REBALANCE_IN_PROGRESS");
        // Everyone rejoins: generation 3. The old generation's late commit is refused.
        pending(join(&mut c, &grp, Some(&ids[0]), Strategy::Range, 5));
        joined(join(&mut c, &grp, Some(&ids[1]), Strategy::Range, 5));
        let late = c.check_commit(
            &grp,
            Committer::Member {
                member: &m0,
                generation: g0,
            },
            6,
        );
        assert_eq!(
            late,
            Err(GroupError::IllegalGeneration {
                group: grp.clone(),
                generation: g0,
                current: Generation(3)
            })
        );
        assert_eq!(
            c.check_fetch(
                &grp,
                Committer::Member {
                    member: &m0,
                    generation: g0
                },
                6
            )
            .unwrap_err()
            .name(),
            "ILLEGAL_GENERATION"
        );
        let ok = Committer::Member {
            member: &m2,
            generation: Generation(3),
        };
        assert_eq!(c.check_commit(&grp, ok, 6), Ok(()));
        assert_eq!(c.check_fetch(&grp, ok, 6), Ok(()));
        let ghost = MemberId::from("ghost");
        let e = c.check_commit(
            &g("none"),
            Committer::Member {
                member: &ghost,
                generation: Generation(1),
            },
            6,
        );
        assert_eq!(e.unwrap_err().name(), "UNKNOWN_MEMBER_ID");
    }

    #[test]
    fn a_commit_counts_as_a_heartbeat() {
        let mut c = coordinator(GroupConfig::default());
        let grp = g("g");
        let (ids, cur) = stable_group(&mut c, &grp, 1, Strategy::Range, 0);
        for now in [5_000, 10_000, 15_000] {
            c.check_commit(
                &grp,
                Committer::Member {
                    member: &ids[0],
                    generation: cur,
                },
                now,
            )
            .unwrap();
        }
        c.expire(24_999);
        assert_eq!(c.describe(&grp).unwrap().members.len(), 1);
        c.expire(25_000);
        let d = c.describe(&grp).unwrap();
        assert_eq!((d.state, d.generation), (GroupState::Empty, Generation(2)));
        // Now a standalone commit is fine.
        assert_eq!(c.check_commit(&grp, Committer::Simple, 25_001), Ok(()));
    }

    #[test]
    fn session_timeouts_must_be_within_the_configured_range() {
        let mut c = coordinator(GroupConfig::default());
        let grp = g("g");
        for (ms, ok) in [
            (5_999, false),
            (6_000, true),
            (300_000, true),
            (300_001, false),
        ] {
            let r = c.join(
                JoinRequest {
                    session_timeout_ms: ms,
                    ..req(&grp, None, &[Strategy::Range], &["t"])
                },
                0,
            );
            match r {
                Ok(_) => assert!(ok, "{ms}"),
                Err(e) => {
                    assert!(!ok, "{ms}");
                    assert_eq!(
                        e,
                        GroupError::InvalidSessionTimeout {
                            session_timeout_ms: ms,
                            min_ms: 6_000,
                            max_ms: 300_000
                        }
                    );
                    assert_eq!(e.name(), "INVALID_SESSION_TIMEOUT");
                    assert!(e.to_string().contains("6000..=300000"), "{e}");
                }
            }
        }
    }

    #[test]
    fn limits_give_their_errors() {
        let mut c = coordinator(GroupConfig {
            groups_max: 2,
            members_per_group_max: 2,
            topics_per_member_max: 2,
            ..GroupConfig::default()
        });
        let (a, b, z) = (g("a"), g("b"), g("z"));
        stable_group(&mut c, &a, 2, Strategy::Range, 0);
        let e = join(&mut c, &a, None, Strategy::Range, 1).unwrap_err();
        assert_eq!(
            e,
            GroupError::GroupMaxSizeReached {
                group: a.clone(),
                max: 2
            }
        );
        assert_eq!(e.name(), "GROUP_MAX_SIZE_REACHED");
        let (bs, _) = stable_group(&mut c, &b, 1, Strategy::Range, 2);
        let e = join(&mut c, &z, None, Strategy::Range, 3).unwrap_err();
        assert_eq!(e, GroupError::TooManyGroups { max: 2 });
        assert!(c.describe(&z).is_none());
        // An empty group is evicted to make room.
        c.leave(&b, &bs[0], 4).unwrap();
        joined(join(&mut c, &z, None, Strategy::Range, 5));
        assert!(c.describe(&b).is_none());
        assert_eq!(c.list().len(), 2);

        let e = c
            .join(req(&z, None, &[Strategy::Range], &["t", "u", "v"]), 6)
            .unwrap_err();
        assert_eq!(e, GroupError::SubscriptionTooLarge { topics: 3, max: 2 });
        let e = c
            .join(req(&z, None, &[Strategy::Range], &["t", ""]), 6)
            .unwrap_err();
        assert_eq!(
            e,
            GroupError::InvalidTopic {
                index: 1,
                reason: "a topic name cannot be empty"
            }
        );
        let long = "x".repeat(250);
        let e = c
            .join(req(&z, None, &[Strategy::Range], &[long.as_str()]), 6)
            .unwrap_err();
        assert_eq!(e.name(), "INVALID_TOPIC_EXCEPTION");
        let e = c.join(
            JoinRequest {
                client_id: &"c".repeat(65),
                ..req(&z, None, &[Strategy::Range], &["t"])
            },
            6,
        );
        assert_eq!(e.unwrap_err(), GroupError::InvalidClientId { bytes: 65 });
        // Duplicates count against the limit but are stored once: this rejoin is unchanged.
        let d = c.describe(&a).unwrap();
        let m = d.members[0].member.clone();
        let two = [Strategy::Range, Strategy::Range];
        let r = joined(c.join(req(&a, Some(&m), &two, &["t", "t"]), 6));
        assert_eq!(r.generation, d.generation);
        assert_eq!(c.describe(&a).unwrap().members[0].topics, ["t"]);

        for (id, ok) in [
            ("", false),
            ("a\0b", false),
            ("tab\there", false),
            ("ok.group-1 ü", true),
        ] {
            assert_eq!(GroupId::new(id).is_ok(), ok, "{id:?}");
        }
        assert_eq!(
            GroupId::new(&"g".repeat(249)).map(|g| g.as_str().len()),
            Ok(249)
        );
        assert_eq!(
            GroupId::new(&"g".repeat(250)).unwrap_err().name(),
            "INVALID_GROUP_ID"
        );
        check_invariants(&c);

        let mut none = coordinator(GroupConfig {
            members_per_group_max: 0,
            ..GroupConfig::default()
        });
        assert_eq!(
            join(&mut none, &a, None, Strategy::Range, 0)
                .unwrap_err()
                .name(),
            "GROUP_MAX_SIZE_REACHED"
        );
        assert!(none.list().is_empty());
    }

    #[test]
    fn members_must_share_a_strategy_and_the_group_votes() {
        let mut c = coordinator(GroupConfig::default());
        let grp = g("g");
        let j = |c: &mut Coordinator<Topics>, member: Option<&MemberId>, s: &[Strategy], now| {
            let r = c.join(req(&grp, member, s, &["t"]), now);
            check_invariants(c);
            r
        };
        let m0 = joined(j(&mut c, None, &[Strategy::Range], 0)).member;
        let e = j(&mut c, None, &[Strategy::RoundRobin], 1).unwrap_err();
        assert_eq!(e.name(), "INCONSISTENT_GROUP_PROTOCOL");
        assert_eq!(
            e.to_string(),
            "group \"g\" members all accept [range]; this member offers [roundrobin]"
        );
        let e = j(&mut c, None, &[], 1).unwrap_err();
        assert_eq!(e.name(), "INCONSISTENT_GROUP_PROTOCOL");
        // m1 accepts both, prefers roundrobin: one vote each, the tie goes to range.
        let (_, m1) = pending(j(&mut c, None, &[Strategy::RoundRobin, Strategy::Range], 2));
        let r = joined(j(&mut c, Some(&m0), &[Strategy::Range], 3));
        assert_eq!(r.strategy, Strategy::Range);
        c.take_completions();
        // m0 switches to both, preferring roundrobin: it wins 2–0.
        pending(j(
            &mut c,
            Some(&m0),
            &[Strategy::RoundRobin, Strategy::Range],
            4,
        ));
        let r = joined(j(
            &mut c,
            Some(&m1),
            &[Strategy::RoundRobin, Strategy::Range],
            5,
        ));
        assert_eq!(r.strategy, Strategy::RoundRobin);
        assert_eq!(
            c.describe(&grp).unwrap().strategy,
            Some(Strategy::RoundRobin)
        );
        // A known member may not move to a strategy the others lack.
        let e = j(&mut c, Some(&m1), &[Strategy::Sticky], 6).unwrap_err();
        assert_eq!(e.name(), "INCONSISTENT_GROUP_PROTOCOL");
        // When the others are gone, anything goes again.
        c.leave(&grp, &m0, 7).unwrap();
        let r = joined(j(&mut c, Some(&m1), &[Strategy::Sticky], 8));
        assert_eq!(r.strategy, Strategy::Sticky);
    }

    #[test]
    fn a_changed_topic_rebalances_stable_groups() {
        let mut c = coordinator(GroupConfig::default());
        let grp = g("g");
        let r = joined(c.join(req(&grp, None, &[Strategy::Range], &["t", "new"]), 0));
        assert_eq!(r.assignment.len(), 6, "unknown topic: nothing");
        c.topics_changed(1);
        assert_eq!(
            c.describe(&grp).unwrap().state,
            GroupState::Stable,
            "nothing changed"
        );
        c.topics_mut().insert("new".into(), 2);
        c.topics_changed(2);
        assert_eq!(
            c.heartbeat(&grp, &r.member, r.generation, 3)
                .unwrap_err()
                .name(),
            "REBALANCE_IN_PROGRESS"
        );
        let r = joined(c.join(
            req(&grp, Some(&r.member), &[Strategy::Range], &["t", "new"]),
            4,
        ));
        assert_eq!(r.assignment.len(), 8);
        assert_eq!(r.assignment[0], tp("new", 0));
        check_invariants(&c);
    }

    #[test]
    fn member_ids_are_unique_and_differ_across_restarts() {
        let mut c = coordinator(GroupConfig::default());
        let grp = g("g");
        let mut seen = BTreeSet::new();
        for i in 0..5 {
            let r = c.join(
                JoinRequest {
                    client_id: if i % 2 == 0 { "" } else { "app" },
                    ..req(&grp, None, &[Strategy::Range], &["t"])
                },
                i,
            );
            let m = match r.unwrap() {
                JoinReply::Joined(j) => j.member,
                JoinReply::Pending { member, .. } => member,
            };
            assert!(seen.insert(m));
        }
        assert!(seen.contains(&MemberId::from("member-7-0")));
        assert!(seen.contains(&MemberId::from("app-7-1")));
        // After a restart (another incarnation), an old id is unknown and never given again.
        let mut c2 = Coordinator::new(GroupConfig::default(), Topics::new(), 8);
        let r = joined(c2.join(req(&grp, None, &[Strategy::Range], &["t"]), 0));
        assert_eq!(r.member.as_str(), "app-8-0");
        let old = MemberId::from("app-7-1");
        assert_eq!(
            c2.check_commit(
                &grp,
                Committer::Member {
                    member: &old,
                    generation: Generation(1)
                },
                1
            )
            .unwrap_err()
            .name(),
            "UNKNOWN_MEMBER_ID"
        );
    }

    #[test]
    fn error_messages_are_precise() {
        let grp = g("orders");
        let m = MemberId::from("app-7-3");
        let cases = [
            (
                GroupError::RebalanceInProgress {
                    group: grp.clone(),
                    generation: Generation(4),
                },
                "group \"orders\" is rebalancing after generation 4: join again",
            ),
            (
                GroupError::GroupMaxSizeReached {
                    group: grp.clone(),
                    max: 32,
                },
                "group \"orders\" already has 32 members (members_per_group_max)",
            ),
            (
                GroupError::UnknownMemberId {
                    group: grp.clone(),
                    member: m,
                },
                "group \"orders\" has no member \"app-7-3\" (it left, its session expired, or the \
                 broker restarted): join again without a member id",
            ),
            (
                GroupError::IllegalGeneration {
                    group: grp,
                    generation: Generation(1),
                    current: Generation(2),
                },
                "generation 1 of group \"orders\" is not the current one (2): join again",
            ),
        ];
        for (e, msg) in cases {
            assert_eq!(e.to_string(), msg);
        }
    }

    /// A seeded random run: clients join, heartbeat, rejoin when told, leave, die and come
    /// back at random times against two groups with different strategies. After every step
    /// the invariants hold; every generation a client receives is larger than its previous
    /// one; a group's generation never goes back; at the end, with everyone alive
    /// heart-beating, each group is Stable with exactly the live clients.
    #[test]
    fn random_joins_leaves_and_deaths_keep_the_invariants() {
        #[derive(Debug, Default)]
        struct Client {
            member: Option<MemberId>,
            generation: Option<Generation>,
            waiting: Option<JoinTicket>,
            alive: bool,
        }
        for seed in 1..=8u64 {
            let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let mut rand = move |n: u64| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng % n
            };
            let mut c = coordinator(GroupConfig {
                members_per_group_max: 4,
                session_timeout_ms_min: 1_000,
                ..GroupConfig::default()
            });
            let groups = [(g("ga"), Strategy::Range), (g("gb"), Strategy::Sticky)];
            let mut clients: Vec<(usize, Client)> = (0..10)
                .map(|i| {
                    (
                        i % 2,
                        Client {
                            alive: true,
                            ..Client::default()
                        },
                    )
                })
                .collect();
            let mut last_gen = [Generation(0); 2];
            let mut now = 0u64;

            let step = |c: &mut Coordinator<Topics>,
                        clients: &mut Vec<(usize, Client)>,
                        i: usize,
                        now: u64,
                        action: u64| {
                let (gi, cl) = &mut clients[i];
                let (grp, strat) = &groups[*gi];
                let topics: &[&str] = if i.is_multiple_of(3) {
                    &["t", "u"]
                } else {
                    &["t"]
                };
                if !cl.alive || cl.waiting.is_some() {
                    return;
                }
                let rejoin = |c: &mut Coordinator<Topics>, cl: &mut Client| match c.join(
                    JoinRequest {
                        session_timeout_ms: 4_000,
                        ..req(grp, cl.member.as_ref(), &[*strat], topics)
                    },
                    now,
                ) {
                    Ok(JoinReply::Joined(r)) => {
                        assert!(Some(r.generation) > cl.generation);
                        cl.member = Some(r.member);
                        cl.generation = Some(r.generation);
                    }
                    Ok(JoinReply::Pending { ticket, member }) => {
                        cl.member = Some(member);
                        cl.waiting = Some(ticket);
                    }
                    Err(GroupError::GroupMaxSizeReached { .. }) => {}
                    Err(GroupError::UnknownMemberId { .. }) => cl.member = None,
                    Err(e) => panic!("{e}"),
                };
                match (&cl.member, action) {
                    (None, _) => rejoin(c, cl),
                    (Some(m), 0) => {
                        let _ = c.leave(grp, m, now);
                        *cl = Client {
                            alive: true,
                            ..Client::default()
                        };
                    }
                    (Some(_), 1) => cl.alive = false,
                    (Some(m), _) => {
                        let generation = cl.generation.unwrap_or_default();
                        match c.heartbeat(grp, m, generation, now) {
                            Ok(()) => {
                                let owned = c.sync(grp, m, generation, now).unwrap();
                                assert!(owned.iter().all(|p| topics.contains(&p.topic.as_str())));
                                c.check_commit(
                                    grp,
                                    Committer::Member {
                                        member: m,
                                        generation,
                                    },
                                    now,
                                )
                                .unwrap();
                            }
                            Err(
                                GroupError::RebalanceInProgress { .. }
                                | GroupError::IllegalGeneration { .. },
                            ) => rejoin(c, cl),
                            Err(GroupError::UnknownMemberId { .. }) => {
                                cl.member = None;
                                cl.generation = None;
                            }
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            };

            let settle = |c: &mut Coordinator<Topics>,
                          clients: &mut Vec<(usize, Client)>,
                          last_gen: &mut [Generation; 2]| {
                for done in c.take_completions() {
                    let (_, cl) = clients
                        .iter_mut()
                        .find(|(_, cl)| cl.waiting == Some(done.ticket))
                        .expect("a completion answers a waiting client");
                    cl.waiting = None;
                    match done.result {
                        Ok(r) => {
                            assert!(
                                Some(r.generation) > cl.generation,
                                "generations strictly increase"
                            );
                            cl.generation = Some(r.generation);
                        }
                        Err(GroupError::UnknownMemberId { .. }) => {
                            cl.member = None;
                            cl.generation = None;
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
                for (gi, (grp, _)) in groups.iter().enumerate() {
                    if let Some(d) = c.describe(grp) {
                        assert!(d.generation >= last_gen[gi], "a generation went back");
                        last_gen[gi] = d.generation;
                    }
                }
                check_invariants(c);
            };

            for _ in 0..3_000 {
                now += rand(400);
                match rand(50) {
                    0 => {
                        // A dead client comes back as a new process (no member id).
                        let i = rand(clients.len() as u64) as usize;
                        if !clients[i].1.alive {
                            clients[i].1 = Client {
                                alive: true,
                                ..Client::default()
                            };
                        }
                    }
                    1 => {
                        if rand(4) == 0 {
                            let n = 3 + rand(6) as u32;
                            c.topics_mut().insert("u".into(), n);
                            c.topics_changed(now);
                        }
                    }
                    2..=9 => c.expire(now),
                    _ => {
                        let i = rand(clients.len() as u64) as usize;
                        let action = rand(40);
                        step(&mut c, &mut clients, i, now, action);
                    }
                }
                settle(&mut c, &mut clients, &mut last_gen);
                if let Some(d) = c.next_deadline_ms() {
                    assert!(
                        d + 4_000 >= now,
                        "a deadline far in the past was never applied"
                    );
                }
            }

            assert!(
                last_gen.iter().all(|g| g.0 > 50),
                "seed {seed}: few rebalances {last_gen:?}"
            );
            // Calm: everyone alive heartbeats every 500 ms (no leaves, no deaths) for 30 s.
            for _ in 0..60 {
                now += 500;
                c.expire(now);
                settle(&mut c, &mut clients, &mut last_gen);
                for i in 0..clients.len() {
                    step(&mut c, &mut clients, i, now, 2);
                    settle(&mut c, &mut clients, &mut last_gen);
                }
            }
            for (gi, (grp, _)) in groups.iter().enumerate() {
                let live: BTreeSet<MemberId> = clients
                    .iter()
                    .filter(|(cg, cl)| *cg == gi && cl.alive)
                    .filter_map(|(_, cl)| cl.member.clone())
                    .collect();
                let Some(d) = c.describe(grp) else {
                    assert!(live.is_empty());
                    continue;
                };
                let members: BTreeSet<MemberId> =
                    d.members.iter().map(|m| m.member.clone()).collect();
                assert_eq!(
                    members, live,
                    "seed {seed}: {grp} holds exactly the live clients"
                );
                if !live.is_empty() {
                    assert_eq!(d.state, GroupState::Stable, "seed {seed}");
                }
            }
        }
    }
}
