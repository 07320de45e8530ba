//! Consumer groups end to end against the real `outpost serve` (DESIGN.md promise 4, issue 5):
//!
//! - 3 members (each its own connection and heartbeat loop) share 6 partitions; one stops
//!   heart-beating ("killed": no LEAVE, no more calls) and within its session timeout (plus
//!   a heartbeat interval) the other two own all 6 partitions, each exactly once;
//! - a late commit from the old generation is refused (`ILLEGAL_GENERATION`, and
//!   `UNKNOWN_MEMBER_ID` for the dead member);
//! - a commit past the durable end is refused (`OFFSET_AHEAD_OF_LOG`) and writes nothing,
//!   not even its other partitions (one atomic metadata append);
//! - committed offsets survive SIGTERM + restart and SIGKILL + restart;
//! - `outpost groups list|describe` show the group, its committed offsets and lag.

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use outpost::client::{Client, ClientError, GroupPartitionRef, OffsetToCommit};
use outpost::protocol::ErrorCode;
use outpost::storage::{Acks, Record};
use support::{Server, TempDir};

const GROUP: &str = "readers";
const TOPIC: &str = "events";
const PARTITIONS: u32 = 6;
/// Allowed by the test's `[groups] session_timeout_ms_min` (the default minimum is 6 s).
const SESSION_MS: u32 = 2_000;
const HEARTBEAT: Duration = Duration::from_millis(200);
const RECORDS_PER_PARTITION: u64 = 10;

/// What a member's loop last saw.
#[derive(Clone, Debug, Default)]
struct Seen {
    member: String,
    generation: u32,
    assignment: Vec<GroupPartitionRef>,
}

