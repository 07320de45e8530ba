//! Broker-side partition assignment (docs/GROUPS.md section 3): Kafka's `range` and
//! `roundrobin` assignors, and an eager `sticky` one. Pure functions of the members'
//! subscriptions, the topics' partition counts and (sticky only) the previous assignment.
//!
//! Invariants of every strategy's output, checked by the tests:
//! - every member of the input has an entry (possibly empty), and nobody else;
//! - every partition of every subscribed topic whose count is known is assigned to exactly one
//!   member, and that member subscribes to its topic;
//! - a topic nobody subscribes to, or whose count is unknown (`None`), assigns nothing;
//! - each member's list is sorted (topic, then partition).
//!
//! Members are ordered by member id (byte order of the string), as Kafka sorts them.
//! Size: at most one entry per partition of the subscribed topics; the broker's partition
//! counts come from its topic registry, whose total is bounded by the ring's `partitions_max`.

use super::coordinator::MemberId;
use std::collections::{BTreeMap, BTreeSet};

/// One partition of one topic. Ordered by topic, then partition: the order Kafka's assignors
/// sort "all topic-partitions" in.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: u32,
}

impl TopicPartition {
    pub fn new(topic: &str, partition: u32) -> TopicPartition {
        TopicPartition {
            topic: topic.to_string(),
            partition,
        }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Who owns what: one entry per member, each list sorted.
pub type Assignment = BTreeMap<MemberId, Vec<TopicPartition>>;

/// An assignment strategy, named on the wire as Kafka names it (`partition.assignment.strategy`
/// protocol names). The declaration order breaks ties when the group votes (docs/GROUPS.md 3.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Strategy {
    /// Kafka's `RangeAssignor`: per topic, contiguous ranges.
    Range,
    /// Kafka's `RoundRobinAssignor`: all topic-partitions dealt in turn.
    RoundRobin,
    /// Eager sticky: survivors keep what they owned, balance within one partition.
    Sticky,
}

impl Strategy {
    /// Every strategy, in tie-break order.
    pub const ALL: [Strategy; 3] = [Strategy::Range, Strategy::RoundRobin, Strategy::Sticky];

    /// The protocol name, as Kafka's consumers announce it.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Range => "range",
            Strategy::RoundRobin => "roundrobin",
            Strategy::Sticky => "sticky",
        }
    }

    /// The strategy of a protocol name (`None` if unknown).
    pub fn from_name(name: &str) -> Option<Strategy> {
        Strategy::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The caller's view of the topics: the partition count of a topic, `None` if it does not
/// exist (its subscribers then get nothing of it).
pub trait PartitionCounts {
    fn partitions_of(&self, topic: &str) -> Option<u32>;
}

impl<F: Fn(&str) -> Option<u32>> PartitionCounts for F {
    fn partitions_of(&self, topic: &str) -> Option<u32> {
        self(topic)
    }
}

impl PartitionCounts for BTreeMap<String, u32> {
    fn partitions_of(&self, topic: &str) -> Option<u32> {
        self.get(topic).copied()
    }
}

/// One member's subscription, as the assignors see it.
#[derive(Clone, Copy, Debug)]
pub struct Subscription<'a> {
    pub member: &'a MemberId,
    /// Topic names; duplicates are harmless.
    pub topics: &'a [String],
}

impl Subscription<'_> {
    fn subscribes(&self, topic: &str) -> bool {
        self.topics.iter().any(|t| t == topic)
    }
}

/// Runs `strategy`. `previous` is only read by `Sticky` (entries of members not in `members`
/// are ignored).
pub fn assign(
    strategy: Strategy,
    members: &[Subscription<'_>],
    topics: &dyn PartitionCounts,
    previous: &Assignment,
) -> Assignment {
    match strategy {
        Strategy::Range => range(members, topics),
        Strategy::RoundRobin => round_robin(members, topics),
        Strategy::Sticky => sticky(members, topics, previous),
    }
}

/// Members sorted by id, duplicates (same id twice) removed.
fn sorted<'a>(members: &[Subscription<'a>]) -> Vec<Subscription<'a>> {
    let mut m = members.to_vec();
    m.sort_by(|a, b| a.member.cmp(b.member));
    m.dedup_by(|a, b| a.member == b.member);
    m
}

fn empty_assignment(members: &[Subscription<'_>]) -> Assignment {
    members
        .iter()
        .map(|s| (s.member.clone(), Vec::new()))
        .collect()
}

/// Every partition of every subscribed topic with a known count, sorted (topic, partition).
fn all_partitions(
    members: &[Subscription<'_>],
    topics: &dyn PartitionCounts,
) -> Vec<TopicPartition> {
    let names: BTreeSet<&str> = members
        .iter()
        .flat_map(|s| s.topics.iter().map(String::as_str))
        .collect();
    let mut all = Vec::new();
    for name in names {
        for p in 0..topics.partitions_of(name).unwrap_or(0) {
            all.push(TopicPartition::new(name, p));
        }
    }
    all
}

/// Kafka's `RangeAssignor`: for each topic, its `n` partitions (ascending) are split among its
/// `c` subscribers (sorted by member id) in contiguous ranges of `n / c`; the first `n % c`
/// subscribers get one more.
pub fn range(members: &[Subscription<'_>], topics: &dyn PartitionCounts) -> Assignment {
    let members = sorted(members);
    let mut out = empty_assignment(&members);
    let mut by_topic: BTreeMap<&str, Vec<&MemberId>> = BTreeMap::new();
    for s in &members {
        let mut own: Vec<&str> = s.topics.iter().map(String::as_str).collect();
        own.sort_unstable();
        own.dedup();
        for t in own {
            by_topic.entry(t).or_default().push(s.member);
        }
    }
    for (topic, subscribers) in by_topic {
        let Some(n) = topics.partitions_of(topic) else {
            continue;
        };
        // `subscribers` is non-empty (an entry exists only once pushed) and sorted, since
        // `members` is; it has at most u32::MAX entries in any real group.
        let c = u32::try_from(subscribers.len()).unwrap_or(u32::MAX);
        let (per, extra) = (n / c, n % c);
        for (i, m) in subscribers.into_iter().enumerate() {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            let start = per * i + i.min(extra);
            let len = per + u32::from(i < extra);
            if let Some(list) = out.get_mut(m) {
                list.extend((start..start + len).map(|p| TopicPartition::new(topic, p)));
            }
        }
    }
    for list in out.values_mut() {
        list.sort();
    }
    out
}

/// Kafka's `RoundRobinAssignor`: all topic-partitions sorted (topic, partition) are dealt to
/// the members sorted by id, in a circle; a member not subscribed to a partition's topic is
/// skipped (and the circle moves on past it).
pub fn round_robin(members: &[Subscription<'_>], topics: &dyn PartitionCounts) -> Assignment {
    let members = sorted(members);
    let mut out = empty_assignment(&members);
    if members.is_empty() {
        return out;
    }
    let mut next = 0usize;
    for tp in all_partitions(&members, topics) {
        // At most one full turn: the topic is in the union, so someone subscribes to it.
        for _ in 0..members.len() {
            let m = &members[next % members.len()];
            next = (next + 1) % members.len();
            if m.subscribes(&tp.topic) {
                if let Some(list) = out.get_mut(m.member) {
                    list.push(tp);
                }
                break;
            }
        }
    }
    out
}

/// Eager sticky assignment (a simplification of Kafka's `StickyAssignor`, without its
/// user-data round trip: the broker remembers the previous generation itself):
/// 1. each member keeps the partitions it owned in `previous` that still exist and that it
///    still subscribes to (members in id order; a partition claimed twice goes to the first);
/// 2. each partition left over (in order) goes to the subscriber owning the fewest partitions
///    (ties: smallest member id);
/// 3. while some member owns at least two more partitions than a subscriber of one of them,
///    the most loaded member gives its highest such partition to the least loaded one.
///
/// With identical subscriptions the result is balanced to within one partition and moves
/// only what has to move; with different subscriptions it is balanced as far as step 3 can.
pub fn sticky(
    members: &[Subscription<'_>],
    topics: &dyn PartitionCounts,
    previous: &Assignment,
) -> Assignment {
    let members = sorted(members);
    let mut out = empty_assignment(&members);
    let all = all_partitions(&members, topics);
    let mut taken: BTreeSet<&TopicPartition> = BTreeSet::new();
    let valid: BTreeSet<&TopicPartition> = all.iter().collect();

    // 1. Keep.
    for s in &members {
        let Some(before) = previous.get(s.member) else {
            continue;
        };
        let Some(list) = out.get_mut(s.member) else {
            continue;
        };
        for tp in before {
            if let Some(&tp) = valid.get(tp)
                && s.subscribes(&tp.topic)
                && taken.insert(tp)
            {
                list.push(tp.clone());
            }
        }
    }
    // 2. Hand out the rest to the least loaded subscriber.
    for tp in &all {
        if taken.contains(tp) {
            continue;
        }
        let target = members
            .iter()
            .filter(|s| s.subscribes(&tp.topic))
            .min_by_key(|s| (out.get(s.member).map_or(0, Vec::len), s.member));
        if let Some(s) = target
            && let Some(list) = out.get_mut(s.member)
        {
            list.push(tp.clone());
        }
    }
    // 3. Balance. Each move lowers the sum of squared loads by at least 2, so the loop ends;
    // the bound is a belt over those braces.
    let bound = all.len().saturating_mul(members.len()).saturating_add(1);
    for _ in 0..bound {
        if !move_one(&members, &mut out) {
            break;
        }
    }
    for list in out.values_mut() {
        list.sort();
    }
    out
}

/// One balancing move of `sticky` step 3; false when none is possible.
fn move_one(members: &[Subscription<'_>], out: &mut Assignment) -> bool {
    let load = |out: &Assignment, m: &MemberId| out.get(m).map_or(0, Vec::len);
    let mut by_load_desc: Vec<&Subscription<'_>> = members.iter().collect();
    by_load_desc.sort_by(|a, b| {
        load(out, b.member)
            .cmp(&load(out, a.member))
            .then(a.member.cmp(b.member))
    });
    for from in &by_load_desc {
        let from_load = load(out, from.member);
        for to in by_load_desc.iter().rev() {
            if load(out, to.member) + 1 >= from_load {
                // Ascending from here: nobody further is lighter by two.
                break;
            }
            let Some(owned) = out.get(from.member) else {
                continue;
            };
            let pick = owned
                .iter()
                .enumerate()
                .filter(|(_, tp)| to.subscribes(&tp.topic))
                .max_by(|a, b| a.1.cmp(b.1))
                .map(|(i, _)| i);
            if let Some(i) = pick
                && let Some(owned) = out.get_mut(from.member)
            {
                let tp = owned.remove(i);
                if let Some(dest) = out.get_mut(to.member) {
                    dest.push(tp);
                }
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: &[&str]) -> Vec<MemberId> {
        n.iter().map(|s| MemberId::from(*s)).collect()
    }

    fn topics(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn counts(list: &[(&str, u32)]) -> BTreeMap<String, u32> {
        list.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    /// `"t0p1"`-style shorthand for the expected lists.
    fn tps(list: &[(&str, u32)]) -> Vec<TopicPartition> {
        list.iter()
            .map(|(t, p)| TopicPartition::new(t, *p))
            .collect()
    }

    fn subs<'a>(ids: &'a [MemberId], topics: &'a [Vec<String>]) -> Vec<Subscription<'a>> {
        ids.iter()
            .zip(topics)
            .map(|(member, topics)| Subscription { member, topics })
            .collect()
    }

    /// The invariants of the module doc.
    fn check_invariants(a: &Assignment, s: &[Subscription<'_>], c: &dyn PartitionCounts) {
        let all = all_partitions(s, c);
        let mut seen = BTreeSet::new();
        for sub in s {
            let list = a.get(sub.member).expect("every member has an entry");
            let mut sorted = list.clone();
            sorted.sort();
            assert_eq!(&sorted, list, "lists are sorted");
            for tp in list {
                assert!(sub.subscribes(&tp.topic), "{tp} given to a non-subscriber");
                assert!(seen.insert(tp.clone()), "{tp} assigned twice");
            }
        }
        assert_eq!(a.len(), s.len(), "nobody else has an entry");
        assert_eq!(
            seen.into_iter().collect::<Vec<_>>(),
            all,
            "every partition assigned"
        );
    }

    /// Kafka's RangeAssignor javadoc: C0, C1 both on t0, t1 (3 partitions each) →
    /// C0: [t0p0, t0p1, t1p0, t1p1], C1: [t0p2, t1p2].
    #[test]
    fn range_matches_kafkas_documented_example() {
        let m = ids(&["C0", "C1"]);
        let t = vec![topics(&["t0", "t1"]), topics(&["t1", "t0"])];
        let c = counts(&[("t0", 3), ("t1", 3)]);
        let s = subs(&m, &t);
        let a = range(&s, &c);
        assert_eq!(a[&m[0]], tps(&[("t0", 0), ("t0", 1), ("t1", 0), ("t1", 1)]));
        assert_eq!(a[&m[1]], tps(&[("t0", 2), ("t1", 2)]));
        check_invariants(&a, &s, &c);
    }

    /// Kafka's RoundRobinAssignor javadoc, same subscriptions →
    /// C0: [t0p0, t0p2, t1p1], C1: [t0p1, t1p0, t1p2]; and the unequal example:
    /// C0 on t0; C1 on t0, t1; C2 on t0, t1, t2 (1, 2, 3 partitions) →
    /// C0: [t0p0], C1: [t1p0], C2: [t1p1, t2p0, t2p1, t2p2].
    #[test]
    fn round_robin_matches_kafkas_documented_examples() {
        let m = ids(&["C0", "C1"]);
        let t = vec![topics(&["t0", "t1"]), topics(&["t0", "t1"])];
        let c = counts(&[("t0", 3), ("t1", 3)]);
        let s = subs(&m, &t);
        let a = round_robin(&s, &c);
        assert_eq!(a[&m[0]], tps(&[("t0", 0), ("t0", 2), ("t1", 1)]));
        assert_eq!(a[&m[1]], tps(&[("t0", 1), ("t1", 0), ("t1", 2)]));
        check_invariants(&a, &s, &c);

        let m = ids(&["C0", "C1", "C2"]);
        let t = vec![
            topics(&["t0"]),
            topics(&["t0", "t1"]),
            topics(&["t0", "t1", "t2"]),
        ];
        let c = counts(&[("t0", 1), ("t1", 2), ("t2", 3)]);
        let s = subs(&m, &t);
        let a = round_robin(&s, &c);
        assert_eq!(a[&m[0]], tps(&[("t0", 0)]));
        assert_eq!(a[&m[1]], tps(&[("t1", 0)]));
        assert_eq!(a[&m[2]], tps(&[("t1", 1), ("t2", 0), ("t2", 1), ("t2", 2)]));
        check_invariants(&a, &s, &c);
    }

    /// docs/GROUPS.md section 3.5: 3 members over one topic of 6 partitions, then m3 gone.
    #[test]
    fn worked_example_of_the_docs() {
        let m = ids(&["m1", "m2", "m3"]);
        let t = vec![topics(&["t"]); 3];
        let c = counts(&[("t", 6)]);
        let s = subs(&m, &t);
        let r = range(&s, &c);
        assert_eq!(r[&m[0]], tps(&[("t", 0), ("t", 1)]));
        assert_eq!(r[&m[1]], tps(&[("t", 2), ("t", 3)]));
        assert_eq!(r[&m[2]], tps(&[("t", 4), ("t", 5)]));
        let rr = round_robin(&s, &c);
        assert_eq!(rr[&m[0]], tps(&[("t", 0), ("t", 3)]));
        assert_eq!(rr[&m[1]], tps(&[("t", 1), ("t", 4)]));
        assert_eq!(rr[&m[2]], tps(&[("t", 2), ("t", 5)]));
        let st = sticky(&s, &c, &Assignment::new());
        assert_eq!(st, rr, "sticky from nothing deals like round-robin here");

        // m3 leaves.
        let s2 = &s[..2];
        let r = range(s2, &c);
        assert_eq!(r[&m[0]], tps(&[("t", 0), ("t", 1), ("t", 2)]));
        assert_eq!(r[&m[1]], tps(&[("t", 3), ("t", 4), ("t", 5)]));
        let rr = round_robin(s2, &c);
        assert_eq!(rr[&m[0]], tps(&[("t", 0), ("t", 2), ("t", 4)]));
        assert_eq!(rr[&m[1]], tps(&[("t", 1), ("t", 3), ("t", 5)]));
        // Sticky: m1 keeps 0 and 3, m2 keeps 1 and 4; only m3's 2 and 5 move.
        let st2 = sticky(s2, &c, &st);
        assert_eq!(st2[&m[0]], tps(&[("t", 0), ("t", 2), ("t", 3)]));
        assert_eq!(st2[&m[1]], tps(&[("t", 1), ("t", 4), ("t", 5)]));
        for a in [&r, &rr, &st2] {
            check_invariants(a, s2, &c);
        }
    }

    #[test]
    fn range_gives_the_extra_partitions_to_the_first_members() {
        let m = ids(&["a", "b", "c"]);
        let t = vec![topics(&["t"]); 3];
        let c = counts(&[("t", 8)]);
        let s = subs(&m, &t);
        let a = range(&s, &c);
        let sizes: Vec<usize> = m.iter().map(|id| a[id].len()).collect();
        assert_eq!(sizes, [3, 3, 2]);
        assert_eq!(a[&m[1]], tps(&[("t", 3), ("t", 4), ("t", 5)]));
        // Fewer partitions than members: the last ones get nothing.
        let c = counts(&[("t", 2)]);
        let a = range(&s, &c);
        assert_eq!(a[&m[2]], vec![]);
        check_invariants(&a, &s, &c);
    }

    #[test]
    fn unknown_topics_and_empty_groups_assign_nothing() {
        let m = ids(&["a", "b"]);
        let t = vec![topics(&["ghost", "t"]), topics(&["ghost"])];
        let c = counts(&[("t", 2)]);
        let s = subs(&m, &t);
        for strat in Strategy::ALL {
            let a = assign(strat, &s, &c, &Assignment::new());
            assert_eq!(a[&m[0]], tps(&[("t", 0), ("t", 1)]), "{strat}");
            assert_eq!(a[&m[1]], vec![], "{strat}");
            check_invariants(&a, &s, &c);
            assert!(assign(strat, &[], &c, &Assignment::new()).is_empty());
        }
    }

    #[test]
    fn sticky_keeps_what_survivors_owned_and_rebalances_newcomers() {
        let m = ids(&["a", "b", "c"]);
        let t = vec![topics(&["t"]); 3];
        let c = counts(&[("t", 6)]);
        // a owned everything; b and c are new: a keeps 2 of its own, each newcomer gets 2.
        let prev: Assignment = [(
            m[0].clone(),
            tps(&[("t", 0), ("t", 1), ("t", 2), ("t", 3), ("t", 4), ("t", 5)]),
        )]
        .into_iter()
        .collect();
        let s = subs(&m, &t);
        let a = sticky(&s, &c, &prev);
        check_invariants(&a, &s, &c);
        assert!(m.iter().all(|id| a[id].len() == 2));
        assert!(a[&m[0]].iter().all(|tp| tp.partition < 6));
        // A partition that no longer exists or a topic no longer subscribed is dropped.
        let c3 = counts(&[("t", 3)]);
        let a3 = sticky(&s, &c3, &a);
        check_invariants(&a3, &s, &c3);
        assert!(m.iter().all(|id| a3[id].len() == 1));
    }

    /// A small seeded property test: random subscriptions and counts, every strategy keeps
    /// the invariants; sticky is balanced within one when subscriptions are identical.
    #[test]
    fn random_subscriptions_keep_the_invariants() {
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let names = ["a", "b", "c", "d"];
        let mut prev = Assignment::new();
        for round in 0..300 {
            let n = (next() % 6) as usize;
            let m: Vec<MemberId> = (0..n)
                .map(|i| MemberId::from(format!("m{}", next() % 9 + i as u64 * 10)))
                .collect();
            let same = round % 2 == 0;
            let t: Vec<Vec<String>> = (0..n)
                .map(|_| {
                    names
                        .iter()
                        .filter(|_| same || next() % 2 == 0)
                        .map(|s| s.to_string())
                        .collect()
                })
                .collect();
            let mut c: BTreeMap<String, u32> = BTreeMap::new();
            for name in names {
                if next() % 5 != 0 {
                    c.insert(name.to_string(), (next() % 7) as u32);
                }
            }
            let s = subs(&m, &t);
            for strat in Strategy::ALL {
                let a = assign(strat, &s, &c, &prev);
                check_invariants(&a, &s, &c);
                if strat == Strategy::Sticky {
                    if same && n > 0 {
                        let loads: Vec<usize> = a.values().map(Vec::len).collect();
                        let (lo, hi) = (loads.iter().min().unwrap(), loads.iter().max().unwrap());
                        assert!(hi - lo <= 1, "unbalanced {loads:?}");
                    }
                    prev = a;
                }
            }
        }
    }

    #[test]
    fn strategy_names_round_trip() {
        for s in Strategy::ALL {
            assert_eq!(Strategy::from_name(s.name()), Some(s));
        }
        assert_eq!(Strategy::from_name("cooperative-sticky"), None);
        assert_eq!(Strategy::RoundRobin.to_string(), "roundrobin");
    }
}