struct Member {
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Member {
    /// Joins, then heartbeats every `HEARTBEAT`, rejoining (with its id) on
    /// `REBALANCE_IN_PROGRESS`, until stopped.
    fn start(addr: String, name: &str) -> Member {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st, name) = (seen.clone(), stop.clone(), name.to_owned());
        let thread = std::thread::spawn(move || {
            smol::block_on(async move {
                let c = Client::connect(addr).await.unwrap();
                let mut id: Option<String> = None;
                'join: while !st.load(Ordering::SeqCst) {
                    let j = match c
                        .join_group(
                            GROUP,
                            id.as_deref(),
                            &name,
                            SESSION_MS,
                            &["range"],
                            &[TOPIC],
                        )
                        .await
                    {
                        Ok(j) => j,
                        Err(e) if e.code() == Some(ErrorCode::RebalanceInProgress) => continue,
                        Err(e) => panic!("{name}: join: {e}"),
                    };
                    id = Some(j.member.clone());
                    *s.lock().unwrap() = Seen {
                        member: j.member.clone(),
                        generation: j.generation,
                        assignment: j.assignment,
                    };
                    while !st.load(Ordering::SeqCst) {
                        smol::Timer::after(HEARTBEAT).await;
                        if st.load(Ordering::SeqCst) {
                            break 'join;
                        }
                        match c.heartbeat(GROUP, &j.member, j.generation).await {
                            Ok(()) => {}
                            Err(e) if e.code() == Some(ErrorCode::RebalanceInProgress) => {
                                continue 'join;
                            }
                            Err(e) => panic!("{name}: heartbeat: {e}"),
                        }
                    }
                }
            });
        });
        Member {
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn seen(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }

    /// Stops its calls at once (no LEAVE): to the broker it looks killed.
    fn kill(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Waits until every live member is in the same generation and their assignments cover the 6
/// partitions exactly once; returns that generation.
fn wait_balanced(members: &[&Member], within: Duration, server: &Server) -> u32 {
    let deadline = Instant::now() + within;
    loop {
        let seen: Vec<Seen> = members.iter().map(|m| m.seen()).collect();
        let generation = seen[0].generation;
        let mut all: Vec<(String, u32)> = seen
            .iter()
            .flat_map(|s| s.assignment.iter().map(|p| (p.topic.clone(), p.partition)))
            .collect();
        all.sort();
        let expected: Vec<(String, u32)> = (0..PARTITIONS).map(|p| (TOPIC.to_owned(), p)).collect();
        if generation > 0 && seen.iter().all(|s| s.generation == generation) && all == expected {
            return generation;
        }
        assert!(
            Instant::now() < deadline,
            "no balanced assignment within {within:?}: {seen:#?}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn commit(
    c: &Client,
    member: Option<(&str, u32)>,
    offsets: &[(u32, u64)],
) -> Result<(), ClientError> {
    let list: Vec<OffsetToCommit> = offsets
        .iter()
        .map(|(p, o)| OffsetToCommit {
            topic: TOPIC.to_owned(),
            partition: *p,
            offset: *o,
            metadata: format!("p{p}"),
        })
        .collect();
    smol::block_on(c.commit_offsets(GROUP, member, &list))
}

/// Every committed offset of the group, by partition.
fn committed(server: &Server) -> Vec<(u32, Option<u64>)> {
    let c = server.client();
    let got = smol::block_on(c.fetch_offsets(GROUP, None, &[])).unwrap();
    got.iter().map(|o| (o.partition, o.committed)).collect()
}

#[test]
fn members_share_partitions_dead_member_moves_commits_fenced_offsets_durable() {
    let dir = TempDir::new("groups");
    let board = dir.board("64 KiB", "1 MiB", "16 KiB", "8 KiB");
    let config = dir.path().join("groups.toml");
    std::fs::write(
        &config,
        "[storage]\nfull_policy = \"reject\"\ncorruption_policy = \"refuse\"\n\n\
         [groups]\nsession_timeout_ms_min = 1000\nsession_timeout_ms_max = 60000\n",
    )
    .unwrap();
    let config = Some(config.as_path());
    let server = Server::start(&board, &dir.data(), config);
    let admin = server.client();
    smol::block_on(admin.create_topic(TOPIC, PARTITIONS)).unwrap();
    for p in 0..PARTITIONS {
        let records: Vec<Record> = (0..RECORDS_PER_PARTITION)
            .map(|i| Record {
                timestamp_ms: 0,
                key: None,
                value: format!("{p}-{i}").into_bytes(),
                headers: Vec::new(),
            })
            .collect();
        smol::block_on(admin.produce(TOPIC, Some(p), Acks::Durable, &records)).unwrap();
    }

    // 1. Three members, six partitions, two each.
    let started = Instant::now();
    let mut m = [
        Member::start(server.addr_string(), "a"),
        Member::start(server.addr_string(), "b"),
        Member::start(server.addr_string(), "c"),
    ];
    let g1 = wait_balanced(&[&m[0], &m[1], &m[2]], Duration::from_secs(10), &server);
    for x in &m {
        assert_eq!(x.seen().assignment.len(), 2, "{:?}", x.seen());
    }
    eprintln!(
        "3 members balanced in generation {g1} after {:?}",
        started.elapsed()
    );
    let old: Vec<Seen> = m.iter().map(Member::seen).collect();

    // 2. "c" is killed: its partitions move to "a" and "b" within the session timeout.
    let killed = Instant::now();
    m[2].kill();
    let g2 = wait_balanced(
        &[&m[0], &m[1]],
        Duration::from_millis(u64::from(SESSION_MS)) + 3 * HEARTBEAT + Duration::from_secs(1),
        &server,
    );
    assert!(g2 > g1);
    eprintln!(
        "c's partitions moved after {:?} (generation {g2})",
        killed.elapsed()
    );
    let union: BTreeSet<u32> = m[..2]
        .iter()
        .flat_map(|x| x.seen().assignment.into_iter().map(|p| p.partition))
        .collect();
    assert_eq!(union.len(), PARTITIONS as usize);

    // 3. Late commits from the old generation are refused; nothing is written.
    let c = server.client();
    let e = commit(&c, Some((&old[0].member, old[0].generation)), &[(0, 1)]).unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::IllegalGeneration), "{e}");
    let e = commit(&c, Some((&old[2].member, old[2].generation)), &[(4, 1)]).unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::UnknownMemberId), "{e}");
    // A standalone commit while the group has members is refused too.
    let e = commit(&c, None, &[(0, 1)]).unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::UnknownMemberId), "{e}");
    assert_eq!(committed(&server), []);

    // 4. Current members commit their partitions (offset = 3 + partition).
    for x in &m[..2] {
        let s = x.seen();
        let offsets: Vec<(u32, u64)> = s
            .assignment
            .iter()
            .map(|p| (p.partition, 3 + u64::from(p.partition)))
            .collect();
        commit(&c, Some((&s.member, s.generation)), &offsets).unwrap();
    }
    let expected: Vec<(u32, Option<u64>)> = (0..PARTITIONS)
        .map(|p| (p, Some(3 + u64::from(p))))
        .collect();
    assert_eq!(committed(&server), expected);

    // 5. A commit past the durable end is refused, whole: its valid partition is not written.
    let s = m[0].seen();
    let mine = s.assignment[0].partition;
    let e = commit(
        &c,
        Some((&s.member, s.generation)),
        &[
            (mine, RECORDS_PER_PARTITION),
            (mine, RECORDS_PER_PARTITION + 1),
        ],
    )
    .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::OffsetAheadOfLog), "{e}");
    assert_eq!(committed(&server), expected);
    // The durable end itself is a valid commit (everything consumed).
    commit(
        &c,
        Some((&s.member, s.generation)),
        &[(mine, RECORDS_PER_PARTITION)],
    )
    .unwrap();
    let mut expected = expected;
    expected[mine as usize].1 = Some(RECORDS_PER_PARTITION);
    assert_eq!(committed(&server), expected);
    let fetched =
        smol::block_on(c.fetch_offsets(GROUP, Some((&s.member, s.generation)), &[(TOPIC, mine)]))
            .unwrap();
    assert_eq!(fetched[0].metadata, format!("p{mine}"));
    assert_eq!(fetched[0].next, RECORDS_PER_PARTITION);
    assert_eq!(fetched[0].lag(), Some(0));

    // 6. Restart (SIGTERM), then crash (SIGKILL): the committed offsets are still there.
    for x in &mut m {
        x.kill();
    }
    drop((c, admin));
    assert_eq!(server.terminate(), 0);
    let server = Server::start(&board, &dir.data(), config);
    assert_eq!(committed(&server), expected, "after SIGTERM + restart");
    server.kill9();
    let server = Server::start(&board, &dir.data(), config);
    assert_eq!(committed(&server), expected, "after SIGKILL + restart");

    // 7. The CLI shows the group (no members since the restart) with offsets and lag.
    let out = std::process::Command::new(support::BIN)
        .args(["groups", "describe", GROUP, "--addr", &server.addr_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("group readers: no members since the broker started\n"),
        "{text}"
    );
    let lag_line = format!(
        "{TOPIC}  {:>9}  {:>12}  {:>12}  {:>10}",
        mine, RECORDS_PER_PARTITION, RECORDS_PER_PARTITION, 0
    );
    assert!(text.contains(&lag_line), "{text}");
    let out = std::process::Command::new(support::BIN)
        .args(["groups", "list", "--addr", &server.addr_string()])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("readers  Empty"), "{text}");
    eprintln!("total {:?}", started.elapsed());
}

/// A committed offset the ring already reclaimed (drop-oldest) is reported by FETCH_OFFSETS
/// (`committed < earliest`) and resolved by the consumer's reset policy: earliest, latest, or
/// OFFSET_OUT_OF_RANGE.
#[test]
fn reclaimed_committed_offset_is_resolved_by_the_reset_policy() {
    use outpost::client::{ConsumerConfig, GroupConsumer, Membership, ResetPolicy, Semantics};
    let dir = TempDir::new("groups-reset");
    let board = dir.board("64 KiB", "512 KiB", "16 KiB", "8 KiB");
    let config = dir.path().join("reset.toml");
    std::fs::write(
        &config,
        "[storage]\nfull_policy = \"drop-oldest\"\ncorruption_policy = \"refuse\"\n",
    )
    .unwrap();
    let server = Server::start(&board, &dir.data(), Some(config.as_path()));
    let c = server.client();
    smol::block_on(async {
        c.create_topic(TOPIC, 1).await.unwrap();
        let one = |i: u32| Record {
            timestamp_ms: 0,
            key: None,
            value: format!("{i:0>200}").into_bytes(),
            headers: vec![],
        };
        let first: Vec<Record> = (0..10).map(one).collect();
        c.produce(TOPIC, Some(0), Acks::Durable, &first)
            .await
            .unwrap();
        let at = OffsetToCommit {
            topic: TOPIC.into(),
            partition: 0,
            offset: 5,
            metadata: String::new(),
        };
        c.commit_offsets(GROUP, None, &[at]).await.unwrap();
        // Fill the ring several times over: offset 5 is reclaimed.
        for k in 0..200u32 {
            let batch: Vec<Record> = (0..20).map(|i| one(k * 20 + i)).collect();
            c.produce(TOPIC, Some(0), Acks::Durable, &batch)
                .await
                .unwrap();
        }
        let o = c.list_offsets(TOPIC, 0).await.unwrap();
        assert!(o.earliest > 5, "not reclaimed: {o:?}");
        let fetched = c.fetch_offsets(GROUP, None, &[(TOPIC, 0)]).await.unwrap();
        assert_eq!(fetched[0].committed, Some(5));
        assert_eq!(fetched[0].earliest, o.earliest);
        let cfg = |reset| ConsumerConfig {
            group: GROUP.into(),
            membership: Membership::Assign(vec![(TOPIC.into(), 0)]),
            semantics: Semantics::AtLeastOnce,
            reset,
            producer_name: None,
            fetch_bytes_max: 1 << 16,
        };
        let key = (TOPIC.to_string(), 0);
        let g = GroupConsumer::start(&c, cfg(ResetPolicy::Earliest))
            .await
            .unwrap();
        assert_eq!(g.positions()[&key], o.earliest);
        let g = GroupConsumer::start(&c, cfg(ResetPolicy::Latest))
            .await
            .unwrap();
        assert_eq!(g.positions()[&key], o.next);
        let e = GroupConsumer::start(&c, cfg(ResetPolicy::Error))
            .await
            .err()
            .unwrap();
        assert_eq!(e.code(), Some(ErrorCode::OffsetOutOfRange), "{e}");
    });
}
